//! Tokens the suite signs itself, for a payment port checked alone.
//!
//! Why it exists: a payment service trusts any token signed by the key
//! whose public half it is configured with (`JWT_PUBLIC_KEY`); it never
//! asks the user service whether the user exists. So with the private key
//! (for a port under test, the committed development key
//! `dev/keys/jwt-private.pem`), the suite can act as a fresh user without a
//! user service. The claims are docs/api.md's: `sub` (the user id), `iss`
//! `twinshop`, `iat` and `exp`, signed with EdDSA; jsonwebtoken signs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use uuid::Uuid;

/// How long a signed token is valid: longer than any run.
const LIFETIME: Duration = Duration::from_secs(3600);

/// Signs tokens with one Ed25519 key.
pub struct Signer {
    key: EncodingKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(EdDSA, key not shown)")
    }
}

impl Signer {
    /// A signer from an Ed25519 private key in PKCS#8 PEM (`\n` escapes
    /// accepted, as the services accept them).
    pub fn from_pem(pem: &str) -> Result<Self> {
        let pem = pem.replace("\\n", "\n");
        let key = EncodingKey::from_ed_pem(pem.as_bytes()).context("the signing key is not an Ed25519 PKCS#8 PEM")?;
        Ok(Self { key })
    }

    /// A bearer token for `user`, valid for an hour.
    pub fn token(&self, user: Uuid) -> Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).context("the clock is before 1970")?.as_secs();
        let claims = json!({"sub": user, "iss": "twinshop", "iat": now, "exp": now + LIFETIME.as_secs()});
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.key).context("signing a token")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{Jwt, decode};

    /// The committed development key (dev/keys/jwt-private.pem).
    const DEV_KEY: &str = include_str!("../../../dev/keys/jwt-private.pem");

    #[test]
    fn a_signed_token_carries_the_documented_header_and_claims() {
        let user = Uuid::now_v7();
        let token = Signer::from_pem(DEV_KEY).expect("the dev key").token(user).expect("signed");
        let jwt = Jwt::parse(&token).expect("a JWT");
        assert_eq!(jwt.header["alg"], "EdDSA");
        assert_eq!(jwt.claims["sub"], user.to_string());
        assert_eq!(jwt.claims["iss"], "twinshop");
        assert!(jwt.claims["exp"].as_u64() > jwt.claims["iat"].as_u64());
        assert_eq!(decode(&jwt.parts[2]).expect("base64url").len(), 64, "an Ed25519 signature");
    }

    #[test]
    fn a_key_that_is_not_ed25519_pkcs8_is_refused() {
        assert!(Signer::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").is_err());
        assert!(Signer::from_pem(include_str!("../../../dev/keys/jwt-public.pem")).is_err());
    }
}

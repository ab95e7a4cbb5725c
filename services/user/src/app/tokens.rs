//! Issuing access tokens: EdDSA JWTs signed with the user service's
//! private key (the only process that has it).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::anyhow;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use twinshop_platform::{
    config::Secret,
    http::auth::{Claims, ISSUER, unescape_pem},
};

use crate::domain::UserId;

/// `JWT_PRIVATE_KEY`, `JWT_TTL_SECS`.
#[derive(Debug, Clone, Deserialize)]
pub struct JwtIssuerConfig {
    /// Ed25519 private key, PKCS#8 PEM (`\n` escapes accepted).
    pub private_key: Secret<String>,
    /// Token lifetime in seconds (default 3600).
    #[serde(default = "default_ttl")]
    pub ttl_secs: u64,
}

fn default_ttl() -> u64 {
    3600
}

#[derive(Clone)]
pub struct TokenIssuer {
    key: EncodingKey,
    ttl: Duration,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl TokenIssuer {
    pub fn from_config(config: &JwtIssuerConfig) -> anyhow::Result<Self> {
        let key = EncodingKey::from_ed_pem(unescape_pem(config.private_key.expose()).as_bytes())
            .map_err(|e| anyhow!("JWT private key is not an Ed25519 PKCS#8 PEM: {e}"))?;
        Ok(Self { key, ttl: Duration::from_secs(config.ttl_secs) })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A token for `user`, valid for the configured lifetime from now.
    pub fn issue(&self, user: UserId) -> anyhow::Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let claims = Claims { sub: user.as_uuid(), iat: now, exp: now + self.ttl.as_secs(), iss: ISSUER.to_owned() };
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.key).map_err(|e| anyhow!("signing: {e}"))
    }
}

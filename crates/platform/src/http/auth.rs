//! Bearer tokens: EdDSA-signed JWTs issued by the user service and verified
//! by every process with the public key alone.
//!
//! Only EdDSA is accepted (no `none`, no HMAC confusion); `iss` must be
//! `twinshop`; `exp` is required; clock leeway is 5 s. Any failure is the
//! same `401 unauthorized`: the client learns nothing about why.
//!
//! A token that passed is remembered, by its exact text, until its expiry:
//! a client sends the same token on every request for its lifetime, and
//! checking an Ed25519 signature costs tens of microseconds each time
//! (issue 16: `loadtest ab` measured what remembering saves). Only the
//! exact bytes that were verified are remembered, so a changed token
//! (another signature, another claim) is verified afresh; the expiry is
//! still checked on every request.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts},
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::problem::{ErrorCode, Problem};

pub const ISSUER: &str = "twinshop";
pub const LEEWAY: Duration = Duration::from_secs(5);

/// Verified tokens remembered per process: a few hundred bytes each, so
/// at most about 1 MiB. Beyond it the least useful are forgotten (and
/// verified again when they come back).
const REMEMBERED: u64 = 4096;

/// The claims twinshop tokens carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    pub iss: String,
}

/// `JWT_PUBLIC_KEY`: what every process needs to check tokens.
#[derive(Debug, Clone, Deserialize)]
pub struct JwtVerifierConfig {
    /// Ed25519 public key, SPKI PEM. Literal `\n` sequences are accepted so
    /// the key fits on one line in `.env` files.
    pub public_key: String,
}

/// Environment files often carry PEM on one line with `\n` escapes.
pub fn unescape_pem(pem: &str) -> String {
    pem.replace("\\n", "\n")
}

/// Checks tokens; cheap to share.
#[derive(Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    /// Token text → (user id, `exp`) of the tokens that passed.
    verified: moka::sync::Cache<Box<str>, (Uuid, u64)>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtVerifier(EdDSA)")
    }
}

impl JwtVerifier {
    pub fn from_config(config: &JwtVerifierConfig) -> anyhow::Result<Self> {
        Self::from_pem(&config.public_key)
    }

    pub fn from_pem(public_key_pem: &str) -> anyhow::Result<Self> {
        let key = DecodingKey::from_ed_pem(unescape_pem(public_key_pem).as_bytes())
            .map_err(|e| anyhow::anyhow!("JWT public key is not an Ed25519 SPKI PEM: {e}"))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY.as_secs();
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let verified = moka::sync::Cache::new(REMEMBERED);
        Ok(Self { key, validation, verified })
    }

    /// The user id of a valid token.
    pub fn verify(&self, token: &str) -> Result<Uuid, Problem> {
        self.verify_at(token, now_s())
    }

    /// [`JwtVerifier::verify`] at `now` (seconds since the epoch).
    fn verify_at(&self, token: &str, now: u64) -> Result<Uuid, Problem> {
        if let Some((user, exp)) = self.verified.get(token) {
            if now <= exp.saturating_add(LEEWAY.as_secs()) {
                return Ok(user);
            }
            self.verified.invalidate(token);
            tracing::debug!(reason = "ExpiredSignature", "token rejected");
            return Err(unauthorized());
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map(|data| data.claims);
        match claims {
            Ok(claims) => {
                self.verified.insert(token.into(), (claims.sub, claims.exp));
                Ok(claims.sub)
            }
            Err(err) => {
                tracing::debug!(reason = ?err.kind(), "token rejected");
                Err(unauthorized())
            }
        }
    }
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn unauthorized() -> Problem {
    Problem::new(ErrorCode::Unauthorized).with_detail("A valid bearer token is required.")
}

/// The caller's user id, from a verified `Authorization: Bearer` token.
///
/// The verifier comes from the request's extensions: the host adds one
/// [`JwtVerifier`] to every public route of a process (an
/// `axum::Extension<Arc<JwtVerifier>>` layer), so areas' handlers need no
/// state for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authenticated(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(verifier) = parts.extensions.get::<Arc<JwtVerifier>>().cloned() else {
            tracing::error!("no JWT verifier on this route: the router was built without the host's layer");
            return Err(Problem::new(ErrorCode::Internal));
        };
        let header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(unauthorized)?;
        let (scheme, token) = header.split_once(' ').ok_or_else(unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(unauthorized());
        }
        let user = verifier.verify(token.trim())?;
        tracing::Span::current().record("user_id", tracing::field::display(user));
        Ok(Self(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    const PRIVATE: &str = include_str!("../../../../dev/keys/jwt-private.pem");
    const PUBLIC: &str = include_str!("../../../../dev/keys/jwt-public.pem");

    fn token(sub: Uuid, exp: u64) -> String {
        let claims = Claims { sub, iat: exp.saturating_sub(900), exp, iss: ISSUER.to_owned() };
        let key = EncodingKey::from_ed_pem(PRIVATE.as_bytes()).expect("dev key");
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &key).expect("signing")
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let verifier = JwtVerifier::from_pem(PUBLIC).expect("dev key");
        let user = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0042);
        let now = now_s();
        let t = token(user, now + 60);
        assert_eq!(verifier.verify_at(&t, now).ok(), Some(user));
        assert_eq!(verifier.verify_at(&t, now + 60 + LEEWAY.as_secs()).ok(), Some(user), "within the leeway");
        assert!(verifier.verify_at(&t, now + 61 + LEEWAY.as_secs()).is_err(), "past exp and leeway");
        assert!(verifier.verify_at(&t, now).is_ok(), "forgotten when expired, then verified again by signature");
    }

    #[test]
    fn only_the_exact_verified_text_is_remembered() {
        let verifier = JwtVerifier::from_pem(PUBLIC).expect("dev key");
        let user = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0042);
        let t = token(user, now_s() + 600);
        assert_eq!(verifier.verify(&t).ok(), Some(user));
        // The same claims with one signature character changed: a new
        // text, so the signature is checked, and fails.
        let at = t.len() - 10;
        let swapped = if &t[at..=at] == "A" { "B" } else { "A" };
        let forged = format!("{}{swapped}{}", &t[..at], &t[at + 1..]);
        assert!(verifier.verify(&forged).is_err());
        assert!(verifier.verify(&format!("{t}x")).is_err());
        // A token that failed is not remembered as good.
        assert!(verifier.verify(&forged).is_err());
        assert_eq!(verifier.verify(&t).ok(), Some(user));
    }

    #[test]
    fn tokens_signed_by_another_key_or_for_another_issuer_are_refused() {
        let verifier = JwtVerifier::from_pem(PUBLIC).expect("dev key");
        let claims = Claims {
            sub: Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0042),
            iat: now_s(),
            exp: now_s() + 600,
            iss: "someone-else".to_owned(),
        };
        let key = EncodingKey::from_ed_pem(PRIVATE.as_bytes()).expect("dev key");
        let other_issuer = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &key).expect("signing");
        assert!(verifier.verify(&other_issuer).is_err());
        assert!(verifier.verify("not.a.token").is_err());
    }
}

//! Bearer tokens: EdDSA-signed JWTs issued by the user service and verified
//! by every process with the public key alone.
//!
//! Only EdDSA is accepted (no `none`, no HMAC confusion); `iss` must be
//! `twinshop`; `exp` is required; clock leeway is 5 s. Any failure is the
//! same `401 unauthorized`: the client learns nothing about why.

use std::{sync::Arc, time::Duration};

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
        Ok(Self { key, validation })
    }

    /// The user id of a valid token.
    pub fn verify(&self, token: &str) -> Result<Uuid, Problem> {
        jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map(|data| data.claims.sub).map_err(|err| {
            tracing::debug!(reason = ?err.kind(), "token rejected");
            unauthorized()
        })
    }
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

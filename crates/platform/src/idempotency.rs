//! `Idempotency-Key`: what a client sends so a retried request has no
//! further effect (docs/api.md): 1–255 visible ASCII characters, scoped per user
//! and endpoint. The stores keep the key with a fingerprint of the request
//! (its parsed JSON) and the first answer.

use std::fmt;

use axum::http::HeaderMap;

use crate::problem::Problem;

pub const HEADER: &str = "idempotency-key";
/// The response header on a replayed answer.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() || raw.len() > 255 {
            return Err("must be 1 to 255 characters");
        }
        if !raw.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err("must be visible ASCII characters");
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reads the optional header; a malformed one is `validation_failed`.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, Problem> {
        let Some(value) = headers.get(HEADER) else { return Ok(None) };
        let raw = value
            .to_str()
            .map_err(|_| Problem::invalid_field("Idempotency-Key", "must be visible ASCII characters"))?;
        Self::parse(raw).map(Some).map_err(|msg| Problem::invalid_field("Idempotency-Key", msg))
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_visible_ascii_characters() {
        assert!(IdempotencyKey::parse("a").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse("ünïcode").is_err());
    }
}

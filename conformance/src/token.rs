//! Just enough of JWT to check a token's shape from outside and to forge
//! bad ones: base64url without padding, and the three dot-separated parts.
//!
//! Why it exists: docs/api.md fixes the token's algorithm and claims, and a
//! conformant server must refuse tokens that are tampered with or claim
//! another algorithm. The suite cannot sign (it has no key), but it can
//! read a token and break one. Hand-written to keep the dependency list to
//! what a client needs.

use anyhow::{Context as _, Result, ensure};
use serde_json::Value;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

pub fn decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// A token split into its parts, header and claims decoded.
#[derive(Debug, Clone)]
pub struct Jwt {
    pub header: Value,
    pub claims: Value,
    /// The three encoded parts, as received.
    pub parts: [String; 3],
}

impl Jwt {
    pub fn parse(token: &str) -> Result<Self> {
        let parts: Vec<&str> = token.split('.').collect();
        ensure!(parts.len() == 3, "a JWT has three dot-separated parts, this has {}", parts.len());
        let json = |i: usize, what: &str| -> Result<Value> {
            let bytes = decode(parts[i]).with_context(|| format!("the JWT {what} is not base64url"))?;
            serde_json::from_slice(&bytes).with_context(|| format!("the JWT {what} is not JSON"))
        };
        Ok(Self {
            header: json(0, "header")?,
            claims: json(1, "claims")?,
            parts: [parts[0].to_owned(), parts[1].to_owned(), parts[2].to_owned()],
        })
    }

    /// The token with its header replaced (the signature kept).
    pub fn with_header(&self, header: &Value) -> String {
        format!("{}.{}.{}", encode(header.to_string().as_bytes()), self.parts[1], self.parts[2])
    }

    /// The token with another token's claims (the signature kept).
    pub fn with_claims_of(&self, other: &Jwt) -> String {
        format!("{}.{}.{}", self.parts[0], other.parts[1], self.parts[2])
    }

    /// The token with one bit of its signature flipped.
    pub fn with_broken_signature(&self) -> String {
        let mut sig = decode(&self.parts[2]).unwrap_or_default();
        let middle = sig.len() / 2;
        if let Some(b) = sig.get_mut(middle) {
            *b ^= 0x01;
        }
        format!("{}.{}.{}", self.parts[0], self.parts[1], encode(&sig))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips_every_length() {
        for len in 0..70u8 {
            let bytes: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(decode(&encode(&bytes)), Some(bytes));
        }
        assert_eq!(encode(b"{\"alg\":\"none\"}"), "eyJhbGciOiJub25lIn0");
        assert_eq!(decode("a+b"), None);
    }
}

//! Cursor pagination, newest first, as docs/api.md specifies: ordered by
//! `(created_at, id)` descending; `limit` 1–100 (default 20); the cursor is
//! opaque; a malformed cursor or limit is `validation_failed`.
//!
//! The cursor is the last item's position as 24 bytes (the creation time in
//! microseconds since the Unix epoch, big-endian `i64`, then the id's 16
//! bytes) in unpadded base64url: always [`CURSOR_LEN`] characters of
//! `A-Z a-z 0-9 - _`. Every such string is a position, so the OpenAPI
//! document can say exactly which cursors are accepted (length and
//! alphabet) and a schema-valid cursor is never refused. A position out of
//! the range of timestamps is clamped to it: no row is older than the Unix
//! epoch or newer than the year 9999, so the page is the same.

use std::collections::HashMap;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{problem::Problem, validation::FieldErrors};

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;
/// Characters in a cursor: 24 bytes in base64url without padding.
pub const CURSOR_LEN: usize = 32;

/// Where a page ends: the `(created_at, id)` of its last item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub created_at: OffsetDateTime,
    pub id: Uuid,
}

/// The earliest and latest creation time a cursor can name (microseconds
/// since the Unix epoch): the epoch, and the last microsecond of 9999, which
/// both `time` and PostgreSQL can represent.
const MICROS_RANGE: (i64, i64) = (0, 253_402_300_799_999_999);

impl Position {
    pub fn encode(&self) -> String {
        let micros = i64::try_from(self.created_at.unix_timestamp_nanos() / 1_000)
            .unwrap_or(MICROS_RANGE.1)
            .clamp(MICROS_RANGE.0, MICROS_RANGE.1);
        let mut bytes = [0u8; 24];
        bytes[..8].copy_from_slice(&micros.to_be_bytes());
        bytes[8..].copy_from_slice(self.id.as_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// `None` unless the cursor is [`CURSOR_LEN`] base64url characters;
    /// every such cursor is a position.
    pub fn decode(cursor: &str) -> Option<Self> {
        if cursor.len() != CURSOR_LEN {
            return None;
        }
        let bytes: [u8; 24] = URL_SAFE_NO_PAD.decode(cursor).ok()?.try_into().ok()?;
        let (micros, id) = bytes.split_at(8);
        let micros = i64::from_be_bytes(micros.try_into().ok()?).clamp(MICROS_RANGE.0, MICROS_RANGE.1);
        let created_at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).ok()?;
        Some(Self { created_at, id: Uuid::from_bytes(id.try_into().ok()?) })
    }
}

/// A parsed `?limit=&cursor=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: i64,
    /// `None`: the first (newest) page.
    pub after: Option<Position>,
}

impl PageRequest {
    /// From the query string; unknown parameters are ignored.
    pub fn from_query(query: &HashMap<String, String>) -> Result<Self, Problem> {
        let mut errors = FieldErrors::new();
        let limit = match query.get("limit") {
            None => Some(DEFAULT_LIMIT),
            Some(raw) => match raw.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Some(n),
                _ => {
                    errors.push("limit", format!("must be an integer from 1 to {MAX_LIMIT}"));
                    None
                }
            },
        };
        let after = match query.get("cursor") {
            None => None,
            Some(raw) => {
                let decoded = Position::decode(raw);
                if decoded.is_none() {
                    errors.push("cursor", "is not a cursor this API issued");
                }
                decoded
            }
        };
        errors.finish().map_err(Problem::validation)?;
        Ok(Self { limit: limit.unwrap_or(DEFAULT_LIMIT), after })
    }
}

/// One page: items, and where the next one starts (`None` on the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Position>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows: the extra row only says
    /// that there is a next page.
    pub fn from_overfetch(mut rows: Vec<T>, limit: i64, position: impl Fn(&T) -> Position) -> Self {
        let has_more = rows.len() as i64 > limit;
        rows.truncate(limit.max(0) as usize);
        let next = if has_more { rows.last().map(&position) } else { None };
        Self { items: rows, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn a_cursor_round_trips_to_the_microsecond() {
        let p = Position {
            created_at: OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_000).expect("ts"),
            id: Uuid::now_v7(),
        };
        assert_eq!(Position::decode(&p.encode()), Some(p));
    }

    #[test]
    fn limits_and_cursors_are_validated() {
        assert_eq!(PageRequest::from_query(&q(&[])).expect("ok").limit, 20);
        assert_eq!(PageRequest::from_query(&q(&[("limit", "100")])).expect("ok").limit, 100);
        for bad in ["0", "101", "-1", "x", "1.5"] {
            assert!(PageRequest::from_query(&q(&[("limit", bad)])).is_err(), "{bad}");
        }
        let too_short = "A".repeat(CURSOR_LEN - 1);
        let too_long = "A".repeat(CURSOR_LEN + 1);
        let padded = format!("{}=", "A".repeat(CURSOR_LEN - 1));
        let not_base64url = format!("{}+", "A".repeat(CURSOR_LEN - 1));
        for bad in ["", "!!", "0", &too_short, &too_long, &padded, &not_base64url] {
            assert!(PageRequest::from_query(&q(&[("cursor", bad)])).is_err(), "{bad:?}");
        }
    }

    /// What openapi/twinshop.yaml says of a cursor: exactly 32 characters of
    /// `A-Z a-z 0-9 - _`. Every one of them is accepted.
    #[test]
    fn every_cursor_the_document_allows_is_accepted() {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut cursors = vec!["A".repeat(CURSOR_LEN), "_".repeat(CURSOR_LEN), "-".repeat(CURSOR_LEN)];
        for _ in 0..2_000 {
            let cursor = (0..CURSOR_LEN)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    char::from(ALPHABET[(seed % 64) as usize])
                })
                .collect();
            cursors.push(cursor);
        }
        for cursor in cursors {
            let page =
                PageRequest::from_query(&q(&[("cursor", &cursor)])).unwrap_or_else(|e| panic!("{cursor}: {e:?}"));
            let position = page.after.expect("a position");
            let micros = position.created_at.unix_timestamp_nanos() / 1_000;
            assert!((0..=253_402_300_799_999_999).contains(&micros), "{cursor}: {micros} is clamped");
        }
    }

    #[test]
    fn a_cursor_is_32_base64url_characters() {
        let p = Position { created_at: OffsetDateTime::now_utc(), id: Uuid::now_v7() };
        let cursor = p.encode();
        assert_eq!(cursor.len(), CURSOR_LEN);
        assert!(cursor.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{cursor}");
    }

    #[test]
    fn an_overfetched_page_knows_whether_more_follow() {
        let pos = |i: &i64| Position { created_at: OffsetDateTime::UNIX_EPOCH, id: Uuid::from_u128(*i as u128) };
        let page = Page::from_overfetch(vec![5, 4, 3], 2, pos);
        assert_eq!(page.items, vec![5, 4]);
        assert_eq!(page.next.map(|p| p.id), Some(Uuid::from_u128(4)));
        let last = Page::from_overfetch(vec![2, 1], 2, pos);
        assert_eq!(last.next, None);
    }
}

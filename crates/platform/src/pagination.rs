//! Cursor pagination, newest first, as docs/api.md specifies: ordered by
//! `(created_at, id)` descending; `limit` 1–100 (default 20); the cursor is
//! opaque (base64url of the last item's position); a malformed cursor or
//! limit is `validation_failed`.

use std::collections::HashMap;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{problem::Problem, validation::FieldErrors};

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

/// Where a page ends: the `(created_at, id)` of its last item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub created_at: OffsetDateTime,
    pub id: Uuid,
}

impl Position {
    pub fn encode(&self) -> String {
        let micros = self.created_at.unix_timestamp_nanos() / 1_000;
        URL_SAFE_NO_PAD.encode(format!("{micros}.{}", self.id))
    }

    pub fn decode(cursor: &str) -> Option<Self> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
        let (micros, id) = raw.split_once('.')?;
        let micros: i128 = micros.parse().ok()?;
        let created_at = OffsetDateTime::from_unix_timestamp_nanos(micros.checked_mul(1_000)?).ok()?;
        Some(Self { created_at, id: Uuid::parse_str(id).ok()? })
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
        assert!(PageRequest::from_query(&q(&[("cursor", "!!")])).is_err());
        assert!(PageRequest::from_query(&q(&[("cursor", &URL_SAFE_NO_PAD.encode("1.not-a-uuid"))])).is_err());
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

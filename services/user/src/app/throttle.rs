//! A bound on login attempts per account: the slowest thing a client can
//! make the shop do is check a password (tens of milliseconds of a core,
//! [`super::passwords`]), so guessing one account's password must be slow
//! and must not take the hashing cores from everyone else (OWASP API4,
//! unrestricted resource consumption; OWASP's Authentication Cheat Sheet,
//! "login throttling").
//!
//! Each account (an email in its canonical form; every malformed email
//! shares one account, as none of them can ever succeed) has a bucket of
//! `attempts` tokens that refills by one every `refill`. An attempt takes a
//! token *before* the password is checked, and a successful one gives it
//! back: only failures count, and no more attempts are checked at once
//! than there are tokens. With an empty bucket the attempt is refused
//! unchecked (even with the right password, or guessing would go on), and
//! the refusal says when the next token comes.
//!
//! It limits per account, in the process that checks passwords: a
//! distributed guesser is slowed down for each account it targets. A flood
//! of logins for many accounts is bounded by the hashing semaphore and the
//! process's bound on requests in flight; a limit per client address
//! belongs at the edge (nginx `limit_req`), not there yet. The lock-out a
//! throttle allows (an attacker keeps an account's bucket empty) is
//! bounded: the owner gets one attempt per `refill`, the same as the
//! attacker.
//!
//! Memory is bounded: buckets that have refilled carry no information and
//! are dropped when the table reaches [`MAX_ACCOUNTS`]; if it is still full
//! (that many accounts under attack at once), a new account is not
//! throttled, and the hashing semaphore and the edge still bound the cost.
//!
//! Pure state and arithmetic: time is passed in, nothing here does I/O.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

/// Accounts tracked at once, at most (about 100 bytes each).
pub const MAX_ACCOUNTS: usize = 100_000;

/// Attempts per account and window (see the module docs).
#[derive(Debug, Clone)]
pub struct LoginThrottle {
    attempts: u32,
    refill: Duration,
    table: Arc<Mutex<Table>>,
}

/// The buckets, and when the refilled ones were last dropped.
#[derive(Debug, Default)]
struct Table {
    buckets: HashMap<String, Bucket>,
    pruned_at: Option<Instant>,
}

/// One account's tokens at `at`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// An attempt that may be checked; give it back with
/// [`LoginThrottle::succeeded`] if the password was right.
#[derive(Debug)]
#[must_use]
pub struct Attempt {
    key: String,
}

/// The attempt was refused unchecked; the next token comes after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: Duration,
}

impl LoginThrottle {
    /// `attempts` in a burst per account (at least 1), one more every `refill`.
    pub fn new(attempts: u32, refill: Duration) -> Self {
        Self { attempts: attempts.max(1), refill, table: Arc::default() }
    }

    /// Takes a token of `account` (`None`: a malformed email) at `now`.
    pub fn attempt(&self, account: Option<&str>, now: Instant) -> Result<Attempt, Throttled> {
        let key = account.unwrap_or("").to_owned();
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if table.buckets.len() >= MAX_ACCOUNTS && !table.buckets.contains_key(&key) {
            // A full table is swept at most once a second, so a flood of
            // new accounts costs no sweep per attempt.
            if table.pruned_at.is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1)) {
                table.pruned_at = Some(now);
                table.buckets.retain(|_, b| self.tokens(b, now) < f64::from(self.attempts));
            }
            if table.buckets.len() >= MAX_ACCOUNTS {
                return Ok(Attempt { key });
            }
        }
        let full = Bucket { tokens: f64::from(self.attempts), at: now };
        let bucket = table.buckets.entry(key.clone()).or_insert(full);
        let tokens = self.tokens(bucket, now);
        if tokens < 1.0 {
            let retry_after = self.refill.mul_f64(1.0 - tokens);
            return Err(Throttled { retry_after });
        }
        *bucket = Bucket { tokens: tokens - 1.0, at: now };
        Ok(Attempt { key })
    }

    /// The password was right: the attempt's token comes back.
    pub fn succeeded(&self, attempt: Attempt) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = table.buckets.get_mut(&attempt.key) {
            bucket.tokens = (bucket.tokens + 1.0).min(f64::from(self.attempts));
        }
    }

    /// `bucket`'s tokens at `now`, refilled since it was last touched.
    fn tokens(&self, bucket: &Bucket, now: Instant) -> f64 {
        let refilled = now.saturating_duration_since(bucket.at).as_secs_f64() / self.refill.as_secs_f64().max(1e-9);
        (bucket.tokens + refilled).min(f64::from(self.attempts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn ten_failures_empty_the_bucket_and_the_eleventh_is_told_when_to_come_back() {
        let throttle = LoginThrottle::new(10, MINUTE);
        let t0 = Instant::now();
        for i in 0..10 {
            let _failed = throttle.attempt(Some("ann@example.com"), t0).unwrap_or_else(|_| panic!("attempt {i}"));
        }
        let refused = throttle.attempt(Some("ann@example.com"), t0).expect_err("the eleventh");
        assert_eq!(refused.retry_after, MINUTE);
        let later = throttle.attempt(Some("ann@example.com"), t0 + Duration::from_secs(45)).expect_err("45 s later");
        assert_eq!(refused.retry_after - later.retry_after, Duration::from_secs(45));
        assert!(throttle.attempt(Some("ann@example.com"), t0 + MINUTE).is_ok(), "one more per minute");
        assert!(throttle.attempt(Some("ann@example.com"), t0 + MINUTE).is_err());
        assert!(throttle.attempt(Some("bob@example.com"), t0).is_ok(), "another account is not affected");
    }

    #[test]
    fn a_successful_attempt_does_not_count() {
        let throttle = LoginThrottle::new(2, MINUTE);
        let t0 = Instant::now();
        for _ in 0..100 {
            let attempt = throttle.attempt(Some("ann@example.com"), t0).expect("never throttled");
            throttle.succeeded(attempt);
        }
    }

    #[test]
    fn attempts_checked_at_once_never_exceed_the_tokens() {
        let throttle = LoginThrottle::new(3, MINUTE);
        let t0 = Instant::now();
        let held: Vec<_> = (0..3).map(|_| throttle.attempt(None, t0).expect("a token")).collect();
        assert!(throttle.attempt(None, t0).is_err(), "malformed emails share one bucket");
        drop(held);
    }

    #[test]
    fn the_table_of_accounts_stays_bounded() {
        let throttle = LoginThrottle::new(1, MINUTE);
        let t0 = Instant::now();
        for i in 0..MAX_ACCOUNTS + 10 {
            let _ = throttle.attempt(Some(&format!("u{i}@example.com")), t0);
        }
        let len = throttle.table.lock().map(|t| t.buckets.len()).unwrap_or(0);
        assert_eq!(len, MAX_ACCOUNTS);
        // Once the first ones have refilled, they make room.
        assert!(throttle.attempt(Some("late@example.com"), t0 + MINUTE).is_ok());
        let len = throttle.table.lock().map(|t| t.buckets.len()).unwrap_or(0);
        assert_eq!(len, 1, "every refilled bucket was dropped");
    }
}

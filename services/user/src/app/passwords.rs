//! Password hashing with argon2id, bounded.
//!
//! Parameters are argon2's defaults, the OWASP recommendation for servers
//! (19 MiB memory, 2 passes, 1 lane). Each hash holds ~19 MiB and a core
//! for tens of milliseconds, so at most `concurrency` run at once (others
//! wait their turn): a login flood queues instead of exhausting memory.
//! Unknown emails are checked against a dummy hash with the same parameters,
//! so they cost the same time as wrong passwords.

use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString, rand_core::OsRng},
};
use tokio::sync::Semaphore;

use crate::domain::Password;

/// An argon2id hash (default parameters) of a random password nobody knows.
/// Verifying against it costs exactly what a real verification costs;
/// being a constant, it costs nothing at start-up.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$hbM9sBh2sT/IJ3KSoAg/DBcedgfOFUtuMQ32BHz8nWA";

#[derive(Debug, Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
}

fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow!("hashing: {e}"))
}

fn verify_blocking(password: &str, hash: &str) -> anyhow::Result<bool> {
    let parsed = PasswordHash::new(hash).map_err(|e| anyhow!("stored hash is malformed: {e}"))?;
    Ok(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

impl PasswordHasher {
    /// `concurrency` hashes at once at most (0 = one per CPU core).
    pub fn new(concurrency: usize) -> anyhow::Result<Self> {
        let n =
            if concurrency == 0 { std::thread::available_parallelism().map_or(2, usize::from) } else { concurrency };
        Ok(Self { permits: Arc::new(Semaphore::new(n)) })
    }

    pub async fn hash(&self, password: Password) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        tokio::task::spawn_blocking(move || hash_blocking(password.expose())).await.context("hash task panicked")?
    }

    /// `true` if `password` matches `hash`; with no hash (unknown user) it
    /// does the same work and answers `false`.
    pub async fn verify(&self, password: Password, hash: Option<String>) -> anyhow::Result<bool> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let matches = tokio::task::spawn_blocking(move || verify_blocking(password.expose(), &hash))
            .await
            .context("verify task panicked")??;
        Ok(known && matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_nothing_else() {
        let hasher = PasswordHasher::new(1).expect("hasher");
        let pw = Password::parse("correct horse battery").expect("valid");
        let hash = hasher.hash(pw.clone()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(hasher.verify(pw.clone(), Some(hash.clone())).await.expect("verify"));
        assert!(!hasher.verify(Password::for_login("wrong horse battery"), Some(hash)).await.expect("verify"));
        assert!(!hasher.verify(pw, None).await.expect("verify"), "unknown user never matches");
    }

    #[test]
    fn the_dummy_hash_has_the_parameters_real_hashes_get() {
        let real = hash_blocking("anything at all").expect("hash");
        let params = |h: &str| h.split('$').take(4).collect::<Vec<_>>().join("$");
        assert_eq!(params(DUMMY_HASH), params(&real));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }
}

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

#[derive(Debug, Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    dummy_hash: Arc<str>,
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
        let dummy_hash = hash_blocking("twinshop dummy password for timing")?.into();
        Ok(Self { permits: Arc::new(Semaphore::new(n)), dummy_hash })
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
        let hash = hash.unwrap_or_else(|| self.dummy_hash.to_string());
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
}

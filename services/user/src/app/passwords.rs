//! Password hashing with argon2id, bounded.
//!
//! Parameters: argon2id with 7 MiB of memory, 5 passes, 1 lane, one of the
//! OWASP Password Storage Cheat Sheet's equivalent server configurations
//! (it lists m=19 MiB/t=2, 12/3, 9/4 and 7/5 as "an equal level of
//! defense", trading memory for passes). We take the low-memory end: the
//! CPU cost per hash is about the same, and the resident cost per hashing
//! slot is 7 MiB instead of 19, which is what a service with a 30 MiB
//! budget can carry. Each hash holds its memory and a core for tens of
//! milliseconds, so at most `concurrency` run at once (others wait their
//! turn): a login flood queues instead of exhausting memory. Hashes stored
//! with other parameters (argon2's 19 MiB default, say) still verify.
//! Unknown emails are checked against a dummy hash with the same parameters,
//! so they cost the same time as wrong passwords.
//!
//! Each of the `concurrency` slots owns its working memory for the life of
//! the process instead of allocating it per hash. A fresh multi-MiB
//! allocation per hash makes glibc raise its mmap threshold after the first
//! free and keep such blocks in per-thread heap arenas: a service that logs
//! users in on many threads then grows to hundreds of MiB. With the memory
//! reused, the hashing footprint is fixed at `concurrency` × 7 MiB.

use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context as _, anyhow};
use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::{Output, ParamsString, PasswordHash, SaltString, rand_core::OsRng},
};
use tokio::sync::Semaphore;

use crate::domain::Password;

/// The parameters new hashes get (see the module docs).
const PARAMS: Params = match Params::new(7 * 1024, 5, 1, None) {
    Ok(p) => p,
    Err(_) => panic!("invalid argon2 parameters"),
};

/// An argon2id hash (with [`PARAMS`]) of a random password nobody knows.
/// Verifying against it costs exactly what a real verification costs;
/// being a constant, it costs nothing at start-up.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=7168,t=5,p=1$Lyeg0w+BJ0KTMBIU2wwQIg$Au7PIdkheaWmCowyscwZ1e31zPC7wWdB8Ihi1DJDVoU";

#[derive(Debug, Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// Working memory of idle slots; at most one per permit.
    memory: Arc<Mutex<Vec<Memory>>>,
}

/// One hash's working memory, sized for the parameters new hashes get.
type Memory = Vec<Block>;

fn new_memory() -> Memory {
    vec![Block::default(); PARAMS.block_count()]
}

/// The argon2 raw output of `password` and `salt` with `params`, computed
/// in `memory` (resized if a stored hash used other parameters).
fn compute(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &[u8],
    salt: &[u8],
    memory: &mut Memory,
) -> anyhow::Result<Output> {
    memory.resize(params.block_count(), Block::default());
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let argon2 = Argon2::new(algorithm, version, params);
    Output::init_with(len, |out| {
        argon2.hash_password_into_with_memory(password, salt, out, &mut memory[..]).map_err(Into::into)
    })
    .map_err(|e| anyhow!("hashing: {e}"))
}

/// A new PHC string (`$argon2id$v=19$m=7168,t=5,p=1$salt$hash`).
fn hash_blocking(password: &str, memory: &mut Memory) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let mut raw_salt = [0u8; 64];
    let raw_salt = salt.decode_b64(&mut raw_salt).map_err(|e| anyhow!("salt: {e}"))?;
    let params = PARAMS;
    let output = compute(Algorithm::Argon2id, Version::V0x13, params.clone(), password.as_bytes(), raw_salt, memory)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| anyhow!("params: {e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `hash` (compared in constant
/// time, by `Output`'s equality).
fn verify_blocking(password: &str, hash: &str, memory: &mut Memory) -> anyhow::Result<bool> {
    let parsed = PasswordHash::new(hash).map_err(|e| anyhow!("stored hash is malformed: {e}"))?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| anyhow!("stored hash: {e}"))?;
    let version = parsed.version.map(Version::try_from).transpose().map_err(|e| anyhow!("stored hash: {e}"))?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(anyhow!("stored hash has no salt or no output"));
    };
    // Carries the stored output's length too.
    let params = Params::try_from(&parsed).map_err(|e| anyhow!("stored hash parameters: {e}"))?;
    let mut raw_salt = [0u8; 64];
    let raw_salt = salt.decode_b64(&mut raw_salt).map_err(|e| anyhow!("stored salt: {e}"))?;
    let computed = compute(algorithm, version.unwrap_or_default(), params, password.as_bytes(), raw_salt, memory)?;
    Ok(computed == expected)
}

impl PasswordHasher {
    /// `concurrency` hashes at once at most (0 = one per CPU core).
    pub fn new(concurrency: usize) -> anyhow::Result<Self> {
        let n =
            if concurrency == 0 { std::thread::available_parallelism().map_or(2, usize::from) } else { concurrency };
        Ok(Self { permits: Arc::new(Semaphore::new(n)), memory: Arc::default() })
    }

    /// Runs `work` on the blocking pool with a slot's memory, once a slot
    /// is free.
    async fn with_memory<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Memory) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        let idle = self.memory.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let pool = self.memory.clone();
        tokio::task::spawn_blocking(move || {
            let mut memory = idle.unwrap_or_else(new_memory);
            let result = work(&mut memory);
            // A hash stored with bigger parameters (argon2's 19 MiB default,
            // from before the move to 7 MiB) grew the slot: give it back.
            if memory.len() > PARAMS.block_count() {
                memory.truncate(PARAMS.block_count());
                memory.shrink_to_fit();
            }
            pool.lock().unwrap_or_else(PoisonError::into_inner).push(memory);
            result
        })
        .await
        .context("hash task panicked")?
    }

    pub async fn hash(&self, password: Password) -> anyhow::Result<String> {
        self.with_memory(move |memory| hash_blocking(password.expose(), memory)).await
    }

    /// `true` if `password` matches `hash`; with no hash (unknown user) it
    /// does the same work and answers `false`.
    pub async fn verify(&self, password: Password, hash: Option<String>) -> anyhow::Result<bool> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let matches = self.with_memory(move |memory| verify_blocking(password.expose(), &hash, memory)).await?;
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

    #[tokio::test]
    async fn a_slot_grown_by_an_older_bigger_hash_shrinks_back() {
        use argon2::password_hash::PasswordHasher as _;
        let hasher = PasswordHasher::new(1).expect("hasher");
        let salt = SaltString::generate(&mut OsRng);
        let old = Argon2::default().hash_password(b"correct horse battery", &salt).expect("hash").to_string();
        assert!(old.contains("m=19456"), "{old}");
        let pw = Password::for_login("correct horse battery");
        assert!(hasher.verify(pw, Some(old)).await.expect("verify"));
        let slots = hasher.memory.lock().expect("slots");
        assert_eq!(slots.len(), 1);
        assert_eq!(slots[0].capacity(), PARAMS.block_count());
    }

    #[test]
    fn the_dummy_hash_has_the_parameters_real_hashes_get() {
        let real = hash_blocking("anything at all", &mut new_memory()).expect("hash");
        let params = |h: &str| h.split('$').take(4).collect::<Vec<_>>().join("$");
        assert_eq!(params(DUMMY_HASH), params(&real));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn hashes_are_standard_phc_strings_that_the_argon2_crate_verifies_and_vice_versa() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let mut memory = new_memory();
        let ours = hash_blocking("correct horse battery", &mut memory).expect("hash");
        let parsed = PasswordHash::new(&ours).expect("PHC");
        // The crate reads the parameters from the PHC string.
        assert!(Argon2::default().verify_password(b"correct horse battery", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"wrong horse battery", &parsed).is_err());
        assert_eq!(Params::try_from(&parsed).expect("params").m_cost(), 7 * 1024);
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default().hash_password(b"correct horse battery", &salt).expect("hash").to_string();
        assert!(verify_blocking("correct horse battery", &theirs, &mut memory).expect("verify"));
        assert!(!verify_blocking("wrong horse battery", &theirs, &mut memory).expect("verify"));
        // `theirs` has argon2's default parameters (19 MiB, t=2): hashes
        // stored before the move to 7 MiB/t=5 still verify.
        assert!(theirs.contains("m=19456,t=2"), "{theirs}");
        // Other parameters (an older hash, say) still verify, in resized memory.
        let cheap = Argon2::from(Params::new(8 * 1024, 1, 1, None).expect("params"));
        let old = cheap.hash_password(b"correct horse battery", &salt).expect("hash").to_string();
        assert!(verify_blocking("correct horse battery", &old, &mut memory).expect("verify"));
    }
}

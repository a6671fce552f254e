//! Password hashing with Argon2id.
//!
//! Parameters: 19 MiB of memory, 2 iterations, 1 lane — the minimum OWASP's
//! Password Storage Cheat Sheet recommends for Argon2id, about 20–40 ms per
//! hash on one core of a small server (see BENCHMARKS.md). Hashes are PHC
//! strings, so parameters can be raised later without invalidating old
//! hashes. Hashing runs on the blocking pool so it never stalls the
//! executor.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Shortest password accepted.
pub const MIN_LEN: usize = 10;
/// Longest password accepted, in bytes.
pub const MAX_BYTES: usize = 1024;

fn argon2() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters"),
    )
}

/// What is wrong with a new password, if anything.
pub fn check_policy(password: &str) -> Option<String> {
    if password.chars().count() < MIN_LEN {
        Some(format!("must be at least {MIN_LEN} characters"))
    } else if password.len() > MAX_BYTES {
        Some(format!("must be at most {MAX_BYTES} bytes"))
    } else {
        None
    }
}

/// Hashes a password into a PHC string.
pub async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
    })
    .await?
}

/// Checks a password against a stored hash. With no stored hash (unknown
/// account) it still spends the time of one check, so response times do not
/// tell which accounts exist.
pub async fn verify(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let target = stored.unwrap_or_else(|| DUMMY_HASH.with(|h| h.clone()));
        match PasswordHash::new(&target) {
            Ok(parsed) => argon2().verify_password(password.as_bytes(), &parsed).is_ok() && !target.is_empty(),
            Err(_) => false,
        }
    })
    .await
    .unwrap_or(false)
}

thread_local! {
    // A real hash of a random password, so an unknown account costs as much
    // as a known one.
    static DUMMY_HASH: String = {
        let salt = SaltString::generate(&mut OsRng);
        argon2().hash_password(uuid::Uuid::new_v4().to_string().as_bytes(), &salt).map(|h| h.to_string()).unwrap_or_default()
    };
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn hashes_verify_and_are_salted() {
        let a = super::hash("correct horse battery".into()).await.expect("hash");
        let b = super::hash("correct horse battery".into()).await.expect("hash");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "every hash has its own salt");
        assert!(super::verify("correct horse battery".into(), Some(a.clone())).await);
        assert!(!super::verify("wrong horse battery".into(), Some(a)).await);
        assert!(!super::verify("anything at all".into(), None).await);
    }
}

//! The owner's password: argon2id, its parameters stored with the hash in a PHC string
//! (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), so that new parameters apply to new passwords and
//! old hashes still verify.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use ring::rand::{SecureRandom, SystemRandom};

/// Memory in KiB: 16 MiB, at 2 passes and 1 lane, is about 0.3 s on a Raspberry Pi 3
/// (BENCHMARKS.md) and stays clear of the appliance's 512 MiB.
pub const MEMORY_KIB: u32 = 16 * 1024;
pub const PASSES: u32 = 2;
pub const LANES: u32 = 1;

/// Shortest owner password accepted, in characters.
pub const MIN_LENGTH: usize = 10;

/// Longest owner password accepted, in bytes (argon2 takes any length; a form does not need more).
pub const MAX_LENGTH: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("the password is too short: use at least {MIN_LENGTH} characters")]
    TooShort,
    #[error("the password is too long: use at most {MAX_LENGTH} bytes")]
    TooLong,
    #[error("the system random number generator failed")]
    Random,
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Whether `password` may be a new owner password: at least [`MIN_LENGTH`] characters and at
/// most [`MAX_LENGTH`] bytes.
pub fn check(password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_LENGTH {
        return Err(PasswordError::TooShort);
    }
    if password.len() > MAX_LENGTH {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

/// Hashes a new owner password with a random salt; the PHC string to store.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    check(password)?;
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| PasswordError::Random)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    let hash = argon2()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the stored PHC string, with the parameters stored in it. A
/// damaged string matches nothing.
pub fn verify(stored: &str, password: &str) -> bool {
    if password.len() > MAX_LENGTH {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    argon2()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_with_their_own_parameters() {
        let stored = hash("correct horse battery").unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=16384,t=2,p=1$"),
            "{stored}"
        );
        assert!(verify(&stored, "correct horse battery"));
        assert!(!verify(&stored, "correct horse batterz"));
        assert_ne!(stored, hash("correct horse battery").unwrap(), "salted");
        assert!(!verify("not a hash", "correct horse battery"));
    }

    #[test]
    fn old_parameters_still_verify() {
        let params = Params::new(8, 1, 1, None).unwrap();
        let salt = SaltString::encode_b64(b"saltsaltsalt").unwrap();
        let old = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"an older password", &salt)
            .unwrap()
            .to_string();
        assert!(old.contains("m=8,t=1,p=1"), "{old}");
        assert!(verify(&old, "an older password"));
    }

    #[test]
    fn short_and_huge_passwords_are_refused() {
        assert_eq!(hash("short"), Err(PasswordError::TooShort));
        assert_eq!(
            hash(&"x".repeat(MAX_LENGTH + 1)),
            Err(PasswordError::TooLong)
        );
    }
}

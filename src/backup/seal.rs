//! Passphrase encryption of a backup: argon2id derives a key from the passphrase, ring's
//! ChaCha20-Poly1305 encrypts and authenticates the whole backup text with it.
//!
//! ring is there for TLS already; argon2 (RustCrypto) is the standard memory-hard derivation for
//! a secret a person chose. The `age` crate would do both, but brings its own X25519, scrypt and
//! localisation stack for a format nobody here needs to read outside hotline.

use argon2::{Algorithm, Argon2, Params, Version};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::{BackupError, hex};

/// RFC 9106's second recommended setting (64 MiB, 3 passes), with one lane: a second or two on
/// a Raspberry Pi 3, for each backup and restore.
const MEMORY_KIB: u32 = 64 * 1024;
const ITERATIONS: u32 = 3;
const LANES: u32 = 1;

/// The most a file may ask for: its parameters come from the file, and must not make a restore
/// on a board with 512 MiB run out of memory (4 times what hotline writes, for later versions).
const MAX_MEMORY_KIB: u32 = 4 * MEMORY_KIB;
const MAX_ITERATIONS: u32 = 16;
const MAX_LANES: u32 = 8;

const SALT_LEN: usize = 16;

/// The `[encrypted]` table of an encrypted backup file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sealed {
    /// Always `argon2id`.
    pub kdf: String,
    pub memory_kib: u32,
    pub iterations: u32,
    pub lanes: u32,
    pub salt: String,
    /// Always `chacha20-poly1305`.
    pub cipher: String,
    pub nonce: String,
    /// The backup's TOML text, encrypted, then its 16-byte tag; hex.
    pub ciphertext: String,
}

/// Encrypts `plain` under `passphrase` with a new salt and nonce.
pub fn seal(plain: &[u8], passphrase: &str) -> Result<Sealed, BackupError> {
    let rng = SystemRandom::new();
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut salt).map_err(|_| BackupError::Random)?;
    rng.fill(&mut nonce).map_err(|_| BackupError::Random)?;
    let key = derive(passphrase, &salt, MEMORY_KIB, ITERATIONS, LANES)?;
    let mut data = plain.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        aad(MEMORY_KIB, ITERATIONS, LANES),
        &mut data,
    )
    .map_err(|_| BackupError::Invalid("cannot encrypt".into()))?;
    Ok(Sealed {
        kdf: "argon2id".into(),
        memory_kib: MEMORY_KIB,
        iterations: ITERATIONS,
        lanes: LANES,
        salt: hex::encode(&salt),
        cipher: "chacha20-poly1305".into(),
        nonce: hex::encode(&nonce),
        ciphertext: hex::encode(&data),
    })
}

/// Decrypts; a wrong passphrase and an altered file are the same error, as the tag tells them
/// apart from neither.
pub fn open(sealed: &Sealed, passphrase: &str) -> Result<Vec<u8>, BackupError> {
    let invalid = |what: &str| BackupError::Invalid(format!("the encryption header: {what}"));
    if sealed.kdf != "argon2id" || sealed.cipher != "chacha20-poly1305" {
        return Err(invalid("unknown kdf or cipher, from a newer hotline?"));
    }
    if sealed.memory_kib > MAX_MEMORY_KIB
        || sealed.iterations > MAX_ITERATIONS
        || sealed.lanes > MAX_LANES
    {
        return Err(invalid(&format!(
            "argon2 parameters beyond what a restore allows ({} MiB, {MAX_ITERATIONS} passes, \
             {MAX_LANES} lanes)",
            MAX_MEMORY_KIB / 1024
        )));
    }
    let salt: [u8; SALT_LEN] = hex::decode_array(&sealed.salt).ok_or(invalid("salt"))?;
    let nonce: [u8; NONCE_LEN] = hex::decode_array(&sealed.nonce).ok_or(invalid("nonce"))?;
    let mut data = hex::decode(&sealed.ciphertext).ok_or(invalid("ciphertext"))?;
    let key = derive(
        passphrase,
        &salt,
        sealed.memory_kib,
        sealed.iterations,
        sealed.lanes,
    )?;
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            aad(sealed.memory_kib, sealed.iterations, sealed.lanes),
            &mut data,
        )
        .map_err(|_| BackupError::WrongPassphrase)?;
    Ok(plain.to_vec())
}

/// The parameters are authenticated too: changing them in the file fails like a wrong key.
fn aad(memory_kib: u32, iterations: u32, lanes: u32) -> Aad<String> {
    Aad::from(format!(
        "hotline backup argon2id m={memory_kib} t={iterations} p={lanes} chacha20-poly1305"
    ))
}

fn derive(
    passphrase: &str,
    salt: &[u8],
    memory_kib: u32,
    iterations: u32,
    lanes: u32,
) -> Result<LessSafeKey, BackupError> {
    let params = Params::new(memory_kib, iterations, lanes, Some(32))
        .map_err(|e| BackupError::Invalid(format!("argon2 parameters: {e}")))?;
    let mut key = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .map_err(|e| BackupError::Invalid(format!("argon2: {e}")))?;
    let key = UnboundKey::new(&CHACHA20_POLY1305, &key)
        .map_err(|_| BackupError::Invalid("key length".into()))?;
    Ok(LessSafeKey::new(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_opens_with_its_passphrase_only() {
        let sealed = seal(b"users = []", "correct horse").unwrap();
        assert!(!sealed.ciphertext.contains(&hex::encode(b"users")));
        assert_eq!(open(&sealed, "correct horse").unwrap(), b"users = []");
        assert!(matches!(
            open(&sealed, "wrong horse"),
            Err(BackupError::WrongPassphrase)
        ));

        // Altered ciphertext, or parameters lowered to speed up guessing, fail the same way.
        let mut altered = sealed.clone();
        let flipped = if sealed.ciphertext.starts_with('0') {
            "1"
        } else {
            "0"
        };
        altered.ciphertext.replace_range(0..1, flipped);
        assert!(matches!(
            open(&altered, "correct horse"),
            Err(BackupError::WrongPassphrase)
        ));
        let mut weaker = sealed.clone();
        weaker.iterations = 1;
        assert!(matches!(
            open(&weaker, "correct horse"),
            Err(BackupError::WrongPassphrase)
        ));

        let mut greedy = sealed;
        greedy.memory_kib = MAX_MEMORY_KIB + 1;
        let error = open(&greedy, "correct horse").unwrap_err();
        assert!(error.to_string().contains("argon2 parameters"), "{error}");
    }
}

//! Passwords that hotline can recompute, so that a vendor file can carry them, while the
//! database keeps only their HA1s.
//!
//! Each extension's password is derived from the *password key*, 32 random bytes in the file
//! [`DataDir::password_key`] (owner-only, outside the database), and the extension's random
//! 16-byte salt in the database: HMAC-SHA256(key, label ‖ salt ‖ extension) stretched into
//! [`PASSWORD_DIGITS`] decimal digits. A new salt makes a new password. The database file alone
//! gives no password away; the key file alone neither. A backup holds both, so that the links
//! serve the same passwords after a restore: it is owner-only, and encrypted on request.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ring::hmac;
use ring::rand::SecureRandom;

use crate::core::user::{Extension, password_from};
use crate::data_dir::DataDir;
use crate::store::provisioning::PasswordSalt;

/// The password key's length in bytes.
pub const KEY_LEN: usize = 32;

/// Domain separation: the key derives nothing else.
const LABEL: &[u8] = b"hotline SIP password v1\0";

#[derive(Debug, thiserror::Error)]
pub enum PasswordKeyError {
    #[error(
        "{} is {length} bytes, not {KEY_LEN}: it is damaged. Restore it from a backup, or \
         remove it and give every extension a new password with `hotline user passwd`",
        path.display()
    )]
    Damaged { path: PathBuf, length: usize },
    #[error("cannot read or create {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("the system random number generator failed")]
    Random,
}

/// The per-install secret passwords are derived from.
#[derive(Clone)]
pub struct PasswordKey(hmac::Key);

impl PasswordKey {
    /// Reads the key file in `data_dir`, or creates it (mode 0600) with a random key. Creation is
    /// atomic: a complete file appears under its name, or none, even with two processes racing.
    pub fn load_or_create(
        data_dir: &Path,
        rng: &dyn SecureRandom,
    ) -> Result<PasswordKey, PasswordKeyError> {
        let path = DataDir::new(data_dir).password_key();
        let io = |source| PasswordKeyError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::File::open(&path) {
            Ok(file) => return read(&path, file),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(io(error)),
        }
        let mut key = [0u8; KEY_LEN];
        rng.fill(&mut key).map_err(|_| PasswordKeyError::Random)?;
        let temporary = path.with_extension(format!("key.{}", std::process::id()));
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(io)?;
        file.write_all(&key)
            .and_then(|()| file.sync_all())
            .map_err(io)?;
        // A hard link fails if the name exists: whoever links first wins, the other reads theirs.
        let linked = std::fs::hard_link(&temporary, &path);
        let _ = std::fs::remove_file(&temporary);
        match linked {
            Ok(()) => Ok(PasswordKey(hmac::Key::new(hmac::HMAC_SHA256, &key))),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                read(&path, std::fs::File::open(&path).map_err(io)?)
            }
            Err(error) => Err(io(error)),
        }
    }

    /// The password of `extension` with `salt`.
    pub fn password(&self, extension: &Extension, salt: &PasswordSalt) -> String {
        let blocks = (0u32..).flat_map(|counter| {
            let mut context = hmac::Context::with_key(&self.0);
            for part in [
                LABEL,
                &salt[..],
                extension.as_str().as_bytes(),
                &counter.to_be_bytes(),
            ] {
                context.update(part);
            }
            context.sign().as_ref().to_vec()
        });
        password_from(blocks)
    }
}

fn read(path: &Path, file: std::fs::File) -> Result<PasswordKey, PasswordKeyError> {
    let mut key = Vec::with_capacity(KEY_LEN);
    file.take(KEY_LEN as u64 + 1)
        .read_to_end(&mut key)
        .map_err(|source| PasswordKeyError::Io {
            path: path.to_owned(),
            source,
        })?;
    if key.len() != KEY_LEN {
        return Err(PasswordKeyError::Damaged {
            path: path.to_owned(),
            length: key.len(),
        });
    }
    Ok(PasswordKey(hmac::Key::new(hmac::HMAC_SHA256, &key)))
}

/// A new random salt: a new password.
pub fn new_salt(rng: &dyn SecureRandom) -> Result<PasswordSalt, ring::error::Unspecified> {
    let mut salt = [0u8; 16];
    rng.fill(&mut salt)?;
    Ok(salt)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use ring::rand::SystemRandom;

    use super::*;
    use crate::core::user::PASSWORD_DIGITS;

    #[test]
    fn the_same_key_and_salt_give_the_same_password() {
        let dir = tempfile::tempdir().unwrap();
        let rng = SystemRandom::new();
        let key = PasswordKey::load_or_create(dir.path(), &rng).unwrap();
        let path = DataDir::new(dir.path()).password_key();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let ext = Extension::parse("1000").unwrap();
        let salt = new_salt(&rng).unwrap();
        let password = key.password(&ext, &salt);
        assert_eq!(password.len(), PASSWORD_DIGITS);
        assert!(password.bytes().all(|b| b.is_ascii_digit()));

        let again = PasswordKey::load_or_create(dir.path(), &rng).unwrap();
        assert_eq!(again.password(&ext, &salt), password);
        // Another salt, extension or key: another password.
        assert_ne!(key.password(&ext, &new_salt(&rng).unwrap()), password);
        assert_ne!(
            key.password(&Extension::parse("1001").unwrap(), &salt),
            password
        );
        let other = tempfile::tempdir().unwrap();
        let other = PasswordKey::load_or_create(other.path(), &rng).unwrap();
        assert_ne!(other.password(&ext, &salt), password);
    }

    #[test]
    fn a_damaged_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(DataDir::new(dir.path()).password_key(), b"short").unwrap();
        let error = PasswordKey::load_or_create(dir.path(), &SystemRandom::new())
            .err()
            .unwrap();
        assert!(matches!(error, PasswordKeyError::Damaged { length: 5, .. }));
        assert!(error.to_string().contains("hotline user passwd"), "{error}");
    }
}

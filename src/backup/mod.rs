//! `hotline backup` and `hotline restore`: everything a new SD card needs to become the old
//! board again, in one TOML file.
//!
//! A backup holds the database's records ([`Records`]: users with their HA1 hashes, bans,
//! bindings, provisioning salts and link hashes, and every secret: the install secret and the
//! owner's password hash), the password key that provisioning passwords are derived from, the
//! configuration file's text, and the files of the data directory's `tls/` (certificate, key,
//! ACME account) and of `tls.certificate` and `tls.private_key`. It is written owner-only
//! (0600), optionally encrypted with a passphrase ([`seal`]). Restored on a new card, every
//! phone registers again with its old password, the owner logs in with theirs, and every
//! provisioning link serves what it served before.
//!
//! `schema_version` is the backup's version ([`VERSION`]). A backup from a newer version is
//! refused before anything is touched; one from an older version is read into the current
//! records ([`migrate`]), and the restore says what it could not bring back.

mod hex;
mod migrate;
pub mod passphrase;
pub mod records;
mod report;
mod restore;
mod seal;
mod take;

use std::io::Read as _;
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

pub use migrate::Missing;
pub use records::{BanRecord, BindingRecord, ProvisioningRecord, Records, UserRecord};
pub use report::{restored_summary, summary};
pub use restore::{Restore, Restored, restore};
pub use take::take;

/// The version of the backups this hotline writes. Versions 1 and 2 followed the database
/// schema of the same number and held neither the owner's password, nor provisioning, nor the
/// password key; 3 holds them.
pub const VERSION: u64 = 3;

/// The largest backup file read: a network of some thousand users and its certificates fit in a
/// few MiB.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// The first line of every backup file, so that `head` tells what it is.
const HEADER: &str = "# hotline backup: restore with `hotline restore FILE`.\n";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "this backup was made by a newer hotline (backup version {found}; this hotline reads \
         versions up to {supported}): install that hotline or a newer one, then restore"
    )]
    TooNew { found: u64, supported: u64 },
    #[error(
        "the backup would be {bytes} bytes, more than `hotline restore` reads \
         ({MAX_FILE_BYTES}){}",
        if *.encrypted {
            ": encryption doubles the size, so try without --encrypt and keep the file safe \
             yourself"
        } else {
            ""
        }
    )]
    TooLarge { bytes: usize, encrypted: bool },
    #[error("the passphrase is wrong, or the backup file was altered")]
    WrongPassphrase,
    #[error("the backup is encrypted: give its passphrase")]
    NeedPassphrase,
    #[error("the backup is not valid: {0}")]
    Invalid(String),
    #[error("the system random number generator failed")]
    Random,
}

/// The contents of a backup file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    pub schema_version: u64,
    /// The hotline that wrote it, for the person reading the file.
    pub hotline_version: String,
    /// When, in UTC.
    pub created: String,
    /// The configuration file's text; absent when the server ran on the built-in defaults.
    #[serde(default)]
    pub config: Option<String>,
    /// The password key ([`crate::data_dir::DataDir::password_key`]) in hex: with the salts in
    /// the records, it gives every provisioned extension its password. Absent before version 3.
    #[serde(default)]
    pub password_key: Option<String>,
    #[serde(default)]
    pub records: Records,
    #[serde(default)]
    pub files: Vec<DataFile>,
}

/// A file to put back: relative paths are in the data directory, absolute ones are where the
/// configuration's `tls.certificate` and `tls.private_key` name them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataFile {
    pub path: String,
    /// Permission bits, such as 0o600 (384).
    pub mode: u32,
    /// Hex.
    pub contents: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    encrypted: seal::Sealed,
}

impl Backup {
    /// The file's text, encrypted under `passphrase` when there is one. Refuses a file larger
    /// than a restore reads ([`MAX_FILE_BYTES`]).
    pub fn encode(&self, passphrase: Option<&str>) -> Result<String, BackupError> {
        let plain = format!("{HEADER}{}", to_toml(self)?);
        let text = match passphrase {
            None => plain,
            Some(passphrase) => {
                let envelope = Envelope {
                    encrypted: seal::seal(plain.as_bytes(), passphrase)?,
                };
                format!(
                    "{HEADER}# Encrypted with a passphrase: `hotline restore` asks for it.\n{}",
                    to_toml(&envelope)?
                )
            }
        };
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(BackupError::TooLarge {
                bytes: text.len(),
                encrypted: passphrase.is_some(),
            });
        }
        Ok(text)
    }

    /// Reads a backup file's text; `passphrase` is needed if it is encrypted
    /// ([`Backup::is_encrypted`]).
    pub fn decode(text: &str, passphrase: Option<&str>) -> Result<Backup, BackupError> {
        let mut table = parse(text)?;
        if table.contains_key("encrypted") {
            let envelope: Envelope = table.try_into().map_err(invalid)?;
            let passphrase = passphrase.ok_or(BackupError::NeedPassphrase)?;
            let plain = seal::open(&envelope.encrypted, passphrase)?;
            let plain = String::from_utf8(plain)
                .map_err(|_| BackupError::Invalid("the decrypted text is not UTF-8".into()))?;
            table = parse(&plain)?;
        }
        // Checked before the rest, which a newer hotline may have changed.
        let found = match table.get("schema_version") {
            Some(toml::Value::Integer(version)) if *version > 0 => *version as u64,
            _ => {
                return Err(BackupError::Invalid(
                    "no schema_version: this is not a hotline backup".into(),
                ));
            }
        };
        if found > VERSION {
            return Err(BackupError::TooNew {
                found,
                supported: VERSION,
            });
        }
        if found < VERSION {
            migrate::records(&mut table);
        }
        table.try_into().map_err(invalid)
    }

    /// Whether `text` is an encrypted backup (which needs a passphrase to restore).
    pub fn is_encrypted(text: &str) -> bool {
        parse(text).is_ok_and(|table| table.contains_key("encrypted"))
    }
}

/// Writes the file owner-only (0600), in one step: a crash leaves the old file or the new one.
pub fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    crate::atomic_file::write(path, text.as_bytes(), 0o600)
}

/// Reads a backup file, refusing one larger than [`MAX_FILE_BYTES`].
pub fn read_file(path: &Path) -> anyhow::Result<String> {
    let cannot = || format!("cannot read the backup {}", path.display());
    let file = std::fs::File::open(path).with_context(cannot)?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(cannot)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        anyhow::bail!(
            "{} is larger than {MAX_FILE_BYTES} bytes: not a hotline backup",
            path.display()
        );
    }
    Ok(text)
}

fn parse(text: &str) -> Result<toml::Table, BackupError> {
    text.parse::<toml::Table>()
        .map_err(|e| BackupError::Invalid(format!("not a hotline backup: {}", e.message())))
}

fn to_toml<T: Serialize>(value: &T) -> Result<String, BackupError> {
    toml::to_string(value).map_err(|e| BackupError::Invalid(format!("cannot write TOML: {e}")))
}

fn invalid(error: toml::de::Error) -> BackupError {
    BackupError::Invalid(error.message().to_owned())
}

#[cfg(test)]
mod tests;

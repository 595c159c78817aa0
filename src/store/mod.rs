//! Durable state in one redb file: users, bindings, bans, the per-install secret.
//!
//! Schema version 2, one redb table each (key → value):
//!
//! - `meta`: `&str → u64`. `"schema_version"` → 2, written when the file is created and checked
//!   on every open, so that an older hotline refuses a file a newer one has migrated.
//! - `secrets`: `&str → &[u8]`. `"install"` → the 32 random bytes of [`Store::install_secret`];
//!   `"owner_password"` → the owner's argon2id PHC string (UTF-8), once set.
//! - `users`: extension `&str` → `(display_name: &str, realm: &str, ha1_md5: &[u8] (16 bytes),
//!   ha1_sha256: &[u8] (32 bytes))`.
//! - `bindings`: `(extension: &str, contact: &str)` → `(expires_at: u64, call_id: &str, cseq: u32,
//!   transport: u8, source: &str)`. Transport 0 is UDP, 1 TCP, 2 TLS; the source is a
//!   [`std::net::SocketAddr`] as text (`[2001:db8::5]:5060`, which keeps an IPv6 scope id).
//! - `bans`: scope `&str` (`2001:db8::66/128`, `2001:db8:1:2::/64`) → `(until: u64 (Unix
//!   milliseconds), reason: &str)`. Added to version 1 without a new version: a file written
//!   before it simply has no `bans` table (read as no bans, created on the first write), and a
//!   hotline that predates it ignores the table.
//! - `provisioning` (version 2): extension `&str` → `(password_salt: &[u8] (16 bytes, or empty
//!   for a password from before version 2), link_hash: &[u8] (32 bytes: SHA-256 of the
//!   provisioning link's token, or empty))`. See [`provisioning`].
//!
//! A version 1 file is migrated on open: the `provisioning` table is created empty and the
//! version set to 2, in one transaction. Its users keep their passwords.
//!
//! Every write is one transaction committed with [`Durability::Immediate`]: one fsync, on disk
//! when the call returns. Bindings are written in batches by [`Store::save_bindings`] so that
//! registration refreshes do not cost one fsync each.
//!
//! A file damaged outside redb fails its page checksums when opened (see [`Store::open`]), and
//! every value is validated as it is decoded, so bad content is an error, not a panic.

mod bans;
mod bindings;
mod owner;
pub mod provisioning;
mod snapshot;
mod users;

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use redb::backends::FileBackend;
use redb::{
    Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, TableDefinition,
    TableError, WriteTransaction,
};
use ring::rand::{SecureRandom, SystemRandom};

use crate::core::user::Extension;

pub use owner::OWNER_PASSWORD_KEY;
pub use snapshot::Snapshot;

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: u64 = 2;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const SCHEMA_VERSION_KEY: &str = "schema_version";
const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
/// The name of the install secret's row in `secrets`.
pub const INSTALL_SECRET_KEY: &str = "install";

/// extension → (display name, realm, HA1 MD5, HA1 SHA-256).
type UserValue = (&'static str, &'static str, &'static [u8], &'static [u8]);
const USERS: TableDefinition<&str, UserValue> = TableDefinition::new("users");

/// (extension, contact) → (expiry in Unix milliseconds, Call-ID, CSeq, transport, source).
type BindingKey = (&'static str, &'static str);
type BindingValue = (u64, &'static str, u32, u8, &'static str);
const BINDINGS: TableDefinition<BindingKey, BindingValue> = TableDefinition::new("bindings");

/// extension → (password salt: 16 bytes, or empty for a password from before provisioning;
/// link hash: 32 bytes, or empty without a link).
type ProvisioningValue = (&'static [u8], &'static [u8]);
const PROVISIONING: TableDefinition<&str, ProvisioningValue> = TableDefinition::new("provisioning");

/// scope (`2001:db8::66/128`, `2001:db8:1:2::/64`) → (end in Unix milliseconds, reason).
type BanValue = (u64, &'static str);
const BANS: TableDefinition<&str, BanValue> = TableDefinition::new("bans");

/// redb caches up to 1 GiB by default; the whole database of a small network is far smaller, and
/// the appliance has 512 MiB.
const CACHE_BYTES: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{} is in use by another process (is `hotline serve` running?)", path.display())]
    Locked { path: PathBuf },
    #[error(
        "the database has schema version {found}, but this hotline knows only versions up to \
         {supported}: run the newer hotline that wrote it"
    )]
    SchemaTooNew { found: u64, supported: u64 },
    #[error("extension {0} already exists")]
    UserExists(Extension),
    #[error("there is no user with extension {0}")]
    NoSuchUser(Extension),
    #[error("the database is corrupt: {0}")]
    Corrupt(String),
    #[error("cannot open {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("the system random number generator failed")]
    Random,
    #[error("database error: {0}")]
    Database(#[source] redb::Error),
}

impl From<redb::Error> for StoreError {
    fn from(error: redb::Error) -> StoreError {
        use redb::Error::*;
        // A table of the wrong type or a missing one means the file does not hold the schema its
        // version claims.
        if matches!(
            error,
            Corrupted(_)
                | TableTypeMismatch { .. }
                | TableIsMultimap(_)
                | TableIsNotMultimap(_)
                | TypeDefinitionChanged { .. }
                | TableDoesNotExist(_)
        ) {
            StoreError::Corrupt(error.to_string())
        } else {
            StoreError::Database(error)
        }
    }
}

macro_rules! from_redb {
    ($($error:ty),+) => {$(
        impl From<$error> for StoreError {
            fn from(error: $error) -> StoreError {
                StoreError::from(redb::Error::from(error))
            }
        }
    )+};
}

from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// The database of one hotline installation. redb lets one process at a time open the file.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens the database at `path`, creating it (mode 0600: it holds the password hashes) if it
    /// does not exist.
    ///
    /// Every open verifies the checksum of every page, which is quick for a database this size
    /// and turns a file damaged outside redb into [`StoreError::Corrupt`] rather than a panic.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|source| StoreError::Io {
                path: path.to_owned(),
                source,
            })?;
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .set_check_integrity_on_open(true)
            .create_with_backend(FileBackend::new(file)?)
            .map_err(|error| match error {
                DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
                    StoreError::Locked {
                        path: path.to_owned(),
                    }
                }
                DatabaseError::Storage(redb::StorageError::Io(io))
                    if io.kind() == io::ErrorKind::InvalidData =>
                {
                    StoreError::Corrupt(format!("{} is not a redb database: {io}", path.display()))
                }
                other => other.into(),
            })?;
        let store = Store { db };
        store.check_schema()?;
        Ok(store)
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        let found = {
            let txn = self.db.begin_read()?;
            match txn.open_table(META) {
                Ok(meta) => meta.get(SCHEMA_VERSION_KEY)?.map(|v| v.value()),
                Err(TableError::TableDoesNotExist(_)) => None,
                Err(error) => return Err(error.into()),
            }
        };
        match found {
            Some(SCHEMA_VERSION) => Ok(()),
            Some(1) => self.migrate_from_1(),
            Some(found) if found > SCHEMA_VERSION => Err(StoreError::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            }),
            Some(found) => Err(StoreError::Corrupt(format!(
                "unknown schema version {found}"
            ))),
            None => self.initialise(),
        }
    }

    /// Version 1 to 2: adds the `provisioning` table.
    fn migrate_from_1(&self) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(PROVISIONING)?;
            txn.open_table(META)?
                .insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION)?;
            Ok(())
        })
    }

    /// Writes the current schema version and its tables into a new, empty file.
    fn initialise(&self) -> Result<(), StoreError> {
        self.write(|txn| {
            if txn.list_tables()?.next().is_some() || txn.list_multimap_tables()?.next().is_some() {
                return Err(StoreError::Corrupt(
                    "the file holds tables but no schema version: hotline did not write it".into(),
                ));
            }
            txn.open_table(META)?
                .insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION)?;
            txn.open_table(SECRETS)?;
            txn.open_table(USERS)?;
            txn.open_table(BINDINGS)?;
            txn.open_table(BANS)?;
            txn.open_table(PROVISIONING)?;
            Ok(())
        })
    }

    /// A secret of this installation, for keys that must survive restarts (such as nonces): random
    /// on the first call, the same value on every later one.
    pub fn install_secret(&self) -> Result<[u8; 32], StoreError> {
        let stored = {
            let txn = self.db.begin_read()?;
            let table = txn.open_table(SECRETS)?;
            table
                .get(INSTALL_SECRET_KEY)?
                .map(|v| decode_secret(v.value()))
                .transpose()?
        };
        if let Some(secret) = stored {
            return Ok(secret);
        }
        self.write(|txn| {
            let mut table = txn.open_table(SECRETS)?;
            // Checked again inside the write transaction: another thread may have won the race.
            let stored = table
                .get(INSTALL_SECRET_KEY)?
                .map(|v| decode_secret(v.value()))
                .transpose()?;
            if let Some(secret) = stored {
                return Ok(secret);
            }
            let mut secret = [0u8; 32];
            SystemRandom::new()
                .fill(&mut secret)
                .map_err(|_| StoreError::Random)?;
            table.insert(INSTALL_SECRET_KEY, secret.as_slice())?;
            Ok(secret)
        })
    }

    /// Runs `body` in one write transaction and commits it durably; an error aborts it.
    fn write<T>(
        &self,
        body: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let result = body(&txn)?;
        txn.commit()?;
        Ok(result)
    }
}

fn decode_secret(bytes: &[u8]) -> Result<[u8; 32], StoreError> {
    bytes.try_into().map_err(|_| {
        StoreError::Corrupt(format!(
            "the install secret is {} bytes, not 32",
            bytes.len()
        ))
    })
}

#[cfg(test)]
mod tests;

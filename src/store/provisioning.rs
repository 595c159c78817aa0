//! The `provisioning` table: what a phone's provisioning link needs beyond the user itself.
//!
//! The password salt lets hotline recompute an extension's password from the password key kept
//! outside the database (see [`crate::web::provision::password`]); the link hash lets it
//! recognise the extension's link without storing the link. Neither gives a password or a link
//! away to someone who has only the database file.

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, Table, WriteTransaction};

use super::{PROVISIONING, ProvisioningValue, Store, StoreError, USERS, users};
use crate::core::user::{Extension, User};

/// Random bytes mixed into an extension's derived password; new ones make a new password.
pub type PasswordSalt = [u8; 16];

/// SHA-256 of a provisioning link's token.
pub type LinkHash = [u8; 32];

/// An extension's row of the `provisioning` table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Provisioning {
    /// `None`: the password was chosen at random before provisioning existed and cannot be
    /// recomputed; only its HA1s are known.
    pub password_salt: Option<PasswordSalt>,
    pub link: Option<LinkHash>,
}

impl Store {
    /// Adds a user whose password is derived with `salt`, with its provisioning link, in one
    /// transaction.
    pub fn add_user_with_salt(
        &self,
        user: &User,
        salt: &PasswordSalt,
        link: &LinkHash,
    ) -> Result<(), StoreError> {
        self.write(|txn| {
            users::insert(txn, user, false)?;
            update(txn, &user.extension, |row| {
                *row = Provisioning {
                    password_salt: Some(*salt),
                    link: Some(*link),
                }
            })
        })
    }

    /// Replaces a user's hashes by those of the password derived with `salt`.
    pub fn replace_user_with_salt(
        &self,
        user: &User,
        salt: &PasswordSalt,
    ) -> Result<(), StoreError> {
        self.write(|txn| {
            users::insert(txn, user, true)?;
            update(txn, &user.extension, |row| row.password_salt = Some(*salt))
        })
    }

    /// Sets or (with `None`) ends an existing user's provisioning link: a new link ends the old.
    pub fn set_link(
        &self,
        extension: &Extension,
        link: Option<&LinkHash>,
    ) -> Result<(), StoreError> {
        self.write(|txn| {
            if txn.open_table(USERS)?.get(extension.as_str())?.is_none() {
                return Err(StoreError::NoSuchUser(extension.clone()));
            }
            update(txn, extension, |row| row.link = link.copied())
        })
    }

    /// The row of `extension`; the default (no salt, no link) when it has none.
    pub fn provisioning(&self, extension: &Extension) -> Result<Provisioning, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PROVISIONING)?;
        let value = table.get(extension.as_str())?;
        value
            .map(|v| decode(extension.as_str(), v.value()))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// Every extension that has a link, with the link's hash.
    pub fn links(&self) -> Result<Vec<(Extension, LinkHash)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PROVISIONING)?;
        let mut links = Vec::new();
        for entry in table.iter()? {
            let (key, value) = entry?;
            if let Some(link) = decode(key.value(), value.value())?.link {
                links.push((extension(key.value())?, link));
            }
        }
        Ok(links)
    }
}

/// Reads, changes and writes back the row of `extension`.
fn update(
    txn: &WriteTransaction,
    extension: &Extension,
    change: impl FnOnce(&mut Provisioning),
) -> Result<(), StoreError> {
    let mut table = txn.open_table(PROVISIONING)?;
    let mut row = match table.get(extension.as_str())? {
        Some(value) => decode(extension.as_str(), value.value())?,
        None => Provisioning::default(),
    };
    change(&mut row);
    insert(&mut table, extension, &row)
}

/// Every row, as `txn` sees them, sorted by extension.
pub(super) fn all(txn: &ReadTransaction) -> Result<Vec<(Extension, Provisioning)>, StoreError> {
    let table = txn.open_table(PROVISIONING)?;
    table
        .iter()?
        .map(|entry| {
            let (key, value) = entry?;
            Ok((extension(key.value())?, decode(key.value(), value.value())?))
        })
        .collect()
}

pub(super) fn insert(
    table: &mut Table<&str, ProvisioningValue>,
    extension: &Extension,
    row: &Provisioning,
) -> Result<(), StoreError> {
    let salt = row.password_salt.as_ref().map_or(&[][..], |s| &s[..]);
    let link = row.link.as_ref().map_or(&[][..], |l| &l[..]);
    table.insert(extension.as_str(), (salt, link))?;
    Ok(())
}

fn extension(key: &str) -> Result<Extension, StoreError> {
    Extension::parse(key).map_err(|error| StoreError::Corrupt(format!("provisioning key: {error}")))
}

fn decode(key: &str, (salt, link): (&[u8], &[u8])) -> Result<Provisioning, StoreError> {
    let corrupt = |what: &str, length: usize| {
        StoreError::Corrupt(format!(
            "extension {key}: the {what} is {length} bytes long"
        ))
    };
    Ok(Provisioning {
        password_salt: match salt {
            [] => None,
            bytes => Some(
                bytes
                    .try_into()
                    .map_err(|_| corrupt("password salt", bytes.len()))?,
            ),
        },
        link: match link {
            [] => None,
            bytes => Some(
                bytes
                    .try_into()
                    .map_err(|_| corrupt("link hash", bytes.len()))?,
            ),
        },
    })
}

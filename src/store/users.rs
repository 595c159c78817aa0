//! The `users` table.

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};

use super::{BINDINGS, PROVISIONING, Store, StoreError, USERS, bindings};
use crate::core::user::{Extension, User};

impl Store {
    /// All users, sorted by extension.
    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        all(&self.db.begin_read()?)
    }

    pub fn user(&self, extension: &Extension) -> Result<Option<User>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(USERS)?;
        let value = table.get(extension.as_str())?;
        value
            .map(|v| decode(extension.as_str(), v.value()))
            .transpose()
    }

    /// Adds a user, or fails with [`StoreError::UserExists`].
    pub fn add_user(&self, user: &User) -> Result<(), StoreError> {
        self.write(|txn| insert(txn, user, false))
    }

    /// Replaces an existing user (a new password or display name), or fails with
    /// [`StoreError::NoSuchUser`].
    pub fn replace_user(&self, user: &User) -> Result<(), StoreError> {
        self.write(|txn| insert(txn, user, true))
    }

    /// Removes a user and, in the same transaction, its bindings and provisioning link.
    pub fn remove_user(&self, extension: &Extension) -> Result<(), StoreError> {
        self.write(|txn| {
            if txn.open_table(USERS)?.remove(extension.as_str())?.is_none() {
                return Err(StoreError::NoSuchUser(extension.clone()));
            }
            txn.open_table(PROVISIONING)?.remove(extension.as_str())?;
            bindings::delete(&mut txn.open_table(BINDINGS)?, extension)
        })
    }
}

/// Writes `user`: a new one ([`StoreError::UserExists`] if not), or with `replace` an existing
/// one ([`StoreError::NoSuchUser`] if not).
pub(super) fn insert(txn: &WriteTransaction, user: &User, replace: bool) -> Result<(), StoreError> {
    let mut table = txn.open_table(USERS)?;
    let exists = table.get(user.extension.as_str())?.is_some();
    match (exists, replace) {
        (true, false) => return Err(StoreError::UserExists(user.extension.clone())),
        (false, true) => return Err(StoreError::NoSuchUser(user.extension.clone())),
        _ => {}
    }
    table.insert(user.extension.as_str(), encode(user))?;
    Ok(())
}

/// Every user, as `txn` sees them.
pub(super) fn all(txn: &ReadTransaction) -> Result<Vec<User>, StoreError> {
    let table = txn.open_table(USERS)?;
    table
        .iter()?
        .map(|entry| {
            let (key, value) = entry?;
            decode(key.value(), value.value())
        })
        .collect()
}

pub(super) fn encode(user: &User) -> (&str, &str, &[u8], &[u8]) {
    (
        &user.display_name,
        &user.realm,
        &user.ha1_md5,
        &user.ha1_sha256,
    )
}

fn decode(
    key: &str,
    (display_name, realm, md5, sha256): (&str, &str, &[u8], &[u8]),
) -> Result<User, StoreError> {
    let extension =
        Extension::parse(key).map_err(|error| StoreError::Corrupt(format!("user key: {error}")))?;
    let wrong_length = |bytes: &[u8], name: &str| {
        StoreError::Corrupt(format!(
            "user {extension}: the {name} HA1 is {} bytes long",
            bytes.len()
        ))
    };
    Ok(User {
        ha1_md5: md5.try_into().map_err(|_| wrong_length(md5, "MD5"))?,
        ha1_sha256: sha256
            .try_into()
            .map_err(|_| wrong_length(sha256, "SHA-256"))?,
        extension,
        display_name: display_name.to_owned(),
        realm: realm.to_owned(),
    })
}

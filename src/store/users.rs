//! The `users` table.

use redb::{ReadableDatabase, ReadableTable};

use super::{BINDINGS, Store, StoreError, USERS, bindings};
use crate::core::user::{Extension, User};

impl Store {
    /// All users, sorted by extension.
    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(USERS)?;
        table
            .iter()?
            .map(|entry| {
                let (key, value) = entry?;
                decode(key.value(), value.value())
            })
            .collect()
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
        self.write(|txn| {
            let mut table = txn.open_table(USERS)?;
            if table.get(user.extension.as_str())?.is_some() {
                return Err(StoreError::UserExists(user.extension.clone()));
            }
            table.insert(user.extension.as_str(), encode(user))?;
            Ok(())
        })
    }

    /// Replaces an existing user (a new password or display name), or fails with
    /// [`StoreError::NoSuchUser`].
    pub fn replace_user(&self, user: &User) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut table = txn.open_table(USERS)?;
            if table.get(user.extension.as_str())?.is_none() {
                return Err(StoreError::NoSuchUser(user.extension.clone()));
            }
            table.insert(user.extension.as_str(), encode(user))?;
            Ok(())
        })
    }

    /// Removes a user and, in the same transaction, its bindings.
    pub fn remove_user(&self, extension: &Extension) -> Result<(), StoreError> {
        self.write(|txn| {
            if txn.open_table(USERS)?.remove(extension.as_str())?.is_none() {
                return Err(StoreError::NoSuchUser(extension.clone()));
            }
            bindings::delete(&mut txn.open_table(BINDINGS)?, extension)
        })
    }
}

fn encode(user: &User) -> (&str, &str, &[u8], &[u8]) {
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

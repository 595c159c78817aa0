//! The owner's password hash (a PHC string, see `web::owner::password`) in the `secrets` table.

use redb::ReadableDatabase;

use super::{SECRETS, Store, StoreError};

/// The name of the owner's password hash's row in `secrets`.
pub const OWNER_PASSWORD_KEY: &str = "owner_password";

impl Store {
    /// The owner's password hash, if one was set.
    pub fn owner_password(&self) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SECRETS)?;
        let Some(value) = table.get(OWNER_PASSWORD_KEY)? else {
            return Ok(None);
        };
        let text = std::str::from_utf8(value.value())
            .map_err(|_| StoreError::Corrupt("the owner's password hash is not text".into()))?;
        Ok(Some(text.to_owned()))
    }

    /// Replaces the owner's password hash, durably.
    pub fn set_owner_password(&self, hash: &str) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(SECRETS)?
                .insert(OWNER_PASSWORD_KEY, hash.as_bytes())?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_password_round_trips_and_persists() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("h.redb");
        {
            let store = Store::open(&path).unwrap();
            assert_eq!(store.owner_password().unwrap(), None);
            store.set_owner_password("$argon2id$one").unwrap();
            store.set_owner_password("$argon2id$two").unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.owner_password().unwrap().as_deref(),
            Some("$argon2id$two")
        );
    }
}

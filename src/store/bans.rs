//! The `bans` table, so that a restart does not forgive an attacker.

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, Table, TableError};

use super::{BANS, BanValue, Store, StoreError};
use crate::core::bans::{Ban, Scope};

impl Store {
    /// The bans still in force at `now_ms`, by scope text. Expired ones are deleted.
    pub fn bans(&self, now_ms: u64) -> Result<Vec<Ban>, StoreError> {
        let stored = all(&self.db.begin_read()?)?;
        let (active, expired): (Vec<Ban>, Vec<Ban>) =
            stored.into_iter().partition(|ban| ban.until_ms > now_ms);
        if !expired.is_empty() {
            self.write(|txn| prune(&mut txn.open_table(BANS)?, now_ms))?;
        }
        Ok(active)
    }

    /// Writes a batch of bans in one transaction (one fsync), replacing bans of the same
    /// scopes, and deletes the expired ones so that the table stays small between restarts.
    pub fn save_bans(&self, bans: &[Ban], now_ms: u64) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut table = txn.open_table(BANS)?;
            for ban in bans {
                let scope = ban.scope.to_string();
                table.insert(scope.as_str(), (ban.until_ms, ban.reason.as_str()))?;
            }
            prune(&mut table, now_ms)
        })
    }

    /// Deletes every ban whose scope `matches`, in one transaction; returns their scopes.
    pub fn remove_bans(&self, matches: impl Fn(&Scope) -> bool) -> Result<Vec<Scope>, StoreError> {
        self.write(|txn| {
            let mut table = txn.open_table(BANS)?;
            let mut removed = Vec::new();
            for entry in table.iter()? {
                let (key, value) = entry?;
                let ban = decode(key.value(), value.value())?;
                if matches(&ban.scope) {
                    removed.push(ban.scope);
                }
            }
            for scope in &removed {
                table.remove(scope.to_string().as_str())?;
            }
            Ok(removed)
        })
    }
}

/// Every ban, as `txn` sees them, expired or not.
pub(super) fn all(txn: &ReadTransaction) -> Result<Vec<Ban>, StoreError> {
    // A file written before bans existed has no table: no bans.
    let table = match txn.open_table(BANS) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(error) => return Err(error.into()),
    };
    table
        .iter()?
        .map(|entry| {
            let (key, value) = entry?;
            decode(key.value(), value.value())
        })
        .collect()
}

/// Deletes the bans that ended by `now_ms`.
fn prune(table: &mut Table<&str, BanValue>, now_ms: u64) -> Result<(), StoreError> {
    let mut expired = Vec::new();
    for entry in table.iter()? {
        let (key, value) = entry?;
        if value.value().0 <= now_ms {
            expired.push(key.value().to_owned());
        }
    }
    for scope in &expired {
        table.remove(scope.as_str())?;
    }
    Ok(())
}

fn decode(scope: &str, (until_ms, reason): (u64, &str)) -> Result<Ban, StoreError> {
    let scope = scope
        .parse()
        .map_err(|error| StoreError::Corrupt(format!("ban key: {error}")))?;
    Ok(Ban {
        scope,
        until_ms,
        reason: reason.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use redb::{Database, ReadableTableMetadata};

    use super::*;

    const T0: u64 = 1_800_000_000_000;

    fn temp() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hotline.redb");
        (dir, path)
    }

    fn ban(scope: &str, until_ms: u64) -> Ban {
        Ban {
            scope: scope.parse().unwrap(),
            until_ms,
            reason: "5 authentication failures in 600 s".to_owned(),
        }
    }

    /// Rows in the table as written, expired or not.
    fn rows(path: &Path) -> u64 {
        let db = Database::create(path).unwrap();
        let txn = db.begin_read().unwrap();
        txn.open_table(BANS).unwrap().len().unwrap()
    }

    #[test]
    fn bans_round_trip_persist_and_expire() {
        let (_dir, path) = temp();
        let store = Store::open(&path).unwrap();
        assert_eq!(store.bans(T0).unwrap(), []);
        let address = ban("2001:db8::66", T0 + 3_600_000);
        let prefix = ban("2001:db8:1:2::/64", T0 + 60_000);
        store
            .save_bans(&[address.clone(), prefix.clone()], T0)
            .unwrap();
        drop(store);

        let store = Store::open(&path).unwrap();
        // In the order of the scopes' text.
        assert_eq!(store.bans(T0).unwrap(), [prefix.clone(), address.clone()]);
        // A ban saved again (extended) replaces the old one.
        let longer = ban("2001:db8:1:2::/64", T0 + 120_000);
        store.save_bans(std::slice::from_ref(&longer), T0).unwrap();
        assert_eq!(store.bans(T0).unwrap(), [longer, address.clone()]);
        // Loading after the prefix's ban ended deletes it from the file.
        assert_eq!(store.bans(T0 + 120_000).unwrap(), [address]);
        drop(store);
        assert_eq!(rows(&path), 1);

        // Saving prunes too.
        let store = Store::open(&path).unwrap();
        let new = ban("2001:db8::77", T0 + 7_200_000);
        store
            .save_bans(std::slice::from_ref(&new), T0 + 3_600_000)
            .unwrap();
        drop(store);
        assert_eq!(rows(&path), 1);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.bans(T0 + 3_600_000).unwrap(), [new]);
    }

    #[test]
    fn remove_bans_deletes_the_matching_ones() {
        let (_dir, path) = temp();
        let store = Store::open(&path).unwrap();
        let bans = [
            ban("2001:db8:1:2::5", T0 + 1),
            ban("2001:db8:1:2::/64", T0 + 1),
            ban("2001:db8::66", T0 + 1),
        ];
        store.save_bans(&bans, T0).unwrap();
        let covering = |scope: &Scope| scope.contains("2001:db8:1:2::5".parse().unwrap());
        let removed: Vec<String> = store
            .remove_bans(covering)
            .unwrap()
            .iter()
            .map(Scope::to_string)
            .collect();
        assert_eq!(removed, ["2001:db8:1:2::/64", "2001:db8:1:2::5/128"]);
        assert_eq!(store.remove_bans(covering).unwrap(), []);
        assert_eq!(store.bans(T0).unwrap(), [bans[2].clone()]);
    }

    #[test]
    fn a_file_from_before_bans_has_none_and_takes_them() {
        let (_dir, path) = temp();
        drop(Store::open(&path).unwrap());
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            assert!(txn.delete_table(BANS).unwrap());
            txn.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.bans(T0).unwrap(), []);
        assert_eq!(store.remove_bans(|_| true).unwrap(), []);
        let banned = ban("2001:db8::66", T0 + 1);
        store.save_bans(std::slice::from_ref(&banned), T0).unwrap();
        assert_eq!(store.bans(T0).unwrap(), [banned]);
    }

    #[test]
    fn a_bad_scope_is_corrupt() {
        let (_dir, path) = temp();
        drop(Store::open(&path).unwrap());
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(BANS)
                .unwrap()
                .insert("2001:db8::/200", (T0 + 1, ""))
                .unwrap();
            txn.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        let error = store.bans(T0).unwrap_err();
        assert!(matches!(error, StoreError::Corrupt(_)), "{error}");
        assert!(error.to_string().contains("2001:db8::/200"), "{error}");
    }
}

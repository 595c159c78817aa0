//! The whole database at one instant, for backups, and the way back.

use redb::{ReadableDatabase, TableError};

use super::{
    BANS, BINDINGS, INSTALL_SECRET_KEY, SECRETS, Store, StoreError, USERS, bans, bindings,
    decode_secret, users,
};
use crate::core::bans::Ban;
use crate::core::registrar::Binding;
use crate::core::user::{Extension, User};

/// Every record of the current schema.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// `None` in a database that no server has started on yet.
    pub install_secret: Option<[u8; 32]>,
    pub users: Vec<User>,
    pub bans: Vec<Ban>,
    pub bindings: Vec<(Extension, Binding)>,
}

impl Store {
    /// Reads everything in one read transaction, so the copy is consistent while a server
    /// writes. Bans that ended by `now_ms` are left out.
    pub fn snapshot(&self, now_ms: u64) -> Result<Snapshot, StoreError> {
        let txn = self.db.begin_read()?;
        let install_secret = match txn.open_table(SECRETS) {
            Ok(table) => table
                .get(INSTALL_SECRET_KEY)?
                .map(|v| decode_secret(v.value()))
                .transpose()?,
            Err(TableError::TableDoesNotExist(_)) => None,
            Err(error) => return Err(error.into()),
        };
        let mut bans = bans::all(&txn)?;
        bans.retain(|ban| ban.until_ms > now_ms);
        Ok(Snapshot {
            install_secret,
            users: users::all(&txn)?,
            bans,
            bindings: bindings::all(&txn)?,
        })
    }

    /// Replaces every record with those of `snapshot`, in one durable transaction: after a
    /// failure the database is as it was. Bindings of an extension without a user are dropped.
    pub fn restore(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.delete_table(SECRETS)?;
            txn.delete_table(USERS)?;
            txn.delete_table(BINDINGS)?;
            txn.delete_table(BANS)?;
            let mut secrets = txn.open_table(SECRETS)?;
            if let Some(secret) = &snapshot.install_secret {
                secrets.insert(INSTALL_SECRET_KEY, secret.as_slice())?;
            }
            let mut table = txn.open_table(USERS)?;
            for user in &snapshot.users {
                table.insert(user.extension.as_str(), users::encode(user))?;
            }
            let mut table = txn.open_table(BINDINGS)?;
            for (extension, binding) in &snapshot.bindings {
                if snapshot.users.iter().any(|u| &u.extension == extension) {
                    bindings::insert(&mut table, extension, binding)?;
                }
            }
            let mut table = txn.open_table(BANS)?;
            for ban in &snapshot.bans {
                let scope = ban.scope.to_string();
                table.insert(scope.as_str(), (ban.until_ms, ban.reason.as_str()))?;
            }
            Ok(())
        })
    }
}

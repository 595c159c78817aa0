//! The whole database at one instant, for backups, and the way back.

use std::collections::{BTreeMap, BTreeSet};

use redb::{ReadableDatabase, ReadableTable};

use super::provisioning::{self, Provisioning};
use super::{
    BANS, BINDINGS, PROVISIONING, SECRETS, Store, StoreError, USERS, bans, bindings, users,
};
use crate::core::bans::Ban;
use crate::core::registrar::Binding;
use crate::core::user::{Extension, User};

/// Every record of the current schema.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Every row of the `secrets` table by name: the install secret ([`INSTALL_SECRET_KEY`],
    /// absent in a database no server has started on yet), the owner's password hash
    /// ([`OWNER_PASSWORD_KEY`], once set), and whatever a later version adds.
    ///
    /// [`INSTALL_SECRET_KEY`]: super::INSTALL_SECRET_KEY
    /// [`OWNER_PASSWORD_KEY`]: super::OWNER_PASSWORD_KEY
    pub secrets: BTreeMap<String, Vec<u8>>,
    pub users: Vec<User>,
    pub bans: Vec<Ban>,
    pub bindings: Vec<(Extension, Binding)>,
    /// Password salts and link hashes, by extension.
    pub provisioning: Vec<(Extension, Provisioning)>,
}

impl Store {
    /// Reads everything in one read transaction, so the copy is consistent while a server
    /// writes. Bans that ended by `now_ms` are left out.
    pub fn snapshot(&self, now_ms: u64) -> Result<Snapshot, StoreError> {
        let txn = self.db.begin_read()?;
        let secrets = txn
            .open_table(SECRETS)?
            .iter()?
            .map(|entry| {
                let (name, value) = entry?;
                Ok((name.value().to_owned(), value.value().to_vec()))
            })
            .collect::<Result<_, StoreError>>()?;
        let mut bans = bans::all(&txn)?;
        bans.retain(|ban| ban.until_ms > now_ms);
        Ok(Snapshot {
            secrets,
            users: users::all(&txn)?,
            bans,
            bindings: bindings::all(&txn)?,
            provisioning: provisioning::all(&txn)?,
        })
    }

    /// Replaces every record with those of `snapshot`, in one durable transaction: after a
    /// failure the database is as it was. Bindings and provisioning rows of an extension without
    /// a user are dropped.
    pub fn restore(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let users: BTreeSet<&Extension> = snapshot.users.iter().map(|u| &u.extension).collect();
        let has_user = |extension: &Extension| users.contains(extension);
        self.write(|txn| {
            txn.delete_table(SECRETS)?;
            txn.delete_table(USERS)?;
            txn.delete_table(BINDINGS)?;
            txn.delete_table(BANS)?;
            txn.delete_table(PROVISIONING)?;
            let mut table = txn.open_table(SECRETS)?;
            for (name, value) in &snapshot.secrets {
                table.insert(name.as_str(), value.as_slice())?;
            }
            let mut table = txn.open_table(USERS)?;
            for user in &snapshot.users {
                table.insert(user.extension.as_str(), users::encode(user))?;
            }
            let mut table = txn.open_table(BINDINGS)?;
            for (extension, binding) in &snapshot.bindings {
                if has_user(extension) {
                    bindings::insert(&mut table, extension, binding)?;
                }
            }
            let mut table = txn.open_table(PROVISIONING)?;
            for (extension, row) in &snapshot.provisioning {
                if has_user(extension) {
                    provisioning::insert(&mut table, extension, row)?;
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

//! Backups of older versions, and what a restore of one cannot bring back.
//!
//! Versions 1 and 2 held the install secret as `records.install_secret`, and neither the rest
//! of the `secrets` table (the owner's password hash), nor the `provisioning` table, nor the
//! password key. Their users keep their passwords (the HA1s are there); the owner's password
//! and the provisioning links are gone.

use std::fmt;

use super::{Backup, VERSION};
use crate::store::INSTALL_SECRET_KEY;

/// Rewrites the records of a version 1 or 2 file into the current shape.
pub(super) fn records(table: &mut toml::Table) {
    let Some(toml::Value::Table(records)) = table.get_mut("records") else {
        return;
    };
    if let Some(secret) = records.remove("install_secret") {
        let secrets = toml::Table::from_iter([(INSTALL_SECRET_KEY.to_owned(), secret)]);
        records.insert("secrets".to_owned(), toml::Value::Table(secrets));
    }
}

/// What a restore could not bring back; each says what to do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// A backup older than version 3 holds no owner's password.
    OwnerPassword,
    /// A backup older than version 3 holds no provisioning links.
    ProvisioningLinks,
    /// A backup without the password key: the links serve no passwords.
    PasswordKey,
}

impl Missing {
    /// What `backup` lacks; `salts` is whether its records hold password salts.
    pub(super) fn of(backup: &Backup, salts: bool) -> Vec<Missing> {
        if backup.schema_version < VERSION {
            let mut missing = vec![Missing::OwnerPassword];
            if !backup.records.users.is_empty() {
                missing.push(Missing::ProvisioningLinks);
            }
            missing
        } else if backup.password_key.is_none() && salts {
            vec![Missing::PasswordKey]
        } else {
            Vec::new()
        }
    }
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Missing::OwnerPassword => {
                "Not in this backup (an older hotline made it): the owner's password. The \
                 owner's pages have none until you set one: `hotline owner passwd`."
            }
            Missing::ProvisioningLinks => {
                "Not in this backup (an older hotline made it): the provisioning links. The \
                 phones keep registering with their old passwords; `hotline user provision \
                 <ext>` makes a new link, and a new password that the phone takes from it."
            }
            Missing::PasswordKey => {
                "Not in this backup: the password key, so the provisioning links serve no \
                 passwords. The phones keep registering with their old passwords; `hotline user \
                 provision <ext>` makes a new link, and a new password that the phone takes \
                 from it."
            }
        })
    }
}

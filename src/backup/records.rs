//! The database's records as text, in a backup file and on the control socket.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{BackupError, hex};
use crate::core::bans::Ban;
use crate::core::registrar::{Binding, Flow};
use crate::core::user::{Extension, User};
use crate::sip::Transport;
use crate::store::provisioning::Provisioning;
use crate::store::{INSTALL_SECRET_KEY, OWNER_PASSWORD_KEY, Snapshot};

/// Every record of a [`Snapshot`]. Lists missing from the file are empty: a backup written
/// before bans existed restores with none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Records {
    /// Every row of the database's `secrets` table, its bytes in hex: `install` (32 bytes;
    /// absent when no server has started on the database yet), `owner_password` (the owner's
    /// argon2id hash, once set).
    pub secrets: BTreeMap<String, String>,
    pub users: Vec<UserRecord>,
    pub bans: Vec<BanRecord>,
    pub bindings: Vec<BindingRecord>,
    pub provisioning: Vec<ProvisioningRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    pub extension: String,
    pub display_name: String,
    pub realm: String,
    /// HA1 hashes in hex: the password itself is in no backup.
    pub ha1_md5: String,
    pub ha1_sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BanRecord {
    pub scope: String,
    /// Unix time in milliseconds when the ban ends.
    pub until_ms: u64,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingRecord {
    pub extension: String,
    pub contact: String,
    pub expires_at_ms: u64,
    pub call_id: String,
    pub cseq: u32,
    /// `UDP`, `TCP` or `TLS`.
    pub transport: String,
    /// Address and port the phone registered from.
    pub source: String,
}

/// An extension's provisioning row: what derives its password, and its link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisioningRecord {
    pub extension: String,
    /// 16 bytes in hex; absent for a password from before provisioning.
    #[serde(default)]
    pub password_salt: Option<String>,
    /// SHA-256 of the link's token in hex (the token itself is in no backup); absent without a
    /// link.
    #[serde(default)]
    pub link_hash: Option<String>,
}

impl From<&Snapshot> for Records {
    fn from(snapshot: &Snapshot) -> Records {
        Records {
            secrets: snapshot
                .secrets
                .iter()
                .map(|(name, value)| (name.clone(), hex::encode(value)))
                .collect(),
            users: snapshot
                .users
                .iter()
                .map(|user| UserRecord {
                    extension: user.extension.to_string(),
                    display_name: user.display_name.clone(),
                    realm: user.realm.clone(),
                    ha1_md5: hex::encode(&user.ha1_md5),
                    ha1_sha256: hex::encode(&user.ha1_sha256),
                })
                .collect(),
            bans: snapshot
                .bans
                .iter()
                .map(|ban| BanRecord {
                    scope: ban.scope.to_string(),
                    until_ms: ban.until_ms,
                    reason: ban.reason.clone(),
                })
                .collect(),
            bindings: snapshot
                .bindings
                .iter()
                .map(|(extension, binding)| BindingRecord {
                    extension: extension.to_string(),
                    contact: binding.contact.clone(),
                    expires_at_ms: binding.expires_at_ms,
                    call_id: binding.call_id.clone(),
                    cseq: binding.cseq,
                    transport: binding.flow.transport.to_string(),
                    source: binding.flow.remote.to_string(),
                })
                .collect(),
            provisioning: snapshot
                .provisioning
                .iter()
                .map(|(extension, row)| ProvisioningRecord {
                    extension: extension.to_string(),
                    password_salt: row.password_salt.as_ref().map(|s| hex::encode(s)),
                    link_hash: row.link.as_ref().map(|l| hex::encode(l)),
                })
                .collect(),
        }
    }
}

impl TryFrom<&Records> for Snapshot {
    type Error = BackupError;

    /// Checks every value as the database would.
    fn try_from(records: &Records) -> Result<Snapshot, BackupError> {
        let invalid = |what: String| BackupError::Invalid(what);
        let extension = |text: &str| Extension::parse(text).map_err(|e| invalid(e.to_string()));
        let secrets = records
            .secrets
            .iter()
            .map(|(name, text)| {
                let bytes = hex::decode(text)
                    .filter(|bytes| match name.as_str() {
                        INSTALL_SECRET_KEY => bytes.len() == 32,
                        OWNER_PASSWORD_KEY => std::str::from_utf8(bytes).is_ok(),
                        _ => true,
                    })
                    .ok_or_else(|| invalid(format!("the secret {name:?}")))?;
                Ok((name.clone(), bytes))
            })
            .collect::<Result<_, BackupError>>()?;
        let users = records
            .users
            .iter()
            .map(|user| {
                let hash = |text: &str, name: &str| {
                    invalid(format!(
                        "the {name} HA1 of extension {}: {text:?}",
                        user.extension
                    ))
                };
                Ok(User {
                    extension: extension(&user.extension)?,
                    display_name: user.display_name.clone(),
                    realm: user.realm.clone(),
                    ha1_md5: hex::decode_array(&user.ha1_md5)
                        .ok_or_else(|| hash(&user.ha1_md5, "MD5"))?,
                    ha1_sha256: hex::decode_array(&user.ha1_sha256)
                        .ok_or_else(|| hash(&user.ha1_sha256, "SHA-256"))?,
                })
            })
            .collect::<Result<Vec<User>, BackupError>>()?;
        let bans = records
            .bans
            .iter()
            .map(|ban| {
                Ok(Ban {
                    scope: ban
                        .scope
                        .parse()
                        .map_err(|e| invalid(format!("ban {:?}: {e}", ban.scope)))?,
                    until_ms: ban.until_ms,
                    reason: ban.reason.clone(),
                })
            })
            .collect::<Result<Vec<Ban>, BackupError>>()?;
        let bindings = records
            .bindings
            .iter()
            .map(|b| {
                let bad =
                    |what: &str| invalid(format!("binding {} {}: {what}", b.extension, b.contact));
                let transport = match b.transport.as_str() {
                    "UDP" => Transport::Udp,
                    "TCP" => Transport::Tcp,
                    "TLS" => Transport::Tls,
                    _ => return Err(bad("unknown transport")),
                };
                let remote = b.source.parse().map_err(|_| bad("bad source address"))?;
                let binding = Binding {
                    contact: b.contact.clone(),
                    expires_at_ms: b.expires_at_ms,
                    call_id: b.call_id.clone(),
                    cseq: b.cseq,
                    flow: Flow {
                        transport,
                        remote,
                        connection: None,
                    },
                    user_agent: String::new(),
                    since_ms: 0,
                };
                Ok((extension(&b.extension)?, binding))
            })
            .collect::<Result<Vec<_>, BackupError>>()?;
        let provisioning = records
            .provisioning
            .iter()
            .map(|p| {
                let bad = |what: &str| invalid(format!("the {what} of extension {}", p.extension));
                let row = Provisioning {
                    password_salt: p
                        .password_salt
                        .as_deref()
                        .map(|text| hex::decode_array(text).ok_or_else(|| bad("password salt")))
                        .transpose()?,
                    link: p
                        .link_hash
                        .as_deref()
                        .map(|text| hex::decode_array(text).ok_or_else(|| bad("link hash")))
                        .transpose()?,
                };
                Ok((extension(&p.extension)?, row))
            })
            .collect::<Result<Vec<_>, BackupError>>()?;
        Ok(Snapshot {
            secrets,
            users,
            bans,
            bindings,
            provisioning,
        })
    }
}

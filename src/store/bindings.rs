//! The `bindings` table: registrations, so that phones stay reachable across a restart.

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, Table};

use super::{BINDINGS, BindingKey, BindingValue, Store, StoreError, USERS};
use crate::core::registrar::{Binding, Flow};
use crate::core::user::Extension;
use crate::sip::Transport;

impl Store {
    /// All bindings, sorted by extension and then contact.
    pub fn bindings(&self) -> Result<Vec<(Extension, Binding)>, StoreError> {
        all(&self.db.begin_read()?)
    }

    /// One write transaction (one fsync) for a whole batch: each listed extension's bindings are
    /// replaced by the given list (empty = delete them all).
    ///
    /// Bindings of an extension that has no user are dropped: the user was removed after the
    /// registrar accepted them, and they must not outlive it.
    pub fn save_bindings(&self, batch: &[(Extension, Vec<Binding>)]) -> Result<(), StoreError> {
        self.write(|txn| {
            let users = txn.open_table(USERS)?;
            let mut table = txn.open_table(BINDINGS)?;
            for (extension, bindings) in batch {
                delete(&mut table, extension)?;
                if users.get(extension.as_str())?.is_none() {
                    continue;
                }
                for binding in bindings {
                    insert(&mut table, extension, binding)?;
                }
            }
            Ok(())
        })
    }
}

/// Every binding, as `txn` sees them.
pub(super) fn all(txn: &ReadTransaction) -> Result<Vec<(Extension, Binding)>, StoreError> {
    let table = txn.open_table(BINDINGS)?;
    table
        .iter()?
        .map(|entry| {
            let (key, value) = entry?;
            decode(key.value(), value.value())
        })
        .collect()
}

pub(super) fn insert(
    table: &mut Table<BindingKey, BindingValue>,
    extension: &Extension,
    binding: &Binding,
) -> Result<(), StoreError> {
    let source = binding.flow.remote.to_string();
    table.insert(
        (extension.as_str(), binding.contact.as_str()),
        (
            binding.expires_at_ms,
            binding.call_id.as_str(),
            binding.cseq,
            transport_code(binding.flow.transport),
            source.as_str(),
        ),
    )?;
    Ok(())
}

/// Deletes every binding of `extension`.
pub(super) fn delete(
    table: &mut Table<BindingKey, BindingValue>,
    extension: &Extension,
) -> Result<(), StoreError> {
    let mut contacts = Vec::new();
    // Keys sort by extension first, and "" is the least contact.
    for entry in table.range((extension.as_str(), "")..)? {
        let (key, _) = entry?;
        let (owner, contact) = key.value();
        if owner != extension.as_str() {
            break;
        }
        contacts.push(contact.to_owned());
    }
    for contact in &contacts {
        table.remove((extension.as_str(), contact.as_str()))?;
    }
    Ok(())
}

fn transport_code(transport: Transport) -> u8 {
    match transport {
        Transport::Udp => 0,
        Transport::Tcp => 1,
        Transport::Tls => 2,
    }
}

fn decode(
    (extension, contact): (&str, &str),
    (expires_at_ms, call_id, cseq, transport, source): (u64, &str, u32, u8, &str),
) -> Result<(Extension, Binding), StoreError> {
    let extension = Extension::parse(extension)
        .map_err(|error| StoreError::Corrupt(format!("binding key: {error}")))?;
    let corrupt =
        |what: String| StoreError::Corrupt(format!("binding {extension} {contact}: {what}"));
    let transport = match transport {
        0 => Transport::Udp,
        1 => Transport::Tcp,
        2 => Transport::Tls,
        other => return Err(corrupt(format!("unknown transport {other}"))),
    };
    let source = source
        .parse()
        .map_err(|_| corrupt(format!("source {source:?} is not an address and port")))?;
    let binding = Binding {
        contact: contact.to_owned(),
        expires_at_ms,
        call_id: call_id.to_owned(),
        cseq,
        // Connections do not survive a restart; the phone's next REGISTER brings a new one.
        flow: Flow {
            transport,
            remote: source,
            connection: None,
        },
        user_agent: String::new(),
        since_ms: 0,
    };
    Ok((extension, binding))
}

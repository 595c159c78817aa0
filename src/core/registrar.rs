//! The location service behind REGISTER (RFC 3261 §10.3): which contacts each extension is
//! reachable at, until when, and over which flow the registration arrived.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use crate::sip::{HeaderName, Message, NameAddr, Transport, Uri};

use super::user::Extension;

/// One TCP or TLS connection of the network layer, so that requests to a phone registered over
/// a stream go back over the connection it registered on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

/// Where a message came from: the transport, the remote address and, for streams, the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub transport: Transport,
    pub remote: SocketAddr,
    pub connection: Option<ConnectionId>,
}

/// A contact bound to an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI as the phone wrote it.
    pub contact: String,
    pub expires_at_ms: u64,
    pub call_id: String,
    pub cseq: u32,
    pub flow: Flow,
    /// The phone's User-Agent, at most [`MAX_USER_AGENT`] characters; kept in memory only.
    pub user_agent: String,
    /// When this contact was first registered (0: before the last restart); memory only.
    pub since_ms: u64,
}

/// The longest User-Agent kept for the owner's Phones page.
pub const MAX_USER_AGENT: usize = 128;

impl Binding {
    /// Whole seconds left, at least 1 while the binding lives.
    pub fn remaining_secs(&self, now_ms: u64) -> u64 {
        self.expires_at_ms.saturating_sub(now_ms).div_ceil(1000)
    }
}

/// Why a REGISTER was refused, each with its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("{0}")]
    BadRequest(&'static str),
    #[error("expiry below the minimum")]
    IntervalTooBrief,
    #[error("more contacts than allowed for one extension")]
    TooManyContacts,
    #[error("the registrar holds its maximum number of bindings")]
    Full,
    #[error("CSeq is not higher than the one already registered")]
    OutOfOrder,
}

/// What registrations may ask for, and how many the registrar holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Shorter registrations get `423 Interval Too Brief`.
    pub min_expires: Duration,
    /// Longer registrations are shortened to this.
    pub max_expires: Duration,
    /// Used when a REGISTER names no expiry.
    pub default_expires: Duration,
    /// Contacts per extension (a desk phone, a softphone, a mobile…).
    pub max_contacts: usize,
    /// Bindings in all: the table an outsider with a password could try to grow.
    pub max_bindings: usize,
    /// How often changed bindings go to the store, in one batch (one fsync).
    pub flush_interval: Duration,
}

impl Default for Settings {
    /// The defaults of `config/hotline.toml`, which says why.
    fn default() -> Settings {
        Settings {
            min_expires: Duration::from_secs(60),
            max_expires: Duration::from_secs(3600),
            default_expires: Duration::from_secs(3600),
            max_contacts: 5,
            max_bindings: 10_000,
            flush_interval: Duration::from_secs(30),
        }
    }
}

/// A duration as the whole seconds of an Expires value.
fn seconds(duration: Duration) -> u32 {
    u32::try_from(duration.as_secs()).unwrap_or(u32::MAX)
}

pub struct Registrar {
    settings: Settings,
    bindings: HashMap<Extension, Vec<Binding>>,
    total: usize,
    /// Extensions whose bindings changed since the last write to the database.
    dirty: BTreeSet<Extension>,
}

impl Registrar {
    /// Starts from the bindings kept in the database, dropping those that expired meanwhile.
    pub fn new(settings: Settings, stored: Vec<(Extension, Binding)>, now_ms: u64) -> Registrar {
        let mut registrar = Registrar {
            settings,
            bindings: HashMap::new(),
            total: 0,
            dirty: BTreeSet::new(),
        };
        for (extension, binding) in stored {
            if binding.expires_at_ms > now_ms && registrar.total < registrar.settings.max_bindings {
                registrar
                    .bindings
                    .entry(extension)
                    .or_default()
                    .push(binding);
                registrar.total += 1;
            }
        }
        registrar
    }

    pub fn min_expires(&self) -> u32 {
        seconds(self.settings.min_expires)
    }

    /// The live bindings of an extension.
    pub fn contacts(&self, extension: &Extension, now_ms: u64) -> impl Iterator<Item = &Binding> {
        self.bindings
            .get(extension)
            .into_iter()
            .flatten()
            .filter(move |b| b.expires_at_ms > now_ms)
    }

    /// The flow of the binding registered with exactly this Contact URI, for requests addressed
    /// to a phone's contact rather than its extension.
    pub fn flow_of_contact(&self, contact: &str) -> Option<Flow> {
        self.bindings
            .values()
            .flatten()
            .find(|b| b.contact == contact)
            .map(|b| b.flow)
    }

    pub fn total(&self) -> usize {
        self.total
    }

    /// Applies the Contact headers of an authenticated REGISTER for `extension`: adds, refreshes
    /// and removes bindings all or nothing.
    pub fn register(
        &mut self,
        extension: &Extension,
        request: &Message,
        flow: Flow,
        now_ms: u64,
    ) -> Result<(), RegisterError> {
        let call_id = request
            .call_id()
            .ok_or(RegisterError::BadRequest("no Call-ID"))?;
        let cseq = request
            .cseq()
            .ok_or(RegisterError::BadRequest("malformed CSeq"))?
            .number;
        let expires_header = match request.header(HeaderName::Expires) {
            Some(value) => {
                Some(parse_seconds(value).ok_or(RegisterError::BadRequest("malformed Expires"))?)
            }
            None => None,
        };
        let contacts: Vec<&str> = request.values(HeaderName::Contact).collect();
        let user_agent: String = request
            .header(HeaderName::UserAgent)
            .unwrap_or_default()
            .chars()
            .take(MAX_USER_AGENT)
            .collect();
        let mut updated: Vec<Binding> = self.contacts(extension, now_ms).cloned().collect();

        if contacts.contains(&"*") {
            if contacts.len() != 1 || expires_header != Some(0) {
                return Err(RegisterError::BadRequest(
                    "Contact: * needs Expires: 0 and no other contact",
                ));
            }
            updated.clear();
        }
        for contact in contacts.iter().filter(|c| **c != "*") {
            let contact =
                NameAddr::parse(contact).ok_or(RegisterError::BadRequest("malformed Contact"))?;
            Uri::parse(contact.uri)
                .map_err(|_| RegisterError::BadRequest("malformed Contact URI"))?;
            let expires = match contact.params.get("expires") {
                Some(value) => value
                    .and_then(parse_seconds)
                    .ok_or(RegisterError::BadRequest("malformed Contact expires"))?,
                None => expires_header.unwrap_or(seconds(self.settings.default_expires)),
            };
            if expires != 0 && expires < seconds(self.settings.min_expires) {
                return Err(RegisterError::IntervalTooBrief);
            }
            let expires = expires.min(seconds(self.settings.max_expires));
            let existing = updated.iter().position(|b| b.contact == contact.uri);
            if let Some(b) = existing.map(|i| &updated[i])
                && b.call_id == call_id
                && cseq <= b.cseq
            {
                return Err(RegisterError::OutOfOrder);
            }
            let binding = Binding {
                contact: contact.uri.to_owned(),
                expires_at_ms: now_ms + u64::from(expires) * 1000,
                call_id: call_id.to_owned(),
                cseq,
                flow,
                user_agent: user_agent.clone(),
                since_ms: existing.map_or(now_ms, |i| updated[i].since_ms),
            };
            match (existing, expires) {
                (Some(i), 0) => {
                    updated.remove(i);
                }
                (Some(i), _) => updated[i] = binding,
                (None, 0) => {}
                (None, _) => updated.push(binding),
            }
        }
        if contacts.is_empty() {
            return Ok(());
        }
        if updated.len() > self.settings.max_contacts {
            return Err(RegisterError::TooManyContacts);
        }
        let previous = self.bindings.get(extension).map_or(0, Vec::len);
        if self.total - previous + updated.len() > self.settings.max_bindings {
            return Err(RegisterError::Full);
        }
        self.replace(extension, updated);
        Ok(())
    }

    /// Removes expired bindings; returns the extensions that lost some, for the log.
    pub fn expire(&mut self, now_ms: u64) -> Vec<Extension> {
        let expired: Vec<Extension> = self
            .bindings
            .iter()
            .filter(|(_, list)| list.iter().any(|b| b.expires_at_ms <= now_ms))
            .map(|(extension, _)| extension.clone())
            .collect();
        for extension in &expired {
            let live: Vec<Binding> = self.contacts(extension, now_ms).cloned().collect();
            self.replace(extension, live);
        }
        expired
    }

    /// Forgets the connection of bindings that used it: requests to them will fail at once rather
    /// than wait for a connection that is gone.
    pub fn connection_closed(&mut self, connection: ConnectionId) {
        for binding in self.bindings.values_mut().flatten() {
            if binding.flow.connection == Some(connection) {
                binding.flow.connection = None;
            }
        }
    }

    pub fn remove_extension(&mut self, extension: &Extension) {
        self.replace(extension, Vec::new());
    }

    /// The bindings of every extension changed since the last call, to be written in one batch.
    pub fn take_dirty(&mut self) -> Vec<(Extension, Vec<Binding>)> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|extension| {
                let list = self.bindings.get(&extension).cloned().unwrap_or_default();
                (extension, list)
            })
            .collect()
    }

    fn replace(&mut self, extension: &Extension, list: Vec<Binding>) {
        let previous = match list.is_empty() {
            true => self.bindings.remove(extension),
            false => self.bindings.insert(extension.clone(), list),
        };
        self.total -= previous.map_or(0, |p| p.len());
        self.total += self.bindings.get(extension).map_or(0, Vec::len);
        self.dirty.insert(extension.clone());
    }
}

/// `delta-seconds`: digits; values beyond 32 bits are capped (RFC 3261 §20.19 says treat them
/// as 2³²−1), so any digit string is valid.
fn parse_seconds(text: &str) -> Option<u32> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;

    fn settings() -> Settings {
        Settings {
            max_contacts: 2,
            max_bindings: 3,
            ..Settings::default()
        }
    }

    fn flow() -> Flow {
        Flow {
            transport: Transport::Udp,
            remote: "[::1]:5070".parse().unwrap(),
            connection: None,
        }
    }

    fn ext(text: &str) -> Extension {
        Extension::parse(text).unwrap()
    }

    fn request(call_id: &str, cseq: u32, extra: &str) -> Message {
        let text = format!(
            "REGISTER sip:example.org SIP/2.0\r\nVia: SIP/2.0/UDP [::1]:5070;branch=z9hG4bK{cseq}\r\n\
             From: <sip:1000@example.org>;tag=1\r\nTo: <sip:1000@example.org>\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        Message::parse(text.as_bytes(), 32).unwrap()
    }

    fn contacts(r: &Registrar, e: &str, now: u64) -> Vec<(String, u64)> {
        r.contacts(&ext(e), now)
            .map(|b| (b.contact.clone(), b.remaining_secs(now)))
            .collect()
    }

    #[test]
    fn add_refresh_remove() {
        let mut r = Registrar::new(settings(), Vec::new(), NOW);
        let a = "Contact: <sip:1000@[2001:db8::5]:5060>\r\nExpires: 600\r\n";
        r.register(&ext("1000"), &request("c1", 1, a), flow(), NOW)
            .unwrap();
        assert_eq!(
            contacts(&r, "1000", NOW),
            [("sip:1000@[2001:db8::5]:5060".into(), 600)]
        );

        let refresh = "Contact: <sip:1000@[2001:db8::5]:5060>;expires=120\r\n";
        r.register(&ext("1000"), &request("c1", 2, refresh), flow(), NOW + 1000)
            .unwrap();
        assert_eq!(contacts(&r, "1000", NOW + 1000)[0].1, 120);
        assert_eq!(r.total(), 1);

        let remove = "Contact: <sip:1000@[2001:db8::5]:5060>\r\nExpires: 0\r\n";
        r.register(&ext("1000"), &request("c1", 3, remove), flow(), NOW + 2000)
            .unwrap();
        assert!(contacts(&r, "1000", NOW + 2000).is_empty());
        assert_eq!(r.total(), 0);
        assert_eq!(r.take_dirty(), [(ext("1000"), Vec::new())]);
        assert!(r.take_dirty().is_empty());
    }

    #[test]
    fn star_removes_all_and_needs_expires_zero() {
        let mut r = Registrar::new(settings(), Vec::new(), NOW);
        let two = "Contact: <sip:1000@[::2]>, <sip:1000@[::3]>\r\n";
        r.register(&ext("1000"), &request("c1", 1, two), flow(), NOW)
            .unwrap();
        assert_eq!(contacts(&r, "1000", NOW).len(), 2);
        let bad = "Contact: *\r\n";
        assert!(matches!(
            r.register(&ext("1000"), &request("c2", 1, bad), flow(), NOW),
            Err(RegisterError::BadRequest(_))
        ));
        let star = "Contact: *\r\nExpires: 0\r\n";
        r.register(&ext("1000"), &request("c2", 1, star), flow(), NOW)
            .unwrap();
        assert!(contacts(&r, "1000", NOW).is_empty());
    }

    #[test]
    fn minimum_maximum_and_default_expiry() {
        let mut r = Registrar::new(settings(), Vec::new(), NOW);
        let brief = "Contact: <sip:1000@[::2]>;expires=59\r\n";
        assert_eq!(
            r.register(&ext("1000"), &request("c", 1, brief), flow(), NOW),
            Err(RegisterError::IntervalTooBrief)
        );
        let long = "Contact: <sip:1000@[::2]>\r\nExpires: 99999999999\r\n";
        r.register(&ext("1000"), &request("c", 2, long), flow(), NOW)
            .unwrap();
        assert_eq!(contacts(&r, "1000", NOW)[0].1, 3600);
        let default = "Contact: <sip:1000@[::3]>\r\n";
        r.register(&ext("1000"), &request("c", 3, default), flow(), NOW)
            .unwrap();
        assert_eq!(contacts(&r, "1000", NOW)[1].1, 3600);
    }

    #[test]
    fn limits_are_all_or_nothing() {
        let mut r = Registrar::new(settings(), Vec::new(), NOW);
        let three = "Contact: <sip:1000@[::2]>, <sip:1000@[::3]>, <sip:1000@[::4]>\r\n";
        assert_eq!(
            r.register(&ext("1000"), &request("c", 1, three), flow(), NOW),
            Err(RegisterError::TooManyContacts)
        );
        assert_eq!(r.total(), 0);
        let two = "Contact: <sip:1000@[::2]>, <sip:1000@[::3]>\r\n";
        r.register(&ext("1000"), &request("c", 2, two), flow(), NOW)
            .unwrap();
        r.register(
            &ext("1001"),
            &request("d", 1, "Contact: <sip:1001@[::5]>\r\n"),
            flow(),
            NOW,
        )
        .unwrap();
        assert_eq!(
            r.register(
                &ext("1002"),
                &request("e", 1, "Contact: <sip:1002@[::6]>\r\n"),
                flow(),
                NOW
            ),
            Err(RegisterError::Full)
        );
    }

    #[test]
    fn out_of_order_cseq_is_refused() {
        let mut r = Registrar::new(settings(), Vec::new(), NOW);
        let c = "Contact: <sip:1000@[::2]>\r\n";
        r.register(&ext("1000"), &request("c", 5, c), flow(), NOW)
            .unwrap();
        assert_eq!(
            r.register(&ext("1000"), &request("c", 4, c), flow(), NOW),
            Err(RegisterError::OutOfOrder)
        );
        // Another Call-ID (the phone rebooted) may start over.
        r.register(&ext("1000"), &request("new", 1, c), flow(), NOW)
            .unwrap();
    }

    #[test]
    fn bindings_expire_on_time() {
        let mut r = Registrar::new(settings(), Vec::new(), NOW);
        let c = "Contact: <sip:1000@[::2]>;expires=60\r\n";
        r.register(&ext("1000"), &request("c", 1, c), flow(), NOW)
            .unwrap();
        r.take_dirty();
        assert!(r.expire(NOW + 59_999).is_empty());
        assert_eq!(contacts(&r, "1000", NOW + 59_999).len(), 1);
        assert_eq!(r.expire(NOW + 60_000), [ext("1000")]);
        assert_eq!(r.total(), 0);
        assert_eq!(r.take_dirty(), [(ext("1000"), Vec::new())]);
    }

    #[test]
    fn malformed_contacts_and_expires() {
        let mut r = Registrar::new(settings(), Vec::new(), NOW);
        for bad in [
            "Contact: <sip:1000@[::2]>\r\nExpires: soon\r\n",
            "Contact: <sip:1000@[::2]>;expires=-1\r\n",
            "Contact: <sip:1000@[::2]>;expires\r\n",
            "Contact: <sip:1000@2001:db8::2>\r\n",
            "Contact: <mailto:a@example.org>\r\n",
            "Contact: <sip:1000@[::2]\r\n",
        ] {
            assert!(
                matches!(
                    r.register(&ext("1000"), &request("c", 1, bad), flow(), NOW),
                    Err(RegisterError::BadRequest(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(r.total(), 0);
    }

    #[test]
    fn stored_bindings_are_restored_unless_expired() {
        let binding = |contact: &str, expires_at_ms| Binding {
            contact: contact.to_owned(),
            expires_at_ms,
            call_id: "c".to_owned(),
            cseq: 1,
            flow: flow(),
            user_agent: String::new(),
            since_ms: 0,
        };
        let r = Registrar::new(
            settings(),
            vec![
                (ext("1000"), binding("sip:1000@[::2]", NOW + 1)),
                (ext("1000"), binding("sip:1000@[::3]", NOW)),
            ],
            NOW,
        );
        assert_eq!(contacts(&r, "1000", NOW).len(), 1);
        assert_eq!(r.total(), 1);
    }
}

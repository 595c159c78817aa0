//! Calls in progress, as far as routing needs them: in-dialog requests (BYE, re-INVITE, ACK for
//! 2xx…) carry the remote party's Contact as Request-URI, and the dialog says which flow reaches
//! that contact, even for a caller that never registered it.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use super::clock::millis;

use super::registrar::Flow;

/// One party of a dialog: the Contact it gave and the flow it spoke over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub contact: String,
    pub flow: Flow,
}

#[derive(Debug, Clone)]
struct Dialog {
    parties: [Party; 2],
    expires_at_ms: u64,
}

/// Dialogs by Call-ID, bounded: when full the oldest is forgotten first, and every dialog is
/// forgotten after a lifetime long enough for any real call.
pub struct Dialogs {
    by_call_id: HashMap<String, Dialog>,
    order: VecDeque<String>,
    capacity: usize,
    lifetime_ms: u64,
}

impl Dialogs {
    pub fn new(capacity: usize, lifetime: Duration) -> Dialogs {
        Dialogs {
            by_call_id: HashMap::new(),
            order: VecDeque::new(),
            capacity,
            lifetime_ms: millis(lifetime),
        }
    }

    /// Records an established dialog (a 2xx to an INVITE went through).
    pub fn establish(&mut self, call_id: &str, caller: Party, callee: Party, now_ms: u64) {
        let dialog = Dialog {
            parties: [caller, callee],
            expires_at_ms: now_ms + self.lifetime_ms,
        };
        if self.by_call_id.insert(call_id.to_owned(), dialog).is_some() {
            return;
        }
        self.order.push_back(call_id.to_owned());
        while self.by_call_id.len() > self.capacity {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.by_call_id.remove(&oldest);
                }
                None => break,
            }
        }
    }

    /// The flow that reaches `contact` in the dialog `call_id`.
    pub fn route(&self, call_id: &str, contact: &str) -> Option<Flow> {
        let dialog = self.by_call_id.get(call_id)?;
        dialog
            .parties
            .iter()
            .find(|p| p.contact == contact)
            .map(|p| p.flow)
    }

    /// The dialog ended (a BYE was answered).
    pub fn end(&mut self, call_id: &str) {
        self.by_call_id.remove(call_id);
    }

    pub fn expire(&mut self, now_ms: u64) {
        self.by_call_id.retain(|_, d| d.expires_at_ms > now_ms);
        let live = &self.by_call_id;
        self.order.retain(|id| live.contains_key(id));
    }

    pub fn len(&self) -> usize {
        self.by_call_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_call_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::Transport;

    fn party(contact: &str, port: u16) -> Party {
        Party {
            contact: contact.to_owned(),
            flow: Flow {
                transport: Transport::Udp,
                remote: format!("[::1]:{port}").parse().unwrap(),
                connection: None,
            },
        }
    }

    #[test]
    fn routes_to_either_party_until_it_ends() {
        let mut dialogs = Dialogs::new(4, Duration::from_secs(1));
        dialogs.establish(
            "c",
            party("sip:1000@[::1]:5070", 5070),
            party("sip:1001@[::1]:5080", 5080),
            0,
        );
        assert_eq!(
            dialogs
                .route("c", "sip:1001@[::1]:5080")
                .unwrap()
                .remote
                .port(),
            5080
        );
        assert_eq!(
            dialogs
                .route("c", "sip:1000@[::1]:5070")
                .unwrap()
                .remote
                .port(),
            5070
        );
        assert!(dialogs.route("c", "sip:1002@[::1]:5090").is_none());
        assert!(dialogs.route("other", "sip:1001@[::1]:5080").is_none());
        dialogs.end("c");
        assert!(dialogs.is_empty());
    }

    #[test]
    fn bounded_and_expiring() {
        let mut dialogs = Dialogs::new(2, Duration::from_secs(1));
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            dialogs.establish(id, party("x", 1), party("y", 2), i as u64);
        }
        assert_eq!(dialogs.len(), 2);
        assert!(dialogs.route("a", "x").is_none());
        dialogs.expire(1001);
        assert_eq!(dialogs.len(), 1);
        dialogs.expire(1002);
        assert!(dialogs.is_empty());
    }
}

//! Calls in progress, as far as routing needs them: in-dialog requests (BYE, re-INVITE, ACK for
//! 2xx…) carry the remote party's Contact as Request-URI, and the dialog says which flow reaches
//! that contact, even for a caller that never registered it. A dialog also keeps what hotline
//! needs to end it itself with a BYE to each party (see `hangup`).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use super::clock::millis;

use super::registrar::Flow;
use crate::sip::NameAddr;

/// One party of a dialog: the Contact it gave and the flow it spoke over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub contact: String,
    pub flow: Flow,
    /// Its From header as it sends requests in this dialog (with its tag).
    pub name_addr: String,
    /// The highest CSeq seen in its requests, 0 before any: a request hotline sends in its name
    /// must use a higher one (RFC 3261 §12.2.2).
    pub cseq: u32,
}

impl Party {
    fn tag(&self) -> Option<&str> {
        NameAddr::parse(&self.name_addr).and_then(|n| n.tag())
    }
}

#[derive(Debug, Clone)]
struct Dialog {
    parties: [Party; 2],
    expires_at_ms: u64,
    /// hotline has sent its BYEs already.
    hung_up: bool,
}

/// No dialog of that Call-ID here: never established, ended, or forgotten by a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unknown;

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

    /// Records an established dialog (a 2xx to an INVITE went through). For a re-INVITE it
    /// replaces the parties (a target refresh), keeping the CSeq seen from each.
    pub fn establish(&mut self, call_id: &str, caller: Party, callee: Party, now_ms: u64) {
        let mut dialog = Dialog {
            parties: [caller, callee],
            expires_at_ms: now_ms + self.lifetime_ms,
            hung_up: false,
        };
        if let Some(old) = self.by_call_id.get(call_id) {
            dialog.hung_up = old.hung_up;
            for party in &mut dialog.parties {
                let seen = old.parties.iter().filter(|p| p.tag() == party.tag());
                party.cseq = seen.map(|p| p.cseq).fold(party.cseq, u32::max);
            }
        }
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

    /// The flow that reaches `contact` in the dialog `call_id`: `Unknown` when there is no such
    /// dialog here, `None` when `contact` is not one of its parties.
    pub fn route(&self, call_id: &str, contact: &str) -> Result<Option<Flow>, Unknown> {
        let dialog = self.by_call_id.get(call_id).ok_or(Unknown)?;
        Ok(dialog
            .parties
            .iter()
            .find(|p| p.contact == contact)
            .map(|p| p.flow))
    }

    /// A request routed to `target` in the dialog: the other party sent it with `cseq`.
    pub fn saw_request(&mut self, call_id: &str, target: &str, cseq: u32) {
        let Some(dialog) = self.by_call_id.get_mut(call_id) else {
            return;
        };
        if let Some(index) = dialog.parties.iter().position(|p| p.contact == target) {
            let sender = &mut dialog.parties[1 - index];
            sender.cseq = sender.cseq.max(cseq);
        }
    }

    /// The caller and the callee, once: a later call for the same dialog gets `None`, so that
    /// hotline ends a dialog with one pair of BYEs.
    pub fn hang_up(&mut self, call_id: &str) -> Option<[Party; 2]> {
        let dialog = self.by_call_id.get_mut(call_id)?;
        if dialog.hung_up {
            return None;
        }
        dialog.hung_up = true;
        Some(dialog.parties.clone())
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
            name_addr: format!("<{contact}>;tag=t{port}"),
            cseq: 0,
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
                .unwrap()
                .remote
                .port(),
            5080
        );
        assert_eq!(
            dialogs
                .route("c", "sip:1000@[::1]:5070")
                .unwrap()
                .unwrap()
                .remote
                .port(),
            5070
        );
        assert_eq!(dialogs.route("c", "sip:1002@[::1]:5090"), Ok(None));
        assert_eq!(dialogs.route("other", "sip:1001@[::1]:5080"), Err(Unknown));
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
        assert_eq!(dialogs.route("a", "x"), Err(Unknown));
        dialogs.expire(1001);
        assert_eq!(dialogs.len(), 1);
        dialogs.expire(1002);
        assert!(dialogs.is_empty());
    }

    #[test]
    fn hung_up_once_with_the_cseq_of_each_party() {
        let mut dialogs = Dialogs::new(4, Duration::from_secs(1));
        let caller = Party {
            cseq: 7,
            ..party("sip:1000@[::1]:5070", 5070)
        };
        dialogs.establish("c", caller, party("sip:1001@[::1]:5080", 5080), 0);
        dialogs.saw_request("c", "sip:1000@[::1]:5070", 3);
        dialogs.saw_request("c", "sip:1001@[::1]:5080", 9);
        dialogs.saw_request("c", "sip:1001@[::1]:5080", 8);
        // A re-INVITE from the callee swaps the roles but keeps what was seen.
        let reinvite = Party {
            cseq: 4,
            ..party("sip:1001@[::1]:5080", 5080)
        };
        dialogs.establish("c", reinvite, party("sip:1000@[::1]:5070", 5070), 1);
        let [first, second] = dialogs.hang_up("c").unwrap();
        assert_eq!((first.flow.remote.port(), first.cseq), (5080, 4));
        assert_eq!((second.flow.remote.port(), second.cseq), (5070, 9));
        assert!(dialogs.hang_up("c").is_none());
        assert!(dialogs.hang_up("other").is_none());
        assert!(matches!(
            dialogs.route("c", "sip:1001@[::1]:5080"),
            Ok(Some(_))
        ));
    }
}

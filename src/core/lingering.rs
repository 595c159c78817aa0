//! Proxied transactions past their final response, reduced to what their remaining state needs
//! ([`Lingering`]). Under call load nearly every transaction is in this phase, for 32 s each
//! (Timers D, J, L, M), so it must cost bytes, not the kilobytes of a [`Call`] with its
//! messages.
//!
//! [`Call`]: super::proxy

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::registrar::Flow;
use super::transaction::{Echo, Key, Lingering, SHRINK_ABOVE};

/// How a lingering transaction answers a retransmission, and where to.
#[derive(Debug, PartialEq, Eq)]
pub enum Reaction<'a> {
    Absorb,
    Resend(Flow, &'a [u8]),
    PassSuccess(Flow),
}

/// An [`Echo`] with its flow, boxed: most entries only absorb, and a slot stays 40 bytes.
enum Stored {
    Absorb,
    Resend(Box<(Flow, Box<[u8]>)>),
    PassSuccess(Box<Flow>),
}

struct Entry {
    until: u64,
    stored: Stored,
}

/// Lingering server transactions by key and client transactions by our branch number, bounded:
/// when full, the one that would end first is forgotten (a retransmission it would have absorbed
/// is then handled as new, which the proxy survives: a stray response is dropped, a repeated
/// request is routed again).
pub struct Lingerers {
    servers: HashMap<Key, Entry>,
    branches: HashMap<u64, Entry>,
    server_expiry: BinaryHeap<Reverse<(u64, Key)>>,
    branch_expiry: BinaryHeap<Reverse<(u64, u64)>>,
    capacity: usize,
}

impl Lingerers {
    pub fn new(capacity: usize) -> Lingerers {
        Lingerers {
            servers: HashMap::new(),
            branches: HashMap::new(),
            server_expiry: BinaryHeap::new(),
            branch_expiry: BinaryHeap::new(),
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.servers.len() + self.branches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.branches.is_empty()
    }

    /// Keeps a server transaction; `flow` is where its final response goes again.
    pub fn add_server(&mut self, key: Key, lingering: Lingering, flow: Flow) {
        self.make_room();
        let until = lingering.until;
        self.servers.insert(key, entry(lingering, flow));
        self.server_expiry.push(Reverse((until, key)));
    }

    /// Keeps a client transaction; `flow` is where a 2xx is passed on to (Accepted) or where the
    /// ACK goes again (Completed).
    pub fn add_branch(&mut self, branch: u64, lingering: Lingering, flow: Flow) {
        self.make_room();
        let until = lingering.until;
        self.branches.insert(branch, entry(lingering, flow));
        self.branch_expiry.push(Reverse((until, branch)));
    }

    pub fn server(&self, key: &Key) -> Option<Reaction<'_>> {
        self.servers.get(key).map(reaction)
    }

    pub fn branch(&self, branch: u64) -> Option<Reaction<'_>> {
        self.branches.get(&branch).map(reaction)
    }

    /// Forgets the transactions whose timer has fired, and gives back the room that a burst of
    /// calls left behind (tables never shrink by themselves).
    pub fn expire(&mut self, now: u64) {
        while self.forget_first(Some(now)) {}
        if self.servers.capacity() > SHRINK_ABOVE.max(4 * self.servers.len()) {
            self.servers.shrink_to(2 * self.servers.len());
            self.server_expiry.shrink_to(2 * self.server_expiry.len());
        }
        if self.branches.capacity() > SHRINK_ABOVE.max(4 * self.branches.len()) {
            self.branches.shrink_to(2 * self.branches.len());
            self.branch_expiry.shrink_to(2 * self.branch_expiry.len());
        }
    }

    fn make_room(&mut self) {
        while self.len() >= self.capacity && self.forget_first(None) {}
    }

    /// Forgets the transaction that ends first (if it ends by `due`); false if there is none.
    fn forget_first(&mut self, due: Option<u64>) -> bool {
        let server = self.server_expiry.peek().map(|Reverse((at, _))| *at);
        let branch = self.branch_expiry.peek().map(|Reverse((at, _))| *at);
        let (at, from_servers) = match (server, branch) {
            (Some(s), Some(b)) => (s.min(b), s <= b),
            (Some(s), None) => (s, true),
            (None, Some(b)) => (b, false),
            (None, None) => return false,
        };
        if due.is_some_and(|due| at > due) {
            return false;
        }
        // An entry replaced under the same key leaves its old deadline behind: skip that one.
        if from_servers {
            if let Some(Reverse((at, key))) = self.server_expiry.pop()
                && self.servers.get(&key).is_some_and(|e| e.until == at)
            {
                self.servers.remove(&key);
            }
        } else if let Some(Reverse((at, branch))) = self.branch_expiry.pop()
            && self.branches.get(&branch).is_some_and(|e| e.until == at)
        {
            self.branches.remove(&branch);
        }
        true
    }
}

fn entry(lingering: Lingering, flow: Flow) -> Entry {
    let stored = match lingering.echo {
        Echo::Absorb => Stored::Absorb,
        Echo::Resend(bytes) => Stored::Resend(Box::new((flow, bytes))),
        Echo::PassSuccess => Stored::PassSuccess(Box::new(flow)),
    };
    Entry {
        until: lingering.until,
        stored,
    }
}

fn reaction(entry: &Entry) -> Reaction<'_> {
    match &entry.stored {
        Stored::Absorb => Reaction::Absorb,
        Stored::Resend(resend) => Reaction::Resend(resend.0, &resend.1),
        Stored::PassSuccess(flow) => Reaction::PassSuccess(**flow),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::Transport;

    fn flow() -> Flow {
        Flow {
            transport: Transport::Udp,
            remote: "[::1]:5070".parse().unwrap(),
            connection: None,
        }
    }

    fn absorb(until: u64) -> Lingering {
        Lingering {
            until,
            echo: Echo::Absorb,
        }
    }

    #[test]
    fn entries_end_at_their_own_deadlines() {
        let mut t = Lingerers::new(8);
        t.add_branch(1, absorb(5_000), flow());
        t.add_branch(
            2,
            Lingering {
                until: 32_000,
                echo: Echo::Resend(b"ACK".to_vec().into_boxed_slice()),
            },
            flow(),
        );
        t.add_branch(
            3,
            Lingering {
                until: 32_000,
                echo: Echo::PassSuccess,
            },
            flow(),
        );
        assert_eq!(t.branch(1), Some(Reaction::Absorb));
        assert_eq!(t.branch(2), Some(Reaction::Resend(flow(), b"ACK")));
        assert_eq!(t.branch(3), Some(Reaction::PassSuccess(flow())));
        t.expire(4_999);
        assert_eq!(t.len(), 3);
        t.expire(5_000);
        assert_eq!(t.branch(1), None);
        assert_eq!(t.len(), 2);
        t.expire(32_000);
        assert!(t.is_empty());
    }

    #[test]
    fn room_is_given_back_after_a_burst() {
        let mut t = Lingerers::new(100_000);
        for branch in 0..20_000 {
            t.add_branch(branch, absorb(5_000 + branch), flow());
        }
        t.expire(5_000 + 19_000);
        assert_eq!(t.len(), 999);
        assert!(t.branches.capacity() < 4 * 1024);
        assert!(t.branch_expiry.capacity() < 4 * 1024);
    }

    #[test]
    fn when_full_the_first_to_end_goes() {
        let mut t = Lingerers::new(2);
        let key = |n: u32| {
            let text = format!(
                "INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP [::1];branch=z9hG4bK{n}\r\nCSeq: 1 INVITE\r\n\r\n"
            );
            let message = crate::sip::Message::parse(text.as_bytes(), 16).unwrap();
            Key::of(&message, &message.top_via().unwrap()).unwrap()
        };
        t.add_server(key(1), absorb(32_000), flow());
        t.add_branch(1, absorb(5_000), flow());
        t.add_server(key(2), absorb(32_500), flow());
        assert_eq!(t.len(), 2);
        assert_eq!(t.branch(1), None);
        t.add_server(key(3), absorb(33_000), flow());
        assert_eq!(t.server(&key(1)), None);
        assert_eq!(t.server(&key(2)), Some(Reaction::Absorb));
        assert_eq!(t.server(&key(3)), Some(Reaction::Absorb));
    }
}

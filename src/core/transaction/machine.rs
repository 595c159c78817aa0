//! What the four transaction state machines share: timer values and names, the outputs they ask
//! of their owner, their states, and the bookkeeping that makes unwanted timers harmless.

use super::T1_MS;

/// T1, T2, T4 in ms (defaults 500, 4000, 5000: RFC 3261 Appendix A).
#[derive(Clone, Copy, Debug)]
pub struct Timers {
    /// Round-trip estimate: the first retransmission interval; 64·T1 bounds a transaction.
    pub t1: u64,
    /// Longest retransmission interval of non-INVITE requests and INVITE final responses.
    pub t2: u64,
    /// Longest time a message stays in the network: how long retransmissions are absorbed.
    pub t4: u64,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: T1_MS,
            t2: 4_000,
            t4: 5_000,
        }
    }
}

/// The timers of RFC 3261 §17 (A–K) and RFC 6026 (L, M).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerName {
    /// Client INVITE: retransmit the request.
    A,
    /// Client INVITE: give up waiting for any response.
    B,
    /// Client INVITE: absorb retransmitted final responses after the ACK.
    D,
    /// Client non-INVITE: retransmit the request.
    E,
    /// Client non-INVITE: give up waiting for a final response.
    F,
    /// Server INVITE: retransmit the final response.
    G,
    /// Server INVITE: give up waiting for the ACK.
    H,
    /// Server INVITE: absorb retransmitted ACKs.
    I,
    /// Server non-INVITE: absorb retransmitted requests.
    J,
    /// Client non-INVITE: absorb retransmitted final responses.
    K,
    /// Server INVITE: absorb retransmitted requests after a 2xx.
    L,
    /// Client INVITE: forward retransmitted and forked 2xx responses.
    M,
}

/// What a transaction asks of its owner.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// Transmit these bytes over the transaction's flow (first send or retransmission).
    Transmit(Vec<u8>),
    /// Call `on_timer(timer, …)` at `at` (ms). The owner never cancels timers: a machine ignores a
    /// timer that is no longer current (it remembers the deadline it last scheduled per timer and
    /// compares, and checks its state).
    Schedule { timer: TimerName, at: u64 },
    /// Client transactions: Timer B or F fired with no final response; the owner acts as if a
    /// 408 had arrived. Server INVITE: Timer H fired, no ACK came.
    Timeout,
    /// The transaction is over; the owner forgets it.
    Terminated,
}

/// Transaction states (RFC 3261 Figures 5–8, with Accepted from RFC 6026). Client INVITE: Calling,
/// Proceeding, Completed, Accepted. Client non-INVITE: Trying, Proceeding, Completed. Server
/// INVITE: Proceeding, Completed, Accepted, Confirmed. Server non-INVITE: Trying, Proceeding,
/// Completed. All end in Terminated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Accepted,
    Confirmed,
    Terminated,
}

/// What a transaction past its final response still does until `until` (RFC 3261 §17, RFC 6026):
/// it needs nothing but this, so its owner can keep this instead of the transaction.
#[derive(Debug, PartialEq, Eq)]
pub struct Lingering {
    pub until: u64,
    pub echo: Echo,
}

/// How a lingering transaction answers a retransmission.
#[derive(Debug, PartialEq, Eq)]
pub enum Echo {
    /// Drops it: server INVITE Accepted and Confirmed, client non-INVITE Completed.
    Absorb,
    /// Sends these bytes again: the final response to a retransmitted request (server
    /// non-INVITE Completed), the ACK to a retransmitted non-2xx response (client INVITE
    /// Completed).
    Resend(Box<[u8]>),
    /// Passes on every 2xx and drops other responses (client INVITE Accepted).
    PassSuccess,
}

/// Response classes as the machines tell them apart.
#[derive(Clone, Copy)]
pub(super) enum Class {
    Provisional,
    Success,
    Failure,
}

impl Class {
    /// `None` outside 100–699, which is no SIP status (RFC 3261 §7.2): such a call is ignored.
    pub(super) fn of(status: u16) -> Option<Class> {
        match status {
            100..=199 => Some(Class::Provisional),
            200..=299 => Some(Class::Success),
            300..=699 => Some(Class::Failure),
            _ => None,
        }
    }
}

/// State, transport and timer bookkeeping, common to the four machines.
#[derive(Debug)]
pub(super) struct Machine {
    pub(super) state: State,
    pub(super) reliable: bool,
    pub(super) timers: Timers,
    /// Per timer, the deadline last scheduled and not yet fired: the owner never cancels, so a
    /// firing counts only if it matches one.
    deadlines: [Option<u64>; TimerName::M as usize + 1],
}

impl Machine {
    pub(super) fn new(state: State, reliable: bool, timers: Timers) -> Machine {
        Machine {
            state,
            reliable,
            timers,
            deadlines: Default::default(),
        }
    }

    /// 64·T1: Timers B, F, H, J (RFC 3261 §17) and L, M (RFC 6026).
    pub(super) fn lifetime(&self) -> u64 {
        self.timers.t1.saturating_mul(64)
    }

    pub(super) fn schedule(&mut self, timer: TimerName, at: u64, out: &mut Vec<Output>) {
        self.deadlines[timer as usize] = Some(at);
        out.push(Output::Schedule { timer, at });
    }

    /// The deadline last scheduled for `timer`, if it has not fired.
    pub(super) fn deadline(&self, timer: TimerName) -> Option<u64> {
        self.deadlines[timer as usize]
    }

    /// Whether `timer` fires: it is pending and due. It is pending no more, so that a repeated
    /// call does nothing.
    pub(super) fn fire(&mut self, timer: TimerName, now: u64) -> bool {
        let slot = &mut self.deadlines[timer as usize];
        match *slot {
            Some(at) if at <= now => {
                *slot = None;
                true
            }
            _ => false,
        }
    }

    /// Enters `state` to absorb retransmissions until `timer` (D, I, J, K). Streams do not
    /// retransmit, so these timers are zero there and the transaction ends at once (§17).
    pub(super) fn linger(
        &mut self,
        state: State,
        timer: TimerName,
        wait: u64,
        now: u64,
        out: &mut Vec<Output>,
    ) {
        if self.reliable {
            self.terminate(out);
        } else {
            self.state = state;
            self.schedule(timer, now.saturating_add(wait), out);
        }
    }

    pub(super) fn terminate(&mut self, out: &mut Vec<Output>) {
        self.state = State::Terminated;
        out.push(Output::Terminated);
    }
}

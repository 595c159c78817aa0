//! INVITE client transaction (RFC 3261 §17.1.1) with the Accepted state of RFC 6026: after a 2xx
//! the transaction lives on for 64·T1 and passes on every further 2xx (retransmitted, or from
//! another fork), since the ACK for a 2xx is end to end and each 2xx is owed to the caller.

use super::machine::{Class, Machine};
use super::{Echo, Lingering, Output, State, TimerName, Timers};

/// Timer D: at least 32 s over unreliable transports, whatever T1 is (§17.1.1.2).
const TIMER_D_MS: u64 = 32_000;

/// The client side of an INVITE, owned by the proxy for each branch it forwards on.
#[derive(Debug)]
pub struct ClientInvite {
    machine: Machine,
    /// Kept only in Calling, for Timer A: a provisional or final response ends retransmission.
    request: Option<Box<[u8]>>,
    /// Timer A's next interval: T1, doubling without bound (only Timer B ends it).
    a_interval: u64,
    /// The ACK for a non-2xx final response, sent again for each retransmission of it.
    ack: Option<Box<[u8]>>,
    provisional: bool,
    final_response: bool,
}

impl ClientInvite {
    /// Sends the INVITE; starts in Calling.
    pub fn start(
        request: Vec<u8>,
        reliable: bool,
        timers: Timers,
        now: u64,
        out: &mut Vec<Output>,
    ) -> ClientInvite {
        let mut t = ClientInvite {
            machine: Machine::new(State::Calling, reliable, timers),
            request: (!reliable).then(|| request.clone().into_boxed_slice()),
            a_interval: timers.t1,
            ack: None,
            provisional: false,
            final_response: false,
        };
        out.push(Output::Transmit(request));
        if !reliable {
            t.machine
                .schedule(TimerName::A, now.saturating_add(timers.t1), out);
        }
        let at = now.saturating_add(t.machine.lifetime());
        t.machine.schedule(TimerName::B, at, out);
        t
    }

    pub fn state(&self) -> State {
        self.machine.state
    }

    /// Whether a provisional response arrived: only then may a CANCEL be sent (§9.1).
    pub fn has_provisional(&self) -> bool {
        self.provisional
    }

    /// Whether a final response arrived (a timeout is none).
    pub fn is_final(&self) -> bool {
        self.final_response
    }

    /// What is left to do in Accepted (pass on 2xx) and Completed (acknowledge again).
    pub fn lingering(&self) -> Option<Lingering> {
        let (timer, echo) = match (self.machine.state, &self.ack) {
            (State::Accepted, _) => (TimerName::M, Echo::PassSuccess),
            (State::Completed, Some(ack)) => (TimerName::D, Echo::Resend(ack.clone())),
            _ => return None,
        };
        let until = self.machine.deadline(timer)?;
        Some(Lingering { until, echo })
    }

    /// A response matched this transaction; true if the owner should pass it on. `make_ack`
    /// builds the ACK for a non-2xx final response (§17.1.1.3) and is called at most once.
    pub fn on_response(
        &mut self,
        status: u16,
        make_ack: impl FnOnce() -> Vec<u8>,
        now: u64,
        out: &mut Vec<Output>,
    ) -> bool {
        let Some(class) = Class::of(status) else {
            return false;
        };
        if matches!(self.machine.state, State::Calling) {
            self.request = None;
        }
        match (self.machine.state, class) {
            (State::Calling | State::Proceeding, Class::Provisional) => {
                self.machine.state = State::Proceeding;
                self.provisional = true;
                true
            }
            (State::Calling | State::Proceeding, Class::Success) => {
                self.final_response = true;
                self.machine.state = State::Accepted;
                let at = now.saturating_add(self.machine.lifetime());
                self.machine.schedule(TimerName::M, at, out);
                true
            }
            (State::Calling | State::Proceeding, Class::Failure) => {
                self.final_response = true;
                let ack = make_ack();
                if !self.machine.reliable {
                    self.ack = Some(ack.clone().into_boxed_slice());
                }
                out.push(Output::Transmit(ack));
                self.machine
                    .linger(State::Completed, TimerName::D, TIMER_D_MS, now, out);
                true
            }
            (State::Completed, Class::Failure) => {
                if let Some(ack) = &self.ack {
                    out.push(Output::Transmit(ack.to_vec()));
                }
                false
            }
            (State::Accepted, Class::Success) => true,
            _ => false,
        }
    }

    pub fn on_timer(&mut self, timer: TimerName, now: u64, out: &mut Vec<Output>) {
        if !self.machine.fire(timer, now) {
            return;
        }
        match (timer, self.machine.state) {
            (TimerName::A, State::Calling) => {
                if let Some(request) = &self.request {
                    out.push(Output::Transmit(request.to_vec()));
                }
                self.a_interval = self.a_interval.saturating_mul(2);
                let at = now.saturating_add(self.a_interval);
                self.machine.schedule(TimerName::A, at, out);
            }
            (TimerName::B, State::Calling) => {
                self.request = None;
                out.push(Output::Timeout);
                self.machine.terminate(out);
            }
            (TimerName::D, State::Completed) | (TimerName::M, State::Accepted) => {
                self.machine.terminate(out)
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::transaction::sim::{FOREVER, Owner, explore, transmits};

    const INVITE: &[u8] = b"INVITE";
    const ACK: &[u8] = b"ACK";

    fn start(reliable: bool) -> (Owner, ClientInvite, Vec<Output>) {
        let mut owner = Owner::default();
        let (t, out) = owner.call(|now, out| {
            ClientInvite::start(INVITE.to_vec(), reliable, Timers::default(), now, out)
        });
        (owner, t, out)
    }

    fn receive(owner: &mut Owner, t: &mut ClientInvite, status: u16) -> (bool, Vec<Output>) {
        owner.call(|now, out| t.on_response(status, || ACK.to_vec(), now, out))
    }

    #[test]
    fn no_answer_over_udp() {
        let (mut owner, mut t, out) = start(false);
        assert_eq!(
            out,
            vec![
                Output::Transmit(INVITE.to_vec()),
                Output::Schedule {
                    timer: TimerName::A,
                    at: 500
                },
                Output::Schedule {
                    timer: TimerName::B,
                    at: 32_000
                },
            ]
        );
        let log = owner.run_until(&mut t, FOREVER);
        assert_eq!(
            transmits(&log[..6], INVITE),
            vec![500, 1_500, 3_500, 7_500, 15_500, 31_500]
        );
        // A at 63 500 comes after the end.
        assert_eq!(
            log[6..],
            [(32_000, Output::Timeout), (32_000, Output::Terminated)]
        );
        assert_eq!(t.state(), State::Terminated);
        assert!(!t.is_final());
        assert!(!t.has_provisional());
        assert_eq!(receive(&mut owner, &mut t, 180), (false, vec![]));
    }

    #[test]
    fn no_answer_over_tcp() {
        let (mut owner, mut t, out) = start(true);
        assert_eq!(
            out,
            vec![
                Output::Transmit(INVITE.to_vec()),
                Output::Schedule {
                    timer: TimerName::B,
                    at: 32_000
                },
            ]
        );
        assert_eq!(
            owner.run_until(&mut t, FOREVER),
            vec![(32_000, Output::Timeout), (32_000, Output::Terminated)]
        );
    }

    #[test]
    fn provisional_stops_retransmissions_and_timer_b() {
        let (mut owner, mut t, _) = start(false);
        assert_eq!(
            transmits(&owner.run_until(&mut t, 1_000), INVITE),
            vec![500]
        );
        assert!(!t.has_provisional());
        assert_eq!(receive(&mut owner, &mut t, 100), (true, vec![]));
        assert_eq!(receive(&mut owner, &mut t, 180), (true, vec![]));
        assert_eq!(t.state(), State::Proceeding);
        assert!(t.has_provisional());
        assert!(!t.is_final());
        // A at 1 500 is stale; B is ignored in Proceeding (the proxy's Timer C ends a ringing call).
        assert_eq!(owner.run_until(&mut t, FOREVER), vec![]);
        assert_eq!(t.state(), State::Proceeding);
        assert_eq!(receive(&mut owner, &mut t, 183), (true, vec![]));
    }

    #[test]
    fn failure_over_udp_is_acknowledged_until_timer_d() {
        let (mut owner, mut t, _) = start(false);
        receive(&mut owner, &mut t, 180);
        owner.run_until(&mut t, 4_000);
        assert_eq!(
            receive(&mut owner, &mut t, 486),
            (
                true,
                vec![
                    Output::Transmit(ACK.to_vec()),
                    Output::Schedule {
                        timer: TimerName::D,
                        at: 36_000
                    },
                ]
            )
        );
        assert_eq!(t.state(), State::Completed);
        assert!(t.is_final());
        let again = owner.call(|now, out| t.on_response(486, || unreachable!(), now, out));
        assert_eq!(again, (false, vec![Output::Transmit(ACK.to_vec())]));
        assert_eq!(receive(&mut owner, &mut t, 180), (false, vec![]));
        assert_eq!(receive(&mut owner, &mut t, 200), (false, vec![]));
        assert_eq!(
            owner.run_until(&mut t, FOREVER),
            vec![(36_000, Output::Terminated)]
        );
        assert_eq!(receive(&mut owner, &mut t, 486), (false, vec![]));
    }

    #[test]
    fn failure_while_calling_stops_retransmissions() {
        let (mut owner, mut t, _) = start(false);
        owner.run_until(&mut t, 600);
        assert!(receive(&mut owner, &mut t, 503).0);
        assert!(!t.has_provisional());
        // A at 1 500 and B at 32 000 are stale.
        assert_eq!(
            owner.run_until(&mut t, FOREVER),
            vec![(32_600, Output::Terminated)]
        );
    }

    #[test]
    fn failure_over_tcp_ends_with_the_ack() {
        let (mut owner, mut t, _) = start(true);
        assert_eq!(
            receive(&mut owner, &mut t, 404),
            (
                true,
                vec![Output::Transmit(ACK.to_vec()), Output::Terminated]
            )
        );
        assert_eq!(t.state(), State::Terminated);
        assert!(t.is_final());
        assert_eq!(receive(&mut owner, &mut t, 404), (false, vec![]));
        assert_eq!(owner.run_until(&mut t, FOREVER), vec![]);
    }

    #[test]
    fn success_is_accepted_until_timer_m() {
        for reliable in [false, true] {
            let (mut owner, mut t, _) = start(reliable);
            owner.run_until(&mut t, 1_000);
            assert_eq!(
                receive(&mut owner, &mut t, 200),
                (
                    true,
                    vec![Output::Schedule {
                        timer: TimerName::M,
                        at: 33_000
                    }]
                )
            );
            assert_eq!(t.state(), State::Accepted);
            assert!(t.is_final());
            let again = owner.call(|now, out| t.on_response(200, || unreachable!(), now, out));
            assert_eq!(again, (true, vec![]));
            assert_eq!(receive(&mut owner, &mut t, 180), (false, vec![]));
            assert_eq!(receive(&mut owner, &mut t, 486), (false, vec![]));
            // Stale A and B timers neither retransmit nor time out.
            assert_eq!(
                owner.run_until(&mut t, FOREVER),
                vec![(33_000, Output::Terminated)]
            );
            assert_eq!(receive(&mut owner, &mut t, 200), (false, vec![]));
        }
    }

    #[test]
    fn timers_fire_only_when_scheduled_and_due() {
        let (_, mut t, _) = start(false);
        let mut out = Vec::new();
        t.on_timer(TimerName::A, 499, &mut out);
        t.on_timer(TimerName::D, 40_000, &mut out);
        t.on_timer(TimerName::M, 40_000, &mut out);
        assert_eq!(out, vec![]);
        t.on_timer(TimerName::A, 500, &mut out);
        assert_eq!(
            out,
            vec![
                Output::Transmit(INVITE.to_vec()),
                Output::Schedule {
                    timer: TimerName::A,
                    at: 1_500
                },
            ]
        );
        out.clear();
        t.on_timer(TimerName::A, 500, &mut out);
        assert_eq!(out, vec![]);
    }

    #[test]
    fn custom_timers() {
        let timers = Timers {
            t1: 100,
            t2: 300,
            t4: 1_000,
        };
        let mut owner = Owner::default();
        let (mut t, _) =
            owner.call(|now, out| ClientInvite::start(INVITE.to_vec(), false, timers, now, out));
        let log = owner.run_until(&mut t, FOREVER);
        assert_eq!(
            transmits(&log[..6], INVITE),
            vec![100, 300, 700, 1_500, 3_100, 6_300]
        );
        assert_eq!(
            log[6..],
            [(6_400, Output::Timeout), (6_400, Output::Terminated)]
        );
    }

    #[test]
    fn any_call_order() {
        for reliable in [false, true] {
            explore(
                &|out| ClientInvite::start(INVITE.to_vec(), reliable, Timers::default(), 0, out),
                &[
                    |t, now, out| t.on_response(180, || ACK.to_vec(), now, out),
                    |t, now, out| t.on_response(200, || ACK.to_vec(), now, out),
                    |t, now, out| t.on_response(486, || ACK.to_vec(), now, out),
                    |t, now, out| t.on_response(99, || ACK.to_vec(), now, out),
                ],
                &[
                    TimerName::A,
                    TimerName::B,
                    TimerName::D,
                    TimerName::M,
                    TimerName::G,
                ],
            );
        }
    }
}

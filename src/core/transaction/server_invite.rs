//! INVITE server transaction (RFC 3261 §17.2.1) with the Accepted state of RFC 6026: after a 2xx
//! the transaction lives on for 64·T1, so that a retransmitted INVITE is absorbed instead of
//! reaching the TU as a new request, while the TU's 2xx retransmissions (§13.3.1.4) still go out.

use super::machine::{Class, Machine};
use super::{Echo, Lingering, Output, State, TimerName, Timers};

/// The server side of an INVITE, owned by the proxy for each INVITE it receives.
#[derive(Debug)]
pub struct ServerInvite {
    machine: Machine,
    /// What a retransmitted INVITE gets: the latest provisional in Proceeding, the final response
    /// in Completed. Accepted and Confirmed only absorb, so they keep nothing.
    response: Option<Box<[u8]>>,
    /// Timer G's next interval: T1, doubling up to T2.
    g_interval: u64,
}

impl ServerInvite {
    /// Starts in Proceeding; sending 100 Trying at once (§17.2.1) is up to the owner.
    pub fn new(reliable: bool, timers: Timers) -> ServerInvite {
        ServerInvite {
            machine: Machine::new(State::Proceeding, reliable, timers),
            response: None,
            g_interval: timers.t1,
        }
    }

    pub fn state(&self) -> State {
        self.machine.state
    }

    /// What is left to do in Accepted and Confirmed: absorb retransmitted INVITEs and ACKs.
    pub fn lingering(&self) -> Option<Lingering> {
        let timer = match self.machine.state {
            State::Accepted => TimerName::L,
            State::Confirmed => TimerName::I,
            _ => return None,
        };
        let until = self.machine.deadline(timer)?;
        Some(Lingering {
            until,
            echo: Echo::Absorb,
        })
    }

    /// The INVITE arrived again. After a 2xx or the ACK it is absorbed.
    pub fn on_retransmission(&mut self, out: &mut Vec<Output>) {
        if let (State::Proceeding | State::Completed, Some(response)) =
            (self.machine.state, &self.response)
        {
            out.push(Output::Transmit(response.to_vec()));
        }
    }

    /// The TU responds. 2xx retransmissions are the TU's job and pass in Accepted; any other
    /// response after the final one is ignored.
    pub fn send_response(&mut self, status: u16, bytes: Vec<u8>, now: u64, out: &mut Vec<Output>) {
        match (self.machine.state, Class::of(status)) {
            (State::Proceeding, Some(Class::Provisional)) => {
                self.response = Some(bytes.clone().into_boxed_slice());
                out.push(Output::Transmit(bytes));
            }
            (State::Proceeding, Some(Class::Success)) => {
                self.response = None;
                out.push(Output::Transmit(bytes));
                self.machine.state = State::Accepted;
                let at = now.saturating_add(self.machine.lifetime());
                self.machine.schedule(TimerName::L, at, out);
            }
            (State::Accepted, Some(Class::Success)) => out.push(Output::Transmit(bytes)),
            (State::Proceeding, Some(Class::Failure)) => {
                self.response = Some(bytes.clone().into_boxed_slice());
                out.push(Output::Transmit(bytes));
                self.machine.state = State::Completed;
                if !self.machine.reliable {
                    let at = now.saturating_add(self.g_interval);
                    self.machine.schedule(TimerName::G, at, out);
                }
                let at = now.saturating_add(self.machine.lifetime());
                self.machine.schedule(TimerName::H, at, out);
            }
            _ => {}
        }
    }

    /// The ACK for a non-2xx final response (the ACK for a 2xx is no part of the transaction).
    pub fn on_ack(&mut self, now: u64, out: &mut Vec<Output>) {
        if self.machine.state == State::Completed {
            self.response = None;
            let t4 = self.machine.timers.t4;
            self.machine
                .linger(State::Confirmed, TimerName::I, t4, now, out);
        }
    }

    pub fn on_timer(&mut self, timer: TimerName, now: u64, out: &mut Vec<Output>) {
        if !self.machine.fire(timer, now) {
            return;
        }
        match (timer, self.machine.state) {
            (TimerName::G, State::Completed) => {
                if let Some(response) = &self.response {
                    out.push(Output::Transmit(response.to_vec()));
                }
                self.g_interval = self
                    .g_interval
                    .saturating_mul(2)
                    .min(self.machine.timers.t2);
                let at = now.saturating_add(self.g_interval);
                self.machine.schedule(TimerName::G, at, out);
            }
            (TimerName::H, State::Completed) => {
                self.response = None;
                out.push(Output::Timeout);
                self.machine.terminate(out);
            }
            (TimerName::I, State::Confirmed) | (TimerName::L, State::Accepted) => {
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

    fn tx(bytes: &[u8]) -> Output {
        Output::Transmit(bytes.to_vec())
    }

    fn start(reliable: bool) -> (Owner, ServerInvite) {
        (
            Owner::default(),
            ServerInvite::new(reliable, Timers::default()),
        )
    }

    fn respond(owner: &mut Owner, t: &mut ServerInvite, status: u16) -> Vec<Output> {
        let bytes = status.to_string().into_bytes();
        owner
            .call(|now, out| t.send_response(status, bytes, now, out))
            .1
    }

    fn retransmission(owner: &mut Owner, t: &mut ServerInvite) -> Vec<Output> {
        owner.call(|_, out| t.on_retransmission(out)).1
    }

    #[test]
    fn retransmitted_invite_gets_the_latest_provisional() {
        let (mut owner, mut t) = start(false);
        assert_eq!(retransmission(&mut owner, &mut t), vec![]);
        assert_eq!(respond(&mut owner, &mut t, 100), vec![tx(b"100")]);
        assert_eq!(retransmission(&mut owner, &mut t), vec![tx(b"100")]);
        assert_eq!(respond(&mut owner, &mut t, 180), vec![tx(b"180")]);
        assert_eq!(retransmission(&mut owner, &mut t), vec![tx(b"180")]);
        assert_eq!(t.state(), State::Proceeding);
    }

    #[test]
    fn failure_over_udp_retransmits_until_the_ack() {
        let (mut owner, mut t) = start(false);
        respond(&mut owner, &mut t, 180);
        assert_eq!(
            respond(&mut owner, &mut t, 486),
            vec![
                tx(b"486"),
                Output::Schedule {
                    timer: TimerName::G,
                    at: 500
                },
                Output::Schedule {
                    timer: TimerName::H,
                    at: 32_000
                },
            ]
        );
        assert_eq!(t.state(), State::Completed);
        assert_eq!(retransmission(&mut owner, &mut t), vec![tx(b"486")]);
        assert_eq!(respond(&mut owner, &mut t, 200), vec![]);
        assert_eq!(respond(&mut owner, &mut t, 500), vec![]);
        assert_eq!(
            transmits(&owner.run_until(&mut t, 16_000), b"486"),
            vec![500, 1_500, 3_500, 7_500, 11_500, 15_500]
        );
        assert_eq!(
            owner.call(|now, out| t.on_ack(now, out)).1,
            vec![Output::Schedule {
                timer: TimerName::I,
                at: 21_000
            }]
        );
        assert_eq!(t.state(), State::Confirmed);
        assert_eq!(retransmission(&mut owner, &mut t), vec![]);
        assert_eq!(owner.call(|now, out| t.on_ack(now, out)).1, vec![]);
        // G at 19 500 and H at 32 000 are stale.
        assert_eq!(
            owner.run_until(&mut t, FOREVER),
            vec![(21_000, Output::Terminated)]
        );
        assert_eq!(t.state(), State::Terminated);
    }

    #[test]
    fn failure_over_udp_without_ack_times_out() {
        let (mut owner, mut t) = start(false);
        respond(&mut owner, &mut t, 486);
        let log = owner.run_until(&mut t, FOREVER);
        assert_eq!(
            transmits(&log[..10], b"486"),
            vec![
                500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500
            ]
        );
        assert_eq!(
            log[10..],
            [(32_000, Output::Timeout), (32_000, Output::Terminated)]
        );
        assert_eq!(owner.call(|now, out| t.on_ack(now, out)).1, vec![]);
        assert_eq!(retransmission(&mut owner, &mut t), vec![]);
    }

    #[test]
    fn failure_over_tcp_ends_with_the_ack() {
        let (mut owner, mut t) = start(true);
        assert_eq!(
            respond(&mut owner, &mut t, 603),
            vec![
                tx(b"603"),
                Output::Schedule {
                    timer: TimerName::H,
                    at: 32_000
                },
            ]
        );
        owner.run_until(&mut t, 1_000);
        assert_eq!(
            owner.call(|now, out| t.on_ack(now, out)).1,
            vec![Output::Terminated]
        );
        assert_eq!(t.state(), State::Terminated);
        assert_eq!(owner.run_until(&mut t, FOREVER), vec![]);
    }

    #[test]
    fn failure_over_tcp_without_ack_times_out() {
        let (mut owner, mut t) = start(true);
        respond(&mut owner, &mut t, 486);
        assert_eq!(
            owner.run_until(&mut t, FOREVER),
            vec![(32_000, Output::Timeout), (32_000, Output::Terminated)]
        );
    }

    #[test]
    fn success_is_accepted_until_timer_l() {
        for reliable in [false, true] {
            let (mut owner, mut t) = start(reliable);
            respond(&mut owner, &mut t, 180);
            owner.run_until(&mut t, 2_000);
            assert_eq!(
                respond(&mut owner, &mut t, 200),
                vec![
                    tx(b"200"),
                    Output::Schedule {
                        timer: TimerName::L,
                        at: 34_000
                    },
                ]
            );
            assert_eq!(t.state(), State::Accepted);
            assert_eq!(retransmission(&mut owner, &mut t), vec![]);
            assert_eq!(owner.call(|now, out| t.on_ack(now, out)).1, vec![]);
            assert_eq!(respond(&mut owner, &mut t, 200), vec![tx(b"200")]);
            assert_eq!(respond(&mut owner, &mut t, 180), vec![]);
            assert_eq!(respond(&mut owner, &mut t, 486), vec![]);
            assert_eq!(t.state(), State::Accepted);
            assert_eq!(
                owner.run_until(&mut t, FOREVER),
                vec![(34_000, Output::Terminated)]
            );
        }
    }

    #[test]
    fn timers_fire_only_when_scheduled_and_due() {
        let (mut owner, mut t) = start(false);
        respond(&mut owner, &mut t, 486);
        let mut out = Vec::new();
        t.on_timer(TimerName::G, 499, &mut out);
        t.on_timer(TimerName::I, 40_000, &mut out);
        t.on_timer(TimerName::L, 40_000, &mut out);
        assert_eq!(out, vec![]);
        t.on_timer(TimerName::G, 500, &mut out);
        assert_eq!(
            out,
            vec![
                tx(b"486"),
                Output::Schedule {
                    timer: TimerName::G,
                    at: 1_500
                },
            ]
        );
        out.clear();
        t.on_timer(TimerName::G, 500, &mut out);
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
        let mut t = ServerInvite::new(false, timers);
        respond(&mut owner, &mut t, 500);
        let log = owner.run_until(&mut t, 1_000);
        assert_eq!(transmits(&log, b"500"), vec![100, 300, 600, 900]);
        owner.call(|now, out| t.on_ack(now, out));
        assert_eq!(
            owner.run_until(&mut t, FOREVER),
            vec![(2_000, Output::Terminated)]
        );
    }

    #[test]
    fn any_call_order() {
        for reliable in [false, true] {
            explore(
                &|_| ServerInvite::new(reliable, Timers::default()),
                &[
                    |t, now, out| t.send_response(100, b"100".to_vec(), now, out),
                    |t, now, out| t.send_response(200, b"200".to_vec(), now, out),
                    |t, now, out| t.send_response(486, b"486".to_vec(), now, out),
                    |t, now, out| t.send_response(700, b"700".to_vec(), now, out),
                    |t, _, out| t.on_retransmission(out),
                    |t, now, out| t.on_ack(now, out),
                ],
                &[
                    TimerName::G,
                    TimerName::H,
                    TimerName::I,
                    TimerName::L,
                    TimerName::A,
                ],
            );
        }
    }
}

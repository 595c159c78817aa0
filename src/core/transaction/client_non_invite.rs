//! Non-INVITE client transaction (RFC 3261 §17.1.2): retransmits the request over unreliable
//! transports until a final response, and gives up after 64·T1.

use super::machine::{Class, Machine};
use super::{Echo, Lingering, Output, State, TimerName, Timers};

/// The client side of any request but INVITE and ACK.
#[derive(Debug)]
pub struct ClientNonInvite {
    machine: Machine,
    /// Kept until a final response, for Timer E; `None` over reliable transports.
    request: Option<Box<[u8]>>,
    /// Timer E's next interval in Trying: T1, doubling up to T2.
    e_interval: u64,
}

impl ClientNonInvite {
    /// Sends the request; starts in Trying.
    pub fn start(
        request: Vec<u8>,
        reliable: bool,
        timers: Timers,
        now: u64,
        out: &mut Vec<Output>,
    ) -> ClientNonInvite {
        let mut t = ClientNonInvite {
            machine: Machine::new(State::Trying, reliable, timers),
            request: (!reliable).then(|| request.clone().into_boxed_slice()),
            e_interval: timers.t1,
        };
        out.push(Output::Transmit(request));
        if !reliable {
            t.machine
                .schedule(TimerName::E, now.saturating_add(timers.t1), out);
        }
        let at = now.saturating_add(t.machine.lifetime());
        t.machine.schedule(TimerName::F, at, out);
        t
    }

    pub fn state(&self) -> State {
        self.machine.state
    }

    /// What is left to do in Completed: absorb retransmitted final responses.
    pub fn lingering(&self) -> Option<Lingering> {
        if self.machine.state != State::Completed {
            return None;
        }
        let until = self.machine.deadline(TimerName::K)?;
        Some(Lingering {
            until,
            echo: Echo::Absorb,
        })
    }

    /// A response matched this transaction; true if the owner should pass it on (retransmitted
    /// final responses are absorbed).
    pub fn on_response(&mut self, status: u16, now: u64, out: &mut Vec<Output>) -> bool {
        if !matches!(self.machine.state, State::Trying | State::Proceeding) {
            return false;
        }
        match Class::of(status) {
            Some(Class::Provisional) => {
                self.machine.state = State::Proceeding;
                true
            }
            Some(Class::Success | Class::Failure) => {
                self.request = None;
                let t4 = self.machine.timers.t4;
                self.machine
                    .linger(State::Completed, TimerName::K, t4, now, out);
                true
            }
            None => false,
        }
    }

    pub fn on_timer(&mut self, timer: TimerName, now: u64, out: &mut Vec<Output>) {
        if !self.machine.fire(timer, now) {
            return;
        }
        match (timer, self.machine.state) {
            (TimerName::E, State::Trying) => {
                self.retransmit(out);
                self.e_interval = self
                    .e_interval
                    .saturating_mul(2)
                    .min(self.machine.timers.t2);
                let at = now.saturating_add(self.e_interval);
                self.machine.schedule(TimerName::E, at, out);
            }
            // A provisional response means the request arrived: retransmit only every T2.
            (TimerName::E, State::Proceeding) => {
                self.retransmit(out);
                let at = now.saturating_add(self.machine.timers.t2);
                self.machine.schedule(TimerName::E, at, out);
            }
            (TimerName::F, State::Trying | State::Proceeding) => {
                self.request = None;
                out.push(Output::Timeout);
                self.machine.terminate(out);
            }
            (TimerName::K, State::Completed) => self.machine.terminate(out),
            _ => {}
        }
    }

    fn retransmit(&self, out: &mut Vec<Output>) {
        if let Some(request) = &self.request {
            out.push(Output::Transmit(request.to_vec()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::transaction::sim::{FOREVER, Owner, explore, transmits};

    const OPTIONS: &[u8] = b"OPTIONS";

    fn start(reliable: bool) -> (Owner, ClientNonInvite, Vec<Output>) {
        let mut owner = Owner::default();
        let (t, out) = owner.call(|now, out| {
            ClientNonInvite::start(OPTIONS.to_vec(), reliable, Timers::default(), now, out)
        });
        (owner, t, out)
    }

    fn receive(owner: &mut Owner, t: &mut ClientNonInvite, status: u16) -> (bool, Vec<Output>) {
        owner.call(|now, out| t.on_response(status, now, out))
    }

    #[test]
    fn no_answer_over_udp() {
        let (mut owner, mut t, out) = start(false);
        assert_eq!(
            out,
            vec![
                Output::Transmit(OPTIONS.to_vec()),
                Output::Schedule {
                    timer: TimerName::E,
                    at: 500
                },
                Output::Schedule {
                    timer: TimerName::F,
                    at: 32_000
                },
            ]
        );
        let log = owner.run_until(&mut t, FOREVER);
        assert_eq!(
            transmits(&log[..10], OPTIONS),
            vec![
                500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500
            ]
        );
        // E at 35 500 comes after the end.
        assert_eq!(
            log[10..],
            [(32_000, Output::Timeout), (32_000, Output::Terminated)]
        );
        assert_eq!(t.state(), State::Terminated);
        assert_eq!(receive(&mut owner, &mut t, 200), (false, vec![]));
    }

    #[test]
    fn no_answer_over_tcp() {
        let (mut owner, mut t, out) = start(true);
        assert_eq!(
            out,
            vec![
                Output::Transmit(OPTIONS.to_vec()),
                Output::Schedule {
                    timer: TimerName::F,
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
    fn proceeding_retransmits_every_t2_until_timer_f() {
        let (mut owner, mut t, _) = start(false);
        owner.run_until(&mut t, 1_000);
        assert_eq!(receive(&mut owner, &mut t, 100), (true, vec![]));
        assert_eq!(t.state(), State::Proceeding);
        assert_eq!(receive(&mut owner, &mut t, 180), (true, vec![]));
        let log = owner.run_until(&mut t, FOREVER);
        assert_eq!(
            transmits(&log[..8], OPTIONS),
            vec![1_500, 5_500, 9_500, 13_500, 17_500, 21_500, 25_500, 29_500]
        );
        assert_eq!(
            log[8..],
            [(32_000, Output::Timeout), (32_000, Output::Terminated)]
        );
    }

    #[test]
    fn final_response_over_udp_is_absorbed_until_timer_k() {
        let (mut owner, mut t, _) = start(false);
        receive(&mut owner, &mut t, 100);
        owner.run_until(&mut t, 2_000);
        assert_eq!(
            receive(&mut owner, &mut t, 200),
            (
                true,
                vec![Output::Schedule {
                    timer: TimerName::K,
                    at: 7_000
                }]
            )
        );
        assert_eq!(t.state(), State::Completed);
        assert_eq!(receive(&mut owner, &mut t, 200), (false, vec![]));
        assert_eq!(receive(&mut owner, &mut t, 100), (false, vec![]));
        // E at 5 500 is stale, F at 32 000 ignored.
        assert_eq!(
            owner.run_until(&mut t, FOREVER),
            vec![(7_000, Output::Terminated)]
        );
        assert_eq!(t.state(), State::Terminated);
    }

    #[test]
    fn final_response_over_tcp_ends_at_once() {
        let (mut owner, mut t, _) = start(true);
        assert_eq!(
            receive(&mut owner, &mut t, 401),
            (true, vec![Output::Terminated])
        );
        assert_eq!(t.state(), State::Terminated);
        assert_eq!(receive(&mut owner, &mut t, 401), (false, vec![]));
        assert_eq!(owner.run_until(&mut t, FOREVER), vec![]);
    }

    #[test]
    fn timers_fire_only_when_scheduled_and_due() {
        let (_, mut t, _) = start(false);
        let mut out = Vec::new();
        t.on_timer(TimerName::E, 499, &mut out);
        t.on_timer(TimerName::K, 40_000, &mut out);
        assert_eq!(out, vec![]);
        t.on_timer(TimerName::E, 500, &mut out);
        assert_eq!(
            out,
            vec![
                Output::Transmit(OPTIONS.to_vec()),
                Output::Schedule {
                    timer: TimerName::E,
                    at: 1_500
                },
            ]
        );
        out.clear();
        t.on_timer(TimerName::E, 500, &mut out);
        assert_eq!(out, vec![]);
    }

    #[test]
    fn any_call_order() {
        for reliable in [false, true] {
            explore(
                &|out| {
                    ClientNonInvite::start(OPTIONS.to_vec(), reliable, Timers::default(), 0, out)
                },
                &[
                    |t, now, out| t.on_response(100, now, out),
                    |t, now, out| t.on_response(200, now, out),
                    |t, now, out| t.on_response(503, now, out),
                    |t, now, out| t.on_response(1_000, now, out),
                ],
                &[TimerName::E, TimerName::F, TimerName::K, TimerName::A],
            );
        }
    }
}

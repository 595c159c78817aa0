//! Non-INVITE server transaction (RFC 3261 §17.2.2): answers a retransmitted request with the
//! latest response instead of passing it to the TU again.

use super::machine::{Class, Machine};
use super::{Echo, Lingering, Output, State, TimerName, Timers};

/// The server side of any request but INVITE and ACK.
#[derive(Debug)]
pub struct ServerNonInvite {
    machine: Machine,
    /// What a retransmitted request gets: the latest provisional in Proceeding, the final
    /// response in Completed.
    response: Option<Box<[u8]>>,
}

impl ServerNonInvite {
    /// Starts in Trying: no 100 Trying for non-INVITE requests unless the TU sends one (§17.2.2).
    pub fn new(reliable: bool, timers: Timers) -> ServerNonInvite {
        ServerNonInvite {
            machine: Machine::new(State::Trying, reliable, timers),
            response: None,
        }
    }

    pub fn state(&self) -> State {
        self.machine.state
    }

    /// What is left to do in Completed: answer retransmitted requests with the final response.
    pub fn lingering(&self) -> Option<Lingering> {
        match (self.machine.state, &self.response) {
            (State::Completed, Some(response)) => Some(Lingering {
                until: self.machine.deadline(TimerName::J)?,
                echo: Echo::Resend(response.clone()),
            }),
            _ => None,
        }
    }

    /// The request arrived again. In Trying it is absorbed.
    pub fn on_retransmission(&mut self, out: &mut Vec<Output>) {
        if let (State::Proceeding | State::Completed, Some(response)) =
            (self.machine.state, &self.response)
        {
            out.push(Output::Transmit(response.to_vec()));
        }
    }

    /// The TU responds; anything after the final response is ignored.
    pub fn send_response(&mut self, status: u16, bytes: Vec<u8>, now: u64, out: &mut Vec<Output>) {
        if !matches!(self.machine.state, State::Trying | State::Proceeding) {
            return;
        }
        match Class::of(status) {
            Some(Class::Provisional) => {
                self.response = Some(bytes.clone().into_boxed_slice());
                out.push(Output::Transmit(bytes));
                self.machine.state = State::Proceeding;
            }
            Some(Class::Success | Class::Failure) => {
                // Streams do not retransmit: the transaction ends at once (Timer J is zero).
                self.response = (!self.machine.reliable).then(|| bytes.clone().into_boxed_slice());
                out.push(Output::Transmit(bytes));
                let wait = self.machine.lifetime();
                self.machine
                    .linger(State::Completed, TimerName::J, wait, now, out);
            }
            None => {}
        }
    }

    pub fn on_timer(&mut self, timer: TimerName, now: u64, out: &mut Vec<Output>) {
        if self.machine.fire(timer, now)
            && timer == TimerName::J
            && self.machine.state == State::Completed
        {
            self.machine.terminate(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::transaction::sim::{FOREVER, Owner, explore};

    fn tx(bytes: &[u8]) -> Output {
        Output::Transmit(bytes.to_vec())
    }

    fn respond(owner: &mut Owner, t: &mut ServerNonInvite, status: u16) -> Vec<Output> {
        let bytes = status.to_string().into_bytes();
        owner
            .call(|now, out| t.send_response(status, bytes, now, out))
            .1
    }

    fn retransmission(owner: &mut Owner, t: &mut ServerNonInvite) -> Vec<Output> {
        owner.call(|_, out| t.on_retransmission(out)).1
    }

    #[test]
    fn over_udp_absorbs_retransmissions_until_timer_j() {
        let mut owner = Owner::default();
        let mut t = ServerNonInvite::new(false, Timers::default());
        assert_eq!(t.state(), State::Trying);
        assert_eq!(retransmission(&mut owner, &mut t), vec![]);
        assert_eq!(respond(&mut owner, &mut t, 100), vec![tx(b"100")]);
        assert_eq!(t.state(), State::Proceeding);
        assert_eq!(retransmission(&mut owner, &mut t), vec![tx(b"100")]);
        owner.run_until(&mut t, 1_000);
        assert_eq!(
            respond(&mut owner, &mut t, 200),
            vec![
                tx(b"200"),
                Output::Schedule {
                    timer: TimerName::J,
                    at: 33_000
                },
            ]
        );
        assert_eq!(t.state(), State::Completed);
        assert_eq!(retransmission(&mut owner, &mut t), vec![tx(b"200")]);
        assert_eq!(respond(&mut owner, &mut t, 500), vec![]);
        assert_eq!(respond(&mut owner, &mut t, 100), vec![]);
        assert_eq!(retransmission(&mut owner, &mut t), vec![tx(b"200")]);
        assert_eq!(
            owner.run_until(&mut t, FOREVER),
            vec![(33_000, Output::Terminated)]
        );
        assert_eq!(retransmission(&mut owner, &mut t), vec![]);
    }

    #[test]
    fn final_response_from_trying() {
        let mut owner = Owner::default();
        let mut t = ServerNonInvite::new(false, Timers::default());
        assert_eq!(
            respond(&mut owner, &mut t, 404),
            vec![
                tx(b"404"),
                Output::Schedule {
                    timer: TimerName::J,
                    at: 32_000
                },
            ]
        );
        assert_eq!(retransmission(&mut owner, &mut t), vec![tx(b"404")]);
    }

    #[test]
    fn over_tcp_ends_with_the_final_response() {
        let mut owner = Owner::default();
        let mut t = ServerNonInvite::new(true, Timers::default());
        assert_eq!(respond(&mut owner, &mut t, 180), vec![tx(b"180")]);
        assert_eq!(
            respond(&mut owner, &mut t, 200),
            vec![tx(b"200"), Output::Terminated]
        );
        assert_eq!(t.state(), State::Terminated);
        assert_eq!(retransmission(&mut owner, &mut t), vec![]);
        assert_eq!(respond(&mut owner, &mut t, 200), vec![]);
    }

    #[test]
    fn timer_j_fires_only_when_due() {
        let mut owner = Owner::default();
        let mut t = ServerNonInvite::new(
            false,
            Timers {
                t1: 100,
                t2: 400,
                t4: 500,
            },
        );
        respond(&mut owner, &mut t, 200);
        let mut out = Vec::new();
        t.on_timer(TimerName::J, 6_399, &mut out);
        t.on_timer(TimerName::K, 6_400, &mut out);
        assert_eq!(out, vec![]);
        t.on_timer(TimerName::J, 6_400, &mut out);
        assert_eq!(out, vec![Output::Terminated]);
    }

    #[test]
    fn any_call_order() {
        for reliable in [false, true] {
            explore(
                &|_| ServerNonInvite::new(reliable, Timers::default()),
                &[
                    |t, now, out| t.send_response(100, b"100".to_vec(), now, out),
                    |t, now, out| t.send_response(200, b"200".to_vec(), now, out),
                    |t, now, out| t.send_response(486, b"486".to_vec(), now, out),
                    |t, now, out| t.send_response(0, b"0".to_vec(), now, out),
                    |t, _, out| t.on_retransmission(out),
                ],
                &[TimerName::J, TimerName::E, TimerName::K],
            );
        }
    }
}

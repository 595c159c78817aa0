//! A test owner for the state machines: keeps every timer they schedule and fires it in time
//! order, never cancelling, as the network layer does.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Debug;

use super::TimerName;
use super::{ClientInvite, ClientNonInvite, Output, ServerInvite, ServerNonInvite, State};

/// Runs every timer still pending.
pub const FOREVER: u64 = u64::MAX;

pub trait Transaction {
    fn on_timer(&mut self, timer: TimerName, now: u64, out: &mut Vec<Output>);
    fn state(&self) -> State;
}

macro_rules! transaction {
    ($($machine:ty),*) => {$(
        impl Transaction for $machine {
            fn on_timer(&mut self, timer: TimerName, now: u64, out: &mut Vec<Output>) {
                <$machine>::on_timer(self, timer, now, out)
            }
            fn state(&self) -> State {
                <$machine>::state(self)
            }
        }
    )*};
}

transaction!(ClientInvite, ClientNonInvite, ServerInvite, ServerNonInvite);

#[derive(Default)]
pub struct Owner {
    pub now: u64,
    timers: BinaryHeap<Reverse<(u64, TimerName)>>,
}

impl Owner {
    /// Makes a call at `now`; keeps the timers it schedules and returns its result and outputs.
    pub fn call<R>(&mut self, f: impl FnOnce(u64, &mut Vec<Output>) -> R) -> (R, Vec<Output>) {
        let mut out = Vec::new();
        let result = f(self.now, &mut out);
        self.keep(&out);
        (result, out)
    }

    /// Fires the timers due by `until` in time order, then moves the clock to `until`. Returns
    /// what the firings output with their times, without the schedules (kept and fired in turn).
    pub fn run_until(&mut self, t: &mut impl Transaction, until: u64) -> Vec<(u64, Output)> {
        let mut log = Vec::new();
        while let Some(&Reverse((at, timer))) = self.timers.peek()
            && at <= until
        {
            self.timers.pop();
            self.now = at;
            let mut out = Vec::new();
            t.on_timer(timer, at, &mut out);
            self.keep(&out);
            log.extend(
                out.into_iter()
                    .filter(|o| !matches!(o, Output::Schedule { .. }))
                    .map(|o| (at, o)),
            );
        }
        self.now = until;
        log
    }

    fn keep(&mut self, out: &[Output]) {
        for output in out {
            if let Output::Schedule { timer, at } = *output {
                assert!(at >= self.now, "{timer:?} scheduled in the past");
                self.timers.push(Reverse((at, timer)));
            }
        }
    }
}

/// The times of `log`, which must be transmissions of `bytes` only.
pub fn transmits(log: &[(u64, Output)], bytes: &[u8]) -> Vec<u64> {
    log.iter()
        .map(|(at, output)| {
            assert_eq!(*output, Output::Transmit(bytes.to_vec()), "at {at}");
            *at
        })
        .collect()
}

/// A call on machine `M` at `now`, returning what it returns.
pub type Call<M, R> = fn(&mut M, u64, &mut Vec<Output>) -> R;

/// Makes every sequence of five events (a call, or firing a timer) on a fresh machine, 40 s apart
/// so that every scheduled timer is due, and checks after each one that outputs come in order
/// (transmissions, schedules, timeout, end), that `Terminated` is output exactly when the state
/// becomes Terminated, and that a terminated machine does nothing and returns the default
/// (`false` for "pass to the TU").
pub fn explore<M: Transaction, R: Default + PartialEq + Debug>(
    fresh: &dyn Fn(&mut Vec<Output>) -> M,
    calls: &[Call<M, R>],
    timers: &[TimerName],
) {
    const DEPTH: u32 = 5;
    let events = calls.len() + timers.len();
    let rank = |output: &Output| match output {
        Output::Transmit(_) => 0,
        Output::Schedule { .. } => 1,
        Output::Timeout => 2,
        Output::Terminated => 3,
    };
    for sequence in 0..events.pow(DEPTH) {
        let mut t = fresh(&mut Vec::new());
        let mut index = sequence;
        for step in 1..=DEPTH {
            let event = index % events;
            index /= events;
            let now = u64::from(step) * 40_000;
            let before = t.state();
            let mut out = Vec::new();
            let result = match calls.get(event) {
                Some(call) => call(&mut t, now, &mut out),
                None => {
                    t.on_timer(timers[event - calls.len()], now, &mut out);
                    R::default()
                }
            };
            let after = t.state();
            let context =
                || format!("sequence {sequence} step {step}: {before:?} → {after:?} {out:?}");
            if before == State::Terminated {
                assert!(out.is_empty() && result == R::default(), "{}", context());
            }
            assert!(out.is_sorted_by_key(rank), "{}", context());
            let ended = out.last() == Some(&Output::Terminated);
            assert_eq!(
                ended,
                before != State::Terminated && after == State::Terminated,
                "{}",
                context()
            );
            let count = |wanted: Output| out.iter().filter(|o| **o == wanted).count();
            assert!(count(Output::Terminated) <= 1, "{}", context());
            assert!(
                count(Output::Timeout) <= usize::from(ended),
                "{}",
                context()
            );
            for output in &out {
                if let Output::Schedule { at, .. } = output {
                    assert!(*at > now, "{}", context());
                }
            }
        }
    }
}

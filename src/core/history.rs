//! What the owner's pages show of the past, in fixed-size memory: per-minute counters of the last
//! 24 hours (registrations, calls, security events), the most recent calls and the most recent
//! security events. Nothing here grows with traffic; nothing survives a restart.

use std::collections::VecDeque;
use std::net::IpAddr;

use super::security::SecurityEvent;

/// Minutes in the counter ring: 24 hours.
pub const MINUTES: usize = 24 * 60;

/// Calls kept for the Calls page.
pub const RECENT_CALLS: usize = 100;

/// Security events kept for the Security page.
pub const RECENT_EVENTS: usize = 100;

/// The longest party name kept (From and To user parts, display names).
const MAX_PARTY: usize = 64;

/// Counts of one minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Minute {
    pub registrations: u32,
    pub calls: u32,
    pub security: u32,
}

/// A call as the Calls page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub call_id: String,
    pub from: String,
    pub to: String,
    pub start_ms: u64,
    /// The final status the caller got, and when; `None` while it rings.
    pub outcome: Option<(u16, u64)>,
    /// When a BYE ended an answered call.
    pub ended_ms: Option<u64>,
}

/// A security event as the Security page lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecurityRecord {
    /// What happened, as the log line's first words.
    pub name: &'static str,
    pub address: IpAddr,
    pub at_ms: u64,
}

pub struct History {
    /// Slot `minute % MINUTES` holds that minute's counts, with the minute it is for.
    minutes: Box<[(u64, Minute)]>,
    calls: VecDeque<CallRecord>,
    events: VecDeque<SecurityRecord>,
}

impl Default for History {
    fn default() -> History {
        History {
            minutes: vec![(u64::MAX, Minute::default()); MINUTES].into_boxed_slice(),
            calls: VecDeque::with_capacity(RECENT_CALLS),
            events: VecDeque::with_capacity(RECENT_EVENTS),
        }
    }
}

impl History {
    fn minute(&mut self, now_ms: u64) -> &mut Minute {
        let minute = now_ms / 60_000;
        let slot = &mut self.minutes[(minute % MINUTES as u64) as usize];
        if slot.0 != minute {
            *slot = (minute, Minute::default());
        }
        &mut slot.1
    }

    pub fn registration(&mut self, now_ms: u64) {
        self.minute(now_ms).registrations += 1;
    }

    pub fn security(&mut self, event: &SecurityEvent, now_ms: u64) {
        self.minute(now_ms).security += 1;
        if self.events.len() == RECENT_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(SecurityRecord {
            name: event.name(),
            address: event.source().0.ip(),
            at_ms: now_ms,
        });
    }

    /// A new call (an INVITE outside a dialog), ringing.
    pub fn call_started(&mut self, call_id: &str, from: &str, to: &str, now_ms: u64) {
        self.minute(now_ms).calls += 1;
        if self.calls.len() == RECENT_CALLS {
            self.calls.pop_front();
        }
        self.calls.push_back(CallRecord {
            call_id: call_id.to_owned(),
            from: shorten(from),
            to: shorten(to),
            start_ms: now_ms,
            outcome: None,
            ended_ms: None,
        });
    }

    /// The final response the caller of `call_id` got.
    pub fn call_answered(&mut self, call_id: &str, status: u16, now_ms: u64) {
        let ringing = self.calls.iter_mut().rev().find(|c| c.call_id == call_id);
        if let Some(call) = ringing.filter(|c| c.outcome.is_none()) {
            call.outcome = Some((status, now_ms));
        }
    }

    /// A BYE in the dialog of `call_id`.
    pub fn call_ended(&mut self, call_id: &str, now_ms: u64) {
        let answered = self.calls.iter_mut().rev().find(|c| c.call_id == call_id);
        if let Some(call) = answered.filter(|c| c.ended_ms.is_none()) {
            call.ended_ms = Some(now_ms);
        }
    }

    /// The last 24 hours, oldest minute first, ending with the minute of `now_ms`.
    pub fn last_day(&self, now_ms: u64) -> Vec<Minute> {
        let now = now_ms / 60_000;
        (0..MINUTES as u64)
            .rev()
            .map(|ago| {
                let minute = now.wrapping_sub(ago);
                let (stamp, counts) = self.minutes[(minute % MINUTES as u64) as usize];
                if stamp == minute {
                    counts
                } else {
                    Minute::default()
                }
            })
            .collect()
    }

    /// Recent calls, newest first.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.calls.iter().rev().cloned().collect()
    }

    /// Recent security events, newest first.
    pub fn events(&self) -> Vec<SecurityRecord> {
        self.events.iter().rev().copied().collect()
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(MAX_PARTY).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;

    #[test]
    fn minutes_older_than_a_day_are_forgotten() {
        let mut history = History::default();
        let start = 1_000 * HOUR;
        history.registration(start);
        history.registration(start + 1);
        history.call_started("a", "1000", "1001", start + 60_000);
        let day = history.last_day(start + 60_000);
        assert_eq!(day.len(), MINUTES);
        assert_eq!(day[MINUTES - 2].registrations, 2);
        assert_eq!(day[MINUTES - 1].calls, 1);
        let day_later = history.last_day(start + 24 * HOUR);
        assert_eq!(
            day_later[0].calls, 1,
            "the call's minute is the oldest kept"
        );
        assert!(day_later[1..].iter().all(|m| *m == Minute::default()));
        history.registration(start + 24 * HOUR);
        let day_later = history.last_day(start + 24 * HOUR);
        assert_eq!(
            day_later[MINUTES - 1].registrations,
            1,
            "not the 2 of a day before"
        );
    }

    #[test]
    fn calls_and_events_are_bounded_rings() {
        let mut history = History::default();
        for i in 0..RECENT_CALLS as u64 + 10 {
            history.call_started(&format!("call-{i}"), &"x".repeat(500), "1001", i);
            let flood = SecurityEvent::WebFlood {
                remote: "[::1]:443".parse().unwrap(),
                scope: "::1".to_owned(),
            };
            history.security(&flood, i);
        }
        let calls = history.calls();
        assert_eq!(calls.len(), RECENT_CALLS);
        assert_eq!(calls[0].call_id, format!("call-{}", RECENT_CALLS + 9));
        assert_eq!(calls[0].from.chars().count(), MAX_PARTY);
        assert_eq!(history.events().len(), RECENT_EVENTS);
    }

    #[test]
    fn a_call_keeps_its_first_outcome_and_its_end() {
        let mut history = History::default();
        history.call_started("c", "1000", "1001", 10);
        history.call_answered("c", 200, 20);
        history.call_answered("c", 487, 25);
        history.call_ended("c", 90);
        history.call_ended("c", 99);
        let call = &history.calls()[0];
        assert_eq!((call.outcome, call.ended_ms), (Some((200, 20)), Some(90)));
    }
}

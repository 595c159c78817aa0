//! The wall clock steps (NTP's first answer on a board without a real-time clock) while calls
//! ring and registrations and bans are live: timers keep to the monotonic clock, what is stored
//! keeps to the wall clock.

use super::bans_tests::{HOUR, Phone, banning_core};
use super::proxy_tests::{Net, SDES, caller, only, phone_b, respond};
use super::tests::PASSWORD;
use super::*;

const DAY: i64 = 24 * 3_600_000;

#[test]
fn retransmissions_and_the_ring_timeout_keep_to_the_monotonic_clock() {
    let mut net = Net::new();
    net.bind("1001", phone_b());
    let sent = net.call("1001", SDES, "");
    let forwarded = only(&sent, phone_b(), 0);

    // A day ahead: the phone is retransmitted to after T1 and 2·T1, no sooner and no later.
    net.step_wall_clock(DAY);
    assert!(net.advance(499).is_empty());
    only(&net.advance(1), phone_b(), 0);
    assert!(net.advance(999).is_empty());
    only(&net.advance(1), phone_b(), 0);

    // A day behind where it started: the call rings for its minute, not for a day more.
    net.step_wall_clock(-2 * DAY);
    net.reply(
        phone_b(),
        respond(&forwarded, phone_b(), 180, "Ringing", ""),
    );
    assert!(net.advance(60_000 - 1_500 - 1).is_empty());
    let timeout = net.advance(1);
    only(&timeout, caller(), 480);
    assert_eq!(only(&timeout, phone_b(), 0).method(), Some(Method::Cancel));
}

#[test]
fn bindings_expire_by_the_wall_clock() {
    let mut net = Net::new();
    net.bind("1001", phone_b());
    // Stepped back a day, the registration's hour lasts a day more: it is a wall time.
    net.step_wall_clock(-DAY);
    net.advance(5_000);
    assert_eq!(net.core.registrar.total(), 1);
    // Past its end on the wall clock, it is gone, seconds after it was made.
    net.step_wall_clock(DAY + HOUR as i64);
    net.advance(1_000);
    assert_eq!(net.core.registrar.total(), 0);
    only(&net.call("1001", SDES, ""), caller(), 480);
    let changed = net.core.take_changed_bindings();
    assert_eq!(changed.len(), 1);
    assert!(changed[0].1.is_empty(), "the store forgets it too");
}

#[test]
fn bans_expire_by_the_wall_clock() {
    let t0 = super::bans_tests::T0;
    let mut core = banning_core(Vec::new());
    let mut mallory = Phone::at("[2001:db8:66::66]:5060");
    for i in 0..3 {
        assert_eq!(mallory.register(&mut core, "wrong", t0 + i), Some(403));
    }
    let until = core.take_new_bans()[0].until_ms;
    assert_eq!(until, t0 + 2 + HOUR);
    // Stepped back a day, ten seconds later: still banned, for a day and an hour more.
    let back = Now {
        instant: Instant::from_millis(t0 + 10_000),
        wall_ms: t0 + 10_000 - DAY as u64,
    };
    core.handle_timeout(back);
    assert_eq!(mallory.register_at(&mut core, PASSWORD, back), None);
    // Stepped past the ban's end, twenty seconds after it began: the ban is over.
    let ahead = Now {
        instant: Instant::from_millis(t0 + 20_000),
        wall_ms: until,
    };
    core.handle_timeout(ahead);
    assert_eq!(mallory.register_at(&mut core, PASSWORD, ahead), Some(200));
}

//! What the benchmarks share: the network layer's way of driving the core.

use hotline::core::{Core, Inbound, Instant, Now, Output, Transmit};

/// Both clocks at `ms` (the benchmarks never step the wall clock).
pub fn at(ms: u64) -> Now {
    Now {
        instant: Instant::from_millis(ms),
        wall_ms: ms,
    }
}

/// Hands one message to the core and collects what it sends, as the network layer does:
/// everything `poll_output` gives before its timeout.
pub fn exchange(core: &mut Core, input: Inbound<'_>, now: u64, sent: &mut Vec<Transmit>) {
    core.handle(input, at(now));
    loop {
        match core.poll_output() {
            Output::Transmit(transmit) => sent.push(transmit),
            Output::Event(_) => {}
            Output::Timeout(_) => return,
        }
    }
}

//! The life of the server process: start, stop, start again.

mod common;

use common::Server;

/// `ready` means the server is up, its SIGTERM handler included: a supervisor that stops it at
/// once must get a clean shutdown (bindings flushed, status 0), not a death by signal.
#[test]
fn sigterm_right_after_ready_exits_cleanly() {
    let mut server = Server::start("");
    server.stop();
    for _ in 0..9 {
        server.start_again();
        server.stop();
    }
}

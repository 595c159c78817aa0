//! Connection limits of the stream transports, against the real binary.

mod common;

use common::{Client, Server, Transport};

#[test]
fn connections_per_address_are_limited() {
    let server = Server::start("[limits]\nmax_connections_per_address = 2\n");
    // TCP and TLS connections count together.
    let mut first = Client::connect(&server, Transport::Tcp);
    let mut second = Client::connect(&server, Transport::Tls);
    assert_eq!(first.options().status(), Some(200));
    assert_eq!(second.options().status(), Some(200));
    let mut third = Client::connect(&server, Transport::Tcp);
    third.expect_closed();
    server.wait_for_log("reason=\"connection limit per address reached\"");
    assert_eq!(
        first.options().status(),
        Some(200),
        "the admitted ones carry on"
    );
}

#[test]
fn silent_connections_are_closed() {
    let server = Server::start("[limits]\nidle_timeout = 1\n");
    for transport in [Transport::Tcp, Transport::Tls] {
        let mut client = Client::connect(&server, transport);
        assert_eq!(client.options().status(), Some(200));
        client.expect_closed();
    }
    server.wait_for_logs("reason=\"idle timeout\"", 2);
}

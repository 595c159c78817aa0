//! The HTTPS listener with `[web]` enabled and ACME off: the server's own certificate, the
//! security headers, bounded requests.

mod common;

use common::Server;
use common::web::{WEB_TOML, exchange, request};

#[test]
fn https_runs_without_acme_with_security_headers() {
    let server = Server::start(WEB_TOML);
    let answer = request(&server, "GET", "/nothing-here", &[], "");
    assert_eq!(answer.status, 404, "{answer:?}");
    assert_eq!(answer.header("x-frame-options"), Some("DENY"));
    assert!(answer.header("strict-transport-security").is_some());
    let policy = answer.header("content-security-policy").unwrap();
    assert!(policy.contains("default-src 'none'"), "{policy}");
}

#[test]
fn oversized_bodies_and_heads_are_refused() {
    let server = Server::start(WEB_TOML);
    let body = "a".repeat(64 * 1024);
    let answer = request(&server, "POST", "/login", &[], &body);
    assert_eq!(answer.status, 413, "{answer:?}");
    let mut head = b"GET / HTTP/1.1\r\nX: ".to_vec();
    head.resize(32 * 1024, b'a');
    let answer = exchange(&server, &head);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
}

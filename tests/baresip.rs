//! A real softphone: two baresip instances (Debian's `baresip`, 1.0) register over TLS and call
//! each other through hotline with SRTP media, on hotline's shipped defaults.
//!
//! baresip 1.0 does not verify the server's certificate (it loads the CA but never turns
//! verification on), so these tests prove nothing about certificate checking.

mod common;

use common::baresip::{PLAIN_RTP, Phone, SECURE_AUDIO, SRTP_MANDATORY, field, require_baresip};
use common::{DOMAIN, Server};

#[test]
fn baresip_calls_baresip_over_tls_with_srtp() {
    require_baresip();
    let server = Server::start("");
    let alice = server.user_add("1000", "Alice");
    let bob = server.user_add("1001", "Bob");
    let mut callee = Phone::start(&server, "1001", &bob, SRTP_MANDATORY);
    let mut caller = Phone::start(&server, "1000", &alice, SRTP_MANDATORY);

    caller.command("dial", Some(&format!("sip:1001@{DOMAIN}")));
    let incoming = callee.event("CALL_INCOMING");
    assert_eq!(field(&incoming, "peeruri"), format!("sip:1000@{DOMAIN}"));
    let routed = server.wait_for_log("routing request");
    assert!(
        routed.contains("method=\"INVITE\" from=1000 to=1001 branches=1"),
        "{routed}"
    );

    callee.command("accept", None);
    for phone in [&caller, &callee] {
        phone.event("CALL_ESTABLISHED");
        let secure = phone.event("CALL_MENC");
        assert_eq!(
            field(&secure, "param"),
            SECURE_AUDIO,
            "{}",
            phone.process.extension
        );
        // The first SRTP packet from the other phone was received and authenticated: media
        // flows directly between the phones.
        let media = phone.event("CALL_RTPESTAB");
        assert_eq!(
            field(&media, "param"),
            "audio",
            "{}",
            phone.process.extension
        );
    }

    caller.command("hangup", None);
    // The callee's call ends because the BYE reached it through the proxy.
    let closed = callee.event("CALL_CLOSED");
    assert_eq!(field(&closed, "param"), "Connection reset by peer");
    let closed = caller.event("CALL_CLOSED");
    assert_eq!(field(&closed, "param"), "Connection reset by user");
}

#[test]
fn baresip_without_srtp_is_refused() {
    require_baresip();
    let server = Server::start("");
    let alice = server.user_add("1000", "Alice");
    let bob = server.user_add("1001", "Bob");
    let _callee = Phone::start(&server, "1001", &bob, SRTP_MANDATORY);
    let mut caller = Phone::start(&server, "1000", &alice, PLAIN_RTP);

    caller.command("dial", Some(&format!("sip:1001@{DOMAIN}")));
    let closed = caller.event("CALL_CLOSED");
    assert_eq!(field(&closed, "param"), "488 SRTP Required");
    let refused = server.wait_for_log("refused insecure media");
    assert!(refused.contains("proto: \"RTP/AVP\""), "{refused}");
}

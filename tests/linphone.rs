//! A second softphone, independent of baresip: Linphone (linphonec 5.1) registers over TLS with
//! the certificate verified, and calls baresip and is called by it with SDES-SRTP, on hotline's
//! shipped defaults. Without media encryption it is refused before the callee rings.

mod common;

use common::baresip::{Phone, SECURE_AUDIO, SRTP_MANDATORY, field, require_baresip};
use common::linphone::{Linphone, Media, SRTP_NEGOTIATED, Trust, require_linphonec};
use common::{DOMAIN, Server};

/// A server with baresip as 1001 (SRTP mandatory) and Linphone as 1002 with `media`.
fn baresip_and_linphone(media: Media) -> (Server, Phone, Linphone) {
    require_linphonec();
    require_baresip();
    let server = Server::start("");
    let bob = server.user_add("1001", "Bob");
    let carol = server.user_add("1002", "Carol");
    let baresip = Phone::start(&server, "1001", &bob, SRTP_MANDATORY);
    let linphone = Linphone::start(&server, "1002", &carol, media);
    (server, baresip, linphone)
}

/// Linphone checks hotline's certificate, chain and name, against the certificate it was given
/// as its only trusted root: a stranger's certificate or another name fails the handshake, the
/// right pair registers.
#[test]
fn linphone_registers_over_tls_only_with_the_right_certificate_and_name() {
    require_linphonec();
    let stranger = Server::start("");
    let stranger_ca = stranger.data_dir().join("tls/cert.pem");
    for (root_ca, name, alert) in [
        (Some(stranger_ca.as_path()), DOMAIN, "UnknownCA"),
        (None, "impostor.test", "BadCertificate"),
    ] {
        let server = Server::start("");
        let password = server.user_add("1002", "Linphone");
        let own_ca = server.data_dir().join("tls/cert.pem");
        let trust = Trust {
            root_ca: root_ca.unwrap_or(&own_ca),
            name: Some(name),
        };
        let _fooled = Linphone::launch(&server, "1002", &password, Media::SrtpMandatory, trust);
        let failed = server.wait_for_log("TLS handshake failed");
        assert!(failed.contains(alert), "{name}: {failed}");
        let registered = server
            .log_lines()
            .into_iter()
            .find(|l| l.contains(" registered "));
        assert_eq!(
            registered, None,
            "{name}: registered without a trusted certificate"
        );
    }
    let server = Server::start("");
    let password = server.user_add("1002", "Linphone");
    let root_ca = server.data_dir().join("tls/cert.pem");
    let trust = Trust {
        root_ca: &root_ca,
        name: Some(DOMAIN),
    };
    let mut phone = Linphone::launch(&server, "1002", &password, Media::SrtpMandatory, trust);
    phone.registered(&server);
    phone.command("status register");
    phone.wait_for(&format!(
        "registered, identity=\"Linphone 1002\" <sip:1002@{DOMAIN}>"
    ));
}

#[test]
fn linphone_calls_baresip_with_srtp() {
    let (_server, mut callee, mut caller) = baresip_and_linphone(Media::SrtpMandatory);

    caller.command(&format!("call sip:1001@{DOMAIN}"));
    let incoming = callee.event("CALL_INCOMING");
    assert_eq!(field(&incoming, "peeruri"), format!("sip:1002@{DOMAIN}"));
    callee.command("accept", None);
    callee.event("CALL_ESTABLISHED");
    let secure = callee.event("CALL_MENC");
    assert_eq!(field(&secure, "param"), SECURE_AUDIO);
    caller.wait_for(&format!("Call 1 with sip:1001@{DOMAIN} connected."));
    caller.wait_for(SRTP_NEGOTIATED);
    // SRTP from Linphone reached baresip and was authenticated: media flows between them.
    assert_eq!(field(&callee.event("CALL_RTPESTAB"), "param"), "audio");

    caller.command("terminate");
    let closed = callee.event("CALL_CLOSED");
    assert_eq!(field(&closed, "param"), "Connection reset by peer");
}

#[test]
fn baresip_calls_linphone_with_srtp() {
    require_linphonec();
    require_baresip();
    let server = Server::start("");
    let alice = server.user_add("1000", "Alice");
    let carol = server.user_add("1002", "Carol");
    let mut callee = Linphone::start(&server, "1002", &carol, Media::SrtpMandatory);
    let mut caller = Phone::start(&server, "1000", &alice, SRTP_MANDATORY);

    caller.command("dial", Some(&format!("sip:1002@{DOMAIN}")));
    let incoming = callee.wait_for("Receiving new incoming call from");
    assert!(
        incoming.contains(&format!("sip:1000@{DOMAIN}")),
        "{incoming}"
    );
    callee.command("answer");
    caller.event("CALL_ESTABLISHED");
    let secure = caller.event("CALL_MENC");
    assert_eq!(field(&secure, "param"), SECURE_AUDIO);
    callee.wait_for(SRTP_NEGOTIATED);
    assert_eq!(field(&caller.event("CALL_RTPESTAB"), "param"), "audio");

    caller.command("hangup", None);
    callee.wait_for("ended (No error).");
}

#[test]
fn linphone_without_media_encryption_is_refused_and_baresip_never_rings() {
    let (server, mut callee, mut caller) = baresip_and_linphone(Media::Plain);

    caller.command(&format!("call sip:1001@{DOMAIN}"));
    caller.wait_for("SIP/2.0 488 SRTP Required");
    caller.wait_for(&format!("Call 1 with sip:1001@{DOMAIN} error."));
    let refused = server.wait_for_log("refused insecure media");
    assert!(refused.contains("proto: \"RTP/AVP\""), "{refused}");
    assert!(
        !server
            .log_lines()
            .iter()
            .any(|l| l.contains("routing request")),
        "the INVITE went to a phone"
    );
    // A command's answer comes after every event baresip had to report before it.
    callee.command("reginfo", None);
    assert!(!callee.had_event("CALL_INCOMING"), "baresip rang");
}

//! Calls through the proxy between real user agents: SIPp callees that register with Digest and
//! then answer, ring or are busy, SIPp callers that authenticate with Digest (407), and the Rust
//! client for the INVITEs that hotline refuses itself.
//!
//! Every SIPp run is bounded (`-m 1`, `-timeout`) and traces its errors and messages into the
//! test's own directory; a failing run prints them. The callee is started first and the caller
//! only once the server has logged the callee's registration.

mod common;

use std::io::ErrorKind;
use std::net::UdpSocket;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use common::{Client, DOMAIN, Server, Transport};
use hotline::core::auth::{Algorithm, ResponseInput, response_hex};
use hotline::sip::{HeaderName, Message, Response, unquote};
use md5::{Digest as _, Md5};
use tempfile::TempDir;

const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp");

const CALLER: &str = "1000";
const CALLEE: &str = "1001";

/// What a SIPp run may take at most (its `-timeout`, seconds): far above a call of the tests.
const SIPP_TIMEOUT: &str = "10";

/// Call length of the callers and ringing time of the answering callee (`-d`, milliseconds).
const PAUSE_MS: &str = "100";

/// A server with a caller and a callee account.
struct Setup {
    server: Server,
    caller_password: String,
    callee_password: String,
}

impl Setup {
    fn start(extra_toml: &str) -> Setup {
        let server = Server::start(extra_toml);
        let caller_password = server.user_add(CALLER, "Caller");
        let callee_password = server.user_add(CALLEE, "Callee");
        Setup {
            server,
            caller_password,
            callee_password,
        }
    }

    fn sipp(&self, test: &str) -> Sipp<'_> {
        Sipp {
            setup: self,
            dir: TempDir::new().expect("temporary directory"),
            call_id: format!("{test}-{}@{DOMAIN}", std::process::id()),
        }
    }
}

/// The SIPp processes of one test: their working directory (CSV files, traces) and the Call-ID
/// they share. SIPp maps a request it receives to a call by Call-ID alone and, in client mode,
/// drops one it cannot map; a callee that registers first is in client mode, so the caller
/// uses the Call-ID of the callee's REGISTER and the INVITE lands in the callee's call.
struct Sipp<'a> {
    setup: &'a Setup,
    dir: TempDir,
    call_id: String,
}

/// A running SIPp.
struct Peer {
    name: String,
    scenario: String,
    child: Option<Child>,
}

/// How a SIPp run ended, with everything it said for a failure message.
struct Run {
    name: String,
    status: ExitStatus,
    report: String,
}

impl Sipp<'_> {
    /// Starts a callee scenario as `CALLEE` over `transport` and waits until the server has
    /// logged `registrations` bindings of `CALLEE` over that transport (this one included).
    fn callee(
        &self,
        name: &str,
        scenario: &str,
        transport: Transport,
        registrations: usize,
    ) -> Peer {
        let password = &self.setup.callee_password;
        let mut peer = self.spawn(
            name,
            scenario,
            transport,
            (CALLEE, password),
            &["-auth_uri", DOMAIN],
        );
        // Over TCP the source port is the connection's: match the rest of the line.
        let needle = format!(
            "transport={} extension={CALLEE} contacts=",
            transport.name()
        );
        let server = &self.setup.server;
        let waited = catch_unwind(AssertUnwindSafe(|| {
            server.wait_for_logs(&needle, registrations)
        }));
        if let Err(panic) = waited {
            // SIPp's own timeout ends it; its report says why it did not register.
            eprintln!("{}", peer.wait_in(&self.dir).report);
            resume_unwind(panic);
        }
        peer
    }

    /// Starts a caller scenario as `CALLER` calling `callee` over `transport`.
    fn caller(&self, name: &str, scenario: &str, transport: Transport, callee: &str) -> Peer {
        let password = &self.setup.caller_password;
        let auth_uri = format!("{callee}@{DOMAIN}");
        self.spawn(
            name,
            scenario,
            transport,
            (CALLER, password),
            &["-s", callee, "-auth_uri", &auth_uri],
        )
    }

    fn spawn(
        &self,
        name: &str,
        scenario: &str,
        transport: Transport,
        (extension, password): (&str, &str),
        extra: &[&str],
    ) -> Peer {
        let dir = self.dir.path();
        let csv = format!("{name}.csv");
        std::fs::write(
            dir.join(&csv),
            format!("SEQUENTIAL\n{extension};{password}\n"),
        )
        .unwrap();
        let target = format!("[::1]:{}", self.setup.server.address(transport).port());
        let (mode, port) = match transport {
            Transport::Udp => ("u1", free_udp_port()),
            Transport::Tcp => ("t1", common::free_tcp_port()),
            Transport::Tls => panic!("Debian's SIPp has no TLS"),
        };
        let port = port.to_string();
        let path = Path::new(SCENARIOS).join(scenario);
        let stdout = std::fs::File::create(dir.join(format!("{name}.stdout"))).unwrap();
        let stderr = std::fs::File::create(dir.join(format!("{name}.stderr"))).unwrap();
        let child = Command::new("sipp")
            .current_dir(dir)
            .arg(&target)
            .arg("-sf")
            .arg(&path)
            .args(["-t", mode, "-inf", &csv, "-key", "domain", DOMAIN])
            .args(["-cid_str", &self.call_id, "-d", PAUSE_MS])
            .args(["-i", "::1", "-p", &port, "-m", "1", "-nostdin"])
            .args(["-timeout", SIPP_TIMEOUT, "-timeout_error"])
            .args(["-trace_err", "-trace_msg"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                panic!(
                    "sipp is not installed: run .ci/run, or apt-get install sip-tester (Debian 12)"
                )
            }
            Err(e) => panic!("cannot run sipp: {e}"),
        };
        Peer {
            name: name.to_owned(),
            scenario: scenario.trim_end_matches(".xml").to_owned(),
            child: Some(child),
        }
    }

    /// Waits for every peer and fails with all their reports unless each exited with 0.
    fn expect_success(&self, peers: Vec<Peer>) {
        let runs: Vec<Run> = peers
            .into_iter()
            .map(|mut p| p.wait_in(&self.dir))
            .collect();
        if runs.iter().all(|run| run.status.success()) {
            return;
        }
        let failed: Vec<String> = runs
            .iter()
            .filter(|run| !run.status.success())
            .map(|run| format!("{} ({})", run.name, run.status))
            .collect();
        let reports: Vec<&str> = runs.iter().map(|run| run.report.as_str()).collect();
        panic!("SIPp failed: {}\n{}", failed.join(", "), reports.join("\n"));
    }
}

impl Peer {
    /// Waits for the exit (SIPp's `-timeout` bounds it) and collects what SIPp said: stderr,
    /// stdout if it failed, and the error and message traces it wrote into `dir`.
    fn wait_in(&mut self, dir: &TempDir) -> Run {
        let mut child = self.child.take().expect("a running SIPp");
        let pid = child.id();
        let status = child.wait().expect("wait for sipp");
        let read =
            |file: String| std::fs::read_to_string(dir.path().join(file)).unwrap_or_default();
        let mut report = format!(
            "=== {}: sipp exited with {status}\n--- stderr\n{}",
            self.name,
            read(format!("{}.stderr", self.name))
        );
        if !status.success() {
            let stdout = read(format!("{}.stdout", self.name));
            report += &format!("\n--- stdout (end)\n{}", tail(&stdout, 1500));
        }
        for kind in ["errors", "messages"] {
            let file = format!("{}_{pid}_{kind}.log", self.scenario);
            let text = read(file.clone());
            if !text.is_empty() {
                report += &format!("\n--- {file} (end)\n{}", tail(&text, 6000));
            }
        }
        Run {
            name: self.name.clone(),
            status,
            report,
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child
            && child.try_wait().ok().flatten().is_none()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// A port the kernel picked: without -p SIPp takes 5060 or the next free port above it.
fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("[::1]:0").expect("free UDP port");
    socket.local_addr().unwrap().port()
}

/// A callee that registers over `callee_transport` answers a caller over `caller_transport`;
/// the caller ends the call with a BYE along the Record-Route.
fn call(callee_transport: Transport, caller_transport: Transport) {
    let setup = Setup::start("");
    let sipp = setup.sipp("call");
    let callee = sipp.callee("callee", "callee_answer.xml", callee_transport, 1);
    let caller = sipp.caller("caller", "caller.xml", caller_transport, CALLEE);
    sipp.expect_success(vec![caller, callee]);
    let routed = setup.server.wait_for_log("routing request");
    assert!(
        routed.contains(&format!("from={CALLER} to={CALLEE} branches=1")),
        "{routed}"
    );
}

#[test]
fn call_over_udp() {
    call(Transport::Udp, Transport::Udp);
}

#[test]
fn call_over_tcp() {
    call(Transport::Tcp, Transport::Tcp);
}

/// The callee is reached over its TCP connection, the caller over UDP: two Record-Route
/// entries (RFC 5658), and the BYE from the UDP side still finds the callee's connection.
#[test]
fn call_from_udp_to_tcp() {
    call(Transport::Tcp, Transport::Udp);
}

/// The caller hangs up while the callee rings: 200 for the CANCEL and 487 for the INVITE
/// upstream, a CANCEL downstream (the callee answers it 200 and the INVITE 487, and gets the
/// proxy's ACK).
#[test]
fn caller_cancels_while_the_callee_rings() {
    let setup = Setup::start("");
    let sipp = setup.sipp("cancel");
    let callee = sipp.callee("callee", "callee_ring.xml", Transport::Udp, 1);
    let caller = sipp.caller("caller", "caller_cancel.xml", Transport::Udp, CALLEE);
    sipp.expect_success(vec![caller, callee]);
    setup.server.wait_for_log("call cancelled by the caller");
}

/// A busy callee: the caller gets its 486, and the proxy ACKs the 486 downstream.
#[test]
fn busy_callee() {
    let setup = Setup::start("");
    let sipp = setup.sipp("busy");
    let callee = sipp.callee("callee", "callee_busy.xml", Transport::Udp, 1);
    let caller = sipp.caller("caller", "caller_busy.xml", Transport::Udp, CALLEE);
    sipp.expect_success(vec![caller, callee]);
}

/// Two devices of one extension ring in parallel; one answers after ringing, the other gets a
/// CANCEL (answers 200 and 487, gets the ACK) and the caller completes the call.
#[test]
fn two_devices_ring_and_the_one_that_does_not_answer_is_cancelled() {
    let setup = Setup::start("");
    let sipp = setup.sipp("fork");
    let answering = sipp.callee("answering", "callee_answer.xml", Transport::Udp, 1);
    let ringing = sipp.callee("ringing", "callee_ring.xml", Transport::Udp, 2);
    let caller = sipp.caller("caller", "caller.xml", Transport::Udp, CALLEE);
    sipp.expect_success(vec![caller, answering, ringing]);
    let routed = setup.server.wait_for_log("routing request");
    assert!(routed.contains("branches=2"), "{routed}");
}

/// Nobody answers within `[proxy] ring_timeout`: the caller gets 480 and the ringing callee a
/// CANCEL.
#[test]
fn ring_timeout_gives_480_and_cancels_the_callee() {
    let setup = Setup::start("[proxy]\nring_timeout = 2\n");
    let sipp = setup.sipp("timeout");
    let callee = sipp.callee("callee", "callee_ring.xml", Transport::Udp, 1);
    let caller = sipp.caller("caller", "caller_unanswered.xml", Transport::Udp, CALLEE);
    sipp.expect_success(vec![caller, callee]);
    setup.server.wait_for_log("no answer within the ring time");
}

/// One device is busy at once (486), the other rings until the ring time ends. The caller must
/// get the best response received (RFC 3261 §16.7 step 6), the 486, not a 480 of hotline's.
#[test]
fn ring_timeout_after_a_busy_device_gives_its_486() {
    let setup = Setup::start("[proxy]\nring_timeout = 2\n");
    let sipp = setup.sipp("busy-timeout");
    let busy = sipp.callee("busy", "callee_busy.xml", Transport::Udp, 1);
    let ringing = sipp.callee("ringing", "callee_ring.xml", Transport::Udp, 2);
    let caller = sipp.caller("caller", "caller_busy.xml", Transport::Udp, CALLEE);
    sipp.expect_success(vec![caller, busy, ringing]);
}

/// The callee answers a secure offer with plain RTP. RFC 3261 makes hotline forward the 200,
/// so it ends the call at once: the caller and the callee each get a BYE from hotline, saying
/// why (both scenarios check its Reason), and answer it; nothing of the call is left open.
#[test]
fn a_plain_rtp_answer_ends_the_call_with_a_bye_to_both() {
    let setup = Setup::start("");
    let sipp = setup.sipp("plain-answer");
    let callee = sipp.callee("callee", "callee_plain.xml", Transport::Udp, 1);
    let caller = sipp.caller("caller", "caller_plain_answer.xml", Transport::Udp, CALLEE);
    sipp.expect_success(vec![caller, callee]);
    let ended = setup
        .server
        .wait_for_log("ending it with a BYE to both parties");
    assert!(ended.contains("not an SRTP profile"), "{ended}");
    let hang_ups = setup
        .server
        .log_lines()
        .into_iter()
        .filter(|line| line.contains("ending it with a BYE"))
        .count();
    assert_eq!(hang_ups, 1, "one pair of BYEs, one log line");
}

/// The callee answers a secure offer early, in a 183, with plain RTP: hotline drops the 183 and
/// cancels the callee (it answers the CANCEL 200 and the INVITE 487, and gets the ACK); the
/// caller never sees the 183 and gets `488 SRTP Required`.
#[test]
fn a_plain_rtp_early_answer_is_dropped_and_cancelled() {
    let setup = Setup::start("");
    let sipp = setup.sipp("plain-early");
    let callee = sipp.callee("callee", "callee_plain_early.xml", Transport::Udp, 1);
    let caller = sipp.caller("caller", "caller_srtp_refused.xml", Transport::Udp, CALLEE);
    sipp.expect_success(vec![caller, callee]);
    let refused = setup.server.wait_for_log("refused insecure media");
    assert!(refused.contains("status=Some(183)"), "{refused}");
}

// Requests hotline refuses itself, from the Rust client.

/// An SRTP offer.
const SECURE_SDP: &str = "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\n\
    m=audio 40000 RTP/SAVP 0\r\n\
    a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n\
    a=rtpmap:0 PCMU/8000\r\n";

/// SRTP named, but no key to encrypt with.
const KEYLESS_SDP: &str = "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\n\
    m=audio 40000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// Keys on plain RTP (best-effort SRTP): the answerer may choose plain RTP.
const BEST_EFFORT_SDP: &str = "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\n\
    m=audio 40000 RTP/AVP 0\r\n\
    a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n\
    a=rtpmap:0 PCMU/8000\r\n";

/// Plain RTP, with the SRTP profile's name where a substring search would find it.
const PLAIN_SDP: &str = "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=RTP/SAVP\r\nc=IN IP6 ::1\r\nt=0 0\r\n\
    m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// An INVITE of `CALLER` from the Rust client, answering the proxy's 407.
struct Invite<'a> {
    uri: String,
    max_forwards: u32,
    sdp: Option<&'a str>,
}

impl Invite<'_> {
    fn to(uri: &str) -> Invite<'static> {
        Invite {
            uri: uri.to_owned(),
            max_forwards: 70,
            sdp: Some(SECURE_SDP),
        }
    }

    /// Sends the INVITE; after a 407 sends it again with credentials. Returns the final
    /// response (after ACKing it).
    fn send(&self, client: &mut Client, password: &str) -> Message {
        let call_id = unique("invite");
        let tag = unique("tag");
        let mut credentials = String::new();
        for cseq in 1..=2 {
            let branch = unique("z9hG4bK-calls-");
            let request = self.request(client, &call_id, &tag, cseq, &branch, &credentials);
            client.send_raw(request.as_bytes());
            let response = final_response(client, cseq);
            client.send_raw(
                self.ack(client, &call_id, &tag, cseq, &branch, &response)
                    .as_bytes(),
            );
            if response.status() != Some(407) || cseq == 2 {
                return response;
            }
            credentials = proxy_authorization(&response, &self.uri, password);
        }
        unreachable!()
    }

    fn request(
        &self,
        client: &Client,
        call_id: &str,
        tag: &str,
        cseq: u32,
        branch: &str,
        credentials: &str,
    ) -> String {
        let contact = client.contact(CALLER);
        let (content_type, body) = match self.sdp {
            Some(sdp) => ("Content-Type: application/sdp\r\n", sdp),
            None => ("", ""),
        };
        format!(
            "INVITE {uri} SIP/2.0\r\n\
             Via: SIP/2.0/{transport} {sent_by};branch={branch};rport\r\n\
             Max-Forwards: {max_forwards}\r\n\
             From: <sip:{CALLER}@{DOMAIN}>;tag={tag}\r\n\
             To: <{uri}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} INVITE\r\n\
             Contact: {contact}\r\n\
             {credentials}{content_type}\
             Content-Length: {length}\r\n\r\n{body}",
            uri = self.uri,
            transport = via_transport(&contact),
            sent_by = sent_by(&contact),
            max_forwards = self.max_forwards,
            length = body.len(),
        )
    }

    /// The ACK for a non-2xx final response: same branch, the response's To (RFC 3261 §17.1.1.3).
    fn ack(
        &self,
        client: &Client,
        call_id: &str,
        tag: &str,
        cseq: u32,
        branch: &str,
        response: &Message,
    ) -> String {
        let contact = client.contact(CALLER);
        format!(
            "ACK {uri} SIP/2.0\r\n\
             Via: SIP/2.0/{transport} {sent_by};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{CALLER}@{DOMAIN}>;tag={tag}\r\n\
             To: {to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} ACK\r\n\
             Content-Length: 0\r\n\r\n",
            uri = self.uri,
            transport = via_transport(&contact),
            sent_by = sent_by(&contact),
            to = response.header(HeaderName::To).expect("To"),
        )
    }
}

/// `[::1]:PORT` of `<sip:EXT@[::1]:PORT;transport=udp>`.
fn sent_by(contact: &str) -> &str {
    let start = contact.find('@').expect("@ in the contact") + 1;
    let end = contact
        .find(";transport")
        .expect("transport in the contact");
    &contact[start..end]
}

/// `TLS` of `<sip:EXT@[::1]:PORT;transport=tls>`.
fn via_transport(contact: &str) -> String {
    let start = contact
        .find(";transport=")
        .expect("transport in the contact")
        + 11;
    contact[start..].trim_end_matches('>').to_ascii_uppercase()
}

/// Reads past provisional responses (and stray earlier ones) to the final response for `cseq`.
fn final_response(client: &mut Client, cseq: u32) -> Message {
    loop {
        let response = client.recv();
        let status = response.status().expect("a response");
        let ours = response.cseq().is_some_and(|c| c.number == cseq);
        if ours && status >= 200 {
            return response;
        }
    }
}

/// `Proxy-Authorization` answering the MD5 challenge of a 407 for an INVITE of `uri`.
fn proxy_authorization(challenge: &Message, uri: &str, password: &str) -> String {
    let param = |value: &str, wanted: &str| {
        value
            .strip_prefix("Digest ")
            .unwrap_or_default()
            .split(',')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
            .map(|(_, v)| unquote(v).to_owned())
    };
    let md5 = challenge
        .all_headers()
        .filter(|(_, name, _)| name.eq_ignore_ascii_case("Proxy-Authenticate"))
        .map(|(_, _, value)| value)
        .find(|value| param(value, "algorithm").as_deref() == Some("MD5"))
        .unwrap_or_else(|| panic!("no MD5 challenge in {challenge:?}"));
    let nonce = param(md5, "nonce").expect("nonce");
    let realm = param(md5, "realm").expect("realm");
    assert_eq!(realm, DOMAIN);
    let ha1: String = Md5::digest(format!("{CALLER}:{DOMAIN}:{password}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let cnonce = unique("cnonce");
    let response = response_hex(&ResponseInput {
        algorithm: Algorithm::Md5,
        ha1_hex: &ha1,
        nonce: &nonce,
        nc: "00000001",
        cnonce: &cnonce,
        qop: "auth",
        method: "INVITE",
        uri,
    });
    format!(
        "Proxy-Authorization: Digest username=\"{CALLER}\", realm=\"{DOMAIN}\", \
         nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5, \
         qop=auth, nc=00000001, cnonce=\"{cnonce}\"\r\n"
    )
}

fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id())
}

/// The callee, registered from a Rust client (kept open so the binding stays reachable).
fn register_callee(setup: &Setup) -> Client {
    register_callee_over(setup, Transport::Udp)
}

fn register_callee_over(setup: &Setup, transport: Transport) -> Client {
    let mut callee = Client::connect(&setup.server, transport);
    let contact = format!("Contact: {}\r\n", callee.contact(CALLEE));
    let ok = callee.register(CALLEE, &setup.callee_password, Algorithm::Md5, &contact);
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    callee
}

fn refused(setup: &Setup, invite: &Invite<'_>) -> (u16, String) {
    refused_over(setup, invite, Transport::Udp)
}

fn refused_over(setup: &Setup, invite: &Invite<'_>, transport: Transport) -> (u16, String) {
    let mut caller = Client::connect(&setup.server, transport);
    let response = invite.send(&mut caller, &setup.caller_password);
    let status = response.status().expect("a status");
    (status, response.reason().unwrap_or_default().to_owned())
}

#[test]
fn unknown_extension_is_404() {
    let setup = Setup::start("");
    let invite = Invite::to(&format!("sip:1999@{DOMAIN}"));
    assert_eq!(refused(&setup, &invite).0, 404);
}

#[test]
fn extension_registered_nowhere_is_480() {
    let setup = Setup::start("");
    let invite = Invite::to(&format!("sip:{CALLEE}@{DOMAIN}"));
    assert_eq!(refused(&setup, &invite).0, 480);
}

#[test]
fn plain_rtp_offer_is_488_srtp_required() {
    let setup = Setup::start("");
    let _callee = register_callee(&setup);
    let invite = Invite {
        sdp: Some(PLAIN_SDP),
        ..Invite::to(&format!("sip:{CALLEE}@{DOMAIN}"))
    };
    assert_eq!(refused(&setup, &invite), (488, "SRTP Required".to_owned()));
}

/// Over TLS, as a phone would: an offer that names SRTP without keys and one that offers keys
/// on plain RTP are both refused, and the callee never sees them. The first INVITE the callee
/// receives is the secure one sent afterwards (over the callee's one TLS connection, in order).
#[test]
fn keyless_and_best_effort_offers_over_tls_get_488_and_never_ring() {
    let setup = Setup::start("");
    let mut callee = register_callee_over(&setup, Transport::Tls);
    let uri = format!("sip:{CALLEE}@{DOMAIN}");
    for sdp in [KEYLESS_SDP, BEST_EFFORT_SDP] {
        let invite = Invite {
            sdp: Some(sdp),
            ..Invite::to(&uri)
        };
        assert_eq!(
            refused_over(&setup, &invite, Transport::Tls),
            (488, "SRTP Required".to_owned()),
            "{sdp}"
        );
    }
    std::thread::scope(|scope| {
        let caller = scope.spawn(|| refused_over(&setup, &Invite::to(&uri), Transport::Tls));
        let invite = callee.recv();
        assert_eq!(invite.method_text(), Some("INVITE"), "{invite:?}");
        assert_eq!(invite.body(), SECURE_SDP.as_bytes());
        let busy = Response::to(
            &invite,
            setup.server.address(Transport::Tls),
            486,
            "Busy Here",
        );
        callee.send_raw(&busy.finish());
        assert_eq!(caller.join().unwrap(), (486, "Busy Here".to_owned()));
    });
}

#[test]
fn invite_without_sdp_is_488_sdp_required() {
    let setup = Setup::start("");
    let _callee = register_callee(&setup);
    let invite = Invite {
        sdp: None,
        ..Invite::to(&format!("sip:{CALLEE}@{DOMAIN}"))
    };
    assert_eq!(refused(&setup, &invite), (488, "SDP Required".to_owned()));
}

#[test]
fn max_forwards_zero_is_483() {
    let setup = Setup::start("");
    let _callee = register_callee(&setup);
    let invite = Invite {
        max_forwards: 0,
        ..Invite::to(&format!("sip:{CALLEE}@{DOMAIN}"))
    };
    assert_eq!(refused(&setup, &invite).0, 483);
}

#[test]
fn foreign_domain_is_403() {
    let setup = Setup::start("");
    let _callee = register_callee(&setup);
    let invite = Invite::to(&format!("sip:{CALLEE}@example.com"));
    assert_eq!(refused(&setup, &invite).0, 403);
}

/// A dialog outlives a restart of hotline on the same ports: the callee's INFO to the caller
/// (which carries the caller's tag as To tag) and the caller's INFO pass before, the re-INVITE,
/// its ACK and the BYE after, all along the signed Record-Route, which the restarted server
/// still verifies with the same secret although its dialog table is empty (the callee's
/// binding, from the store, says where it is).
#[test]
fn a_dialog_outlives_a_restart_of_hotline() {
    let listen = format!(
        "[listen]\nudp = [\"[::1]:{}\"]\ntcp = [\"[::1]:{}\"]\ntls = [\"[::1]:{}\"]\n\
         [log]\nlevel = \"info,hotline::core::routing=debug\"\n",
        free_udp_port(),
        common::free_tcp_port(),
        common::free_tcp_port()
    );
    let mut setup = Setup::start(&listen);
    let sipp = setup.sipp("restart");
    let callee = sipp.callee("callee", "callee_dialog.xml", Transport::Udp, 1);
    let caller = sipp.caller("caller", "caller_dialog.xml", Transport::Udp, CALLEE);
    // The callee registers again once it has answered the caller's INFO, the caller's last
    // request before its pause of 2 s.
    setup
        .server
        .wait_for_logs("transport=UDP extension=1001 contacts=", 2);
    // Only the SIPp directory lives on: the server is restarted under the peers' feet.
    let Sipp { dir, call_id, .. } = sipp;
    setup.server.restart();
    let sipp = Sipp {
        setup: &setup,
        dir,
        call_id,
    };
    sipp.expect_success(vec![caller, callee]);
    let lines = setup.server.log_lines();
    for method in ["\"INVITE\"", "\"BYE\""] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains("routing in-dialog request") && l.contains(method)),
            "{method} after the restart: {lines:#?}"
        );
    }
}

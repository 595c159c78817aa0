//! The few SIP messages a phone sends, and the header look-ups it needs on what it receives.

use std::fmt::Write as _;

use hotline::sip::{HeaderName, Message};

/// Headers accepted in a received message.
pub const MAX_HEADERS: usize = 200;

/// Largest message read from a connection.
pub const MAX_MESSAGE: usize = 65_535;

/// An SRTP offer (SDES keys), as `bench/sipp/uac_invite_auth.xml` sends; `direction` is
/// `sendrecv`, or `sendonly` to put the call on hold.
pub fn sdp_offer(session: u64, version: u32, direction: &str) -> String {
    format!(
        "v=0\r\no=- {session} {version} IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\n\
         m=audio 16000 RTP/SAVP 0 101\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32\r\n\
         a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n\
         a={direction}\r\n"
    )
}

/// The callee's answer to an offer with `direction` (`sendrecv` or `sendonly`).
pub fn sdp_answer(direction: &str) -> String {
    let answer = if direction == "sendonly" {
        "recvonly"
    } else {
        "sendrecv"
    };
    sdp_offer(2, 1, answer).replace("16000", "16002")
}

/// Builds a request: start line, `headers` in order, then Max-Forwards, Content-Length and body.
pub fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut text = format!("{method} {uri} SIP/2.0\r\n");
    for (name, value) in headers {
        let _ = write!(text, "{name}: {value}\r\n");
    }
    let _ = write!(text, "Max-Forwards: 70\r\n");
    finish(text, body)
}

/// A response to `request`: its Via, Record-Route, From, Call-ID and CSeq copied, `to_tag` added
/// to a To without one, then `extra` headers and the body.
pub fn response(
    request: &Message,
    status: &str,
    to_tag: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> Vec<u8> {
    let mut text = format!("SIP/2.0 {status}\r\n");
    for (name, _, value) in request.all_headers() {
        match name {
            HeaderName::Via => {
                let _ = write!(text, "Via: {value}\r\n");
            }
            HeaderName::RecordRoute => {
                let _ = write!(text, "Record-Route: {value}\r\n");
            }
            HeaderName::From => {
                let _ = write!(text, "From: {value}\r\n");
            }
            HeaderName::CallId => {
                let _ = write!(text, "Call-ID: {value}\r\n");
            }
            HeaderName::CSeq => {
                let _ = write!(text, "CSeq: {value}\r\n");
            }
            HeaderName::To if value.contains("tag=") => {
                let _ = write!(text, "To: {value}\r\n");
            }
            HeaderName::To => {
                let _ = write!(text, "To: {value};tag={to_tag}\r\n");
            }
            _ => {}
        }
    }
    for (name, value) in extra {
        let _ = write!(text, "{name}: {value}\r\n");
    }
    finish(text, body)
}

fn finish(mut text: String, body: &str) -> Vec<u8> {
    if !body.is_empty() {
        text.push_str("Content-Type: application/sdp\r\n");
    }
    let _ = write!(text, "Content-Length: {}\r\n\r\n{body}", body.len());
    text.into_bytes()
}

/// The first header named `name` (case-insensitive, as written), for headers that hotline's
/// parser does not name (`WWW-Authenticate`, `Proxy-Authenticate`).
pub fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .all_headers()
        .find(|(_, written, _)| written.eq_ignore_ascii_case(name))
        .map(|(_, _, value)| value)
}

/// The URI inside `<…>` of a name-addr header value, or the value up to its parameters.
pub fn uri_of(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_copies_the_transaction_headers_and_tags_the_to() {
        let invite = request(
            "INVITE",
            "sip:1001@[::1]",
            &[
                ("Via", "SIP/2.0/TLS [::1]:5061;branch=z9hG4bKa"),
                ("Via", "SIP/2.0/TLS [::1]:40000;branch=z9hG4bKb;rport"),
                ("Record-Route", "<sip:[::1]:5061;transport=tls;lr>"),
                ("From", "<sip:1000@[::1]>;tag=f"),
                ("To", "<sip:1001@[::1]>"),
                ("Call-ID", "c1"),
                ("CSeq", "2 INVITE"),
            ],
            &sdp_offer(1, 1, "sendrecv"),
        );
        let invite = Message::parse(&invite, MAX_HEADERS).unwrap();
        let ok = response(
            &invite,
            "200 OK",
            "t9",
            &[("Contact", "<sip:1001@[::1]:1>")],
            "",
        );
        let ok = Message::parse(&ok, MAX_HEADERS).unwrap();
        assert_eq!(ok.status(), Some(200));
        assert_eq!(ok.headers(HeaderName::Via).count(), 2);
        assert_eq!(ok.header(HeaderName::To), Some("<sip:1001@[::1]>;tag=t9"));
        assert_eq!(
            ok.header(HeaderName::RecordRoute),
            invite.header(HeaderName::RecordRoute)
        );
        assert_eq!(
            uri_of(ok.header(HeaderName::Contact).unwrap()),
            "sip:1001@[::1]:1"
        );
        assert_eq!(header(&ok, "content-length"), Some("0"));
    }

    #[test]
    fn the_answer_to_a_hold_is_receive_only_and_keeps_its_keys() {
        let answer = sdp_answer("sendonly");
        assert!(answer.contains("a=recvonly") && answer.contains("a=crypto:1"));
        assert!(sdp_answer("sendrecv").contains("a=sendrecv"));
    }
}

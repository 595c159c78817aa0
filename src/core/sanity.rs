//! Checks a request must pass before anything acts on it (the core of Kamailio's
//! `sanity_check("1511", "7")`): a clear error status, or `None` to drop silently when the
//! request cannot even be answered.

use crate::sip::{HeaderName, Message, Uri, UriError, Via};

/// The status and reason phrase a request is refused with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: &'static str,
}

const fn refuse(status: u16, reason: &'static str) -> Refusal {
    Refusal { status, reason }
}

/// A control character (but tab) outside a backslash escape within quotes.
fn has_bare_control(value: &str) -> bool {
    // Almost every value has no control character at all: a branch-free pass the compiler
    // vectorises answers those before the quoting is followed byte by byte.
    let any_control = value.bytes().fold(false, |found, b| {
        found | ((b < 0x20 && b != b'\t') || b == 0x7f)
    });
    if !any_control {
        return false;
    }
    let mut quoted = false;
    let mut escaped = false;
    value.bytes().any(|b| {
        let control = (b < 0x20 && b != b'\t') || b == 0x7f;
        let bare = control && !(quoted && escaped);
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ => {}
        }
        bare
    })
}

/// Checks a parsed request whose top `Via` is valid (so it can be answered). More than
/// `max_vias` Via entries means a loop or an attack: nothing legitimate crosses more proxies than
/// Max-Forwards allows.
/// On a `stream` transport Content-Length is mandatory (RFC 3261 §18.3).
pub fn check(request: &Message, max_vias: usize, stream: bool) -> Result<(), Refusal> {
    if !request.version().eq_ignore_ascii_case("SIP/2.0") {
        return Err(refuse(505, "Version Not Supported"));
    }
    if stream && request.content_length() == Ok(None) {
        return Err(refuse(400, "Content-Length Required"));
    }
    if let Some(problem) = request.body_problem() {
        return Err(refuse(400, problem));
    }
    // Control characters have no place in SIP text and would be echoed into responses and logs;
    // only a quoted-pair inside a quoted string may escape one (RFC 3261 §25.1).
    if request
        .all_headers()
        .any(|(_, _, value)| has_bare_control(value))
    {
        return Err(refuse(400, "Control Character In Header"));
    }
    match request.request_uri().map(Uri::parse) {
        Some(Ok(_)) => {}
        Some(Err(UriError::UnsupportedScheme)) => {
            return Err(refuse(416, "Unsupported URI Scheme"));
        }
        _ => return Err(refuse(400, "Bad Request-URI")),
    }
    if request
        .values(HeaderName::Via)
        .any(|v| Via::parse(v).is_none())
    {
        return Err(refuse(400, "Bad Via"));
    }
    if request.values(HeaderName::Via).count() > max_vias {
        return Err(refuse(400, "Too Many Via Headers"));
    }
    let from = request.from().ok_or(refuse(400, "Missing or Bad From"))?;
    let to = request.to().ok_or(refuse(400, "Missing or Bad To"))?;
    if from.parsed_uri().is_err() {
        return Err(refuse(400, "Bad From URI"));
    }
    if to.parsed_uri().is_err() {
        return Err(refuse(400, "Bad To URI"));
    }
    let tags = |params: crate::sip::Params<'_>| {
        params
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("tag"))
            .count()
    };
    if tags(from.params) > 1 || tags(to.params) > 1 {
        return Err(refuse(400, "Duplicate Tag"));
    }
    for name in [
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ] {
        if request.count(name) != 1 {
            return Err(refuse(400, "Missing or Repeated Header"));
        }
    }
    if request.call_id().is_none_or(str::is_empty) {
        return Err(refuse(400, "Missing Call-ID"));
    }
    let cseq = request.cseq().ok_or(refuse(400, "Bad CSeq"))?;
    if Some(cseq.method) != request.method_text() {
        return Err(refuse(400, "CSeq Method Mismatch"));
    }
    let digits = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    if request.headers(HeaderName::Expires).any(|v| !digits(v)) {
        return Err(refuse(400, "Bad Expires"));
    }
    if request
        .header(HeaderName::MaxForwards)
        .is_some_and(|v| v.is_empty() || v.len() > 9 || !v.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(refuse(400, "Bad Max-Forwards"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "OPTIONS sip:[::1] SIP/2.0\r\nVia: SIP/2.0/UDP [::1]:5070;branch=z9hG4bK1\r\n\
        From: <sip:1000@[::1]>;tag=a\r\nTo: <sip:[::1]>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n\
        Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

    fn check_text(text: &str) -> Result<(), Refusal> {
        check(&Message::parse(text.as_bytes(), 32).unwrap(), 4, false)
    }

    #[test]
    fn a_good_request_passes() {
        assert_eq!(check_text(GOOD), Ok(()));
    }

    #[test]
    fn escaped_controls_in_quoted_strings_and_long_max_forwards_pass() {
        let text = GOOD
            .replace(
                "<sip:1000@[::1]>;tag=a",
                "\"BEL:\\\x07 NUL:\\\x00\" <sip:1000@[::1]>;tag=a",
            )
            .replace("Max-Forwards: 70", "Max-Forwards: 0068");
        assert_eq!(check_text(&text), Ok(()));
    }

    #[test]
    fn streams_need_content_length() {
        let without = GOOD.replace("Content-Length: 0\r\n", "");
        let message = Message::parse(without.as_bytes(), 32).unwrap();
        assert_eq!(check(&message, 4, false), Ok(()));
        assert_eq!(check(&message, 4, true).map_err(|r| r.status), Err(400));
    }

    #[test]
    fn each_check_has_its_status() {
        let cases = [
            ("SIP/2.0\r\nVia", "SIP/7.0\r\nVia", 505),
            ("OPTIONS sip:[::1]", "OPTIONS nobody:knows", 416),
            ("OPTIONS sip:[::1]", "OPTIONS sip:[::1", 400),
            ("From: <sip:1000@[::1]>;tag=a\r\n", "", 400),
            (
                "From: <sip:1000@[::1]>",
                "From: <sip:1000@2001:db8::1>",
                400,
            ),
            (
                "To: <sip:[::1]>\r\n",
                "To: <sip:[::1]>\r\nTo: <sip:[::2]>\r\n",
                400,
            ),
            ("To: <sip:[::1]>", "To: <sip:[::1>", 400),
            ("Call-ID: c1\r\n", "", 400),
            ("CSeq: 1 OPTIONS", "CSeq: 1 INVITE", 400),
            ("CSeq: 1 OPTIONS", "CSeq: 4294967296 OPTIONS", 400),
            ("CSeq: 1 OPTIONS", "CSeq: OPTIONS", 400),
            ("Max-Forwards: 70", "Max-Forwards: many", 400),
            ("Call-ID: c1", "Call-ID: c\x001", 400),
            ("tag=a", "tag=a\r\nSubject: \"a\x07\"", 400),
            ("tag=a", "tag=a;tag=b", 400),
            ("To: <sip:[::1]>", "To: <sip:[::1]>;tag=x;TAG=y", 400),
            ("Max-Forwards: 70", "Max-Forwards: 70\r\nExpires: soon", 400),
            ("Max-Forwards: 70", "Max-Forwards: 70\r\nExpires: -1", 400),
            (
                "Via: SIP/2.0/UDP [::1]:5070;branch=z9hG4bK1\r\n",
                "Via: SIP/2.0/UDP [::1]:5070;branch=z9hG4bK1, SIP/2.0/UDP [::2], SIP/2.0/UDP [::3]\r\n\
                 Via: SIP/2.0/UDP [::4], SIP/2.0/UDP [::5]\r\n",
                400,
            ),
            ("Call-ID: c1", "Call-ID: c\x1b[31m1", 400),
            ("Content-Length: 0", "Content-Length: 10", 400),
            (
                "Via: SIP/2.0/UDP [::1]:5070;branch=z9hG4bK1\r\n",
                "Via: SIP/2.0/UDP [::1]:5070;branch=z9hG4bK1\r\nVia: junk\r\n",
                400,
            ),
        ];
        for (from, to, status) in cases {
            let text = GOOD.replacen(from, to, 1);
            assert_ne!(text, GOOD, "{from}");
            assert_eq!(check_text(&text).map_err(|r| r.status), Err(status), "{to}");
        }
    }
}

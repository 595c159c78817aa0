//! Building forwarded messages from received ones (RFC 3261 §16.6): a proxy changes a few headers
//! and copies every other one, and the body, as it arrived.

use std::fmt::Write as _;

use super::header::HeaderName;
use super::message::Message;
use super::params::split_outside_quotes;

/// What becomes of a received header line in the rewritten message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    Keep,
    Drop,
    Replace(String),
}

/// A header written by the proxy itself.
pub type Added<'a> = (&'a str, &'a str);

impl Message {
    /// Writes this message with another Request-URI (for requests; `None` keeps the start line),
    /// the `prepend` headers first, then each received header as `edit` decides, then `append`,
    /// then the body unchanged.
    pub fn rewrite(
        &self,
        request_uri: Option<&str>,
        prepend: &[Added<'_>],
        mut edit: impl FnMut(HeaderName, &str) -> Edit,
        append: &[Added<'_>],
    ) -> Vec<u8> {
        let mut text = String::with_capacity(self.head_len() + 256);
        match (self.method_text(), request_uri.or(self.request_uri())) {
            (Some(method), Some(uri)) => {
                let _ = write!(text, "{method} {uri} SIP/2.0\r\n");
            }
            _ => {
                let status = self.status().unwrap_or(500);
                let _ = write!(text, "SIP/2.0 {status} {}\r\n", self.reason().unwrap_or(""));
            }
        }
        for (name, value) in prepend {
            let _ = write!(text, "{name}: {value}\r\n");
        }
        for (header, name, value) in self.all_headers() {
            match edit(header, value) {
                Edit::Keep => {
                    let _ = write!(text, "{name}: {value}\r\n");
                }
                Edit::Drop => {}
                Edit::Replace(value) => {
                    let _ = write!(text, "{name}: {value}\r\n");
                }
            }
        }
        for (name, value) in append {
            let _ = write!(text, "{name}: {value}\r\n");
        }
        text.push_str("\r\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(self.body());
        bytes
    }
}

/// The value of a list header without its first element; `None` when nothing is left.
pub fn without_first(value: &str) -> Option<String> {
    let rest: Vec<&str> = split_outside_quotes(value, b',')
        .skip(1)
        .map(str::trim)
        .collect();
    (!rest.is_empty()).then(|| rest.join(", "))
}

/// An edit that removes the first `n` elements of the list header `name`, across its lines.
pub fn drop_first(name: HeaderName, mut n: usize) -> impl FnMut(HeaderName, &str) -> Edit {
    move |header, value| {
        if header != name || n == 0 {
            return Edit::Keep;
        }
        let elements: Vec<&str> = split_outside_quotes(value, b',').map(str::trim).collect();
        let dropped = n.min(elements.len());
        n -= dropped;
        match &elements[dropped..] {
            [] => Edit::Drop,
            rest => Edit::Replace(rest.join(", ")),
        }
    }
}

/// A CANCEL for a forwarded INVITE (RFC 3261 §9.1): same Request-URI, top Via, Route, Call-ID,
/// From, To and CSeq number.
pub fn cancel_for(invite: &Message) -> Vec<u8> {
    Forwarded::of(invite).cancel()
}

/// The ACK for a non-2xx final response to a forwarded INVITE (RFC 3261 §17.1.1.3): like a
/// CANCEL, but with the To of the response (its tag).
pub fn ack_for(invite: &Message, response: &Message) -> Vec<u8> {
    Forwarded::of(invite).ack(response)
}

/// What the CANCEL and the ACK for a non-2xx response repeat of a forwarded INVITE: kept per
/// branch instead of the whole request, and taken from the received request as it is
/// forwarded, so that nothing is parsed again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    request_uri: String,
    via: Option<String>,
    /// The Route lines, as forwarded.
    routes: Vec<String>,
    from: Option<String>,
    to: String,
    call_id: Option<String>,
    cseq: u32,
}

impl Forwarded {
    /// `request` as forwarded to `request_uri` with `via` on top and its Route lines edited by
    /// `routes` (the edit [`Message::rewrite`] is given).
    pub fn new(
        request: &Message,
        request_uri: &str,
        via: &str,
        mut routes: impl FnMut(HeaderName, &str) -> Edit,
    ) -> Forwarded {
        let routes = request
            .headers(HeaderName::Route)
            .filter_map(|route| match routes(HeaderName::Route, route) {
                Edit::Keep => Some(route.to_owned()),
                Edit::Replace(route) => Some(route),
                Edit::Drop => None,
            })
            .collect();
        Forwarded {
            request_uri: request_uri.to_owned(),
            via: Some(via.to_owned()),
            routes,
            ..Forwarded::of_headers(request)
        }
    }

    /// An INVITE as it was sent.
    pub fn of(invite: &Message) -> Forwarded {
        Forwarded {
            request_uri: invite.request_uri().unwrap_or("").to_owned(),
            via: invite.values(HeaderName::Via).next().map(str::to_owned),
            routes: invite
                .headers(HeaderName::Route)
                .map(str::to_owned)
                .collect(),
            ..Forwarded::of_headers(invite)
        }
    }

    fn of_headers(invite: &Message) -> Forwarded {
        Forwarded {
            request_uri: String::new(),
            via: None,
            routes: Vec::new(),
            from: invite.header(HeaderName::From).map(str::to_owned),
            to: invite.header(HeaderName::To).unwrap_or("").to_owned(),
            call_id: invite.call_id().map(str::to_owned),
            cseq: invite.cseq().map_or(0, |c| c.number),
        }
    }

    /// The CANCEL (RFC 3261 §9.1).
    pub fn cancel(&self) -> Vec<u8> {
        self.request("CANCEL", &self.to)
    }

    /// The ACK for the non-2xx final `response` (RFC 3261 §17.1.1.3): with its To (and tag).
    pub fn ack(&self, response: &Message) -> Vec<u8> {
        let to = response.header(HeaderName::To).unwrap_or(&self.to);
        self.request("ACK", to)
    }

    fn request(&self, method: &str, to: &str) -> Vec<u8> {
        let mut text = String::with_capacity(512);
        let _ = write!(text, "{method} {} SIP/2.0\r\n", self.request_uri);
        if let Some(via) = &self.via {
            let _ = write!(text, "Via: {via}\r\n");
        }
        for route in &self.routes {
            let _ = write!(text, "Route: {route}\r\n");
        }
        let _ = write!(text, "Max-Forwards: 70\r\n");
        if let Some(from) = &self.from {
            let _ = write!(text, "From: {from}\r\n");
        }
        let _ = write!(text, "To: {to}\r\n");
        if let Some(call_id) = &self.call_id {
            let _ = write!(text, "Call-ID: {call_id}\r\n");
        }
        let number = self.cseq;
        let _ = write!(text, "CSeq: {number} {method}\r\nContent-Length: 0\r\n\r\n");
        text.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:1001@hotline.test SIP/2.0\r\n\
        Via: SIP/2.0/UDP [::1]:5070;branch=z9hG4bKa, SIP/2.0/UDP [::2];branch=z9hG4bKb\r\n\
        Via: SIP/2.0/UDP [::3];branch=z9hG4bKc\r\n\
        Route: <sip:[::1]:5060;lr>\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:1000@hotline.test>;tag=f\r\nTo: <sip:1001@hotline.test>\r\n\
        Call-ID: c\r\nCSeq: 7 INVITE\r\nX-Odd:  spaced  \r\n\
        Content-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n";

    fn parse(bytes: &[u8]) -> Message {
        Message::parse(bytes, 64).unwrap()
    }

    #[test]
    fn rewrite_keeps_what_it_does_not_touch() {
        let m = parse(INVITE.as_bytes());
        let out = m.rewrite(
            Some("sip:1001@[2001:db8::9]:5062"),
            &[("Via", "SIP/2.0/UDP [::1]:5060;branch=z9hG4bKnew")],
            |h, v| match h {
                HeaderName::MaxForwards => Edit::Replace("69".into()),
                HeaderName::Route if v.contains("[::1]:5060") => Edit::Drop,
                _ => Edit::Keep,
            },
            &[("Record-Route", "<sip:[::1]:5060;lr>")],
        );
        let f = parse(&out);
        assert_eq!(f.request_uri(), Some("sip:1001@[2001:db8::9]:5062"));
        let vias: Vec<_> = f.values(HeaderName::Via).collect();
        assert_eq!(vias.len(), 4);
        assert_eq!(f.top_via().unwrap().branch(), Some("z9hG4bKnew"));
        assert_eq!(f.header(HeaderName::Route), None);
        assert_eq!(f.header(HeaderName::MaxForwards), Some("69"));
        assert_eq!(
            f.header(HeaderName::RecordRoute),
            Some("<sip:[::1]:5060;lr>")
        );
        assert_eq!(
            f.all_headers().find(|h| h.1 == "X-Odd").map(|h| h.2),
            Some("spaced")
        );
        assert_eq!(f.body(), b"v=0\n");
    }

    #[test]
    fn dropping_the_top_via_of_a_response() {
        let response = INVITE.replacen(
            "INVITE sip:1001@hotline.test SIP/2.0",
            "SIP/2.0 180 Ringing",
            1,
        );
        let m = parse(response.as_bytes());
        let out = m.rewrite(None, &[], drop_first(HeaderName::Via, 1), &[]);
        let f = parse(&out);
        assert_eq!(f.status(), Some(180));
        assert_eq!(f.reason(), Some("Ringing"));
        let branches: Vec<_> = f
            .values(HeaderName::Via)
            .map(|v| {
                crate::sip::Via::parse(v)
                    .unwrap()
                    .branch()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(branches, ["z9hG4bKb", "z9hG4bKc"]);
        let two = m.rewrite(None, &[], drop_first(HeaderName::Via, 2), &[]);
        assert_eq!(parse(&two).values(HeaderName::Via).count(), 1);
        assert_eq!(without_first("a, b, c").as_deref(), Some("b, c"));
        assert_eq!(without_first("a"), None);
    }

    #[test]
    fn cancel_and_ack_match_the_invite() {
        let invite = parse(INVITE.as_bytes());
        let cancel = parse(&cancel_for(&invite));
        assert_eq!(cancel.method_text(), Some("CANCEL"));
        assert_eq!(cancel.request_uri(), invite.request_uri());
        assert_eq!(
            cancel.values(HeaderName::Via).collect::<Vec<_>>(),
            ["SIP/2.0/UDP [::1]:5070;branch=z9hG4bKa"]
        );
        assert_eq!(cancel.cseq().unwrap().number, 7);
        assert_eq!(cancel.cseq().unwrap().method, "CANCEL");
        assert_eq!(
            cancel.header(HeaderName::Route),
            Some("<sip:[::1]:5060;lr>")
        );
        let busy = parse(
            b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP [::1]:5070;branch=z9hG4bKa\r\n\
              From: <sip:1000@hotline.test>;tag=f\r\nTo: <sip:1001@hotline.test>;tag=t\r\n\
              Call-ID: c\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n",
        );
        let ack = parse(&ack_for(&invite, &busy));
        assert_eq!(ack.method_text(), Some("ACK"));
        assert_eq!(ack.to().unwrap().tag(), Some("t"));
        assert_eq!(ack.cseq().unwrap().method, "ACK");
    }
}

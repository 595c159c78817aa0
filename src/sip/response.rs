//! Responses built from the request they answer (RFC 3261 §8.2.6).

use std::fmt::{self, Write as _};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;

use super::header::HeaderName;
use super::message::Message;
use super::via::Via;

/// A response being written: status line and the headers copied from the request first, then
/// whatever the caller adds, then the body.
pub struct Response {
    text: String,
}

impl Response {
    /// Starts a response to `request`, which came from `source`. The top `Via` gets `received`
    /// and `rport` (RFC 3261 §18.2.1, RFC 3581); a `To` without tag gets one derived from the
    /// dialog identifiers, so a retransmitted request gets the same tag.
    pub fn to(request: &Message, source: SocketAddr, status: u16, reason: &str) -> Response {
        let mut text = String::with_capacity(512);
        let _ = write!(text, "SIP/2.0 {status} ");
        text.push_str(reason);
        text.push_str("\r\n");
        for (i, via) in request.values(HeaderName::Via).enumerate() {
            text.push_str("Via: ");
            match Via::parse(via).filter(|_| i == 0) {
                Some(top) => write_top_via(&mut text, via, &top, source),
                None => text.push_str(via),
            }
            text.push_str("\r\n");
        }
        copy(&mut text, request, HeaderName::From, "From");
        if let Some(to) = request.header(HeaderName::To) {
            text.push_str("To: ");
            text.push_str(to);
            let has_tag = request.to().is_some_and(|t| t.tag().is_some());
            if !has_tag && status > 100 {
                let _ = write!(text, ";tag={:016x}", local_tag(request));
            }
            text.push_str("\r\n");
        }
        copy(&mut text, request, HeaderName::CallId, "Call-ID");
        copy(&mut text, request, HeaderName::CSeq, "CSeq");
        Response { text }
    }

    pub fn header(&mut self, name: &str, value: impl fmt::Display) -> &mut Response {
        let _ = write!(self.text, "{name}: {value}\r\n");
        self
    }

    /// Ends the headers with `Content-Length: 0`.
    pub fn finish(self) -> Vec<u8> {
        self.finish_with_body("", &[])
    }

    pub fn finish_with_body(mut self, content_type: &str, body: &[u8]) -> Vec<u8> {
        if !body.is_empty() {
            let _ = write!(self.text, "Content-Type: {content_type}\r\n");
        }
        let _ = write!(self.text, "Content-Length: {}\r\n\r\n", body.len());
        let mut bytes = self.text.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }
}

fn copy(text: &mut String, request: &Message, name: HeaderName, canonical: &str) {
    if let Some(value) = request.header(name) {
        for part in [canonical, ": ", value, "\r\n"] {
            text.push_str(part);
        }
    }
}

/// Rewrites the top `Via` with `received` and a filled-in `rport`.
fn write_top_via(text: &mut String, raw: &str, via: &Via<'_>, source: SocketAddr) {
    let params_start = raw.len() - via.params.as_str().len();
    let has_params = !via.params.as_str().is_empty();
    let sent_by = if has_params {
        raw[..params_start - 1].trim_end()
    } else {
        raw
    };
    text.push_str(sent_by);
    let rport = via.params.get("rport").is_some();
    for (name, value) in via.params.iter() {
        if name.eq_ignore_ascii_case("received") {
            continue;
        }
        if name.eq_ignore_ascii_case("rport") {
            let _ = write!(text, ";rport={}", source.port());
            continue;
        }
        text.push(';');
        text.push_str(name);
        if let Some(value) = value {
            text.push('=');
            text.push_str(value);
        }
    }
    let sent_from_elsewhere = !via.host.matches(&source.ip().into());
    if rport || sent_from_elsewhere {
        let _ = write!(text, ";received={}", source.ip());
    }
}

fn local_tag(request: &Message) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    request.call_id().hash(&mut hasher);
    request.from().and_then(|f| f.tag()).hash(&mut hasher);
    request.top_via().and_then(|v| v.branch()).hash(&mut hasher);
    hasher.finish()
}

//! A received SIP message: its text kept as written, with the positions of the start line and
//! each header, so that typed views are parsed only when asked for.

use std::fmt;

use super::header::HeaderName;
use super::name_addr::NameAddr;
use super::params::split_outside_quotes;
use super::via::Via;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the message is empty")]
    Empty,
    #[error("the header section does not end")]
    Truncated,
    #[error("the header section is not UTF-8")]
    NotUtf8,
    #[error("malformed start line")]
    StartLine,
    #[error("malformed header line")]
    HeaderLine,
    #[error("too many headers")]
    TooManyHeaders,
    #[error("malformed Content-Length")]
    ContentLength,
}

/// The request methods the core treats specially; others are [`Method::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Register,
    Invite,
    Ack,
    Cancel,
    Bye,
    Options,
    Subscribe,
    Refer,
    Other,
}

impl Method {
    /// Methods are case-sensitive (RFC 3261 §7.1).
    pub fn parse(token: &str) -> Method {
        match token {
            "REGISTER" => Method::Register,
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "CANCEL" => Method::Cancel,
            "BYE" => Method::Bye,
            "OPTIONS" => Method::Options,
            "SUBSCRIBE" => Method::Subscribe,
            "REFER" => Method::Refer,
            _ => Method::Other,
        }
    }

    /// The token of a known method; empty for [`Method::Other`], whose text only the message has.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Register => "REGISTER",
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Cancel => "CANCEL",
            Method::Bye => "BYE",
            Method::Options => "OPTIONS",
            Method::Subscribe => "SUBSCRIBE",
            Method::Refer => "REFER",
            Method::Other => "",
        }
    }

    /// Whether a 2xx to this request outside a dialog makes one (RFC 3261 §12, RFC 6665,
    /// RFC 3515): such requests get hotline's Record-Route.
    pub fn forms_dialog(self) -> bool {
        matches!(self, Method::Invite | Method::Subscribe | Method::Refer)
    }
}

#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn of(inner: &str, outer: &str) -> Span {
        let start = inner.as_ptr() as usize - outer.as_ptr() as usize;
        Span {
            start: start as u32,
            end: (start + inner.len()) as u32,
        }
    }

    fn get(self, text: &str) -> &str {
        &text[self.start as usize..self.end as usize]
    }
}

#[derive(Debug, Clone, Copy)]
enum StartLine {
    Request {
        method: Method,
        method_text: Span,
        uri: Span,
        version: Span,
    },
    Response {
        status: u16,
        reason: Span,
        version: Span,
    },
}

#[derive(Debug, Clone, Copy)]
struct Header {
    name: HeaderName,
    name_text: Span,
    value: Span,
}

/// A parsed request or response.
#[derive(Clone)]
pub struct Message {
    /// The start line and header lines, folded lines joined with spaces.
    head: Box<str>,
    body: Box<[u8]>,
    start: StartLine,
    headers: Vec<Header>,
    /// What is wrong with the body's length, for a 400 (RFC 3261 §18.3): the datagram ended
    /// before Content-Length bytes, or Content-Length is malformed.
    body_problem: Option<&'static str>,
}

/// A view of a `CSeq` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    pub number: u32,
    pub method: &'a str,
}

impl<'a> CSeq<'a> {
    /// `CSeq: 1 REGISTER`; the number must fit 32 bits unsigned (Kamailio's sanity bit 64).
    pub fn parse(text: &'a str) -> Option<CSeq<'a>> {
        let (number, method) = text.trim().split_once([' ', '\t'])?;
        let method = method.trim();
        let number_ok = !number.is_empty() && number.len() <= 10;
        if !number_ok || !number.bytes().all(|b| b.is_ascii_digit()) || !super::is_token(method) {
            return None;
        }
        Some(CSeq {
            number: number.parse().ok()?,
            method,
        })
    }
}

impl Message {
    /// Parses one message. A `Content-Length` shorter than what follows the headers cuts the body
    /// there (a datagram's excess is discarded, RFC 3261 §18.3); without it the body is the rest.
    /// A longer or malformed one is recorded ([`Message::body_problem`]) so that the message
    /// can still be answered 400.
    pub fn parse(input: &[u8], max_headers: usize) -> Result<Message, ParseError> {
        let start = input
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .ok_or(ParseError::Empty)?;
        let input = &input[start..];
        let (head_len, body_start) = find_head_end(input).ok_or(ParseError::Truncated)?;
        let head = unfold(&input[..head_len]);
        let head = String::from_utf8(head)
            .map_err(|_| ParseError::NotUtf8)?
            .into_boxed_str();

        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let first = lines.next().ok_or(ParseError::StartLine)?;
        let start_line = parse_start_line(first, &head)?;
        let mut headers = Vec::with_capacity(16);
        for line in lines {
            if headers.len() == max_headers {
                return Err(ParseError::TooManyHeaders);
            }
            let (name, value) = line.split_once(':').ok_or(ParseError::HeaderLine)?;
            let name = name.trim_end_matches([' ', '\t']);
            if !super::is_token(name) {
                return Err(ParseError::HeaderLine);
            }
            headers.push(Header {
                name: HeaderName::parse(name),
                name_text: Span::of(name, &head),
                value: Span::of(value.trim_matches([' ', '\t', '\r']), &head),
            });
        }

        let rest = &input[body_start..];
        let mut message = Message {
            head,
            body: Box::default(),
            start: start_line,
            headers,
            body_problem: None,
        };
        let body = match message.content_length() {
            Ok(Some(length)) if length > rest.len() => {
                message.body_problem = Some("Body Shorter Than Content-Length");
                rest
            }
            Ok(Some(length)) => &rest[..length],
            Ok(None) => rest,
            Err(_) => {
                message.body_problem = Some("Bad Content-Length");
                rest
            }
        };
        message.body = body.into();
        Ok(message)
    }

    /// The declared body length; several `Content-Length` headers must agree.
    pub fn content_length(&self) -> Result<Option<usize>, ParseError> {
        let mut length = None;
        for value in self.headers(HeaderName::ContentLength) {
            let parsed = parse_content_length(value).ok_or(ParseError::ContentLength)?;
            if length.is_some_and(|l| l != parsed) {
                return Err(ParseError::ContentLength);
            }
            length = Some(parsed);
        }
        Ok(length)
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The request method, `None` for a response.
    pub fn method(&self) -> Option<Method> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The method as written in the request line, `None` for a response.
    pub fn method_text(&self) -> Option<&str> {
        match self.start {
            StartLine::Request { method_text, .. } => Some(method_text.get(&self.head)),
            StartLine::Response { .. } => None,
        }
    }

    pub fn request_uri(&self) -> Option<&str> {
        match self.start {
            StartLine::Request { uri, .. } => Some(uri.get(&self.head)),
            StartLine::Response { .. } => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { status, .. } => Some(status),
            StartLine::Request { .. } => None,
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self.start {
            StartLine::Response { reason, .. } => Some(reason.get(&self.head)),
            StartLine::Request { .. } => None,
        }
    }

    /// The SIP version as written, such as `SIP/2.0`.
    pub fn version(&self) -> &str {
        match self.start {
            StartLine::Request { version, .. } | StartLine::Response { version, .. } => {
                version.get(&self.head)
            }
        }
    }

    /// The value of the first header with this name.
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        self.headers(name).next()
    }

    /// The values of every header line with this name, in order.
    pub fn headers(&self, name: HeaderName) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(move |h| h.name == name)
            .map(|h| h.value.get(&self.head))
    }

    /// The elements of a list header across all its lines (`Via: a, b` + `Via: c` gives a, b, c).
    pub fn values(&self, name: HeaderName) -> impl Iterator<Item = &str> {
        self.headers(name)
            .flat_map(|v| split_outside_quotes(v, b','))
            .map(str::trim)
    }

    /// Every header as (name as written, value), in order.
    pub fn all_headers(&self) -> impl Iterator<Item = (HeaderName, &str, &str)> {
        self.headers
            .iter()
            .map(|h| (h.name, h.name_text.get(&self.head), h.value.get(&self.head)))
    }

    /// Counts headers with this name (list elements count once per line).
    pub fn count(&self, name: HeaderName) -> usize {
        self.headers.iter().filter(|h| h.name == name).count()
    }

    /// What is wrong with the body's length, if anything: the reason phrase of the 400.
    pub fn body_problem(&self) -> Option<&'static str> {
        self.body_problem
    }

    /// Length of the start line and headers, for sizing copies.
    pub fn head_len(&self) -> usize {
        self.head.len()
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub fn call_id(&self) -> Option<&str> {
        self.header(HeaderName::CallId)
    }

    pub fn cseq(&self) -> Option<CSeq<'_>> {
        self.header(HeaderName::CSeq).and_then(CSeq::parse)
    }

    /// The first `Via` element, parsed.
    pub fn top_via(&self) -> Option<Via<'_>> {
        self.values(HeaderName::Via).next().and_then(Via::parse)
    }

    pub fn from(&self) -> Option<NameAddr<'_>> {
        self.header(HeaderName::From).and_then(NameAddr::parse)
    }

    pub fn to(&self) -> Option<NameAddr<'_>> {
        self.header(HeaderName::To).and_then(NameAddr::parse)
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("head", &self.head)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Where the header section ends: (length of the header lines, start of the body), with CRLF
/// or bare LF line ends.
pub(super) fn find_head_end(input: &[u8]) -> Option<(usize, usize)> {
    let mut line_start = 0;
    while let Some(offset) = input[line_start..].iter().position(|&b| b == b'\n') {
        let newline = line_start + offset;
        let line = &input[line_start..newline];
        if line.is_empty() || line == b"\r" {
            return Some((line_start, newline + 1));
        }
        line_start = newline + 1;
    }
    None
}

/// Joins folded header lines (a line break followed by a space or tab, RFC 3261 §7.3.1) by
/// turning the line break into spaces; positions stay the same.
fn unfold(head: &[u8]) -> Vec<u8> {
    // The header section ends with the line break before the empty line. Cut before copying, so
    // that the copy is exactly as long as the boxed text made from it (no reallocation).
    let end = head.len()
        - head
            .iter()
            .rev()
            .take_while(|b| matches!(b, b'\n' | b'\r'))
            .count();
    let mut out = head[..end].to_vec();
    let mut i = 0;
    while i < out.len() {
        if out[i] == b'\n' && matches!(out.get(i + 1), Some(b' ' | b'\t')) {
            out[i] = b' ';
            if i > 0 && out[i - 1] == b'\r' {
                out[i - 1] = b' ';
            }
        }
        i += 1;
    }
    out
}

fn parse_start_line(line: &str, head: &str) -> Result<StartLine, ParseError> {
    // Bytes, not a str slice: the fourth byte may fall inside a multi-byte character.
    if line
        .as_bytes()
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
    {
        let (version, rest) = line.split_once(' ').ok_or(ParseError::StartLine)?;
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, &rest[rest.len()..]));
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) || !is_version(version) {
            return Err(ParseError::StartLine);
        }
        let status: u16 = code.parse().map_err(|_| ParseError::StartLine)?;
        if !(100..700).contains(&status) {
            return Err(ParseError::StartLine);
        }
        return Ok(StartLine::Response {
            status,
            reason: Span::of(reason, head),
            version: Span::of(version, head),
        });
    }
    let (method, rest) = line.split_once(' ').ok_or(ParseError::StartLine)?;
    let (uri, version) = rest.rsplit_once(' ').ok_or(ParseError::StartLine)?;
    let uri_ok = !uri.is_empty() && !uri.contains([' ', '\t']);
    if !super::is_token(method) || !uri_ok || !is_version(version) {
        return Err(ParseError::StartLine);
    }
    Ok(StartLine::Request {
        method: Method::parse(method),
        method_text: Span::of(method, head),
        uri: Span::of(uri, head),
        version: Span::of(version, head),
    })
}

/// `SIP/1*DIGIT.1*DIGIT`; whether it is 2.0 is for the sanity checks to say (505).
fn is_version(text: &str) -> bool {
    let Some(number) = text
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("SIP/"))
        .map(|_| &text[4..])
    else {
        return false;
    };
    number.split_once('.').is_some_and(|(major, minor)| {
        [major, minor]
            .iter()
            .all(|n| !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

fn parse_content_length(value: &str) -> Option<usize> {
    let value = value.trim();
    if value.is_empty() || value.len() > 9 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

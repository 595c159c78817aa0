//! The SRTP policy on SDP offers and answers (RFC 8866, RFC 3264): every active media stream must
//! be SRTP with keys negotiated for its profile. The body is parsed line by line and judged per
//! `m=` section, so that words in free text (`s=`, `i=`) never pass or fail a call.
//!
//! What makes a stream secure, by its transport protocol:
//! - `RTP/SAVP`, `RTP/SAVPF` (RFC 3711, RFC 5124): an `a=crypto` line in the section whose suite
//!   and key both phones can use (SDES, RFC 4568, see [`super::sdes`]), or MIKEY
//!   (`a=key-mgmt:mikey`, RFC 4567) in the section or at session level;
//! - `UDP/TLS/RTP/SAVP`, `UDP/TLS/RTP/SAVPF` (DTLS-SRTP, RFC 5763/5764): an `a=fingerprint`
//!   (RFC 8122) in the section or at session level;
//! - anything else, `RTP/AVP` and `RTP/AVPF` included, is not: keys offered on a plain profile
//!   (best-effort SRTP, ZRTP's `a=zrtp-hash`) let the answerer pick plain RTP, and a proxy cannot
//!   see what the phones end up sending.

use super::sdes::{self, Unusable, base64_len};

/// Lines per body. Real offers have 10 to 60; the cap bounds the work an outsider can cause.
const MAX_LINES: usize = 512;
/// `m=` lines per body. Phones send one to three; WebRTC bundles rarely more than a dozen.
const MAX_MEDIA: usize = 32;

/// Hash functions of `a=fingerprint` (RFC 8122 §5) and their digest lengths in bytes. MD2 and MD5
/// are left out: RFC 8122 forbids them.
const FINGERPRINT_HASHES: [(&str, usize); 5] = [
    ("sha-1", 20),
    ("sha-224", 28),
    ("sha-256", 32),
    ("sha-384", 48),
    ("sha-512", 64),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SrtpVerdict {
    /// No body at all.
    NoSdp,
    /// Every active media stream is SRTP with keys. This includes an SDP whose streams are all
    /// disabled (every port 0): it carries no media, so there is nothing to leak (RFC 3264 §8.2
    /// uses it to remove streams).
    Secure,
    /// The first insecure active stream, e.g. media "audio", proto "RTP/AVP", index 0, and why —
    /// for the log line. `index` counts every `m=` line, disabled ones too, as RFC 3264 matches
    /// offer and answer streams by position; `media` and `proto` are as written.
    Insecure {
        index: usize,
        media: String,
        proto: String,
        reason: &'static str,
    },
    /// Not parseable as SDP, or an SDP without any `m=` line (valid RFC 8866, but an offer or
    /// answer without media is nothing a call can use), or a body that is not
    /// `application/sdp` (a multipart body could carry plain RTP past a proxy that reads only
    /// SDP), with the reason for the log.
    Malformed(&'static str),
}

impl SrtpVerdict {
    /// An SDP that must not become a call: insecure or unreadable.
    pub fn refuses(&self) -> bool {
        matches!(
            self,
            SrtpVerdict::Insecure { .. } | SrtpVerdict::Malformed(_)
        )
    }
}

/// `content_type` is the Content-Type header value if any (parameters like `;charset=` allowed,
/// case-insensitive, whitespace tolerated).
///
/// Parsing is strict where the verdict depends on it (`v=0` first, every line `<letter>=<value>`,
/// well-formed `m=` lines) and lenient elsewhere: line order, unknown types and the contents of
/// other lines are not checked, repeated spaces in `m=` lines and blank lines at the end are
/// tolerated, since rejecting a phone's quirk would only fail calls.
pub fn srtp_verdict(content_type: Option<&str>, body: &[u8]) -> SrtpVerdict {
    if body.is_empty() {
        return SrtpVerdict::NoSdp;
    }
    if !content_type.is_some_and(is_sdp_content_type) {
        return SrtpVerdict::Malformed("a body that is not application/sdp");
    }
    let (session, sections) = match media_sections(body) {
        Ok(parsed) => parsed,
        Err(reason) => return SrtpVerdict::Malformed(reason),
    };
    let insecure = sections.iter().enumerate().find_map(|(index, section)| {
        let reason = section.insecurity(&session)?;
        (section.port != 0).then_some((index, section, reason))
    });
    match insecure {
        Some((index, section, reason)) => SrtpVerdict::Insecure {
            index,
            media: section.media.to_owned(),
            proto: section.proto.to_owned(),
            reason,
        },
        None => SrtpVerdict::Secure,
    }
}

/// `application/sdp`, ignoring parameters, case and the whitespace RFC 3261 allows around `/`.
fn is_sdp_content_type(value: &str) -> bool {
    let media_type = value
        .split_once(';')
        .map_or(value, |(media_type, _)| media_type);
    media_type.split_once('/').is_some_and(|(kind, subtype)| {
        kind.trim().eq_ignore_ascii_case("application")
            && subtype.trim().eq_ignore_ascii_case("sdp")
    })
}

/// Key material found at one level (session, or one media section).
#[derive(Default)]
struct Keys {
    /// The verdict on the best `a=crypto` line: `Ok` once any is usable. Only media-level lines
    /// count: crypto is a media-level attribute.
    sdes: Option<Result<(), Unusable>>,
    mikey: bool,
    fingerprint: bool,
}

impl Keys {
    fn add(&mut self, attribute: &str) {
        let (name, value) = attribute.split_once(':').unwrap_or((attribute, ""));
        if name.eq_ignore_ascii_case("crypto") {
            if self.sdes != Some(Ok(())) {
                self.sdes = Some(sdes::check(value));
            }
        } else if name.eq_ignore_ascii_case("key-mgmt") {
            self.mikey |= is_mikey(value);
        } else if name.eq_ignore_ascii_case("fingerprint") {
            self.fingerprint |= is_fingerprint(value);
        }
    }
}

/// One `m=` line and the key material of its section.
struct MediaSection<'a> {
    media: &'a str,
    port: u16,
    proto: &'a str,
    keys: Keys,
}

impl MediaSection<'_> {
    /// Why this stream would not be encrypted, or `None` when its keys fit its profile.
    fn insecurity(&self, session: &Keys) -> Option<&'static str> {
        let proto = |name: &str| self.proto.eq_ignore_ascii_case(name);
        if proto("RTP/SAVP") || proto("RTP/SAVPF") {
            if self.keys.sdes == Some(Ok(())) || self.keys.mikey || session.mikey {
                return None;
            }
            return Some(match self.keys.sdes {
                Some(Err(Unusable::UnknownSuite)) => "a=crypto with an unknown suite",
                Some(Err(Unusable::BadKey)) => "a=crypto without a usable inline key",
                Some(Err(Unusable::Unencrypted)) => "a=crypto with UNENCRYPTED_SRTP",
                Some(Err(Unusable::Malformed)) => "malformed a=crypto",
                _ => "SRTP profile without a=crypto or a=key-mgmt",
            });
        }
        if proto("UDP/TLS/RTP/SAVP") || proto("UDP/TLS/RTP/SAVPF") {
            return (!self.keys.fingerprint && !session.fingerprint)
                .then_some("DTLS-SRTP profile without a=fingerprint");
        }
        Some("not an SRTP profile")
    }
}

fn media_sections(body: &[u8]) -> Result<(Keys, Vec<MediaSection<'_>>), &'static str> {
    let text = std::str::from_utf8(body).map_err(|_| "not UTF-8")?;
    let mut lines = text
        .trim_end_matches(['\r', '\n'])
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line));
    if lines.next() != Some("v=0") {
        return Err("first line is not v=0");
    }
    let mut session = Keys::default();
    let mut sections: Vec<MediaSection> = Vec::new();
    for (number, line) in (2..).zip(lines) {
        if number > MAX_LINES {
            return Err("too many lines");
        }
        let (kind, value) = split_line(line).ok_or("line is not <type>=<value>")?;
        match kind {
            b'm' => {
                if sections.len() == MAX_MEDIA {
                    return Err("too many media sections");
                }
                sections.push(parse_media_line(value).ok_or("malformed m= line")?);
            }
            b'a' => match sections.last_mut() {
                Some(section) => section.keys.add(value),
                None => session.add(value),
            },
            _ => {}
        }
    }
    if sections.is_empty() {
        return Err("no m= line");
    }
    // a=crypto is media-level only (RFC 4568 §9.1).
    session.sdes = None;
    Ok((session, sections))
}

/// `<type>=<value>` with a single lowercase letter as type.
fn split_line(line: &str) -> Option<(u8, &str)> {
    match line.as_bytes() {
        [kind @ b'a'..=b'z', b'=', ..] => Some((*kind, &line[2..])),
        _ => None,
    }
}

/// `<media> <port>[/<count>] <proto> <fmt> …` (RFC 8866 §5.14).
fn parse_media_line(value: &str) -> Option<MediaSection<'_>> {
    let mut fields = value.split(' ').filter(|field| !field.is_empty());
    let media = fields.next().filter(|media| is_token(media))?;
    let port = fields.next().and_then(parse_port)?;
    let proto = fields
        .next()
        .filter(|proto| proto.split('/').all(is_token))?;
    let first_format = fields.next()?;
    (is_token(first_format) && fields.all(is_token)).then_some(MediaSection {
        media,
        port,
        proto,
        keys: Keys::default(),
    })
}

/// `<port>[/<count>]`, where the count of consecutive ports is a positive integer.
fn parse_port(field: &str) -> Option<u16> {
    let (port, count) = match field.split_once('/') {
        Some((port, count)) => (port, Some(count)),
        None => (field, None),
    };
    if let Some(count) = count
        && !(count.starts_with(|c: char| c != '0') && is_digits(count))
    {
        return None;
    }
    if !is_digits(port) {
        return None;
    }
    port.parse().ok()
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// `mikey <base64 MIKEY message>` (RFC 4567 §3.1); the message itself is the phones' business.
fn is_mikey(value: &str) -> bool {
    let mut fields = value.split(' ').filter(|field| !field.is_empty());
    fields
        .next()
        .is_some_and(|protocol| protocol.eq_ignore_ascii_case("mikey"))
        && fields
            .next()
            .and_then(base64_len)
            .is_some_and(|length| length > 0)
}

/// `<hash-func> <hex pairs joined by colons>` (RFC 8122 §5), with as many bytes as the hash has.
fn is_fingerprint(value: &str) -> bool {
    let Some((hash, fingerprint)) = value.trim().split_once(' ') else {
        return false;
    };
    let Some(&(_, length)) = FINGERPRINT_HASHES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(hash))
    else {
        return false;
    };
    let mut pairs = fingerprint.trim().split(':');
    pairs.clone().count() == length
        && pairs.all(|pair| pair.len() == 2 && pair.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `token` of RFC 8866 §9, which allows more punctuation than SIP's.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'..=b'\'' | b'*' | b'+' | b'-' | b'.' | b'^'..=b'`' | b'{'..=b'~'
                )
        })
}

#[cfg(test)]
#[path = "sdp_tests.rs"]
mod tests;

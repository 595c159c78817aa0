//! SIP URIs (RFC 3261 §19.1) with IPv6 references (RFC 5118): `sip:1000@[2001:db8::1]:5061;transport=tls`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::params::Params;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// A scheme other than sip/sips: RFC 3261 §8.2.2.1 answers 416.
    #[error("unsupported URI scheme")]
    UnsupportedScheme,
    #[error("malformed URI")]
    Malformed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
        }
    }
}

/// A host as written in a URI or `Via`: a domain name or an IP literal.
#[derive(Debug, Clone, Copy)]
pub enum Host<'a> {
    Name(&'a str),
    Ip(IpAddr),
}

impl Host<'_> {
    /// Parses a host without port: `example.org`, `192.0.2.1`, `[2001:db8::1]`. A bare IPv6
    /// address is accepted too, since configuration files and `received=` (RFC 5118 §4.5) use it.
    pub fn parse(text: &str) -> Option<Host<'_>> {
        if let Some(inner) = text.strip_prefix('[') {
            let inner = inner.strip_suffix(']')?;
            return inner
                .parse::<Ipv6Addr>()
                .ok()
                .map(|ip| Host::Ip(IpAddr::V6(ip)));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Some(Host::Ip(ip));
        }
        is_hostname(text).then_some(Host::Name(text))
    }

    /// Domain names compare case-insensitively, IP literals by value (`[::1]` equals
    /// `[0:0::1]`).
    pub fn matches(&self, other: &Host<'_>) -> bool {
        match (self, other) {
            (Host::Name(a), Host::Name(b)) => a.eq_ignore_ascii_case(b),
            (Host::Ip(a), Host::Ip(b)) => canonical(*a) == canonical(*b),
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses stand for their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// `hostname = *( domainlabel "." ) toplabel [ "." ]`, labels of alphanumerics and inner hyphens.
fn is_hostname(text: &str) -> bool {
    let text = text.strip_suffix('.').unwrap_or(text);
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
        // A name of digits and dots only would be a malformed IPv4 address.
        && !text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// A parsed `sip:` or `sips:` URI borrowing from the message text.
#[derive(Debug, Clone, Copy)]
pub struct Uri<'a> {
    pub scheme: Scheme,
    /// The user part, still %-escaped as received.
    pub user: Option<&'a str>,
    pub host: Host<'a>,
    pub port: Option<u16>,
    /// URI parameters, after the first `;`.
    pub params: Params<'a>,
    /// The `?` headers part, without the `?`.
    pub headers: &'a str,
}

impl<'a> Uri<'a> {
    pub fn parse(text: &'a str) -> Result<Uri<'a>, UriError> {
        let (scheme, rest) = text.split_once(':').ok_or(UriError::Malformed)?;
        let scheme = if scheme.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if is_scheme(scheme) {
            return Err(UriError::UnsupportedScheme);
        } else {
            return Err(UriError::Malformed);
        };
        // The first `@` ends the userinfo, which may itself hold `?` and `;` (RFC 3261 §25.1
        // user-unreserved); the headers start at the first `?` after it.
        let (user, rest) = match rest.split_once('@') {
            Some((userinfo, hostpart)) => {
                // A password in the URI is deprecated (RFC 3261 §19.1.1) but legal: keep the user.
                let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
                if user.is_empty()
                    || !valid_escapes(userinfo)
                    || !userinfo.bytes().all(is_user_byte)
                {
                    return Err(UriError::Malformed);
                }
                (Some(user), hostpart)
            }
            None => (None, rest),
        };
        let (rest, headers) = rest.split_once('?').unwrap_or((rest, ""));
        let (hostport, params) = match rest.find(';') {
            Some(at) if at + 1 == rest.len() => return Err(UriError::Malformed),
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, ""),
        };
        let (host, port) = split_hostport(hostport).ok_or(UriError::Malformed)?;
        let params = Params::new(params);
        if !params.is_well_formed() || !valid_escapes(headers) {
            return Err(UriError::Malformed);
        }
        Ok(Uri {
            scheme,
            user,
            host,
            port,
            params,
            headers,
        })
    }

    /// The value of the `transport=` parameter, if any.
    pub fn transport_param(&self) -> Option<&'a str> {
        self.params.get("transport").flatten()
    }
}

/// `uri` as it may stand in a Request-URI: without the `method` parameter and the `?` headers,
/// which RFC 3261 §19.1.1 allows only elsewhere (a registered Contact may carry them).
pub fn request_uri_form(uri: &str) -> String {
    let Ok(parsed) = Uri::parse(uri) else {
        return uri.to_owned();
    };
    let without_headers = match parsed.headers.is_empty() {
        true => uri,
        false => &uri[..uri.len() - parsed.headers.len() - 1],
    };
    if parsed.params.get("method").is_none() {
        return without_headers.to_owned();
    }
    let params = parsed.params.as_str();
    let base = &without_headers[..without_headers.len() - params.len() - 1];
    let kept: Vec<&str> = super::params::split_outside_quotes(params, b';')
        .filter(|p| !p.trim().to_ascii_lowercase().starts_with("method"))
        .collect();
    match kept.is_empty() {
        true => base.to_owned(),
        false => format!("{base};{}", kept.join(";")),
    }
}

/// Splits `host[:port]` where host may be a bracketed IPv6 reference.
pub(crate) fn split_hostport(text: &str) -> Option<(Host<'_>, Option<u16>)> {
    let (host, port) = if text.starts_with('[') {
        let close = text.find(']')?;
        let port = &text[close + 1..];
        let port = if port.is_empty() {
            None
        } else {
            Some(port.strip_prefix(':')?)
        };
        (&text[..=close], port)
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    // A bare IPv6 address is not a host in a URI or Via (RFC 5118 §4.1): brackets are required.
    if !host.starts_with('[') && host.contains(':') {
        return None;
    }
    let host = Host::parse(host)?;
    let port = match port {
        Some(p) => Some(parse_port(p)?),
        None => None,
    };
    Some((host, port))
}

fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`
fn is_scheme(text: &str) -> bool {
    let mut bytes = text.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Characters allowed in userinfo: unreserved, escaped and user-unreserved, plus `:` before a
/// password.
fn is_user_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_'
                | b'.'
                | b'!'
                | b'~'
                | b'*'
                | b'\''
                | b'('
                | b')'
                | b'%'
                | b'&'
                | b'='
                | b'+'
                | b'$'
                | b','
                | b';'
                | b'?'
                | b'/'
                | b':'
        )
}

/// Every `%` starts a two-digit hex escape.
pub(crate) fn valid_escapes(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let ok = bytes.len() > i + 2
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit();
            if !ok {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

impl From<Ipv4Addr> for Host<'_> {
    fn from(ip: Ipv4Addr) -> Self {
        Host::Ip(IpAddr::V4(ip))
    }
}

impl From<IpAddr> for Host<'_> {
    fn from(ip: IpAddr) -> Self {
        Host::Ip(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_uri_with_port_and_transport() {
        let uri = Uri::parse("sip:1000@[2001:db8::1]:5061;transport=tls").unwrap();
        assert_eq!(uri.scheme, Scheme::Sip);
        assert_eq!(uri.user, Some("1000"));
        assert!(uri.host.matches(&Host::Ip("2001:db8::1".parse().unwrap())));
        assert_eq!(uri.port, Some(5061));
        assert_eq!(uri.transport_param(), Some("tls"));
        assert_eq!(uri.host.to_string(), "[2001:db8::1]");
    }

    #[test]
    fn ipv6_uri_without_user_or_port() {
        let uri = Uri::parse("sip:[::1]").unwrap();
        assert_eq!(uri.user, None);
        assert_eq!(uri.port, None);
        assert_eq!(uri.host.to_string(), "[::1]");
        let uri = Uri::parse("sips:[2001:db8::10]:5061").unwrap();
        assert_eq!(uri.scheme, Scheme::Sips);
        assert_eq!(uri.port, Some(5061));
    }

    #[test]
    fn ipv4_mapped_and_embedded_ipv4() {
        let uri = Uri::parse("sip:alice@[::ffff:192.0.2.1]:5060").unwrap();
        assert!(uri.host.matches(&Host::Ip("192.0.2.1".parse().unwrap())));
        let uri = Uri::parse("sip:[2001:db8::192.0.2.1]").unwrap();
        assert!(
            uri.host
                .matches(&Host::Ip("2001:db8::c000:201".parse().unwrap()))
        );
    }

    #[test]
    fn rfc5118_invalid_references() {
        // §4.2-style: unbracketed IPv6 is not a host; brackets must close; the port must be digits.
        for bad in [
            "sip:user@2001:db8::10",
            "sip:user@[2001:db8::10",
            "sip:user@2001:db8::10]",
            "sip:user@[2001:db8::10]:",
            "sip:user@[2001:db8::10]5060",
            "sip:user@[2001:db8::10]:65536",
            "sip:user@[2001:db8:::10]",
            "sip:user@[fe80::1%25eth0]",
            "sip:user@[192.0.2.1]",
        ] {
            assert_eq!(Uri::parse(bad).unwrap_err(), UriError::Malformed, "{bad}");
        }
    }

    #[test]
    fn names_and_ipv4() {
        let uri = Uri::parse("SIP:Alice@Example.ORG:5080;lr;transport=TCP?subject=hi").unwrap();
        assert_eq!(uri.scheme, Scheme::Sip);
        assert!(uri.host.matches(&Host::Name("example.org")));
        assert_eq!(uri.port, Some(5080));
        assert_eq!(uri.params.get("lr"), Some(None));
        assert_eq!(uri.transport_param(), Some("TCP"));
        assert_eq!(uri.headers, "subject=hi");
        assert!(Uri::parse("sip:192.0.2.1").is_ok());
        assert!(Uri::parse("sip:user:secret@example.org").is_ok());
        assert!(Uri::parse("sip:%61lice@example.org").is_ok());
        // RFC 4475 §3.1.1.2 (intmeth): `?` and `;` in the user part, then a password.
        let odd = "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com";
        let uri = Uri::parse(odd).unwrap();
        assert_eq!(
            uri.user,
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert!(uri.host.matches(&Host::Name("example.com")));
        let uri = Uri::parse("sip:user@example.org?Subject=a@b").unwrap();
        assert_eq!(uri.headers, "Subject=a@b");
    }

    #[test]
    fn unknown_scheme_is_unsupported_not_malformed() {
        assert_eq!(
            Uri::parse("nobodyknowsthisscheme:totallyopaquecontent").unwrap_err(),
            UriError::UnsupportedScheme
        );
        assert_eq!(
            Uri::parse("tel:+1-201-555-0123").unwrap_err(),
            UriError::UnsupportedScheme
        );
        assert_eq!(Uri::parse("1nvalid:x").unwrap_err(), UriError::Malformed);
    }

    #[test]
    fn malformed() {
        for bad in [
            "",
            "sip:",
            "sip:@example.org",
            "sip:user@",
            "sip:user@exa mple.org",
            "sip:user@-example.org",
            "sip:user@256.1.1.1",
            "sip:us%zzer@example.org",
            "sip:user@example.org:port",
            "sip:user@example.org;=x",
            "no-colon",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn request_uri_form_drops_method_and_headers() {
        assert_eq!(
            request_uri_form("sip:1000@[::1]:5060"),
            "sip:1000@[::1]:5060"
        );
        assert_eq!(
            request_uri_form("sip:user@host?Route=%3Csip:example.com%3E"),
            "sip:user@host"
        );
        assert_eq!(
            request_uri_form("sip:user@host;transport=tcp;method=BYE;lr?Route=x"),
            "sip:user@host;transport=tcp;lr"
        );
        assert_eq!(
            request_uri_form("sip:user@host;method=BYE"),
            "sip:user@host"
        );
    }

    #[test]
    fn host_matching() {
        let a = Host::parse("[::1]").unwrap();
        assert!(a.matches(&Host::parse("::1").unwrap()));
        assert!(a.matches(&Host::parse("[0:0:0:0:0:0:0:1]").unwrap()));
        assert!(!a.matches(&Host::parse("localhost").unwrap()));
        assert!(
            Host::parse("Example.org")
                .unwrap()
                .matches(&Host::Name("example.ORG"))
        );
    }
}

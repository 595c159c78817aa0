//! The `Via` header (RFC 3261 §20.42): where responses go back to.

use super::params::Params;
use super::uri::{Host, split_hostport};

/// One `Via` element: `SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK…;rport`.
#[derive(Debug, Clone, Copy)]
pub struct Via<'a> {
    /// The transport token as written (`UDP`, `TCP`, `TLS`, or one hotline does not speak).
    pub transport: &'a str,
    pub host: Host<'a>,
    pub port: Option<u16>,
    pub params: Params<'a>,
}

impl<'a> Via<'a> {
    pub fn parse(text: &'a str) -> Option<Via<'a>> {
        let (protocol, rest) = split_protocol(text.trim())?;
        let (sent_by, params) = match rest.find(';') {
            Some(at) if rest[at + 1..].trim().is_empty() => return None,
            Some(at) => (rest[..at].trim_end(), &rest[at + 1..]),
            None => (rest.trim_end(), ""),
        };
        let (host, port) = split_hostport(sent_by)?;
        let params = Params::new(params);
        if !params.is_well_formed() {
            return None;
        }
        Some(Via {
            transport: protocol,
            host,
            port,
            params,
        })
    }

    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }
}

/// Reads `SIP / 2.0 / transport` (whitespace allowed around the slashes) and returns the
/// transport token and what follows it.
fn split_protocol(text: &str) -> Option<(&str, &str)> {
    let mut rest = text;
    let mut parts = [""; 3];
    for (i, part) in parts.iter_mut().enumerate() {
        rest = rest.trim_start();
        let end = rest
            .find(|c: char| c == '/' || c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        *part = &rest[..end];
        rest = rest[end..].trim_start();
        if i < 2 {
            rest = rest.strip_prefix('/')?;
        }
    }
    let [name, version, transport] = parts;
    // Any version parses, so that a request of another SIP version can be answered 505.
    let version_ok = version.split_once('.').is_some_and(|(major, minor)| {
        [major, minor]
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    });
    let valid = name.eq_ignore_ascii_case("SIP") && version_ok && super::is_token(transport);
    // The sent-by must be separated from the transport by whitespace.
    (valid && text.len() > rest.len()).then_some((transport, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_sent_by() {
        let via = Via::parse("SIP/2.0/TLS [::1]:5061;branch=z9hG4bK776;rport").unwrap();
        assert_eq!(via.transport, "TLS");
        assert_eq!(via.host.to_string(), "[::1]");
        assert_eq!(via.port, Some(5061));
        assert_eq!(via.branch(), Some("z9hG4bK776"));
        assert_eq!(via.params.get("rport"), Some(None));
    }

    #[test]
    fn rfc5118_received_without_brackets() {
        let via =
            Via::parse("SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3")
                .unwrap();
        assert_eq!(via.params.get("received"), Some(Some("2001:db8::9:255")));
        let via =
            Via::parse("SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3")
                .unwrap();
        assert_eq!(via.params.get("received"), Some(Some("[2001:db8::9:255]")));
    }

    #[test]
    fn spaces_around_slashes() {
        let via = Via::parse("SIP / 2.0 / UDP example.org ; branch = z9hG4bK1").unwrap();
        assert_eq!(via.transport, "UDP");
        assert_eq!(via.host.to_string(), "example.org");
        assert_eq!(via.branch(), Some("z9hG4bK1"));
    }

    #[test]
    fn malformed() {
        for bad in [
            "",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP ",
            "SIP/x.0/UDP host",
            "SIP/2.0 UDP host",
            "SIP/2.0/UDPhost",
            "SIP/2.0/UDP 2001:db8::1",
            "SIP/2.0/UDP [2001:db8::1",
            "SIP/2.0/UDP host:99999",
            "SIP/2.0/UDP host;=x",
        ] {
            assert!(Via::parse(bad).is_none(), "{bad:?}");
        }
    }
}

//! `name-addr` / `addr-spec` headers: From, To, Contact, Route, Record-Route (RFC 3261 §20.10).

use super::params::Params;
use super::uri::{Uri, UriError};

/// `"Alice" <sip:1000@example.org>;tag=1`, `<sip:…>;expires=60` or a bare `sip:…;tag=1`.
#[derive(Debug, Clone, Copy)]
pub struct NameAddr<'a> {
    pub display_name: Option<&'a str>,
    /// The URI as written, without angle brackets.
    pub uri: &'a str,
    /// Header parameters after the URI (`tag`, `expires`, `q`, …).
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    pub fn parse(text: &'a str) -> Option<NameAddr<'a>> {
        let text = text.trim();
        let (display_name, uri, rest) = match text.find('<') {
            Some(open) => {
                let close = open + text[open..].find('>')?;
                let display = text[..open].trim();
                let display = (!display.is_empty()).then_some(display);
                if display.is_some_and(|d| !valid_display_name(d)) {
                    return None;
                }
                (display, &text[open + 1..close], &text[close + 1..])
            }
            // Without brackets the URI ends at the first `;`: what follows are header parameters.
            None => match text.find(';') {
                Some(at) => (None, &text[..at], &text[at..]),
                None => (None, text, ""),
            },
        };
        let uri = uri.trim();
        let rest = rest.trim_start();
        let params = match rest.strip_prefix(';') {
            Some(params) if params.trim().is_empty() => return None,
            Some(params) => params,
            None if rest.is_empty() => "",
            None => return None,
        };
        let params = Params::new(params);
        if uri.is_empty() || uri.contains([' ', '\t']) || !params.is_well_formed() {
            return None;
        }
        Some(NameAddr {
            display_name,
            uri,
            params,
        })
    }

    pub fn parsed_uri(&self) -> Result<Uri<'a>, UriError> {
        Uri::parse(self.uri)
    }

    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }
}

/// A quoted string, or tokens separated by whitespace.
fn valid_display_name(text: &str) -> bool {
    if let Some(inner) = text.strip_prefix('"') {
        let mut escaped = false;
        for (i, c) in inner.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => return i + 1 == inner.len(),
                _ => {}
            }
        }
        return false;
    }
    text.split_ascii_whitespace().all(super::is_token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let a = NameAddr::parse(
            "\"Alice \\\"A\\\"\" <sip:1000@[2001:db8::1]:5060;transport=tcp>;tag=88",
        )
        .unwrap();
        assert_eq!(a.display_name, Some("\"Alice \\\"A\\\"\""));
        assert_eq!(a.uri, "sip:1000@[2001:db8::1]:5060;transport=tcp");
        assert_eq!(a.tag(), Some("88"));
        assert_eq!(a.parsed_uri().unwrap().port, Some(5060));

        let b = NameAddr::parse("Bob Smith <sip:1001@example.org>").unwrap();
        assert_eq!(b.display_name, Some("Bob Smith"));
        assert_eq!(b.tag(), None);

        let c = NameAddr::parse("sip:1002@example.org;tag=x;expires=60").unwrap();
        assert_eq!(c.uri, "sip:1002@example.org");
        assert_eq!(c.params.get("expires"), Some(Some("60")));
    }

    #[test]
    fn malformed() {
        for bad in [
            "",
            "<sip:x@example.org",
            "\"unterminated <sip:x@example.org>",
            "<sip:x@example.org> junk",
            "<>",
            "<sip:x@example.org>;=1",
        ] {
            assert!(NameAddr::parse(bad).is_none(), "{bad:?}");
        }
    }
}

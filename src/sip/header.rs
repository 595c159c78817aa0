//! Header names the core reads; every other header is carried as written.

/// A header the core understands, recognised in its long and compact forms (RFC 3261 §7.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderName {
    Via,
    From,
    To,
    CallId,
    CSeq,
    Contact,
    Expires,
    MinExpires,
    MaxForwards,
    ContentLength,
    ContentType,
    Authorization,
    ProxyAuthorization,
    Route,
    RecordRoute,
    Require,
    ProxyRequire,
    Supported,
    UserAgent,
    Other,
}

impl HeaderName {
    pub fn parse(name: &str) -> HeaderName {
        use HeaderName::*;
        if name.len() == 1 {
            return match name.as_bytes()[0].to_ascii_lowercase() {
                b'v' => Via,
                b'f' => From,
                b't' => To,
                b'i' => CallId,
                b'm' => Contact,
                b'l' => ContentLength,
                b'c' => ContentType,
                b'k' => Supported,
                _ => Other,
            };
        }
        const LONG: [(&str, HeaderName); 19] = [
            ("Via", Via),
            ("From", From),
            ("To", To),
            ("Call-ID", CallId),
            ("CSeq", CSeq),
            ("Contact", Contact),
            ("Expires", Expires),
            ("Min-Expires", MinExpires),
            ("Max-Forwards", MaxForwards),
            ("Content-Length", ContentLength),
            ("Content-Type", ContentType),
            ("Authorization", Authorization),
            ("Proxy-Authorization", ProxyAuthorization),
            ("Route", Route),
            ("Record-Route", RecordRoute),
            ("Require", Require),
            ("Proxy-Require", ProxyRequire),
            ("Supported", Supported),
            ("User-Agent", UserAgent),
        ];
        LONG.iter()
            .find(|(long, _)| long.eq_ignore_ascii_case(name))
            .map_or(Other, |&(_, header)| header)
    }

    /// Headers whose value may be a comma-separated list of several values (RFC 3261 §7.3.1).
    pub fn is_list(self) -> bool {
        use HeaderName::*;
        matches!(
            self,
            Via | Contact | Route | RecordRoute | Require | ProxyRequire | Supported
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_and_compact_forms() {
        assert_eq!(HeaderName::parse("via"), HeaderName::Via);
        assert_eq!(HeaderName::parse("V"), HeaderName::Via);
        assert_eq!(HeaderName::parse("call-id"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("i"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("m"), HeaderName::Contact);
        assert_eq!(HeaderName::parse("l"), HeaderName::ContentLength);
        assert_eq!(HeaderName::parse("X-Custom"), HeaderName::Other);
        assert_eq!(HeaderName::parse("x"), HeaderName::Other);
    }
}

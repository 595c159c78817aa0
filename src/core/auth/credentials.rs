//! The credentials of an `Authorization` or `Proxy-Authorization` header value (RFC 3261 §25.1,
//! RFC 7616 §3.4), parsed without copying: only a quoted-string holding an escape is copied.

use std::borrow::Cow;

use super::Algorithm;

/// Longest header value accepted. Real credentials take a few hundred bytes; the cap bounds the
/// parsing work and the one copy an escaped quoted-string causes.
pub const MAX_CREDENTIALS_LEN: usize = 4096;

/// Most auth-params accepted. Their names are kept on the stack to detect duplicates.
pub const MAX_PARAMS: usize = 24;

/// Digest credentials as sent by the client. Values are unescaped; nothing is checked beyond
/// syntax, which is [`Authenticator::verify`](super::Authenticator::verify)'s job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials<'a> {
    pub username: Cow<'a, str>,
    pub realm: Cow<'a, str>,
    pub nonce: Cow<'a, str>,
    pub uri: Cow<'a, str>,
    pub response: Cow<'a, str>,
    /// [`Algorithm::Md5`] when the parameter is absent, as RFC 2617 specifies.
    pub algorithm: Algorithm,
    pub cnonce: Option<Cow<'a, str>>,
    pub nc: Option<NonceCount<'a>>,
    pub qop: Option<Cow<'a, str>>,
}

/// A nonce-count (`nc`): exactly eight hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NonceCount<'a> {
    text: &'a str,
    value: u32,
}

impl<'a> NonceCount<'a> {
    /// The digits as sent: the response digest covers them verbatim, whatever their case.
    pub fn as_str(self) -> &'a str {
        self.text
    }

    /// The count, which must grow with every request made with the same nonce.
    pub fn value(self) -> u32 {
        self.value
    }

    fn parse(value: Cow<'a, str>) -> Result<NonceCount<'a>, AuthError> {
        // Eight hex digits never need an escape, so an escaped value is not one.
        let Cow::Borrowed(text) = value else {
            return Err(AuthError::InvalidNonceCount);
        };
        if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AuthError::InvalidNonceCount);
        }
        u32::from_str_radix(text, 16)
            .map(|value| NonceCount { text, value })
            .map_err(|_| AuthError::InvalidNonceCount)
    }
}

/// Why a header value is not Digest credentials. Offsets are byte positions in the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("credentials longer than {MAX_CREDENTIALS_LEN} bytes")]
    TooLong,
    #[error("authorization scheme is not Digest")]
    NotDigest,
    #[error("malformed credentials at byte {0}")]
    Malformed(usize),
    #[error("more than {MAX_PARAMS} parameters")]
    TooManyParameters,
    #[error("parameter at byte {0} appears twice")]
    DuplicateParameter(usize),
    #[error("parameter {0} is missing")]
    MissingParameter(&'static str),
    #[error("nc is not eight hexadecimal digits")]
    InvalidNonceCount,
    #[error("algorithm is neither MD5 nor SHA-256")]
    UnsupportedAlgorithm,
}

/// Parses `Digest` credentials: the scheme (any case), then comma-separated auth-params with
/// optional linear whitespace, folded lines included. Values are tokens or quoted-strings, so a
/// quoted `qop="auth"` or `algorithm="MD5"`, which some clients send, is accepted. Unknown
/// parameters are ignored; a repeated one is an error, since two values leave it ambiguous which
/// one a client meant and which one another element on the path would read.
pub fn parse_credentials(header_value: &str) -> Result<Credentials<'_>, AuthError> {
    if header_value.len() > MAX_CREDENTIALS_LEN {
        return Err(AuthError::TooLong);
    }
    let mut cursor = Cursor {
        text: header_value,
        pos: 0,
    };
    cursor.skip_lws();
    let scheme = cursor.token().ok_or(AuthError::NotDigest)?;
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(AuthError::NotDigest);
    }

    let mut fields = Fields::default();
    let mut seen = [""; MAX_PARAMS];
    let mut count = 0;
    let separated = cursor.skip_lws();
    if !cursor.at_end() {
        if !separated {
            return Err(AuthError::Malformed(cursor.pos));
        }
        loop {
            let name_at = cursor.pos;
            let name = cursor.token().ok_or(AuthError::Malformed(name_at))?;
            if seen
                .iter()
                .take(count)
                .any(|s| s.eq_ignore_ascii_case(name))
            {
                return Err(AuthError::DuplicateParameter(name_at));
            }
            *seen.get_mut(count).ok_or(AuthError::TooManyParameters)? = name;
            count += 1;
            cursor.skip_lws();
            cursor.expect(b'=')?;
            cursor.skip_lws();
            let value = cursor.value()?;
            if let Some(slot) = fields.slot(name) {
                *slot = Some(value);
            }
            cursor.skip_lws();
            if cursor.at_end() {
                break;
            }
            cursor.expect(b',')?;
            cursor.skip_lws();
        }
    }

    let algorithm = match fields.algorithm {
        None => Algorithm::Md5,
        Some(name) => Algorithm::from_name(&name).ok_or(AuthError::UnsupportedAlgorithm)?,
    };
    Ok(Credentials {
        username: required(fields.username, "username")?,
        realm: required(fields.realm, "realm")?,
        nonce: required(fields.nonce, "nonce")?,
        uri: required(fields.uri, "uri")?,
        response: required(fields.response, "response")?,
        algorithm,
        cnonce: fields.cnonce,
        nc: fields.nc.map(NonceCount::parse).transpose()?,
        qop: fields.qop,
    })
}

fn required<'a>(
    field: Option<Cow<'a, str>>,
    name: &'static str,
) -> Result<Cow<'a, str>, AuthError> {
    field.ok_or(AuthError::MissingParameter(name))
}

/// The raw values of the parameters this module understands.
#[derive(Default)]
struct Fields<'a> {
    username: Option<Cow<'a, str>>,
    realm: Option<Cow<'a, str>>,
    nonce: Option<Cow<'a, str>>,
    uri: Option<Cow<'a, str>>,
    response: Option<Cow<'a, str>>,
    algorithm: Option<Cow<'a, str>>,
    cnonce: Option<Cow<'a, str>>,
    nc: Option<Cow<'a, str>>,
    qop: Option<Cow<'a, str>>,
}

impl<'a> Fields<'a> {
    /// Where the value of parameter `name` goes (names are case-insensitive); `None` if unknown.
    fn slot(&mut self, name: &str) -> Option<&mut Option<Cow<'a, str>>> {
        [
            ("username", &mut self.username),
            ("realm", &mut self.realm),
            ("nonce", &mut self.nonce),
            ("uri", &mut self.uri),
            ("response", &mut self.response),
            ("algorithm", &mut self.algorithm),
            ("cnonce", &mut self.cnonce),
            ("nc", &mut self.nc),
            ("qop", &mut self.qop),
        ]
        .into_iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .map(|(_, slot)| slot)
    }
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a [u8] {
        self.text.as_bytes().get(self.pos..).unwrap_or_default()
    }

    fn at_end(&self) -> bool {
        self.rest().is_empty()
    }

    /// Skips linear whitespace, including a line folded with CRLF and a space or tab; returns
    /// whether there was any.
    fn skip_lws(&mut self) -> bool {
        let start = self.pos;
        loop {
            match self.rest() {
                [b' ' | b'\t', ..] => self.pos += 1,
                [b'\r', b'\n', b' ' | b'\t', ..] => self.pos += 3,
                _ => return self.pos > start,
            }
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), AuthError> {
        if self.rest().first() == Some(&byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(AuthError::Malformed(self.pos))
        }
    }

    /// A token (RFC 3261 §25.1), or `None` if none starts here.
    fn token(&mut self) -> Option<&'a str> {
        let len = self
            .rest()
            .iter()
            .take_while(|&&b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
            .count();
        let token = self
            .text
            .get(self.pos..self.pos + len)
            .filter(|t| !t.is_empty())?;
        self.pos += len;
        Some(token)
    }

    fn value(&mut self) -> Result<Cow<'a, str>, AuthError> {
        if self.rest().first() == Some(&b'"') {
            self.quoted_string()
        } else {
            let at = self.pos;
            self.token()
                .map(Cow::Borrowed)
                .ok_or(AuthError::Malformed(at))
        }
    }

    /// A quoted-string, unescaped. Control characters are refused, line folds inside the quotes
    /// too: no client folds there, and refusing them keeps the value a plain slice.
    fn quoted_string(&mut self) -> Result<Cow<'a, str>, AuthError> {
        let open = self.pos;
        let bytes = self.text.as_bytes();
        let mut at = open + 1;
        let mut escaped = false;
        loop {
            match bytes.get(at) {
                None => return Err(AuthError::Malformed(open)),
                Some(b'"') => break,
                Some(b'\\') => match bytes.get(at + 1) {
                    Some(&b) if b == b'\t' || (0x20..0x7f).contains(&b) => {
                        escaped = true;
                        at += 2;
                    }
                    _ => return Err(AuthError::Malformed(at)),
                },
                Some(&b) if (b < 0x20 && b != b'\t') || b == 0x7f => {
                    return Err(AuthError::Malformed(at));
                }
                Some(_) => at += 1,
            }
        }
        let inner = self
            .text
            .get(open + 1..at)
            .ok_or(AuthError::Malformed(open))?;
        self.pos = at + 1;
        if !escaped {
            return Ok(Cow::Borrowed(inner));
        }
        let mut unescaped = String::with_capacity(inner.len());
        let mut after_backslash = false;
        for c in inner.chars() {
            if c == '\\' && !after_backslash {
                after_backslash = true;
            } else {
                after_backslash = false;
                unescaped.push(c);
            }
        }
        Ok(Cow::Owned(unescaped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPICAL: &str = "Digest username=\"1000\", realm=\"example.org\", \
        nonce=\"abc\", uri=\"sip:example.org\", response=\"0123456789abcdef0123456789abcdef\", \
        algorithm=SHA-256, cnonce=\"xyz\", nc=0000000a, qop=auth";

    #[test]
    fn parses_typical_credentials_without_copying() {
        let creds = parse_credentials(TYPICAL).unwrap();
        assert_eq!(creds.username, "1000");
        assert_eq!(creds.realm, "example.org");
        assert_eq!(creds.nonce, "abc");
        assert_eq!(creds.uri, "sip:example.org");
        assert_eq!(creds.response, "0123456789abcdef0123456789abcdef");
        assert_eq!(creds.algorithm, Algorithm::Sha256);
        assert_eq!(creds.cnonce.as_deref(), Some("xyz"));
        let nc = creds.nc.unwrap();
        assert_eq!((nc.as_str(), nc.value()), ("0000000a", 10));
        assert_eq!(creds.qop.as_deref(), Some("auth"));
        for value in [&creds.username, &creds.realm, &creds.uri, &creds.response] {
            assert!(matches!(value, Cow::Borrowed(_)));
        }
    }

    #[test]
    fn defaults_and_optional_parameters() {
        let creds = parse_credentials("digest username=a,realm=b,nonce=c,uri=\"sip:x\",response=d")
            .unwrap();
        assert_eq!(creds.algorithm, Algorithm::Md5);
        assert_eq!((creds.cnonce, creds.nc, creds.qop), (None, None, None));
    }

    #[test]
    fn scheme_and_names_are_case_insensitive() {
        let creds = parse_credentials(
            "DIGEST USERNAME=a, Realm=b, NONCE=c, Uri=\"sip:x\", Response=d, ALGORITHM=sha-256",
        )
        .unwrap();
        assert_eq!(creds.username, "a");
        assert_eq!(creds.algorithm, Algorithm::Sha256);
    }

    #[test]
    fn quoted_tokens_are_accepted() {
        let creds = parse_credentials(
            "Digest username=a, realm=b, nonce=c, uri=\"sip:x\", response=d, \
             algorithm=\"MD5\", qop=\"auth\", nc=\"00000001\", cnonce=e",
        )
        .unwrap();
        assert_eq!(creds.algorithm, Algorithm::Md5);
        assert_eq!(creds.qop.as_deref(), Some("auth"));
        assert_eq!(creds.nc.map(NonceCount::value), Some(1));
        assert_eq!(creds.cnonce.as_deref(), Some("e"));
    }

    #[test]
    fn escapes_are_undone() {
        let creds = parse_credentials(
            r#"Digest username="a\"b\\c\d", realm="Zürich \"HQ\"", nonce=c, uri="sip:x", response=d"#,
        )
        .unwrap();
        assert_eq!(creds.username, r#"a"b\cd"#);
        assert!(matches!(creds.username, Cow::Owned(_)));
        assert_eq!(creds.realm, "Zürich \"HQ\"");
        assert_eq!(creds.nonce, "c");
    }

    #[test]
    fn whitespace_and_folded_lines_are_skipped() {
        let creds = parse_credentials(
            " \tDigest  username = \"a\" ,\r\n realm=\"b\",\r\n\tnonce=\"c\"\t,uri\r\n =\"sip:x\" ,  \
             response=\"d\"  ",
        )
        .unwrap();
        assert_eq!(
            (&*creds.username, &*creds.realm, &*creds.nonce),
            ("a", "b", "c")
        );
        assert_eq!(creds.uri, "sip:x");
        assert_eq!(creds.response, "d");
    }

    #[test]
    fn unknown_parameters_are_ignored() {
        let creds = parse_credentials(
            "Digest opaque=\"x\", username=a, userhash=false, realm=b, nonce=c, uri=\"sip:x\", \
             response=d, future-param=\"who knows\"",
        )
        .unwrap();
        assert_eq!(creds.username, "a");
    }

    #[test]
    fn missing_parameters_are_named() {
        let all = [
            "username=a",
            "realm=b",
            "nonce=c",
            "uri=\"sip:x\"",
            "response=d",
        ];
        for (missing, name) in ["username", "realm", "nonce", "uri", "response"]
            .into_iter()
            .enumerate()
        {
            let params: Vec<_> = all
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != missing)
                .map(|(_, p)| *p)
                .collect();
            let header = format!("Digest {}", params.join(", "));
            assert_eq!(
                parse_credentials(&header),
                Err(AuthError::MissingParameter(name)),
                "{header}"
            );
        }
        assert_eq!(
            parse_credentials("Digest"),
            Err(AuthError::MissingParameter("username"))
        );
    }

    #[test]
    fn duplicates_are_refused() {
        for header in [
            "Digest username=a, realm=b, realm=b, nonce=c, uri=\"sip:x\", response=d",
            "Digest username=a, realm=b, REALM=c, nonce=c, uri=\"sip:x\", response=d",
            "Digest username=a, opaque=x, realm=b, nonce=c, opaque=x, uri=\"sip:x\", response=d",
        ] {
            assert!(
                matches!(
                    parse_credentials(header),
                    Err(AuthError::DuplicateParameter(_))
                ),
                "{header}"
            );
        }
    }

    #[test]
    fn bad_nonce_counts_and_algorithms_are_refused() {
        let base = "Digest username=a, realm=b, nonce=c, uri=\"sip:x\", response=d";
        for nc in [
            "0000001",
            "000000001",
            "0000000g",
            "+0000001",
            "\"0000000\\1\"",
            "\"\"",
        ] {
            assert_eq!(
                parse_credentials(&format!("{base}, nc={nc}")),
                Err(AuthError::InvalidNonceCount),
                "{nc}"
            );
        }
        for algorithm in ["MD5-sess", "SHA-256-sess", "SHA-512-256", "\"\""] {
            assert_eq!(
                parse_credentials(&format!("{base}, algorithm={algorithm}")),
                Err(AuthError::UnsupportedAlgorithm),
                "{algorithm}"
            );
        }
        let header = format!("{base}, nc=FFFFFFFF");
        let max = parse_credentials(&header).unwrap();
        assert_eq!(max.nc.map(NonceCount::value), Some(u32::MAX));
    }

    #[test]
    fn garbage_is_refused() {
        for header in [
            "",
            "   ",
            "Basic dXNlcjpwYXNz",
            "Digestusername=a",
            "Digest,username=a",
            "Digest username",
            "Digest username=",
            "Digest username=,realm=b",
            "Digest =a",
            "Digest username=\"a",
            "Digest username=\"a\\",
            "Digest username=a realm=b",
            "Digest username=a,,realm=b",
            "Digest username=a,",
            "Digest username=a;realm=b",
            "Digest uri=sip:x",
            "Digest username=\"a\r\n b\"",
            "Digest username=\"a\nb\"",
            "Digest username=\"a\0b\"",
            "Digest username=\"a\\\rb\"",
            "Digest username=a,\r\nrealm=b",
            "Digest username=a\r\n",
            "Digest username=a,\n realm=b",
            "Digest username=\"a\"\"b\"",
        ] {
            assert!(parse_credentials(header).is_err(), "{header:?}");
        }
    }

    #[test]
    fn caps_bound_the_work() {
        let long = format!("Digest username=\"{}\"", "a".repeat(MAX_CREDENTIALS_LEN));
        assert_eq!(parse_credentials(&long), Err(AuthError::TooLong));
        let many: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("p{i}=x")).collect();
        let header = format!("Digest {}", many.join(","));
        assert_eq!(
            parse_credentials(&header),
            Err(AuthError::TooManyParameters)
        );
        let escapes = format!("Digest username=\"{}\"", "\\\"".repeat(2000));
        assert_eq!(
            parse_credentials(&escapes),
            Err(AuthError::MissingParameter("realm"))
        );
    }

    #[test]
    fn hostile_input_never_panics() {
        for end in 0..=TYPICAL.len() {
            if let Some(prefix) = TYPICAL.get(..end) {
                let _ = parse_credentials(prefix);
            }
        }
        // A fixed pseudo-random walk over the characters that matter to the grammar.
        let alphabet = [
            "Digest", " ", "\t", "\r\n ", "\r", "\n", ",", "=", "\"", "\\", "a", "nc", "realm",
            "00000001", "é", "\0", "🎉",
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            let mut header = String::new();
            for _ in 0..(state % 40) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                header.push_str(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            let _ = parse_credentials(&header);
            state = state.wrapping_add(1);
        }
    }
}

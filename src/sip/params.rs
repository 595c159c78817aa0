//! `;name=value` parameter lists of URIs and headers, read lazily from the message text.

/// The parameters after the first `;`, as written. Quoted values may contain `;`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Params<'a>(&'a str);

impl<'a> Params<'a> {
    pub fn new(text: &'a str) -> Params<'a> {
        Params(text)
    }

    pub fn as_str(&self) -> &'a str {
        self.0
    }

    /// `Some(Some(value))` for `name=value`, `Some(None)` for a bare `name`; names compare
    /// case-insensitively.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        split_outside_quotes(self.0, b';').filter_map(|part| {
            let part = part.trim();
            if part.is_empty() {
                return None;
            }
            Some(match part.split_once('=') {
                Some((name, value)) => (name.trim_end(), Some(value.trim_start())),
                None => (part, None),
            })
        })
    }

    /// Every parameter has a token name and, after `=`, a token or quoted string.
    pub fn is_well_formed(&self) -> bool {
        if self.0.is_empty() {
            return true;
        }
        split_outside_quotes(self.0, b';').all(|part| {
            let part = part.trim();
            match part.split_once('=') {
                Some((name, value)) => {
                    let value = value.trim_start();
                    is_token(name.trim_end()) && (is_param_value(value) || is_quoted(value))
                }
                None => is_token(part),
            }
        })
    }
}

/// `token` of RFC 3261 §25.1.
pub fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
                )
        })
}

/// Parameter values: tokens plus the characters URI parameters and IPv6 references use.
fn is_param_value(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'!'
                        | b'%'
                        | b'*'
                        | b'_'
                        | b'+'
                        | b'`'
                        | b'\''
                        | b'~'
                        | b'['
                        | b']'
                        | b'/'
                        | b':'
                        | b'&'
                        | b'$'
                        | b'('
                        | b')'
                )
        })
}

fn is_quoted(text: &str) -> bool {
    text.len() >= 2 && text.starts_with('"') && closing_quote(text) == Some(text.len() - 1)
}

/// The index of the quote that closes the quoted string starting at 0, honouring `\` escapes.
fn closing_quote(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Removes the quotes around a quoted-string value; escapes are left as written.
pub fn unquote(text: &str) -> &str {
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text)
}

/// Splits at `separator` where it is outside quoted strings and `<…>` brackets.
pub fn split_outside_quotes(text: &str, separator: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        let bytes = current.as_bytes();
        let mut quoted = false;
        let mut angle = false;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' if quoted => i += 1,
                b'"' => quoted = !quoted,
                b'<' if !quoted => angle = true,
                b'>' if !quoted => angle = false,
                b if b == separator && !quoted && !angle => {
                    rest = Some(&current[i + 1..]);
                    return Some(&current[..i]);
                }
                _ => {}
            }
            i += 1;
        }
        rest = None;
        Some(current)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_and_iterate() {
        let p = Params::new("branch=z9hG4bK1;rport;received=2001:db8::9;LR");
        assert_eq!(p.get("branch"), Some(Some("z9hG4bK1")));
        assert_eq!(p.get("rport"), Some(None));
        assert_eq!(p.get("received"), Some(Some("2001:db8::9")));
        assert_eq!(p.get("lr"), Some(None));
        assert_eq!(p.get("maddr"), None);
        assert!(p.is_well_formed());
    }

    #[test]
    fn quoted_values_keep_separators() {
        let p = Params::new("+sip.instance=\"<urn:uuid:1;2>\";expires=60");
        assert_eq!(p.get("+sip.instance"), Some(Some("\"<urn:uuid:1;2>\"")));
        assert_eq!(p.get("expires"), Some(Some("60")));
        assert!(p.is_well_formed());
        assert_eq!(unquote("\"a b\""), "a b");
    }

    #[test]
    fn malformed() {
        for bad in [";", "a=;b", "=x", "a b=c", "a=\"open", "a=b c"] {
            assert!(!Params::new(bad).is_well_formed(), "{bad:?}");
        }
    }

    #[test]
    fn split_respects_quotes_and_brackets() {
        let parts: Vec<_> = split_outside_quotes("\"a, b\" <sip:x;y,z>, <sip:w>", b',').collect();
        assert_eq!(parts, ["\"a, b\" <sip:x;y,z>", " <sip:w>"]);
    }
}

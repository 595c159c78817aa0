//! Digest answers (RFC 2617 / RFC 8760), MD5 only: the users CSV carries passwords, and every
//! target of the benchmark offers MD5.

use std::fmt::Write as _;

use hotline::sip::unquote;
use md5::{Digest as _, Md5};

/// Each challenge is answered once, so the nonce count is always 1.
const NC: &str = "00000001";
const CNONCE: &str = "6c6f6164";

/// What a `WWW-Authenticate` or `Proxy-Authenticate` header asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    /// `qop=auth` offered: the answer then carries `nc` and `cnonce`.
    pub qop_auth: bool,
}

impl Challenge {
    /// Parses `Digest realm="…", nonce="…", …`; `None` for another scheme or algorithm.
    pub fn parse(value: &str) -> Option<Challenge> {
        let rest = value.trim().strip_prefix("Digest")?;
        let (mut realm, mut nonce, mut opaque, mut qop_auth) = (None, None, None, false);
        for (name, value) in params(rest) {
            match name.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(value.to_owned()),
                "nonce" => nonce = Some(value.to_owned()),
                "opaque" => opaque = Some(value.to_owned()),
                "qop" => qop_auth = value.split(',').any(|q| q.trim() == "auth"),
                "algorithm" if !value.eq_ignore_ascii_case("MD5") => return None,
                _ => {}
            }
        }
        Some(Challenge {
            realm: realm?,
            nonce: nonce?,
            opaque,
            qop_auth,
        })
    }

    /// The `Authorization` (or `Proxy-Authorization`) value answering this challenge.
    pub fn answer(&self, user: &str, password: &str, method: &str, uri: &str) -> String {
        let ha1 = md5_hex(&[user, &self.realm, password]);
        let ha2 = md5_hex(&[method, uri]);
        let (response, qop) = match self.qop_auth {
            true => (
                md5_hex(&[&ha1, &self.nonce, NC, CNONCE, "auth", &ha2]),
                format!(", qop=auth, nc={NC}, cnonce=\"{CNONCE}\""),
            ),
            false => (md5_hex(&[&ha1, &self.nonce, &ha2]), String::new()),
        };
        let mut value = format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm=MD5",
            self.realm, self.nonce
        );
        value.push_str(&qop);
        if let Some(opaque) = &self.opaque {
            value.push_str(&format!(", opaque=\"{opaque}\""));
        }
        value
    }
}

/// MD5 of `parts` joined with `:`, in lower-case hex.
fn md5_hex(parts: &[&str]) -> String {
    let mut hasher = Md5::new();
    hasher.update(parts.join(":").as_bytes());
    hasher
        .finalize()
        .iter()
        .fold(String::with_capacity(32), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// `name=value` pairs separated by commas outside quotes, values unquoted.
fn params(text: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let mut quoted = false;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    quoted = !quoted;
                }
                c == ',' && !quoted
            })
            .map_or(rest.len(), |(at, _)| at);
        let (item, tail) = rest.split_at(end);
        rest = tail.strip_prefix(',').unwrap_or(tail);
        if item.trim().is_empty() && rest.is_empty() {
            return None;
        }
        let (name, value) = item.split_once('=').unwrap_or((item, ""));
        Some((name.trim(), unquote(value.trim())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_rfc_2617_s_example() {
        let challenge = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert!(challenge.qop_auth);
        let ha1 = md5_hex(&["Mufasa", "testrealm@host.com", "Circle Of Life"]);
        let ha2 = md5_hex(&["GET", "/dir/index.html"]);
        let expected = md5_hex(&[&ha1, &challenge.nonce, "00000001", "0a4f113b", "auth", &ha2]);
        assert_eq!(expected, "6629fae49393a05397450978507c4ef1");
        let answer = challenge.answer("Mufasa", "Circle Of Life", "GET", "/dir/index.html");
        assert!(answer.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
        assert!(answer.contains("qop=auth, nc=00000001"));
    }

    #[test]
    fn without_qop_the_response_omits_nc_and_cnonce() {
        let challenge = Challenge::parse("Digest realm=\"[::1]\", nonce=\"abc\"").unwrap();
        let answer = challenge.answer("1000", "pw", "REGISTER", "sip:[::1]");
        let ha1 = md5_hex(&["1000", "[::1]", "pw"]);
        let ha2 = md5_hex(&["REGISTER", "sip:[::1]"]);
        let expected = md5_hex(&[&ha1, "abc", &ha2]);
        assert!(answer.contains(&format!("response=\"{expected}\"")));
        assert!(!answer.contains("qop"));
    }

    #[test]
    fn refuses_other_algorithms_and_schemes() {
        assert_eq!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256"),
            None
        );
        assert_eq!(Challenge::parse("Basic realm=\"r\""), None);
    }
}

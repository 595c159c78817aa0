//! Digest authentication (RFC 3261 §22, RFC 8760, RFC 7616) for any request: a registrar answers
//! with 401 and `WWW-Authenticate`, a proxy with 407 and `Proxy-Authenticate`; both use this.
//!
//! Nonces are stateless: 56 hex digits of issue time (ms), a sequence number and a truncated
//! HMAC-SHA256 over both, the realm and the client's address and transport, so challenging
//! costs no memory and credentials count only from the address that was challenged. The only state is the last nonce-count of the nonces that authenticated, in a
//! bounded table, so that a captured request cannot be replayed.

mod credentials;
mod nonce;

use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::time::Duration;

use md5::{Digest as _, Md5};
use ring::{digest, hmac};

pub use self::credentials::{
    AuthError, Credentials, MAX_CREDENTIALS_LEN, MAX_PARAMS, NonceCount, parse_credentials,
};
use self::nonce::{NonceCountCheck, NonceCounts, NonceId};
use super::clock::millis;
use super::user::User;
use crate::sip::Transport;

/// Who a nonce is issued to: the client's address and transport, without the port, which a
/// phone's new TCP connection changes. A REGISTER from a forged source cannot use a nonce the
/// forger was challenged with at its own address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer([u8; 17]);

impl Peer {
    pub fn new(address: IpAddr, transport: Transport) -> Peer {
        let v6 = match address {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        let mut bytes = [0; 17];
        bytes[..16].copy_from_slice(&v6.octets());
        bytes[16] = match transport {
            Transport::Udp => 1,
            Transport::Tcp => 2,
            Transport::Tls => 3,
        };
        Peer(bytes)
    }

    fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// How far in the future a nonce's issue time may lie, to absorb a clock stepped back a little.
pub const MAX_CLOCK_SKEW_MS: u64 = 2_000;

/// Stand-ins for the HA1 of a user that does not exist, so that checking a response for an unknown
/// user costs the same as for a known one. No password hashes to them.
const DUMMY_HA1_MD5: [u8; 16] = [0; 16];
const DUMMY_HA1_SHA256: [u8; 32] = [0; 32];

/// The hash algorithm of a challenge and of the response to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
pub enum Algorithm {
    #[serde(rename = "MD5")]
    Md5,
    #[serde(rename = "SHA-256")]
    Sha256,
}

impl Algorithm {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Parses a name case-insensitively. The `-sess` variants are not offered, so not accepted.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        [Algorithm::Md5, Algorithm::Sha256]
            .into_iter()
            .find(|algorithm| algorithm.as_str().eq_ignore_ascii_case(name))
    }
}

/// One Digest challenge: a `WWW-Authenticate` or `Proxy-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub algorithm: Algorithm,
    /// The client's password was right but its nonce too old: it may retry without asking the
    /// user again (RFC 7616 §3.3).
    pub stale: bool,
}

impl Challenge {
    /// The header value. `qop="auth"` is always offered, as verification requires it.
    pub fn header_value(&self) -> String {
        format!(
            "Digest realm={}, nonce={}, algorithm={}, qop=\"auth\"{}",
            Quoted(&self.realm),
            Quoted(&self.nonce),
            self.algorithm.as_str(),
            if self.stale { ", stale=true" } else { "" }
        )
    }
}

/// Writes a quoted-string, escaping `"` and `\`.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars() {
            if matches!(c, '"' | '\\') {
                f.write_char('\\')?;
            }
            f.write_char(c)?;
        }
        f.write_char('"')
    }
}

/// What credentials are checked against: the request as received, the realm it was challenged
/// in, and who sent it.
#[derive(Clone, Copy, Debug)]
pub struct Attempt<'a> {
    pub method: &'a str,
    pub request_uri: &'a str,
    pub realm: &'a str,
    pub client: Peer,
}

/// The outcome of [`Authenticator::verify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Authenticated,
    /// The response was right but the nonce is too old, or its nonce-count is no longer tracked:
    /// challenge again with `stale=true`, which a client answers without asking for a password.
    Stale,
    /// Refused. Callers must send the same reply for every [`Rejection`] that depends on the
    /// user, so that nobody can learn which users exist; the reason is for logs. Only
    /// [`Rejection::InvalidNonce`], which no user's password can cause, may get a new challenge.
    Rejected(Rejection),
}

/// Why credentials were rejected, for logs and for counting failures per source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// An algorithm the configuration does not offer.
    AlgorithmNotOffered,
    /// No `qop`: the RFC 2069 form, without cnonce and nonce-count, is not accepted.
    MissingQop,
    /// A `qop` other than `auth` (`auth-int` is not offered).
    UnsupportedQop,
    MissingCnonce,
    MissingNonceCount,
    /// The credentials are for another realm than the one challenged.
    RealmMismatch,
    /// The `uri` parameter is not the Request-URI.
    UriMismatch,
    /// Not a nonce of this server for this realm and client (malformed, forged, from another
    /// secret, or issued to another address or transport). Not necessarily hostile: a client may
    /// hold a nonce from before the secret changed, or from before its address changed.
    InvalidNonce,
    /// No such user: the reply must not differ from [`Rejection::WrongResponse`].
    UnknownUser,
    /// The user given is not the one named in the credentials (a caller's mistake).
    UsernameMismatch,
    /// The user's hashes are for another realm, so no response can match them.
    UserInOtherRealm,
    /// Wrong password, or a digest computed over other values.
    WrongResponse,
    /// The nonce-count did not grow: a replayed request.
    NonceCountReplayed,
}

/// Issues challenges and verifies the responses to them.
/// What the authenticator offers and remembers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Digest algorithms offered, most preferred first.
    pub algorithms: Vec<Algorithm>,
    /// How long a nonce stays valid before the phone is re-challenged with `stale=true`.
    pub nonce_ttl: Duration,
    /// Nonces whose nonce-count is tracked against replay.
    pub max_tracked_nonces: usize,
}

impl Default for Settings {
    /// The defaults of `config/hotline.toml`, which says why.
    fn default() -> Settings {
        Settings {
            algorithms: vec![Algorithm::Md5],
            nonce_ttl: Duration::from_secs(300),
            max_tracked_nonces: 4096,
        }
    }
}

pub struct Authenticator {
    key: hmac::Key,
    /// Offered in this order; credentials with another algorithm are refused.
    algorithms: Vec<Algorithm>,
    nonce_ttl_ms: u64,
    next_sequence: u32,
    nonce_counts: NonceCounts,
}

impl Authenticator {
    /// `secret` keys the nonce MAC and must not be guessable. Nonces issued before `now_ms` are
    /// answered `Stale` even with a valid MAC: the nonce-counts of a previous run are lost, so
    /// the requests made with its nonces could be replayed. `max_tracked_nonces` bounds the
    /// nonce-count table (see [`Verdict::Stale`] for what happens beyond it).
    pub fn new(
        secret: [u8; 32],
        algorithms: Vec<Algorithm>,
        nonce_ttl: Duration,
        max_tracked_nonces: usize,
        now_ms: u64,
    ) -> Authenticator {
        Authenticator {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            algorithms,
            nonce_ttl_ms: millis(nonce_ttl),
            next_sequence: 0,
            nonce_counts: NonceCounts::new(max_tracked_nonces, now_ms),
        }
    }

    /// One challenge per offered algorithm, in the configured order: RFC 8760 has clients pick
    /// the first they support, and many phones only know MD5 (and some only read the first
    /// challenge). All carry the same fresh nonce, which is unique even among nonces issued in
    /// the same millisecond.
    pub fn challenges(
        &mut self,
        realm: &str,
        client: &Peer,
        now_ms: u64,
        stale: bool,
    ) -> Vec<Challenge> {
        let id = NonceId {
            issued_ms: now_ms,
            sequence: self.next_sequence,
        };
        self.next_sequence = self.next_sequence.wrapping_add(1);
        let nonce = nonce::seal(&self.key, id, realm, client.as_bytes());
        self.algorithms
            .iter()
            .map(|&algorithm| Challenge {
                realm: realm.to_owned(),
                nonce: nonce.clone(),
                algorithm,
                stale,
            })
            .collect()
    }

    /// Verifies `creds` for `attempt`, the request and who sent it.
    /// `user` is the user named by `creds.username`, or `None` if there is none: the work done is
    /// the same either way, so response time does not tell whether a user exists.
    pub fn verify(
        &mut self,
        creds: &Credentials<'_>,
        attempt: &Attempt<'_>,
        user: Option<&User>,
        now_ms: u64,
    ) -> Verdict {
        match self.check(creds, attempt, user, now_ms) {
            Ok(verdict) => verdict,
            Err(rejection) => Verdict::Rejected(rejection),
        }
    }

    fn check(
        &mut self,
        creds: &Credentials<'_>,
        attempt: &Attempt<'_>,
        user: Option<&User>,
        now_ms: u64,
    ) -> Result<Verdict, Rejection> {
        let Attempt {
            method,
            request_uri,
            realm,
            client,
        } = *attempt;
        if !self.algorithms.contains(&creds.algorithm) {
            return Err(Rejection::AlgorithmNotOffered);
        }
        let qop = creds.qop.as_deref().ok_or(Rejection::MissingQop)?;
        if !qop.eq_ignore_ascii_case("auth") {
            return Err(Rejection::UnsupportedQop);
        }
        let cnonce = creds.cnonce.as_deref().ok_or(Rejection::MissingCnonce)?;
        let nc = creds.nc.ok_or(Rejection::MissingNonceCount)?;
        if creds.realm != realm {
            return Err(Rejection::RealmMismatch);
        }
        if creds.uri != request_uri {
            return Err(Rejection::UriMismatch);
        }
        let id = nonce::open(&self.key, &creds.nonce, realm, client.as_bytes())
            .ok_or(Rejection::InvalidNonce)?;

        let account = match user {
            None => Err(Rejection::UnknownUser),
            Some(user) if user.extension.as_str() != creds.username => {
                Err(Rejection::UsernameMismatch)
            }
            Some(user) if user.realm != realm => Err(Rejection::UserInOtherRealm),
            Some(user) => Ok(user),
        };
        let ha1_hex = match (creds.algorithm, account) {
            (Algorithm::Md5, Ok(user)) => hex(&user.ha1_md5),
            (Algorithm::Md5, Err(_)) => hex(&DUMMY_HA1_MD5),
            (Algorithm::Sha256, Ok(user)) => hex(&user.ha1_sha256),
            (Algorithm::Sha256, Err(_)) => hex(&DUMMY_HA1_SHA256),
        };
        let expected = response_hex(&ResponseInput {
            algorithm: creds.algorithm,
            ha1_hex: &ha1_hex,
            nonce: &creds.nonce,
            nc: nc.as_str(),
            cnonce,
            qop,
            method,
            uri: &creds.uri,
        });
        let matches = responses_match(&self.key, &expected, &creds.response);
        account?;
        if !matches {
            return Err(Rejection::WrongResponse);
        }

        let expired = now_ms.saturating_sub(id.issued_ms) > self.nonce_ttl_ms;
        let from_future = id.issued_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS);
        if expired || from_future {
            return Ok(Verdict::Stale);
        }
        let expired_before_ms = now_ms.saturating_sub(self.nonce_ttl_ms);
        match self.nonce_counts.check(id, nc.value(), expired_before_ms) {
            NonceCountCheck::Advanced => Ok(Verdict::Authenticated),
            NonceCountCheck::Forgotten => Ok(Verdict::Stale),
            NonceCountCheck::Replayed => Err(Rejection::NonceCountReplayed),
        }
    }
}

/// The values a Digest response with `qop=auth` covers (RFC 7616 §3.4.1), as sent on the wire.
#[derive(Clone, Copy, Debug)]
pub struct ResponseInput<'a> {
    pub algorithm: Algorithm,
    /// H(username:realm:password) in lower-case hex.
    pub ha1_hex: &'a str,
    pub nonce: &'a str,
    pub nc: &'a str,
    pub cnonce: &'a str,
    pub qop: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
}

/// The response digest in lower-case hex:
/// H(HA1:nonce:nc:cnonce:qop:H(method:uri)).
pub fn response_hex(input: &ResponseInput<'_>) -> String {
    let ha2 = hash_hex(input.algorithm, &[input.method, input.uri]);
    hash_hex(
        input.algorithm,
        &[
            input.ha1_hex,
            input.nonce,
            input.nc,
            input.cnonce,
            input.qop,
            &ha2,
        ],
    )
}

/// H of `parts` joined with `:`, in lower-case hex.
fn hash_hex(algorithm: Algorithm, parts: &[&str]) -> String {
    let separated = parts
        .iter()
        .enumerate()
        .flat_map(|(i, part)| [if i == 0 { "" } else { ":" }, *part]);
    match algorithm {
        Algorithm::Md5 => {
            let mut hasher = Md5::new();
            separated.for_each(|text| hasher.update(text.as_bytes()));
            hex(&hasher.finalize())
        }
        Algorithm::Sha256 => {
            let mut context = digest::Context::new(&digest::SHA256);
            separated.for_each(|text| context.update(text.as_bytes()));
            hex(context.finish().as_ref())
        }
    }
}

/// Compares the expected response with the one given, ignoring the case of its hex digits as
/// some clients send upper case.
fn responses_match(key: &hmac::Key, expected: &str, given: &str) -> bool {
    let mut lower = [0u8; 64];
    let Some(lower) = lower.get_mut(..given.len()) else {
        return false;
    };
    for (out, c) in lower.iter_mut().zip(given.bytes()) {
        *out = c.to_ascii_lowercase();
    }
    constant_time_eq(key, expected.as_bytes(), lower)
}

/// Compares in time independent of the contents, by comparing HMACs of both with ring's
/// constant-time check: `ring::constant_time` is deprecated, and a hand-written loop is at the
/// optimiser's mercy.
pub(crate) fn constant_time_eq(key: &hmac::Key, a: &[u8], b: &[u8]) -> bool {
    hmac::verify(key, a, hmac::sign(key, b).as_ref()).is_ok()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(2 * bytes.len());
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::user::Extension;

    const REALM: &str = "example.org";
    const PASSWORD: &str = "4711081512345678901234567890123456789012";
    const URI: &str = "sip:example.org";
    const TTL: Duration = Duration::from_secs(300);
    const T0: u64 = 1_700_000_000_000;

    fn alice() -> User {
        User::new(Extension::parse("1000").unwrap(), "Alice", REALM, PASSWORD)
    }

    const BOTH: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Md5];

    fn pair(challenges: Vec<Challenge>) -> [Challenge; 2] {
        challenges.try_into().expect("two challenges")
    }

    #[test]
    fn only_offered_algorithms_are_challenged_and_accepted() {
        let mut md5_only = Authenticator::new([42; 32], vec![Algorithm::Md5], TTL, 16, T0);
        let challenges = md5_only.challenges(REALM, &peer(), T0, false);
        assert_eq!(challenges.len(), 1);
        assert_eq!(challenges[0].algorithm, Algorithm::Md5);
        let forged = Challenge {
            algorithm: Algorithm::Sha256,
            ..challenges[0].clone()
        };
        let header = phone(&forged, "1000", PASSWORD, 1);
        assert_eq!(
            verify_at(&mut md5_only, &header, Some(&alice()), T0),
            Verdict::Rejected(Rejection::AlgorithmNotOffered)
        );
        let header = phone(&challenges[0], "1000", PASSWORD, 1);
        assert_eq!(
            verify_at(&mut md5_only, &header, Some(&alice()), T0),
            Verdict::Authenticated
        );
    }

    fn authenticator() -> Authenticator {
        Authenticator::new([42; 32], BOTH.to_vec(), TTL, 16, T0)
    }

    /// The client every test talks to, unless it says otherwise.
    fn peer() -> Peer {
        Peer::new("2001:db8::a".parse().unwrap(), Transport::Udp)
    }

    fn attempt<'a>(method: &'a str, request_uri: &'a str, realm: &'a str) -> Attempt<'a> {
        Attempt {
            method,
            request_uri,
            realm,
            client: peer(),
        }
    }

    /// Answers a challenge the way a phone does.
    fn phone(challenge: &Challenge, username: &str, password: &str, nc: u32) -> String {
        let ha1 = hash_hex(challenge.algorithm, &[username, &challenge.realm, password]);
        let nc = format!("{nc:08x}");
        let cnonce = "0a4f113b";
        let response = response_hex(&ResponseInput {
            algorithm: challenge.algorithm,
            ha1_hex: &ha1,
            nonce: &challenge.nonce,
            nc: &nc,
            cnonce,
            qop: "auth",
            method: "REGISTER",
            uri: URI,
        });
        format!(
            "Digest username=\"{username}\", realm=\"{}\", nonce=\"{}\", uri=\"{URI}\", \
             response=\"{response}\", algorithm={}, cnonce=\"{cnonce}\", qop=auth, nc={nc}",
            challenge.realm,
            challenge.nonce,
            challenge.algorithm.as_str()
        )
    }

    fn verify_at(auth: &mut Authenticator, header: &str, user: Option<&User>, now: u64) -> Verdict {
        let creds = parse_credentials(header).unwrap();
        auth.verify(&creds, &attempt("REGISTER", URI, REALM), user, now)
    }

    #[test]
    fn rfc_2617_md5_vector() {
        let ha1 = hash_hex(
            Algorithm::Md5,
            &["Mufasa", "testrealm@host.com", "Circle Of Life"],
        );
        assert_eq!(ha1, "939e7578ed9e3c518a452acee763bce9");
        let response = response_hex(&ResponseInput {
            algorithm: Algorithm::Md5,
            ha1_hex: &ha1,
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            nc: "00000001",
            cnonce: "0a4f113b",
            qop: "auth",
            method: "GET",
            uri: "/dir/index.html",
        });
        assert_eq!(response, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc_7616_sha256_vector() {
        let ha1 = hash_hex(
            Algorithm::Sha256,
            &["Mufasa", "http-auth@example.org", "Circle of Life"],
        );
        let response = response_hex(&ResponseInput {
            algorithm: Algorithm::Sha256,
            ha1_hex: &ha1,
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            nc: "00000001",
            cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            qop: "auth",
            method: "GET",
            uri: "/dir/index.html",
        });
        assert_eq!(
            response,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn ha1_agrees_with_user() {
        let user = alice();
        assert_eq!(
            hash_hex(Algorithm::Md5, &["1000", REALM, PASSWORD]),
            hex(&user.ha1_md5)
        );
        assert_eq!(
            hash_hex(Algorithm::Sha256, &["1000", REALM, PASSWORD]),
            hex(&user.ha1_sha256)
        );
    }

    #[test]
    fn challenges_prefer_sha256_and_share_a_fresh_nonce() {
        let mut auth = authenticator();
        let [first, second] = pair(auth.challenges(REALM, &peer(), T0, false));
        assert_eq!(
            (first.algorithm, second.algorithm),
            (Algorithm::Sha256, Algorithm::Md5)
        );
        assert_eq!(first.nonce, second.nonce);
        assert_eq!(
            first.header_value(),
            format!(
                "Digest realm=\"example.org\", nonce=\"{}\", algorithm=SHA-256, qop=\"auth\"",
                first.nonce
            )
        );
        let [again, _] = pair(auth.challenges(REALM, &peer(), T0, true));
        assert_ne!(
            again.nonce, first.nonce,
            "same millisecond, different nonce"
        );
        assert!(again.header_value().ends_with(", stale=true"));
        assert!(
            again
                .header_value()
                .starts_with("Digest realm=\"example.org\", nonce=\"")
        );
    }

    #[test]
    fn realm_is_escaped_in_challenges() {
        let challenge = Challenge {
            realm: r#"a "b" \c"#.to_owned(),
            nonce: "n".to_owned(),
            algorithm: Algorithm::Md5,
            stale: false,
        };
        let value = challenge.header_value();
        assert!(
            value.starts_with(r#"Digest realm="a \"b\" \\c", nonce="n", algorithm=MD5"#),
            "{value}"
        );
        let header = format!("{value}, username=u, uri=\"sip:x\", response=r");
        let parsed = parse_credentials(&header).unwrap();
        assert_eq!(parsed.realm, challenge.realm);
    }

    #[test]
    fn phones_authenticate_with_both_algorithms() {
        let mut auth = authenticator();
        let user = alice();
        // Both challenges carry one nonce, so its nonce-count goes on across algorithms.
        for (nc, challenge) in (1..).zip(auth.challenges(REALM, &peer(), T0, false)) {
            let header = phone(&challenge, "1000", PASSWORD, nc);
            assert_eq!(
                verify_at(&mut auth, &header, Some(&user), T0 + 10),
                Verdict::Authenticated,
                "{:?}",
                challenge.algorithm
            );
        }
    }

    #[test]
    fn upper_case_responses_are_accepted() {
        let mut auth = authenticator();
        let [challenge, _] = pair(auth.challenges(REALM, &peer(), T0, false));
        let header = phone(&challenge, "1000", PASSWORD, 1);
        let creds = parse_credentials(&header).unwrap();
        let upper = creds.response.to_uppercase();
        let creds = Credentials {
            response: upper.into(),
            ..creds
        };
        assert_eq!(
            auth.verify(&creds, &attempt("REGISTER", URI, REALM), Some(&alice()), T0),
            Verdict::Authenticated
        );
    }

    #[test]
    fn wrong_password_and_unknown_user_are_rejected() {
        let mut auth = authenticator();
        let user = alice();
        for challenge in auth.challenges(REALM, &peer(), T0, false) {
            let wrong = phone(&challenge, "1000", "1234", 1);
            assert_eq!(
                verify_at(&mut auth, &wrong, Some(&user), T0),
                Verdict::Rejected(Rejection::WrongResponse)
            );
            let unknown = phone(&challenge, "2000", PASSWORD, 1);
            assert_eq!(
                verify_at(&mut auth, &unknown, None, T0),
                Verdict::Rejected(Rejection::UnknownUser)
            );
            // An unknown user is rejected even when its nonce is stale.
            assert_eq!(
                verify_at(&mut auth, &unknown, None, T0 + 3_600_000),
                Verdict::Rejected(Rejection::UnknownUser)
            );
            assert_eq!(
                verify_at(&mut auth, &unknown, Some(&user), T0),
                Verdict::Rejected(Rejection::UsernameMismatch)
            );
        }
        let elsewhere = User::new(
            Extension::parse("1000").unwrap(),
            "Alice",
            "example.net",
            PASSWORD,
        );
        let [challenge, _] = pair(auth.challenges(REALM, &peer(), T0, false));
        let header = phone(&challenge, "1000", PASSWORD, 1);
        assert_eq!(
            verify_at(&mut auth, &header, Some(&elsewhere), T0),
            Verdict::Rejected(Rejection::UserInOtherRealm)
        );
    }

    #[test]
    fn tampered_and_foreign_nonces_are_rejected() {
        let mut auth = authenticator();
        let user = alice();
        let [challenge, _] = pair(auth.challenges(REALM, &peer(), T0, false));
        let mut bytes = challenge.nonce.clone().into_bytes();
        bytes[5] = if bytes[5] == b'0' { b'1' } else { b'0' };
        let tampered = Challenge {
            nonce: String::from_utf8(bytes).unwrap(),
            ..challenge.clone()
        };
        let made_up = Challenge {
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".to_owned(),
            ..challenge.clone()
        };
        let mut other_server = Authenticator::new([43; 32], BOTH.to_vec(), TTL, 16, T0);
        let [foreign, _] = pair(other_server.challenges(REALM, &peer(), T0, false));
        for challenge in [tampered, made_up, foreign] {
            let header = phone(&challenge, "1000", PASSWORD, 1);
            assert_eq!(
                verify_at(&mut auth, &header, Some(&user), T0),
                Verdict::Rejected(Rejection::InvalidNonce)
            );
        }
    }

    #[test]
    fn a_nonce_counts_only_from_the_client_it_was_issued_to() {
        let mut auth = authenticator();
        let user = alice();
        let [challenge, _] = pair(auth.challenges(REALM, &peer(), T0, false));
        let header = phone(&challenge, "1000", PASSWORD, 1);
        let creds = parse_credentials(&header).unwrap();
        let elsewhere = Peer::new("2001:db8::66".parse().unwrap(), Transport::Udp);
        let over_tcp = Peer::new("2001:db8::a".parse().unwrap(), Transport::Tcp);
        for client in [elsewhere, over_tcp] {
            assert_eq!(
                auth.verify(
                    &creds,
                    &Attempt {
                        client,
                        ..attempt("REGISTER", URI, REALM)
                    },
                    Some(&user),
                    T0
                ),
                Verdict::Rejected(Rejection::InvalidNonce)
            );
        }
        assert_eq!(
            auth.verify(&creds, &attempt("REGISTER", URI, REALM), Some(&user), T0),
            Verdict::Authenticated
        );
    }

    #[test]
    fn old_nonces_are_stale_only_with_the_right_password() {
        let mut auth = authenticator();
        let user = alice();
        let [challenge, _] = pair(auth.challenges(REALM, &peer(), T0, false));
        let right = phone(&challenge, "1000", PASSWORD, 1);
        let wrong = phone(&challenge, "1000", "1234", 1);
        let ttl_ms = TTL.as_millis() as u64;
        assert_eq!(
            verify_at(&mut auth, &right, Some(&user), T0 + ttl_ms + 1),
            Verdict::Stale
        );
        assert_eq!(
            verify_at(&mut auth, &wrong, Some(&user), T0 + ttl_ms + 1),
            Verdict::Rejected(Rejection::WrongResponse)
        );
        // A clock stepped back by more than the allowed skew.
        assert_eq!(
            verify_at(&mut auth, &right, Some(&user), T0 - MAX_CLOCK_SKEW_MS - 1),
            Verdict::Stale
        );
        assert_eq!(
            verify_at(&mut auth, &right, Some(&user), T0 + ttl_ms),
            Verdict::Authenticated
        );
    }

    #[test]
    fn nonce_counts_must_grow() {
        let mut auth = authenticator();
        let user = alice();
        let [challenge, _] = pair(auth.challenges(REALM, &peer(), T0, false));
        let first = phone(&challenge, "1000", PASSWORD, 1);
        assert_eq!(
            verify_at(&mut auth, &first, Some(&user), T0),
            Verdict::Authenticated
        );
        assert_eq!(
            verify_at(&mut auth, &first, Some(&user), T0 + 1),
            Verdict::Rejected(Rejection::NonceCountReplayed)
        );
        let third = phone(&challenge, "1000", PASSWORD, 3);
        assert_eq!(
            verify_at(&mut auth, &third, Some(&user), T0 + 2),
            Verdict::Authenticated
        );
        let second = phone(&challenge, "1000", PASSWORD, 2);
        assert_eq!(
            verify_at(&mut auth, &second, Some(&user), T0 + 3),
            Verdict::Rejected(Rejection::NonceCountReplayed)
        );
        let [fresh, _] = pair(auth.challenges(REALM, &peer(), T0 + 4, false));
        let zero = phone(&fresh, "1000", PASSWORD, 0);
        assert_eq!(
            verify_at(&mut auth, &zero, Some(&user), T0 + 5),
            Verdict::Rejected(Rejection::NonceCountReplayed)
        );
    }

    #[test]
    fn failed_attempts_do_not_use_up_a_nonce() {
        let mut auth = authenticator();
        let user = alice();
        let [challenge, _] = pair(auth.challenges(REALM, &peer(), T0, false));
        let wrong = phone(&challenge, "1000", "1234", 1);
        assert!(matches!(
            verify_at(&mut auth, &wrong, Some(&user), T0),
            Verdict::Rejected(_)
        ));
        let right = phone(&challenge, "1000", PASSWORD, 1);
        assert_eq!(
            verify_at(&mut auth, &right, Some(&user), T0),
            Verdict::Authenticated
        );
    }

    #[test]
    fn realm_and_uri_must_match() {
        let mut auth = authenticator();
        let user = alice();
        let [challenge, _] = pair(auth.challenges(REALM, &peer(), T0, false));
        let header = phone(&challenge, "1000", PASSWORD, 1);
        let creds = parse_credentials(&header).unwrap();
        assert_eq!(
            auth.verify(
                &creds,
                &attempt("REGISTER", "sip:example.org;transport=tcp", REALM),
                Some(&user),
                T0
            ),
            Verdict::Rejected(Rejection::UriMismatch)
        );
        assert_eq!(
            auth.verify(
                &creds,
                &attempt("REGISTER", URI, "example.net"),
                Some(&user),
                T0
            ),
            Verdict::Rejected(Rejection::RealmMismatch)
        );
        // The digest covers the method, so the same credentials cannot authorize an INVITE.
        assert_eq!(
            auth.verify(&creds, &attempt("INVITE", URI, REALM), Some(&user), T0),
            Verdict::Rejected(Rejection::WrongResponse)
        );
    }

    #[test]
    fn qop_auth_with_cnonce_and_nc_is_required() {
        let mut auth = authenticator();
        let user = alice();
        let [challenge, _] = pair(auth.challenges(REALM, &peer(), T0, false));
        let header = phone(&challenge, "1000", PASSWORD, 1);
        let creds = parse_credentials(&header).unwrap();
        let cases = [
            (
                Credentials {
                    qop: None,
                    ..creds.clone()
                },
                Rejection::MissingQop,
            ),
            (
                Credentials {
                    qop: Some("auth-int".into()),
                    ..creds.clone()
                },
                Rejection::UnsupportedQop,
            ),
            (
                Credentials {
                    cnonce: None,
                    ..creds.clone()
                },
                Rejection::MissingCnonce,
            ),
            (
                Credentials {
                    nc: None,
                    ..creds.clone()
                },
                Rejection::MissingNonceCount,
            ),
        ];
        for (creds, rejection) in cases {
            assert_eq!(
                auth.verify(&creds, &attempt("REGISTER", URI, REALM), Some(&user), T0),
                Verdict::Rejected(rejection)
            );
        }
    }

    #[test]
    fn nonces_beyond_the_eviction_horizon_are_stale() {
        let mut auth = Authenticator::new([42; 32], BOTH.to_vec(), TTL, 1, T0);
        let user = alice();
        let [old, _] = pair(auth.challenges(REALM, &peer(), T0, false));
        let [unused, _] = pair(auth.challenges(REALM, &peer(), T0 + 1, false));
        let [new, _] = pair(auth.challenges(REALM, &peer(), T0 + 2, false));
        for (challenge, nc) in [(&old, 1), (&new, 1)] {
            let header = phone(challenge, "1000", PASSWORD, nc);
            assert_eq!(
                verify_at(&mut auth, &header, Some(&user), T0 + 3),
                Verdict::Authenticated
            );
        }
        // `old` was evicted to make room for `new`: its next request is not trusted, nor is a
        // first request with a nonce issued before the one evicted.
        let header = phone(&old, "1000", PASSWORD, 2);
        assert_eq!(
            verify_at(&mut auth, &header, Some(&user), T0 + 4),
            Verdict::Stale
        );
        let header = phone(&new, "1000", PASSWORD, 2);
        assert_eq!(
            verify_at(&mut auth, &header, Some(&user), T0 + 4),
            Verdict::Authenticated
        );
        // Newer than the horizon yet older than everything tracked: accepted once, evicted.
        let header = phone(&unused, "1000", PASSWORD, 1);
        assert_eq!(
            verify_at(&mut auth, &header, Some(&user), T0 + 5),
            Verdict::Authenticated
        );
        let header = phone(&unused, "1000", PASSWORD, 2);
        assert_eq!(
            verify_at(&mut auth, &header, Some(&user), T0 + 6),
            Verdict::Stale
        );
        // A wrong password never gets as far as Stale.
        let header = phone(&old, "1000", "1234", 3);
        assert_eq!(
            verify_at(&mut auth, &header, Some(&user), T0 + 7),
            Verdict::Rejected(Rejection::WrongResponse)
        );
    }

    #[test]
    fn nonces_from_before_a_restart_are_stale() {
        let mut before = authenticator();
        let [challenge, _] = pair(before.challenges(REALM, &peer(), T0, false));
        let header = phone(&challenge, "1000", PASSWORD, 7);
        let mut after = Authenticator::new([42; 32], BOTH.to_vec(), TTL, 16, T0 + 60_000);
        assert_eq!(
            verify_at(&mut after, &header, Some(&alice()), T0 + 60_000),
            Verdict::Stale
        );
    }
}

//! Provisioning links: `https://<domain>/p/<token>`, one per extension. The token is a secret
//! equal to a password: 256 random bits, never logged, stored only as its SHA-256, and looked up
//! by comparing that hash with every stored one in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest::{SHA256, digest};
use ring::hmac;
use ring::rand::SecureRandom;

use crate::config::Config;
use crate::core::auth::constant_time_eq;
use crate::core::user::Extension;
use crate::store::provisioning::LinkHash;

/// Where links live on the HTTPS listener.
pub const PATH_PREFIX: &str = "/p/";

/// Characters in a token: 32 bytes in unpadded base64url.
pub const TOKEN_LEN: usize = 43;

/// A new token and the hash to store.
pub fn new_token(rng: &dyn SecureRandom) -> Result<(String, LinkHash), ring::error::Unspecified> {
    let mut bytes = [0u8; 32];
    rng.fill(&mut bytes)?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash(&token);
    Ok((token, hash))
}

pub fn hash(token: &str) -> LinkHash {
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    hash
}

/// The extension whose link `token` is. Every stored hash is compared, each in constant time,
/// so that the time taken says nothing about which one, if any, matched.
pub fn find(key: &hmac::Key, links: &[(Extension, LinkHash)], token: &str) -> Option<Extension> {
    let candidate = hash(token);
    let mut found = None;
    for (extension, stored) in links {
        if constant_time_eq(key, stored, &candidate) {
            found = Some(extension.clone());
        }
    }
    found
}

/// `https://<domain>[:port]/p/<token>`: the first HTTPS address's port, left out when 443.
pub fn url(config: &Config, token: &str) -> String {
    format!("{}{PATH_PREFIX}{token}", base(config))
}

/// `https://<domain>[:port]`.
pub fn base(config: &Config) -> String {
    let host = match config.domain.parse::<std::net::Ipv6Addr>() {
        Ok(ip) => format!("[{ip}]"),
        Err(_) => config.domain.clone(),
    };
    match config.web.https.first().map(|a| a.port()) {
        Some(443) | None => format!("https://{host}"),
        Some(port) => format!("https://{host}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;

    use super::*;

    #[test]
    fn tokens_are_found_by_their_hash_only() {
        let rng = SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).unwrap();
        let (a, a_hash) = new_token(&rng).unwrap();
        let (b, b_hash) = new_token(&rng).unwrap();
        assert_eq!(a.len(), TOKEN_LEN);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(a, b);
        let ext = |e: &str| Extension::parse(e).unwrap();
        let links = [(ext("1000"), a_hash), (ext("2000"), b_hash)];
        assert_eq!(find(&key, &links, &a), Some(ext("1000")));
        assert_eq!(find(&key, &links, &b), Some(ext("2000")));
        // One character off, a prefix, empty: nothing.
        let mut off = a.clone().into_bytes();
        off[TOKEN_LEN - 1] = if off[TOKEN_LEN - 1] == b'A' {
            b'B'
        } else {
            b'A'
        };
        for wrong in [
            String::from_utf8(off).unwrap(),
            a[..42].to_owned(),
            String::new(),
        ] {
            assert_eq!(find(&key, &links, &wrong), None, "{wrong}");
        }
    }

    #[test]
    fn urls_name_the_domain_and_port() {
        let mut config = Config::parse("domain = \"example.org\"\n").unwrap();
        assert_eq!(url(&config, "t"), "https://example.org/p/t");
        config.domain = "2001:db8::1".into();
        config.web.https = vec!["[::]:8443".parse().unwrap()];
        assert_eq!(url(&config, "t"), "https://[2001:db8::1]:8443/p/t");
    }
}

//! Users of the network: an extension, a display name and the Digest hashes for the realm.

use std::fmt;

use md5::{Digest as _, Md5};
use ring::digest::{SHA256, digest};

/// Longest extension accepted: an E.164 number has at most 15 digits.
pub const MAX_EXTENSION_LEN: usize = 15;

/// Digits in a generated password: 40 decimal digits carry 132 bits of entropy and can be typed on
/// any phone keypad.
pub const PASSWORD_DIGITS: usize = 40;

/// A dialable extension: 1 to 15 ASCII digits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Extension(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("extension {0:?} is not valid: use 1 to 15 digits, such as 1000")]
pub struct InvalidExtension(pub String);

impl Extension {
    pub fn parse(text: &str) -> Result<Extension, InvalidExtension> {
        let valid = !text.is_empty()
            && text.len() <= MAX_EXTENSION_LEN
            && text.bytes().all(|b| b.is_ascii_digit());
        if valid {
            Ok(Extension(text.to_owned()))
        } else {
            Err(InvalidExtension(text.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Extension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user as stored: never the password, only HA1 = H(extension:realm:password) per algorithm,
/// which is all Digest verification needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub extension: Extension,
    pub display_name: String,
    /// The realm the hashes were computed for; they are useless for any other.
    pub realm: String,
    pub ha1_md5: [u8; 16],
    pub ha1_sha256: [u8; 32],
}

impl User {
    pub fn new(extension: Extension, display_name: &str, realm: &str, password: &str) -> User {
        let secret = format!("{}:{realm}:{password}", extension.as_str());
        let ha1_md5: [u8; 16] = Md5::digest(secret.as_bytes()).into();
        let mut ha1_sha256 = [0u8; 32];
        ha1_sha256.copy_from_slice(digest(&SHA256, secret.as_bytes()).as_ref());
        User {
            extension,
            display_name: display_name.to_owned(),
            realm: realm.to_owned(),
            ha1_md5,
            ha1_sha256,
        }
    }
}

/// A password of [`PASSWORD_DIGITS`] decimal digits from uniformly random `bytes` (an endless
/// stream: some bytes are skipped).
pub fn password_from(bytes: impl IntoIterator<Item = u8>) -> String {
    // Rejection sampling keeps every digit equally likely: 250 is the largest multiple of 10.
    bytes
        .into_iter()
        .filter(|&byte| byte < 250)
        .map(|byte| char::from(b'0' + byte % 10))
        .take(PASSWORD_DIGITS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_digits() {
        assert!(Extension::parse("1000").is_ok());
        assert!(Extension::parse("123456789012345").is_ok());
        for bad in ["", "1234567890123456", "10a0", "alice", "10 0", "١٠٠٠"] {
            assert!(Extension::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ha1_matches_rfc_definition() {
        // H("1000:example.org:secret") computed with coreutils md5sum and sha256sum.
        let user = User::new(
            Extension::parse("1000").unwrap(),
            "Alice",
            "example.org",
            "secret",
        );
        assert_eq!(hex(&user.ha1_md5), "175a0349e95c068fc6e6552d453d3b6b");
        assert_eq!(
            hex(&user.ha1_sha256),
            "f0357369b5543b7b13df778d7a428738977b58d901d2809310d8fa96e6539c3c"
        );
    }

    #[test]
    fn passwords_are_long_and_digits() {
        // Bytes of 250 and more are skipped; the others give their value modulo 10.
        let bytes = [250u8, 255, 9, 19, 249].into_iter().cycle();
        let password = password_from(bytes);
        assert_eq!(password.len(), PASSWORD_DIGITS);
        assert!(password.starts_with("999999"), "{password}");
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

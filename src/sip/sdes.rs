//! SDES key material (RFC 4568 `a=crypto`): a line counts only when both phones can use it, that
//! is a suite libsrtp implements and an `inline:` key of exactly that suite's length. A proxy
//! cannot check more (the key is the phones' secret), but it can refuse what no phone could
//! encrypt with.

/// The crypto suites accepted, with the bytes of master key plus master salt that `inline:`
/// carries (base64-encoded) for each.
pub const SUITES: [(&str, usize); 8] = [
    // RFC 4568 §6.2: 128-bit key, 112-bit salt.
    ("AES_CM_128_HMAC_SHA1_80", 30),
    ("AES_CM_128_HMAC_SHA1_32", 30),
    // RFC 6188: 192- and 256-bit keys, 112-bit salt.
    ("AES_192_CM_HMAC_SHA1_80", 38),
    ("AES_192_CM_HMAC_SHA1_32", 38),
    ("AES_256_CM_HMAC_SHA1_80", 46),
    ("AES_256_CM_HMAC_SHA1_32", 46),
    // RFC 7714 §12: AES-GCM, 96-bit salt.
    ("AEAD_AES_128_GCM", 28),
    ("AEAD_AES_256_GCM", 44),
];

/// Why an `a=crypto` line gives no usable key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// Not `<tag> <suite> <key-params>`.
    Malformed,
    /// A suite not in [`SUITES`].
    UnknownSuite,
    /// A key method other than `inline`, or a key that is not base64 of the suite's length.
    BadKey,
    /// `UNENCRYPTED_SRTP` (RFC 4568 §6.3.2): keys, but the media is sent in the clear.
    Unencrypted,
}

/// Checks the value of an `a=crypto:` attribute (what follows the colon):
/// `<tag> <crypto-suite> <key-params> [<session-param> …]` (RFC 4568 §9.1), where key-params is
/// one or more `inline:<base64 key||salt>[|<lifetime>][|<MKI>:<length>]` joined by `;`.
pub fn check(value: &str) -> Result<(), Unusable> {
    let mut fields = value.split(' ').filter(|field| !field.is_empty());
    let (Some(tag), Some(suite), Some(keys)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(Unusable::Malformed);
    };
    if tag.is_empty() || tag.len() > 9 || !tag.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Unusable::Malformed);
    }
    let length = SUITES
        .iter()
        .find(|(name, _)| *name == suite)
        .map(|(_, length)| *length)
        .ok_or(Unusable::UnknownSuite)?;
    if !keys.split(';').all(|key| is_inline_key(key, length)) {
        return Err(Unusable::BadKey);
    }
    if fields.any(|param| param == "UNENCRYPTED_SRTP") {
        return Err(Unusable::Unencrypted);
    }
    Ok(())
}

/// `inline:<key||salt>[|…]` whose key decodes to exactly `length` bytes.
fn is_inline_key(key_param: &str, length: usize) -> bool {
    let Some(info) = key_param.strip_prefix("inline:") else {
        return false;
    };
    let key = info.split('|').next().unwrap_or_default();
    base64_len(key) == Some(length)
}

/// The number of bytes that `text` decodes to as base64 (RFC 4648 §4), padded or not; `None` if
/// it is not base64.
pub(super) fn base64_len(text: &str) -> Option<usize> {
    let data = text.trim_end_matches('=');
    let padding = text.len() - data.len();
    let valid = data
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    let padded_right = padding == 0 || (padding <= 2 && text.len().is_multiple_of(4));
    (valid && padded_right && data.len() % 4 != 1).then_some(data.len() * 3 / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_suite_with_a_key_of_its_length() {
        let keys = [
            "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "eW0cGQ7JMdQuRuGA7HxKp/7qJ4T4yIQc0yQjG5Ft",
            "7TkJLhuTQpeFYJLYIhZDPywdrzz7FyRkNc3z99uM9i3Ssl9ABWI=",
            "7TkJLhuTQpeFYJLYIhZDPywdrzz7FyRkNc3z99uM9i3Ssl9ABWI",
            "Y1BBcmjwUiXuXHO4Qdvnl3ajBqNS2uOSA4d5h0jYhCjAGkCV+JVhl2VBpYmVLQ==",
            "YMIVmTNvOMCaGB3t2UaQKLkLRGkw4GPeeDxdMdEdWd683qgNiG1jZoEM7871AA",
            "seimbENMGBhjyVn4jh1lYdtVkbJxZUm7fzddqA==",
            "0tlLbRv6u9fBlRHMmTwAEBXSml2+d0KMvB23PhG9xXhLMOkz2pnxPCfhFEw=",
        ];
        let suites = 0..SUITES.len();
        for (key, suite) in keys.iter().zip(suites) {
            let (name, length) = SUITES[suite];
            assert_eq!(base64_len(key), Some(length), "{key}");
            assert_eq!(check(&format!("1 {name} inline:{key}")), Ok(()), "{name}");
        }
    }

    #[test]
    fn lifetime_mki_and_several_keys() {
        let key = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
        for value in [
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20|1:32"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20|1:4;inline:{key}|2^20|2:4"),
            format!("42 AES_CM_128_HMAC_SHA1_32  inline:{key} KDR=1 UNENCRYPTED_SRTCP"),
        ] {
            assert_eq!(check(&value), Ok(()), "{value}");
        }
    }

    #[test]
    fn keys_no_phone_could_use() {
        let key = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
        for (value, why) in [
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{}", &key[..36]),
                Unusable::BadKey,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}AAAA"),
                Unusable::BadKey,
            ),
            (
                format!("1 AES_256_CM_HMAC_SHA1_80 inline:{key}"),
                Unusable::BadKey,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{}!", &key[..39]),
                Unusable::BadKey,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}=="),
                Unusable::BadKey,
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:".to_owned(),
                Unusable::BadKey,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 uri:{key}"),
                Unusable::BadKey,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key};inline:x"),
                Unusable::BadKey,
            ),
            (
                format!("1 F8_128_HMAC_SHA1_80 inline:{key}"),
                Unusable::UnknownSuite,
            ),
            (
                format!("1 NULL_HMAC_SHA1_80 inline:{key}"),
                Unusable::UnknownSuite,
            ),
            (
                format!("1 aes_cm_128_hmac_sha1_80 inline:{key}"),
                Unusable::UnknownSuite,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key} UNENCRYPTED_SRTP"),
                Unusable::Unencrypted,
            ),
            ("1 AES_CM_128_HMAC_SHA1_80".to_owned(), Unusable::Malformed),
            (
                format!("x AES_CM_128_HMAC_SHA1_80 inline:{key}"),
                Unusable::Malformed,
            ),
            (
                format!("1234567890 AES_CM_128_HMAC_SHA1_80 inline:{key}"),
                Unusable::Malformed,
            ),
            (String::new(), Unusable::Malformed),
        ] {
            assert_eq!(check(&value), Err(why), "{value}");
        }
    }
}

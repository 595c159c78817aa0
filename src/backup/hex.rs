//! Bytes as lowercase hex digits, so that binary values stay readable in a TOML file.

pub(crate) use crate::core::auth::hex as encode;

/// The bytes of `text`, two hex digits each; `None` if it is anything else.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    // from_str_radix alone would take a sign: "+1".
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

/// Exactly `N` bytes.
pub fn decode_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    decode(text)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(encode(&bytes), "0001abff");
        assert_eq!(decode("0001abff").unwrap(), bytes);
        assert_eq!(decode("0001ABFF").unwrap(), bytes);
        assert_eq!(decode_array::<4>("0001abff"), Some(bytes));
        for bad in ["0", "0g", "+1", "é0", " 01"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
        assert_eq!(decode_array::<3>("0001abff"), None);
    }
}

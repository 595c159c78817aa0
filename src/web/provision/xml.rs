//! Text inside XML elements and attributes, whatever a display name holds.

/// Escapes the five XML special characters and drops what XML 1.0 cannot carry at all
/// (control characters other than tab and line breaks, U+FFFE, U+FFFF). Non-ASCII text passes
/// as it is: every document hotline writes is UTF-8.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            '\t' | '\n' | '\r' => escaped.push(c),
            c if c.is_control() || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specials_are_escaped_and_the_rest_kept() {
        assert_eq!(
            escape("<a href=\"x\">Tom & Jerry's</a>"),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&apos;s&lt;/a&gt;"
        );
        assert_eq!(escape("Zoë 電話 🦀"), "Zoë 電話 🦀");
        assert_eq!(escape("a\u{0}b\u{1b}c\u{fffe}"), "abc");
        assert_eq!(escape("]]>"), "]]&gt;");
    }
}

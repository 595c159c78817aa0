//! HTML for the owner's pages: escaping, the page frame with its navigation, forms with their
//! CSRF token, and the form fields a browser posts (`application/x-www-form-urlencoded`).
//!
//! Everything that did not come from this file goes through [`escape`]: names, User-Agents and
//! contacts are chosen by whoever registers or is added.

use std::fmt::Write as _;

/// Text made safe for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The pages of the navigation: path and title.
pub const PAGES: [(&str, &str); 5] = [
    ("/", "Overview"),
    ("/phones", "Phones"),
    ("/calls", "Calls"),
    ("/extensions", "Extensions"),
    ("/security", "Security"),
];

/// A whole page: `title`, the navigation (when `csrf` is given, with the logout button) and
/// `body`, which the caller built with [`escape`].
pub fn page(title: &str, csrf: Option<&str>, body: &str) -> String {
    let mut html = String::with_capacity(body.len() + 1024);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · hotline</title><link rel=\"stylesheet\" href=\"/style.css\"></head><body>",
        escape(title)
    );
    if let Some(csrf) = csrf {
        html.push_str("<nav>");
        for (path, name) in PAGES {
            let current = if name == title {
                " aria-current=\"page\""
            } else {
                ""
            };
            let _ = write!(html, "<a href=\"{path}\"{current}>{name}</a>");
        }
        html.push_str(&form("/logout", csrf, "", "Log out"));
        html.push_str("</nav>");
    }
    let _ = writeln!(
        html,
        "<main><h1>{}</h1>{body}</main></body></html>",
        escape(title)
    );
    html
}

/// A POST form to `action` with the CSRF token, `fields` (HTML built with [`escape`]) and a
/// submit button.
pub fn form(action: &str, csrf: &str, fields: &str, button: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         {fields}<button type=\"submit\">{}</button></form>",
        escape(action),
        escape(csrf),
        escape(button)
    )
}

/// The style sheet, served from `/style.css` (the Content-Security-Policy allows no inline
/// style): readable on a phone's screen and on a desktop. On a narrow screen, tables of
/// class `stack` (rows with buttons, short rows) become one block a row; wide lists scroll.
pub const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#f6f7f9}\
nav{display:flex;flex-wrap:wrap;gap:.25rem;align-items:center;background:#1d3557;padding:.5rem}\
nav a{color:#fff;text-decoration:none;padding:.4rem .7rem;border-radius:.3rem}\
nav a[aria-current]{background:#457b9d}\
nav form{margin-left:auto}\
main{padding:1rem;max-width:64rem;margin:auto}\
table{border-collapse:collapse;background:#fff;display:block;overflow-x:auto;\
width:max-content;max-width:100%}\
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #ddd;white-space:nowrap}\
td.long{white-space:normal;overflow-wrap:anywhere;min-width:10rem}\
.facts td{white-space:normal;overflow-wrap:anywhere}\
form{display:inline}\
button{padding:.35rem .8rem;border-radius:.3rem;border:1px solid #457b9d;background:#fff;\
margin:.1rem}\
input{padding:.35rem;margin:.2rem .4rem .2rem 0;max-width:100%}\
td input{width:9rem}\
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(8.5rem,1fr));gap:.6rem}\
.card{background:#fff;padding:.6rem 1rem;border-radius:.4rem}\
.card b{display:block;font-size:1.6rem}\
.notice{background:#fff3cd;padding:.6rem 1rem;border-radius:.4rem;margin:.6rem 0}\
.error{background:#f8d7da;padding:.6rem 1rem;border-radius:.4rem}\
.secret{font-family:monospace;font-size:1.2rem;word-break:break-all}\
svg{background:#fff;width:100%;height:auto}\
.chart{overflow-x:auto}\
.chart svg{min-width:36rem}\
.qr svg{width:16rem;max-width:100%;display:block}\
@media (max-width:40rem){\
.stack,.stack tbody,.stack tr,.stack td{display:block;width:auto}\
.stack tr:first-child{display:none}\
.stack tr{border-bottom:1px solid #ddd;padding:.3rem 0}\
.stack td{border:0;white-space:normal;padding:.2rem .6rem}}\
";

/// The value of `name` in a form body or query string, decoded.
pub fn field(encoded: &[u8], name: &str) -> Option<String> {
    encoded
        .split(|&b| b == b'&')
        .filter_map(|pair| {
            let mut parts = pair.splitn(2, |&b| b == b'=');
            Some((parts.next()?, parts.next().unwrap_or_default()))
        })
        .find(|(key, _)| decode(key).as_deref() == Some(name))
        .and_then(|(_, value)| decode(value))
}

/// Percent-decoding with `+` as a space; `None` for bad escapes or bytes that are not UTF-8.
fn decode(bytes: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_is_inert() {
        let hostile = "<script>alert(\"x\")</script>' onmouseover='x' &amp;\u{0}";
        let escaped = escape(hostile);
        assert_eq!(
            escaped,
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; onmouseover=&#39;x&#39; \
             &amp;amp;\u{fffd}"
        );
        let html = page(hostile, Some("t\"ok"), &escape(hostile));
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("value=\"t&quot;ok\""), "{html}");
    }

    #[test]
    fn form_fields_are_decoded() {
        let body = b"csrf=ab%20c&name=Al+B%C3%A9&empty=&bad=%zz&x";
        assert_eq!(field(body, "csrf").as_deref(), Some("ab c"));
        assert_eq!(field(body, "name").as_deref(), Some("Al Bé"));
        assert_eq!(field(body, "empty").as_deref(), Some(""));
        assert_eq!(field(body, "bad"), None);
        assert_eq!(field(body, "x").as_deref(), Some(""));
        assert_eq!(field(body, "missing"), None);
        assert_eq!(field(b"a=%", "a"), None);
    }
}

//! Grandstream GXP/GRP XML provisioning: `<gs_provision>` with P-value elements.

use std::fmt::Write as _;

use super::account::PhoneAccount;
use super::xml::escape;

/// The vendor documents this file follows; written at the top of every file.
const DOCUMENT: &str = "Format: Grandstream XML provisioning (Grandstream \"Configuration File \
    Download\" guide, gs_provision version 1) with the P-values of the GXP21xx/GRP26xx \
    configuration templates (account 1: P271, P270, P47, P35, P36, P34, P3, P130, P183; \
    P1415; phone book: P330, P331)";

/// The configuration of `account` for a Grandstream phone.
pub fn config(account: &PhoneAccount) -> Option<String> {
    let password = account.password.as_deref()?;
    let ext = account.extension.as_str();
    // The phone book path, without the scheme that P330 chooses; the phone adds /phonebook.xml.
    let phonebook = account.link.trim_start_matches("https://").to_owned();
    let values = [
        ("P271", "1".to_owned(), "Account 1 active"),
        ("P270", account.label().to_owned(), "Account name"),
        (
            "P47",
            format!("{}:{}", account.server, account.port),
            "SIP server",
        ),
        ("P35", ext.to_owned(), "SIP user ID"),
        ("P36", ext.to_owned(), "Authenticate ID"),
        ("P34", password.to_owned(), "Authenticate password"),
        ("P3", account.label().to_owned(), "Name (display name)"),
        ("P130", "2".to_owned(), "SIP transport: 0 UDP, 1 TCP, 2 TLS"),
        (
            "P183",
            "2".to_owned(),
            "SRTP mode: 0 disabled, 1 enabled but not forced, 2 enabled and forced",
        ),
        (
            "P1415",
            "1".to_owned(),
            "Internet protocol: 1 both, prefer IPv6",
        ),
        ("P330", "3".to_owned(), "Phone book XML download: 3 HTTPS"),
        ("P331", phonebook, "Phone book XML server path"),
    ];
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(xml, "<!-- hotline: extension {ext}. {DOCUMENT}. -->");
    if account.self_signed.is_some() {
        // Not the URL itself: a comment must not hold "--", which a token may.
        xml.push_str(
            "<!-- The server's certificate is self-signed: upload certificate.pem from this \
             link to the phone as a trusted CA certificate. -->\n",
        );
    }
    xml.push_str("<gs_provision version=\"1\">\n  <config version=\"1\">\n");
    for (key, value, meaning) in values {
        let _ = writeln!(
            xml,
            "    <!-- {meaning} -->\n    <{key}>{}</{key}>",
            escape(&value)
        );
    }
    xml.push_str("  </config>\n</gs_provision>\n");
    Some(xml)
}

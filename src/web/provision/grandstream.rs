//! Grandstream GXP/GRP XML provisioning: `<gs_provision>` with P-value elements.

use std::fmt::Write as _;

use super::account::PhoneAccount;
use super::xml::escape;

/// The vendor documents this file follows; written at the top of every file.
const DOCUMENT: &str = "Format: Grandstream XML provisioning (Grandstream Provisioning Guide, \
    gs_provision version 1) with the P-values of Grandstream's configuration templates \
    (config-template.zip: gxp2130_40_60_70_35_config_1.0.11.16.txt, gxp16xx_config_1.0.7.3.txt, \
    grp261x_config_1.0.5.15.txt): account 1 P271, P270, P47, P35, P36, P34, P3, P130, P183; \
    network P1415; phone book P330, P331; security P8463, P8433, P8502";

/// The configuration of `account` for a Grandstream phone.
pub fn config(account: &PhoneAccount) -> Option<String> {
    let password = account.password.as_deref()?;
    let ext = account.extension.as_str();
    // The phone book path, without the scheme that P330 chooses; the phone adds /phonebook.xml.
    let phonebook = account.link.trim_start_matches("https://").to_owned();
    let mut values = vec![
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
            "Internet protocol: 0 both, prefer IPv4; 1 both, prefer IPv6; 2 IPv4 only; \
             3 IPv6 only",
        ),
        ("P330", "3".to_owned(), "Phone book XML download: 3 HTTPS"),
        ("P331", phonebook, "Phone book XML server path"),
        (
            "P8463",
            "1".to_owned(),
            "Validate server certificates: 1 yes",
        ),
    ];
    if let Some(certificate) = &account.self_signed {
        values.extend([
            (
                "P8433",
                certificate.clone(),
                "Trusted CA certificate 1: the server's own, self-signed",
            ),
            (
                "P8502",
                "2".to_owned(),
                "Load CA certificates: 0 default, 1 custom, 2 all",
            ),
        ]);
    }
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(xml, "<!-- hotline: extension {ext}. {DOCUMENT}. -->");
    if account.self_signed.is_some() {
        xml.push_str(
            "<!-- The server's certificate is self-signed: P8433 makes the phone trust it from \
             now on. The phone fetched this file before it could check that certificate: \
             compare its SHA-256 fingerprint with the one on the settings card. -->\n",
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

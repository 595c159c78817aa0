//! Linphone remote provisioning: the XML the Linphone apps and liblinphone fetch from their
//! `config-uri` (a URL typed in, or scanned as a QR code).

use std::fmt::Write as _;

use super::account::PhoneAccount;
use super::xml::escape;

/// The vendor document this file follows; written at the top of every file.
const DOCUMENT: &str = "Format: Linphone remote provisioning, \
    https://wiki.linphone.org/xwiki/wiki/public/view/Lib/Features/Remote%20Provisioning/ \
    (lpconfig schema http://www.linphone.org/xsds/lpconfig.xsd; keys as in liblinphone's \
    linphonerc: [sip], [proxy_N], [auth_info_N], [misc])";

/// Why this file cannot make Linphone trust a self-signed certificate, and what to do instead.
/// liblinphone 5.1 reads its trusted roots only from `[sip] root_ca`, a path to a PEM file on
/// the device (`linphone_core_set_root_ca_data` exists in its API but is no configuration key),
/// and it checks the HTTPS server of its `config-uri` against those roots before it reads any
/// file; `tls_certificate_subject_regexp` only narrows a chain already verified.
const SELF_SIGNED: &str = "<!-- The server's certificate is self-signed. No Linphone \
    configuration key can carry a certificate (root_ca is a path on the phone), and Linphone \
    verifies this link's own HTTPS before it reads this file. So: save certificate.pem from this \
    link on the phone, check its SHA-256 fingerprint against the settings card, and set \
    [sip] root_ca to it before the link; this file leaves root_ca as it is. Better: give \
    hotline a certificate from Let's Encrypt (hotline setup). -->\n";

/// The configuration of `account` for Linphone. Its `auth_info` carries the HA1, not the
/// password, so the file works for passwords from before provisioning too.
pub fn config(account: &PhoneAccount) -> String {
    let proxy = format!("<sip:{}:{};transport=tls>", account.server, account.port);
    let identity = format!(
        "\"{}\" <sip:{}@{}>",
        account.label().replace(['"', '\\'], ""),
        account.extension,
        account.server
    );
    let sections: [(&str, Vec<(&str, String)>); 4] = [
        (
            "sip",
            vec![
                ("default_proxy", "0".into()),
                // Only TLS: no UDP or TCP listening ports, a random local TLS port.
                ("sip_port", "0".into()),
                ("sip_tcp_port", "0".into()),
                ("sip_tls_port", "-1".into()),
                ("use_ipv6", "1".into()),
                ("ipv6_migration_done", "1".into()),
                ("media_encryption", "srtp".into()),
                ("media_encryption_mandatory", "1".into()),
                // The roots stay the phone's own (`root_ca`), see [`SELF_SIGNED`].
                ("verify_server_certs", "1".into()),
                ("verify_server_cn", "1".into()),
            ],
        ),
        (
            "proxy_0",
            vec![
                ("reg_proxy", proxy.clone()),
                ("reg_route", proxy.replace('>', ";lr>")),
                ("reg_identity", identity),
                ("reg_expires", "3600".into()),
                ("reg_sendregister", "1".into()),
                ("publish", "0".into()),
                ("realm", account.domain.clone()),
            ],
        ),
        (
            "auth_info_0",
            vec![
                ("username", account.extension.to_string()),
                ("userid", account.extension.to_string()),
                ("ha1", account.ha1_md5.clone()),
                ("algorithm", "MD5".into()),
                ("realm", account.domain.clone()),
                ("domain", account.server.clone()),
            ],
        ),
        (
            "misc",
            vec![("contacts-vcard-list", account.url("directory/contacts.vcf"))],
        ),
    ];
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<!-- hotline: extension {}. {DOCUMENT}. -->",
        account.extension
    );
    if account.self_signed.is_some() {
        // Not the URL itself: a comment must not hold "--", which a token may.
        xml.push_str(SELF_SIGNED);
    }
    xml.push_str(
        "<config xmlns=\"http://www.linphone.org/xsds/lpconfig.xsd\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xsi:schemaLocation=\"http://www.linphone.org/xsds/lpconfig.xsd lpconfig.xsd\">\n",
    );
    for (name, entries) in sections {
        let _ = writeln!(xml, "  <section name=\"{name}\">");
        for (key, value) in entries {
            let _ = writeln!(
                xml,
                "    <entry name=\"{key}\" overwrite=\"true\">{}</entry>",
                escape(&value)
            );
        }
        xml.push_str("  </section>\n");
    }
    xml.push_str("</config>\n");
    xml
}

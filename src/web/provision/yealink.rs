//! Yealink SIP-T4x/T5x auto provisioning: a `.cfg` file of `key = value` lines.

use std::fmt::Write as _;

use super::account::PhoneAccount;

/// The vendor documents this file follows; written at the top of every file.
const DOCUMENT: &str = "Format: Yealink SIP IP Phones Auto Provisioning Guide (common/MAC .cfg \
    files) and the Yealink SIP-T4x/T5x Administrator Guide for firmware V8x, whose keys carry \
    the static. prefix (account.X.*, static.network.ip_address_mode, remote_phonebook.data.X.*, \
    static.security.trust_certificates, static.security.cn_validation, \
    static.trusted_certificates.url)";

/// The configuration of `account` for a Yealink phone. A value ends at the line's end, so
/// characters that would end it early are dropped.
pub fn config(account: &PhoneAccount) -> Option<String> {
    let password = account.password.as_deref()?;
    let value = |text: &str| text.chars().filter(|c| !c.is_control()).collect::<String>();
    let mut cfg = String::from("#!version:1.0.0.1\n");
    let _ = writeln!(cfg, "## hotline: extension {}.", account.extension);
    let _ = writeln!(cfg, "## {DOCUMENT}.");
    let ext = account.extension.as_str();
    let lines = [
        ("account.1.enable", "1".to_owned()),
        ("account.1.label", value(account.label())),
        ("account.1.display_name", value(account.label())),
        ("account.1.auth_name", ext.to_owned()),
        ("account.1.user_name", ext.to_owned()),
        ("account.1.password", password.to_owned()),
        ("account.1.sip_server.1.address", account.domain.clone()),
        ("account.1.sip_server.1.port", account.port.to_string()),
        // 0 UDP, 1 TCP, 2 TLS, 3 DNS-NAPTR.
        ("account.1.sip_server.1.transport_type", "2".to_owned()),
        // 0 disabled, 1 optional, 2 compulsory.
        ("account.1.srtp_encryption", "2".to_owned()),
        // 0 IPv4, 1 IPv6, 2 IPv4 and IPv6: hotline is IPv6 only, the phone's other services may not be.
        ("static.network.ip_address_mode", "2".to_owned()),
        (
            "remote_phonebook.data.1.url",
            account.url("directory/yealink.xml"),
        ),
        ("remote_phonebook.data.1.name", "hotline".to_owned()),
        // Only Accept Trusted Certificates, and only for the name the phone asked for.
        ("static.security.trust_certificates", "1".to_owned()),
        ("static.security.cn_validation", "1".to_owned()),
    ];
    for (key, value) in lines {
        let _ = writeln!(cfg, "{key} = {value}");
    }
    if account.self_signed.is_some() {
        let _ = writeln!(
            cfg,
            "## The server's certificate is self-signed: trust it (static.security.ca_cert \
             keeps its default, 2: the phone's CAs and the ones added)."
        );
        let _ = writeln!(
            cfg,
            "static.trusted_certificates.url = {}",
            account.url("certificate.pem")
        );
    }
    Some(cfg)
}

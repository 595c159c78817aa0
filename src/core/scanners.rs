//! Known SIP scanners, recognised by their `User-Agent` and dropped without a reply: any answer
//! would only confirm that a SIP server listens here.
//!
//! [`SCANNERS`] holds the product names that scanning tools send by default: those of Kamailio's
//! default configuration (`route[REQINIT]`: friendly-scanner and sipvicious from SIPVicious,
//! sipcli, VaxSIPUserAgent, pplsip) and of common Kamailio and Fail2Ban anti-scanner rules
//! (sundayddr, iWar, SIPScan, sip-scan). `sipsak` is left out on purpose: it is the
//! administrator's own test and monitoring tool (Nagios and Icinga checks use it), not an
//! attacker's.
//!
//! A request matches when one of its `User-Agent` products (RFC 3261 §20.41: `name/version`,
//! comments in parentheses skipped) has a listed name, ignoring case. Whole names only: a
//! substring match (Kamailio matches `scanner` anywhere) would drop a phone whose name merely
//! contains one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use super::bans::Scope;
use super::clock::millis;

pub const SCANNERS: [&str; 9] = [
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "VaxSIPUserAgent",
    "pplsip",
    "sundayddr",
    "iWar",
    "SIPScan",
    "sip-scan",
];

/// The listed scanner a `User-Agent` value names, if any.
pub fn scanner(user_agent: &str) -> Option<&'static str> {
    products(user_agent).find_map(|product| {
        let name = product.split_once('/').map_or(product, |(name, _)| name);
        SCANNERS
            .iter()
            .copied()
            .find(|scanner| scanner.eq_ignore_ascii_case(name))
    })
}

/// The products of a `User-Agent` value: its words outside comments.
fn products(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = value;
    std::iter::from_fn(move || {
        loop {
            rest = rest.trim_start();
            if rest.starts_with('(') {
                rest = after_comment(rest);
                continue;
            }
            if rest.is_empty() {
                return None;
            }
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '(')
                .unwrap_or(rest.len());
            let (word, tail) = rest.split_at(end);
            rest = tail;
            return Some(word);
        }
    })
}

/// What follows the comment `text` starts with (comments nest); nothing if it never closes.
fn after_comment(text: &str) -> &str {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 1 => return &text[i + 1..],
            ')' => depth -= 1,
            _ => {}
        }
    }
    ""
}

/// Sources lately seen scanning, so that each is logged once per window: a scanner sends
/// thousands of requests, the log gets one line. A source is a prefix (as for bans), because
/// one scanner may use every address of its network. At most `capacity` are remembered; when
/// full, the one seen longest ago is forgotten.
pub struct Sightings {
    window_ms: u64,
    prefix: u8,
    capacity: usize,
    last_logged: HashMap<Scope, u64>,
}

impl Sightings {
    pub fn new(window: Duration, prefix: u8, capacity: usize) -> Sightings {
        Sightings {
            window_ms: millis(window),
            prefix,
            capacity: capacity.max(1),
            last_logged: HashMap::new(),
        }
    }

    /// Records a request from a scanner at `ip`; true when it is to be logged (the first from
    /// its source in the window).
    pub fn first_in_window(&mut self, ip: IpAddr, now_ms: u64) -> bool {
        let source = Scope::new(ip, self.prefix);
        if let Some(last) = self.last_logged.get_mut(&source) {
            if now_ms.saturating_sub(*last) < self.window_ms {
                return false;
            }
            *last = now_ms;
            return true;
        }
        if self.last_logged.len() >= self.capacity {
            self.expire(now_ms);
        }
        if self.last_logged.len() >= self.capacity {
            let oldest = self
                .last_logged
                .iter()
                .min_by_key(|(_, last)| **last)
                .map(|(source, _)| *source);
            if let Some(oldest) = oldest {
                self.last_logged.remove(&oldest);
            }
        }
        self.last_logged.insert(source, now_ms);
        true
    }

    /// Forgets sources not seen within the window.
    pub fn expire(&mut self, now_ms: u64) {
        let window = self.window_ms;
        self.last_logged
            .retain(|_, last| now_ms.saturating_sub(*last) < window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanners_are_recognised_by_product_name() {
        for (user_agent, expected) in [
            ("friendly-scanner", Some("friendly-scanner")),
            ("FRIENDLY-SCANNER", Some("friendly-scanner")),
            ("sipvicious/0.3.4", Some("sipvicious")),
            ("VaxSIPUserAgent/3.1", Some("VaxSIPUserAgent")),
            ("sipcli/v1.8", Some("sipcli")),
            ("Linux (x86_64) iWar", Some("iWar")),
            ("sundayddr", Some("sundayddr")),
            ("pplsip", Some("pplsip")),
            ("SIPScan (scanner)", Some("SIPScan")),
            ("  sip-scan  ", Some("sip-scan")),
            ("Yealink SIP-T46S 66.86.0.15", None),
            ("baresip v3.10.1 (x86_64/linux)", None),
            ("sipsak 0.9.8", None),
            ("Friendly Phone/1.0", None),
            ("MyPhone (friendly-scanner compatible)", None),
            ("Zoiper (sipvicious (nested)) rc", None),
            ("", None),
            ("((((", None),
            (")) sipcli", Some("sipcli")),
        ] {
            assert_eq!(scanner(user_agent), expected, "{user_agent:?}");
        }
    }

    #[test]
    fn each_source_is_logged_once_per_window() {
        let mut seen = Sightings::new(Duration::from_secs(600), 64, 2);
        let ip = |text: &str| -> IpAddr { text.parse().unwrap() };
        assert!(seen.first_in_window(ip("2001:db8::1"), 0));
        assert!(!seen.first_in_window(ip("2001:db8::1"), 1000));
        assert!(!seen.first_in_window(ip("2001:db8::2"), 2000), "same /64");
        assert!(seen.first_in_window(ip("2001:db8::1"), 600_000));
        assert!(seen.first_in_window(ip("2001:db8:1::1"), 600_001));
        // Full: the source seen longest ago makes room.
        assert!(seen.first_in_window(ip("2001:db8:2::1"), 600_002));
        assert_eq!(seen.last_logged.len(), 2);
        assert!(!seen.first_in_window(ip("2001:db8:2::1"), 600_003));
        seen.expire(1_300_000);
        assert!(seen.last_logged.is_empty());
    }
}

//! Bans and scanners as the core applies them, with simulated time: wrong passwords from one
//! source ban it, its messages are then dropped, and other sources are unaffected.

use super::auth::{Algorithm, Rejection};
use super::tests::{DOMAIN, PASSWORD, answer, at, challenges_of};
use super::*;

pub(super) const T0: u64 = 1_800_000_000_000;
pub(super) const HOUR: u64 = 3_600_000;

fn settings() -> Settings {
    let mut settings = Settings {
        domain: DOMAIN.to_owned(),
        ..Settings::default()
    };
    settings.bans.failures = 3;
    settings
}

/// A core that bans after three failures.
pub(super) fn banning_core(bans: Vec<Ban>) -> Core {
    let users = vec![User::new(
        Extension::parse("1000").unwrap(),
        "Alice",
        DOMAIN,
        PASSWORD,
    )];
    let listeners = vec![(Transport::Udp, "[2001:db8::1]:5060".parse().unwrap())];
    Core::new(
        settings(),
        listeners,
        [3; 32],
        users,
        Vec::new(),
        bans,
        at(T0),
    )
}

/// A phone of extension 1000 at `address`, each request a new transaction.
pub(super) struct Phone {
    remote: SocketAddr,
    cseq: u32,
}

impl Phone {
    pub fn at(address: &str) -> Phone {
        Phone {
            remote: address.parse().unwrap(),
            cseq: 0,
        }
    }

    fn request(&mut self, extra: &str) -> String {
        self.cseq += 1;
        format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {r};branch=z9hG4bKb{c};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:1000@{DOMAIN}>;tag=ft\r\nTo: <sip:1000@{DOMAIN}>\r\n\
             Call-ID: bans-{r}\r\nCSeq: {c} REGISTER\r\nContact: <sip:1000@{r}>\r\n\
             {extra}Content-Length: 0\r\n\r\n",
            r = self.remote,
            c = self.cseq,
        )
    }

    /// Sends `text`; the responses (none when dropped).
    fn send(&self, core: &mut Core, text: &str, now: u64) -> Vec<Message> {
        self.send_at(core, text, at(now))
    }

    fn send_at(&self, core: &mut Core, text: &str, now: Now) -> Vec<Message> {
        let flow = Flow {
            transport: Transport::Udp,
            remote: self.remote,
            connection: None,
        };
        core.handle(
            Inbound {
                bytes: text.as_bytes(),
                flow,
            },
            now,
        );
        core.take_transmits()
            .iter()
            .map(|Transmit { bytes, .. }| Message::parse(bytes, 64).unwrap())
            .collect()
    }

    /// A challenged REGISTER answered with `password`: the final status, or None if dropped.
    pub fn register(&mut self, core: &mut Core, password: &str, now: u64) -> Option<u16> {
        self.register_at(core, password, at(now))
    }

    pub fn register_at(&mut self, core: &mut Core, password: &str, now: Now) -> Option<u16> {
        let text = self.request("");
        let challenge = self.send_at(core, &text, now).pop()?;
        let offered = challenges_of(&challenge, "WWW-Authenticate");
        let uri = format!("sip:{DOMAIN}");
        let credentials = answer(
            offered[0],
            Algorithm::Md5,
            "1000",
            password,
            "REGISTER",
            &uri,
            1,
        );
        let text = self.request(&format!("Authorization: {credentials}\r\n"));
        self.send_at(core, &text, now).pop()?.status()
    }
}

#[test]
fn failures_ban_the_source_and_its_messages_are_dropped() {
    let mut core = banning_core(Vec::new());
    let mut mallory = Phone::at("[2001:db8:66::66]:5060");
    for i in 0..3 {
        assert_eq!(mallory.register(&mut core, "wrong", T0 + i), Some(403));
    }
    let bans = core.take_new_bans();
    assert_eq!(bans.len(), 1, "{bans:?}");
    assert_eq!(bans[0].scope.to_string(), "2001:db8:66::66/128");
    assert_eq!(bans[0].until_ms, T0 + 2 + HOUR);
    assert!(core.take_new_bans().is_empty());

    // Even the right password and a server ping get no answer now.
    assert_eq!(mallory.register(&mut core, PASSWORD, T0 + 10), None);
    let ping = mallory.request("").replace("REGISTER sip:", "OPTIONS sip:");
    assert!(mallory.send(&mut core, &ping, T0 + 10).is_empty());
    // Another address of the same /64 and another network are not banned.
    let mut neighbour = Phone::at("[2001:db8:66::67]:5060");
    assert_eq!(neighbour.register(&mut core, PASSWORD, T0 + 10), Some(200));
    let mut alice = Phone::at("[2001:db8:a::1]:5060");
    assert_eq!(alice.register(&mut core, PASSWORD, T0 + 10), Some(200));

    // The ban ends with its hour (tick or not), or when lifted.
    core.handle_timeout(at(T0 + 2 + HOUR));
    assert_eq!(
        mallory.register(&mut core, PASSWORD, T0 + 2 + HOUR),
        Some(200)
    );
    for i in 0..3 {
        mallory.register(&mut core, "wrong", T0 + 2 * HOUR + i);
    }
    let scope = core.take_new_bans().pop().unwrap().scope;
    assert_eq!(
        mallory.register(&mut core, PASSWORD, T0 + 2 * HOUR + 5),
        None
    );
    assert!(core.lift_ban(&scope));
    assert!(!core.lift_ban(&scope));
    assert_eq!(
        mallory.register(&mut core, PASSWORD, T0 + 2 * HOUR + 6),
        Some(200)
    );
}

#[test]
fn failures_from_several_addresses_ban_the_prefix() {
    let mut core = banning_core(Vec::new());
    for (i, address) in [
        "[2001:db8:66::a]:5060",
        "[2001:db8:66::b]:5060",
        "[2001:db8:66::c]:5060",
    ]
    .iter()
    .enumerate()
    {
        let now = T0 + i as u64;
        assert_eq!(
            Phone::at(address).register(&mut core, "wrong", now),
            Some(403)
        );
    }
    let bans = core.take_new_bans();
    assert_eq!(bans.len(), 1, "{bans:?}");
    assert_eq!(bans[0].scope.to_string(), "2001:db8:66::/64");
    let mut other = Phone::at("[2001:db8:66::ffff]:5060");
    assert_eq!(other.register(&mut core, PASSWORD, T0 + 10), None);
    let mut elsewhere = Phone::at("[2001:db8:67::a]:5060");
    assert_eq!(elsewhere.register(&mut core, PASSWORD, T0 + 10), Some(200));
}

#[test]
fn stored_bans_apply_from_the_start() {
    let ban = Ban {
        scope: "2001:db8:66::/64".parse().unwrap(),
        until_ms: T0 + HOUR,
        reason: "3 authentication failures in 600 s".to_owned(),
    };
    let mut core = banning_core(vec![ban]);
    let mut mallory = Phone::at("[2001:db8:66::66]:5060");
    assert_eq!(mallory.register(&mut core, PASSWORD, T0), None);
    assert!(core.take_new_bans().is_empty(), "restored, not new");
    core.handle_timeout(at(T0 + HOUR));
    assert_eq!(mallory.register(&mut core, PASSWORD, T0 + HOUR), Some(200));
}

#[test]
fn scanners_get_no_reply() {
    let mut core = banning_core(Vec::new());
    let mut scanner = Phone::at("[2001:db8:5c::1]:5060");
    for user_agent in [
        "friendly-scanner",
        "sipvicious/0.3.4",
        "VaxSIPUserAgent/3.1 (x)",
    ] {
        let text = scanner.request(&format!("User-Agent: {user_agent}\r\n"));
        assert!(
            scanner.send(&mut core, &text, T0).is_empty(),
            "{user_agent}"
        );
    }
    let options = scanner
        .request("User-Agent: sipcli/v1.8\r\n")
        .replace("REGISTER sip:", "OPTIONS sip:");
    assert!(scanner.send(&mut core, &options, T0).is_empty());
    // A phone's User-Agent is answered, and scanners are not banned for it.
    let text = scanner.request("User-Agent: Yealink SIP-T46S 66.86.0.15\r\n");
    assert_eq!(scanner.send(&mut core, &text, T0)[0].status(), Some(401));
    assert!(core.take_new_bans().is_empty());
    // One event per source and window, however many requests and names.
    let events = core.take_events();
    let [Event::Security(event)] = events.as_slice() else {
        panic!("one security event expected: {events:?}");
    };
    assert_eq!(
        event.to_string(),
        "scanner detected address=2001:db8:5c::1 port=5060 transport=UDP \
         user_agent=friendly-scanner method=\"REGISTER\""
    );
}

#[test]
fn failures_and_bans_are_events_with_the_lines_fail2ban_reads() {
    let mut core = banning_core(Vec::new());
    let mut mallory = Phone::at("[2001:db8:66::66]:5070");
    for i in 0..3 {
        assert_eq!(mallory.register(&mut core, "wrong", T0 + i), Some(403));
    }
    let flow = Flow {
        transport: Transport::Udp,
        remote: "[2001:db8:66::66]:5070".parse().unwrap(),
        connection: None,
    };
    let failed = SecurityEvent::AuthenticationFailed {
        flow,
        user: "1000".to_owned(),
        reason: Rejection::WrongResponse,
    };
    let ban = Ban {
        scope: "2001:db8:66::66".parse().unwrap(),
        until_ms: T0 + 2 + HOUR,
        reason: "3 authentication failures in 600 s".to_owned(),
    };
    let banned = SecurityEvent::Banned {
        flow,
        ban: ban.clone(),
        failures: 3,
    };
    assert_eq!(
        core.take_events(),
        [
            Event::Security(failed.clone()),
            Event::Security(failed.clone()),
            Event::Security(failed.clone()),
            Event::Security(banned.clone()),
            Event::BanAdded(ban),
        ]
    );
    assert_eq!(
        failed.to_string(),
        "authentication failed address=2001:db8:66::66 port=5070 transport=UDP user=\"1000\" \
         reason=WrongResponse"
    );
    assert_eq!(
        banned.to_string(),
        "banned address=2001:db8:66::66 port=5070 transport=UDP scope=2001:db8:66::66/128 \
         until=2027-01-15T09:00:00Z failures=3"
    );
}

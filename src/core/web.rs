//! The web side's way into the core: the same ban table and flood limiter as SIP, so that a
//! source banned for wrong SIP passwords is refused by the pages too, and the other way round.

use std::net::SocketAddr;

use tracing::info;

use super::Core;
use super::bans::{Ban, Utc};
use super::clock::Now;
use super::history::History;
use super::limits::Verdict;
use super::output::Event;
use super::registrar::Binding;
use super::security::{HTTPS, SecurityEvent};
use super::user::Extension;

/// Whether a web request may be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Serve,
    /// Over a flood limit: `429 Too Many Requests`.
    Refuse,
    /// Banned, or flooding past its reply budget: the connection closes without an answer.
    Drop,
}

impl Core {
    /// Counts one web request from `remote` in the flood limiter, after the ban check.
    pub fn admit_web(&mut self, remote: SocketAddr, now: Now) -> Admission {
        if let Some(dropped) = self.bans.drop_from(remote.ip(), now.wall_ms) {
            if dropped.first {
                info!(source = %remote, transport = HTTPS, scope = %dropped.scope, until = %Utc(dropped.until_ms), "dropping requests from a banned source");
            }
            return Admission::Drop;
        }
        let verdict = self.limiter.check(remote.ip(), now.ms());
        if verdict != Verdict::Allow {
            for scope in self.limiter.take_new_floods() {
                self.report(SecurityEvent::WebFlood { remote, scope }, now.wall_ms);
            }
        }
        match verdict {
            Verdict::Allow => Admission::Serve,
            Verdict::Refuse => Admission::Refuse,
            Verdict::Drop => Admission::Drop,
        }
    }

    /// A security event the network layer found (a connection limit, anonymous connections
    /// expiring): recorded for the owner's pages and emitted like the core's own.
    pub fn network_event(&mut self, event: SecurityEvent, now: Now) {
        self.report(event, now.wall_ms);
    }

    /// A wrong password or token on the web side: logged as a security event and counted
    /// toward a ban of its source, as SIP authentication failures are.
    pub fn web_authentication_failed(&mut self, remote: SocketAddr, what: &str, now: Now) {
        let what = what.to_owned();
        let failed = SecurityEvent::WebAuthenticationFailed { remote, what };
        self.report(failed, now.wall_ms);
        if let Some(ban) = self.bans.record_failure(remote.ip(), now.wall_ms) {
            let failures = self.bans.threshold();
            let banned = SecurityEvent::WebBanned {
                remote,
                ban: ban.clone(),
                failures,
            };
            self.report(banned, now.wall_ms);
            self.events.push_back(Event::BanAdded(ban));
        }
    }
}

/// A registered phone, as the owner's Phones page lists it.
#[derive(Debug, Clone)]
pub struct Phone {
    pub extension: Extension,
    pub display_name: String,
    pub binding: Binding,
}

/// What the Overview page counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub phones: usize,
    pub extensions: usize,
    pub calls: usize,
    pub bans: usize,
}

impl Core {
    /// Every live binding, by extension.
    pub fn phones(&self, now_ms: u64) -> Vec<Phone> {
        let mut phones: Vec<Phone> = self
            .users
            .values()
            .flat_map(|user| {
                self.registrar
                    .contacts(&user.extension, now_ms)
                    .map(|binding| Phone {
                        extension: user.extension.clone(),
                        display_name: user.display_name.clone(),
                        binding: binding.clone(),
                    })
            })
            .collect();
        phones.sort_by(|a, b| a.extension.cmp(&b.extension));
        phones
    }

    /// The users' extensions and display names, by extension.
    pub fn extensions(&self) -> Vec<(Extension, String)> {
        let mut users: Vec<(Extension, String)> = self
            .users
            .values()
            .map(|u| (u.extension.clone(), u.display_name.clone()))
            .collect();
        users.sort();
        users
    }

    pub fn counts(&self, now_ms: u64) -> Counts {
        Counts {
            phones: self.registrar.total(),
            extensions: self.users.len(),
            calls: self.proxy.dialogs().len(),
            bans: self.bans.list(now_ms).len(),
        }
    }

    /// The bans in force, by scope.
    pub fn bans_in_force(&self, now_ms: u64) -> Vec<Ban> {
        self.bans.list(now_ms)
    }

    pub fn history(&self) -> &History {
        &self.history
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Settings;
    use crate::core::tests::at;

    fn core(failures: u32) -> Core {
        let mut settings = Settings::default();
        settings.bans.failures = failures;
        Core::new(
            settings,
            Vec::new(),
            [7; 32],
            Vec::new(),
            Vec::new(),
            Vec::new(),
            at(0),
        )
    }

    #[test]
    fn web_failures_ban_the_source_for_sip_and_web() {
        let mut core = core(3);
        let remote: SocketAddr = "[2001:db8::1]:40000".parse().unwrap();
        for _ in 0..2 {
            core.web_authentication_failed(remote, "owner password", at(1_000));
            assert_eq!(core.admit_web(remote, at(1_000)), Admission::Serve);
        }
        core.web_authentication_failed(remote, "owner password", at(1_000));
        assert_eq!(core.admit_web(remote, at(1_001)), Admission::Drop);
        assert_eq!(core.take_new_bans().len(), 1);
        assert!(core.bans.is_banned(remote.ip(), 1_001));
        let other: SocketAddr = "[2001:db8:1::1]:40000".parse().unwrap();
        assert_eq!(core.admit_web(other, at(1_001)), Admission::Serve);
    }

    #[test]
    fn web_requests_count_in_the_flood_limiter() {
        let mut core = core(5);
        let remote: SocketAddr = "[2001:db8::1]:40000".parse().unwrap();
        let verdicts: Vec<Admission> = (0..200)
            .map(|_| core.admit_web(remote, at(1_000)))
            .collect();
        assert_eq!(verdicts[0], Admission::Serve);
        assert!(verdicts.contains(&Admission::Refuse), "{verdicts:?}");
    }
}

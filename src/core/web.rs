//! The web side's way into the core: the same ban table and flood limiter as SIP, so that a
//! source banned for wrong SIP passwords is refused by the pages too, and the other way round.

use std::net::SocketAddr;

use tracing::info;

use super::bans::Utc;
use super::limits::Verdict;
use super::{Core, security};

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
    pub fn admit_web(&mut self, remote: SocketAddr, now_ms: u64) -> Admission {
        if let Some(dropped) = self.bans.drop_from(remote.ip(), now_ms) {
            if dropped.first {
                info!(source = %remote, transport = security::HTTPS, scope = %dropped.scope, until = %Utc(dropped.until_ms), "dropping requests from a banned source");
            }
            return Admission::Drop;
        }
        let verdict = self.limiter.check(remote.ip(), now_ms);
        if verdict != Verdict::Allow {
            for scope in self.limiter.take_new_floods() {
                security::report_from(
                    security::Event::Flood,
                    remote,
                    security::HTTPS,
                    format_args!("scope={scope}"),
                );
            }
        }
        match verdict {
            Verdict::Allow => Admission::Serve,
            Verdict::Refuse => Admission::Refuse,
            Verdict::Drop => Admission::Drop,
        }
    }

    /// A wrong password or token on the web side: logged as a security event and counted
    /// toward a ban of its source, as SIP authentication failures are.
    pub fn web_authentication_failed(&mut self, remote: SocketAddr, what: &str, now_ms: u64) {
        security::report_from(
            security::Event::AuthenticationFailed,
            remote,
            security::HTTPS,
            format_args!("what={what}"),
        );
        self.count_failure_from(remote, security::HTTPS, now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn core(failures: u32) -> Core {
        let mut config = Config::default();
        config.bans.failures = failures;
        Core::new(
            &config,
            Vec::new(),
            [7; 32],
            Vec::new(),
            Vec::new(),
            Vec::new(),
            0,
        )
    }

    #[test]
    fn web_failures_ban_the_source_for_sip_and_web() {
        let mut core = core(3);
        let remote: SocketAddr = "[2001:db8::1]:40000".parse().unwrap();
        for _ in 0..2 {
            core.web_authentication_failed(remote, "owner password", 1_000);
            assert_eq!(core.admit_web(remote, 1_000), Admission::Serve);
        }
        core.web_authentication_failed(remote, "owner password", 1_000);
        assert_eq!(core.admit_web(remote, 1_001), Admission::Drop);
        assert_eq!(core.take_new_bans().len(), 1);
        assert!(core.bans.is_banned(remote.ip(), 1_001));
        let other: SocketAddr = "[2001:db8:1::1]:40000".parse().unwrap();
        assert_eq!(core.admit_web(other, 1_001), Admission::Serve);
    }

    #[test]
    fn web_requests_count_in_the_flood_limiter() {
        let mut core = core(5);
        let remote: SocketAddr = "[2001:db8::1]:40000".parse().unwrap();
        let verdicts: Vec<Admission> = (0..200).map(|_| core.admit_web(remote, 1_000)).collect();
        assert_eq!(verdicts[0], Admission::Serve);
        assert!(verdicts.contains(&Admission::Refuse), "{verdicts:?}");
    }
}

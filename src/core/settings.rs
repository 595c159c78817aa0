//! What the core is told when it starts: the protocol's part of the configuration, durations as
//! durations. `crate::config` reads the file and converts it into this, in one place; the
//! defaults here are the ones `config/hotline.toml` documents.

use std::time::Duration;

use super::{auth, bans, limits, registrar};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The SIP domain and Digest realm.
    pub domain: String,
    /// Other names of this server accepted in request URIs.
    pub aliases: Vec<String>,
    /// Header lines per message.
    pub max_headers: usize,
    /// Via entries per request.
    pub max_vias: usize,
    /// Transactions in progress: proxied requests, and responses kept for retransmissions.
    pub max_transactions: usize,
    /// Proxied transactions past their final response, kept to absorb retransmissions.
    pub max_lingering_transactions: usize,
    /// Proxied transactions in progress from the addresses of one /64.
    pub max_transactions_per_prefix: usize,
    pub proxy: Proxy,
    pub registrar: registrar::Settings,
    pub auth: auth::Settings,
    pub flood: limits::Settings,
    pub bans: bans::Settings,
}

/// Calls and the dialogs they establish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// How long a call may ring before the caller gets 480 and the phones stop ringing.
    pub ring_timeout: Duration,
    /// Calls in progress whose in-dialog requests hotline can route.
    pub max_dialogs: usize,
    /// How long a dialog is kept even without a BYE.
    pub dialog_lifetime: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            domain: String::new(),
            aliases: Vec::new(),
            max_headers: 64,
            max_vias: 70,
            max_transactions: 16 * 1024,
            max_lingering_transactions: 80 * 1024,
            max_transactions_per_prefix: 2048,
            proxy: Proxy::default(),
            registrar: registrar::Settings::default(),
            auth: auth::Settings::default(),
            flood: limits::Settings::default(),
            bans: bans::Settings::default(),
        }
    }
}

impl Default for Proxy {
    fn default() -> Proxy {
        Proxy {
            ring_timeout: Duration::from_secs(60),
            max_dialogs: 4096,
            dialog_lifetime: Duration::from_secs(12 * 3600),
        }
    }
}

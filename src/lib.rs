//! hotline: a SIP registrar and proxy for a small private phone network, IPv6 end to end.
//!
//! The protocol lives in [`core`], a pure state machine that never touches a socket, a clock or a
//! file; [`net`] feeds it bytes and time and carries out what it asks; [`store`] keeps users and
//! bindings in redb.

pub mod atomic_file;
pub mod backup;
pub mod certificate;
pub mod clock;
pub mod config;
pub mod control;
pub mod core;
pub mod data_dir;
pub mod net;
pub mod setup;
pub mod sip;
pub mod store;
pub mod terminal;
pub mod version;
pub mod web;

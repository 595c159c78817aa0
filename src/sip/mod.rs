//! SIP messages: a proxy-oriented parser that keeps the received bytes and parses lazily what the
//! core needs, so headers hotline does not understand pass through byte for byte.

mod transport;

pub use transport::Transport;

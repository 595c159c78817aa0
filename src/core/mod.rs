//! The sans-IO protocol core: bytes and time in, actions out.

pub mod auth;
pub mod user;

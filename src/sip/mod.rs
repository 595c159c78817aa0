//! SIP messages: a proxy-oriented parser that keeps the received text and parses lazily what the
//! core needs, so headers hotline does not understand pass through byte for byte.

mod framing;
mod header;
mod message;
mod name_addr;
mod params;
mod response;
mod rewrite;
mod sdes;
mod sdp;
mod transport;
mod uri;
mod via;

pub use framing::{Frame, Framer, FramingError, next_frame};
pub use header::HeaderName;
pub use message::{CSeq, Message, Method, ParseError};
pub use name_addr::NameAddr;
pub use params::{Params, is_token, unquote};
pub use response::Response;
pub use rewrite::{Added, Edit, Forwarded, ack_for, cancel_for, drop_first, without_first};
pub use sdp::{SrtpVerdict, srtp_verdict};
pub use transport::Transport;
pub use uri::{Host, Scheme, Uri, UriError, request_uri_form};
pub use via::Via;

#[cfg(test)]
mod tests;

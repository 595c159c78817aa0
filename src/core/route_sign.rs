//! Signed Record-Route: hotline routes an in-dialog request only within a dialog it
//! record-routed itself.
//!
//! The Record-Route URI hotline inserts into a dialog-forming request carries `hl=<mac>`, an
//! HMAC-SHA256 (keyed from the install's secret) over the Call-ID and the caller's From tag.
//! Both parties copy that URI into the Route of every in-dialog request; the caller's requests
//! carry its tag as From tag, the callee's as To tag, so either one may verify. Nothing is
//! stored: the check survives a restart in the middle of a call and costs no memory, and
//! forging a Route needs the secret, guessing a phone's Contact is no longer enough.

use ring::hmac;

use super::auth::{constant_time_eq, hex};
use crate::sip::{HeaderName, Message, NameAddr};

/// The URI parameter that carries the signature.
pub const PARAM: &str = "hl";

/// Bytes of the MAC kept: 128 bits, 32 hex digits in the URI.
const MAC_LEN: usize = 16;

/// Signs and verifies the dialogs hotline record-routes.
pub struct RouteSigner {
    key: hmac::Key,
}

impl RouteSigner {
    /// A signer whose key is derived from `secret`, apart from the nonce key.
    pub fn new(secret: &[u8; 32]) -> RouteSigner {
        let master = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let derived = hmac::sign(&master, b"hotline record-route signature");
        RouteSigner {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        }
    }

    /// The `hl` value for the dialog of a request with this Call-ID and caller's tag.
    pub fn sign(&self, call_id: &str, tag: &str) -> String {
        hex(&self.mac(call_id, tag))
    }

    /// Whether `request` is within a dialog this signer record-routed: its first Route entry
    /// carries a signature over its Call-ID and its From or To tag.
    pub fn is_signed(&self, request: &Message) -> bool {
        let Some(signature) = request
            .values(HeaderName::Route)
            .next()
            .and_then(NameAddr::parse)
            .and_then(|route| route.parsed_uri().ok())
            .and_then(|uri| uri.params.get(PARAM).flatten())
        else {
            return false;
        };
        let Some(call_id) = request.call_id() else {
            return false;
        };
        let tags = [request.from(), request.to()].map(|party| party.and_then(|p| p.tag()));
        tags.into_iter()
            .flatten()
            .any(|tag| self.verifies(signature, call_id, tag))
    }

    fn verifies(&self, signature: &str, call_id: &str, tag: &str) -> bool {
        signature.len() == 2 * MAC_LEN
            && constant_time_eq(
                &self.key,
                self.sign(call_id, tag).as_bytes(),
                signature.as_bytes(),
            )
    }

    fn mac(&self, call_id: &str, tag: &str) -> [u8; MAC_LEN] {
        let mut context = hmac::Context::with_key(&self.key);
        // Lengths first, so that no other split of the same bytes has the same MAC.
        context.update(&(call_id.len() as u64).to_be_bytes());
        context.update(call_id.as_bytes());
        context.update(tag.as_bytes());
        let mut truncated = [0; MAC_LEN];
        truncated.copy_from_slice(&context.sign().as_ref()[..MAC_LEN]);
        truncated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(route: &str, from_tag: &str, to_tag: &str) -> Message {
        in_call("c1", route, from_tag, to_tag)
    }

    fn in_call(call_id: &str, route: &str, from_tag: &str, to_tag: &str) -> Message {
        let text = format!(
            "BYE sip:b@[2001:db8::b] SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::a];branch=z9hG4bKx\r\n\
             Route: {route}\r\nFrom: <sip:a@d>;tag={from_tag}\r\nTo: <sip:b@d>;tag={to_tag}\r\n\
             Call-ID: {call_id}\r\nCSeq: 2 BYE\r\n\r\n"
        );
        Message::parse(text.as_bytes(), 64).unwrap()
    }

    #[test]
    fn either_party_of_a_signed_dialog_passes() {
        let signer = RouteSigner::new(&[3; 32]);
        let route = format!(
            "<sip:[2001:db8::1]:5060;lr;hl={}>",
            signer.sign("c1", "alice")
        );
        assert!(signer.is_signed(&request(&route, "alice", "bob")));
        assert!(signer.is_signed(&request(&route, "bob", "alice")));
        // A restart keeps the secret, and so the signatures.
        assert!(RouteSigner::new(&[3; 32]).is_signed(&request(&route, "alice", "bob")));
    }

    #[test]
    fn anything_else_fails() {
        let signer = RouteSigner::new(&[3; 32]);
        let mac = signer.sign("c1", "alice");
        let route = format!("<sip:[2001:db8::1]:5060;lr;hl={mac}>");
        assert!(!signer.is_signed(&request(&route, "mallory", "bob")));
        assert!(!signer.is_signed(&request("<sip:[2001:db8::1]:5060;lr>", "alice", "bob")));
        assert!(!signer.is_signed(&in_call("c2", &route, "alice", "bob")));
        assert!(!RouteSigner::new(&[4; 32]).is_signed(&request(&route, "alice", "bob")));
        let short = format!("<sip:[2001:db8::1]:5060;lr;hl={}>", &mac[..30]);
        assert!(!signer.is_signed(&request(&short, "alice", "bob")));
        // The Call-ID and tag boundary is part of what is signed.
        let shifted = signer.sign("c", "1alice");
        assert_ne!(shifted, mac);
    }
}

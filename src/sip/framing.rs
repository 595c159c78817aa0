//! Message boundaries on stream transports (RFC 3261 §18.3): the header section, then exactly
//! `Content-Length` bytes of body. Keep-alives of RFC 5626 §4.4.1 come between messages.

use super::message::find_head_end;

/// What the front of a stream buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A CRLF CRLF ping: consume this many bytes and answer with one CRLF.
    Ping(usize),
    /// A lone CRLF (a pong, or padding between messages): consume and ignore.
    Pong(usize),
    /// A whole message of this many bytes.
    Message(usize),
    /// More bytes are needed.
    Incomplete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("message larger than the limit")]
    TooLarge,
    /// The header section (this many bytes) has no Content-Length: it can still be answered 400
    /// before the connection is closed.
    #[error("no Content-Length on a stream transport")]
    MissingContentLength(usize),
    #[error("malformed Content-Length")]
    BadContentLength,
}

/// Finds the next frame at the start of `buf`. An error means the stream cannot be resynchronised
/// and the connection should be closed.
pub fn next_frame(buf: &[u8], max_message: usize) -> Result<Frame, FramingError> {
    Framer::default().next(buf, max_message)
}

/// Frames one stream, remembering what earlier calls found: a message that arrives in many reads
/// is scanned once, not once per read (which made a message dribbled a byte at a time cost time
/// quadratic in its length).
#[derive(Debug, Default)]
pub struct Framer {
    /// Where the line being received starts: the bytes before it hold no end of the header
    /// section.
    scanned: usize,
    /// The length of the message at the front, once its header section is complete.
    total: Option<usize>,
}

impl Framer {
    /// Like [`next_frame`], for a buffer that since the previous call only grew at its end, or
    /// lost the frame that call returned from its front.
    pub fn next(&mut self, buf: &[u8], max_message: usize) -> Result<Frame, FramingError> {
        let frame = self.find(buf, max_message);
        if !matches!(frame, Ok(Frame::Incomplete)) {
            *self = Framer::default();
        }
        frame
    }

    fn find(&mut self, buf: &[u8], max_message: usize) -> Result<Frame, FramingError> {
        if let Some(total) = self.total {
            return Ok(match buf.len() >= total {
                true => Frame::Message(total),
                false => Frame::Incomplete,
            });
        }
        if buf.starts_with(b"\r\n") {
            return Ok(match buf.get(2) {
                None => Frame::Incomplete,
                Some(b'\r') => match buf.get(3) {
                    None => Frame::Incomplete,
                    Some(b'\n') => Frame::Ping(4),
                    Some(_) => Frame::Pong(2),
                },
                Some(_) => Frame::Pong(2),
            });
        }
        let window = &buf[..buf.len().min(max_message)];
        let from = self.scanned.min(window.len());
        let Some((head_len, body_start)) = find_head_end(&window[from..]) else {
            self.scanned = window[from..]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(from, |p| from + p + 1);
            return if buf.len() >= max_message {
                Err(FramingError::TooLarge)
            } else {
                Ok(Frame::Incomplete)
            };
        };
        let (head_len, body_start) = (from + head_len, from + body_start);
        let length = content_length(&window[..head_len])?
            .ok_or(FramingError::MissingContentLength(body_start))?;
        let total = body_start
            .checked_add(length)
            .filter(|&t| t <= max_message)
            .ok_or(FramingError::TooLarge)?;
        Ok(if buf.len() >= total {
            Frame::Message(total)
        } else {
            self.total = Some(total);
            Frame::Incomplete
        })
    }
}

fn content_length(head: &[u8]) -> Result<Option<usize>, FramingError> {
    let mut found = None;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii_end();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = line[colon + 1..].trim_ascii();
        if value.is_empty() || value.len() > 9 || !value.iter().all(u8::is_ascii_digit) {
            return Err(FramingError::BadContentLength);
        }
        let length = value
            .iter()
            .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
        if found.is_some_and(|f| f != length) {
            return Err(FramingError::BadContentLength);
        }
        found = Some(length);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTER: &[u8] = b"REGISTER sip:[::1] SIP/2.0\r\nVia: SIP/2.0/TCP [::1]:5000;branch=z9hG4bK1\r\nContent-Length: 4\r\n\r\nbody";

    #[test]
    fn whole_and_partial_messages() {
        assert_eq!(
            next_frame(REGISTER, 4096),
            Ok(Frame::Message(REGISTER.len()))
        );
        for cut in 0..REGISTER.len() {
            assert_eq!(
                next_frame(&REGISTER[..cut], 4096),
                Ok(Frame::Incomplete),
                "cut at {cut}"
            );
        }
        let mut two = REGISTER.to_vec();
        two.extend_from_slice(REGISTER);
        assert_eq!(next_frame(&two, 4096), Ok(Frame::Message(REGISTER.len())));
    }

    #[test]
    fn a_framer_fed_a_byte_at_a_time_finds_the_same_frames() {
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(REGISTER);
        stream.extend_from_slice(b"\r\n");
        stream.extend_from_slice(REGISTER);
        let mut framer = Framer::default();
        let mut buffer = Vec::new();
        let mut frames = Vec::new();
        for &byte in &stream {
            buffer.push(byte);
            loop {
                let frame = framer.next(&buffer, 4096).unwrap();
                let length = match frame {
                    Frame::Incomplete => break,
                    Frame::Ping(n) | Frame::Pong(n) | Frame::Message(n) => n,
                };
                frames.push(frame);
                buffer.drain(..length);
            }
        }
        let message = Frame::Message(REGISTER.len());
        assert_eq!(frames, [Frame::Ping(4), message, Frame::Pong(2), message]);
        assert!(buffer.is_empty());
    }

    #[test]
    fn keep_alives() {
        assert_eq!(next_frame(b"\r\n\r\n", 4096), Ok(Frame::Ping(4)));
        assert_eq!(next_frame(b"\r\n", 4096), Ok(Frame::Incomplete));
        assert_eq!(next_frame(b"\r\n\r", 4096), Ok(Frame::Incomplete));
        assert_eq!(next_frame(b"\r\nREG", 4096), Ok(Frame::Pong(2)));
    }

    #[test]
    fn limits_and_errors() {
        assert_eq!(next_frame(REGISTER, 40), Err(FramingError::TooLarge));
        assert_eq!(next_frame(&[b'A'; 100], 50), Err(FramingError::TooLarge));
        assert_eq!(next_frame(&[b'A'; 30], 50), Ok(Frame::Incomplete));
        let huge = b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 999999999\r\n\r\n";
        assert_eq!(next_frame(huge, 4096), Err(FramingError::TooLarge));
        let none = b"OPTIONS sip:x SIP/2.0\r\nCall-ID: a\r\n\r\n";
        assert_eq!(
            next_frame(none, 4096),
            Err(FramingError::MissingContentLength(none.len()))
        );
        let bad = b"OPTIONS sip:x SIP/2.0\r\nl: -1\r\n\r\n";
        assert_eq!(next_frame(bad, 4096), Err(FramingError::BadContentLength));
        let disagree = b"OPTIONS sip:x SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nab";
        assert_eq!(
            next_frame(disagree, 4096),
            Err(FramingError::BadContentLength)
        );
    }
}

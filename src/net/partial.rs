//! Slow and dribbling senders on streams. A message must be whole within
//! `partial_message_timeout` of its first byte, however it trickles in; a connection is read at
//! a bounded pace; and a message that arrives in far more TCP segments than its size needs is
//! refused. Each segment costs hotline a wake-up (about 1 µs here, 10 µs when every one was also
//! read), so one host sending a byte per segment could keep a core busy without ever tripping
//! the flood limits, which count messages.

use std::os::fd::RawFd;
use std::time::Duration;

use tokio::time::Instant;

/// Reads of one connection per second, after a burst of as many. Whatever the size of the
/// segments a sender dribbles, a connection costs at most this many reads a second: between
/// two reads the kernel gathers what arrived. A phone needs one or two reads per message.
const READS_PER_SECOND: u32 = 64;

/// Segments a message may take beyond one per [`BYTES_PER_SEGMENT`] of it: its TCP handshake
/// and acknowledgements, a TLS record per header line from a phone that writes line by line.
const SPARE_SEGMENTS: u32 = 32;

/// The smallest average segment a message may come in (beyond [`SPARE_SEGMENTS`]). A phone
/// sends a message in one write, so in segments of the path's MSS, a thousand bytes or more.
const BYTES_PER_SEGMENT: u32 = 32;

/// The pace of one connection's reads: [`READS_PER_SECOND`] after a burst of as many (a
/// generic cell rate algorithm: each read moves `due` one interval on, and may come up to a
/// burst's worth of intervals early).
#[derive(Default)]
pub struct Pace {
    due: Option<Instant>,
}

impl Pace {
    /// Counts a read about to be made at `now`; returns when it may be made, if later.
    pub fn next(&mut self, now: Instant) -> Option<Instant> {
        let interval = Duration::from_secs(1) / READS_PER_SECOND;
        let due = self.due.map_or(now, |due| due.max(now));
        self.due = Some(due + interval);
        let earliest = due.checked_sub(interval * (READS_PER_SECOND - 1))?;
        (earliest > now).then_some(earliest)
    }
}

/// The incomplete message at the front of a connection's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Partial {
    /// When its first byte arrived.
    pub since: Instant,
    /// Segments the connection had received by then, where the kernel tells.
    segments: Option<u32>,
}

impl Partial {
    /// A message whose first byte came with the read at `since` on socket `fd`.
    pub fn new(since: Instant, fd: RawFd) -> Partial {
        Partial {
            since,
            segments: segments_received(fd),
        }
    }

    /// Whether the message, `bytes` long so far, came in more segments than that needs.
    pub fn is_dribbled(&self, fd: RawFd, bytes: usize) -> bool {
        let (Some(first), Some(now)) = (self.segments, segments_received(fd)) else {
            return false;
        };
        too_many_segments(now.wrapping_sub(first), bytes)
    }
}

fn too_many_segments(segments: u32, bytes: usize) -> bool {
    let needed = u32::try_from(bytes).unwrap_or(u32::MAX) / BYTES_PER_SEGMENT;
    segments > SPARE_SEGMENTS.saturating_add(needed)
}

/// `struct tcp_info` (linux/tcp.h) up to `tcpi_segs_in`, which Linux 4.2 added at offset 140.
const TCP_INFO_SEGS_IN: usize = 140;
const IPPROTO_TCP: i32 = 6;
const TCP_INFO: i32 = 11;

unsafe extern "C" {
    /// getsockopt(2) of the C library (glibc or musl) that std links anyway.
    fn getsockopt(fd: i32, level: i32, name: i32, value: *mut u8, length: *mut u32) -> i32;
}

/// Segments received on TCP socket `fd` so far, or `None` where the kernel does not say.
fn segments_received(fd: RawFd) -> Option<u32> {
    let mut info = [0u8; TCP_INFO_SEGS_IN + 4];
    let mut length = info.len() as u32;
    // SAFETY: the kernel writes at most `length` bytes into `info` and updates `length`.
    let status = unsafe { getsockopt(fd, IPPROTO_TCP, TCP_INFO, info.as_mut_ptr(), &mut length) };
    if status != 0 || (length as usize) < info.len() {
        return None;
    }
    let field = info[TCP_INFO_SEGS_IN..].try_into().ok()?;
    Some(u32::from_ne_bytes(field))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_burst_of_reads_then_a_steady_pace() {
        let mut pace = Pace::default();
        let start = Instant::now();
        for _ in 0..READS_PER_SECOND {
            assert_eq!(pace.next(start), None);
        }
        let interval = Duration::from_secs(1) / READS_PER_SECOND;
        assert_eq!(pace.next(start), Some(start + interval));
        // A second later the burst is back.
        let later = start + Duration::from_secs(2);
        for _ in 0..READS_PER_SECOND {
            assert_eq!(pace.next(later), None);
        }
    }

    #[test]
    fn a_message_may_not_take_a_segment_per_byte() {
        assert!(!too_many_segments(12, 16_384), "in segments of 1400 bytes");
        assert!(
            !too_many_segments(40, 1_500),
            "a phone writing line by line"
        );
        assert!(!too_many_segments(SPARE_SEGMENTS, 0));
        assert!(too_many_segments(SPARE_SEGMENTS + 1, 31));
        assert!(too_many_segments(100, 100), "one byte per segment");
    }

    #[test]
    fn the_kernel_counts_segments_received() {
        let listener = std::net::TcpListener::bind("[::1]:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.set_nodelay(true).unwrap();
        let (server, _) = listener.accept().unwrap();
        let before = segments_received(server.as_raw_fd()).expect("Linux 4.2 or later");
        client.write_all(b"x").unwrap();
        let mut byte = [0];
        std::io::Read::read_exact(&mut &server, &mut byte).unwrap();
        let after = segments_received(server.as_raw_fd()).unwrap();
        assert!(after > before, "{before} then {after}");
        assert_eq!(segments_received(-1), None);
    }
}

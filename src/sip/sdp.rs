//! The SRTP policy on SDP offers and answers (RFC 8866, RFC 3264): every active media stream must
//! be SRTP. The body is parsed line by line and judged per `m=` section, so that words in free
//! text (`s=`, `i=`) never pass or fail a call.

/// Lines per body. Real offers have 10 to 60; the cap bounds the work an outsider can cause.
const MAX_LINES: usize = 512;
/// `m=` lines per body. Phones send one to three; WebRTC bundles rarely more than a dozen.
const MAX_MEDIA: usize = 32;

/// Transport protocols whose RTP is SRTP: RTP/SAVP (RFC 3711), RTP/SAVPF (RFC 5124) and their
/// DTLS-SRTP forms (RFC 5764).
const SRTP_PROTOS: [&str; 4] = [
    "RTP/SAVP",
    "RTP/SAVPF",
    "UDP/TLS/RTP/SAVP",
    "UDP/TLS/RTP/SAVPF",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SrtpVerdict {
    /// No SDP body at all (no body, or a body whose Content-Type is not application/sdp).
    NoSdp,
    /// Every active media stream is SRTP. This includes an SDP whose streams are all disabled
    /// (every port 0): it carries no media, so there is nothing to leak (RFC 3264 §8.2 uses it to
    /// remove streams).
    Secure,
    /// The first insecure active stream, e.g. media "audio", proto "RTP/AVP", index 0 — for the
    /// log line. `index` counts every `m=` line, disabled ones too, as RFC 3264 matches offer and
    /// answer streams by position; `media` and `proto` are as written.
    Insecure {
        index: usize,
        media: String,
        proto: String,
    },
    /// Not parseable as SDP, or an SDP without any `m=` line (valid RFC 8866, but an offer or
    /// answer without media is nothing a call can use), with the reason for the log.
    Malformed(&'static str),
}

/// `content_type` is the Content-Type header value if any (parameters like `;charset=` allowed,
/// case-insensitive, whitespace tolerated).
///
/// Parsing is strict where the verdict depends on it (`v=0` first, every line `<letter>=<value>`,
/// well-formed `m=` lines) and lenient elsewhere: line order, unknown types and the contents of
/// other lines are not checked, repeated spaces in `m=` lines and blank lines at the end are
/// tolerated, since rejecting a phone's quirk would only fail calls.
pub fn srtp_verdict(content_type: Option<&str>, body: &[u8]) -> SrtpVerdict {
    if body.is_empty() || !content_type.is_some_and(is_sdp_content_type) {
        return SrtpVerdict::NoSdp;
    }
    let sections = match media_sections(body) {
        Ok(sections) => sections,
        Err(reason) => return SrtpVerdict::Malformed(reason),
    };
    match sections
        .iter()
        .enumerate()
        .find(|(_, section)| section.port != 0 && !section.is_srtp())
    {
        Some((index, section)) => SrtpVerdict::Insecure {
            index,
            media: section.media.to_owned(),
            proto: section.proto.to_owned(),
        },
        None => SrtpVerdict::Secure,
    }
}

/// `application/sdp`, ignoring parameters, case and the whitespace RFC 3261 allows around `/`.
fn is_sdp_content_type(value: &str) -> bool {
    let media_type = value
        .split_once(';')
        .map_or(value, |(media_type, _)| media_type);
    media_type.split_once('/').is_some_and(|(kind, subtype)| {
        kind.trim().eq_ignore_ascii_case("application")
            && subtype.trim().eq_ignore_ascii_case("sdp")
    })
}

/// One `m=` line and what its section says about encryption.
struct MediaSection<'a> {
    media: &'a str,
    port: u16,
    proto: &'a str,
    /// An `a=crypto:` line (SDES, RFC 4568) in this section. Session-level ones do not count:
    /// crypto is a media-level attribute.
    crypto: bool,
}

impl MediaSection<'_> {
    fn is_srtp(&self) -> bool {
        self.crypto
            || SRTP_PROTOS
                .iter()
                .any(|proto| proto.eq_ignore_ascii_case(self.proto))
    }
}

fn media_sections(body: &[u8]) -> Result<Vec<MediaSection<'_>>, &'static str> {
    let text = std::str::from_utf8(body).map_err(|_| "not UTF-8")?;
    let mut lines = text
        .trim_end_matches(['\r', '\n'])
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line));
    if lines.next() != Some("v=0") {
        return Err("first line is not v=0");
    }
    let mut sections: Vec<MediaSection> = Vec::new();
    for (number, line) in (2..).zip(lines) {
        if number > MAX_LINES {
            return Err("too many lines");
        }
        let (kind, value) = split_line(line).ok_or("line is not <type>=<value>")?;
        match kind {
            b'm' => {
                if sections.len() == MAX_MEDIA {
                    return Err("too many media sections");
                }
                sections.push(parse_media_line(value).ok_or("malformed m= line")?);
            }
            b'a' => {
                if let Some(section) = sections.last_mut()
                    && is_crypto_attribute(value)
                {
                    section.crypto = true;
                }
            }
            _ => {}
        }
    }
    if sections.is_empty() {
        return Err("no m= line");
    }
    Ok(sections)
}

/// `<type>=<value>` with a single lowercase letter as type.
fn split_line(line: &str) -> Option<(u8, &str)> {
    match line.as_bytes() {
        [kind @ b'a'..=b'z', b'=', ..] => Some((*kind, &line[2..])),
        _ => None,
    }
}

/// `<media> <port>[/<count>] <proto> <fmt> …` (RFC 8866 §5.14).
fn parse_media_line(value: &str) -> Option<MediaSection<'_>> {
    let mut fields = value.split(' ').filter(|field| !field.is_empty());
    let media = fields.next().filter(|media| is_token(media))?;
    let port = fields.next().and_then(parse_port)?;
    let proto = fields
        .next()
        .filter(|proto| proto.split('/').all(is_token))?;
    let first_format = fields.next()?;
    (is_token(first_format) && fields.all(is_token)).then_some(MediaSection {
        media,
        port,
        proto,
        crypto: false,
    })
}

/// `<port>[/<count>]`, where the count of consecutive ports is a positive integer.
fn parse_port(field: &str) -> Option<u16> {
    let (port, count) = match field.split_once('/') {
        Some((port, count)) => (port, Some(count)),
        None => (field, None),
    };
    if let Some(count) = count
        && !(count.starts_with(|c: char| c != '0') && is_digits(count))
    {
        return None;
    }
    if !is_digits(port) {
        return None;
    }
    port.parse().ok()
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// `a=crypto:<tag> <suite> <key-params>`; the keys are the phones' business, not the proxy's.
fn is_crypto_attribute(value: &str) -> bool {
    value
        .split_once(':')
        .is_some_and(|(name, _)| name.eq_ignore_ascii_case("crypto"))
}

/// `token` of RFC 8866 §9, which allows more punctuation than SIP's.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'..=b'\'' | b'*' | b'+' | b'-' | b'.' | b'^'..=b'`' | b'{'..=b'~'
                )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: Option<&str> = Some("application/sdp");

    fn verdict(body: &str) -> SrtpVerdict {
        srtp_verdict(SDP, body.as_bytes())
    }

    fn insecure(index: usize, media: &str, proto: &str) -> SrtpVerdict {
        SrtpVerdict::Insecure {
            index,
            media: media.to_owned(),
            proto: proto.to_owned(),
        }
    }

    const YEALINK_SDES: &str = "v=0\r\n\
o=- 20034 20034 IN IP6 2001:db8::5\r\n\
s=SDP data\r\n\
c=IN IP6 2001:db8::5\r\n\
t=0 0\r\n\
m=audio 11780 RTP/SAVP 0 8 18 9 101\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n\
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:eW0cGQ7JMdQuRuGA7HxKp/7qJ4T4yIQc0yQjG5Ft\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:9 G722/8000\r\n\
a=fmtp:101 0-15\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

    const GRANDSTREAM_SDES: &str = "v=0\r\n\
o=1001 8000 8000 IN IP6 2001:db8::17\r\n\
s=SIP Call\r\n\
c=IN IP6 2001:db8::17\r\n\
t=0 0\r\n\
m=audio 5004 RTP/SAVP 0 8 4 18 9 97 2 123 101\r\n\
a=sendrecv\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:4 G723/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:97 iLBC/8000\r\n\
a=fmtp:97 mode=20\r\n\
a=rtpmap:2 G726-32/8000\r\n\
a=rtpmap:123 opus/48000/2\r\n\
a=fmtp:123 maxplaybackrate=16000; sprop-maxcapturerate=16000; maxaveragebitrate=20000; useinbandfec=1\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:6I2dGgGOoP8tL3Xe1ObvVXHx2nm7xxI3nOL4q0rj\r\n";

    /// Linphone with media encryption "SRTP" but not mandatory: plain `RTP/AVP` carrying SDES
    /// keys, as many phones do for best-effort SRTP.
    const LINPHONE_BEST_EFFORT: &str = "v=0\r\n\
o=1002 3013 1881 IN IP6 2001:db8::22\r\n\
s=Talk\r\n\
c=IN IP6 2001:db8::22\r\n\
t=0 0\r\n\
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n\
a=record:off\r\n\
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 useinbandfec=1\r\n\
a=rtpmap:97 speex/16000\r\n\
a=fmtp:97 vbr=on\r\n\
a=rtpmap:98 speex/8000\r\n\
a=fmtp:98 vbr=on\r\n\
a=fmtp:18 annexb=yes\r\n\
a=rtpmap:101 telephone-event/48000\r\n\
a=rtpmap:99 telephone-event/16000\r\n\
a=rtpmap:100 telephone-event/8000\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:aRnDkRMpBDnROaDUu9uQAjU7yPCT1Rf5hk3ZeRbQ\r\n\
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:9eKMVbKhjqNxZxl8hyAoC7RRyRwYsmvNv93GoI8A\r\n\
a=crypto:3 AES_256_CM_HMAC_SHA1_80 inline:Y1BBcmjwUiXuXHO4Qdvnl3ajBqNS2uOSA4d5h0jYhCjAGkCV+JVhl2VBpYmVLQ==\r\n\
a=rtcp-fb:* trr-int 1000\r\n\
a=rtcp-fb:* ccm tmmbr\r\n";

    const BARESIP_SDES: &str = "v=0\r\n\
o=- 1823672261 3371295883 IN IP6 2001:db8::31\r\n\
s=-\r\n\
c=IN IP6 2001:db8::31\r\n\
t=0 0\r\n\
a=tool:baresip 3.16.0\r\n\
m=audio 10002 RTP/SAVP 96 9 0 8 101\r\n\
b=AS:128\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 stereo=1;sprop-stereo=1\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=sendrecv\r\n\
a=label:1\r\n\
a=ssrc:2405418423 cname:sip:1003@example.org\r\n\
a=rtcp-mux\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:9NB5PAwVRCw5Nb2Wm6K8h4tEC3Yxi3V3lM0mYdLD\r\n\
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:hXXMFQ6yrOLGTldWxYzfrkLeZIzdUOnTDRTgKgvV\r\n\
a=ptime:20\r\n";

    const BARESIP_DTLS: &str = "v=0\r\n\
o=- 2701530571 1468553473 IN IP6 2001:db8::31\r\n\
s=-\r\n\
c=IN IP6 2001:db8::31\r\n\
t=0 0\r\n\
a=tool:baresip 3.16.0\r\n\
a=fingerprint:sha-256 3D:5B:7A:1C:0E:9F:44:21:8B:C2:6D:F0:13:A7:55:E8:90:2B:4C:7F:D1:66:08:B3:AE:19:5F:C4:72:0D:E3:81\r\n\
m=audio 10004 UDP/TLS/RTP/SAVPF 96 9 0 8 101\r\n\
b=AS:128\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 stereo=1;sprop-stereo=1\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=sendrecv\r\n\
a=rtcp-mux\r\n\
a=setup:actpass\r\n\
a=ptime:20\r\n";

    const WEBRTC: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP6 ::1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
a=extmap-allow-mixed\r\n\
a=msid-semantic: WMS stream0\r\n\
m=audio 50334 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
c=IN IP6 2001:db8::40\r\n\
a=rtcp:9 IN IP6 ::\r\n\
a=candidate:1467250027 1 udp 2122262783 2001:db8::40 50334 typ host generation 0 network-id 2\r\n\
a=ice-ufrag:EsAw\r\n\
a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=sendrecv\r\n\
a=msid:stream0 audio0\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\n\
a=fmtp:63 111/111\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:13 CN/8000\r\n\
a=rtpmap:110 telephone-event/48000\r\n\
a=rtpmap:126 telephone-event/8000\r\n\
a=ssrc:1001 cname:4TOk42mSjXCkVIa6\r\n\
m=video 50334 UDP/TLS/RTP/SAVPF 96 97 102 103\r\n\
c=IN IP6 2001:db8::40\r\n\
a=rtcp:9 IN IP6 ::\r\n\
a=ice-ufrag:EsAw\r\n\
a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n\
a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F\r\n\
a=setup:actpass\r\n\
a=mid:1\r\n\
a=sendrecv\r\n\
a=rtcp-mux\r\n\
a=rtcp-rsize\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:96 goog-remb\r\n\
a=rtcp-fb:96 nack\r\n\
a=rtcp-fb:96 nack pli\r\n\
a=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\n\
a=rtpmap:102 H264/90000\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
a=rtpmap:103 rtx/90000\r\n\
a=fmtp:103 apt=102\r\n";

    const PLAIN_RTP: &str = "v=0\r\n\
o=- 20035 20035 IN IP6 2001:db8::5\r\n\
s=SDP data\r\n\
c=IN IP6 2001:db8::5\r\n\
t=0 0\r\n\
m=audio 11782 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=sendrecv\r\n";

    const HEAD: &str = "v=0\r\n\
o=- 1 1 IN IP6 2001:db8::5\r\n\
s=-\r\n\
c=IN IP6 2001:db8::5\r\n\
t=0 0\r\n";

    const SRTP_AUDIO: &str = "m=audio 4000 RTP/SAVP 0\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n";

    #[test]
    fn phones_with_srtp_are_secure() {
        for offer in [
            YEALINK_SDES,
            GRANDSTREAM_SDES,
            LINPHONE_BEST_EFFORT,
            BARESIP_SDES,
            BARESIP_DTLS,
            WEBRTC,
        ] {
            assert_eq!(verdict(offer), SrtpVerdict::Secure, "{offer}");
        }
    }

    #[test]
    fn plain_rtp_is_insecure() {
        assert_eq!(verdict(PLAIN_RTP), insecure(0, "audio", "RTP/AVP"));
    }

    #[test]
    fn secure_audio_with_insecure_video() {
        let video = "m=video 4002 RTP/AVP 31\r\na=rtpmap:31 H261/90000\r\n";
        assert_eq!(
            verdict(&format!("{HEAD}{SRTP_AUDIO}{video}")),
            insecure(1, "video", "RTP/AVP")
        );
    }

    #[test]
    fn disabled_streams_are_ignored() {
        let video = "m=video 0 RTP/AVP 31\r\n";
        assert_eq!(
            verdict(&format!("{HEAD}{SRTP_AUDIO}{video}")),
            SrtpVerdict::Secure
        );
        // Nothing is sent when every stream is disabled: acceptable.
        assert_eq!(
            verdict(&format!("{HEAD}m=audio 0 RTP/AVP 0\r\n")),
            SrtpVerdict::Secure
        );
    }

    #[test]
    fn crypto_counts_only_in_its_own_media_section() {
        let session_crypto = format!(
            "{HEAD}a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n\
             m=audio 4000 RTP/AVP 0\r\n"
        );
        assert_eq!(verdict(&session_crypto), insecure(0, "audio", "RTP/AVP"));
        let previous_section = format!(
            "{HEAD}m=audio 4000 RTP/AVP 0\r\n\
             a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n\
             m=video 4002 RTP/AVP 31\r\n"
        );
        assert_eq!(verdict(&previous_section), insecure(1, "video", "RTP/AVP"));
    }

    #[test]
    fn free_text_never_decides() {
        let body = "v=0\r\n\
o=- 1 1 IN IP6 2001:db8::5\r\n\
s=RTP/SAVP test\r\n\
i=a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x UDP/TLS/RTP/SAVPF\r\n\
c=IN IP6 2001:db8::5\r\n\
t=0 0\r\n\
m=audio 4000 RTP/AVP 0\r\n\
i=RTP/SAVP a=crypto:1\r\n\
a=rtpmap:0 PCMU/8000\r\n";
        assert_eq!(verdict(body), insecure(0, "audio", "RTP/AVP"));
    }

    #[test]
    fn proto_is_case_insensitive_and_reported_as_written() {
        assert_eq!(
            verdict(&format!("{HEAD}m=audio 4000 rtp/savpf 0\r\n")),
            SrtpVerdict::Secure
        );
        assert_eq!(
            verdict(&format!("{HEAD}m=audio 4000 rtp/avp 0\r\n")),
            insecure(0, "audio", "rtp/avp")
        );
        assert_eq!(
            verdict(&format!("{HEAD}m=image 4000 udptl t38\r\n")),
            insecure(0, "image", "udptl")
        );
    }

    #[test]
    fn line_endings_ports_and_spacing() {
        let lf = YEALINK_SDES.replace("\r\n", "\n");
        assert_eq!(verdict(&lf), SrtpVerdict::Secure);
        assert_eq!(
            verdict(&format!("{YEALINK_SDES}\r\n\r\n")),
            SrtpVerdict::Secure
        );
        assert_eq!(verdict(YEALINK_SDES.trim_end()), SrtpVerdict::Secure);
        assert_eq!(
            verdict(&format!("{HEAD}m=audio  4000/2 RTP/SAVP 0 8 \r\n")),
            SrtpVerdict::Secure
        );
        assert_eq!(
            verdict(&format!("{HEAD}m=audio 65535 RTP/SAVP 0\r\n")),
            SrtpVerdict::Secure
        );
    }

    #[test]
    fn no_sdp() {
        assert_eq!(srtp_verdict(SDP, b""), SrtpVerdict::NoSdp);
        assert_eq!(srtp_verdict(None, b""), SrtpVerdict::NoSdp);
        let body = PLAIN_RTP.as_bytes();
        assert_eq!(srtp_verdict(Some("text/plain"), body), SrtpVerdict::NoSdp);
        assert_eq!(srtp_verdict(None, body), SrtpVerdict::NoSdp);
        assert_eq!(
            srtp_verdict(Some("multipart/mixed;boundary=x"), body),
            SrtpVerdict::NoSdp
        );
        assert_eq!(
            srtp_verdict(Some("application/sdpx"), body),
            SrtpVerdict::NoSdp
        );
    }

    #[test]
    fn content_type_variants_are_parsed() {
        let body = PLAIN_RTP.as_bytes();
        for content_type in [
            "application/SDP; charset=utf-8",
            "Application/Sdp",
            " application / sdp ",
            "application/sdp;charset=\"UTF-8\"",
        ] {
            assert_eq!(
                srtp_verdict(Some(content_type), body),
                insecure(0, "audio", "RTP/AVP"),
                "{content_type}"
            );
        }
    }

    #[test]
    fn malformed() {
        let m = |reason| SrtpVerdict::Malformed(reason);
        assert_eq!(verdict("garbage"), m("first line is not v=0"));
        assert_eq!(verdict("\r\n"), m("first line is not v=0"));
        assert_eq!(
            verdict(&PLAIN_RTP["v=0\r\n".len()..]),
            m("first line is not v=0")
        );
        assert_eq!(verdict("v=1\r\n"), m("first line is not v=0"));
        assert_eq!(verdict(HEAD), m("no m= line"));
        for bad in [
            "m=audio x RTP/SAVP 0",
            "m=audio 99999 RTP/SAVP 0",
            "m=audio -1 RTP/SAVP 0",
            "m=audio +4000 RTP/SAVP 0",
            "m=audio 4000/0 RTP/SAVP 0",
            "m=audio 4000/ RTP/SAVP 0",
            "m=audio 4000",
            "m=audio 4000 RTP/SAVP",
            "m=audio 4000 RTP//SAVP 0",
            "m=audio 4000 RTP/SAVP/ 0",
            "m=aud:io 4000 RTP/SAVP 0",
            "m=",
        ] {
            assert_eq!(
                verdict(&format!("{HEAD}{bad}\r\n")),
                m("malformed m= line"),
                "{bad}"
            );
        }
        for bad in ["no equals sign", "", "A=x", "ab=x", " a=x", "=x"] {
            assert_eq!(
                verdict(&format!("{HEAD}{bad}\r\n{SRTP_AUDIO}")),
                m("line is not <type>=<value>"),
                "{bad:?}"
            );
        }
        let mut latin1 = YEALINK_SDES.as_bytes().to_vec();
        latin1[20] = 0xe9;
        assert_eq!(srtp_verdict(SDP, &latin1), m("not UTF-8"));
    }

    #[test]
    fn bounded_work() {
        let many_lines = format!("{HEAD}{SRTP_AUDIO}{}", "a=x\r\n".repeat(10_000));
        assert_eq!(
            verdict(&many_lines),
            SrtpVerdict::Malformed("too many lines")
        );
        let at_cap = format!("{HEAD}{SRTP_AUDIO}{}", "a=x\r\n".repeat(MAX_LINES - 7));
        assert_eq!(verdict(&at_cap), SrtpVerdict::Secure);
        let over_cap = format!("{at_cap}a=x\r\n");
        assert_eq!(verdict(&over_cap), SrtpVerdict::Malformed("too many lines"));

        let media = |n| format!("{HEAD}{}", "m=audio 4000 RTP/SAVP 0\r\n".repeat(n));
        assert_eq!(verdict(&media(MAX_MEDIA)), SrtpVerdict::Secure);
        assert_eq!(
            verdict(&media(MAX_MEDIA + 1)),
            SrtpVerdict::Malformed("too many media sections")
        );
    }

    /// A cut or damaged SRTP offer never panics, and a cut one is never mistaken for plain RTP.
    #[test]
    fn truncated_and_damaged_offers() {
        for offer in [
            YEALINK_SDES,
            GRANDSTREAM_SDES,
            BARESIP_SDES,
            BARESIP_DTLS,
            WEBRTC,
        ] {
            let bytes = offer.as_bytes();
            for end in 0..=bytes.len() {
                let verdict = srtp_verdict(SDP, &bytes[..end]);
                assert!(!matches!(verdict, SrtpVerdict::Insecure { .. }), "{end}");
            }
            for at in 0..bytes.len() {
                for byte in [b'\r', b'\n', b' ', b'=', b'/', b'0', 0x00, 0xff] {
                    let mut damaged = bytes.to_vec();
                    damaged[at] = byte;
                    srtp_verdict(SDP, &damaged);
                }
            }
        }
        for end in 0..=LINPHONE_BEST_EFFORT.len() {
            srtp_verdict(SDP, &LINPHONE_BEST_EFFORT.as_bytes()[..end]);
        }
    }
}

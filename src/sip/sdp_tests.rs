//! The SRTP verdict on real phones' SDP and on what an attacker or a broken phone sends.

use super::*;

const SDP: Option<&str> = Some("application/sdp");

fn verdict(body: &str) -> SrtpVerdict {
    srtp_verdict(SDP, body.as_bytes())
}

fn insecure(index: usize, media: &str, proto: &str, reason: &'static str) -> SrtpVerdict {
    SrtpVerdict::Insecure {
        index,
        media: media.to_owned(),
        proto: proto.to_owned(),
        reason,
    }
}

const PLAIN: &str = "not an SRTP profile";
const NO_SDES: &str = "SRTP profile without a=crypto or a=key-mgmt";
const NO_FINGERPRINT: &str = "DTLS-SRTP profile without a=fingerprint";

/// `offer` with every line that starts with `prefix` removed.
fn without(offer: &str, prefix: &str) -> String {
    offer
        .split_inclusive("\r\n")
        .filter(|line| !line.starts_with(prefix))
        .collect()
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

/// Yealink with SRTP "Optional": its offer on plain `RTP/AVP`, keys included, as many phones
/// do for best-effort SRTP (Linphone 5.1 offers `RTP/SAVP` even when SRTP is not mandatory).
fn best_effort() -> String {
    YEALINK_SDES.replace("RTP/SAVP", "RTP/AVP")
}

/// Linphone (linphonec 5.1.65, Debian 12) with media encryption "SRTP" mandatory, as it
/// reached a phone through hotline in tests/linphone.rs.
const LINPHONE_SDES: &str = "v=0\r\n\
o=1002 3446 3173 IN IP6 ::1\r\n\
s=Talk\r\n\
c=IN IP6 ::1\r\n\
t=0 0\r\n\
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n\
m=audio 53559 RTP/SAVP 96 97 98 0 8 18 99 100 101\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 useinbandfec=1\r\n\
a=rtpmap:97 speex/16000\r\n\
a=fmtp:97 vbr=on\r\n\
a=rtpmap:98 speex/8000\r\n\
a=fmtp:98 vbr=on\r\n\
a=fmtp:18 annexb=yes\r\n\
a=rtpmap:99 telephone-event/48000\r\n\
a=rtpmap:100 telephone-event/16000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:ffkCRWuSVJa43AQHmToNFQDNM6GcSCJvFar5ShSM\r\n\
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:LRpubsr5xmFX7uCFR0vc5koy200FUO+1ZIuEwKeo\r\n\
a=crypto:3 AES_256_CM_HMAC_SHA1_80 inline:z0aMXvxuSPnfVMMWJauTltPIThLMK3gPRdQdHAtBmh77WK7xtl3w9gDTwr+Iig==\r\n\
a=crypto:4 AES_256_CM_HMAC_SHA1_32 inline:dpE96/saXjatdunvCvhr8is1d0R0Tu1AEdtA1JwUxtdMF5W/U8LruwV6p7+puw==\r\n\
a=rtcp:47661\r\n\
a=rtcp-fb:* trr-int 1000\r\n\
a=rtcp-fb:* ccm tmmbr\r\n";

/// Linphone (linphonec 5.1.65) with media encryption "ZRTP": plain `RTP/AVP`, the keys to be
/// agreed in the media path.
const LINPHONE_ZRTP: &str = "v=0\r\n\
o=1002 2814 346 IN IP6 ::1\r\n\
s=Talk\r\n\
c=IN IP6 ::1\r\n\
t=0 0\r\n\
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n\
m=audio 46069 RTP/AVP 96 97 98 0 8 18 99 100 101\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 useinbandfec=1\r\n\
a=rtpmap:97 speex/16000\r\n\
a=fmtp:97 vbr=on\r\n\
a=rtpmap:98 speex/8000\r\n\
a=fmtp:98 vbr=on\r\n\
a=fmtp:18 annexb=yes\r\n\
a=rtpmap:99 telephone-event/48000\r\n\
a=rtpmap:100 telephone-event/16000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=zrtp-hash:1.10 c8c4a7f42d597a767d6e179ef400284223dbc45c2d40f67a79af78aed0031cc0\r\n\
a=rtcp:36681\r\n\
a=rtcp-fb:* trr-int 1000\r\n\
a=rtcp-fb:* ccm tmmbr\r\n";

/// baresip 1.0.0 (Debian 12) with `mediaenc=srtp-mand`, as it reached a phone through hotline in
/// tests/linphone.rs.
const BARESIP_1_0_SDES: &str = "v=0\r\n\
o=- 2260877533 934526624 IN IP6 ::1\r\n\
s=-\r\n\
c=IN IP6 ::1\r\n\
t=0 0\r\n\
a=tool:baresip 1.0.0\r\n\
m=audio 3822 RTP/SAVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=sendrecv\r\n\
a=label:1\r\n\
a=rtcp-rsize\r\n\
a=ssrc:922631060 cname:sip:1000@hotline.test\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:v6xHnu2wD36RCRtIPWJH/5lbtq91CO8R5cWt7UHx\r\n\
a=minptime:20\r\n\
a=ptime:20\r\n";

/// Linphone with media encryption "DTLS": the fingerprint at media level.
const LINPHONE_DTLS: &str = "v=0\r\n\
o=1002 1207 2804 IN IP6 2001:db8::22\r\n\
s=Talk\r\n\
c=IN IP6 2001:db8::22\r\n\
t=0 0\r\n\
a=record:off\r\n\
m=audio 7078 UDP/TLS/RTP/SAVP 96 0 8 101\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 useinbandfec=1\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=setup:actpass\r\n\
a=fingerprint:SHA-256 82:58:C9:39:C7:21:A3:AB:54:28:EE:50:2B:7B:E7:9D:FE:5E:B1:91:26:05:DA:0D:38:91:E9:78:1C:71:8F:DE\r\n\
a=rtcp-fb:* trr-int 1000\r\n";

/// MIKEY at session level for two streams, as in RFC 4567 §6.
const MIKEY: &str = "v=0\r\n\
o=alice 2891092738 2891092738 IN IP6 2001:db8::5\r\n\
s=Secret discussion\r\n\
t=0 0\r\n\
c=IN IP6 2001:db8::5\r\n\
a=key-mgmt:mikey rAjNgC0ddE2ty8ZMqP/Bj+JmgJGCYOthXyemgKiJ5GwdxqgCgeizPyZJBN2ahJiDTvegx9Zw1uhXbpL/HvU7CDBnxA6J1Em/Lm0ki45c7AbJfuS1PBwHFRQSOtIF73r/Orsn7Q==\r\n\
m=audio 39000 RTP/SAVP 98\r\n\
a=rtpmap:98 AMR/8000\r\n\
m=video 42000 RTP/SAVP 31\r\n\
a=rtpmap:31 H261/90000\r\n";

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

const KEY: &str =
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n";

const SRTP_AUDIO: &str = "m=audio 4000 RTP/SAVP 0\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n";

#[test]
fn phones_with_srtp_are_secure() {
    for offer in [
        YEALINK_SDES,
        GRANDSTREAM_SDES,
        LINPHONE_SDES,
        LINPHONE_DTLS,
        BARESIP_SDES,
        BARESIP_1_0_SDES,
        BARESIP_DTLS,
        WEBRTC,
    ] {
        assert_eq!(verdict(offer), SrtpVerdict::Secure, "{offer}");
    }
}

#[test]
fn plain_rtp_is_insecure() {
    assert_eq!(verdict(PLAIN_RTP), insecure(0, "audio", "RTP/AVP", PLAIN));
}

#[test]
fn secure_audio_with_insecure_video() {
    let video = "m=video 4002 RTP/AVP 31\r\na=rtpmap:31 H261/90000\r\n";
    assert_eq!(
        verdict(&format!("{HEAD}{SRTP_AUDIO}{video}")),
        insecure(1, "video", "RTP/AVP", PLAIN)
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
    let session_crypto = format!("{HEAD}{KEY}m=audio 4000 RTP/SAVP 0\r\n");
    assert_eq!(
        verdict(&session_crypto),
        insecure(0, "audio", "RTP/SAVP", NO_SDES)
    );
    let previous_section = format!("{HEAD}{SRTP_AUDIO}m=video 4002 RTP/SAVP 31\r\n");
    assert_eq!(
        verdict(&previous_section),
        insecure(1, "video", "RTP/SAVP", NO_SDES)
    );
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
    assert_eq!(verdict(body), insecure(0, "audio", "RTP/AVP", PLAIN));
}

#[test]
fn proto_is_case_insensitive_and_reported_as_written() {
    assert_eq!(
        verdict(&format!("{HEAD}m=audio 4000 rtp/savpf 0\r\n{KEY}")),
        SrtpVerdict::Secure
    );
    assert_eq!(
        verdict(&format!("{HEAD}m=audio 4000 rtp/avp 0\r\n")),
        insecure(0, "audio", "rtp/avp", PLAIN)
    );
    assert_eq!(
        verdict(&format!("{HEAD}m=image 4000 udptl t38\r\n")),
        insecure(0, "image", "udptl", PLAIN)
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
        verdict(&format!("{HEAD}m=audio  4000/2 RTP/SAVP 0 8 \r\n{KEY}")),
        SrtpVerdict::Secure
    );
    assert_eq!(
        verdict(&format!("{HEAD}m=audio 65535 RTP/SAVP 0\r\n{KEY}")),
        SrtpVerdict::Secure
    );
}

#[test]
fn no_sdp() {
    assert_eq!(srtp_verdict(SDP, b""), SrtpVerdict::NoSdp);
    assert_eq!(srtp_verdict(None, b""), SrtpVerdict::NoSdp);
    assert_eq!(srtp_verdict(Some("text/plain"), b""), SrtpVerdict::NoSdp);
}

/// A body hotline cannot read as SDP may still be one to the phones (plain RTP in a multipart
/// body, or with the Content-Type left out): it is never taken for "no SDP".
#[test]
fn other_bodies_are_not_judged_secure() {
    let other = SrtpVerdict::Malformed("a body that is not application/sdp");
    let multipart = format!("--x\r\nContent-Type: application/sdp\r\n\r\n{PLAIN_RTP}--x--\r\n");
    assert_eq!(
        srtp_verdict(Some("multipart/mixed;boundary=x"), multipart.as_bytes()),
        other
    );
    let body = PLAIN_RTP.as_bytes();
    for content_type in [Some("text/plain"), None, Some("application/sdpx")] {
        assert_eq!(srtp_verdict(content_type, body), other, "{content_type:?}");
    }
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
            insecure(0, "audio", "RTP/AVP", PLAIN),
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

    let media = |n| format!("{HEAD}{}", SRTP_AUDIO.repeat(n));
    assert_eq!(verdict(&media(MAX_MEDIA)), SrtpVerdict::Secure);
    assert_eq!(
        verdict(&media(MAX_MEDIA + 1)),
        SrtpVerdict::Malformed("too many media sections")
    );
}

/// A cut or damaged offer never panics.
#[test]
fn truncated_and_damaged_offers() {
    for offer in [
        YEALINK_SDES,
        GRANDSTREAM_SDES,
        LINPHONE_SDES,
        BARESIP_1_0_SDES,
        BARESIP_SDES,
        BARESIP_DTLS,
        WEBRTC,
        MIKEY,
    ] {
        let bytes = offer.as_bytes();
        for end in 0..=bytes.len() {
            srtp_verdict(SDP, &bytes[..end]);
        }
        for at in 0..bytes.len() {
            for byte in [b'\r', b'\n', b' ', b'=', b'/', b':', b'0', 0x00, 0xff] {
                let mut damaged = bytes.to_vec();
                damaged[at] = byte;
                srtp_verdict(SDP, &damaged);
            }
        }
    }
}

#[test]
fn savp_without_keys_is_insecure() {
    for offer in [BARESIP_1_0_SDES, BARESIP_SDES, YEALINK_SDES, LINPHONE_SDES] {
        assert_eq!(
            verdict(&without(offer, "a=crypto")),
            insecure(0, "audio", "RTP/SAVP", NO_SDES),
            "{offer}"
        );
    }
    let savpf = BARESIP_SDES.replace("RTP/SAVP", "RTP/SAVPF");
    assert_eq!(verdict(&savpf), SrtpVerdict::Secure);
    assert_eq!(
        verdict(&without(&savpf, "a=crypto")),
        insecure(0, "audio", "RTP/SAVPF", NO_SDES)
    );
    // A fingerprint is no key for SDES.
    let fingerprint_only = without(
        &BARESIP_DTLS.replace("UDP/TLS/RTP/SAVPF", "RTP/SAVP"),
        "a=crypto",
    );
    assert_eq!(
        verdict(&fingerprint_only),
        insecure(0, "audio", "RTP/SAVP", NO_SDES)
    );
}

#[test]
fn avp_is_insecure_whatever_it_carries() {
    // Best-effort SRTP: keys on a plain profile.
    assert_eq!(
        verdict(&best_effort()),
        insecure(0, "audio", "RTP/AVP", PLAIN)
    );
    assert_eq!(
        verdict(&LINPHONE_SDES.replace("RTP/SAVP", "RTP/AVPF")),
        insecure(0, "audio", "RTP/AVPF", PLAIN)
    );
    // ZRTP negotiates keys in the media path, where a proxy cannot see it.
    assert_eq!(
        verdict(LINPHONE_ZRTP),
        insecure(0, "audio", "RTP/AVP", PLAIN)
    );
    let everything = format!(
        "{}a=fingerprint:sha-256 82:58:C9:39:C7:21:A3:AB:54:28:EE:50:2B:7B:E7:9D:FE:5E:B1:91:26:05:DA:0D:38:91:E9:78:1C:71:8F:DE\r\n",
        MIKEY.replace("RTP/SAVP", "RTP/AVP")
    );
    assert_eq!(verdict(&everything), insecure(0, "audio", "RTP/AVP", PLAIN));
}

#[test]
fn dtls_needs_a_fingerprint_at_session_or_media_level() {
    assert!(BARESIP_DTLS.find("a=fingerprint") < BARESIP_DTLS.find("m=audio"));
    assert_eq!(verdict(BARESIP_DTLS), SrtpVerdict::Secure);
    assert!(LINPHONE_DTLS.find("a=fingerprint") > LINPHONE_DTLS.find("m=audio"));
    assert_eq!(verdict(LINPHONE_DTLS), SrtpVerdict::Secure);
    let missing = insecure(0, "audio", "UDP/TLS/RTP/SAVPF", NO_FINGERPRINT);
    assert_eq!(verdict(&without(BARESIP_DTLS, "a=fingerprint")), missing);
    assert_eq!(verdict(&without(WEBRTC, "a=fingerprint")), missing);
    assert_eq!(
        verdict(&without(LINPHONE_DTLS, "a=fingerprint")),
        insecure(0, "audio", "UDP/TLS/RTP/SAVP", NO_FINGERPRINT)
    );
    // SDES keys are no DTLS fingerprint.
    let crypto_instead = format!("{}{KEY}", without(LINPHONE_DTLS, "a=fingerprint"));
    assert_eq!(
        verdict(&crypto_instead),
        insecure(0, "audio", "UDP/TLS/RTP/SAVP", NO_FINGERPRINT)
    );
    let fingerprint = "82:58:C9:39:C7:21:A3:AB:54:28:EE:50:2B:7B:E7:9D:FE:5E:B1:91:26:05:DA:0D:38:91:E9:78:1C:71:8F:DE";
    for bad in [
        format!("md5 {}", &fingerprint[..47]),
        format!("sha-256 {}", &fingerprint[..92]),
        format!("sha-256 {fingerprint}:00"),
        format!("sha-1 {fingerprint}"),
        format!("sha-256 {}", fingerprint.replace(':', "")),
        format!("sha-256 {}", fingerprint.replace("DE", "XY")),
        "sha-256".to_owned(),
        format!("sha-257 {fingerprint}"),
    ] {
        let offer = LINPHONE_DTLS.replace(&format!("SHA-256 {fingerprint}"), &bad);
        assert_eq!(
            verdict(&offer),
            insecure(0, "audio", "UDP/TLS/RTP/SAVP", NO_FINGERPRINT),
            "{bad}"
        );
    }
}

#[test]
fn mikey_at_session_or_media_level() {
    assert_eq!(verdict(MIKEY), SrtpVerdict::Secure);
    let key_mgmt = MIKEY
        .split_inclusive("\r\n")
        .find(|line| line.starts_with("a=key-mgmt"))
        .unwrap();
    let media_level = without(MIKEY, "a=key-mgmt").replace(
        "a=rtpmap:98 AMR/8000\r\n",
        &format!("a=rtpmap:98 AMR/8000\r\n{key_mgmt}"),
    );
    // Only the audio section has its keys now.
    assert_eq!(
        verdict(&media_level),
        insecure(1, "video", "RTP/SAVP", NO_SDES)
    );
    assert_eq!(
        verdict(&media_level.replace("m=video 42000", "m=video 0")),
        SrtpVerdict::Secure
    );
    for bad in [
        "a=key-mgmt:mikey\r\n",
        "a=key-mgmt:mikey !!!\r\n",
        "a=key-mgmt:kerberos AAAA\r\n",
    ] {
        let offer = MIKEY.replace(key_mgmt, bad);
        assert_eq!(
            verdict(&offer),
            insecure(0, "audio", "RTP/SAVP", NO_SDES),
            "{bad}"
        );
    }
}

#[test]
fn keys_no_phone_could_use_are_no_keys() {
    let first = "inline:9NB5PAwVRCw5Nb2Wm6K8h4tEC3Yxi3V3lM0mYdLD";
    let second = "inline:hXXMFQ6yrOLGTldWxYzfrkLeZIzdUOnTDRTgKgvV";
    let cut = BARESIP_SDES
        .replace(first, &first[..30])
        .replace(second, &second[..30]);
    assert_eq!(
        verdict(&cut),
        insecure(
            0,
            "audio",
            "RTP/SAVP",
            "a=crypto without a usable inline key"
        )
    );
    let not_base64 = BARESIP_SDES
        .replace(first, &first.replace('9', "*"))
        .replace(second, &second.replace('h', "*"));
    assert_eq!(
        verdict(&not_base64),
        insecure(
            0,
            "audio",
            "RTP/SAVP",
            "a=crypto without a usable inline key"
        )
    );
    let unknown = BARESIP_SDES.replace("AES_CM_128_HMAC_SHA1", "NULL_HMAC_SHA1");
    assert_eq!(
        verdict(&unknown),
        insecure(0, "audio", "RTP/SAVP", "a=crypto with an unknown suite")
    );
    // A 128-bit key named as a 256-bit suite.
    let wrong_length = BARESIP_SDES.replace("AES_CM_128", "AES_256_CM");
    assert_eq!(
        verdict(&wrong_length),
        insecure(
            0,
            "audio",
            "RTP/SAVP",
            "a=crypto without a usable inline key"
        )
    );
    let unencrypted = without(BARESIP_SDES, "a=crypto:2").replace(
        &format!("{first}\r\n"),
        &format!("{first} UNENCRYPTED_SRTP\r\n"),
    );
    assert_eq!(
        verdict(&unencrypted),
        insecure(0, "audio", "RTP/SAVP", "a=crypto with UNENCRYPTED_SRTP")
    );
    // One usable line among unusable ones is enough: the answerer picks it.
    let one_good = BARESIP_SDES.replace(second, &second[..30]);
    assert_eq!(verdict(&one_good), SrtpVerdict::Secure);
}

#[test]
fn several_streams_are_each_judged() {
    let video_without_keys = "m=video 4002 RTP/SAVP 96\r\na=rtpmap:96 VP8/90000\r\n";
    assert_eq!(
        verdict(&format!("{BARESIP_SDES}{video_without_keys}")),
        insecure(1, "video", "RTP/SAVP", NO_SDES)
    );
    assert_eq!(
        verdict(&format!("{BARESIP_SDES}{video_without_keys}{KEY}")),
        SrtpVerdict::Secure
    );
    // The audio section's fingerprint does not cover the video section.
    let video_fingerprint = WEBRTC.rfind("a=fingerprint").unwrap();
    let line_end = video_fingerprint + WEBRTC[video_fingerprint..].find("\r\n").unwrap() + 2;
    let webrtc = format!("{}{}", &WEBRTC[..video_fingerprint], &WEBRTC[line_end..]);
    assert_eq!(
        verdict(&webrtc),
        insecure(1, "video", "UDP/TLS/RTP/SAVPF", NO_FINGERPRINT)
    );
    // A disabled stream without keys does not matter; an active one after it does.
    let disabled = format!("{BARESIP_SDES}m=video 0 RTP/SAVP 96\r\nm=text 4004 RTP/AVP 98\r\n");
    assert_eq!(verdict(&disabled), insecure(2, "text", "RTP/AVP", PLAIN));
}

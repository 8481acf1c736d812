//! SDP (RFC 8866 / RFC 3264) in both directions, pure: the far end's description →
//! [`RemoteMedia`] (where to send RTP, in which codec, in which direction) and the SDES
//! `a=crypto` values; and our own offer or answer from a [`Local`].
//!
//! Parsing and printing go through [`ezk_sdp_types`]: small (nom, no unsafe of its own, ~5k lines),
//! it types exactly what a SIP media edge needs (`m=` formats in order, `c=` per session
//! and per media, `a=rtpmap`, `a=fmtp`, the four direction attributes with session →
//! media inheritance, RFC 4568 `a=crypto`, unknown attributes such as `a=ptime` kept by
//! name), and it both parses *and* prints the same types, so what we send is built as
//! typed values, not format strings. `webrtc-sdp` (Firefox's, shaped around WebRTC/JSEP:
//! ICE, DTLS, bundle) was the alternative; ezk's smaller model fits plain SIP audio. What
//! the crate leaves open is decided here: the first `m=audio` only, the first of PCMA/PCMU in the `m=` line's
//! order (static types 8/0, or any type an `a=rtpmap` names PCMA/PCMU), dynamic
//! `telephone-event/8000` types, `a=ptime` (media over session level, default 20 ms).

use super::g711::Codec;
use bytesstr::BytesStr;
use ezk_sdp_types::{
    Connection, Fmtp, MediaDescription, MediaType, Origin, RtpMap, SessionDescription, SrtpCrypto,
    TaggedAddress, Time, TransportProtocol, UnknownAttribute,
};
use std::net::{IpAddr, SocketAddr};

pub use ezk_sdp_types::Direction;

/// Where and how to send media to the far end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RemoteMedia {
    /// `c=` address (media-level over session-level) and the `m=audio` port.
    pub addr: SocketAddr,
    /// The first of PCMA/PCMU in the `m=` line's order.
    pub codec: Codec,
    /// Its payload type (8 or 0 unless the description maps them to dynamic types).
    pub pt: u8,
    /// Payload type of `telephone-event/8000`, when the description has it.
    pub dtmf_pt: Option<u8>,
    /// Packet time in milliseconds (`a=ptime`, default 20).
    pub ptime_ms: u32,
    /// The far end's direction attribute (media over session level, default sendrecv):
    /// `sendonly`/`inactive` from the far end (a call on hold) means it wants no media
    /// from us (RFC 3264 §5.1, §6.1).
    pub direction: Direction,
}

/// A parsed description of the far end: its media and SDES keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Remote {
    /// Where and how to send.
    pub media: RemoteMedia,
    /// `RTP/SAVP` (or SAVPF): SRTP is required by the far end.
    pub secure: bool,
    /// The `a=crypto` values of the first audio stream in order (RFC 4568), as
    /// [`super::sdes::negotiate`] takes them.
    pub crypto: Vec<String>,
}

/// Why a description cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Not SDP: a line that does not parse, or `o=`, `s=` or `t=` missing.
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// No `m=audio` line.
    #[error("the SDP has no audio stream")]
    NoAudio,
    /// `m=audio 0 …`: the far end rejected the stream.
    #[error("the audio stream was rejected (port 0)")]
    Rejected,
    /// Neither PCMA nor PCMU among the payload types.
    #[error("no common codec: the SDP offers payload types {0:?}, we need PCMA (8) or PCMU (0)")]
    NoCommonCodec(Vec<String>),
    /// No `c=` line for the audio stream.
    #[error("no connection address (c=) for the audio stream")]
    NoConnection,
    /// A host name or an unusable address (0.0.0.0) in `c=`.
    #[error("bad address: {0}")]
    BadAddress(String),
}

/// Parses the far end's description (an answer to our offer, or an offer to answer).
/// Lines may end in CRLF or LF.
pub fn parse(sdp: &str) -> Result<Remote, SdpError> {
    parse_keeping(sdp, None)
}

/// [`parse`], choosing `keep` (a codec and its payload type) when the description lists
/// it, rather than its first G.711 codec: a new offer within a call keeps the call's codec
/// whatever its order (RFC 3264 §8.3.2).
pub fn parse_keeping(sdp: &str, keep: Option<(Codec, u8)>) -> Result<Remote, SdpError> {
    let sd = SessionDescription::parse(&BytesStr::from(sdp))
        .map_err(|e| SdpError::Malformed(e.to_string().lines().next().unwrap_or("").into()))?;
    let md = sd
        .media_descriptions
        .iter()
        .find(|m| m.media.media_type == MediaType::Audio)
        .ok_or(SdpError::NoAudio)?;
    let crypto = md.crypto.iter().map(ToString::to_string).collect();
    let secure = matches!(md.media.proto, TransportProtocol::RtpSavp | TransportProtocol::RtpSavpf);
    if md.media.port == 0 {
        return Err(SdpError::Rejected);
    }
    let rtpmap = |pt: u8| md.rtpmap.iter().find(|r| r.payload == pt);
    let named =
        |r: &RtpMap, name: &str| r.encoding.eq_ignore_ascii_case(name) && r.clock_rate == 8000;
    let codecs = md.media.fmts.iter().filter_map(|&pt| match rtpmap(pt) {
        Some(r) if named(r, "PCMA") => Some((Codec::Pcma, pt)),
        Some(r) if named(r, "PCMU") => Some((Codec::Pcmu, pt)),
        Some(_) => None,
        None => Codec::from_payload_type(pt).map(|c| (c, pt)),
    });
    let codecs: Vec<(Codec, u8)> = codecs.collect();
    let codec = keep.filter(|k| codecs.contains(k)).or_else(|| codecs.first().copied());
    let Some((codec, pt)) = codec else {
        return Err(SdpError::NoCommonCodec(md.media.fmts.iter().map(u8::to_string).collect()));
    };
    let dtmf_pt = md
        .media
        .fmts
        .iter()
        .copied()
        .find(|&pt| rtpmap(pt).is_some_and(|r| named(r, "telephone-event")));
    let ptime = |attrs: &[UnknownAttribute]| {
        attrs
            .iter()
            .filter(|a| a.name.as_str() == "ptime")
            .find_map(|a| a.value.as_ref()?.trim().parse().ok())
    };
    let ptime_ms = ptime(&md.attributes).or_else(|| ptime(&sd.attributes)).unwrap_or(20);
    let c = md.connection.as_ref().or(sd.connection.as_ref()).ok_or(SdpError::NoConnection)?;
    let ip = connection_ip(c)?;
    let media = RemoteMedia {
        addr: SocketAddr::new(ip, md.media.port),
        codec,
        pt,
        dtmf_pt,
        ptime_ms,
        direction: md.direction,
    };
    Ok(Remote { media, secure, crypto })
}

/// [`parse`]'s media only (the far end's answer to our offer).
pub fn parse_answer(sdp: &str) -> Result<RemoteMedia, SdpError> {
    parse(sdp).map(|r| r.media)
}

/// The values of the `a=crypto:` attributes (RFC 4568) of the first `m=audio` section, in
/// order, for [`super::sdes::negotiate`]; none when the SDP does not parse.
pub fn audio_crypto(sdp: &str) -> Vec<String> {
    parse(sdp).map(|r| r.crypto).unwrap_or_default()
}

/// The `c=` address, which must be a literal, usable IP address.
fn connection_ip(c: &Connection) -> Result<IpAddr, SdpError> {
    let ip = match &c.address {
        TaggedAddress::IP4(ip) => IpAddr::V4(*ip),
        TaggedAddress::IP6(ip) => IpAddr::V6(*ip),
        TaggedAddress::IP4FQDN(_) | TaggedAddress::IP6FQDN(_) => {
            return Err(SdpError::BadAddress(format!("c={c} (not an IP address)")));
        }
    };
    if ip.is_unspecified() {
        return Err(SdpError::BadAddress(format!("c={c} (on hold: no address to send to)")));
    }
    Ok(ip)
}

/// Our side of the media, printed by [`build`] as an offer or an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Local {
    /// Our RTP socket's address (`o=`, `c=`) and port (`m=`).
    pub addr: SocketAddr,
    /// Session id (`o=`), e.g. the attempt's sequence number.
    pub session: u64,
    /// Session version (`o=`): the session id in the first description, one more in each
    /// changed one after it (RFC 3264 §8).
    pub version: u64,
    /// `RTP/SAVP` instead of `RTP/AVP`.
    pub secure: bool,
    /// The G.711 codecs with their payload types, in order of preference.
    pub codecs: Vec<(Codec, u8)>,
    /// The telephone-event payload type (RFC 4733, events 0-16), if any.
    pub dtmf_pt: Option<u8>,
    /// Packet time in milliseconds.
    pub ptime_ms: u32,
    /// Our direction attribute.
    pub direction: Direction,
    /// `a=crypto` values (RFC 4568), in order.
    pub crypto: Vec<String>,
}

impl Local {
    /// Our answer to the far end's offer `offer` (RFC 3264 §6.1): its first G.711 codec
    /// under its payload type, its telephone-event type when it has one, our packet time
    /// (20 ms), and the direction mirrored (`sendonly` ↔ `recvonly`, `inactive` stays).
    pub fn answer(addr: SocketAddr, session: u64, offer: &RemoteMedia) -> Local {
        Local {
            addr,
            session,
            version: session,
            secure: false,
            codecs: vec![(offer.codec, offer.pt)],
            dtmf_pt: offer.dtmf_pt,
            ptime_ms: 20,
            direction: offer.direction.flipped(),
            crypto: Vec::new(),
        }
    }
}

/// Whether we may send media under `ours`, our side's direction (RFC 3264 §5.1: not when
/// it is `recvonly` or `inactive`).
pub fn may_send(ours: Direction) -> bool {
    matches!(ours, Direction::SendRecv | Direction::SendOnly)
}

/// Prints our description. An `a=crypto` value that is not RFC 4568 is an error (they come
/// from [`super::sdes`], so it never is in practice).
pub fn build(local: &Local) -> Result<String, SdpError> {
    let ip = local.addr.ip();
    let id = BytesStr::from(local.session.to_string());
    let mut md = MediaDescription::rejected(MediaType::Audio);
    md.media.port = local.addr.port();
    md.media.proto =
        if local.secure { TransportProtocol::RtpSavp } else { TransportProtocol::RtpAvp };
    md.media.fmts = local.codecs.iter().map(|&(_, pt)| pt).chain(local.dtmf_pt).collect();
    md.direction = local.direction;
    let map = |payload: u8, name: &'static str| RtpMap {
        payload,
        encoding: BytesStr::from_static(name),
        clock_rate: 8000,
        params: None,
    };
    md.rtpmap = local.codecs.iter().map(|&(c, pt)| map(pt, c.name())).collect();
    if let Some(pt) = local.dtmf_pt {
        md.rtpmap.push(map(pt, "telephone-event"));
        md.fmtp.push(Fmtp { format: pt, params: BytesStr::from_static("0-16") });
    }
    md.attributes.push(UnknownAttribute {
        name: BytesStr::from_static("ptime"),
        value: Some(BytesStr::from(local.ptime_ms.to_string())),
    });
    for value in &local.crypto {
        let src = BytesStr::from(value.as_str());
        let parsed = SrtpCrypto::parse(src.as_ref(), &src)
            .map_err(|e| SdpError::Malformed(format!("a=crypto:{value}: {e}")))?;
        md.crypto.push(parsed.1);
    }
    let sd = SessionDescription {
        origin: Origin {
            username: BytesStr::from_static("callbackd"),
            session_id: id,
            session_version: BytesStr::from(local.version.to_string()),
            address: ip.into(),
        },
        name: BytesStr::from_static("callbackd"),
        connection: Some(Connection { address: ip.into(), ttl: None, num: None }),
        bandwidth: Vec::new(),
        time: Time { start: 0, stop: 0 },
        direction: Direction::SendRecv,
        group: Vec::new(),
        extmap: Vec::new(),
        extmap_allow_mixed: false,
        ice_lite: false,
        ice_options: ezk_sdp_types::IceOptions::default(),
        ice_ufrag: None,
        ice_pwd: None,
        setup: None,
        fingerprint: Vec::new(),
        attributes: Vec::new(),
        media_descriptions: vec![md],
    };
    Ok(sd.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASTERISK: &str = "v=0\r\n\
        o=- 1893718281 1893718283 IN IP4 10.20.30.40\r\n\
        s=Asterisk\r\n\
        c=IN IP4 10.20.30.40\r\n\
        t=0 0\r\n\
        m=audio 17092 RTP/AVP 8 101\r\n\
        a=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-16\r\n\
        a=ptime:20\r\n\
        a=maxptime:150\r\n\
        a=sendrecv\r\n";

    const FREESWITCH: &str = "v=0\r\n\
        o=FreeSWITCH 1763000000 1763000001 IN IP4 192.0.2.10\r\n\
        s=FreeSWITCH\r\n\
        c=IN IP4 192.0.2.10\r\n\
        t=0 0\r\n\
        m=audio 24602 RTP/AVP 0 96\r\n\
        a=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:96 telephone-event/8000\r\n\
        a=fmtp:96 0-16\r\n\
        a=ptime:30\r\n";

    // sipp's built-in UAS answer: LF line ends, no ptime.
    const SIPP: &str = "v=0\no=user1 53655765 2353687637 IN IP4 127.0.0.1\ns=-\n\
        c=IN IP4 127.0.0.1\nt=0 0\nm=audio 6000 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n";

    /// A minimal valid description around `rest` (session c=, then `rest`).
    fn sdp(rest: &str) -> String {
        format!("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n{rest}")
    }

    #[test]
    fn asterisk_answer() {
        let m = parse_answer(ASTERISK).expect("ok");
        assert_eq!(
            m,
            RemoteMedia {
                addr: "10.20.30.40:17092".parse().expect("addr"),
                codec: Codec::Pcma,
                pt: 8,
                dtmf_pt: Some(101),
                ptime_ms: 20,
                direction: Direction::SendRecv,
            }
        );
    }

    #[test]
    fn freeswitch_and_sipp_answers() {
        let m = parse_answer(FREESWITCH).expect("ok");
        assert_eq!(m.addr, "192.0.2.10:24602".parse().expect("addr"));
        assert_eq!((m.codec, m.pt, m.dtmf_pt, m.ptime_ms), (Codec::Pcmu, 0, Some(96), 30));
        let m = parse_answer(SIPP).expect("ok");
        assert_eq!(m.addr, "127.0.0.1:6000".parse().expect("addr"));
        assert_eq!((m.codec, m.pt, m.dtmf_pt, m.ptime_ms), (Codec::Pcmu, 0, None, 20));
    }

    #[test]
    fn codec_order_is_the_m_lines_and_media_c_overrides_session_c() {
        let text = sdp("m=video 5000 RTP/AVP 96\r\nc=IN IP4 192.0.2.9\r\n\
            m=audio 5002 RTP/AVP 18 0 8\r\nc=IN IP6 2001:db8::7\r\n");
        let m = parse_answer(&text).expect("ok");
        assert_eq!(m.addr, "[2001:db8::7]:5002".parse().expect("addr"));
        assert_eq!((m.codec, m.pt), (Codec::Pcmu, 0));
        let m = parse_answer(&sdp("m=audio 5002 RTP/AVP 8 0\r\n")).expect("ok");
        assert_eq!((m.codec, m.pt, m.addr.port()), (Codec::Pcma, 8, 5002));
    }

    #[test]
    fn dynamic_payload_types_and_telephone_event() {
        // PCMU under a dynamic type, telephone-event under another, case-insensitive.
        let m = parse_answer(&sdp("m=audio 4000 RTP/AVP 9 97 110\r\na=rtpmap:97 pcmu/8000\r\n\
             a=rtpmap:110 TELEPHONE-EVENT/8000\r\na=fmtp:110 0-15\r\n"))
        .expect("ok");
        assert_eq!((m.codec, m.pt, m.dtmf_pt), (Codec::Pcmu, 97, Some(110)));
        // A static number remapped to something else is not G.711; 16 kHz events are not ours.
        let m = parse_answer(&sdp("m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:0 opus/48000/2\r\n\
             a=rtpmap:101 telephone-event/16000\r\n"))
        .expect("ok");
        assert_eq!((m.codec, m.pt, m.dtmf_pt), (Codec::Pcma, 8, None));
    }

    #[test]
    fn ptime_media_level_over_session_level() {
        let text = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                    a=ptime:40\r\nm=audio 4000 RTP/AVP 8\r\n";
        assert_eq!(parse_answer(text).expect("ok").ptime_ms, 40);
        let media = format!("{text}a=ptime:10\r\n");
        assert_eq!(parse_answer(&media).expect("ok").ptime_ms, 10);
    }

    #[test]
    fn direction_attributes_media_over_session_and_the_answer_mirrors_them() {
        let dir = |rest: &str| parse_answer(&sdp(rest)).expect("ok").direction;
        assert_eq!(dir("m=audio 4000 RTP/AVP 8\r\n"), Direction::SendRecv);
        assert_eq!(dir("m=audio 4000 RTP/AVP 8\r\na=sendonly\r\n"), Direction::SendOnly);
        assert_eq!(dir("m=audio 4000 RTP/AVP 8\r\na=recvonly\r\n"), Direction::RecvOnly);
        assert_eq!(dir("m=audio 4000 RTP/AVP 8\r\na=inactive\r\n"), Direction::Inactive);
        let session = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                       a=inactive\r\nm=audio 4000 RTP/AVP 8\r\n";
        assert_eq!(parse_answer(session).expect("ok").direction, Direction::Inactive);
        let ours = "10.0.0.9:5000".parse().expect("addr");
        for (theirs, answer, send) in [
            ("sendrecv", "sendrecv", true),
            ("sendonly", "recvonly", false),
            ("recvonly", "sendonly", true),
            ("inactive", "inactive", false),
        ] {
            let offer = parse_answer(&sdp(&format!("m=audio 4000 RTP/AVP 8\r\na={theirs}\r\n")))
                .expect("ok");
            let local = Local::answer(ours, 1, &offer);
            assert_eq!(may_send(local.direction), send, "{theirs}");
            let text = build(&local).expect("build");
            assert!(text.contains(&format!("a={answer}\r\n")), "{theirs}: {text}");
            assert_eq!(parse_answer(&text).expect("ok").direction.as_str(), answer);
        }
    }

    #[test]
    fn the_answer_keeps_the_offers_codec_dynamic_types_and_event_type() {
        let offer = parse_answer(&sdp("m=audio 4000 RTP/AVP 9 97 96\r\n\
             a=rtpmap:97 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\na=ptime:30\r\n"))
        .expect("ok");
        let text = build(&Local::answer("10.0.0.9:5000".parse().expect("addr"), 7, &offer))
            .expect("build");
        for line in [
            "o=callbackd 7 7 IN IP4 10.0.0.9\r\n",
            "c=IN IP4 10.0.0.9\r\n",
            "m=audio 5000 RTP/AVP 97 96\r\n",
            "a=rtpmap:97 PCMA/8000\r\n",
            "a=rtpmap:96 telephone-event/8000\r\n",
            "a=fmtp:96 0-16\r\n",
            "a=ptime:20\r\n",
        ] {
            assert!(text.contains(line), "{line:?} in {text}");
        }
        let back = parse_answer(&text).expect("ok");
        assert_eq!(
            (back.codec, back.pt, back.dtmf_pt, back.ptime_ms),
            (Codec::Pcma, 97, Some(96), 20)
        );
    }

    #[test]
    fn crypto_attributes_of_the_first_audio_stream_both_ways() {
        let text = sdp("a=crypto:9 AES_CM_128_HMAC_SHA1_80 inline:U0VTU0lPTg==\r\n\
            m=audio 4000 RTP/SAVP 8\r\na=rtpmap:8 PCMA/8000\r\n\
            a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA\r\n\
            a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:BBBB|2^20|1:4\r\n\
            m=video 4002 RTP/SAVP 96\r\na=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:CCCC\r\n\
            m=audio 4004 RTP/SAVP 0\r\na=crypto:4 AES_CM_128_HMAC_SHA1_80 inline:DDDD\r\n");
        let remote = parse(&text).expect("ok");
        assert!(remote.secure);
        assert_eq!(
            remote.crypto,
            [
                "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA",
                "2 AES_CM_128_HMAC_SHA1_32 inline:BBBB|2^20|1:4"
            ]
        );
        assert_eq!(audio_crypto(&text), remote.crypto);
        assert!(audio_crypto(ASTERISK).is_empty());
        assert!(!parse(ASTERISK).expect("ok").secure);
        assert_eq!(remote.media.addr, "192.0.2.1:4000".parse().expect("addr"));
        // Our offer prints them back under RTP/SAVP.
        let local = Local {
            addr: "127.0.0.1:40000".parse().expect("addr"),
            session: 3,
            version: 3,
            secure: true,
            codecs: vec![(Codec::Pcma, 8), (Codec::Pcmu, 0)],
            dtmf_pt: Some(101),
            ptime_ms: 20,
            direction: Direction::SendRecv,
            crypto: remote.crypto.clone(),
        };
        let ours = build(&local).expect("build");
        assert!(ours.contains("m=audio 40000 RTP/SAVP 8 0 101\r\n"), "{ours}");
        assert_eq!(parse(&ours).expect("ok").crypto, remote.crypto);
        let bad = Local { crypto: vec!["not a crypto line".into()], ..local };
        assert!(matches!(build(&bad), Err(SdpError::Malformed(m)) if m.contains("crypto")));
    }

    #[test]
    fn problems_are_named() {
        assert_eq!(parse_answer(&sdp("")), Err(SdpError::NoAudio));
        assert_eq!(parse_answer(&sdp("m=audio 0 RTP/AVP 8\r\n")), Err(SdpError::Rejected));
        assert_eq!(
            parse_answer(&sdp("m=audio 4000 RTP/AVP 18 9\r\n")),
            Err(SdpError::NoCommonCodec(vec!["18".into(), "9".into()]))
        );
        let with_c = |c: &str| {
            parse_answer(&format!(
                "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\n{c}"
            ))
        };
        assert!(matches!(with_c("c=IN IP4 pbx.example\r\n"), Err(SdpError::BadAddress(_))));
        assert!(matches!(
            with_c("c=IN IP4 0.0.0.0\r\n"),
            Err(SdpError::BadAddress(m)) if m.contains("hold")
        ));
        assert!(matches!(with_c("c=IN IP6 192.0.2.1\r\n"), Err(SdpError::BadAddress(_))));
        assert_eq!(with_c(""), Err(SdpError::NoConnection));
    }

    #[test]
    fn malformed_sdp_is_a_clear_error() {
        let malformed = |text: &str| match parse(text) {
            Err(SdpError::Malformed(m)) => m,
            other => panic!("{text:?}: {other:?}"),
        };
        // Not SDP at all, and the mandatory o=, s= and t= lines missing.
        assert!(malformed("hello").contains("origin"), "{}", malformed("hello"));
        assert!(malformed("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nt=0 0\r\n").contains("name"));
        assert!(malformed("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n").contains("time"));
        // Lines that do not parse.
        assert!(!malformed(&sdp("m=audio port RTP/AVP 8\r\n")).is_empty());
        assert!(!malformed(&sdp("m=audio 4000 RTP/AVP 8\r\na=rtpmap:x PCMA\r\n")).is_empty());
        let e = parse("").expect_err("empty");
        assert!(e.to_string().starts_with("malformed SDP: "), "{e}");
    }
}

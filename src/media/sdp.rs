//! The far end's SDP answer → where to send RTP, in which codec. Pure.
//!
//! Understands what Asterisk, FreeSWITCH and sipp answer: session- or media-level `c=`,
//! the first `m=audio` line, static payload types 8 (PCMA) and 0 (PCMU) or `a=rtpmap`s
//! naming them, `telephone-event/8000` for RFC 4733 DTMF, and `a=ptime`.

use super::g711::Codec;
use std::net::{IpAddr, SocketAddr};

/// Where and how to send media to the far end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteMedia {
    /// `c=` address (media-level over session-level) and the `m=audio` port.
    pub addr: SocketAddr,
    /// The first of PCMA/PCMU in the `m=` line's order.
    pub codec: Codec,
    /// Its payload type (8 or 0 unless the answer maps them to dynamic types).
    pub pt: u8,
    /// Payload type of `telephone-event/8000`, when the answer has it.
    pub dtmf_pt: Option<u8>,
    /// Packet time in milliseconds (`a=ptime`, default 20).
    pub ptime_ms: u32,
}

/// Why an answer cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// No `m=audio` line.
    #[error("the SDP has no audio stream")]
    NoAudio,
    /// `m=audio 0 …`: the far end rejected the stream.
    #[error("the audio stream was rejected (port 0)")]
    Rejected,
    /// Neither PCMA nor PCMU among the payload types.
    #[error("no common codec: the answer offers payload types {0:?}, we need PCMA (8) or PCMU (0)")]
    NoCommonCodec(Vec<String>),
    /// No `c=` line for the audio stream.
    #[error("no connection address (c=) for the audio stream")]
    NoConnection,
    /// A `c=` or `m=` line that cannot be parsed, or an unusable address (0.0.0.0).
    #[error("bad address: {0}")]
    BadAddress(String),
}

/// Parses an SDP answer. Lines may end in CRLF or LF.
pub fn parse_answer(sdp: &str) -> Result<RemoteMedia, SdpError> {
    let mut session_c: Option<&str> = None;
    let mut session_ptime: Option<u32> = None;
    // The first m=audio section: (m= line value, its c=, its attributes).
    let mut audio: Option<(&str, Option<&str>, Vec<&str>)> = None;
    let mut in_audio = false;
    let mut seen_media = false;
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        let Some((kind, value)) = line.split_once('=') else { continue };
        match kind {
            "m" => {
                seen_media = true;
                in_audio = audio.is_none() && value.starts_with("audio ");
                if in_audio {
                    audio = Some((value, None, Vec::new()));
                }
            }
            "c" if !seen_media => session_c = Some(value),
            "c" if in_audio => {
                if let Some(a) = audio.as_mut() {
                    a.1 = Some(value);
                }
            }
            "a" if !seen_media => {
                if let Some(p) = value.strip_prefix("ptime:") {
                    session_ptime = p.trim().parse().ok();
                }
            }
            "a" if in_audio => {
                if let Some(a) = audio.as_mut() {
                    a.2.push(value);
                }
            }
            _ => {}
        }
    }
    let (m, media_c, attrs) = audio.ok_or(SdpError::NoAudio)?;
    let mut fields = m.split_whitespace().skip(1);
    let port = fields.next().and_then(|p| p.split('/').next()).unwrap_or_default();
    let port: u16 = port.parse().map_err(|_| SdpError::BadAddress(format!("m={m}")))?;
    if port == 0 {
        return Err(SdpError::Rejected);
    }
    let formats: Vec<&str> = fields.skip(1).collect();
    let rtpmap = |pt: &str| -> Option<String> {
        attrs.iter().find_map(|a| {
            let (p, enc) = a.strip_prefix("rtpmap:")?.split_once(char::is_whitespace)?;
            (p == pt).then(|| enc.trim().to_ascii_lowercase())
        })
    };
    let codec = formats.iter().find_map(|f| {
        let pt: u8 = f.parse().ok()?;
        match rtpmap(f).as_deref() {
            Some(enc) if enc.starts_with("pcma/8000") => Some((Codec::Pcma, pt)),
            Some(enc) if enc.starts_with("pcmu/8000") => Some((Codec::Pcmu, pt)),
            Some(_) => None,
            None => Codec::from_payload_type(pt).map(|c| (c, pt)),
        }
    });
    let Some((codec, pt)) = codec else {
        return Err(SdpError::NoCommonCodec(formats.iter().map(|f| (*f).to_owned()).collect()));
    };
    let dtmf_pt = formats.iter().find_map(|f| {
        let enc = rtpmap(f)?;
        enc.starts_with("telephone-event/8000").then(|| f.parse().ok()).flatten()
    });
    let ptime_ms = attrs
        .iter()
        .find_map(|a| a.strip_prefix("ptime:").and_then(|p| p.trim().parse().ok()))
        .or(session_ptime)
        .unwrap_or(20);
    let c = media_c.or(session_c).ok_or(SdpError::NoConnection)?;
    let ip = connection_ip(c)?;
    Ok(RemoteMedia { addr: SocketAddr::new(ip, port), codec, pt, dtmf_pt, ptime_ms })
}

/// The values of the `a=crypto:` attributes (RFC 4568) of the first `m=audio` section, in
/// order, for [`super::sdes::negotiate`].
pub fn audio_crypto(sdp: &str) -> Vec<&str> {
    let mut in_audio = false;
    let mut seen_audio = false;
    let mut out = Vec::new();
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            in_audio = !seen_audio && m.starts_with("audio ");
            seen_audio |= in_audio;
        } else if let Some(value) = line.strip_prefix("a=crypto:").filter(|_| in_audio) {
            out.push(value.trim());
        }
    }
    out
}

/// `IN IP4 192.0.2.1` (optionally `/ttl`) → the address.
fn connection_ip(c: &str) -> Result<IpAddr, SdpError> {
    let bad = || SdpError::BadAddress(format!("c={c}"));
    let mut f = c.split_whitespace();
    let (Some("IN"), Some(family), Some(addr)) = (f.next(), f.next(), f.next()) else {
        return Err(bad());
    };
    let addr = addr.split('/').next().unwrap_or_default();
    let ip: IpAddr = addr.parse().map_err(|_| bad())?;
    let family_ok = matches!((family, ip), ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)));
    if !family_ok {
        return Err(bad());
    }
    if ip.is_unspecified() {
        return Err(SdpError::BadAddress(format!("c={c} (on hold: no address to send to)")));
    }
    Ok(ip)
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

    // sipp's built-in UAS answer: LF line ends, no rtpmap, no ptime.
    const SIPP: &str = "v=0\no=user1 53655765 2353687637 IN IP4 127.0.0.1\ns=-\n\
        c=IN IP4 127.0.0.1\nt=0 0\nm=audio 6000 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n";

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
                ptime_ms: 20
            }
        );
    }

    #[test]
    fn freeswitch_answer() {
        let m = parse_answer(FREESWITCH).expect("ok");
        assert_eq!(m.addr, "192.0.2.10:24602".parse().expect("addr"));
        assert_eq!((m.codec, m.pt, m.dtmf_pt, m.ptime_ms), (Codec::Pcmu, 0, Some(96), 30));
    }

    #[test]
    fn sipp_answer() {
        let m = parse_answer(SIPP).expect("ok");
        assert_eq!(m.addr, "127.0.0.1:6000".parse().expect("addr"));
        assert_eq!((m.codec, m.pt, m.dtmf_pt, m.ptime_ms), (Codec::Pcmu, 0, None, 20));
    }

    #[test]
    fn the_first_g711_in_m_line_order_wins_and_media_c_overrides_session_c() {
        let sdp = "v=0\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
            m=video 5000 RTP/AVP 96\r\nc=IN IP4 192.0.2.9\r\n\
            m=audio 5002 RTP/AVP 18 0 8\r\nc=IN IP6 2001:db8::7\r\n";
        let m = parse_answer(sdp).expect("ok");
        assert_eq!(m.addr, "[2001:db8::7]:5002".parse().expect("addr"));
        assert_eq!(m.codec, Codec::Pcmu);
        // Without a media-level c=, the session one applies.
        let m = parse_answer("c=IN IP4 192.0.2.1/127\r\nm=audio 5002 RTP/AVP 8\r\n").expect("ok");
        assert_eq!(m.addr, "192.0.2.1:5002".parse().expect("addr"));
    }

    #[test]
    fn crypto_attributes_of_the_first_audio_stream() {
        let sdp = "v=0\r\nc=IN IP4 192.0.2.1\r\na=crypto:9 X inline:session-level\r\n\
            m=audio 4000 RTP/SAVP 8\r\na=rtpmap:8 PCMA/8000\r\n\
            a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA\r\n\
            a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:BBBB\r\n\
            m=video 4002 RTP/SAVP 96\r\na=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:CCCC\r\n\
            m=audio 4004 RTP/SAVP 0\r\na=crypto:4 AES_CM_128_HMAC_SHA1_80 inline:DDDD\r\n";
        assert_eq!(
            audio_crypto(sdp),
            ["1 AES_CM_128_HMAC_SHA1_80 inline:AAAA", "2 AES_CM_128_HMAC_SHA1_32 inline:BBBB"]
        );
        assert!(audio_crypto(ASTERISK).is_empty());
        // An SRTP answer's media line parses like a plain one.
        assert_eq!(parse_answer(sdp).expect("ok").addr, "192.0.2.1:4000".parse().expect("addr"));
    }

    #[test]
    fn problems_are_named() {
        assert_eq!(parse_answer("v=0\r\nc=IN IP4 192.0.2.1\r\n"), Err(SdpError::NoAudio));
        assert_eq!(
            parse_answer("c=IN IP4 192.0.2.1\r\nm=audio 0 RTP/AVP 8\r\n"),
            Err(SdpError::Rejected)
        );
        assert_eq!(
            parse_answer("c=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 18 9\r\n"),
            Err(SdpError::NoCommonCodec(vec!["18".into(), "9".into()]))
        );
        assert!(matches!(
            parse_answer("c=IN IP4 pbx.example\r\nm=audio 4000 RTP/AVP 8\r\n"),
            Err(SdpError::BadAddress(_))
        ));
        assert!(matches!(
            parse_answer("c=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 8\r\n"),
            Err(SdpError::BadAddress(m)) if m.contains("hold")
        ));
        assert!(matches!(
            parse_answer("c=IN IP6 192.0.2.1\r\nm=audio 4000 RTP/AVP 8\r\n"),
            Err(SdpError::BadAddress(_))
        ));
        assert_eq!(parse_answer("m=audio 4000 RTP/AVP 8\r\n"), Err(SdpError::NoConnection));
        // A dynamic payload type mapped to PCMA counts.
        let m = parse_answer(
            "c=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 97\r\na=rtpmap:97 PCMA/8000\r\n",
        )
        .expect("ok");
        assert_eq!((m.codec, m.pt), (Codec::Pcma, 97));
    }
}

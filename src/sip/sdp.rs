//! The SDP offer callbackd sends: PCMA and PCMU at 20 ms, and RFC 4733 telephone-events;
//! with SRTP, the `a=crypto` lines of [`crate::media::sdes`]. Pure.

use crate::media::g711::Codec;
use crate::media::sdes;
use crate::media::sdp::{Direction, Local, build};
use std::net::{IpAddr, SocketAddr};

/// Payload type of telephone-event in our offer.
pub const TELEPHONE_EVENT_PT: u8 = 101;

/// Builds the SDP offer for an outbound call whose RTP socket is at `ip:port`.
/// `session` identifies the session (`o=` line), e.g. the attempt id.
pub fn offer(ip: IpAddr, port: u16, session: u64) -> String {
    offer_with(ip, port, session, None)
}

/// [`offer`] with SRTP keys when `srtp` is given: `RTP/SAVP` (required) or `RTP/AVP`
/// (optional) and one `a=crypto` line per suite. Printed by [`crate::media::sdp::build`].
pub fn offer_with(ip: IpAddr, port: u16, session: u64, srtp: Option<&sdes::Offer>) -> String {
    let local = Local {
        addr: SocketAddr::new(ip, port),
        session,
        version: session,
        secure: srtp.is_some_and(|o| o.profile() == "RTP/SAVP"),
        codecs: vec![(Codec::Pcma, 8), (Codec::Pcmu, 0)],
        dtmf_pt: Some(TELEPHONE_EVENT_PT),
        ptime_ms: 20,
        direction: Direction::SendRecv,
        crypto: srtp.map(|o| o.lines.iter().map(sdes::Crypto::value).collect()).unwrap_or_default(),
    };
    // Our own SDES lines are RFC 4568 by construction; should one ever not print, the
    // offer goes without it (and a required SRTP then fails at the answer, by name).
    build(&local).unwrap_or_else(|e| {
        tracing::error!(error = %e, "SDP offer without SDES keys");
        build(&Local { crypto: Vec::new(), ..local }).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_lists_pcma_pcmu_and_telephone_event_at_20ms() {
        let sdp = offer("127.0.0.1".parse().expect("ip"), 40000, 7);
        assert!(sdp.contains("c=IN IP4 127.0.0.1\r\n"));
        assert!(sdp.contains("m=audio 40000 RTP/AVP 8 0 101\r\n"));
        assert!(sdp.contains("a=rtpmap:8 PCMA/8000\r\n"));
        assert!(sdp.contains("a=rtpmap:0 PCMU/8000\r\n"));
        assert!(sdp.contains("a=rtpmap:101 telephone-event/8000\r\n"));
        assert!(sdp.contains("a=ptime:20\r\n"));
        assert!(sdp.ends_with("\r\n"));
        assert!(!sdp.contains("crypto"));
    }

    #[test]
    fn srtp_offers_carry_keys_and_the_profile() {
        let ip = "127.0.0.1".parse().expect("ip");
        for (mode, profile) in [
            (crate::config::SrtpMode::Required, "RTP/SAVP"),
            (crate::config::SrtpMode::Optional, "RTP/AVP"),
        ] {
            let o = sdes::Offer::new(mode).expect("keys").expect("offer");
            let sdp = offer_with(ip, 40000, 7, Some(&o));
            assert!(sdp.contains(&format!("m=audio 40000 {profile} 8 0 101\r\n")), "{mode:?}");
            let lines = crate::media::sdp::audio_crypto(&sdp);
            assert_eq!(lines.len(), 2);
            assert!(lines[0].starts_with("1 AES_CM_128_HMAC_SHA1_80 inline:"));
            assert!(lines[1].starts_with("2 AES_CM_128_HMAC_SHA1_32 inline:"));
        }
    }
}

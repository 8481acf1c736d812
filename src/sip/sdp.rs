//! The SDP offer callbackd sends: PCMA and PCMU at 20 ms, and RFC 4733 telephone-events;
//! with SRTP, the `a=crypto` lines of [`crate::media::sdes`]. Pure.

use crate::media::sdes;
use std::net::IpAddr;

/// Payload type of telephone-event in our offer.
pub const TELEPHONE_EVENT_PT: u8 = 101;

/// Builds the SDP offer for an outbound call whose RTP socket is at `ip:port`.
/// `session` identifies the session (`o=` line), e.g. the attempt id.
pub fn offer(ip: IpAddr, port: u16, session: u64) -> String {
    offer_with(ip, port, session, None)
}

/// [`offer`] with SRTP keys when `srtp` is given: `RTP/SAVP` (required) or `RTP/AVP`
/// (optional) and one `a=crypto` line per suite.
pub fn offer_with(ip: IpAddr, port: u16, session: u64, srtp: Option<&sdes::Offer>) -> String {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let profile = srtp.map_or("RTP/AVP", sdes::Offer::profile);
    let crypto: String =
        srtp.map(|o| o.lines.iter().map(|c| c.line() + "\r\n").collect()).unwrap_or_default();
    format!(
        "v=0\r\n\
         o=callbackd {session} {session} IN {family} {ip}\r\n\
         s=callbackd\r\n\
         c=IN {family} {ip}\r\n\
         t=0 0\r\n\
         m=audio {port} {profile} 8 0 {TELEPHONE_EVENT_PT}\r\n\
         a=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:{TELEPHONE_EVENT_PT} telephone-event/8000\r\n\
         a=fmtp:{TELEPHONE_EVENT_PT} 0-16\r\n\
         a=ptime:20\r\n\
         a=sendrecv\r\n\
         {crypto}"
    )
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

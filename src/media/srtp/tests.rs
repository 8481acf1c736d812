//! RFC 3711 / libsrtp reference packets, round trips, rollover, replay and forgery.

use super::*;

/// RFC 3711 Appendix B.3's master key and salt (libsrtp's `srtp_validate` uses them too).
const MASTER: [u8; 30] = [
    0xe1, 0xf9, 0x7a, 0x0d, 0x3e, 0x01, 0x8b, 0xe0, 0xd6, 0x4f, 0xa3, 0x2c, 0x06, 0xde, 0x41, 0x39,
    0x0e, 0xc6, 0x75, 0xad, 0x49, 0x8a, 0xfe, 0xeb, 0xb6, 0x96, 0x0b, 0x3a, 0xab, 0xe6,
];
/// SSRC 0xcafebabe, sequence 0x1234, ROC 0, payload 16 × 0xab.
const PLAIN: [u8; 28] = [
    0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe, 0xba, 0xbe, 0xab, 0xab, 0xab, 0xab,
    0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
];
/// The payload is the RFC 3711 B.3 session key's (c61e7a93…, salt 30cbbc08…) counter-mode
/// keystream XOR 0xab; the last 10 bytes are the HMAC-SHA1-80 tag.
const CIPHER_80: [u8; 38] = [
    0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe, 0xba, 0xbe, 0x4e, 0x55, 0xdc, 0x4c,
    0xe7, 0x99, 0x78, 0xd8, 0x8c, 0xa4, 0xd2, 0x15, 0x94, 0x9d, 0x24, 0x02, 0xb7, 0x8d, 0x6a, 0xcc,
    0x99, 0xea, 0x17, 0x9b, 0x8d, 0xbb,
];

fn key() -> MasterKey {
    MasterKey::from_bytes(&MASTER).expect("30 bytes")
}

/// An RTP packet with this SSRC and sequence number and a recognisable payload.
fn rtp(ssrc: u32, seq: u16, pt: u8) -> Vec<u8> {
    let mut p = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&u32::from(seq).wrapping_mul(160).to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p.extend((0..160u32).map(|i| (i as u8) ^ (seq as u8)));
    p
}

#[test]
fn the_reference_packet_of_aes_cm_128_hmac_sha1_80() {
    let mut tx = Protector::new(Suite::AesCm128HmacSha1_80, &key()).expect("ctx");
    assert_eq!(tx.protect(&PLAIN).expect("protect"), CIPHER_80);
    let mut rx = Unprotector::new(Suite::AesCm128HmacSha1_80, &key()).expect("ctx");
    assert_eq!(rx.unprotect(&CIPHER_80).expect("unprotect"), PLAIN);
}

#[test]
fn the_reference_packet_of_aes_cm_128_hmac_sha1_32() {
    // The same keystream; the tag is the first 32 bits of the same HMAC-SHA1.
    let mut tx = Protector::new(Suite::AesCm128HmacSha1_32, &key()).expect("ctx");
    let out = tx.protect(&PLAIN).expect("protect");
    assert_eq!(out, CIPHER_80[..32]);
    assert_eq!(Suite::AesCm128HmacSha1_32.tag_len(), 4);
    let mut rx = Unprotector::new(Suite::AesCm128HmacSha1_32, &key()).expect("ctx");
    assert_eq!(rx.unprotect(&out).expect("unprotect"), PLAIN);
}

#[test]
fn round_trip_across_the_sequence_wrap_advances_the_rollover_counter() {
    for suite in Suite::ALL {
        let k = MasterKey::random().expect("key");
        let mut tx = Protector::new(suite, &k).expect("ctx");
        let mut rx = Unprotector::new(suite, &k).expect("ctx");
        let mut seq: u16 = 65_000;
        let mut after_wrap = Vec::new();
        for n in 0..1_200u32 {
            let plain = rtp(0x1234_5678, seq, if n % 50 == 0 { 101 } else { 8 });
            let sent = tx.protect(&plain).expect("protect");
            assert_eq!(sent.len(), plain.len() + suite.tag_len());
            assert_ne!(sent[12..plain.len()], plain[12..], "the payload is encrypted");
            assert_eq!(rx.unprotect(&sent).expect("unprotect"), plain, "{suite:?} seq {seq}");
            if seq < 100 {
                after_wrap.push(sent);
            }
            seq = seq.wrapping_add(1);
        }
        // After the wrap the ROC is 1: a packet keyed with ROC 0 and the same sequence number
        // differs from what was sent.
        let mut fresh = Protector::new(suite, &k).expect("ctx");
        let plain = rtp(0x1234_5678, 5, 8);
        let roc0 = fresh.protect(&plain).expect("protect");
        assert!(!after_wrap.contains(&roc0), "packets after the wrap use ROC 1");
    }
}

#[test]
fn replays_and_forgeries_are_refused() {
    let k = MasterKey::random().expect("key");
    let mut tx = Protector::new(Suite::AesCm128HmacSha1_80, &k).expect("ctx");
    let mut rx = Unprotector::new(Suite::AesCm128HmacSha1_80, &k).expect("ctx");
    let packets: Vec<Vec<u8>> =
        (1000..1300u16).map(|s| tx.protect(&rtp(7, s, 8)).expect("protect")).collect();
    // Out of order inside the window is fine.
    rx.unprotect(&packets[1]).expect("1");
    rx.unprotect(&packets[0]).expect("0 after 1");
    assert!(matches!(rx.unprotect(&packets[1]), Err(SrtpError::Replay { ssrc: 7, seq: 1001 })));
    for p in &packets[2..] {
        rx.unprotect(p).expect("in order");
    }
    // Far behind the window.
    assert!(matches!(rx.unprotect(&packets[5]), Err(SrtpError::Replay { .. })));
    // A flipped payload bit, a flipped header bit, a wrong key, a truncated packet.
    let next = tx.protect(&rtp(7, 1300, 8)).expect("protect");
    let mut bad = next.clone();
    bad[20] ^= 1;
    assert!(matches!(rx.unprotect(&bad), Err(SrtpError::Auth)));
    let mut bad = next.clone();
    bad[1] ^= 0x01;
    assert!(matches!(rx.unprotect(&bad), Err(SrtpError::Auth)));
    let mut other =
        Unprotector::new(Suite::AesCm128HmacSha1_80, &MasterKey::random().expect("key"))
            .expect("ctx");
    assert!(matches!(other.unprotect(&next), Err(SrtpError::Auth)));
    assert!(rx.unprotect(&next[..14]).is_err());
    // The genuine packet still passes after the forgeries.
    rx.unprotect(&next).expect("genuine");
}

#[test]
fn keys_are_random_and_never_shown() {
    let (a, b) = (MasterKey::random().expect("a"), MasterKey::random().expect("b"));
    assert_ne!(a, b);
    assert_eq!(format!("{a:?}"), "MasterKey(…)");
    assert!(MasterKey::from_bytes(&[0; 29]).is_none());
    assert_eq!(Suite::from_name("AES_CM_128_HMAC_SHA1_32"), Some(Suite::AesCm128HmacSha1_32));
    assert_eq!(Suite::from_name("AEAD_AES_128_GCM"), None);
}

//! Loopback tests of a media leg; every wait is bounded.

use super::*;
use rtp_rs::RtpReader;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

async fn socket() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.expect("bind")
}

/// A received packet, owned.
#[derive(Debug)]
struct Got {
    seq: u16,
    ts: u32,
    marker: bool,
    pt: u8,
    ssrc: u32,
    payload: Vec<u8>,
}

async fn recv(s: &UdpSocket) -> Got {
    let mut buf = [0u8; 2048];
    let (n, _) = tokio::time::timeout(WAIT, s.recv_from(&mut buf))
        .await
        .expect("a packet in time")
        .expect("recv");
    let p = RtpReader::new(&buf[..n]).expect("RTP");
    Got {
        seq: p.sequence_number().into(),
        ts: p.timestamp(),
        marker: p.mark(),
        pt: p.payload_type(),
        ssrc: p.ssrc(),
        payload: p.payload().to_vec(),
    }
}

fn packet(pt: u8, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    RtpPacketBuilder::new()
        .payload_type(pt)
        .ssrc(0x1234_5678)
        .sequence(Seq::from(seq))
        .timestamp(ts)
        .marked(marker)
        .payload(payload)
        .build()
        .expect("build")
}

#[tokio::test]
async fn a_prompt_is_sent_as_paced_g711_frames() {
    let far = socket().await;
    let leg = RtpLeg::start(socket().await, far.local_addr().expect("addr"), Codec::Pcma, None)
        .expect("leg");
    // 2.5 frames: the last one is padded with A-law silence.
    let samples: Vec<i16> = (0..400).map(|i| (i * 37 % 2000 - 1000) as i16).collect();
    let prompt = Prompt::from_samples(samples.clone());
    let cancel = CancellationToken::new();
    let started = std::time::Instant::now();
    let played = tokio::time::timeout(WAIT, leg.play(&prompt, &cancel)).await.expect("in time");
    assert_eq!(played.expect("played"), Played { frames: 3, cancelled: false });
    // 3 frames take 60 ms (the last one's 20 ms included); pacing never runs early.
    assert!(started.elapsed() >= Duration::from_millis(60), "{:?}", started.elapsed());
    let got = [recv(&far).await, recv(&far).await, recv(&far).await];
    let mut expected = vec![0xD5u8; 480];
    Codec::Pcma.encode_into(&samples, &mut expected);
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g.pt, 8);
        assert_eq!(g.ssrc, leg.ssrc());
        assert_eq!(g.marker, i == 0, "marker only on the first packet");
        assert_eq!(g.seq, got[0].seq.wrapping_add(i as u16));
        assert_eq!(g.ts, got[0].ts.wrapping_add(160 * i as u32));
        assert_eq!(g.payload, expected[i * 160..(i + 1) * 160]);
    }
    assert_eq!(&got[2].payload[80..], &[0xD5; 80][..], "padded with silence");

    // A second prompt continues the sequence and starts with a marker.
    let played = leg.play(&Prompt::from_samples(vec![0; 160]), &cancel).await.expect("played");
    assert_eq!(played.frames, 1);
    let g = recv(&far).await;
    assert!(g.marker);
    assert_eq!(g.seq, got[2].seq.wrapping_add(1));
    assert!(g.ts.wrapping_sub(got[2].ts) >= 160);
    assert_eq!(g.payload, vec![Codec::Pcma.encode(0); 160]);
    assert_eq!(leg.counters().0, 4);
}

#[tokio::test]
async fn pcmu_and_cancel() {
    let far = socket().await;
    let leg = RtpLeg::start(socket().await, far.local_addr().expect("addr"), Codec::Pcmu, None)
        .expect("leg");
    let cancel = CancellationToken::new();
    let prompt = Prompt::from_samples(vec![100; 160 * 50]);
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        stopper.cancel();
    });
    let played = tokio::time::timeout(WAIT, leg.play(&prompt, &cancel)).await.expect("in time");
    let played = played.expect("played");
    assert!(played.cancelled && played.frames < 10, "{played:?}");
    let g = recv(&far).await;
    assert_eq!((g.pt, g.payload[0]), (0, crate::media::g711::ulaw_encode(100)));
}

#[tokio::test]
async fn dtmf_events_are_decoded_once_each() {
    let far = socket().await;
    let leg =
        RtpLeg::start(socket().await, far.local_addr().expect("addr"), Codec::Pcma, Some(101))
            .expect("leg");
    let to = leg.local_addr().expect("addr");
    // '5': start, continuation, then the end packet three times, all with one timestamp;
    // then '#' and '*' with new timestamps, and an 'A' (ignored).
    let mut seq = 100u16;
    for (event, ts) in [(5u8, 8000u32), (11, 9600), (10, 11200), (12, 12800)] {
        for (end, duration) in
            [(false, 160u16), (false, 320), (true, 480), (true, 480), (true, 480)]
        {
            let d = duration.to_be_bytes();
            let payload = [event, if end { 0x80 | 10 } else { 10 }, d[0], d[1]];
            far.send_to(&packet(101, seq, ts, duration == 160, &payload), to).await.expect("send");
            seq = seq.wrapping_add(1);
        }
    }
    // An audio packet in between is not a digit.
    far.send_to(&packet(8, seq, 20000, false, &[0xD5; 160]), to).await.expect("send");
    let mut digits = String::new();
    while let Some(d) = leg.next_digit(Duration::from_millis(300)).await {
        digits.push(d);
    }
    assert_eq!(digits, "5#*");
    assert_eq!(leg.counters().1, 21);
}

#[tokio::test]
async fn symmetric_rtp_switches_to_the_source_of_incoming_rtp() {
    let sdp_target = socket().await;
    let actual = socket().await;
    let leg =
        RtpLeg::start(socket().await, sdp_target.local_addr().expect("addr"), Codec::Pcma, None)
            .expect("leg");
    let cancel = CancellationToken::new();
    let one = Prompt::from_samples(vec![0; 160]);
    leg.play(&one, &cancel).await.expect("play");
    recv(&sdp_target).await;
    // The far end's media comes from elsewhere (NAT, a media server beside the PBX).
    let to = leg.local_addr().expect("addr");
    actual.send_to(&packet(8, 1, 0, true, &[0xD5; 160]), to).await.expect("send");
    let deadline = std::time::Instant::now() + WAIT;
    while leg.remote() != actual.local_addr().expect("addr") {
        assert!(std::time::Instant::now() < deadline, "did not switch");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    leg.play(&one, &cancel).await.expect("play");
    let g = recv(&actual).await;
    assert!(g.marker);
    // Nothing more went to the SDP address.
    let mut buf = [0u8; 64];
    let late = tokio::time::timeout(Duration::from_millis(100), sdp_target.recv_from(&mut buf));
    assert!(late.await.is_err());
    // After latching, packets from a third address are ignored.
    let stranger = socket().await;
    stranger.send_to(&packet(8, 9, 0, true, &[0xD5; 160]), to).await.expect("send");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(leg.remote(), actual.local_addr().expect("addr"));
}

#[tokio::test]
async fn relay_carries_audio_both_ways_and_transcodes() {
    let patient = socket().await;
    let nurse = socket().await;
    let a = RtpLeg::start(socket().await, patient.local_addr().expect("addr"), Codec::Pcma, None)
        .expect("leg");
    let b = RtpLeg::start(socket().await, nurse.local_addr().expect("addr"), Codec::Pcmu, None)
        .expect("leg");
    let (a_addr, b_addr) = (a.local_addr().expect("addr"), b.local_addr().expect("addr"));
    let cancel = CancellationToken::new();
    let relaying = async {
        relay(&a, &b, &cancel).await;
    };
    let test = async {
        let voice: Vec<u8> = (0..160).map(|i| Codec::Pcma.encode(i * 100 - 8000)).collect();
        patient.send_to(&packet(8, 7, 1000, true, &voice), a_addr).await.expect("send");
        let g = recv(&nurse).await;
        let mut expected = voice.clone();
        Codec::Pcmu.transcode_from(Codec::Pcma, &mut expected);
        assert_eq!((g.pt, g.marker, g.ssrc), (0, true, b.ssrc()));
        assert_eq!(g.payload, expected);

        let reply: Vec<u8> = (0..160).map(|i| Codec::Pcmu.encode(4000 - i * 50)).collect();
        nurse.send_to(&packet(0, 3, 50, false, &reply), b_addr).await.expect("send");
        let g = recv(&patient).await;
        let mut expected = reply.clone();
        Codec::Pcma.transcode_from(Codec::Pcmu, &mut expected);
        assert_eq!((g.pt, g.ssrc), (8, a.ssrc()));
        assert_eq!(g.payload, expected);
        // A second frame follows with the next sequence number and timestamp.
        nurse.send_to(&packet(0, 4, 210, false, &reply), b_addr).await.expect("send");
        let g2 = recv(&patient).await;
        assert_eq!((g2.seq, g2.ts), (g.seq.wrapping_add(1), g.ts.wrapping_add(160)));
        cancel.cancel();
    };
    tokio::time::timeout(WAIT, async { tokio::join!(relaying, test) }).await.expect("in time");
    // Once the relay has ended, nothing is forwarded.
    patient.send_to(&packet(8, 8, 1160, false, &[0xD5; 160]), a_addr).await.expect("send");
    let mut buf = [0u8; 256];
    let late = tokio::time::timeout(Duration::from_millis(100), nurse.recv_from(&mut buf));
    assert!(late.await.is_err(), "forwarded after the relay ended");
}

#[test]
fn a_new_talk_spurt_moves_the_timestamp_by_the_pause() {
    let t0 = Instant::now();
    let mut s = SendState { seq: u16::MAX, ts: u32::MAX - 100, last: None };
    assert_eq!(s.stamp(160, true, t0), (u16::MAX, u32::MAX - 100));
    assert_eq!(s.stamp(160, false, t0 + FRAME), (0, 59));
    // One second later: 1 s minus the 20 ms the previous frame lasted = 7840 samples.
    assert_eq!(s.stamp(160, true, t0 + FRAME + Duration::from_secs(1)), (1, 219 + 7840));
    assert_eq!(event_digit(9), Some('9'));
    assert_eq!(event_digit(15), None);
}

#[tokio::test]
async fn an_srtp_leg_encrypts_what_it_sends_and_takes_only_authentic_packets() {
    use crate::media::sdes::Keys;
    use crate::media::srtp::{MasterKey, Protector, Suite, Unprotector};
    let far = socket().await;
    let keys = Keys {
        suite: Suite::AesCm128HmacSha1_80,
        local: MasterKey::random().expect("key"),
        remote: MasterKey::random().expect("key"),
    };
    let media = RemoteMedia {
        addr: far.local_addr().expect("addr"),
        codec: Codec::Pcma,
        pt: 8,
        dtmf_pt: Some(101),
        ptime_ms: 20,
        direction: crate::media::sdp::Direction::SendRecv,
    };
    let leg = RtpLeg::secured(socket().await, &media, Some(&keys)).expect("leg");
    assert!(leg.is_secure());
    let to = leg.local_addr().expect("addr");
    // What the leg sends is SRTP under our key: the far end decrypts it.
    let prompt = Prompt::from_samples(vec![1000i16; 160]);
    leg.play(&prompt, &CancellationToken::new()).await.expect("play");
    let mut buf = [0u8; 2048];
    let (n, _) =
        tokio::time::timeout(WAIT, far.recv_from(&mut buf)).await.expect("in time").expect("recv");
    assert_eq!(n, HEADER + 160 + 10, "header, payload, 80-bit tag");
    let mut far_rx = Unprotector::new(keys.suite, &keys.local).expect("ctx");
    let plain = far_rx.unprotect(&buf[..n]).expect("authentic");
    let p = RtpReader::new(&plain).expect("RTP");
    assert_eq!(p.payload()[0], Codec::Pcma.encode(1000));
    assert_ne!(&buf[HEADER..HEADER + 160], p.payload(), "the payload is not sent in clear");
    // Plain RTP and a replayed event are refused; SRTP DTMF from the far end is a digit.
    let mut far_tx = Protector::new(keys.suite, &keys.remote).expect("ctx");
    far.send_to(&packet(101, 1, 8000, true, &[7, 0x8a, 0, 160]), to).await.expect("send");
    let event = far_tx.protect(&packet(101, 2, 9600, true, &[3, 0x8a, 0, 160])).expect("protect");
    far.send_to(&event, to).await.expect("send");
    far.send_to(&event, to).await.expect("replay");
    assert_eq!(leg.next_digit(WAIT).await, Some('3'));
    assert_eq!(leg.next_digit(Duration::from_millis(300)).await, None);
    assert_eq!(leg.counters().1, 1, "one authentic packet");
    assert_eq!(leg.rejected(), 2, "the plain packet and the replay");
}

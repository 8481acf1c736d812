//! A media leg: one RTP stream over one UDP socket to one far end (the edge of the media
//! layer; everything else in `media` is pure).
//!
//! - **Sending prompts** ([`RtpLeg::play`]): 160-sample G.711 frames paced from a start
//!   instant (frame *n* is due at `start + n × 20 ms`, so there is no drift however long
//!   the prompt), sequence +1 and timestamp +160 per packet, the marker bit on the first
//!   packet of each prompt, one random SSRC per leg, the last frame padded with silence.
//! - **Symmetric RTP**: the receiver task latches on to the source of the first RTP packet
//!   that arrives and sends there from then on (NAT, or a PBX whose media comes from
//!   another address than its SDP says); packets from other sources are then ignored.
//! - **DTMF in**: RFC 4733 telephone-events are turned into digits, one per event
//!   (retransmitted packets of an event share its RTP timestamp and are dropped), read with
//!   [`RtpLeg::next_digit`].
//! - **Relay** ([`relay`]): two legs bridged both ways, transcoding A-law ↔ μ-law.
//! - **SRTP** (when the answer accepted our SDES keys, [`RtpLeg::secured`]): every packet
//!   sent is protected with our key, every datagram received is authenticated and decrypted
//!   with the far end's before anything else looks at it (DTMF events included); one that
//!   fails (forged, replayed, plain RTP) is dropped and counted, and never latches the
//!   far end's address.

use super::g711::Codec;
use super::sdes::Keys;
use super::sdp::RemoteMedia;
use super::srtp::{Protector, SrtpError, Unprotector};
use super::wav::Prompt;
use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Samples per 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
/// The frame interval.
pub const FRAME: Duration = Duration::from_millis(20);
/// Largest payload handled (a 1500-byte MTU's worth).
const MAX_PAYLOAD: usize = 1460;
/// RTP fixed header.
const HEADER: usize = 12;
/// Digits buffered before the reader takes them; more are dropped.
const DIGIT_BUFFER: usize = 32;

/// A media failure on a leg.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Sending or receiving on the socket failed.
    #[error("RTP socket: {0}")]
    Io(#[from] std::io::Error),
    /// The packet could not be built (a payload too large).
    #[error("RTP packet: {0:?}")]
    Build(rtp_rs::RtpPacketBuildError),
    /// SRTP could not be set up or refused to protect a packet.
    #[error(transparent)]
    Srtp(#[from] SrtpError),
}

/// What [`RtpLeg::play`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Played {
    /// Frames (packets) sent.
    pub frames: usize,
    /// True when the cancel token stopped the prompt before its end.
    pub cancelled: bool,
}

/// Sequence number and timestamp of the next packet; shared by everything that sends on a
/// leg (a prompt, or the relay from the other leg), so the stream stays continuous.
#[derive(Debug)]
struct SendState {
    seq: u16,
    ts: u32,
    last: Option<Instant>,
}

impl SendState {
    /// Stamps a packet of `samples` samples sent `now`. A new talk-spurt (`marker`) after a
    /// pause moves the timestamp on by the pause, as RFC 3550 asks, so the far end's jitter
    /// buffer sees real time; inside a talk-spurt the timestamp advances by the samples.
    fn stamp(&mut self, samples: u32, marker: bool, now: Instant) -> (u16, u32) {
        if marker {
            if let Some(last) = self.last {
                let gap = now.saturating_duration_since(last).saturating_sub(FRAME);
                self.ts = self.ts.wrapping_add((gap.as_micros() / 125) as u32);
            }
        }
        let stamped = (self.seq, self.ts);
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(samples);
        self.last = Some(now);
        stamped
    }

    /// Accounts for `frames` frames that were due but never sent (the pacer gave them up):
    /// sequence and timestamp move on as if they had been, so the far end sees a loss.
    fn skip(&mut self, frames: u32) {
        self.seq = self.seq.wrapping_add(frames as u16);
        self.ts = self.ts.wrapping_add(frames.wrapping_mul(FRAME_SAMPLES as u32));
    }
}

/// The state of a leg shared between its handle ([`RtpLeg`]), its receiver task and the
/// receiver task of a leg relayed to it.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) socket: super::rt::MediaSocket,
    pub(super) codec: Codec,
    pt: u8,
    dtmf_pt: Option<u8>,
    pub(super) ssrc: u32,
    /// Where packets go: the SDP address, replaced once by the source of the first RTP
    /// packet received (written by the receiver task, read by every send).
    remote: Mutex<SocketAddr>,
    /// Set by the receiver task when it has latched on to a source.
    latched: AtomicBool,
    send: Mutex<SendState>,
    /// The leg this one's incoming audio is relayed to: set and cleared by [`relay`] (a
    /// `Weak`, so two relayed legs never keep each other alive); read by the receiver task.
    peer: Mutex<Option<Weak<Shared>>>,
    /// Packets sent and RTP packets received (for logs and tests).
    sent: AtomicU64,
    received: AtomicU64,
    /// SRTP: our sending context (locked only while a packet is protected, never across
    /// an await); `None` for plain RTP.
    protect: Option<Mutex<Protector>>,
    /// Datagrams the SRTP receiver refused (authentication, replay, not SRTP).
    rejected: AtomicU64,
}

impl Shared {
    pub(super) fn remote(&self) -> SocketAddr {
        *self.remote.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Builds the next packet of this leg into `out`: its SSRC, next sequence number and
    /// timestamp (`now` is when it leaves, for a talk-spurt's timestamp jump), protected
    /// when the leg runs SRTP.
    pub(super) fn build(
        &self,
        payload: &[u8],
        marker: bool,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<(), MediaError> {
        let (seq, ts) = self.send.lock().unwrap_or_else(|e| e.into_inner()).stamp(
            payload.len() as u32,
            marker,
            now,
        );
        let mut buf = [0u8; HEADER + MAX_PAYLOAD];
        let len = RtpPacketBuilder::new()
            .payload_type(self.pt)
            .ssrc(self.ssrc)
            .sequence(Seq::from(seq))
            .timestamp(ts)
            .marked(marker)
            .payload(payload)
            .build_into(&mut buf)
            .map_err(MediaError::Build)?;
        out.clear();
        match &self.protect {
            Some(p) => {
                let packet = p.lock().unwrap_or_else(|e| e.into_inner()).protect(&buf[..len])?;
                out.extend_from_slice(&packet);
            }
            None => out.extend_from_slice(&buf[..len]),
        }
        Ok(())
    }

    /// Sends one datagram at once, without waiting: a full send buffer is an error
    /// (`WouldBlock`), as late media is of no use. Callable from any thread.
    pub(super) fn send_now(&self, packet: &[u8], to: SocketAddr) -> std::io::Result<()> {
        socket2::SockRef::from(self.socket.get_ref()).send_to(packet, &to.into())?;
        Ok(())
    }

    /// Moves sequence and timestamp on by `frames` frames never sent.
    pub(super) fn skip(&self, frames: u32) {
        self.send.lock().unwrap_or_else(|e| e.into_inner()).skip(frames);
    }

    /// Counts packets sent.
    pub(super) fn count_sent(&self, n: usize) {
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Sends one packet now (the relay's path; the pacer batches its own).
    fn forward(&self, payload: &[u8], marker: bool, out: &mut Vec<u8>) -> Result<(), MediaError> {
        self.build(payload, marker, Instant::now(), out)?;
        self.send_now(out, self.remote())?;
        self.count_sent(1);
        Ok(())
    }
}

/// One RTP stream to one far end. Dropping it stops its receiver task and closes the
/// socket.
#[derive(Debug)]
pub struct RtpLeg {
    shared: Arc<Shared>,
    /// DTMF digits. Sender: the receiver task, one `char` per RFC 4733 event (`try_send`:
    /// a digit is dropped when [`DIGIT_BUFFER`] are already waiting). Receiver:
    /// [`RtpLeg::next_digit`] (the mutex lets it take `&self`). Closes when the receiver
    /// task ends: the socket failed, or the leg was dropped (the task is aborted).
    digits: tokio::sync::Mutex<mpsc::Receiver<char>>,
    /// The receiver task: reads every datagram of the socket, latches the far end's
    /// address, decodes DTMF and forwards audio to a relay peer. Aborted on drop.
    receiver: JoinHandle<()>,
}

impl Drop for RtpLeg {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

impl RtpLeg {
    /// Starts a leg on `socket` (bound locally; its port is the one in our SDP offer)
    /// sending `codec` to `remote` (from the answer), with RFC 4733 DTMF on `dtmf_pt`.
    /// Spawns the receiver task: call inside a tokio runtime. Fails when the socket cannot
    /// be watched (`epoll_ctl(2)` refused it).
    pub fn start(
        socket: UdpSocket,
        remote: SocketAddr,
        codec: Codec,
        dtmf_pt: Option<u8>,
    ) -> Result<RtpLeg, MediaError> {
        Self::start_with_pt(socket, remote, codec, codec.payload_type(), dtmf_pt, None)
    }

    /// Starts a leg as the SDP answer says (codec, its payload type, DTMF payload type).
    pub fn from_answer(socket: UdpSocket, media: &RemoteMedia) -> Result<RtpLeg, MediaError> {
        Self::start_with_pt(socket, media.addr, media.codec, media.pt, media.dtmf_pt, None)
    }

    /// [`RtpLeg::from_answer`], with SRTP when `keys` are given (see
    /// [`super::sdes::negotiate`]).
    pub fn secured(
        socket: UdpSocket,
        media: &RemoteMedia,
        keys: Option<&Keys>,
    ) -> Result<RtpLeg, MediaError> {
        let srtp = keys.map(Keys::contexts).transpose()?;
        if let Some(k) = keys {
            tracing::info!(suite = k.suite.name(), "media secured with SRTP");
        }
        Self::start_with_pt(socket, media.addr, media.codec, media.pt, media.dtmf_pt, srtp)
    }

    fn start_with_pt(
        socket: UdpSocket,
        remote: SocketAddr,
        codec: Codec,
        pt: u8,
        dtmf_pt: Option<u8>,
        srtp: Option<(Protector, Unprotector)>,
    ) -> Result<RtpLeg, MediaError> {
        let (protect, unprotect) =
            srtp.map_or((None, None), |(p, u)| (Some(Mutex::new(p)), Some(u)));
        // The receiver runs on the media runtime (see `super::rt`).
        let (socket, media) = super::rt::rehome(socket)?;
        let shared = Arc::new(Shared {
            socket,
            codec,
            pt,
            dtmf_pt,
            ssrc: rand::random(),
            remote: Mutex::new(remote),
            latched: AtomicBool::new(false),
            send: Mutex::new(SendState { seq: rand::random(), ts: rand::random(), last: None }),
            peer: Mutex::new(None),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            protect,
            rejected: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel(DIGIT_BUFFER);
        let task = receive(shared.clone(), tx, unprotect);
        let receiver = match media {
            Some(rt) => rt.spawn(task),
            None => tokio::spawn(task),
        };
        Ok(RtpLeg { shared, digits: tokio::sync::Mutex::new(rx), receiver })
    }

    /// The state shared with the pacer (its tests drive it directly).
    #[cfg(test)]
    pub(super) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Sends to `remote` from now on (a new offer moved the far end's media, RFC 3264 §8),
    /// and latches again on the first packet received (symmetric RTP).
    pub fn retarget(&self, remote: SocketAddr) {
        *self.shared.remote.lock().unwrap_or_else(|e| e.into_inner()) = remote;
        self.shared.latched.store(false, Ordering::Release);
    }

    /// The local RTP address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.shared.socket.get_ref().local_addr()
    }

    /// Where packets are sent now (the SDP address, or the latched source).
    pub fn remote(&self) -> SocketAddr {
        self.shared.remote()
    }

    /// The codec sent on this leg.
    pub fn codec(&self) -> Codec {
        self.shared.codec
    }

    /// This leg's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.shared.ssrc
    }

    /// Packets sent so far and RTP packets received so far.
    pub fn counters(&self) -> (u64, u64) {
        (self.shared.sent.load(Ordering::Relaxed), self.shared.received.load(Ordering::Relaxed))
    }

    /// True when the leg runs SRTP.
    pub fn is_secure(&self) -> bool {
        self.shared.protect.is_some()
    }

    /// Datagrams SRTP refused so far (forged, replayed, or not SRTP).
    pub fn rejected(&self) -> u64 {
        self.shared.rejected.load(Ordering::Relaxed)
    }

    /// Plays `prompt` to the far end, returning after its last frame has had its 20 ms.
    /// The frames are sent by the pacer ([`super::pacer`]): frame *n* at tick *k₀ + n* of
    /// its absolute 20 ms grid, *k₀* being the first tick after the call, so lateness never
    /// accumulates. `cancel` (or dropping the future) stops it before the next frame (e.g.
    /// the patient pressed a key or hung up); that is not an error.
    pub async fn play(
        &self,
        prompt: &Prompt,
        cancel: &CancellationToken,
    ) -> Result<Played, MediaError> {
        let (frames, cancelled) =
            super::pacer::play(self.shared.clone(), prompt.encoded(self.shared.codec), cancel)
                .await?;
        Ok(Played { frames, cancelled })
    }

    /// The next DTMF digit (`0`-`9`, `*`, `#`) the far end sent, waiting at most `timeout`;
    /// `None` on timeout or when the receiver task has ended. Digits pressed before the
    /// call are kept in order (type-ahead); [`RtpLeg::clear_digits`] forgets them.
    pub async fn next_digit(&self, timeout: Duration) -> Option<char> {
        let mut rx = self.digits.lock().await;
        tokio::time::timeout(timeout, rx.recv()).await.ok().flatten()
    }

    /// Forgets digits received so far (e.g. before asking a new question).
    pub async fn clear_digits(&self) {
        let mut rx = self.digits.lock().await;
        while rx.try_recv().is_ok() {}
    }
}

/// Bridges two legs both ways until `cancel` fires: audio arriving on `a` is sent on `b`
/// and the other way round, re-stamped with the sending leg's SSRC, sequence and
/// timestamps, transcoded when the legs' codecs differ. Forwarding happens in each leg's
/// receiver task (one hop, no queue). DTMF is not forwarded (it still arrives on each
/// leg's digit channel). Prompts may be played on either leg meanwhile.
pub async fn relay(a: &RtpLeg, b: &RtpLeg, cancel: &CancellationToken) {
    /// Unlinks the legs however `relay` ends (also when its future is dropped).
    struct Link<'a>(&'a Shared, &'a Shared);
    impl Drop for Link<'_> {
        fn drop(&mut self) {
            *self.0.peer.lock().unwrap_or_else(|e| e.into_inner()) = None;
            *self.1.peer.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
    *a.shared.peer.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::downgrade(&b.shared));
    *b.shared.peer.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::downgrade(&a.shared));
    let _link = Link(&a.shared, &b.shared);
    cancel.cancelled().await;
}

/// The digit of an RFC 4733 DTMF event code (0-9, 10 = `*`, 11 = `#`); A-D and other
/// events are ignored.
pub fn event_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        _ => None,
    }
}

/// The receiver task of a leg (see [`RtpLeg::receiver`]). At each wake-up it reads the
/// datagrams that are ready, up to [`RECV_BATCH`] per system call (`recvmmsg(2)`), and
/// handles each at once (a relayed one is forwarded before the next is handled, without
/// waiting: [`Shared::send_now`]). A read that returns fewer than it asked for has emptied
/// the socket, so the task waits again without a further read only to learn that (tokio
/// keeps a datagram that arrived meanwhile as a new readiness event). Ends on a socket
/// error or when aborted.
///
/// The buffers it reads into belong to the thread, not the leg ([`BATCH`]): every leg of a
/// media thread reads into the same few KiB, which stay in the CPU's cache, where a
/// buffer per leg would spread a burst of 1,000 legs' packets over 16 MiB.
async fn receive(shared: Arc<Shared>, digits: mpsc::Sender<char>, unprotect: Option<Unprotector>) {
    let mut rx = Receiver {
        shared,
        digits,
        unprotect,
        plain: Vec::new(),
        out: Vec::with_capacity(HEADER + MAX_PAYLOAD + 32),
        last_event: None,
    };
    // Its own handle, so the readiness guard does not borrow `rx`.
    let shared = rx.shared.clone();
    loop {
        let mut ready = match shared.socket.readable().await {
            Ok(ready) => ready,
            Err(e) => {
                tracing::warn!(error = %e, "RTP receive failed; the leg no longer receives");
                return;
            }
        };
        loop {
            // Reads and handles one batch; nothing awaits while the thread's buffers are
            // borrowed.
            let read = ready.try_io(|socket| {
                BATCH.with_borrow_mut(|batch| {
                    let batch = batch.get_or_insert_with(Batch::new);
                    let n = batch.read(socket.get_ref())?;
                    for (datagram, from) in batch.datagrams() {
                        rx.take(datagram, from);
                    }
                    if n < RECV_BATCH {
                        // Emptied: WouldBlock tells tokio to wait.
                        return Err(std::io::ErrorKind::WouldBlock.into());
                    }
                    Ok(())
                })
            });
            match read {
                Ok(Ok(())) => {}
                // Emptied (or nothing there): tokio waits for the next datagram.
                Err(_would_block) => break,
                // ICMP errors reported on some platforms: the far end is not there (yet).
                Ok(Err(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                    ) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "RTP receive failed; the leg no longer receives");
                    return;
                }
            }
        }
    }
}

/// Datagrams read from a socket per `recvmmsg(2)`.
const RECV_BATCH: usize = 8;

thread_local! {
    /// The receive buffers of the legs running on this thread (see [`receive`]); made at
    /// the thread's first datagram.
    static BATCH: std::cell::RefCell<Option<Batch>> = const { std::cell::RefCell::new(None) };
}

/// The buffers of one batched read and what it received.
struct Batch {
    bufs: Box<[[u8; 2048]; RECV_BATCH]>,
    /// `recvmmsg`'s headers and sender addresses, reused from read to read.
    headers: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
    /// Length and sender of each datagram of the last read, in order.
    got: Vec<(usize, SocketAddr)>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            bufs: Box::new([[0u8; 2048]; RECV_BATCH]),
            headers: nix::sys::socket::MultiHeaders::preallocate(RECV_BATCH, None),
            got: Vec::with_capacity(RECV_BATCH),
        }
    }

    /// Reads up to [`RECV_BATCH`] ready datagrams without waiting, replacing those of the
    /// last read; how many (never 0: an empty socket is `WouldBlock`).
    fn read(&mut self, socket: &std::net::UdpSocket) -> std::io::Result<usize> {
        use nix::sys::socket::{MsgFlags, recvmmsg};
        use std::os::fd::AsRawFd;
        self.got.clear();
        let mut iovs: [[std::io::IoSliceMut<'_>; 1]; RECV_BATCH] =
            self.bufs.each_mut().map(|b| [std::io::IoSliceMut::new(b)]);
        let results = recvmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            &mut iovs,
            MsgFlags::MSG_DONTWAIT,
            None,
        )
        .map_err(std::io::Error::from)?;
        for r in results {
            // A datagram without a usable sender address is dropped (not an IP peer).
            if let Some(from) = r.address.and_then(|a| sockaddr(&a)) {
                self.got.push((r.bytes, from));
            } else {
                self.got.push((0, SocketAddr::from(([0, 0, 0, 0], 0))));
            }
        }
        Ok(self.got.len())
    }

    /// The datagrams of the last read.
    fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        self.got
            .iter()
            .zip(self.bufs.iter())
            .filter(|((len, _), _)| *len > 0)
            .map(|((len, from), buf)| (&buf[..(*len).min(buf.len())], *from))
    }
}

/// The IP address of a received datagram's sender.
fn sockaddr(a: &nix::sys::socket::SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::from((v6.ip(), v6.port())))
}

/// What a leg's receiver task keeps between datagrams.
#[derive(Debug)]
struct Receiver {
    shared: Arc<Shared>,
    digits: mpsc::Sender<char>,
    unprotect: Option<Unprotector>,
    /// The decrypted packet when the leg runs SRTP.
    plain: Vec<u8>,
    /// The packet being forwarded to a relay peer.
    out: Vec<u8>,
    /// RTP timestamp of the last DTMF event turned into a digit.
    last_event: Option<u32>,
}

impl Receiver {
    /// Handles one datagram from `from`.
    fn take(&mut self, datagram: &[u8], from: SocketAddr) {
        let shared = &self.shared;
        let datagram = match self.unprotect.as_mut() {
            None => datagram,
            Some(srtp) => match srtp.unprotect(datagram) {
                Ok(p) => {
                    self.plain = p;
                    &self.plain
                }
                Err(e) => {
                    // Warn once per leg; a flood of forgeries must not flood the log.
                    if shared.rejected.fetch_add(1, Ordering::Relaxed) == 0 {
                        tracing::warn!(error = %e, %from, "SRTP packet refused (further ones are counted, not logged)");
                    }
                    return;
                }
            },
        };
        let Ok(packet) = RtpReader::new(datagram) else { return };
        if !shared.latched.load(Ordering::Acquire) {
            let mut remote = shared.remote.lock().unwrap_or_else(|e| e.into_inner());
            if *remote != from {
                tracing::debug!(sdp = %*remote, actual = %from, "symmetric RTP: sending to the source");
                *remote = from;
            }
            shared.latched.store(true, Ordering::Release);
        } else if shared.remote() != from {
            return;
        }
        shared.received.fetch_add(1, Ordering::Relaxed);
        let pt = packet.payload_type();
        let payload = packet.payload();
        if Some(pt) == shared.dtmf_pt {
            if payload.len() >= 4 && self.last_event != Some(packet.timestamp()) {
                self.last_event = Some(packet.timestamp());
                if let Some(d) = event_digit(payload[0]) {
                    let _ = self.digits.try_send(d);
                }
            }
            return;
        }
        let codec = if pt == shared.pt { Some(shared.codec) } else { Codec::from_payload_type(pt) };
        let Some(codec) = codec else { return };
        let peer = shared.peer.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(peer) = peer.and_then(|p| p.upgrade()) else { return };
        let n = payload.len().min(MAX_PAYLOAD);
        let sent = if peer.codec == codec {
            peer.forward(&payload[..n], packet.mark(), &mut self.out)
        } else {
            let mut audio = [0u8; MAX_PAYLOAD];
            audio[..n].copy_from_slice(&payload[..n]);
            peer.codec.transcode_from(codec, &mut audio[..n]);
            peer.forward(&audio[..n], packet.mark(), &mut self.out)
        };
        if let Err(e) = sent {
            tracing::debug!(error = %e, "relay: send failed");
        }
    }
}

#[cfg(test)]
mod tests;

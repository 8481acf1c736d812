//! The RTP pacers: a thread per CPU, each sending the prompt frames of its share of the
//! playing legs (new prompts take the pacers in turn).
//!
//! Time is cut into 20 ms ticks on absolute grids. A leg joins one of its pacer's phases
//! (the least busy; [`PHASES`] in all, 1 ms apart): tick *k* of phase *p* starts at
//! `epoch + p ms + k × 20 ms`, `epoch` being when the pacers started. At each tick of a phase the pacer thread wakes and,
//! in one pass over that phase's legs in a stable order, sends each frame that is due:
//! frame *n* of a prompt whose first frame went out at tick *k₀* is due at tick *k₀ + n*.
//! A prompt's first frame waits for the first tick of its phase that has not yet begun
//! when the pacer takes it ([`start_tick`]), so its second frame follows a whole frame later.
//! So the send time of a frame depends neither on how many legs play nor on when the
//! previous pass ended; a leg keeps its phase and its place in the pass (and so its offset
//! from the tick) for the whole prompt; and a wake-up sends a twentieth of the frames of a
//! 20 ms period, so the last leg of a pass is not held behind all the others.
//!
//! - **Exact stamps.** Sequence numbers and timestamps come from the leg's send state
//!   (shared with the relay): sequence +1 and timestamp +160 per frame, the marker bit on a
//!   prompt's first frame. A frame never sent (see catch-up) still advances both, so the far
//!   end sees a loss at the right time rather than a shifted stream.
//! - **Catch-up.** A pass that starts late (the machine was busy) sends every frame whose
//!   tick has come, never one whose tick is still ahead: at most [`MAX_BURST`] frames per
//!   leg in one pass (the grid's own catch-up, not a burst ahead of it); older ones are
//!   skipped as lost.
//! - **Batched sends.** The frames of one leg that are due in the same pass leave in one
//!   `sendmmsg(2)`; a single frame in one `sendto(2)`. The thread asks the kernel for a
//!   1 µs timer slack so its wake-ups land on the grid, and for a raised priority
//!   ([`super::rt::raise_priority`]) so they are not queued behind other work.
//! - **Finishing.** A prompt is done at the tick after its last frame (the last frame has had
//!   its 20 ms); cancelling it stops it before the next pass sends anything more.
//!
//! - **A pacer per CPU** ([`super::rt::media_threads`], at most [`PHASES`]). When a core
//!   stalls (on a virtual machine the host may take it away for milliseconds) only the
//!   legs of the pacer on it fall behind, and each pacer needs a smaller share of its core,
//!   so it catches up sooner when the machine slows down: on the 2-core bench host two
//!   pacers gave a send-time p99 of 2.8–5.9 ms where one gave 38–86 ms in the same hour
//!   (BENCHMARKS.md, "Media").
//! - **One grid for all pacers.** They share the epoch and split the phases between them
//!   ([`own_phases`]: pacer *i* of *n* serves phases *i*, *i + n*, …), so the machine
//!   wakes as often for *n* pacers as for one: at most once per phase per tick. Each pacer
//!   on a grid of its own woke the machine 1,000 times a second, and every wake-up of a
//!   real-time thread takes a core from whatever ran there.
//!
//! [`Grid`] is the pure part (which frames are due at a tick); the threads are the edge.
//! They start with the first prompt played and then live as long as the process, parked
//! while nothing plays.

use super::rtp::{FRAME, FRAME_SAMPLES, MediaError, Shared};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Most frames of one leg sent in one pass: a pass later than this many ticks skips the
/// older frames instead of sending them in a burst.
pub const MAX_BURST: u64 = 3;

/// Where a prompt stands on the pacer's grid. Pure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    /// The tick of frame 0.
    pub first_tick: u64,
    /// Frames in the prompt.
    pub frames: u64,
    /// The next frame not yet sent or skipped.
    pub next: u64,
}

/// What a pass at one tick does for one prompt: skip `skip` frames (too late to be of use),
/// then send the frames `send`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// Frames given up as lost.
    pub skip: u64,
    /// Frames to send now, in order.
    pub send: Range<u64>,
}

impl Grid {
    /// A prompt of `frames` frames whose frame 0 is due at `first_tick`.
    pub fn new(first_tick: u64, frames: u64) -> Grid {
        Grid { first_tick, frames, next: 0 }
    }

    /// The frames due at `tick`: every frame whose tick has come and that is not yet sent,
    /// at most [`MAX_BURST`] of them (the newest); none whose tick is still ahead.
    pub fn due(&self, tick: u64) -> Due {
        if tick < self.first_tick {
            return Due { skip: 0, send: self.next..self.next };
        }
        let upto = (tick - self.first_tick + 1).min(self.frames);
        let from = self.next.max(upto.saturating_sub(MAX_BURST));
        Due { skip: from.saturating_sub(self.next), send: from.max(self.next)..upto.max(self.next) }
    }

    /// Records that `due` was carried out.
    pub fn advance(&mut self, due: &Due) {
        self.next = due.send.end.max(self.next + due.skip);
    }

    /// True once every frame is sent and the last one has had its 20 ms, at `tick`.
    pub fn finished(&self, tick: u64) -> bool {
        self.next >= self.frames && tick >= self.first_tick + self.frames
    }
}

/// The tick `at` falls in (0 before `epoch`).
pub fn tick_of(epoch: Instant, at: Instant) -> u64 {
    (at.saturating_duration_since(epoch).as_nanos() / FRAME.as_nanos()) as u64
}

/// The first tick of a phase (its grid starting at `epoch`, its next pass serving `next`)
/// that has not begun at `now`: where a prompt handed to the pacer by `now` starts, and
/// where an idle phase resumes. A tick already under way (a stale `next`, or a pass running
/// late) would put the prompt's first frame late in its tick and its second less than a
/// frame after it.
pub fn start_tick(next: u64, epoch: Instant, now: Instant) -> u64 {
    next.max(tick_of(epoch, now) + 1)
}

/// The start of tick `tick`.
pub fn tick_start(epoch: Instant, tick: u64) -> Instant {
    epoch + FRAME * u32::try_from(tick).unwrap_or(u32::MAX)
}

/// One packet as the pacer sent it (kept only while recording, see [`record_sends`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentPacket {
    /// The leg's SSRC.
    pub ssrc: u32,
    /// Index of the frame in its prompt.
    pub frame: u64,
    /// The start of the tick the frame was due at.
    pub due: Instant,
    /// Taken just before the send system call.
    pub at: Instant,
}

/// A prompt being played: what the pacer thread holds per leg.
#[derive(Debug)]
struct Job {
    leg: Arc<Shared>,
    /// The prompt in the leg's codec, whole frames ([`super::Prompt::encoded`]).
    codes: Arc<[u8]>,
    /// Where the prompt stands; put on its phase's grid when the pacer takes the job.
    grid: Grid,
    /// Cancelled by the player (also when its future is dropped): the job is dropped at the
    /// next pass without sending anything more.
    stop: CancellationToken,
    /// Frames sent so far; read by the player.
    sent: Arc<AtomicUsize>,
    /// Told once when the prompt is finished or its socket failed. Receiver: the player.
    done: Option<oneshot::Sender<Result<(), MediaError>>>,
}

/// The pacer: the jobs handed over since the last pass and the thread to wake.
#[derive(Debug)]
struct Pacer {
    /// New prompts. Pushed by players, drained by the thread at each pass.
    intake: Mutex<Vec<Job>>,
    thread: std::thread::Thread,
    /// Send records, when a benchmark asked for them.
    record: Mutex<Option<Vec<SentPacket>>>,
}

/// The pacer threads, one per CPU (see [`super::rt::media_threads`]); started together
/// with the first prompt played.
static PACERS: OnceLock<Vec<Arc<Pacer>>> = OnceLock::new();
static START: Mutex<()> = Mutex::new(());
/// Which pacer takes the next prompt.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The phases pacer `i` of `n` serves: `i`, `i + n`, `i + 2n`, … below [`PHASES`] (all of
/// them when `n` is 1; none when `i` ≥ [`PHASES`]). Pure.
pub fn own_phases(i: usize, n: usize) -> Vec<usize> {
    (0..PHASES).filter(|p| p % n.max(1) == i).collect()
}

/// How many pacers: one per CPU ([`super::rt::media_threads`]), at most one per phase.
fn pacer_count() -> usize {
    super::rt::media_threads().clamp(1, PHASES)
}

/// Every pacer, started on first use. A pacer whose thread cannot be started is left out
/// (logged): its phases stay empty, as no prompt is given to it. An error only when none
/// could be started.
fn pacers() -> Result<&'static [Arc<Pacer>], MediaError> {
    if let Some(all) = PACERS.get() {
        return Ok(all);
    }
    let _once = START.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(all) = PACERS.get() {
        return Ok(all);
    }
    let mut all = Vec::new();
    let mut failed = None;
    let (n, epoch) = (pacer_count(), Instant::now());
    for i in 0..n {
        match start(i, own_phases(i, n), epoch) {
            Ok(p) => all.push(p),
            Err(e) => {
                tracing::error!(pacer = i, error = %e, "RTP pacer thread could not start");
                failed = Some(e);
            }
        }
    }
    if all.is_empty() {
        return Err(failed.unwrap_or_else(|| {
            MediaError::Io(std::io::Error::other("no RTP pacer thread could start"))
        }));
    }
    Ok(PACERS.get_or_init(|| all))
}

/// Starts pacer thread `i` (`rtp-pacer-i`), serving `phases` of the grid that starts at
/// `epoch`.
fn start(i: usize, phases: Vec<usize>, epoch: Instant) -> Result<Arc<Pacer>, MediaError> {
    let (tx, rx) = std::sync::mpsc::channel::<Arc<Pacer>>();
    let thread = std::thread::Builder::new().name(format!("rtp-pacer-{i}")).spawn(move || {
        if let Ok(p) = rx.recv() {
            run(&p, &phases, epoch);
        }
    })?;
    let p = Arc::new(Pacer {
        intake: Mutex::new(Vec::new()),
        thread: thread.thread().clone(),
        record: Mutex::new(None),
    });
    // The thread waits for its own handle before doing anything.
    let _ = tx.send(p.clone());
    Ok(p)
}

/// The pacer for a new prompt: they take prompts in turn.
fn pacer() -> Result<Arc<Pacer>, MediaError> {
    let all = pacers()?;
    let i = NEXT.fetch_add(1, Ordering::Relaxed) % all.len().max(1);
    all.get(i).cloned().ok_or_else(|| MediaError::Io(std::io::Error::other("no RTP pacer")))
}

/// Starts keeping a record of every packet the pacers send (for benchmarks; up to
/// `capacity` packets per pacer, later ones are not recorded: prompts need not be spread
/// evenly over the pacers).
pub fn record_sends(capacity: usize) -> Result<(), MediaError> {
    for p in pacers()? {
        *p.record.lock().unwrap_or_else(|e| e.into_inner()) = Some(Vec::with_capacity(capacity));
    }
    Ok(())
}

/// Stops recording and returns what was recorded.
pub fn take_sends() -> Vec<SentPacket> {
    PACERS
        .get()
        .into_iter()
        .flatten()
        .flat_map(|p| p.record.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_default())
        .collect()
}

/// Plays `codes` (G.711 in the leg's codec, 160 a frame, the last frame padded with
/// silence if short) on `leg` through the pacer. Returns the frames sent, and whether `cancel`
/// stopped it first (cancelling, or dropping the returned future, stops the prompt before
/// the next pass).
pub(super) async fn play(
    leg: Arc<Shared>,
    codes: Arc<[u8]>,
    cancel: &CancellationToken,
) -> Result<(usize, bool), MediaError> {
    let frames = codes.len().div_ceil(FRAME_SAMPLES) as u64;
    if frames == 0 {
        return Ok((0, cancel.is_cancelled()));
    }
    let pacer = pacer()?;
    let stop = cancel.child_token();
    let _stop_on_drop = stop.clone().drop_guard();
    let sent = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = oneshot::channel();
    let grid = Grid::new(0, frames);
    let job = Job { leg, codes, grid, stop, sent: sent.clone(), done: Some(tx) };
    pacer.intake.lock().unwrap_or_else(|e| e.into_inner()).push(job);
    pacer.thread.unpark();
    tokio::select! {
        biased;
        () = cancel.cancelled() => Ok((sent.load(Ordering::Acquire), true)),
        done = rx => match done {
            Ok(Ok(())) => Ok((sent.load(Ordering::Acquire), false)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(MediaError::Io(std::io::Error::other("the RTP pacer stopped"))),
        },
    }
}

/// Phases of the frame: legs are spread over [`PHASES`] start offsets 1 ms apart, so each
/// wake-up sends the frames of a twentieth of the legs instead of all of them at once.
pub const PHASES: usize = 20;

/// The start of phase `p`'s grid: `epoch` plus `p` twentieths of a frame.
pub fn phase_epoch(epoch: Instant, p: usize) -> Instant {
    epoch + FRAME / PHASES as u32 * u32::try_from(p).unwrap_or(0)
}

/// Where a new leg goes among phases holding `lens` legs: the index of the one with the
/// fewest (the first of equals).
pub fn least_busy(lens: &[usize]) -> usize {
    lens.iter().enumerate().min_by_key(|(_, n)| **n).map_or(0, |(p, _)| p)
}

/// A pacer thread, serving `own` phases of the grid that starts at `epoch`.
fn run(pacer: &Pacer, own: &[usize], epoch: Instant) {
    // Wake-ups as close to the grid as the kernel allows (the default slack is 50 µs).
    let _ = nix::sys::prctl::set_timerslack(1_000);
    super::rt::raise_priority(std::thread::current().name().unwrap_or("rtp-pacer"));
    let mut phases: Vec<Vec<Job>> = (0..PHASES).map(|_| Vec::new()).collect();
    // The tick each phase's next pass serves (on that phase's own grid).
    let mut next = [0u64; PHASES];
    let mut out = Outbox::default();
    loop {
        {
            let mut intake = pacer.intake.lock().unwrap_or_else(|e| e.into_inner());
            if phases.iter().all(Vec::is_empty) && intake.is_empty() {
                drop(intake);
                std::thread::park();
                continue;
            }
            let now = Instant::now();
            for mut job in intake.drain(..) {
                let lens: Vec<usize> = own.iter().map(|p| phases[*p].len()).collect();
                let Some(&p) = own.get(least_busy(&lens)) else { continue };
                let first = start_tick(next[p], phase_epoch(epoch, p), now);
                if phases[p].is_empty() {
                    next[p] = first;
                }
                job.grid = Grid::new(first, job.grid.frames);
                phases[p].push(job);
            }
        }
        // Sleep until the soonest tick of a phase with legs.
        let soonest = (0..PHASES)
            .filter(|p| !phases[*p].is_empty())
            .map(|p| tick_start(phase_epoch(epoch, p), next[p]))
            .min();
        let now = Instant::now();
        if let Some(start) = soonest.filter(|s| *s > now) {
            #[expect(
                clippy::disallowed_methods,
                reason = "the pacer is its own OS thread, not a tokio worker: it sleeps until its tick"
            )]
            std::thread::sleep(start - now);
        }
        // Every phase whose tick has come; a late wake-up serves the tick it is in (and
        // catches up with the grid).
        let now = Instant::now();
        let mut record = pacer.record.lock().unwrap_or_else(|e| e.into_inner());
        for (p, jobs) in phases.iter_mut().enumerate() {
            let grid = phase_epoch(epoch, p);
            if jobs.is_empty() || tick_start(grid, next[p]) > now {
                continue;
            }
            let current = next[p].max(tick_of(grid, now));
            jobs.retain_mut(|job| pass(job, current, grid, &mut out, record.as_mut()));
            next[p] = current + 1;
        }
        drop(record);
    }
}

/// Serves one job at `tick`; false when it is finished (its player told) or cancelled.
fn pass(
    job: &mut Job,
    tick: u64,
    epoch: Instant,
    out: &mut Outbox,
    record: Option<&mut Vec<SentPacket>>,
) -> bool {
    if job.stop.is_cancelled() {
        return false;
    }
    let grid = &mut job.grid;
    let due = grid.due(tick);
    if due.skip > 0 {
        job.leg.skip(due.skip as u32);
    }
    out.clear();
    let codec = job.leg.codec;
    for n in due.send.clone() {
        let from = n as usize * FRAME_SAMPLES;
        let chunk = &job.codes[from..(from + FRAME_SAMPLES).min(job.codes.len())];
        let mut padded = [codec.silence(); FRAME_SAMPLES];
        let payload = if chunk.len() == FRAME_SAMPLES {
            chunk
        } else {
            padded[..chunk.len()].copy_from_slice(chunk);
            &padded[..]
        };
        let at = tick_start(epoch, grid.first_tick + n);
        if let Err(e) = out.push(&job.leg, payload, n == 0, at) {
            finish(job, Err(e));
            return false;
        }
    }
    grid.advance(&due);
    let (finished, first_tick) = (grid.finished(tick), grid.first_tick);
    if !out.is_empty() {
        let at = Instant::now();
        match out.send(&job.leg) {
            Ok(n) => {
                job.leg.count_sent(n);
                job.sent.fetch_add(n, Ordering::AcqRel);
            }
            Err(e) if transient(&e) => {
                tracing::debug!(error = %e, "RTP send failed; frames dropped");
            }
            Err(e) => {
                finish(job, Err(MediaError::Io(e)));
                return false;
            }
        }
        if let Some(rec) = record {
            for n in due.send {
                if rec.len() < rec.capacity() {
                    let due = tick_start(epoch, first_tick + n);
                    rec.push(SentPacket { ssrc: job.leg.ssrc, frame: n, due, at });
                }
            }
        }
    }
    if finished {
        finish(job, Ok(()));
        return false;
    }
    true
}

fn finish(job: &mut Job, result: Result<(), MediaError>) {
    if let Some(done) = job.done.take() {
        let _ = done.send(result);
    }
}

/// Errors after which a leg keeps playing (the packet is lost, the next may pass): a full
/// send buffer, or an ICMP error reported for an earlier datagram.
fn transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionReset
    )
}

/// The packets of one leg due in one pass, sent together.
#[derive(Debug, Default)]
struct Outbox {
    packets: Vec<Vec<u8>>,
    used: usize,
}

impl Outbox {
    fn clear(&mut self) {
        self.used = 0;
    }

    fn is_empty(&self) -> bool {
        self.used == 0
    }

    fn push(
        &mut self,
        leg: &Shared,
        payload: &[u8],
        marker: bool,
        at: Instant,
    ) -> Result<(), MediaError> {
        if self.packets.len() == self.used {
            self.packets.push(Vec::with_capacity(256));
        }
        leg.build(payload, marker, at, &mut self.packets[self.used])?;
        self.used += 1;
        Ok(())
    }

    /// Sends the packets: one `sendto`, or one `sendmmsg` for several. Returns how many left.
    fn send(&self, leg: &Shared) -> std::io::Result<usize> {
        let to = leg.remote();
        let packets = &self.packets[..self.used];
        if let [one] = packets {
            leg.send_now(one, to)?;
            return Ok(1);
        }
        batch(leg, packets, to)
    }
}

/// Several datagrams to one address in one system call.
fn batch(leg: &Shared, packets: &[Vec<u8>], to: std::net::SocketAddr) -> std::io::Result<usize> {
    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;
    let slices: Vec<[IoSlice<'_>; 1]> = packets.iter().map(|p| [IoSlice::new(p)]).collect();
    let addrs: Vec<Option<SockaddrStorage>> = vec![Some(SockaddrStorage::from(to)); packets.len()];
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(packets.len(), None);
    let fd = leg.socket.as_raw_fd();
    let sent = sendmmsg(fd, &mut headers, &slices, &addrs, [], MsgFlags::empty())
        .map_err(std::io::Error::from)?;
    Ok(sent.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent_by_tick(frames: u64, first: u64, passes: &[u64]) -> Vec<(u64, Due)> {
        let mut g = Grid::new(first, frames);
        let mut out = Vec::new();
        for &t in passes {
            let d = g.due(t);
            g.advance(&d);
            out.push((t, d));
        }
        out
    }

    #[test]
    fn on_time_passes_send_one_frame_each_and_finish_a_tick_after_the_last() {
        let mut g = Grid::new(10, 3);
        assert_eq!(g.due(9), Due { skip: 0, send: 0..0 }, "nothing before the first tick");
        for (tick, frame) in [(10, 0), (11, 1), (12, 2)] {
            let d = g.due(tick);
            assert_eq!(d, Due { skip: 0, send: frame..frame + 1 });
            g.advance(&d);
            assert!(!g.finished(tick), "the last frame has its 20 ms first");
        }
        assert_eq!(g.due(13), Due { skip: 0, send: 3..3 });
        assert!(g.finished(13));
        // A pass repeated within a tick sends nothing twice.
        let mut g = Grid::new(0, 5);
        let d = g.due(0);
        g.advance(&d);
        assert!(g.due(0).send.is_empty());
    }

    #[test]
    fn a_late_pass_catches_up_on_the_grid_and_never_runs_ahead() {
        // Passes at ticks 0, 2 (one missed), 3: frame 1 and 2 leave together at tick 2.
        let got = sent_by_tick(6, 0, &[0, 2, 3, 4, 5, 6]);
        let sends: Vec<Range<u64>> = got.iter().map(|(_, d)| d.send.clone()).collect();
        assert_eq!(sends, [0..1, 1..3, 3..4, 4..5, 5..6, 6..6]);
        assert!(got.iter().all(|(_, d)| d.skip == 0));
        // No pass ever sends a frame whose tick is ahead of it.
        for (t, d) in &got {
            assert!(d.send.end <= t + 1, "tick {t}: {d:?}");
        }
    }

    #[test]
    fn a_very_late_pass_skips_the_oldest_frames_instead_of_bursting() {
        let mut g = Grid::new(100, 50);
        let d = g.due(100);
        g.advance(&d);
        // 10 ticks late: frames 1..=10 due, only the newest MAX_BURST go, the rest are lost.
        let d = g.due(110);
        assert_eq!(d, Due { skip: 10 - MAX_BURST, send: 11 - MAX_BURST..11 });
        g.advance(&d);
        assert_eq!(g.next, 11);
        assert_eq!(g.due(111), Due { skip: 0, send: 11..12 });
        // Late past the end: the tail is skipped and the prompt finishes.
        let d = g.due(1_000);
        assert_eq!(d, Due { skip: 50 - 11 - MAX_BURST, send: 50 - MAX_BURST..50 });
        g.advance(&d);
        assert!(g.finished(1_000));
    }

    #[test]
    fn every_frame_is_sent_or_skipped_exactly_once_whatever_the_passes() {
        // Pseudo-random pass ticks (strictly increasing), many prompts.
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for frames in [1u64, 2, 7, 50, 333] {
            let first = frames * 3;
            let mut g = Grid::new(first, frames);
            let (mut tick, mut seen, mut burst_max) = (first, 0u64, 0u64);
            while !g.finished(tick) {
                let d = g.due(tick);
                assert_eq!(d.send.start, g.next + d.skip, "contiguous");
                assert!(d.send.end <= (tick - first + 1).min(frames), "never ahead of the grid");
                burst_max = burst_max.max(d.send.end - d.send.start);
                seen += d.skip + (d.send.end - d.send.start);
                g.advance(&d);
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                tick += 1 + x % 4;
            }
            assert_eq!(seen, frames);
            assert!(burst_max <= MAX_BURST);
        }
    }

    #[tokio::test]
    async fn a_legs_due_frames_leave_in_one_batch_and_skipped_ones_keep_the_stamps_exact() {
        use crate::media::{Codec, RtpLeg};
        use rtp_rs::RtpReader;
        let far = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let leg =
            RtpLeg::start(socket, far.local_addr().expect("addr"), Codec::Pcma, None).expect("leg");
        let shared = leg.shared();
        let mut out = Outbox::default();
        let at = Instant::now();
        for i in 0..3u8 {
            out.push(shared, &[i; FRAME_SAMPLES], i == 0, at + FRAME * u32::from(i))
                .expect("build");
        }
        assert_eq!(out.send(shared).expect("sendmmsg"), 3);
        // Two frames given up, then one more.
        shared.skip(2);
        out.clear();
        out.push(shared, &[9; FRAME_SAMPLES], false, at + FRAME * 5).expect("build");
        assert_eq!(out.send(shared).expect("sendto"), 1);
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        for _ in 0..4 {
            let wait = std::time::Duration::from_secs(5);
            let (n, _) = tokio::time::timeout(wait, far.recv_from(&mut buf))
                .await
                .expect("in time")
                .expect("recv");
            let p = RtpReader::new(&buf[..n]).expect("rtp");
            got.push((u16::from(p.sequence_number()), p.timestamp(), p.mark(), p.payload()[0]));
        }
        let (seq0, ts0) = (got[0].0, got[0].1);
        let rel: Vec<(u16, u32, bool, u8)> = got
            .iter()
            .map(|(s, t, m, b)| (s.wrapping_sub(seq0), t.wrapping_sub(ts0), *m, *b))
            .collect();
        assert_eq!(
            rel,
            [(0, 0, true, 0), (1, 160, false, 1), (2, 320, false, 2), (5, 800, false, 9)]
        );
    }

    #[tokio::test]
    async fn prompts_take_every_pacer_in_turn_and_each_leg_keeps_exact_stamps() {
        use crate::media::{Codec, Prompt, RtpLeg};
        use rtp_rs::RtpReader;
        let n = pacers().expect("pacers").len();
        assert_eq!(n, crate::media::rt::media_threads().min(PHASES), "a pacer per CPU");
        // Consecutive prompts go to consecutive pacers (other tests may play meanwhile, so
        // only the step is checked).
        let a = Arc::as_ptr(&pacer().expect("pacer"));
        let b = Arc::as_ptr(&pacer().expect("pacer"));
        assert!(n == 1 || a != b, "two prompts in a row on one of {n} pacers");
        // 2n legs play a 3-frame prompt at once: every leg gets its 3 frames, in order,
        // one frame apart, whichever pacer sent them.
        let prompt = Prompt::from_samples(vec![100; 3 * FRAME_SAMPLES]);
        let mut far = Vec::new();
        let mut legs = Vec::new();
        for _ in 0..2 * n {
            let sink = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
            let to = sink.local_addr().expect("addr");
            legs.push(Arc::new(RtpLeg::start(socket, to, Codec::Pcma, None).expect("leg")));
            far.push(sink);
        }
        let cancel = CancellationToken::new();
        record_sends(1_000).expect("record");
        let handed = Instant::now();
        let plays: Vec<_> = legs
            .iter()
            .map(|leg| {
                let (leg, prompt, cancel) = (leg.clone(), prompt.clone(), cancel.clone());
                tokio::spawn(async move { leg.play(&prompt, &cancel).await })
            })
            .collect();
        for p in plays {
            assert_eq!(p.await.expect("join").expect("play").frames, 3);
        }
        // Every pacer sends on one grid: any two frames' due times are a whole number of
        // phases (1 ms) apart, whichever pacers sent them.
        let sent = take_sends();
        assert!(sent.len() >= 6 * n, "{} frames recorded", sent.len());
        // Each prompt starts on a tick that began after it was handed over, never on one
        // already under way (whose second frame would follow the first too soon).
        let ours: Vec<u32> = legs.iter().map(|l| l.ssrc()).collect();
        for first in sent.iter().filter(|s| s.frame == 0 && ours.contains(&s.ssrc)) {
            assert!(first.due > handed, "a prompt started on a tick under way: {first:?}");
        }
        let phase = FRAME / PHASES as u32;
        for a in &sent {
            let apart = a.due.max(sent[0].due) - a.due.min(sent[0].due);
            assert_eq!(apart.as_nanos() % phase.as_nanos(), 0, "{apart:?} apart: not one grid");
        }
        for sink in &far {
            let mut buf = [0u8; 512];
            let mut got = Vec::new();
            for _ in 0..3 {
                let wait = std::time::Duration::from_secs(5);
                let (len, _) = tokio::time::timeout(wait, sink.recv_from(&mut buf))
                    .await
                    .expect("in time")
                    .expect("recv");
                let p = RtpReader::new(&buf[..len]).expect("rtp");
                got.push((u16::from(p.sequence_number()), p.timestamp(), p.mark()));
            }
            let (s0, t0) = (got[0].0, got[0].1);
            let rel: Vec<_> =
                got.iter().map(|(s, t, m)| (s.wrapping_sub(s0), t.wrapping_sub(t0), *m)).collect();
            assert_eq!(rel, [(0, 0, true), (1, 160, false), (2, 320, false)]);
        }
    }

    #[test]
    fn legs_spread_over_the_phases_of_a_frame() {
        let epoch = Instant::now();
        assert_eq!(phase_epoch(epoch, 0), epoch);
        assert_eq!(phase_epoch(epoch, 19) - epoch, std::time::Duration::from_millis(19));
        let mut lens = [0usize; PHASES];
        for _ in 0..1000 {
            let p = least_busy(&lens);
            lens[p] += 1;
        }
        assert!(lens.iter().all(|n| *n == 50), "{lens:?}");
        assert_eq!(least_busy(&[3, 1, 1, 2]), 1, "the first of the least busy");
    }

    #[test]
    fn pacers_split_the_phases_between_them() {
        assert_eq!(own_phases(0, 1), (0..PHASES).collect::<Vec<_>>());
        assert_eq!(own_phases(0, 2), vec![0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
        assert_eq!(own_phases(1, 2), vec![1, 3, 5, 7, 9, 11, 13, 15, 17, 19]);
        for n in 1..=PHASES {
            let mut all: Vec<usize> = (0..n).flat_map(|i| own_phases(i, n)).collect();
            assert!((0..n).all(|i| !own_phases(i, n).is_empty()), "{n} pacers: one has no phase");
            all.sort_unstable();
            assert_eq!(all, (0..PHASES).collect::<Vec<_>>(), "{n} pacers: each phase exactly once");
        }
        assert!(own_phases(PHASES, PHASES + 1).is_empty());
    }

    #[test]
    fn ticks_are_on_an_absolute_grid() {
        let epoch = Instant::now();
        assert_eq!(tick_of(epoch, epoch), 0);
        assert_eq!(tick_of(epoch, epoch + FRAME * 3 - std::time::Duration::from_nanos(1)), 2);
        assert_eq!(tick_of(epoch, epoch + FRAME * 3), 3);
        assert_eq!(tick_start(epoch, 7) - epoch, FRAME * 7);
    }

    #[test]
    fn a_prompt_starts_and_an_idle_phase_resumes_at_the_first_tick_not_yet_begun() {
        let epoch = Instant::now();
        let us = std::time::Duration::from_micros;
        // Idle since tick 2; a leg joins in the middle of tick 7: tick 8, not 7 or 3.
        assert_eq!(start_tick(3, epoch, epoch + FRAME * 7 + us(5_000)), 8);
        // Joining just as tick 7 begins still waits for tick 8: 7 is already under way.
        assert_eq!(start_tick(3, epoch, epoch + FRAME * 7), 8);
        // A phase whose next tick is still ahead keeps it; where the pass of tick 7 runs
        // late (not yet served 0.5 ms into it), a new prompt starts at tick 8.
        assert_eq!(start_tick(12, epoch, epoch + FRAME * 7 + us(5_000)), 12);
        assert_eq!(start_tick(7, epoch, epoch + FRAME * 7 + us(500)), 8);
        for at in (0..200_000).step_by(333).map(us) {
            let now = epoch + at;
            let tick = start_tick(0, epoch, now);
            assert!(tick_start(epoch, tick) > now, "{at:?}: tick {tick} has begun");
            assert!(tick_start(epoch, tick) <= now + FRAME, "{at:?}: tick {tick} too late");
        }
    }
}

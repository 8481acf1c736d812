//! Where media runs: runtimes of their own, one thread each, at a raised scheduling priority.
//!
//! Every leg's receiver task (symmetric RTP, DTMF, the relay's forwarding) runs on a media
//! runtime: a current-thread tokio runtime on a `rtp-media-N` thread, one per CPU
//! ([`media_threads`]), each taking new legs in turn. The pacers
//! ([`super::pacer`]) have threads of their own. All of them ask for real-time scheduling (`SCHED_FIFO`
//! at its lowest priority), or failing that for nice [`MEDIA_NICE`], so on a busy machine a
//! packet waits neither behind SIP, HTTP and database work in the daemon's main runtime nor
//! behind other processes' time slices. `SCHED_FIFO` needs `CAP_SYS_NICE` or an
//! `RLIMIT_RTPRIO` of at least 1 (systemd: `LimitRTPRIO=1` and `RestrictRealtime=no`); the
//! nice value needs `CAP_SYS_NICE` or `RLIMIT_NICE` (systemd: `LimitNICE=-15`, set in the
//! shipped unit). Without either the threads run at the normal priority and say so once in
//! the log. These threads only ever wait on timers and sockets, never spin.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::runtime::Handle;

/// The nice value the media threads ask for.
pub const MEDIA_NICE: i32 = -15;

/// How a media thread is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// `SCHED_FIFO`, lowest real-time priority.
    Realtime,
    /// Normal scheduling at nice [`MEDIA_NICE`].
    Nice,
    /// Neither was allowed.
    Normal,
}

/// Raises the calling thread's scheduling priority as far as allowed (see the module).
pub fn raise_priority(thread: &str) -> Priority {
    use thread_priority::{
        RealtimeThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let fifo = ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo);
    if set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, fifo).is_ok() {
        tracing::debug!(thread, "media thread runs with real-time scheduling (SCHED_FIFO)");
        return Priority::Realtime;
    }
    // Linux: setpriority(2) on a thread id affects that thread only.
    match rustix::process::setpriority_process(Some(rustix::thread::gettid()), MEDIA_NICE) {
        Ok(()) => {
            tracing::debug!(thread, nice = MEDIA_NICE, "media thread priority raised");
            Priority::Nice
        }
        Err(e) => {
            tracing::info!(
                thread,
                error = %e,
                "media thread runs at normal priority (LimitNICE=-15, or LimitRTPRIO=1 with RestrictRealtime=no, allow more)"
            );
            Priority::Normal
        }
    }
}

/// How long a media thread lets datagrams gather before it waits for the next one.
pub const GATHER: std::time::Duration = std::time::Duration::from_micros(50);

/// Runs each time the media runtime runs out of work, before it waits on its sockets:
/// a short sleep, so that the datagrams of every phone that sends within [`GATHER`] are
/// read in one wake-up rather than one wake-up (two context switches) each. Without it a
/// relay of 500 pairs woke about 50,000 times a second, once per datagram, and most of its
/// CPU went to those switches; with it a datagram waits at most [`GATHER`] (plus the
/// timer's slack) longer. An idle runtime sleeps once and then waits as before.
///
/// 50 µs rather than more: with phones on phases of their own (as real ones are) it kept
/// the relay's CPU level with rtpengine's and its added latency p99 below it, while
/// 200 µs added about 0.2 ms to the median packet with no CPU saving beyond the
/// run-to-run spread (BENCHMARKS.md, "Media").
fn gather() {
    #[allow(
        clippy::disallowed_methods,
        reason = "a runtime hook, not async code: nothing else runs on this thread meanwhile"
    )]
    std::thread::sleep(GATHER);
}

/// The media runtimes, one per thread; empty when none could be started.
static MEDIA: OnceLock<Vec<Handle>> = OnceLock::new();

/// Which media runtime takes the next leg.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// How many media threads: one per CPU the process may run on (its affinity mask and
/// cgroup quota, as `std::thread::available_parallelism` reads them), at least one.
///
/// Packets that arrive together (phones send on a 20 ms grid) are then handled on every
/// core at once instead of one after another on one thread, which is what decides the
/// relay's added delay at its worst moments (BENCHMARKS.md, "Media").
pub fn media_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// A media runtime for a new leg, started on first use: the runtimes take legs in turn,
/// so each thread receives about as many calls as the others. `None` when no media thread
/// could be started (then legs stay on the runtime that created them, and that is logged).
pub fn media_runtime() -> Option<Handle> {
    let all = MEDIA.get_or_init(|| (0..media_threads()).filter_map(start).collect());
    if all.is_empty() {
        return None;
    }
    let i = NEXT.fetch_add(1, Ordering::Relaxed) % all.len();
    all.get(i).cloned()
}

/// Starts media thread `n` (`rtp-media-n`) and its current-thread runtime.
fn start(n: usize) -> Option<Handle> {
    let (tx, rx) = std::sync::mpsc::channel();
    let name = format!("rtp-media-{n}");
    let started = std::thread::Builder::new().name(name.clone()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_park(gather)
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "media runtime could not start");
                return;
            }
        };
        raise_priority(&name);
        let _ = tx.send(rt.handle().clone());
        rt.block_on(std::future::pending::<()>());
    });
    match started {
        Ok(_) => rx.recv().ok(),
        Err(e) => {
            tracing::error!(error = %e, "media thread could not start");
            None
        }
    }
}

/// An RTP socket as the media runtime watches it: for reading only. Every send is made
/// straight on the descriptor (a full buffer drops the packet: late media is of no use),
/// so nothing ever waits to write. Watching for reading only also spares the kernel an
/// event per packet sent: a socket watched for writing is woken, and reported ready to
/// `epoll_wait`, each time a datagram it sent leaves its send buffer. With 1,000 legs
/// playing prompts that woke the media thread for every packet the pacer sent, though it
/// had nothing to read (BENCHMARKS.md, "Media").
pub(super) type MediaSocket = tokio::io::unix::AsyncFd<std::net::UdpSocket>;

/// Moves `socket` onto the media runtime, watched for reading only (see [`MediaSocket`]).
/// Returns the socket to use and the runtime to spawn its receiver on (`None`: the
/// caller's, when the media runtime is missing or would not take the socket).
pub(super) fn rehome(
    socket: tokio::net::UdpSocket,
) -> std::io::Result<(MediaSocket, Option<Handle>)> {
    // Leaves the caller's runtime; the descriptor stays non-blocking.
    let socket = socket.into_std()?;
    let socket = match media_runtime() {
        Some(handle) => {
            let watched = {
                let _enter = handle.enter();
                watch(socket)
            };
            match watched {
                Ok(s) => return Ok((s, Some(handle))),
                Err(e) => {
                    let (socket, e) = e.into_parts();
                    tracing::warn!(error = %e, "RTP socket stays on the caller's runtime");
                    socket
                }
            }
        }
        None => socket,
    };
    watch(socket).map_err(|e| e.into_parts().1).map(|s| (s, None))
}

/// Registers `socket` with the current runtime for reading only.
#[allow(unsafe_code, reason = "tokio's registration with a chosen interest is an unsafe fn")]
fn watch(
    socket: std::net::UdpSocket,
) -> Result<MediaSocket, tokio::io::unix::AsyncFdRegisterError<std::net::UdpSocket>> {
    // SAFETY: a `std::net::UdpSocket` owns its descriptor and closes it only when dropped,
    // which the `AsyncFd` does after deregistering; the socket is never replaced through
    // `get_mut` (this module and `rtp` only ever use `get_ref`).
    unsafe { MediaSocket::register_with_interest(socket, tokio::io::Interest::READABLE) }
}

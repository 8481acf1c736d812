//! Where media runs: a runtime of its own on one thread, at a raised scheduling priority.
//!
//! Every leg's receiver task (symmetric RTP, DTMF, the relay's forwarding) runs on the media
//! runtime, a current-thread tokio runtime on the `rtp-media` thread, and the pacer
//! ([`super::pacer`]) has its own thread. Both ask for nice [`MEDIA_NICE`], so on a busy
//! machine a packet waits neither behind SIP, HTTP and database work in the daemon's main
//! runtime nor behind other processes' time slices. Raising the priority needs
//! `CAP_SYS_NICE` or an `RLIMIT_NICE` that allows it (systemd: `LimitNICE=-15`); without
//! either, the threads run at the normal priority and say so once in the log.

use std::sync::OnceLock;
use tokio::runtime::Handle;

/// The nice value the media threads ask for.
pub const MEDIA_NICE: i32 = -15;

/// Raises the calling thread's priority to [`MEDIA_NICE`] (Linux: `setpriority(2)` on the
/// thread's id affects that thread only). True when it worked.
pub fn raise_priority(thread: &str) -> bool {
    match rustix::process::setpriority_process(Some(rustix::thread::gettid()), MEDIA_NICE) {
        Ok(()) => {
            tracing::debug!(thread, nice = MEDIA_NICE, "media thread priority raised");
            true
        }
        Err(e) => {
            tracing::info!(
                thread,
                error = %e,
                "media thread runs at normal priority (CAP_SYS_NICE or LimitNICE=-15 allow nice -15)"
            );
            false
        }
    }
}

static MEDIA: OnceLock<Option<Handle>> = OnceLock::new();

/// The media runtime, started on first use; `None` when its thread could not be started
/// (then legs stay on the runtime that created them, and that is logged).
pub fn media_runtime() -> Option<Handle> {
    MEDIA
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            let started = std::thread::Builder::new().name("rtp-media".into()).spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "media runtime could not start");
                        return;
                    }
                };
                raise_priority("rtp-media");
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
        })
        .clone()
}

/// Moves `socket` onto the media runtime: a duplicate of its descriptor is registered
/// there and the original closed. Returns the socket to use and the runtime to spawn its
/// receiver on (`None`: the caller's, when the media runtime is missing or the move failed).
pub fn rehome(socket: tokio::net::UdpSocket) -> (tokio::net::UdpSocket, Option<Handle>) {
    let Some(handle) = media_runtime() else { return (socket, None) };
    let dup = match socket2::SockRef::from(&socket).try_clone() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "RTP socket stays on the caller's runtime");
            return (socket, None);
        }
    };
    let moved = {
        let _enter = handle.enter();
        tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(dup))
    };
    match moved {
        Ok(s) => (s, Some(handle)),
        Err(e) => {
            tracing::warn!(error = %e, "RTP socket stays on the caller's runtime");
            (socket, None)
        }
    }
}

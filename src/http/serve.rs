//! The HTTP server: an accept loop that holds at most [`Limits::max_connections`]
//! connections, each served by hyper's HTTP/1 with three timeouts.
//!
//! - **header timeout**: the first request's head must be complete this long after the
//!   connection opened (a client that connects and sends nothing, or sends its headers
//!   slowly, is closed), a later request's head this long after its first byte;
//! - **body timeout**: the whole body within it, else `408` ([`read_body`]);
//! - **idle timeout**: a kept-alive connection with no request started is closed this
//!   long after its last byte (also one whose client stopped reading its answer).
//!
//! The deadlines are decided by the pure `close_at` from what the connection's stream
//! and service record (`Activity`).
//!
//! The limit is taken *before* `accept`: beyond it new connections wait in the kernel's
//! backlog and hold no file descriptor of ours, so the SIP trunk, RTP, the store and
//! dialplan reloads keep theirs however many clients connect. [`connection_limit`] keeps
//! it below the process's file limit. On shutdown, connections finish the request they
//! are in (bounded by [`DRAIN`]), then close.

use crate::metrics;
use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::errors::problem;

/// The largest request body read (intake bodies are a few hundred bytes).
pub const MAX_BODY: usize = 64 * 1024;

/// How long connections may finish their requests after shutdown begins.
pub const DRAIN: Duration = Duration::from_secs(5);

/// File descriptors kept free for everything but HTTP: the store's pool, the SIP trunk,
/// the dialplan watcher and reloads, logs (the RTP sockets of calls come on top, see
/// [`reserved_fds`]).
const RESERVED_BASE: u64 = 64;

/// The server's limits (`[http]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request head must arrive within this.
    pub header_timeout: Duration,
    /// A request body must arrive within this.
    pub body_timeout: Duration,
    /// A connection with no traffic and no request in progress is closed after this.
    pub idle_timeout: Duration,
    /// Connections held at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 512,
        }
    }
}

impl Limits {
    /// The limits of `[http]`, the connection limit lowered (with a warning) to keep
    /// [`reserved_fds`] descriptors free under this process's file limit.
    pub fn for_process(cfg: &crate::config::Http, max_calls: u32) -> Limits {
        let nofile = nofile_limit();
        let reserved = reserved_fds(max_calls);
        let max_connections = connection_limit(cfg.max_connections, nofile, reserved);
        if max_connections < cfg.max_connections {
            warn!(
                configured = cfg.max_connections,
                max_connections,
                open_files_limit = nofile,
                reserved,
                "http.max_connections lowered to stay below the open files limit (raise LimitNOFILE)"
            );
        }
        Limits {
            header_timeout: cfg.header_timeout,
            body_timeout: cfg.body_timeout,
            idle_timeout: cfg.idle_timeout,
            max_connections,
        }
    }
}

/// File descriptors to keep free for a trunk of `max_calls` concurrent calls (each call
/// has up to two legs with an RTP socket each, and a margin).
pub fn reserved_fds(max_calls: u32) -> u64 {
    RESERVED_BASE + 4 * u64::from(max_calls)
}

/// The connection limit that fits the file limit: the configured one, lowered so that
/// `reserved` descriptors stay free under `nofile` (the soft `RLIMIT_NOFILE`, when known);
/// never below 8.
pub fn connection_limit(configured: usize, nofile: Option<u64>, reserved: u64) -> usize {
    let Some(nofile) = nofile else { return configured };
    let room = usize::try_from(nofile.saturating_sub(reserved)).unwrap_or(usize::MAX);
    configured.min(room).max(8)
}

/// The soft limit on open files of this process (Linux: `/proc/self/limits`).
pub fn nofile_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Body limits for [`read_body`], carried on each request by the accept loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyTimeout(pub(crate) Duration);

/// The connection's peer address, carried on each request by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

/// Reads the whole request body within [`MAX_BODY`] (`413` beyond) and the body timeout
/// (`408` after it) before any handler runs; handlers get it in memory.
pub async fn read_body(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let timeout =
        req.extensions().get::<BodyTimeout>().map_or(Limits::default().body_timeout, |t| t.0);
    let (parts, body) = req.into_parts();
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => {
            let req = axum::extract::Request::from_parts(parts, Body::from(collected.to_bytes()));
            next.run(req).await
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            None,
            &format!("the request body is larger than {MAX_BODY} bytes"),
        ),
        Ok(Err(_)) => problem(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            None,
            "the request body could not be read",
        ),
        Err(_) => {
            metrics::http_timeout("body");
            problem(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                None,
                "the request body did not arrive in time",
            )
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    info!(
        max_connections = limits.max_connections,
        header_timeout = ?limits.header_timeout,
        body_timeout = ?limits.body_timeout,
        idle_timeout = ?limits.idle_timeout,
        "HTTP limits"
    );
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut conns = JoinSet::new();
    // Accept errors (e.g. the file limit reached) are logged at most once a minute.
    let mut last_accept_warning: Option<tokio::time::Instant> = None;
    loop {
        while conns.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok((stream, peer)) => (stream, peer),
                Err(e) => {
                    metrics::http_accept_error();
                    let quiet = last_accept_warning
                        .is_some_and(|t| tokio::time::Instant::now().saturating_duration_since(t) < Duration::from_secs(60));
                    if !quiet {
                        warn!(error = %e, "cannot accept HTTP connections (logged once a minute)");
                        last_accept_warning = Some(tokio::time::Instant::now());
                    }
                    // Whatever ran out (descriptors, memory) is not back at once.
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                    continue;
                }
            },
        };
        let router = router.clone();
        let shutdown = shutdown.clone();
        conns.spawn(async move {
            metrics::http_connections(1);
            connection(stream, peer, router, limits, shutdown).await;
            metrics::http_connections(-1);
            drop(permit);
        });
    }
    drop(listener);
    // Connections finish the request they are in, then close; stragglers are dropped.
    let drained =
        tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        debug!(left = conns.len(), "HTTP connections still open after the drain: closed");
        conns.abort_all();
    }
    Ok(())
}

/// Serves one connection until the client closes it, a timeout closes it, or shutdown.
async fn connection(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched { inner: stream, activity: activity.clone() });
    let svc = hyper_util::service::TowerToHyperService::new(router);
    let busy = activity.clone();
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(BodyTimeout(limits.body_timeout));
            req.extensions_mut().insert(Peer(peer));
            let busy = busy.clone();
            busy.head_complete();
            let fut = hyper::service::Service::call(&svc, req);
            async move {
                let res = fut.await;
                busy.answered();
                res
            }
        });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The header and idle timeouts are this function's (see [`close_at`]).
    builder.timer(TokioTimer::new()).header_read_timeout(None);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        let wake = match close_at(&activity.snapshot(), &limits) {
            Some((ms, _)) => activity.start + Duration::from_millis(ms),
            // A request is being handled: look again shortly.
            None => tokio::time::Instant::now() + Duration::from_millis(500),
        };
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    debug!(error = %e, "HTTP connection ended");
                }
                return;
            }
            _ = shutdown.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(wake) => {
                let now = activity.now_ms();
                if let Some((ms, kind)) = close_at(&activity.snapshot(), &limits) {
                    if now >= ms {
                        metrics::http_timeout(kind);
                        debug!(kind, "HTTP connection timed out: closed");
                        return;
                    }
                }
            }
        }
    }
}

/// What [`close_at`] looks at, in milliseconds after the connection opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Snapshot {
    /// The last byte read or written, or the last answer produced.
    last_ms: u64,
    /// The first byte of a request head not yet complete, if any.
    head_ms: Option<u64>,
    /// Requests being handled.
    in_flight: usize,
    /// Requests answered.
    served: u64,
}

/// When a connection in state `s` is closed (ms after it opened) and why (`header` or
/// `idle`); `None` while a request is being handled (the body timeout and the store's own
/// bounds apply then).
///
/// - the first request's head must be complete `header_timeout` after the connection opened
///   (a client that connects and sends nothing, or sends slowly, is closed then);
/// - a later request's head `header_timeout` after its first byte;
/// - a kept-alive connection with nothing started is closed `idle_timeout` after its last
///   byte (which also ends one whose client stopped reading its answer).
fn close_at(s: &Snapshot, limits: &Limits) -> Option<(u64, &'static str)> {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if s.in_flight > 0 {
        return None;
    }
    if s.served == 0 {
        return Some((ms(limits.header_timeout), "header"));
    }
    match s.head_ms {
        Some(h) => Some((h.saturating_add(ms(limits.header_timeout)), "header")),
        None => Some((s.last_ms.saturating_add(ms(limits.idle_timeout)), "idle")),
    }
}

/// What a connection is doing, shared by its stream, its service and its watcher.
#[derive(Debug)]
struct Activity {
    /// The instant all offsets count from (the connection opened).
    start: tokio::time::Instant,
    /// See [`Snapshot::last_ms`].
    last_ms: AtomicU64,
    /// See [`Snapshot::head_ms`]; [`NONE`] when no head is in progress.
    head_ms: AtomicU64,
    /// See [`Snapshot::in_flight`].
    in_flight: AtomicUsize,
    /// See [`Snapshot::served`].
    served: AtomicU64,
}

/// No request head in progress.
const NONE: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Activity {
            start: tokio::time::Instant::now(),
            last_ms: AtomicU64::new(0),
            head_ms: AtomicU64::new(NONE),
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(tokio::time::Instant::now().saturating_duration_since(self.start).as_millis())
            .unwrap_or(NONE - 1)
    }

    /// Bytes moved; read bytes with no request being handled start a head.
    fn moved(&self, read: bool) {
        let now = self.now_ms();
        self.last_ms.store(now, Ordering::Release);
        if read && self.in_flight.load(Ordering::Acquire) == 0 {
            let _ = self.head_ms.compare_exchange(NONE, now, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// hyper parsed a head and calls the service.
    fn head_complete(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_ms.store(NONE, Ordering::Release);
    }

    /// The service produced its answer.
    fn answered(&self) {
        self.served.fetch_add(1, Ordering::AcqRel);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.last_ms.store(self.now_ms(), Ordering::Release);
    }

    fn snapshot(&self) -> Snapshot {
        let head = self.head_ms.load(Ordering::Acquire);
        Snapshot {
            last_ms: self.last_ms.load(Ordering::Acquire),
            head_ms: (head != NONE).then_some(head),
            in_flight: self.in_flight.load(Ordering::Acquire),
            served: self.served.load(Ordering::Acquire),
        }
    }
}

/// A TCP stream that records each byte moved in [`Activity`].
#[derive(Debug)]
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.moved(true);
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.moved(false);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.moved(false);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_limit_stays_below_the_file_limit() {
        let reserved = reserved_fds(30);
        assert_eq!(reserved, 184);
        assert_eq!(connection_limit(512, None, reserved), 512);
        assert_eq!(connection_limit(512, Some(65_536), reserved), 512);
        assert_eq!(connection_limit(512, Some(600), reserved), 600 - 184);
        assert_eq!(connection_limit(512, Some(256), reserved), 72);
        assert_eq!(connection_limit(512, Some(100), reserved), 8, "never below 8");
    }

    #[test]
    fn header_and_idle_deadlines() {
        let limits = Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            ..Limits::default()
        };
        let fresh = Snapshot { last_ms: 0, head_ms: None, in_flight: 0, served: 0 };
        assert_eq!(close_at(&fresh, &limits), Some((10_000, "header")), "silent new connection");
        let slow = Snapshot { last_ms: 9_000, head_ms: Some(5_000), ..fresh };
        assert_eq!(close_at(&slow, &limits), Some((10_000, "header")), "first head: from open");
        let busy = Snapshot { in_flight: 1, ..slow };
        assert_eq!(close_at(&busy, &limits), None, "a request is being handled");
        let kept = Snapshot { last_ms: 20_000, head_ms: None, in_flight: 0, served: 1 };
        assert_eq!(close_at(&kept, &limits), Some((80_000, "idle")));
        let next = Snapshot { head_ms: Some(30_000), ..kept };
        assert_eq!(
            close_at(&next, &limits),
            Some((40_000, "header")),
            "later head: its first byte"
        );
    }
}

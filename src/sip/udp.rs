//! The trunk's UDP socket, as the SIP stack reads it: every datagram is first classified
//! ([`super::inbound::classify`]); what the stack could not handle is answered here (405,
//! 505) or dropped, counted in `callbackd_sip_malformed_total` and logged at most once per
//! [`LOG_EVERY`], without its text (it may carry a phone number).

use super::inbound::{self, Malformed, Verdict};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, warn};

/// At most one log line about dropped datagrams per this interval.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// Dropped datagrams since the last log line.
#[derive(Debug, Default)]
struct Dropped {
    since_log: u64,
    last_log: Option<Instant>,
}

/// A UDP socket that keeps what the SIP stack cannot read away from it.
#[derive(Debug)]
pub(super) struct GuardedUdp {
    socket: tokio::net::UdpSocket,
    dropped: Mutex<Dropped>,
}

impl GuardedUdp {
    pub(super) async fn bind(addr: SocketAddr) -> std::io::Result<GuardedUdp> {
        let socket = tokio::net::UdpSocket::bind(addr).await?;
        Ok(GuardedUdp { socket, dropped: Mutex::default() })
    }

    fn note(&self, why: Malformed, from: SocketAddr) {
        metrics::counter!(crate::metrics::SIP_MALFORMED, "reason" => why.as_str()).increment(1);
        let mut d = self.dropped.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        d.since_log += 1;
        let now = Instant::now();
        if d.last_log.is_none_or(|t| now.duration_since(t) >= LOG_EVERY) {
            warn!(
                %from,
                reason = why.as_str(),
                dropped = d.since_log,
                "unreadable SIP datagrams dropped (next report in a minute at the earliest)"
            );
            d.since_log = 0;
            d.last_log = Some(now);
        }
    }

    async fn recv(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        loop {
            let (len, from) = self.socket.recv_from(buf).await?;
            match inbound::classify(&buf[..len]) {
                Verdict::Pass => return Ok((len, from)),
                Verdict::Answer(response) => {
                    debug!(%from, "answered a request the SIP stack cannot take");
                    let _ = self.socket.send_to(&response, from).await;
                }
                Verdict::Malformed(why) => self.note(why, from),
            }
        }
    }
}

type Io<'a, T> = Pin<Box<dyn Future<Output = rsipstack::Result<T>> + Send + 'a>>;

impl rsipstack::platform::net::UdpSocket for GuardedUdp {
    fn recv_from<'a, 'b, 'c>(&'a self, buf: &'b mut [u8]) -> Io<'c, (usize, SocketAddr)>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        Box::pin(async move { Ok(self.recv(buf).await?) })
    }

    fn send_to<'a, 'b, 'c>(&'a self, buf: &'b [u8], addr: SocketAddr) -> Io<'c, usize>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        Box::pin(async move { Ok(self.socket.send_to(buf, addr).await?) })
    }

    fn local_addr(&self) -> rsipstack::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }
}

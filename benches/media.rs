//! Media benchmark: RTP send-time jitter, CPU and memory of many legs playing a prompt, and
//! the latency the relay adds between bridged legs. On loopback.
//!
//! Run with `cargo bench --bench media` (see BENCHMARKS.md, "Media"). Knobs (environment):
//! `MEDIA_BENCH_LEGS` (default `100,1000`), `MEDIA_BENCH_PAIRS` (500), `MEDIA_BENCH_SECS`
//! (relay duration, 5).
//!
//! Packets are timestamped where they *arrive*: sink sockets, each read by its own thread
//! blocked in `recv_from`, so the figures include the loopback path and the sink threads'
//! wake-up on the same 2 cores (an upper bound on the sender's own jitter). Jitter is the
//! arrival time of packet *n* of a leg against `t0 + n × 20 ms`, t0 being its first packet.

#[path = "../tests/common/mod.rs"]
mod common;

use callbackd::media::{Codec, Prompt, RtpLeg, relay, wav};
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// (user + system) CPU seconds of this process, or of the calling thread.
fn cpu_secs(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // Fields after the command: state(skipped: not a number) ppid … utime is field 14.
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Arrivals at a sink: (ssrc, seq, payload head, arrival).
type Arrival = (u32, u16, u64, Instant);

/// A sink socket read by its own thread until `stop`; returns its address, the arrivals
/// and the thread (which yields its own CPU seconds).
fn sink(
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (UdpSocket, Arc<Mutex<Vec<Arrival>>>, std::thread::JoinHandle<f64>) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind sink");
    s.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
    let got = Arc::new(Mutex::new(Vec::with_capacity(100_000)));
    let (r, g) = (s.try_clone().expect("clone"), got.clone());
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut local = Vec::with_capacity(100_000);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok((n, _)) = r.recv_from(&mut buf) {
                let at = Instant::now();
                if n >= 20 {
                    let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
                    let seq = u16::from_be_bytes([buf[2], buf[3]]);
                    let head = u64::from_be_bytes(buf[12..20].try_into().unwrap_or_default());
                    local.push((ssrc, seq, head, at));
                }
            }
        }
        g.lock().unwrap_or_else(|e| e.into_inner()).extend(local);
        cpu_secs("/proc/thread-self/stat")
    });
    (s, got, t)
}

async fn playing(n: usize, prompt: &Prompt) -> String {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sinks: Vec<_> = (0..n.div_ceil(50)).map(|_| sink(stop.clone())).collect();
    let rss0 = rss_kib();
    let mut legs = Vec::with_capacity(n);
    for i in 0..n {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let to = sinks[i % sinks.len()].0.local_addr().expect("addr");
        legs.push(Arc::new(RtpLeg::start(socket, to, Codec::Pcma, Some(101))));
    }
    let cpu0 = cpu_secs("/proc/self/stat");
    let wall0 = Instant::now();
    let cancel = CancellationToken::new();
    let tasks: Vec<_> = legs
        .iter()
        .map(|leg| {
            let (leg, prompt, cancel) = (leg.clone(), prompt.clone(), cancel.clone());
            tokio::spawn(async move { leg.play(&prompt, &cancel).await })
        })
        .collect();
    tokio::time::sleep(prompt.duration() / 2).await;
    let rss_mid = rss_kib();
    for t in tasks {
        t.await.expect("join").expect("play");
    }
    let wall = wall0.elapsed().as_secs_f64();
    let cpu = cpu_secs("/proc/self/stat") - cpu0;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut sink_cpu = 0.0;
    let mut arrivals = Vec::new();
    for (_, got, t) in sinks {
        sink_cpu += t.join().expect("sink");
        arrivals.extend(got.lock().unwrap_or_else(|e| e.into_inner()).drain(..));
    }
    let mut by_leg: HashMap<u32, Vec<(u16, Instant)>> = HashMap::new();
    for (ssrc, seq, _, at) in arrivals {
        by_leg.entry(ssrc).or_default().push((seq, at));
    }
    let (mut grid, mut spacing) = (Vec::new(), Vec::new());
    let mut received = 0;
    for pkts in by_leg.values_mut() {
        received += pkts.len();
        let (seq0, t0) = *pkts.iter().min_by_key(|(_, at)| *at).expect("one");
        let mut by_n: Vec<(u32, Instant)> =
            pkts.iter().map(|(s, at)| (u32::from(s.wrapping_sub(seq0)), *at)).collect();
        by_n.sort();
        for (i, (k, at)) in by_n.iter().enumerate() {
            let ideal = t0 + Duration::from_millis(20) * *k;
            grid.push(if *at > ideal { *at - ideal } else { ideal - *at });
            if i > 0 && by_n[i - 1].0 + 1 == *k {
                let d = *at - by_n[i - 1].1;
                let twenty = Duration::from_millis(20);
                spacing.push(d.abs_diff(twenty));
            }
        }
    }
    grid.sort();
    spacing.sort();
    let expected = n * prompt.frames();
    drop(legs);
    format!(
        "| {n} | {received}/{expected} | {} | {} | {} | {} | {:.2} cores ({:.2} with the sinks) | {:.1} KiB |\n",
        ms(pct(&grid, 0.5)),
        ms(pct(&grid, 0.99)),
        ms(pct(&grid, 1.0)),
        ms(pct(&spacing, 0.99)),
        (cpu - sink_cpu) / wall,
        cpu / wall,
        rss_mid.saturating_sub(rss0) as f64 / n as f64,
    )
}

async fn relaying(pairs: usize, secs: u64) -> String {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let groups = pairs.div_ceil(50);
    // Patient-side and nurse-side sockets: each sends to its legs and sinks what comes back.
    let patients: Vec<_> = (0..groups).map(|_| sink(stop.clone())).collect();
    let nurses: Vec<_> = (0..groups).map(|_| sink(stop.clone())).collect();
    let mut legs = Vec::new();
    let mut targets: Vec<(usize, SocketAddr, SocketAddr)> = Vec::new();
    for i in 0..pairs {
        let g = i % groups;
        let a_sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let b_sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let a = RtpLeg::start(a_sock, patients[g].0.local_addr().expect("a"), Codec::Pcma, None);
        let b = RtpLeg::start(b_sock, nurses[g].0.local_addr().expect("b"), Codec::Pcma, None);
        targets.push((g, a.local_addr().expect("a"), b.local_addr().expect("b")));
        legs.push((Arc::new(a), Arc::new(b)));
    }
    let cancel = CancellationToken::new();
    let relays: Vec<_> = legs
        .iter()
        .map(|(a, b)| {
            let (a, b, cancel) = (a.clone(), b.clone(), cancel.clone());
            tokio::spawn(async move { relay(&a, &b, &cancel).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let base = Instant::now();
    let cpu0 = cpu_secs("/proc/self/stat");
    // Two sender threads (patient → A, nurse → B), 20 ms apart on an absolute grid; the
    // payload starts with the send time in nanoseconds since `base`.
    let senders: Vec<_> = [true, false]
        .into_iter()
        .map(|patient_side| {
            let socks: Vec<UdpSocket> = (0..groups)
                .map(|g| {
                    let s = if patient_side { &patients[g].0 } else { &nurses[g].0 };
                    s.try_clone().expect("clone")
                })
                .collect();
            let targets = targets.clone();
            std::thread::spawn(move || {
                let frames = secs * 50;
                for n in 0..frames {
                    let due = base + Duration::from_millis(20 * n);
                    if let Some(d) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(d);
                    }
                    for (i, (g, a, b)) in targets.iter().enumerate() {
                        let mut pkt = [0xD5u8; 172];
                        pkt[0] = 0x80;
                        pkt[1] = 8;
                        pkt[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                        pkt[4..8].copy_from_slice(&((n * 160) as u32).to_be_bytes());
                        pkt[8..12].copy_from_slice(&(i as u32).to_be_bytes());
                        let now = base.elapsed().as_nanos() as u64;
                        pkt[12..20].copy_from_slice(&now.to_be_bytes());
                        let to = if patient_side { *a } else { *b };
                        let _ = socks[*g].send_to(&pkt, to);
                    }
                }
            })
        })
        .collect();
    for s in senders {
        s.join().expect("sender");
    }
    let wall = base.elapsed().as_secs_f64();
    let cpu = cpu_secs("/proc/self/stat") - cpu0;
    tokio::time::sleep(Duration::from_millis(200)).await;
    cancel.cancel();
    for r in relays {
        r.await.expect("relay");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut lat = Vec::new();
    let mut sink_cpu = 0.0;
    for (_, got, t) in patients.into_iter().chain(nurses) {
        sink_cpu += t.join().expect("sink");
        for (_, _, sent, at) in got.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let sent = base + Duration::from_nanos(*sent);
            lat.push(at.saturating_duration_since(sent));
        }
    }
    lat.sort();
    let expected = pairs * 2 * (secs as usize) * 50;
    format!(
        "| {pairs} pairs, both ways, {secs} s | {}/{expected} | {} | {} | {} | {:.2} cores (sinks and senders excluded: {:.2}) |\n",
        lat.len(),
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99)),
        ms(pct(&lat, 1.0)),
        cpu / wall,
        (cpu - sink_cpu) / wall,
    )
}

fn main() {
    if !common::bench_requested("media") {
        return;
    }
    let legs: Vec<usize> = std::env::var("MEDIA_BENCH_LEGS")
        .unwrap_or_else(|_| "100,1000".to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let pairs: usize = env_or("MEDIA_BENCH_PAIRS", 500);
    let secs: u64 = env_or("MEDIA_BENCH_SECS", 5);
    let path = common::repo().join("sounds/fi/press-1.wav");
    let prompt = wav::load(&path).expect("the shipped prompt");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let mut out = format!(
        "prompt: {} ({:.2} s, {} frames); {} cores\n\n\
         | legs | packets | jitter p50 | jitter p99 | jitter max | spacing error p99 | CPU (legs) | memory per leg |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n",
        path.display(),
        prompt.duration().as_secs_f64(),
        prompt.frames(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    for n in legs {
        eprintln!("media bench: {n} legs playing");
        out.push_str(&rt.block_on(playing(n, &prompt)));
    }
    out.push_str(
        "\n| relay | packets | added latency p50 | p99 | max | CPU |\n|---|---:|---:|---:|---:|---:|\n",
    );
    eprintln!("media bench: relay, {pairs} pairs");
    out.push_str(&rt.block_on(relaying(pairs, secs)));
    print!("{out}");
}

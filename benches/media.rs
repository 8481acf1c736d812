//! Media benchmark: callbackd's RTP pacer and relay beside sipp and rtpengine, all measured
//! by the same receiver in another process. On loopback.
//!
//! Run with `cargo bench --bench media` (see BENCHMARKS.md, "Media"). Knobs (environment):
//! `MEDIA_BENCH_LEGS` (1000), `MEDIA_BENCH_PAIRS` (500), `MEDIA_BENCH_SECS` (relay
//! duration, 10), `MEDIA_BENCH_PHASES` (`20,1`: the relay runs once per value, the phones
//! sending in that many phases spread over each 20 ms frame; 1 is every phone at once).
//!
//! - **The receiver** is this bench re-executed (`--media-peer`): one socket per stream,
//!   each with kernel receive timestamps (`SO_TIMESTAMPNS`), so a figure is when the packet
//!   reached the receiver's socket, whatever the receiving process was doing then.
//! - **Playing.** `MEDIA_BENCH_LEGS` legs each play `sounds/fi/press-1.wav` (A-law) to their
//!   own receiver socket: callbackd's legs (`RtpLeg::play`, the pacer), then sipp playing
//!   the same audio as a pcap (`play_pcap_audio`, one call per stream, answered by a sipp
//!   UAS whose SDP names the stream's receiver socket). Jitter of packet *n* of a stream is
//!   its arrival against the stream's own grid `phase + n × 20 ms` (phase: the median over
//!   the stream); for callbackd it is also taken at the sender, from the pacer's record of
//!   the instant just before each send.
//! - **Relaying.** `MEDIA_BENCH_PAIRS` pairs of phones (patient and nurse, in the receiver
//!   process) each send a 20 ms A-law stream carrying its send time, phone i in phase
//!   i mod `MEDIA_BENCH_PHASES` of the frame, through callbackd's
//!   relay (`media::relay`) and then through rtpengine (userspace forwarding, sessions set up
//!   with ng `offer`/`answer`/`delete`). Added latency = arrival (kernel timestamp) − send
//!   time, both hops of loopback included.
//! - **CPU per stream** = CPU seconds of the process doing the work (callbackd: this bench's
//!   process; sipp: its UAC; rtpengine: its daemon) ÷ (streams × seconds), as milliseconds
//!   of CPU per second of stream.
//! - **The host's steadiness**: how long a fixed unit of arithmetic takes
//!   on every core, repeated for 3 s before the run and again after it (median, p99, the
//!   share of units that took more than twice the median, the longest), so the machine's
//!   own stalls can be told from the program's.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/pcap.rs"]
mod pcap;

use callbackd::media::{Codec, Prompt, RtpLeg, pacer, relay, wav};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// The daemon's allocator (`src/main.rs`), so that the legs and the relay measured here
/// allocate as they do in the daemon.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FRAME: Duration = Duration::from_millis(20);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// A comma-separated list of numbers from the environment; a bad entry is an error.
fn env_list(name: &str, default: &[u32]) -> Vec<u32> {
    match std::env::var(name) {
        Ok(v) => v
            .split(',')
            .map(|x| x.trim().parse().unwrap_or_else(|_| panic!("{name}: {x:?} is not a number")))
            .collect(),
        Err(_) => default.to_vec(),
    }
}

/// (user + system) CPU seconds of a process (`self` or a pid).
/// How long the relay works once the phones are told to send: they send for `secs`, and
/// the last packets are through well within the peer's 300 ms wait that follows. The CPU
/// and time of a relay are taken over this window only, not over the peer's report that
/// comes after it (half a million lines, which this process parses: its CPU, and its
/// varying length, were counted in the figures before).
fn streaming(secs: u64) -> Duration {
    Duration::from_secs(secs) + Duration::from_millis(300)
}

fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the command: state is field 3; utime and stime are fields 14 and 15 (man 5
    // proc). Every field is kept, so the positions hold (skipping the state once made
    // this read stime and cutime instead).
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (field(14) + field(15)) / 100.0
}

/// How steady the machine's own CPU is: one thread per core
/// repeats a fixed unit of arithmetic (about 100 µs on a quiet core) for `secs` and times
/// each unit. On a virtual machine whose host is busy, units take several times their
/// median, or a core is taken away for milliseconds; every packet due on that core
/// meanwhile is late by as much, whatever the program's design. Reported beside the
/// figures so a reader can tell the machine's jitter from the program's.
fn steadiness(secs: f64) -> String {
    fn unit(n: u64) -> u64 {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for i in 0..n {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i));
        }
        x
    }
    // Iterations for about 100 µs, from the fastest of a few trials.
    let probe = 100_000;
    let fastest = (0..5)
        .map(|_| {
            let t = Instant::now();
            unit(probe);
            t.elapsed()
        })
        .min()
        .unwrap_or(Duration::from_micros(100));
    let n = (probe as f64 * 100e-6 / fastest.as_secs_f64().max(1e-9)) as u64;
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            std::thread::spawn(move || {
                let end = Instant::now() + Duration::from_secs_f64(secs);
                let mut took = Vec::new();
                while Instant::now() < end {
                    let t = Instant::now();
                    unit(n);
                    took.push(t.elapsed().as_nanos() as u64);
                }
                took
            })
        })
        .collect();
    let mut took: Vec<u64> = threads.into_iter().flat_map(|t| t.join().expect("probe")).collect();
    took.sort_unstable();
    let median = pct(&took, 0.5).max(1) as f64;
    let slow = took.iter().filter(|t| **t as f64 > 2.0 * median).count();
    format!(
        "median {:.0} µs, p99 {:.1}× the median, {:.2}% of units over twice the median, the longest {:.1} ms",
        median / 1e3,
        pct(&took, 0.99) as f64 / median,
        100.0 * slow as f64 / took.len().max(1) as f64,
        pct(&took, 1.0) as f64 / 1e6,
    )
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn realtime_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(ns: u64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}

// ---------------------------------------------------------------------------------------
// The peer process: receiver sockets with kernel timestamps, and the relay's phones.

/// A packet as the receiver saw it: stream (socket index), kernel arrival (ns, realtime),
/// RTP sequence number, the first 8 payload bytes.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    stream: usize,
    at: u64,
    seq: u16,
    head: u64,
}

fn peer_socket() -> UdpSocket {
    use nix::sys::socket::{setsockopt, sockopt};
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind peer socket");
    setsockopt(&s, sockopt::ReceiveTimestampns, &true).expect("SO_TIMESTAMPNS");
    // Room for a stall of the receiving process (as root; ignored otherwise).
    let _ = setsockopt(&s, sockopt::RcvBufForce, &(256 * 1024));
    s.set_nonblocking(true).expect("nonblocking");
    s
}

/// Reads every ready datagram of every socket until `stop`, with its kernel timestamp.
fn receive_all(socks: &[UdpSocket], stop: &AtomicBool) -> Vec<Arrival> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg};
    use std::os::fd::{AsFd, AsRawFd};
    let mut got = Vec::with_capacity(400_000);
    let mut buf = [0u8; 2048];
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
    while !stop.load(Ordering::Relaxed) {
        let mut fds: Vec<PollFd<'_>> =
            socks.iter().map(|s| PollFd::new(s.as_fd(), PollFlags::POLLIN)).collect();
        if poll(&mut fds, PollTimeout::from(50u16)).unwrap_or(0) <= 0 {
            continue;
        }
        let ready: Vec<usize> = fds
            .iter()
            .enumerate()
            .filter(|(_, f)| f.revents().is_some_and(|r| r.contains(PollFlags::POLLIN)))
            .map(|(i, _)| i)
            .collect();
        drop(fds);
        for i in ready {
            loop {
                let mut iov = [std::io::IoSliceMut::new(&mut buf)];
                let Ok(msg) = recvmsg::<SockaddrStorage>(
                    socks[i].as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::MSG_DONTWAIT,
                ) else {
                    break;
                };
                let mut at = 0;
                for c in msg.cmsgs().into_iter().flatten() {
                    if let ControlMessageOwned::ScmTimestampns(ts) = c {
                        at = ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64;
                    }
                }
                let n = msg.bytes;
                if n >= 20 {
                    let seq = u16::from_be_bytes([buf[2], buf[3]]);
                    let head = u64::from_be_bytes(buf[12..20].try_into().unwrap_or_default());
                    got.push(Arrival { stream: i, at, seq, head });
                }
            }
        }
    }
    got
}

/// The peer's main: `--media-peer sink N` (N receiver sockets) or `--media-peer phones N
/// SECS PHASES` (N pairs of phones sending for SECS seconds, in PHASES groups spread over
/// each 20 ms frame). Prints its ports, reads its orders
/// on stdin, prints what it received.
fn peer(args: &[String]) {
    let role = args.first().map(String::as_str).unwrap_or("");
    let n: usize = args.get(1).and_then(|v| v.parse().ok()).expect("count");
    let count = if role == "phones" { 2 * n } else { n };
    let socks: Vec<UdpSocket> = (0..count).map(|_| peer_socket()).collect();
    let ports: Vec<String> =
        socks.iter().map(|s| s.local_addr().expect("addr").port().to_string()).collect();
    println!("ports {}", ports.join(" "));
    std::io::stdout().flush().expect("flush");
    let stop = Arc::new(AtomicBool::new(false));
    let mut stdin = BufReader::new(std::io::stdin());
    let mut sender = None;
    if role == "phones" {
        // Orders: where phone i sends (one port per socket).
        let mut line = String::new();
        stdin.read_line(&mut line).expect("targets");
        let targets: Vec<SocketAddr> = line
            .split_whitespace()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p.parse::<u16>().expect("port"))))
            .collect();
        assert_eq!(targets.len(), count, "one target per phone");
        let secs: u64 = args.get(2).and_then(|v| v.parse().ok()).expect("secs");
        let phases: u32 = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
        let send: Vec<UdpSocket> = socks.iter().map(|s| s.try_clone().expect("clone")).collect();
        sender = Some(std::thread::spawn(move || {
            let base = Instant::now();
            // Phone i sends in phase i % phases of each 20 ms frame, the phases spread evenly
            // over the frame (1: every phone at the same instant).
            for (f, phase) in (0..secs * 50).flat_map(|f| (0..phases).map(move |p| (f, p))) {
                let due = base + FRAME * f as u32 + FRAME * phase / phases;
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
                let mine = send.iter().zip(&targets).enumerate();
                for (i, (s, to)) in mine.filter(|(i, _)| *i as u32 % phases == phase) {
                    let mut pkt = [0xD5u8; 172];
                    pkt[0] = 0x80;
                    pkt[1] = 8;
                    pkt[2..4].copy_from_slice(&(f as u16).to_be_bytes());
                    pkt[4..8].copy_from_slice(&((f * 160) as u32).to_be_bytes());
                    pkt[8..12].copy_from_slice(&(i as u32 + 1).to_be_bytes());
                    pkt[12..20].copy_from_slice(&realtime_ns().to_be_bytes());
                    let _ = s.send_to(&pkt, to);
                }
            }
        }));
    }
    let waiter = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            if let Some(s) = sender {
                s.join().expect("sender");
                std::thread::sleep(Duration::from_millis(300));
            } else {
                let mut line = String::new();
                let _ = stdin.read_line(&mut line);
            }
            stop.store(true, Ordering::Relaxed);
        })
    };
    let got = receive_all(&socks, &stop);
    waiter.join().expect("waiter");
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for a in got {
        writeln!(out, "{} {} {} {}", a.stream, a.at, a.seq, a.head).expect("write");
    }
    writeln!(out, "end").expect("write");
}

/// The peer process seen from the bench.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    ports: Vec<u16>,
}

impl Peer {
    fn start(args: &[&str]) -> Peer {
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .arg("--media-peer")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the receiver process");
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("ports");
        let ports = line
            .strip_prefix("ports ")
            .expect("ports line")
            .split_whitespace()
            .map(|p| p.parse().expect("port"))
            .collect();
        Peer { child, stdin, stdout, ports }
    }

    fn addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports[i]))
    }

    fn order(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").expect("order");
        stdin.flush().expect("flush");
    }

    /// Waits for the peer's record (after telling a sink to stop).
    fn finish(mut self) -> Vec<Arrival> {
        if self.stdin.is_some() {
            self.order("stop");
        }
        let mut got = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            if self.stdout.read_line(&mut line).unwrap_or(0) == 0 || line.trim() == "end" {
                break;
            }
            let v: Vec<u64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            if let [stream, at, seq, head] = v[..] {
                got.push(Arrival { stream: stream as usize, at, seq: seq as u16, head });
            }
        }
        let _ = self.child.wait();
        if let Ok(dir) = std::env::var("MEDIA_BENCH_DUMP") {
            let name = format!("{dir}/peer-{}.txt", self.child.id());
            let text: String = got
                .iter()
                .map(|a| format!("{} {} {} {}\n", a.stream, a.at, a.seq, a.head))
                .collect();
            let _ = std::fs::write(name, text);
        }
        got
    }
}

// ---------------------------------------------------------------------------------------
// Figures.

/// Jitter of every packet of every stream: how far its arrival is from the stream's own
/// 20 ms grid, |arrival(n) − n × 20 ms − phase|, n counted from the sequence numbers and the
/// phase being the stream's median of `arrival(n) − n × 20 ms` (so a stream whose first
/// packet alone is off is not counted as wholly off). (ns, sorted)
fn jitter(streams: HashMap<usize, Vec<(u16, u64)>>) -> Vec<u64> {
    let mut out = Vec::new();
    for mut pkts in streams.into_values() {
        pkts.sort_by_key(|(_, at)| *at);
        let Some(&(seq0, _)) = pkts.first() else { continue };
        let offsets: Vec<i128> = pkts
            .iter()
            .map(|(seq, at)| i128::from(*at) - i128::from(seq.wrapping_sub(seq0)) * 20_000_000)
            .collect();
        let mut sorted = offsets.clone();
        sorted.sort_unstable();
        let phase = sorted[sorted.len() / 2];
        out.extend(offsets.iter().map(|o| (o - phase).unsigned_abs() as u64));
    }
    out.sort_unstable();
    out
}

fn by_stream(got: &[Arrival]) -> HashMap<usize, Vec<(u16, u64)>> {
    let mut m: HashMap<usize, Vec<(u16, u64)>> = HashMap::new();
    for a in got {
        m.entry(a.stream).or_default().push((a.seq, a.at));
    }
    m
}

/// One row of the playing table.
struct Playing {
    who: String,
    packets: usize,
    expected: usize,
    sender: Option<Vec<u64>>,
    receiver: Vec<u64>,
    cpu_ms_per_stream_s: f64,
    /// Said under the table.
    note: String,
}

impl Playing {
    fn row(&self) -> String {
        let sender = self.sender.as_ref().map_or("not measurable".to_owned(), |s| {
            format!("{} / {}", ms(pct(s, 0.99)), ms(pct(s, 1.0)))
        });
        format!(
            "| {} | {}/{} | {} | {} / {} / {} | {:.3} ms/s |\n",
            self.who,
            self.packets,
            self.expected,
            sender,
            ms(pct(&self.receiver, 0.5)),
            ms(pct(&self.receiver, 0.99)),
            ms(pct(&self.receiver, 1.0)),
            self.cpu_ms_per_stream_s,
        )
    }
}

async fn callbackd_playing(n: usize, prompt: &Prompt) -> Playing {
    let sink = Peer::start(&["sink", &n.to_string()]);
    let rss0 = common::rss_kib(std::process::id()).0;
    let mut legs = Vec::with_capacity(n);
    for i in 0..n {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        legs.push(Arc::new(
            RtpLeg::start(socket, sink.addr(i), Codec::Pcma, Some(101)).expect("leg"),
        ));
    }
    let ssrc_leg: HashMap<u32, usize> =
        legs.iter().enumerate().map(|(i, l)| (l.ssrc(), i)).collect();
    pacer::record_sends(n * (prompt.frames() + 1)).expect("pacer");
    let cancel = CancellationToken::new();
    let cpu0 = cpu_secs("self");
    let wall0 = Instant::now();
    let tasks: Vec<_> = legs
        .iter()
        .map(|leg| {
            let (leg, prompt, cancel) = (leg.clone(), prompt.clone(), cancel.clone());
            tokio::spawn(async move { leg.play(&prompt, &cancel).await })
        })
        .collect();
    tokio::time::sleep(prompt.duration() / 2).await;
    let rss_mid = common::rss_kib(std::process::id()).0;
    for t in tasks {
        t.await.expect("join").expect("play");
    }
    let wall = wall0.elapsed().as_secs_f64();
    let cpu = cpu_secs("self") - cpu0;
    let sent = pacer::take_sends();
    let mut late: Vec<u64> =
        sent.iter().map(|s| s.at.saturating_duration_since(s.due).as_nanos() as u64).collect();
    late.sort_unstable();
    if let Ok(dir) = std::env::var("MEDIA_BENCH_DUMP") {
        let text: String = sent
            .iter()
            .map(|s| {
                let due = s.due.into_std().saturating_duration_since(wall0).as_nanos();
                let at = s.at.into_std().saturating_duration_since(wall0).as_nanos();
                format!("{} {} {} {}\n", s.ssrc, s.frame, due, at)
            })
            .collect();
        let _ = std::fs::write(format!("{dir}/sends.txt"), text);
    }
    eprintln!(
        "media bench: pacer sends after their tick's start: p50 {} p99 {} max {}",
        ms(pct(&late, 0.5)),
        ms(pct(&late, 0.99)),
        ms(pct(&late, 1.0))
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(legs);
    let got = sink.finish();
    // At the sender: the instant before each send, by leg and frame.
    let mut at_sender: HashMap<usize, Vec<(u16, u64)>> = HashMap::new();
    let base = wall0 - Duration::from_secs(1);
    for s in &sent {
        let leg = ssrc_leg.get(&s.ssrc).copied().unwrap_or(usize::MAX);
        let at = s.at.into_std().saturating_duration_since(base).as_nanos() as u64;
        at_sender.entry(leg).or_default().push((s.frame as u16, at));
    }
    let note = format!(
        "callbackd: memory per playing leg {:.1} KiB (VmRSS growth to mid-prompt ÷ legs); pacer sends after their tick's start p50 {} / p99 {} / max {}\n",
        rss_mid.saturating_sub(rss0) as f64 / n as f64,
        ms(pct(&late, 0.5)),
        ms(pct(&late, 0.99)),
        ms(pct(&late, 1.0)),
    );
    Playing {
        who: "callbackd (pacer)".to_owned(),
        packets: got.len(),
        expected: n * prompt.frames(),
        sender: Some(jitter(at_sender)),
        receiver: jitter(by_stream(&got)),
        cpu_ms_per_stream_s: cpu * 1000.0 / (n as f64 * wall),
        note,
    }
}

const SIPP_UAC: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="play a prompt as a pcap">
  <send retrans="500"><![CDATA[
INVITE sip:bench@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:bench@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=sipp 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8
a=rtpmap:8 PCMA/8000
]]></send>
  <recv response="100" optional="true"/>
  <recv response="200"/>
  <send><![CDATA[
ACK sip:bench@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:bench@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <nop><action><exec play_pcap_audio="PCAP"/></action></nop>
  <pause milliseconds="PAUSE"/>
  <send retrans="500"><![CDATA[
BYE sip:bench@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:bench@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"#;

const SIPP_UAS: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="answer with the receiver socket of the call">
  <recv request="INVITE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=uas 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio [field0] RTP/AVP 8
a=rtpmap:8 PCMA/8000
]]></send>
  <recv request="ACK"/>
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"#;

/// A base port for sipp's media (`-mp`): sipp binds its audio socket there and its video
/// socket two above, so both must be free (the receiver holds a thousand ports of its own).
fn sipp_media_port() -> u16 {
    let free = |p: u16| UdpSocket::bind(("127.0.0.1", p)).is_ok();
    (0..100)
        .map(|_| common::sipp::free_udp_port())
        .find(|&p| p < u16::MAX - 3 && (1..=3).all(|k| free(p + k)))
        .expect("no free UDP port with three free ports above it in 100 tries")
}

fn sipp_playing(n: usize, prompt: &Prompt) -> Option<Playing> {
    common::tool("sipp", "sip-tester")?;
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("prompt.pcap");
    pcap::write(&pcap, prompt);
    let sink = Peer::start(&["sink", &n.to_string()]);
    let mut inf = String::from("SEQUENTIAL\n");
    for p in &sink.ports {
        inf.push_str(&format!("{p};\n"));
    }
    std::fs::write(dir.path().join("ports.csv"), inf).expect("csv");
    std::fs::write(dir.path().join("uas.xml"), SIPP_UAS).expect("uas");
    let pause = prompt.duration().as_millis() + 100;
    let uac =
        SIPP_UAC.replace("PCAP", &pcap.display().to_string()).replace("PAUSE", &pause.to_string());
    std::fs::write(dir.path().join("uac.xml"), uac).expect("uac");
    let uas_port = common::sipp::free_udp_port();
    let mut uas = Command::new("sipp")
        .current_dir(dir.path())
        .args(["-sf", "uas.xml", "-inf", "ports.csv", "-i", "127.0.0.1", "-p"])
        .arg(uas_port.to_string())
        .args(["-m", &n.to_string(), "-nostdin"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp uas");
    std::thread::sleep(Duration::from_millis(500));
    let uac_port = common::sipp::free_udp_port();
    let mp = sipp_media_port();
    let wall0 = Instant::now();
    let mut uac = Command::new("sipp")
        .current_dir(dir.path())
        .args(["-sf", "uac.xml", "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p"])
        .arg(uac_port.to_string())
        .args(["-mp", &mp.to_string()])
        .args(["-m", &n.to_string(), "-l", &n.to_string(), "-r", "500", "-nostdin"])
        .args(["-timeout", "120s", "-trace_err"])
        .arg(format!("127.0.0.1:{uas_port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("uac.stderr")).expect("stderr file"))
        .spawn()
        .expect("sipp uac");
    let pid = uac.id().to_string();
    // Its CPU just before it exits (a zombie's stat still holds it).
    let mut cpu = 0.0;
    let status = loop {
        if let Some(status) = uac.try_wait().expect("wait") {
            break status;
        }
        cpu = cpu_secs(&pid);
        std::thread::sleep(Duration::from_millis(100));
    };
    let wall = wall0.elapsed().as_secs_f64();
    let _ = uas.kill();
    let _ = uas.wait();
    // 0: every call succeeded; 1: some failed (their packets are missing from the row).
    // Anything else is sipp failing as a whole, whose row would mean nothing.
    if !matches!(status.code(), Some(0 | 1)) {
        let stderr = std::fs::read_to_string(dir.path().join("uac.stderr")).unwrap_or_default();
        panic!("sipp's UAC failed ({status}) after {wall:.1} s: {}", stderr.trim());
    }
    std::thread::sleep(Duration::from_millis(200));
    let got = sink.finish();
    // The streams played at once for about the prompt's length each.
    let stream_secs = n as f64 * prompt.duration().as_secs_f64();
    eprintln!("media bench: sipp UAC ran {wall:.1} s, {cpu:.2} CPU s");
    Some(Playing {
        who: "sipp 3.6 `play_pcap_audio`".to_owned(),
        packets: got.len(),
        expected: n * prompt.frames(),
        sender: None,
        receiver: jitter(by_stream(&got)),
        cpu_ms_per_stream_s: cpu * 1000.0 / stream_secs,
        note: format!("sipp: UAC ran {wall:.1} s for the {n} calls, {cpu:.2} CPU-s\n"),
    })
}

// ---------------------------------------------------------------------------------------
// Relaying.

struct Relaying {
    who: String,
    packets: usize,
    expected: usize,
    latency: Vec<u64>,
    cpu_ms_per_stream_s: f64,
}

impl Relaying {
    fn row(&self) -> String {
        format!(
            "| {} | {}/{} | {} / {} / {} | {:.3} ms/s |\n",
            self.who,
            self.packets,
            self.expected,
            ms(pct(&self.latency, 0.5)),
            ms(pct(&self.latency, 0.99)),
            ms(pct(&self.latency, 1.0)),
            self.cpu_ms_per_stream_s,
        )
    }
}

fn latency(got: &[Arrival]) -> Vec<u64> {
    let mut v: Vec<u64> = got.iter().map(|a| a.at.saturating_sub(a.head)).collect();
    v.sort_unstable();
    v
}

async fn callbackd_relaying(pairs: usize, secs: u64, phases: u32) -> Relaying {
    let mut phones =
        Peer::start(&["phones", &pairs.to_string(), &secs.to_string(), &phases.to_string()]);
    // Phone 2i is the patient of pair i, 2i + 1 the nurse.
    let mut legs = Vec::new();
    let mut targets = Vec::new();
    for i in 0..pairs {
        let a = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let b = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let a = RtpLeg::start(a, phones.addr(2 * i), Codec::Pcma, None).expect("leg");
        let b = RtpLeg::start(b, phones.addr(2 * i + 1), Codec::Pcma, None).expect("leg");
        targets.push(a.local_addr().expect("a").port().to_string());
        targets.push(b.local_addr().expect("b").port().to_string());
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
    let cpu0 = cpu_secs("self");
    let wall0 = Instant::now();
    phones.order(&targets.join(" "));
    phones.stdin = None;
    tokio::time::sleep(streaming(secs)).await;
    let (cpu, wall) = (cpu_secs("self") - cpu0, wall0.elapsed().as_secs_f64());
    let got = tokio::task::spawn_blocking(move || phones.finish()).await.expect("phones");
    cancel.cancel();
    for r in relays {
        r.await.expect("relay");
    }
    Relaying {
        who: format!("callbackd (`media::relay`), {}", in_phases(phases)),
        packets: got.len(),
        expected: pairs * 2 * secs as usize * 50,
        latency: latency(&got),
        cpu_ms_per_stream_s: cpu * 1000.0 / (2.0 * pairs as f64 * wall),
    }
}

/// A bencoded dictionary of strings (the ng protocol's requests).
fn bencode(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = b"d".to_vec();
    let mut sorted = pairs.to_vec();
    sorted.sort();
    for (k, v) in sorted {
        out.extend_from_slice(format!("{}:{}{}:{}", k.len(), k, v.len(), v).as_bytes());
    }
    out.push(b'e');
    out
}

/// The string value of `key` in an ng reply (`…3:sdp123:v=0…`).
fn bvalue(reply: &[u8], key: &str) -> Option<String> {
    let text = String::from_utf8_lossy(reply);
    let tag = format!("{}:{}", key.len(), key);
    let rest = &text[text.find(&tag)? + tag.len()..];
    let (len, rest) = rest.split_once(':')?;
    let len: usize = len.parse().ok()?;
    rest.get(..len).map(str::to_owned)
}

fn ng(sock: &UdpSocket, n: &mut u32, pairs: &[(&str, &str)]) -> Vec<u8> {
    *n += 1;
    let mut msg = format!("c{n} ").into_bytes();
    msg.extend(bencode(pairs));
    sock.send(&msg).expect("ng send");
    let mut buf = vec![0u8; 65536];
    let len = sock.recv(&mut buf).expect("ng reply");
    buf.truncate(len);
    let text = String::from_utf8_lossy(&buf);
    assert!(text.contains("6:result2:ok"), "rtpengine: {text}");
    buf
}

fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n"
    )
}

fn sdp_port(sdp: &str) -> u16 {
    sdp.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .expect("m=audio port")
}

/// How the phones send, for the table.
fn in_phases(phases: u32) -> String {
    if phases == 1 { "phones in step".to_owned() } else { format!("phones in {phases} phases") }
}

fn rtpengine_relaying(pairs: usize, secs: u64, phases: u32) -> Option<Relaying> {
    let program = common::tool("rtpengine", "rtpengine-daemon")?;
    let ng_port = common::sipp::free_udp_port();
    let mut daemon = Command::new(program)
        .args(["--config-file=none", "--foreground", "--log-stderr", "--table=-1"])
        .args(["--interface=127.0.0.1", "--port-min=20000", "--port-max=29999"])
        .arg(format!("--listen-ng=127.0.0.1:{ng_port}"))
        .args(["--log-level=3", "--delete-delay=0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rtpengine");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.connect(("127.0.0.1", ng_port)).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let deadline = Instant::now() + common::WAIT;
    let mut n = 0;
    loop {
        n += 1;
        let _ = sock.send(format!("p{n} d7:command4:pinge").as_bytes());
        let mut buf = [0u8; 256];
        if sock.recv(&mut buf).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "rtpengine did not answer ping");
    }
    let mut phones =
        Peer::start(&["phones", &pairs.to_string(), &secs.to_string(), &phases.to_string()]);
    let mut targets = Vec::new();
    for i in 0..pairs {
        let call = format!("bench-{i}");
        let offer = ng(
            &sock,
            &mut n,
            &[
                ("command", "offer"),
                ("call-id", &call),
                ("from-tag", "patient"),
                ("sdp", &sdp(phones.ports[2 * i])),
            ],
        );
        let to_nurse = sdp_port(&bvalue(&offer, "sdp").expect("offer sdp"));
        let answer = ng(
            &sock,
            &mut n,
            &[
                ("command", "answer"),
                ("call-id", &call),
                ("from-tag", "patient"),
                ("to-tag", "nurse"),
                ("sdp", &sdp(phones.ports[2 * i + 1])),
            ],
        );
        let to_patient = sdp_port(&bvalue(&answer, "sdp").expect("answer sdp"));
        // The patient sends to rtpengine's port offered to it (in the answer), the nurse to
        // the one in the offer.
        targets.push(to_patient.to_string());
        targets.push(to_nurse.to_string());
    }
    let pid = daemon.id().to_string();
    let cpu0 = cpu_secs(&pid);
    let wall0 = Instant::now();
    phones.order(&targets.join(" "));
    phones.stdin = None;
    std::thread::sleep(streaming(secs));
    let (cpu, wall) = (cpu_secs(&pid) - cpu0, wall0.elapsed().as_secs_f64());
    let got = phones.finish();
    for i in 0..pairs {
        let call = format!("bench-{i}");
        ng(&sock, &mut n, &[("command", "delete"), ("call-id", &call), ("from-tag", "patient")]);
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    Some(Relaying {
        who: format!("rtpengine 10.5 (userspace), {}", in_phases(phases)),
        packets: got.len(),
        expected: pairs * 2 * secs as usize * 50,
        latency: latency(&got),
        cpu_ms_per_stream_s: cpu * 1000.0 / (2.0 * pairs as f64 * wall),
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--media-peer") {
        peer(&args[i + 1..]);
        return;
    }
    if !common::bench_requested("media") {
        return;
    }
    let legs: usize = env_or("MEDIA_BENCH_LEGS", 1000);
    let pairs: usize = env_or("MEDIA_BENCH_PAIRS", 500);
    let secs: u64 = env_or("MEDIA_BENCH_SECS", 10);
    let path = common::repo().join("sounds/fi/press-1.wav");
    let prompt = wav::load(&path).expect("the shipped prompt");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let load_before = loadavg();
    eprintln!("media bench: the host's steadiness");
    let steady_before = steadiness(3.0);
    eprintln!("media bench: {legs} callbackd legs playing");
    let ours = rt.block_on(callbackd_playing(legs, &prompt));
    eprintln!("media bench: {legs} sipp calls playing a pcap");
    let sipp = sipp_playing(legs, &prompt);
    // Real phones send on phases of their own; in step (every phone's packet at one
    // instant) is the worst case, a queue of a whole frame's packets at once.
    let mut relaying = Vec::new();
    for phases in env_list("MEDIA_BENCH_PHASES", &[20, 1]) {
        eprintln!("media bench: callbackd relaying {pairs} pairs, {}", in_phases(phases));
        relaying.push(rt.block_on(callbackd_relaying(pairs, secs, phases)));
        eprintln!("media bench: rtpengine relaying {pairs} pairs, {}", in_phases(phases));
        relaying.extend(rtpengine_relaying(pairs, secs, phases));
    }
    eprintln!("media bench: the host's steadiness again");
    let steady_after = steadiness(3.0);
    let load_after = loadavg();
    let mut out = format!(
        "prompt: {} ({:.2} s, {} frames); {} cores; load before {load_before}, after {load_after}\n\n\
         | {legs} streams playing | packets | send jitter p99 / max (sender) | jitter p50 / p99 / max (receiver) | CPU per stream |\n\
         |---|---:|---:|---:|---:|\n",
        path.display(),
        prompt.duration().as_secs_f64(),
        prompt.frames(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    out.push_str(&ours.row());
    let mut notes = ours.note.clone();
    notes.push_str(&format!(
        "host steadiness (a fixed unit of arithmetic on every core for 3 s): before the run {steady_before}; after it {steady_after}\n"
    ));
    if let Some(s) = sipp {
        out.push_str(&s.row());
        notes.push_str(&s.note);
    }
    out.push('\n');
    out.push_str(&notes);
    out.push_str(&format!(
        "\n| {pairs} pairs relayed both ways, {secs} s | packets | added latency p50 / p99 / max | CPU per stream |\n|---|---:|---:|---:|\n"
    ));
    for r in &relaying {
        out.push_str(&r.row());
    }
    print!("{out}");
}

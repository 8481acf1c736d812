//! SIP dialer benchmark: the real daemon dialling a sipp UAS, next to sipp's own UAC.
//!
//! Run with `cargo bench --bench sip` (see BENCHMARKS.md, "SIP dialer"). Needs `sipp`
//! (Debian package `sip-tester`); without it the bench says SKIPPED and exits 0. Phases, all
//! in one run, one after the other on the same machine:
//!
//! 1. **sipp → sipp.** `sipp -sn uas` and `sipp -sn uac -r RATE -l LIMIT -m N` against it:
//!    the reference rate for this machine (a plain INVITE/ACK/BYE call).
//! 2. **callbackd burst.** N requests enqueued through `Store::enqueue` into a fresh store,
//!    all due at one instant T0 a few seconds ahead; the real daemon
//!    (`target/release/callbackd serve`) with a 24/7 dialplan (`capacity` 1000,
//!    `confirm = "none"`), `max_calls` 1000 and `calls_per_second` `SIP_BENCH_CPS` (10000,
//!    the config's maximum) dials a fresh sipp UAS running `tests/sipp/uas_answer_all.xml`
//!    (answer, accept the REFER with 202, NOTIFY sipfrag 200, expect BYE). Every call is
//!    the whole answered-call flow: the "connecting" prompt (about 1.8 s), the blind
//!    transfer with REFER to the staff queue, BYE. Timed from T0 until every request is
//!    `connected` in the store. Loss/duplication from the store (attempts per request) and
//!    from sipp's message trace (INVITE transactions, Call-IDs).
//! 3. **callbackd paced.** The same with the N due times spread at `SIP_BENCH_PACE`
//!    requests/s: time from each request's due time to sipp sending 200 OK, at a load the
//!    daemon can sustain; then, after `SIP_BENCH_LINGER_SECS`, a second batch of N.
//! 4. **Memory per active call.** K requests in two halves (due at T0 and T0 + 4 s) against
//!    `bench/uas_answer_refer_hold.xml`, which accepts the REFER but never sends the NOTIFY:
//!    each call stays up in the daemon's transfer wait (45 s). VmRSS idle (queue loaded,
//!    before T0), with K/2 and with K calls in that state (counted by the daemon's
//!    `REFER accepted` log lines); per call = (RSS − idle)/K and the marginal
//!    (RSS(K) − RSS(K/2))/(K/2). Then SIGTERM with `shutdown_grace = "0s"`: every call is
//!    hung up with BYE and sipp must see K complete calls.
//!
//! Every child (sipp, callbackd) is killed when its guard drops; every wait is bounded.
//!
//! Knobs (environment): `SIP_BENCH_CALLS` (N, default 2000), `SIP_BENCH_HOLD` (K, 400),
//! `SIP_BENCH_SIPP_RATE` (2000), `SIP_BENCH_SIPP_LIMIT` (200), `SIP_BENCH_PACE` (500),
//! `SIP_BENCH_CPS` (the daemon's `calls_per_second`, 10000),
//! `SIP_BENCH_CAPACITY` (the dialplan's `capacity` in phases 2 and 3, 1000),
//! `SIP_BENCH_LINGER_SECS` (RSS again this long after the paced run's last call, 40; 0 = no),
//! `SIP_BENCH_OUT` (also write the markdown report to this file). `SIP_BENCH_HOLD=0` skips
//! phase 4. `SIP_BENCH_ONLY=short` runs only the call of no length, sipp's and the daemon's
//! (printed, no report), e.g. to profile the daemon during its burst; `SIP_BENCH_ONLY=prompt`
//! only the call with the prompt, likewise.
//! `SIP_BENCH_RUST_LOG` (the daemon's `RUST_LOG`, e.g. `info,sqlx::query=debug` for one
//! line per SQL statement) and `SIP_BENCH_LOG_DIR` (keep each daemon's log there, as
//! `daemon-<its temporary directory's name>.log`; otherwise it goes with that directory).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/pcap.rs"]
mod pcap;

use callbackd::dialplan::{self, Services};
use callbackd::lang::Lang;
use callbackd::number::E164;
use callbackd::policy::{self, Decision, Plan, RequestFacts};
use callbackd::store::{NewRequest, Store};
use jiff::{SignedDuration, Timestamp};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Bound on every wait (the run is cut short if calls do not complete: then the report
/// shows what the store and sipp saw).
const WAIT: Duration = Duration::from_secs(45);
/// Lead time from "daemon ready" to the first due instant.
const LEAD: Duration = Duration::from_secs(4);

/// A 24/7 service; `capacity` is the dialplan's maximum.
const DIALPLAN: &str = r#"
id = "bench"
name = "Kallion terveysasema"
capacity = 1000

[caller_id]
number = "+358 9 3104 5501"
name = "Kallion terveysasema"

[hours]
holidays = "none"
mon = ["00:00-24:00"]
tue = ["00:00-24:00"]
wed = ["00:00-24:00"]
thu = ["00:00-24:00"]
fri = ["00:00-24:00"]
sat = ["00:00-24:00"]
sun = ["00:00-24:00"]

[attempts]
max = 2
pause = "10m"
ring_timeout = "30s"
last_call_before_close = "0s"
network_retry = "1m"

[connect]
target = "sip:hoitajat@127.0.0.1"
confirm = "none"
"#;

fn env_or<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

#[derive(Debug, Clone, Copy)]
struct Knobs {
    calls: u32,
    hold: u32,
    sipp_rate: u32,
    sipp_limit: u32,
    pace: u32,
    capacity: u32,
    cps: u32,
    linger: u64,
}

/// Seconds since the Unix epoch (the clock sipp's trace uses).
fn epoch_now() -> f64 {
    Timestamp::now().as_microsecond() as f64 / 1e6
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU time (user + system) of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some((_, rest)) = stat.rsplit_once(')') else { return 0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3; utime and stime are fields 14 and 15.
    let get = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(14) + get(15)
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// A child process killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
struct Proc {
    child: Child,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the exit, bounded; true if it exited (with any status).
    fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill").args([sig, &self.pid().to_string()]).status();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// sipp with the given arguments; waits (bounded) until it holds `port` when given.
fn sipp(args: &[String], port: Option<u16>) -> Proc {
    let child = Command::new("sipp")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sipp");
    if let Some(port) = port {
        for _ in 0..250 {
            if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Proc { child }
}

/// A sipp UAS on `port` for `calls` calls, tracing every message (one line each):
/// `scenario` = `None` is sipp's built-in `-sn uas`, else `-sf` that file (as
/// tests/postgres.rs starts its PBX).
fn sipp_uas(dir: &Path, port: u16, calls: u32, scenario: Option<&Path>) -> Proc {
    let p = |f: &str| dir.join(f).display().to_string();
    let mut args: Vec<String> = match scenario {
        None => vec!["-sn".into(), "uas".into()],
        Some(file) => {
            vec!["-sf".into(), file.display().to_string(), "-mi".into(), "127.0.0.1".into()]
        }
    };
    args.extend(
        [
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-m",
            &calls.to_string(),
            "-nostdin",
            "-trace_shortmsg",
            "-shortmessage_file",
            &p("uas_msgs.log"),
            "-trace_stat",
            "-stf",
            &p("uas_stat.csv"),
            "-fd",
            "1",
            "-trace_err",
            "-error_file",
            &p("uas_err.log"),
        ]
        .iter()
        .map(|s| (*s).to_owned()),
    );
    sipp(&args, Some(port))
}

/// The last line of a sipp `-trace_stat` file, by column name.
fn sipp_stat(file: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(head) = lines.next() else { return HashMap::new() };
    let Some(last) = lines.next_back() else { return HashMap::new() };
    head.split(';').map(str::to_owned).zip(last.split(';').map(str::to_owned)).collect()
}

/// One call as sipp's UAS saw it (epoch seconds).
#[derive(Debug, Default, Clone)]
struct UasCall {
    invite: Option<f64>,
    ok: Option<f64>,
    bye_ok: Option<f64>,
}

/// What the UAS's message trace says.
#[derive(Debug, Default)]
struct UasTrace {
    invite_msgs: u64,
    invite_transactions: u64,
    calls: HashMap<String, UasCall>,
    byes: u64,
}

impl UasTrace {
    fn read(file: &Path) -> UasTrace {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let mut t = UasTrace::default();
        let mut transactions = HashSet::new();
        for line in text.lines() {
            // date, time, epoch, R|S, Call-ID, "CSeq:N METHOD", first line
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() < 7 {
                continue;
            }
            let Ok(at) = f[2].trim().parse::<f64>() else { continue };
            let (dir, call_id, cseq, first) = (f[3], f[4], f[5], f[6]);
            let method = cseq.split_whitespace().last().unwrap_or_default();
            let is_request = !first.starts_with("SIP/2.0");
            let call = t.calls.entry(call_id.to_owned()).or_default();
            match (dir, is_request, method) {
                ("R", true, "INVITE") => {
                    t.invite_msgs += 1;
                    transactions.insert((call_id.to_owned(), cseq.to_owned()));
                    call.invite.get_or_insert(at);
                }
                ("S", false, "INVITE") if first.starts_with("SIP/2.0 200") => {
                    call.ok.get_or_insert(at);
                }
                ("R", true, "BYE") => t.byes += 1,
                ("S", false, "BYE") if first.starts_with("SIP/2.0 200") => {
                    call.bye_ok.get_or_insert(at);
                }
                _ => {}
            }
        }
        t.calls.retain(|_, c| c.invite.is_some());
        t.invite_transactions = transactions.len() as u64;
        t
    }

    /// First INVITE received → last 200 OK to a BYE sent, in seconds.
    fn window(&self) -> f64 {
        let first = self.calls.values().filter_map(|c| c.invite).fold(f64::INFINITY, f64::min);
        let last = self.calls.values().filter_map(|c| c.bye_ok).fold(0.0, f64::max);
        (last - first).max(1e-9)
    }

    fn completed(&self) -> usize {
        self.calls.values().filter(|c| c.ok.is_some() && c.bye_ok.is_some()).count()
    }
}

/// The request id in one of callbackd's Call-IDs (`cb-REQ-ATTEMPT-SEQ@callbackd`).
fn request_of(call_id: &str) -> Option<i64> {
    call_id.strip_prefix("cb-")?.split('-').next()?.parse().ok()
}

/// Percentiles of samples (seconds).
#[derive(Debug, Default, Clone, Copy)]
struct Lat {
    p50: f64,
    p99: f64,
    max: f64,
}

impl Lat {
    fn of(mut v: Vec<f64>) -> Lat {
        if v.is_empty() {
            return Lat::default();
        }
        v.sort_by(f64::total_cmp);
        let pick = |q: f64| {
            let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
            v[rank - 1]
        };
        Lat { p50: pick(0.5), p99: pick(0.99), max: pick(1.0) }
    }

    fn cells(&self) -> String {
        format!("{} / {} / {}", ms(self.p50), ms(self.p99), ms(self.max))
    }
}

fn ms(s: f64) -> String {
    let v = s * 1e3;
    if v >= 100.0 { format!("{v:.0} ms") } else { format!("{v:.1} ms") }
}

/// The sipp → sipp reference.
#[derive(Debug, Default)]
struct SippRun {
    load_before: String,
    load_after: String,
    wall: f64,
    window_rate: f64,
    own_rate: String,
    successful: String,
    failed: String,
    retrans: String,
    uas_calls: usize,
    uas_invites: u64,
    uas_invite_tx: u64,
}

/// One run of the daemon against a sipp UAS.
#[derive(Debug, Default)]
struct DaemonRun {
    load_before: String,
    load_after: String,
    n: u32,
    /// Due instant → every request connected in the store (s).
    to_all_connected: f64,
    /// First claim → last claim (store `started_at`, ms resolution).
    claim_span: f64,
    window_rate: f64,
    cpu_daemon: f64,
    /// Requests connected in the burst, and the daemon's CPU from the due instant until the
    /// last of them was: the calls a busy UAS left without a final NOTIFY are held to the
    /// transfer limit (45 s) after that, where sipp's UAC ends such a call at once.
    connected: i64,
    cpu_to_last: f64,
    states: BTreeMap<String, i64>,
    outcomes: BTreeMap<String, i64>,
    requests_without_attempt: i64,
    requests_with_more: i64,
    uas_calls: usize,
    uas_invites: u64,
    uas_invite_tx: u64,
    uas_completed: usize,
    uas_distinct_requests: usize,
    uas_unknown_requests: usize,
    due_to_ok: Lat,
    claim_to_ok: Lat,
    ok_to_persisted: Lat,
    rss_idle: (u64, u64),
    rss_end: (u64, u64),
    rss_linger: Option<u64>,
    rss_second: Option<u64>,
    sipp_exit: String,
    uas_errors: usize,
}

#[derive(Debug, Default)]
struct HoldRun {
    load: String,
    k: u32,
    idle: u64,
    half: u64,
    full: u64,
    hwm: u64,
    answered_half: usize,
    answered_full: usize,
    after_stop_calls: usize,
    sipp_exit: String,
    daemon_exit: String,
}

fn main() {
    if !common::bench_requested("sip") {
        return;
    }
    let knobs = Knobs {
        calls: env_or("SIP_BENCH_CALLS", 2000),
        hold: env_or("SIP_BENCH_HOLD", 400),
        sipp_rate: env_or("SIP_BENCH_SIPP_RATE", 2000),
        sipp_limit: env_or("SIP_BENCH_SIPP_LIMIT", 200),
        pace: env_or("SIP_BENCH_PACE", 500),
        capacity: env_or("SIP_BENCH_CAPACITY", 1000),
        cps: env_or("SIP_BENCH_CPS", 10_000),
        linger: env_or("SIP_BENCH_LINGER_SECS", 40),
    };
    if !common::sipp::have_sipp() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let bin = env!("CARGO_BIN_EXE_callbackd");
    eprintln!("sip bench: {knobs:?}, daemon {bin}");

    if std::env::var("SIP_BENCH_ONLY").is_ok_and(|v| v == "short") {
        // The call of no length alone, e.g. to profile the daemon during its burst.
        let blip = callbackd::media::Prompt::from_samples(vec![0]);
        eprintln!("sipp like callbackd, one frame: {:?}", sipp_like_callbackd(&knobs, &blip));
        eprintln!("callbackd burst, one frame: {:?}", rt.block_on(daemon_run(&knobs, None, true)));
        return;
    }
    if std::env::var("SIP_BENCH_ONLY").is_ok_and(|v| v == "prompt") {
        // The call with the prompt alone, e.g. to compare the pacers' cost.
        let connecting =
            callbackd::media::wav::load(&common::repo().join("sounds/fi/connecting.wav"))
                .expect("the shipped connecting prompt");
        eprintln!(
            "sipp like callbackd, with the prompt: {:?}",
            sipp_like_callbackd(&knobs, &connecting)
        );
        eprintln!("callbackd burst: {:?}", rt.block_on(daemon_run(&knobs, None, false)));
        return;
    }
    let reference = sipp_reference(&knobs);
    eprintln!("sipp → sipp: {reference:?}");
    let connecting = callbackd::media::wav::load(&common::repo().join("sounds/fi/connecting.wav"))
        .expect("the shipped connecting prompt");
    let blip = callbackd::media::Prompt::from_samples(vec![0]);
    let sipp_long = sipp_like_callbackd(&knobs, &connecting);
    eprintln!("sipp like callbackd, with the prompt: {sipp_long:?}");
    let burst = rt.block_on(daemon_run(&knobs, None, false));
    eprintln!("callbackd burst: {burst:?}");
    let sipp_short = sipp_like_callbackd(&knobs, &blip);
    eprintln!("sipp like callbackd, one frame: {sipp_short:?}");
    let short = rt.block_on(daemon_run(&knobs, None, true));
    eprintln!("callbackd burst, one frame: {short:?}");
    let shape = shape_report(&knobs, &connecting, [&sipp_long, &sipp_short], [&burst, &short]);
    let paced = rt.block_on(daemon_run(&knobs, Some(knobs.pace), false));
    eprintln!("callbackd paced: {paced:?}");
    let hold = if knobs.hold > 0 { rt.block_on(hold_run(knobs.hold)) } else { HoldRun::default() };
    eprintln!("hold: {hold:?}");

    let md = format!("{shape}\n{}", report(&knobs, &reference, [&short, &burst], &paced, &hold));
    println!("{md}");
    if let Ok(out) = std::env::var("SIP_BENCH_OUT") {
        std::fs::write(&out, &md).expect("write SIP_BENCH_OUT");
        eprintln!("report written to {out}");
    }
}

fn sipp_reference(knobs: &Knobs) -> SippRun {
    let dir = tempfile::tempdir().expect("temporary directory");
    let uas_port = common::sipp::free_udp_port();
    let mut r = SippRun { load_before: loadavg(), ..SippRun::default() };
    let mut uas = sipp_uas(dir.path(), uas_port, knobs.calls, None);
    let uac_port = common::sipp::free_udp_port();
    let stat = dir.path().join("uac_stat.csv");
    let args: Vec<String> = vec![
        "-sn".into(),
        "uac".into(),
        format!("127.0.0.1:{uas_port}"),
        "-i".into(),
        "127.0.0.1".into(),
        "-p".into(),
        uac_port.to_string(),
        "-m".into(),
        knobs.calls.to_string(),
        "-r".into(),
        knobs.sipp_rate.to_string(),
        "-l".into(),
        knobs.sipp_limit.to_string(),
        "-nostdin".into(),
        "-trace_stat".into(),
        "-stf".into(),
        stat.display().to_string(),
        "-fd".into(),
        "1".into(),
    ];
    let t = Instant::now();
    let mut uac = sipp(&args, None);
    let status = uac.wait_exit(WAIT);
    r.wall = t.elapsed().as_secs_f64();
    assert!(status.is_some(), "sipp UAC did not finish within {WAIT:?}");
    if uas.wait_exit(Duration::from_secs(10)).is_none() {
        uas.signal("-USR1");
        let _ = uas.wait_exit(Duration::from_secs(5));
    }
    r.load_after = loadavg();
    let s = sipp_stat(&stat);
    let get = |k: &str| s.get(k).cloned().unwrap_or_default();
    r.own_rate = get("CallRate(C)");
    r.successful = get("SuccessfulCall(C)");
    r.failed = get("FailedCall(C)");
    r.retrans = get("Retransmissions(C)");
    let trace = UasTrace::read(&dir.path().join("uas_msgs.log"));
    r.uas_calls = trace.calls.len();
    r.uas_invites = trace.invite_msgs;
    r.uas_invite_tx = trace.invite_transactions;
    r.window_rate = trace.completed() as f64 / trace.window();
    r
}

/// sipp's UAC placing callbackd's call: INVITE (A-law and telephone-event offered), ACK,
/// the prompt played as a pcap while waiting its length, REFER to the staff queue (202,
/// then the UAS's NOTIFY sipfrag answered 200), BYE. `PLAY` and `PAUSE` are filled in.
const SIPP_LIKE_CALLBACKD: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="callbackd's call">
  <send retrans="500"><![CDATA[
INVITE sip:patient@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Kallion terveysasema" <sip:+35893104[call_number]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:patient@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:callbackd@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=callbackd 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=ptime:20
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Kallion terveysasema" <sip:+35893104[call_number]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:patient@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
PLAY
  <pause milliseconds="PAUSE"/>
  <send retrans="500"><![CDATA[
REFER [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Kallion terveysasema" <sip:+35893104[call_number]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:patient@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 REFER
Contact: <sip:callbackd@[local_ip]:[local_port]>
Refer-To: <sip:hoitajat@127.0.0.1>
Referred-By: <sip:callbackd@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="202"/>
  <recv request="NOTIFY"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Kallion terveysasema" <sip:+35893104[call_number]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:patient@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 3 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"#;

/// sipp's UAC placing callbackd's call (one side of the "same call shape" table).
#[derive(Debug, Default)]
struct ShapeRun {
    load_before: String,
    load_after: String,
    n: u32,
    completed: usize,
    window_rate: f64,
    cpu_secs: f64,
    uas_errors: usize,
}

/// sipp's UAC doing what callbackd's call does against the same UAS scenario, `limit` calls
/// at once: with `prompt` played as a pcap (and its length waited), or with the one-frame
/// blip (a one-packet pcap and a 40 ms wait: what the daemon takes to play one frame).
fn sipp_like_callbackd(knobs: &Knobs, prompt: &callbackd::media::Prompt) -> ShapeRun {
    let dir = tempfile::tempdir().expect("temporary directory");
    let n = knobs.calls;
    let pcap = dir.path().join("prompt.pcap");
    pcap::write(&pcap, prompt);
    let pause = (prompt.frames() as u64 + 1) * 20;
    let play =
        format!("  <nop><action><exec play_pcap_audio=\"{}\"/></action></nop>", pcap.display());
    let scenario = dir.path().join("uac.xml");
    std::fs::write(
        &scenario,
        SIPP_LIKE_CALLBACKD.replace("PLAY", &play).replace("PAUSE", &pause.to_string()),
    )
    .expect("write scenario");
    let uas_port = common::sipp::free_udp_port();
    let mut r = ShapeRun { n, load_before: loadavg(), ..ShapeRun::default() };
    let uas_scenario = common::repo().join("tests/sipp/uas_answer_all.xml");
    let mut uas = sipp_uas(dir.path(), uas_port, n, Some(&uas_scenario));
    let uac_port = common::sipp::free_udp_port();
    let args: Vec<String> = vec![
        "-sf".into(),
        scenario.display().to_string(),
        format!("127.0.0.1:{uas_port}"),
        "-i".into(),
        "127.0.0.1".into(),
        "-mi".into(),
        "127.0.0.1".into(),
        "-mp".into(),
        common::sipp::free_udp_port().to_string(),
        "-p".into(),
        uac_port.to_string(),
        "-m".into(),
        n.to_string(),
        "-r".into(),
        knobs.cps.to_string(),
        "-l".into(),
        knobs.capacity.to_string(),
        "-nostdin".into(),
    ];
    let mut uac = sipp(&args, None);
    let pid = uac.pid();
    let start = Instant::now();
    let mut ticks = 0;
    while start.elapsed() < WAIT * 2 {
        if let Ok(Some(_)) = uac.child.try_wait() {
            break;
        }
        ticks = cpu_ticks(pid);
        std::thread::sleep(Duration::from_millis(20));
    }
    r.cpu_secs = ticks as f64 / clock_ticks();
    if uas.wait_exit(Duration::from_secs(10)).is_none() {
        uas.signal("-USR1");
        let _ = uas.wait_exit(Duration::from_secs(5));
    }
    r.load_after = loadavg();
    r.uas_errors = std::fs::read_to_string(dir.path().join("uas_err.log"))
        .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count())
        .unwrap_or(0);
    let trace = UasTrace::read(&dir.path().join("uas_msgs.log"));
    r.completed = trace.completed();
    r.window_rate = trace.completed() as f64 / trace.window();
    r
}

/// A fresh directory with the bench dialplan and a configuration pointing at `pbx_port`.
/// `short`: the "connecting" prompt is `blip` (one sample, so one 20 ms frame), from a
/// sounds directory that links every shipped prompt and adds it.
fn setup(dir: &Path, pbx_port: u16, capacity: u32, cps: u32, short: bool) -> PathBuf {
    let plans = dir.join("dialplans");
    std::fs::create_dir_all(&plans).expect("mkdir dialplans");
    let mut plan = DIALPLAN.replace("capacity = 1000", &format!("capacity = {capacity}"));
    let config = dir.join("callbackd.toml");
    let mut text = common::ConfigFile {
        max_calls: Some(1000),
        calls_per_second: Some(cps),
        extra_top: "shutdown_grace = \"0s\"".to_owned(),
        ..common::ConfigFile::new(&format!("127.0.0.1:{pbx_port}"), &plans)
    }
    .render();
    if short {
        plan.push_str("\n[prompts]\nconnecting = \"blip\"\n");
        let shipped = common::repo().join("sounds");
        let sounds = dir.join("sounds");
        for lang in ["fi", "sv", "en"] {
            std::fs::create_dir_all(sounds.join(lang)).expect("mkdir sounds");
            for entry in std::fs::read_dir(shipped.join(lang)).expect("shipped sounds") {
                let entry = entry.expect("entry");
                std::os::unix::fs::symlink(entry.path(), sounds.join(lang).join(entry.file_name()))
                    .expect("link prompt");
            }
            callbackd::media::wav::write(&sounds.join(lang).join("blip.wav"), &[0], 8000, 1)
                .expect("blip");
        }
        text = text.replace(
            &format!("sounds = {:?}", shipped.display().to_string()),
            &format!("sounds = {:?}", sounds.display().to_string()),
        );
    }
    std::fs::write(plans.join("bench.toml"), plan).expect("write dialplan");
    std::fs::write(&config, text).expect("write config");
    config
}

/// Enqueues `n` pending requests of `bench` through the `Store` (numbers `prefix` and 7
/// digits), the i-th due at `t0 + i * spacing`, with the deadline and expiry the policy
/// gives a request made now. Returns id → due (ms). Works beside a running daemon.
async fn fill(
    dir: &Path,
    n: u32,
    prefix: &str,
    t0: Timestamp,
    spacing_us: i64,
) -> HashMap<i64, i64> {
    let db = dir.join("queue.db");
    let store = Store::open(&format!("sqlite:{}", db.display())).await.expect("open store");
    let services: Services = dialplan::load_dir(&dir.join("dialplans")).expect("bench dialplan");
    let svc = services.get("bench").expect("bench service");
    let now = Timestamp::now();
    let facts = RequestFacts { created_at: now, window: None, attempts: &[] };
    let Decision::Dial(plan) = policy::decide(&svc.calendar, &svc.attempts, &facts) else {
        panic!("the 24/7 bench service cannot take a request now")
    };
    let due = move |i: u64| t0 + SignedDuration::from_millis(i as i64 * spacing_us / 1000);
    let prefix = prefix.to_owned();
    let ids = common::fill::fill(&store, u64::from(n), 4, move |i| {
        let new = NewRequest {
            service: "bench".to_owned(),
            number: E164::from_stored(format!("{prefix}{i:07}")),
            channel: "api".to_owned(),
            lang: Lang::Fi,
            window: None,
            sms_consent: false,
            sms_notice: false,
            created_at: now - SignedDuration::from_millis(i64::from(n) - i as i64),
            team: None,
            told: None,
        };
        (new, Plan { due: due(i), ..plan })
    })
    .await;
    store.close().await;
    ids.into_iter().enumerate().map(|(i, id)| (id, due(i as u64).as_millisecond())).collect()
}

async fn pool(db: &Path, read_only: bool) -> SqlitePool {
    let opts = SqliteConnectOptions::new()
        .filename(db)
        .read_only(read_only)
        .busy_timeout(Duration::from_secs(5));
    SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.expect("bench pool")
}

async fn count(pool: &SqlitePool, sql: &str) -> i64 {
    sqlx::query(sql).fetch_one(pool).await.map(|r| r.get::<i64, _>(0)).unwrap_or(-1)
}

/// `callbackd serve` on the bench's configuration, its log in `daemon.log` (or where
/// `SIP_BENCH_LOG_DIR` says), at `SIP_BENCH_RUST_LOG` if set.
async fn start_daemon(dir: &Path, config: &Path) -> common::Daemon {
    let log_file = match std::env::var_os("SIP_BENCH_LOG_DIR") {
        Some(keep) => {
            let keep = PathBuf::from(keep);
            std::fs::create_dir_all(&keep).expect("SIP_BENCH_LOG_DIR");
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
            let name = name.as_deref().unwrap_or_default().trim_start_matches('.');
            keep.join(format!("daemon-{name}.log"))
        }
        None => dir.join("daemon.log"),
    };
    let options = common::Options {
        log_file: Some(log_file),
        rust_log: std::env::var("SIP_BENCH_RUST_LOG").ok(),
        wait: WAIT,
        ..common::Options::default()
    };
    common::Daemon::spawn(dir, config, &options).await
}

/// SIGTERM, wait bounded by `limit`: the exit status and how long the exit took.
fn stop(daemon: &mut common::Daemon, limit: Duration) -> String {
    match daemon.stop(limit) {
        (Some(s), took) => format!("{s} after {:.1} s", took.as_secs_f64()),
        (None, _) => format!("did not exit within {} s of SIGTERM (killed)", limit.as_secs()),
    }
}

async fn sleep_until_epoch(t: Timestamp) {
    let wait = t.as_microsecond() - Timestamp::now().as_microsecond();
    if wait > 0 {
        tokio::time::sleep(Duration::from_micros(wait.unsigned_abs())).await;
    }
}

/// `pace`: `None` = all due at one instant; `Some(r)` = due times spread at r/s. `short`:
/// the one-frame "connecting" prompt (see [`setup`]).
async fn daemon_run(knobs: &Knobs, pace: Option<u32>, short: bool) -> DaemonRun {
    let n = knobs.calls;
    let dir = tempfile::tempdir().expect("temporary directory");
    let port = common::sipp::free_udp_port();
    let config = setup(dir.path(), port, knobs.capacity, knobs.cps, short);
    // The due instant is set well ahead and moved nowhere: the daemon must be ready first.
    let t0 = Timestamp::now() + SignedDuration::try_from(LEAD * 3).expect("lead");
    let spacing_us = pace.map_or(0, |r| 1_000_000 / i64::from(r.max(1)));
    let mut due = fill(dir.path(), n, "+35850", t0, spacing_us).await;
    // The paced run dials a second batch after the linger (is memory reused or lost?).
    let second = pace.is_some() && knobs.linger > 0;
    let scenario = common::repo().join("tests/sipp/uas_answer_all.xml");
    let mut uas = sipp_uas(dir.path(), port, if second { 2 * n } else { n }, Some(&scenario));
    let mut r = DaemonRun { n, load_before: loadavg(), ..DaemonRun::default() };
    let mut daemon = start_daemon(dir.path(), &config).await;
    assert!(Timestamp::now() < t0, "daemon ready after the due instant; raise LEAD");
    r.rss_idle = common::rss_kib(daemon.pid());
    let db = dir.path().join("queue.db");
    let ro = pool(&db, true).await;
    sleep_until_epoch(t0).await;
    let cpu0 = cpu_ticks(daemon.pid());
    let start = Instant::now();
    let mut connected = 0;
    // The daemon's CPU when the last call so far was seen connected.
    let mut cpu_last = cpu0;
    while start.elapsed() < WAIT {
        let now = count(&ro, "SELECT COUNT(*) FROM requests WHERE state = 'connected'").await;
        if now > connected {
            cpu_last = cpu_ticks(daemon.pid());
        }
        connected = now;
        if connected >= i64::from(n) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // From the due instant, not from when this loop started.
    r.to_all_connected = epoch_now() - t0.as_microsecond() as f64 / 1e6;
    r.cpu_daemon = (cpu_ticks(daemon.pid()) - cpu0) as f64 / clock_ticks();
    r.connected = connected;
    r.cpu_to_last = (cpu_last - cpu0) as f64 / clock_ticks();
    r.rss_end = common::rss_kib(daemon.pid());
    if connected < i64::from(n) {
        eprintln!("only {connected} of {n} connected within {WAIT:?}");
    }
    if second {
        // Calls are over: does the memory come back once the stack's timers have run?
        tokio::time::sleep(Duration::from_secs(knobs.linger)).await;
        r.rss_linger = Some(common::rss_kib(daemon.pid()).0);
        // A second batch of N, written while the daemon runs (as the CLI would), due a
        // little after its next look at the store (≤ 5 s).
        let t2 = Timestamp::now() + SignedDuration::from_secs(6);
        due.extend(fill(dir.path(), n, "+35842", t2, spacing_us).await);
        let start = Instant::now();
        while start.elapsed() < WAIT {
            connected = count(&ro, "SELECT COUNT(*) FROM requests WHERE state = 'connected'").await;
            if connected >= 2 * i64::from(n) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        r.rss_second = Some(common::rss_kib(daemon.pid()).0);
        r.n = 2 * n;
    }
    r.sipp_exit = match uas.wait_exit(Duration::from_secs(10)) {
        Some(s) => s.to_string(),
        None => {
            uas.signal("-USR1");
            let s = uas.wait_exit(Duration::from_secs(5));
            format!("did not finish by itself ({s:?})")
        }
    };
    r.load_after = loadavg();
    stop(&mut daemon, Duration::from_secs(20));
    r.uas_errors = std::fs::read_to_string(dir.path().join("uas_err.log"))
        .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count())
        .unwrap_or(0);

    // The store's view.
    for row in sqlx::query("SELECT state, COUNT(*) FROM requests GROUP BY state")
        .fetch_all(&ro)
        .await
        .expect("states")
    {
        r.states.insert(row.get(0), row.get(1));
    }
    for row in sqlx::query(
        "SELECT COALESCE(outcome, 'live') || '/' || COALESCE(sip_code, '-'), COUNT(*) \
         FROM attempts GROUP BY 1",
    )
    .fetch_all(&ro)
    .await
    .expect("outcomes")
    {
        r.outcomes.insert(row.get(0), row.get(1));
    }
    r.requests_without_attempt = count(
        &ro,
        "SELECT COUNT(*) FROM requests r WHERE NOT EXISTS \
         (SELECT 1 FROM attempts a WHERE a.request_id = r.id)",
    )
    .await;
    r.requests_with_more = count(
        &ro,
        "SELECT COUNT(*) FROM (SELECT request_id FROM attempts GROUP BY request_id \
         HAVING COUNT(*) > 1)",
    )
    .await;
    let attempts: HashMap<i64, (i64, Option<i64>)> =
        sqlx::query("SELECT request_id, started_at, ended_at FROM attempts")
            .fetch_all(&ro)
            .await
            .expect("attempts")
            .iter()
            .map(|row| (row.get::<i64, _>(0), (row.get::<i64, _>(1), row.get(2))))
            .collect();
    ro.close().await;
    let first = attempts.values().map(|a| a.0).min().unwrap_or(0);
    let last = attempts.values().map(|a| a.0).max().unwrap_or(0);
    r.claim_span = (last - first) as f64 / 1e3;

    // sipp's view.
    let trace = UasTrace::read(&dir.path().join("uas_msgs.log"));
    r.uas_calls = trace.calls.len();
    r.uas_invites = trace.invite_msgs;
    r.uas_invite_tx = trace.invite_transactions;
    r.uas_completed = trace.completed();
    r.window_rate = trace.completed() as f64 / trace.window();
    let mut requests = HashSet::new();
    let (mut due_ok, mut claim_ok, mut ok_done) = (Vec::new(), Vec::new(), Vec::new());
    for (call_id, call) in &trace.calls {
        let Some(req) = request_of(call_id).filter(|id| due.contains_key(id)) else {
            r.uas_unknown_requests += 1;
            continue;
        };
        requests.insert(req);
        let Some(ok) = call.ok else { continue };
        due_ok.push(ok - due[&req] as f64 / 1e3);
        if let Some((started, ended)) = attempts.get(&req) {
            claim_ok.push(ok - *started as f64 / 1e3);
            if let Some(ended) = ended {
                ok_done.push(*ended as f64 / 1e3 - ok);
            }
        }
    }
    r.uas_distinct_requests = requests.len();
    r.due_to_ok = Lat::of(due_ok);
    r.claim_to_ok = Lat::of(claim_ok);
    r.ok_to_persisted = Lat::of(ok_done);
    r
}

/// Holds `k` answered calls: RSS idle, at k/2 and at k.
async fn hold_run(k: u32) -> HoldRun {
    let dir = tempfile::tempdir().expect("temporary directory");
    let port = common::sipp::free_udp_port();
    let config = setup(dir.path(), port, 1000, 10_000, false);
    let half = k / 2;
    let t0 = Timestamp::now() + SignedDuration::try_from(LEAD * 3).expect("lead");
    let t1 = t0 + SignedDuration::from_secs(4);
    // The first half due at t0, the second at t1 (other numbers, same plan).
    let _ = fill(dir.path(), half, "+35850", t0, 0).await;
    let _ = fill(dir.path(), k - half, "+35841", t1, 0).await;
    let scenario = common::repo().join("bench/uas_answer_refer_hold.xml");
    let mut uas = sipp_uas(dir.path(), port, k, Some(&scenario));
    let mut r = HoldRun { k, load: loadavg(), ..HoldRun::default() };
    let mut daemon = start_daemon(dir.path(), &config).await;
    assert!(Timestamp::now() < t0, "daemon ready after the due instant; raise LEAD");
    // Idle: queue loaded, trunk up, nothing dialled yet.
    tokio::time::sleep(Duration::from_millis(500)).await;
    r.idle = common::rss_kib(daemon.pid()).0;
    sleep_until_epoch(t0).await;
    let answered = |want: usize| {
        let d = &daemon;
        async move {
            let start = Instant::now();
            loop {
                let got = d.log_count("REFER accepted");
                if got >= want || start.elapsed() > Duration::from_secs(20) {
                    // Let the last ACKs and allocations settle.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    return d.log_count("REFER accepted");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    r.answered_half = answered(half as usize).await;
    r.half = common::rss_kib(daemon.pid()).0;
    sleep_until_epoch(t1).await;
    r.answered_full = answered(k as usize).await;
    let (full, hwm) = common::rss_kib(daemon.pid());
    r.full = full;
    r.hwm = hwm;
    // Shutdown with a 0 s grace: every held call should be hung up with BYE. Waits past
    // the daemon's transfer limit (45 s), to see whether it exits at all.
    r.daemon_exit = stop(&mut daemon, Duration::from_secs(60));
    r.sipp_exit = match uas.wait_exit(Duration::from_secs(15)) {
        Some(s) => s.to_string(),
        None => {
            uas.signal("-USR1");
            let s = uas.wait_exit(Duration::from_secs(5));
            format!("did not finish by itself ({s:?})")
        }
    };
    r.after_stop_calls = UasTrace::read(&dir.path().join("uas_msgs.log")).completed();
    r
}

fn kib(v: u64) -> String {
    format!("{:.1} MiB", v as f64 / 1024.0)
}

/// The "same call shape" table: sipp's UAC and callbackd placing the same call against the
/// same UAS, with the prompt and with one frame.
fn shape_report(
    knobs: &Knobs,
    prompt: &callbackd::media::Prompt,
    sipp: [&ShapeRun; 2],
    ours: [&DaemonRun; 2],
) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "#### Same call shape: N = {} calls, at most {} at once, against `tests/sipp/uas_answer_all.xml`\n",
        knobs.calls, knobs.capacity
    );
    let _ = writeln!(
        o,
        "| call | who | completed | calls/s at the UAS | CPU per call | load before → after |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|---|");
    let calls = [
        format!(
            "INVITE, answer, {:.2} s prompt, REFER + NOTIFY, BYE",
            prompt.duration().as_secs_f64()
        ),
        "INVITE, answer, one 20 ms frame, REFER + NOTIFY, BYE".to_owned(),
    ];
    for ((call, s), d) in calls.iter().zip(sipp).zip(ours) {
        let _ = writeln!(
            o,
            "| {} | sipp UAC (`play_pcap_audio`) | {}/{} | {:.0} | {:.3} ms | {} → {} |",
            call,
            s.completed,
            s.n,
            s.window_rate,
            s.cpu_secs * 1e3 / f64::from(s.n.max(1)),
            s.load_before,
            s.load_after
        );
        let _ = writeln!(
            o,
            "| | callbackd | {}/{} | {:.0} | {:.3} ms ({:.3} ms per call connected, up to the last) | {} → {} |",
            d.uas_completed,
            d.n,
            d.window_rate,
            d.cpu_daemon * 1e3 / f64::from(d.n.max(1)),
            d.cpu_to_last * 1e3 / d.connected.max(1) as f64,
            d.load_before,
            d.load_after
        );
    }
    o
}

/// The rest of the report. `[least, burst]`: callbackd's one-frame burst (its least call,
/// set beside sipp's plain call: issue 4's goal) and the burst with the prompt (the
/// integrity table's first column).
fn report(
    knobs: &Knobs,
    s: &SippRun,
    [least, burst]: [&DaemonRun; 2],
    paced: &DaemonRun,
    hold: &HoldRun,
) -> String {
    let mut o = String::new();
    let n = knobs.calls;
    let _ =
        writeln!(o, "#### Rate: N = {n} calls, sipp's plain call beside callbackd's least call\n");
    let _ = writeln!(o, "| | sipp UAC → sipp UAS | callbackd → sipp UAS (all due at once) |");
    let _ = writeln!(o, "|---|---:|---:|");
    let _ = writeln!(
        o,
        "| setting | `-sn uac -r {} -l {}` vs `-sn uas`: INVITE, ACK, BYE | `max_calls` 1000, `calls_per_second` {}, `capacity` {}; UAS `uas_answer_all.xml`; each call: answer, one 20 ms frame, REFER (202, NOTIFY 200), BYE |",
        knobs.sipp_rate, knobs.sipp_limit, knobs.cps, knobs.capacity
    );
    let _ = writeln!(
        o,
        "| calls/s at the UAS (first INVITE → last BYE answered) | {:.0} | {:.0} |",
        s.window_rate, least.window_rate
    );
    let _ = writeln!(
        o,
        "| ratio callbackd / sipp (issue 4's goal: ≥ 50%) | | {:.0}% |",
        100.0 * least.window_rate / s.window_rate.max(1e-9)
    );
    let _ = writeln!(
        o,
        "| end to end: calls/s (sipp: spawn → exit; callbackd: due → all `connected` in the store) | {:.0} ({:.2} s) | {:.0} ({:.2} s) |",
        f64::from(n) / s.wall,
        s.wall,
        f64::from(n) / least.to_all_connected,
        least.to_all_connected
    );
    let _ = writeln!(
        o,
        "| sipp's own `CallRate(C)` / callbackd's claims/s (first → last `started_at`) | {} | {:.0} |",
        s.own_rate,
        f64::from(n.saturating_sub(1)) / least.claim_span.max(1e-9)
    );
    let _ = writeln!(
        o,
        "| daemon CPU during the run (s; % of one core) | | {:.2} s; {:.0}% |",
        least.cpu_daemon,
        100.0 * least.cpu_daemon / least.to_all_connected.max(1e-9)
    );
    let _ = writeln!(
        o,
        "| UAS: Call-IDs / INVITE transactions / INVITE messages | {} / {} / {} | {} / {} / {} |",
        s.uas_calls,
        s.uas_invite_tx,
        s.uas_invites,
        least.uas_calls,
        least.uas_invite_tx,
        least.uas_invites
    );
    let _ = writeln!(
        o,
        "| successful / failed calls (sipp UAC stats; callbackd: UAS completed) | {} / {} | {} / {} |",
        s.successful,
        s.failed,
        least.uas_completed,
        least.uas_calls.saturating_sub(least.uas_completed)
    );
    let _ = writeln!(
        o,
        "| load average before → after | {} → {} | {} → {} |",
        s.load_before, s.load_after, least.load_before, least.load_after
    );
    let _ = writeln!(o);
    let _ = writeln!(o, "#### callbackd: integrity and latency, the call with the prompt\n");
    let batches = if knobs.linger > 0 { "2 batches of N" } else { "N" };
    let _ =
        writeln!(o, "| | all due at once | paced, due times {} /s apart, {batches} |", knobs.pace);
    let _ = writeln!(o, "|---|---:|---:|");
    let row = |o: &mut String, name: &str, f: &dyn Fn(&DaemonRun) -> String| {
        let _ = writeln!(o, "| {name} | {} | {} |", f(burst), f(paced));
    };
    row(&mut o, "requests / final states in the store", &|r| {
        let states: Vec<String> = r.states.iter().map(|(k, v)| format!("{v} {k}")).collect();
        format!("{} / {}", r.n, states.join(", "))
    });
    row(&mut o, "attempts by outcome/SIP code", &|r| {
        r.outcomes.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ")
    });
    row(&mut o, "lost: requests never dialled / not `connected`", &|r| {
        let connected = r.states.get("connected").copied().unwrap_or(0);
        format!("{} / {}", r.requests_without_attempt, i64::from(r.n) - connected)
    });
    row(&mut o, "duplicated: requests with > 1 attempt / UAS INVITE transactions − N", &|r| {
        format!("{} / {}", r.requests_with_more, r.uas_invite_tx as i64 - i64::from(r.n))
    });
    row(
        &mut o,
        "UAS: distinct request ids in Call-IDs / foreign Call-IDs / INVITE retransmissions",
        &|r| {
            format!(
                "{} / {} / {}",
                r.uas_distinct_requests,
                r.uas_unknown_requests,
                r.uas_invites.saturating_sub(r.uas_invite_tx)
            )
        },
    );
    row(&mut o, "calls/s at the UAS; due → all connected", &|r| {
        format!("{:.0}; {:.2} s", r.window_rate, r.to_all_connected)
    });
    row(&mut o, "due → 200 OK sent by the UAS, p50 / p99 / max", &|r| r.due_to_ok.cells());
    row(&mut o, "claim (`started_at`) → 200 OK, p50 / p99 / max", &|r| r.claim_to_ok.cells());
    row(&mut o, "200 OK → outcome persisted (`ended_at`), p50 / p99 / max", &|r| {
        r.ok_to_persisted.cells()
    });
    row(&mut o, "daemon VmRSS idle → after / VmHWM", &|r| {
        format!("{} → {} / {}", kib(r.rss_idle.0), kib(r.rss_end.0), kib(r.rss_end.1))
    });
    row(&mut o, &format!("daemon VmRSS {} s after the last call", knobs.linger), &|r| {
        r.rss_linger.map_or_else(|| "not measured".to_owned(), kib)
    });
    row(&mut o, "daemon VmRSS after a second batch of N on the same daemon", &|r| {
        r.rss_second.map_or_else(|| "not measured".to_owned(), kib)
    });
    row(&mut o, "sipp UAS exit / error-log lines", &|r| {
        format!("{} / {}", r.sipp_exit, r.uas_errors)
    });
    row(&mut o, "load average before → after", &|r| {
        format!("{} → {}", r.load_before, r.load_after)
    });
    let _ = writeln!(o);
    if hold.k == 0 {
        let _ = writeln!(o, "Memory per active call: not measured (`SIP_BENCH_HOLD=0`).");
        return o;
    }
    let _ = writeln!(o, "#### Memory per active call: K = {} held calls\n", hold.k);
    let _ = writeln!(o, "| | value |");
    let _ = writeln!(o, "|---|---:|");
    let _ = writeln!(o, "| VmRSS idle (queue of K loaded, trunk up) | {} |", kib(hold.idle));
    let _ = writeln!(
        o,
        "| VmRSS with K/2 = {} calls in the transfer wait ({} `REFER accepted`) | {} |",
        hold.k / 2,
        hold.answered_half,
        kib(hold.half)
    );
    let _ = writeln!(
        o,
        "| VmRSS with K = {} calls in the transfer wait ({} `REFER accepted`) / VmHWM | {} / {} |",
        hold.k,
        hold.answered_full,
        kib(hold.full),
        kib(hold.hwm)
    );
    let per = |d: u64, c: u32| d as f64 / f64::from(c.max(1));
    let _ = writeln!(
        o,
        "| per call: (RSS(K) − idle) / K (goal ≤ 64 KiB) | {:.1} KiB |",
        per(hold.full.saturating_sub(hold.idle), hold.k)
    );
    let _ = writeln!(
        o,
        "| per call, marginal: (RSS(K) − RSS(K/2)) / (K/2) | {:.1} KiB |",
        per(hold.full.saturating_sub(hold.half), hold.k - hold.k / 2)
    );
    let _ = writeln!(
        o,
        "| SIGTERM with `shutdown_grace = \"0s\"`: daemon exit; calls complete at the UAS; sipp exit | {}; {} of {}; {} |",
        hold.daemon_exit, hold.after_stop_calls, hold.k, hold.sipp_exit
    );
    let _ = writeln!(o, "| load average at start | {} |", hold.load);
    o
}

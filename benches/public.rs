//! Patient page benchmark: page loads per second on one server with 100,000 waiting
//! requests.
//!
//! Run with `cargo bench --bench public` (see BENCHMARKS.md). It
//!
//! 1. fills a fresh SQLite queue through `Store::enqueue` with `PUBLIC_BENCH_SIZE` (100,000)
//!    waiting requests of one service (Kallio's dialplan, closed today so nothing is
//!    dialled while the bench runs);
//! 2. starts the real daemon (`target/release/callbackd serve`) with `[public]` on a
//!    loopback port (rate limits raised: one client address plays every patient);
//! 3. loads pages `GET /r/{token}` of random requests over `PUBLIC_BENCH_CONNS` (32)
//!    keep-alive connections for `PUBLIC_BENCH_SECS` (15) seconds after a 2-second
//!    warm-up, and reports the rate of 200s and their latency (p50, p99, max), with the
//!    machine's load average before and after.
//!
//! `PUBLIC_BENCH_OUT`: also write the markdown report to this file.

#[path = "../tests/common/mod.rs"]
mod common;

use callbackd::lang::Lang;
use callbackd::link::Keys;
use callbackd::number::E164;
use callbackd::policy::{self, Decision, RequestFacts};
use callbackd::store::{NewRequest, Store};
use jiff::{SignedDuration, Timestamp};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(120);
const WARMUP: Duration = Duration::from_secs(2);
const KEY: &[u8] = b"public-bench-key-0123456789abcdef";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Kallio's dialplan, open every day 08–16 but closed today.
fn dialplan(dir: &Path) -> std::path::PathBuf {
    let dialplans = dir.join("dialplans");
    std::fs::create_dir_all(&dialplans).expect("mkdir");
    let src =
        std::fs::read_to_string(common::repo().join("dialplans/kallio.toml")).expect("kallio");
    let tz = jiff::tz::TimeZone::get("Europe/Helsinki").expect("tz");
    let today = Timestamp::now().to_zoned(tz).date();
    let day = "[\"08:00-16:00\"]";
    let hours = format!(
        "[hours]\nholidays = \"none\"\nmon = {day}\ntue = {day}\nwed = {day}\nthu = {day}\n\
         fri = {day}\nsat = {day}\nsun = {day}\nclosed = [{today}]\n\n[attempts]"
    );
    let start = src.find("[hours]").expect("hours");
    let end = src.find("[attempts]").expect("attempts");
    let out = format!("{}{hours}{}", &src[..start], &src[end + "[attempts]".len()..]);
    std::fs::write(dialplans.join("kallio.toml"), out).expect("write dialplan");
    dialplans
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !common::bench_requested("public") {
        return;
    }
    let size: u64 = env_or("PUBLIC_BENCH_SIZE", 100_000);
    let secs: u64 = env_or("PUBLIC_BENCH_SECS", 15);
    let conns: usize = env_or("PUBLIC_BENCH_CONNS", 32);
    let dir = tempfile::tempdir().expect("tempdir");
    let dialplans = dialplan(dir.path());
    let services = callbackd::dialplan::load_dir(&dialplans).expect("dialplan");
    let svc = services.get("kallio").expect("kallio").clone();

    // 1. The queue.
    let db = dir.path().join("queue.db");
    let store = Store::open(&format!("sqlite:{}", db.display())).await.expect("store");
    let now = Timestamp::now();
    let facts = RequestFacts { created_at: now, window: None, attempts: &[] };
    let Decision::Dial(plan) = policy::decide(&svc.calendar, &svc.attempts, &facts) else {
        panic!("kallio cannot take a request now");
    };
    let filled = Instant::now();
    let ids = common::fill::fill(&store, size, 4, move |i| {
        let created_at = now - SignedDuration::from_millis(3 * (size - i) as i64);
        let new = NewRequest {
            service: "kallio".to_owned(),
            number: E164::from_stored(format!("+35850{i:07}")),
            channel: "web".to_owned(),
            lang: Lang::Fi,
            window: None,
            sms_consent: false,
            sms_notice: false,
            created_at,
            team: None,
            told: None,
        };
        (new, plan)
    })
    .await;
    store.close().await;
    eprintln!("filled {size} waiting requests in {:?}", filled.elapsed());

    // 2. The daemon.
    let key = dir.path().join("link.key");
    std::fs::write(&key, KEY).expect("key");
    let extra_top = format!(
        "[public]\nurl = \"https://soita.example.fi\"\nbind = \"127.0.0.1:0\"\nkey_file = {key:?}\n\
         per_address_per_minute = 100000\nper_link_per_minute = 100000\n"
    );
    let config = dir.path().join("callbackd.toml");
    common::ConfigFile { extra_top, ..common::ConfigFile::new("127.0.0.1:9", &dialplans) }
        .write(&config);
    let options = common::Options {
        log_file: Some(dir.path().join("daemon.log")),
        wait: WAIT,
        ..common::Options::default()
    };
    let mut daemon = common::Daemon::spawn(dir.path(), &config, &options).await;
    let base = daemon.public_base();
    let keys = Keys::new(KEY);
    let urls: Arc<Vec<String>> =
        Arc::new(ids.iter().map(|id| format!("{base}/r/{}", keys.token(*id))).collect());

    // 3. The load.
    let load_before = load_average();
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..conns {
        let (urls, measuring, stop) = (urls.clone(), measuring.clone(), stop.clone());
        workers.spawn(async move {
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client");
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (w as u64 + 1);
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let url = &urls[(x % urls.len() as u64) as usize];
                let t = Instant::now();
                let ok = match http.get(url).send().await {
                    Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if measuring.load(Ordering::Relaxed) {
                    if ok {
                        lat.push(t.elapsed());
                    } else {
                        errors += 1;
                    }
                }
            }
            (lat, errors)
        });
    }
    tokio::time::sleep(WARMUP).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    let mut errors = 0;
    while let Some(r) = workers.join_next().await {
        let (l, e) = r.expect("worker");
        lat.extend(l);
        errors += e;
    }
    let load_after = load_average();
    let rss = common::rss_kib(daemon.pid());
    daemon.stop(Duration::from_secs(40));
    lat.sort();
    let pct = |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)));
    let ms = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let rate = lat.len() as f64 / elapsed.as_secs_f64();
    let report = format!(
        "| waiting requests | connections | seconds | page loads/s (200) | errors | p50 ms | p99 ms | max ms | RSS KiB | load before | load after |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n\
         | {size} | {conns} | {:.1} | {rate:.0} | {errors} | {:.1} | {:.1} | {:.1} | {} | {load_before} | {load_after} |\n",
        elapsed.as_secs_f64(),
        ms(pct(0.5)),
        ms(pct(0.99)),
        ms(lat.last()),
        rss.0,
    );
    println!("{report}");
    if let Ok(out) = std::env::var("PUBLIC_BENCH_OUT") {
        std::fs::write(&out, &report).expect("write the report");
    }
}

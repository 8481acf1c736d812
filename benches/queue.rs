//! Queue benchmark: the durable queue with 10k, 100k and 1M pending requests in SQLite.
//!
//! Run with `cargo bench --bench queue` (see BENCHMARKS.md). For every size it
//!
//! 1. fills a fresh SQLite queue through `Store::enqueue` (as intake does), rows spread
//!    over the three services of `dialplans/`, all due now;
//! 2. starts the real daemon (`target/release/callbackd serve`) on it and times start-up
//!    (spawn → `listening:` → `/readyz` = 200);
//! 3. drives API intake over HTTP (`POST /v1/callbacks`, distinct numbers, many
//!    keep-alive connections) for a fixed time and counts only 201s;
//! 4. reads the daemon's VmRSS/VmHWM after intake and after `/metrics` and
//!    `GET /v1/services`;
//! 5. stops the daemon and measures the store API directly: `due(service, now, 1)` +
//!    `claim`, then `finish`, and single calls of the queries the scheduler and the API
//!    run;
//! 6. leaves live (claimed, never finished) attempts and times the daemon's start-up
//!    again, up to the end of its crash recovery.
//!
//! Knobs (environment): `QUEUE_BENCH_SIZES` (default `10000,100000,1000000`; a first
//! non-flag command-line argument overrides it), `QUEUE_BENCH_INTAKE_SECS` (15),
//! `QUEUE_BENCH_CONNS` (48), `QUEUE_BENCH_CLAIMS` (3000), `QUEUE_BENCH_LIVE` (1000),
//! `QUEUE_BENCH_OUT` (also write the markdown report to this file).

#[path = "../tests/common/mod.rs"]
mod common;

use callbackd::dialplan::{self, Services};
use callbackd::lang::Lang;
use callbackd::number::E164;
use callbackd::policy::lifecycle::{Event, step};
use callbackd::policy::{self, Decision, Outcome, Plan, RequestFacts};
use callbackd::store::{Applied, Fence, NewRequest, Request, Store};
use jiff::{SignedDuration, Timestamp};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Warm-up before the measured intake window (not counted).
const WARMUP: Duration = Duration::from_secs(2);
/// Bound on every wait for the daemon.
const WAIT: Duration = Duration::from_secs(120);

fn env_or<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// Knobs of one run.
#[derive(Debug, Clone)]
struct Knobs {
    sizes: Vec<u64>,
    intake_secs: u64,
    conns: usize,
    claims: usize,
    live: usize,
}

impl Knobs {
    fn from_env() -> Knobs {
        let arg = std::env::args().skip(1).find(|a| !a.starts_with('-'));
        let sizes = arg
            .or_else(|| std::env::var("QUEUE_BENCH_SIZES").ok())
            .unwrap_or_else(|| "10000,100000,1000000".to_owned());
        let sizes = sizes
            .split(',')
            .filter_map(|s| {
                let s = s.trim().to_ascii_lowercase().replace('_', "");
                if let Some(k) = s.strip_suffix('k') {
                    k.parse::<u64>().ok().map(|n| n * 1_000)
                } else if let Some(m) = s.strip_suffix('m') {
                    m.parse::<u64>().ok().map(|n| n * 1_000_000)
                } else {
                    s.parse().ok()
                }
            })
            .collect();
        Knobs {
            sizes,
            intake_secs: env_or("QUEUE_BENCH_INTAKE_SECS", 15),
            conns: env_or("QUEUE_BENCH_CONNS", 48),
            claims: env_or("QUEUE_BENCH_CLAIMS", 3000),
            live: env_or("QUEUE_BENCH_LIVE", 1000),
        }
    }
}

/// Latency summary.
#[derive(Debug, Clone, Copy, Default)]
struct Lat {
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
}

impl Lat {
    fn of(samples: &mut [Duration]) -> Lat {
        if samples.is_empty() {
            return Lat::default();
        }
        samples.sort_unstable();
        let pick = |q: f64| {
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[rank - 1]
        };
        Lat { p50: pick(0.50), p90: pick(0.90), p99: pick(0.99), max: pick(1.0) }
    }

    fn cells(&self) -> String {
        format!("{} / {} / {} / {}", ms(self.p50), ms(self.p90), ms(self.p99), ms(self.max))
    }
}

fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1e3;
    if v >= 100.0 { format!("{v:.0} ms") } else { format!("{v:.2} ms") }
}

/// The numbers of one size.
#[derive(Debug, Default)]
struct Report {
    size: u64,
    fill: Duration,
    db_mb: f64,
    naive_commits: f64,
    start_listening: Duration,
    start_ready: Duration,
    intake: Intake,
    rss_after_intake: (u64, u64),
    metrics_scrape: Duration,
    services_get: Duration,
    rss_after_scrape: (u64, u64),
    claim: Lat,
    claim_first: Lat,
    claim_last: Lat,
    finish: Lat,
    queries: Vec<(String, Duration)>,
    live: usize,
    live_listening: Duration,
    live_ready: Duration,
    live_recovered: Option<Duration>,
    rss_after_recovery: (u64, u64),
}

#[derive(Debug, Default)]
struct Intake {
    secs: f64,
    created: u64,
    other: BTreeMap<u16, u64>,
    errors: u64,
    lat: Lat,
}

fn main() {
    if !common::bench_requested("queue") {
        return;
    }
    let knobs = Knobs::from_env();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let services =
        dialplan::load_dir(&common::repo().join("dialplans")).expect("repository dialplans");
    let bin = env!("CARGO_BIN_EXE_callbackd");
    eprintln!("queue bench: sizes {:?}, daemon {bin}", knobs.sizes);
    let mut reports = Vec::new();
    for &size in &knobs.sizes {
        let report = rt.block_on(bench_size(&services, &knobs, size));
        eprintln!("{}", table(std::slice::from_ref(&report), &knobs));
        reports.push(report);
    }
    let md = table(&reports, &knobs);
    println!("{md}");
    if let Ok(out) = std::env::var("QUEUE_BENCH_OUT") {
        std::fs::write(&out, &md).expect("write QUEUE_BENCH_OUT");
        eprintln!("report written to {out}");
    }
}

async fn bench_size(services: &Services, knobs: &Knobs, size: u64) -> Report {
    let mut r = Report { size, ..Report::default() };
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = dir.path().join("queue.db");
    let config = dir.path().join("callbackd.toml");
    // A PBX address nobody listens on: the daemon's calls fail fast, as in production
    // with the PBX down; the bench measures the queue, not calls.
    common::ConfigFile::new("127.0.0.1:5070", &common::repo().join("dialplans")).write(&config);

    eprintln!("[{size}] filling {}", db.display());
    let t = Instant::now();
    fill(&db, services, size).await;
    r.fill = t.elapsed();
    r.db_mb = db_bytes(&db) as f64 / 1e6;
    eprintln!("[{size}] filled in {:.1} s, {:.0} MB", r.fill.as_secs_f64(), r.db_mb);

    r.naive_commits = naive_commits(dir.path()).await;
    eprintln!("[{size}] one commit per request (FULL): {:.0}/s", r.naive_commits);

    // Daemon: start-up, intake, memory, scrapes.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(knobs.conns + 8)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client");
    let mut daemon = start_daemon(dir.path(), &config, "run1").await;
    r.start_listening = daemon.listening;
    r.start_ready = daemon.ready;
    eprintln!("[{size}] daemon ready in {:?} (listening {:?})", daemon.ready, daemon.listening);
    r.intake = intake(&http, &daemon.base, knobs).await;
    r.rss_after_intake = common::rss_kib(daemon.pid());
    eprintln!(
        "[{size}] intake {:.0}/s, {} created, others {:?}, errors {}",
        r.intake.created as f64 / r.intake.secs,
        r.intake.created,
        r.intake.other,
        r.intake.errors
    );
    r.metrics_scrape = timed_get(&http, &format!("{}/metrics", daemon.base)).await;
    r.services_get = timed_get(&http, &format!("{}/v1/services", daemon.base)).await;
    r.rss_after_scrape = common::rss_kib(daemon.pid());
    daemon.stop(Duration::from_secs(40));

    // The store API directly, on the filled database, daemon stopped.
    let store = Store::open(&format!("sqlite:{}", db.display())).await.expect("open store");
    store_bench(&store, services, knobs, &mut r).await;
    store.close().await;

    // Start-up with live attempts left by a "crash": recovery has work.
    r.live = knobs.live;
    let left = last_attempt(&db).await;
    let mut daemon = start_daemon(dir.path(), &config, "run2").await;
    r.live_listening = daemon.listening;
    r.live_ready = daemon.ready;
    r.live_recovered = wait_recovered(&db, left, daemon.spawned).await;
    r.rss_after_recovery = common::rss_kib(daemon.pid());
    eprintln!(
        "[{size}] restart with {} live attempts: ready {:?}, recovered {:?}",
        knobs.live, daemon.ready, r.live_recovered
    );
    daemon.stop(Duration::from_secs(40));
    r
}

/// The naive way's limit on this disk: one writer committing one small row per
/// transaction with `synchronous = FULL` (one WAL fsync per request), for 3 s, in a scratch
/// file beside the queue. Commits per second.
async fn naive_commits(dir: &Path) -> f64 {
    let opts = SqliteConnectOptions::new()
        .filename(dir.join("naive.db"))
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Full);
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.expect("naive");
    sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        .execute(&pool)
        .await
        .expect("naive table");
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed() < Duration::from_secs(3) {
        let mut tx = pool.begin().await.expect("begin");
        sqlx::query("INSERT INTO t (v) VALUES ('+358501234567')")
            .execute(&mut *tx)
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
        n += 1;
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    pool.close().await;
    rate
}

/// Fills the queue through `Store::enqueue`: `size` pending requests over the services,
/// all due now, each with the deadline and expiry the policy gives a request made now,
/// created in the past in row order, one number per row (`+35850` and the row: unique
/// across services), with their audit rows.
async fn fill(db: &Path, services: &Services, size: u64) {
    let store = Store::open(&format!("sqlite:{}", db.display())).await.expect("open store");
    let now = Timestamp::now();
    let due = now - SignedDuration::from_mins(1);
    let plans: Vec<(String, Plan)> = services
        .values()
        .map(|svc| {
            let facts = RequestFacts { created_at: now, window: None, attempts: &[] };
            match policy::decide(&svc.calendar, &svc.attempts, &facts) {
                Decision::Dial(plan) => (svc.id.clone(), Plan { due, ..plan }),
                Decision::End { .. } => panic!("service {} cannot take a request now", svc.id),
            }
        })
        .collect();
    let k = plans.len() as u64;
    // Intakes of one SQLite store share transactions (group commit): enough concurrent
    // tasks keep the batches large.
    common::fill::fill(&store, size, 128, move |i| {
        let (service, plan) = &plans[(i % k) as usize];
        let created_at = now - SignedDuration::from_millis(3 * (size - i) as i64);
        let new = NewRequest {
            service: service.clone(),
            number: E164::from_stored(format!("+35850{i:07}")),
            channel: "api".to_owned(),
            lang: Lang::Fi,
            window: None,
            sms_consent: false,
            sms_notice: false,
            created_at,
            team: None,
            told: None,
        };
        (new, *plan)
    })
    .await;
    store.close().await;

    let opts = SqliteConnectOptions::new().filename(db);
    let pool =
        SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.expect("fill pool");
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&pool).await.expect("checkpoint");
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM requests WHERE state = 'pending'")
        .fetch_one(&pool)
        .await
        .expect("count")
        .get(0);
    assert_eq!(n as u64, size, "filled rows");
    pool.close().await;
}

fn db_bytes(db: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", db.display())).ok())
        .map(|m| m.len())
        .sum()
}

/// `callbackd serve` on the bench's configuration, its log in `daemon-TAG.log`.
async fn start_daemon(dir: &Path, config: &Path, tag: &str) -> common::Daemon {
    let options = common::Options {
        log_file: Some(dir.join(format!("daemon-{tag}.log"))),
        wait: WAIT,
        ..common::Options::default()
    };
    common::Daemon::spawn(dir, config, &options).await
}

async fn timed_get(http: &reqwest::Client, url: &str) -> Duration {
    let t = Instant::now();
    let resp = http.get(url).send().await.expect("GET");
    let status = resp.status();
    let _ = resp.bytes().await.expect("GET body");
    assert!(status.is_success(), "GET {url}: {status}");
    t.elapsed()
}

/// Drives `POST /v1/callbacks` from `conns` concurrent keep-alive clients for the warm-up
/// and then the measured window; only 201s count as intake.
async fn intake(http: &reqwest::Client, base: &str, knobs: &Knobs) -> Intake {
    let counter = Arc::new(AtomicU64::new(0));
    let url = Arc::new(format!("{base}/v1/callbacks"));
    let start = Instant::now() + WARMUP;
    let stop = start + Duration::from_secs(knobs.intake_secs);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..knobs.conns {
        let http = http.clone();
        let counter = counter.clone();
        let url = url.clone();
        tasks.spawn(async move {
            let mut created = 0u64;
            let mut other: BTreeMap<u16, u64> = BTreeMap::new();
            let mut errors = 0u64;
            let mut lat = Vec::new();
            loop {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let body = serde_json::json!({
                    "service": "kotka-neuvonta",
                    "number": format!("+35840{:07}", n % 10_000_000),
                });
                let t = Instant::now();
                if t >= stop {
                    break;
                }
                let res = http.post(url.as_str()).json(&body).send().await;
                let res = match res {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        resp.bytes().await.map(|_| status)
                    }
                    Err(e) => Err(e),
                };
                let done = Instant::now();
                if t < start || done > stop {
                    continue;
                }
                match res {
                    Ok(201) => {
                        created += 1;
                        lat.push(done - t);
                    }
                    Ok(s) => *other.entry(s).or_default() += 1,
                    Err(_) => errors += 1,
                }
            }
            (created, other, errors, lat)
        });
    }
    let mut out = Intake { secs: knobs.intake_secs as f64, ..Intake::default() };
    let mut lat = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (c, o, e, l) = done.expect("intake task");
        out.created += c;
        for (s, n) in o {
            *out.other.entry(s).or_default() += n;
        }
        out.errors += e;
        lat.extend(l);
    }
    out.lat = Lat::of(&mut lat);
    out
}

/// Claims through the library: `due(service, now, 1)` + `claim`, then `finish` (busy, retry
/// in 30 min: the request stays in the queue, waiting, but is no longer due), round robin
/// over the services. Then single calls of the other queries. Then leaves `live` claimed
/// attempts for the recovery run.
async fn store_bench(store: &Store, services: &Services, knobs: &Knobs, r: &mut Report) {
    let ids: Vec<&str> = services.keys().map(String::as_str).collect();
    let mut claim = Vec::with_capacity(knobs.claims);
    let mut finish = Vec::with_capacity(knobs.claims);
    for i in 0..knobs.claims {
        let service = ids[i % ids.len()];
        let now = Timestamp::now();
        let t = Instant::now();
        let req = store.due(service, now, 1).await.expect("due").into_iter().next();
        let Some(req) = req else { panic!("nothing due in {service}") };
        let attempt = store.claim(&req, now).await.expect("claim").expect("claimed");
        claim.push(t.elapsed());
        let t = Instant::now();
        let event = Event::Ended { seq: attempt.seq, outcome: Outcome::Busy };
        let ok = store
            .finish(&attempt, Some(486), None, Fence::Own, now, |req, records| {
                step(None, &req.facts(records), event, now)
            })
            .await
            .expect("finish");
        let ok = matches!(ok, Applied::Written(_));
        assert!(ok, "attempt finished");
        finish.push(t.elapsed());
    }
    let edge = (knobs.claims / 10).max(1).min(claim.len());
    r.claim_first = Lat::of(&mut claim[..edge].to_vec());
    r.claim_last = Lat::of(&mut claim[claim.len() - edge..].to_vec());
    r.claim = Lat::of(&mut claim);
    r.finish = Lat::of(&mut finish);

    let now = Timestamp::now();
    let all: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    let tail: Request = store
        .list(&callbackd::store::ListFilter {
            service: Some("kotka-neuvonta".to_owned()),
            state: None,
            limit: 1,
        })
        .await
        .expect("list")
        .into_iter()
        .next()
        .expect("a request");
    let before_all = now - SignedDuration::from_hours(1);
    let mut q = Vec::new();
    q.push((
        "due(kotka-neuvonta, now, 1), head of queue due".to_owned(),
        best(|| async { store.due("kotka-neuvonta", now, 1).await.map(|_| ()) }).await,
    ));
    q.push((
        "due(kallio, now - 1 h, 1), nothing due (closed hours)".to_owned(),
        best(|| async { store.due("kallio", before_all, 1).await.map(|_| ()) }).await,
    ));
    q.push((
        "next_due(all services)".to_owned(),
        best(|| async { store.next_due(&all).await.map(|_| ()) }).await,
    ));
    q.push((
        "mark_missed(now), nothing missed (write tx)".to_owned(),
        best(|| async { store.mark_missed(now).await.map(|_| ()) }).await,
    ));
    q.push((
        "next_deadline()".to_owned(),
        best(|| async { store.next_deadline().await.map(|_| ()) }).await,
    ));
    q.push((
        "next_expiry()".to_owned(),
        best(|| async { store.next_expiry().await.map(|_| ()) }).await,
    ));
    q.push((
        "expired_waiting(now, 500)".to_owned(),
        best(|| async { store.expired_waiting(now, 500).await.map(|_| ()) }).await,
    ));
    q.push(("depth()".to_owned(), best(|| async { store.depth().await.map(|_| ()) }).await));
    q.push((
        "connected_since(kotka-neuvonta, now - 2 h)".to_owned(),
        best(|| async {
            store
                .connected_since("kotka-neuvonta", now - SignedDuration::from_hours(2))
                .await
                .map(|_| ())
        })
        .await,
    ));
    q.push((
        "ahead_of(newest kotka request, cap 5000)".to_owned(),
        best(|| async { store.ahead_of(&tail, 5000).await.map(|_| ()) }).await,
    ));
    r.queries = q;

    // Live attempts, as a crash would leave them.
    for i in 0..knobs.live {
        let service = ids[i % ids.len()];
        let now = Timestamp::now();
        let req = store.due(service, now, 1).await.expect("due").into_iter().next();
        let Some(req) = req else { panic!("nothing due in {service}") };
        store.claim(&req, now).await.expect("claim").expect("claimed");
    }
}

/// Median of five runs of a query.
async fn best<F, Fut>(f: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), callbackd::store::StoreError>>,
{
    let mut runs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        f().await.expect("query");
        runs.push(t.elapsed());
    }
    Lat::of(&mut runs).p50
}

/// Polls the database until the daemon has recorded every live attempt; time from spawn.
/// The newest attempt's id: the attempts left live before a restart are at most this.
async fn last_attempt(db: &Path) -> i64 {
    let opts = SqliteConnectOptions::new().filename(db).read_only(true);
    let pool: SqlitePool =
        SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.expect("open");
    let id: i64 = sqlx::query("SELECT COALESCE(MAX(id), 0) FROM attempts")
        .fetch_one(&pool)
        .await
        .expect("last attempt")
        .get(0);
    pool.close().await;
    id
}

/// How long after the spawn every attempt left live before the restart (id ≤ `left`) has
/// an outcome. The restarted daemon's own new calls (it keeps dialling the due queue) are
/// not counted.
async fn wait_recovered(db: &Path, left: i64, spawned: Instant) -> Option<Duration> {
    let opts = SqliteConnectOptions::new().filename(db).read_only(true);
    let pool: SqlitePool =
        SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.ok()?;
    let mut out = None;
    while spawned.elapsed() < WAIT {
        let live: i64 =
            sqlx::query("SELECT COUNT(*) FROM attempts WHERE outcome IS NULL AND id <= $1")
                .bind(left)
                .fetch_one(&pool)
                .await
                .ok()?
                .get(0);
        if live == 0 {
            out = Some(spawned.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    pool.close().await;
    out
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn size_name(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// The markdown report: one column per size.
fn table(reports: &[Report], knobs: &Knobs) -> String {
    let mut s = String::new();
    let head: Vec<String> = reports.iter().map(|r| size_name(r.size)).collect();
    let _ = writeln!(s, "| pending requests | {} |", head.join(" | "));
    let _ = writeln!(s, "|---|{}", "---:|".repeat(reports.len()));
    let mut row = |name: &str, f: &dyn Fn(&Report) -> String| {
        let cells: Vec<String> = reports.iter().map(f).collect();
        let _ = writeln!(s, "| {name} | {} |", cells.join(" | "));
    };
    row("fill (`Store::enqueue`, not measured against a goal)", &|r| {
        format!("{} ({:.0} MB)", secs(r.fill), r.db_mb)
    });
    row("start-up: spawn → `listening:`", &|r| secs(r.start_listening));
    row("start-up: spawn → `/readyz` 200 (goal ≤ 2 s)", &|r| secs(r.start_ready));
    row(
        &format!("intake: 201/s, {} conns, {} s (goal ≥ 2,000/s)", knobs.conns, knobs.intake_secs),
        &|r| format!("{:.0}", r.intake.created as f64 / r.intake.secs),
    );
    row("intake: 201 latency p50 / p90 / p99 / max", &|r| r.intake.lat.cells());
    row("naive limit: one commit (fsync) per request, 1 writer, FULL, same disk", &|r| {
        format!("{:.0} /s", r.naive_commits)
    });
    row("intake: non-201 answers / transport errors", &|r| {
        let other: Vec<String> = r.intake.other.iter().map(|(s, n)| format!("{n}×{s}")).collect();
        let other = if other.is_empty() { "0".to_owned() } else { other.join(", ") };
        format!("{other} / {}", r.intake.errors)
    });
    row("RSS after intake: VmRSS / VmHWM (goal ≤ 100 MB)", &|r| {
        format!("{} / {}", mb(r.rss_after_intake.0), mb(r.rss_after_intake.1))
    });
    row("GET /metrics (one scrape)", &|r| ms(r.metrics_scrape));
    row("GET /v1/services", &|r| ms(r.services_get));
    row("RSS after scrapes: VmRSS / VmHWM", &|r| {
        format!("{} / {}", mb(r.rss_after_scrape.0), mb(r.rss_after_scrape.1))
    });
    row(
        &format!(
            "claim: `due(svc, now, 1)` + `claim`, {} runs, p50 / p90 / p99 / max (goal p99 ≤ 5 ms)",
            knobs.claims
        ),
        &|r| r.claim.cells(),
    );
    row("claim: first 10% of runs, p50 / p99", &|r| {
        format!("{} / {}", ms(r.claim_first.p50), ms(r.claim_first.p99))
    });
    row("claim: last 10% of runs, p50 / p99", &|r| {
        format!("{} / {}", ms(r.claim_last.p50), ms(r.claim_last.p99))
    });
    row("`finish` (busy → retry_wait), p50 / p90 / p99 / max", &|r| r.finish.cells());
    let names: Vec<String> = reports
        .first()
        .map(|r| r.queries.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default();
    for (i, name) in names.iter().enumerate() {
        row(&format!("store: `{name}`, median of 5"), &|r| {
            r.queries.get(i).map_or_else(String::new, |(_, d)| ms(*d))
        });
    }
    row(&format!("restart with {} live attempts: spawn → `/readyz` 200", knobs.live), &|r| {
        secs(r.live_ready)
    });
    row(&format!("restart with {} live attempts: spawn → all recovered", knobs.live), &|r| {
        r.live_recovered.map_or_else(|| "not within 120 s".to_owned(), secs)
    });
    row("RSS after recovery: VmRSS / VmHWM", &|r| {
        format!("{} / {}", mb(r.rss_after_recovery.0), mb(r.rss_after_recovery.1))
    });
    s
}

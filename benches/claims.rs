//! PostgreSQL claims benchmark: claims per second and claim latency with 1, 2 and 3
//! servers sharing one queue of 1,000,000 pending requests.
//!
//! Run with `cargo bench --bench claims` (see BENCHMARKS.md, "PostgreSQL claims"). It
//!
//! 1. creates a database `cb_bench_<random>` next to `CALLBACKD_TEST_DATABASE` (default
//!    `postgres://postgres@127.0.0.1:5432/test`; `common::pg::TestDb`), runs the
//!    migrations through `Store::open` and fills it through `Store::enqueue`
//!    (`CLAIMS_BENCH_FILL_TASKS`, 16, at a time): `CLAIMS_BENCH_ROWS` (1,000,000) pending
//!    requests, all due, spread over three services;
//! 2. for 1, 2 and 3 servers runs that many claimers for `CLAIMS_BENCH_SECS` (10 s) each,
//!    every claimer with a `Store` (connection pool) and an instance id of its own, like a
//!    separate daemon: `Store::claim_due` (gate row lock, call rate, capacity counts,
//!    `FOR UPDATE SKIP LOCKED`, the claim, the lease) of one request of the next service,
//!    timing each call (a call the rate stopped is counted apart, and the claimer waits
//!    for the next start as a server does);
//!    each claimer keeps up to `CLAIMS_BENCH_LIVE` (10) calls "in progress" and finishes
//!    the oldest beyond that (connected, or one in five unanswered: back to wait for a retry
//!    after a 10-minute pause, at the front of the order), so the number of live attempts
//!    stays realistic;
//! 3. prints claims per second, latency p50/p99/max and the dead tuples added per
//!    configuration; then 3 servers again while another session sits idle in a
//!    transaction (holding back vacuum) for the whole run;
//! 4. before the claims, measures PostgreSQL intake: 3 servers, 16 concurrent intakes each
//!    (`CLAIMS_BENCH_INTAKE_SECS`, 10 s), due tomorrow so the claims do not reach them;
//! 5. with `CLAIMS_BENCH_EXPLAIN=1`, prints `EXPLAIN (ANALYZE, BUFFERS)` of each read a
//!    claim makes after the 3-server row and after the row beside the idle session;
//! 6. drops the database.
//!
//! Capacities are large and the call rate is one start per microsecond across all servers
//! (a server always claims under a call rate, at most 10,000/s by its configuration): the
//! benchmark measures the claim path a server takes, the call rate's gate included, not
//! the limits.

#[path = "../tests/common/mod.rs"]
mod common;

use callbackd::lang::Lang;
use callbackd::number::E164;
use callbackd::policy::lifecycle::{Event, step};
use callbackd::policy::{Outcome, Plan};
use callbackd::store::lease::{ClaimLimits, reads};
use callbackd::store::{Attempt, Fence, NewRequest, State, Store};
use jiff::{SignedDuration, Timestamp};
use sqlx::Connection;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

const SERVICES: [&str; 3] = ["kallio", "vuosaari", "kotka-neuvonta"];
/// The pause before an unanswered request's retry.
const RETRY_PAUSE: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

#[derive(Debug, Default)]
struct Run {
    claims: u64,
    /// Calls that claimed nothing because the call rate's next start lay ahead.
    rate_stops: u64,
    latencies: Vec<Duration>,
}

async fn claimer(url: String, id: usize, secs: u64, live: usize) -> Run {
    let store = Store::open(&url).await.expect("open store");
    let owner = format!("bench:{id}:{:08x}", rand::random::<u32>());
    let limits = ClaimLimits {
        owner: &owner,
        lease: Duration::from_secs(30),
        capacity: 100_000,
        max_calls: 100_000,
        trunk: "bench-pbx:5060",
        // A server always claims under a call rate (`calls_per_second`, at most 10,000),
        // so the bench takes that path too, at a rate far above it: one start per
        // microsecond, so that the claims measured are seldom stopped by the rate.
        interval: Duration::from_micros(1),
    };
    let finish = |a: Attempt, now: Timestamp| {
        // One patient in five does not answer: the request waits for a retry after a pause,
        // back at the front of the order and not due (as a dialplan's `pause` leaves it).
        let unanswered = a.request_id % 5 == 0;
        let outcome = if unanswered { Outcome::NoAnswer } else { Outcome::Connected };
        let event = Event::Ended { seq: a.seq, outcome };
        let store = store.clone();
        async move {
            store
                .finish(&a, Some(200), None, Fence::Own, now, |req, records| {
                    step(None, &req.facts(records), event, now).map(|mut t| {
                        if t.to == State::RetryWait {
                            t.due = now.checked_add(RETRY_PAUSE).ok();
                        }
                        t
                    })
                })
                .await
                .expect("finish")
        }
    };
    let mut run = Run::default();
    let mut held: VecDeque<Attempt> = VecDeque::new();
    let end = Instant::now() + Duration::from_secs(secs);
    let mut turn = id;
    while Instant::now() < end {
        let service = SERVICES[turn % SERVICES.len()];
        turn += 1;
        let now = Timestamp::now();
        let t = Instant::now();
        let batch = store.claim_due(service, now, 1, &limits, |_| true).await.expect("claim");
        let took = t.elapsed();
        match batch.rate_until {
            Some(next) if batch.claimed.is_empty() => {
                run.rate_stops += 1;
                let wait = Duration::try_from(next.duration_since(Timestamp::now()));
                tokio::time::sleep(wait.unwrap_or_default()).await;
                continue;
            }
            _ => run.latencies.push(took),
        }
        for (_, attempt) in batch.claimed {
            run.claims += 1;
            held.push_back(attempt);
        }
        while held.len() > live {
            let Some(a) = held.pop_front() else { break };
            let now = Timestamp::now();
            finish(a, now).await;
        }
    }
    for a in held {
        let now = Timestamp::now();
        finish(a, now).await;
    }
    store.close().await;
    run
}

/// PostgreSQL intake: `servers` stores (pools), each with `tasks` concurrent intakes of new
/// numbers through `Store::enqueue` (one transaction per request) for `secs`. Requests/s.
async fn intake(url: &str, servers: usize, tasks: usize, secs: u64, first: u64) -> f64 {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(first));
    let end = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..servers {
        let store = Store::open(url).await.expect("open store");
        for _ in 0..tasks {
            let (store, next) = (store.clone(), next.clone());
            set.spawn(async move {
                let mut done = 0u64;
                while Instant::now() < end {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let now = Timestamp::now();
                    let day = SignedDuration::from_hours(24);
                    let new = NewRequest {
                        service: SERVICES[(i % 3) as usize].to_owned(),
                        number: E164::from_stored(format!("+35841{i:07}")),
                        channel: "api".to_owned(),
                        lang: Lang::Fi,
                        window: None,
                        sms_consent: false,
                        sms_notice: false,
                        created_at: now,
                        team: None,
                        told: None,
                    };
                    // Due tomorrow: the claims that follow do not reach these.
                    let plan = Plan {
                        due: now + day,
                        deadline: now + day * 2,
                        expires: now + day * 3,
                        counted: 0,
                    };
                    let stored = store.enqueue(&new, &plan).await.expect("enqueue");
                    assert!(!stored.duplicate);
                    done += 1;
                }
                done
            });
        }
    }
    let mut n = 0;
    while let Some(d) = set.join_next().await {
        n += d.expect("intake task");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Dead tuples of the queue's tables (statistics, flushed by each backend within a second).
async fn dead_tuples(url: &str) -> i64 {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let n: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(n_dead_tup), 0)::BIGINT FROM pg_stat_user_tables \
         WHERE relname IN ('requests', 'attempts', 'audit', 'claim_gate', 'claim_starts', 'queue_depth', 'dialing')",
    )
    .fetch_one(&mut conn)
    .await
    .expect("dead tuples");
    let _ = conn.close().await;
    n
}

/// Runs `servers` claimers for `secs`; prints one table row.
async fn claims_row(url: &str, servers: usize, secs: u64, live: usize, label: &str) -> u64 {
    let dead_before = dead_tuples(url).await;
    let mut tasks = tokio::task::JoinSet::new();
    let start = Instant::now();
    for id in 0..servers {
        tasks.spawn(claimer(url.to_owned(), id, secs, live));
    }
    let mut all = Run::default();
    while let Some(r) = tasks.join_next().await {
        let r = r.expect("claimer");
        all.claims += r.claims;
        all.rate_stops += r.rate_stops;
        all.latencies.extend(r.latencies);
    }
    let wall = start.elapsed().as_secs_f64().max(secs as f64);
    all.latencies.sort();
    let dead_after = dead_tuples(url).await;
    println!(
        "| {servers}{label} | {:.0} | {} | {} | {} | {} | {} | {:+} |",
        all.claims as f64 / wall,
        ms(pct(&all.latencies, 0.5)),
        ms(pct(&all.latencies, 0.99)),
        ms(all.latencies.last().copied().unwrap_or_default()),
        all.claims,
        all.rate_stops,
        dead_after - dead_before
    );
    all.claims
}

/// graphile-worker (`bench/graphile`, installed with `npm ci --prefix bench/graphile`) on
/// the same database: `jobs` no-op jobs queued, then 3 runners claiming and completing them
/// one at a time each. Prints one table row.
async fn graphile(url: &str, jobs: u64) {
    let Some(node) = common::tool("node", "nodejs") else { return };
    let dir = common::repo().join("bench/graphile");
    assert!(
        dir.join("node_modules/graphile-worker").is_dir(),
        "graphile-worker is not installed: run `npm ci --prefix bench/graphile`"
    );
    let dead_before = dead_tuples(url).await;
    let args =
        [dir.join("bench.mjs").display().to_string(), url.to_owned(), jobs.max(1).to_string()];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(node).args(&args).arg("3").output()
    })
    .await
    .expect("join")
    .expect("run node bench/graphile/bench.mjs");
    assert!(
        out.status.success(),
        "graphile-worker bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value =
        serde_json::from_str(line.lines().last().unwrap_or_default()).expect("graphile JSON");
    let dead_after = dead_tuples(url).await;
    println!(
        "| graphile-worker 0.16, 3 workers, {} jobs queued | {:.0} | – | – | – | {} | – | {:+} (callbackd's tables) |",
        v["jobs"],
        v["per_sec"].as_f64().unwrap_or(0.0),
        v["jobs"],
        dead_after - dead_before
    );
}

/// With `CLAIMS_BENCH_EXPLAIN=1`: PostgreSQL's plan, time and buffers for each read a claim
/// makes (`callbackd::store::lease::reads`, the store's own SQL), for the first service, in
/// a transaction rolled back afterwards.
async fn explain(url: &str, when: &str) {
    if std::env::var("CLAIMS_BENCH_EXPLAIN").is_err() {
        return;
    }
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let now = Timestamp::now().as_millisecond();
    let (trunk, service) = ("'bench-pbx:5060'", format!("'{}'", SERVICES[0]));
    let reads = [
        ("next start", reads::NEXT_START.to_owned(), format!("({trunk})")),
        (
            "next start and live counts",
            reads::GATE_AND_COUNTS.to_owned(),
            format!("({trunk}, {service})"),
        ),
        ("pick", reads::pick(), format!("({service}, {now}, 1)")),
    ];
    println!("plans of a claim's reads {when}:");
    for (name, sql, args) in reads {
        sqlx::raw_sql("BEGIN").execute(&mut conn).await.expect("begin");
        sqlx::raw_sql(&format!("PREPARE read AS {sql}")).execute(&mut conn).await.expect("prepare");
        let plan: Vec<String> =
            sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, BUFFERS) EXECUTE read {args}"))
                .fetch_all(&mut conn)
                .await
                .expect("explain");
        sqlx::raw_sql("ROLLBACK; DEALLOCATE read").execute(&mut conn).await.expect("rollback");
        println!("  {name}:");
        for line in plan {
            println!("    {line}");
        }
    }
    let _ = conn.close().await;
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    if !common::bench_requested("claims") {
        return;
    }
    let rows: u64 = env_or("CLAIMS_BENCH_ROWS", 1_000_000);
    let secs: u64 = env_or("CLAIMS_BENCH_SECS", 10);
    let live: usize = env_or("CLAIMS_BENCH_LIVE", 10);
    let fill_tasks: usize = env_or("CLAIMS_BENCH_FILL_TASKS", 16);
    let Some(db) = common::pg::TestDb::create().await else { return };
    let url = db.url.clone();
    let store = Store::open(&url).await.expect("open, migrate");

    let fill = Instant::now();
    let now = Timestamp::now();
    let day = SignedDuration::from_hours(24);
    common::fill::fill(&store, rows, fill_tasks, move |i| {
        // All due, the oldest first; deadlines spread over 1,000 s.
        let created_at = now - SignedDuration::from_millis(1_000_000 - i as i64);
        let new = NewRequest {
            service: SERVICES[(i % 3) as usize].to_owned(),
            number: E164::from_stored(format!("+35840{i:07}")),
            channel: "api".to_owned(),
            lang: Lang::Fi,
            window: None,
            sms_consent: false,
            sms_notice: false,
            created_at,
            team: None,
            told: None,
        };
        let deadline = now + day + SignedDuration::from_secs((i % 1000) as i64);
        (new, Plan { due: created_at, deadline, expires: now + day * 2, counted: 0 })
    })
    .await;
    store.close().await;
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    // Measure claims, not the fill's aftermath: vacuum, analyze and checkpoint first.
    for sql in ["VACUUM ANALYZE requests", "CHECKPOINT"] {
        sqlx::query(sql).execute(&mut conn).await.expect(sql);
    }
    let _ = conn.close().await;
    println!("filled {rows} pending requests in {:.1} s", fill.elapsed().as_secs_f64());

    println!();
    let intake_secs: u64 = env_or("CLAIMS_BENCH_INTAKE_SECS", 10);
    let rate = intake(&url, 3, 16, intake_secs, rows).await;
    println!(
        "intake with 3 servers (16 concurrent intakes each, one transaction per request): \
         {rate:.0} requests/s over {intake_secs} s"
    );

    println!();
    println!(
        "| servers | claims/s | p50 ms | p99 ms | max ms | claims | rate stops | dead tuples added |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut at_three = 0;
    for servers in 1..=3usize {
        at_three = claims_row(&url, servers, secs, live, "").await;
    }
    // The peer, the same number of jobs as callbackd claimed with 3 servers.
    explain(&url, "after the 3-server row").await;
    graphile(&url, at_three).await;
    // The failure that stalls SKIP LOCKED queues: a session idle in a transaction for the
    // whole run holds back vacuum, so every dead row version stays.
    let mut idle = sqlx::PgConnection::connect(&url).await.expect("connect");
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ").execute(&mut idle).await.expect("begin");
    sqlx::query("SELECT txid_current(), COUNT(*) FROM claim_gate")
        .execute(&mut idle)
        .await
        .expect("hold a snapshot");
    claims_row(&url, 3, secs, live, " + idle-in-transaction session").await;
    explain(&url, "after the row beside the idle session, which still holds its snapshot").await;
    let _ = sqlx::query("ROLLBACK").execute(&mut idle).await;
    let _ = idle.close().await;
    drop(db);
}

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
//!    separate daemon: `Store::claim_due` (gate row lock, capacity counts, `FOR UPDATE SKIP
//!    LOCKED`, the claim, the lease) of one request of the next service, timing each call;
//!    each claimer keeps up to `CLAIMS_BENCH_LIVE` (10) calls "in progress" and finishes
//!    the oldest (connected) beyond that, so the number of live attempts stays realistic;
//! 3. prints claims per second and latency p50/p99/max per configuration, and drops the
//!    database.
//!
//! The call rate is not limited (interval 0) and capacities are large: the benchmark
//! measures the claim path itself.

#[path = "../tests/common/mod.rs"]
mod common;

use callbackd::lang::Lang;
use callbackd::number::E164;
use callbackd::policy::lifecycle::{Event, step};
use callbackd::policy::{Outcome, Plan};
use callbackd::store::lease::ClaimLimits;
use callbackd::store::{Attempt, Fence, NewRequest, Store};
use jiff::{SignedDuration, Timestamp};
use sqlx::Connection;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

const SERVICES: [&str; 3] = ["kallio", "vuosaari", "kotka-neuvonta"];

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

#[derive(Debug, Default)]
struct Run {
    claims: u64,
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
        interval: Duration::ZERO,
    };
    let finish = |a: Attempt, now: Timestamp| {
        let event = Event::Ended { seq: a.seq, outcome: Outcome::Connected };
        let store = store.clone();
        async move {
            store
                .finish(&a, Some(200), None, Fence::Own, now, |req, records| {
                    step(None, &req.facts(records), event, now)
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
        run.latencies.push(t.elapsed());
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
    println!("| servers | claims/s | p50 ms | p99 ms | max ms | claims |");
    println!("|---|---|---|---|---|---|");
    for servers in 1..=3usize {
        let mut tasks = tokio::task::JoinSet::new();
        let start = Instant::now();
        for id in 0..servers {
            tasks.spawn(claimer(url.clone(), id, secs, live));
        }
        let mut all = Run::default();
        while let Some(r) = tasks.join_next().await {
            let r = r.expect("claimer");
            all.claims += r.claims;
            all.latencies.extend(r.latencies);
        }
        let wall = start.elapsed().as_secs_f64().max(secs as f64);
        all.latencies.sort();
        println!(
            "| {servers} | {:.0} | {} | {} | {} | {} |",
            all.claims as f64 / wall,
            ms(pct(&all.latencies, 0.5)),
            ms(pct(&all.latencies, 0.99)),
            ms(all.latencies.last().copied().unwrap_or_default()),
            all.claims
        );
    }
    drop(db);
}

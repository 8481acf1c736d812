//! PostgreSQL claims benchmark: claims per second and claim latency with 1, 2 and 3
//! servers sharing one queue of 1,000,000 pending requests.
//!
//! Run with `cargo bench --bench claims` (see BENCHMARKS.md, "PostgreSQL claims"). It
//!
//! 1. creates a database `cb_bench_<random>` next to `CALLBACKD_TEST_DATABASE` (default
//!    `postgres://postgres@127.0.0.1:5432/test`), runs the migrations through
//!    `Store::open` and fills it with SQL: `CLAIMS_BENCH_ROWS` (1,000,000) pending
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

use callbackd::policy::Outcome;
use callbackd::policy::lifecycle::{Event, step};
use callbackd::store::lease::ClaimLimits;
use callbackd::store::{Attempt, Fence, Store};
use jiff::Timestamp;
use sqlx::Connection;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

const SERVICES: [&str; 3] = ["kallio", "vuosaari", "kotka-neuvonta"];

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

fn base_url() -> String {
    std::env::var("CALLBACKD_TEST_DATABASE")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
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
    let rows: u64 = env_or("CLAIMS_BENCH_ROWS", 1_000_000);
    let secs: u64 = env_or("CLAIMS_BENCH_SECS", 10);
    let live: usize = env_or("CLAIMS_BENCH_LIVE", 10);
    let base = base_url();
    let mut admin = match sqlx::PgConnection::connect(&base).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("SKIPPED: PostgreSQL not reachable at {base} ({e})");
            return;
        }
    };
    let name = format!("cb_bench_{:016x}", rand::random::<u64>());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("create db");
    let prefix = base.rsplit_once('/').map_or(base.as_str(), |(p, _)| p);
    let url = format!("{prefix}/{name}");
    let store = Store::open(&url).await.expect("open, migrate");
    store.close().await;

    let fill = Instant::now();
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    let now = Timestamp::now().as_millisecond();
    let day = 86_400_000i64;
    sqlx::query(
        "INSERT INTO requests (service, number, state, channel, lang, sms_consent, created_at, \
         due_at, deadline_at, expires_at) \
         SELECT (ARRAY['kallio','vuosaari','kotka-neuvonta'])[1 + i % 3], \
         '+35840' || lpad(i::text, 7, '0'), 'pending', 'api', 'fi', 0, \
         $1 - 1000000 + i, $1 - 1000000 + i, $1 + $2 + (i % 1000) * 1000, $1 + 2 * $2 \
         FROM generate_series(1, $3) AS s(i)",
    )
    .bind(now)
    .bind(day)
    .bind(i64::try_from(rows).unwrap_or(i64::MAX))
    .execute(&mut conn)
    .await
    .expect("fill");
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
    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    sqlx::query(&drop).execute(&mut admin).await.expect("drop db");
}

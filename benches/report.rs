//! Report benchmark: `callbackd report --month` over a month of Helsinki's volume (921,490
//! callbacks a year ≈ 80,000 requests a month) with their attempts and SMS, and the month
//! before it (the report's comparison column), on SQLite and on PostgreSQL. Goal: ≤ 2 s.
//!
//! Run with `cargo bench --bench report` (see BENCHMARKS.md, "Reports"). It
//!
//! 1. creates the queue through `Store::open` (migrations), then writes
//!    `REPORT_BENCH_ROWS` (80,000) requests for November 2026 and as many for October,
//!    spread over three services and the opening hours, each with 1–3 finished attempts
//!    (about 1.6 on average), a told window and a notice SMS, in large transactions (the
//!    rows a year of the daemon would have written; intake speed is the queue bench's),
//!    then `ANALYZE` on PostgreSQL (as autovacuum would);
//! 2. runs the real command `callbackd report --month 2026-11` (text, then html) against
//!    it `REPORT_BENCH_RUNS` (3) times each, timing the whole process (start, read-only
//!    open, the three reads, the figures, the output);
//! 3. prints the median and the slowest run per backend and format;
//! 4. in this process, times the phases of the same report (`REPORT_BENCH_RUNS` times,
//!    median): the store's read (`store::report::read`: both months' requests joined to
//!    their attempts in one ordered pass, folded as they stream in, the month before only
//!    summed), the figures (`report::compute_read`), the text and
//!    the HTML; then, for comparison, the design before it: every row of both months
//!    (requests, attempts, SMS) read through the store's `Any` pool and folded in Rust
//!    (`Store::history` + `report::compute`), once, with a check that both give the same
//!    report. `REPORT_BENCH_PLANS=1` also prints the database's plan of each statement.

#[path = "../tests/common/mod.rs"]
mod common;

use jiff::civil::date;
use jiff::tz::TimeZone;
use sqlx::Connection;
use std::time::{Duration, Instant};

const SERVICES: [&str; 3] = ["kallio", "vuosaari", "kotka-neuvonta"];
const OUTCOMES: [&str; 4] = ["busy", "no_answer", "not_confirmed", "network_failure"];

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// Writes `rows` requests made in the month of `first` (each with attempts and SMS).
async fn fill_month(
    conn: &mut sqlx::AnyConnection,
    first: jiff::civil::Date,
    rows: u64,
    seed: u64,
) {
    let tz = TimeZone::get("Europe/Helsinki").expect("tz");
    let days = i64::from(first.days_in_month());
    let mut rng = seed;
    let mut next = || {
        // xorshift: a fixed, cheap spread.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let chunk = 500;
    let mut done = 0;
    while done < rows {
        let mut tx = conn.begin().await.expect("begin");
        let n = chunk.min(rows - done);
        for i in 0..n {
            let r = next();
            let day =
                first.checked_add(jiff::Span::new().days((r % days as u64) as i64)).expect("day");
            let minute = 8 * 60 + (r >> 8) % (8 * 60);
            let created = day
                .at((minute / 60) as i8, (minute % 60) as i8, 0, 0)
                .to_zoned(tz.clone())
                .expect("local")
                .timestamp()
                .as_millisecond();
            let deadline = day
                .at(16, 0, 0, 0)
                .to_zoned(tz.clone())
                .expect("local")
                .timestamp()
                .as_millisecond();
            let tries = 1 + (r >> 20) % 3;
            let connected = (r >> 24) % 10 < 8;
            let state = if connected { "connected" } else { "unreachable" };
            let service = SERVICES[((r >> 28) % 3) as usize];
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO requests (service, number, state, channel, lang, created_at, deadline_at, \
                 expires_at, deadline_missed, final_at, told_from, told_to) \
                 VALUES ($1, NULL, $2, 'api', 'fi', $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            )
            .bind(service)
            .bind(state)
            .bind(created)
            .bind(deadline)
            .bind(deadline + 86_400_000)
            .bind(i64::from((r >> 32) % 20 == 0))
            .bind(created + 3_600_000)
            .bind(created + 600_000)
            .bind(created + 2_400_000)
            .fetch_one(&mut *tx)
            .await
            .expect("insert request");
            for seq in 1..=tries {
                let start = created + (seq as i64) * 15 * 60_000 + ((r >> 36) % 600_000) as i64;
                let outcome = if seq == tries && connected {
                    "connected"
                } else {
                    OUTCOMES[((r >> (40 + seq)) % 4) as usize]
                };
                sqlx::query(
                    "INSERT INTO attempts (request_id, seq, started_at, ended_at, outcome) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(seq as i64)
                .bind(start)
                .bind(start + 90_000)
                .bind(outcome)
                .execute(&mut *tx)
                .await
                .expect("insert attempt");
            }
            sqlx::query(
                "INSERT INTO outbox (request_id, kind, dedup_key, lang, created_at, not_before, state, sent_at) \
                 VALUES ($1, 'notice', $2, 'fi', $3, $3, 'sent', $3)",
            )
            .bind(id)
            .bind(format!("notice:{id}:{i}"))
            .bind(created)
            .execute(&mut *tx)
            .await
            .expect("insert sms");
        }
        tx.commit().await.expect("commit");
        done += n;
    }
}

async fn fill(url: &str, rows: u64) {
    let store = callbackd::store::Store::open(url).await.expect("open store");
    store.close().await;
    sqlx::any::install_default_drivers();
    let mut conn =
        sqlx::AnyConnection::connect(&url.replace("sqlite:", "sqlite://")).await.expect("connect");
    let t = Instant::now();
    fill_month(&mut conn, date(2026, 10, 1), rows, 0x9e37_79b9_7f4a_7c15).await;
    fill_month(&mut conn, date(2026, 11, 1), rows, 0x2545_f491_4f6c_dd1d).await;
    println!("  filled {} requests in {:.1} s", 2 * rows, t.elapsed().as_secs_f64());
    conn.close().await.expect("close");
    if !url.starts_with("sqlite:") {
        // A production server analyses its tables (autovacuum); one with autovacuum off,
        // right after the fill, has no statistics and plans the joins blind.
        let mut pg = sqlx::PgConnection::connect(url).await.expect("connect");
        sqlx::query("ANALYZE").execute(&mut pg).await.expect("ANALYZE");
        pg.close().await.expect("close");
    }
}

fn time_runs(setup: &common::Setup, label: &str, runs: usize) {
    for format in ["text", "html"] {
        let mut times = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            // Not `Setup::cli`: its bound is for tests; a slow report is a figure here.
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_callbackd"))
                .args([
                    "report",
                    "--config",
                    setup.config_arg(),
                    "--month",
                    "2026-11",
                    "--format",
                    format,
                ])
                .current_dir(setup.dir.path())
                .env_remove("CALLBACKD_CONFIG")
                .output()
                .expect("run callbackd report");
            times.push(t.elapsed());
            assert!(
                out.status.success(),
                "report failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.stdout.len() > 1000, "a report was printed");
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "  {label} {format:>4}: median {:.0} ms, slowest {:.0} ms ({runs} runs) [goal ≤ 2000 ms]",
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1])
        );
    }
}

fn median(mut xs: Vec<Duration>) -> f64 {
    xs.sort();
    xs[xs.len() / 2].as_secs_f64() * 1000.0
}

/// The phases of the report in this process (see the top of the file).
async fn phases(url: &str, label: &str, runs: usize) {
    use callbackd::report::{self, Period, Query};
    let mut services: Vec<String> = SERVICES.iter().map(|s| (*s).to_owned()).collect();
    services.sort();
    let tz = TimeZone::get("Europe/Helsinki").expect("tz");
    let query = Query { period: Period::month("2026-11").expect("month"), services, tz };
    let now = jiff::Timestamp::now();
    if std::env::var("REPORT_BENCH_PLANS").is_ok_and(|v| v == "1") {
        for (name, plan) in
            callbackd::store::report::explain(url, &query, now).await.expect("explain")
        {
            println!("  {label} plan of {name}:");
            for line in plan.lines() {
                println!("    {line}");
            }
        }
    }
    let (mut read_t, mut compute_t, mut text_t, mut html_t) = (vec![], vec![], vec![], vec![]);
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let read = callbackd::store::report::read(url, &query, now).await.expect("read");
        read_t.push(t.elapsed());
        let t = Instant::now();
        let r = report::compute_read(&read, &query, now);
        compute_t.push(t.elapsed());
        let t = Instant::now();
        let text = report::render::text(&r, callbackd::lang::Lang::En);
        text_t.push(t.elapsed());
        let t = Instant::now();
        let html = report::html::html(&r, callbackd::lang::Lang::En);
        html_t.push(t.elapsed());
        assert!(text.len() > 1000 && html.len() > 1000);
        last = Some((read.current.len(), r));
    }
    let (rows, fast) = last.expect("a run");
    println!(
        "  {label} phases (median of {runs}): read {:.0} ms ({rows} request rows + sums), \
         figures {:.0} ms, text {:.0} ms, html {:.0} ms",
        median(read_t),
        median(compute_t),
        median(text_t),
        median(html_t)
    );
    let store = callbackd::store::Store::open(url).await.expect("open store");
    let (from, _) = query.period.previous().instants(&query.tz);
    let (_, to) = query.period.instants(&query.tz);
    let t = Instant::now();
    let history = store.history(&query.services, from, to).await.expect("rows");
    let read = t.elapsed();
    let t = Instant::now();
    let slow = report::compute(&history, &query, now);
    let compute = t.elapsed();
    store.close().await;
    println!(
        "  {label} rows of both months through Any (before): read {:.0} ms ({} requests, \
         {} attempts, {} SMS), figures {:.0} ms",
        read.as_secs_f64() * 1000.0,
        history.requests.len(),
        history.attempts.len(),
        history.sms.len(),
        compute.as_secs_f64() * 1000.0
    );
    let json = |r: &report::Report| serde_json::to_value(r).expect("JSON");
    assert_eq!(json(&fast), json(&slow), "both ways give the same report");
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::main]
async fn main() {
    if !common::bench_requested("report") {
        return;
    }
    let rows: u64 = env_or("REPORT_BENCH_ROWS", 80_000);
    let runs: usize = env_or("REPORT_BENCH_RUNS", 3);
    println!("report bench: {rows} requests a month, two months; load before: {}", loadavg());

    let setup = common::Setup::new();
    let url = format!("sqlite:{}", setup.database().display());
    fill(&url, rows).await;
    time_runs(&setup, "SQLite    ", runs);
    phases(&url, "SQLite    ", runs).await;

    if let Some(db) = common::pg::TestDb::create().await {
        fill(&db.url, rows).await;
        let pg = common::Setup::new();
        let config = std::fs::read_to_string(&pg.config).expect("config");
        std::fs::write(
            &pg.config,
            config.replace("database = \"sqlite:queue.db\"", &format!("database = {:?}", db.url)),
        )
        .expect("write config");
        time_runs(&pg, "PostgreSQL", runs);
        phases(&db.url, "PostgreSQL", runs).await;
    }
    println!("load after: {}", loadavg());
}

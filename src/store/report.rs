//! The report's read of the store: read-only, safe while the daemon runs.
//!
//! One connection, one read-only transaction, so every read sees one snapshot: SQLite
//! opened with `mode=ro` and `PRAGMA query_only` (a WAL reader never blocks the daemon's
//! writer), PostgreSQL in a `REPEATABLE READ, READ ONLY` transaction. No migration is run
//! and nothing is written. [`read`] goes through the backend's own sqlx driver (not `Any`):
//!
//! - the period's requests, one row each with their attempts folded in SQL ([`Calls`]),
//!   the service as an index and only the columns a report needs, never a number: the day
//!   and hour tables and the percentiles need them one by one;
//! - the period's finished attempts and sent SMS counted per service and outcome or kind;
//! - the previous period only as sums per service ([`Totals`]) and the waits at the two
//!   percentile ranks, computed by the database.
//!
//! Every read is an index range scan of `requests_created (created_at, service)`, joined to
//! attempts by `(request_id, seq)` and to the outbox by `outbox_request` (migration 0012).

use super::{StoreError, opt_ts, sqlite_url, ts};
use crate::policy::Outcome;
use crate::report::{
    Aggregate, AttemptRow, Calls, History, Query, Read, RequestRow, Served, Share, SmsRow, Tally,
    Totals, ranks,
};
use futures_util::TryStreamExt;
use jiff::Timestamp;
use sqlx::{Connection, Row};

/// Which requests: made in `from..to` (Unix ms) by these services.
fn filter(alias: &str, services: usize) -> String {
    let list: Vec<String> = (0..services).map(|i| format!("${}", i + 3)).collect();
    format!(
        "{alias}.created_at >= $1 AND {alias}.created_at < $2 AND {alias}.service IN ({})",
        list.join(", ")
    )
}

fn bound<'q>(
    sql: &'q str,
    from: i64,
    to: i64,
    services: &'q [String],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut q = sqlx::query(sql).bind(from).bind(to);
    for s in services {
        q = q.bind(s.as_str());
    }
    q
}

/// The instants of a report's read (Unix ms) and its services.
struct Plan<'a> {
    services: &'a [String],
    /// The previous period's start: the previous period is `prev..cur_from`.
    prev: i64,
    cur_from: i64,
    cur_to: i64,
    now: i64,
}

/// `$first, $first+1, …`: one parameter per service.
fn params(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// The service's index in the query (from its parameters `$first…`), so that rows carry a
/// number rather than a string to hash.
fn service_index(first: usize, n: usize) -> String {
    let arms: String = (0..n).map(|i| format!(" WHEN ${} THEN {i}", first + i)).collect();
    format!("CAST(CASE r.service{arms} END AS BIGINT)")
}

/// Requests made in `$1..$2` by the services `$first…` (an index range scan of
/// `requests_created (created_at, service)`).
fn made_in(first: usize, n: usize) -> String {
    format!("r.created_at >= $1 AND r.created_at < $2 AND r.service IN ({})", params(first, n))
}

/// One row per request made in `$1..$2` by the services `$first…`, its attempts folded as
/// [`Calls`]: finished attempts, the first one's start and outcome, the latest connected
/// call's start, whether the last finished one was declined. Grouped in the index's order,
/// so no sort is needed.
fn fold(first: usize, n: usize) -> String {
    format!(
        "SELECT {s} AS s, r.channel AS channel, r.state AS state, r.created_at AS created_at, \
         r.deadline_at AS deadline_at, r.deadline_missed AS deadline_missed, \
         r.told_from AS told_from, r.told_to AS told_to, \
         COUNT(a.outcome) AS finished, \
         MAX(CASE WHEN a.seq = 1 THEN a.started_at END) AS first_start, \
         MAX(CASE WHEN a.seq = 1 THEN a.outcome END) AS first_outcome, \
         MAX(CASE WHEN a.outcome = 'connected' THEN COALESCE(a.answered_at, a.started_at) END) \
           AS connected_at, \
         CAST(CASE WHEN MAX(CASE WHEN a.outcome IS NOT NULL THEN a.seq END) \
           = MAX(CASE WHEN a.outcome = 'declined' THEN a.seq END) THEN 1 ELSE 0 END AS BIGINT) \
           AS declined \
         FROM requests r LEFT JOIN attempts a ON a.request_id = r.id \
         WHERE {w} GROUP BY r.created_at, r.service, r.id",
        s = service_index(first, n),
        w = made_in(first, n),
    )
}

/// The previous period's [`Totals`] per service but channels, outcomes and SMS: `$1..$2`,
/// `$3` now, services from `$4`. Columns in the order [`totals`] reads them.
fn sums(n: usize) -> String {
    let live = "state IN ('pending','dialing','retry_wait')";
    let waited = "state = 'connected' AND connected_at IS NOT NULL";
    let told = "told_from IS NOT NULL AND told_to IS NOT NULL AND first_start IS NOT NULL";
    let sum = |e: &str| format!("CAST(SUM(CASE WHEN {e} THEN 1 ELSE 0 END) AS BIGINT)");
    let cols = [
        "CAST(COUNT(*) AS BIGINT)".to_owned(),
        sum("state = 'connected'"),
        sum("state = 'unreachable'"),
        sum("state = 'expired'"),
        sum("state = 'cancelled' AND declined = 0"),
        sum("state = 'cancelled' AND declined = 1"),
        sum(live),
        sum(waited),
        format!(
            "CAST(SUM(CASE WHEN {waited} THEN connected_at - created_at ELSE 0 END) AS BIGINT)"
        ),
        sum(&format!("NOT (state = 'cancelled' OR ({live} AND deadline_at > $3))")),
        sum(&format!("{waited} AND connected_at <= deadline_at")),
        sum("deadline_missed <> 0"),
        sum("first_outcome IS NOT NULL"),
        sum("first_outcome = 'connected'"),
        "CAST(SUM(finished) AS BIGINT)".to_owned(),
        sum("finished > 0"),
        sum(told),
        sum(&format!("{told} AND first_start >= told_from AND first_start <= told_to")),
        format!(
            "CAST(SUM(CASE WHEN {told} AND first_start < told_from THEN told_from - first_start \
             WHEN {told} AND first_start > told_to THEN first_start - told_to ELSE 0 END) AS BIGINT)"
        ),
    ];
    format!("SELECT s, {} FROM ({}) x GROUP BY s", cols.join(", "), fold(4, n))
}

/// The previous period's waits at the nearest ranks of the median and the 90th percentile
/// ([`crate::report::ranks`]), per service and (`s` = -1) for all: `$1..$2`, services
/// from `$3`. Rows: `s, k, n, wait`.
fn percentiles(n: usize) -> String {
    format!(
        "WITH w AS MATERIALIZED (SELECT s, connected_at - created_at AS wait FROM ({fold}) x \
           WHERE state = 'connected' AND connected_at IS NOT NULL), \
         ranked AS (SELECT s, wait, ROW_NUMBER() OVER (PARTITION BY s ORDER BY wait) AS k, \
             COUNT(*) OVER (PARTITION BY s) AS n FROM w \
           UNION ALL \
           SELECT -1, wait, ROW_NUMBER() OVER (ORDER BY wait), COUNT(*) OVER () FROM w) \
         SELECT CAST(s AS BIGINT), CAST(k AS BIGINT), CAST(n AS BIGINT), CAST(wait AS BIGINT) \
         FROM ranked WHERE k = (n + 1) / 2 OR k = (9 * n + 9) / 10",
        fold = fold(3, n),
    )
}

/// Requests per service and channel made in `$1..$2`, services from `$3`.
fn channels(n: usize) -> String {
    format!(
        "SELECT {s}, r.channel, CAST(COUNT(*) AS BIGINT) FROM requests r WHERE {w} \
         GROUP BY r.service, r.channel",
        s = service_index(3, n),
        w = made_in(3, n),
    )
}

/// Finished attempts (`outcomes`) or sent SMS per service, period (1 = current: made at or
/// after `$3`) and outcome or kind, of the requests made in `$1..$2`, services from `$4`.
fn tally(n: usize, sms: bool) -> String {
    let (join, key, only) = if sms {
        ("outbox o ON o.request_id = r.id", "o.kind", "o.state = 'sent'")
    } else {
        ("attempts o ON o.request_id = r.id", "o.outcome", "o.outcome IS NOT NULL")
    };
    format!(
        "SELECT {s}, CAST(CASE WHEN r.created_at >= $3 THEN 1 ELSE 0 END AS BIGINT), {key}, \
         CAST(COUNT(*) AS BIGINT) FROM requests r JOIN {join} WHERE {w} AND {only} \
         GROUP BY 1, 2, 3",
        s = service_index(4, n),
        w = made_in(4, n),
    )
}

/// A service index read back from [`service_index`].
fn index(i: i64, n: usize) -> Option<usize> {
    usize::try_from(i).ok().filter(|i| *i < n)
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// One row of [`fold`]. The channel is looked up among the few seen so far, not copied.
fn served<'r, R>(
    row: &'r R,
    n: usize,
    channels: &mut Vec<String>,
) -> Result<Option<Served>, StoreError>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    &'r str: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let Some(service) = index(row.try_get(0)?, n) else { return Ok(None) };
    let channel: &str = row.try_get(1)?;
    let channel = match channels.iter().position(|c| c == channel) {
        Some(i) => i,
        None => {
            channels.push(channel.to_owned());
            channels.len() - 1
        }
    };
    let state: &str = row.try_get(2)?;
    let state = state
        .parse()
        .map_err(|_| StoreError::Corrupt { what: "state", value: state.to_owned() })?;
    let told = (opt_ts(row.try_get(6)?)?, opt_ts(row.try_get(7)?)?);
    let first_start = opt_ts(row.try_get(9)?)?;
    let first_outcome: Option<&str> = row.try_get(10)?;
    let first_outcome = first_outcome
        .map(|o| {
            o.parse::<Outcome>()
                .map_err(|_| StoreError::Corrupt { what: "outcome", value: o.to_owned() })
        })
        .transpose()?;
    Ok(Some(Served {
        service,
        channel,
        state,
        created_at: ts(row.try_get(3)?)?,
        deadline_at: ts(row.try_get(4)?)?,
        deadline_missed: row.try_get::<i64, _>(5)? != 0,
        told: match told {
            (Some(f), Some(t)) => Some((f, t)),
            _ => None,
        },
        calls: Calls {
            finished: count(row.try_get(8)?),
            first: first_start.map(|at| (at, first_outcome)),
            connected_at: opt_ts(row.try_get(11)?)?,
            declined: row.try_get::<i64, _>(12)? != 0,
        },
    }))
}

/// One row of [`sums`].
fn totals<'r, R>(row: &'r R) -> Result<Totals, StoreError>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let n = |i: usize| -> Result<u64, StoreError> { Ok(count(row.try_get::<i64, _>(i)?)) };
    let share = |i: usize| -> Result<Share, StoreError> {
        Ok(Share { of: n(i)?, hits: n(i + 1)?, rate: None })
    };
    Ok(Totals {
        requests: n(1)?,
        connected: n(2)?,
        unreachable: n(3)?,
        expired: n(4)?,
        cancelled: n(5)?,
        declined: n(6)?,
        open: n(7)?,
        waits: n(8)?,
        wait_ms: row.try_get(9)?,
        same_day: share(10)?,
        deadlines_missed: n(12)?,
        first_attempt: share(13)?,
        attempts: n(15)?,
        with_calls: n(16)?,
        punctuality: share(17)?,
        miss_ms: row.try_get(19)?,
        ..Totals::default()
    })
}

/// The report's statements in the order [`read`] runs them, each with its leading integer
/// parameters (the services follow them).
fn statements(p: &Plan<'_>) -> [(&'static str, String, Vec<i64>); 6] {
    let n = p.services.len();
    [
        ("the period's requests", fold(3, n), vec![p.cur_from, p.cur_to]),
        ("the previous period's sums", sums(n), vec![p.prev, p.cur_from, p.now]),
        ("the previous period's channels", channels(n), vec![p.prev, p.cur_from]),
        ("the previous period's percentiles", percentiles(n), vec![p.prev, p.cur_from]),
        ("outcomes of both periods", tally(n, false), vec![p.prev, p.cur_to, p.cur_from]),
        ("SMS sent in both periods", tally(n, true), vec![p.prev, p.cur_to, p.cur_from]),
    ]
}

/// The reads of [`read`] for one backend, inside its read-only transaction: the period's
/// requests row by row, everything else summed by the database. And [`explain`]'s plans:
/// `$explain` is the backend's prefix, `$col` the plan text's column.
macro_rules! read_in {
    ($db:ty, $read:ident, $plans:ident, $explain:literal, $col:literal) => {
        async fn $read(
            tx: &mut sqlx::Transaction<'_, $db>,
            p: &Plan<'_>,
        ) -> Result<Read, StoreError> {
            fn bind<'q>(
                sql: &'q str,
                ints: &'q [i64],
                services: &'q [String],
            ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
                let mut q = sqlx::query(sql);
                for i in ints {
                    q = q.bind(*i);
                }
                for s in services {
                    q = q.bind(s.as_str());
                }
                q
            }
            let n = p.services.len();
            let mut read = Read {
                tally: vec![Tally::default(); n],
                previous: Aggregate {
                    services: vec![Totals::default(); n],
                    ranks: vec![None; n + 1],
                },
                ..Read::default()
            };
            let [requests, previous, by_channel, ranked, outcomes, sent] = statements(p);
            let mut rows = bind(&requests.1, &requests.2, p.services).fetch(&mut **tx);
            while let Some(row) = rows.try_next().await? {
                if let Some(s) = served(&row, n, &mut read.channels)? {
                    read.current.push(s);
                }
            }
            drop(rows);
            let mut rows = bind(&previous.1, &previous.2, p.services).fetch(&mut **tx);
            while let Some(row) = rows.try_next().await? {
                if let Some(i) = index(row.try_get(0)?, n) {
                    read.previous.services[i] = totals(&row)?;
                }
            }
            drop(rows);
            let mut rows = bind(&by_channel.1, &by_channel.2, p.services).fetch(&mut **tx);
            while let Some(row) = rows.try_next().await? {
                if let Some(i) = index(row.try_get(0)?, n) {
                    let channel: String = row.try_get(1)?;
                    let c = count(row.try_get(2)?);
                    *read.previous.services[i].by_channel.entry(channel).or_default() += c;
                }
            }
            drop(rows);
            let mut rows = bind(&ranked.1, &ranked.2, p.services).fetch(&mut **tx);
            while let Some(row) = rows.try_next().await? {
                let s: i64 = row.try_get(0)?;
                let Some(i) = (if s == -1 { Some(n) } else { index(s, n) }) else { continue };
                let (k, of, wait): (i64, i64, i64) =
                    (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
                let (p50, p90) = ranks(count(of));
                let r = read.previous.ranks[i].get_or_insert((wait, wait));
                if count(k) == p50 {
                    r.0 = wait;
                }
                if count(k) == p90 {
                    r.1 = wait;
                }
            }
            drop(rows);
            for (statement, sms) in [(outcomes, false), (sent, true)] {
                let mut rows = bind(&statement.1, &statement.2, p.services).fetch(&mut **tx);
                while let Some(row) = rows.try_next().await? {
                    let Some(i) = index(row.try_get(0)?, n) else { continue };
                    let current = row.try_get::<i64, _>(1)? != 0;
                    let key: String = row.try_get(2)?;
                    let c = count(row.try_get(3)?);
                    let map = match (current, sms) {
                        (true, false) => &mut read.tally[i].outcomes,
                        (true, true) => &mut read.tally[i].sms_sent,
                        (false, false) => &mut read.previous.services[i].outcomes,
                        (false, true) => &mut read.previous.services[i].sms_sent,
                    };
                    *map.entry(key).or_default() += c;
                }
            }
            Ok(read)
        }

        async fn $plans(
            tx: &mut sqlx::Transaction<'_, $db>,
            p: &Plan<'_>,
        ) -> Result<Vec<(&'static str, String)>, StoreError> {
            let mut out = Vec::new();
            for (name, sql, ints) in statements(p) {
                let sql = format!("{} {sql}", $explain);
                let mut q = sqlx::query(&sql);
                for i in &ints {
                    q = q.bind(*i);
                }
                for s in p.services {
                    q = q.bind(s.as_str());
                }
                let rows = q.fetch_all(&mut **tx).await?;
                let lines = rows
                    .iter()
                    .map(|r| r.try_get::<String, _>($col))
                    .collect::<Result<Vec<_>, _>>()?;
                out.push((name, lines.join("\n")));
            }
            Ok(out)
        }
    };
}

read_in!(sqlx::Sqlite, read_sqlite, plans_sqlite, "EXPLAIN QUERY PLAN", 3);
read_in!(sqlx::Postgres, read_postgres, plans_postgres, "EXPLAIN", 0);

/// What a snapshot is opened for.
enum Job {
    Read,
    Explain,
}

/// What it gave.
enum Done {
    Read(Read),
    Explain(Vec<(&'static str, String)>),
}

/// Reads what a report of `query` needs (see [`Read`]), read-only, through the backend's
/// own driver: the period's requests one row each with their attempts folded, the rest
/// summed by the database. `now` decides which requests are still undecided.
pub async fn read(url: &str, query: &Query, now: Timestamp) -> Result<Read, StoreError> {
    match snapshot(url, query, now, Job::Read).await? {
        Done::Read(r) => Ok(r),
        Done::Explain(_) => unreachable!("a read job reads"),
    }
}

/// The database's plan of each of [`read`]'s statements (SQLite's `EXPLAIN QUERY PLAN`,
/// PostgreSQL's `EXPLAIN`), by name, for checking that each is an index range scan.
pub async fn explain(
    url: &str,
    query: &Query,
    now: Timestamp,
) -> Result<Vec<(&'static str, String)>, StoreError> {
    match snapshot(url, query, now, Job::Explain).await? {
        Done::Explain(p) => Ok(p),
        Done::Read(_) => unreachable!("an explain job explains"),
    }
}

/// Opens one read-only snapshot and runs `job` in it.
async fn snapshot(url: &str, query: &Query, now: Timestamp, job: Job) -> Result<Done, StoreError> {
    let (cur_from, cur_to) = query.period.instants(&query.tz);
    let (prev, _) = query.period.previous().instants(&query.tz);
    let plan = Plan {
        services: &query.services,
        prev: super::ms(prev),
        cur_from: super::ms(cur_from),
        cur_to: super::ms(cur_to),
        now: super::ms(now),
    };
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let (path, mut params, _) = sqlite_url(rest);
        if path != ":memory:" && !std::path::Path::new(&path).exists() {
            return Err(StoreError::Db(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("database file {path} does not exist"),
            ))));
        }
        params.push("mode=ro".to_owned());
        let url = format!("sqlite://{path}?{}", params.join("&"));
        let mut conn = sqlx::SqliteConnection::connect(&url).await?;
        sqlx::query("PRAGMA query_only = 1").execute(&mut conn).await?;
        let busy = format!("PRAGMA busy_timeout = {}", super::BUSY_TIMEOUT.as_millis());
        sqlx::query(&busy).execute(&mut conn).await?;
        // A report reads a month of requests with their attempts and SMS once, and groups
        // and ranks them: its sorts and groupings stay in memory instead of temporary
        // files, the file is read through a memory map, and the page cache may hold the
        // month (limits, not allocations; this connection lives for one report).
        for pragma in [
            "PRAGMA temp_store = MEMORY",
            "PRAGMA mmap_size = 536870912",
            "PRAGMA cache_size = -262144",
        ] {
            sqlx::query(pragma).execute(&mut conn).await?;
        }
        let mut tx = conn.begin().await?;
        let done = match job {
            Job::Read => Done::Read(read_sqlite(&mut tx, &plan).await?),
            Job::Explain => Done::Explain(plans_sqlite(&mut tx, &plan).await?),
        };
        tx.rollback().await?;
        conn.close().await?;
        Ok(done)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        let mut tx = conn.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let done = match job {
            Job::Read => Done::Read(read_postgres(&mut tx, &plan).await?),
            Job::Explain => Done::Explain(plans_postgres(&mut tx, &plan).await?),
        };
        tx.rollback().await?;
        conn.close().await?;
        Ok(done)
    } else {
        Err(StoreError::Url(url.to_owned()))
    }
}

/// The rows of the requests made in `from..to` by `services`, with their attempts and sent
/// SMS, inside the caller's transaction (the supervisor page's figures of today).
async fn rows(
    conn: &mut sqlx::Transaction<'_, sqlx::Any>,
    services: &[String],
    from: Timestamp,
    to: Timestamp,
) -> Result<History, StoreError> {
    let (a, b) = (super::ms(from), super::ms(to));
    let mut h = History::default();
    {
        let sql = format!(
            "SELECT r.id, r.service, r.channel, r.state, r.created_at, r.deadline_at, \
             r.deadline_missed, r.told_from, r.told_to FROM requests r WHERE {}",
            filter("r", services.len())
        );
        let q = bound(&sql, a, b, services);
        let mut rows = q.fetch(&mut **conn);
        while let Some(row) = rows.try_next().await? {
            let state: String = row.try_get("state")?;
            let told = (opt_ts(row.try_get("told_from")?)?, opt_ts(row.try_get("told_to")?)?);
            h.requests.push(RequestRow {
                id: row.try_get("id")?,
                service: row.try_get("service")?,
                channel: row.try_get("channel")?,
                state: state
                    .parse()
                    .map_err(|_| StoreError::Corrupt { what: "state", value: state })?,
                created_at: ts(row.try_get("created_at")?)?,
                deadline_at: ts(row.try_get("deadline_at")?)?,
                deadline_missed: row.try_get::<i64, _>("deadline_missed")? != 0,
                told: match told {
                    (Some(f), Some(t)) => Some((f, t)),
                    _ => None,
                },
            });
        }
    }
    {
        let sql = format!(
            "SELECT a.request_id, a.seq, a.started_at, a.answered_at, a.outcome \
             FROM attempts a JOIN requests r ON r.id = a.request_id WHERE {}",
            filter("r", services.len())
        );
        let q = bound(&sql, a, b, services);
        let mut rows = q.fetch(&mut **conn);
        while let Some(row) = rows.try_next().await? {
            let outcome: Option<String> = row.try_get("outcome")?;
            let outcome = outcome
                .map(|o| {
                    o.parse::<Outcome>()
                        .map_err(|_| StoreError::Corrupt { what: "outcome", value: o })
                })
                .transpose()?;
            h.attempts.push(AttemptRow {
                request_id: row.try_get("request_id")?,
                seq: row.try_get("seq")?,
                started_at: ts(row.try_get("started_at")?)?,
                answered_at: opt_ts(row.try_get("answered_at")?)?,
                outcome,
            });
        }
    }
    {
        let sql = format!(
            "SELECT o.request_id, o.kind, o.state FROM outbox o JOIN requests r \
             ON r.id = o.request_id WHERE o.state = 'sent' AND {}",
            filter("r", services.len())
        );
        let q = bound(&sql, a, b, services);
        let mut rows = q.fetch(&mut **conn);
        while let Some(row) = rows.try_next().await? {
            h.sms.push(SmsRow {
                request_id: row.try_get("request_id")?,
                kind: row.try_get("kind")?,
                state: row.try_get("state")?,
            });
        }
    }
    Ok(h)
}

/// Live requests of one service in one state, for the supervisor page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveDepth {
    /// Service id.
    pub service: String,
    /// `pending`, `retry_wait` or `dialing`.
    pub state: crate::store::State,
    /// Requests.
    pub count: i64,
    /// Of them, due at `now`.
    pub due: i64,
    /// The oldest one's creation.
    pub oldest: Timestamp,
}

impl super::Store {
    /// The rows of the requests made in `from..to` by `services`, with their attempts and
    /// sent SMS, through the daemon's pool (one transaction, one snapshot).
    pub async fn history(
        &self,
        services: &[String],
        from: Timestamp,
        to: Timestamp,
    ) -> Result<History, StoreError> {
        let mut tx = self.pool.begin().await?;
        let h = rows(&mut tx, services, from, to).await?;
        tx.rollback().await?;
        Ok(h)
    }

    /// Live requests per service and state: how many, how many due at `now`, the oldest.
    pub async fn live_depth(&self, now: Timestamp) -> Result<Vec<LiveDepth>, StoreError> {
        let rows = sqlx::query(
            "SELECT service, state, COUNT(*) AS n, \
             SUM(CASE WHEN due_at <= $1 THEN 1 ELSE 0 END) AS due, MIN(created_at) AS oldest \
             FROM requests WHERE state IN ('pending','dialing','retry_wait') GROUP BY service, state",
        )
        .bind(super::ms(now))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let state: String = row.try_get("state")?;
                Ok(LiveDepth {
                    service: row.try_get("service")?,
                    state: state
                        .parse()
                        .map_err(|_| StoreError::Corrupt { what: "state", value: state })?,
                    count: row.try_get("n")?,
                    due: row.try_get::<Option<i64>, _>("due")?.unwrap_or(0),
                    oldest: ts(row.try_get("oldest")?)?,
                })
            })
            .collect()
    }

    /// Attempts ended since `since`, per service and outcome.
    pub async fn outcomes_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(String, Outcome, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.service, a.outcome, COUNT(*) AS n FROM attempts a \
             JOIN requests r ON r.id = a.request_id \
             WHERE a.ended_at >= $1 AND a.outcome IS NOT NULL GROUP BY r.service, a.outcome",
        )
        .bind(super::ms(since))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let o: String = row.try_get("outcome")?;
                let outcome = o
                    .parse::<Outcome>()
                    .map_err(|_| StoreError::Corrupt { what: "outcome", value: o })?;
                Ok((row.try_get("service")?, outcome, row.try_get("n")?))
            })
            .collect()
    }
}

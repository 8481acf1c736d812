//! The report's read of the store: read-only, safe while the daemon runs.
//!
//! One connection, one read-only transaction, so every read sees one snapshot: SQLite
//! opened read-only with `PRAGMA query_only` (a WAL reader never blocks the daemon's
//! writer), PostgreSQL in a `REPEATABLE READ, READ ONLY` transaction. No migration is run
//! and nothing is written. [`read`] reads SQLite through `rusqlite` on a blocking thread
//! (stepping through the rows where they are read, instead of sqlx handing each row over
//! from its worker thread) and PostgreSQL through sqlx's own driver; both periods (the
//! report's and the previous one) come in two statements:
//!
//! - the requests made in them, each joined to its attempts (one row per attempt, one for a
//!   request without any), in the order of `requests_created (created_at, service)` so a
//!   request's rows come together: one pass over the requests and their attempts, folded in
//!   Rust by [`crate::report::Fold`] as they stream in (the period's requests kept one by
//!   one, the previous period summed, finished attempts counted by outcome); only the
//!   columns a report needs, the service as an index, never a number;
//! - the SMS sent for them, counted per service, period and kind by the database.
//!
//! On SQLite both are an index range scan of `requests_created (created_at, service)`,
//! joined to attempts by `(request_id, seq)` and to the outbox by `outbox_request`
//! (migration 0012); PostgreSQL chooses by its statistics.

use super::{StoreError, opt_ts, sqlite_url, ts};
use crate::policy::Outcome;
use crate::report::{
    AttemptRow, Calls, CallsFold, Fold, History, Query, Read, RequestRow, Served, SmsRow,
};
use futures_util::TryStreamExt;
use jiff::Timestamp;
use rusqlite::types::Value as SqlValue;
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
struct Plan {
    services: Vec<String>,
    /// The previous period's start: the previous period is `prev..cur_from`.
    prev: i64,
    cur_from: i64,
    cur_to: i64,
    /// Decides which requests are still undecided.
    now: Timestamp,
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

/// The requests made in `$1..$2` by the services `$3…`, one row per attempt (attempt
/// columns NULL for a request without any), ordered by request: the order of the index
/// `requests_created (created_at, service)` and the id, so SQLite needs no sort. Columns in
/// the order [`Stream::row`] reads them.
fn joined(n: usize) -> String {
    format!(
        "SELECT r.id, {s}, r.channel, r.state, r.created_at, r.deadline_at, \
         r.deadline_missed, r.told_from, r.told_to, a.seq, a.started_at, a.answered_at, \
         a.outcome FROM requests r LEFT JOIN attempts a ON a.request_id = r.id \
         WHERE {w} ORDER BY r.created_at, r.service, r.id",
        s = service_index(3, n),
        w = made_in(3, n),
    )
}

/// Sent SMS per service, period (1 = current: made at or after `$3`) and kind, of the
/// requests made in `$1..$2`, services from `$4`.
fn sent(n: usize) -> String {
    format!(
        "SELECT {s}, CAST(CASE WHEN r.created_at >= $3 THEN 1 ELSE 0 END AS BIGINT), o.kind, \
         CAST(COUNT(*) AS BIGINT) FROM requests r JOIN outbox o ON o.request_id = r.id \
         WHERE {w} AND o.state = 'sent' GROUP BY 1, 2, 3",
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

/// One row of [`joined`] or [`sent`] as a driver gives it: the columns by position, strings
/// borrowed from the row.
trait Columns {
    fn int(&self, i: usize) -> Result<i64, StoreError>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    fn text(&self, i: usize) -> Result<&str, StoreError>;
    fn opt_text(&self, i: usize) -> Result<Option<&str>, StoreError>;
}

impl Columns for sqlx::postgres::PgRow {
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn text(&self, i: usize) -> Result<&str, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<&str>, StoreError> {
        Ok(self.try_get(i)?)
    }
}

impl Columns for rusqlite::Row<'_> {
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        Ok(self.get_ref(i)?.as_i64().map_err(|e| sqlite_column(i, e))?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.get_ref(i)?.as_i64_or_null().map_err(|e| sqlite_column(i, e))?)
    }
    fn text(&self, i: usize) -> Result<&str, StoreError> {
        Ok(self.get_ref(i)?.as_str().map_err(|e| sqlite_column(i, e))?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<&str>, StoreError> {
        Ok(self.get_ref(i)?.as_str_or_null().map_err(|e| sqlite_column(i, e))?)
    }
}

/// A column of the wrong type, as rusqlite's own error names it.
fn sqlite_column(i: usize, e: rusqlite::types::FromSqlError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Null, Box::new(e))
}

/// The request whose rows of [`joined`] are streaming in.
#[derive(Debug)]
struct Open {
    id: i64,
    /// The request, its calls not yet folded.
    request: Served,
    /// Made in the report's period (else in the previous one).
    current: bool,
    calls: CallsFold,
}

/// [`joined`]'s rows folded as they stream in, one request at a time, then [`sent`]'s.
#[derive(Debug)]
struct Stream {
    fold: Fold,
    services: usize,
    /// The report's period starts here (Unix ms); the previous one before.
    cur_from: i64,
    open: Option<Open>,
}

impl Stream {
    fn new(p: &Plan) -> Self {
        let n = p.services.len();
        Stream { fold: Fold::new(n, p.now), services: n, cur_from: p.cur_from, open: None }
    }

    /// One row of [`joined`]: a request's first row opens it (and hands the one before to
    /// the fold), each row's attempt, if any, is added to its calls and counted by outcome.
    /// Strings are read borrowed; the channel is looked up among the few seen so far, not
    /// copied.
    fn row<C: Columns>(&mut self, row: &C) -> Result<(), StoreError> {
        let id = row.int(0)?;
        if self.open.as_ref().is_none_or(|o| o.id != id) {
            self.close();
            let Some(service) = index(row.int(1)?, self.services) else { return Ok(()) };
            let state = row.text(3)?;
            let state = state
                .parse()
                .map_err(|_| StoreError::Corrupt { what: "state", value: state.to_owned() })?;
            let created_at = row.int(4)?;
            let told = (opt_ts(row.opt_int(7)?)?, opt_ts(row.opt_int(8)?)?);
            let request = Served {
                service,
                channel: self.fold.channel(row.text(2)?),
                state,
                created_at: ts(created_at)?,
                deadline_at: ts(row.int(5)?)?,
                deadline_missed: row.int(6)? != 0,
                told: match told {
                    (Some(f), Some(t)) => Some((f, t)),
                    _ => None,
                },
                calls: Calls::default(),
            };
            let current = created_at >= self.cur_from;
            self.open = Some(Open { id, request, current, calls: CallsFold::default() });
        }
        let Some(open) = self.open.as_mut() else { return Ok(()) };
        let Some(seq) = row.opt_int(9)? else { return Ok(()) };
        let outcome = row
            .opt_text(12)?
            .map(|o| {
                o.parse::<Outcome>()
                    .map_err(|_| StoreError::Corrupt { what: "outcome", value: o.to_owned() })
            })
            .transpose()?;
        open.calls.add(&AttemptRow {
            request_id: id,
            seq,
            started_at: ts(row.int(10)?)?,
            answered_at: opt_ts(row.opt_int(11)?)?,
            outcome,
        });
        if let Some(o) = outcome {
            self.fold.outcome(open.request.service, open.current, o);
        }
        Ok(())
    }

    /// Hands the open request, its calls folded, to the fold.
    fn close(&mut self) {
        if let Some(o) = self.open.take() {
            self.fold.request(Served { calls: o.calls.finish(), ..o.request }, o.current);
        }
    }

    /// One row of [`sent`], after the last of [`joined`].
    fn sms<C: Columns>(&mut self, row: &C) -> Result<(), StoreError> {
        self.close();
        let Some(i) = index(row.int(0)?, self.services) else { return Ok(()) };
        let current = row.int(1)? != 0;
        self.fold.sms(i, current, row.text(2)?, count(row.int(3)?));
        Ok(())
    }

    /// What the report needs, every request in it.
    fn finish(mut self) -> Read {
        self.close();
        self.fold.finish()
    }
}

/// The report's statements in the order [`read`] runs them, each with its leading integer
/// parameters (the services follow them).
fn statements(p: &Plan) -> [(&'static str, String, Vec<i64>); 2] {
    let n = p.services.len();
    [
        ("the requests of both periods with their attempts", joined(n), vec![p.prev, p.cur_to]),
        ("SMS sent in both periods", sent(n), vec![p.prev, p.cur_to, p.cur_from]),
    ]
}

/// `sql` with its parameters bound: the integers, then the services.
fn bind_pg<'q>(
    sql: &'q str,
    ints: &'q [i64],
    services: &'q [String],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let mut q = sqlx::query(sql);
    for i in ints {
        q = q.bind(*i);
    }
    for s in services {
        q = q.bind(s.as_str());
    }
    q
}

/// [`read`] on PostgreSQL, inside its read-only transaction: the rows streamed from the
/// server as they come.
async fn read_postgres(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    p: &Plan,
) -> Result<Read, StoreError> {
    let [requests, sms] = statements(p);
    let mut stream = Stream::new(p);
    let mut rows = bind_pg(&requests.1, &requests.2, &p.services).fetch(&mut **tx);
    while let Some(row) = rows.try_next().await? {
        stream.row(&row)?;
    }
    drop(rows);
    let mut rows = bind_pg(&sms.1, &sms.2, &p.services).fetch(&mut **tx);
    while let Some(row) = rows.try_next().await? {
        stream.sms(&row)?;
    }
    Ok(stream.finish())
}

/// [`explain`] on PostgreSQL.
async fn plans_postgres(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    p: &Plan,
) -> Result<Vec<(&'static str, String)>, StoreError> {
    let mut out = Vec::new();
    for (name, sql, ints) in statements(p) {
        let sql = format!("EXPLAIN {sql}");
        let rows = bind_pg(&sql, &ints, &p.services).fetch_all(&mut **tx).await?;
        let lines =
            rows.iter().map(|r| r.try_get::<String, _>(0)).collect::<Result<Vec<_>, _>>()?;
        out.push((name, lines.join("\n")));
    }
    Ok(out)
}

/// A statement of [`statements`] for SQLite: its `$n` parameters as SQLite's numbered
/// `?n` (a `$n` would be a named parameter, numbered by first use, and [`joined`] uses the
/// services before the instants), and the values in that order.
fn sqlite_statement(sql: &str, ints: &[i64], services: &[String]) -> (String, Vec<SqlValue>) {
    let values = ints
        .iter()
        .map(|i| SqlValue::Integer(*i))
        .chain(services.iter().map(|s| SqlValue::Text(s.clone())))
        .collect();
    (sql.replace('$', "?"), values)
}

/// [`read`] or [`explain`] on SQLite, on a blocking thread: rusqlite steps through the rows
/// on the calling thread, where sqlx would hand each of the hundreds of thousands of rows
/// over from its worker thread (the same `libsqlite3-sys` underneath). The file is opened
/// read-only and `query_only`, and both statements run in one deferred transaction: one
/// WAL snapshot, which never blocks the daemon's writer.
fn sqlite_snapshot(path: &str, p: &Plan, job: Job) -> Result<Done, StoreError> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(super::BUSY_TIMEOUT)?;
    // A report reads a month of requests with their attempts and SMS once: its sorts and
    // groupings stay in memory instead of temporary files, the file is read through a
    // memory map, and the page cache may hold the month (limits, not allocations; this
    // connection lives for one report).
    conn.execute_batch(
        "PRAGMA query_only = 1; PRAGMA temp_store = MEMORY; PRAGMA mmap_size = 536870912; \
         PRAGMA cache_size = -262144;",
    )?;
    let tx = conn.unchecked_transaction()?;
    let [requests, sms] = statements(p);
    let done = match job {
        Job::Read => {
            let mut stream = Stream::new(p);
            let (sql, values) = sqlite_statement(&requests.1, &requests.2, &p.services);
            let mut stmt = tx.prepare(&sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
            while let Some(row) = rows.next()? {
                stream.row(row)?;
            }
            let (sql, values) = sqlite_statement(&sms.1, &sms.2, &p.services);
            let mut stmt = tx.prepare(&sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
            while let Some(row) = rows.next()? {
                stream.sms(row)?;
            }
            Done::Read(stream.finish())
        }
        Job::Explain => {
            let mut out = Vec::new();
            for (name, sql, ints) in [requests, sms] {
                let (sql, values) = sqlite_statement(&sql, &ints, &p.services);
                let mut stmt = tx.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let lines = stmt
                    .query_map(rusqlite::params_from_iter(values), |r| r.get::<_, String>(3))?
                    .collect::<Result<Vec<_>, _>>()?;
                out.push((name, lines.join("\n")));
            }
            Done::Explain(out)
        }
    };
    tx.rollback()?;
    Ok(done)
}

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

/// Reads what a report of `query` needs (see [`Read`]), read-only: the requests of both
/// periods with their attempts in one ordered pass, folded as they come; the SMS counted by
/// the database. `now` decides which requests are still undecided.
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
        services: query.services.clone(),
        prev: super::ms(prev),
        cur_from: super::ms(cur_from),
        cur_to: super::ms(cur_to),
        now,
    };
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let (path, _, _) = sqlite_url(rest);
        if !std::path::Path::new(&path).exists() {
            return Err(StoreError::Db(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("database file {path} does not exist"),
            ))));
        }
        match tokio::task::spawn_blocking(move || sqlite_snapshot(&path, &plan, job)).await {
            Ok(done) => done,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
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

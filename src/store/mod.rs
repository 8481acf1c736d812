//! The durable queue: requests, attempts, the SMS outbox and the audit trail.
//!
//! One API over SQLite (the default, one server) and PostgreSQL (several servers), through
//! sqlx's `Any` driver: the SQL here is portable (`$n` parameters, `RETURNING`, partial
//! indexes), instants are Unix milliseconds, flags are 0/1 integers. Migrations are
//! embedded, one directory per backend, kept in step.
//!
//! The store decides nothing: a request's changes are decided by
//! [`crate::policy::lifecycle::step`] on the facts the store reads inside its write
//! transaction, and written as they come back (`requests.rs`); SMS rows follow
//! [`crate::policy::lifecycle::sms_fate`] (`sms.rs`).
//!
//! Every state change writes its audit row in the same transaction, and is written before
//! the action it announces (a claim is committed before the call is placed). The database
//! itself enforces one live request per number and service and one live attempt per
//! request (partial unique indexes).
//!
//! SQLite allows one writer at a time: this process's write transactions take turns
//! (`WriteTx`) instead of meeting SQLite's lock and its busy handler's sleeps.

use crate::calendar::DayRange;
use crate::lang::Lang;
use crate::number::E164;
use crate::policy::{AttemptRecord, Outcome, Plan};
use jiff::Timestamp;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

pub mod health;
mod intake;
pub mod lease;
pub mod report;
mod requests;
mod sms;
mod told;
pub use requests::{Applied, Fence, Finish};
pub use sms::OutboxRow;
pub use told::Told;

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or answered with an error.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// SQLite, read directly (the report's read, [`report`]), answered with an error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value could not be read back (a corrupted or foreign row).
    #[error("stored {what} {value:?} is not valid")]
    Corrupt {
        /// Which column.
        what: &'static str,
        /// Its value.
        value: String,
    },
    /// The database URL names no supported backend.
    #[error("unsupported database URL {0:?}: use sqlite:PATH or postgres://…")]
    Url(String),
    /// The store cannot keep a write now (see [`health`]); nothing was written.
    #[error("the store refuses writes: {0}")]
    Refusing(health::Fault),
    /// The write was not committed (its batch failed or was aborted); nothing of it was
    /// stored.
    #[error("the write was not committed: {0}")]
    NotCommitted(String),
    /// The SQLite file is missing although a queue was created at that path before.
    #[error(
        "database {path} is missing, but {marker} says a queue was created there: refusing \
         to start on a new empty queue. Restore the file from a backup, or remove {marker} \
         (or add ?mode=rwc to the database URL) to start with an empty queue"
    )]
    Missing {
        /// The database file.
        path: String,
        /// The marker file written when the queue was created.
        marker: String,
    },
}

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One server, a file.
    Sqlite,
    /// Several servers sharing one queue.
    Postgres,
}

impl Backend {
    /// Parameter `n` (from 1) of a statement whose every parameter is bound once, in the
    /// order it appears: `$n` on PostgreSQL, anonymous `?` on SQLite. SQLite lists a
    /// statement's named and numbered parameters (`$n`, `?n`), and sqlx looks each one up in
    /// that list as it binds it: N²/2 steps for N parameters, about 2 M for a 256-row batch
    /// of 8 columns, on every execution. Anonymous parameters are not in the list.
    pub(crate) fn param(self, n: usize) -> String {
        match self {
            Backend::Sqlite => "?".to_owned(),
            Backend::Postgres => format!("${n}"),
        }
    }

    /// The parameters `first`, `first + 1`, … (`n` of them), comma-separated
    /// ([`Backend::param`]: bound once each, in order).
    pub(crate) fn params(self, first: usize, n: usize) -> String {
        (first..first + n).map(|i| self.param(i)).collect::<Vec<_>>().join(", ")
    }
}

pub use crate::policy::lifecycle::{Cancelled, State, UnknownState};

/// A new request, validated by intake.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// Service id.
    pub service: String,
    /// The number, already checked by the service's number policy.
    pub number: E164,
    /// Where it came from (`api`, `cli`, `ivr`, …).
    pub channel: String,
    /// The patient's language.
    pub lang: Lang,
    /// The window the patient chose.
    pub window: Option<DayRange>,
    /// Whether the patient consented to SMS.
    pub sms_consent: bool,
    /// Queue the expected-time notice SMS with the request (the service sends notices).
    pub sms_notice: bool,
    /// When it was made.
    pub created_at: Timestamp,
    /// The care team (a key of the dialplan's `[teams]`), already checked.
    pub team: Option<String>,
    /// The window the API intake's answer tells ([`crate::eta::at_intake`]), written with the
    /// row so that intake commits once; `None` when none is told. A duplicate keeps the
    /// window of the request it repeats.
    pub told: Option<Told>,
}

/// A stored request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Id.
    pub id: i64,
    /// Service id.
    pub service: String,
    /// The number; `None` once erased after the retention period.
    pub number: Option<E164>,
    /// State.
    pub state: State,
    /// Intake channel.
    pub channel: String,
    /// Language.
    pub lang: Lang,
    /// The patient's window.
    pub window: Option<DayRange>,
    /// SMS consent.
    pub sms_consent: bool,
    /// Made at.
    pub created_at: Timestamp,
    /// Next due (waiting states only).
    pub due_at: Option<Timestamp>,
    /// Same-day deadline.
    pub deadline_at: Timestamp,
    /// Expiry.
    pub expires_at: Timestamp,
    /// Attempts counted against the patient.
    pub attempts_counted: i64,
    /// The deadline passed before the request was served.
    pub deadline_missed: bool,
    /// Cancelled while an attempt was live: not retried.
    pub cancel_requested: bool,
    /// When it reached a final state.
    pub final_at: Option<Timestamp>,
    /// Why it ended, for operators.
    pub end_reason: Option<String>,
    /// The care team it is routed to (`None`: the service's own target).
    pub team: Option<String>,
    /// The window last told to the patient ([`crate::eta::tell`]), if any: read with the
    /// request, so a claimed request carries the window its first call is judged against
    /// ([`crate::policy::punctuality`]) without another read.
    pub told: Option<Told>,
}

/// A stored attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Id.
    pub id: i64,
    /// The request.
    pub request_id: i64,
    /// 1 for the first attempt of the request.
    pub seq: i64,
    /// Started (claimed) at.
    pub started_at: Timestamp,
    /// Ended at; `None` while live.
    pub ended_at: Option<Timestamp>,
    /// Outcome; `None` while live.
    pub outcome: Option<Outcome>,
    /// The final SIP status code, if any.
    pub sip_code: Option<u16>,
    /// When the far end answered, once that was written (before any prompt or hand-over).
    pub answered_at: Option<Timestamp>,
}

impl Attempt {
    /// The attempt as the policy sees it; `None` while live.
    pub fn record(&self) -> Option<AttemptRecord> {
        Some(AttemptRecord { ended_at: self.ended_at?, outcome: self.outcome? })
    }
}

/// Result of [`Store::enqueue`].
#[derive(Debug, Clone)]
pub struct Enqueued {
    /// The stored request: the new one, or the live one it duplicates.
    pub request: Request,
    /// True when the same number already had a live request for the service.
    pub duplicate: bool,
}

/// Filter for [`Store::list`].
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this service.
    pub service: Option<String>,
    /// Only this state.
    pub state: Option<State>,
    /// At most this many, newest first.
    pub limit: i64,
}

/// A queued SMS (delivered by the notifier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Id, also the idempotency key towards the gateway.
    pub id: i64,
    /// The request.
    pub request_id: i64,
    /// `notice`, `unreachable` or `feedback`.
    pub kind: String,
    /// Language.
    pub lang: Lang,
    /// Not sent before.
    pub not_before: Timestamp,
    /// `queued`, `sent`, `failed`, `skipped`.
    pub state: String,
}

/// Depth of one service's queue in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Depth {
    /// Service id.
    pub service: String,
    /// State.
    pub state: State,
    /// Requests.
    pub count: i64,
}

const WAITING: &str = "('pending','retry_wait')";
/// [`Store::depth`] folds the `queue_depth` rows once they span this many ids.
const FOLD_DEPTH_AT: i64 = 4096;
/// The most `queue_depth` ids one fold takes: a short write transaction even over a backlog.
const FOLD_BATCH: i64 = 16_384;
/// The serving order in SQL: [`crate::policy::lifecycle::ServingKey`]'s fields in its order,
/// matching the `requests_waiting_order` index (tested in `tests/scheduler.rs`).
pub(crate) const SERVING_ORDER: &str = "deadline_at, created_at, id";
const LIVE: &str = "('pending','dialing','retry_wait')";
pub(crate) const REQUEST_COLUMNS: &str = "id, service, number, state, channel, lang, window_start, \
    window_end, sms_consent, created_at, due_at, deadline_at, expires_at, attempts_counted, \
    deadline_missed, cancel_requested, final_at, end_reason, team, told_from, told_to, told_at, \
    told_same_day";
const ATTEMPT_COLUMNS: &str =
    "id, request_id, seq, started_at, ended_at, outcome, sip_code, answered_at";

/// Unix milliseconds of an instant.
pub fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn ts(ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(ms)
        .map_err(|_| StoreError::Corrupt { what: "instant", value: ms.to_string() })
}

fn opt_ts(ms: Option<i64>) -> Result<Option<Timestamp>, StoreError> {
    ms.map(ts).transpose()
}

/// The patient's chosen window of a row with `window_start` and `window_end`.
pub(crate) fn window_from(row: &AnyRow) -> Result<Option<DayRange>, StoreError> {
    let ws: Option<i64> = row.try_get("window_start")?;
    let we: Option<i64> = row.try_get("window_end")?;
    Ok(match (ws, we) {
        (Some(s), Some(e)) => Some(
            u16::try_from(s)
                .ok()
                .zip(u16::try_from(e).ok())
                .and_then(|(s, e)| DayRange::new(s, e).ok())
                .ok_or_else(|| StoreError::Corrupt { what: "window", value: format!("{s}-{e}") })?,
        ),
        _ => None,
    })
}

pub(crate) fn request_from(row: &AnyRow) -> Result<Request, StoreError> {
    let state: String = row.try_get("state")?;
    let lang: String = row.try_get("lang")?;
    let window = window_from(row)?;
    let number: Option<String> = row.try_get("number")?;
    Ok(Request {
        id: row.try_get("id")?,
        service: row.try_get("service")?,
        number: number.map(E164::from_stored),
        state: state.parse().map_err(|_| StoreError::Corrupt { what: "state", value: state })?,
        channel: row.try_get("channel")?,
        lang: lang.parse().map_err(|_| StoreError::Corrupt { what: "lang", value: lang })?,
        window,
        sms_consent: row.try_get::<i64, _>("sms_consent")? != 0,
        created_at: ts(row.try_get("created_at")?)?,
        due_at: opt_ts(row.try_get("due_at")?)?,
        deadline_at: ts(row.try_get("deadline_at")?)?,
        expires_at: ts(row.try_get("expires_at")?)?,
        attempts_counted: row.try_get("attempts_counted")?,
        deadline_missed: row.try_get::<i64, _>("deadline_missed")? != 0,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        final_at: opt_ts(row.try_get("final_at")?)?,
        end_reason: row.try_get("end_reason")?,
        team: row.try_get("team")?,
        told: told::told_from(row)?,
    })
}

fn attempt_from(row: &AnyRow) -> Result<Attempt, StoreError> {
    let outcome: Option<String> = row.try_get("outcome")?;
    let outcome = outcome
        .map(|o| {
            o.parse::<Outcome>().map_err(|_| StoreError::Corrupt { what: "outcome", value: o })
        })
        .transpose()?;
    let sip: Option<i64> = row.try_get("sip_code")?;
    Ok(Attempt {
        id: row.try_get("id")?,
        request_id: row.try_get("request_id")?,
        seq: row.try_get("seq")?,
        started_at: ts(row.try_get("started_at")?)?,
        ended_at: opt_ts(row.try_get("ended_at")?)?,
        outcome,
        sip_code: sip.and_then(|c| u16::try_from(c).ok()),
        answered_at: opt_ts(row.try_get("answered_at")?)?,
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// The queue store. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    health: std::sync::Arc<health::Health>,
    /// SQLite: the group-commit writer of intakes (see `intake`).
    batcher: intake::Batcher,
    /// PostgreSQL: the room this server's last claim left per trunk and service (see
    /// `lease`): a hint that spares a count, never a decision.
    claim_room: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<(String, String), i64>>>,
    /// PostgreSQL: when this server last started raising each service's pick floor, and
    /// whether its last raise failed (see `lease`).
    floor_raised: std::sync::Arc<
        std::sync::Mutex<std::collections::HashMap<String, (tokio::time::Instant, bool)>>,
    >,
    /// SQLite: the write turn, taken by every write transaction of this process in the
    /// order they asked (see [`WriteTx`]). Held by a [`WriteTx`] from before its `BEGIN
    /// IMMEDIATE` until it ends.
    write_turn: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// SQLite's wait for another connection's write lock.
pub(crate) const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The marker written next to a SQLite queue when it is created: while it exists, a missing
/// database file is an error, never a reason to create a new empty queue.
pub fn marker_of(path: &std::path::Path) -> std::path::PathBuf {
    let mut m = path.as_os_str().to_owned();
    m.push(".created");
    std::path::PathBuf::from(m)
}

/// Writes the marker if it is missing (best effort: a read-only directory keeps none).
pub(crate) fn write_marker(path: &std::path::Path) {
    let marker = marker_of(path);
    if !marker.exists() {
        let text = "A callbackd queue was created next to this file. While this file exists, \
                    callbackd refuses to start when the database is missing.\n";
        let _ = std::fs::write(&marker, text);
    }
}

/// A SQLite URL split into its path and its query parameters other than `mode`.
fn sqlite_url(rest: &str) -> (String, Vec<String>, Option<String>) {
    let path = rest.trim_start_matches("//");
    let (path, query) = path.split_once('?').map_or((path, ""), |(p, q)| (p, q));
    let mut mode = None;
    let mut params = Vec::new();
    for p in query.split('&').filter(|p| !p.is_empty()) {
        match p.strip_prefix("mode=") {
            Some(m) => mode = Some(m.to_owned()),
            None => params.push(p.to_owned()),
        }
    }
    (path.to_owned(), params, mode)
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// A write transaction ([`Store::write_tx`]) and, on SQLite, the store's write turn, held
/// until it commits, rolls back or is dropped.
///
/// SQLite lets one connection write at a time. Without the turn, a second pooled
/// connection's `BEGIN IMMEDIATE` meets the lock and SQLite's busy handler sleeps and
/// tries again (after 1, 2, 5, 10, … ms), however soon the first commit ends, while the
/// writer that just committed may take the lock again at once. With it the writers queue
/// in the process, first come first served, and the next one begins as soon as the last
/// one committed: a burst of calls completes faster and no writer starves, at the price of
/// some peak intake while calls write beside it (BENCHMARKS.md). Writes from another
/// process (the CLI) still meet the busy handler. Dereferences to the transaction.
pub(crate) struct WriteTx {
    tx: Tx<'static>,
    /// SQLite: the turn, returned when this is dropped; `None` on PostgreSQL, whose writers
    /// do not exclude each other.
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    /// Commits, then gives up the turn.
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    /// Rolls back, then gives up the turn.
    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = Tx<'static>;
    fn deref(&self) -> &Tx<'static> {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Tx<'static> {
        &mut self.tx
    }
}

/// Whether a pooled connection may be used again: outside any transaction, and opened
/// after the last fault (see [`health::Health::recycle`]).
fn reusable(conn: &sqlx::AnyConnection, health: &health::Health, age: std::time::Duration) -> bool {
    use sqlx::Connection;
    if conn.is_in_transaction() {
        tracing::warn!("closing a database connection left inside a failed transaction");
        return false;
    }
    !health.is_stale(age)
}

async fn audit(
    tx: &mut Tx<'_>,
    request_id: i64,
    at: Timestamp,
    from: Option<State>,
    to: State,
    actor: &str,
    detail: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit (request_id, at, from_state, to_state, actor, detail) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(request_id)
    .bind(ms(at))
    .bind(from.map(State::as_str))
    .bind(to.as_str())
    .bind(actor)
    .bind(detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Statements of up to this many rows (one per batch size) are kept prepared on each
/// connection; larger batches, rarer, are prepared each time rather than push the common
/// statements out of the connection's cache.
const CACHED_ROWS: usize = 8;

/// The most rows one multi-row statement writes (a `VALUES` list): its parameters stay far
/// below SQLite's and PostgreSQL's limits.
const ROWS_PER_STATEMENT: usize = 256;

/// The placeholders of a `VALUES` list of `rows` rows of `columns` parameters each, bound
/// row by row: `($1, $2), ($3, $4)` or `(?, ?), (?, ?)` ([`Backend::params`]). Its columns
/// are `column1`, `column2`, … on both backends.
fn values_list(backend: Backend, rows: usize, columns: usize) -> String {
    let row = |r: usize| format!("({})", backend.params(r * columns + 1, columns));
    (0..rows).map(row).collect::<Vec<_>>().join(", ")
}

/// One audit row to write with others ([`audit_all`]).
struct Audit {
    request_id: i64,
    from: Option<State>,
    to: State,
    actor: String,
    detail: String,
}

/// Writes several audit rows at `at`, up to [`ROWS_PER_STATEMENT`] in each statement.
async fn audit_all(
    backend: Backend,
    tx: &mut Tx<'_>,
    rows: &[Audit],
    at: Timestamp,
) -> Result<(), StoreError> {
    let rows: Vec<(Timestamp, &Audit)> = rows.iter().map(|r| (at, r)).collect();
    audit_each(backend, tx, &rows).await
}

/// Writes several audit rows, each at its own instant, up to [`ROWS_PER_STATEMENT`] in
/// each statement.
async fn audit_each(
    backend: Backend,
    tx: &mut Tx<'_>,
    rows: &[(Timestamp, &Audit)],
) -> Result<(), StoreError> {
    // In statements of at most ROWS_PER_STATEMENT rows: a batch of 10,000 ends (`max_calls`'
    // largest) in one would pass SQLite's limit of 32,766 parameters.
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO audit (request_id, at, from_state, to_state, actor, detail) VALUES {}",
            values_list(backend, chunk.len(), 6)
        );
        let mut insert = sqlx::query(&sql).persistent(chunk.len() <= CACHED_ROWS);
        for (at, row) in chunk {
            insert = insert
                .bind(row.request_id)
                .bind(ms(*at))
                .bind(row.from.map(State::as_str))
                .bind(row.to.as_str())
                .bind(&row.actor)
                .bind(&row.detail);
        }
        insert.execute(&mut **tx).await?;
    }
    Ok(())
}

impl Store {
    /// Connects and runs the embedded migrations, then probes whether writes commit (see
    /// [`health`]).
    ///
    /// SQLite: the file is created on the first start only. A `PATH.created` marker is
    /// written beside it; while the marker exists a missing file is an error
    /// ([`StoreError::Missing`]) rather than a new empty queue, unless the URL says
    /// `?mode=rwc`. Pooled connections never create the file (`mode=rw`), so a file removed
    /// while running is noticed, not silently recreated. Every commit is `synchronous =
    /// FULL`: acknowledged means on disk, even after a power cut.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let (backend, url, file) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let (path, params, mode) = sqlite_url(rest);
            let with = |mode: &str| {
                let mut q = params.clone();
                q.push(format!("mode={mode}"));
                format!("sqlite://{path}?{}", q.join("&"))
            };
            let file = std::path::PathBuf::from(&path);
            let url = match mode.as_deref() {
                _ if path == ":memory:" => with("memory"),
                None | Some("rwc") => {
                    if !file.exists() {
                        let marker = marker_of(&file);
                        if mode.is_none() && marker.exists() {
                            return Err(StoreError::Missing {
                                path: file.display().to_string(),
                                marker: marker.display().to_string(),
                            });
                        }
                        let dir = health::dir_of(&file);
                        std::fs::create_dir_all(&dir)
                            .map_err(|e| StoreError::Db(sqlx::Error::Io(e)))?;
                        let mut first = sqlx::AnyConnection::connect(&with("rwc")).await?;
                        sqlx::query("PRAGMA journal_mode = WAL").execute(&mut first).await?;
                        first.close().await?;
                    }
                    write_marker(&file);
                    with("rw")
                }
                Some(other) => with(other),
            };
            let watched = match health::SqliteFile::identity(&file) {
                (Some(f), Some(d)) => Some(health::SqliteFile {
                    path: file,
                    opened: std::sync::Mutex::new(health::Identity { file: f, dir: d }),
                }),
                _ => None,
            };
            (Backend::Sqlite, url, watched)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned(), None)
        } else {
            return Err(StoreError::Url(url.to_owned()));
        };
        let health = std::sync::Arc::new(health::Health::new(file));
        let max = match backend {
            Backend::Sqlite => 4,
            Backend::Postgres => 16,
        };
        let (on_acquire, on_release) = (health.clone(), health.clone());
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            // SQLite: two open connections at all times, so a removed file can be rescued
            // from them (see `health`).
            .min_connections(match backend {
                Backend::Sqlite => 2,
                Backend::Postgres => 0,
            })
            .acquire_timeout(std::time::Duration::from_secs(10))
            // PostgreSQL: a connection the server dropped (a restart, a killed backend) is
            // found by a ping before use, not by a failed write. SQLite's connection is a
            // thread in this process, and its ping only a round trip to it: one per store
            // call, which the call path cannot afford; a fault shows in the statement's own
            // answer, and `before_acquire` retires connections opened before a fault.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers never block the writer. FULL: a commit is on disk
                        // before it returns, so an acknowledged write survives a power cut.
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = FULL",
                            &format!("PRAGMA busy_timeout = {}", BUSY_TIMEOUT.as_millis()),
                            "PRAGMA foreign_keys = ON",
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            // A connection whose COMMIT or ROLLBACK failed (SQLite rolls back by itself on
            // a full disk, so the driver's own ROLLBACK then fails too) keeps a non-zero
            // transaction depth in sqlx, and every later BEGIN on it fails. Such a
            // connection, or one opened before a fault, is closed, never reused.
            .before_acquire(move |conn, meta| {
                let health = on_acquire.clone();
                Box::pin(async move { Ok(reusable(conn, &health, meta.age)) })
            })
            .after_release(move |conn, meta| {
                let health = on_release.clone();
                Box::pin(async move {
                    // SQLite runs a dropped transaction's ROLLBACK on the connection's worker
                    // thread, and counts the depth down only when it has run: a depth of 0
                    // is final, a non-zero one gets a round trip to let a queued ROLLBACK
                    // finish before it is read again. (PostgreSQL counts the depth down
                    // when the ROLLBACK is queued.) Most releases, after a plain query or a
                    // commit, need no round trip.
                    if backend == Backend::Sqlite && conn.is_in_transaction() {
                        conn.ping().await?;
                    }
                    Ok(reusable(conn, &health, meta.age))
                })
            })
            .connect(&url)
            .await?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&pool).await?,
        }
        if backend == Backend::Postgres {
            // Best effort: a read-only server is reported by the probe below.
            let _ = sqlx::query(health::PROBE_TABLE).execute(&pool).await;
        }
        let store = Store {
            pool,
            backend,
            health,
            batcher: intake::Batcher::default(),
            claim_room: std::sync::Arc::default(),
            floor_raised: std::sync::Arc::default(),
            write_turn: std::sync::Arc::default(),
        };
        store.look().await;
        Ok(store)
    }

    /// A write transaction, refused at once while the store cannot keep writes. SQLite
    /// takes the write lock at BEGIN (IMMEDIATE), so a read-then-write transaction waits
    /// for the busy timeout instead of failing when another connection wrote in between.
    /// On SQLite it waits for the write turn first (see [`WriteTx`]).
    pub(crate) async fn write_tx(&self) -> Result<WriteTx, StoreError> {
        self.health.check()?;
        let turn = match self.backend {
            Backend::Sqlite => Some(self.write_turn.clone().lock_owned().await),
            Backend::Postgres => None,
        };
        Ok(WriteTx { tx: self.begin().await?, _turn: turn })
    }

    /// A write transaction without the health check (the probe's).
    pub(crate) async fn begin(&self) -> Result<Tx<'static>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool, flushing SQLite's WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// True when the store takes writes (see [`health`]) and the database answers.
    pub async fn ping(&self) -> bool {
        if self.health.check().is_err() {
            return false;
        }
        let ping = sqlx::query("SELECT 1").fetch_one(&self.pool);
        matches!(tokio::time::timeout(std::time::Duration::from_secs(2), ping).await, Ok(Ok(_)))
    }

    /// Stores a new request with its plan, or returns the live request of the same number
    /// and service (a duplicate). Nothing is stored for a duplicate. Returns once the
    /// request is committed. SQLite: concurrent calls share one transaction and one
    /// commit (group commit, see `intake`).
    pub async fn enqueue(&self, new: &NewRequest, plan: &Plan) -> Result<Enqueued, StoreError> {
        match self.backend {
            Backend::Sqlite => self.enqueue_grouped(new, plan).await,
            Backend::Postgres => self.enqueue_one(new, plan).await,
        }
    }

    /// [`Store::enqueue`] in a transaction of its own.
    async fn enqueue_one(&self, new: &NewRequest, plan: &Plan) -> Result<Enqueued, StoreError> {
        // Insert first: the unique index on live (service, number) says whether it is a
        // duplicate, so a new request costs no extra lookup.
        let admitted =
            crate::policy::lifecycle::intake(plan, &new.channel, new.sms_notice, new.created_at);
        for _ in 0..3 {
            let mut tx = self.write_tx().await?;
            let inserted = intake::insert(&mut tx, new, plan, &admitted).await;
            match inserted {
                Ok(request) => {
                    audit(
                        &mut tx,
                        request.id,
                        new.created_at,
                        None,
                        admitted.to,
                        &admitted.audit.actor,
                        &admitted.audit.detail,
                    )
                    .await?;
                    for intent in &admitted.sms {
                        sms::queue(&mut tx, &request, intent, new.created_at).await?;
                    }
                    tx.commit().await?;
                    return Ok(Enqueued { request, duplicate: false });
                }
                // The number already has a live request in this service (perhaps another
                // intake won the race): return that one.
                Err(e) if is_unique_violation(&e) => {
                    tx.rollback().await?;
                    if let Some(existing) = self.live_for(&new.service, &new.number).await? {
                        return Ok(Enqueued { request: existing, duplicate: true });
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        match self.live_for(&new.service, &new.number).await? {
            Some(existing) => Ok(Enqueued { request: existing, duplicate: true }),
            None => Err(StoreError::Db(sqlx::Error::RowNotFound)),
        }
    }

    async fn live_for(&self, service: &str, number: &E164) -> Result<Option<Request>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM requests \
             WHERE service = $1 AND number = $2 AND state IN {LIVE}"
        ))
        .bind(service)
        .bind(number.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(request_from).transpose()
    }

    /// One request.
    pub async fn request(&self, id: i64) -> Result<Option<Request>, StoreError> {
        let row = sqlx::query(&format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(request_from).transpose()
    }

    /// A request's attempts, oldest first.
    pub async fn attempts(&self, request_id: i64) -> Result<Vec<Attempt>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE request_id = $1 ORDER BY seq"
        ))
        .bind(request_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(attempt_from).collect()
    }

    /// Requests by filter, newest first.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<Request>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM requests \
             WHERE ($1 IS NULL OR service = $1) AND ($2 IS NULL OR state = $2) \
             ORDER BY id DESC LIMIT $3"
        ))
        .bind(filter.service.as_deref())
        .bind(filter.state.map(State::as_str))
        .bind(if filter.limit > 0 { filter.limit } else { 100 })
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(request_from).collect()
    }

    /// The earliest due time among waiting requests of the given services.
    pub async fn next_due(&self, services: &[String]) -> Result<Option<Timestamp>, StoreError> {
        let mut best: Option<Timestamp> = None;
        for service in services {
            let due = self.next_due_of(service).await?;
            best = match (best, due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(best)
    }

    /// The earliest due time among a service's waiting requests (one index lookup).
    pub async fn next_due_of(&self, service: &str) -> Result<Option<Timestamp>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT MIN(due_at) AS due FROM requests WHERE service = $1 AND state IN {WAITING}"
        ))
        .bind(service)
        .fetch_one(&self.pool)
        .await?;
        opt_ts(row.try_get("due")?)
    }

    /// Waiting requests of a service that are due at `now`, in serving order (deadline,
    /// then age).
    pub async fn due(
        &self,
        service: &str,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<Request>, StoreError> {
        let rows = sqlx::query(&format!(
            // `due_at + 0` keeps the planner off the (service, due_at) index: walking the
            // serving-order index and stopping at the first due rows is cheap, while
            // sorting every due row of a long queue is not.
            "SELECT {REQUEST_COLUMNS} FROM requests \
             WHERE service = $1 AND state IN {WAITING} AND due_at + 0 <= $2 \
             ORDER BY {SERVING_ORDER} LIMIT $3"
        ))
        .bind(service)
        .bind(ms(now))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(request_from).collect()
    }

    /// Attempts still live (outcome not recorded), e.g. left by a crash.
    pub async fn live_attempts(&self) -> Result<Vec<Attempt>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE outcome IS NULL ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(attempt_from).collect()
    }

    /// Waiting requests whose expiry has passed, oldest expiry first.
    pub async fn expired_waiting(
        &self,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<Request>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM requests WHERE state IN {WAITING} AND expires_at <= $1 \
             ORDER BY expires_at LIMIT $2"
        ))
        .bind(ms(now))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(request_from).collect()
    }

    /// The earliest expiry among waiting requests.
    pub async fn next_expiry(&self) -> Result<Option<Timestamp>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT MIN(expires_at) AS e FROM requests WHERE state IN {WAITING}"
        ))
        .fetch_one(&self.pool)
        .await?;
        opt_ts(row.try_get("e")?)
    }

    /// The next unflagged deadline among live requests.
    pub async fn next_deadline(&self) -> Result<Option<Timestamp>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT MIN(deadline_at) AS d FROM requests WHERE deadline_missed = 0 AND state IN {LIVE}"
        ))
        .fetch_one(&self.pool)
        .await?;
        opt_ts(row.try_get("d")?)
    }

    /// Requests of the same service served before this one (waiting, earlier in the
    /// serving order: a lexicographic "less than" on deadline, age and id),
    /// counted up to `cap`: the cost stays bounded however long the queue is, and a queue
    /// longer than `cap` is beyond any useful estimate anyway.
    pub async fn ahead_of(&self, req: &Request, cap: i64) -> Result<i64, StoreError> {
        Ok(self.ahead_by_state(req, cap).await?.0)
    }

    /// [`Store::ahead_of`], and how many of those requests wait for a retry
    /// (`retry_wait`), in one query.
    pub async fn ahead_by_state(&self, req: &Request, cap: i64) -> Result<(i64, i64), StoreError> {
        let row = sqlx::query(&format!(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(retrying), 0) AS BIGINT) AS r FROM (SELECT \
             CASE WHEN state = 'retry_wait' THEN 1 ELSE 0 END AS retrying FROM requests \
             WHERE service = $1 \
             AND state IN {WAITING} AND (deadline_at < $2 OR (deadline_at = $2 AND \
             (created_at < $3 OR (created_at = $3 AND id < $4)))) LIMIT $5) AS ahead"
        ))
        .bind(&req.service)
        .bind(ms(req.deadline_at))
        .bind(ms(req.created_at))
        .bind(req.id)
        .bind(cap)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("n")?, row.try_get("r")?))
    }

    /// The serving keys of a service's waiting requests, in serving order: the same set and
    /// order [`Store::ahead_of`] counts in, for a snapshot that answers many places at once
    /// (the number of keys before a request's key is its count of requests ahead).
    pub async fn waiting_order(
        &self,
        service: &str,
    ) -> Result<Vec<crate::policy::lifecycle::ServingKey>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT deadline_at, created_at, id FROM requests WHERE service = $1 \
             AND state IN {WAITING} ORDER BY {SERVING_ORDER}"
        ))
        .bind(service)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::policy::lifecycle::ServingKey {
                    deadline: ts(r.try_get("deadline_at")?)?,
                    created_at: ts(r.try_get("created_at")?)?,
                    id: r.try_get("id")?,
                })
            })
            .collect()
    }

    /// Queue depth per service and live state, from the `queue_depth` rows the triggers
    /// append in each change's own transaction (migration 0011): a sum over a few rows, not
    /// a count of every live request. When the rows have piled up, they are first folded
    /// into one row per service and state, one bounded batch per call (best effort: while
    /// the store refuses writes, the sum is read over the rows as they are).
    pub async fn depth(&self) -> Result<Vec<Depth>, StoreError> {
        if let Some(cut) = self.depth_fold_cut().await? {
            if let Err(e) = self.fold_depth(cut).await {
                tracing::debug!(error = %e, "queue depth rows not folded now");
            }
        }
        let rows = sqlx::query(
            "SELECT service, state, CAST(SUM(n) AS BIGINT) AS n FROM queue_depth \
             GROUP BY service, state HAVING SUM(n) <> 0 ORDER BY service, state",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state")?;
                Ok(Depth {
                    service: r.try_get("service")?,
                    state: state
                        .parse()
                        .map_err(|_| StoreError::Corrupt { what: "state", value: state })?,
                    count: r.try_get("n")?,
                })
            })
            .collect()
    }

    /// Folds the `queue_depth` rows batch by batch until they no longer span
    /// `FOLD_DEPTH_AT` (4,096) ids: a backlog (a queue filled with nothing reading its depth)
    /// is folded in short transactions, other writers taking their turns between them.
    /// The daemon runs it once in the background at start, so start-up does not wait.
    /// Returns the batches folded.
    pub async fn fold_depth_backlog(&self) -> Result<u32, StoreError> {
        let mut batches = 0;
        while let Some(cut) = self.depth_fold_cut().await? {
            self.fold_depth(cut).await?;
            batches += 1;
            tokio::task::yield_now().await;
        }
        Ok(batches)
    }

    /// The last id of the next batch to fold, when the rows span [`FOLD_DEPTH_AT`] ids or
    /// more: at most [`FOLD_BATCH`] ids from the oldest, never past the newest.
    async fn depth_fold_cut(&self) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT MIN(id) AS lo, MAX(id) AS hi FROM queue_depth")
            .fetch_one(&self.pool)
            .await?;
        let (lo, hi): (Option<i64>, Option<i64>) = (row.try_get("lo")?, row.try_get("hi")?);
        Ok(match (lo, hi) {
            (Some(lo), Some(hi)) if hi - lo >= FOLD_DEPTH_AT => {
                Some(lo.saturating_add(FOLD_BATCH - 1).min(hi))
            }
            _ => None,
        })
    }

    /// Replaces the oldest `queue_depth` rows (ids up to `cut`, at most [`FOLD_BATCH`] of
    /// them and none above the largest id read) by their sums, in one short transaction, in SQL: the fold's cost and memory do not grow with
    /// a backlog of rows (a queue filled without reads of its depth), and each call takes
    /// the next batch. Exactly the rows deleted are summed back, so a row appended
    /// meanwhile (another server's change) is kept as it is, and two folds at once never
    /// count a row twice: SQLite's write transaction excludes other writers, and
    /// PostgreSQL sums the rows its `DELETE` returns.
    async fn fold_depth(&self, cut: i64) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        match self.backend {
            Backend::Sqlite => {
                // New rows take ids above every existing one, and `cut` is an id that
                // existed, so the insert cannot meet the delete's range.
                sqlx::query(
                    "INSERT INTO queue_depth (service, state, n) \
                     SELECT service, state, SUM(n) FROM queue_depth WHERE id <= $1 \
                     GROUP BY service, state HAVING SUM(n) <> 0",
                )
                .bind(cut)
                .execute(&mut **tx)
                .await?;
                sqlx::query("DELETE FROM queue_depth WHERE id <= $1")
                    .bind(cut)
                    .execute(&mut **tx)
                    .await?;
            }
            Backend::Postgres => {
                sqlx::query(
                    "WITH gone AS (DELETE FROM queue_depth WHERE id <= $1 \
                     RETURNING service, state, n) \
                     INSERT INTO queue_depth (service, state, n) \
                     SELECT service, state, SUM(n) FROM gone \
                     GROUP BY service, state HAVING SUM(n) <> 0",
                )
                .bind(cut)
                .execute(&mut **tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Connected callbacks of a service since `since`: the recent service rate for ETAs.
    pub async fn connected_since(
        &self,
        service: &str,
        since: Timestamp,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM requests WHERE service = $1 AND state = 'connected' AND final_at >= $2",
        )
        .bind(service)
        .bind(ms(since))
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// Queued SMS messages, oldest first.
    pub async fn outbox(&self, request_id: Option<i64>) -> Result<Vec<OutboxMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, request_id, kind, lang, not_before, state FROM outbox \
             WHERE ($1 IS NULL OR request_id = $1) ORDER BY id",
        )
        .bind(request_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let lang: String = r.try_get("lang")?;
                Ok(OutboxMessage {
                    id: r.try_get("id")?,
                    request_id: r.try_get("request_id")?,
                    kind: r.try_get("kind")?,
                    lang: lang
                        .parse()
                        .map_err(|_| StoreError::Corrupt { what: "lang", value: lang })?,
                    not_before: ts(r.try_get("not_before")?)?,
                    state: r.try_get("state")?,
                })
            })
            .collect()
    }

    /// The audit trail of a request: (at, from, to, actor, detail).
    pub async fn audit_trail(
        &self,
        request_id: i64,
    ) -> Result<Vec<(Timestamp, Option<String>, String, String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, from_state, to_state, actor, detail FROM audit WHERE request_id = $1 ORDER BY id",
        )
        .bind(request_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    ts(r.try_get("at")?)?,
                    r.try_get("from_state")?,
                    r.try_get("to_state")?,
                    r.try_get("actor")?,
                    r.try_get::<Option<String>, _>("detail")?.unwrap_or_default(),
                ))
            })
            .collect()
    }

    /// Erases the phone numbers of requests that ended before `cutoff` (retention).
    pub async fn erase_numbers(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE requests SET number = NULL WHERE number IS NOT NULL AND final_at IS NOT NULL \
             AND final_at < $1",
        )
        .bind(ms(cutoff))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_numbered_for_each_backend() {
        assert_eq!(values_list(Backend::Sqlite, 2, 2), "(?, ?), (?, ?)");
        assert_eq!(values_list(Backend::Postgres, 2, 2), "($1, $2), ($3, $4)");
        assert_eq!(Backend::Sqlite.params(3, 2), "?, ?");
        assert_eq!(Backend::Postgres.params(12, 2), "$12, $13");
        assert_eq!(Backend::Postgres.param(7), "$7");
    }

    /// A second write transaction of the process waits for the first to end, however
    /// long (not SQLite's busy timeout, after which it would fail with "database is
    /// locked"), and then commits.
    #[tokio::test]
    async fn sqlite_writers_take_turns_beyond_the_busy_timeout() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite:{}", dir.path().join("queue.db").display());
        let store = Store::open(&url).await.expect("open store");
        let mut first = store.write_tx().await.expect("first writer");
        sqlx::query("UPDATE store_probe SET at = 1 WHERE id = 1")
            .execute(&mut **first)
            .await
            .expect("first write");
        let second = tokio::spawn({
            let store = store.clone();
            async move {
                let mut tx = store.write_tx().await?;
                sqlx::query("UPDATE store_probe SET at = 2 WHERE id = 1")
                    .execute(&mut **tx)
                    .await?;
                tx.commit().await?;
                Ok::<(), StoreError>(())
            }
        });
        tokio::time::sleep(BUSY_TIMEOUT + std::time::Duration::from_secs(1)).await;
        assert!(!second.is_finished(), "the second writer did not wait for its turn");
        first.commit().await.expect("first commit");
        second.await.expect("second writer's task").expect("second writer");
        let at: i64 = sqlx::query_scalar("SELECT at FROM store_probe WHERE id = 1")
            .fetch_one(&store.pool)
            .await
            .expect("read");
        assert_eq!(at, 2, "the second write follows the first");
    }
}

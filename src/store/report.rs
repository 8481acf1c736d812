//! The report's read of the store: read-only, safe while the daemon runs.
//!
//! One connection, one read-only transaction, so the three reads see one snapshot: SQLite
//! opened with `mode=ro` and `PRAGMA query_only` (a WAL reader never blocks the daemon's
//! writer), PostgreSQL in a `REPEATABLE READ, READ ONLY` transaction. No migration is run
//! and nothing is written. Only the columns a report needs are read, never a number; rows
//! are streamed into [`History`].

use super::{Backend, StoreError, opt_ts, sqlite_url, ts};
use crate::policy::Outcome;
use crate::report::{AttemptRow, History, RequestRow, SmsRow};
use futures_util::TryStreamExt;
use jiff::Timestamp;
use sqlx::{AnyConnection, Connection, Row};

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

/// Reads the requests made in `from..to` by `services`, with their attempts and sent SMS.
pub async fn history(
    url: &str,
    services: &[String],
    from: Timestamp,
    to: Timestamp,
) -> Result<History, StoreError> {
    sqlx::any::install_default_drivers();
    let (backend, url) = if let Some(rest) = url.strip_prefix("sqlite:") {
        let (path, mut params, _) = sqlite_url(rest);
        if path != ":memory:" && !std::path::Path::new(&path).exists() {
            return Err(StoreError::Db(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("database file {path} does not exist"),
            ))));
        }
        params.push("mode=ro".to_owned());
        (Backend::Sqlite, format!("sqlite://{path}?{}", params.join("&")))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        (Backend::Postgres, url.to_owned())
    } else {
        return Err(StoreError::Url(url.to_owned()));
    };
    let mut conn = AnyConnection::connect(&url).await?;
    if backend == Backend::Sqlite {
        sqlx::query("PRAGMA query_only = 1").execute(&mut conn).await?;
        let busy = format!("PRAGMA busy_timeout = {}", super::BUSY_TIMEOUT.as_millis());
        sqlx::query(&busy).execute(&mut conn).await?;
    }
    let mut tx = conn.begin().await?;
    if backend == Backend::Postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
    }
    let h = read(&mut tx, services, from, to).await?;
    tx.rollback().await?;
    conn.close().await?;
    Ok(h)
}

/// The three reads of [`history`], inside the caller's transaction.
async fn read(
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
    /// [`history`] through the daemon's pool (one transaction, one snapshot).
    pub async fn history(
        &self,
        services: &[String],
        from: Timestamp,
        to: Timestamp,
    ) -> Result<History, StoreError> {
        let mut tx = self.pool.begin().await?;
        let h = read(&mut tx, services, from, to).await?;
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

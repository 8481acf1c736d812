//! The SMS outbox: rows queued inside the transactions of the state changes that cause
//! them, and the queries of the sender task and the opt-out list.
//!
//! Outbox row states:
//!
//! ```text
//!  queued ──try accepted──► sent
//!    │ ▲
//!    │ └─ retryable failure (not_before = now + backoff) / quiet hours (postponed)
//!    ├──► failed   (tries exhausted, refused by the gateway, too old)
//!    └──► skipped  (fixed line, no consent, opted out, service sends none …)
//! ```

use super::{Request, Store, StoreError, Tx, ms, ts};
use crate::lang::Lang;
use crate::number::E164;
use crate::policy::lifecycle::{SmsFacts, SmsFate, SmsIntent, sms_fate};
use crate::sms::template::Kind;
use jiff::Timestamp;
use sqlx::Row;
use sqlx::any::AnyRow;

/// An outbox row as the sender sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Id; with the configured prefix, the gateway's client reference.
    pub id: i64,
    /// The request.
    pub request_id: i64,
    /// What kind of message.
    pub kind: Kind,
    /// Language.
    pub lang: Lang,
    /// Queued at.
    pub created_at: Timestamp,
    /// Not sent before.
    pub not_before: Timestamp,
    /// `queued`, `sent`, `failed` or `skipped`.
    pub state: String,
    /// Tries so far (counted before each try is made).
    pub tries: i64,
    /// When the gateway accepted it.
    pub sent_at: Option<Timestamp>,
    /// Why it was skipped or failed.
    pub reason: Option<String>,
}

const COLUMNS: &str =
    "id, request_id, kind, lang, created_at, not_before, state, tries, sent_at, reason";

fn row_from(r: &AnyRow) -> Result<OutboxRow, StoreError> {
    let kind: String = r.try_get("kind")?;
    let lang: String = r.try_get("lang")?;
    let sent_at: Option<i64> = r.try_get("sent_at")?;
    Ok(OutboxRow {
        id: r.try_get("id")?,
        request_id: r.try_get("request_id")?,
        kind: Kind::parse(&kind).ok_or(StoreError::Corrupt { what: "outbox kind", value: kind })?,
        lang: lang.parse().map_err(|_| StoreError::Corrupt { what: "lang", value: lang })?,
        created_at: ts(r.try_get("created_at")?)?,
        not_before: ts(r.try_get("not_before")?)?,
        state: r.try_get("state")?,
        tries: r.try_get("tries")?,
        sent_at: sent_at.map(ts).transpose()?,
        reason: r.try_get("reason")?,
    })
}

/// Writes the outbox row of one SMS intent for `req` inside `tx`: reads what the decision
/// needs (an existing row, the opt-out list, a recent survey) and writes what
/// [`sms_fate`] decides — a `queued` row, a `skipped` row with the reason, or nothing.
pub(super) async fn queue(
    tx: &mut Tx<'_>,
    req: &Request,
    intent: &SmsIntent,
    now: Timestamp,
) -> Result<(), StoreError> {
    let dedup = format!("{}:{}", req.id, intent.key);
    let exists = sqlx::query("SELECT id FROM outbox WHERE dedup_key = $1")
        .bind(&dedup)
        .fetch_optional(&mut **tx)
        .await?
        .is_some();
    let (mut opted_out, mut surveyed_recently) = (false, false);
    if let (Kind::Feedback, Some(n), false) = (intent.kind, &req.number, exists) {
        opted_out = sqlx::query("SELECT 1 AS x FROM sms_optout WHERE number = $1")
            .bind(n.as_str())
            .fetch_optional(&mut **tx)
            .await?
            .is_some();
        if let Some(period) = intent.once_per {
            let since = intent.not_before.checked_sub(period).unwrap_or(intent.not_before);
            surveyed_recently = sqlx::query(
                "SELECT o.id FROM outbox o JOIN requests r ON r.id = o.request_id \
                 WHERE o.kind = 'feedback' AND o.state IN ('queued', 'sent') AND r.number = $1 \
                 AND o.not_before > $2 AND r.id <> $3",
            )
            .bind(n.as_str())
            .bind(ms(since))
            .bind(req.id)
            .fetch_optional(&mut **tx)
            .await?
            .is_some();
        }
    }
    let facts = SmsFacts {
        number: req.number.as_ref(),
        consent: req.sms_consent,
        exists,
        opted_out,
        surveyed_recently,
    };
    let Some((state, reason)) = outbox_state(intent, &facts) else { return Ok(()) };
    sqlx::query(
        "INSERT INTO outbox (request_id, kind, dedup_key, lang, created_at, not_before, state, reason) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(req.id)
    .bind(intent.kind.as_str())
    .bind(&dedup)
    .bind(req.lang.code())
    .bind(ms(now))
    .bind(ms(intent.not_before))
    .bind(state)
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The outbox row's state and reason that [`sms_fate`] decides, or `None`: no row.
fn outbox_state(
    intent: &SmsIntent,
    facts: &SmsFacts<'_>,
) -> Option<(&'static str, Option<&'static str>)> {
    match sms_fate(intent, facts) {
        SmsFate::Drop => None,
        SmsFate::Queue => Some(("queued", None)),
        SmsFate::Skip(why) => Some(("skipped", Some(why))),
    }
}

/// [`queue`] for several SMS intents at once (each with its request and the instant it
/// is queued at), as writing them one after the other would: one read of the outbox rows
/// already there and one write, each in statements of at most
/// [`super::ROWS_PER_STATEMENT`] rows, where [`queue`] makes two round trips per intent.
/// Surveys, whose decision also reads the opt-out list and earlier surveys, go through
/// [`queue`] one by one.
pub(super) async fn queue_all(
    backend: super::Backend,
    tx: &mut Tx<'_>,
    items: &[(&Request, &SmsIntent, Timestamp)],
) -> Result<(), StoreError> {
    let (surveys, rest): (Vec<_>, Vec<_>) =
        items.iter().partition(|(_, intent, _)| intent.kind == Kind::Feedback);
    for (req, intent, now) in surveys {
        queue(tx, req, intent, now).await?;
    }
    let keys: Vec<String> =
        rest.iter().map(|(req, intent, _)| format!("{}:{}", req.id, intent.key)).collect();
    let mut exists = std::collections::HashSet::new();
    for chunk in keys.chunks(super::ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT dedup_key FROM outbox WHERE dedup_key IN ({})",
            backend.params(1, chunk.len())
        );
        let mut read = sqlx::query(&sql).persistent(chunk.len() <= super::CACHED_ROWS);
        for key in chunk {
            read = read.bind(key);
        }
        for row in read.fetch_all(&mut **tx).await? {
            exists.insert(row.try_get::<String, _>(0)?);
        }
    }
    let mut rows = Vec::with_capacity(rest.len());
    for ((req, intent, now), key) in rest.into_iter().zip(keys) {
        let facts = SmsFacts {
            number: req.number.as_ref(),
            consent: req.sms_consent,
            exists: exists.contains(&key),
            opted_out: false,
            surveyed_recently: false,
        };
        let Some((state, reason)) = outbox_state(intent, &facts) else { continue };
        // A second intent of the same key meets this one, as it would the written row.
        exists.insert(key.clone());
        rows.push((req, intent, now, key, state, reason));
    }
    for chunk in rows.chunks(super::ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO outbox (request_id, kind, dedup_key, lang, created_at, not_before, \
             state, reason) VALUES {}",
            super::values_list(backend, chunk.len(), 8)
        );
        let mut insert = sqlx::query(&sql).persistent(chunk.len() <= super::CACHED_ROWS);
        for (req, intent, now, key, state, reason) in chunk {
            insert = insert
                .bind(req.id)
                .bind(intent.kind.as_str())
                .bind(key)
                .bind(req.lang.code())
                .bind(ms(*now))
                .bind(ms(intent.not_before))
                .bind(*state)
                .bind(*reason);
        }
        insert.execute(&mut **tx).await?;
    }
    Ok(())
}

impl Store {
    /// Records the end of the window a sent notice told the patient.
    pub async fn sms_told(&self, id: i64, told_to: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET told_to = $2 WHERE id = $1")
            .bind(id)
            .bind(ms(told_to))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// For every waiting request of `service` whose last notice promised a window that ended
    /// at or before `promised_by` (now minus the service's `notice_slip`), queues a new notice
    /// (with the window of that moment) in one transaction with forgetting the old promise.
    /// Returns how many were queued.
    pub async fn sms_queue_slipped(
        &self,
        service: &str,
        promised_by: Timestamp,
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let mut tx = self.write_tx().await?;
        let rows = sqlx::query(
            "SELECT o.id AS outbox_id, o.request_id AS request_id FROM outbox o \
             JOIN requests r ON r.id = o.request_id \
             WHERE o.told_to IS NOT NULL AND o.told_to <= $1 AND o.kind = 'notice' \
             AND r.service = $2 AND r.state IN ('pending','retry_wait') LIMIT 100",
        )
        .bind(ms(promised_by))
        .bind(service)
        .fetch_all(&mut **tx)
        .await?;
        let mut queued = 0;
        for row in &rows {
            let outbox_id: i64 = row.try_get("outbox_id")?;
            let request_id: i64 = row.try_get("request_id")?;
            let r = sqlx::query(&format!(
                "SELECT {} FROM requests WHERE id = $1",
                super::REQUEST_COLUMNS
            ))
            .bind(request_id)
            .fetch_one(&mut **tx)
            .await?;
            let req = super::request_from(&r)?;
            let intent = SmsIntent {
                kind: Kind::Notice,
                key: format!("notice-after-{outbox_id}"),
                not_before: now,
                once_per: None,
            };
            queue(&mut tx, &req, &intent, now).await?;
            sqlx::query("UPDATE outbox SET told_to = NULL WHERE id = $1")
                .bind(outbox_id)
                .execute(&mut **tx)
                .await?;
            queued += 1;
        }
        tx.commit().await?;
        Ok(queued)
    }

    /// Queued messages due at `now`, oldest due first.
    pub async fn sms_due(&self, now: Timestamp, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM outbox WHERE state = 'queued' AND not_before <= $1 \
             ORDER BY not_before, id LIMIT $2"
        ))
        .bind(ms(now))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_from).collect()
    }

    /// The earliest due time of a queued message.
    pub async fn sms_next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        let row = sqlx::query("SELECT MIN(not_before) AS t FROM outbox WHERE state = 'queued'")
            .fetch_one(&self.pool)
            .await?;
        let t: Option<i64> = row.try_get("t")?;
        t.map(ts).transpose()
    }

    /// Queued messages (the backlog).
    pub async fn sms_backlog(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE state = 'queued'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Every outbox row of a request (or all), oldest first.
    pub async fn sms_rows(&self, request_id: Option<i64>) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM outbox WHERE ($1 IS NULL OR request_id = $1) ORDER BY id"
        ))
        .bind(request_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_from).collect()
    }

    /// Takes a due message for one try, before the try is made: counts the try and holds
    /// the row until `lease` (so another sender leaves it alone; after a crash it is tried
    /// again then, with the same reference). False when another sender took it first.
    pub async fn sms_claim(&self, row: &OutboxRow, lease: Timestamp) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE outbox SET tries = tries + 1, not_before = $3 \
             WHERE id = $1 AND state = 'queued' AND tries = $2",
        )
        .bind(row.id)
        .bind(row.tries)
        .bind(ms(lease))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The gateway accepted the message.
    pub async fn sms_sent(&self, id: i64, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET state = 'sent', sent_at = $2, reason = NULL WHERE id = $1")
            .bind(id)
            .bind(ms(now))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Tries again at `at` (after a failed try, or when quiet hours end).
    pub async fn sms_later(
        &self,
        id: i64,
        at: Timestamp,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET not_before = $2, reason = $3 WHERE id = $1 AND state = 'queued'",
        )
        .bind(id)
        .bind(ms(at))
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends a message unsent: `failed` or `skipped`, with the reason.
    pub async fn sms_end(&self, id: i64, failed: bool, reason: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET state = $2, reason = $3 WHERE id = $1 AND state = 'queued'")
            .bind(id)
            .bind(if failed { "failed" } else { "skipped" })
            .bind(reason)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Adds a number to the survey opt-out list; false when it was already there.
    pub async fn sms_optout(
        &self,
        number: &E164,
        channel: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let exists = sqlx::query("SELECT 1 AS x FROM sms_optout WHERE number = $1")
            .bind(number.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        if exists.is_some() {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("INSERT INTO sms_optout (number, created_at, channel) VALUES ($1, $2, $3)")
            .bind(number.as_str())
            .bind(ms(now))
            .bind(channel)
            .execute(&mut **tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes a number from the opt-out list; false when it was not there.
    pub async fn sms_optin(&self, number: &E164) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM sms_optout WHERE number = $1")
            .bind(number.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// True when the number opted out of surveys.
    pub async fn sms_opted_out(&self, number: &E164) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 AS x FROM sms_optout WHERE number = $1")
            .bind(number.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }
}

//! The window last told to a patient (`requests.told_*`, written only through
//! [`crate::eta::tell`]) and the waiting plans in serving order for the at-risk forecast.

use super::{SERVING_ORDER, Store, StoreError, WAITING, ms, opt_ts, ts, window_from};
use crate::policy::Plan;
use crate::policy::risk::Waiting;
use jiff::Timestamp;
use sqlx::Row;
use sqlx::any::AnyRow;

/// The window a patient was told, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Told {
    /// Not before.
    pub from: Timestamp,
    /// Not after.
    pub to: Timestamp,
    /// When it was told.
    pub at: Timestamp,
    /// Whether the patient was told the callback comes on the deadline day.
    pub same_day: bool,
}

/// The told window of a row with the `told_*` columns (`None` when none was told).
pub(super) fn told_from(row: &AnyRow) -> Result<Option<Told>, StoreError> {
    let from = opt_ts(row.try_get("told_from")?)?;
    let to = opt_ts(row.try_get("told_to")?)?;
    let at = opt_ts(row.try_get("told_at")?)?;
    let same_day: Option<i64> = row.try_get("told_same_day")?;
    Ok(match (from, to, at) {
        (Some(from), Some(to), Some(at)) => {
            Some(Told { from, to, at, same_day: same_day.unwrap_or(1) != 0 })
        }
        _ => None,
    })
}

impl Store {
    /// The window last told to the patient of request `id`, if any.
    pub async fn told(&self, id: i64) -> Result<Option<Told>, StoreError> {
        let row = sqlx::query(
            "SELECT told_from, told_to, told_at, told_same_day FROM requests WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        told_from(&row)
    }

    /// Records the window told to the patient of request `id`.
    pub async fn record_told(&self, id: i64, told: &Told) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE requests SET told_from = $2, told_to = $3, told_at = $4, told_same_day = $5 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(ms(told.from))
        .bind(ms(told.to))
        .bind(ms(told.at))
        .bind(i64::from(told.same_day))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The plans of the first `limit` waiting requests of a service in serving order
    /// (deadline, then age): the queue [`crate::policy::risk`] walks. Only the columns a
    /// plan needs are read, so a forecast over thousands of requests stays cheap.
    pub async fn waiting_plans(
        &self,
        service: &str,
        limit: i64,
    ) -> Result<Vec<Waiting>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT due_at, deadline_at, expires_at, attempts_counted, window_start, window_end \
             FROM requests WHERE service = $1 AND state IN {WAITING} \
             ORDER BY {SERVING_ORDER} LIMIT $2"
        ))
        .bind(service)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            // A waiting request always has a due time; a row without one is not planned.
            let Some(due) = opt_ts(r.try_get("due_at")?)? else { continue };
            let counted: i64 = r.try_get("attempts_counted")?;
            let plan = Plan {
                due,
                deadline: ts(r.try_get("deadline_at")?)?,
                expires: ts(r.try_get("expires_at")?)?,
                counted: u8::try_from(counted).unwrap_or(u8::MAX),
            };
            out.push(Waiting { plan, window: window_from(r)? });
        }
        Ok(out)
    }
}

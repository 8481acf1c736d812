//! The ETA a waiting patient is told, read from the store in one place: the HTTP API
//! (intake, `GET /v1/callbacks/{id}`, `/v1/services`) and the SMS notice both ask here.
//!
//! The store reads are the request's place in the queue (counted up to [`AHEAD_CAP`]) and
//! the service's recent rate; the walk through the opening hours is the pure
//! [`policy::eta`].

use crate::dialplan::Service;
use crate::policy::{self, Eta, Plan};
use crate::store::{Request, Store, StoreError};
use jiff::{SignedDuration, Timestamp};

/// Requests ahead beyond which no ETA is given (and a place reads as this many).
pub const AHEAD_CAP: i64 = 5000;

/// Calls per hour the service has recently managed (last two hours), or, with no history
/// yet, six per line of capacity (ten minutes a call).
pub async fn rate(store: &Store, service: &Service, now: Timestamp) -> Result<f64, StoreError> {
    let since = now.checked_sub(SignedDuration::from_hours(2)).unwrap_or(now);
    let done = store.connected_since(&service.id, since).await?;
    Ok(if done > 0 { done as f64 / 2.0 } else { f64::from(service.capacity) * 6.0 })
}

/// Waiting requests served before `req`, counted up to [`AHEAD_CAP`].
pub async fn ahead(store: &Store, req: &Request) -> Result<i64, StoreError> {
    store.ahead_of(req, AHEAD_CAP).await
}

/// A waiting request's place (1 = next) and ETA, read from the store now.
pub async fn of_waiting(
    store: &Store,
    service: &Service,
    req: &Request,
    now: Timestamp,
) -> Result<(i64, Option<Eta>), StoreError> {
    let ahead = ahead(store, req).await?;
    if ahead >= AHEAD_CAP || req.due_at.is_none() {
        return Ok((ahead + 1, None));
    }
    let rate = rate(store, service, now).await?;
    Ok((ahead + 1, at_rate(service, req, ahead, rate, now)))
}

/// The ETA of a waiting request with `ahead` requests before it at a known rate (calls
/// per hour); `None` when it is not waiting for a due time or too many are ahead.
pub fn at_rate(
    service: &Service,
    req: &Request,
    ahead: i64,
    rate: f64,
    now: Timestamp,
) -> Option<Eta> {
    let due = req.due_at?;
    let plan = Plan {
        due,
        deadline: req.deadline_at,
        expires: req.expires_at,
        counted: u8::try_from(req.attempts_counted).unwrap_or(u8::MAX),
    };
    let ahead = u32::try_from(ahead).ok().filter(|a| i64::from(*a) < AHEAD_CAP)?;
    policy::eta(&service.calendar, &service.attempts, req.window, &plan, now, ahead, rate)
}

//! The ETA a waiting patient is told, read from the store in one place: the HTTP API
//! (intake, `GET /v1/callbacks/{id}`, `/v1/services`) and the SMS notice both ask here.
//!
//! The store reads are the request's place in the queue (counted up to [`AHEAD_CAP`]) and
//! the service's recent rate; the walk through the opening hours is the pure
//! [`policy::eta`].
//!
//! One window is told everywhere: [`tell`] records the window it tells
//! (`requests.told_from`, `told_to`, `told_at`, `told_same_day`) and tells the recorded
//! window again until it [`slipped`], so the intake answer, the notice SMS sent seconds
//! later, a later `GET`, the IVR and the patient page all say the same.

use crate::dialplan::Service;
use crate::policy::{self, Ahead, Eta, Plan};
use crate::store::{Request, Store, StoreError, Told};
use jiff::{SignedDuration, Timestamp};

/// Requests ahead beyond which no ETA is given (and a place reads as this many).
pub const AHEAD_CAP: i64 = 5000;

/// Calls per hour the service has recently managed (last two hours), and at least six
/// per line of capacity (ten minutes a call): [`rate_of`].
pub async fn rate(store: &Store, service: &Service, now: Timestamp) -> Result<f64, StoreError> {
    let since = now.checked_sub(SignedDuration::from_hours(2)).unwrap_or(now);
    let done = store.connected_since(&service.id, since).await?;
    Ok(rate_of(done, service.capacity))
}

/// The rate from `done` connected callbacks in the last two hours and the service's
/// `capacity` (pure; the simulator uses it too): the recent rate, but never less than six
/// calls an hour per line. A queue that is not saturated connects only as many as
/// arrive, which says little about how fast it can serve the next one.
pub fn rate_of(done: i64, capacity: u32) -> f64 {
    (done as f64 / 2.0).max(f64::from(capacity) * 6.0)
}

/// Waiting requests served before `req` (counted up to [`AHEAD_CAP`]), and how many of
/// them wait for a retry.
pub async fn ahead(store: &Store, req: &Request) -> Result<Ahead, StoreError> {
    let (all, retrying) = store.ahead_by_state(req, AHEAD_CAP).await?;
    Ok(ahead_of_counts(all, retrying))
}

/// [`Ahead`] from store counts (`all` capped at [`AHEAD_CAP`]).
pub fn ahead_of_counts(all: i64, retrying: i64) -> Ahead {
    let n = |v: i64| u32::try_from(v.clamp(0, AHEAD_CAP)).unwrap_or(0);
    Ahead { all: n(all), retrying: n(retrying.min(all)) }
}

/// A waiting request's place (1 = next) and ETA, read from the store now.
pub async fn of_waiting(
    store: &Store,
    service: &Service,
    req: &Request,
    now: Timestamp,
) -> Result<(i64, Option<Eta>), StoreError> {
    let ahead = ahead(store, req).await?;
    let place = i64::from(ahead.all) + 1;
    if i64::from(ahead.all) >= AHEAD_CAP || req.due_at.is_none() {
        return Ok((place, None));
    }
    let rate = rate(store, service, now).await?;
    Ok((place, at_rate(service, req, ahead, rate, now)))
}

/// The ETA of a waiting request with `ahead` requests before it at a known rate (calls
/// per hour); `None` when it is not waiting for a due time or too many are ahead.
pub fn at_rate(
    service: &Service,
    req: &Request,
    ahead: Ahead,
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
    at_intake(service, req.window, &plan, ahead, rate, now).eta
}

/// What a patient is told about a waiting request: the one answer the API, the notice
/// SMS, the IVR and the patient page give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The request's place in the queue (1 = next; capped at [`AHEAD_CAP`] + 1).
    pub place: i64,
    /// The window told, if one can be given.
    pub eta: Option<Eta>,
    /// Whether the callback is expected before the request's same-day deadline; `false`
    /// tells the patient honestly that it comes on a later day (the window says when).
    pub same_day: bool,
}

/// Whether a window told earlier must be replaced by `fresh`: the told window is over, or
/// the fresh estimate starts at or after its end (it really slipped). Otherwise the told
/// window is told again, so a patient hears one window however often and wherever they
/// ask; an estimate that moved earlier does not change what was told (the scheduler may
/// call sooner, which no patient holds against it).
pub fn slipped(told: &Told, fresh: Option<Eta>, now: Timestamp) -> bool {
    if told.to <= now {
        return true;
    }
    match fresh {
        None => false,
        Some(f) => f.from >= told.to,
    }
}

/// Whether a window lies before the request's same-day deadline.
pub fn is_same_day(req: &Request, eta: Option<Eta>) -> bool {
    eta.is_some_and(|e| e.from < req.deadline_at)
}

/// Tells the ETA of a waiting request: the window recorded when it was last told, unless
/// it [`slipped`]; then the fresh estimate, which is recorded (`requests.told_*`) before
/// it is returned. Every place that tells a patient a window asks here.
pub async fn tell(
    store: &Store,
    service: &Service,
    req: &Request,
    now: Timestamp,
) -> Result<Answer, StoreError> {
    let ahead = ahead(store, req).await?;
    let rate = rate(store, service, now).await?;
    tell_at(store, service, req, ahead, rate, now).await
}

/// [`tell`] with the place and rate already read (intake uses its cached queue depth, so
/// its cost does not grow with the queue).
pub async fn tell_at(
    store: &Store,
    service: &Service,
    req: &Request,
    ahead: Ahead,
    rate: f64,
    now: Timestamp,
) -> Result<Answer, StoreError> {
    let place = i64::from(ahead.all).min(AHEAD_CAP) + 1;
    let fresh = at_rate(service, req, ahead, rate, now);
    if let Some(told) = store.told(req.id).await? {
        if !slipped(&told, fresh, now) {
            let eta = Some(Eta { from: told.from, to: told.to });
            return Ok(Answer { place, eta, same_day: told.same_day });
        }
    }
    let same_day = is_same_day(req, fresh);
    if let Some(e) = fresh {
        store.record_told(req.id, &Told { from: e.from, to: e.to, at: now, same_day }).await?;
    }
    Ok(Answer { place, eta: fresh, same_day })
}

/// What intake tells a request before it is written: its place behind `ahead` waiting
/// requests and the window at `rate` (`None` when too many are ahead or no opening is
/// left), from the request's plan (pure). The window goes into the request's row with it
/// ([`crate::store::NewRequest::told`] through [`Answer::told`]), so an intake commits
/// once; what [`tell`] says later starts from it, as from any recorded window.
pub fn at_intake(
    service: &Service,
    window: Option<crate::calendar::DayRange>,
    plan: &Plan,
    ahead: Ahead,
    rate: f64,
    now: Timestamp,
) -> Answer {
    let place = i64::from(ahead.all).min(AHEAD_CAP) + 1;
    let eta = if i64::from(ahead.all) >= AHEAD_CAP {
        None
    } else {
        policy::eta(&service.calendar, &service.attempts, window, plan, now, ahead, rate)
    };
    Answer { place, eta, same_day: eta.is_some_and(|e| e.from < plan.deadline) }
}

impl Answer {
    /// The window this answer tells, as recorded at `now` (`None` when it tells none).
    pub fn told(&self, now: Timestamp) -> Option<Told> {
        self.eta.map(|e| Told { from: e.from, to: e.to, at: now, same_day: self.same_day })
    }
}

/// The at-risk forecast of a service's queue ([`policy::risk`]): its first [`AHEAD_CAP`]
/// waiting requests in serving order at the recent rate.
pub async fn risk(
    store: &Store,
    service: &Service,
    now: Timestamp,
) -> Result<policy::risk::Summary, StoreError> {
    let queue = store.waiting_plans(&service.id, AHEAD_CAP).await?;
    let rate = rate(store, service, now).await?;
    Ok(policy::risk::assess(&service.calendar, &service.attempts, &queue, rate, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().expect("instant")
    }

    fn told(from: &str, to: &str) -> Told {
        Told { from: t(from), to: t(to), at: t("2026-12-07T08:00:00Z"), same_day: true }
    }

    fn eta(from: &str, to: &str) -> Option<Eta> {
        Some(Eta { from: t(from), to: t(to) })
    }

    #[test]
    fn an_overlapping_estimate_keeps_the_told_window() {
        let w = told("2026-12-07T10:00:00Z", "2026-12-07T10:45:00Z");
        let now = t("2026-12-07T08:00:03Z");
        assert!(!slipped(&w, eta("2026-12-07T10:00:00Z", "2026-12-07T10:30:00Z"), now));
        assert!(!slipped(&w, eta("2026-12-07T10:30:00Z", "2026-12-07T11:15:00Z"), now));
        assert!(!slipped(&w, None, now), "no estimate now: the told window stands");
    }

    #[test]
    fn a_window_that_moved_past_or_is_over_is_told_anew() {
        let w = told("2026-12-07T10:00:00Z", "2026-12-07T10:45:00Z");
        let now = t("2026-12-07T08:00:00Z");
        assert!(slipped(&w, eta("2026-12-07T10:45:00Z", "2026-12-07T11:30:00Z"), now));
        assert!(!slipped(&w, eta("2026-12-07T08:00:00Z", "2026-12-07T09:00:00Z"), now), "sooner");
        assert!(slipped(&w, None, t("2026-12-07T10:45:00Z")), "the told window is over");
    }

    fn kallio() -> Service {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplans/kallio.toml");
        let src = std::fs::read_to_string(&path).expect("the example dialplan");
        let all = crate::dialplan::parse_all(&[(path, src)]).expect("valid");
        all.get("kallio").expect("kallio").clone()
    }

    #[test]
    fn intake_tells_the_window_of_its_plan_and_none_beyond_the_cap() {
        let svc = kallio();
        // Monday 09:00 in Helsinki.
        let now = t("2026-12-07T07:00:00Z");
        let facts = policy::RequestFacts { created_at: now, window: None, attempts: &[] };
        let policy::Decision::Dial(plan) = policy::decide(&svc.calendar, &svc.attempts, &facts)
        else {
            panic!("a request made in opening hours is dialled");
        };
        let ahead = ahead_of_counts(10, 0);
        let a = at_intake(&svc, None, &plan, ahead, 20.0, now);
        assert_eq!(a.place, 11);
        let e = a.eta.expect("a window within opening hours");
        assert_eq!(a.eta, policy::eta(&svc.calendar, &svc.attempts, None, &plan, now, ahead, 20.0));
        assert!(a.same_day, "ten ahead at 20 an hour fit before the close: {e:?}");
        assert_eq!(a.told(now), Some(Told { from: e.from, to: e.to, at: now, same_day: true }));
        let full = at_intake(&svc, None, &plan, ahead_of_counts(AHEAD_CAP, 0), 20.0, now);
        assert_eq!((full.place, full.eta, full.told(now)), (AHEAD_CAP + 1, None, None));
    }
}

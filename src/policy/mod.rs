//! The callback policy: when a request is next dialled, whether an attempt may start now,
//! when the request expires, its same-day deadline, and the patient's expected time.
//!
//! Pure: every function takes the calendar, the rules, the request's facts and (where it
//! matters) `now`, and returns values. No clock reads, no I/O.
//!
//! # Terms
//! - A *slot* is an open interval of the service, intersected with the patient's window
//!   (if any) on the same local date.
//! - A *start slot* is the part of a slot in which a new attempt may start: the open
//!   interval shortened by `last_call_before_close`, then intersected with the window.
//! - The *deadline day* is the first local date, starting with the day the request was
//!   made, on which an attempt can still start after the request was made (a start slot
//!   ends after it). The *deadline* is the end of that day's last slot (Health Care Act
//!   § 51: contact the same weekday). A request made after the day's last start moment
//!   is an after-hours request: its deadline day is the next day with a start slot.
//! - The request *expires* at the end of the last slot of the `expire_after_open_days`-th
//!   open day after the deadline day.
//!
//! Due requests are served in the order of [`lifecycle::ServingKey`]: deadline first, then
//! age. [`lifecycle`] owns every change of a request's state; [`admit`] the trunk's
//! capacity and call rate.

pub mod admit;
pub mod lifecycle;
pub mod punctuality;
pub mod risk;

use crate::calendar::{Calendar, DayRange, Interval};
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use std::fmt;
use std::str::FromStr;

/// How far ahead the policy looks for an opening, in local days.
pub const HORIZON_DAYS: u32 = 400;

/// The attempt rules of a service (dialplan `[attempts]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptRules {
    /// Attempts that count against the patient (default 2).
    pub max: u8,
    /// Pause after an attempt that failed on the patient's side (default 30 min).
    pub pause: SignedDuration,
    /// How long an attempt rings before it is cancelled (default 30 s).
    pub ring_timeout: SignedDuration,
    /// No new attempt starts this close to closing time (default 10 min).
    pub last_call_before_close: SignedDuration,
    /// Pause after a failure on our or the PBX's side; such attempts do not count
    /// (default 2 min).
    pub network_retry: SignedDuration,
    /// The request expires at the end of this many open days after its deadline day
    /// (0 = at the deadline itself; default 1 = the next open day).
    pub expire_after_open_days: u8,
}

impl Default for AttemptRules {
    fn default() -> Self {
        AttemptRules {
            max: 2,
            pause: SignedDuration::from_mins(30),
            ring_timeout: SignedDuration::from_secs(30),
            last_call_before_close: SignedDuration::from_mins(10),
            network_retry: SignedDuration::from_mins(2),
            expire_after_open_days: 1,
        }
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The patient was reached and handed over to staff.
    Connected,
    /// Busy (SIP 486, 600).
    Busy,
    /// Rang out (ring timeout, SIP 480, 408).
    NoAnswer,
    /// The patient declined the call (SIP 603).
    Rejected,
    /// Answered, but nobody confirmed (voicemail, silence).
    NotConfirmed,
    /// The number does not exist (SIP 404, 484): final, no retry.
    InvalidNumber,
    /// Our side, the PBX or the network failed (SIP 503, transport errors, timeouts):
    /// retried, never counted against the patient.
    NetworkFailure,
    /// The daemon stopped or crashed during the attempt: retried, not counted.
    Interrupted,
    /// The patient said they no longer need the call (pressed 9): ends the request.
    Declined,
    /// The patient confirmed, but the transfer or bridge to staff failed: our side's
    /// failure, retried, not counted.
    HandoverFailed,
}

/// What an outcome means for the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The request ends in this state.
    Final(End),
    /// A failed attempt that counts against `max`.
    Counted,
    /// A failed attempt that does not count.
    NotCounted,
}

impl Outcome {
    /// Every outcome, for listings and tests.
    pub const ALL: [Outcome; 10] = [
        Outcome::Connected,
        Outcome::Busy,
        Outcome::NoAnswer,
        Outcome::Rejected,
        Outcome::NotConfirmed,
        Outcome::InvalidNumber,
        Outcome::NetworkFailure,
        Outcome::Interrupted,
        Outcome::Declined,
        Outcome::HandoverFailed,
    ];

    /// What this outcome does to the request.
    pub fn effect(self) -> Effect {
        match self {
            Outcome::Connected => Effect::Final(End::Connected),
            Outcome::InvalidNumber => Effect::Final(End::Unreachable),
            Outcome::Declined => Effect::Final(End::Cancelled),
            Outcome::Busy | Outcome::NoAnswer | Outcome::Rejected | Outcome::NotConfirmed => {
                Effect::Counted
            }
            Outcome::NetworkFailure | Outcome::Interrupted | Outcome::HandoverFailed => {
                Effect::NotCounted
            }
        }
    }

    /// The name used in the store, the API, metrics and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Connected => "connected",
            Outcome::Busy => "busy",
            Outcome::NoAnswer => "no_answer",
            Outcome::Rejected => "rejected",
            Outcome::NotConfirmed => "not_confirmed",
            Outcome::InvalidNumber => "invalid_number",
            Outcome::NetworkFailure => "network_failure",
            Outcome::Interrupted => "interrupted",
            Outcome::Declined => "declined",
            Outcome::HandoverFailed => "handover_failed",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An outcome name that is not one of [`Outcome::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown outcome {0:?}, expected one of connected, busy, no_answer, rejected, \
         not_confirmed, invalid_number, network_failure, interrupted, declined"
)]
pub struct UnknownOutcome(pub String);

impl FromStr for Outcome {
    type Err = UnknownOutcome;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| UnknownOutcome(s.to_owned()))
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum End {
    /// Reached and connected to staff.
    Connected,
    /// Could not be reached within the attempts, or the number does not exist.
    Unreachable,
    /// Not served before it expired (no attempt failed on the patient's side).
    Expired,
    /// Cancelled by the patient or an operator.
    Cancelled,
}

impl End {
    /// The request state name used in the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            End::Connected => "connected",
            End::Unreachable => "unreachable",
            End::Expired => "expired",
            End::Cancelled => "cancelled",
        }
    }
}

/// One finished attempt, as the policy needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptRecord {
    /// When the attempt ended (final SIP response, hang-up, or the recovery time for an
    /// interrupted attempt).
    pub ended_at: Timestamp,
    /// How it ended.
    pub outcome: Outcome,
}

/// The facts of one request the policy decides on.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// When the patient left the request.
    pub created_at: Timestamp,
    /// The daily time window the patient chose, if any.
    pub window: Option<DayRange>,
    /// Finished attempts, oldest first.
    pub attempts: &'a [AttemptRecord],
}

/// When a live request is to be dialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Dial at or after this instant (always the start of or inside a start slot).
    pub due: Timestamp,
    /// The same-day deadline.
    pub deadline: Timestamp,
    /// No attempt starts at or after this instant.
    pub expires: Timestamp,
    /// Attempts so far that count against the patient.
    pub counted: u8,
}

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Keep it and dial it per the plan.
    Dial(Plan),
    /// It is over.
    End {
        /// The final state.
        end: End,
        /// Why, for operators.
        reason: Reason,
    },
}

/// Why a request ended, in words for operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The last attempt's outcome is final.
    FinalOutcome(Outcome),
    /// Every counted attempt was used.
    AttemptsUsed(u8),
    /// The next feasible moment lies after the expiry.
    NoTimeBeforeExpiry,
    /// The calendar has no opening within the horizon.
    NeverOpen,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::FinalOutcome(o) => write!(f, "the last attempt ended {o}"),
            Reason::AttemptsUsed(n) => write!(f, "all {n} attempts were used"),
            Reason::NoTimeBeforeExpiry => {
                f.write_str("no opening in the hours (and window) before the request expires")
            }
            Reason::NeverOpen => {
                write!(f, "the service has no opening in the next {HORIZON_DAYS} days")
            }
        }
    }
}

/// The slots (open intervals ∩ window) from `from` on, in order, tagged with their date.
fn slots<'a>(
    cal: &'a Calendar,
    window: Option<DayRange>,
    from: Timestamp,
) -> impl Iterator<Item = (Date, Interval)> + 'a {
    cal.intervals_from(from, HORIZON_DAYS).filter_map(move |(date, iv)| {
        let Some(w) = window else {
            return Some((date, iv));
        };
        let wi = cal.range_on(date, w)?;
        intersect(iv, wi).map(|i| (date, i))
    })
}

/// The start slots from `from` on: open intervals shortened by the closing margin,
/// intersected with the window.
fn start_slots<'a>(
    cal: &'a Calendar,
    rules: &'a AttemptRules,
    window: Option<DayRange>,
    from: Timestamp,
) -> impl Iterator<Item = Interval> + 'a {
    dated_start_slots(cal, rules, window, from).map(|(_, iv)| iv)
}

/// [`start_slots`] tagged with their local date.
fn dated_start_slots<'a>(
    cal: &'a Calendar,
    rules: &'a AttemptRules,
    window: Option<DayRange>,
    from: Timestamp,
) -> impl Iterator<Item = (Date, Interval)> + 'a {
    cal.intervals_from(from, HORIZON_DAYS).filter_map(move |(date, iv)| {
        let end = iv.end.checked_sub(rules.last_call_before_close).ok()?;
        let iv = intersect(iv, Interval { start: iv.start, end })?;
        match window {
            None => Some((date, iv)),
            Some(w) => intersect(iv, cal.range_on(date, w)?).map(|i| (date, i)),
        }
    })
}

fn intersect(a: Interval, b: Interval) -> Option<Interval> {
    let start = a.start.max(b.start);
    let end = a.end.min(b.end);
    (start < end).then_some(Interval { start, end })
}

/// The first instant ≥ `t` at which an attempt may start.
pub fn first_start(
    cal: &Calendar,
    rules: &AttemptRules,
    window: Option<DayRange>,
    t: Timestamp,
) -> Option<Timestamp> {
    start_slots(cal, rules, window, t).find(|iv| iv.end > t).map(|iv| iv.start.max(t))
}

/// The deadline day and deadline of a request made at `created_at`: the first local date
/// on which an attempt can still start after `created_at` (a start slot ends after it),
/// and the end of that date's last slot.
///
/// A request made when no attempt can start any more that day (15:55 when the hours end
/// at 16:00 and `last_call_before_close` is 10 min) is an after-hours request: nobody
/// can call it back that day, so its deadline day is the next day with a start slot, as
/// for a request made in the evening, and the patient is told that day's window.
pub fn deadline(
    cal: &Calendar,
    rules: &AttemptRules,
    window: Option<DayRange>,
    created_at: Timestamp,
) -> Option<(Date, Timestamp)> {
    let (day, first) =
        dated_start_slots(cal, rules, window, created_at).find(|(_, iv)| iv.end > created_at)?;
    let last = slots(cal, window, first.start)
        .skip_while(|(d, _)| *d < day)
        .take_while(|(d, _)| *d == day)
        .map(|(_, iv)| iv.end)
        .max()
        .unwrap_or(first.end);
    Some((day, last))
}

/// When a request made at `created_at` expires.
pub fn expiry(
    cal: &Calendar,
    rules: &AttemptRules,
    window: Option<DayRange>,
    created_at: Timestamp,
) -> Option<Timestamp> {
    let (day, deadline) = deadline(cal, rules, window, created_at)?;
    if rules.expire_after_open_days == 0 {
        return Some(deadline);
    }
    let mut days_seen = 0u8;
    let mut current: Option<Date> = None;
    let mut end = None;
    for (date, iv) in slots(cal, window, deadline).filter(|(d, _)| *d > day) {
        if current != Some(date) {
            if days_seen == rules.expire_after_open_days {
                break;
            }
            days_seen += 1;
            current = Some(date);
        }
        end = Some(iv.end);
    }
    if days_seen == rules.expire_after_open_days { end } else { None }
}

/// Decides what happens next to a request. Independent of `now`: the same facts always
/// give the same decision.
pub fn decide(cal: &Calendar, rules: &AttemptRules, req: &RequestFacts<'_>) -> Decision {
    let counted = req.attempts.iter().filter(|a| a.outcome.effect() == Effect::Counted).count();
    let counted = u8::try_from(counted).unwrap_or(u8::MAX);
    let earliest = match req.attempts.last() {
        None => req.created_at,
        Some(last) => match last.outcome.effect() {
            Effect::Final(end) => {
                return Decision::End { end, reason: Reason::FinalOutcome(last.outcome) };
            }
            Effect::Counted if counted >= rules.max => {
                return Decision::End {
                    end: End::Unreachable,
                    reason: Reason::AttemptsUsed(counted),
                };
            }
            Effect::Counted => last.ended_at.saturating_add(rules.pause).unwrap_or(last.ended_at),
            Effect::NotCounted => {
                last.ended_at.saturating_add(rules.network_retry).unwrap_or(last.ended_at)
            }
        },
    };
    let give_up = |reason| Decision::End {
        end: if counted > 0 { End::Unreachable } else { End::Expired },
        reason,
    };
    let (Some((_, deadline)), Some(expires)) = (
        deadline(cal, rules, req.window, req.created_at),
        expiry(cal, rules, req.window, req.created_at),
    ) else {
        return give_up(Reason::NeverOpen);
    };
    match first_start(cal, rules, req.window, earliest) {
        Some(due) if due < expires => Decision::Dial(Plan { due, deadline, expires, counted }),
        Some(_) | None => give_up(Reason::NoTimeBeforeExpiry),
    }
}

/// What the scheduler may do with a planned request at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Now {
    /// An attempt may start now.
    Start,
    /// Not yet: the earliest start.
    Wait(Timestamp),
    /// No attempt can start before the request expires: end it.
    Expire,
}

/// Whether an attempt of a planned request may start at `now`.
pub fn at(
    cal: &Calendar,
    rules: &AttemptRules,
    window: Option<DayRange>,
    plan: &Plan,
    now: Timestamp,
) -> Now {
    let from = now.max(plan.due);
    match first_start(cal, rules, window, from) {
        Some(t) if t >= plan.expires => Now::Expire,
        None => Now::Expire,
        Some(t) if t == now => Now::Start,
        Some(t) => Now::Wait(t),
    }
}

/// True when the request can no longer start an attempt before its same-day deadline.
pub fn deadline_missed(
    cal: &Calendar,
    rules: &AttemptRules,
    window: Option<DayRange>,
    plan: &Plan,
    now: Timestamp,
) -> bool {
    match at(cal, rules, window, plan, now) {
        Now::Start => now >= plan.deadline,
        Now::Wait(t) => t >= plan.deadline,
        Now::Expire => true,
    }
}

/// The expected callback time window told to the patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eta {
    /// Not before.
    pub from: Timestamp,
    /// Not after.
    pub to: Timestamp,
}

/// The requests served before a waiting request, as the ETA counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ahead {
    /// Every waiting request served before it (deadline first, then age).
    pub all: u32,
    /// Those of them waiting for a retry (not due yet): under deadline first each comes
    /// back ahead of the patient if it falls due before the patient is called, which the
    /// late edge assumes and the early edge does not.
    pub retrying: u32,
}

impl Ahead {
    /// `all` requests ahead, none of them waiting for a retry.
    pub fn due(all: u32) -> Ahead {
        Ahead { all, retrying: 0 }
    }
}

/// The told window spans the queue's work ahead at the recent rate, walked through the
/// opening hours: from [`ETA_EARLY`] of the work of the requests already due ahead, to
/// [`ETA_LATE`] of the work of all ahead (the retries ahead back in time), each widened by
/// the spread: [`ETA_SPREAD`] × √(requests ahead) calls' time (the statistical spread of
/// the sum of that many callbacks of unknown length) and [`ETA_MARGIN`]. The rate is a
/// floor (six calls an hour per line when the queue is short), so the work is an upper
/// bound and the early edge reaches well before it. Chosen with `callbackd simulate` so
/// that at least 90% of first calls start inside the told window at 70%, 90% and 100%
/// nurse load (BENCHMARKS.md) while the window stays as narrow as that allows.
pub const ETA_EARLY: f64 = 0.6;
/// See [`ETA_EARLY`].
pub const ETA_LATE: f64 = 0.9;
/// See [`ETA_EARLY`].
pub const ETA_SPREAD: f64 = 0.5;
/// The least half-width of the told window.
pub const ETA_MARGIN: SignedDuration = SignedDuration::from_mins(5);

/// The instant after `work` of open start-slot time from `start` (any window).
fn walk(
    cal: &Calendar,
    rules: &AttemptRules,
    start: Timestamp,
    work: SignedDuration,
) -> Option<Timestamp> {
    let mut left = work;
    for iv in start_slots(cal, rules, None, start) {
        let from = iv.start.max(start);
        if iv.end <= from {
            continue;
        }
        let room = iv.end.duration_since(from);
        if room >= left {
            return from.checked_add(left).ok();
        }
        left -= room;
    }
    None
}

/// Estimates when a planned request will be called: `ahead` requests are served before it
/// at `calls_per_hour` (the service's recent rate), in the service's opening hours.
/// `None` when it cannot be served before it expires or the rate is not positive.
///
/// The window runs from [`ETA_EARLY`] of the work of the requests due ahead to
/// [`ETA_LATE`] of the work of all ahead, each widened by the spread (see [`ETA_EARLY`]),
/// walked through the opening hours, within the patient's window and one opening (the
/// one where all the work ahead is done, when that is a later one), on quarter hours.
pub fn eta(
    cal: &Calendar,
    rules: &AttemptRules,
    window: Option<DayRange>,
    plan: &Plan,
    now: Timestamp,
    ahead: Ahead,
    calls_per_hour: f64,
) -> Option<Eta> {
    if !(calls_per_hour.is_finite() && calls_per_hour > 0.0) {
        return None;
    }
    let start = match at(cal, rules, window, plan, now) {
        Now::Start => now,
        Now::Wait(t) => t,
        Now::Expire => return None,
    };
    let per = 3600.0 / calls_per_hour;
    let all = f64::from(ahead.all);
    let due = f64::from(ahead.all.saturating_sub(ahead.retrying));
    let spread = ETA_SPREAD * all.sqrt() * per + ETA_MARGIN.as_secs_f64();
    let secs = |x: f64| SignedDuration::from_secs(x.round().max(0.0) as i64);
    let early = walk(cal, rules, start, secs(due * per * ETA_EARLY - spread))?;
    let late = walk(cal, rules, start, secs(all * per * ETA_LATE + spread))?;
    let mut from = first_start(cal, rules, window, early)?;
    let mut slot_end =
        start_slots(cal, rules, window, from).find(|iv| iv.end > from).map_or(from, |iv| iv.end);
    // The work ahead is expected to last past the opening the early edge falls in: the
    // callback is expected in a later opening, and the window is told there (a window never
    // spans a closed night; clipped at today's close it would be missed).
    let expected = walk(cal, rules, start, secs(all * per))?;
    if expected >= slot_end {
        let t = first_start(cal, rules, window, expected);
        if let Some(iv) = t.and_then(|t| start_slots(cal, rules, window, t).find(|iv| iv.end > t)) {
            from = iv.start.max(start);
            slot_end = iv.end;
        }
    }
    if from >= plan.expires {
        return None;
    }
    let to = late.min(slot_end).max(from);
    let quarter = 15 * 60;
    let floor = |t: Timestamp| Timestamp::from_second(t.as_second().div_euclid(quarter) * quarter);
    let ceil = |t: Timestamp| {
        Timestamp::from_second((t.as_second() + quarter - 1).div_euclid(quarter) * quarter)
    };
    let from_r = floor(from).ok().filter(|f| *f >= start).unwrap_or(from);
    let to_r = ceil(to).ok().unwrap_or(to).max(from_r);
    Some(Eta { from: from_r, to: to_r })
}

#[cfg(test)]
mod tests;

//! The request lifecycle: every change of a request's state, decided in one pure function.
//!
//! [`step`] takes the service's [`Rules`], the request's [`Facts`] (as stored), one
//! [`Event`] and `now`, and returns the [`Transition`] to write: the new state, the next due
//! time, the outcome of the live attempt, the audit row and the SMS to queue. The store
//! writes a transition in one transaction, before the action it announces, and decides
//! nothing itself; the scheduler turns what happens (a due request, an ended call, a crash)
//! into events.
//!
//! ```text
//!   intake ([`intake`]: the plan from policy::decide, the audit row, the notice SMS)
//!      │
//!      ▼            Serve: may start now
//!   pending ──────────────────────────────► dialing ◄──────────── Serve ──┐
//!      │  ▲ Serve: not yet (due moves)         │ │                         │
//!      │  └──┘                                 │ │ Ended / Orphaned:       │
//!      │                                       │ │ retry per policy        │
//!      │                                       │ └──────────────────► retry_wait
//!      │                                       │  (Cancel while dialling:  │ ▲  Serve: not
//!      │                                       │   flag, no retry)         │ └─ yet
//!      │                                       ▼                           │
//!      │          Ended / Orphaned: final outcome, attempts used,         │
//!      │          or cancelled during the attempt                          │
//!      │                 connected | unreachable | cancelled               │
//!      │                                                                   │
//!      └──── Cancel ──► cancelled ◄──── Cancel ────────────────────────────┤
//!      └──── Expire, or Serve with no opening left ──► expired | unreachable ◄┘
//!
//!   DeadlinePassed (any live state): only the deadline_missed flag is set.
//!   Orphaned (a live attempt left by a crash, or by a server whose lease expired):
//!     answered before   → as Ended(connected), "answered, outcome unknown": never re-dialled
//!     not answered      → as Ended(interrupted): retried, not counted
//! ```
//!
//! The serving order of due requests, [`ServingKey`], is defined here too; the store's SQL
//! (`ORDER BY`, the serving-order index, the "ahead of" count) follows it and a test in
//! `tests/scheduler.rs` checks that they agree.

use super::{AttemptRecord, Decision, Effect, End, Now, Outcome, Plan};
use crate::calendar::{Calendar, DayRange};
use crate::sms::template::Kind;
use jiff::{SignedDuration, Timestamp};
use std::fmt;
use std::str::FromStr;

/// A request's state.
///
/// ```text
///  pending ──claim──► dialing ──outcome──► retry_wait ──claim──► dialing …
///     │                  │                     │
///     │                  └──► connected | unreachable | cancelled
///     └──────────────────────────┴──► expired | unreachable | cancelled
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Waiting for its first attempt.
    Pending,
    /// An attempt is live.
    Dialing,
    /// Waiting for its next attempt.
    RetryWait,
    /// Final: reached and connected.
    Connected,
    /// Final: could not be reached.
    Unreachable,
    /// Final: not served before it expired.
    Expired,
    /// Final: cancelled by the patient or an operator.
    Cancelled,
}

impl State {
    /// Every state.
    pub const ALL: [State; 7] = [
        State::Pending,
        State::Dialing,
        State::RetryWait,
        State::Connected,
        State::Unreachable,
        State::Expired,
        State::Cancelled,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Dialing => "dialing",
            State::RetryWait => "retry_wait",
            State::Connected => "connected",
            State::Unreachable => "unreachable",
            State::Expired => "expired",
            State::Cancelled => "cancelled",
        }
    }

    /// True for states a request never leaves.
    pub fn is_final(self) -> bool {
        match self {
            State::Pending | State::Dialing | State::RetryWait => false,
            State::Connected | State::Unreachable | State::Expired | State::Cancelled => true,
        }
    }

    /// True while the request waits for an attempt (`pending`, `retry_wait`).
    pub fn is_waiting(self) -> bool {
        match self {
            State::Pending | State::RetryWait => true,
            State::Dialing
            | State::Connected
            | State::Unreachable
            | State::Expired
            | State::Cancelled => false,
        }
    }
}

impl From<End> for State {
    fn from(end: End) -> State {
        match end {
            End::Connected => State::Connected,
            End::Unreachable => State::Unreachable,
            End::Expired => State::Expired,
            End::Cancelled => State::Cancelled,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is not one of [`State::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown state {0:?}, expected one of pending, dialing, retry_wait, connected, \
         unreachable, expired, cancelled"
)]
pub struct UnknownState(pub String);

impl FromStr for State {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<State, UnknownState> {
        State::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// The order in which due requests of one service are served: earliest same-day deadline
/// first, then the oldest request, then the lowest id (ties never depend on the database).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServingKey {
    /// The request's same-day deadline.
    pub deadline: Timestamp,
    /// When the request was made.
    pub created_at: Timestamp,
    /// The request's id.
    pub id: i64,
}

/// The service's rules a transition depends on.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// The service's opening hours.
    pub calendar: &'a Calendar,
    /// The dialplan's `[attempts]`.
    pub attempts: &'a super::AttemptRules,
    /// The survey after a connected callback (the dialplan's `[sms] feedback`), if any.
    pub survey: Option<Survey>,
    /// The patient may ask to be called on the next open day instead (the dialplan's
    /// `next_open_day`).
    pub next_open_day: bool,
}

/// When the survey SMS goes after a connected callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Survey {
    /// After the connected callback.
    pub delay: SignedDuration,
    /// At most one survey per number in this period.
    pub period: SignedDuration,
}

/// The stored facts of one request a transition is decided on.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The id (for the serving order).
    pub id: i64,
    /// The state.
    pub state: State,
    /// When the patient made the request.
    pub created_at: Timestamp,
    /// The patient's daily window.
    pub window: Option<DayRange>,
    /// Next due (waiting states).
    pub due: Option<Timestamp>,
    /// The same-day deadline.
    pub deadline: Timestamp,
    /// No attempt starts at or after this.
    pub expires: Timestamp,
    /// Attempts counted against the patient so far.
    pub counted: u8,
    /// Cancelled while an attempt was live.
    pub cancel_requested: bool,
    /// The deadline is already flagged as missed.
    pub deadline_missed: bool,
    /// The patient consented to SMS.
    pub sms_consent: bool,
    /// Finished attempts, oldest first (never the live one).
    pub attempts: &'a [AttemptRecord],
}

impl Facts<'_> {
    /// The request's plan as stored: the one place a stored request becomes a [`Plan`].
    /// A request without a due time (dialling or final) is taken as due at `now`.
    pub fn plan(&self, now: Timestamp) -> Plan {
        Plan {
            due: self.due.unwrap_or(now),
            deadline: self.deadline,
            expires: self.expires,
            counted: self.counted,
        }
    }

    /// Its place in the serving order.
    pub fn serving_key(&self) -> ServingKey {
        ServingKey { deadline: self.deadline, created_at: self.created_at, id: self.id }
    }
}

/// Why a live attempt was left without an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orphan {
    /// This server restarted (crash recovery at start).
    Restart,
    /// Its server's lease expired (another server takes it over).
    LeaseExpired,
}

/// Something that happens to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// The request is due and the scheduler has room to start an attempt at `now`.
    Serve,
    /// The live attempt `seq` ended with `outcome` (the dialer's result).
    Ended {
        /// The attempt's number within the request.
        seq: i64,
        /// How it ended.
        outcome: Outcome,
    },
    /// The live attempt `seq` has no outcome and nobody will report one.
    Orphaned {
        /// The attempt's number within the request.
        seq: i64,
        /// The far end answered (the attempt has an `answered_at` mark).
        answered: bool,
        /// Who left it.
        why: Orphan,
    },
    /// The patient or an operator (`actor`) cancels the request.
    Cancel {
        /// Who cancels (`api`, `cli`, …), for the audit trail.
        actor: &'a str,
    },
    /// The request's expiry has passed.
    Expire,
    /// The request's same-day deadline has passed.
    DeadlinePassed,
    /// The patient (`actor`, e.g. `web`) chooses another daily window of the service
    /// (`None`: any time in opening hours). Only while waiting, and only a window that can
    /// still be served before the request expires ([`replan`]).
    Window {
        /// Who asks, for the audit trail.
        actor: &'a str,
        /// The new window.
        window: Option<DayRange>,
    },
    /// The patient (`actor`, e.g. `web`) asks to be called on the next open day instead of
    /// today. Only while waiting, where the service allows it ([`Rules::next_open_day`]),
    /// and only when that day's opening comes before the request expires ([`next_day`]).
    NextOpenDay {
        /// Who asks, for the audit trail.
        actor: &'a str,
    },
}

impl Event<'_> {
    /// A short name, for refusals.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Serve => "serve",
            Event::Ended { .. } => "end an attempt",
            Event::Orphaned { .. } => "recover an attempt",
            Event::Cancel { .. } => "cancel",
            Event::Expire => "expire",
            Event::DeadlinePassed => "miss its deadline",
            Event::Window { .. } => "change its window",
            Event::NextOpenDay { .. } => "move to the next open day",
        }
    }
}

/// An event that does not apply to the request as it is (nothing is written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {state} request cannot {event}")]
pub struct Refused {
    /// The request's state.
    pub state: State,
    /// What was asked ([`Event::name`]).
    pub event: &'static str,
}

/// The outcome written on the live attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptEnd {
    /// How it ended.
    pub outcome: Outcome,
    /// Whether it counts against the patient.
    pub counted: bool,
}

/// The audit row of a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// Who made the change (`scheduler`, `dialer`, `recovery`, `api`, …).
    pub actor: String,
    /// What happened, for operators.
    pub detail: String,
}

/// An SMS to queue with a transition (the outbox row is written in the same transaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsIntent {
    /// What kind of message.
    pub kind: Kind,
    /// One message per request and key (idempotent).
    pub key: String,
    /// Not sent before.
    pub not_before: Timestamp,
    /// Surveys: not when the same number already has one due within this period before
    /// `not_before`.
    pub once_per: Option<SignedDuration>,
}

/// Whether an SMS the lifecycle asked for is queued: decided on what the store reads in
/// the same transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsFate {
    /// Queue it.
    Queue,
    /// Write it as `skipped`, with the reason, so operators see why none went.
    Skip(&'static str),
    /// Write nothing (no consent for a survey, a recent survey, already queued).
    Drop,
}

/// What the store knows about a recipient when it queues an SMS.
#[derive(Debug, Clone, Copy)]
pub struct SmsFacts<'a> {
    /// The number; `None` once erased.
    pub number: Option<&'a crate::number::E164>,
    /// The patient consented to SMS.
    pub consent: bool,
    /// The same request already has this message.
    pub exists: bool,
    /// The number is on the survey opt-out list.
    pub opted_out: bool,
    /// The number has a survey queued or sent within the intent's `once_per`.
    pub surveyed_recently: bool,
}

/// Decides whether an SMS intent becomes an outbox row.
pub fn sms_fate(intent: &SmsIntent, facts: &SmsFacts<'_>) -> SmsFate {
    if facts.exists {
        return SmsFate::Drop;
    }
    match intent.kind {
        Kind::Feedback if !facts.consent || facts.surveyed_recently => return SmsFate::Drop,
        Kind::Feedback | Kind::Notice | Kind::Unreachable => {}
    }
    let Some(number) = facts.number else { return SmsFate::Skip("number erased") };
    if let Err(why) = crate::sms::recipient(number) {
        return SmsFate::Skip(why.reason());
    }
    match intent.kind {
        Kind::Feedback if facts.opted_out => SmsFate::Skip("opted out of surveys"),
        Kind::Feedback | Kind::Notice | Kind::Unreachable => SmsFate::Queue,
    }
}

/// One change of a request, to be written in one transaction (write-ahead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The state it was decided on; the store writes only while the request is still in it.
    pub from: State,
    /// The new state (may equal `from`: a new due time, a flag).
    pub to: State,
    /// The next due time: `Some` in waiting states, `None` otherwise.
    pub due: Option<Timestamp>,
    /// Attempts counted against the patient after this transition.
    pub counted: u8,
    /// The outcome written on the live attempt (events about an attempt only).
    pub attempt: Option<AttemptEnd>,
    /// Why the request ended (final states only), for operators.
    pub end_reason: Option<String>,
    /// Set the cancel-requested flag (cancelled while dialling).
    pub cancel_requested: bool,
    /// Set the deadline-missed flag.
    pub deadline_missed: bool,
    /// The audit row; `None` for the deadline flag, which only feeds supervision.
    pub audit: Option<Audit>,
    /// SMS to queue with it.
    pub sms: Vec<SmsIntent>,
    /// A new window and the deadline that follows from it ([`Event::Window`]), or the same
    /// window with the next open day's deadline ([`Event::NextOpenDay`]).
    pub replan: Option<Replan>,
}

/// A request's new daily window, written with its new same-day deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replan {
    /// The window (`None`: any time in opening hours).
    pub window: Option<DayRange>,
    /// The same-day deadline with that window.
    pub deadline: Timestamp,
}

/// Where a waiting request would stand with `window` instead of its own: its plan (the
/// next due time, the deadline with that window, its stored expiry and attempts), or
/// `None` when no attempt could start in that window before the request expires.
///
/// [`step`] writes this for [`Event::Window`]; the patient page offers exactly the windows
/// for which it is `Some`.
pub fn replan(
    rules: &Rules<'_>,
    facts: &Facts<'_>,
    window: Option<DayRange>,
    now: Timestamp,
) -> Option<Plan> {
    let req =
        super::RequestFacts { created_at: facts.created_at, window, attempts: facts.attempts };
    let Decision::Dial(plan) = super::decide(rules.calendar, rules.attempts, &req) else {
        return None;
    };
    // The expiry stays the one the request was given: a window never extends it.
    let plan = Plan { expires: facts.expires, counted: facts.counted, ..plan };
    match super::at(rules.calendar, rules.attempts, window, &plan, now) {
        Now::Start => Some(Plan { due: now, ..plan }),
        Now::Wait(t) => Some(Plan { due: t, ..plan }),
        Now::Expire => None,
    }
}

/// Where a waiting request would stand if the patient asked to be called on the next open
/// day instead: due at the first moment an attempt may start (in its window) on the first
/// local date after `now`'s that has one, its same-day deadline the end of that day's last
/// slot (as [`super::deadline`] gives it for a request made then), its expiry and attempts
/// as stored. `None` when the service does not allow it, when that moment is not before
/// the request's expiry, or when the request is already due no earlier than that.
///
/// [`step`] writes this for [`Event::NextOpenDay`]; the patient page offers the choice
/// exactly when it is `Some`.
pub fn next_day(rules: &Rules<'_>, facts: &Facts<'_>, now: Timestamp) -> Option<Plan> {
    if !rules.next_open_day || !facts.state.is_waiting() {
        return None;
    }
    let cal = rules.calendar;
    let tomorrow = cal.local_date(now).tomorrow().ok()?.to_zoned(cal.tz().clone()).ok()?;
    let due = super::first_start(cal, rules.attempts, facts.window, tomorrow.timestamp())?;
    let (_, deadline) = super::deadline(cal, rules.attempts, facts.window, due)?;
    if due >= facts.expires || facts.due.is_some_and(|d| d >= due) {
        return None;
    }
    Some(Plan { due, deadline, expires: facts.expires, counted: facts.counted })
}

impl Transition {
    /// True when the request ends with this transition.
    pub fn ends(&self) -> bool {
        !self.from.is_final() && self.to.is_final()
    }

    fn keep(facts: &Facts<'_>) -> Transition {
        Transition {
            from: facts.state,
            to: facts.state,
            due: facts.due,
            counted: facts.counted,
            attempt: None,
            end_reason: None,
            cancel_requested: false,
            deadline_missed: false,
            audit: None,
            sms: Vec::new(),
            replan: None,
        }
    }
}

fn audit(actor: &str, detail: impl Into<String>) -> Option<Audit> {
    Some(Audit { actor: actor.to_owned(), detail: detail.into() })
}

fn refuse(facts: &Facts<'_>, event: &Event<'_>) -> Refused {
    Refused { state: facts.state, event: event.name() }
}

/// True when a live request's same-day deadline has passed unflagged at `now` (the
/// predicate the store's bulk `mark_missed` writes in SQL).
pub fn misses_deadline(state: State, deadline: Timestamp, flagged: bool, now: Timestamp) -> bool {
    !state.is_final() && !flagged && deadline <= now
}

/// What intake writes: a new request enters the queue as `pending`, due when its plan
/// says, with its audit row (the channel is the actor) and the notice SMS when the service
/// sends one and the patient consented. The store inserts it; the database's unique index
/// on live (service, number) turns a second request for a waiting number into the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intake {
    /// Always [`State::Pending`]: a request starts waiting for its first attempt.
    pub to: State,
    /// When the first attempt is due.
    pub due: Timestamp,
    /// The audit row (`none → pending`).
    pub audit: Audit,
    /// SMS to queue with it.
    pub sms: Vec<SmsIntent>,
}

/// Intake as a transition (see [`Intake`]); `sms_notice`: the service sends a notice and
/// the patient consented.
pub fn intake(plan: &Plan, channel: &str, sms_notice: bool, now: Timestamp) -> Intake {
    let sms = if sms_notice {
        vec![SmsIntent {
            kind: Kind::Notice,
            key: "notice".to_owned(),
            not_before: now,
            once_per: None,
        }]
    } else {
        Vec::new()
    };
    Intake {
        to: State::Pending,
        due: plan.due,
        audit: Audit { actor: channel.to_owned(), detail: String::new() },
        sms,
    }
}

/// What a scheduler turn does with a due request it has room for ([`serve`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// Start an attempt: claim the request (the transition to [`State::Dialing`]), dial.
    Dial(Transition),
    /// Write the transition and start nothing: not yet (the hours or the window moved the
    /// due time), or no opening is left before the expiry.
    Write(Transition),
}

/// [`Event::Serve`] for a due request, as the scheduler (and the simulator, which runs the
/// same turn on a virtual clock) acts on it.
pub fn serve(rules: &Rules<'_>, facts: &Facts<'_>, now: Timestamp) -> Result<Served, Refused> {
    let t = step(Some(rules), facts, Event::Serve, now)?;
    Ok(if t.to == State::Dialing { Served::Dial(t) } else { Served::Write(t) })
}

/// Decides what `event` does to the request. `rules` is `None` when the request's service
/// has no dialplan now (removed by a reload): it is then kept as it is wherever the
/// decision needs the calendar.
pub fn step(
    rules: Option<&Rules<'_>>,
    facts: &Facts<'_>,
    event: Event<'_>,
    now: Timestamp,
) -> Result<Transition, Refused> {
    match (facts.state, event) {
        (State::Pending | State::RetryWait, Event::Serve) => {
            let Some(rules) = rules else { return Err(refuse(facts, &event)) };
            let plan = facts.plan(now);
            match super::at(rules.calendar, rules.attempts, facts.window, &plan, now) {
                Now::Start => Ok(Transition {
                    to: State::Dialing,
                    due: None,
                    audit: audit("scheduler", "attempt"),
                    ..Transition::keep(facts)
                }),
                Now::Wait(t) => Ok(Transition {
                    due: Some(t),
                    audit: audit("scheduler", "replanned"),
                    ..Transition::keep(facts)
                }),
                Now::Expire => Ok(unserved(facts, "no opening left before the expiry", now)),
            }
        }
        (State::Pending | State::RetryWait, Event::Expire) => {
            if now < facts.expires {
                return Err(refuse(facts, &event));
            }
            Ok(unserved(facts, "expired before it could be served", now))
        }
        (State::Pending | State::RetryWait, Event::Cancel { actor }) => Ok(Transition {
            to: State::Cancelled,
            due: None,
            end_reason: Some(format!("cancelled by {actor}")),
            audit: audit(actor, ""),
            ..Transition::keep(facts)
        }),
        (State::Dialing, Event::Cancel { actor }) => Ok(Transition {
            cancel_requested: true,
            audit: audit(actor, "cancel requested"),
            ..Transition::keep(facts)
        }),
        (State::Dialing, Event::Ended { seq, outcome }) => {
            let detail = format!("attempt {seq} {}", outcome.as_str());
            Ok(ended(rules, facts, outcome, "dialer", detail, now))
        }
        // Answered: the patient was reached, whatever state an older run left the request in.
        (
            State::Pending | State::Dialing | State::RetryWait,
            Event::Orphaned { seq, answered: true, .. },
        ) => {
            let detail = format!("attempt {seq} connected (answered, outcome unknown)");
            let mut t = ended(rules, facts, Outcome::Connected, "recovery", detail, now);
            // Reached, but whether it went well is unknown: no survey.
            t.sms.retain(|s| s.kind != Kind::Feedback);
            Ok(t)
        }
        (State::Dialing, Event::Orphaned { seq, answered: false, .. }) => {
            let outcome = Outcome::Interrupted;
            let detail = format!("attempt {seq} {}", outcome.as_str());
            Ok(ended(rules, facts, outcome, "recovery", detail, now))
        }
        // A live attempt whose request is no longer dialling (written by an older version
        // or by hand): the attempt is closed, the request stays as it is.
        (
            State::Pending | State::RetryWait,
            Event::Orphaned { seq, answered: answered @ false, .. },
        )
        | (
            State::Connected | State::Unreachable | State::Expired | State::Cancelled,
            Event::Orphaned { seq, answered, .. },
        ) => {
            let outcome = if answered { Outcome::Connected } else { Outcome::Interrupted };
            Ok(Transition {
                attempt: Some(AttemptEnd { outcome, counted: false }),
                audit: audit("recovery", format!("attempt {seq} {outcome} (request not dialling)")),
                ..Transition::keep(facts)
            })
        }
        (State::Pending | State::Dialing | State::RetryWait, Event::DeadlinePassed) => {
            if !misses_deadline(facts.state, facts.deadline, facts.deadline_missed, now) {
                return Err(refuse(facts, &event));
            }
            Ok(Transition { deadline_missed: true, ..Transition::keep(facts) })
        }
        (State::Pending | State::RetryWait, Event::Window { actor, window }) => {
            let Some(rules) = rules else { return Err(refuse(facts, &event)) };
            let Some(plan) = replan(rules, facts, window, now) else {
                return Err(refuse(facts, &event));
            };
            let shown = window.map_or_else(|| "any time".to_owned(), |w| w.to_string());
            Ok(Transition {
                due: Some(plan.due),
                audit: audit(actor, format!("window {shown}")),
                replan: Some(Replan { window, deadline: plan.deadline }),
                ..Transition::keep(facts)
            })
        }
        (State::Pending | State::RetryWait, Event::NextOpenDay { actor }) => {
            let Some(rules) = rules else { return Err(refuse(facts, &event)) };
            let Some(plan) = next_day(rules, facts, now) else {
                return Err(refuse(facts, &event));
            };
            let day = rules.calendar.local_date(plan.due);
            Ok(Transition {
                due: Some(plan.due),
                audit: audit(actor, format!("next open day {day}")),
                replan: Some(Replan { window: facts.window, deadline: plan.deadline }),
                ..Transition::keep(facts)
            })
        }
        (
            State::Dialing,
            Event::Serve | Event::Expire | Event::Window { .. } | Event::NextOpenDay { .. },
        )
        | (State::Pending | State::RetryWait, Event::Ended { .. })
        | (
            State::Connected | State::Unreachable | State::Expired | State::Cancelled,
            Event::Serve
            | Event::Ended { .. }
            | Event::Cancel { .. }
            | Event::Expire
            | Event::DeadlinePassed
            | Event::Window { .. }
            | Event::NextOpenDay { .. },
        ) => Err(refuse(facts, &event)),
    }
}

/// A waiting request that can no longer be served: unreachable if it was tried, expired if
/// not; the "could not reach you" SMS goes with it.
fn unserved(facts: &Facts<'_>, reason: &str, now: Timestamp) -> Transition {
    let end = if facts.counted > 0 { End::Unreachable } else { End::Expired };
    Transition {
        to: State::from(end),
        due: None,
        end_reason: Some(reason.to_owned()),
        audit: audit("scheduler", format!("replanned: {reason}")),
        sms: vec![unreachable_sms(now)],
        ..Transition::keep(facts)
    }
}

fn unreachable_sms(now: Timestamp) -> SmsIntent {
    SmsIntent {
        kind: Kind::Unreachable,
        key: "unreachable".to_owned(),
        not_before: now,
        once_per: None,
    }
}

/// The live attempt ended with `outcome`: what follows per policy.
fn ended(
    rules: Option<&Rules<'_>>,
    facts: &Facts<'_>,
    outcome: Outcome,
    actor: &str,
    detail: String,
    now: Timestamp,
) -> Transition {
    let effect = outcome.effect();
    let attempt = AttemptEnd { outcome, counted: effect == Effect::Counted };
    let mut records = facts.attempts.to_vec();
    records.push(AttemptRecord { ended_at: now, outcome });
    let counted = records.iter().filter(|a| a.outcome.effect() == Effect::Counted).count();
    let counted = u8::try_from(counted).unwrap_or(u8::MAX);
    let decision = match rules {
        Some(rules) => {
            let req = super::RequestFacts {
                created_at: facts.created_at,
                window: facts.window,
                attempts: &records,
            };
            super::decide(rules.calendar, rules.attempts, &req)
        }
        // No dialplan now: a final outcome still ends it; otherwise it waits, due at once,
        // until its service is back (its stored deadline and expiry stay).
        None => match effect {
            Effect::Final(end) => {
                Decision::End { end, reason: super::Reason::FinalOutcome(outcome) }
            }
            Effect::Counted | Effect::NotCounted => Decision::Dial(Plan {
                due: now,
                deadline: facts.deadline,
                expires: facts.expires,
                counted,
            }),
        },
    };
    let base = Transition { attempt: Some(attempt), counted, ..Transition::keep(facts) };
    match decision {
        Decision::Dial(_) if facts.cancel_requested => {
            let reason = "cancelled during a live attempt";
            Transition {
                to: State::Cancelled,
                due: None,
                end_reason: Some(reason.to_owned()),
                audit: audit(actor, format!("{detail}: {reason}")),
                ..base
            }
        }
        Decision::Dial(plan) => Transition {
            to: State::RetryWait,
            due: Some(plan.due),
            counted: plan.counted,
            audit: audit(actor, detail),
            ..base
        },
        Decision::End { end, reason } => {
            let mut sms = Vec::new();
            match end {
                End::Unreachable | End::Expired => sms.push(unreachable_sms(now)),
                End::Connected => {
                    if let Some(survey) = rules.and_then(|r| r.survey) {
                        let at = now.checked_add(survey.delay).unwrap_or(now);
                        sms.push(SmsIntent {
                            kind: Kind::Feedback,
                            key: "feedback".to_owned(),
                            not_before: at,
                            once_per: Some(survey.period),
                        });
                    }
                }
                End::Cancelled => {}
            }
            let reason = reason.to_string();
            Transition {
                to: State::from(end),
                due: None,
                audit: audit(actor, format!("{detail}: {reason}")),
                end_reason: Some(reason),
                sms,
                ..base
            }
        }
    }
}

/// The answer to a cancellation, for the API and the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// It was waiting and is now cancelled.
    Now,
    /// An attempt is live: it is not interrupted, but the request will not be retried.
    AfterLiveAttempt,
    /// It had already ended in this state.
    AlreadyFinal(State),
    /// No such request.
    NotFound,
}

impl Cancelled {
    /// What a cancel's transition (or refusal) means to the one who asked.
    pub fn of(result: &Result<Transition, Refused>) -> Cancelled {
        match result {
            Ok(t) if t.cancel_requested => Cancelled::AfterLiveAttempt,
            Ok(_) => Cancelled::Now,
            Err(refused) => Cancelled::AlreadyFinal(refused.state),
        }
    }
}

#[cfg(test)]
mod tests;

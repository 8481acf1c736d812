//! Supervisors' reports (`callbackd report`): every figure of a period and of the period
//! before it, per service and for all services, from plain rows the store reads.
//!
//! Pure: [`compute_read`] takes what the store read ([`Read`]), the period and `now`, and
//! returns a [`Report`] the renderers ([`render`], [`html`]) print; nothing here reads a
//! clock or the store. [`Read`] holds the period's requests one by one (the day and hour
//! tables and the percentiles need them), their attempts folded ([`Calls`]), and the
//! previous period only as sums ([`Totals`], [`Aggregate`]). A [`Fold`] builds it from the
//! requests of both periods given one at a time, each with its attempts folded by a
//! [`CallsFold`]: the store's report read feeds it from one ordered pass over the store,
//! [`read_rows`] from plain rows ([`History`]), so both ways give the same figures
//! ([`compute`] = both steps; the supervisor page uses it). Rows carry no phone numbers: a
//! report only counts. Means are computed from integer sums of milliseconds, so they do
//! not depend on the order rows come in.
//!
//! Every figure is about the requests *made* in the period (their creation instant in the
//! report's time zone), whatever happened to them later:
//!
//! - *time to callback*: from the request to the start of its connected call (when the far
//!   end answered, or the attempt's start if that was not written);
//! - *same-day rate*: requests contacted (a connected call) by their same-day deadline,
//!   over the requests that could be: all but those cancelled or declined by the patient
//!   and those still waiting before their deadline when the report is made;
//! - *first-attempt reach*: requests whose first attempt connected, over requests with at
//!   least one finished attempt;
//! - *attempts per request*: finished attempts over requests with at least one;
//! - *punctuality*: requests whose first call started inside the window the patient was last
//!   told (`told_from..told_to`), over requests told a window that had a call; the mean
//!   miss is the mean distance to the nearer edge of the window for the calls outside it
//!   (the rule is [`crate::policy::punctuality::judge`], which the live metrics use too);
//! - *SMS sent*: outbox rows in state `sent`, by kind.

pub mod html;
pub mod live;
pub mod period;
pub mod render;
pub mod words;

pub use period::{Kind, Period, PeriodError};

use crate::policy::lifecycle::State;
use crate::policy::{Eta, Outcome, punctuality};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// One request as a report needs it (no number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRow {
    /// Id.
    pub id: i64,
    /// Service id.
    pub service: String,
    /// Intake channel.
    pub channel: String,
    /// State now.
    pub state: State,
    /// Made at.
    pub created_at: Timestamp,
    /// Same-day deadline.
    pub deadline_at: Timestamp,
    /// The deadline passed before the request was served.
    pub deadline_missed: bool,
    /// The window the patient was last told, if any.
    pub told: Option<(Timestamp, Timestamp)>,
}

/// One attempt as a report needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptRow {
    /// The request.
    pub request_id: i64,
    /// 1 for the request's first attempt.
    pub seq: i64,
    /// Started at.
    pub started_at: Timestamp,
    /// When the far end answered, if written.
    pub answered_at: Option<Timestamp>,
    /// Outcome; `None` while live.
    pub outcome: Option<Outcome>,
}

/// One outbox row as a report needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsRow {
    /// The request.
    pub request_id: i64,
    /// `notice`, `unreachable`, `feedback`, …
    pub kind: String,
    /// `queued`, `sent`, `failed`, `skipped`.
    pub state: String,
}

/// The rows of the requests made in a report's two periods.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Requests.
    pub requests: Vec<RequestRow>,
    /// Their attempts, in any order.
    pub attempts: Vec<AttemptRow>,
    /// Their outbox rows.
    pub sms: Vec<SmsRow>,
}

/// What to report on.
#[derive(Debug, Clone)]
pub struct Query {
    /// The period (the previous one is [`Period::previous`]).
    pub period: Period,
    /// The services, in the order their sections are printed; an "all services" section
    /// comes first when there are several.
    pub services: Vec<String>,
    /// The time zone of days and hours.
    pub tz: TimeZone,
}

/// A computed report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The period.
    pub period: Period,
    /// Its name (`2026-W48`).
    pub period_name: String,
    /// The period before.
    pub previous: Period,
    /// Its name.
    pub previous_name: String,
    /// The time zone of days and hours.
    pub time_zone: String,
    /// When it was made.
    pub generated_at: Timestamp,
    /// One per service, after one for all services when there are several.
    pub sections: Vec<Section>,
}

/// The figures of one service (or all).
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    /// Service id; `None` for all services together.
    pub service: Option<String>,
    /// The period's figures.
    pub current: Figures,
    /// The previous period's figures.
    pub previous: Figures,
    /// The period day by day.
    pub days: Vec<Day>,
    /// The period by weekday and hour of request: 7 × 24 cells, Monday 00 first.
    pub hours: Vec<HourCell>,
    /// The period by hour of request, all weekdays together: 24 cells, `weekday` 0.
    pub hour_of_day: Vec<HourCell>,
}

/// The figures of one period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Requests made.
    pub requests: u64,
    /// Requests by intake channel.
    pub by_channel: BTreeMap<String, u64>,
    /// Ended connected.
    pub connected: u64,
    /// Ended unreachable.
    pub unreachable: u64,
    /// Ended expired.
    pub expired: u64,
    /// Cancelled (by staff or the API).
    pub cancelled: u64,
    /// Declined by the patient during a call.
    pub declined: u64,
    /// Still waiting or in a call.
    pub open: u64,
    /// Time from request to connected callback, minutes.
    pub to_callback: Option<Spread>,
    /// Same-day rate.
    pub same_day: Share,
    /// Requests whose deadline passed before they were served.
    pub deadlines_missed: u64,
    /// First-attempt reach.
    pub first_attempt: Share,
    /// Finished attempts.
    pub attempts: u64,
    /// Finished attempts per request with at least one.
    pub attempts_per_request: Option<f64>,
    /// Finished attempts by outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// SMS sent by kind.
    pub sms_sent: BTreeMap<String, u64>,
    /// Punctuality against the told window.
    pub punctuality: Share,
    /// Mean miss of the first calls outside the told window, minutes.
    pub mean_miss_min: Option<f64>,
}

/// Mean and percentiles of durations, in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// How many.
    pub n: u64,
    /// Mean.
    pub mean_min: f64,
    /// Median (nearest rank).
    pub p50_min: f64,
    /// 90th percentile (nearest rank).
    pub p90_min: f64,
}

/// A share: `hits` of `of`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Share {
    /// Counted in.
    pub hits: u64,
    /// Out of.
    pub of: u64,
    /// `hits / of`; `None` when `of` is 0.
    pub rate: Option<f64>,
}

impl Share {
    fn add(&mut self, hit: bool) {
        self.of += 1;
        self.hits += u64::from(hit);
    }

    fn finish(&mut self) {
        self.rate = (self.of > 0).then(|| self.hits as f64 / self.of as f64);
    }
}

/// One day of the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    /// The local date.
    pub date: Date,
    /// Requests made that day.
    pub requests: u64,
    /// Of them, connected.
    pub connected: u64,
    /// Their same-day rate.
    pub same_day: Share,
    /// Their mean time to callback, minutes.
    pub mean_to_callback_min: Option<f64>,
}

/// One weekday and hour of request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HourCell {
    /// ISO weekday, 1 = Monday.
    pub weekday: i8,
    /// Local hour, 0–23.
    pub hour: i8,
    /// Requests made in that hour.
    pub requests: u64,
    /// Of them, connected.
    pub connected: u64,
    /// Their mean time to callback, minutes.
    pub mean_to_callback_min: Option<f64>,
}

/// What one request's attempts come to, as a report needs them: folded from its attempt
/// rows by a [`CallsFold`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Calls {
    /// Finished attempts.
    pub finished: u64,
    /// The first attempt (`seq` 1): its start, and its outcome (`None` while live).
    pub first: Option<(Timestamp, Option<Outcome>)>,
    /// When the connected call started (the far end's answer, else the attempt's start);
    /// the latest one if there were several.
    pub connected_at: Option<Timestamp>,
    /// The last finished attempt (the highest `seq`) ended `declined`.
    pub declined: bool,
}

/// One request made in the report's period, with its calls: what the day and hour tables
/// and the percentiles need row by row. Services and channels are indices, not strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// Index in [`Query::services`].
    pub service: usize,
    /// Index in [`Read::channels`].
    pub channel: usize,
    /// State now.
    pub state: State,
    /// Made at.
    pub created_at: Timestamp,
    /// Same-day deadline.
    pub deadline_at: Timestamp,
    /// The deadline passed before the request was served.
    pub deadline_missed: bool,
    /// The window the patient was last told, if any.
    pub told: Option<(Timestamp, Timestamp)>,
    /// Its attempts, folded.
    pub calls: Calls,
}

/// The sums of one service's period: every figure but the percentiles, in a form SQL
/// aggregates (counts and sums of integer milliseconds) and that adds up across services.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    /// Requests made.
    pub requests: u64,
    /// Requests by intake channel.
    pub by_channel: BTreeMap<String, u64>,
    /// Ended connected.
    pub connected: u64,
    /// Ended unreachable.
    pub unreachable: u64,
    /// Ended expired.
    pub expired: u64,
    /// Cancelled (by staff or the API).
    pub cancelled: u64,
    /// Declined by the patient during a call.
    pub declined: u64,
    /// Still waiting or in a call.
    pub open: u64,
    /// Connected requests with a connected call: the waits to callback.
    pub waits: u64,
    /// Their waits added up, milliseconds.
    pub wait_ms: i64,
    /// Same-day rate (its `rate` is left `None` here).
    pub same_day: Share,
    /// Requests whose deadline passed before they were served.
    pub deadlines_missed: u64,
    /// First-attempt reach (`rate` left `None`).
    pub first_attempt: Share,
    /// Finished attempts.
    pub attempts: u64,
    /// Requests with at least one finished attempt.
    pub with_calls: u64,
    /// Finished attempts by outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// SMS sent by kind.
    pub sms_sent: BTreeMap<String, u64>,
    /// Punctuality against the told window (`rate` left `None`).
    pub punctuality: Share,
    /// How far the first calls outside the told window missed it, added up, milliseconds
    /// (they are `punctuality.of - punctuality.hits`).
    pub miss_ms: i64,
}

impl Totals {
    /// Adds another service's sums (for the all-services section).
    fn merge(&mut self, o: &Totals) {
        let add = |a: &mut BTreeMap<String, u64>, b: &BTreeMap<String, u64>| {
            for (k, n) in b {
                *a.entry(k.clone()).or_default() += n;
            }
        };
        let share = |a: &mut Share, b: &Share| {
            a.hits += b.hits;
            a.of += b.of;
        };
        self.requests += o.requests;
        add(&mut self.by_channel, &o.by_channel);
        self.connected += o.connected;
        self.unreachable += o.unreachable;
        self.expired += o.expired;
        self.cancelled += o.cancelled;
        self.declined += o.declined;
        self.open += o.open;
        self.waits += o.waits;
        self.wait_ms += o.wait_ms;
        share(&mut self.same_day, &o.same_day);
        self.deadlines_missed += o.deadlines_missed;
        share(&mut self.first_attempt, &o.first_attempt);
        self.attempts += o.attempts;
        self.with_calls += o.with_calls;
        add(&mut self.outcomes, &o.outcomes);
        add(&mut self.sms_sent, &o.sms_sent);
        share(&mut self.punctuality, &o.punctuality);
        self.miss_ms += o.miss_ms;
    }

    /// The figures, with the waits' nearest-rank median and 90th percentile (ms).
    fn figures(mut self, ranks: Option<(i64, i64)>) -> Figures {
        let to_callback = match ranks {
            Some((p50, p90)) if self.waits > 0 => Some(Spread {
                n: self.waits,
                mean_min: minutes_ms(self.wait_ms) / self.waits as f64,
                p50_min: minutes_ms(p50),
                p90_min: minutes_ms(p90),
            }),
            _ => None,
        };
        self.same_day.finish();
        self.first_attempt.finish();
        self.punctuality.finish();
        let missed = self.punctuality.of - self.punctuality.hits;
        Figures {
            requests: self.requests,
            by_channel: self.by_channel,
            connected: self.connected,
            unreachable: self.unreachable,
            expired: self.expired,
            cancelled: self.cancelled,
            declined: self.declined,
            open: self.open,
            to_callback,
            same_day: self.same_day,
            deadlines_missed: self.deadlines_missed,
            first_attempt: self.first_attempt,
            attempts: self.attempts,
            attempts_per_request: (self.with_calls > 0)
                .then(|| self.attempts as f64 / self.with_calls as f64),
            outcomes: self.outcomes,
            sms_sent: self.sms_sent,
            punctuality: self.punctuality,
            mean_miss_min: (missed > 0).then(|| minutes_ms(self.miss_ms) / missed as f64),
        }
    }
}

/// A period summed per service (the previous period, by [`Fold`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Aggregate {
    /// One per [`Query::services`], in its order.
    pub services: Vec<Totals>,
    /// The waits' nearest-rank median and 90th percentile (ms, see [`ranks`]), one per
    /// service and then one for all services together; `None` without waits.
    pub ranks: Vec<Option<(i64, i64)>>,
}

/// Finished attempts by outcome and sent SMS by kind, of one service's period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Finished attempts by outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// SMS sent by kind.
    pub sms_sent: BTreeMap<String, u64>,
}

/// What a report is computed from: the period's requests one by one (for the day and hour
/// tables and the percentiles), the period's attempts and SMS counted per service, and the
/// previous period only as sums.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Read {
    /// The channel names [`Served::channel`] points into.
    pub channels: Vec<String>,
    /// The requests made in the period, of the query's services, in any order.
    pub current: Vec<Served>,
    /// The period's attempts and SMS, one per [`Query::services`].
    pub tally: Vec<Tally>,
    /// The previous period.
    pub previous: Aggregate,
}

/// The 1-based nearest ranks of the median and of the 90th percentile among `n` values:
/// ⌈n/2⌉ and ⌈9n/10⌉ in integers (as SQL computes them), for `n` ≥ 1.
pub fn ranks(n: u64) -> (u64, u64) {
    (n.div_ceil(2), (9 * n).div_ceil(10))
}

/// Sums of one section and period, from rows.
#[derive(Debug, Default)]
struct Acc {
    t: Totals,
    /// Requests per channel index.
    channels: Vec<u64>,
    /// Waits, milliseconds.
    waits: Vec<i64>,
}

/// Whether a request is waiting or in a call.
fn live(state: State) -> bool {
    matches!(state, State::Pending | State::Dialing | State::RetryWait)
}

/// The connected call's wait, ms: only for requests that ended connected.
fn wait_ms(r: &Served) -> Option<i64> {
    let at = r.calls.connected_at.filter(|_| r.state == State::Connected)?;
    Some(at.as_millisecond() - r.created_at.as_millisecond())
}

/// Whether the request counts in the same-day rate (`Some`), and whether it was contacted
/// by its deadline: all but cancelled requests and those still waiting before it.
fn same_day(r: &Served, now: Timestamp) -> Option<bool> {
    let undecided = live(r.state) && r.deadline_at > now;
    (r.state != State::Cancelled && !undecided).then(|| {
        r.state == State::Connected && r.calls.connected_at.is_some_and(|at| at <= r.deadline_at)
    })
}

impl Acc {
    fn add(&mut self, r: &Served, now: Timestamp) {
        let t = &mut self.t;
        let c = &r.calls;
        t.requests += 1;
        if self.channels.len() <= r.channel {
            self.channels.resize(r.channel + 1, 0);
        }
        self.channels[r.channel] += 1;
        match r.state {
            State::Connected => t.connected += 1,
            State::Unreachable => t.unreachable += 1,
            State::Expired => t.expired += 1,
            State::Cancelled if c.declined => t.declined += 1,
            State::Cancelled => t.cancelled += 1,
            State::Pending | State::Dialing | State::RetryWait => t.open += 1,
        }
        if let Some(w) = wait_ms(r) {
            t.waits += 1;
            t.wait_ms += w;
            self.waits.push(w);
        }
        if let Some(hit) = same_day(r, now) {
            t.same_day.add(hit);
        }
        t.deadlines_missed += u64::from(r.deadline_missed);
        t.attempts += c.finished;
        t.with_calls += u64::from(c.finished > 0);
        if let Some((_, Some(o))) = c.first {
            t.first_attempt.add(o == Outcome::Connected);
        }
        if let (Some((from, to)), Some((start, _))) = (r.told, c.first) {
            let miss = punctuality::judge(Eta { from, to }, start);
            t.punctuality.add(miss.on_time());
            t.miss_ms += i64::try_from(miss.by.as_millis()).unwrap_or(i64::MAX);
        }
    }

    /// The sums (channels named) and the waits' ranks.
    fn finish(mut self, channels: &[String]) -> (Totals, Option<(i64, i64)>) {
        for (name, n) in channels.iter().zip(&self.channels) {
            if *n > 0 {
                *self.t.by_channel.entry(name.clone()).or_default() += n;
            }
        }
        self.waits.sort_unstable();
        let n = self.waits.len() as u64;
        let ranks = (n > 0).then(|| {
            let (p50, p90) = ranks(n);
            let at = |k: u64| self.waits[usize::try_from(k - 1).unwrap_or(0)];
            (at(p50), at(p90))
        });
        (self.t, ranks)
    }
}

fn minutes(d: SignedDuration) -> f64 {
    d.as_secs_f64() / 60.0
}

fn minutes_ms(ms: i64) -> f64 {
    minutes(SignedDuration::from_millis(ms))
}

/// The mean of `n` waits adding up to `sum_ms`, in minutes.
fn mean_ms(n: u64, sum_ms: i64) -> Option<f64> {
    (n > 0).then(|| minutes_ms(sum_ms) / n as f64)
}

/// Per-day and per-hour sums of one section: requests, and the count and sum (ms) of
/// their waits.
#[derive(Debug, Default)]
struct Detail {
    days: BTreeMap<Date, (u64, Share, u64, i64)>,
    /// Weekday (0 = Monday) × hour.
    hours: [[(u64, u64, i64); 24]; 7],
}

/// Computes the report from rows: the query's period and the one before, per service and
/// for all (the supervisor page's figures of today and the tests use it; `callbackd
/// report` reads [`Read`] from the store directly).
///
/// Requests of services not in the query and requests outside the two periods are left
/// out; attempts and SMS rows of requests not in `history.requests` are ignored.
pub fn compute(history: &History, query: &Query, now: Timestamp) -> Report {
    compute_read(&read_rows(history, query, now), query, now)
}

/// One request's attempts folded into [`Calls`], one attempt at a time, in any order.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallsFold {
    calls: Calls,
    /// The finished attempt with the highest `seq` so far, and its outcome.
    last: Option<(i64, Outcome)>,
}

impl CallsFold {
    /// Adds one attempt of the request (its `request_id` is not looked at).
    pub fn add(&mut self, a: &AttemptRow) {
        let c = &mut self.calls;
        if let Some(o) = a.outcome {
            c.finished += 1;
            if o == Outcome::Connected {
                let at = a.answered_at.unwrap_or(a.started_at);
                c.connected_at = Some(c.connected_at.map_or(at, |b| b.max(at)));
            }
            if self.last.is_none_or(|(seq, _)| a.seq > seq) {
                self.last = Some((a.seq, o));
            }
        }
        if a.seq == 1 {
            c.first = Some((a.started_at, a.outcome));
        }
    }

    /// The request's calls.
    pub fn finish(self) -> Calls {
        Calls { declined: matches!(self.last, Some((_, Outcome::Declined))), ..self.calls }
    }
}

/// Builds a [`Read`] from the requests made in a report's two periods, given one at a time
/// with their calls folded, and from their finished attempts and sent SMS counted one by
/// one: the period's requests are kept row by row, the previous period's only summed (its
/// waits kept for the percentiles). Services are indices in [`Query::services`]; a request
/// of another index is left out.
#[derive(Debug)]
pub struct Fold {
    now: Timestamp,
    read: Read,
    /// The previous period's sums: one per service, then one for all.
    previous: Vec<Acc>,
    /// Finished attempts per service, period (`[previous, current]`) and outcome (its
    /// index in [`Outcome::ALL`]).
    outcomes: Vec<[[u64; Outcome::ALL.len()]; 2]>,
    /// The previous period's SMS sent per service and kind.
    previous_sms: Vec<BTreeMap<String, u64>>,
}

impl Fold {
    /// An empty fold of a report of `services` services, made at `now` (which decides the
    /// requests still undecided).
    pub fn new(services: usize, now: Timestamp) -> Fold {
        Fold {
            now,
            read: Read { tally: vec![Tally::default(); services], ..Read::default() },
            previous: (0..=services).map(|_| Acc::default()).collect(),
            outcomes: vec![[[0; Outcome::ALL.len()]; 2]; services],
            previous_sms: vec![BTreeMap::new(); services],
        }
    }

    /// The index of the channel `name` in [`Read::channels`], added if new (a store has a
    /// handful of channels: a linear search, no allocation once seen).
    pub fn channel(&mut self, name: &str) -> usize {
        let channels = &mut self.read.channels;
        channels.iter().position(|c| c == name).unwrap_or_else(|| {
            channels.push(name.to_owned());
            channels.len() - 1
        })
    }

    /// One request, of the period (`current`) or of the previous one.
    pub fn request(&mut self, r: Served, current: bool) {
        let n = self.read.tally.len();
        if r.service >= n {
            return;
        }
        if current {
            self.read.current.push(r);
        } else {
            self.previous[r.service].add(&r, self.now);
            self.previous[n].add(&r, self.now);
        }
    }

    /// One finished attempt of a request of `service`, of the period (`current`) or of the
    /// previous one.
    pub fn outcome(&mut self, service: usize, current: bool, outcome: Outcome) {
        if let Some(counts) = self.outcomes.get_mut(service) {
            let i = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
            counts[usize::from(current)][i] += 1;
        }
    }

    /// `count` SMS of `kind` sent for requests of `service`, of the period (`current`) or
    /// of the previous one.
    pub fn sms(&mut self, service: usize, current: bool, kind: &str, count: u64) {
        let map = if current {
            self.read.tally.get_mut(service).map(|t| &mut t.sms_sent)
        } else {
            self.previous_sms.get_mut(service)
        };
        if let Some(map) = map {
            match map.get_mut(kind) {
                Some(c) => *c += count,
                None => {
                    map.insert(kind.to_owned(), count);
                }
            }
        }
    }

    /// What [`compute_read`] takes.
    pub fn finish(self) -> Read {
        let Fold { mut read, previous, outcomes, mut previous_sms, .. } = self;
        let n = read.tally.len();
        let named = |counts: &[u64; Outcome::ALL.len()]| -> BTreeMap<String, u64> {
            Outcome::ALL
                .iter()
                .zip(counts)
                .filter(|(_, c)| **c > 0)
                .map(|(o, c)| (o.as_str().to_owned(), *c))
                .collect()
        };
        read.previous =
            Aggregate { services: Vec::with_capacity(n), ranks: Vec::with_capacity(n + 1) };
        for (i, acc) in previous.into_iter().enumerate() {
            let (mut totals, ranks) = acc.finish(&read.channels);
            read.previous.ranks.push(ranks);
            if let (Some(counts), Some(sms)) = (outcomes.get(i), previous_sms.get_mut(i)) {
                totals.outcomes = named(&counts[0]);
                totals.sms_sent = std::mem::take(sms);
                read.previous.services.push(totals);
            }
        }
        for (t, counts) in read.tally.iter_mut().zip(&outcomes) {
            t.outcomes = named(&counts[1]);
        }
        read
    }
}

/// Folds rows into what [`compute_read`] takes, through the same [`Fold`] as the store's
/// report read, so the two can be compared.
pub fn read_rows(history: &History, query: &Query, now: Timestamp) -> Read {
    let (cur_from, cur_to) = query.period.instants(&query.tz);
    let (prev_from, _) = query.period.previous().instants(&query.tz);
    let mut calls: HashMap<i64, CallsFold> = HashMap::with_capacity(history.requests.len());
    for a in &history.attempts {
        calls.entry(a.request_id).or_default().add(a);
    }
    let index: HashMap<&str, usize> =
        query.services.iter().enumerate().map(|(i, s)| (s.as_str(), i)).collect();
    let mut fold = Fold::new(query.services.len(), now);
    let mut which: HashMap<i64, (usize, bool)> = HashMap::new();
    for r in &history.requests {
        let Some(&service) = index.get(r.service.as_str()) else { continue };
        let current = r.created_at >= cur_from && r.created_at < cur_to;
        let previous = r.created_at >= prev_from && r.created_at < cur_from;
        if !current && !previous {
            continue;
        }
        which.insert(r.id, (service, current));
        let served = Served {
            service,
            channel: fold.channel(&r.channel),
            state: r.state,
            created_at: r.created_at,
            deadline_at: r.deadline_at,
            deadline_missed: r.deadline_missed,
            told: r.told,
            calls: calls.get(&r.id).copied().unwrap_or_default().finish(),
        };
        fold.request(served, current);
    }
    for s in history.sms.iter().filter(|s| s.state == "sent") {
        if let Some(&(service, current)) = which.get(&s.request_id) {
            fold.sms(service, current, &s.kind, 1);
        }
    }
    for a in &history.attempts {
        if let (Some(&(service, current)), Some(o)) = (which.get(&a.request_id), a.outcome) {
            fold.outcome(service, current, o);
        }
    }
    fold.finish()
}

/// Computes the report from what the store read: the query's period row by row, the
/// previous one as sums.
pub fn compute_read(read: &Read, query: &Query, now: Timestamp) -> Report {
    let previous = query.period.previous();
    let n = query.services.len();
    let mut cur: Vec<Acc> = (0..=n).map(|_| Acc::default()).collect();
    let mut detail: Vec<Detail> = (0..=n).map(|_| Detail::default()).collect();
    for r in &read.current {
        let i = r.service;
        if i >= n {
            continue;
        }
        cur[i].add(r, now);
        cur[n].add(r, now);
        let local = query.tz.to_datetime(r.created_at);
        let wait = wait_ms(r);
        let hit = same_day(r, now);
        let wd = usize::from(local.weekday().to_monday_zero_offset().unsigned_abs());
        let hour = usize::from(local.hour().unsigned_abs());
        for j in [i, n] {
            let d = &mut detail[j];
            let day = d.days.entry(local.date()).or_default();
            day.0 += 1;
            if let Some(hit) = hit {
                day.1.add(hit);
            }
            let cell = &mut d.hours[wd.min(6)][hour.min(23)];
            cell.0 += 1;
            if let Some(w) = wait {
                day.2 += 1;
                day.3 += w;
                cell.1 += 1;
                cell.2 += w;
            }
        }
    }
    let mut all_prev = Totals::default();
    for t in &read.previous.services {
        all_prev.merge(t);
    }
    let mut sections = Vec::new();
    let mut all_cur = None;
    let mut parts = Vec::with_capacity(n);
    for (i, (acc, d)) in cur.into_iter().zip(detail).enumerate() {
        let (mut totals, ranks) = acc.finish(&read.channels);
        if i < n {
            if let Some(t) = read.tally.get(i) {
                totals.outcomes.clone_from(&t.outcomes);
                totals.sms_sent.clone_from(&t.sms_sent);
            }
            let prev = read.previous.services.get(i).cloned().unwrap_or_default();
            let prev_ranks = read.previous.ranks.get(i).copied().flatten();
            parts.push((totals.figures(ranks), prev.figures(prev_ranks), d));
        } else {
            for t in &read.tally {
                let empty = Totals {
                    outcomes: t.outcomes.clone(),
                    sms_sent: t.sms_sent.clone(),
                    ..Totals::default()
                };
                totals.merge(&empty);
            }
            let prev_ranks = read.previous.ranks.get(n).copied().flatten();
            all_cur =
                Some((totals.figures(ranks), std::mem::take(&mut all_prev).figures(prev_ranks), d));
        }
    }
    let mut push = |service: Option<String>, (current, previous, d): (Figures, Figures, Detail)| {
        sections.push(Section {
            service,
            current,
            previous,
            days: days(&query.period, d.days),
            hour_of_day: hour_of_day(&d.hours),
            hours: hours(&d.hours),
        });
    };
    if n > 1 {
        if let Some(all) = all_cur {
            push(None, all);
        }
    }
    for (s, part) in query.services.iter().zip(parts) {
        push(Some(s.clone()), part);
    }
    Report {
        period: query.period,
        period_name: query.period.to_string(),
        previous,
        previous_name: previous.to_string(),
        time_zone: query.tz.iana_name().unwrap_or("UTC").to_owned(),
        generated_at: now,
        sections,
    }
}

fn days(period: &Period, mut sums: BTreeMap<Date, (u64, Share, u64, i64)>) -> Vec<Day> {
    period
        .dates()
        .map(|date| {
            let (requests, mut same_day, connected, wait_ms) =
                sums.remove(&date).unwrap_or_default();
            same_day.finish();
            Day {
                date,
                requests,
                connected,
                same_day,
                mean_to_callback_min: mean_ms(connected, wait_ms),
            }
        })
        .collect()
}

fn hours(sums: &[[(u64, u64, i64); 24]; 7]) -> Vec<HourCell> {
    let mut out = Vec::with_capacity(7 * 24);
    for (wd, day) in (1..=7).zip(sums) {
        for (hour, &(requests, n, sum)) in (0..24).zip(day) {
            out.push(cell(wd, hour, requests, n, sum));
        }
    }
    out
}

fn hour_of_day(sums: &[[(u64, u64, i64); 24]; 7]) -> Vec<HourCell> {
    (0..24_i8)
        .map(|hour| {
            let (mut requests, mut n, mut sum) = (0, 0, 0);
            for day in sums {
                let c = day[usize::from(hour.unsigned_abs())];
                requests += c.0;
                n += c.1;
                sum += c.2;
            }
            cell(0, hour, requests, n, sum)
        })
        .collect()
}

fn cell(weekday: i8, hour: i8, requests: u64, connected: u64, sum_ms: i64) -> HourCell {
    HourCell {
        weekday,
        hour,
        requests,
        connected,
        mean_to_callback_min: mean_ms(connected, sum_ms),
    }
}

/// The English short name of an ISO weekday number (1 = Monday): the CSV keys' (`Mon.08`),
/// in every language.
pub fn weekday(n: i8) -> &'static str {
    crate::lang::Lang::En.weekday(usize::try_from(n - 1).unwrap_or(0))
}

#[cfg(test)]
mod tests;

//! Supervisors' reports (`callbackd report`): every figure of a period and of the period
//! before it, per service and for all services, from plain rows the store reads.
//!
//! Pure: [`compute`] takes the rows ([`History`]), the period and `now`, and returns a
//! [`Report`] the renderers ([`render`], [`html`]) print; nothing here reads a clock or the
//! store. Rows carry no phone numbers: a report only counts.
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
//!   miss is the mean distance to the nearer edge of the window for the calls outside it;
//! - *SMS sent*: outbox rows in state `sent`, by kind.

pub mod html;
pub mod live;
pub mod period;
pub mod render;

pub use period::{Kind, Period, PeriodError};

use crate::policy::Outcome;
use crate::policy::lifecycle::State;
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

/// What one request contributes, folded from its attempts.
#[derive(Debug, Clone, Copy, Default)]
struct Calls {
    finished: u64,
    first: Option<(Timestamp, Option<Outcome>)>,
    connected_at: Option<Timestamp>,
    last: Option<(i64, Outcome)>,
}

/// Sums that become [`Figures`].
#[derive(Debug, Default)]
struct Acc {
    f: Figures,
    waits: Vec<f64>,
    with_calls: u64,
    misses: Vec<f64>,
}

impl Acc {
    fn add(&mut self, r: &RequestRow, c: &Calls, now: Timestamp) {
        let f = &mut self.f;
        f.requests += 1;
        *f.by_channel.entry(r.channel.clone()).or_default() += 1;
        let declined = matches!(c.last, Some((_, Outcome::Declined)));
        match r.state {
            State::Connected => f.connected += 1,
            State::Unreachable => f.unreachable += 1,
            State::Expired => f.expired += 1,
            State::Cancelled if declined => f.declined += 1,
            State::Cancelled => f.cancelled += 1,
            State::Pending | State::Dialing | State::RetryWait => f.open += 1,
        }
        let contacted = c.connected_at.filter(|_| r.state == State::Connected);
        if let Some(at) = contacted {
            self.waits.push(minutes(at.duration_since(r.created_at)));
        }
        let waiting = matches!(r.state, State::Pending | State::Dialing | State::RetryWait);
        let undecided = waiting && r.deadline_at > now;
        if r.state != State::Cancelled && !undecided {
            f.same_day.add(contacted.is_some_and(|at| at <= r.deadline_at));
        }
        f.deadlines_missed += u64::from(r.deadline_missed);
        f.attempts += c.finished;
        if c.finished > 0 {
            self.with_calls += 1;
        }
        if let Some((_, Some(o))) = c.first {
            f.first_attempt.add(o == Outcome::Connected);
        }
        if let (Some((from, to)), Some((start, _))) = (r.told, c.first) {
            let inside = start >= from && start <= to;
            f.punctuality.add(inside);
            if !inside {
                let miss = if start < from {
                    from.duration_since(start)
                } else {
                    start.duration_since(to)
                };
                self.misses.push(minutes(miss));
            }
        }
    }

    fn finish(mut self) -> Figures {
        let f = &mut self.f;
        f.to_callback = spread(&mut self.waits);
        f.same_day.finish();
        f.first_attempt.finish();
        f.punctuality.finish();
        f.attempts_per_request =
            (self.with_calls > 0).then(|| f.attempts as f64 / self.with_calls as f64);
        f.mean_miss_min = mean(&self.misses);
        self.f
    }
}

fn minutes(d: SignedDuration) -> f64 {
    d.as_secs_f64() / 60.0
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// Mean and nearest-rank percentiles; `None` for no values.
fn spread(xs: &mut [f64]) -> Option<Spread> {
    let mean_min = mean(xs)?;
    xs.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let i = (p * xs.len() as f64).ceil() as usize;
        xs[i.clamp(1, xs.len()) - 1]
    };
    Some(Spread { n: xs.len() as u64, mean_min, p50_min: rank(0.5), p90_min: rank(0.9) })
}

/// Per-day and per-hour sums of one section.
#[derive(Debug, Default)]
struct Detail {
    days: BTreeMap<Date, (u64, u64, Share, Vec<f64>)>,
    hours: HashMap<(i8, i8), (u64, Vec<f64>)>,
}

/// Computes the report: the query's period and the one before, per service and for all.
///
/// Requests of services not in the query and requests outside the two periods are left
/// out; attempts and SMS rows of requests not in `history.requests` are ignored.
pub fn compute(history: &History, query: &Query, now: Timestamp) -> Report {
    let previous = query.period.previous();
    let (cur_from, cur_to) = query.period.instants(&query.tz);
    let (prev_from, _) = previous.instants(&query.tz);
    let mut calls: HashMap<i64, Calls> = HashMap::with_capacity(history.requests.len());
    for a in &history.attempts {
        let c = calls.entry(a.request_id).or_default();
        if let Some(o) = a.outcome {
            c.finished += 1;
            if o == Outcome::Connected {
                c.connected_at = Some(a.answered_at.unwrap_or(a.started_at));
            }
            if c.last.is_none_or(|(seq, _)| a.seq > seq) {
                c.last = Some((a.seq, o));
            }
        }
        if a.seq == 1 {
            c.first = Some((a.started_at, a.outcome));
        }
    }
    let index: HashMap<&str, usize> =
        query.services.iter().enumerate().map(|(i, s)| (s.as_str(), i)).collect();
    let n = query.services.len();
    let mut cur: Vec<Acc> = (0..=n).map(|_| Acc::default()).collect();
    let mut prev: Vec<Acc> = (0..=n).map(|_| Acc::default()).collect();
    let mut detail: Vec<Detail> = (0..=n).map(|_| Detail::default()).collect();
    let mut sent: HashMap<i64, (usize, bool)> = HashMap::new();
    let none = Calls::default();
    for r in &history.requests {
        let Some(&i) = index.get(r.service.as_str()) else { continue };
        let current = r.created_at >= cur_from && r.created_at < cur_to;
        let previous = r.created_at >= prev_from && r.created_at < cur_from;
        if !current && !previous {
            continue;
        }
        sent.insert(r.id, (i, current));
        let c = calls.get(&r.id).unwrap_or(&none);
        let accs = if current { &mut cur } else { &mut prev };
        accs[i].add(r, c, now);
        accs[n].add(r, c, now);
        if current {
            let local = r.created_at.to_zoned(query.tz.clone());
            let wait = c
                .connected_at
                .filter(|_| r.state == State::Connected)
                .map(|at| minutes(at.duration_since(r.created_at)));
            for j in [i, n] {
                let d = &mut detail[j];
                let day = d.days.entry(local.date()).or_default();
                day.0 += 1;
                day.1 += u64::from(wait.is_some());
                let waiting = matches!(r.state, State::Pending | State::Dialing | State::RetryWait);
                if r.state != State::Cancelled && !(waiting && r.deadline_at > now) {
                    let hit = c.connected_at.is_some_and(|at| at <= r.deadline_at)
                        && r.state == State::Connected;
                    day.2.add(hit);
                }
                day.3.extend(wait);
                let cell = d
                    .hours
                    .entry((local.weekday().to_monday_one_offset(), local.hour()))
                    .or_default();
                cell.0 += 1;
                cell.1.extend(wait);
            }
        }
    }
    for s in &history.sms {
        if s.state != "sent" {
            continue;
        }
        let Some(&(i, current)) = sent.get(&s.request_id) else { continue };
        let accs = if current { &mut cur } else { &mut prev };
        for j in [i, n] {
            *accs[j].f.sms_sent.entry(s.kind.clone()).or_default() += 1;
        }
    }
    // Attempts' outcomes, by the section and period of their request.
    for a in &history.attempts {
        let (Some(o), Some(&(i, current))) = (a.outcome, sent.get(&a.request_id)) else {
            continue;
        };
        let accs = if current { &mut cur } else { &mut prev };
        for j in [i, n] {
            *accs[j].f.outcomes.entry(o.as_str().to_owned()).or_default() += 1;
        }
    }
    let mut sections = Vec::new();
    let mut parts: Vec<_> = cur.into_iter().zip(prev).zip(detail).collect();
    let all = parts.pop();
    let mut push = |service: Option<String>, ((c, p), d): ((Acc, Acc), Detail)| {
        sections.push(Section {
            service,
            current: c.finish(),
            previous: p.finish(),
            days: days(&query.period, d.days),
            hour_of_day: hour_of_day(&d.hours),
            hours: hours(d.hours),
        });
    };
    if n > 1 {
        if let Some(all) = all {
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

fn days(period: &Period, mut sums: BTreeMap<Date, (u64, u64, Share, Vec<f64>)>) -> Vec<Day> {
    period
        .dates()
        .map(|date| {
            let (requests, connected, mut same_day, waits) = sums.remove(&date).unwrap_or_default();
            same_day.finish();
            Day { date, requests, connected, same_day, mean_to_callback_min: mean(&waits) }
        })
        .collect()
}

fn hours(mut sums: HashMap<(i8, i8), (u64, Vec<f64>)>) -> Vec<HourCell> {
    let mut out = Vec::with_capacity(7 * 24);
    for wd in 1..=7 {
        for hour in 0..24 {
            let (requests, waits) = sums.remove(&(wd, hour)).unwrap_or_default();
            out.push(cell(wd, hour, requests, &waits));
        }
    }
    out
}

fn hour_of_day(sums: &HashMap<(i8, i8), (u64, Vec<f64>)>) -> Vec<HourCell> {
    (0..24)
        .map(|hour| {
            let mut requests = 0;
            let mut waits = Vec::new();
            for wd in 1..=7 {
                if let Some((n, w)) = sums.get(&(wd, hour)) {
                    requests += n;
                    waits.extend_from_slice(w);
                }
            }
            cell(0, hour, requests, &waits)
        })
        .collect()
}

fn cell(weekday: i8, hour: i8, requests: u64, waits: &[f64]) -> HourCell {
    HourCell {
        weekday,
        hour,
        requests,
        connected: waits.len() as u64,
        mean_to_callback_min: mean(waits),
    }
}

/// The English short name of an ISO weekday number (1 = Monday).
pub fn weekday(n: i8) -> &'static str {
    ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][usize::try_from(n - 1).unwrap_or(0).min(6)]
}

/// The English short name of a date's weekday.
pub fn weekday_of(d: Date) -> &'static str {
    weekday(d.weekday().to_monday_one_offset())
}

#[cfg(test)]
mod tests;

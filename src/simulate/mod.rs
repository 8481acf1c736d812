//! `callbackd simulate`: days of a service on a virtual clock, with simulated patients and
//! nurses, decided by the daemon's own code.
//!
//! What is real and what is simulated:
//! - Real: the dialplan (hours, holidays, windows, attempt rules), intake
//!   ([`crate::intake::validate`], [`lifecycle::intake`]), every change of a request
//!   ([`lifecycle::step`]: serve, attempt outcomes, deadline, expiry), the serving order
//!   ([`ServingKey`], which the store's SQL follows), the free call slots
//!   ([`admit::free`]) and the ETA told at intake ([`crate::eta::rate_of`],
//!   [`crate::policy::eta`], the same computation the API's intake answer makes).
//! - Simulated: arrivals (per weekday and hour from a CSV, Poisson-drawn), patients
//!   (answer with `answer_rate`; otherwise busy, no answer or voicemail) and nurses (the
//!   service's capacity each hour; a connected callback keeps its nurse for a handle
//!   time drawn around `handle`).
//!
//! The loop is the scheduler's turn ([`crate::scheduler`]) without the store: flag missed
//! deadlines, expire, then serve due requests in serving order while slots are free. It
//! is discrete-event: the clock jumps to the next arrival, call end, due time, deadline,
//! expiry or change of staffing. Two seeded generators (arrivals, calls) make a run
//! reproducible, and keep the arrivals identical when only the staffing changes.

mod report;

pub use report::{ByDay, ByHour, Report, Totals};

use crate::calendar::DayRange;
use crate::dialplan::{Service, Services};
use crate::intake::{self, RawRequest};
use crate::policy::lifecycle::{self, Event, Facts, Rules, Served, ServingKey, State, Transition};
use crate::policy::{self, AttemptRecord, Eta, Outcome, admit};
use jiff::civil::{Date, Weekday};
use jiff::{SignedDuration, Timestamp, ToSpan};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};
use std::fmt;

/// The example arrivals shipped with the repository (`examples/arrivals.csv`).
pub const DEFAULT_ARRIVALS: &str = include_str!("../../examples/arrivals.csv");

/// Mean requests per weekday (Monday first) and local hour.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrivals(pub [[f64; 24]; 7]);

/// Nurses (call slots) per weekday (Monday first) and local hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staffing(pub [[u32; 24]; 7]);

impl Staffing {
    /// The same number every hour.
    pub fn constant(n: u32) -> Staffing {
        Staffing([[n; 24]; 7])
    }
}

/// A line of a CSV file that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct CsvError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

fn weekday_index(s: &str) -> Option<usize> {
    let names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    names.iter().position(|n| s.eq_ignore_ascii_case(n))
}

/// Reads `weekday,hour,value` lines (a header line and `#` comments are skipped);
/// weekday is `mon`…`sun`, hour 0–23. Missing cells are 0.
fn read_table(src: &str, what: &str) -> Result<[[f64; 24]; 7], CsvError> {
    let mut t = [[0.0; 24]; 7];
    let mut seen = [[false; 24]; 7];
    for (i, raw) in src.lines().enumerate() {
        let line = raw.trim();
        let err = |message: String| CsvError { line: i + 1, message };
        if line.is_empty() || line.starts_with('#') || line.starts_with("weekday") {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let [day, hour, value] = cells[..] else {
            return Err(err(format!("expected weekday,hour,{what}; got {line:?}")));
        };
        let d = weekday_index(day)
            .ok_or_else(|| err(format!("weekday {day:?} is not one of mon … sun")))?;
        let h = hour
            .parse::<usize>()
            .ok()
            .filter(|h| *h < 24)
            .ok_or_else(|| err(format!("hour {hour:?} is not 0–23")))?;
        let v = value
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| err(format!("{what} {value:?} is not a number ≥ 0")))?;
        if std::mem::replace(&mut seen[d][h], true) {
            return Err(err(format!("{day} {h} is listed twice")));
        }
        t[d][h] = v;
    }
    Ok(t)
}

impl Arrivals {
    /// Parses `weekday,hour,requests` (mean requests in that hour).
    pub fn parse(src: &str) -> Result<Arrivals, CsvError> {
        read_table(src, "requests").map(Arrivals)
    }

    /// The mean requests of a week.
    pub fn weekly(&self) -> f64 {
        self.0.iter().flatten().sum()
    }

    /// The same shape scaled to `per_week` requests a week.
    pub fn scaled(&self, per_week: f64) -> Arrivals {
        let k = if self.weekly() > 0.0 { per_week / self.weekly() } else { 0.0 };
        Arrivals(self.0.map(|d| d.map(|v| v * k)))
    }
}

impl Staffing {
    /// Parses `weekday,hour,nurses`.
    pub fn parse(src: &str) -> Result<Staffing, CsvError> {
        let t = read_table(src, "nurses")?;
        Ok(Staffing(t.map(|d| d.map(|v| v.round() as u32))))
    }
}

/// The serving order the simulated scheduler follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// The daemon's order: earliest same-day deadline first ([`ServingKey`]).
    Deadline,
    /// First come, first served, as contact centres queue: a new request by the time it
    /// was made, a retry at the back of the queue by the time it became due again
    /// ([`fifo_key`]). For comparison only: the daemon serves deadline first.
    Fifo,
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Order::Deadline => "deadline",
            Order::Fifo => "fifo",
        })
    }
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Params {
    /// First local day.
    pub start: Date,
    /// Days with arrivals (the run goes on until every request has ended).
    pub days: u32,
    /// Mean arrivals per weekday and hour.
    pub arrivals: Arrivals,
    /// Nurses per weekday and hour: the service's capacity.
    pub nurses: Staffing,
    /// Mean time a nurse spends on a connected callback.
    pub handle: SignedDuration,
    /// Probability that the patient answers and confirms an attempt.
    pub answer_rate: f64,
    /// Share of requests choosing one of the service's windows (if it offers any).
    pub window_share: f64,
    /// The seed of both generators.
    pub seed: u64,
    /// Serving order.
    pub order: Order,
}

/// Why a simulation cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// A generated request was refused by intake (a dialplan that never opens, …).
    #[error("intake refused a simulated request: {0}")]
    Intake(String),
    /// A parameter is out of range.
    #[error("{0}")]
    Param(String),
}

/// One simulated request.
#[derive(Debug, Clone)]
struct Req {
    id: i64,
    created: Timestamp,
    window: Option<DayRange>,
    state: State,
    due: Option<Timestamp>,
    deadline: Timestamp,
    expires: Timestamp,
    counted: u8,
    deadline_missed: bool,
    cancel_requested: bool,
    attempts: Vec<AttemptRecord>,
    told: Option<Eta>,
    told_same_day: bool,
    /// Starts of its attempts.
    calls: Vec<Timestamp>,
    connected_at: Option<Timestamp>,
    ended_at: Option<Timestamp>,
}

impl Req {
    fn facts(&self) -> Facts<'_> {
        Facts {
            id: self.id,
            state: self.state,
            created_at: self.created,
            window: self.window,
            due: self.due,
            deadline: self.deadline,
            expires: self.expires,
            counted: self.counted,
            cancel_requested: self.cancel_requested,
            deadline_missed: self.deadline_missed,
            sms_consent: false,
            attempts: &self.attempts,
        }
    }
}

/// One attempt's start, for the invariant checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallStart {
    /// The request.
    pub request: i64,
    /// When the attempt started.
    pub at: Timestamp,
    /// The patient's window.
    pub window: Option<DayRange>,
}

/// Something that happens at an instant (ordered for the heap: time, then sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// The `n`-th drawn arrival.
    Arrival(usize),
    /// An attempt ends with its outcome, the slot freed after `hold`.
    AttemptEnd { idx: usize, outcome: OutcomeKey, hold_secs: i64 },
    /// A nurse finished a connected callback.
    SlotFree,
}

/// [`Outcome`] as an orderable key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum OutcomeKey {
    Connected,
    Busy,
    NoAnswer,
    NotConfirmed,
}

impl OutcomeKey {
    fn outcome(self) -> Outcome {
        match self {
            OutcomeKey::Connected => Outcome::Connected,
            OutcomeKey::Busy => Outcome::Busy,
            OutcomeKey::NoAnswer => Outcome::NoAnswer,
            OutcomeKey::NotConfirmed => Outcome::NotConfirmed,
        }
    }
}

/// How a failed attempt fails: busy, no answer (rings out), voicemail (not confirmed).
const BUSY_SHARE: f64 = 0.35;
const NO_ANSWER_SHARE: f64 = 0.50;
/// Seconds an answered attempt rings and plays its prompt before the hand-over.
const ANSWER_SECS: (i64, i64) = (8, 25);
/// Seconds a busy attempt takes.
const BUSY_SECS: i64 = 3;
/// Seconds a voicemail attempt takes before it ends unconfirmed.
const VOICEMAIL_SECS: i64 = 35;
/// Spread of handle times (σ of the log-normal).
const HANDLE_SIGMA: f64 = 0.35;

/// The serving-order key of a request under `order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Deadline(ServingKey),
    Fifo(Timestamp, i64),
}

/// The first-come-first-served key of a request: when it joined the queue (made, or, for
/// a retry, due again: a retry goes to the back of the queue), then its id.
pub fn fifo_key(
    created: Timestamp,
    due: Option<Timestamp>,
    tried: bool,
    id: i64,
) -> (Timestamp, i64) {
    match (tried, due) {
        (true, Some(due)) => (due.max(created), id),
        (false, _) | (true, None) => (created, id),
    }
}

/// The whole state of a run.
struct Sim<'a> {
    svc: &'a Service,
    services: &'a Services,
    params: &'a Params,
    reqs: Vec<Req>,
    /// Waiting requests in serving order.
    queue: BTreeSet<(Key, usize)>,
    /// Those of them waiting for a retry.
    retrying: usize,
    /// Waiting requests by due time.
    by_due: BTreeSet<(Timestamp, usize)>,
    /// Waiting requests by expiry.
    by_expiry: BTreeSet<(Timestamp, usize)>,
    /// Live requests whose deadline is not flagged yet.
    by_deadline: BTreeSet<(Timestamp, usize)>,
    events: BinaryHeap<Reverse<(Timestamp, u64, Ev)>>,
    seq: u64,
    /// Calls and connected callbacks holding a nurse.
    active: usize,
    /// Connected callbacks of the last two hours (for the ETA's rate).
    recent: VecDeque<Timestamp>,
    calls_rng: StdRng,
    /// Nurse-seconds spent on calls, by local date.
    busy: std::collections::BTreeMap<Date, f64>,
    starts: Vec<CallStart>,
    turns: u64,
}

/// The result of a run: the report and every attempt start (for checks).
#[derive(Debug, Clone)]
pub struct Run {
    /// The figures.
    pub report: Report,
    /// Every attempt's start.
    pub starts: Vec<CallStart>,
    /// Every request, in the order made.
    pub requests: Vec<Ended>,
}

/// How one simulated request went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// Id (1 = first made).
    pub id: i64,
    /// Made at.
    pub created: Timestamp,
    /// Its window.
    pub window: Option<DayRange>,
    /// Its same-day deadline.
    pub deadline: Timestamp,
    /// Its state at the end of the run.
    pub state: State,
    /// Its first call.
    pub first_call: Option<Timestamp>,
    /// When it ended.
    pub ended_at: Option<Timestamp>,
}

/// Draws a Poisson count with mean `mean`.
fn poisson(rng: &mut StdRng, mean: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    if mean > 30.0 {
        let n = mean + mean.sqrt() * normal(rng);
        return n.round().max(0.0) as u64;
    }
    let l = (-mean).exp();
    let mut k = 0u64;
    let mut p = 1.0;
    loop {
        p *= rng.random::<f64>();
        if p <= l {
            return k;
        }
        k += 1;
    }
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn weekday_ix(w: Weekday) -> usize {
    usize::try_from(w.to_monday_zero_offset()).unwrap_or(0)
}

/// Draws the arrival instants of the run (sorted) with the windows patients choose.
fn draw_arrivals(
    svc: &Service,
    p: &Params,
) -> Result<Vec<(Timestamp, Option<DayRange>)>, SimError> {
    let mut rng = StdRng::seed_from_u64(p.seed);
    let tz = svc.calendar.tz();
    let mut out = Vec::new();
    for d in 0..p.days {
        let date = p
            .start
            .checked_add(i64::from(d).days())
            .map_err(|e| SimError::Param(format!("--days: {e}")))?;
        let wd = weekday_ix(date.weekday());
        for h in 0..24i8 {
            let start = date
                .at(h, 0, 0, 0)
                .to_zoned(tz.clone())
                .map_err(|e| SimError::Param(format!("{date} {h}:00: {e}")))?
                .timestamp();
            let n = poisson(&mut rng, p.arrivals.0[wd][usize::try_from(h).unwrap_or(0)]);
            for _ in 0..n {
                let offset = rng.random_range(0..3600i64);
                let at = start + SignedDuration::from_secs(offset);
                let window = if !svc.windows.is_empty() && rng.random::<f64>() < p.window_share {
                    Some(svc.windows[rng.random_range(0..svc.windows.len())])
                } else {
                    None
                };
                out.push((at, window));
            }
        }
    }
    out.sort_by_key(|(t, _)| *t);
    Ok(out)
}

impl<'a> Sim<'a> {
    fn push(&mut self, at: Timestamp, ev: Ev) {
        self.seq += 1;
        self.events.push(Reverse((at, self.seq, ev)));
    }

    fn key(&self, idx: usize) -> Key {
        let r = &self.reqs[idx];
        match self.params.order {
            Order::Deadline => Key::Deadline(r.facts().serving_key()),
            Order::Fifo => {
                let (at, id) = fifo_key(r.created, r.due, !r.attempts.is_empty(), r.id);
                Key::Fifo(at, id)
            }
        }
    }

    fn nurses(&self, t: Timestamp) -> u32 {
        let z = t.to_zoned(self.svc.calendar.tz().clone());
        let wd = weekday_ix(z.weekday());
        self.params.nurses.0[wd][usize::try_from(z.hour()).unwrap_or(0)]
    }

    /// The scheduler's rules, without the survey SMS (not simulated).
    fn rules(&self) -> Rules<'a> {
        Rules { survey: None, ..crate::scheduler::rules_of(self.svc) }
    }

    /// Removes a request from the waiting indexes.
    fn unindex(&mut self, idx: usize) {
        let key = self.key(idx);
        let r = &self.reqs[idx];
        if self.queue.remove(&(key, idx)) && r.state == State::RetryWait {
            self.retrying -= 1;
        }
        if let Some(d) = r.due {
            self.by_due.remove(&(d, idx));
        }
        self.by_expiry.remove(&(r.expires, idx));
    }

    /// Adds a waiting request to the indexes.
    fn index(&mut self, idx: usize) {
        let key = self.key(idx);
        let r = &self.reqs[idx];
        if r.state.is_waiting() {
            if self.queue.insert((key, idx)) && r.state == State::RetryWait {
                self.retrying += 1;
            }
            if let Some(d) = r.due {
                self.by_due.insert((d, idx));
            }
            self.by_expiry.insert((r.expires, idx));
        }
    }

    /// Writes a transition, as the store does.
    fn apply(&mut self, idx: usize, t: &Transition, now: Timestamp) {
        self.unindex(idx);
        let r = &mut self.reqs[idx];
        if let Some(end) = t.attempt {
            r.attempts.push(AttemptRecord { ended_at: now, outcome: end.outcome });
        }
        r.state = t.to;
        r.due = t.due;
        r.counted = t.counted;
        r.cancel_requested |= t.cancel_requested;
        if t.deadline_missed {
            r.deadline_missed = true;
        }
        if r.deadline_missed || t.to.is_final() {
            self.by_deadline.remove(&(r.deadline, idx));
        }
        if t.ends() {
            r.ended_at = Some(now);
            if t.to == State::Connected {
                r.connected_at = Some(now);
                self.recent.push_back(now);
            }
        }
        self.index(idx);
    }

    fn decide(&mut self, idx: usize, event: Event<'_>, now: Timestamp) {
        let rules = self.rules();
        if let Ok(t) = lifecycle::step(Some(&rules), &self.reqs[idx].facts(), event, now) {
            self.apply(idx, &t, now);
        }
    }

    /// A patient leaves a request: the daemon's intake, then the ETA its answer tells.
    fn arrive(&mut self, at: Timestamp, window: Option<DayRange>) -> Result<(), SimError> {
        let id = i64::try_from(self.reqs.len()).unwrap_or(i64::MAX) + 1;
        let raw = RawRequest {
            service: self.svc.id.clone(),
            number: format!("+35850{:07}", 1_000_000 + id),
            window: window.map(|w| w.to_string()),
            lang: None,
            sms_consent: Some(false),
            channel: Some("web".to_owned()),
            team: None,
        };
        let accepted = intake::validate(self.services, &raw, "web", at)
            .map_err(|e| SimError::Intake(e.to_string()))?;
        let plan = accepted.plan;
        let written = lifecycle::intake(&plan, "web", false, at);
        // The intake answer's ETA: every waiting request counts as ahead, those waiting for
        // a retry apart, at the recent rate (the API's computation, see `crate::eta`).
        let ahead = crate::eta::ahead_of_counts(
            i64::try_from(self.queue.len()).unwrap_or(i64::MAX),
            i64::try_from(self.retrying).unwrap_or(0),
        );
        while self.recent.front().is_some_and(|t| at.duration_since(*t).as_secs() > 2 * 3600) {
            self.recent.pop_front();
        }
        // The daemon's capacity is the dialplan's, the same at every hour; here it follows
        // the nurses, so the capacity that serves the request is the one at its first start
        // moment (a request made on Saturday is served by Monday's nurses).
        let serves = policy::first_start(
            &self.svc.calendar,
            &self.svc.attempts,
            accepted.request.window,
            at,
        )
        .unwrap_or(at);
        let rate = crate::eta::rate_of(self.recent.len() as i64, self.nurses(serves).max(1));
        let told = policy::eta(
            &self.svc.calendar,
            &self.svc.attempts,
            accepted.request.window,
            &plan,
            at,
            ahead,
            rate,
        );
        let req = Req {
            id,
            created: at,
            window: accepted.request.window,
            state: written.to,
            due: Some(written.due),
            deadline: plan.deadline,
            expires: plan.expires,
            counted: plan.counted,
            deadline_missed: false,
            cancel_requested: false,
            attempts: Vec::new(),
            told,
            told_same_day: told.is_some_and(|e| e.from < plan.deadline),
            calls: Vec::new(),
            connected_at: None,
            ended_at: None,
        };
        self.by_deadline.insert((req.deadline, self.reqs.len()));
        self.reqs.push(req);
        self.index(self.reqs.len() - 1);
        Ok(())
    }

    /// Starts an attempt of request `idx` at `now`: the patient's answer is drawn.
    fn dial(&mut self, idx: usize, now: Timestamp) {
        self.active += 1;
        let r = &mut self.reqs[idx];
        r.calls.push(now);
        self.starts.push(CallStart { request: r.id, at: now, window: r.window });
        let rng = &mut self.calls_rng;
        let ring = self.svc.attempts.ring_timeout.as_secs();
        let (outcome, secs, hold) = if rng.random::<f64>() < self.params.answer_rate {
            let secs = rng.random_range(ANSWER_SECS.0..=ANSWER_SECS.1);
            let mean = self.params.handle.as_secs_f64();
            let z = normal(rng);
            let hold = mean * (HANDLE_SIGMA * z - HANDLE_SIGMA * HANDLE_SIGMA / 2.0).exp();
            (OutcomeKey::Connected, secs, hold.round() as i64)
        } else {
            let u: f64 = rng.random();
            if u < BUSY_SHARE {
                (OutcomeKey::Busy, BUSY_SECS, 0)
            } else if u < BUSY_SHARE + NO_ANSWER_SHARE {
                (OutcomeKey::NoAnswer, ring, 0)
            } else {
                (OutcomeKey::NotConfirmed, VOICEMAIL_SECS, 0)
            }
        };
        let end = now + SignedDuration::from_secs(secs);
        let date = self.svc.calendar.local_date(now);
        *self.busy.entry(date).or_insert(0.0) += (secs + hold) as f64;
        self.push(end, Ev::AttemptEnd { idx, outcome, hold_secs: hold });
    }

    /// One scheduler turn at `now` (see [`crate::scheduler`]): deadlines, expiries, then
    /// due requests in serving order while slots are free. Returns when to wake next.
    fn turn(&mut self, now: Timestamp) -> Option<Timestamp> {
        self.turns += 1;
        while let Some(&(d, idx)) = self.by_deadline.first() {
            if d > now {
                break;
            }
            let r = &self.reqs[idx];
            if lifecycle::misses_deadline(r.state, r.deadline, r.deadline_missed, now) {
                self.decide(idx, Event::DeadlinePassed, now);
            }
            self.by_deadline.remove(&(d, idx));
        }
        while let Some(&(e, idx)) = self.by_expiry.first() {
            if e > now {
                break;
            }
            self.decide(idx, Event::Expire, now);
            self.by_expiry.remove(&(e, idx));
        }
        let capacity = self.nurses(now);
        loop {
            let free = admit::free(capacity, self.active, u32::MAX, self.active);
            if free == 0 {
                break;
            }
            // The first due request in serving order (the store's `due` query).
            let Some(idx) = self
                .queue
                .iter()
                .map(|(_, i)| *i)
                .find(|i| self.reqs[*i].due.is_some_and(|d| d <= now))
            else {
                break;
            };
            let rules = self.rules();
            match lifecycle::serve(&rules, &self.reqs[idx].facts(), now) {
                Ok(Served::Dial(t)) => {
                    self.apply(idx, &t, now);
                    self.dial(idx, now);
                }
                Ok(Served::Write(t)) => self.apply(idx, &t, now),
                Err(_) => break,
            }
        }
        let mut next: Vec<Timestamp> = Vec::new();
        next.extend(self.by_due.first().map(|(t, _)| (*t).max(now)));
        next.extend(self.by_deadline.first().map(|(t, _)| *t));
        next.extend(self.by_expiry.first().map(|(t, _)| *t));
        if !self.queue.is_empty() {
            // Staffing changes on the hour.
            let secs = now.as_second();
            let hour = Timestamp::from_second(secs - secs.rem_euclid(3600) + 3600).ok();
            next.extend(hour);
        }
        next.into_iter().filter(|t| *t > now).min()
    }

    fn run(mut self, arrivals: &[(Timestamp, Option<DayRange>)]) -> Result<Run, SimError> {
        for (i, (at, _)) in arrivals.iter().enumerate() {
            self.push(*at, Ev::Arrival(i));
        }
        let mut wake: Option<Timestamp> = None;
        loop {
            let next_ev = self.events.peek().map(|Reverse((t, _, _))| *t);
            let now = match (next_ev, wake) {
                (None, None) => break,
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
            };
            while let Some(Reverse((t, _, ev))) = self.events.peek().copied() {
                if t != now {
                    break;
                }
                self.events.pop();
                match ev {
                    Ev::Arrival(i) => {
                        let (at, window) = arrivals[i];
                        self.arrive(at, window)?;
                    }
                    Ev::AttemptEnd { idx, outcome, hold_secs } => {
                        let seq = i64::try_from(self.reqs[idx].calls.len()).unwrap_or(0);
                        let event = Event::Ended { seq, outcome: outcome.outcome() };
                        self.decide(idx, event, now);
                        if hold_secs > 0 {
                            self.push(now + SignedDuration::from_secs(hold_secs), Ev::SlotFree);
                        } else {
                            self.active -= 1;
                        }
                    }
                    Ev::SlotFree => self.active -= 1,
                }
            }
            wake = self.turn(now);
            if self.events.is_empty() && self.queue.is_empty() && self.active == 0 {
                break;
            }
        }
        let report = report::build(self.svc, self.params, &self.reqs, &self.busy, self.turns);
        let requests = self
            .reqs
            .iter()
            .map(|r| Ended {
                id: r.id,
                created: r.created,
                window: r.window,
                deadline: r.deadline,
                state: r.state,
                first_call: r.calls.first().copied(),
                ended_at: r.ended_at,
            })
            .collect();
        Ok(Run { report, starts: self.starts, requests })
    }
}

/// Runs one simulation of `service` (one of `services`, as loaded from the dialplans).
pub fn run(services: &Services, service: &str, params: &Params) -> Result<Run, SimError> {
    let svc = services
        .get(service)
        .ok_or_else(|| SimError::Param(format!("unknown service {service:?}")))?;
    if params.days == 0 || params.days > 366 {
        return Err(SimError::Param("--days must be 1–366".to_owned()));
    }
    if !(0.0..=1.0).contains(&params.answer_rate) {
        return Err(SimError::Param("--answer-rate must be between 0 and 1".to_owned()));
    }
    if params.handle <= SignedDuration::ZERO {
        return Err(SimError::Param("--handle-time must be positive".to_owned()));
    }
    let arrivals = draw_arrivals(svc, params)?;
    let sim = Sim {
        svc,
        services,
        params,
        reqs: Vec::with_capacity(arrivals.len()),
        queue: BTreeSet::new(),
        retrying: 0,
        by_due: BTreeSet::new(),
        by_expiry: BTreeSet::new(),
        by_deadline: BTreeSet::new(),
        events: BinaryHeap::new(),
        seq: 0,
        active: 0,
        recent: VecDeque::new(),
        calls_rng: StdRng::seed_from_u64(params.seed ^ 0x9E37_79B9_7F4A_7C15),
        busy: std::collections::BTreeMap::new(),
        starts: Vec::new(),
        turns: 0,
    };
    sim.run(&arrivals)
}

/// The mean nurse time one request needs (attempts and the connected callback), from
/// the answer rate, the handle time and the service's attempt rules.
pub fn work_per_request(svc: &Service, answer_rate: f64, handle: SignedDuration) -> f64 {
    let a = answer_rate;
    let answered = (ANSWER_SECS.0 + ANSWER_SECS.1) as f64 / 2.0 + handle.as_secs_f64();
    let ring = svc.attempts.ring_timeout.as_secs_f64();
    let failed = BUSY_SHARE * BUSY_SECS as f64
        + NO_ANSWER_SHARE * ring
        + (1.0 - BUSY_SHARE - NO_ANSWER_SHARE) * VOICEMAIL_SECS as f64;
    let mut work = 0.0;
    let mut reach = 1.0;
    for _ in 0..svc.attempts.max.max(1) {
        work += reach * (a * answered + (1.0 - a) * failed);
        reach *= 1.0 - a;
    }
    work
}

/// Staffing for a target nurse load: each day's expected work (the mean arrivals whose
/// same-day deadline falls on it, times [`work_per_request`]) spread evenly over its open
/// hours at `load` (0.9 = nurses busy 90% of the open time), at least one nurse.
pub fn staffing_for_load(
    svc: &Service,
    arrivals: &Arrivals,
    answer_rate: f64,
    handle: SignedDuration,
    load: f64,
) -> Staffing {
    let per = work_per_request(svc, answer_rate, handle);
    let cal = &svc.calendar;
    // A representative week: the first Monday of 2026-12 (no holidays).
    let monday = jiff::civil::date(2026, 11, 30);
    let mut work = [0.0f64; 7];
    let mut open = [0.0f64; 7];
    for back in 0..14i64 {
        let Ok(date) = monday.checked_add((back - 7).days()) else { continue };
        for h in 0..24i8 {
            let Ok(z) = date.at(h, 30, 0, 0).to_zoned(cal.tz().clone()) else { continue };
            let mean = arrivals.0[weekday_ix(date.weekday())][usize::try_from(h).unwrap_or(0)];
            if let Some((day, _)) = policy::deadline(cal, &svc.attempts, None, z.timestamp()) {
                let k = (day - monday).get_days();
                if (0..7).contains(&k) {
                    work[usize::try_from(k).unwrap_or(0)] += mean * per;
                }
            }
        }
    }
    for (k, o) in open.iter_mut().enumerate() {
        let Ok(date) = monday.checked_add(i64::try_from(k).unwrap_or(0).days()) else { continue };
        *o = cal
            .intervals_on(date)
            .iter()
            .map(|iv| iv.end.duration_since(iv.start).as_secs_f64())
            .sum();
    }
    let mut s = Staffing::constant(0);
    for k in 0..7 {
        if open[k] > 0.0 {
            let n = (work[k] / (open[k] * load)).round().max(1.0) as u32;
            s.0[k] = [n; 24];
        }
    }
    s
}

/// `--find-nurses`: the fewest nurses (the same every open hour) whose run reaches
/// `target` same-day (first call before the deadline), with that run; `None` if even 500
/// do not.
pub fn find_nurses(
    services: &Services,
    service: &str,
    params: &Params,
    target: f64,
) -> Result<Option<(u32, Run)>, SimError> {
    let try_n = |n: u32| {
        let p = Params { nurses: Staffing::constant(n), ..params.clone() };
        run(services, service, &p)
    };
    let (mut lo, mut hi) = (1u32, 500u32);
    let top = try_n(hi)?;
    if top.report.totals.same_day < target {
        return Ok(None);
    }
    let mut best = (hi, top);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let r = try_n(mid)?;
        if r.report.totals.same_day >= target {
            hi = mid;
            best = (mid, r);
        } else {
            lo = mid + 1;
        }
    }
    Ok(Some(best))
}

#[cfg(test)]
mod tests;

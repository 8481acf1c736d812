//! The figures of a simulation run: totals, by day and by hour; text, JSON and HTML.

use super::{Params, Req, weekday_ix};
use crate::dialplan::Service;
use crate::policy::lifecycle::State;
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Totals of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    /// Requests made.
    pub requests: usize,
    /// Share first called before their same-day deadline (Health Care Act § 51).
    pub same_day: f64,
    /// Requests flagged by the daemon's deadline supervision (still waiting or in retry
    /// at their deadline): the `callbackd_deadline_missed_total` figure.
    pub deadlines_missed: usize,
    /// Minutes from request to connected callback, median.
    pub callback_p50_min: f64,
    /// Minutes from request to connected callback, 90th percentile.
    pub callback_p90_min: f64,
    /// Minutes from request to the first call, median.
    pub first_call_p50_min: f64,
    /// Minutes from request to the first call, 90th percentile.
    pub first_call_p90_min: f64,
    /// Attempts per request.
    pub attempts_per_request: f64,
    /// Share connected.
    pub connected: f64,
    /// Share ended unreachable.
    pub unreachable: f64,
    /// Share expired without an attempt.
    pub expired: f64,
    /// Nurse time on calls / nurse time staffed in opening hours.
    pub utilisation: f64,
    /// Share of requests whose first call started inside the window told at intake.
    pub eta_punctual: f64,
    /// Share of first calls before the told window.
    pub eta_early: f64,
    /// Share of first calls after the told window.
    pub eta_late: f64,
    /// Mean width of the told window, minutes.
    pub eta_width_min: f64,
    /// Requests told at intake that the callback comes on a later day.
    pub told_not_same_day: usize,
    /// Scheduler turns simulated.
    pub turns: u64,
}

/// One day (by the day requests were made).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ByDay {
    /// Local date.
    pub date: String,
    /// Requests made that day.
    pub requests: usize,
    /// Share first called before the deadline.
    pub same_day: f64,
    /// Deadlines missed (flagged).
    pub deadlines_missed: usize,
    /// Minutes to connected callback, 90th percentile.
    pub callback_p90_min: f64,
    /// Nurse utilisation that day.
    pub utilisation: f64,
    /// ETA punctuality.
    pub eta_punctual: f64,
}

/// One local hour of the day (over all days).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ByHour {
    /// Hour 0–23.
    pub hour: u8,
    /// Requests made in that hour.
    pub requests: usize,
    /// Share first called before the deadline.
    pub same_day: f64,
    /// Minutes to the first call, median.
    pub first_call_p50_min: f64,
}

/// A run's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Service id.
    pub service: String,
    /// First day.
    pub start: String,
    /// Days with arrivals.
    pub days: u32,
    /// Serving order.
    pub order: super::Order,
    /// Seed.
    pub seed: u64,
    /// Totals.
    pub totals: Totals,
    /// By day.
    pub by_day: Vec<ByDay>,
    /// By hour of day.
    pub by_hour: Vec<ByHour>,
}

fn share(n: usize, of: usize) -> f64 {
    if of == 0 { 1.0 } else { n as f64 / of as f64 }
}

fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}

fn mins(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64() / 60.0
}

fn same_day(r: &Req) -> bool {
    r.calls.first().is_some_and(|t| *t < r.deadline)
}

fn punctual(r: &Req) -> Option<bool> {
    let told = r.told?;
    let first = r.calls.first()?;
    Some(told.from <= *first && *first <= told.to)
}

/// Staffed nurse-seconds in the opening hours of `date`.
fn staffed(svc: &Service, p: &Params, date: Date) -> f64 {
    let mut total = 0.0;
    for iv in svc.calendar.intervals_on(date) {
        let mut t = iv.start;
        while t < iv.end {
            let z = t.to_zoned(svc.calendar.tz().clone());
            let n = p.nurses.0[weekday_ix(z.weekday())][usize::try_from(z.hour()).unwrap_or(0)];
            let step = SignedDuration::from_secs(60).min(iv.end.duration_since(t));
            total += f64::from(n) * step.as_secs_f64();
            t += step;
        }
    }
    total
}

/// Computes the figures of a finished run.
pub(super) fn build(
    svc: &Service,
    p: &Params,
    reqs: &[Req],
    busy: &BTreeMap<Date, f64>,
    turns: u64,
) -> Report {
    let summary = |rs: &[&Req]| {
        let n = rs.len();
        let callback: Vec<f64> =
            rs.iter().filter_map(|r| r.connected_at.map(|c| mins(r.created, c))).collect();
        let first: Vec<f64> =
            rs.iter().filter_map(|r| r.calls.first().map(|c| mins(r.created, *c))).collect();
        let told: Vec<bool> = rs.iter().filter_map(|r| punctual(r)).collect();
        (n, callback, first, told)
    };
    let all: Vec<&Req> = reqs.iter().collect();
    let (n, callback, first, told) = summary(&all);
    let widths: Vec<f64> = reqs.iter().filter_map(|r| r.told.map(|e| mins(e.from, e.to))).collect();
    let mut staffed_total = 0.0;
    let mut busy_total = 0.0;
    let mut dates: BTreeMap<Date, Vec<&Req>> = BTreeMap::new();
    for r in reqs {
        dates.entry(svc.calendar.local_date(r.created)).or_default().push(r);
    }
    let mut all_dates: Vec<Date> = dates.keys().copied().collect();
    all_dates.extend(busy.keys().copied());
    all_dates.sort();
    all_dates.dedup();
    for d in &all_dates {
        staffed_total += staffed(svc, p, *d);
        busy_total += busy.get(d).copied().unwrap_or(0.0);
    }
    let totals = Totals {
        requests: n,
        same_day: share(reqs.iter().filter(|r| same_day(r)).count(), n),
        deadlines_missed: reqs.iter().filter(|r| r.deadline_missed).count(),
        callback_p50_min: quantile(callback.clone(), 0.5),
        callback_p90_min: quantile(callback, 0.9),
        first_call_p50_min: quantile(first.clone(), 0.5),
        first_call_p90_min: quantile(first, 0.9),
        attempts_per_request: if n == 0 {
            0.0
        } else {
            reqs.iter().map(|r| r.calls.len()).sum::<usize>() as f64 / n as f64
        },
        connected: share(reqs.iter().filter(|r| r.state == State::Connected).count(), n),
        unreachable: share(reqs.iter().filter(|r| r.state == State::Unreachable).count(), n),
        expired: share(reqs.iter().filter(|r| r.state == State::Expired).count(), n),
        utilisation: if staffed_total > 0.0 { busy_total / staffed_total } else { 0.0 },
        eta_punctual: share(told.iter().filter(|b| **b).count(), told.len()),
        eta_early: share(
            reqs.iter()
                .filter(|r| r.told.zip(r.calls.first()).is_some_and(|(e, c)| *c < e.from))
                .count(),
            told.len(),
        ),
        eta_late: share(
            reqs.iter()
                .filter(|r| r.told.zip(r.calls.first()).is_some_and(|(e, c)| *c > e.to))
                .count(),
            told.len(),
        ),
        eta_width_min: if widths.is_empty() {
            0.0
        } else {
            widths.iter().sum::<f64>() / widths.len() as f64
        },
        told_not_same_day: reqs.iter().filter(|r| r.told.is_some() && !r.told_same_day).count(),
        turns,
    };
    let by_day = dates
        .iter()
        .map(|(date, rs)| {
            let (n, callback, _, told) = summary(rs);
            let staffed = staffed(svc, p, *date);
            ByDay {
                date: date.to_string(),
                requests: n,
                same_day: share(rs.iter().filter(|r| same_day(r)).count(), n),
                deadlines_missed: rs.iter().filter(|r| r.deadline_missed).count(),
                callback_p90_min: quantile(callback, 0.9),
                utilisation: if staffed > 0.0 {
                    busy.get(date).copied().unwrap_or(0.0) / staffed
                } else {
                    0.0
                },
                eta_punctual: share(told.iter().filter(|b| **b).count(), told.len()),
            }
        })
        .collect();
    let mut hours: BTreeMap<u8, Vec<&Req>> = BTreeMap::new();
    for r in reqs {
        let h = r.created.to_zoned(svc.calendar.tz().clone()).hour();
        hours.entry(u8::try_from(h).unwrap_or(0)).or_default().push(r);
    }
    let by_hour = hours
        .iter()
        .map(|(hour, rs)| {
            let (n, _, first, _) = summary(rs);
            ByHour {
                hour: *hour,
                requests: n,
                same_day: share(rs.iter().filter(|r| same_day(r)).count(), n),
                first_call_p50_min: quantile(first, 0.5),
            }
        })
        .collect();
    Report {
        service: svc.id.clone(),
        start: p.start.to_string(),
        days: p.days,
        order: p.order,
        seed: p.seed,
        totals,
        by_day,
        by_hour,
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

impl Report {
    /// The plain-text report.
    pub fn text(&self) -> String {
        let t = &self.totals;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "{} from {}, {} days, order {}, seed {}",
            self.service, self.start, self.days, self.order, self.seed
        );
        let _ = writeln!(o, "requests              {}", t.requests);
        let _ = writeln!(o, "same day (first call) {}", pct(t.same_day));
        let _ = writeln!(o, "deadlines missed      {}", t.deadlines_missed);
        let _ = writeln!(
            o,
            "time to callback      p50 {:.0} min, p90 {:.0} min",
            t.callback_p50_min, t.callback_p90_min
        );
        let _ = writeln!(
            o,
            "time to first call    p50 {:.0} min, p90 {:.0} min",
            t.first_call_p50_min, t.first_call_p90_min
        );
        let _ = writeln!(o, "attempts per request  {:.2}", t.attempts_per_request);
        let _ = writeln!(
            o,
            "connected {}, unreachable {}, expired {}",
            pct(t.connected),
            pct(t.unreachable),
            pct(t.expired)
        );
        let _ = writeln!(o, "nurse utilisation     {}", pct(t.utilisation));
        let _ = writeln!(
            o,
            "ETA punctuality       {} inside the told window ({} earlier, {} later), mean width {:.0} min",
            pct(t.eta_punctual),
            pct(t.eta_early),
            pct(t.eta_late),
            t.eta_width_min
        );
        let _ = writeln!(o, "told not same day     {}", t.told_not_same_day);
        let _ = writeln!(o, "\ndate        requests  same-day  missed  p90 min  util    ETA");
        for d in &self.by_day {
            let _ = writeln!(
                o,
                "{}  {:>8}  {:>8}  {:>6}  {:>7.0}  {:>6}  {:>6}",
                d.date,
                d.requests,
                pct(d.same_day),
                d.deadlines_missed,
                d.callback_p90_min,
                pct(d.utilisation),
                pct(d.eta_punctual)
            );
        }
        let _ = writeln!(o, "\nhour  requests  same-day  first call p50 min");
        for h in &self.by_hour {
            let _ = writeln!(
                o,
                "{:>4}  {:>8}  {:>8}  {:>7.0}",
                h.hour,
                h.requests,
                pct(h.same_day),
                h.first_call_p50_min
            );
        }
        o
    }

    /// The JSON report.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// A self-contained HTML page: the totals and bar charts (SVG) by day and by hour.
    pub fn html(&self) -> String {
        let t = &self.totals;
        let mut o = String::new();
        let _ = write!(
            o,
            "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">\
             <title>callbackd simulate {svc}</title>\
             <style>body{{font:14px sans-serif;margin:2em}}td,th{{padding:2px 8px;text-align:right}}\
             </style><h1>{svc}: {days} days from {start}, {order} order</h1>",
            svc = esc(&self.service),
            days = self.days,
            start = esc(&self.start),
            order = self.order,
        );
        let _ = write!(o, "<pre>{}</pre>", esc(&self.text()));
        let days: Vec<(String, f64)> =
            self.by_day.iter().map(|d| (d.date.clone(), d.same_day)).collect();
        o.push_str(&bars("Same day by day", &days, 1.0, true));
        let util: Vec<(String, f64)> =
            self.by_day.iter().map(|d| (d.date.clone(), d.utilisation)).collect();
        o.push_str(&bars("Nurse utilisation by day", &util, 1.0, true));
        let hours: Vec<(String, f64)> =
            self.by_hour.iter().map(|h| (h.hour.to_string(), h.requests as f64)).collect();
        let max = hours.iter().map(|h| h.1).fold(1.0, f64::max);
        o.push_str(&bars("Requests by hour of day", &hours, max, false));
        let waits: Vec<(String, f64)> =
            self.by_hour.iter().map(|h| (h.hour.to_string(), h.first_call_p50_min)).collect();
        let max = waits.iter().map(|h| h.1).fold(1.0, f64::max);
        o.push_str(&bars("Minutes to first call (median) by hour of request", &waits, max, false));
        let _ = write!(o, "<p>ETA punctuality {}</p></html>", pct(t.eta_punctual));
        o
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A bar chart as inline SVG.
fn bars(title: &str, data: &[(String, f64)], max: f64, percent: bool) -> String {
    let (w, h, pad) = (40.0, 160.0, 30.0);
    let width = pad + w * data.len() as f64 + 10.0;
    let mut o = format!(
        "<h2>{}</h2><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{}\" \
         role=\"img\" aria-label=\"{}\">",
        esc(title),
        h + 40.0,
        esc(title)
    );
    for (i, (label, v)) in data.iter().enumerate() {
        let bh = if max > 0.0 { (v / max).clamp(0.0, 1.0) * h } else { 0.0 };
        let x = pad + w * i as f64;
        let value = if percent { pct(*v) } else { format!("{v:.0}") };
        let _ = write!(
            o,
            "<rect x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{bh}\" fill=\"#3a7\"><title>{} {}</title></rect>\
             <text x=\"{}\" y=\"{}\" font-size=\"9\" text-anchor=\"middle\">{}</text>",
            10.0 + h - bh,
            w - 6.0,
            esc(label),
            value,
            x + (w - 6.0) / 2.0,
            h + 24.0,
            esc(label.get(5..).unwrap_or(label)),
        );
    }
    o.push_str("</svg>");
    o
}

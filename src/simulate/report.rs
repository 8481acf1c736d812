//! The figures of a simulation run: totals, by day and by hour; text, JSON and HTML.

use super::{Params, Req, weekday_ix};
use crate::dialplan::Service;
use crate::policy::lifecycle::State;
use crate::report::html::{BLUE, GREEN, GREY, STYLE, escape, hour_bars, svg};
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use plotters::prelude::*;
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
    /// Share connected to a nurse before their same-day deadline (the report command's
    /// same-day figure: a retry that reaches the patient in time counts).
    pub contacted_same_day: f64,
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
        contacted_same_day: share(
            reqs.iter().filter(|r| r.connected_at.is_some_and(|t| t < r.deadline)).count(),
            n,
        ),
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

/// A share near 100% with the digits that tell 99.5% from 99.96%.
fn pct2(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
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
        let _ = writeln!(o, "same day (first call) {}", pct2(t.same_day));
        let _ = writeln!(o, "contacted same day    {}", pct(t.contacted_same_day));
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

    /// A self-contained HTML page: the figures, and charts by day and by hour drawn by
    /// `plotters`' SVG backend (as `callbackd report --format html` draws its own).
    pub fn html(&self) -> String {
        let mut o = String::new();
        let title = format!(
            "callbackd simulate {}: {} days from {}, {} order",
            self.service, self.days, self.start, self.order
        );
        let _ = write!(
            o,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
             <title>{t}</title><style>{STYLE}</style></head><body>\n<h1>{t}</h1>\n",
            t = escape(&title),
        );
        let _ = writeln!(o, "<div class=\"charts\">");
        for (caption, chart) in [
            ("Same day (first call before the deadline) by day of request; line: 99.5 %", {
                day_chart(&self.by_day, &[("same day", GREEN, |d| d.same_day)], Some(0.995))
            }),
            (
                "Nurse utilisation and ETA punctuality by day",
                day_chart(
                    &self.by_day,
                    &[
                        ("utilisation", BLUE, |d| d.utilisation),
                        ("ETA kept", GREEN, |d| d.eta_punctual),
                    ],
                    None,
                ),
            ),
            ("Requests by hour of request", hour_chart(&self.by_hour, |h| h.requests as f64, "")),
            (
                "Minutes to the first call (median) by hour of request",
                hour_chart(&self.by_hour, |h| h.first_call_p50_min, "min"),
            ),
        ] {
            let _ = writeln!(o, "<figure>{chart}<figcaption>{caption}</figcaption></figure>");
        }
        let _ = writeln!(o, "</div>\n<pre>{}</pre>\n</body></html>", escape(&self.text()));
        o
    }
}

/// One series of a day chart: its label, colour and value (a share) of a day.
type Series<'a> = (&'a str, RGBColor, fn(&ByDay) -> f64);

/// Bars of shares (0–1) per day, one bar per series side by side, with a goal line.
fn day_chart(days: &[ByDay], series: &[Series<'_>], goal: Option<f64>) -> String {
    svg(|root| {
        let n = days.len();
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(44)
            // Room above the bars for the legend when there is one.
            .build_cartesian_2d(
                0f64..n.max(1) as f64,
                0f64..if series.len() > 1 { 140f64 } else { 110f64 },
            )
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE)
            .x_labels(n.clamp(1, 16))
            .x_label_formatter(&|x| {
                days.get(*x as usize)
                    .map_or_else(String::new, |d| d.date.get(5..).unwrap_or(&d.date).to_owned())
            })
            .y_label_formatter(&|y| if *y <= 100.0 { format!("{y:.0} %") } else { String::new() })
            .draw()
            .map_err(|e| e.to_string())?;
        if let Some(g) = goal {
            chart
                .draw_series(LineSeries::new(
                    [(0.0, g * 100.0), (n as f64, g * 100.0)],
                    RED.stroke_width(1),
                ))
                .map_err(|e| e.to_string())?;
        }
        let k = series.len().max(1) as f64;
        for (j, (label, colour, value)) in series.iter().enumerate() {
            let (colour, value) = (*colour, *value);
            let j = j as f64;
            chart
                .draw_series(days.iter().enumerate().map(|(i, d)| {
                    let x = i as f64 + 0.1 + 0.8 * j / k;
                    Rectangle::new(
                        [(x, 0.0), (x + 0.8 / k, value(d) * 100.0)],
                        colour.mix(0.7).filled(),
                    )
                }))
                .map_err(|e| e.to_string())?
                .label(*label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 4), (x + 12, y + 4)], colour.mix(0.7).filled())
                });
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.8))
                .border_style(GREY)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

/// Bars per local hour of request.
fn hour_chart(hours: &[ByHour], value: fn(&ByHour) -> f64, unit: &str) -> String {
    let bars: Vec<(u32, f64)> = hours.iter().map(|h| (u32::from(h.hour), value(h))).collect();
    hour_bars(&bars, unit)
}

//! A report as text (aligned tables), CSV (one long table) and JSON.
//!
//! CSV columns: `period,service,section,key,value`. `period` is the period's name
//! (`2026-W48`) or the previous period's; `service` is a service id or `all`; `section` is
//! `figures` (key = figure name, e.g. `same_day_rate`, `by_channel.api`, `outcome.busy`),
//! `day` (key = `YYYY-MM-DD.requests`, `.connected`, `.same_day_rate`,
//! `.mean_to_callback_min`) or `hour` (key = `Mon.08.requests`,
//! `Mon.08.mean_to_callback_min`). Rates are fractions (0.95), durations minutes; an empty
//! value means there was nothing to measure.

use super::{Figures, Report, Section, weekday};
use std::fmt::Write as _;

/// One figure's name and value (`None`: nothing to measure).
pub type Line = (String, Option<f64>);

/// The figures in print order, with stable names (the CSV keys and JSON-like names).
pub fn lines(f: &Figures) -> Vec<Line> {
    let n = |x: u64| Some(x as f64);
    let mut out: Vec<Line> = vec![("requests".into(), n(f.requests))];
    for (ch, c) in &f.by_channel {
        out.push((format!("by_channel.{ch}"), n(*c)));
    }
    out.extend([
        ("connected".into(), n(f.connected)),
        ("unreachable".into(), n(f.unreachable)),
        ("expired".into(), n(f.expired)),
        ("cancelled".into(), n(f.cancelled)),
        ("declined".into(), n(f.declined)),
        ("open".into(), n(f.open)),
        ("to_callback_mean_min".into(), f.to_callback.map(|s| s.mean_min)),
        ("to_callback_p50_min".into(), f.to_callback.map(|s| s.p50_min)),
        ("to_callback_p90_min".into(), f.to_callback.map(|s| s.p90_min)),
        ("same_day_rate".into(), f.same_day.rate),
        ("same_day_contacted".into(), n(f.same_day.hits)),
        ("same_day_of".into(), n(f.same_day.of)),
        ("deadlines_missed".into(), n(f.deadlines_missed)),
        ("first_attempt_reach".into(), f.first_attempt.rate),
        ("attempts".into(), n(f.attempts)),
        ("attempts_per_request".into(), f.attempts_per_request),
    ]);
    for (o, c) in &f.outcomes {
        out.push((format!("outcome.{o}"), n(*c)));
    }
    for (k, c) in &f.sms_sent {
        out.push((format!("sms_sent.{k}"), n(*c)));
    }
    out.extend([
        ("punctuality".into(), f.punctuality.rate),
        ("punctuality_of".into(), n(f.punctuality.of)),
        ("mean_miss_min".into(), f.mean_miss_min),
    ]);
    out
}

/// Keys that are rates (printed as percentages in text).
fn is_rate(key: &str) -> bool {
    matches!(key, "same_day_rate" | "first_attempt_reach" | "punctuality")
}

fn label(key: &str) -> String {
    match key.split_once('.') {
        Some(("by_channel", ch)) => format!("  channel {ch}"),
        Some(("outcome", o)) => format!("  outcome {o}"),
        Some(("sms_sent", k)) => format!("  SMS sent: {k}"),
        _ => key.replace('_', " "),
    }
}

fn text_value(key: &str, v: Option<f64>) -> String {
    match v {
        None => "-".to_owned(),
        Some(v) if is_rate(key) => format!("{:.1}%", v * 100.0),
        Some(v) if v.fract() == 0.0 && !key.ends_with("_min") => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
    }
}

fn csv_value(v: Option<f64>) -> String {
    match v {
        None => String::new(),
        Some(v) if v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.4}"),
    }
}

/// The section's name: its service or `all`.
pub fn name(s: &Section) -> &str {
    s.service.as_deref().unwrap_or("all")
}

/// Current and previous lines side by side, with keys present in either.
pub fn paired(s: &Section) -> Vec<(String, Option<f64>, Option<f64>)> {
    let cur = lines(&s.current);
    let prev = lines(&s.previous);
    let mut keys: Vec<String> = cur.iter().map(|(k, _)| k.clone()).collect();
    for (k, _) in &prev {
        if !keys.contains(k) {
            // Keep a key only the previous period has beside its family.
            let family = k.split('.').next().unwrap_or_default();
            let at = keys.iter().rposition(|x| x.starts_with(family)).map_or(keys.len(), |i| i + 1);
            keys.insert(at, k.clone());
        }
    }
    let get = |l: &[(String, Option<f64>)], k: &str| {
        l.iter().find(|(x, _)| x == k).map_or_else(
            // A count missing from one side is 0 there; a measure stays unmeasured.
            || if k.contains('.') { Some(0.0) } else { None },
            |(_, v)| *v,
        )
    };
    keys.into_iter().map(|k| (k.clone(), get(&cur, &k), get(&prev, &k))).collect()
}

/// Aligned text tables.
pub fn text(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "callbackd report {} ({} .. {}, {}), compared with {}",
        r.period_name, r.period.from, r.period.to, r.time_zone, r.previous_name
    );
    for s in &r.sections {
        let _ = writeln!(o, "\n== {} ==\n", s.service.as_deref().unwrap_or("all services"));
        let _ = writeln!(o, "{:<28}{:>12}{:>12}", "", r.period_name, r.previous_name);
        for (k, c, p) in paired(s) {
            let _ =
                writeln!(o, "{:<28}{:>12}{:>12}", label(&k), text_value(&k, c), text_value(&k, p));
        }
        let _ = writeln!(o, "\nBy day ({})\n", r.period_name);
        let _ = writeln!(
            o,
            "{:<14}{:>9}{:>11}{:>10}{:>17}",
            "date", "requests", "connected", "same-day", "to callback min"
        );
        for d in &s.days {
            let _ = writeln!(
                o,
                "{:<14}{:>9}{:>11}{:>10}{:>17}",
                format!("{} {}", super::weekday_of(d.date), d.date.strftime("%m-%d")),
                d.requests,
                d.connected,
                text_value("same_day_rate", d.same_day.rate),
                text_value("x_min", d.mean_to_callback_min),
            );
        }
        hour_table(&mut o, s, "Requests by hour of request", |c| {
            (c.requests > 0).then(|| c.requests.to_string())
        });
        hour_table(&mut o, s, "Mean minutes to callback by hour of request", |c| {
            c.mean_to_callback_min.map(|m| format!("{m:.0}"))
        });
    }
    o
}

fn hour_table(
    o: &mut String,
    s: &Section,
    title: &str,
    cell: impl Fn(&super::HourCell) -> Option<String>,
) {
    let _ = writeln!(o, "\n{title}\n");
    let _ = write!(o, "{:<6}", "hour");
    for wd in 1..=7 {
        let _ = write!(o, "{:>7}", weekday(wd));
    }
    let _ = writeln!(o);
    let active: Vec<i8> =
        (0..24).filter(|h| s.hours.iter().any(|c| c.hour == *h && c.requests > 0)).collect();
    if active.is_empty() {
        let _ = writeln!(o, "(no requests)");
    }
    for h in active {
        let _ = write!(o, "{:<6}", format!("{h:02}"));
        for c in s.hours.iter().filter(|c| c.hour == h) {
            let _ = write!(o, "{:>7}", cell(c).unwrap_or_else(|| "-".to_owned()));
        }
        let _ = writeln!(o);
    }
}

/// The long CSV table (see the module doc), with its header line.
pub fn csv(r: &Report) -> String {
    let mut o = String::from("period,service,section,key,value\n");
    let mut row = |period: &str, service: &str, section: &str, key: &str, v: Option<f64>| {
        let _ = writeln!(o, "{period},{service},{section},{key},{}", csv_value(v));
    };
    for s in &r.sections {
        let svc = name(s);
        for (k, v) in lines(&s.current) {
            row(&r.period_name, svc, "figures", &k, v);
        }
        for (k, v) in lines(&s.previous) {
            row(&r.previous_name, svc, "figures", &k, v);
        }
        for d in &s.days {
            let n = |x: u64| Some(x as f64);
            row(&r.period_name, svc, "day", &format!("{}.requests", d.date), n(d.requests));
            row(&r.period_name, svc, "day", &format!("{}.connected", d.date), n(d.connected));
            row(&r.period_name, svc, "day", &format!("{}.same_day_rate", d.date), d.same_day.rate);
            row(
                &r.period_name,
                svc,
                "day",
                &format!("{}.mean_to_callback_min", d.date),
                d.mean_to_callback_min,
            );
        }
        for c in &s.hours {
            let wd = weekday(c.weekday);
            row(
                &r.period_name,
                svc,
                "hour",
                &format!("{wd}.{:02}.requests", c.hour),
                Some(c.requests as f64),
            );
            row(
                &r.period_name,
                svc,
                "hour",
                &format!("{wd}.{:02}.mean_to_callback_min", c.hour),
                c.mean_to_callback_min,
            );
        }
    }
    o
}

/// The report as pretty JSON (the [`Report`] structure).
pub fn json(r: &Report) -> String {
    serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

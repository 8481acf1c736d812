//! A report as text (aligned tables), CSV (one long table) and JSON.
//!
//! The text's headings and labels are in the report's language ([`super::words`]); CSV
//! keys and JSON names are English identifiers in every language.
//!
//! CSV columns: `period,service,section,key,value`. `period` is the period's name
//! (`2026-W48`) or the previous period's; `service` is a service id or `all`; `section` is
//! `figures` (key = figure name, e.g. `same_day_rate`, `by_channel.api`, `outcome.busy`),
//! `day` (key = `YYYY-MM-DD.requests`, `.connected`, `.same_day_rate`,
//! `.mean_to_callback_min`) or `hour` (key = `Mon.08.requests`,
//! `Mon.08.mean_to_callback_min`). Rates are fractions (0.95), durations minutes; an empty
//! value means there was nothing to measure.

use super::words::{Words, words};
use super::{Figures, Report, Section, weekday};
use crate::lang::Lang;
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

/// A figure's label in the text tables: the keyed families indented under their figure.
fn label(w: &Words, key: &str) -> String {
    let label = w.figure(key);
    if key.contains('.') { format!("  {label}") } else { label }
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

/// Aligned text tables, headings and labels in `lang`.
pub fn text(r: &Report, lang: Lang) -> String {
    let w = words(lang);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} {} ({} .. {}, {}), {} {}",
        w.title,
        r.period_name,
        r.period.from,
        r.period.to,
        r.time_zone,
        w.compared_with,
        r.previous_name
    );
    // Column widths: the widest label of the language decides the first.
    let keys = paired_keys(r);
    let width = keys.iter().map(|k| label(w, k).chars().count() + 2).max().unwrap_or(0).max(28);
    for s in &r.sections {
        let heading = match &s.service {
            Some(id) => id.clone(),
            None => w.all_services.to_lowercase(),
        };
        let _ = writeln!(o, "\n== {heading} ==\n");
        let _ = writeln!(o, "{:<width$}{:>12}{:>12}", "", r.period_name, r.previous_name);
        for (k, c, p) in paired(s) {
            let (c, p) = (text_value(&k, c), text_value(&k, p));
            let _ = writeln!(o, "{:<width$}{c:>12}{p:>12}", label(w, &k));
        }
        let _ = writeln!(o, "\n{} ({})\n", w.by_day, r.period_name);
        let [day, requests, connected, same_day, to_callback] = w.day_columns;
        let cols = [requests, connected, same_day, to_callback].map(|c| c.chars().count() + 1);
        let _ = writeln!(
            o,
            "{day:<14}{requests:>a$}{connected:>b$}{same_day:>c$}{to_callback:>d$}",
            a = cols[0].max(9),
            b = cols[1].max(11),
            c = cols[2].max(10),
            d = cols[3].max(17),
        );
        for d in &s.days {
            let _ = writeln!(
                o,
                "{:<14}{:>a$}{:>b$}{:>c$}{:>e$}",
                format!("{} {}", weekday_in(lang, d.date), d.date.strftime("%m-%d")),
                d.requests,
                d.connected,
                text_value("same_day_rate", d.same_day.rate),
                text_value("x_min", d.mean_to_callback_min),
                a = cols[0].max(9),
                b = cols[1].max(11),
                c = cols[2].max(10),
                e = cols[3].max(17),
            );
        }
        hour_table(&mut o, s, lang, w.requests_by_hour, |c| {
            (c.requests > 0).then(|| c.requests.to_string())
        });
        hour_table(&mut o, s, lang, w.mean_by_hour, |c| {
            c.mean_to_callback_min.map(|m| format!("{m:.0}"))
        });
    }
    o
}

/// Every figure key of every section (for the label column's width).
fn paired_keys(r: &Report) -> Vec<String> {
    r.sections.iter().flat_map(|s| paired(s).into_iter().map(|(k, _, _)| k)).collect()
}

/// A date's weekday, short, in `lang`.
pub fn weekday_in(lang: Lang, d: jiff::civil::Date) -> &'static str {
    lang.weekday(usize::from(d.weekday().to_monday_zero_offset().unsigned_abs()))
}

fn hour_table(
    o: &mut String,
    s: &Section,
    lang: Lang,
    title: &str,
    cell: impl Fn(&super::HourCell) -> Option<String>,
) {
    let w = words(lang);
    let _ = writeln!(o, "\n{title}\n");
    let _ = write!(o, "{:<6}", w.hour);
    for wd in 0..7 {
        let _ = write!(o, "{:>7}", lang.weekday(wd));
    }
    let _ = writeln!(o);
    let active: Vec<i8> =
        (0..24).filter(|h| s.hours.iter().any(|c| c.hour == *h && c.requests > 0)).collect();
    if active.is_empty() {
        let _ = writeln!(o, "{}", w.no_requests);
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

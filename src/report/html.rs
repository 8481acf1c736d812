//! A report as one self-contained HTML file: inline CSS, charts as inline `<svg>` drawn by
//! `plotters`' SVG backend, no script, font or outside resource, printable from a browser.
//!
//! Charts per section: requests and callbacks per day; mean time to callback per hour of
//! request; the same-day rate per day against the 100% line; the outcome mix.
//!
//! Headings, labels, captions and legends are in the report's language
//! ([`super::words`]); service, channel and outcome names are identifiers and stay as they
//! are.

use super::render::{name, paired, weekday_in};
use super::words::words;
use super::{Report, Section};
use crate::lang::Lang;
use plotters::prelude::*;
use std::fmt::Write as _;

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The page's style sheet (the simulator's HTML report uses it too).
pub(crate) const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:62em;\
color:#111;padding:0 1em}h1{font-size:1.5em}h2{border-bottom:2px solid #246;margin-top:2em}\
table{border-collapse:collapse;margin:.5em 0 1em}td,th{padding:.15em .6em;text-align:right;\
border-bottom:1px solid #ddd}th:first-child,td:first-child{text-align:left}\
.charts{display:flex;flex-wrap:wrap;gap:1em}.charts figure{margin:0}svg{max-width:100%;height:auto}\
figcaption{font-size:.9em;color:#444}small{color:#555}\
@media print{h2{break-before:page}.charts figure{break-inside:avoid}}";

/// The whole page, headings and labels in `lang` (`<html lang>` says which).
pub fn html(r: &Report, lang: Lang) -> String {
    let w = words(lang);
    let mut o = String::new();
    let title = format!("{} {}", w.title, r.period_name);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"{code}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{t}</title><style>{STYLE}</style></head><body>\n<h1>{t}</h1>\n\
         <p>{from} .. {to} ({tz}), {cmp} {prev}. <small>{made} {gen}.</small></p>\n",
        code = lang.code(),
        t = escape(&title),
        from = r.period.from,
        to = r.period.to,
        tz = escape(&r.time_zone),
        cmp = escape(w.compared_with),
        prev = escape(&r.previous_name),
        made = escape(w.made),
        gen = r.generated_at,
    );
    for s in &r.sections {
        section(&mut o, r, s, lang);
    }
    o.push_str("</body></html>\n");
    o
}

fn cell(key: &str, v: Option<f64>) -> String {
    match v {
        None => "–".to_owned(),
        Some(v) if matches!(key, "same_day_rate" | "first_attempt_reach" | "punctuality") => {
            format!("{:.1}&nbsp;%", v * 100.0)
        }
        Some(v) if v.fract() == 0.0 && !key.ends_with("_min") => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
    }
}

fn section(o: &mut String, r: &Report, s: &Section, lang: Lang) {
    let w = words(lang);
    let title = s.service.as_deref().unwrap_or(w.all_services);
    let _ = writeln!(o, "<h2 id=\"s-{}\">{}</h2>", escape(name(s)), escape(title));
    let _ = writeln!(o, "<div class=\"charts\">");
    let [per_day_caption, same_day_caption, outcomes_caption] = w.charts;
    for (caption, svg) in [
        (per_day_caption, per_day(s, w.legend)),
        (w.mean_by_hour, per_hour(s)),
        (same_day_caption, same_day(s)),
        (outcomes_caption, outcomes(s)),
    ] {
        let _ = writeln!(o, "<figure>{svg}<figcaption>{}</figcaption></figure>", escape(caption));
    }
    let _ = writeln!(o, "</div>");
    let _ = writeln!(
        o,
        "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        escape(w.figure),
        escape(&r.period_name),
        escape(&r.previous_name)
    );
    for (k, c, p) in paired(s) {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&w.figure(&k)),
            cell(&k, c),
            cell(&k, p)
        );
    }
    let _ = writeln!(o, "</tbody></table>");
    let _ = write!(o, "<table><thead><tr>");
    for column in w.day_columns {
        let _ = write!(o, "<th>{}</th>", escape(column));
    }
    let _ = writeln!(o, "</tr></thead><tbody>");
    for d in &s.days {
        let _ = writeln!(
            o,
            "<tr><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            weekday_in(lang, d.date),
            d.date,
            d.requests,
            d.connected,
            cell("same_day_rate", d.same_day.rate),
            cell("x_min", d.mean_to_callback_min)
        );
    }
    let _ = writeln!(o, "</tbody></table>");
    let active: Vec<i8> =
        (0..24).filter(|h| s.hour_of_day.iter().any(|c| c.hour == *h && c.requests > 0)).collect();
    let _ = write!(o, "<table><thead><tr><th>{}</th>", escape(w.hour));
    for wd in 0..7 {
        let _ = write!(o, "<th>{}</th>", lang.weekday(wd));
    }
    let _ = writeln!(o, "</tr></thead><tbody>");
    for h in active {
        let _ = write!(o, "<tr><td>{h:02}</td>");
        for c in s.hours.iter().filter(|c| c.hour == h) {
            let mean =
                c.mean_to_callback_min.map_or_else(String::new, |m| format!(" / {m:.0}&nbsp;min"));
            let _ = write!(o, "<td>{}{mean}</td>", c.requests);
        }
        let _ = writeln!(o, "</tr>");
    }
    let _ = writeln!(o, "</tbody></table><p><small>{}</small></p>", escape(w.hour_note));
}

const SIZE: (u32, u32) = (460, 260);
/// The charts' colours (the simulator's HTML report draws with them too).
pub(crate) const BLUE: RGBColor = RGBColor(0x24, 0x66, 0xaa);
/// See [`BLUE`].
pub(crate) const GREEN: RGBColor = RGBColor(0x2a, 0x8a, 0x4a);
/// See [`BLUE`].
pub(crate) const GREY: RGBColor = RGBColor(0x88, 0x88, 0x88);

/// Draws into an SVG string; a drawing error leaves a note instead of the chart.
pub(crate) fn svg(
    draw: impl FnOnce(DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Result<(), String>,
) -> String {
    let mut out = String::new();
    let result = {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        let r = root.fill(&WHITE).map_err(|e| e.to_string()).and_then(|()| draw(root.clone()));
        r.and_then(|()| root.present().map_err(|e| e.to_string()))
    };
    match result {
        Ok(()) => out,
        Err(e) => format!("<p>chart not drawn: {}</p>", escape(&e)),
    }
}

fn per_day(s: &Section, [requests, connected]: [&str; 2]) -> String {
    svg(|root| {
        let n = s.days.len();
        let top = s.days.iter().map(|d| d.requests).max().unwrap_or(0).max(1) as f64 * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(40)
            .build_cartesian_2d(0f64..n as f64, 0f64..top)
            .map_err(|e| e.to_string())?;
        let days = &s.days;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE)
            .x_labels(n.min(16))
            .x_label_formatter(&|x| {
                days.get(*x as usize)
                    .map_or_else(String::new, |d| d.date.strftime("%d.%m.").to_string())
            })
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(days.iter().enumerate().map(|(i, d)| {
                Rectangle::new(
                    [(i as f64 + 0.1, 0.0), (i as f64 + 0.9, d.requests as f64)],
                    BLUE.mix(0.6).filled(),
                )
            }))
            .map_err(|e| e.to_string())?
            .label(requests)
            .legend(|(x, y)| Rectangle::new([(x, y - 4), (x + 12, y + 4)], BLUE.mix(0.6).filled()));
        chart
            .draw_series(LineSeries::new(
                days.iter().enumerate().map(|(i, d)| (i as f64 + 0.5, d.connected as f64)),
                GREEN.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(connected)
            .legend(|(x, y)| PathElement::new([(x, y), (x + 12, y)], GREEN.stroke_width(2)));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(GREY)
            .draw()
            .map_err(|e| e.to_string())
    })
}

fn per_hour(s: &Section) -> String {
    let bars: Vec<(u32, f64)> = s
        .hour_of_day
        .iter()
        .filter_map(|c| Some((u32::try_from(c.hour).ok()?, c.mean_to_callback_min?)))
        .collect();
    hour_bars(&bars, "min")
}

/// Bars per local hour of day (`(hour, value)`, hours 0–23), the y axis in `unit`: the
/// report's time to callback per hour, the simulator's per-hour figures.
pub(crate) fn hour_bars(bars: &[(u32, f64)], unit: &str) -> String {
    svg(|root| {
        let top = bars.iter().map(|(_, v)| *v).fold(1.0, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..24f64, 0f64..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE)
            .x_labels(13)
            .x_label_formatter(&|x| format!("{:02}", *x as i64))
            .y_desc(unit)
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(bars.iter().map(|(hour, v)| {
                let h = f64::from(*hour);
                Rectangle::new([(h + 0.1, 0.0), (h + 0.9, *v)], BLUE.mix(0.7).filled())
            }))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

fn same_day(s: &Section) -> String {
    svg(|root| {
        let n = s.days.len();
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(40)
            .build_cartesian_2d(0f64..n as f64, 0f64..110f64)
            .map_err(|e| e.to_string())?;
        let days = &s.days;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE)
            .x_labels(n.min(16))
            .x_label_formatter(&|x| {
                days.get(*x as usize)
                    .map_or_else(String::new, |d| d.date.strftime("%d.%m.").to_string())
            })
            .y_label_formatter(&|y| format!("{y:.0} %"))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new([(0.0, 100.0), (n as f64, 100.0)], RED.stroke_width(1)))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(days.iter().enumerate().filter_map(|(i, d)| {
                let r = d.same_day.rate? * 100.0;
                Some(Rectangle::new(
                    [(i as f64 + 0.15, 0.0), (i as f64 + 0.85, r)],
                    GREEN.mix(0.7).filled(),
                ))
            }))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

fn outcomes(s: &Section) -> String {
    svg(|root| {
        let mix: Vec<(&String, u64)> = s.current.outcomes.iter().map(|(k, v)| (k, *v)).collect();
        let n = mix.len().max(1);
        let top = mix.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1) as f64 * 1.6;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(8)
            .build_cartesian_2d(0f64..top, 0f64..n as f64)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(WHITE)
            .y_labels(0)
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(mix.iter().enumerate().map(|(i, (_, v))| {
                let y = (n - 1 - i) as f64;
                Rectangle::new([(0.0, y + 0.15), (*v as f64, y + 0.85)], BLUE.mix(0.7).filled())
            }))
            .map_err(|e| e.to_string())?;
        // Each bar's outcome and count beside its end.
        chart
            .draw_series(mix.iter().enumerate().map(|(i, (k, v))| {
                let y = (n - 1 - i) as f64 + 0.5;
                let style = TextStyle::from(("sans-serif", 13).into_font()).pos(
                    plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Left,
                        plotters::style::text_anchor::VPos::Center,
                    ),
                );
                Text::new(format!(" {k} {v}"), (*v as f64, y), style)
            }))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

//! `callbackd report`: a period's figures, per service and for all, read from the store
//! read-only (safe while the daemon runs), as text, CSV, HTML or JSON.

use super::{EXIT_BAD_INPUT, load, print_diags, service};
use callbackd::clock::{Clock, SystemClock};
use callbackd::lang::Lang;
use callbackd::report::{self, Period, Query, html, render};
use jiff::civil::Date;
use std::path::PathBuf;
use std::process::ExitCode;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned tables.
    Text,
    /// One long table: period,service,section,key,value.
    Csv,
    /// One self-contained HTML file with charts.
    Html,
    /// The report's structure as JSON.
    Json,
}

/// What `callbackd report` was asked.
#[derive(Debug)]
pub struct Args {
    /// Services (all configured when empty).
    pub services: Vec<String>,
    /// `--week`.
    pub week: Option<String>,
    /// `--month`.
    pub month: Option<String>,
    /// `--from`.
    pub from: Option<Date>,
    /// `--to`.
    pub to: Option<Date>,
    /// `--format`.
    pub format: Format,
    /// `--lang`: the language of the text and HTML formats' headings and labels.
    pub lang: Lang,
    /// `--out` (stdout when `None`).
    pub out: Option<PathBuf>,
    /// `--config`.
    pub config: PathBuf,
}

/// Runs the command.
pub fn report(args: Args) -> ExitCode {
    let (cfg, services) = match load(&args.config) {
        Ok(x) => x,
        Err(d) => return print_diags(&d),
    };
    let ids: Vec<String> = if args.services.is_empty() {
        services.keys().cloned().collect()
    } else {
        for id in &args.services {
            if let Err(code) = service(&services, id) {
                return code;
            }
        }
        args.services.clone()
    };
    let Some(first) = ids.first().and_then(|id| services.get(id)) else {
        eprintln!("no services are configured: nothing to report");
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    // Days and hours are the services' local ones, so the services of one report must keep
    // one time zone (Finnish services all do); others are reported separately.
    let tz = first.calendar.tz().clone();
    let zone = |id: &String| services.get(id).map(|s| zone_name(s.calendar.tz()));
    let zones: std::collections::BTreeSet<String> = ids.iter().filter_map(zone).collect();
    if zones.len() > 1 {
        let each: Vec<String> =
            ids.iter().filter_map(|id| Some(format!("{id} ({})", zone(id)?))).collect();
        eprintln!(
            "the services keep different time zones: {}; a report's days and hours are in one \
             zone, so report them separately (--service S)",
            each.join(", ")
        );
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let now = SystemClock.now();
    let period = match (&args.week, &args.month, args.from, args.to) {
        (Some(w), None, None, None) => Period::week(w),
        (None, Some(m), None, None) => Period::month(m),
        (None, None, Some(from), Some(to)) => Period::range(from, to),
        (None, None, None, None) => Ok(Period::last_week(now.to_zoned(tz.clone()).date())),
        (None, None, Some(_), None) | (None, None, None, Some(_)) => {
            eprintln!("--from and --to go together");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
        _ => {
            eprintln!("choose one of --week, --month or --from/--to");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let period = match period {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let query = Query { period, services: ids, tz };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let read = match rt.block_on(callbackd::store::report::read(&cfg.database, &query, now)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot read the store {}: {e}", callbackd::daemon::redact(&cfg.database));
            return ExitCode::FAILURE;
        }
    };
    let r = report::compute_read(&read, &query, now);
    let text = match args.format {
        Format::Text => render::text(&r, args.lang),
        Format::Csv => render::csv(&r),
        Format::Json => render::json(&r),
        Format::Html => html::html(&r, args.lang),
    };
    match &args.out {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(path) => match std::fs::write(path, text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cannot write {}: {e}", path.display());
                ExitCode::FAILURE
            }
        },
    }
}

/// A time zone's IANA name, or its offset when it has none.
fn zone_name(tz: &jiff::tz::TimeZone) -> String {
    tz.iana_name().map_or_else(|| format!("{tz:?}"), str::to_owned)
}

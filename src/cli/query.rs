//! `callbackd hours` and `callbackd next-attempt`: what the calendar and the policy say.

use super::{EXIT_BAD_INPUT, load, print_diags, service};
use callbackd::calendar::DayRange;
use callbackd::clock::{Clock, SystemClock};
use callbackd::explain::{self, ExplainError, Query};
use jiff::civil::Date;

use callbackd::dialplan::Service;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Loads the configuration and its dialplans and picks the service `id`, or says why not.
fn one_service(config: &Path, id: &str) -> Result<Service, ExitCode> {
    let (_, services) = load(config).map_err(|d| print_diags(&d))?;
    service(&services, id).cloned()
}

/// Prints one line per date of the service's opening hours.
pub fn hours(config: PathBuf, id: &str, from: Option<Date>, to: Option<Date>) -> ExitCode {
    let svc = match one_service(&config, id) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let svc = &svc;
    let from = from.unwrap_or_else(|| SystemClock.now().to_zoned(svc.calendar.tz().clone()).date());
    let Some(to) = to.or_else(|| from.checked_add(jiff::ToSpan::days(13)).ok()) else {
        eprintln!("--from {from} is too close to the end of the calendar");
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    if to < from {
        eprintln!("--to {to} is before --from {from}");
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let mut out = String::new();
    let mut date = from;
    loop {
        out.push_str(&svc.calendar.day(date).csv_line());
        out.push('\n');
        match date.tomorrow() {
            Ok(next) if next <= to => date = next,
            Ok(_) | Err(_) => break,
        }
    }
    print!("{out}");
    ExitCode::SUCCESS
}

/// Prints what the policy says about one request (see [`callbackd::explain`]).
pub fn next_attempt(
    config: PathBuf,
    id: &str,
    created: &str,
    window: Option<DayRange>,
    attempts: &[String],
    now: Option<&str>,
) -> ExitCode {
    let svc = match one_service(&config, id) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let svc = &svc;
    let query = || -> Result<String, ExplainError> {
        let q = Query {
            created_at: explain::parse_instant(svc, created, "--created")?,
            window,
            attempts: attempts
                .iter()
                .map(|a| explain::parse_attempt(svc, a))
                .collect::<Result<_, _>>()?,
            now: match now {
                Some(n) => explain::parse_instant(svc, n, "--now")?,
                None => SystemClock.now(),
            },
        };
        explain::explain(svc, &q)
    };
    match query() {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

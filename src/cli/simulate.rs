//! `callbackd simulate`: reads the dialplans, the arrivals and the staffing, runs
//! [`callbackd::simulate`] and prints its report.

use super::{EXIT_BAD_INPUT, load, print_diags, service};
use callbackd::simulate::{self, Arrivals, Order, Params, Staffing};
use jiff::SignedDuration;
use jiff::civil::Date;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A plain-text summary and tables.
    Text,
    /// The figures as JSON.
    Json,
    /// An HTML page with charts.
    Html,
}

/// The staffing options.
#[derive(Debug, Clone)]
pub enum Nurses {
    /// The same number every hour.
    Constant(u32),
    /// `weekday,hour,nurses` from a file.
    ByHour(PathBuf),
    /// Enough for this nurse load (0.9 = busy 90% of the open time).
    Load(f64),
}

/// Everything `simulate` was given.
#[derive(Debug, Clone)]
pub struct Args {
    /// Daemon configuration (for the dialplan directory).
    pub config: PathBuf,
    /// Service id.
    pub service: String,
    /// Days with arrivals.
    pub days: u32,
    /// First day.
    pub start: Date,
    /// Arrivals CSV (the shipped example when `None`).
    pub arrivals: Option<PathBuf>,
    /// Scale the arrivals to this many requests a week.
    pub per_week: Option<f64>,
    /// Staffing.
    pub nurses: Nurses,
    /// Mean handle time.
    pub handle: SignedDuration,
    /// Answer probability.
    pub answer_rate: f64,
    /// Share choosing a window.
    pub window_share: f64,
    /// Seed.
    pub seed: u64,
    /// Serving order.
    pub order: Order,
    /// Output format.
    pub format: Format,
    /// `--find-nurses`: the same-day share to reach.
    pub find_nurses: Option<f64>,
}

fn read(path: &Path) -> Result<String, ExitCode> {
    std::fs::read_to_string(path).map_err(|e| {
        eprintln!("{}: {e}", path.display());
        ExitCode::from(EXIT_BAD_INPUT)
    })
}

/// Runs the simulation and prints the report.
pub fn simulate(args: Args) -> ExitCode {
    let services = match load(&args.config) {
        Ok((_, s)) => s,
        Err(d) => return print_diags(&d),
    };
    let svc = match service(&services, &args.service) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let src = match &args.arrivals {
        Some(p) => match read(p) {
            Ok(s) => s,
            Err(code) => return code,
        },
        None => simulate::DEFAULT_ARRIVALS.to_owned(),
    };
    let name =
        args.arrivals.as_ref().map_or("the example arrivals".into(), |p| p.display().to_string());
    let mut arrivals = match Arrivals::parse(&src) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    if let Some(n) = args.per_week {
        arrivals = arrivals.scaled(n);
    }
    let nurses = match &args.nurses {
        Nurses::Constant(n) => Staffing::constant(*n),
        Nurses::ByHour(p) => match read(p).map(|s| Staffing::parse(&s)) {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                eprintln!("{}: {e}", p.display());
                return ExitCode::from(EXIT_BAD_INPUT);
            }
            Err(code) => return code,
        },
        Nurses::Load(l) if *l > 0.0 && l.is_finite() => {
            simulate::staffing_for_load(svc, &arrivals, args.answer_rate, args.handle, *l)
        }
        Nurses::Load(l) => {
            eprintln!("--load {l} must be a positive share (0.9 = 90%)");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let params = Params {
        start: args.start,
        days: args.days,
        arrivals,
        nurses,
        handle: args.handle,
        answer_rate: args.answer_rate,
        window_share: args.window_share,
        seed: args.seed,
        order: args.order,
    };
    let result = match args.find_nurses {
        None => simulate::run(&services, &args.service, &params).map(|r| (None, r)),
        Some(target) if (0.0..=1.0).contains(&target) => {
            match simulate::find_nurses(&services, &args.service, &params, target) {
                Ok(Some((n, r))) => Ok((Some(n), r)),
                Ok(None) => {
                    eprintln!("even 500 nurses do not reach {:.1}% same day", target * 100.0);
                    return ExitCode::FAILURE;
                }
                Err(e) => Err(e),
            }
        }
        Some(target) => {
            eprintln!("--find-nurses {target} must be a share between 0 and 1 (0.995 = 99.5%)");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let (found, run) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    match args.format {
        Format::Text => {
            if let Some(n) = found {
                println!("fewest nurses per open hour for the target: {n}\n");
            }
            print!("{}", run.report.text());
        }
        Format::Json => {
            let mut v: serde_json::Value =
                serde_json::from_str(&run.report.json()).unwrap_or_default();
            if let Some(n) = found {
                v["nurses_found"] = serde_json::json!(n);
            }
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        Format::Html => print!("{}", run.report.html()),
    }
    ExitCode::SUCCESS
}

//! The `callbackd` command: the daemon and the operator tools around it.

// clippy.toml's clock and blocking rules hold for the shipped code (not for its tests).
#![cfg_attr(not(test), warn(clippy::disallowed_methods, clippy::disallowed_types))]

use callbackd::calendar::DayRange;
use callbackd::clock::{Clock, SystemClock};
use callbackd::config::{self, Config};
use callbackd::diag::Diagnostic;
use callbackd::dialplan::{self, Service, Services};
use callbackd::intake::RawRequest;
use callbackd::policy::{self, AttemptRecord, Decision, Now, Outcome, RequestFacts};
use callbackd::store::{ListFilter, State};
use clap::{Parser, Subcommand};

mod ops;
use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code for a bad configuration or dialplan (EX_USAGE).
const EXIT_BAD_CONFIG: u8 = 64;
/// Exit code for bad command-line input that clap cannot catch.
const EXIT_BAD_INPUT: u8 = 2;

/// callbackd calls patients back for health-care call centres.
///
/// It keeps callback requests, dials them through the call centre's PBX in the health
/// station's opening hours with the station's own number as caller ID, and reports
/// everything to Prometheus. Services (callback queues) are configured by dialplans, one
/// TOML file per service, in the dialplan directory named by the configuration.
#[derive(Debug, Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon.
    ///
    /// Reload the dialplans with SIGHUP (`systemctl reload callbackd`) or by editing them:
    /// the directory is watched. SIGTERM stops taking new calls, lets calls in progress
    /// finish for `shutdown_grace`, then hangs up and exits 0.
    Serve {
        /// Daemon configuration file.
        #[arg(long, short, default_value = config::DEFAULT_PATH, env = "CALLBACKD_CONFIG")]
        config: PathBuf,
        /// Log format, overriding the configuration's `log_format`.
        #[arg(long, value_enum)]
        log_format: Option<config::LogFormat>,
    },
    /// Validate the configuration and every dialplan without starting anything.
    ///
    /// Prints `ok: N services` and exits 0, or prints every problem as
    /// `file:line:col: message` and exits 64. With PATHs, checks those dialplan files or
    /// directories instead of the configured dialplan directory.
    Check {
        /// Daemon configuration file.
        #[arg(long, short, default_value = config::DEFAULT_PATH, env = "CALLBACKD_CONFIG")]
        config: PathBuf,
        /// Dialplan files or directories to check instead of the configured directory.
        paths: Vec<PathBuf>,
    },
    /// Print a service's opening hours, one line per date: `YYYY-MM-DD,closed` or
    /// `YYYY-MM-DD,HH:MM-HH:MM` (ranges joined with `;`), in the service's local time.
    Hours {
        /// Service id (the `id` of its dialplan).
        service: String,
        /// First date (default: today in the service's time zone).
        #[arg(long)]
        from: Option<Date>,
        /// Last date, inclusive (default: 13 days after --from).
        #[arg(long)]
        to: Option<Date>,
        /// Daemon configuration file.
        #[arg(long, short, default_value = config::DEFAULT_PATH, env = "CALLBACKD_CONFIG")]
        config: PathBuf,
    },
    /// Ask the policy about a request: when it is next dialled, its same-day deadline, when
    /// it expires, and what the scheduler would do at --now.
    ///
    /// Times are the service's local time (`2026-11-23T15:55`) or RFC 3339 with an offset.
    /// Example: `callbackd next-attempt kallio --created 2026-11-23T15:55
    /// --attempt 2026-11-24T08:01=busy --now 2026-11-24T08:10`
    NextAttempt {
        /// Service id.
        service: String,
        /// When the request was made.
        #[arg(long)]
        created: String,
        /// The window the patient chose, e.g. 12:00-14:00.
        #[arg(long)]
        window: Option<DayRange>,
        /// A finished attempt as TIME=OUTCOME (outcomes: connected, busy, no_answer,
        /// rejected, not_confirmed, invalid_number, network_failure, interrupted, declined).
        /// Repeat for several, oldest first.
        #[arg(long = "attempt", value_name = "TIME=OUTCOME")]
        attempts: Vec<String>,
        /// The moment to evaluate the request at (default: now).
        #[arg(long)]
        now: Option<String>,
        /// Daemon configuration file.
        #[arg(long, short, default_value = config::DEFAULT_PATH, env = "CALLBACKD_CONFIG")]
        config: PathBuf,
    },
    /// Add a callback request to a service's queue (as the HTTP API would).
    ///
    /// The same number already waiting in the same service is not added twice: the existing
    /// request is shown instead.
    Enqueue {
        /// Service id.
        service: String,
        /// The patient's number (`040 123 4567`, `+358401234567`, `00358…`).
        number: String,
        /// A window the service offers, e.g. 12:00-14:00.
        #[arg(long)]
        window: Option<String>,
        /// Language: fi, sv or en (default: the service's).
        #[arg(long)]
        lang: Option<String>,
        /// The patient consented to SMS.
        #[arg(long)]
        sms_consent: bool,
        /// Daemon configuration file.
        #[arg(long, short, default_value = config::DEFAULT_PATH, env = "CALLBACKD_CONFIG")]
        config: PathBuf,
    },
    /// List requests, newest first.
    List {
        /// Only this service.
        #[arg(long)]
        service: Option<String>,
        /// Only this state: pending, dialing, retry_wait, connected, unreachable, expired,
        /// cancelled.
        #[arg(long)]
        state: Option<State>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Daemon configuration file.
        #[arg(long, short, default_value = config::DEFAULT_PATH, env = "CALLBACKD_CONFIG")]
        config: PathBuf,
    },
    /// Show one request: its state, attempts and audit trail.
    Show {
        /// Request id.
        id: i64,
        /// Daemon configuration file.
        #[arg(long, short, default_value = config::DEFAULT_PATH, env = "CALLBACKD_CONFIG")]
        config: PathBuf,
    },
    /// Cancel a request (the patient was reached another way). A call in progress is not
    /// interrupted, but the request is not retried.
    Cancel {
        /// Request id.
        id: i64,
        /// Daemon configuration file.
        #[arg(long, short, default_value = config::DEFAULT_PATH, env = "CALLBACKD_CONFIG")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, log_format } => serve(config, log_format),
        Command::Check { config, paths } => check(config, paths),
        Command::Hours { service, from, to, config } => hours(config, &service, from, to),
        Command::NextAttempt { service, created, window, attempts, now, config } => {
            next_attempt(config, &service, &created, window, &attempts, now.as_deref())
        }
        Command::Enqueue { service, number, window, lang, sms_consent, config } => {
            let raw = RawRequest {
                service,
                number,
                window,
                lang,
                sms_consent: Some(sms_consent),
                channel: Some("cli".to_owned()),
            };
            ops::enqueue(config, raw)
        }
        Command::List { service, state, limit, config } => {
            ops::list(config, ListFilter { service, state, limit })
        }
        Command::Show { id, config } => ops::show(config, id),
        Command::Cancel { id, config } => ops::cancel(config, id),
    }
}

fn print_diags(diags: &[Diagnostic]) -> ExitCode {
    for d in diags {
        eprintln!("{d}");
    }
    eprintln!("{} error{} found", diags.len(), if diags.len() == 1 { "" } else { "s" });
    ExitCode::from(EXIT_BAD_CONFIG)
}

/// Loads the configuration and its dialplans, or every problem of both.
fn load(config: &std::path::Path) -> Result<(Config, Services), Vec<Diagnostic>> {
    let cfg = Config::load(config)?;
    let services = dialplan::load_dir(&cfg.dialplans)?;
    Ok((cfg, services))
}

fn check(config: PathBuf, paths: Vec<PathBuf>) -> ExitCode {
    let mut diags = Vec::new();
    let cfg = Config::load(&config).map_err(|d| diags.extend(d)).ok();
    let services = if paths.is_empty() {
        cfg.as_ref().map(|c| dialplan::load_dir(&c.dialplans))
    } else {
        let mut files = Vec::new();
        for p in &paths {
            if p.is_dir() {
                match std::fs::read_dir(p) {
                    Ok(entries) => {
                        let mut found: Vec<PathBuf> = entries
                            .filter_map(Result::ok)
                            .map(|e| e.path())
                            .filter(|f| f.extension().is_some_and(|x| x == "toml") && f.is_file())
                            .collect();
                        found.sort();
                        files.extend(found);
                    }
                    Err(e) => diags.push(Diagnostic::whole_file(p, format!("cannot read: {e}"))),
                }
            } else {
                files.push(p.clone());
            }
        }
        Some(dialplan::load_files(&files))
    };
    let count = match services {
        Some(Ok(s)) => {
            // Every named prompt, for every offered language, must be a playable WAV.
            if let Some(cfg) = &cfg {
                diags.extend(callbackd::media::check_prompts(&cfg.sounds, &s));
            }
            s.len()
        }
        Some(Err(d)) => {
            diags.extend(d);
            0
        }
        None => 0,
    };
    if !diags.is_empty() {
        return print_diags(&diags);
    }
    if count == 0 {
        eprintln!("no dialplans found: at least one service is needed");
        return ExitCode::from(EXIT_BAD_CONFIG);
    }
    println!("ok: {count} service{}", if count == 1 { "" } else { "s" });
    ExitCode::SUCCESS
}

fn service<'a>(services: &'a Services, id: &str) -> Result<&'a Service, ExitCode> {
    services.get(id).ok_or_else(|| {
        let known: Vec<&str> = services.keys().map(String::as_str).collect();
        eprintln!("unknown service {id:?}; configured services: {}", known.join(", "));
        ExitCode::from(EXIT_BAD_INPUT)
    })
}

fn hours(config: PathBuf, id: &str, from: Option<Date>, to: Option<Date>) -> ExitCode {
    let (_, services) = match load(&config) {
        Ok(loaded) => loaded,
        Err(d) => return print_diags(&d),
    };
    let svc = match service(&services, id) {
        Ok(s) => s,
        Err(code) => return code,
    };
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

/// Parses a local civil time in the service's zone, or an RFC 3339 instant.
fn instant(svc: &Service, s: &str, what: &str) -> Result<Timestamp, ExitCode> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    s.parse::<DateTime>()
        .ok()
        .and_then(|dt| dt.to_zoned(svc.calendar.tz().clone()).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| {
            eprintln!("{what}: {s:?} is not a time like 2026-11-23T15:55 or 2026-11-23T13:55:00Z");
            ExitCode::from(EXIT_BAD_INPUT)
        })
}

fn next_attempt(
    config: PathBuf,
    id: &str,
    created: &str,
    window: Option<DayRange>,
    attempts: &[String],
    now: Option<&str>,
) -> ExitCode {
    let (_, services) = match load(&config) {
        Ok(loaded) => loaded,
        Err(d) => return print_diags(&d),
    };
    let svc = match service(&services, id) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match explain(svc, created, window, attempts, now) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn explain(
    svc: &Service,
    created: &str,
    window: Option<DayRange>,
    attempts: &[String],
    now: Option<&str>,
) -> Result<String, ExitCode> {
    let bad = |msg: String| {
        eprintln!("{msg}");
        ExitCode::from(EXIT_BAD_INPUT)
    };
    if let Some(w) = window {
        if !svc.windows.contains(&w) {
            let offered: Vec<String> = svc.windows.iter().map(ToString::to_string).collect();
            return Err(bad(format!(
                "--window {w} is not offered by {}; offered: {}",
                svc.id,
                if offered.is_empty() { "none".to_owned() } else { offered.join(", ") }
            )));
        }
    }
    let created_at = instant(svc, created, "--created")?;
    let mut records = Vec::new();
    for a in attempts {
        let Some((t, o)) = a.rsplit_once('=') else {
            return Err(bad(format!("--attempt {a:?}: expected TIME=OUTCOME")));
        };
        let outcome: Outcome = o.parse().map_err(|e| bad(format!("--attempt {a:?}: {e}")))?;
        records.push(AttemptRecord { ended_at: instant(svc, t, "--attempt")?, outcome });
    }
    let now = match now {
        Some(n) => instant(svc, n, "--now")?,
        None => SystemClock.now(),
    };
    let tz = svc.calendar.tz().clone();
    let local = |t: Timestamp| t.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M (%a)").to_string();
    let facts = RequestFacts { created_at, window, attempts: &records };
    let (cal, rules) = (&svc.calendar, &svc.attempts);
    let mut out = format!(
        "service:  {} ({}), {}\ncreated:  {}\nwindow:   {}\n",
        svc.id,
        svc.name,
        tz.iana_name().unwrap_or("custom zone"),
        local(created_at),
        window.map_or_else(|| "none".to_owned(), |w| w.to_string()),
    );
    if let Some((_, deadline)) = policy::deadline(cal, window, created_at) {
        out.push_str(&format!("deadline: {} (same-day contact)\n", local(deadline)));
    }
    if let Some(expires) = policy::expiry(cal, rules, window, created_at) {
        out.push_str(&format!("expires:  {}\n", local(expires)));
    }
    match policy::decide(cal, rules, &facts) {
        Decision::End { end, reason } => {
            out.push_str(&format!("decision: ends as {} because {reason}\n", end.as_str()));
        }
        Decision::Dial(plan) => {
            out.push_str(&format!(
                "attempts: {} of {} used\ndue:      {}\n",
                plan.counted,
                rules.max,
                local(plan.due)
            ));
            let verdict = match policy::at(cal, rules, window, &plan, now) {
                Now::Start => "may start an attempt now".to_owned(),
                Now::Wait(t) => format!("waits until {}", local(t)),
                Now::Expire => "expires: no attempt can start before the expiry".to_owned(),
            };
            let missed = policy::deadline_missed(cal, rules, window, &plan, now);
            out.push_str(&format!(
                "at now:   {}: {verdict}{}\n",
                local(now),
                if missed { "; the same-day deadline is missed" } else { "" }
            ));
        }
    }
    Ok(out)
}

fn serve(config: PathBuf, log_format: Option<config::LogFormat>) -> ExitCode {
    let (cfg, services) = match load(&config) {
        Ok(loaded) => loaded,
        Err(d) => return print_diags(&d),
    };
    // Refuse to start with a prompt missing or unplayable (as `check` reports it).
    let prompt_problems = callbackd::media::check_prompts(&cfg.sounds, &services);
    if !prompt_problems.is_empty() {
        return print_diags(&prompt_problems);
    }
    ops::init_logging(log_format.unwrap_or(cfg.log_format));
    // Every prompt is loaded once, before anything starts: a missing or unplayable file is
    // a configuration error.
    let prompts = match callbackd::media::Prompts::for_services(&cfg.sounds, &services) {
        Ok(p) => std::sync::Arc::new(p),
        Err(d) => return print_diags(&d),
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        services = services.len(),
        dialplans = %cfg.dialplans.display(),
        "starting"
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let signals = match ops::on_signal(shutdown.clone()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cannot install signal handlers: {e}");
                return ExitCode::FAILURE;
            }
        };
        let result = callbackd::daemon::run(cfg, services, prompts, shutdown).await;
        signals.abort();
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "callbackd failed");
                eprintln!("callbackd: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

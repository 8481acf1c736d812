//! The `callbackd` command: the daemon and the operator tools around it.
//!
//! This file only parses the arguments; each command is a function in [`cli`], which also
//! chooses the exit codes (64 = bad configuration or dialplan, 2 = bad input, 1 = runtime
//! failure).

// clippy.toml's clock and blocking rules hold for the shipped code (not for its tests).
#![cfg_attr(not(test), warn(clippy::disallowed_methods, clippy::disallowed_types))]

use callbackd::calendar::DayRange;
use callbackd::config;
use callbackd::intake::RawRequest;
use callbackd::lang::Lang;
use callbackd::store::{ListFilter, State};
use clap::{Parser, Subcommand};
use jiff::civil::Date;
use std::path::PathBuf;
use std::process::ExitCode;

mod cli;

/// The daemon's allocator. A call makes many short-lived allocations, often freed on
/// another thread than the one that made them (a SIP message parsed on one worker, dropped
/// on the other): under glibc's malloc about a quarter of a call's CPU went to the
/// allocator (arena locks, free-list consolidation, pages returned and faulted in again);
/// with mimalloc a call costs about 18% less CPU (BENCHMARKS.md, "SIP dialer").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Simulate days of a service on a virtual clock with the daemon's own decisions:
    /// simulated patients and nurses, reported as same-day rate, time to callback,
    /// attempts, utilisation and ETA punctuality.
    Simulate {
        /// Service id (a dialplan).
        service: String,
        /// Days with arrivals (the run continues until every request has ended).
        #[arg(long, default_value_t = 5)]
        days: u32,
        /// First day (local date).
        #[arg(long)]
        start: Date,
        /// Arrivals: `weekday,hour,requests` (default: the shipped example).
        #[arg(long)]
        arrivals: Option<PathBuf>,
        /// Scale the arrivals to this many requests a week.
        #[arg(long, value_name = "N")]
        per_week: Option<f64>,
        /// Nurses (call slots) every hour.
        #[arg(long, conflicts_with_all = ["nurses_by_hour", "load"])]
        nurses: Option<u32>,
        /// Nurses per weekday and hour: `weekday,hour,nurses`.
        #[arg(long, conflicts_with = "load")]
        nurses_by_hour: Option<PathBuf>,
        /// Staff each day for this nurse load (0.9 = busy 90% of the open time).
        #[arg(long)]
        load: Option<f64>,
        /// Mean time a nurse spends on a connected callback.
        #[arg(long, default_value = "6m")]
        handle_time: jiff::SignedDuration,
        /// Probability that a patient answers and confirms.
        #[arg(long, default_value_t = 0.75)]
        answer_rate: f64,
        /// Share of requests choosing one of the service's windows.
        #[arg(long, default_value_t = 0.1)]
        window_share: f64,
        /// Seed: the same seed gives the same run.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Serving order: the daemon's deadline first, or first come first served.
        #[arg(long, value_enum, default_value_t = callbackd::simulate::Order::Deadline)]
        order: callbackd::simulate::Order,
        /// Report format.
        #[arg(long, value_enum, default_value_t = cli::simulate::Format::Text)]
        format: cli::simulate::Format,
        /// Find the fewest nurses (the same every hour) reaching this same-day share
        /// (e.g. 0.995).
        #[arg(long, value_name = "TARGET")]
        find_nurses: Option<f64>,
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
    /// Supervisors' report of a period beside the period before: requests, callbacks,
    /// time to callback, same-day rate, punctuality, outcomes, SMS, by day and by hour.
    ///
    /// Reads the store read-only (safe while the daemon runs). Counts only, never numbers.
    /// Without a period, reports the last whole ISO week. Days and hours are the first
    /// service's local time.
    Report {
        /// Only this service (repeat for several; default: every configured service).
        #[arg(long = "service", value_name = "SERVICE")]
        services: Vec<String>,
        /// An ISO week, e.g. 2026-W48.
        #[arg(long, conflicts_with_all = ["month", "from", "to"])]
        week: Option<String>,
        /// A calendar month, e.g. 2026-11.
        #[arg(long, conflicts_with_all = ["from", "to"])]
        month: Option<String>,
        /// First day of a range (with --to).
        #[arg(long, requires = "to")]
        from: Option<Date>,
        /// Last day of a range, inclusive (with --from).
        #[arg(long, requires = "from")]
        to: Option<Date>,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: cli::report::Format,
        /// Language of the text and HTML headings and labels: fi, sv or en (CSV keys and
        /// JSON names stay English identifiers).
        #[arg(long, default_value = "en")]
        lang: Lang,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Daemon configuration file.
        #[arg(long, short, default_value = config::DEFAULT_PATH, env = "CALLBACKD_CONFIG")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, log_format } => cli::serve::serve(config, log_format),
        Command::Check { config, paths } => cli::check::check(config, paths),
        Command::Hours { service, from, to, config } => {
            cli::query::hours(config, &service, from, to)
        }
        Command::NextAttempt { service, created, window, attempts, now, config } => {
            cli::query::next_attempt(config, &service, &created, window, &attempts, now.as_deref())
        }
        Command::Enqueue { service, number, window, lang, sms_consent, config } => {
            let raw = RawRequest {
                service,
                number,
                window,
                lang,
                sms_consent: Some(sms_consent),
                channel: Some("cli".to_owned()),
                team: None,
            };
            cli::store::enqueue(config, raw)
        }
        Command::List { service, state, limit, config } => {
            cli::store::list(config, ListFilter { service, state, limit })
        }
        Command::Show { id, config } => cli::store::show(config, id),
        Command::Simulate {
            service,
            days,
            start,
            arrivals,
            per_week,
            nurses,
            nurses_by_hour,
            load,
            handle_time,
            answer_rate,
            window_share,
            seed,
            order,
            format,
            find_nurses,
            config,
        } => {
            let nurses = match (nurses, nurses_by_hour, load) {
                (_, Some(path), _) => cli::simulate::Nurses::ByHour(path),
                (_, _, Some(l)) => cli::simulate::Nurses::Load(l),
                (n, None, None) => cli::simulate::Nurses::Constant(n.unwrap_or(4)),
            };
            cli::simulate::simulate(cli::simulate::Args {
                config,
                service,
                days,
                start,
                arrivals,
                per_week,
                nurses,
                handle: handle_time,
                answer_rate,
                window_share,
                seed,
                order,
                format,
                find_nurses,
            })
        }
        Command::Cancel { id, config } => cli::store::cancel(config, id),
        Command::Report { services, week, month, from, to, format, lang, out, config } => {
            cli::report::report(cli::report::Args {
                services,
                week,
                month,
                from,
                to,
                format,
                lang,
                out,
                config,
            })
        }
    }
}

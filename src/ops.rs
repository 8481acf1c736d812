//! Operator commands that work against the store (`enqueue`, `list`, `show`, `cancel`),
//! logging set-up and signal handling for `serve`.

use crate::{EXIT_BAD_INPUT, load, print_diags};
use callbackd::config::LogFormat;
use callbackd::dialplan::Services;
use callbackd::intake::{self, RawRequest};
use callbackd::store::{Cancelled, ListFilter, Request, Store};
use jiff::Timestamp;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// The default log filter: `info`, and the SIP library's targets as
/// [`callbackd::sip::LOG_DIRECTIVES`] says (it logs whole SIP messages, and so the
/// patients' full numbers, at `info`, and header text it could not parse in warnings).
pub fn default_log_filter() -> String {
    format!("info,{}", callbackd::sip::LOG_DIRECTIVES)
}

/// Sets up `tracing` for the chosen format; `RUST_LOG` overrides [`default_log_filter`].
pub fn init_logging(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_log_filter()));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Journald => builder.without_time().with_ansi(false).try_init(),
    };
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
pub fn on_signal(shutdown: CancellationToken) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
        shutdown.cancel();
    }))
}

/// Loads the configuration and dialplans, opens the store, runs `f` on them, and closes the
/// store; or explains (and gives the exit code) why it could not.
fn with_store<T>(
    config: &std::path::Path,
    f: impl AsyncFnOnce(&Services, &Store) -> T,
) -> Result<(Services, T), ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| {
        eprintln!("cannot start the runtime: {e}");
        ExitCode::FAILURE
    })?;
    let (cfg, services) = load(config).map_err(|d| print_diags(&d))?;
    let out = rt.block_on(async {
        let store = Store::open(&cfg.database).await.map_err(|e| {
            eprintln!("cannot open the store {}: {e}", callbackd::daemon::redact(&cfg.database));
            ExitCode::FAILURE
        })?;
        let out = f(&services, &store).await;
        store.close().await;
        Ok::<T, ExitCode>(out)
    })?;
    Ok((services, out))
}

fn local(services: &Services, service: &str, t: Timestamp) -> String {
    match services.get(service) {
        Some(s) => t.to_zoned(s.calendar.tz().clone()).strftime("%Y-%m-%d %H:%M:%S %Z").to_string(),
        None => t.to_string(),
    }
}

fn describe(services: &Services, r: &Request) -> String {
    let t = |t: Timestamp| local(services, &r.service, t);
    let mut out = format!(
        "id:        {}\nservice:   {}\nstate:     {}\nnumber:    {}\nchannel:   {}\nlang:      {}\n\
         window:    {}\ncreated:   {}\ndue:       {}\ndeadline:  {}{}\nexpires:   {}\nattempts:  {} counted\n",
        r.id,
        r.service,
        r.state,
        r.number.as_ref().map_or_else(|| "(erased)".to_owned(), |n| n.masked().to_string()),
        r.channel,
        r.lang,
        r.window.map_or_else(|| "none".to_owned(), |w| w.to_string()),
        t(r.created_at),
        r.due_at.map_or_else(|| "-".to_owned(), t),
        t(r.deadline_at),
        if r.deadline_missed { " (missed)" } else { "" },
        t(r.expires_at),
        r.attempts_counted,
    );
    if r.cancel_requested {
        out.push_str("cancel:    requested during a live attempt\n");
    }
    if let Some(f) = r.final_at {
        out.push_str(&format!("ended:     {} ({})\n", t(f), r.end_reason.as_deref().unwrap_or("")));
    }
    out
}

/// `callbackd enqueue`.
pub fn enqueue(config: PathBuf, raw: RawRequest) -> ExitCode {
    let done = with_store(&config, async |services, store| {
        let accepted = intake::validate(services, &raw, "cli", Timestamp::now())?;
        Ok::<_, intake::IntakeError>(store.enqueue(&accepted.request, &accepted.plan).await)
    });
    let (services, result) = match done {
        Ok((services, Ok(result))) => (services, result),
        Ok((_, Err(e))) => {
            eprintln!("refused ({}): {e}", e.field());
            return ExitCode::from(EXIT_BAD_INPUT);
        }
        Err(code) => return code,
    };
    match result {
        Ok(stored) => {
            if stored.duplicate {
                println!("duplicate: the number already has a live request in this service");
            }
            print!("{}", describe(&services, &stored.request));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot store the request: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `callbackd list`.
pub fn list(config: PathBuf, filter: ListFilter) -> ExitCode {
    let (services, rows) = match with_store(&config, async |_, store| store.list(&filter).await) {
        Ok(x) => x,
        Err(code) => return code,
    };
    match rows {
        Ok(rows) => {
            println!(
                "{:>8}  {:<16} {:<11} {:<15} {:<25} {:<25} attempts",
                "id", "service", "state", "number", "created", "due"
            );
            for r in rows {
                println!(
                    "{:>8}  {:<16} {:<11} {:<15} {:<25} {:<25} {}",
                    r.id,
                    r.service,
                    r.state.as_str(),
                    r.number
                        .as_ref()
                        .map_or_else(|| "(erased)".to_owned(), |n| n.masked().to_string()),
                    local(&services, &r.service, r.created_at),
                    r.due_at.map_or_else(|| "-".to_owned(), |t| local(&services, &r.service, t)),
                    r.attempts_counted,
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot list requests: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `callbackd show`.
pub fn show(config: PathBuf, id: i64) -> ExitCode {
    let done = with_store(&config, async |_, store| {
        let Some(r) = store.request(id).await? else { return Ok(None) };
        let attempts = store.attempts(id).await?;
        let trail = store.audit_trail(id).await?;
        let outbox = store.outbox(Some(id)).await?;
        Ok::<_, callbackd::store::StoreError>(Some((r, attempts, trail, outbox)))
    });
    let (services, result) = match done {
        Ok(x) => x,
        Err(code) => return code,
    };
    match result {
        Ok(Some((r, attempts, trail, outbox))) => {
            print!("{}", describe(&services, &r));
            for a in attempts {
                println!(
                    "attempt {}: started {}, {}{}",
                    a.seq,
                    local(&services, &r.service, a.started_at),
                    a.outcome.map_or("live", |o| o.as_str()),
                    a.sip_code.map(|c| format!(" (SIP {c})")).unwrap_or_default(),
                );
            }
            for m in outbox {
                println!("sms {}: {} ({}, {})", m.id, m.kind, m.lang, m.state);
            }
            for (at, from, to, actor, detail) in trail {
                println!(
                    "audit {}: {} -> {} by {actor}{}",
                    local(&services, &r.service, at),
                    from.as_deref().unwrap_or("-"),
                    to,
                    if detail.is_empty() { String::new() } else { format!(": {detail}") },
                );
            }
            ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!("no request {id}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("cannot read request {id}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `callbackd cancel`.
pub fn cancel(config: PathBuf, id: i64) -> ExitCode {
    let done =
        with_store(&config, async |_, store| store.cancel(id, "cli", Timestamp::now()).await);
    let result = match done {
        Ok((_, result)) => result,
        Err(code) => return code,
    };
    match result {
        Ok(Cancelled::Now) => {
            println!("request {id} cancelled");
            ExitCode::SUCCESS
        }
        Ok(Cancelled::AfterLiveAttempt) => {
            println!(
                "request {id}: a call is in progress; it is not interrupted, and the request will not be retried"
            );
            ExitCode::SUCCESS
        }
        Ok(Cancelled::AlreadyFinal(state)) => {
            println!("request {id} had already ended: {state}");
            ExitCode::SUCCESS
        }
        Ok(Cancelled::NotFound) => {
            eprintln!("no request {id}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("cannot cancel request {id}: {e}");
            ExitCode::FAILURE
        }
    }
}

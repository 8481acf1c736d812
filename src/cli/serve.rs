//! `callbackd serve`: logging, signals, the runtime, and the daemon itself.

use super::{load, print_diags};
use callbackd::config::{self, LogFormat};
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

/// Runs the daemon until SIGTERM or SIGINT.
pub fn serve(config: PathBuf, log_format: Option<config::LogFormat>) -> ExitCode {
    let (cfg, services) = match load(&config) {
        Ok(loaded) => loaded,
        Err(d) => return print_diags(&d),
    };
    // Refuse to start with a prompt missing or unplayable (as `check` reports it).
    let prompt_problems = callbackd::media::check_prompts(&cfg.sounds, &services);
    if !prompt_problems.is_empty() {
        return print_diags(&prompt_problems);
    }
    init_logging(log_format.unwrap_or(cfg.log_format));
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
        let signals = match on_signal(shutdown.clone()) {
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

//! The commands of the `callbackd` binary, one function each, and the exit codes they
//! choose. Everything they decide comes from the library; here is only reading arguments
//! and files, printing, and mapping failures to exit codes.

pub mod check;
pub mod query;
pub mod report;
pub mod serve;
pub mod simulate;
pub mod store;

use callbackd::config::Config;
use callbackd::diag::Diagnostic;
use callbackd::dialplan::{self, Service, Services};
use std::process::ExitCode;

/// Exit code for a bad configuration or dialplan (EX_USAGE).
pub const EXIT_BAD_CONFIG: u8 = 64;
/// Exit code for bad command-line input that clap cannot catch.
pub const EXIT_BAD_INPUT: u8 = 2;

pub fn print_diags(diags: &[Diagnostic]) -> ExitCode {
    for d in diags {
        eprintln!("{d}");
    }
    eprintln!("{} error{} found", diags.len(), if diags.len() == 1 { "" } else { "s" });
    ExitCode::from(EXIT_BAD_CONFIG)
}

/// Loads the configuration and its dialplans, or every problem of both.
pub fn load(config: &std::path::Path) -> Result<(Config, Services), Vec<Diagnostic>> {
    let cfg = Config::load(config)?;
    let services = dialplan::load_dir(&cfg.dialplans)?;
    Ok((cfg, services))
}

pub fn service<'a>(services: &'a Services, id: &str) -> Result<&'a Service, ExitCode> {
    services.get(id).ok_or_else(|| {
        let known: Vec<&str> = services.keys().map(String::as_str).collect();
        eprintln!("unknown service {id:?}; configured services: {}", known.join(", "));
        ExitCode::from(EXIT_BAD_INPUT)
    })
}

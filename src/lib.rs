//! # callbackd
//!
//! Calls patients back for public health-care call centres: a patient who could not get
//! through leaves a callback request; callbackd calls them back from the health station's
//! own number, inside the station's opening hours, within the attempt limits and the
//! patient's chosen window.
//!
//! ## Map of the crate
//!
//! The code is split in two: everything that *decides* is pure (data and `now` in, values
//! out, no clock reads, no I/O), everything that *acts* is a thin edge around it.
//!
//! Pure core:
//! - [`calendar`]: weekly hours, the Finnish holiday calendar (`fi`), holiday eves,
//!   operator exceptions, conversion of local hours to UTC instants (DST-safe, via `jiff`).
//! - [`policy`]: when a request is due, its same-day deadline, expiry, retries, ETA;
//!   [`policy::number`]: which phone numbers may be called, masking for logs.
//! - [`dialplan`]: the per-service TOML files operators edit, parsed and validated with
//!   every problem reported as `file:line:col: message`.
//! - [`config`]: the daemon configuration file.
//! - [`media`]: G.711, the far end's SDP answer, prompt files (pure parts); RTP legs that
//!   play prompts, read DTMF and relay two calls (the tokio edge).
//! - [`diag`]: located diagnostics shared by the two parsers.
//!
//! Edges:
//! - [`dialplan::load_dir`], [`config::Config::load`]: read files.
//! - [`sms`]: the SMS outbox's sender task and HTTP gateway (templates and the dialplan's
//!   `[sms]` section are pure).
//! - `src/main.rs`: the `callbackd` command line; maps errors to exit codes
//!   (64 = bad configuration or dialplan).

pub mod calendar;
pub mod call;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod diag;
pub mod dialplan;
pub mod http;
pub mod intake;
pub mod lang;
pub mod media;
pub mod metrics;
pub mod policy;
pub mod reload;
pub mod scheduler;
pub mod sip;
pub mod sms;
pub mod store;

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
//!   [`policy::lifecycle`]: every change of a request's state, `step(facts, event, now)`
//!   → a `Transition` the store writes (state, due time, outcome, audit row, SMS), the
//!   serving order and SMS eligibility; [`policy::admit`]: capacity and call rate on the
//!   domain clock.
//! - [`number`]: phone numbers as people type them, which may be called back or shown as
//!   caller ID, masking for logs (a leaf: everything may use it, it uses nothing of ours).
//! - [`call`]: an attempt's types ([`call::attempt`]), how an INVITE's ending maps to an
//!   outcome ([`call::outcome_of`]), the answered-call state machines ([`call::machine`]:
//!   greet, press 1, hand over, apologise; [`call::machine::agent`]: nurse first, whisper,
//!   patient, bridge) and [`call::runner`], which runs one attempt by driving them over the
//!   `Legs` port (dial, play, next key, refer, bridge, hang up) that `sip` implements;
//!   [`call::intake`], the intake call (the IVR taking a request on the phone) as a pure
//!   state machine.
//! - [`intake`]: a patient's request validated into what the store keeps; the fixed set of
//!   intake channels; the team lookup hook; [`intake::PhoneDesk`], which stores the
//!   requests taken on the phone.
//! - [`sms`]: the SMS rules: sender IDs, templates and their length, who can receive an
//!   SMS, quiet hours, retry waits, the dialplan's `[sms]` section and the daemon's `[sms]`
//!   gateway settings.
//! - [`dialplan`]: the per-service TOML files operators edit, parsed and validated with
//!   every problem reported as `file:line:col: message`.
//! - [`config`]: the daemon configuration file.
//! - [`link`]: the patient's link (`[public]`): HMAC tokens naming a request, their
//!   lifetime, the page's form MACs.
//! - [`media`]: G.711, the far end's SDP answer, prompt files (pure parts); RTP legs that
//!   play prompts, read DTMF and relay two calls (the tokio edge).
//! - [`diag`]: located diagnostics shared by the two parsers.
//! - [`explain`]: `callbackd next-attempt`, the policy's view of one request in words.
//! - [`report`]: supervisors' reports: every figure of a period and the one before from
//!   plain rows, per service and all ([`report::compute`]), and their text, CSV, JSON and
//!   HTML (charts by `plotters`) renderings; today's figures of the live page.
//!
//! Edges, and the tasks `callbackd serve` runs ([`daemon::run`] owns the shutdown token and
//! waits for them all):
//! - [`store`]: the queue in SQLite or PostgreSQL (sqlx); writes the lifecycle's transitions
//!   (`store/requests.rs`), each with its audit row and any SMS, before the action it
//!   announces, and decides nothing. On PostgreSQL, claims take a lease with a fencing token
//!   (`store/lease.rs`) so several servers share one queue.
//! - [`scheduler`]: one task; sleeps until the next due request, deadline or expiry, claims
//!   within capacity and call rate, owns the calls (a `JoinSet`) and records their outcomes
//!   (`scheduler/mod.rs`); crash recovery and lease take-over (`recovery.rs`); lease renewal
//!   and shared claims (`cluster.rs`); [`scheduler::StoreEvents`] writes a call's answer
//!   before the call goes on (`answer.rs`).
//! - [`sip`]: the only user of `rsipstack`, an adapter that decides nothing about attempts:
//!   the trunk's tasks under one `TaskTracker` (transport, incoming requests, dialog-state
//!   routing, registration; [`sip::Trunk::stopped`] waits for them), the `Legs` port over
//!   SIP and RTP ([`sip::legs`]), the pure answers to unasked messages ([`sip::inbound`]),
//!   the intake calls the PBX sends in ([`sip::intake`]: admission, SDP answer, keys),
//!   and the [`sip::SipDialer`] the scheduler calls through.
//! - [`http`]: the top layer, every route: intake, status, cancellation, services, the
//!   SMS opt-out list, health and `/metrics` (axum), one JSON error shape, and the server's
//!   accept loop with its connection limit and header, body and idle timeouts. Nothing
//!   else imports it.
//! - [`eta`]: the ETA's store reads (place in the queue, recent rate) for the API and the
//!   SMS notice alike.
//! - [`notifier`]: the SMS outbox's sender task and HTTP gateway client.
//! - [`reload`]: SIGHUP and directory-watch dialplan reload (owns the `watch` sender of the
//!   services; the scheduler and the handlers read).
//! - [`metrics`]: metric names and the Prometheus recorder; [`clock`]: the one wall clock.
//! - `src/main.rs`: the `callbackd` command line (argument parsing only); `src/cli/`: one
//!   function per command, which chooses the exit code (64 = bad configuration or
//!   dialplan, 2 = bad input, 1 = runtime failure).

// clippy.toml's clock and blocking rules hold for the shipped code (not for its tests).
#![cfg_attr(not(test), warn(clippy::disallowed_methods, clippy::disallowed_types))]

pub mod calendar;
pub mod call;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod diag;
pub mod dialplan;
pub mod eta;
pub mod explain;
pub mod http;
pub mod intake;
pub mod lang;
pub mod link;
pub mod media;
pub mod metrics;
pub mod notifier;
pub mod number;
pub mod policy;
pub mod reload;
pub mod report;
pub mod scheduler;
pub mod simulate;
pub mod sip;
pub mod sms;
pub mod store;

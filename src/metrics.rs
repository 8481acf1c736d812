//! Metric names, descriptions and the Prometheus recorder, in one place.
//!
//! Every metric is `callbackd_`-prefixed and follows Prometheus conventions (base units,
//! `_total` for counters). Label values come only from fixed sets, never from a client's
//! text: `service` (a loaded dialplan's id, or `unknown`), `channel`
//! ([`crate::intake::Channel`], or `invalid`), and `&'static str` constants for `result`,
//! `outcome`, `state`, `kind`, `side` and `version`.

use crate::policy::punctuality::Miss;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// Requests received: `result` is `accepted`, `duplicate` or `rejected`.
pub const REQUESTS: &str = "callbackd_requests_total";
/// Live requests by service and state.
pub const QUEUE_DEPTH: &str = "callbackd_queue_depth";
/// Finished attempts by outcome.
pub const ATTEMPTS: &str = "callbackd_attempts_total";
/// Seconds from request to connected callback.
pub const CALLBACK_DELAY: &str = "callbackd_callback_delay_seconds";
/// Calls in progress.
pub const ACTIVE_CALLS: &str = "callbackd_active_calls";
/// Requests whose same-day deadline passed unserved.
pub const DEADLINE_MISSED: &str = "callbackd_deadline_missed_total";
/// Requests that ended, by final state.
pub const REQUESTS_ENDED: &str = "callbackd_requests_ended_total";
/// SMS handled by the sender: `kind` notice/unreachable/feedback, `result`
/// sent/retry/failed/skipped.
pub const SMS: &str = "callbackd_sms_total";
/// Outbox messages waiting to be sent.
pub const SMS_BACKLOG: &str = "callbackd_sms_outbox_backlog";
/// Build information.
pub const BUILD_INFO: &str = "callbackd_build_info";
/// Dialplan reloads: `result` is `ok` or `error`.
pub const DIALPLAN_RELOADS: &str = "callbackd_dialplan_reloads_total";
/// HTTP connections open now.
pub const HTTP_CONNECTIONS: &str = "callbackd_http_connections";
/// HTTP connections or requests ended by a timeout: `kind` is `header`, `body` or `idle`.
pub const HTTP_TIMEOUTS: &str = "callbackd_http_timeouts_total";
/// Failed `accept` calls (e.g. the file limit reached).
pub const HTTP_ACCEPT_ERRORS: &str = "callbackd_http_accept_errors_total";
/// Counter: intake calls (callbackd answered the PBX's overflow call), by service and end.
pub const INTAKE_CALLS: &str = "callbackd_intake_calls_total";
/// Counter: SQLite intake batches (group commit), by how their requests were written:
/// `together`, `single` (a batch of one) or `after_refusal` (writing them together failed,
/// so one at a time, each under its own savepoint).
pub const INTAKE_BATCHES: &str = "callbackd_intake_batches_total";
/// Gauge: 1 while the store takes writes, 0 while it refuses them (`/readyz` is 503).
pub const STORE_WRITABLE: &str = "callbackd_store_writable";
/// Gauge: waiting requests still in time but expected after their same-day deadline at
/// the service's recent rate ([`crate::policy::risk`]).
pub const REQUESTS_AT_RISK: &str = "callbackd_requests_at_risk";
/// Counter: first calls of requests told a window, by `side` against it (`early`,
/// `inside`, `late`; [`crate::policy::punctuality`]). The share on time is `inside` over
/// all sides.
pub const ETA_FIRST_CALLS: &str = "callbackd_eta_first_calls_total";
/// Histogram: how far the first call of a request told a window started from it, seconds
/// (0 inside, else the distance to the nearer edge; the counter's `side` tells early from
/// late). Observed with [`ETA_FIRST_CALLS`], once per request.
pub const ETA_MISS: &str = "callbackd_eta_miss_seconds";
/// SIP datagrams dropped unread: `reason` is `unreadable`, `start_line` or `headers`.
pub const SIP_MALFORMED: &str = "callbackd_sip_malformed_total";
/// Counter: shared call-rate stops replaced because another server's clock set them too
/// far ahead of this one's (PostgreSQL; [`crate::store::lease`]).
pub const RATE_STOPS_REPLACED: &str = "callbackd_rate_stops_replaced_total";

/// Buckets for the callback delay: 1 min … 2 days.
const DELAY_BUCKETS: [f64; 12] = [
    60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0, 86400.0, 172800.0,
    259200.0,
];

/// Buckets for the miss of the told window: 0 (inside) … 1 day.
const MISS_BUCKETS: [f64; 11] =
    [0.0, 60.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0];

/// Metrics setup failure.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up metrics: {0}")]
pub struct MetricsError(#[from] metrics_exporter_prometheus::BuildError);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder once per process and returns the handle that renders
/// `/metrics`.
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(CALLBACK_DELAY.to_owned()), &DELAY_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(ETA_MISS.to_owned()), &MISS_BUCKETS)?
        .install_recorder()?;
    describe();
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(HANDLE.get_or_init(|| handle).clone())
}

fn describe() {
    describe_counter!(REQUESTS, "Callback requests received, by service, channel and result.");
    describe_gauge!(QUEUE_DEPTH, "Live callback requests, by service and state.");
    describe_counter!(ATTEMPTS, "Finished call attempts, by service and outcome.");
    describe_histogram!(
        CALLBACK_DELAY,
        metrics::Unit::Seconds,
        "Time from a callback request to the connected callback."
    );
    describe_gauge!(ACTIVE_CALLS, "Call attempts in progress, by service.");
    describe_counter!(
        DEADLINE_MISSED,
        "Requests whose same-day deadline passed before they were served."
    );
    describe_counter!(REQUESTS_ENDED, "Requests that reached a final state, by service and state.");
    describe_counter!(SMS, "SMS handled by the sender, by kind and result.");
    describe_gauge!(SMS_BACKLOG, "SMS outbox messages queued and not yet sent.");
    describe_gauge!(BUILD_INFO, "Build information; always 1.");
    describe_gauge!(
        STORE_WRITABLE,
        "1 while the queue store takes writes, 0 while it refuses them."
    );
    describe_counter!(
        SIP_MALFORMED,
        "SIP datagrams dropped because the SIP stack could not read them, by reason."
    );
    describe_counter!(
        RATE_STOPS_REPLACED,
        "Shared call-rate stops replaced because another server's clock set them too far \
         ahead (check the servers' NTP sync)."
    );
    describe_counter!(DIALPLAN_RELOADS, "Dialplan reloads, by result (error: the old set stayed).");
    describe_gauge!(
        REQUESTS_AT_RISK,
        "Waiting requests expected after their same-day deadline at the recent rate, by service."
    );
    describe_counter!(
        ETA_FIRST_CALLS,
        "First calls of requests told a window, by service and side of it (early, inside, late)."
    );
    describe_histogram!(
        ETA_MISS,
        metrics::Unit::Seconds,
        "How far first calls started from the window the patient was told (0 inside), by service."
    );
    describe_gauge!(HTTP_CONNECTIONS, "HTTP connections open.");
    describe_counter!(HTTP_TIMEOUTS, "HTTP connections or requests ended by a timeout, by kind.");
    describe_counter!(HTTP_ACCEPT_ERRORS, "Failed accepts of HTTP connections.");
    describe_counter!(
        INTAKE_CALLS,
        "Intake calls answered, by service and end (stored, already_waiting, hung_up, gave_up, store_failed)."
    );
    describe_counter!(
        INTAKE_BATCHES,
        "SQLite intake batches (group commit), by how their requests were written (together, \
         single, after_refusal: one at a time after writing them together failed)."
    );
}

/// A request arrived; `service` is a loaded dialplan's id or `unknown`.
pub fn request(service: &str, channel: &'static str, result: &'static str) {
    counter!(REQUESTS, "service" => service.to_owned(), "channel" => channel, "result" => result)
        .increment(1);
}

/// An intake call ended.
pub fn intake_call(service: &str, end: &'static str) {
    counter!(INTAKE_CALLS, "service" => service.to_owned(), "end" => end).increment(1);
}

/// A batch of intakes was written (`written`: see [`INTAKE_BATCHES`]).
pub fn intake_batch(written: &'static str) {
    counter!(INTAKE_BATCHES, "written" => written).increment(1);
}

/// An attempt ended.
pub fn attempt(service: &str, outcome: &'static str) {
    counter!(ATTEMPTS, "service" => service.to_owned(), "outcome" => outcome).increment(1);
}

/// Waiting requests at risk of missing their same-day deadline.
pub fn requests_at_risk(service: &str, n: usize) {
    gauge!(REQUESTS_AT_RISK, "service" => service.to_owned()).set(n as f64);
}

/// A request ended.
pub fn ended(service: &str, state: &'static str) {
    counter!(REQUESTS_ENDED, "service" => service.to_owned(), "state" => state).increment(1);
}

/// A callback connected `secs` after the request.
pub fn callback_delay(service: &str, secs: f64) {
    histogram!(CALLBACK_DELAY, "service" => service.to_owned()).record(secs);
}

/// A request's first call started against the window its patient was told.
pub fn first_call(service: &str, miss: Miss) {
    counter!(ETA_FIRST_CALLS, "service" => service.to_owned(), "side" => miss.side.as_str())
        .increment(1);
    histogram!(ETA_MISS, "service" => service.to_owned()).record(miss.by.as_secs_f64());
}

/// Calls in progress for a service.
pub fn active_calls(service: &str, n: usize) {
    gauge!(ACTIVE_CALLS, "service" => service.to_owned()).set(n as f64);
}

/// Requests missed their deadline.
pub fn deadline_missed(service: &str, n: u64) {
    counter!(DEADLINE_MISSED, "service" => service.to_owned()).increment(n);
}

/// Live requests of a service in a state.
pub fn queue_depth(service: &str, state: &'static str, n: i64) {
    gauge!(QUEUE_DEPTH, "service" => service.to_owned(), "state" => state).set(n as f64);
}

/// The sender handled an SMS (`kind` and `result` from fixed sets).
pub fn sms(kind: &'static str, result: &'static str) {
    counter!(SMS, "kind" => kind, "result" => result).increment(1);
}

/// Queued outbox messages.
pub fn sms_backlog(n: i64) {
    gauge!(SMS_BACKLOG).set(n as f64);
}

/// A dialplan reload finished.
pub fn dialplan_reload(result: &'static str) {
    counter!(DIALPLAN_RELOADS, "result" => result).increment(1);
}

/// HTTP connections opened (+1) or closed (-1).
pub fn http_connections(delta: i8) {
    gauge!(HTTP_CONNECTIONS).increment(f64::from(delta));
}

/// An HTTP timeout closed a connection or ended a request (`kind`: header, body, idle).
pub fn http_timeout(kind: &'static str) {
    counter!(HTTP_TIMEOUTS, "kind" => kind).increment(1);
}

/// An `accept` failed.
pub fn http_accept_error() {
    counter!(HTTP_ACCEPT_ERRORS).increment(1);
}

/// Whether the store takes writes.
pub fn store_writable(yes: bool) {
    gauge!(STORE_WRITABLE).set(if yes { 1.0 } else { 0.0 });
}

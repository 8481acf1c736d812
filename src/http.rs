//! The HTTP API: intake, request status, cancellation, services, health and `/metrics`.
//!
//! Thin: every decision is made by [`crate::intake`] and [`crate::policy`]; this module maps
//! their results to status codes and JSON. Errors are `{"error": code, "field": …,
//! "message": …}`.

use crate::clock::Clock;
use crate::dialplan::{Service, Services};
use crate::intake::{self, RawRequest};
use crate::metrics;
use crate::policy::{self, Eta, Plan};
use crate::store::{Attempt, Cancelled, Depth, Request, State, Store, StoreError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::{SignedDuration, Timestamp};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::{Notify, watch};
use tracing::{error, info};

/// Requests ahead beyond which no ETA is given (and `place` reads as this many).
const AHEAD_CAP: i64 = 5000;

/// Everything the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The queue.
    pub store: Store,
    /// Current dialplans (sent by the reloader).
    pub services: watch::Receiver<Arc<Services>>,
    /// Notified after a request is stored or cancelled, so the scheduler re-evaluates.
    pub wake: Arc<Notify>,
    /// The wall clock.
    pub clock: Arc<dyn Clock>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// True once the scheduler has recovered interrupted attempts.
    pub recovered: Arc<std::sync::atomic::AtomicBool>,
    /// The API token `/v1/` requests must present (`Authorization: Bearer …`); `None`: open.
    pub token: Option<Arc<str>>,
    /// Each service's recent rate for intake's ETA, recomputed at most every [`DEPTH_TTL`].
    pub rates: Arc<tokio::sync::Mutex<std::collections::HashMap<String, RateSnapshot>>>,
    /// Queue depth for intake's ETA, recomputed at most every [`DEPTH_TTL`].
    pub depth: Arc<tokio::sync::Mutex<Option<DepthSnapshot>>>,
}

/// A service rate (calls per hour) and when it was read.
pub type RateSnapshot = (tokio::time::Instant, f64);

/// A queue depth and when it was read.
pub type DepthSnapshot = (tokio::time::Instant, Vec<Depth>);

/// How long a computed queue depth is reused by intake for its first ETA.
pub const DEPTH_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl AppState {
    /// The service's recent rate, from a cache at most [`DEPTH_TTL`] old (intake only).
    async fn rate(&self, service: &Service, now: Timestamp) -> Result<f64, StoreError> {
        let mut cache = self.rates.lock().await;
        if let Some((at, r)) = cache.get(&service.id) {
            if at.elapsed() < DEPTH_TTL {
                return Ok(*r);
            }
        }
        let r = rate(&self.store, service, now).await?;
        cache.insert(service.id.clone(), (tokio::time::Instant::now(), r));
        Ok(r)
    }

    /// Live requests per service and state, from a cache at most [`DEPTH_TTL`] old.
    async fn depth(&self) -> Result<Vec<Depth>, StoreError> {
        let mut cache = self.depth.lock().await;
        if let Some((at, d)) = cache.as_ref() {
            if at.elapsed() < DEPTH_TTL {
                return Ok(d.clone());
            }
        }
        let d = self.store.depth().await?;
        *cache = Some((tokio::time::Instant::now(), d.clone()));
        Ok(d)
    }
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/callbacks", axum::routing::post(create))
        .route("/v1/callbacks/{id}", get(show).delete(cancel))
        .route("/v1/services", get(services))
        .merge(crate::sms::api::routes())
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .merge(api)
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(render_metrics))
        .fallback(|| async {
            problem(StatusCode::NOT_FOUND, "not_found", None, "no such endpoint")
        })
        .with_state(state)
}

/// Lets a `/v1/` request through only with the configured bearer token (if any).
async fn require_token(
    AxState(st): AxState<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(token) = st.token.as_deref() else { return next.run(req).await };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    // Compare in time independent of where the strings differ.
    let same = given.len() == token.len()
        && given.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if same {
        next.run(req).await
    } else {
        problem(StatusCode::UNAUTHORIZED, "unauthorized", None, "a valid API token is required")
    }
}

fn problem(status: StatusCode, code: &str, field: Option<&str>, message: &str) -> Response {
    let mut body = json!({ "error": code, "message": message });
    if let Some(f) = field {
        body["field"] = json!(f);
    }
    (status, axum::Json(body)).into_response()
}

fn internal(e: &StoreError) -> Response {
    // A refusal was logged once, when the store stopped taking writes.
    if !matches!(e, StoreError::Refusing(_)) {
        error!(error = %e, "store failure");
    }
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        None,
        "the queue store is unavailable",
    )
}

/// An instant in the service's local time with its offset, e.g. `2026-11-23T10:30:00+02:00`.
fn local(service: Option<&Service>, t: Timestamp) -> String {
    match service {
        Some(s) => t.to_zoned(s.calendar.tz().clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        None => t.to_string(),
    }
}

/// Calls per hour the service has recently managed (last two hours), or, with no history
/// yet, six per line of capacity (ten minutes a call).
async fn rate(store: &Store, service: &Service, now: Timestamp) -> Result<f64, StoreError> {
    let since = now.checked_sub(SignedDuration::from_hours(2)).unwrap_or(now);
    let done = store.connected_since(&service.id, since).await?;
    Ok(if done > 0 { done as f64 / 2.0 } else { f64::from(service.capacity) * 6.0 })
}

/// The ETA of a waiting request with `ahead` requests before it (also used by the SMS
/// notice).
pub(crate) async fn eta_of(
    store: &Store,
    service: &Service,
    req: &Request,
    ahead: i64,
    now: Timestamp,
) -> Result<Option<Eta>, StoreError> {
    let Some(due) = req.due_at else { return Ok(None) };
    let plan = Plan {
        due,
        deadline: req.deadline_at,
        expires: req.expires_at,
        counted: u8::try_from(req.attempts_counted).unwrap_or(u8::MAX),
    };
    if ahead >= AHEAD_CAP {
        return Ok(None);
    }
    let rate = rate(store, service, now).await?;
    Ok(eta_at_rate(service, req, &plan, ahead, rate, now))
}

/// The ETA with a known service rate (calls per hour).
fn eta_at_rate(
    service: &Service,
    req: &Request,
    plan: &Plan,
    ahead: i64,
    rate: f64,
    now: Timestamp,
) -> Option<Eta> {
    let ahead = u32::try_from(ahead).ok().filter(|a| i64::from(*a) < AHEAD_CAP)?;
    policy::eta(&service.calendar, &service.attempts, req.window, plan, now, ahead, rate)
}

fn eta_json(service: Option<&Service>, eta: Option<Eta>) -> Value {
    match eta {
        Some(e) => json!({ "from": local(service, e.from), "to": local(service, e.to) }),
        None => Value::Null,
    }
}

fn request_json(service: Option<&Service>, req: &Request) -> Value {
    json!({
        "id": req.id,
        "service": req.service,
        "state": req.state.as_str(),
        "number": req.number.as_ref().map(|n| n.masked().to_string()),
        "channel": req.channel,
        "lang": req.lang.code(),
        "window": req.window.map(|w| w.to_string()),
        "sms_consent": req.sms_consent,
        "created_at": local(service, req.created_at),
        "due_at": req.due_at.map(|t| local(service, t)),
        "deadline": local(service, req.deadline_at),
        "expires": local(service, req.expires_at),
        "deadline_missed": req.deadline_missed,
        "cancel_requested": req.cancel_requested,
        "final_at": req.final_at.map(|t| local(service, t)),
        "end_reason": req.end_reason,
    })
}

fn attempt_json(service: Option<&Service>, a: &Attempt) -> Value {
    json!({
        "seq": a.seq,
        "started_at": local(service, a.started_at),
        "ended_at": a.ended_at.map(|t| local(service, t)),
        "outcome": a.outcome.map(|o| o.as_str()),
        "sip_code": a.sip_code,
    })
}

async fn create(AxState(st): AxState<AppState>, body: Bytes) -> Response {
    let raw: RawRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("request body is not a valid callback request: {e}");
            return problem(StatusCode::BAD_REQUEST, "invalid_body", None, &msg);
        }
    };
    let services = st.services.borrow().clone();
    let now = st.clock.now();
    let accepted = match intake::validate(&services, &raw, "api", now) {
        Ok(a) => a,
        Err(e) => {
            // Labels only from known values: client text never becomes a metric label.
            let service = services.get(raw.service.trim()).map_or("unknown", |s| s.id.as_str());
            let channel = match raw.channel.as_deref() {
                None => "api",
                Some(c) if intake::CHANNELS.contains(&c) => c,
                Some(_) => "invalid",
            };
            metrics::request(service, channel, "rejected");
            let status = if matches!(e, intake::IntakeError::UnknownService(_)) {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            return problem(status, e.code(), Some(e.field()), &e.to_string());
        }
    };
    let service = accepted.service;
    // Acknowledged only if the write landed in the file the next start reads.
    let stored = match st.store.enqueue(&accepted.request, &accepted.plan).await {
        Ok(s) => match st.store.confirm() {
            Ok(()) => s,
            Err(e) => return internal(&e),
        },
        Err(e) => return internal(&e),
    };
    let result = if stored.duplicate { "duplicate" } else { "accepted" };
    metrics::request(&service.id, &accepted.request.channel, result);
    if !stored.duplicate {
        info!(service = %service.id, request = stored.request.id, number = %accepted.request.number, "request accepted");
        st.wake.notify_one();
    }
    // At intake every waiting request of the service counts as ahead (a cached count, so
    // intake cost does not grow with the queue); GET gives the exact place.
    let ahead = match st.depth().await {
        Ok(d) => d
            .iter()
            .filter(|d| {
                d.service == service.id && matches!(d.state, State::Pending | State::RetryWait)
            })
            .map(|d| d.count)
            .sum(),
        Err(e) => return internal(&e),
    };
    let eta = match st.rate(service, now).await {
        Ok(rate) => stored.request.due_at.and_then(|due| {
            let plan = Plan {
                due,
                deadline: stored.request.deadline_at,
                expires: stored.request.expires_at,
                counted: u8::try_from(stored.request.attempts_counted).unwrap_or(u8::MAX),
            };
            eta_at_rate(service, &stored.request, &plan, ahead, rate, now)
        }),
        Err(e) => return internal(&e),
    };
    let mut body = request_json(Some(service), &stored.request);
    body["eta"] = eta_json(Some(service), eta);
    body["duplicate"] = json!(stored.duplicate);
    let status = if stored.duplicate { StatusCode::OK } else { StatusCode::CREATED };
    let location = format!("/v1/callbacks/{}", stored.request.id);
    (status, [(header::LOCATION, location)], axum::Json(body)).into_response()
}

fn parse_id(id: &str) -> Result<i64, Box<Response>> {
    id.parse::<i64>().ok().filter(|i| *i > 0).ok_or_else(|| {
        Box::new(problem(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            Some("id"),
            "request id must be a positive integer",
        ))
    })
}

async fn show(AxState(st): AxState<AppState>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(i) => i,
        Err(r) => return *r,
    };
    let req = match st.store.request(id).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return problem(StatusCode::NOT_FOUND, "not_found", Some("id"), "no such request");
        }
        Err(e) => return internal(&e),
    };
    let attempts = match st.store.attempts(id).await {
        Ok(a) => a,
        Err(e) => return internal(&e),
    };
    let services = st.services.borrow().clone();
    let service = services.get(&req.service);
    let now = st.clock.now();
    let mut body = request_json(service, &req);
    body["attempts"] = attempts.iter().map(|a| attempt_json(service, a)).collect();
    let waiting = matches!(req.state, State::Pending | State::RetryWait);
    body["place"] = Value::Null;
    body["eta"] = Value::Null;
    if let (true, Some(svc)) = (waiting, service) {
        let ahead = match st.store.ahead_of(&req, AHEAD_CAP).await {
            Ok(a) => a,
            Err(e) => return internal(&e),
        };
        match eta_of(&st.store, svc, &req, ahead, now).await {
            Ok(eta) => {
                body["place"] = json!(ahead + 1);
                body["eta"] = eta_json(service, eta);
            }
            Err(e) => return internal(&e),
        }
    }
    axum::Json(body).into_response()
}

async fn cancel(AxState(st): AxState<AppState>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(i) => i,
        Err(r) => return *r,
    };
    let now = st.clock.now();
    match st.store.cancel(id, "api", now).await {
        Ok(Cancelled::Now) => {
            st.wake.notify_one();
            axum::Json(json!({ "id": id, "state": "cancelled" })).into_response()
        }
        Ok(Cancelled::AfterLiveAttempt) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({
                "id": id,
                "state": "dialing",
                "cancel_requested": true,
                "message": "a call is in progress; it is not interrupted, and the request will not be retried",
            })),
        )
            .into_response(),
        Ok(Cancelled::AlreadyFinal(state)) => problem(
            StatusCode::CONFLICT,
            "already_final",
            Some("id"),
            &format!("the request has already ended: {state}"),
        ),
        Ok(Cancelled::NotFound) => problem(StatusCode::NOT_FOUND, "not_found", Some("id"), "no such request"),
        Err(e) => internal(&e),
    }
}

async fn services(AxState(st): AxState<AppState>) -> Response {
    let services = st.services.borrow().clone();
    let now = st.clock.now();
    let depth = match st.store.depth().await {
        Ok(d) => d,
        Err(e) => return internal(&e),
    };
    let mut out = Vec::new();
    for svc in services.values() {
        let queued: i64 = depth.iter().filter(|d| d.service == svc.id).map(|d| d.count).sum();
        let open_now = svc.calendar.is_open(now);
        let next_opening =
            if open_now { None } else { svc.calendar.next_open(now, policy::HORIZON_DAYS) };
        // The ETA a request made now would get.
        let facts = policy::RequestFacts { created_at: now, window: None, attempts: &[] };
        let eta = match policy::decide(&svc.calendar, &svc.attempts, &facts) {
            policy::Decision::Dial(plan) => {
                let rate = match rate(&st.store, svc, now).await {
                    Ok(r) => r,
                    Err(e) => return internal(&e),
                };
                let ahead = u32::try_from(queued).unwrap_or(u32::MAX);
                policy::eta(&svc.calendar, &svc.attempts, None, &plan, now, ahead, rate)
            }
            policy::Decision::End { .. } => None,
        };
        out.push(json!({
            "id": svc.id,
            "name": svc.name,
            "open_now": open_now,
            "next_opening": next_opening.map(|t| local(Some(svc), t)),
            "queue_depth": queued,
            "windows": svc.windows.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "eta": eta_json(Some(svc), eta),
        }));
    }
    axum::Json(Value::Array(out)).into_response()
}

async fn ready(AxState(st): AxState<AppState>) -> Response {
    let loaded = !st.services.borrow().is_empty();
    let recovered = st.recovered.load(std::sync::atomic::Ordering::Acquire);
    if loaded && recovered && st.store.ping().await {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn render_metrics(AxState(st): AxState<AppState>) -> Response {
    // Queue depth is read at scrape time: no background cost, always current.
    if let Ok(depth) = st.store.depth().await {
        let services = st.services.borrow().clone();
        for svc in services.keys() {
            for state in [State::Pending, State::Dialing, State::RetryWait] {
                let n = depth
                    .iter()
                    .find(|d| &d.service == svc && d.state == state)
                    .map_or(0, |d| d.count);
                metrics::queue_depth(svc, state.as_str(), n);
            }
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], st.metrics.render())
        .into_response()
}

//! The callback API: `POST /v1/callbacks` (intake), `GET` and `DELETE
//! /v1/callbacks/{id}` (status, cancellation) and `GET /v1/services`.

use super::AppState;
use super::errors::{cut, problem, store_unavailable};
use crate::dialplan::Service;
use crate::eta;
use crate::intake::{self, Channel, RawRequest};
use crate::metrics;
use crate::policy::{self, Eta};
use crate::store::{Attempt, Cancelled, Request, State};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;
use serde_json::{Value, json};
use tracing::info;

/// The callback routes (behind the token check).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/callbacks", axum::routing::post(create))
        .route("/v1/callbacks/{id}", get(show).delete(cancel))
        .route("/v1/services", get(services))
}

/// An instant in the service's local time with its offset, e.g. `2026-11-23T10:30:00+02:00`.
fn local(service: Option<&Service>, t: Timestamp) -> String {
    match service {
        Some(s) => t.to_zoned(s.calendar.tz().clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        None => t.to_string(),
    }
}

fn eta_json(service: Option<&Service>, eta: Option<Eta>) -> Value {
    match eta {
        Some(e) => json!({ "from": local(service, e.from), "to": local(service, e.to) }),
        None => Value::Null,
    }
}

/// The told ETA of a waiting request: its place, the window and whether it is the same
/// day ([`eta::tell`]).
fn answer_json(body: &mut Value, service: Option<&Service>, answer: &eta::Answer) {
    body["place"] = json!(answer.place);
    body["eta"] = eta_json(service, answer.eta);
    body["same_day"] = json!(answer.same_day);
}

fn request_json(service: Option<&Service>, req: &Request) -> Value {
    json!({
        "id": req.id,
        "service": req.service,
        "state": req.state.as_str(),
        "number": req.number.as_ref().map(|n| n.masked().to_string()),
        "channel": req.channel,
        "team": req.team,
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

/// A body that is not JSON of the expected shape: the parser's message, cut (it may quote
/// what was sent).
pub(super) fn invalid_body(what: &str, e: &serde_json::Error) -> Response {
    let msg = format!("{what}: {}", cut(&e.to_string()));
    problem(StatusCode::BAD_REQUEST, "invalid_body", None, &msg)
}

async fn create(AxState(st): AxState<AppState>, body: Bytes) -> Response {
    let raw: RawRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return invalid_body("request body is not a valid callback request", &e),
    };
    let services = st.services.borrow().clone();
    let now = st.clock.now();
    let accepted = match intake::validate(&services, &raw, "api", now) {
        Ok(a) => a,
        Err(e) => {
            // Labels only from fixed sets: client text never becomes a metric label.
            let service = services.get(raw.service.trim()).map_or("unknown", |s| s.id.as_str());
            let channel = match raw.channel.as_deref() {
                None => Channel::Api.as_str(),
                Some(c) => Channel::parse(c).map_or("invalid", Channel::as_str),
            };
            metrics::request(service, channel, "rejected");
            let status = match e {
                intake::IntakeError::UnknownService(_) => StatusCode::NOT_FOUND,
                intake::IntakeError::Number(_)
                | intake::IntakeError::Window { .. }
                | intake::IntakeError::Lang(_)
                | intake::IntakeError::Channel
                | intake::IntakeError::NoTime
                | intake::IntakeError::Team { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            };
            return problem(status, e.code(), Some(e.field()), &e.to_string());
        }
    };
    let service = accepted.service;
    let mut accepted = accepted;
    intake::look_up_team(service, &mut accepted.request).await;
    // The window told is decided before the write and stored with the request, so an
    // intake is one write and shares its commit with concurrent intakes (group commit).
    // Every waiting request of the service counts as ahead (a cached count, so intake
    // cost does not grow with the queue); requests waiting for a retry are counted apart:
    // they come back ahead only if they fall due before the patient is called. The window
    // told here is the one the notice SMS, a later GET, the IVR and the patient page tell
    // again until it slips.
    let ahead = match st.depth().await {
        Ok(d) => {
            let of = |state: State| -> i64 {
                d.iter()
                    .filter(|d| d.service == service.id && d.state == state)
                    .map(|d| d.count)
                    .sum()
            };
            let retrying = of(State::RetryWait);
            eta::ahead_of_counts(of(State::Pending) + retrying, retrying)
        }
        Err(e) => return store_unavailable(&e),
    };
    let rate = match st.rate(service, now).await {
        Ok(rate) => rate,
        Err(e) => return store_unavailable(&e),
    };
    let told = eta::at_intake(service, accepted.request.window, &accepted.plan, ahead, rate, now);
    accepted.request.told = told.told(now);
    // Acknowledged only if the write landed in the file the next start reads.
    let stored = match st.store.enqueue(&accepted.request, &accepted.plan).await {
        Ok(s) => match st.store.confirm() {
            Ok(()) => s,
            Err(e) => return store_unavailable(&e),
        },
        Err(e) => return store_unavailable(&e),
    };
    let result = if stored.duplicate { "duplicate" } else { "accepted" };
    metrics::request(&service.id, accepted.channel.as_str(), result);
    if !stored.duplicate {
        info!(service = %service.id, request = stored.request.id, number = %accepted.request.number, "request accepted");
        // The window is recorded: the first call is judged against it (punctuality).
        st.wake.notify_one();
    }
    let mut body = request_json(Some(service), &stored.request);
    body["place"] = Value::Null;
    body["eta"] = Value::Null;
    body["same_day"] = Value::Null;
    if stored.request.state.is_waiting() {
        // A duplicate is told the window of the request it repeats (or a fresh one, if
        // that slipped).
        let answer = if stored.duplicate {
            match eta::tell_at(&st.store, service, &stored.request, ahead, rate, now).await {
                Ok(answer) => answer,
                Err(e) => return store_unavailable(&e),
            }
        } else {
            told
        };
        answer_json(&mut body, Some(service), &answer);
    }
    body["duplicate"] = json!(stored.duplicate);
    // Chat and web channels show the patient their page's link at once.
    if let (Some(links), Channel::Chat | Channel::Web) = (&st.links, accepted.channel) {
        body["link"] = json!(links.url(stored.request.id));
    }
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
        Err(e) => return store_unavailable(&e),
    };
    let attempts = match st.store.attempts(id).await {
        Ok(a) => a,
        Err(e) => return store_unavailable(&e),
    };
    let services = st.services.borrow().clone();
    let service = services.get(&req.service);
    let now = st.clock.now();
    let mut body = request_json(service, &req);
    body["attempts"] = attempts.iter().map(|a| attempt_json(service, a)).collect();
    let waiting = matches!(req.state, State::Pending | State::RetryWait);
    body["place"] = Value::Null;
    body["eta"] = Value::Null;
    body["same_day"] = Value::Null;
    if let (true, Some(svc)) = (waiting, service) {
        match eta::tell(&st.store, svc, &req, now).await {
            Ok(answer) => answer_json(&mut body, service, &answer),
            Err(e) => return store_unavailable(&e),
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
        Err(e) => store_unavailable(&e),
    }
}

async fn services(AxState(st): AxState<AppState>) -> Response {
    let services = st.services.borrow().clone();
    let now = st.clock.now();
    let depth = match st.store.depth().await {
        Ok(d) => d,
        Err(e) => return store_unavailable(&e),
    };
    let mut out = Vec::new();
    for svc in services.values() {
        let queued: i64 = depth.iter().filter(|d| d.service == svc.id).map(|d| d.count).sum();
        let retrying: i64 = depth
            .iter()
            .filter(|d| d.service == svc.id && d.state == State::RetryWait)
            .map(|d| d.count)
            .sum();
        let open_now = svc.calendar.is_open(now);
        let next_opening =
            if open_now { None } else { svc.calendar.next_open(now, policy::HORIZON_DAYS) };
        // The ETA a request made now would get.
        let facts = policy::RequestFacts { created_at: now, window: None, attempts: &[] };
        let eta = match policy::decide(&svc.calendar, &svc.attempts, &facts) {
            policy::Decision::Dial(plan) => {
                let rate = match eta::rate(&st.store, svc, now).await {
                    Ok(r) => r,
                    Err(e) => return store_unavailable(&e),
                };
                let ahead = policy::Ahead {
                    all: u32::try_from(queued).unwrap_or(u32::MAX),
                    retrying: u32::try_from(retrying).unwrap_or(0),
                };
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

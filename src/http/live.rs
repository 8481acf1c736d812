//! The supervisor's live figures and page: `GET /v1/live` (JSON, behind the API token)
//! and `/ui`, a page in Finnish, Swedish and English that shows exactly those figures and
//! polls them every few seconds. The page computes nothing of its own.
//!
//! The page and its script and style are served with a strict Content-Security-Policy
//! (only same-origin script, style and fetch; no inline code, no frames, no outside
//! resource). A browser cannot send the API's bearer header when it navigates, so with a
//! token configured the page offers a login form: `POST /ui/login` checks the token and
//! sets it as an `HttpOnly; SameSite=Strict` cookie, which is accepted for `GET /v1/live`
//! only (never for a request that changes anything). `POST /ui/logout` clears it.

use super::AppState;
use super::errors::store_unavailable;
use crate::dialplan::Service;
use crate::eta;
use crate::policy;
use crate::report::live::today;
use crate::store::State;
use axum::Router;
use axum::extract::State as AxState;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The cookie that carries the API token for the page's fetches.
pub const COOKIE: &str = "callbackd_ui";

/// `GET /v1/live` (behind the token check).
pub fn api_routes() -> Router<AppState> {
    Router::new().route("/v1/live", get(live))
}

/// The page, its assets, login and logout (open: they carry no figures).
pub fn ui_routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(page))
        .route("/ui/app.js", get(script))
        .route("/ui/app.css", get(style))
        .route("/ui/icon.svg", get(icon))
        .route("/ui/login", post(login))
        .route("/ui/logout", post(logout))
}

/// The token carried by the page's cookie, if any.
pub fn cookie_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

fn local(service: &Service, t: Timestamp) -> String {
    t.to_zoned(service.calendar.tz().clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// The figures of every service now.
async fn live(AxState(st): AxState<AppState>) -> Response {
    let services = st.services.borrow().clone();
    let now = st.clock.now();
    let ids: Vec<String> = services.keys().cloned().collect();
    let since = now.checked_sub(SignedDuration::from_hours(48)).unwrap_or(now);
    let until = now.checked_add(SignedDuration::from_millis(1)).unwrap_or(now);
    let hour_ago = now.checked_sub(SignedDuration::from_hours(1)).unwrap_or(now);
    let read = async {
        let depth = st.store.live_depth(now).await?;
        let history = st.store.history(&ids, since, until).await?;
        let outcomes = st.store.outcomes_since(hour_ago).await?;
        Ok::<_, crate::store::StoreError>((depth, history, outcomes))
    };
    let (depth, history, outcomes) = match read.await {
        Ok(x) => x,
        Err(e) => return store_unavailable(&e),
    };
    let mut out = Vec::new();
    for svc in services.values() {
        let tz = svc.calendar.tz();
        let date = now.to_zoned(tz.clone()).date();
        let t = today(&history, std::slice::from_ref(&svc.id), tz, date, now)
            .remove(&svc.id)
            .unwrap_or_default();
        let of = |s: State| depth.iter().filter(move |d| d.service == svc.id && d.state == s);
        let waiting: i64 = of(State::Pending).chain(of(State::RetryWait)).map(|d| d.count).sum();
        let due: i64 = of(State::Pending).chain(of(State::RetryWait)).map(|d| d.due).sum();
        let in_call: i64 = of(State::Dialing).map(|d| d.count).sum();
        let oldest = of(State::Pending).chain(of(State::RetryWait)).map(|d| d.oldest).min();
        let open_now = svc.calendar.is_open(now);
        let next_opening =
            if open_now { None } else { svc.calendar.next_open(now, policy::HORIZON_DAYS) };
        let (risk, rate) =
            match (eta::risk(&st.store, svc, now).await, eta::rate(&st.store, svc, now).await) {
                (Ok(r), Ok(rate)) => (r, rate),
                (Err(e), _) | (_, Err(e)) => return store_unavailable(&e),
            };
        // The ETA a request made now would get: as `GET /v1/services` tells it.
        let facts = policy::RequestFacts { created_at: now, window: None, attempts: &[] };
        let eta = match policy::decide(&svc.calendar, &svc.attempts, &facts) {
            policy::Decision::Dial(plan) => {
                let retrying: i64 = of(State::RetryWait).map(|d| d.count).sum();
                let ahead = policy::Ahead {
                    all: u32::try_from(waiting + in_call).unwrap_or(u32::MAX),
                    retrying: u32::try_from(retrying).unwrap_or(0),
                };
                policy::eta(&svc.calendar, &svc.attempts, None, &plan, now, ahead, rate)
            }
            policy::Decision::End { .. } => None,
        };
        let last_hour: BTreeMap<&str, i64> = outcomes
            .iter()
            .filter(|(s, _, _)| *s == svc.id)
            .map(|(_, o, n)| (o.as_str(), *n))
            .collect();
        out.push(json!({
            "id": svc.id,
            "name": svc.name,
            "open_now": open_now,
            "next_opening": next_opening.map(|t| local(svc, t)),
            "waiting": waiting,
            "due_now": due,
            "in_call": in_call,
            "oldest_waiting_s": oldest.map(|o| now.duration_since(o).as_secs().max(0)),
            "at_risk": risk.at_risk,
            "cannot_make_deadline": risk.missed,
            "missed_today": t.missed,
            "requests_today": t.requests,
            "same_day_today": { "hits": t.same_day.hits, "of": t.same_day.of, "rate": t.same_day.rate },
            "calls_per_hour": rate,
            "eta_new": eta.map(|e| json!({ "from": local(svc, e.from), "to": local(svc, e.to) })),
            "last_hour": last_hour,
        }));
    }
    let mut resp =
        axum::Json(json!({ "generated_at": now.to_string(), "services": Value::Array(out) }))
            .into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Only same-origin script, style and fetch; nothing inline, no frames, no outside resource.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
     img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn asset(kind: &'static str, body: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", include_str!("ui/index.html"))
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("ui/app.js"))
}

async fn icon() -> Response {
    asset("image/svg+xml", include_str!("ui/icon.svg"))
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("ui/app.css"))
}

/// The login form's fields.
#[derive(Debug, serde::Deserialize)]
struct Login {
    token: String,
}

fn redirect(to: &'static str, cookie: Option<String>) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut().insert(header::LOCATION, HeaderValue::from_static(to));
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

async fn login(AxState(st): AxState<AppState>, axum::Form(form): axum::Form<Login>) -> Response {
    match st.token.as_deref() {
        Some(token) if super::token_matches(form.token.trim(), token) => redirect(
            "/ui",
            Some(format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", form.token.trim())),
        ),
        Some(_) => redirect("/ui#login-failed", None),
        None => redirect("/ui", None),
    }
}

async fn logout() -> Response {
    redirect("/ui", Some(format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")))
}

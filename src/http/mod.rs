//! The HTTP layer: every route of the API, health and `/metrics`, and the server that
//! accepts connections within limits.
//!
//! Thin: every decision is made by [`crate::intake`], [`crate::policy`] and [`crate::sms`];
//! the handlers map their results to status codes and JSON. Nothing below this layer
//! imports from it.
//!
//! - [`api`]: intake, status, cancellation, services;
//! - [`sms`]: the survey opt-out list;
//! - [`health`]: `/healthz`, `/readyz`, `/metrics`;
//! - [`live`]: the supervisor's live figures `/v1/live` and the page `/ui` that shows them;
//! - [`public`]: the patient page, served on its own listener (`[public] bind`) by its own
//!   router;
//! - [`errors`]: the one error shape `{"error": code, "field": …, "message": …}`;
//! - [`serve`](mod@serve): the accept loop with its connection limit and header, body and idle
//!   timeouts.

pub mod api;
pub mod errors;
pub mod health;
pub mod live;
pub mod public;
pub mod serve;
pub mod sms;

pub use serve::{Limits, serve};

use crate::clock::Clock;
use crate::dialplan::Services;
use crate::store::{Depth, Store, StoreError};
use axum::Router;
use axum::extract::State as AxState;
use axum::http::{StatusCode, header};
use axum::response::Response;
use errors::problem;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use tokio::sync::{Notify, watch};

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
    /// The patient's links (`[public]`), given in intake's answer to chat and web
    /// channels; `None`: no patient page.
    pub links: Option<Links>,
}

pub use crate::link::Links;

/// A service rate (calls per hour) and when it was read.
pub type RateSnapshot = (tokio::time::Instant, f64);

/// A queue depth and when it was read.
pub type DepthSnapshot = (tokio::time::Instant, Vec<Depth>);

/// How long a computed queue depth is reused by intake for its first ETA.
pub const DEPTH_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl AppState {
    /// The service's recent rate, from a cache at most [`DEPTH_TTL`] old (intake only).
    async fn rate(
        &self,
        service: &crate::dialplan::Service,
        now: jiff::Timestamp,
    ) -> Result<f64, StoreError> {
        let mut cache = self.rates.lock().await;
        if let Some((at, r)) = cache.get(&service.id) {
            if tokio::time::Instant::now().saturating_duration_since(*at) < DEPTH_TTL {
                return Ok(*r);
            }
        }
        let r = crate::eta::rate(&self.store, service, now).await?;
        cache.insert(service.id.clone(), (tokio::time::Instant::now(), r));
        Ok(r)
    }

    /// Live requests per service and state, from a cache at most [`DEPTH_TTL`] old.
    async fn depth(&self) -> Result<Vec<Depth>, StoreError> {
        let mut cache = self.depth.lock().await;
        if let Some((at, d)) = cache.as_ref() {
            if tokio::time::Instant::now().saturating_duration_since(*at) < DEPTH_TTL {
                return Ok(d.clone());
            }
        }
        let d = self.store.depth().await?;
        *cache = Some((tokio::time::Instant::now(), d.clone()));
        Ok(d)
    }
}

/// Every route. Requests pass, outermost first: [`errors::json_errors`], then
/// [`serve::read_body`] (the body, within its size and time limits), then the token check
/// (`/v1/` only).
pub fn router(state: AppState) -> Router {
    let v1 = api::routes()
        .merge(sms::routes())
        .merge(live::api_routes())
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .merge(v1)
        .merge(health::routes())
        .merge(live::ui_routes())
        .fallback(|| async {
            problem(StatusCode::NOT_FOUND, "not_found", None, "no such endpoint")
        })
        .with_state(state)
        .layer(axum::middleware::from_fn(serve::read_body))
        .layer(axum::middleware::from_fn(errors::json_errors))
}

/// The token of an `Authorization` header value with the `Bearer` scheme (the scheme is
/// case-insensitive, RFC 9110 §11.1).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Whether `given` is the token, compared in time independent of where they differ.
fn token_matches(given: &str, token: &str) -> bool {
    given.len() == token.len()
        && given.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Lets a `/v1/` request through only with the configured bearer token (if any).
async fn require_token(
    AxState(st): AxState<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(token) = st.token.as_deref() else { return next.run(req).await };
    let bearer =
        req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer);
    // The supervisor page's cookie reads the live figures, and nothing else.
    let page = req.method() == axum::http::Method::GET && req.uri().path() == "/v1/live";
    let cookie = if page { live::cookie_token(req.headers()) } else { None };
    let given = bearer.or(cookie).unwrap_or_default();
    if token_matches(given, token) {
        next.run(req).await
    } else {
        problem(StatusCode::UNAUTHORIZED, "unauthorized", None, "a valid API token is required")
    }
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearerabc"), None);
    }
}

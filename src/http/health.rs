//! `/healthz` (the process runs), `/readyz` (dialplans and store loaded, crash recovery
//! done) and `/metrics` (Prometheus text).

use super::AppState;
use crate::metrics;
use crate::store::State;
use axum::Router;
use axum::extract::State as AxState;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The health and metrics routes (open, no token).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(render_metrics))
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
    // Queue depth is read at scrape time from the counts the store keeps (a few rows): no
    // background cost, always current.
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
    // Requests at risk of missing their same-day deadline, read at scrape time too.
    let services = st.services.borrow().clone();
    let now = st.clock.now();
    for svc in services.values() {
        if let Ok(risk) = crate::eta::risk(&st.store, svc, now).await {
            metrics::requests_at_risk(&svc.id, risk.at_risk);
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], st.metrics.render())
        .into_response()
}

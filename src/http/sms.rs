//! The survey opt-out endpoint: `POST /v1/sms/optout {"number": "040 123 4567"}` adds a
//! number to the opt-out list (201, or 200 when it was there), `DELETE` with the same body
//! removes it (200, or 404). Surveys queued for the number are skipped when their turn
//! comes; no new ones are queued.

use super::AppState;
use super::api::invalid_body;
use super::errors::{problem, store_unavailable};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tracing::info;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OptOut {
    number: String,
}

/// The opt-out routes (behind the token check).
pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/sms/optout", axum::routing::post(optout).delete(optin))
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn parse(body: &Bytes) -> Result<crate::number::E164, Box<Response>> {
    let raw: OptOut = serde_json::from_slice(body)
        .map_err(|e| Box::new(invalid_body("expected {\"number\": …}", &e)))?;
    crate::sms::normalize(&raw.number).ok_or_else(|| {
        Box::new(problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_number",
            Some("number"),
            "not a valid phone number",
        ))
    })
}

async fn optout(AxState(st): AxState<AppState>, body: Bytes) -> Response {
    let number = match parse(&body) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    match st.store.sms_optout(&number, "api", st.clock.now()).await {
        Ok(added) => {
            info!(number = %number.masked(), added, "SMS survey opt-out");
            let status = if added { StatusCode::CREATED } else { StatusCode::OK };
            answer(status, json!({"number": number.masked().to_string(), "opted_out": true}))
        }
        Err(e) => store_unavailable(&e),
    }
}

async fn optin(AxState(st): AxState<AppState>, body: Bytes) -> Response {
    let number = match parse(&body) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    match st.store.sms_optin(&number).await {
        Ok(true) => answer(
            StatusCode::OK,
            json!({"number": number.masked().to_string(), "opted_out": false}),
        ),
        Ok(false) => problem(
            StatusCode::NOT_FOUND,
            "not_found",
            Some("number"),
            "the number is not on the opt-out list",
        ),
        Err(e) => store_unavailable(&e),
    }
}

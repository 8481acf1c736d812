//! The API's one error shape, `{"error": code, "field": name, "message": text}`, and the
//! layer that gives every other error answer (404, 405, 413, a rejected extractor …) that
//! shape too.
//!
//! Messages never echo more than [`CUT`] characters of what a client sent ([`cut`]).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::error;

pub use crate::intake::{CUT, cut};

/// An error answer in the documented shape.
pub fn problem(status: StatusCode, code: &str, field: Option<&str>, message: &str) -> Response {
    let mut body = json!({ "error": code, "message": message });
    if let Some(f) = field {
        body["field"] = json!(f);
    }
    (status, axum::Json(body)).into_response()
}

/// The answer when the store fails (logged here, once).
pub fn store_unavailable(e: &crate::store::StoreError) -> Response {
    // A refusal was logged once, when the store stopped taking writes.
    if !matches!(e, crate::store::StoreError::Refusing(_)) {
        error!(error = %e, "store failure");
    }
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        None,
        "the queue store is unavailable",
    )
}

/// The code and message for an error status whose answer did not come from a handler.
fn code_of(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::NOT_FOUND => ("not_found", "no such endpoint"),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method_not_allowed", "this endpoint does not take that method")
        }
        StatusCode::PAYLOAD_TOO_LARGE => ("body_too_large", "the request body is too large"),
        StatusCode::REQUEST_TIMEOUT => ("body_timeout", "the request body did not arrive in time"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("unsupported_media_type", "the request body must be JSON")
        }
        StatusCode::UNAUTHORIZED => ("unauthorized", "a valid API token is required"),
        _ => ("invalid_request", "the request is not valid"),
    }
}

/// Gives a client-error answer that is not JSON yet (axum's own 405, a rejected path …)
/// the documented shape. Handlers' own answers are already JSON and pass unchanged.
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !status.is_client_error() || is_json {
        return res;
    }
    let (code, message) = code_of(status);
    let mut out = problem(status, code, None, message);
    // Keep `Allow` on a 405.
    if let Some(allow) = res.headers().get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_short_values_and_marks_long_ones() {
        assert_eq!(cut("fax"), "fax");
        let long = "x".repeat(100);
        let c = cut(&long);
        assert_eq!(c.chars().count(), CUT + 1);
        assert!(c.ends_with('…'));
        assert_eq!(cut(&"ä".repeat(CUT)), "ä".repeat(CUT), "characters, not bytes");
    }
}

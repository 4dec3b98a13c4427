//! Okta's two error body shapes, and the error responses the simulator sends in them.
//!
//! The management API (`/api/v1/...`) and most failures respond with
//! `{"errorCode", "errorSummary", "errorLink", "errorId", "errorCauses"}`. The OAuth 2.0 endpoints
//! report client metadata problems with the RFC 6749 / RFC 7591 shape
//! `{"error", "error_description"}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::ids;

/// Builds an Okta management API error body. `errorLink` repeats the code, as Okta does, and
/// `errorId` is a fresh random id.
pub fn okta_error_body(code: &str, summary: &str) -> Value {
    json!({
        "errorCode": code,
        "errorSummary": summary,
        "errorLink": code,
        "errorId": ids::new_error_id(),
        "errorCauses": [],
    })
}

/// Builds an OAuth 2.0 error body (`error` is a code such as `invalid_client_metadata`).
pub fn oauth_error_body(error: &str, description: &str) -> Value {
    json!({ "error": error, "error_description": description })
}

/// Builds a response with an Okta management API error body.
pub(crate) fn okta_error(status: StatusCode, code: &str, summary: &str) -> Response {
    (status, Json(okta_error_body(code, summary))).into_response()
}

/// 404 E0000007 for an app or client id that does not exist.
pub(crate) fn app_not_found(id: &str) -> Response {
    let summary = format!("Not found: Resource not found: {id} (AppInstance)");
    okta_error(StatusCode::NOT_FOUND, "E0000007", &summary)
}

/// 401 E0000011, sent for a missing, malformed or rejected `Authorization` header.
pub(crate) fn invalid_token() -> Response {
    okta_error(
        StatusCode::UNAUTHORIZED,
        "E0000011",
        "Invalid token provided",
    )
}

/// 429 E0000047, sent when a bucket is over its per-minute limit.
pub(crate) fn rate_limited() -> Response {
    okta_error(
        StatusCode::TOO_MANY_REQUESTS,
        "E0000047",
        "API call exceeded rate limit due to too many requests.",
    )
}

/// 400 `invalid_client_metadata`, sent for a registration Okta would reject.
pub(crate) fn invalid_client_metadata(description: &str) -> Response {
    let body = oauth_error_body("invalid_client_metadata", description);
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// 400 E0000003, sent when a request body is not a JSON document.
pub(crate) fn malformed_body() -> Response {
    okta_error(
        StatusCode::BAD_REQUEST,
        "E0000003",
        "The request body was not well-formed.",
    )
}

/// 400 E0000001, sent for an invalid query parameter or control API body.
pub(crate) fn validation_failed(detail: &str) -> Response {
    let summary = format!("Api validation failed: {detail}");
    okta_error(StatusCode::BAD_REQUEST, "E0000001", &summary)
}

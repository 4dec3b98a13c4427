//! Errors of the Okta client, and how the worker treats each one.
//!
//! Okta returns errors in two shapes: the OAuth 2.0 and DCR endpoints send
//! `{"error", "error_description"}`, the management API sends
//! `{"errorCode", "errorSummary", "errorCauses": [{"errorSummary"}]}`. A known code in the
//! body decides the class before the status does, because Okta reuses statuses (a 401 can
//! mean a bad API token or an unknown client).
//!
//! | Okta response                                             | class     | code                       |
//! |-----------------------------------------------------------|-----------|----------------------------|
//! | body code `E0000047` (rate limit), any status             | Transient | `okta_rate_limited`        |
//! | body code `E0000009`, `E0000010` (internal, read-only)     | Transient | `okta_unavailable`         |
//! | body code `E0000004`, `E0000005`, `E0000006`, `E0000011`, | Systemic  | `okta_credential_rejected` |
//! | `invalid_token`, `insufficient_scope`                     |           |                            |
//! | body code `E0000007` (resource not found)                 | Permanent | `okta_not_found`           |
//! | 401 with `invalid_client` (unknown client id)             | Permanent | `okta_not_found`           |
//! | other 401                                                 | Systemic  | `okta_credential_rejected` |
//! | 404                                                       | Permanent | `okta_not_found`           |
//! | 429                                                       | Transient | `okta_rate_limited`        |
//! | 408, 500, 502, 503, 504                                   | Transient | `okta_unavailable`         |
//! | other 4xx (`invalid_client_metadata`, `E0000001`, 403 …)  | Permanent | `okta_rejected`            |
//! | any other status (3xx, 501, …)                            | Permanent | `okta_unexpected_status`   |
//! | 2xx whose body cannot be parsed                           | Permanent | `okta_invalid_response`    |
//! | call timed out, connection failed                         | Transient | `okta_unavailable`         |
//! | call not sent: rate-limit pacing waits past the budget    | Transient | `okta_rate_limited`        |
//! | an id that cannot be a path segment (empty, `.`, `..`)    | Permanent | `okta_invalid_id`          |
//! | invalid client configuration                              | Systemic  | `okta_invalid_config`      |
//!
//! Errors of the token endpoint (`POST /oauth2/v1/token`, service apps only) follow their own
//! table, because there a 401 `invalid_client` means the worker's own credential is wrong:
//!
//! | token endpoint response                                   | class     | code                       |
//! |-----------------------------------------------------------|-----------|----------------------------|
//! | 429 or body code `E0000047`                               | Transient | `okta_rate_limited`        |
//! | 408, 500, 502, 503, 504                                   | Transient | `okta_unavailable`         |
//! | other 4xx (`invalid_client`, `invalid_grant`, `invalid_scope`, `unauthorized_client` …) | Systemic | `okta_credential_rejected` |
//! | any other status                                          | Systemic  | `okta_unexpected_status`   |
//! | 2xx whose body is not a usable token                      | Systemic  | `okta_invalid_response`    |

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::route::Route;

/// Maximum characters of Okta text kept in a reason, so that a large HTML error page does
/// not flood logs and dead-letter headers.
const MAX_REASON_CHARS: usize = 300;

/// Handling category of a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request itself is invalid or refers to something that does not exist, so a retry
    /// gets the same response.
    Permanent,
    /// Okta is busy or unreachable, so the same request can succeed later.
    Transient,
    /// The worker's own credential or configuration is invalid, so every request fails until
    /// an operator fixes it.
    Systemic,
}

/// A failed Okta call. `Display` and `Debug` never contain the API token or a client secret.
#[derive(Debug, thiserror::Error)]
pub enum OktaError {
    /// Okta returned an error status.
    #[error("Okta returned HTTP {} for {}: {}", .0.status, .0.route, .0.body.describe())]
    Api(Box<ApiError>),
    /// No response arrived within the per-call timeout.
    #[error("{route} timed out after {timeout:?}")]
    Timeout {
        route: &'static str,
        timeout: Duration,
    },
    /// The connection failed or broke before a complete response arrived.
    #[error("{route} failed before Okta responded: {source}")]
    Transport {
        route: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// Okta returned a success status, but the body does not match the documented schema.
    #[error("Okta returned an invalid response for {route} (HTTP {status}): {detail}")]
    InvalidResponse {
        route: &'static str,
        status: u16,
        detail: String,
        request_id: Option<String>,
    },
    /// The call was not sent, because the client's rate-limit pacing would start it only after
    /// the retry budget's deadline. `retry_after` is the wait counted from the error.
    #[error("{route} not sent: Okta's rate-limit window allows it in {retry_after:?}, past the retry budget")]
    RateLimitWait {
        route: &'static str,
        retry_after: Duration,
    },
    /// An id passed by the caller cannot be a URL path segment.
    #[error("invalid Okta id {value:?}: an id must not be empty, `.` or `..`")]
    InvalidId { value: String },
    /// The client configuration is unusable.
    #[error("invalid Okta client configuration: {0}")]
    Config(String),
}

/// An error status from Okta with its parsed body.
#[derive(Debug)]
pub struct ApiError {
    /// Route template of the failing call, for example `POST /oauth2/v1/clients`.
    pub route: &'static str,
    pub status: u16,
    pub body: ErrorBody,
    /// `X-Okta-Request-Id` of the response, for Okta support.
    pub request_id: Option<String>,
    /// How long after the response a retry is safe, from the rate-limit reset time.
    pub retry_after: Option<Duration>,
}

/// The parsed body of an Okta error response, in either shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorBody {
    /// `errorCode` (management API) or `error` (OAuth 2.0 and DCR).
    pub code: Option<String>,
    /// `errorSummary` or `error_description`.
    pub summary: Option<String>,
    /// The `errorSummary` of each entry of `errorCauses`.
    pub causes: Vec<String>,
    /// The start of the body when it is not an Okta error object, for example an HTML page
    /// from a proxy.
    pub text: Option<String>,
}

impl OktaError {
    /// Returns how the worker should treat this error.
    pub fn class(&self) -> ErrorClass {
        self.classify().0
    }

    /// Returns the stable machine code used in results and dead-letter headers.
    pub fn code(&self) -> &'static str {
        self.classify().1
    }

    /// Returns a short text for a person: Okta's own description when there is one.
    pub fn reason(&self) -> String {
        let text = match self {
            OktaError::Api(api) => api.body.describe(),
            other => other.to_string(),
        };
        truncate_chars(&text, MAX_REASON_CHARS)
    }

    /// Returns the `X-Okta-Request-Id` of the failing response.
    pub fn okta_request_id(&self) -> Option<&str> {
        match self {
            OktaError::Api(api) => api.request_id.as_deref(),
            OktaError::InvalidResponse { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// Returns, for a transient error, how long after the failing response Okta accepts the
    /// call again (rate-limit reset − `Date` + 1 s), or, for a call that rate-limit pacing did
    /// not send, the pacing wait. The caller can use it to delay the request elsewhere once the
    /// retry budget is spent.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            OktaError::Api(api) if self.class() == ErrorClass::Transient => api.retry_after,
            OktaError::RateLimitWait { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Returns the HTTP status of the failing response, if one arrived.
    pub fn status(&self) -> Option<u16> {
        match self {
            OktaError::Api(api) => Some(api.status),
            OktaError::InvalidResponse { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Reports whether Okta reported the client or app absent: 404 `E0000007`, or 401
    /// `invalid_client` from the DCR endpoints (not from the token endpoint, where it means the
    /// worker's own credential was rejected).
    pub fn is_absent(&self) -> bool {
        let OktaError::Api(api) = self else {
            return false;
        };
        if is_token_route(api.route) {
            return false;
        }
        let code = api.body.code.as_deref();
        matches!(
            (api.status, code),
            (404, Some("E0000007")) | (401, Some("invalid_client"))
        )
    }

    /// Reports whether Okta rejected deleting an app because it is still active: 403
    /// `E0000056`, or a 400 whose text mentions deactivation.
    ///
    /// NOTE: Okta documents app deletion as valid only for inactive apps, but the exact
    /// error for an active one is not confirmed here, so both forms are accepted.
    pub(crate) fn requires_deactivation(&self) -> bool {
        let OktaError::Api(api) = self else {
            return false;
        };
        match api.status {
            403 => api.body.code.as_deref() == Some("E0000056"),
            400 => {
                let text = api.body.describe().to_ascii_lowercase();
                text.contains("deactivat") || text.contains("inactive")
            }
            _ => false,
        }
    }

    /// Builds the error for a non-success response.
    pub(crate) fn from_response(
        route: &'static str,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
        retry_after: Option<Duration>,
    ) -> Self {
        OktaError::Api(Box::new(ApiError {
            route,
            status,
            body: ErrorBody::parse(body),
            request_id: request_id(headers),
            retry_after,
        }))
    }

    /// Reports whether Okta may have carried out the failed call even though it returned no
    /// success: the call timed out, the connection broke after the request was sent, or Okta
    /// returned a 5xx. A 429 and a refused connection prove that nothing was done.
    pub fn may_have_been_applied(&self) -> bool {
        match self {
            OktaError::Timeout { .. } => true,
            OktaError::Transport { source, .. } => !source.is_connect(),
            OktaError::Api(api) => api.status >= 500,
            _ => false,
        }
    }

    fn classify(&self) -> (ErrorClass, &'static str) {
        match self {
            OktaError::Api(api) if is_token_route(api.route) => {
                classify_token_endpoint(api.status, api.body.code.as_deref())
            }
            OktaError::Api(api) => classify_api(api.status, api.body.code.as_deref()),
            OktaError::Timeout { .. } | OktaError::Transport { .. } => {
                (ErrorClass::Transient, codes::UNAVAILABLE)
            }
            OktaError::RateLimitWait { .. } => (ErrorClass::Transient, codes::RATE_LIMITED),
            OktaError::InvalidResponse { route, .. } if is_token_route(route) => {
                (ErrorClass::Systemic, codes::INVALID_RESPONSE)
            }
            OktaError::InvalidResponse { .. } => (ErrorClass::Permanent, codes::INVALID_RESPONSE),
            OktaError::InvalidId { .. } => (ErrorClass::Permanent, codes::INVALID_ID),
            OktaError::Config(_) => (ErrorClass::Systemic, codes::INVALID_CONFIG),
        }
    }
}

impl ErrorBody {
    /// Parses either Okta error shape. A body that is neither is kept as text.
    pub fn parse(body: &[u8]) -> Self {
        match serde_json::from_slice::<WireErrorBody>(body) {
            Ok(wire) if wire.error_code.is_some() => Self {
                code: wire.error_code,
                summary: wire.error_summary,
                causes: wire
                    .error_causes
                    .into_iter()
                    .filter_map(|c| c.error_summary)
                    .collect(),
                text: None,
            },
            Ok(wire) if wire.error.is_some() => Self {
                code: wire.error,
                summary: wire.error_description,
                causes: Vec::new(),
                text: None,
            },
            _ => Self {
                text: body_excerpt(body),
                ..Self::default()
            },
        }
    }

    /// Returns Okta's description with its causes, or the code, or the body text.
    pub fn describe(&self) -> String {
        let mut text = self
            .summary
            .clone()
            .or_else(|| self.code.clone())
            .or_else(|| self.text.clone())
            .unwrap_or_else(|| "empty response body".to_owned());
        if !self.causes.is_empty() {
            text = format!("{text} ({})", self.causes.join("; "));
        }
        text
    }
}

/// Stable machine codes returned by [`OktaError::code`].
pub mod codes {
    /// Okta rejected the request content (validation, forbidden operation).
    pub const REJECTED: &str = "okta_rejected";
    /// The client or app does not exist.
    pub const NOT_FOUND: &str = "okta_not_found";
    /// Okta rejected the worker's own credential.
    pub const CREDENTIAL_REJECTED: &str = "okta_credential_rejected";
    /// Okta's rate limit was reached.
    pub const RATE_LIMITED: &str = "okta_rate_limited";
    /// Okta was unreachable, timed out or returned a server error.
    pub const UNAVAILABLE: &str = "okta_unavailable";
    /// Okta returned a success status with a body that cannot be parsed.
    pub const INVALID_RESPONSE: &str = "okta_invalid_response";
    /// Okta returned a status the client does not expect (3xx, 501, …).
    pub const UNEXPECTED_STATUS: &str = "okta_unexpected_status";
    /// An id cannot be used as a path segment.
    pub const INVALID_ID: &str = "okta_invalid_id";
    /// The client configuration is unusable.
    pub const INVALID_CONFIG: &str = "okta_invalid_config";
}

#[derive(Deserialize)]
struct WireErrorBody {
    error: Option<String>,
    error_description: Option<String>,
    #[serde(rename = "errorCode")]
    error_code: Option<String>,
    #[serde(rename = "errorSummary")]
    error_summary: Option<String>,
    #[serde(rename = "errorCauses", default)]
    error_causes: Vec<WireErrorCause>,
}

#[derive(Deserialize)]
struct WireErrorCause {
    #[serde(rename = "errorSummary")]
    error_summary: Option<String>,
}

fn classify_api(status: u16, body_code: Option<&str>) -> (ErrorClass, &'static str) {
    body_code
        .and_then(|code| classify_body_code(status, code))
        .unwrap_or_else(|| classify_status(status))
}

fn classify_body_code(status: u16, code: &str) -> Option<(ErrorClass, &'static str)> {
    let class = match code {
        "E0000047" => (ErrorClass::Transient, codes::RATE_LIMITED),
        "E0000009" | "E0000010" => (ErrorClass::Transient, codes::UNAVAILABLE),
        "E0000004" | "E0000005" | "E0000006" | "E0000011" | "invalid_token"
        | "insufficient_scope" => (ErrorClass::Systemic, codes::CREDENTIAL_REJECTED),
        "E0000007" => (ErrorClass::Permanent, codes::NOT_FOUND),
        "invalid_client" if status == 401 => (ErrorClass::Permanent, codes::NOT_FOUND),
        _ => return None,
    };
    Some(class)
}

/// Classifies a token endpoint error. Every 4xx other than 429 means that Okta rejects the
/// service app's assertion, grant or scopes, which no retry and no other request can fix.
fn classify_token_endpoint(status: u16, body_code: Option<&str>) -> (ErrorClass, &'static str) {
    match (status, body_code) {
        (_, Some("E0000047")) | (429, _) => (ErrorClass::Transient, codes::RATE_LIMITED),
        (408 | 500 | 502 | 503 | 504, _) => (ErrorClass::Transient, codes::UNAVAILABLE),
        (400..=499, _) => (ErrorClass::Systemic, codes::CREDENTIAL_REJECTED),
        _ => (ErrorClass::Systemic, codes::UNEXPECTED_STATUS),
    }
}

fn is_token_route(route: &str) -> bool {
    route == Route::Token.template()
}

fn classify_status(status: u16) -> (ErrorClass, &'static str) {
    match status {
        401 => (ErrorClass::Systemic, codes::CREDENTIAL_REJECTED),
        404 => (ErrorClass::Permanent, codes::NOT_FOUND),
        429 => (ErrorClass::Transient, codes::RATE_LIMITED),
        408 | 500 | 502 | 503 | 504 => (ErrorClass::Transient, codes::UNAVAILABLE),
        400..=499 => (ErrorClass::Permanent, codes::REJECTED),
        _ => (ErrorClass::Permanent, codes::UNEXPECTED_STATUS),
    }
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("x-okta-request-id")?.to_str().ok()?;
    Some(value.to_owned())
}

/// Returns the start of a non-JSON body on one line, or `None` when it is blank.
fn body_excerpt(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = one_line.trim();
    (!trimmed.is_empty()).then(|| truncate_chars(trimmed, MAX_REASON_CHARS))
}

fn truncate_chars(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(status: u16, body: &str) -> OktaError {
        let mut headers = HeaderMap::new();
        headers.insert("x-okta-request-id", "req-123".parse().unwrap());
        OktaError::from_response(
            "POST /oauth2/v1/clients",
            status,
            &headers,
            body.as_bytes(),
            None,
        )
    }

    #[test]
    fn body_oauth_shape_parsed() {
        let body = ErrorBody::parse(
            br#"{"error":"invalid_client_metadata","error_description":"bad redirect"}"#,
        );
        assert_eq!(body.code.as_deref(), Some("invalid_client_metadata"));
        assert_eq!(body.describe(), "bad redirect");
    }

    #[test]
    fn body_management_shape_parsed() {
        let body = ErrorBody::parse(
            br#"{"errorCode":"E0000001","errorSummary":"Api validation failed: name",
                "errorId":"oae1","errorCauses":[{"errorSummary":"name: too long"}]}"#,
        );
        assert_eq!(body.code.as_deref(), Some("E0000001"));
        assert_eq!(
            body.describe(),
            "Api validation failed: name (name: too long)"
        );
    }

    #[test]
    fn body_non_json_kept_as_text() {
        let body = ErrorBody::parse(b"<html>\n<h1>Bad Gateway</h1></html>");
        assert_eq!(body.code, None);
        assert_eq!(body.describe(), "<html> <h1>Bad Gateway</h1></html>");
    }

    #[test]
    fn body_long_text_truncated() {
        let long = "x".repeat(5000);
        let reason = api_error(502, &long).reason();
        assert_eq!(reason.chars().count(), MAX_REASON_CHARS + 1);
    }

    #[test]
    fn body_empty_described() {
        assert_eq!(api_error(503, "").reason(), "empty response body");
    }

    #[test]
    fn classification_table() {
        let cases = [
            (
                400,
                r#"{"error":"invalid_client_metadata"}"#,
                ErrorClass::Permanent,
                codes::REJECTED,
            ),
            (
                400,
                r#"{"errorCode":"E0000001"}"#,
                ErrorClass::Permanent,
                codes::REJECTED,
            ),
            (
                404,
                r#"{"errorCode":"E0000007"}"#,
                ErrorClass::Permanent,
                codes::NOT_FOUND,
            ),
            (
                401,
                r#"{"error":"invalid_client"}"#,
                ErrorClass::Permanent,
                codes::NOT_FOUND,
            ),
            (
                401,
                r#"{"errorCode":"E0000011"}"#,
                ErrorClass::Systemic,
                codes::CREDENTIAL_REJECTED,
            ),
            (
                403,
                r#"{"errorCode":"E0000006"}"#,
                ErrorClass::Systemic,
                codes::CREDENTIAL_REJECTED,
            ),
            (401, "", ErrorClass::Systemic, codes::CREDENTIAL_REJECTED),
            (
                403,
                r#"{"errorCode":"E0000056"}"#,
                ErrorClass::Permanent,
                codes::REJECTED,
            ),
            (
                429,
                r#"{"errorCode":"E0000047"}"#,
                ErrorClass::Transient,
                codes::RATE_LIMITED,
            ),
            (429, "", ErrorClass::Transient, codes::RATE_LIMITED),
            (
                500,
                r#"{"errorCode":"E0000009"}"#,
                ErrorClass::Transient,
                codes::UNAVAILABLE,
            ),
            (502, "<html>", ErrorClass::Transient, codes::UNAVAILABLE),
            (503, "", ErrorClass::Transient, codes::UNAVAILABLE),
            (504, "", ErrorClass::Transient, codes::UNAVAILABLE),
            (501, "", ErrorClass::Permanent, codes::UNEXPECTED_STATUS),
            (302, "", ErrorClass::Permanent, codes::UNEXPECTED_STATUS),
        ];
        for (status, body, class, code) in cases {
            let error = api_error(status, body);
            assert_eq!(error.class(), class, "class of {status} {body}");
            assert_eq!(error.code(), code, "code of {status} {body}");
        }
    }

    #[test]
    fn token_endpoint_classification_table() {
        let cases = [
            (401, r#"{"error":"invalid_client"}"#, ErrorClass::Systemic),
            (400, r#"{"error":"invalid_grant"}"#, ErrorClass::Systemic),
            (400, r#"{"error":"invalid_scope"}"#, ErrorClass::Systemic),
            (
                400,
                r#"{"error":"unauthorized_client"}"#,
                ErrorClass::Systemic,
            ),
            (429, "", ErrorClass::Transient),
            (503, "", ErrorClass::Transient),
        ];
        let headers = HeaderMap::new();
        for (status, body, class) in cases {
            let route = Route::Token.template();
            let error = OktaError::from_response(route, status, &headers, body.as_bytes(), None);
            assert_eq!(error.class(), class, "class of {status} {body}");
            assert!(!error.is_absent(), "absent for {status} {body}");
        }
    }

    #[test]
    fn token_endpoint_rejection_code() {
        let route = Route::Token.template();
        let body = br#"{"error":"invalid_client"}"#;
        let error = OktaError::from_response(route, 401, &HeaderMap::new(), body, None);
        assert_eq!(error.code(), codes::CREDENTIAL_REJECTED);
    }

    #[test]
    fn error_exposes_request_id() {
        let error = api_error(400, r#"{"errorCode":"E0000001"}"#);
        assert_eq!(error.okta_request_id(), Some("req-123"));
    }

    #[test]
    fn error_exposes_status() {
        assert_eq!(api_error(409, "").status(), Some(409));
    }

    #[test]
    fn absent_detected_for_not_found_codes() {
        assert!(api_error(404, r#"{"errorCode":"E0000007"}"#).is_absent());
        assert!(api_error(401, r#"{"error":"invalid_client"}"#).is_absent());
        assert!(!api_error(404, "").is_absent());
        assert!(!api_error(401, r#"{"errorCode":"E0000011"}"#).is_absent());
    }

    #[test]
    fn deactivation_detected_for_active_app() {
        assert!(api_error(403, r#"{"errorCode":"E0000056"}"#).requires_deactivation());
        let message = r#"{"errorCode":"E0000001","errorSummary":"App must be deactivated first"}"#;
        assert!(api_error(400, message).requires_deactivation());
        assert!(!api_error(400, r#"{"errorCode":"E0000001"}"#).requires_deactivation());
    }

    #[test]
    fn retry_after_only_for_transient() {
        let headers = HeaderMap::new();
        let wait = Some(Duration::from_secs(5));
        let limited = OktaError::from_response("route", 429, &headers, b"", wait);
        let rejected = OktaError::from_response("route", 400, &headers, b"", wait);
        assert_eq!(limited.retry_after(), wait);
        assert_eq!(rejected.retry_after(), None);
    }

    #[test]
    fn pacing_wait_is_transient_rate_limit() {
        let error = OktaError::RateLimitWait {
            route: "POST /oauth2/v1/clients",
            retry_after: Duration::from_secs(7),
        };
        assert_eq!(error.class(), ErrorClass::Transient);
        assert_eq!(error.code(), codes::RATE_LIMITED);
        assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
        assert!(!error.may_have_been_applied());
    }
}

//! Scripted faults: responses the simulator sends in place of the real one, for a given number
//! of matching requests.
//!
//! A [`Fault`] serializes to the JSON the control API takes at `POST /sim/v1/faults`:
//!
//! ```json
//! {
//!   "method": "POST",
//!   "path": "/oauth2/v1/clients",
//!   "count": 2,
//!   "delay_ms": 0,
//!   "action": {
//!     "kind": "respond",
//!     "status": 429,
//!     "body": {"errorCode": "E0000047", "errorSummary": "API call exceeded rate limit due to too many requests."},
//!     "headers": {"Retry-After": "30"},
//!     "rate_limit_reset_in_secs": 30
//!   }
//! }
//! ```
//!
//! `kind` is `respond` (send the scripted response, the route does nothing) or
//! `apply_then_respond` (the route runs and changes state, then its response is replaced by the
//! scripted one, which simulates a response lost on the way back).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use super::okta_errors::{oauth_error_body, okta_error_body};

/// A scripted response for the next `count` requests that match `method` and `path`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// HTTP method to match, case-insensitive, or `*` for any method.
    pub method: String,
    /// Path pattern: segments separated by `/`, where `*` matches exactly one segment
    /// (`/oauth2/v1/clients/*`). The query string is not matched.
    pub path: String,
    /// Number of matching requests this fault handles before it is removed. Default 1.
    #[serde(default = "default_count")]
    pub count: u32,
    /// Time to wait before sending the scripted response. JSON field `delay_ms`, in
    /// milliseconds. Default 0. For `apply_then_respond`, the wait comes after the route ran.
    #[serde(default, rename = "delay_ms", with = "duration_millis")]
    pub delay: Duration,
    /// Handling of a matching request.
    pub action: FaultAction,
}

/// Treatment of a matching request: a scripted response, with or without running the route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultAction {
    /// Sends the scripted response without running the route.
    Respond(ScriptedResponse),
    /// Runs the route (its state change happens), then sends the scripted response in place of
    /// the route's own.
    ApplyThenRespond(ScriptedResponse),
}

/// A response sent in place of the route's. The simulator still adds `Date`,
/// `X-Okta-Request-Id` and the rate-limit headers; entries of `headers` replace them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptedResponse {
    /// HTTP status code.
    pub status: u16,
    /// JSON body; `None` sends an empty body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Extra response headers, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// When set, `X-Rate-Limit-Reset` is the response `Date` plus this duration and
    /// `X-Rate-Limit-Remaining` is 0. JSON field `rate_limit_reset_in_secs`, in whole seconds
    /// (fractions round up).
    #[serde(
        default,
        rename = "rate_limit_reset_in_secs",
        with = "optional_duration_secs",
        skip_serializing_if = "Option::is_none"
    )]
    pub rate_limit_reset_in: Option<Duration>,
}

/// A reason a fault cannot be scripted. The control API sends it back in a 400 response.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FaultError {
    /// `method` is neither `*` nor an HTTP method token.
    #[error("fault method '{0}' is not an HTTP method or '*'")]
    InvalidMethod(String),
    /// `path` does not start with `/`.
    #[error("fault path '{0}' must start with '/'")]
    InvalidPath(String),
    /// `count` is 0, so the fault would never be used.
    #[error("fault count must be at least 1")]
    ZeroCount,
    /// `status` is outside 100..=999.
    #[error("fault status {0} is not a valid HTTP status code")]
    InvalidStatus(u16),
    /// A header name is not a valid HTTP header name.
    #[error("fault header name '{0}' is not a valid HTTP header name")]
    InvalidHeaderName(String),
    /// A header value contains characters HTTP does not allow.
    #[error("fault header '{0}' has a value that is not a valid HTTP header value")]
    InvalidHeaderValue(String),
}

impl Fault {
    /// Creates a fault that responds to one matching request with `response` without running the
    /// route.
    pub fn respond(method: &str, path: &str, response: ScriptedResponse) -> Self {
        Self::new(method, path, FaultAction::Respond(response))
    }

    /// Creates a fault that runs the route for one matching request, then sends `response` in
    /// place of the route's own.
    pub fn apply_then_respond(method: &str, path: &str, response: ScriptedResponse) -> Self {
        Self::new(method, path, FaultAction::ApplyThenRespond(response))
    }

    /// Creates a fault that responds to one matching request with 429 E0000047 and a reset
    /// `reset_in` after the response `Date`.
    pub fn rate_limited(method: &str, path: &str, reset_in: Duration) -> Self {
        let response = ScriptedResponse::okta_error(
            429,
            "E0000047",
            "API call exceeded rate limit due to too many requests.",
        )
        .with_rate_limit_reset_in(reset_in);
        Self::respond(method, path, response)
    }

    /// Sets how many matching requests the fault handles.
    pub fn times(mut self, count: u32) -> Self {
        self.count = count;
        self
    }

    /// Sets the time to wait before the scripted response is sent.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Returns the scripted response, for either action.
    pub fn response(&self) -> &ScriptedResponse {
        match &self.action {
            FaultAction::Respond(response) | FaultAction::ApplyThenRespond(response) => response,
        }
    }

    /// Checks that the fault can be matched and its response sent.
    pub fn validate(&self) -> Result<(), FaultError> {
        if self.method != "*" && Method::from_bytes(self.method.as_bytes()).is_err() {
            return Err(FaultError::InvalidMethod(self.method.clone()));
        }
        if !self.path.starts_with('/') {
            return Err(FaultError::InvalidPath(self.path.clone()));
        }
        if self.count == 0 {
            return Err(FaultError::ZeroCount);
        }
        self.response().validate()
    }

    /// Reports whether the fault applies to a request with this method and path.
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        let method_matches =
            self.method == "*" || self.method.eq_ignore_ascii_case(method.as_str());
        method_matches && path_matches(&self.path, path)
    }

    fn new(method: &str, path: &str, action: FaultAction) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            count: 1,
            delay: Duration::ZERO,
            action,
        }
    }
}

impl ScriptedResponse {
    /// Creates a response with this status, no body and no extra headers.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            body: None,
            headers: BTreeMap::new(),
            rate_limit_reset_in: None,
        }
    }

    /// Creates a response with an Okta management API error body
    /// (`errorCode`, `errorSummary`, `errorLink`, `errorId`, `errorCauses`).
    pub fn okta_error(status: u16, code: &str, summary: &str) -> Self {
        Self::new(status).with_body(okta_error_body(code, summary))
    }

    /// Creates a response with an OAuth 2.0 error body (`error`, `error_description`).
    pub fn oauth_error(status: u16, error: &str, description: &str) -> Self {
        Self::new(status).with_body(oauth_error_body(error, description))
    }

    /// Sets the JSON body.
    pub fn with_body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// Adds a response header, replacing a standard header of the same name.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Sets `X-Rate-Limit-Reset` to the response `Date` plus `reset_in`, and Remaining to 0.
    pub fn with_rate_limit_reset_in(mut self, reset_in: Duration) -> Self {
        self.rate_limit_reset_in = Some(reset_in);
        self
    }

    /// Checks the status code and headers.
    pub fn validate(&self) -> Result<(), FaultError> {
        StatusCode::from_u16(self.status).map_err(|_| FaultError::InvalidStatus(self.status))?;
        for (name, value) in &self.headers {
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| FaultError::InvalidHeaderName(name.clone()))?;
            HeaderValue::from_str(value)
                .map_err(|_| FaultError::InvalidHeaderValue(name.clone()))?;
        }
        Ok(())
    }
}

/// Scripted faults in the order they were added. The first matching fault is used.
#[derive(Debug, Default)]
pub(crate) struct FaultQueue {
    faults: Vec<Fault>,
}

impl FaultQueue {
    pub(crate) fn push(&mut self, fault: Fault) {
        self.faults.push(fault);
    }

    pub(crate) fn clear(&mut self) {
        self.faults.clear();
    }

    /// Returns the faults that still have uses left, with the number left in `count`.
    pub(crate) fn pending(&self) -> Vec<Fault> {
        self.faults.clone()
    }

    /// Takes one use of the first fault matching the request, removing the fault when it has
    /// no uses left.
    pub(crate) fn take(&mut self, method: &Method, path: &str) -> Option<Fault> {
        let index = self
            .faults
            .iter()
            .position(|fault| fault.count > 0 && fault.matches(method, path))?;
        let fault = self.faults[index].clone();
        self.faults[index].count -= 1;
        if self.faults[index].count == 0 {
            self.faults.remove(index);
        }
        Some(fault)
    }
}

fn default_count() -> u32 {
    1
}

/// Matches a path against a pattern segment by segment; `*` matches any one segment.
fn path_matches(pattern: &str, path: &str) -> bool {
    let mut pattern_segments = pattern.split('/');
    let mut path_segments = path.split('/');
    loop {
        match (pattern_segments.next(), path_segments.next()) {
            (None, None) => return true,
            (Some(expected), Some(actual)) if expected == "*" || expected == actual => {}
            _ => return false,
        }
    }
}

/// Serde for a `Duration` as whole milliseconds.
mod duration_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let millis = u64::try_from(value.as_millis()).unwrap_or(u64::MAX);
        serializer.serialize_u64(millis)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

/// Serde for an optional `Duration` as whole seconds, rounding fractions up.
mod optional_duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => serializer.serialize_some(&super::ceil_secs(*duration)),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<u64>::deserialize(deserializer).map(|secs| secs.map(Duration::from_secs))
    }
}

/// Returns the duration in whole seconds, rounding a fraction up.
pub(crate) fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_star_matches_one_segment() {
        assert!(path_matches(
            "/oauth2/v1/clients/*",
            "/oauth2/v1/clients/0oa1"
        ));
        assert!(!path_matches("/oauth2/v1/clients/*", "/oauth2/v1/clients"));
        assert!(!path_matches(
            "/oauth2/v1/clients/*",
            "/oauth2/v1/clients/0oa1/lifecycle/newSecret"
        ));
        assert!(path_matches(
            "/api/v1/apps/*/lifecycle/*",
            "/api/v1/apps/0oa1/lifecycle/activate"
        ));
    }

    #[test]
    fn pattern_literal_needs_exact_path() {
        assert!(path_matches("/oauth2/v1/clients", "/oauth2/v1/clients"));
        assert!(!path_matches("/oauth2/v1/clients", "/oauth2/v1/clientsx"));
        assert!(!path_matches("/oauth2/v1/clients", "/oauth2/v1/clients/"));
    }

    #[test]
    fn method_match_ignores_case_and_star() {
        let fault = Fault::respond("post", "/x", ScriptedResponse::new(500));
        assert!(fault.matches(&Method::POST, "/x"));
        assert!(!fault.matches(&Method::GET, "/x"));
        let any = Fault::respond("*", "/x", ScriptedResponse::new(500));
        assert!(any.matches(&Method::DELETE, "/x"));
    }

    #[test]
    fn queue_take_counts_down_then_removes() {
        let mut queue = FaultQueue::default();
        queue.push(Fault::respond("GET", "/x", ScriptedResponse::new(500)).times(2));
        assert!(queue.take(&Method::GET, "/x").is_some());
        assert_eq!(queue.pending()[0].count, 1);
        assert!(queue.take(&Method::GET, "/x").is_some());
        assert!(queue.pending().is_empty());
        assert!(queue.take(&Method::GET, "/x").is_none());
    }

    #[test]
    fn queue_take_uses_first_match() {
        let mut queue = FaultQueue::default();
        queue.push(Fault::respond("GET", "/x", ScriptedResponse::new(500)));
        queue.push(Fault::respond("GET", "/*", ScriptedResponse::new(503)));
        let first = queue.take(&Method::GET, "/x");
        assert_eq!(first.map(|f| f.response().status), Some(500));
        let second = queue.take(&Method::GET, "/x");
        assert_eq!(second.map(|f| f.response().status), Some(503));
    }

    #[test]
    fn json_round_trip_keeps_fault() {
        let fault = Fault::rate_limited("POST", "/oauth2/v1/clients", Duration::from_secs(30))
            .with_delay(Duration::from_millis(250))
            .times(3);
        let json = serde_json::to_value(&fault).expect("fault serializes");
        assert_eq!(json["delay_ms"], 250);
        assert_eq!(json["action"]["kind"], "respond");
        assert_eq!(json["action"]["rate_limit_reset_in_secs"], 30);
        let back: Fault = serde_json::from_value(json).expect("fault deserializes");
        assert_eq!(back, fault);
    }

    #[test]
    fn json_defaults_count_and_delay() {
        let json = serde_json::json!({
            "method": "DELETE",
            "path": "/oauth2/v1/clients/*",
            "action": {"kind": "apply_then_respond", "status": 502}
        });
        let fault: Fault = serde_json::from_value(json).expect("fault deserializes");
        assert_eq!(fault.count, 1);
        assert_eq!(fault.delay, Duration::ZERO);
        assert_eq!(
            fault.action,
            FaultAction::ApplyThenRespond(ScriptedResponse::new(502))
        );
    }

    #[test]
    fn validate_rejects_bad_faults() {
        let ok = Fault::respond("GET", "/x", ScriptedResponse::new(500));
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ok.clone().times(0).validate(), Err(FaultError::ZeroCount));
        let bad_status = Fault::respond("GET", "/x", ScriptedResponse::new(42));
        assert_eq!(bad_status.validate(), Err(FaultError::InvalidStatus(42)));
        let bad_path = Fault::respond("GET", "x", ScriptedResponse::new(500));
        assert!(matches!(
            bad_path.validate(),
            Err(FaultError::InvalidPath(_))
        ));
        let bad_method = Fault::respond("GE T", "/x", ScriptedResponse::new(500));
        assert!(matches!(
            bad_method.validate(),
            Err(FaultError::InvalidMethod(_))
        ));
        let bad_header = Fault::respond(
            "GET",
            "/x",
            ScriptedResponse::new(500).with_header("a b", "1"),
        );
        assert!(matches!(
            bad_header.validate(),
            Err(FaultError::InvalidHeaderName(_))
        ));
    }

    #[test]
    fn ceil_secs_rounds_up() {
        assert_eq!(ceil_secs(Duration::from_millis(1500)), 2);
        assert_eq!(ceil_secs(Duration::from_secs(3)), 3);
    }
}

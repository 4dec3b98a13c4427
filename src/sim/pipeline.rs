//! The steps every request on an Okta route goes through around its handler: recording,
//! latency, authentication, rate limiting, scripted faults and the standard response headers.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::auth;
use super::faults::{ceil_secs, Fault, FaultAction, ScriptedResponse};
use super::ids;
use super::okta_errors;
use super::rate_limit::{Bucket, RateDecision};
use super::state::{epoch_secs, SimState};
use super::token::TOKEN_PATH;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-okta-request-id");
const RATE_LIMIT_LIMIT: HeaderName = HeaderName::from_static("x-rate-limit-limit");
const RATE_LIMIT_REMAINING: HeaderName = HeaderName::from_static("x-rate-limit-remaining");
const RATE_LIMIT_RESET: HeaderName = HeaderName::from_static("x-rate-limit-reset");

/// The source of a request's response, decided under the lock before any handler runs.
enum Admission {
    /// A 401 or 429, sent without running the handler.
    Rejected(Response),
    /// A scripted fault supplies the response.
    Faulted(Fault),
    /// The handler produces the response.
    Admitted,
}

/// Middleware for all Okta routes and the unknown-route fallback.
pub(crate) async fn okta_pipeline(
    State(state): State<Arc<SimState>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let log_index =
        state
            .lock()
            .requests
            .begin(method.to_string(), path.clone(), query, SystemTime::now());

    // Half of the latency passes before the route runs and half after, like the two legs of
    // a round trip, so a client that gives up mid-call may miss a response to a call that
    // took effect, as with a real Okta.
    let latency_before = state.settings.latency / 2;
    sleep_unless_zero(latency_before).await;

    let (admission, rate) = admit(&state, request.headers(), &method, &path);
    let (mut response, scripted) = match admission {
        Admission::Rejected(response) => (response, None),
        Admission::Admitted => (next.run(request).await, None),
        Admission::Faulted(fault) => run_fault(fault, request, next).await,
    };
    sleep_unless_zero(state.settings.latency - latency_before).await;

    let now = SystemTime::now();
    let window_end = state.lock().rate_limiter.window_end(epoch_secs(now));
    insert_standard_headers(response.headers_mut(), &rate, window_end, now);
    if let Some(scripted) = &scripted {
        insert_scripted_headers(response.headers_mut(), scripted, now);
    }

    let status = response.status().as_u16();
    let faulted = scripted.is_some();
    state.lock().requests.complete(log_index, status, faulted);
    tracing::debug!(%method, %path, status, faulted, "Sent Okta response");
    response
}

/// Counts the request against its bucket, then checks the credential, the limit and the
/// fault queue, in that order. The token endpoint takes no `Authorization` header, because
/// its client assertion is the credential.
fn admit(
    state: &SimState,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
) -> (Admission, RateDecision) {
    let now_secs = epoch_secs(SystemTime::now());

    let mut store = state.lock();
    let rate = store.rate_limiter.count(Bucket::for_path(path), now_secs);
    let credential_accepted = store.token_accepted
        && auth::is_authorized(headers, &state.api_token, &store.tokens, Instant::now());
    if path != TOKEN_PATH && !credential_accepted {
        return (Admission::Rejected(okta_errors::invalid_token()), rate);
    }
    if rate.exceeded {
        return (Admission::Rejected(okta_errors::rate_limited()), rate);
    }
    match store.faults.take(method, path) {
        Some(fault) => (Admission::Faulted(fault), rate),
        None => (Admission::Admitted, rate),
    }
}

/// Sends the fault's scripted response; for `apply_then_respond` the handler runs first and its
/// response is dropped.
async fn run_fault(
    fault: Fault,
    request: Request,
    next: Next,
) -> (Response, Option<ScriptedResponse>) {
    let scripted = match fault.action {
        FaultAction::Respond(scripted) => scripted,
        FaultAction::ApplyThenRespond(scripted) => {
            let discarded = next.run(request).await;
            tracing::debug!(
                discarded_status = discarded.status().as_u16(),
                "Replaced the route's response with a scripted one"
            );
            scripted
        }
    };
    sleep_unless_zero(fault.delay).await;
    (scripted_body(&scripted), Some(scripted))
}

/// Builds the status and body of a scripted response. A status that is not valid HTTP (only
/// possible for faults scripted in-process, since the control API validates them) becomes 500.
fn scripted_body(scripted: &ScriptedResponse) -> Response {
    let status = StatusCode::from_u16(scripted.status).unwrap_or_else(|_| {
        tracing::warn!(
            status = scripted.status,
            "Scripted fault has an invalid status, sending 500"
        );
        StatusCode::INTERNAL_SERVER_ERROR
    });
    match &scripted.body {
        Some(body) => (status, Json(body.clone())).into_response(),
        None => (status, Body::empty()).into_response(),
    }
}

/// Inserts `Date`, `X-Okta-Request-Id` and the rate-limit headers. When latency or a slow
/// handler carried the response into the next window, Reset names the end of the window the
/// response is sent in, so it is never in the past.
fn insert_standard_headers(
    headers: &mut HeaderMap,
    rate: &RateDecision,
    window_end: u64,
    now: SystemTime,
) {
    let reset = rate.reset.max(window_end);
    insert(
        headers,
        axum::http::header::DATE,
        &httpdate::fmt_http_date(now),
    );
    insert(headers, REQUEST_ID, &ids::new_request_id());
    insert(headers, RATE_LIMIT_LIMIT, &rate.limit.to_string());
    insert(headers, RATE_LIMIT_REMAINING, &rate.remaining.to_string());
    insert(headers, RATE_LIMIT_RESET, &reset.to_string());
}

/// Applies a fault's reset override and extra headers over the standard ones. The reset is
/// counted from the whole second written in `Date`, so `Reset - Date` is exactly the scripted
/// number of seconds.
fn insert_scripted_headers(headers: &mut HeaderMap, scripted: &ScriptedResponse, now: SystemTime) {
    if let Some(reset_in) = scripted.rate_limit_reset_in {
        let reset = epoch_secs(now) + ceil_secs(reset_in);
        insert(headers, RATE_LIMIT_REMAINING, "0");
        insert(headers, RATE_LIMIT_RESET, &reset.to_string());
    }
    for (name, value) in &scripted.headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => {
                headers.insert(name, value);
            }
            _ => tracing::warn!(header = %name, "Scripted fault header is invalid, skipping it"),
        }
    }
}

/// Inserts a header whose value the simulator generated (always valid ASCII).
fn insert(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

async fn sleep_unless_zero(duration: Duration) {
    if !duration.is_zero() {
        tokio::time::sleep(duration).await;
    }
}

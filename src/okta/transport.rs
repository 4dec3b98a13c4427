//! One Okta HTTP call: rate-limit pacing, the cap on calls in flight, authorization, timeout,
//! rate-limit bookkeeping, metrics and the mapping of a failed response to [`OktaError`].
//! Retries wrap this in [`super::retry`], and a rejected access token is renewed once around
//! them.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::RequestBuilder;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use url::Url;

use super::config::OktaConfig;
use super::credential::Authorizer;
use super::error::{ApiError, OktaError};
use super::pacing::Pacer;
use super::rate_limit::{RateLimitSnapshot, RateLimitTracker};
use super::retry::{RetryBudget, RetryPolicy};
use super::route::Route;

/// `User-Agent` of every call, naming the product and version.
const USER_AGENT: &str = concat!("okta-dcr-worker/", env!("CARGO_PKG_VERSION"));

/// Shared state of an `OktaClient`.
pub(crate) struct Transport {
    pub(crate) http: reqwest::Client,
    pub(crate) org_url: Url,
    pub(crate) authorizer: Authorizer,
    pub(crate) call_timeout: Duration,
    pub(crate) policy: RetryPolicy,
    pub(crate) rate_limits: RateLimitTracker,
    pacer: Pacer,
    /// One permit per HTTP call in flight, held from sending until the body is read.
    call_permits: Semaphore,
}

/// A success response, read in full.
pub(crate) struct Success {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
    route: Route,
}

impl Transport {
    /// Builds the HTTP client. Redirects are not followed, so that the credential is never
    /// sent to a host other than the configured org.
    pub(crate) fn new(config: OktaConfig) -> Result<Self, OktaError> {
        config.validate()?;
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(config.call_timeout)
            .connect_timeout(config.call_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| OktaError::Config(format!("cannot build the HTTP client: {error}")))?;
        let token_url = join_segments(&config.org_url, &["oauth2", "v1", "token"])?;
        Ok(Self {
            http,
            authorizer: Authorizer::new(config.auth, token_url)?,
            org_url: config.org_url,
            call_timeout: config.call_timeout,
            policy: RetryPolicy {
                min_backoff: config.min_backoff,
                max_backoff: config.max_backoff,
            },
            rate_limits: RateLimitTracker::default(),
            pacer: Pacer::new(config.call_timeout),
            call_permits: Semaphore::new(config.max_concurrent_calls),
        })
    }

    /// Returns the org URL with `segments` appended, each percent-encoded as one segment
    /// (a `/` in an id becomes `%2F`).
    pub(crate) fn url(&self, segments: &[&str]) -> Result<Url, OktaError> {
        join_segments(&self.org_url, segments)
    }

    /// Sends the call, retrying transient failures within the budget. When Okta rejects an
    /// access token with 401, the token is discarded and the call is made once more with a new
    /// one, because Okta may have revoked it before it expired.
    pub(crate) async fn call(
        &self,
        route: Route,
        url: &Url,
        body: Option<&[u8]>,
        budget: &RetryBudget,
    ) -> Result<Success, OktaError> {
        let token_serial = Mutex::new(None);
        let error = match self
            .call_with_retries(route, url, body, budget, &token_serial)
            .await
        {
            Err(error) if rejects_access_token(&error) => error,
            other => return other,
        };
        let serial = *token_serial.lock().unwrap_or_else(|e| e.into_inner());
        if !self.authorizer.discard_token(serial) {
            return Err(error);
        }
        tracing::info!(
            route = route.template(),
            okta_request_id = error.okta_request_id(),
            "Okta rejected the access token, renewing it and retrying once"
        );
        self.call_with_retries(route, url, body, budget, &token_serial)
            .await
    }

    /// Sends one prepared request and reads the whole response, mapping a failure to
    /// [`OktaError`] under `route`. Waits first for a free permit among
    /// `OktaConfig::max_concurrent_calls`.
    pub(crate) async fn exchange(
        &self,
        route: Route,
        request: RequestBuilder,
    ) -> Result<Success, OktaError> {
        // The semaphore is never closed, so the error branch is unreachable.
        let _permit = self.call_permits.acquire().await.map_err(|_| {
            OktaError::Config("the limit of concurrent Okta calls was closed".to_owned())
        })?;
        let started = Instant::now();
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Err(self.failed_call(route, error, started)),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let snapshot = self.observe_rate_limit(route, &headers);
        let body = match response.bytes().await {
            Ok(body) => body.to_vec(),
            Err(error) => return Err(self.failed_call(route, error, started)),
        };
        record_call(route, &status.to_string(), started);

        if (200..300).contains(&status) {
            return Ok(Success {
                status,
                headers,
                body,
                route,
            });
        }
        // Okta sends the rate-limit headers on every response, so the reset time bounds the
        // wait only when the call was throttled or the bucket is spent. A 503 with calls left
        // in the window, and a 429 for too many concurrent requests (`X-Rate-Limit-Limit: 0`),
        // fall back to the exponential backoff.
        let retry_after = snapshot
            .filter(|s| !s.is_concurrency_limit())
            .filter(|s| status == 429 || s.remaining.is_none_or(|left| left == 0))
            .and_then(|s| s.wait_for_reset());
        Err(OktaError::from_response(
            route.template(),
            status,
            &headers,
            &body,
            retry_after,
        ))
    }

    /// Runs the retry loop and stores in `token_serial` the access token of the last attempt.
    async fn call_with_retries(
        &self,
        route: Route,
        url: &Url,
        body: Option<&[u8]>,
        budget: &RetryBudget,
        token_serial: &Mutex<Option<u64>>,
    ) -> Result<Success, OktaError> {
        let policy = self.policy;
        policy
            .run(route, budget, || {
                self.attempt(route, url, body, budget, token_serial)
            })
            .await
    }

    /// Waits for the call's turn in the rate-limit window, then authorizes and sends one HTTP
    /// request.
    async fn attempt(
        &self,
        route: Route,
        url: &Url,
        body: Option<&[u8]>,
        budget: &RetryBudget,
        token_serial: &Mutex<Option<u64>>,
    ) -> Result<Success, OktaError> {
        let _turn = self.pacer.wait_turn(route, budget).await?;
        budget.record_attempt();
        let authorization = self.authorizer.authorization(self).await?;
        *token_serial.lock().unwrap_or_else(|e| e.into_inner()) = authorization.token_serial;
        let mut request = self
            .http
            .request(route.method(), url.clone())
            .header(AUTHORIZATION, authorization.header)
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        self.exchange(route, request).await
    }

    /// Stores the rate-limit headers of a response and passes them to the pacer.
    fn observe_rate_limit(&self, route: Route, headers: &HeaderMap) -> Option<RateLimitSnapshot> {
        let snapshot = RateLimitSnapshot::from_headers(headers)?;
        self.rate_limits.record(route.bucket(), snapshot);
        self.pacer
            .observe(route.bucket(), &snapshot, Instant::now());
        Some(snapshot)
    }

    fn failed_call(&self, route: Route, error: reqwest::Error, started: Instant) -> OktaError {
        if error.is_timeout() {
            record_call(route, "timeout", started);
            return OktaError::Timeout {
                route: route.template(),
                timeout: self.call_timeout,
            };
        }
        record_call(route, "error", started);
        OktaError::Transport {
            route: route.template(),
            source: error,
        }
    }
}

impl Success {
    /// Parses the body as JSON. A body that does not parse yields `InvalidResponse` whose
    /// detail gives only the position, because the body may contain a client secret.
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, OktaError> {
        serde_json::from_slice(&self.body).map_err(|error| OktaError::InvalidResponse {
            route: self.route.template(),
            status: self.status,
            detail: format!(
                "{:?} error in the JSON body at line {} column {}",
                error.classify(),
                error.line(),
                error.column()
            ),
            request_id: self.request_id(),
        })
    }

    /// Returns the `X-Okta-Request-Id` header.
    pub(crate) fn request_id(&self) -> Option<String> {
        let value = self.headers.get("x-okta-request-id")?.to_str().ok()?;
        Some(value.to_owned())
    }
}

/// Returns the org URL with `segments` appended, each percent-encoded as one segment.
fn join_segments(org_url: &Url, segments: &[&str]) -> Result<Url, OktaError> {
    for segment in segments {
        if segment.is_empty() || *segment == "." || *segment == ".." {
            return Err(OktaError::InvalidId {
                value: (*segment).to_owned(),
            });
        }
    }
    let mut url = org_url.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .map_err(|()| OktaError::Config(format!("org URL {org_url} has no path")))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Reports whether an API call failed because Okta rejected the credential with 401. A 401
/// from the token endpoint itself, or one that reports a client absent, is not a rejected
/// access token.
fn rejects_access_token(error: &OktaError) -> bool {
    let OktaError::Api(api) = error else {
        return false;
    };
    let ApiError { status, route, .. } = api.as_ref();
    *status == 401 && *route != Route::Token.template() && !error.is_absent()
}

/// Records `okta_calls_total{route,status}` and `okta_call_duration_seconds{route}`.
fn record_call(route: Route, status: &str, started: Instant) {
    let template = route.template();
    metrics::counter!("okta_calls_total", "route" => template, "status" => status.to_owned())
        .increment(1);
    metrics::histogram!("okta_call_duration_seconds", "route" => template)
        .record(started.elapsed().as_secs_f64());
}

//! Access tokens of a service app: requested from `POST /oauth2/v1/token` with the
//! `client_credentials` grant and a signed client assertion, cached until shortly before they
//! expire, and renewed by one caller at a time while the others wait for its result.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use serde::Deserialize;
use url::Url;

use super::error::OktaError;
use super::route::Route;
use super::service_app::ServiceApp;
use super::transport::Transport;
use crate::secret::Secret;

/// Scopes requested for every token: DCR create, read and manage, and app lifecycle and group
/// assignment. The service app must have been granted all of them.
pub const SCOPES: &str =
    "okta.clients.register okta.clients.read okta.clients.manage okta.apps.manage";

/// `client_assertion_type` of a JWT client assertion (RFC 7523 section 2.2).
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The cached access token of a service app and the lock that lets one caller renew it.
pub(crate) struct TokenSource {
    app: ServiceApp,
    token_url: Url,
    current: Mutex<Option<CachedToken>>,
    /// Held while a token request is in flight, never while an API call is.
    renewal: tokio::sync::Mutex<()>,
    next_serial: AtomicU64,
}

/// An access token ready to send.
#[derive(Clone)]
pub(crate) struct CachedToken {
    /// `Bearer <token>`, marked sensitive.
    pub(crate) header: HeaderValue,
    /// Number of the token among those this source obtained, so that a rejection discards
    /// only the token that was rejected.
    pub(crate) serial: u64,
    renew_at: Instant,
}

/// Body of a successful token response (RFC 6749 section 5.1).
#[derive(Deserialize)]
struct TokenResponse {
    token_type: String,
    /// Lifetime of the token, in seconds.
    expires_in: u64,
    access_token: Secret,
    #[serde(default)]
    scope: Option<String>,
}

impl TokenSource {
    /// Builds a source with an empty cache for the token endpoint `token_url`.
    pub(crate) fn new(app: ServiceApp, token_url: Url) -> Self {
        Self {
            app,
            token_url,
            current: Mutex::new(None),
            renewal: tokio::sync::Mutex::new(()),
            next_serial: AtomicU64::new(1),
        }
    }

    /// Returns the service app this source authenticates as.
    pub(crate) fn app(&self) -> &ServiceApp {
        &self.app
    }

    /// Returns the cached token, or requests a new one when there is none or it is due for
    /// renewal. Concurrent callers share one token request.
    pub(crate) async fn token(&self, transport: &Transport) -> Result<CachedToken, OktaError> {
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let _renewal = self.renewal.lock().await;
        // Another caller may have renewed the token while this one waited for the lock.
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let token = self.request(transport).await?;
        *self.lock() = Some(token.clone());
        Ok(token)
    }

    /// Drops the cached token if it is still the one numbered `serial`, so that the next call
    /// requests a new one. A token already renewed by another caller is kept.
    pub(crate) fn discard(&self, serial: u64) {
        let mut current = self.lock();
        if current.as_ref().is_some_and(|token| token.serial == serial) {
            *current = None;
        }
    }

    fn fresh(&self) -> Option<CachedToken> {
        let now = Instant::now();
        self.lock()
            .as_ref()
            .filter(|token| now < token.renew_at)
            .cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<CachedToken>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends one token request. Errors keep the token route, so they are classified as token
    /// endpoint errors (see [`super::error`]).
    async fn request(&self, transport: &Transport) -> Result<CachedToken, OktaError> {
        let assertion = self.app.client_assertion(self.token_url.as_str())?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("scope", SCOPES)
            .append_pair("client_assertion_type", ASSERTION_TYPE)
            .append_pair("client_assertion", assertion.expose())
            .finish();
        let request = transport
            .http
            .post(self.token_url.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(body);

        // The expiry counts from before the request, so network time only shortens it.
        let requested_at = Instant::now();
        let response = transport.exchange(Route::Token, request).await?;
        let parsed: TokenResponse = response.json()?;
        let token = self.cache_entry(parsed, requested_at, &response)?;
        tracing::info!(
            client_id = self.app.client_id(),
            token_serial = token.serial,
            renew_in_secs = token
                .renew_at
                .saturating_duration_since(Instant::now())
                .as_secs(),
            "Obtained an Okta access token"
        );
        Ok(token)
    }

    fn cache_entry(
        &self,
        parsed: TokenResponse,
        requested_at: Instant,
        response: &super::transport::Success,
    ) -> Result<CachedToken, OktaError> {
        let invalid = |detail: &str| OktaError::InvalidResponse {
            route: Route::Token.template(),
            status: response.status,
            detail: detail.to_owned(),
            request_id: response.request_id(),
        };
        if !parsed.token_type.eq_ignore_ascii_case("Bearer") {
            return Err(invalid("the token type is not Bearer"));
        }
        if parsed.expires_in == 0 {
            return Err(invalid("the token expires at once (expires_in is 0)"));
        }
        if let Some(scope) = &parsed.scope {
            warn_on_missing_scopes(scope);
        }
        let mut header = HeaderValue::from_str(&format!("Bearer {}", parsed.access_token.expose()))
            .map_err(|_| invalid("the access token contains characters a header cannot carry"))?;
        header.set_sensitive(true);
        let lifetime = Duration::from_secs(parsed.expires_in);
        Ok(CachedToken {
            header,
            serial: self.next_serial.fetch_add(1, Ordering::Relaxed),
            renew_at: requested_at + lifetime - self.app.renewal_margin(lifetime),
        })
    }
}

/// Warns when Okta granted fewer scopes than requested, because the calls needing the others
/// will then fail with 403.
fn warn_on_missing_scopes(granted: &str) {
    let missing: Vec<&str> = SCOPES
        .split(' ')
        .filter(|wanted| !granted.split(' ').any(|scope| scope == *wanted))
        .collect();
    if !missing.is_empty() {
        tracing::warn!(
            ?missing,
            "Okta granted the access token without some requested scopes"
        );
    }
}

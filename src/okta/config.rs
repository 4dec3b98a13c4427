//! Settings of the Okta client and the credential it sends.

use std::time::Duration;

use reqwest::header::HeaderValue;
use url::Url;

use super::error::OktaError;
use super::service_app::ServiceApp;
use crate::secret::Secret;

/// Connection settings of the Okta client.
#[derive(Debug, Clone)]
pub struct OktaConfig {
    /// Okta org base URL, for example `https://example.okta.com`, or `http://127.0.0.1:PORT`
    /// for okta-sim. A path in the URL is kept as a prefix of every API path.
    pub org_url: Url,
    /// The credential sent with every call.
    pub auth: OktaAuth,
    /// Timeout of one HTTP call, connection and body read included.
    pub call_timeout: Duration,
    /// First wait of the exponential backoff between retries.
    pub min_backoff: Duration,
    /// Largest wait of the exponential backoff, jitter included.
    pub max_backoff: Duration,
    /// Maximum Okta HTTP calls in flight at once over all clones of the client, so that the
    /// worker stays under Okta's per-org limit on concurrent requests. At least 1.
    pub max_concurrent_calls: usize,
}

/// The worker's Okta credential.
#[derive(Debug, Clone)]
pub enum OktaAuth {
    /// An Okta API token, sent as `Authorization: SSWS <token>`.
    ApiToken(Secret),
    /// An OAuth 2.0 service app: the client requests access tokens with a signed client
    /// assertion and sends them as `Authorization: Bearer <token>`.
    ServiceApp(ServiceApp),
}

impl OktaAuth {
    /// Builds the service-app credential, loading and checking the private key now so that a
    /// bad key fails at start. See [`ServiceApp::new`] for the accepted forms.
    ///
    /// # Errors
    ///
    /// [`OktaError::Config`], naming `OKTA_PRIVATE_KEY` but never its content.
    pub fn service_app(
        client_id: impl Into<String>,
        private_key: &Secret,
        key_id: Option<String>,
    ) -> Result<Self, OktaError> {
        ServiceApp::new(client_id, private_key, key_id).map(Self::ServiceApp)
    }

    /// Checks that the credential can be sent at all, so that a bad value fails at start. A
    /// service app was checked when it was built.
    pub(crate) fn validate(&self) -> Result<(), OktaError> {
        match self {
            OktaAuth::ApiToken(token) if token.expose().trim().is_empty() => {
                Err(OktaError::Config("the Okta API token is empty".to_owned()))
            }
            OktaAuth::ApiToken(token) => api_token_header(token).map(|_| ()),
            OktaAuth::ServiceApp(_) => Ok(()),
        }
    }
}

impl OktaConfig {
    /// Checks the URL scheme and the durations.
    pub(crate) fn validate(&self) -> Result<(), OktaError> {
        let config_error = |message: String| Err(OktaError::Config(message));
        if !matches!(self.org_url.scheme(), "http" | "https") || self.org_url.cannot_be_a_base() {
            return config_error(format!(
                "org URL {} must be an http or https URL",
                self.org_url
            ));
        }
        if self.call_timeout.is_zero() {
            return config_error("call timeout must be greater than zero".to_owned());
        }
        if self.min_backoff.is_zero() || self.min_backoff > self.max_backoff {
            return config_error(format!(
                "backoff must satisfy 0 < min ({:?}) <= max ({:?})",
                self.min_backoff, self.max_backoff
            ));
        }
        if self.max_concurrent_calls == 0 {
            return config_error("the maximum of concurrent calls must be at least 1".to_owned());
        }
        self.auth.validate()
    }
}

/// Builds `SSWS <token>`, marked sensitive so that reqwest does not print it.
pub(crate) fn api_token_header(token: &Secret) -> Result<HeaderValue, OktaError> {
    let mut value = HeaderValue::from_str(&format!("SSWS {}", token.expose())).map_err(|_| {
        OktaError::Config(
            "the Okta API token contains characters that an HTTP header cannot carry".to_owned(),
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

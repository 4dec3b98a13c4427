//! The `Authorization` header of each call, built from the configured [`OktaAuth`]: a fixed
//! `SSWS` header for an API token, or a cached `Bearer` access token for a service app.

use std::fmt;

use reqwest::header::HeaderValue;
use url::Url;

use super::config::OktaAuth;
use super::error::OktaError;
use super::token::TokenSource;
use super::transport::Transport;

/// The credential of a running client, with the token cache of a service app.
pub(crate) enum Authorizer {
    /// `SSWS <token>`, built once.
    ApiToken(HeaderValue),
    /// Access tokens obtained from `token_url`.
    ServiceApp(Box<TokenSource>),
}

/// The header for one call and, for an access token, its serial number.
pub(crate) struct Authorization {
    pub(crate) header: HeaderValue,
    pub(crate) token_serial: Option<u64>,
}

impl Authorizer {
    /// Builds the authorizer; `token_url` is the org's `/oauth2/v1/token`.
    pub(crate) fn new(auth: OktaAuth, token_url: Url) -> Result<Self, OktaError> {
        match auth {
            OktaAuth::ApiToken(token) => {
                Ok(Self::ApiToken(super::config::api_token_header(&token)?))
            }
            OktaAuth::ServiceApp(app) => {
                Ok(Self::ServiceApp(Box::new(TokenSource::new(app, token_url))))
            }
        }
    }

    /// Returns the header for the next call, requesting an access token first when none is
    /// cached or the cached one is due for renewal.
    pub(crate) async fn authorization(
        &self,
        transport: &Transport,
    ) -> Result<Authorization, OktaError> {
        match self {
            Self::ApiToken(header) => Ok(Authorization {
                header: header.clone(),
                token_serial: None,
            }),
            Self::ServiceApp(source) => {
                let token = source.token(transport).await?;
                Ok(Authorization {
                    header: token.header,
                    token_serial: Some(token.serial),
                })
            }
        }
    }

    /// Drops the access token numbered `serial` after Okta rejected it. Returns `false` when
    /// the credential has no access token to renew, so a retry cannot help.
    pub(crate) fn discard_token(&self, serial: Option<u64>) -> bool {
        match (self, serial) {
            (Self::ServiceApp(source), Some(serial)) => {
                source.discard(serial);
                true
            }
            _ => false,
        }
    }
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ApiToken(_) => f.write_str("ApiToken([redacted])"),
            Self::ServiceApp(source) => f.debug_tuple("ServiceApp").field(source.app()).finish(),
        }
    }
}

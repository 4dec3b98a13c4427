//! Checking the `Authorization` header of Okta and control requests.

use std::time::Instant;

use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;

use super::token::TokenStore;
use crate::secret::Secret;

/// A credential taken from an `Authorization` header. The scheme name is case-insensitive.
#[derive(PartialEq, Eq)]
pub(crate) enum Credential<'a> {
    /// `SSWS <api token>`: an Okta API token.
    Ssws(&'a str),
    /// `Bearer <access token>`: an OAuth 2.0 access token.
    Bearer(&'a str),
}

/// Reports whether an Okta route request carries a credential the simulator accepts: the API
/// token as `SSWS`, or as `Bearer` an access token from `tokens` that has neither expired at
/// `now` nor been revoked.
pub(crate) fn is_authorized(
    headers: &HeaderMap,
    api_token: &Secret,
    tokens: &TokenStore,
    now: Instant,
) -> bool {
    match credential(headers) {
        Some(Credential::Ssws(token)) => constant_time_eq(token, api_token.expose()),
        Some(Credential::Bearer(token)) => tokens.is_valid(token, now),
        None => false,
    }
}

/// Reports whether the request carries the API token as `SSWS`, the only credential of the
/// control API.
pub(crate) fn has_api_token(headers: &HeaderMap, api_token: &Secret) -> bool {
    matches!(credential(headers), Some(Credential::Ssws(token)) if constant_time_eq(token, api_token.expose()))
}

/// Parses the `Authorization` header; `None` when it is missing, not UTF-8 or of another
/// scheme.
pub(crate) fn credential(headers: &HeaderMap) -> Option<Credential<'_>> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    if token.is_empty() {
        return None;
    }
    if scheme.eq_ignore_ascii_case("SSWS") {
        Some(Credential::Ssws(token))
    } else if scheme.eq_ignore_ascii_case("Bearer") {
        Some(Credential::Bearer(token))
    } else {
        None
    }
}

/// Compares two strings in time that depends only on their lengths.
fn constant_time_eq(a: &str, b: &str) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.bytes()
        .zip(b.bytes())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers_with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(value).expect("valid header"),
        );
        headers
    }

    fn authorized(value: Option<&str>, token: &Secret) -> bool {
        let headers = value.map_or_else(HeaderMap::new, headers_with);
        is_authorized(&headers, token, &TokenStore::default(), Instant::now())
    }

    #[test]
    fn ssws_token_accepted_when_equal() {
        let token = Secret::new("00abc");
        assert!(authorized(Some("SSWS 00abc"), &token));
        assert!(authorized(Some("ssws 00abc"), &token));
    }

    #[test]
    fn other_credentials_rejected() {
        let token = Secret::new("00abc");
        assert!(!authorized(Some("SSWS 00abd"), &token));
        assert!(!authorized(Some("SSWS 00ab"), &token));
        assert!(!authorized(Some("Bearer 00abc"), &token));
        assert!(!authorized(Some("Basic 00abc"), &token));
        assert!(!authorized(Some("SSWS "), &token));
        assert!(!authorized(None, &token));
    }

    #[test]
    fn control_accepts_only_ssws() {
        let token = Secret::new("00abc");
        assert!(has_api_token(&headers_with("SSWS 00abc"), &token));
        assert!(!has_api_token(&headers_with("Bearer 00abc"), &token));
    }

    #[test]
    fn bearer_scheme_parsed() {
        let headers = headers_with("Bearer eyJ");
        assert!(credential(&headers) == Some(Credential::Bearer("eyJ")));
    }
}

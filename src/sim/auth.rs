//! Checking the `Authorization` header of Okta and control requests.

use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;

use crate::secret::Secret;

/// A credential taken from an `Authorization` header. The scheme name is case-insensitive.
#[derive(PartialEq, Eq)]
pub(crate) enum Credential<'a> {
    /// `SSWS <api token>`: an Okta API token.
    Ssws(&'a str),
    /// `Bearer <access token>`: an OAuth 2.0 access token.
    Bearer(&'a str),
}

/// Reports whether the request carries a credential the simulator accepts.
///
/// An SSWS token must equal `api_token`.
// TODO: accept Bearer access tokens once the simulator issues them to OAuth service apps;
// until then every Bearer credential is rejected.
pub(crate) fn is_authorized(headers: &HeaderMap, api_token: &Secret) -> bool {
    match credential(headers) {
        Some(Credential::Ssws(token)) => constant_time_eq(token, api_token.expose()),
        Some(Credential::Bearer(_)) | None => false,
    }
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

    #[test]
    fn ssws_token_accepted_when_equal() {
        let token = Secret::new("00abc");
        assert!(is_authorized(&headers_with("SSWS 00abc"), &token));
        assert!(is_authorized(&headers_with("ssws 00abc"), &token));
    }

    #[test]
    fn other_credentials_rejected() {
        let token = Secret::new("00abc");
        assert!(!is_authorized(&headers_with("SSWS 00abd"), &token));
        assert!(!is_authorized(&headers_with("SSWS 00ab"), &token));
        assert!(!is_authorized(&headers_with("Bearer 00abc"), &token));
        assert!(!is_authorized(&headers_with("Basic 00abc"), &token));
        assert!(!is_authorized(&headers_with("SSWS "), &token));
        assert!(!is_authorized(&HeaderMap::new(), &token));
    }

    #[test]
    fn bearer_scheme_parsed() {
        let headers = headers_with("Bearer eyJ");
        assert!(credential(&headers) == Some(Credential::Bearer("eyJ")));
    }
}

//! Checks for the URIs a client registers: redirect URIs and the JWKS URI.

use url::{Host, Url};

use super::error::ValidationError;

/// Schemes never accepted as a redirect target, even for native clients, because a browser
/// runs or reads them locally.
const FORBIDDEN_SCHEMES: [&str; 4] = ["javascript", "data", "file", "vbscript"];

/// Checks one redirect URI: absolute, without fragment (RFC 6749 section 3.1.2), `https`,
/// or `http` for a loopback host (`localhost`, 127.0.0.0/8, `[::1]`). Custom schemes such
/// as `com.example.app:/callback` are accepted only when `native` is true.
pub(crate) fn check_redirect_uri(
    uri: &str,
    field: &str,
    native: bool,
) -> Result<(), ValidationError> {
    let reject = |message: &str| ValidationError::invalid(field, uri, message);
    let parsed = parse_absolute(uri, "redirect URI").map_err(|message| reject(&message))?;
    if parsed.fragment().is_some() {
        return Err(reject("a redirect URI must not contain a fragment (`#`)"));
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&parsed) => Ok(()),
        "http" => Err(reject(
            "http is allowed only for loopback hosts (localhost, 127.0.0.0/8, [::1]); use https",
        )),
        scheme if FORBIDDEN_SCHEMES.contains(&scheme) => {
            Err(reject("this scheme cannot be a redirect URI"))
        }
        _ if native => Ok(()),
        _ => Err(reject(
            "custom URI schemes are allowed only for `native` clients; use https",
        )),
    }
}

/// Checks a JWKS URI: absolute `https` without fragment.
pub(crate) fn check_jwks_uri(uri: &str, field: &str) -> Result<(), ValidationError> {
    let reject = |message: &str| ValidationError::invalid(field, uri, message);
    let parsed = parse_absolute(uri, "JWKS URI").map_err(|message| reject(&message))?;
    if parsed.scheme() != "https" {
        return Err(reject("a JWKS URI must use https"));
    }
    if parsed.fragment().is_some() {
        return Err(reject("a JWKS URI must not contain a fragment (`#`)"));
    }
    Ok(())
}

fn parse_absolute(uri: &str, kind: &str) -> Result<Url, String> {
    match Url::parse(uri) {
        Ok(parsed) => Ok(parsed),
        Err(url::ParseError::RelativeUrlWithoutBase) => Err(format!("{kind} must be absolute")),
        Err(error) => Err(format!("not a valid {kind}: {error}")),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(address)) => address.is_loopback(),
        Some(Host::Ipv6(address)) => address.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(uri: &str) -> Result<(), ValidationError> {
        check_redirect_uri(uri, "redirect_uris[0]", false)
    }

    #[test]
    fn relative_uri_rejected() {
        let error = check("/cb").unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid `redirect_uris[0]` value `/cb`: redirect URI must be absolute"
        );
    }

    #[test]
    fn fragment_rejected() {
        let error = check("https://app.example.test/cb#x").unwrap_err();
        assert_eq!(
            error.value.as_deref(),
            Some("https://app.example.test/cb#x")
        );
        assert!(error.message.contains("fragment"));
    }

    #[test]
    fn empty_fragment_rejected() {
        assert!(check("https://app.example.test/cb#").is_err());
    }

    #[test]
    fn plain_http_rejected() {
        let error = check("http://app.example.test/cb").unwrap_err();
        assert_eq!(error.value.as_deref(), Some("http://app.example.test/cb"));
        assert!(error.message.contains("loopback"));
    }

    #[test]
    fn https_accepted() {
        assert!(check("https://app.example.test/cb?x=1").is_ok());
    }

    #[test]
    fn loopback_http_accepted() {
        for uri in [
            "http://localhost:8080/cb",
            "http://LOCALHOST/cb",
            "http://127.0.0.1:9000/cb",
            "http://127.10.0.3/cb",
            "http://[::1]:8080/cb",
        ] {
            assert!(check(uri).is_ok(), "{uri}");
        }
    }

    #[test]
    fn localhost_lookalike_rejected() {
        assert!(check("http://localhost.example.test/cb").is_err());
    }

    #[test]
    fn custom_scheme_rejected_for_web() {
        let error = check("com.example.app:/callback").unwrap_err();
        assert!(error.message.contains("native"));
    }

    #[test]
    fn custom_scheme_accepted_for_native() {
        let result = check_redirect_uri("com.example.app:/callback", "f", true);
        assert!(result.is_ok());
    }

    #[test]
    fn javascript_scheme_rejected_for_native() {
        let result = check_redirect_uri("javascript:alert(1)", "f", true);
        assert!(result.is_err());
    }

    #[test]
    fn jwks_uri_http_rejected() {
        let error = check_jwks_uri("http://keys.example.test/jwks", "jwks_uri").unwrap_err();
        assert!(error.message.contains("https"));
    }

    #[test]
    fn jwks_uri_relative_rejected() {
        assert!(check_jwks_uri("/jwks", "jwks_uri").is_err());
    }

    #[test]
    fn jwks_uri_https_accepted() {
        assert!(check_jwks_uri("https://keys.example.test/jwks", "jwks_uri").is_ok());
    }
}

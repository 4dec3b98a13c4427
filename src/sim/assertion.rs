//! Verification of a service app's client assertion: an RS256 JWT (RFC 7523) whose signature,
//! issuer, subject, audience and lifetime the simulator checks as Okta does.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use rsa::RsaPublicKey;
use serde_json::Value;
use sha2::Sha256;

/// Maximum assertion lifetime (`exp - iat`) accepted, in seconds, because Okta rejects
/// assertions valid for more than one hour.
pub(crate) const MAX_ASSERTION_LIFETIME_SECS: u64 = 3600;

/// Reason for rejecting an assertion. The text becomes the `error_description`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum AssertionError {
    #[error("the client_assertion is not a JWT with three base64url parts")]
    Malformed,
    #[error("the client_assertion must be signed with RS256, not {0}")]
    Algorithm(String),
    #[error("the client_assertion signature does not match the service app's public key")]
    Signature,
    #[error("the client_assertion claim {0} is missing or has the wrong type")]
    MissingClaim(&'static str),
    #[error("the client_assertion claim {claim} must be the client id {expected}")]
    WrongClient {
        claim: &'static str,
        expected: String,
    },
    #[error("the client_assertion audience must be {expected}")]
    WrongAudience { expected: String },
    #[error("the client_assertion has expired")]
    Expired,
    #[error("the client_assertion is valid for more than one hour (exp - iat > 3600)")]
    LifetimeTooLong,
    #[error("the client_assertion jti has already been used")]
    ReusedJti,
}

/// The claims of a verified assertion that the token endpoint still needs.
#[derive(Debug)]
pub(crate) struct VerifiedAssertion {
    /// `jti`, to reject reuse.
    pub(crate) jti: String,
    /// `exp`, in epoch seconds, until which the `jti` must be remembered.
    pub(crate) expires_at: u64,
}

/// Parses a PEM RSA public key, SPKI (`BEGIN PUBLIC KEY`) or PKCS#1 (`BEGIN RSA PUBLIC KEY`).
pub(crate) fn parse_public_key(pem: &str) -> Result<RsaPublicKey, String> {
    let pem = pem.trim();
    if pem.starts_with("-----BEGIN RSA PUBLIC KEY-----") {
        RsaPublicKey::from_pkcs1_pem(pem).map_err(|error| error.to_string())
    } else {
        RsaPublicKey::from_public_key_pem(pem).map_err(|error| error.to_string())
    }
}

/// Verifies the signature of `assertion` with `key`, then its claims: `iss` and `sub` equal
/// `client_id`, `aud` is (or contains) `audience`, `exp` is after `now_secs` and at most one
/// hour after `iat`, and `jti` is present. Reuse of the `jti` is checked by the caller.
pub(crate) fn verify(
    assertion: &str,
    key: &RsaPublicKey,
    client_id: &str,
    audience: &str,
    now_secs: u64,
) -> Result<VerifiedAssertion, AssertionError> {
    let claims = verify_signature(assertion, key)?;
    for claim in ["iss", "sub"] {
        if string_claim(&claims, claim)? != client_id {
            return Err(AssertionError::WrongClient {
                claim,
                expected: client_id.to_owned(),
            });
        }
    }
    if !audience_matches(&claims, audience) {
        return Err(AssertionError::WrongAudience {
            expected: audience.to_owned(),
        });
    }
    let issued_at = number_claim(&claims, "iat")?;
    let expires_at = number_claim(&claims, "exp")?;
    if expires_at <= now_secs {
        return Err(AssertionError::Expired);
    }
    if expires_at.saturating_sub(issued_at) > MAX_ASSERTION_LIFETIME_SECS {
        return Err(AssertionError::LifetimeTooLong);
    }
    let jti = string_claim(&claims, "jti")?;
    if jti.is_empty() {
        return Err(AssertionError::MissingClaim("jti"));
    }
    Ok(VerifiedAssertion {
        jti: jti.to_owned(),
        expires_at,
    })
}

/// Checks the header's `alg` and the signature, and returns the decoded claims.
fn verify_signature(assertion: &str, key: &RsaPublicKey) -> Result<Value, AssertionError> {
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err(AssertionError::Malformed);
    };
    let header = decode_json(header)?;
    let algorithm = header.get("alg").and_then(Value::as_str).unwrap_or("none");
    if algorithm != "RS256" {
        return Err(AssertionError::Algorithm(algorithm.to_owned()));
    }
    let signature_bytes = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| AssertionError::Malformed)?;
    let signature =
        Signature::try_from(signature_bytes.as_slice()).map_err(|_| AssertionError::Signature)?;
    let signing_input = &assertion[..assertion.rfind('.').unwrap_or(0)];
    VerifyingKey::<Sha256>::new(key.clone())
        .verify(signing_input.as_bytes(), &signature)
        .map_err(|_| AssertionError::Signature)?;
    decode_json(claims)
}

fn decode_json(part: &str) -> Result<Value, AssertionError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AssertionError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(AssertionError::Malformed),
    }
}

fn string_claim<'a>(claims: &'a Value, name: &'static str) -> Result<&'a str, AssertionError> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .ok_or(AssertionError::MissingClaim(name))
}

fn number_claim(claims: &Value, name: &'static str) -> Result<u64, AssertionError> {
    claims
        .get(name)
        .and_then(Value::as_u64)
        .ok_or(AssertionError::MissingClaim(name))
}

/// RFC 7519 allows `aud` to be one string or an array of strings.
fn audience_matches(claims: &Value, audience: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(value)) => value == audience,
        Some(Value::Array(values)) => values.iter().any(|value| value == audience),
        _ => false,
    }
}

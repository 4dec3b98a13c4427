//! Stable result codes carried in `status.code` of every result message. Consumers match on
//! these strings, so a code is never renamed once published.

/// The request body decoded, but a field is missing or invalid; not retryable.
pub const INVALID_REQUEST: &str = "invalid_request";
/// The body is not JSON; not retryable.
pub const INVALID_JSON: &str = "invalid_json";
/// The body is not UTF-8; not retryable.
pub const INVALID_UTF8: &str = "invalid_utf8";
/// The body is larger than the configured maximum; not retryable.
pub const BODY_TOO_LARGE: &str = "body_too_large";
/// The AMQP `content_type` property names a type other than JSON; not retryable.
pub const UNSUPPORTED_CONTENT_TYPE: &str = "unsupported_content_type";
/// The operation or credential action is valid but this worker does not carry it out.
pub const UNSUPPORTED_OPERATION: &str = "unsupported_operation";
/// Okta rejected the client metadata or the request (HTTP 400, 403 or 409).
pub const OKTA_REJECTED: &str = "okta_rejected";
/// Okta returned HTTP 404 for a client the request names by `idpClientId`.
pub const OKTA_NOT_FOUND: &str = "okta_not_found";
/// Okta was unreachable, timed out or returned HTTP 5xx; retryable.
pub const OKTA_UNAVAILABLE: &str = "okta_unavailable";
/// Okta returned HTTP 429 after the worker's retries; retryable.
pub const OKTA_RATE_LIMITED: &str = "okta_rate_limited";
/// Okta rejected the worker's own API credential (HTTP 401); retryable once the operator
/// fixes the credential.
pub const OKTA_CREDENTIAL_REJECTED: &str = "okta_credential_rejected";
/// Okta returned a body the worker cannot read, such as a created client without
/// `client_id`.
pub const OKTA_INVALID_RESPONSE: &str = "okta_invalid_response";
/// No Okta client has the `idpClientId` or the deterministic client name of the request.
pub const CLIENT_NOT_FOUND: &str = "client_not_found";
/// More than one Okta client has the deterministic client name, so the worker cannot tell
/// which one belongs to the credential.
pub const AMBIGUOUS_CLIENT: &str = "ambiguous_client";
/// The client secret could not be encrypted with the key in `encryption`.
pub const ENCRYPTION_FAILED: &str = "encryption_failed";
/// The broker could not route the result because no queue is bound to the results exchange;
/// the request is dead-lettered and can be replayed once a queue is bound.
pub const RESULT_UNROUTABLE: &str = "result_unroutable";
/// An unexpected failure inside the worker.
pub const INTERNAL_ERROR: &str = "internal_error";

/// Reports whether a request that ended with `code` may succeed when it is sent again
/// unchanged. A code not defined here, or the code of a rejected or unreadable request, is
/// not retryable. `OKTA_CREDENTIAL_REJECTED` is, once the operator has fixed the credential.
pub fn is_retryable(code: &str) -> bool {
    matches!(
        code,
        OKTA_UNAVAILABLE | OKTA_RATE_LIMITED | OKTA_CREDENTIAL_REJECTED | RESULT_UNROUTABLE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes_retryable() {
        for code in [
            OKTA_UNAVAILABLE,
            OKTA_RATE_LIMITED,
            OKTA_CREDENTIAL_REJECTED,
            RESULT_UNROUTABLE,
        ] {
            assert!(is_retryable(code), "{code}");
        }
    }

    #[test]
    fn permanent_codes_not_retryable() {
        for code in [
            INVALID_REQUEST,
            INVALID_JSON,
            INVALID_UTF8,
            BODY_TOO_LARGE,
            UNSUPPORTED_CONTENT_TYPE,
            UNSUPPORTED_OPERATION,
            OKTA_REJECTED,
            OKTA_NOT_FOUND,
            OKTA_INVALID_RESPONSE,
            CLIENT_NOT_FOUND,
            AMBIGUOUS_CLIENT,
            ENCRYPTION_FAILED,
            INTERNAL_ERROR,
            "no_such_code",
        ] {
            assert!(!is_retryable(code), "{code}");
        }
    }
}

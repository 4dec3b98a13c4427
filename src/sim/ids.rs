//! Random identifiers and secrets in the formats Okta uses.

use rand::distributions::{Alphanumeric, Distribution, Uniform};
use rand::Rng;

use crate::secret::Secret;

/// Characters of a generated client secret: base64url, like Okta's secrets.
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Length of a generated client secret, in characters.
const SECRET_LENGTH: usize = 64;

/// Returns an app (client) id: `0oa` and 17 alphanumerics, 20 characters like Okta's.
pub(crate) fn new_client_id() -> String {
    format!("0oa{}", random_alphanumeric(17))
}

/// Returns a new client secret of [`SECRET_LENGTH`] base64url characters.
pub(crate) fn new_client_secret() -> Secret {
    let mut rng = rand::thread_rng();
    let index = Uniform::from(0..SECRET_ALPHABET.len());
    let value: String = (0..SECRET_LENGTH)
        .map(|_| char::from(SECRET_ALPHABET[index.sample(&mut rng)]))
        .collect();
    Secret::new(value)
}

/// Returns an API token shaped like an Okta SSWS token: `00` and 40 alphanumerics.
pub(crate) fn new_api_token() -> Secret {
    Secret::new(format!("00{}", random_alphanumeric(40)))
}

/// Returns an opaque access token: 64 base64url characters, like a client secret.
pub(crate) fn new_access_token() -> String {
    new_client_secret().expose().to_owned()
}

/// Returns a value for the `X-Okta-Request-Id` header.
pub(crate) fn new_request_id() -> String {
    random_alphanumeric(27)
}

/// Returns an `errorId` for an Okta error body: `oae` and 22 alphanumerics.
pub(crate) fn new_error_id() -> String {
    format!("oae{}", random_alphanumeric(22))
}

fn random_alphanumeric(length: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(length)
        .map(char::from)
        .collect()
}

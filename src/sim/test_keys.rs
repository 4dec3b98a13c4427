//! RSA key pairs generated once per test run for service-app tests, and a JWT signer that
//! builds assertions with any claims, valid or not.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer};
use rsa::RsaPrivateKey;
use serde_json::{json, Value};
use sha2::Sha256;

use super::SimServiceApp;
use crate::secret::Secret;

/// A generated key with its PEM forms.
pub(crate) struct TestKey {
    pub(crate) private_key: RsaPrivateKey,
    /// PKCS#8 `BEGIN PRIVATE KEY`.
    pub(crate) private_pem: Secret,
    /// SPKI `BEGIN PUBLIC KEY`.
    pub(crate) public_pem: String,
}

/// Returns the key the test service app is registered with.
pub(crate) fn app_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(generate)
}

/// Returns a second key that the service app does not know.
pub(crate) fn other_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(generate)
}

/// Returns a service app registered with [`app_key`].
pub(crate) fn service_app(client_id: &str, token_lifetime_secs: u64) -> SimServiceApp {
    SimServiceApp {
        client_id: client_id.to_owned(),
        public_key_pem: app_key().public_pem.clone(),
        token_lifetime: std::time::Duration::from_secs(token_lifetime_secs),
    }
}

/// Signs `claims` as an RS256 JWT with `key`.
pub(crate) fn sign_jwt(key: &RsaPrivateKey, claims: &Value) -> String {
    let header = json!({ "alg": "RS256", "typ": "JWT" });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = SigningKey::<Sha256>::new(key.clone()).sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

fn generate() -> TestKey {
    let private_key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let private_pem = private_key.to_pkcs8_pem(LineEnding::LF).unwrap();
    let public_pem = private_key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    TestKey {
        private_key,
        private_pem: Secret::new(private_pem.as_str()),
        public_pem,
    }
}

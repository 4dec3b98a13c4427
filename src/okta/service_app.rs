//! The OAuth 2.0 service-app credential: an Okta app that authenticates with its own RSA
//! private key (`private_key_jwt`, RFC 7523) and receives access tokens for the Okta
//! management scopes.
//!
//! The key is loaded and checked once, when the credential is built, so that a missing file or
//! a wrong key stops the worker at start. Errors name `OKTA_PRIVATE_KEY`, the setting the key
//! comes from, and never contain the key.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::json;
use sha2::Sha256;

use super::error::OktaError;
use crate::contract::{rsa_thumbprint, MIN_RSA_BITS};
use crate::secret::Secret;

/// Lifetime of a client assertion (`exp - iat`). Okta accepts at most one hour; five minutes
/// leaves room for clock skew while keeping a captured assertion useless soon after.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// How long before an access token's `expires_in` ends it is renewed, by default. The margin
/// actually used is at most a tenth of the token's lifetime, so short-lived tokens are still
/// reused.
pub const DEFAULT_RENEWAL_MARGIN: Duration = Duration::from_secs(60);

/// Name of the setting that carries the key, used in error messages.
const KEY_SETTING: &str = "OKTA_PRIVATE_KEY";

/// An Okta service app that signs client assertions with its RSA private key. `Debug` shows
/// the client id and key id but never the key. Clones share the key.
#[derive(Clone)]
pub struct ServiceApp {
    client_id: String,
    key_id: String,
    signing_key: Arc<SigningKey<Sha256>>,
    renewal_margin: Duration,
}

impl ServiceApp {
    /// Loads and checks the private key. `private_key` is either a PEM RSA private key (PKCS#8
    /// `BEGIN PRIVATE KEY` or PKCS#1 `BEGIN RSA PRIVATE KEY`) or the path of a file that
    /// contains one. `key_id` is the `kid` of the key registered on the service app; without
    /// it, the key's RFC 7638 thumbprint is sent as `kid`.
    ///
    /// # Errors
    ///
    /// [`OktaError::Config`] when the client id is empty, the file cannot be read, or the value
    /// is not an unencrypted RSA private key of at least 2048 bits.
    pub fn new(
        client_id: impl Into<String>,
        private_key: &Secret,
        key_id: Option<String>,
    ) -> Result<Self, OktaError> {
        let client_id = client_id.into();
        if client_id.trim().is_empty() {
            return Err(config_error(
                "the service app client id (OKTA_CLIENT_ID) is empty",
            ));
        }
        let key = load_private_key(private_key)?;
        // Okta looks up the verification key by `kid`. The thumbprint matches only when the key
        // was registered with its thumbprint as `kid`; otherwise OKTA_PRIVATE_KEY_ID carries
        // the registered `kid`.
        let key_id = match key_id.filter(|id| !id.trim().is_empty()) {
            Some(id) => id,
            None => thumbprint(&key),
        };
        Ok(Self {
            client_id,
            key_id,
            signing_key: Arc::new(SigningKey::new(key)),
            renewal_margin: DEFAULT_RENEWAL_MARGIN,
        })
    }

    /// Sets how long before expiry an access token is renewed (default
    /// [`DEFAULT_RENEWAL_MARGIN`]). The margin used is at most a tenth of each token's lifetime.
    pub fn with_renewal_margin(mut self, margin: Duration) -> Self {
        self.renewal_margin = margin;
        self
    }

    /// Returns the service app's client id, sent as `iss` and `sub` of every assertion.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Returns the `kid` sent in the assertion header.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Returns the renewal margin for a token valid for `lifetime`.
    pub(crate) fn renewal_margin(&self, lifetime: Duration) -> Duration {
        self.renewal_margin.min(lifetime / 10)
    }

    /// Builds a signed client assertion (RS256 JWT) for the token endpoint `audience`, valid
    /// for [`ASSERTION_LIFETIME`] from now, with a fresh `jti`.
    pub(crate) fn client_assertion(&self, audience: &str) -> Result<Secret, OktaError> {
        let issued_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let header = json!({ "alg": "RS256", "typ": "JWT", "kid": self.key_id });
        let claims = json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "iat": issued_at,
            "exp": issued_at + ASSERTION_LIFETIME.as_secs(),
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        // The randomized signer blinds the RSA private-key operation against timing attacks;
        // PKCS#1 v1.5 signatures themselves are deterministic.
        let signature = self
            .signing_key
            .try_sign_with_rng(&mut rand::thread_rng(), signing_input.as_bytes())
            .map_err(|error| config_error(&format!("cannot sign the client assertion: {error}")))?;
        let encoded = URL_SAFE_NO_PAD.encode(signature.to_bytes());
        Ok(Secret::new(format!("{signing_input}.{encoded}")))
    }
}

impl fmt::Debug for ServiceApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceApp")
            .field("client_id", &self.client_id)
            .field("key_id", &self.key_id)
            .field("private_key", &"[redacted]")
            .field("renewal_margin", &self.renewal_margin)
            .finish()
    }
}

/// Reads the key from the value or from the file it names, parses and checks it.
fn load_private_key(value: &Secret) -> Result<RsaPrivateKey, OktaError> {
    let pem = key_pem(value)?;
    let key = parse_private_pem(&pem)?;
    key.validate().map_err(|_| {
        config_error(&format!(
            "{KEY_SETTING} is not a consistent RSA private key"
        ))
    })?;
    let bits = key.n().bits();
    if bits < MIN_RSA_BITS {
        // RFC 7518 section 3.3 requires keys of 2048 bits or more for RS256.
        return Err(config_error(&format!(
            "{KEY_SETTING} is a {bits}-bit RSA key; RS256 needs at least {MIN_RSA_BITS} bits"
        )));
    }
    Ok(key)
}

/// Returns the PEM text: the value itself when it starts with `-----BEGIN`, else the content
/// of the file it names. A value passed through an environment file often has its line breaks
/// written as `\n`, so those are turned back into line breaks.
fn key_pem(value: &Secret) -> Result<Secret, OktaError> {
    let text = value.expose().trim();
    let pem = if text.starts_with("-----BEGIN") {
        text.to_owned()
    } else {
        // The value is not echoed: a key pasted without its PEM header would otherwise leak.
        std::fs::read_to_string(text).map_err(|error| {
            config_error(&format!(
                "{KEY_SETTING} is neither a PEM private key nor the path of a readable file \
                 ({error})"
            ))
        })?
    };
    let pem = if pem.contains('\n') {
        pem
    } else {
        pem.replace("\\n", "\n")
    };
    Ok(Secret::new(pem))
}

/// Parses a PKCS#8 or PKCS#1 PEM RSA private key. The parser errors name the structure that
/// failed, never the key bytes.
fn parse_private_pem(pem: &Secret) -> Result<RsaPrivateKey, OktaError> {
    let text = pem.expose();
    let start = text.find("-----BEGIN").unwrap_or(0);
    let block = text[start..].trim();
    let parsed = if block.starts_with("-----BEGIN PRIVATE KEY-----") {
        RsaPrivateKey::from_pkcs8_pem(block).map_err(|error| error.to_string())
    } else if block.starts_with("-----BEGIN RSA PRIVATE KEY-----") {
        RsaPrivateKey::from_pkcs1_pem(block).map_err(|error| error.to_string())
    } else {
        return Err(config_error(&unsupported_block_message(block)));
    };
    parsed.map_err(|reason| {
        config_error(&format!(
            "{KEY_SETTING} is not a valid RSA private key: {reason}"
        ))
    })
}

fn unsupported_block_message(block: &str) -> String {
    let expected = "use an unencrypted `BEGIN PRIVATE KEY` (PKCS#8) or `BEGIN RSA PRIVATE KEY` \
                    (PKCS#1) block";
    if block.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        format!("{KEY_SETTING} is an encrypted private key; {expected}")
    } else if block.contains("PUBLIC KEY-----") || block.contains("CERTIFICATE-----") {
        format!(
            "{KEY_SETTING} contains a public key or certificate, not the private key; {expected}"
        )
    } else {
        format!("{KEY_SETTING} does not contain an RSA private key; {expected}")
    }
}

/// Returns the RFC 7638 thumbprint of the key's public half.
fn thumbprint(key: &RsaPrivateKey) -> String {
    let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
    let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
    rsa_thumbprint(&n, &e)
}

fn config_error(message: &str) -> OktaError {
    OktaError::Config(message.to_owned())
}

#[cfg(test)]
mod tests {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};

    use super::*;
    use crate::sim::test_keys::app_key;

    fn load_error(value: &str) -> String {
        match ServiceApp::new("0oa1", &Secret::new(value), None) {
            Ok(_) => panic!("key accepted"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn pkcs8_pem_accepted() {
        assert!(ServiceApp::new("0oa1", &app_key().private_pem, None).is_ok());
    }

    #[test]
    fn pkcs1_pem_accepted() {
        let pem = app_key().private_key.to_pkcs1_pem(LineEnding::LF).unwrap();
        assert!(ServiceApp::new("0oa1", &Secret::new(pem.as_str()), None).is_ok());
    }

    #[test]
    fn escaped_newlines_accepted() {
        let escaped = app_key().private_pem.expose().replace('\n', "\\n");
        assert!(ServiceApp::new("0oa1", &Secret::new(escaped), None).is_ok());
    }

    #[test]
    fn key_file_path_accepted() {
        let path = std::env::temp_dir().join(format!("okta-key-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&path, app_key().private_pem.expose()).unwrap();
        let loaded = ServiceApp::new("0oa1", &Secret::new(path.to_str().unwrap()), None);
        std::fs::remove_file(&path).unwrap();
        assert!(loaded.is_ok());
    }

    #[test]
    fn missing_file_named_without_value() {
        let message = load_error("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC");
        assert!(message.contains("OKTA_PRIVATE_KEY"), "{message}");
        assert!(!message.contains("MIIEvQ"), "{message}");
    }

    #[test]
    fn public_key_rejected() {
        let message = load_error(&app_key().public_pem);
        assert!(message.contains("public key"), "{message}");
    }

    #[test]
    fn encrypted_key_rejected() {
        let pem = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkq\n-----END ENCRYPTED PRIVATE KEY-----";
        let message = load_error(pem);
        assert!(message.contains("encrypted"), "{message}");
    }

    #[test]
    fn corrupt_key_rejected_without_content() {
        let pem = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END PRIVATE KEY-----";
        let message = load_error(pem);
        assert!(message.contains("OKTA_PRIVATE_KEY"), "{message}");
        assert!(!message.contains("c2VjcmV0"), "{message}");
    }

    #[test]
    fn short_key_rejected() {
        let key = RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let message = load_error(pem.as_str());
        assert!(message.contains("1024-bit"), "{message}");
    }

    #[test]
    fn empty_client_id_rejected() {
        let result = ServiceApp::new(" ", &app_key().private_pem, None);
        assert!(result.is_err());
    }

    #[test]
    fn renewal_margin_capped_by_lifetime() {
        let app = ServiceApp::new("0oa1", &app_key().private_pem, None).unwrap();
        let margin = app.renewal_margin(Duration::from_secs(3));
        assert_eq!(margin, Duration::from_millis(300));
        assert_eq!(
            app.renewal_margin(Duration::from_secs(3600)),
            DEFAULT_RENEWAL_MARGIN
        );
    }
}

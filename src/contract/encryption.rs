//! The `encryption` member of a request: the consumer's RSA public key and the padding with
//! which the result's client secret is encrypted. Only the shape is checked here; the
//! encryption itself happens where the result is built.

use rsa::RsaPublicKey;
use serde_json::{Map, Value};

use super::error::ValidationError;
use super::fields::Fields;
use super::jwks::parse_rsa_public_pem;

/// RSA encryption padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncryptionAlgorithm {
    /// `RSA-OAEP` (RFC 8017 section 7.1); the default.
    #[default]
    RsaOaep,
    /// `PKCS`: RSAES-PKCS1-v1_5 (RFC 8017 section 7.2); `hash` is not used.
    Pkcs1v15,
}

impl EncryptionAlgorithm {
    /// Returns the name Engage sends.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RsaOaep => "RSA-OAEP",
            Self::Pkcs1v15 => "PKCS",
        }
    }
}

/// Hash function for OAEP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncryptionHash {
    /// `SHA256`; the default.
    #[default]
    Sha256,
    /// `SHA1`.
    Sha1,
}

impl EncryptionHash {
    /// Returns the name Engage sends.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "SHA256",
            Self::Sha1 => "SHA1",
        }
    }
}

/// How to encrypt the client secret in the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionSpec {
    /// The consumer's RSA public key, parsed from the PEM in `encryption.key`.
    pub public_key: RsaPublicKey,
    /// Padding; `RSA-OAEP` unless `encryption.algorithm` is `PKCS`.
    pub algorithm: EncryptionAlgorithm,
    /// OAEP hash; `SHA256` unless `encryption.hash` is `SHA1`.
    pub hash: EncryptionHash,
}

impl EncryptionSpec {
    /// Parses the `encryption` object at JSON path `prefix`. Names are matched without regard
    /// to case, and `SHA-256` and `SHA-1` are accepted as spellings of the hashes.
    pub fn parse(map: &Map<String, Value>, prefix: &str) -> Result<Self, ValidationError> {
        let fields = Fields::new(map, prefix);
        let key = fields.required_string("key")?;
        let public_key = parse_rsa_public_pem(key, &fields.path("key"))?;
        let algorithm = match fields.optional_string("algorithm")? {
            None => EncryptionAlgorithm::default(),
            Some(name) => parse_algorithm(name, &fields.path("algorithm"))?,
        };
        let hash = match fields.optional_string("hash")? {
            None => EncryptionHash::default(),
            Some(name) => parse_hash(name, &fields.path("hash"))?,
        };
        Ok(Self {
            public_key,
            algorithm,
            hash,
        })
    }
}

fn parse_algorithm(name: &str, field: &str) -> Result<EncryptionAlgorithm, ValidationError> {
    match name.to_ascii_uppercase().as_str() {
        "RSA-OAEP" => Ok(EncryptionAlgorithm::RsaOaep),
        "PKCS" => Ok(EncryptionAlgorithm::Pkcs1v15),
        _ => Err(ValidationError::invalid(
            field,
            name,
            "unknown encryption algorithm; use `RSA-OAEP` or `PKCS`",
        )),
    }
}

fn parse_hash(name: &str, field: &str) -> Result<EncryptionHash, ValidationError> {
    match name.to_ascii_uppercase().as_str() {
        "SHA256" | "SHA-256" => Ok(EncryptionHash::Sha256),
        "SHA1" | "SHA-1" => Ok(EncryptionHash::Sha1),
        _ => Err(ValidationError::invalid(
            field,
            name,
            "unknown hash; use `SHA256` or `SHA1`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::jwks::tests::RFC7638_SPKI_PEM;
    use super::*;

    fn parse(value: Value) -> Result<EncryptionSpec, ValidationError> {
        match value {
            Value::Object(map) => EncryptionSpec::parse(&map, "encryption"),
            _ => Err(ValidationError::missing("encryption", "")),
        }
    }

    #[test]
    fn defaults_applied() {
        let spec = parse(json!({ "key": RFC7638_SPKI_PEM })).unwrap();
        assert_eq!(spec.algorithm, EncryptionAlgorithm::RsaOaep);
        assert_eq!(spec.hash, EncryptionHash::Sha256);
    }

    #[test]
    fn pkcs_and_sha1_accepted() {
        let spec =
            parse(json!({ "key": RFC7638_SPKI_PEM, "algorithm": "PKCS", "hash": "sha1" })).unwrap();
        assert_eq!(spec.algorithm, EncryptionAlgorithm::Pkcs1v15);
        assert_eq!(spec.hash, EncryptionHash::Sha1);
    }

    #[test]
    fn missing_key_rejected() {
        let error = parse(json!({ "algorithm": "RSA-OAEP" })).unwrap_err();
        assert_eq!(error.to_string(), "missing `encryption.key`");
    }

    #[test]
    fn unknown_algorithm_rejected() {
        let error = parse(json!({ "key": RFC7638_SPKI_PEM, "algorithm": "AES" })).unwrap_err();
        assert_eq!(error.field, "encryption.algorithm");
        assert_eq!(error.value.as_deref(), Some("AES"));
    }

    #[test]
    fn unknown_hash_rejected() {
        let error = parse(json!({ "key": RFC7638_SPKI_PEM, "hash": "MD5" })).unwrap_err();
        assert_eq!(error.field, "encryption.hash");
    }

    #[test]
    fn invalid_key_rejected() {
        let error = parse(json!({ "key": "hello" })).unwrap_err();
        assert_eq!(error.field, "encryption.key");
    }
}

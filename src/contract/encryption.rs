//! The `encryption` member of a request, and the encryption of the result's client secret
//! with it. The request carries the consumer's RSA public key and the padding. Engage
//! decrypts the secret with the matching private key, so the output formats here are fixed.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::rngs::OsRng;
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, Pkcs1v15Encrypt, RsaPublicKey};
use serde_json::{Map, Value};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::codes;
use super::error::ValidationError;
use super::fields::Fields;
use super::jwks::parse_rsa_public_pem;
use crate::secret::Secret;

/// `enc` of the JWE form: AES-256-GCM (RFC 7518 section 5.3).
const JWE_ENC: &str = "A256GCM";
/// Length in bytes of the GCM authentication tag that `aes-gcm` appends to the ciphertext.
const GCM_TAG_BYTES: usize = 16;
/// Bytes that RSAES-PKCS1-v1_5 padding adds to a message (RFC 8017 section 7.2.1).
const PKCS1V15_OVERHEAD_BYTES: usize = 11;

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

/// Encrypts a client secret with the consumer's key and padding from `spec`.
///
/// A secret that fits in one RSA block is encrypted directly and returned as standard base64
/// with padding. A longer secret is returned as a JWE in compact serialization (RFC 7516):
/// AES-256-GCM encrypts the secret under a random 256-bit key, and RSA with the padding of
/// `spec` encrypts that key. One block holds k − 2·hLen − 2 bytes with OAEP and k − 11 bytes
/// with PKCS#1 v1.5, where k is the modulus length and hLen the hash length in bytes.
pub fn encrypt_secret(secret: &Secret, spec: &EncryptionSpec) -> Result<String, EncryptionError> {
    let plaintext = secret.expose().as_bytes();
    if plaintext.len() <= max_rsa_message_bytes(spec) {
        let ciphertext = rsa_encrypt(spec, plaintext)?;
        Ok(STANDARD.encode(ciphertext))
    } else {
        encrypt_jwe(spec, plaintext)
    }
}

/// Failure to encrypt a client secret. The result then carries [`codes::ENCRYPTION_FAILED`]
/// and no secret. Messages name the padding but never the secret or the key.
#[derive(Debug, thiserror::Error)]
pub enum EncryptionError {
    /// RSA encryption of the secret or of the JWE content encryption key failed, typically
    /// because the key is too short for the padding.
    #[error("{scheme} encryption with the key in `encryption.key` failed: {source}")]
    Rsa {
        /// Padding as Engage names it, such as `RSA-OAEP with SHA256`.
        scheme: &'static str,
        /// Error from the `rsa` crate. In `rsa` 0.9 it is a kind without key or message bytes.
        #[source]
        source: rsa::Error,
    },
    /// AES-256-GCM encryption of the secret failed.
    #[error("AES-256-GCM encryption of the client secret failed")]
    Aes,
}

impl EncryptionError {
    /// Returns the code for `status.code` of the result: always `encryption_failed`.
    pub fn code(&self) -> &'static str {
        codes::ENCRYPTION_FAILED
    }
}

/// Returns the maximum message length in bytes that one RSA block holds with the padding of
/// `spec` (RFC 8017 sections 7.1.1 and 7.2.1), or 0 when the key is too short for the padding.
fn max_rsa_message_bytes(spec: &EncryptionSpec) -> usize {
    let overhead = match spec.algorithm {
        EncryptionAlgorithm::RsaOaep => 2 * oaep_hash_bytes(spec.hash) + 2,
        EncryptionAlgorithm::Pkcs1v15 => PKCS1V15_OVERHEAD_BYTES,
    };
    spec.public_key.size().saturating_sub(overhead)
}

fn oaep_hash_bytes(hash: EncryptionHash) -> usize {
    match hash {
        EncryptionHash::Sha256 => <Sha256 as Digest>::output_size(),
        EncryptionHash::Sha1 => <Sha1 as Digest>::output_size(),
    }
}

/// Encrypts `message` in one RSA block. OAEP uses the same hash for MGF1 and no label.
fn rsa_encrypt(spec: &EncryptionSpec, message: &[u8]) -> Result<Vec<u8>, EncryptionError> {
    let key = &spec.public_key;
    let result = match (spec.algorithm, spec.hash) {
        (EncryptionAlgorithm::RsaOaep, EncryptionHash::Sha256) => {
            key.encrypt(&mut OsRng, Oaep::new::<Sha256>(), message)
        }
        (EncryptionAlgorithm::RsaOaep, EncryptionHash::Sha1) => {
            key.encrypt(&mut OsRng, Oaep::new::<Sha1>(), message)
        }
        (EncryptionAlgorithm::Pkcs1v15, _) => key.encrypt(&mut OsRng, Pkcs1v15Encrypt, message),
    };
    result.map_err(|source| EncryptionError::Rsa {
        scheme: scheme_name(spec),
        source,
    })
}

/// Builds `header.encrypted_key.iv.ciphertext.tag`, each part base64url without padding. The
/// ASCII of the encoded protected header is the additional authenticated data (RFC 7516
/// section 5.1).
fn encrypt_jwe(spec: &EncryptionSpec, plaintext: &[u8]) -> Result<String, EncryptionError> {
    let header = format!(r#"{{"alg":"{}","enc":"{JWE_ENC}"}}"#, jwe_alg(spec));
    let encoded_header = URL_SAFE_NO_PAD.encode(header);

    let content_key = Aes256Gcm::generate_key(&mut OsRng);
    let encrypted_key = rsa_encrypt(spec, &content_key)?;

    let iv = Aes256Gcm::generate_nonce(&mut OsRng);
    let payload = Payload {
        msg: plaintext,
        aad: encoded_header.as_bytes(),
    };
    let mut ciphertext = Aes256Gcm::new(&content_key)
        .encrypt(&iv, payload)
        .map_err(|_| EncryptionError::Aes)?;
    let tag_start = ciphertext
        .len()
        .checked_sub(GCM_TAG_BYTES)
        .ok_or(EncryptionError::Aes)?;
    let tag = ciphertext.split_off(tag_start);

    let parts = [
        encoded_header,
        URL_SAFE_NO_PAD.encode(encrypted_key),
        URL_SAFE_NO_PAD.encode(iv),
        URL_SAFE_NO_PAD.encode(ciphertext),
        URL_SAFE_NO_PAD.encode(tag),
    ];
    Ok(parts.join("."))
}

/// Returns the JWE `alg` (RFC 7518 section 4.1) for the padding of `spec`.
fn jwe_alg(spec: &EncryptionSpec) -> &'static str {
    match (spec.algorithm, spec.hash) {
        (EncryptionAlgorithm::RsaOaep, EncryptionHash::Sha256) => "RSA-OAEP-256",
        (EncryptionAlgorithm::RsaOaep, EncryptionHash::Sha1) => "RSA-OAEP",
        (EncryptionAlgorithm::Pkcs1v15, _) => "RSA1_5",
    }
}

fn scheme_name(spec: &EncryptionSpec) -> &'static str {
    match (spec.algorithm, spec.hash) {
        (EncryptionAlgorithm::RsaOaep, EncryptionHash::Sha256) => "RSA-OAEP with SHA256",
        (EncryptionAlgorithm::RsaOaep, EncryptionHash::Sha1) => "RSA-OAEP with SHA1",
        (EncryptionAlgorithm::Pkcs1v15, _) => "PKCS",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use aes_gcm::Nonce;
    use rsa::RsaPrivateKey;
    use serde_json::json;

    use super::super::jwks::tests::RFC7638_SPKI_PEM;
    use super::*;

    /// A 40-character secret, short enough for one block with every padding.
    const SHORT_SECRET: &str = "s3cr3t-0123456789abcdefghijklmnopqrstuvw";

    /// Returns a 2048-bit key, generated once per test run because generation takes seconds.
    fn private_key() -> &'static RsaPrivateKey {
        static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
        KEY.get_or_init(|| RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap())
    }

    fn spec(algorithm: EncryptionAlgorithm, hash: EncryptionHash) -> EncryptionSpec {
        EncryptionSpec {
            public_key: private_key().to_public_key(),
            algorithm,
            hash,
        }
    }

    fn oaep_sha256() -> EncryptionSpec {
        spec(EncryptionAlgorithm::RsaOaep, EncryptionHash::Sha256)
    }

    fn oaep_sha1() -> EncryptionSpec {
        spec(EncryptionAlgorithm::RsaOaep, EncryptionHash::Sha1)
    }

    fn pkcs1v15() -> EncryptionSpec {
        spec(EncryptionAlgorithm::Pkcs1v15, EncryptionHash::Sha256)
    }

    fn encrypt(text: &str, spec: &EncryptionSpec) -> String {
        encrypt_secret(&Secret::new(text), spec).unwrap()
    }

    /// Decrypts one RSA block with the padding that the JWE `alg` names.
    fn rsa_decrypt(alg: &str, ciphertext: &[u8]) -> Vec<u8> {
        let key = private_key();
        let result = match alg {
            "RSA-OAEP-256" => key.decrypt(Oaep::new::<Sha256>(), ciphertext),
            "RSA-OAEP" => key.decrypt(Oaep::new::<Sha1>(), ciphertext),
            "RSA1_5" => key.decrypt(Pkcs1v15Encrypt, ciphertext),
            other => panic!("unknown alg {other}"),
        };
        result.unwrap()
    }

    /// Decrypts the short form: standard base64 of one RSA block.
    fn decrypt_short(alg: &str, encoded: &str) -> String {
        let ciphertext = STANDARD.decode(encoded).unwrap();
        String::from_utf8(rsa_decrypt(alg, &ciphertext)).unwrap()
    }

    fn decode_part(part: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(part).unwrap()
    }

    fn jwe_parts(token: &str) -> Vec<&str> {
        token.split('.').collect()
    }

    fn jwe_header(token: &str) -> Value {
        serde_json::from_slice(&decode_part(jwe_parts(token)[0])).unwrap()
    }

    /// Decrypts a compact JWE the way a consumer does: the header's `alg` selects the RSA
    /// padding for the content key, and `aad` is the additional authenticated data.
    fn decrypt_jwe_with_aad(token: &str, aad: &[u8]) -> Result<String, aes_gcm::Error> {
        let parts = jwe_parts(token);
        let header = jwe_header(token);
        let content_key = rsa_decrypt(header["alg"].as_str().unwrap(), &decode_part(parts[1]));
        let iv = decode_part(parts[2]);
        let mut sealed = decode_part(parts[3]);
        sealed.extend(decode_part(parts[4]));
        let cipher = Aes256Gcm::new_from_slice(&content_key).unwrap();
        let payload = Payload { msg: &sealed, aad };
        let plaintext = cipher.decrypt(Nonce::from_slice(&iv), payload)?;
        Ok(String::from_utf8(plaintext).unwrap())
    }

    fn decrypt_jwe(token: &str) -> String {
        let aad = jwe_parts(token)[0].as_bytes();
        decrypt_jwe_with_aad(token, aad).unwrap()
    }

    #[test]
    fn short_oaep_sha256_round_trips() {
        let encoded = encrypt(SHORT_SECRET, &oaep_sha256());
        assert_eq!(decrypt_short("RSA-OAEP-256", &encoded), SHORT_SECRET);
    }

    #[test]
    fn short_oaep_sha1_round_trips() {
        let encoded = encrypt(SHORT_SECRET, &oaep_sha1());
        assert_eq!(decrypt_short("RSA-OAEP", &encoded), SHORT_SECRET);
    }

    #[test]
    fn short_pkcs1v15_round_trips() {
        let encoded = encrypt(SHORT_SECRET, &pkcs1v15());
        assert_eq!(decrypt_short("RSA1_5", &encoded), SHORT_SECRET);
    }

    #[test]
    fn short_form_is_padded_standard_base64() {
        let encoded = encrypt(SHORT_SECRET, &oaep_sha256());
        assert_eq!(STANDARD.decode(&encoded).unwrap().len(), 256);
        assert!(!encoded.contains('-'), "URL-safe `-` in {encoded}");
        assert!(!encoded.contains('_'), "URL-safe `_` in {encoded}");
        // 256 bytes leave one byte over a multiple of 3, so standard base64 ends in `==`.
        assert!(encoded.ends_with("=="), "no padding in {encoded}");
    }

    #[test]
    fn short_form_is_randomized() {
        for spec in [oaep_sha256(), oaep_sha1(), pkcs1v15()] {
            let first = encrypt(SHORT_SECRET, &spec);
            let second = encrypt(SHORT_SECRET, &spec);
            assert_ne!(first, second, "{}", scheme_name(&spec));
        }
    }

    #[test]
    fn long_oaep_sha256_as_jwe() {
        let secret = "a".repeat(300);
        let token = encrypt(&secret, &oaep_sha256());
        assert_eq!(jwe_parts(&token).len(), 5);
        assert_eq!(
            jwe_header(&token),
            json!({ "alg": "RSA-OAEP-256", "enc": "A256GCM" })
        );
        assert_eq!(decrypt_jwe(&token), secret);
    }

    #[test]
    fn long_oaep_sha1_as_jwe() {
        let secret = "b".repeat(300);
        let token = encrypt(&secret, &oaep_sha1());
        assert_eq!(jwe_parts(&token).len(), 5);
        assert_eq!(
            jwe_header(&token),
            json!({ "alg": "RSA-OAEP", "enc": "A256GCM" })
        );
        assert_eq!(decrypt_jwe(&token), secret);
    }

    #[test]
    fn long_pkcs1v15_as_jwe() {
        let secret = "c".repeat(300);
        let token = encrypt(&secret, &pkcs1v15());
        assert_eq!(jwe_parts(&token).len(), 5);
        assert_eq!(
            jwe_header(&token),
            json!({ "alg": "RSA1_5", "enc": "A256GCM" })
        );
        assert_eq!(decrypt_jwe(&token), secret);
    }

    #[test]
    fn jwe_parts_have_expected_lengths() {
        let secret = "d".repeat(300);
        let token = encrypt(&secret, &oaep_sha256());
        let parts = jwe_parts(&token);
        assert!(!token.contains('='), "padding in {token}");
        assert_eq!(decode_part(parts[1]).len(), 256, "encrypted key");
        assert_eq!(decode_part(parts[2]).len(), 12, "IV");
        assert_eq!(decode_part(parts[3]).len(), 300, "ciphertext");
        assert_eq!(decode_part(parts[4]).len(), 16, "tag");
    }

    #[test]
    fn jwe_header_is_authenticated() {
        let token = encrypt(&"e".repeat(300), &oaep_sha256());
        assert!(decrypt_jwe_with_aad(&token, b"").is_err());
    }

    #[test]
    fn jwe_is_randomized() {
        let secret = "f".repeat(300);
        let first = encrypt(&secret, &oaep_sha256());
        let second = encrypt(&secret, &oaep_sha256());
        assert_ne!(jwe_parts(&first)[2], jwe_parts(&second)[2], "IV");
        assert_ne!(jwe_parts(&first)[3], jwe_parts(&second)[3], "ciphertext");
    }

    #[test]
    fn block_limit_selects_form() {
        // One 2048-bit block: 256 − 2·32 − 2, 256 − 2·20 − 2 and 256 − 11 bytes.
        for (spec, limit) in [(oaep_sha256(), 190), (oaep_sha1(), 214), (pkcs1v15(), 245)] {
            let name = scheme_name(&spec);
            let fitting = encrypt(&"g".repeat(limit), &spec);
            assert!(!fitting.contains('.'), "{name}: {limit} bytes became a JWE");
            let longer = encrypt(&"g".repeat(limit + 1), &spec);
            assert_eq!(jwe_parts(&longer).len(), 5, "{name}: {} bytes", limit + 1);
        }
    }

    #[test]
    fn block_limit_counts_utf8_bytes() {
        // 64 `€` are 64 characters but 192 bytes, over the 190-byte OAEP SHA-256 limit.
        let secret = "€".repeat(64);
        let token = encrypt(&secret, &oaep_sha256());
        assert_eq!(jwe_parts(&token).len(), 5);
        assert_eq!(decrypt_jwe(&token), secret);
    }

    #[test]
    fn short_key_error_hides_secret() {
        // 512 bits leave no room for OAEP with SHA-256 (66 bytes of padding in 64).
        let small_key = RsaPrivateKey::new(&mut rand::thread_rng(), 512).unwrap();
        let spec = EncryptionSpec {
            public_key: small_key.to_public_key(),
            algorithm: EncryptionAlgorithm::RsaOaep,
            hash: EncryptionHash::Sha256,
        };
        let error = encrypt_secret(&Secret::new(SHORT_SECRET), &spec).unwrap_err();
        assert_eq!(error.code(), "encryption_failed");
        assert!(
            error.to_string().contains("RSA-OAEP with SHA256"),
            "{error}"
        );
        assert!(!error.to_string().contains(SHORT_SECRET), "{error}");
        assert!(!format!("{error:?}").contains(SHORT_SECRET), "{error:?}");
    }

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

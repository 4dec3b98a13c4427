//! Validation of the client's public keys for `private_key_jwt`: JWKS objects and PEM public
//! keys, RFC 7638 thumbprints and the checks Okta's DCR API does not make for us.
//!
//! No error from this module contains key material; errors name the member or key index.

use std::collections::HashSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::RsaPublicKey;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::error::ValidationError;

/// Minimum RSA modulus size in bits for client keys.
pub const MIN_RSA_BITS: usize = 2048;

/// JWK members that carry private or symmetric key material (RFC 7518 sections 6.2.2, 6.3.2
/// and 6.4.1).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// EC curves of JWA's ES256, ES384 and ES512 (RFC 7518 section 3.4), with the coordinate
/// length in bytes.
const EC_CURVES: [(&str, usize); 3] = [("P-256", 32), ("P-384", 48), ("P-521", 66)];

/// Validates `jwks` (a JWKS object or a PEM public key string) and returns a JWKS object
/// with every key's `kid` set. `field` is the JSON path used in errors.
pub(crate) fn normalize_jwks(value: &Value, field: &str) -> Result<Value, ValidationError> {
    match value {
        Value::String(pem) => pem_to_jwks(pem, field),
        Value::Object(jwks) => normalize_jwks_object(jwks, field),
        other => Err(ValidationError::wrong_type(
            field,
            "a JWKS object or a PEM public key",
            other,
        )),
    }
}

/// Parses a PEM RSA public key, either SPKI (`BEGIN PUBLIC KEY`) or PKCS#1
/// (`BEGIN RSA PUBLIC KEY`). A private key is rejected without parsing it.
pub(crate) fn parse_rsa_public_pem(
    pem: &str,
    field: &str,
) -> Result<RsaPublicKey, ValidationError> {
    let pem = pem.trim();
    if pem.contains("PRIVATE KEY-----") {
        return Err(ValidationError::invalid_field(
            field,
            "contains a private key; send only the public key \
             (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`)",
        ));
    }
    let parsed = if pem.starts_with("-----BEGIN PUBLIC KEY-----") {
        RsaPublicKey::from_public_key_pem(pem).map_err(|error| error.to_string())
    } else if pem.starts_with("-----BEGIN RSA PUBLIC KEY-----") {
        RsaPublicKey::from_pkcs1_pem(pem).map_err(|error| error.to_string())
    } else {
        Err("expected a PEM block `BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`".to_owned())
    };
    parsed.map_err(|reason| {
        ValidationError::invalid_field(field, format!("not a usable RSA public key: {reason}"))
    })
}

/// Converts an RSA public key into a signing JWK whose `kid` is its RFC 7638 thumbprint.
pub fn rsa_jwk(key: &RsaPublicKey) -> Value {
    let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
    let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
    let kid = rsa_thumbprint(&n, &e);
    json!({ "kty": "RSA", "use": "sig", "kid": kid, "n": n, "e": e })
}

/// Returns the RFC 7638 SHA-256 thumbprint of an RSA key from its base64url `n` and `e`,
/// base64url without padding.
pub fn rsa_thumbprint(n: &str, e: &str) -> String {
    // RFC 7638 section 3.2: required members only, in lexicographic order, no whitespace.
    // The values are base64url, so they need no JSON escaping.
    thumbprint_of(&format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#))
}

/// Returns the RFC 7638 SHA-256 thumbprint of an EC key, base64url without padding.
pub fn ec_thumbprint(crv: &str, x: &str, y: &str) -> String {
    thumbprint_of(&format!(
        r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#
    ))
}

fn thumbprint_of(canonical_json: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical_json.as_bytes()))
}

fn pem_to_jwks(pem: &str, field: &str) -> Result<Value, ValidationError> {
    let key = parse_rsa_public_pem(pem, field)?;
    let bits = key.n().bits();
    if bits < MIN_RSA_BITS {
        return Err(too_short(field, bits));
    }
    Ok(json!({ "keys": [rsa_jwk(&key)] }))
}

fn normalize_jwks_object(jwks: &Map<String, Value>, field: &str) -> Result<Value, ValidationError> {
    let keys_field = format!("{field}.keys");
    let keys = match jwks.get("keys") {
        None | Some(Value::Null) => return Err(ValidationError::missing(keys_field, "")),
        Some(Value::Array(keys)) if keys.is_empty() => {
            return Err(ValidationError::invalid_field(
                keys_field,
                "a JWKS needs at least one key",
            ))
        }
        Some(Value::Array(keys)) => keys,
        Some(other) => return Err(ValidationError::wrong_type(keys_field, "an array", other)),
    };
    let mut normalized = Vec::with_capacity(keys.len());
    let mut kids = HashSet::new();
    for (index, key) in keys.iter().enumerate() {
        let key_field = format!("{keys_field}[{index}]");
        let jwk = normalize_jwk(key, &key_field)?;
        let kid = jwk.get("kid").and_then(Value::as_str).unwrap_or_default();
        if !kids.insert(kid.to_owned()) {
            return Err(ValidationError::invalid(
                format!("{key_field}.kid"),
                kid,
                "duplicate `kid`; every key needs a unique `kid`",
            ));
        }
        normalized.push(Value::Object(jwk));
    }
    let mut out = jwks.clone();
    out.insert("keys".to_owned(), Value::Array(normalized));
    Ok(Value::Object(out))
}

/// Checks one JWK and returns it with `kid` set to its thumbprint when absent.
fn normalize_jwk(key: &Value, field: &str) -> Result<Map<String, Value>, ValidationError> {
    let Value::Object(jwk) = key else {
        return Err(ValidationError::wrong_type(field, "a JWK object", key));
    };
    reject_private_members(jwk, field)?;
    let members = JwkMembers { jwk, field };
    let thumbprint = match members.string("kty")? {
        "RSA" => check_rsa(&members)?,
        "EC" => check_ec(&members)?,
        other => {
            return Err(ValidationError::invalid(
                format!("{field}.kty"),
                other,
                "unsupported key type; use an `RSA` or `EC` key",
            ))
        }
    };
    let mut jwk = jwk.clone();
    match jwk.get("kid") {
        None | Some(Value::Null) => {
            jwk.insert("kid".to_owned(), Value::String(thumbprint));
        }
        Some(Value::String(kid)) if !kid.is_empty() => {}
        Some(other) => {
            return Err(ValidationError::wrong_type(
                format!("{field}.kid"),
                "a non-empty string",
                other,
            ))
        }
    }
    Ok(jwk)
}

fn reject_private_members(jwk: &Map<String, Value>, field: &str) -> Result<(), ValidationError> {
    match PRIVATE_MEMBERS
        .iter()
        .find(|member| jwk.contains_key(**member))
    {
        Some(member) => Err(ValidationError::invalid_field(
            format!("{field}.{member}"),
            format!("the JWK contains the private member `{member}`; send only the public key"),
        )),
        None => Ok(()),
    }
}

/// Checks an RSA JWK and returns its thumbprint.
fn check_rsa(members: &JwkMembers<'_>) -> Result<String, ValidationError> {
    let n = members.string("n")?;
    let e = members.string("e")?;
    let modulus = members.base64url("n", n)?;
    let exponent = members.base64url("e", e)?;
    if exponent.iter().all(|byte| *byte == 0) {
        return Err(ValidationError::invalid_field(
            members.path("e"),
            "the RSA exponent is zero",
        ));
    }
    let bits = bit_length(&modulus);
    if bits < MIN_RSA_BITS {
        return Err(too_short(&members.path("n"), bits));
    }
    Ok(rsa_thumbprint(n, e))
}

/// Checks an EC JWK and returns its thumbprint.
fn check_ec(members: &JwkMembers<'_>) -> Result<String, ValidationError> {
    let crv = members.string("crv")?;
    let Some((_, length)) = EC_CURVES.iter().find(|(name, _)| *name == crv) else {
        return Err(ValidationError::invalid(
            members.path("crv"),
            crv,
            "unsupported curve; use P-256, P-384 or P-521",
        ));
    };
    let x = members.string("x")?;
    let y = members.string("y")?;
    for (name, value) in [("x", x), ("y", y)] {
        if members.base64url(name, value)?.len() != *length {
            return Err(ValidationError::invalid_field(
                members.path(name),
                format!("a {crv} coordinate must be {length} bytes"),
            ));
        }
    }
    Ok(ec_thumbprint(crv, x, y))
}

/// The members of one JWK with its JSON path, for error messages.
struct JwkMembers<'a> {
    jwk: &'a Map<String, Value>,
    field: &'a str,
}

impl<'a> JwkMembers<'a> {
    fn path(&self, member: &str) -> String {
        format!("{}.{member}", self.field)
    }

    fn string(&self, member: &str) -> Result<&'a str, ValidationError> {
        match self.jwk.get(member) {
            None | Some(Value::Null) => Err(ValidationError::missing(self.path(member), "")),
            Some(Value::String(text)) if !text.is_empty() => Ok(text),
            Some(other) => Err(ValidationError::wrong_type(
                self.path(member),
                "a non-empty string",
                other,
            )),
        }
    }

    /// Decodes a base64url member; the error does not repeat the value.
    fn base64url(&self, member: &str, value: &str) -> Result<Vec<u8>, ValidationError> {
        URL_SAFE_NO_PAD.decode(value).map_err(|_| {
            ValidationError::invalid_field(
                self.path(member),
                "not base64url without padding (RFC 7515 section 2)",
            )
        })
    }
}

fn bit_length(big_endian: &[u8]) -> usize {
    let significant: Vec<u8> = big_endian.iter().copied().skip_while(|b| *b == 0).collect();
    match significant.first() {
        Some(first) => significant.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

fn too_short(field: &str, bits: usize) -> ValidationError {
    ValidationError::invalid_field(
        field,
        format!("the RSA key is {bits} bits; the minimum is {MIN_RSA_BITS} bits"),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    use rsa::RsaPrivateKey;

    use super::*;

    /// Modulus of the RSA key in RFC 7638 section 3.1 (2048 bits, e = AQAB).
    pub(crate) const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4\
cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93\
lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91C\
bOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8aw\
apJzKnqDKgw";

    /// Thumbprint of that key as RFC 7638 section 3.1 gives it.
    pub(crate) const RFC7638_THUMBPRINT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

    /// The RFC 7638 key as an SPKI PEM (public key only).
    pub(crate) const RFC7638_SPKI_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA0vx7agoebGcQSuuPiLJX
ZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tS
oc/BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ/2W+5JsGY4Hc5n9yBXArwl93lqt
7/RN5w6Cf0h4QyQ5v+65YGjQR0/FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0
zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt+bFTWhAI4vMQFh6WeZu0f
M4lFd2NcRwr3XPksINHaQ+G/xBniIqbw0Ls1jF44+csFCur+kEgU8awapJzKnqDK
gwIDAQAB
-----END PUBLIC KEY-----
";

    /// The RFC 7638 key as a PKCS#1 PEM (public key only).
    const RFC7638_PKCS1_PEM: &str = "-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEA0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4
cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc/BJECPebWKRXjBZCiFV4n3oknjhMst
n64tZ/2W+5JsGY4Hc5n9yBXArwl93lqt7/RN5w6Cf0h4QyQ5v+65YGjQR0/FDW2Q
vzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbIS
D08qNLyrdkt+bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ+G/xBniIqbw
0Ls1jF44+csFCur+kEgU8awapJzKnqDKgwIDAQAB
-----END RSA PUBLIC KEY-----
";

    /// A P-256 public key (coordinates only) and its thumbprint, computed with Python's
    /// `cryptography` package and `hashlib` over the RFC 7638 canonical JSON.
    const EC_X: &str = "deTFObI9tnQiPlSFilDLqArdZrXfrjUlxj7AhK-zaC0";
    const EC_Y: &str = "Qyp8mURMQTPgq1VevK065uJCG9qsHBDTZPVTwyyK57E";
    const EC_THUMBPRINT: &str = "Ps6GSrh8kamx5DcTmCnXLxzzdzDoTdhk-QbCFTHWOnw";

    fn rfc_jwk() -> Value {
        json!({ "kty": "RSA", "n": RFC7638_N, "e": "AQAB", "kid": "k1" })
    }

    fn first_key(jwks: &Value) -> &Value {
        &jwks["keys"][0]
    }

    /// Generates a throwaway RSA key of `bits`; only its public half leaves the test.
    pub(crate) fn generated_public_key(bits: usize) -> RsaPublicKey {
        let private = RsaPrivateKey::new(&mut rand::thread_rng(), bits).unwrap();
        RsaPublicKey::from(&private)
    }

    #[test]
    fn thumbprint_matches_rfc7638() {
        assert_eq!(rsa_thumbprint(RFC7638_N, "AQAB"), RFC7638_THUMBPRINT);
    }

    #[test]
    fn ec_thumbprint_matches_reference() {
        assert_eq!(ec_thumbprint("P-256", EC_X, EC_Y), EC_THUMBPRINT);
    }

    #[test]
    fn spki_pem_becomes_jwk() {
        let jwks = normalize_jwks(&Value::from(RFC7638_SPKI_PEM), "jwks").unwrap();
        let jwk = first_key(&jwks);
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["n"], RFC7638_N);
        assert_eq!(jwk["e"], "AQAB");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kid"], RFC7638_THUMBPRINT);
    }

    #[test]
    fn pkcs1_pem_becomes_jwk() {
        let jwks = normalize_jwks(&Value::from(RFC7638_PKCS1_PEM), "jwks").unwrap();
        assert_eq!(first_key(&jwks)["kid"], RFC7638_THUMBPRINT);
    }

    #[test]
    fn pem_with_surrounding_whitespace_accepted() {
        let pem = format!("\n  {RFC7638_SPKI_PEM}\n");
        assert!(normalize_jwks(&Value::from(pem), "jwks").is_ok());
    }

    #[test]
    fn private_pem_rejected_without_content() {
        let pem = "-----BEGIN PRIVATE KEY-----\nTUFURVJJQUw=\n-----END PRIVATE KEY-----\n";
        let error = normalize_jwks(&Value::from(pem), "jwks").unwrap_err();
        assert!(error.message.contains("private key"));
        assert!(!error.to_string().contains("TUFURVJJQUw"));
    }

    #[test]
    fn garbage_pem_rejected() {
        let error = normalize_jwks(&Value::from("not a key"), "jwks").unwrap_err();
        assert_eq!(error.field, "jwks");
    }

    #[test]
    fn short_pem_key_rejected() {
        let key = generated_public_key(1024);
        let pem = key.to_public_key_pem(LineEnding::LF).unwrap();
        let error = normalize_jwks(&Value::from(pem), "jwks").unwrap_err();
        assert!(error.message.contains("1024 bits"), "{error}");
    }

    #[test]
    fn generated_pkcs1_pem_round_trips() {
        let key = generated_public_key(1024);
        let pem = key.to_pkcs1_pem(LineEnding::LF).unwrap();
        let parsed = parse_rsa_public_pem(&pem, "jwks").unwrap();
        assert_eq!(parsed, key);
    }

    #[test]
    fn jwks_object_kept() {
        let jwks = normalize_jwks(&json!({ "keys": [rfc_jwk()] }), "jwks").unwrap();
        assert_eq!(jwks, json!({ "keys": [rfc_jwk()] }));
    }

    #[test]
    fn missing_kid_gets_thumbprint() {
        let jwk = json!({ "kty": "RSA", "n": RFC7638_N, "e": "AQAB" });
        let jwks = normalize_jwks(&json!({ "keys": [jwk] }), "jwks").unwrap();
        assert_eq!(first_key(&jwks)["kid"], RFC7638_THUMBPRINT);
    }

    #[test]
    fn private_member_rejected_without_value() {
        let mut jwk = rfc_jwk();
        jwk["d"] = Value::from("c2VjcmV0LWV4cG9uZW50");
        let error = normalize_jwks(&json!({ "keys": [jwk] }), "jwks").unwrap_err();
        assert_eq!(error.field, "jwks.keys[0].d");
        assert!(error.message.contains("`d`"));
        assert!(!format!("{error} {error:?}").contains("c2VjcmV0LWV4cG9uZW50"));
    }

    #[test]
    fn every_private_member_rejected() {
        for member in PRIVATE_MEMBERS {
            let mut jwk = rfc_jwk();
            jwk[member] = Value::from("AQAB");
            let error = normalize_jwks(&json!({ "keys": [jwk] }), "jwks").unwrap_err();
            assert_eq!(error.field, format!("jwks.keys[0].{member}"));
        }
    }

    #[test]
    fn symmetric_key_rejected() {
        let jwk = json!({ "kty": "oct", "k": "c3ltbWV0cmlj" });
        let error = normalize_jwks(&json!({ "keys": [jwk] }), "jwks").unwrap_err();
        assert_eq!(error.field, "jwks.keys[0].k");
        assert!(!error.to_string().contains("c3ltbWV0cmlj"));
    }

    #[test]
    fn duplicate_kid_rejected() {
        let jwks = json!({ "keys": [rfc_jwk(), rfc_jwk()] });
        let error = normalize_jwks(&jwks, "jwks").unwrap_err();
        assert_eq!(error.field, "jwks.keys[1].kid");
        assert_eq!(error.value.as_deref(), Some("k1"));
    }

    #[test]
    fn short_rsa_jwk_rejected() {
        let key = generated_public_key(1024);
        let jwks = json!({ "keys": [rsa_jwk(&key)] });
        let error = normalize_jwks(&jwks, "jwks").unwrap_err();
        assert_eq!(error.field, "jwks.keys[0].n");
        assert!(error.message.contains("1024 bits"), "{error}");
    }

    #[test]
    fn ec_key_accepted() {
        let jwk = json!({ "kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y });
        let jwks = normalize_jwks(&json!({ "keys": [jwk] }), "jwks").unwrap();
        assert_eq!(first_key(&jwks)["kid"], EC_THUMBPRINT);
    }

    #[test]
    fn ec_unknown_curve_rejected() {
        let jwk = json!({ "kty": "EC", "crv": "secp256k1", "x": EC_X, "y": EC_Y });
        let error = normalize_jwks(&json!({ "keys": [jwk] }), "jwks").unwrap_err();
        assert_eq!(error.value.as_deref(), Some("secp256k1"));
    }

    #[test]
    fn ec_short_coordinate_rejected() {
        let jwk = json!({ "kty": "EC", "crv": "P-384", "x": EC_X, "y": EC_Y });
        let error = normalize_jwks(&json!({ "keys": [jwk] }), "jwks").unwrap_err();
        assert_eq!(error.field, "jwks.keys[0].x");
    }

    #[test]
    fn unknown_key_type_rejected() {
        let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "x": EC_X });
        let error = normalize_jwks(&json!({ "keys": [jwk] }), "jwks").unwrap_err();
        assert_eq!(error.value.as_deref(), Some("OKP"));
    }

    #[test]
    fn empty_keys_rejected() {
        let error = normalize_jwks(&json!({ "keys": [] }), "jwks").unwrap_err();
        assert_eq!(error.field, "jwks.keys");
    }

    #[test]
    fn padded_modulus_rejected() {
        let jwk = json!({ "kty": "RSA", "n": format!("{RFC7638_N}=="), "e": "AQAB" });
        let error = normalize_jwks(&json!({ "keys": [jwk] }), "jwks").unwrap_err();
        assert_eq!(error.field, "jwks.keys[0].n");
    }

    #[test]
    fn bit_length_skips_leading_zeros() {
        assert_eq!(bit_length(&[0, 0x01, 0xff]), 9);
    }
}

//! End to end: a request with `encryption` gets its client secret encrypted with the given
//! public key, and the private key recovers okta-sim's secret.

mod common;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::{provision, Harness};
use okta_dcr_worker::contract::{Level, ResultMessage};
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::{Oaep, Pkcs1v15Encrypt, RsaPrivateKey};
use serde_json::{json, Value};

/// Decrypts a `clientSecret` in either form the worker produces.
fn decrypt(key: &RsaPrivateKey, algorithm: &str, hash: &str, encrypted: &str) -> String {
    if !encrypted.contains('.') {
        let bytes = STANDARD.decode(encrypted).expect("standard padded base64");
        return String::from_utf8(rsa_decrypt(key, algorithm, hash, &bytes)).unwrap();
    }
    let parts: Vec<&str> = encrypted.split('.').collect();
    assert_eq!(parts.len(), 5, "compact JWE has five parts");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["enc"], "A256GCM");
    let expected_alg = match (algorithm, hash) {
        ("PKCS", _) => "RSA1_5",
        (_, "SHA1") => "RSA-OAEP",
        _ => "RSA-OAEP-256",
    };
    assert_eq!(header["alg"], expected_alg);
    let content_key = rsa_decrypt(
        key,
        algorithm,
        hash,
        &URL_SAFE_NO_PAD.decode(parts[1]).unwrap(),
    );
    let iv = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    let mut sealed = URL_SAFE_NO_PAD.decode(parts[3]).unwrap();
    sealed.extend(URL_SAFE_NO_PAD.decode(parts[4]).unwrap());
    let cipher = Aes256Gcm::new_from_slice(&content_key).unwrap();
    let payload = Payload {
        msg: &sealed,
        aad: parts[0].as_bytes(),
    };
    String::from_utf8(cipher.decrypt(Nonce::from_slice(&iv), payload).unwrap()).unwrap()
}

fn rsa_decrypt(key: &RsaPrivateKey, algorithm: &str, hash: &str, bytes: &[u8]) -> Vec<u8> {
    match (algorithm, hash) {
        ("PKCS", _) => key.decrypt(Pkcs1v15Encrypt, bytes).unwrap(),
        (_, "SHA1") => key.decrypt(Oaep::new::<sha1::Sha1>(), bytes).unwrap(),
        _ => key.decrypt(Oaep::new::<sha2::Sha256>(), bytes).unwrap(),
    }
}

async fn provision_encrypted(harness: &Harness, index: usize, encryption: Value) -> ResultMessage {
    let mut request = provision(
        &format!("r-encrypted-{index}"),
        &format!("cred-enc-{index}"),
    );
    request["encryption"] = encryption;
    harness.publish(&request).await;
    harness.next_result().await
}

fn okta_secret(harness: &Harness, result: &ResultMessage) -> String {
    let client_id = result.idp_client_id.clone().unwrap();
    let client = harness
        .sim
        .clients()
        .into_iter()
        .find(|client| client.client_id == client_id)
        .unwrap();
    client.client_secret.unwrap().expose().to_owned()
}

#[tokio::test]
async fn each_algorithm_decrypts_to_okta_secret() {
    let harness = Harness::start().await;
    let mut rng = rand::thread_rng();
    let large = RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let small = RsaPrivateKey::new(&mut rng, 1024).unwrap();
    let cases = [
        (2048, "RSA-OAEP", "SHA256"),
        (2048, "RSA-OAEP", "SHA1"),
        (2048, "PKCS", "SHA256"),
        // A 64-character secret does not fit one OAEP-SHA256 block of a 1024-bit key, so
        // it comes back as a compact JWE.
        (1024, "RSA-OAEP", "SHA256"),
    ];
    for (index, (bits, algorithm, hash)) in cases.into_iter().enumerate() {
        let key = if bits == 2048 { &large } else { &small };
        let pem = key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let encryption = json!({ "key": pem, "algorithm": algorithm, "hash": hash });
        let result = provision_encrypted(&harness, index, encryption).await;
        assert_eq!(
            result.status.level,
            Level::Success,
            "{}",
            result.status.reason
        );

        let encrypted = result
            .data
            .as_ref()
            .unwrap()
            .client_secret
            .as_ref()
            .unwrap();
        let plain = okta_secret(&harness, &result);
        assert_ne!(
            encrypted.expose(),
            plain,
            "{algorithm}/{hash}: secret sent in plain text"
        );
        let decrypted = decrypt(key, algorithm, hash, encrypted.expose());
        assert_eq!(decrypted, plain, "{algorithm}/{hash} with {bits} bits");
    }
    harness.finish().await;
}

#[tokio::test]
async fn unusable_key_fails_without_secret() {
    let harness = Harness::start().await;
    let encryption =
        json!({ "key": "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----" });
    let result = provision_encrypted(&harness, 90, encryption).await;
    assert_eq!(result.status.level, Level::Error);
    assert!(result.data.is_none(), "no secret in an error result");
    assert!(harness.okta_calls().is_empty(), "no client created");
    harness.finish().await;
}

#[tokio::test]
async fn too_small_key_fails_before_okta() {
    let harness = Harness::start().await;
    let key = RsaPrivateKey::new(&mut rand::thread_rng(), 512).unwrap();
    let pem = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let result = provision_encrypted(&harness, 91, json!({ "key": pem })).await;
    assert_eq!(result.status.level, Level::Error);
    assert!(result.data.is_none(), "no secret in an error result");
    assert!(harness.okta_calls().is_empty(), "no client created");
    harness.finish().await;
}

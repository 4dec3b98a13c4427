//! End to end: the update actions, exactly one Okta client per credential, and a rejected
//! worker credential, against RabbitMQ and okta-sim.

mod common;

use std::time::Duration;

use common::{provision, Harness};
use okta_dcr_worker::contract::{CredentialState, Level, ResultMessage};
use okta_dcr_worker::sim::{AppStatus, Fault, ScriptedResponse};
use serde_json::{json, Value};

fn update(request_id: &str, credential_id: &str, action: Value) -> Value {
    json!({
        "requestId": request_id,
        "operation": "update",
        "credentialAction": action,
        "id": credential_id,
        "name": format!("credential-{credential_id}"),
        "managedApplicationName": "Test App",
        "teamName": "Test Team"
    })
}

async fn provisioned(harness: &Harness, credential_id: &str) -> ResultMessage {
    harness
        .publish(&provision(
            &format!("r-create-{credential_id}"),
            credential_id,
        ))
        .await;
    let result = harness.next_result().await;
    assert_eq!(
        result.status.level,
        Level::Success,
        "{}",
        result.status.reason
    );
    result
}

fn secret(result: &ResultMessage) -> String {
    let data = result.data.as_ref().expect("result carries data");
    let secret = data
        .client_secret
        .as_ref()
        .expect("result carries a secret");
    secret.expose().to_owned()
}

#[tokio::test]
async fn rotate_issues_new_secret() {
    let harness = Harness::start().await;
    let created = provisioned(&harness, "cred-rotate").await;
    let mut request = update("r-rotate", "cred-rotate", json!("rotate"));
    request["idpClientId"] = json!(created.idp_client_id);
    harness.publish(&request).await;

    let rotated = harness.next_result().await;
    assert_eq!(
        rotated.status.level,
        Level::Success,
        "{}",
        rotated.status.reason
    );
    assert_eq!(rotated.state, Some(CredentialState::Active));
    assert_eq!(rotated.idp_client_id, created.idp_client_id);
    assert_ne!(secret(&rotated), secret(&created));
    let clients = harness.sim.clients();
    assert_eq!(clients.len(), 1);
    assert_eq!(
        clients[0].client_secret.as_ref().unwrap().expose(),
        secret(&rotated)
    );
    harness.finish().await;
}

#[tokio::test]
async fn rotate_by_engage_code_finds_client_by_name() {
    let harness = Harness::start().await;
    let created = provisioned(&harness, "cred-rotate-3").await;
    harness
        .publish(&update("r-rotate-3", "cred-rotate-3", json!(3)))
        .await;

    let rotated = harness.next_result().await;
    assert_eq!(
        rotated.status.level,
        Level::Success,
        "{}",
        rotated.status.reason
    );
    assert_eq!(rotated.credential_action, Some(json!(3)));
    assert_eq!(rotated.idp_client_id, created.idp_client_id);
    assert_eq!(
        harness.sim.clients()[0]
            .client_secret
            .as_ref()
            .unwrap()
            .expose(),
        secret(&rotated)
    );
    harness.finish().await;
}

#[tokio::test]
async fn suspend_and_enable_toggle_status() {
    let harness = Harness::start().await;
    let created = provisioned(&harness, "cred-toggle").await;

    harness
        .publish(&update("r-suspend", "cred-toggle", json!("suspend")))
        .await;
    let suspended = harness.next_result().await;
    assert_eq!(
        suspended.status.level,
        Level::Success,
        "{}",
        suspended.status.reason
    );
    assert_eq!(suspended.state, Some(CredentialState::Inactive));
    assert!(suspended.data.is_none(), "no secret in a suspend result");
    assert_eq!(harness.sim.clients()[0].status, AppStatus::Inactive);

    harness
        .publish(&update("r-enable", "cred-toggle", json!(1)))
        .await;
    let enabled = harness.next_result().await;
    assert_eq!(
        enabled.status.level,
        Level::Success,
        "{}",
        enabled.status.reason
    );
    assert_eq!(enabled.state, Some(CredentialState::Active));
    assert!(enabled.data.is_none(), "no secret in an enable result");
    assert_eq!(enabled.idp_client_id, created.idp_client_id);
    assert_eq!(harness.sim.clients()[0].status, AppStatus::Active);
    harness.finish().await;
}

#[tokio::test]
async fn expire_removes_client() {
    let harness = Harness::start().await;
    provisioned(&harness, "cred-expire").await;
    harness
        .publish(&update("r-expire", "cred-expire", json!("expire")))
        .await;

    let expired = harness.next_result().await;
    assert_eq!(
        expired.status.level,
        Level::Success,
        "{}",
        expired.status.reason
    );
    assert_eq!(expired.state, Some(CredentialState::Inactive));
    assert!(harness.sim.clients().is_empty());
    harness.finish().await;
}

#[tokio::test]
async fn actions_on_unknown_client_fail() {
    let harness = Harness::start().await;
    for (index, action) in ["rotate", "suspend", "enable"].iter().enumerate() {
        harness
            .publish(&update(
                &format!("r-unknown-{index}"),
                "cred-none",
                json!(action),
            ))
            .await;
        let result = harness.next_result().await;
        assert_eq!(result.status.level, Level::Error, "{action}");
        assert_eq!(result.status.code, "client_not_found", "{action}");
        assert!(!result.status.retryable, "{action}");
    }
    harness.finish().await;
}

#[tokio::test]
async fn unknown_action_code_rejected() {
    let harness = Harness::start().await;
    harness
        .publish(&update("r-seven", "cred-seven", json!(7)))
        .await;
    let result = harness.next_result().await;
    assert_eq!(result.status.level, Level::Error);
    assert_eq!(result.status.code, "invalid_request");
    assert!(
        result.status.reason.contains('7'),
        "{}",
        result.status.reason
    );
    harness.finish().await;
}

#[tokio::test]
async fn rotate_of_public_client_rejected_without_call() {
    let harness = Harness::start().await;
    let mut request = update("r-rotate-public", "cred-public", json!("rotate"));
    request["idpClientId"] = json!("0oaPublicClient0001");
    request["credentialData"] = json!({
        "grantType": "authorization_code",
        "tokenAuthMethod": "none",
        "redirectURLs": ["https://spa.example.test/cb"]
    });
    harness.publish(&request).await;

    let result = harness.next_result().await;
    assert_eq!(result.status.level, Level::Error);
    assert!(
        result.status.reason.contains("rotation does not apply"),
        "{}",
        result.status.reason
    );
    assert!(
        harness.okta_calls().is_empty(),
        "no Okta call for a public client"
    );
    harness.finish().await;
}

#[tokio::test]
async fn public_client_gets_no_secret() {
    let harness = Harness::start().await;
    let mut request = provision("r-spa", "cred-spa");
    request["credentialData"] = json!({
        "grant_types": ["authorization_code"],
        "redirect_uris": ["https://spa.example.test/cb"]
    });
    harness.publish(&request).await;

    let result = harness.next_result().await;
    assert_eq!(
        result.status.level,
        Level::Success,
        "{}",
        result.status.reason
    );
    let data = result.data.unwrap();
    assert!(data.client_secret.is_none());
    let clients = harness.sim.clients();
    assert_eq!(clients[0].metadata.application_type, "browser");
    assert_eq!(clients[0].metadata.token_endpoint_auth_method, "none");
    harness.finish().await;
}

#[tokio::test]
async fn lost_create_response_reuses_client() {
    let harness = Harness::start().await;
    harness.sim.script(Fault::apply_then_respond(
        "POST",
        "/oauth2/v1/clients",
        ScriptedResponse::okta_error(502, "E0000009", "Bad gateway"),
    ));
    // The new client is not found at first, as Okta may lag after a create.
    harness.sim.script(Fault::respond(
        "GET",
        "/oauth2/v1/clients",
        ScriptedResponse::okta_error(404, "E0000007", "Not found: Resource not found"),
    ));
    harness.sim.script(Fault::respond(
        "GET",
        "/oauth2/v1/clients",
        ScriptedResponse::new(200).with_body(json!([])),
    ));
    harness.publish(&provision("r-lost-201", "cred-lost")).await;

    let result = harness.next_result().await;
    assert_eq!(
        result.status.level,
        Level::Success,
        "{}",
        result.status.reason
    );
    let clients = harness.sim.clients();
    assert_eq!(clients.len(), 1, "exactly one client");
    let registrations = harness
        .calls("POST", "/oauth2/v1/clients")
        .into_iter()
        .filter(|call| call.path == "/oauth2/v1/clients")
        .count();
    assert_eq!(registrations, 1, "no second registration");
    assert_eq!(
        clients[0].client_secret.as_ref().unwrap().expose(),
        secret(&result),
        "the result carries the current secret"
    );
    harness.finish().await;
}

#[tokio::test]
async fn repeated_request_id_reuses_client() {
    let harness = Harness::start().await;
    let first = provisioned(&harness, "cred-again").await;
    // The same requestId again, as when a publisher retries after a lost confirm.
    harness
        .publish(&provision("r-create-cred-again", "cred-again"))
        .await;

    let second = harness.next_result().await;
    assert_eq!(
        second.status.level,
        Level::Success,
        "{}",
        second.status.reason
    );
    assert_eq!(second.idp_client_id, first.idp_client_id);
    let clients = harness.sim.clients();
    assert_eq!(clients.len(), 1, "no second client for a repeated request");
    assert_eq!(
        clients[0].client_secret.as_ref().unwrap().expose(),
        secret(&second)
    );
    harness.finish().await;
}

#[tokio::test]
async fn requests_for_one_credential_keep_order() {
    let harness = Harness::start().await;
    let credential = "cred-ordered";
    harness.publish(&provision("r-order-1", credential)).await;
    harness
        .publish(&common::deprovision("r-order-2", credential))
        .await;
    harness.publish(&provision("r-order-3", credential)).await;

    let results = [
        harness.next_result().await,
        harness.next_result().await,
        harness.next_result().await,
    ];
    let order: Vec<&str> = results
        .iter()
        .map(|result| result.request_id.as_str())
        .collect();
    assert_eq!(order, ["r-order-1", "r-order-2", "r-order-3"]);
    for result in &results {
        assert_eq!(
            result.status.level,
            Level::Success,
            "{}",
            result.status.reason
        );
    }
    assert_eq!(harness.sim.clients().len(), 1);
    harness.finish().await;
}

#[tokio::test]
async fn rejected_credential_pauses_worker() {
    let harness = Harness::start().await;
    harness.sim.set_token_accepted(false);
    harness.publish(&provision("r-paused", "cred-paused")).await;

    let result_queue = harness
        .settings
        .broker
        .topology
        .result_queue
        .clone()
        .unwrap();
    harness
        .assert_empty_for(&result_queue, Duration::from_secs(2))
        .await;
    let dead_letter_queue = harness.settings.broker.topology.dead_letter_queue.clone();
    assert_eq!(harness.queue_len(&dead_letter_queue).await, 0);
    assert!(harness.sim.clients().is_empty());

    harness.sim.set_token_accepted(true);
    let result = harness.next_result().await;
    assert_eq!(result.request_id, "r-paused");
    assert_eq!(
        result.status.level,
        Level::Success,
        "{}",
        result.status.reason
    );
    assert_eq!(harness.sim.clients().len(), 1);
    harness.finish().await;
}

fn key_provision(request_id: &str, credential_id: &str, jwks: Value) -> Value {
    let mut request = provision(request_id, credential_id);
    request["credentialData"] = json!({
        "grantType": "client_credentials",
        "tokenAuthMethod": "private_key_jwt",
        "jwks": jwks
    });
    request
}

#[tokio::test]
async fn private_key_jwt_clients_checked_before_okta() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    use rsa::traits::{PrivateKeyParts, PublicKeyParts};

    let harness = Harness::start().await;
    let mut rng = rand::thread_rng();
    let key = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let small = rsa::RsaPrivateKey::new(&mut rng, 1024).unwrap();
    let jwk = |key: &rsa::RsaPrivateKey, kid: &str| {
        json!({
            "kty": "RSA",
            "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
        })
    };
    let private_exponent = URL_SAFE_NO_PAD.encode(key.d().to_bytes_be());
    let mut with_private = jwk(&key, "k1");
    with_private["d"] = json!(private_exponent);

    let rejected = [
        ("r-jwk-d", json!({ "keys": [with_private] }), "`d`"),
        (
            "r-jwk-dup",
            json!({ "keys": [jwk(&key, "k1"), jwk(&key, "k1")] }),
            "k1",
        ),
        (
            "r-jwk-1024",
            json!({ "keys": [jwk(&small, "small")] }),
            "2048",
        ),
    ];
    for (request_id, jwks, named) in rejected {
        harness
            .publish(&key_provision(request_id, request_id, jwks))
            .await;
        let (result, _) = harness.next_result_json().await;
        assert_eq!(result["status"]["level"], "Error", "{request_id}");
        let reason = result["status"]["reason"].as_str().unwrap();
        assert!(reason.contains(named), "{request_id}: {reason}");
        assert!(
            !result.to_string().contains(&private_exponent),
            "{request_id}: private key material in the result"
        );
    }
    let mut neither = provision("r-jwk-none", "r-jwk-none");
    neither["credentialData"] = json!({
        "grantType": "client_credentials",
        "tokenAuthMethod": "private_key_jwt"
    });
    harness.publish(&neither).await;
    let result = harness.next_result().await;
    assert_eq!(result.status.level, Level::Error);
    assert!(
        harness.okta_calls().is_empty(),
        "no Okta call for a rejected key"
    );

    let pem = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    harness
        .publish(&key_provision("r-jwk-pem", "cred-jwk-pem", json!(pem)))
        .await;
    let result = harness.next_result().await;
    assert_eq!(
        result.status.level,
        Level::Success,
        "{}",
        result.status.reason
    );
    assert!(result.data.unwrap().client_secret.is_none());
    let clients = harness.sim.clients();
    assert_eq!(
        clients[0].metadata.token_endpoint_auth_method,
        "private_key_jwt"
    );
    let registered = clients[0].metadata.jwks.as_ref().unwrap();
    assert_eq!(registered["keys"][0]["kty"], "RSA");
    assert!(registered["keys"][0]["kid"].as_str().is_some());
    harness.finish().await;
}

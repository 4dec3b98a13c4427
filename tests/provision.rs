//! End to end: requests published to RabbitMQ, the worker running, okta-sim answering;
//! results and dead letters read back from their queues.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::{deprovision, provision, Harness};
use okta_dcr_worker::broker::headers;
use okta_dcr_worker::contract::{CredentialState, Level};
use okta_dcr_worker::sim::{Fault, ScriptedResponse};
use serde_json::json;

#[tokio::test]
async fn provision_creates_one_client() {
    let harness = Harness::start().await;
    harness.publish(&provision("r-provision", "cred-1")).await;

    let result = harness.next_result().await;
    assert_eq!(result.request_id, "r-provision");
    assert_eq!(result.id.as_deref(), Some("cred-1"));
    assert_eq!(result.status.level, Level::Success);
    assert_eq!(result.state, Some(CredentialState::Active));
    assert_eq!(result.context, Some(json!({ "trace": "r-provision" })));

    let clients = harness.sim.clients();
    assert_eq!(clients.len(), 1);
    let data = result.data.expect("success result carries data");
    assert_eq!(data.client_id, clients[0].client_id);
    assert_eq!(
        result.idp_client_id.as_deref(),
        Some(clients[0].client_id.as_str())
    );
    assert_eq!(
        data.client_secret.as_ref().map(|secret| secret.expose()),
        clients[0]
            .client_secret
            .as_ref()
            .map(|secret| secret.expose())
    );
    assert_eq!(clients[0].metadata.application_type, "service");
    assert_eq!(clients[0].metadata.response_types, vec!["token"]);
    assert_eq!(
        harness.calls("GET", "/oauth2/v1/clients").len(),
        0,
        "first delivery looks nothing up"
    );
    assert_eq!(harness.calls("POST", "/oauth2/v1/clients").len(), 1);
    harness.finish().await;
}

#[tokio::test]
async fn result_has_routing_key_and_properties() {
    let harness = Harness::start().await;
    harness
        .publish(&provision("r-routing", "cred-routing"))
        .await;
    let (result, routing_key) = harness.next_result_json().await;
    assert_eq!(routing_key, "provision.success");
    assert_eq!(result["status"]["code"], "ok");
    assert_eq!(result["status"]["retryable"], false);
    assert!(result["completedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(result["attempts"], 1);
    harness.finish().await;
}

#[tokio::test]
async fn deprovision_deletes_client() {
    let harness = Harness::start().await;
    harness.publish(&provision("r-create", "cred-2")).await;
    harness.publish(&deprovision("r-delete", "cred-2")).await;

    let created = harness.next_result().await;
    assert_eq!(created.request_id, "r-create");
    let deleted = harness.next_result().await;
    assert_eq!(deleted.request_id, "r-delete");
    assert_eq!(deleted.status.level, Level::Success);
    assert_eq!(deleted.state, Some(CredentialState::Inactive));
    assert_eq!(deleted.idp_client_id, created.idp_client_id);
    assert!(harness.sim.clients().is_empty());
    harness.finish().await;
}

#[tokio::test]
async fn deprovision_of_absent_client_succeeds() {
    let harness = Harness::start().await;
    let mut request = deprovision("r-absent", "cred-absent");
    request["idpClientId"] = json!("0oaDoesNotExist123");
    harness.publish(&request).await;

    let result = harness.next_result().await;
    assert_eq!(result.status.level, Level::Success);
    assert_eq!(result.state, Some(CredentialState::Inactive));
    assert!(
        result.status.reason.contains("absent"),
        "{}",
        result.status.reason
    );
    harness.finish().await;
}

#[tokio::test]
async fn deprovision_by_name_of_unknown_credential_succeeds() {
    let harness = Harness::start().await;
    harness
        .publish(&deprovision("r-unknown", "cred-unknown"))
        .await;
    let result = harness.next_result().await;
    assert_eq!(result.status.level, Level::Success);
    assert_eq!(harness.calls("DELETE", "/oauth2/v1/clients").len(), 0);
    harness.finish().await;
}

#[tokio::test]
async fn missing_id_gets_error_naming_id() {
    let harness = Harness::start().await;
    let mut request = provision("r-no-id", "unused");
    request.as_object_mut().unwrap().remove("id");
    harness.publish(&request).await;

    let result = harness.next_result().await;
    assert_eq!(result.request_id, "r-no-id");
    assert_eq!(result.status.level, Level::Error);
    assert_eq!(result.status.code, "invalid_request");
    assert!(!result.status.retryable);
    assert!(
        result.status.reason.contains("`id`"),
        "{}",
        result.status.reason
    );

    harness.publish(&provision("r-after", "cred-after")).await;
    let next = harness.next_result().await;
    assert_eq!(next.request_id, "r-after");
    assert_eq!(next.status.level, Level::Success);
    harness.finish().await;
}

#[tokio::test]
async fn missing_request_id_and_id_dead_lettered() {
    let harness = Harness::start().await;
    harness
        .publish(&json!({ "operation": "provision", "name": "x" }))
        .await;
    let dead = harness.next_dead_letter().await;
    assert_eq!(
        dead.text(headers::ERROR_CODE).as_deref(),
        Some("invalid_request")
    );
    assert_eq!(dead.integer(headers::ATTEMPTS), Some(1));
    assert_eq!(dead.integer(headers::REPLAYS), Some(0));
    assert_eq!(
        dead.text(headers::ORIGINAL_EXCHANGE).as_deref(),
        Some(harness.settings.broker.topology.request_exchange.as_str())
    );
    assert!(dead.text(headers::DEAD_LETTERED_AT).is_some());
    harness.finish().await;
}

#[tokio::test]
async fn message_id_stands_in_for_request_id() {
    let harness = Harness::start().await;
    let mut request = provision("unused", "cred-message-id");
    request.as_object_mut().unwrap().remove("requestId");
    harness
        .publish_raw(
            request.to_string().as_bytes(),
            Some("application/json"),
            Some("m-42"),
        )
        .await;
    let result = harness.next_result().await;
    assert_eq!(result.request_id, "m-42");
    assert_eq!(result.status.level, Level::Success);
    harness.finish().await;
}

#[tokio::test]
async fn truncated_json_dead_lettered() {
    let harness = Harness::start().await;
    let body = br#"{"requestId": "r1", "operation": "provision","#;
    harness
        .publish_raw(body, Some("application/json"), None)
        .await;

    let dead = harness.next_dead_letter().await;
    assert_eq!(
        dead.text(headers::ERROR_CODE).as_deref(),
        Some("invalid_json")
    );
    assert_eq!(
        dead.body,
        body.to_vec(),
        "the original body is kept for replay"
    );
    assert!(dead.text(headers::ERROR_REASON).is_some());
    harness.finish().await;
}

#[tokio::test]
async fn invalid_utf8_dead_lettered() {
    let harness = Harness::start().await;
    let body = [0x7b, 0x22, 0x72, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d];
    harness
        .publish_raw(&body, Some("application/json"), None)
        .await;

    let dead = harness.next_dead_letter().await;
    assert_eq!(
        dead.text(headers::ERROR_CODE).as_deref(),
        Some("invalid_utf8")
    );
    assert_eq!(dead.body, body.to_vec());

    harness
        .publish(&provision("r-still-running", "cred-3"))
        .await;
    assert_eq!(harness.next_result().await.request_id, "r-still-running");
    harness.finish().await;
}

#[tokio::test]
async fn oversized_body_dead_lettered() {
    let harness = Harness::start().await;
    let mut request = provision("r-big", "cred-big");
    request["context"] = json!("x".repeat(70 * 1024));
    harness.publish(&request).await;

    let dead = harness.next_dead_letter().await;
    assert_eq!(
        dead.text(headers::ERROR_CODE).as_deref(),
        Some("body_too_large")
    );
    assert!(harness.okta_calls().is_empty());
    harness.finish().await;
}

#[tokio::test]
async fn json_array_body_dead_lettered() {
    let harness = Harness::start().await;
    harness
        .publish_raw(b"[1, 2]", Some("application/json"), None)
        .await;
    let dead = harness.next_dead_letter().await;
    assert_eq!(
        dead.text(headers::ERROR_CODE).as_deref(),
        Some("invalid_request")
    );
    harness.finish().await;
}

#[tokio::test]
async fn content_type_variants_processed() {
    let harness = Harness::start().await;
    let first = provision("r-mixed-case", "cred-4");
    harness
        .publish_raw(
            first.to_string().as_bytes(),
            Some("Application/JSON; charset=utf-8"),
            None,
        )
        .await;
    let second = provision("r-no-type", "cred-5");
    harness
        .publish_raw(second.to_string().as_bytes(), None, None)
        .await;

    let mut ids = [harness.next_result().await, harness.next_result().await];
    ids.sort_by(|a, b| a.request_id.cmp(&b.request_id));
    assert_eq!(ids[0].request_id, "r-mixed-case");
    assert_eq!(ids[0].status.level, Level::Success);
    assert_eq!(ids[1].request_id, "r-no-type");
    assert_eq!(ids[1].status.level, Level::Success);
    harness.finish().await;
}

#[tokio::test]
async fn mixed_grants_rejected_before_okta() {
    let harness = Harness::start().await;
    let mut request = provision("r-mixed", "cred-6");
    request["credentialData"] = json!({
        "grant_types": ["client_credentials", "authorization_code"],
        "redirect_uris": ["https://app.example.test/cb"]
    });
    harness.publish(&request).await;

    let result = harness.next_result().await;
    assert_eq!(result.status.level, Level::Error);
    assert_eq!(result.status.code, "invalid_request");
    assert!(!result.status.retryable);
    assert!(
        result.status.reason.contains("client_credentials"),
        "{}",
        result.status.reason
    );
    assert!(
        result.status.reason.contains("authorization_code"),
        "{}",
        result.status.reason
    );
    assert!(
        harness.okta_calls().is_empty(),
        "no call may reach okta-sim"
    );
    harness.finish().await;
}

#[tokio::test]
async fn bad_redirect_uris_rejected_by_name() {
    let harness = Harness::start().await;
    let bad = [
        "/cb",
        "https://app.example.test/cb#x",
        "http://app.example.test/cb",
    ];
    for (index, uri) in bad.iter().enumerate() {
        let mut request = provision(&format!("r-redirect-{index}"), &format!("cred-r{index}"));
        request["credentialData"] = json!({
            "grantType": "authorization_code",
            "tokenAuthMethod": "client_secret_basic",
            "redirectURLs": [uri]
        });
        harness.publish(&request).await;
        let result = harness.next_result().await;
        assert_eq!(result.status.level, Level::Error, "{uri}");
        assert!(
            result.status.reason.contains(uri),
            "{uri}: {}",
            result.status.reason
        );
    }
    assert!(harness.okta_calls().is_empty());

    let mut request = provision("r-loopback", "cred-loopback");
    request["credentialData"] = json!({
        "grantType": "authorization_code",
        "tokenAuthMethod": "client_secret_basic",
        "redirectURLs": ["http://localhost:8080/cb"]
    });
    harness.publish(&request).await;
    let result = harness.next_result().await;
    assert_eq!(
        result.status.level,
        Level::Success,
        "{}",
        result.status.reason
    );
    assert_eq!(harness.sim.clients()[0].metadata.application_type, "web");
    harness.finish().await;
}

#[tokio::test]
async fn okta_invalid_metadata_not_retried() {
    let harness = Harness::start().await;
    harness.sim.script(Fault::respond(
        "POST",
        "/oauth2/v1/clients",
        ScriptedResponse::oauth_error(
            400,
            "invalid_client_metadata",
            "client_name: The field cannot be left blank",
        ),
    ));
    harness.publish(&provision("r-okta-400", "cred-7")).await;

    let result = harness.next_result().await;
    assert_eq!(result.status.level, Level::Error);
    assert!(!result.status.retryable);
    assert_eq!(result.status.code, "okta_rejected");
    assert!(
        result
            .status
            .reason
            .contains("The field cannot be left blank"),
        "{}",
        result.status.reason
    );
    assert_eq!(harness.calls("POST", "/oauth2/v1/clients").len(), 1);
    harness.finish().await;
}

#[tokio::test]
async fn rate_limit_reset_is_honoured() {
    let harness = Harness::start().await;
    harness.sim.script(Fault::rate_limited(
        "POST",
        "/oauth2/v1/clients",
        Duration::from_secs(2),
    ));
    harness.publish(&provision("r-429", "cred-8")).await;

    let result = harness.next_result().await;
    assert_eq!(result.status.level, Level::Success);
    assert_eq!(result.attempts, 2);
    let posts = harness.calls("POST", "/oauth2/v1/clients");
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].status, 429);
    let first_second = posts[0]
        .received_at
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let reset = UNIX_EPOCH + Duration::from_secs(first_second + 2);
    assert!(
        posts[1].received_at >= reset,
        "retry at {:?} came before the reset {:?}",
        posts[1].received_at,
        reset
    );
    assert_eq!(harness.sim.clients().len(), 1);
    harness.finish().await;
}

#[tokio::test]
async fn unavailable_okta_dead_letters_after_budget() {
    let harness = Harness::start_with(|settings| {
        settings.worker.retry_budget = Duration::from_secs(3);
    })
    .await;
    harness.sim.script(
        Fault::respond(
            "GET",
            "/oauth2/v1/clients",
            ScriptedResponse::okta_error(503, "E0000009", "Service unavailable"),
        )
        .times(1000),
    );
    harness.publish(&deprovision("r-503", "cred-9")).await;

    let dead = harness.next_dead_letter().await;
    assert_eq!(
        dead.text(headers::ERROR_CODE).as_deref(),
        Some("okta_unavailable")
    );
    let attempts = dead.integer(headers::ATTEMPTS).unwrap();
    let calls = harness.calls("GET", "/oauth2/v1/clients").len() as i64;
    assert!(attempts >= 2, "attempts {attempts}");
    assert_eq!(attempts, calls, "one attempt per call, retries included");
    assert!(dead.text(headers::OKTA_REQUEST_ID).is_some());
    let body: serde_json::Value = serde_json::from_slice(&dead.body).unwrap();
    assert_eq!(body["requestId"], "r-503");
    harness
        .assert_empty_for(
            &harness
                .settings
                .broker
                .topology
                .result_queue
                .clone()
                .unwrap(),
            Duration::from_millis(300),
        )
        .await;
    harness.finish().await;
}

#[tokio::test]
async fn unavailable_registration_looked_up_not_repeated() {
    let harness = Harness::start_with(|settings| {
        settings.worker.retry_budget = Duration::from_secs(3);
        // No delayed retries: the one registration and its look-ups are all that happens.
        settings.broker.topology.delay_steps.clear();
    })
    .await;
    harness.sim.script(
        Fault::respond(
            "POST",
            "/oauth2/v1/clients",
            ScriptedResponse::okta_error(503, "E0000009", "Service unavailable"),
        )
        .times(1000),
    );
    harness.publish(&provision("r-503-create", "cred-9b")).await;

    let dead = harness.next_dead_letter().await;
    assert_eq!(
        dead.text(headers::ERROR_CODE).as_deref(),
        Some("okta_unavailable")
    );
    assert_eq!(
        harness.calls("POST", "/oauth2/v1/clients").len(),
        1,
        "not repeated blindly"
    );
    assert!(
        !harness.calls("GET", "/oauth2/v1/clients").is_empty(),
        "the client was looked up after the failed registration"
    );
    assert!(harness.sim.clients().is_empty());
    harness.finish().await;
}

/// A registration that got 503, and whose client cannot be found afterwards, is made again:
/// one client, and the result counts both tries.
#[tokio::test]
async fn registration_made_again_counts_attempts() {
    let harness = Harness::start_with(|settings| {
        settings.worker.retry_budget = Duration::from_secs(60);
        settings.worker.in_process_retry = Duration::from_secs(20);
    })
    .await;
    harness.sim.script(Fault::respond(
        "POST",
        "/oauth2/v1/clients",
        ScriptedResponse::okta_error(503, "E0000009", "Service unavailable"),
    ));
    harness.publish(&provision("r-503-once", "cred-9c")).await;

    let result = harness.next_result().await;
    assert_eq!(result.status.level, Level::Success, "{result:?}");
    assert_eq!(result.attempts, 2);
    assert_eq!(harness.calls("POST", "/oauth2/v1/clients").len(), 2);
    assert_eq!(harness.sim.clients().len(), 1);
    harness.finish().await;
}

#[tokio::test]
async fn update_action_decoded() {
    let harness = Harness::start().await;
    let request = json!({
        "requestId": "r-reboot",
        "operation": "update",
        "credentialAction": "reboot",
        "id": "cred-10"
    });
    harness.publish(&request).await;
    let result = harness.next_result().await;
    assert_eq!(result.status.level, Level::Error);
    assert!(
        result.status.reason.contains("reboot"),
        "{}",
        result.status.reason
    );
    harness.finish().await;
}

#[tokio::test]
async fn long_outage_delayed_through_broker() {
    let harness = Harness::start_with(|settings| {
        settings.worker.retry_budget = Duration::from_secs(60);
        settings.worker.in_process_retry = Duration::from_secs(1);
    })
    .await;
    harness.sim.script(
        Fault::respond(
            "GET",
            "/oauth2/v1/clients",
            ScriptedResponse::okta_error(503, "E0000009", "Service unavailable"),
        )
        .times(1000),
    );
    harness
        .publish(&deprovision("r-delayed", "cred-delayed"))
        .await;

    let topology = harness.settings.broker.topology.clone();
    let delay_queue = topology.delay_queue(topology.delay_steps[0]);
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while harness.queue_len(&delay_queue).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the request never reached {delay_queue}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        harness.queue_len(&topology.request_queue).await,
        0,
        "the delayed request is not held in the request queue"
    );
    harness.sim.clear_faults();

    let result = harness.next_result().await;
    assert_eq!(result.request_id, "r-delayed");
    assert_eq!(
        result.status.level,
        Level::Success,
        "{}",
        result.status.reason
    );
    assert!(result.attempts >= 3, "attempts {}", result.attempts);
    assert_eq!(harness.queue_len(&topology.dead_letter_queue).await, 0);
    harness.finish().await;
}

//! Tests of the service-app credential against okta-sim on a loopback port: access tokens,
//! their cache and renewal, and the errors of a rejected credential.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use tokio::net::TcpListener;
use url::Url;

use super::*;
use crate::secret::Secret;
use crate::sim::test_keys::{app_key, other_key, service_app};
use crate::sim::{self, Fault, SimConfig, SimHandle};

const CLIENT_ID: &str = "0oaWorkerServiceApp";

async fn sim_with_app(token_lifetime_secs: u64) -> SimHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = SimConfig {
        service_app: Some(service_app(CLIENT_ID, token_lifetime_secs)),
        ..SimConfig::default()
    };
    sim::start(listener, config).await.unwrap()
}

fn config_for(sim: &SimHandle, private_key: &Secret) -> OktaConfig {
    OktaConfig {
        org_url: Url::parse(&sim.base_url()).unwrap(),
        auth: OktaAuth::service_app(CLIENT_ID, private_key, None).unwrap(),
        call_timeout: Duration::from_secs(5),
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        max_concurrent_calls: 8,
    }
}

fn client_for(sim: &SimHandle) -> OktaClient {
    OktaClient::new(config_for(sim, &app_key().private_pem)).unwrap()
}

fn budget() -> RetryBudget {
    RetryBudget::new(Duration::from_secs(10))
}

/// Returns `(path, status)` of every request okta-sim received.
fn calls(sim: &SimHandle) -> Vec<(String, u16)> {
    sim.requests()
        .into_iter()
        .map(|r| (r.path, r.status))
        .collect()
}

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn bearer_token_reaches_sim() {
    let sim = sim_with_app(3600).await;
    let client = client_for(&sim);
    client.check_credential(&budget()).await.unwrap();
    let expected = vec![
        ("/oauth2/v1/token".to_owned(), 200),
        ("/oauth2/v1/clients".to_owned(), 200),
    ];
    assert_eq!(calls(&sim), expected);
}

#[tokio::test]
async fn concurrent_calls_share_one_token() {
    let sim = sim_with_app(3600).await;
    let client = client_for(&sim);
    let budget = budget();
    let checks = (0..20).map(|_| client.check_credential(&budget));
    let results = futures_util::future::join_all(checks).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(sim.token_requests(), 1);
}

#[tokio::test]
async fn token_reused_until_renewal_due() {
    // A 3 s token is renewed 0.3 s before it expires (a tenth of its lifetime).
    let sim = sim_with_app(3).await;
    let client = client_for(&sim);
    client.check_credential(&budget()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    client.check_credential(&budget()).await.unwrap();
    assert_eq!(sim.token_requests(), 1);
    tokio::time::sleep(Duration::from_millis(1400)).await;
    client.check_credential(&budget()).await.unwrap();
    assert_eq!(sim.token_requests(), 2);
}

#[tokio::test]
async fn revoked_token_renewed_once() {
    let sim = sim_with_app(3600).await;
    let client = client_for(&sim);
    client.check_credential(&budget()).await.unwrap();
    sim.revoke_access_tokens();
    client.check_credential(&budget()).await.unwrap();
    let expected = vec![
        ("/oauth2/v1/token".to_owned(), 200),
        ("/oauth2/v1/clients".to_owned(), 200),
        ("/oauth2/v1/clients".to_owned(), 401),
        ("/oauth2/v1/token".to_owned(), 200),
        ("/oauth2/v1/clients".to_owned(), 200),
    ];
    assert_eq!(calls(&sim), expected);
}

#[tokio::test]
async fn concurrent_rejections_renew_once() {
    let sim = sim_with_app(3600).await;
    let client = client_for(&sim);
    client.check_credential(&budget()).await.unwrap();
    sim.revoke_access_tokens();
    let budget = budget();
    let checks = (0..10).map(|_| client.check_credential(&budget));
    let results = futures_util::future::join_all(checks).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(sim.token_requests(), 2);
}

#[tokio::test]
async fn rejected_token_retried_only_once() {
    let sim = sim_with_app(3600).await;
    let client = client_for(&sim);
    sim.set_token_accepted(false);
    let error = client.check_credential(&budget()).await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Systemic);
    assert_eq!(error.code(), error::codes::CREDENTIAL_REJECTED);
    assert_eq!(sim.token_requests(), 2);
    assert_eq!(sim.requests().len(), 4);
}

#[tokio::test]
async fn wrong_key_is_systemic() {
    let sim = sim_with_app(3600).await;
    let client = OktaClient::new(config_for(&sim, &other_key().private_pem)).unwrap();
    let error = client.check_credential(&budget()).await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Systemic);
    assert_eq!(error.code(), error::codes::CREDENTIAL_REJECTED);
    assert_eq!(error.status(), Some(401));
    assert_eq!(sim.token_requests(), 1);
}

#[tokio::test]
async fn wrong_key_not_reported_absent() {
    let sim = sim_with_app(3600).await;
    let client = OktaClient::new(config_for(&sim, &other_key().private_pem)).unwrap();
    let error = client.get_client("0oaAny", &budget()).await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Systemic);
}

#[tokio::test]
async fn token_endpoint_outage_retried() {
    let sim = sim_with_app(3600).await;
    let fault: Fault = serde_json::from_value(serde_json::json!({
        "method": "POST", "path": "/oauth2/v1/token", "count": 1,
        "action": {"kind": "respond", "status": 503}
    }))
    .unwrap();
    sim.script(fault);
    let client = client_for(&sim);
    client.check_credential(&budget()).await.unwrap();
    assert_eq!(sim.token_requests(), 2);
}

#[tokio::test]
async fn assertions_carry_distinct_jti() {
    // okta-sim rejects a reused jti, so each renewal succeeding shows the jti changed.
    let sim = sim_with_app(3600).await;
    let client = client_for(&sim);
    for _ in 0..3 {
        client.check_credential(&budget()).await.unwrap();
        sim.revoke_access_tokens();
    }
    let token_statuses: Vec<u16> = calls(&sim)
        .into_iter()
        .filter(|(path, _)| path == "/oauth2/v1/token")
        .map(|(_, status)| status)
        .collect();
    assert_eq!(token_statuses, vec![200, 200, 200]);
}

#[tokio::test]
async fn debug_output_hides_key_and_token() {
    let sim = sim_with_app(3600).await;
    let config = config_for(&sim, &app_key().private_pem);
    let client = OktaClient::new(config.clone()).unwrap();
    client.check_credential(&budget()).await.unwrap();
    let key_line = app_key().private_pem.expose().lines().nth(1).unwrap();
    let outputs = [format!("{config:?}"), format!("{client:?}")];
    for output in outputs {
        assert!(!output.contains(key_line), "key leaked in {output}");
        assert!(!output.contains("Bearer"), "token leaked in {output}");
        assert!(output.contains(CLIENT_ID), "client id missing in {output}");
    }
}

#[test]
fn assertion_claims_match_token_endpoint() {
    let app = ServiceApp::new(CLIENT_ID, &app_key().private_pem, None).unwrap();
    let audience = "http://127.0.0.1:1/oauth2/v1/token";
    let assertion = app.client_assertion(audience).unwrap();
    let parts: Vec<&str> = assertion.expose().split('.').collect();
    let (header, claims) = (decode_part(parts[0]), decode_part(parts[1]));
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], app.key_id());
    assert_eq!(claims["iss"], CLIENT_ID);
    assert_eq!(claims["sub"], CLIENT_ID);
    assert_eq!(claims["aud"], audience);
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(lifetime, ASSERTION_LIFETIME.as_secs());
}

#[test]
fn assertion_jti_differs_each_time() {
    let app = ServiceApp::new(CLIENT_ID, &app_key().private_pem, None).unwrap();
    let jti = |assertion: Secret| {
        let claims = decode_part(assertion.expose().split('.').nth(1).unwrap());
        claims["jti"].as_str().unwrap().to_owned()
    };
    let first = jti(app.client_assertion("aud").unwrap());
    let second = jti(app.client_assertion("aud").unwrap());
    assert_ne!(first, second);
}

#[test]
fn key_id_defaults_to_thumbprint() {
    let app = ServiceApp::new(CLIENT_ID, &app_key().private_pem, None).unwrap();
    let public_key = app_key().private_key.to_public_key();
    let jwk = crate::contract::rsa_jwk(&public_key);
    assert_eq!(app.key_id(), jwk["kid"]);
}

#[test]
fn key_id_configured_is_sent() {
    let key_id = Some("key-2024".to_owned());
    let app = ServiceApp::new(CLIENT_ID, &app_key().private_pem, key_id).unwrap();
    assert_eq!(app.key_id(), "key-2024");
}

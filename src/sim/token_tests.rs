//! Tests of the token endpoint and of Bearer access tokens on the Okta routes, over HTTP
//! against a simulator on a loopback port.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::test_keys::{app_key, other_key, service_app, sign_jwt};
use super::*;

const CLIENT_ID: &str = "0oaServiceApp";
const SCOPES: &str = "okta.clients.register okta.clients.read";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

async fn sim_with_app(token_lifetime_secs: u64) -> SimHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = SimConfig {
        service_app: Some(service_app(CLIENT_ID, token_lifetime_secs)),
        ..SimConfig::default()
    };
    start(listener, config).await.unwrap()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims the endpoint accepts, with a fresh `jti`.
fn valid_claims(sim: &SimHandle) -> Value {
    let now = now_secs();
    json!({
        "iss": CLIENT_ID,
        "sub": CLIENT_ID,
        "aud": format!("{}/oauth2/v1/token", sim.base_url()),
        "iat": now,
        "exp": now + 300,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

fn form(assertion: &str, scope: &str) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "client_credentials".to_owned()),
        ("scope", scope.to_owned()),
        ("client_assertion_type", ASSERTION_TYPE.to_owned()),
        ("client_assertion", assertion.to_owned()),
    ]
}

async fn post_form(sim: &SimHandle, form: &[(&'static str, String)]) -> reqwest::Response {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    reqwest::Client::new()
        .post(format!("{}/oauth2/v1/token", sim.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn request_token(sim: &SimHandle, claims: &Value) -> reqwest::Response {
    let assertion = sign_jwt(&app_key().private_key, claims);
    post_form(sim, &form(&assertion, SCOPES)).await
}

/// Returns the status and OAuth `error` of a rejected token request.
async fn rejection(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn access_token(sim: &SimHandle) -> String {
    let response = request_token(sim, &valid_claims(sim)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn list_with_bearer(sim: &SimHandle, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/oauth2/v1/clients", sim.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn token_issued_for_valid_assertion() {
    let sim = sim_with_app(3600).await;
    let response = request_token(&sim, &valid_claims(&sim)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], SCOPES);
    assert!(body["access_token"].as_str().unwrap().len() >= 40);
}

#[tokio::test]
async fn bearer_token_accepted_on_okta_routes() {
    let sim = sim_with_app(3600).await;
    let token = access_token(&sim).await;
    assert_eq!(
        list_with_bearer(&sim, &token).await.status(),
        StatusCode::OK
    );
    let unknown = list_with_bearer(&sim, "not-issued").await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn token_rejects_bad_signature() {
    let sim = sim_with_app(3600).await;
    let assertion = sign_jwt(&other_key().private_key, &valid_claims(&sim));
    let response = post_form(&sim, &form(&assertion, SCOPES)).await;
    let (status, error) = rejection(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error, "invalid_client");
}

#[tokio::test]
async fn token_rejects_tampered_claims() {
    let sim = sim_with_app(3600).await;
    let assertion = sign_jwt(&app_key().private_key, &valid_claims(&sim));
    let parts: Vec<&str> = assertion.split('.').collect();
    let mut claims = valid_claims(&sim);
    claims["sub"] = json!("0oaSomeoneElse");
    let forged_claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let forged = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
    let (status, _) = rejection(post_form(&sim, &form(&forged, SCOPES)).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn token_rejects_wrong_audience() {
    let sim = sim_with_app(3600).await;
    let mut claims = valid_claims(&sim);
    claims["aud"] = json!(format!("{}/oauth2/default/v1/token", sim.base_url()));
    let (status, error) = rejection(request_token(&sim, &claims).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error, "invalid_client");
}

#[tokio::test]
async fn token_rejects_reused_jti() {
    let sim = sim_with_app(3600).await;
    let claims = valid_claims(&sim);
    assert_eq!(request_token(&sim, &claims).await.status(), StatusCode::OK);
    let (status, error) = rejection(request_token(&sim, &claims).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error, "invalid_client");
}

#[tokio::test]
async fn token_rejects_expired_assertion() {
    let sim = sim_with_app(3600).await;
    let mut claims = valid_claims(&sim);
    claims["iat"] = json!(now_secs() - 600);
    claims["exp"] = json!(now_secs() - 300);
    let (status, error) = rejection(request_token(&sim, &claims).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error, "invalid_client");
}

#[tokio::test]
async fn token_rejects_lifetime_over_one_hour() {
    let sim = sim_with_app(3600).await;
    let mut claims = valid_claims(&sim);
    claims["exp"] = json!(now_secs() + 3601);
    let (status, _) = rejection(request_token(&sim, &claims).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn token_rejects_wrong_issuer() {
    let sim = sim_with_app(3600).await;
    let mut claims = valid_claims(&sim);
    claims["iss"] = json!("0oaSomeoneElse");
    let (status, _) = rejection(request_token(&sim, &claims).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn token_rejects_unknown_scope() {
    let sim = sim_with_app(3600).await;
    let assertion = sign_jwt(&app_key().private_key, &valid_claims(&sim));
    let response = post_form(&sim, &form(&assertion, "okta.users.manage")).await;
    let (status, error) = rejection(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error, "invalid_scope");
}

#[tokio::test]
async fn token_rejects_other_grant_type() {
    let sim = sim_with_app(3600).await;
    let assertion = sign_jwt(&app_key().private_key, &valid_claims(&sim));
    let mut fields = form(&assertion, SCOPES);
    fields[0].1 = "password".to_owned();
    let (status, error) = rejection(post_form(&sim, &fields).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error, "unsupported_grant_type");
}

#[tokio::test]
async fn token_without_service_app_rejected() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = start(listener, SimConfig::default()).await.unwrap();
    let (status, error) = rejection(request_token(&sim, &valid_claims(&sim)).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error, "invalid_client");
}

#[tokio::test]
async fn revoked_token_rejected() {
    let sim = sim_with_app(3600).await;
    let token = access_token(&sim).await;
    sim.revoke_access_tokens();
    let response = list_with_bearer(&sim, &token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorCode"], "E0000011");
}

#[tokio::test]
async fn revoke_control_route_revokes() {
    let sim = sim_with_app(3600).await;
    let token = access_token(&sim).await;
    let revoke = reqwest::Client::new()
        .post(format!("{}/sim/v1/tokens/revoke", sim.base_url()))
        .header(
            "authorization",
            format!("SSWS {}", sim.api_token().expose()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
    let response = list_with_bearer(&sim, &token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn expired_token_rejected() {
    let sim = sim_with_app(1).await;
    let token = access_token(&sim).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = list_with_bearer(&sim, &token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn token_requests_recorded() {
    let sim = sim_with_app(3600).await;
    access_token(&sim).await;
    let mut claims = valid_claims(&sim);
    claims["aud"] = json!("https://elsewhere.example/oauth2/v1/token");
    request_token(&sim, &claims).await;
    assert_eq!(sim.token_requests(), 2);
    let statuses: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200, 401]);
}

#[tokio::test]
async fn invalid_public_key_fails_start() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut app = service_app(CLIENT_ID, 60);
    app.public_key_pem = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----".into();
    let config = SimConfig {
        service_app: Some(app),
        ..SimConfig::default()
    };
    let error = start(listener, config).await.err().unwrap();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}

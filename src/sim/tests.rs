//! Tests that start the simulator on a loopback port and drive it over HTTP.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::*;
use crate::okta::model::RegisteredClient;

const CLIENTS: &str = "/oauth2/v1/clients";

async fn start_sim(config: SimConfig) -> SimHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    start(listener, config).await.expect("start")
}

async fn default_sim() -> SimHandle {
    start_sim(SimConfig::default()).await
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// Builds a request carrying the simulator's token.
fn call(sim: &SimHandle, method: Method, path: &str) -> RequestBuilder {
    http()
        .request(method, format!("{}{path}", sim.base_url()))
        .header(
            "Authorization",
            format!("SSWS {}", sim.api_token().expose()),
        )
}

fn service_registration(name: &str) -> Value {
    json!({
        "client_name": name,
        "application_type": "service",
        "grant_types": ["client_credentials"],
        "response_types": ["token"],
        "token_endpoint_auth_method": "client_secret_basic",
    })
}

async fn register(sim: &SimHandle, body: Value) -> Response {
    call(sim, Method::POST, CLIENTS)
        .json(&body)
        .send()
        .await
        .expect("send")
}

async fn create(sim: &SimHandle, name: &str) -> RegisteredClient {
    let response = register(sim, service_registration(name)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.expect("client body")
}

async fn json_body(response: Response) -> Value {
    response.json().await.expect("JSON body")
}

async fn list_names(sim: &SimHandle, query: &str) -> Vec<String> {
    let response = call(sim, Method::GET, &format!("{CLIENTS}?{query}"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    let clients: Vec<RegisteredClient> = response.json().await.expect("list body");
    clients.into_iter().map(|c| c.client_name).collect()
}

fn header<'a>(response: &'a Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("missing header {name}"))
}

fn header_u64(response: &Response, name: &str) -> u64 {
    header(response, name)
        .parse()
        .unwrap_or_else(|_| panic!("header {name} is not a number"))
}

fn date_secs(response: &Response) -> u64 {
    let date = httpdate::parse_http_date(header(response, "date")).expect("HTTP date");
    date.duration_since(UNIX_EPOCH)
        .expect("after epoch")
        .as_secs()
}

fn next_link(response: &Response) -> Option<String> {
    response
        .headers()
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.ends_with("rel=\"next\""))
        .map(|v| v[1..v.find('>').expect("closing bracket")].to_owned())
}

// ---- Registration, list, get, delete ----

#[tokio::test]
async fn create_returns_rfc7591_client() {
    let sim = default_sim().await;
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let client = create(&sim, "svc-a").await;

    assert!(client.client_id.starts_with("0oa"));
    assert_eq!(client.client_id.len(), 20);
    let secret = client.client_secret.expect("secret in create response");
    assert!(secret.expose().len() >= 40);
    assert_eq!(client.client_name, "svc-a");
    assert_eq!(client.client_secret_expires_at, Some(0));
    let issued = client.client_id_issued_at.expect("issued_at");
    assert!(issued >= i64::try_from(before).expect("fits"));
    assert_eq!(
        client.token_endpoint_auth_method.as_deref(),
        Some("client_secret_basic")
    );
    assert_eq!(client.application_type.as_deref(), Some("service"));
}

#[tokio::test]
async fn create_echoes_metadata() {
    let sim = default_sim().await;
    let response = register(&sim, service_registration("svc-echo")).await;
    let body = json_body(response).await;
    assert_eq!(body["grant_types"], json!(["client_credentials"]));
    assert_eq!(body["response_types"], json!(["token"]));
}

#[tokio::test]
async fn create_stores_current_secret() {
    let sim = default_sim().await;
    let client = create(&sim, "svc-a").await;
    let stored = sim.clients();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].client_id, client.client_id);
    assert_eq!(stored[0].client_secret, client.client_secret);
    assert_eq!(stored[0].status, AppStatus::Active);
}

#[tokio::test]
async fn create_without_secret_for_private_key_jwt() {
    let sim = default_sim().await;
    let mut body = service_registration("svc-jwt");
    body["token_endpoint_auth_method"] = json!("private_key_jwt");
    body["jwks"] = json!({"keys": [{"kty": "RSA", "kid": "k1", "n": "abc", "e": "AQAB"}]});
    let response = register(&sim, body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let client: RegisteredClient = response.json().await.expect("client");
    assert!(client.client_secret.is_none());
}

#[tokio::test]
async fn get_returns_created_client() {
    let sim = default_sim().await;
    let created = create(&sim, "svc-a").await;
    let response = call(
        &sim,
        Method::GET,
        &format!("{CLIENTS}/{}", created.client_id),
    )
    .send()
    .await
    .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    let fetched: RegisteredClient = response.json().await.expect("client");
    assert_eq!(fetched.client_id, created.client_id);
    assert_eq!(fetched.client_name, "svc-a");
}

#[tokio::test]
async fn list_returns_creation_order() {
    let sim = default_sim().await;
    for name in ["c", "a", "b"] {
        create(&sim, name).await;
    }
    assert_eq!(list_names(&sim, "").await, ["c", "a", "b"]);
}

#[tokio::test]
async fn delete_removes_client() {
    let sim = default_sim().await;
    let created = create(&sim, "svc-a").await;
    let path = format!("{CLIENTS}/{}", created.client_id);

    let deleted = call(&sim, Method::DELETE, &path)
        .send()
        .await
        .expect("send");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(sim.clients().is_empty());

    let fetched = call(&sim, Method::GET, &path).send().await.expect("send");
    assert_eq!(fetched.status(), StatusCode::NOT_FOUND);
    let body = json_body(fetched).await;
    assert_eq!(body["errorCode"], "E0000007");
    let summary = body["errorSummary"].as_str().expect("summary");
    assert!(summary.contains(&created.client_id));
    assert!(body["errorId"]
        .as_str()
        .expect("errorId")
        .starts_with("oae"));
}

#[tokio::test]
async fn delete_unknown_is_404() {
    let sim = default_sim().await;
    let response = call(&sim, Method::DELETE, &format!("{CLIENTS}/0oaMissing"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_body(response).await["errorCode"], "E0000007");
}

#[tokio::test]
async fn delete_active_refused_when_configured() {
    let sim = start_sim(SimConfig {
        delete_requires_inactive: true,
        ..SimConfig::default()
    })
    .await;
    let created = create(&sim, "svc-a").await;
    let path = format!("{CLIENTS}/{}", created.client_id);

    let rejected = call(&sim, Method::DELETE, &path)
        .send()
        .await
        .expect("send");
    assert_eq!(rejected.status(), StatusCode::FORBIDDEN);
    assert_eq!(json_body(rejected).await["errorCode"], "E0000056");
    assert_eq!(sim.clients().len(), 1);

    let deactivate = format!("/api/v1/apps/{}/lifecycle/deactivate", created.client_id);
    call(&sim, Method::POST, &deactivate)
        .send()
        .await
        .expect("send");
    let deleted = call(&sim, Method::DELETE, &path)
        .send()
        .await
        .expect("send");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn duplicate_names_allowed() {
    let sim = default_sim().await;
    let first = create(&sim, "same").await;
    let second = create(&sim, "same").await;
    assert_ne!(first.client_id, second.client_id);
    assert_eq!(list_names(&sim, "q=same").await, ["same", "same"]);
}

#[tokio::test]
async fn list_q_matches_name_prefix() {
    let sim = default_sim().await;
    for name in ["alpha-1", "alpha-2", "beta-alpha", "Alpha-3"] {
        create(&sim, name).await;
    }
    assert_eq!(list_names(&sim, "q=alpha").await, ["alpha-1", "alpha-2"]);
    assert_eq!(list_names(&sim, "q=alpha-2").await, ["alpha-2"]);
    assert!(list_names(&sim, "q=gamma").await.is_empty());
}

#[tokio::test]
async fn list_q_decodes_query() {
    let sim = default_sim().await;
    create(&sim, "amplify app+1").await;
    create(&sim, "amplify app 2").await;
    let names = list_names(&sim, "q=amplify%20app%2B").await;
    assert_eq!(names, ["amplify app+1"]);
}

#[tokio::test]
async fn list_paginates_with_link_header() {
    let sim = default_sim().await;
    for i in 0..5 {
        create(&sim, &format!("page-{i}")).await;
    }
    create(&sim, "other").await;

    let mut url = format!("{}{CLIENTS}?q=page-&limit=2", sim.base_url());
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        let response = http()
            .get(&url)
            .header(
                "Authorization",
                format!("SSWS {}", sim.api_token().expose()),
            )
            .send()
            .await
            .expect("send");
        let next = next_link(&response);
        let page: Vec<RegisteredClient> = response.json().await.expect("page");
        assert!(page.len() <= 2);
        names.extend(page.into_iter().map(|c| c.client_name));
        pages += 1;
        match next {
            Some(next) => url = next,
            None => break,
        }
    }
    assert_eq!(names, ["page-0", "page-1", "page-2", "page-3", "page-4"]);
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn list_limit_defaults_and_clamps() {
    let sim = default_sim().await;
    for i in 0..21 {
        create(&sim, &format!("n{i}")).await;
    }
    assert_eq!(list_names(&sim, "").await.len(), 20);
    assert_eq!(list_names(&sim, "limit=500").await.len(), 21);
    let invalid = call(&sim, Method::GET, &format!("{CLIENTS}?limit=zero"))
        .send()
        .await
        .expect("send");
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_body(invalid).await["errorCode"], "E0000001");
}

#[tokio::test]
async fn list_and_get_hide_secret() {
    let sim = default_sim().await;
    let created = create(&sim, "svc-a").await;
    let secret = created.client_secret.expect("secret").expose().to_owned();

    let list = call(&sim, Method::GET, CLIENTS).send().await.expect("send");
    let list_text = list.text().await.expect("text");
    assert!(!list_text.contains("client_secret\""));
    assert!(!list_text.contains(&secret));

    let path = format!("{CLIENTS}/{}", created.client_id);
    let get = call(&sim, Method::GET, &path).send().await.expect("send");
    let get_text = get.text().await.expect("text");
    assert!(!get_text.contains("client_secret\""));
    assert!(!get_text.contains(&secret));
}

// ---- Validation ----

#[tokio::test]
async fn registration_rejections_name_value() {
    let sim = default_sim().await;
    let web = json!({
        "client_name": "web-app",
        "application_type": "web",
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "redirect_uris": ["https://app.example.com/cb"],
        "token_endpoint_auth_method": "client_secret_basic",
    });
    let with = |base: &Value, field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    let without = |base: &Value, field: &str| {
        let mut body = base.clone();
        body.as_object_mut().expect("object").remove(field);
        body
    };
    let service = service_registration("svc");
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "service with authorization_code",
            with(&service, "grant_types", json!(["authorization_code"])),
            "authorization_code",
        ),
        (
            "browser with client_secret_basic",
            with(
                &with(&web, "application_type", json!("browser")),
                "token_endpoint_auth_method",
                json!("client_secret_basic"),
            ),
            "client_secret_basic",
        ),
        (
            "missing redirect URI",
            without(&web, "redirect_uris"),
            "redirect_uris",
        ),
        (
            "JWK with private member d",
            with(
                &with(
                    &service,
                    "token_endpoint_auth_method",
                    json!("private_key_jwt"),
                ),
                "jwks",
                json!({"keys": [{"kty": "RSA", "kid": "k1", "n": "x", "e": "AQAB", "d": "secret"}]}),
            ),
            "'d'",
        ),
        (
            "private_key_jwt without keys",
            with(
                &service,
                "token_endpoint_auth_method",
                json!("private_key_jwt"),
            ),
            "jwks",
        ),
        (
            "missing client_name",
            without(&service, "client_name"),
            "client_name",
        ),
        (
            "unknown application_type",
            with(&service, "application_type", json!("desktop")),
            "desktop",
        ),
        (
            "unknown grant type",
            with(&web, "grant_types", json!(["authorization_code", "magic"])),
            "magic",
        ),
        (
            "relative redirect URI",
            with(&web, "redirect_uris", json!(["/callback"])),
            "/callback",
        ),
        (
            "unknown auth method",
            with(
                &service,
                "token_endpoint_auth_method",
                json!("tls_client_auth"),
            ),
            "tls_client_auth",
        ),
        (
            "client_credentials on web app",
            with(
                &web,
                "grant_types",
                json!(["authorization_code", "client_credentials"]),
            ),
            "client_credentials",
        ),
    ];

    for (case, body, named_value) in cases {
        let response = register(&sim, body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
        let error = json_body(response).await;
        assert_eq!(error["error"], "invalid_client_metadata", "{case}");
        let description = error["error_description"].as_str().expect("description");
        assert!(
            description.contains(named_value),
            "{case}: '{description}' does not name '{named_value}'"
        );
    }
    assert!(sim.clients().is_empty());
}

#[tokio::test]
async fn registration_accepts_valid_web_and_browser() {
    let sim = default_sim().await;
    let browser = json!({
        "client_name": "spa",
        "application_type": "browser",
        "grant_types": ["authorization_code"],
        "redirect_uris": ["https://spa.example.com/cb"],
        "token_endpoint_auth_method": "none",
    });
    let response = register(&sim, browser).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body = json_body(response).await;
    assert_eq!(body["response_types"], json!(["code"]));
    assert!(body.get("client_secret").is_none());
}

#[tokio::test]
async fn registration_malformed_json_is_400() {
    let sim = default_sim().await;
    let response = call(&sim, Method::POST, CLIENTS)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_body(response).await["errorCode"], "E0000003");
}

// ---- Secrets, lifecycle, groups ----

#[tokio::test]
async fn new_secret_replaces_current_secret() {
    let sim = default_sim().await;
    let created = create(&sim, "svc-a").await;
    let path = format!("{CLIENTS}/{}/lifecycle/newSecret", created.client_id);

    let response = call(&sim, Method::POST, &path).send().await.expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    let rotated: RegisteredClient = response.json().await.expect("client");
    let new_secret = rotated.client_secret.expect("new secret");

    assert_ne!(Some(&new_secret), created.client_secret.as_ref());
    assert_eq!(sim.clients()[0].client_secret, Some(new_secret));
}

#[tokio::test]
async fn new_secret_rejects_none_client() {
    let sim = default_sim().await;
    let body = json!({
        "client_name": "native",
        "application_type": "native",
        "grant_types": ["authorization_code"],
        "redirect_uris": ["com.example.app:/cb"],
        "token_endpoint_auth_method": "none",
    });
    let created: RegisteredClient = register(&sim, body).await.json().await.expect("client");
    let path = format!("{CLIENTS}/{}/lifecycle/newSecret", created.client_id);

    let response = call(&sim, Method::POST, &path).send().await.expect("send");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json_body(response).await["error"],
        "invalid_client_metadata"
    );
    assert!(sim.clients()[0].client_secret.is_none());
}

#[tokio::test]
async fn new_secret_unknown_is_404() {
    let sim = default_sim().await;
    let path = format!("{CLIENTS}/0oaMissing/lifecycle/newSecret");
    let response = call(&sim, Method::POST, &path).send().await.expect("send");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn deactivate_then_activate_status() {
    let sim = default_sim().await;
    let created = create(&sim, "svc-a").await;
    let lifecycle = |action: &str| format!("/api/v1/apps/{}/lifecycle/{action}", created.client_id);

    let response = call(&sim, Method::POST, &lifecycle("deactivate"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json_body(response).await, json!({}));
    assert_eq!(sim.clients()[0].status, AppStatus::Inactive);

    let response = call(&sim, Method::POST, &lifecycle("activate"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(sim.clients()[0].status, AppStatus::Active);
}

#[tokio::test]
async fn lifecycle_unknown_app_is_404() {
    let sim = default_sim().await;
    for action in ["activate", "deactivate"] {
        let path = format!("/api/v1/apps/0oaMissing/lifecycle/{action}");
        let response = call(&sim, Method::POST, &path).send().await.expect("send");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{action}");
        assert_eq!(json_body(response).await["errorCode"], "E0000007");
    }
}

#[tokio::test]
async fn group_assignment_recorded() {
    let sim = default_sim().await;
    let created = create(&sim, "svc-a").await;
    let path = format!("/api/v1/apps/{}/groups/00g123", created.client_id);

    let response = call(&sim, Method::PUT, &path).send().await.expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    let body = json_body(response).await;
    assert_eq!(body["id"], "00g123");
    assert_eq!(body["priority"], 0);
    assert!(body["lastUpdated"].is_string());
    assert!(body["_links"]["app"]["href"]
        .as_str()
        .expect("href")
        .ends_with(&format!("/api/v1/apps/{}", created.client_id)));

    call(&sim, Method::PUT, &path).send().await.expect("send");
    assert_eq!(sim.clients()[0].group_ids, ["00g123"]);
}

#[tokio::test]
async fn group_assignment_unknown_app_is_404() {
    let sim = default_sim().await;
    let response = call(&sim, Method::PUT, "/api/v1/apps/0oaMissing/groups/00g1")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

// ---- Authentication ----

#[tokio::test]
async fn missing_or_wrong_token_is_401() {
    let sim = default_sim().await;
    let url = format!("{}{CLIENTS}", sim.base_url());
    let token = sim.api_token().expose().to_owned();
    let requests = [
        ("no header", http().get(&url)),
        (
            "wrong token",
            http().get(&url).header("Authorization", "SSWS 00wrong"),
        ),
        (
            "bearer scheme",
            http()
                .get(&url)
                .header("Authorization", format!("Bearer {token}")),
        ),
    ];
    for (case, request) in requests {
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
        let body = json_body(response).await;
        assert_eq!(body["errorCode"], "E0000011", "{case}");
        assert_eq!(body["errorSummary"], "Invalid token provided", "{case}");
    }
}

#[tokio::test]
async fn rejected_token_setting_gives_401() {
    let sim = default_sim().await;
    sim.set_token_accepted(false);
    let response = register(&sim, service_registration("svc")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_body(response).await["errorCode"], "E0000011");
    assert!(sim.clients().is_empty());

    sim.set_token_accepted(true);
    let response = register(&sim, service_registration("svc")).await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn configured_token_is_used() {
    let sim = start_sim(SimConfig {
        api_token: Some(Secret::new("00configured")),
        ..SimConfig::default()
    })
    .await;
    assert_eq!(sim.api_token().expose(), "00configured");
    let response = http()
        .get(format!("{}{CLIENTS}", sim.base_url()))
        .header("Authorization", "SSWS 00configured")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
}

// ---- Headers and rate limits ----

#[tokio::test]
async fn standard_headers_on_every_response() {
    let sim = default_sim().await;
    let created = create(&sim, "svc-a").await;
    let responses = [
        (
            "create",
            register(&sim, service_registration("svc-b")).await,
        ),
        (
            "list",
            call(&sim, Method::GET, CLIENTS).send().await.expect("send"),
        ),
        (
            "get",
            call(
                &sim,
                Method::GET,
                &format!("{CLIENTS}/{}", created.client_id),
            )
            .send()
            .await
            .expect("send"),
        ),
        (
            "not found",
            call(&sim, Method::GET, &format!("{CLIENTS}/0oaX"))
                .send()
                .await
                .expect("send"),
        ),
        (
            "unknown route",
            call(&sim, Method::GET, "/api/v1/users")
                .send()
                .await
                .expect("send"),
        ),
        (
            "unauthorized",
            http()
                .get(format!("{}{CLIENTS}", sim.base_url()))
                .send()
                .await
                .expect("send"),
        ),
    ];
    for (case, response) in responses {
        let date = date_secs(&response);
        let reset = header_u64(&response, "x-rate-limit-reset");
        let limit = header_u64(&response, "x-rate-limit-limit");
        let remaining = header_u64(&response, "x-rate-limit-remaining");
        assert!(reset > date, "{case}: reset {reset} not after date {date}");
        assert!(
            reset <= date + 60,
            "{case}: reset {reset} beyond the window"
        );
        assert_eq!(limit, 1_000_000, "{case}");
        assert!(remaining < limit, "{case}");
        assert!(!header(&response, "x-okta-request-id").is_empty(), "{case}");
    }
}

#[tokio::test]
async fn remaining_counts_down_per_bucket() {
    let sim = default_sim().await;
    let first = call(&sim, Method::GET, CLIENTS).send().await.expect("send");
    let second = call(&sim, Method::GET, CLIENTS).send().await.expect("send");
    let apps = call(&sim, Method::POST, "/api/v1/apps/0oaX/lifecycle/activate")
        .send()
        .await
        .expect("send");
    let first_remaining = header_u64(&first, "x-rate-limit-remaining");
    // Both requests fall in one window unless a minute boundary passed between them.
    if header_u64(&first, "x-rate-limit-reset") == header_u64(&second, "x-rate-limit-reset") {
        assert_eq!(
            header_u64(&second, "x-rate-limit-remaining"),
            first_remaining - 1
        );
    }
    assert_eq!(header_u64(&apps, "x-rate-limit-remaining"), 999_999);
}

/// Sends four list requests to a fresh simulator limited to three per minute.
async fn four_calls_limited_to_three() -> (SimHandle, Vec<StatusCode>, Response) {
    let sim = start_sim(SimConfig {
        rate_limit_per_minute: Some(3),
        ..SimConfig::default()
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = call(&sim, Method::GET, CLIENTS).send().await.expect("send");
        statuses.push(response.status());
    }
    let last = call(&sim, Method::GET, CLIENTS).send().await.expect("send");
    statuses.push(last.status());
    (sim, statuses, last)
}

#[tokio::test]
async fn rate_limit_gives_429_after_limit() {
    let (mut sim, mut statuses, mut last) = four_calls_limited_to_three().await;
    // A minute boundary between the calls resets the count, so one retry is allowed.
    if statuses[3] != StatusCode::TOO_MANY_REQUESTS {
        (sim, statuses, last) = four_calls_limited_to_three().await;
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert_eq!(header_u64(&last, "x-rate-limit-limit"), 3);
    assert_eq!(header_u64(&last, "x-rate-limit-remaining"), 0);
    assert_eq!(json_body(last).await["errorCode"], "E0000047");

    let apps = call(&sim, Method::POST, "/api/v1/apps/0oaX/lifecycle/activate")
        .send()
        .await
        .expect("send");
    assert_eq!(apps.status(), StatusCode::NOT_FOUND);
}

// ---- Faults ----

#[tokio::test]
async fn fault_applies_count_times() {
    let sim = default_sim().await;
    sim.script(
        Fault::respond(
            "POST",
            CLIENTS,
            ScriptedResponse::okta_error(503, "E0000009", "Internal Server Error"),
        )
        .times(2),
    );

    for attempt in 0..2 {
        let response = register(&sim, service_registration("svc")).await;
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "attempt {attempt}"
        );
        assert_eq!(json_body(response).await["errorCode"], "E0000009");
    }
    let response = register(&sim, service_registration("svc")).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(sim.clients().len(), 1);

    let faulted: Vec<bool> = sim.requests().iter().map(|r| r.faulted).collect();
    assert_eq!(faulted, [true, true, false]);
    assert!(sim.pending_faults().is_empty());
}

#[tokio::test]
async fn fault_matches_only_its_pattern() {
    let sim = default_sim().await;
    let created = create(&sim, "svc-a").await;
    sim.script(Fault::respond(
        "DELETE",
        "/oauth2/v1/clients/*",
        ScriptedResponse::new(500),
    ));

    let new_secret = format!("{CLIENTS}/{}/lifecycle/newSecret", created.client_id);
    let response = call(&sim, Method::POST, &new_secret)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    let get = format!("{CLIENTS}/{}", created.client_id);
    let response = call(&sim, Method::GET, &get).send().await.expect("send");
    assert_eq!(response.status(), StatusCode::OK);

    let response = call(&sim, Method::DELETE, &get).send().await.expect("send");
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(sim.clients().len(), 1);
}

#[tokio::test]
async fn fault_sends_headers_and_empty_body() {
    let sim = default_sim().await;
    sim.script(Fault::respond(
        "GET",
        CLIENTS,
        ScriptedResponse::new(503).with_header("Retry-After", "7"),
    ));
    let response = call(&sim, Method::GET, CLIENTS).send().await.expect("send");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&response, "retry-after"), "7");
    assert!(!header(&response, "x-okta-request-id").is_empty());
    assert!(response.text().await.expect("text").is_empty());
}

#[tokio::test]
async fn apply_then_respond_creates_client() {
    let sim = default_sim().await;
    sim.script(Fault::apply_then_respond(
        "POST",
        CLIENTS,
        ScriptedResponse::new(502),
    ));
    let response = register(&sim, service_registration("lost-201")).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let clients = sim.clients();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].metadata.client_name, "lost-201");
    let recorded = sim.requests();
    assert_eq!(recorded[0].status, 502);
    assert!(recorded[0].faulted);
}

#[tokio::test]
async fn fault_reset_in_sets_reset_header() {
    let sim = default_sim().await;
    sim.script(Fault::rate_limited("GET", CLIENTS, Duration::from_secs(30)));
    let response = call(&sim, Method::GET, CLIENTS).send().await.expect("send");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header_u64(&response, "x-rate-limit-reset"),
        date_secs(&response) + 30
    );
    assert_eq!(header_u64(&response, "x-rate-limit-remaining"), 0);
    assert_eq!(json_body(response).await["errorCode"], "E0000047");
}

#[tokio::test]
async fn fault_delay_postpones_response() {
    let sim = default_sim().await;
    sim.script(
        Fault::respond("GET", CLIENTS, ScriptedResponse::new(500))
            .with_delay(Duration::from_millis(150)),
    );
    let started = Instant::now();
    let response = call(&sim, Method::GET, CLIENTS).send().await.expect("send");
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn clear_faults_restores_routes() {
    let sim = default_sim().await;
    sim.script(Fault::respond("GET", CLIENTS, ScriptedResponse::new(500)));
    sim.clear_faults();
    let response = call(&sim, Method::GET, CLIENTS).send().await.expect("send");
    assert_eq!(response.status(), StatusCode::OK);
}

// ---- Recording, latency, routing, shutdown ----

#[tokio::test]
async fn requests_recorded_in_order() {
    let sim = default_sim().await;
    let before = SystemTime::now();
    create(&sim, "svc-a").await;
    call(&sim, Method::GET, &format!("{CLIENTS}?q=svc&limit=5"))
        .send()
        .await
        .expect("send");
    call(&sim, Method::GET, "/nowhere")
        .send()
        .await
        .expect("send");

    let recorded = sim.requests();
    let summary: Vec<(&str, &str, u16)> = recorded
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.status))
        .collect();
    assert_eq!(
        summary,
        [
            ("POST", CLIENTS, 201),
            ("GET", CLIENTS, 200),
            ("GET", "/nowhere", 404)
        ]
    );
    assert_eq!(recorded[0].query, None);
    assert_eq!(recorded[1].query.as_deref(), Some("q=svc&limit=5"));
    assert!(recorded[0].received_at >= before);
    assert!(recorded[1].received_at >= recorded[0].received_at);
}

#[tokio::test]
async fn latency_delays_response() {
    let sim = start_sim(SimConfig {
        latency: Duration::from_millis(200),
        ..SimConfig::default()
    })
    .await;
    let started = Instant::now();
    let response = call(&sim, Method::GET, CLIENTS).send().await.expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn latency_does_not_serialize_requests() {
    let sim = start_sim(SimConfig {
        latency: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await;
    let started = Instant::now();
    let calls = (0..4).map(|_| call(&sim, Method::GET, CLIENTS).send());
    let responses = futures_util::future::join_all(calls).await;
    assert!(responses
        .iter()
        .all(|r| r.as_ref().is_ok_and(|r| r.status() == StatusCode::OK)));
    assert!(started.elapsed() < Duration::from_millis(1_200));
}

#[tokio::test]
async fn unknown_route_is_okta_404() {
    let sim = default_sim().await;
    let response = call(&sim, Method::GET, "/api/v1/users/me")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_body(response).await["errorCode"], "E0000007");
}

#[tokio::test]
async fn wrong_method_is_okta_405() {
    let sim = default_sim().await;
    let response = call(&sim, Method::PATCH, CLIENTS)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(!header(&response, "x-okta-request-id").is_empty());
    assert_eq!(json_body(response).await["errorCode"], "E0000022");
}

#[tokio::test]
async fn shutdown_stops_listening() {
    let sim = default_sim().await;
    let url = format!("{}{CLIENTS}", sim.base_url());
    sim.shutdown().await;
    let result = http().get(&url).send().await;
    assert!(result.is_err());
}

#[tokio::test]
async fn offline_refuses_connections_keeps_state() {
    let sim = default_sim().await;
    let created = create(&sim, "svc-a").await;
    let base_url = sim.base_url();

    sim.go_offline().await.expect("go offline");
    let refused = call(&sim, Method::GET, CLIENTS).send().await;
    let error = refused.expect_err("a call while offline must fail");
    assert!(error.is_connect(), "expected a refused connection: {error}");

    sim.go_online().await.expect("go online");
    assert_eq!(sim.base_url(), base_url);
    let path = format!("{CLIENTS}/{}", created.client_id);
    let response = call(&sim, Method::GET, &path).send().await.expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(sim.clients().len(), 1);
    assert_eq!(sim.clients()[0].client_secret, created.client_secret);
}

#[tokio::test]
async fn offline_drops_open_connections() {
    let sim = default_sim().await;
    let client = http();
    // An earlier call leaves an idle keep-alive connection in the client's pool.
    let first = client
        .get(format!("{}{CLIENTS}", sim.base_url()))
        .header(
            "Authorization",
            format!("SSWS {}", sim.api_token().expose()),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(first.status(), StatusCode::OK);
    sim.script(
        Fault::respond("GET", CLIENTS, ScriptedResponse::new(200))
            .with_delay(Duration::from_secs(10)),
    );
    let in_flight = tokio::spawn(
        client
            .get(format!("{}{CLIENTS}", sim.base_url()))
            .header(
                "Authorization",
                format!("SSWS {}", sim.api_token().expose()),
            )
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    sim.go_offline().await.expect("go offline");
    let outcome = tokio::time::timeout(Duration::from_secs(5), in_flight)
        .await
        .expect("the call in flight must end when the server goes offline")
        .expect("task");
    assert!(outcome.is_err(), "the call in flight got a response");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn offline_then_shutdown_releases_port() {
    let sim = default_sim().await;
    let address = sim.base_url().trim_start_matches("http://").to_owned();
    sim.go_offline().await.expect("go offline");
    sim.clone().shutdown().await;
    let rebound = TcpListener::bind(&address).await;
    assert!(rebound.is_ok(), "port still held: {rebound:?}");
    drop(rebound);

    sim.go_online().await.expect("no-op after shutdown");
    let refused = http()
        .get(format!("{}{CLIENTS}", sim.base_url()))
        .send()
        .await;
    assert!(refused.is_err(), "a shut-down simulator came back online");
}

#[tokio::test]
async fn issued_secrets_keep_replaced_and_deleted() {
    let sim = default_sim().await;
    let created = create(&sim, "svc-a").await;
    let path = format!("{CLIENTS}/{}/lifecycle/newSecret", created.client_id);
    let rotated: RegisteredClient = call(&sim, Method::POST, &path)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("client");
    let delete = format!("{CLIENTS}/{}", created.client_id);
    let deleted = call(&sim, Method::DELETE, &delete)
        .send()
        .await
        .expect("send");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

    let issued = sim.issued_secrets();
    assert_eq!(issued.len(), 2);
    assert_eq!(Some(&issued[0]), created.client_secret.as_ref());
    assert_eq!(Some(&issued[1]), rotated.client_secret.as_ref());
}

#[tokio::test]
async fn base_url_uses_loopback_for_unspecified() {
    let listener = TcpListener::bind("0.0.0.0:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let sim = start(listener, SimConfig::default()).await.expect("start");
    assert_eq!(sim.base_url(), format!("http://127.0.0.1:{port}"));
}

// ---- Control API ----

#[tokio::test]
async fn control_api_end_to_end() {
    let sim = default_sim().await;
    let fault = json!({
        "method": "POST",
        "path": CLIENTS,
        "count": 1,
        "action": {
            "kind": "respond",
            "status": 500,
            "body": {"errorCode": "E0000009", "errorSummary": "Internal Server Error"}
        }
    });
    let added = call(&sim, Method::POST, "/sim/v1/faults")
        .json(&fault)
        .send()
        .await
        .expect("send");
    assert_eq!(added.status(), StatusCode::NO_CONTENT);
    let pending = json_body(
        call(&sim, Method::GET, "/sim/v1/faults")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(pending[0]["count"], 1);

    let failed = register(&sim, service_registration("svc")).await;
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let created = create(&sim, "svc").await;

    let clients: Vec<SimClient> = call(&sim, Method::GET, "/sim/v1/clients")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("clients");
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].client_secret, created.client_secret);
    assert_eq!(clients[0].status, AppStatus::Active);

    let requests: Vec<RecordedRequest> = call(&sim, Method::GET, "/sim/v1/requests")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("requests");
    let statuses: Vec<(u16, bool)> = requests.iter().map(|r| (r.status, r.faulted)).collect();
    assert_eq!(statuses, [(500, true), (201, false)]);

    call(&sim, Method::POST, "/sim/v1/faults")
        .json(&fault)
        .send()
        .await
        .expect("send");
    let cleared = call(&sim, Method::DELETE, "/sim/v1/faults")
        .send()
        .await
        .expect("send");
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
    assert!(sim.pending_faults().is_empty());

    let rejected = call(&sim, Method::POST, "/sim/v1/token")
        .json(&json!({"accepted": false}))
        .send()
        .await
        .expect("send");
    assert_eq!(rejected.status(), StatusCode::NO_CONTENT);
    let denied = call(&sim, Method::GET, CLIENTS).send().await.expect("send");
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    call(&sim, Method::POST, "/sim/v1/token")
        .json(&json!({"accepted": true}))
        .send()
        .await
        .expect("send");
    let allowed = call(&sim, Method::GET, CLIENTS).send().await.expect("send");
    assert_eq!(allowed.status(), StatusCode::OK);
}

/// The README's control API table has a row for each route below and no other, and each route
/// is served (the response is neither 404 nor 405).
#[tokio::test]
async fn readme_lists_control_routes() {
    let readme = include_str!("../../README.md");
    let routes = [
        (Method::GET, "/sim/v1/clients"),
        (Method::POST, "/sim/v1/faults"),
        (Method::GET, "/sim/v1/faults"),
        (Method::DELETE, "/sim/v1/faults"),
        (Method::GET, "/sim/v1/requests"),
        (Method::POST, "/sim/v1/token"),
        (Method::POST, "/sim/v1/tokens/revoke"),
    ];
    let sim = default_sim().await;
    for (method, path) in &routes {
        let row = format!("| `{method} {path}` |");
        assert!(readme.contains(&row), "README has no row {row}");
        let response = call(&sim, method.clone(), path).send().await.expect("send");
        let status = response.status();
        assert_ne!(status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
    }
    let listed = readme.matches("| `GET /sim/v1/").count()
        + readme.matches("| `POST /sim/v1/").count()
        + readme.matches("| `DELETE /sim/v1/").count();
    assert_eq!(
        listed,
        routes.len(),
        "README lists routes the test does not know"
    );
}

#[tokio::test]
async fn control_requires_token() {
    let sim = default_sim().await;
    let response = http()
        .get(format!("{}/sim/v1/clients", sim.base_url()))
        .header("Authorization", "SSWS 00wrong")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn control_rejects_invalid_fault() {
    let sim = default_sim().await;
    let cases = [
        json!({"method": "GET", "path": CLIENTS, "count": 0, "action": {"kind": "respond", "status": 500}}),
        json!({"method": "GET", "path": CLIENTS, "action": {"kind": "respond", "status": 42}}),
        json!({"method": "GET", "path": CLIENTS, "action": {"kind": "explode"}}),
    ];
    for fault in cases {
        let response = call(&sim, Method::POST, "/sim/v1/faults")
            .json(&fault)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{fault}");
        assert_eq!(json_body(response).await["errorCode"], "E0000001");
    }
    assert!(sim.pending_faults().is_empty());
}

#[tokio::test]
async fn control_not_recorded_or_limited() {
    let sim = start_sim(SimConfig {
        rate_limit_per_minute: Some(1),
        latency: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await;
    sim.set_token_accepted(false);
    let started = Instant::now();
    for _ in 0..3 {
        let response = call(&sim, Method::GET, "/sim/v1/clients")
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().get("x-rate-limit-limit").is_none());
    }
    assert!(started.elapsed() < Duration::from_millis(300));
    assert!(sim.requests().is_empty());
}

// ---- serve_forever ----

/// Runs `serve_until` in a task and returns the startup line and the stop sender.
async fn serve_in_task(
    config: SimConfig,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (line_tx, line_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let announce = move |line: &str| {
        let _ = line_tx.send(line.to_owned());
    };
    let stop = async move {
        let _ = stop_rx.await;
    };
    let task = tokio::spawn(serve_until(listener, config, announce, stop));
    let line = line_rx.await.expect("startup line");
    (line, stop_tx, task)
}

fn line_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|field| field.strip_prefix(key)?.strip_prefix('='))
}

#[tokio::test]
async fn startup_line_prints_generated_token() {
    let (line, stop, task) = serve_in_task(SimConfig::default()).await;
    assert!(line.starts_with("okta-sim "));
    let base_url = line_field(&line, "base_url").expect("base_url field");
    let token = line_field(&line, "api_token").expect("api_token field");

    let response = http()
        .get(format!("{base_url}{CLIENTS}"))
        .header("Authorization", format!("SSWS {token}"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);

    stop.send(()).expect("server still running");
    assert!(task.await.expect("task").is_ok());
    assert!(http()
        .get(format!("{base_url}{CLIENTS}"))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn startup_line_omits_configured_token() {
    let config = SimConfig {
        api_token: Some(Secret::new("00configured")),
        ..SimConfig::default()
    };
    let (line, stop, task) = serve_in_task(config).await;
    assert!(line_field(&line, "base_url").is_some());
    assert!(line_field(&line, "api_token").is_none());
    assert!(!line.contains("00configured"));
    stop.send(()).expect("server still running");
    assert!(task.await.expect("task").is_ok());
}

//! Tests of `OktaClient` against a scripted HTTP server on 127.0.0.1.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Response, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use url::Url;

use super::*;
use crate::contract::registration::ClientRegistration;
use crate::secret::Secret;

const TOKEN: &str = "00tOkEn-that-must-never-leak";

/// One request as the mock server received it.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: String,
    at: SystemTime,
}

impl Recorded {
    fn route(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// The mock server's response to one request.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".to_owned())],
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Responder = dyn Fn(&Recorded, usize) -> Reply + Send + Sync;

/// An HTTP server on 127.0.0.1 that records every request and responds with `respond`,
/// which receives the request and its zero-based position among all requests.
struct MockOkta {
    url: Url,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl MockOkta {
    async fn start(respond: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let respond: Arc<Responder> = Arc::new(respond);
        let log = requests.clone();
        let app = Router::new().fallback(move |request: Request| {
            let (log, respond) = (log.clone(), respond.clone());
            async move { answer(request, &log, respond.as_ref()).await }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, requests }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    fn routes(&self) -> Vec<String> {
        self.requests().iter().map(Recorded::route).collect()
    }

    fn client(&self) -> OktaClient {
        OktaClient::new(config(&self.url)).unwrap()
    }
}

async fn answer(
    request: Request,
    log: &Mutex<Vec<Recorded>>,
    respond: &Responder,
) -> Response<Body> {
    let at = SystemTime::now();
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at,
    };
    let index = {
        let mut log = log.lock().unwrap();
        log.push(recorded.clone());
        log.len() - 1
    };
    let reply = respond(&recorded, index);
    tokio::time::sleep(reply.delay).await;
    let mut response = Response::builder().status(StatusCode::from_u16(reply.status).unwrap());
    for (name, value) in reply.headers {
        response = response.header(name, value);
    }
    response.body(Body::from(reply.body)).unwrap()
}

fn config(url: &Url) -> OktaConfig {
    OktaConfig {
        org_url: url.clone(),
        auth: OktaAuth::ApiToken(Secret::new(TOKEN)),
        call_timeout: Duration::from_secs(2),
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        max_concurrent_calls: 8,
    }
}

fn registration() -> ClientRegistration {
    ClientRegistration {
        client_name: "engage-app-1".to_owned(),
        application_type: "service".to_owned(),
        grant_types: vec!["client_credentials".to_owned()],
        response_types: vec!["token".to_owned()],
        redirect_uris: Vec::new(),
        token_endpoint_auth_method: "client_secret_basic".to_owned(),
        jwks: None,
        jwks_uri: None,
    }
}

fn client_json(id: &str, name: &str, issued_at: i64) -> Value {
    json!({
        "client_id": id,
        "client_name": name,
        "client_id_issued_at": issued_at,
        "token_endpoint_auth_method": "client_secret_basic",
        "application_type": "service"
    })
}

fn created_reply() -> Reply {
    let mut body = client_json("0oa1", "engage-app-1", 1_700_000_000);
    body["client_secret"] = json!("s3cr3t-value");
    Reply::json(201, body)
}

/// Returns the `Date` header for now and its value in whole Unix seconds.
fn date_now() -> (String, u64) {
    let now = SystemTime::now();
    let seconds = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
    (httpdate::fmt_http_date(now), seconds)
}

fn rate_limited(reset: impl Into<String>) -> Reply {
    let (date, _) = date_now();
    Reply::json(
        429,
        json!({"errorCode": "E0000047", "errorSummary": "API call exceeded rate limit"}),
    )
    .header("date", date)
    .header("x-rate-limit-limit", "100")
    .header("x-rate-limit-remaining", "0")
    .header("x-rate-limit-reset", reset)
}

fn budget() -> RetryBudget {
    RetryBudget::new(Duration::from_secs(30))
}

#[tokio::test]
async fn create_parses_client_and_secret() {
    let okta = MockOkta::start(|_, _| created_reply()).await;
    let created = okta
        .client()
        .create_client(&registration(), &budget())
        .await
        .unwrap();
    assert_eq!(created.client_id, "0oa1");
    assert_eq!(created.client_secret.unwrap().expose(), "s3cr3t-value");
    assert_eq!(created.client_id_issued_at, Some(1_700_000_000));
}

#[tokio::test]
async fn create_sends_body_and_headers() {
    let okta = MockOkta::start(|_, _| created_reply()).await;
    okta.client()
        .create_client(&registration(), &budget())
        .await
        .unwrap();
    let request = &okta.requests()[0];
    let body: Value = serde_json::from_str(&request.body).unwrap();
    let user_agent = request.headers["user-agent"].to_str().unwrap();
    assert_eq!(request.route(), "POST /oauth2/v1/clients");
    assert_eq!(body["client_name"], "engage-app-1");
    assert_eq!(
        request.headers["authorization"],
        format!("SSWS {TOKEN}").as_str()
    );
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(
        user_agent,
        concat!("okta-dcr-worker/", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn create_records_rate_limit_snapshot() {
    let okta = MockOkta::start(|_, _| {
        created_reply()
            .header("x-rate-limit-limit", "100")
            .header("x-rate-limit-remaining", "99")
    })
    .await;
    let client = okta.client();
    client
        .create_client(&registration(), &budget())
        .await
        .unwrap();
    let snapshot = client.last_rate_limit(RateLimitBucket::Clients).unwrap();
    assert_eq!(snapshot.limit, Some(100));
    assert_eq!(snapshot.remaining, Some(99));
    assert_eq!(client.last_rate_limit(RateLimitBucket::Apps), None);
}

#[tokio::test]
async fn create_invalid_metadata_not_retried() {
    let okta = MockOkta::start(|_, _| {
        Reply::json(
            400,
            json!({"error": "invalid_client_metadata",
                   "error_description": "redirect_uris must use https"}),
        )
        .header("x-okta-request-id", "req-abc")
    })
    .await;
    let budget = budget();
    let error = okta
        .client()
        .create_client(&registration(), &budget)
        .await
        .unwrap_err();
    assert_eq!(okta.requests().len(), 1);
    assert_eq!(budget.attempts(), 1);
    assert_eq!(error.class(), ErrorClass::Permanent);
    assert_eq!(error.code(), "okta_rejected");
    assert_eq!(error.reason(), "redirect_uris must use https");
    assert_eq!(error.okta_request_id(), Some("req-abc"));
    assert_eq!(error.status(), Some(400));
}

#[tokio::test]
async fn create_management_error_parsed() {
    let okta = MockOkta::start(|_, _| {
        Reply::json(
            400,
            json!({"errorCode": "E0000001", "errorSummary": "Api validation failed: client_name",
                   "errorLink": "E0000001", "errorId": "oae1",
                   "errorCauses": [{"errorSummary": "client_name: too long"}]}),
        )
    })
    .await;
    let error = okta
        .client()
        .create_client(&registration(), &budget())
        .await
        .unwrap_err();
    assert_eq!(error.code(), "okta_rejected");
    assert_eq!(
        error.reason(),
        "Api validation failed: client_name (client_name: too long)"
    );
}

#[tokio::test]
async fn create_non_json_error_keeps_text() {
    let okta = MockOkta::start(|_, _| {
        let mut reply = Reply::empty(400);
        reply.body = "<html>Bad Request</html>".to_owned();
        reply
    })
    .await;
    let error = okta
        .client()
        .create_client(&registration(), &budget())
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(400));
    assert_eq!(error.reason(), "<html>Bad Request</html>");
}

#[tokio::test]
async fn create_unparsable_success_hides_body() {
    let okta = MockOkta::start(|_, _| {
        Reply::json(
            201,
            json!({"client_id": "0oa1", "client_secret": 987654321}),
        )
    })
    .await;
    let error = okta
        .client()
        .create_client(&registration(), &budget())
        .await
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::Permanent);
    assert_eq!(error.code(), "okta_invalid_response");
    assert!(!error.reason().contains("987654321"), "{}", error.reason());
}

#[tokio::test]
async fn rate_limit_waits_until_reset() {
    let okta = MockOkta::start(|_, index| match index {
        0 => {
            let (_, date_seconds) = date_now();
            rate_limited((date_seconds + 2).to_string())
        }
        _ => created_reply(),
    })
    .await;
    let budget = budget();
    let created = okta.client().create_client(&registration(), &budget).await;
    let requests = okta.requests();
    let first_date = requests[0].at.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let reset = UNIX_EPOCH + Duration::from_secs(first_date + 2);
    assert!(created.is_ok());
    assert_eq!(requests.len(), 2);
    assert_eq!(budget.attempts(), 2);
    assert!(requests[1].at >= reset, "retried before the reset time");
}

#[tokio::test]
async fn rate_limit_duplicate_reset_takes_earliest() {
    let okta = MockOkta::start(|_, index| match index {
        0 => {
            let (_, date_seconds) = date_now();
            rate_limited((date_seconds + 600).to_string())
                .header("x-rate-limit-reset", date_seconds.to_string())
        }
        _ => created_reply(),
    })
    .await;
    let started = Instant::now();
    let created = okta
        .client()
        .create_client(&registration(), &budget())
        .await;
    assert!(created.is_ok(), "{created:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn rate_limit_unparsable_reset_uses_backoff() {
    let okta = MockOkta::start(|_, index| match index {
        0 => rate_limited("tomorrow"),
        _ => created_reply(),
    })
    .await;
    let created = okta
        .client()
        .create_client(&registration(), &budget())
        .await;
    let requests = okta.requests();
    let gap = requests[1].at.duration_since(requests[0].at).unwrap();
    assert!(created.is_ok());
    assert!(gap < Duration::from_millis(500), "waited {gap:?}");
}

#[tokio::test]
async fn rate_limit_reset_beyond_budget_returns_at_once() {
    let okta = MockOkta::start(|_, _| {
        let (_, date_seconds) = date_now();
        rate_limited((date_seconds + 60).to_string())
    })
    .await;
    let budget = RetryBudget::new(Duration::from_secs(5));
    let started = Instant::now();
    let error = okta
        .client()
        .create_client(&registration(), &budget)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(okta.requests().len(), 1);
    assert_eq!(error.class(), ErrorClass::Transient);
    assert_eq!(error.code(), "okta_rate_limited");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(61)));
}

#[tokio::test]
async fn unavailable_with_calls_left_uses_backoff() {
    let okta = MockOkta::start(|_, index| match index {
        0 => {
            let (date, date_seconds) = date_now();
            Reply::empty(503)
                .header("date", date)
                .header("x-rate-limit-remaining", "40")
                .header("x-rate-limit-reset", (date_seconds + 60).to_string())
        }
        _ => created_reply(),
    })
    .await;
    let started = Instant::now();
    let created = okta.client().get_client("0oa1", &budget()).await;
    assert!(created.is_ok());
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn unavailable_until_budget_spent() {
    let okta = MockOkta::start(|_, _| Reply::empty(503)).await;
    let budget = RetryBudget::new(Duration::from_millis(400));
    let error = okta.client().get_client("0oa1", &budget).await.unwrap_err();
    let returned = Instant::now();
    assert_eq!(error.class(), ErrorClass::Transient);
    assert_eq!(error.code(), "okta_unavailable");
    assert_eq!(budget.attempts() as usize, okta.requests().len());
    assert!(
        budget.attempts() >= 3,
        "only {} attempts",
        budget.attempts()
    );
    assert!(returned <= budget.deadline() + Duration::from_millis(150));
}

#[tokio::test]
async fn credential_rejected_not_retried() {
    let okta = MockOkta::start(|_, _| {
        Reply::json(
            401,
            json!({"errorCode": "E0000011", "errorSummary": "Invalid token provided"}),
        )
    })
    .await;
    let error = okta
        .client()
        .create_client(&registration(), &budget())
        .await
        .unwrap_err();
    assert_eq!(okta.requests().len(), 1);
    assert_eq!(error.class(), ErrorClass::Systemic);
    assert_eq!(error.code(), "okta_credential_rejected");
}

#[tokio::test]
async fn timeout_is_transient() {
    let okta = MockOkta::start(|_, _| created_reply().delayed(Duration::from_secs(2))).await;
    let mut config = config(&okta.url);
    config.call_timeout = Duration::from_millis(100);
    let client = OktaClient::new(config).unwrap();
    let budget = RetryBudget::new(Duration::from_millis(150));
    let error = client
        .create_client(&registration(), &budget)
        .await
        .unwrap_err();
    assert!(matches!(error, OktaError::Timeout { .. }), "{error:?}");
    assert_eq!(error.class(), ErrorClass::Transient);
    assert_eq!(error.code(), "okta_unavailable");
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    drop(listener);
    let client = OktaClient::new(config(&url)).unwrap();
    let budget = RetryBudget::new(Duration::from_millis(100));
    let error = client
        .create_client(&registration(), &budget)
        .await
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::Transient);
    assert_eq!(error.code(), "okta_unavailable");
}

#[tokio::test]
async fn delete_not_found_already_absent() {
    let okta = MockOkta::start(|_, _| {
        Reply::json(
            404,
            json!({"errorCode": "E0000007", "errorSummary": "Not found: 0oa1"}),
        )
    })
    .await;
    let deletion = okta
        .client()
        .delete_client("0oa1", &budget())
        .await
        .unwrap();
    assert_eq!(deletion, Deletion::AlreadyAbsent);
}

#[tokio::test]
async fn delete_invalid_client_already_absent() {
    let okta = MockOkta::start(|_, _| {
        Reply::json(
            401,
            json!({"error": "invalid_client", "error_description": "unknown"}),
        )
    })
    .await;
    let deletion = okta
        .client()
        .delete_client("0oa1", &budget())
        .await
        .unwrap();
    assert_eq!(deletion, Deletion::AlreadyAbsent);
}

#[tokio::test]
async fn delete_active_app_deactivates_first() {
    let refused_once = Arc::new(Mutex::new(false));
    let okta = MockOkta::start(move |request, _| {
        if request.method == "POST" {
            return Reply::json(200, json!({}));
        }
        let mut refused = refused_once.lock().unwrap();
        if *refused {
            return Reply::empty(204);
        }
        *refused = true;
        Reply::json(
            403,
            json!({"errorCode": "E0000056", "errorSummary": "Delete application forbidden."}),
        )
    })
    .await;
    let deletion = okta
        .client()
        .delete_client("0oa1", &budget())
        .await
        .unwrap();
    assert_eq!(deletion, Deletion::Deleted);
    assert_eq!(
        okta.routes(),
        [
            "DELETE /oauth2/v1/clients/0oa1",
            "POST /api/v1/apps/0oa1/lifecycle/deactivate",
            "DELETE /oauth2/v1/clients/0oa1",
        ]
    );
}

#[tokio::test]
async fn delete_success_is_deleted() {
    let okta = MockOkta::start(|_, _| Reply::empty(204)).await;
    let deletion = okta
        .client()
        .delete_client("0oa1", &budget())
        .await
        .unwrap();
    assert_eq!(deletion, Deletion::Deleted);
    assert_eq!(okta.routes(), ["DELETE /oauth2/v1/clients/0oa1"]);
}

#[tokio::test]
async fn get_not_found_is_none() {
    let okta = MockOkta::start(|_, _| {
        Reply::json(
            404,
            json!({"errorCode": "E0000007", "errorSummary": "Not found"}),
        )
    })
    .await;
    let client = okta.client().get_client("0oa1", &budget()).await.unwrap();
    assert_eq!(client, None);
}

#[tokio::test]
async fn get_invalid_client_is_none() {
    let okta = MockOkta::start(|_, _| Reply::json(401, json!({"error": "invalid_client"}))).await;
    let client = okta.client().get_client("0oa1", &budget()).await.unwrap();
    assert_eq!(client, None);
}

#[tokio::test]
async fn get_returns_client() {
    let okta = MockOkta::start(|_, _| Reply::json(200, client_json("0oa1", "app", 1))).await;
    let client = okta.client().get_client("0oa1", &budget()).await.unwrap();
    assert_eq!(client.unwrap().client_name, "app");
}

#[tokio::test]
async fn ids_are_percent_encoded() {
    let okta = MockOkta::start(|_, _| Reply::json(404, json!({"errorCode": "E0000007"}))).await;
    okta.client().get_client("a/b?c", &budget()).await.unwrap();
    assert_eq!(okta.routes(), ["GET /oauth2/v1/clients/a%2Fb%3Fc"]);
}

#[tokio::test]
async fn dot_segment_id_rejected() {
    let okta = MockOkta::start(|_, _| Reply::empty(204)).await;
    let error = okta
        .client()
        .delete_client("..", &budget())
        .await
        .unwrap_err();
    assert_eq!(error.code(), "okta_invalid_id");
    assert_eq!(okta.requests().len(), 0);
}

#[tokio::test]
async fn app_lifecycle_routes() {
    let okta = MockOkta::start(|request, _| match request.path.as_str() {
        path if path.ends_with("newSecret") => {
            let mut body = client_json("0oa1", "app", 1);
            body["client_secret"] = json!("rotated");
            Reply::json(200, body)
        }
        _ => Reply::json(200, json!({})),
    })
    .await;
    let client = okta.client();
    let budget = budget();
    client.activate_app("0oa1", &budget).await.unwrap();
    client.assign_group("0oa1", "00g1", &budget).await.unwrap();
    let rotated = client.new_secret("0oa1", &budget).await.unwrap();
    assert_eq!(rotated.client_secret.unwrap().expose(), "rotated");
    assert_eq!(
        okta.routes(),
        [
            "POST /api/v1/apps/0oa1/lifecycle/activate",
            "PUT /api/v1/apps/0oa1/groups/00g1",
            "POST /oauth2/v1/clients/0oa1/lifecycle/newSecret",
        ]
    );
    assert_eq!(okta.requests()[1].body, "{}");
    assert_eq!(budget.attempts(), 3);
}

#[tokio::test]
async fn find_exact_match_across_pages() {
    let okta = MockOkta::start(|request, _| {
        let second_page = request.query.as_deref().unwrap_or("").contains("after=");
        if second_page {
            return Reply::json(200, json!([client_json("0oa2", "svc-app", 200)]));
        }
        let next = "/oauth2/v1/clients?after=0oa9&limit=200";
        Reply::json(200, json!([client_json("0oa9", "svc-app-2", 100)]))
            .header("link", "<https://ignored.example/self>; rel=\"self\"")
            .header("link", format!("<{next}>; rel=\"next\""))
    })
    .await;
    let found = okta
        .client()
        .find_client_by_name("svc-app", &budget())
        .await
        .unwrap();
    let requests = okta.requests();
    assert_eq!(found.unwrap().client_id, "0oa2");
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].query.as_deref(), Some("q=svc-app&limit=200"));
    assert_eq!(requests[1].query.as_deref(), Some("after=0oa9&limit=200"));
}

#[tokio::test]
async fn find_prefix_match_ignored() {
    let okta =
        MockOkta::start(|_, _| Reply::json(200, json!([client_json("0oa9", "svc-app-2", 100)])))
            .await;
    let found = okta
        .client()
        .find_client_by_name("svc-app", &budget())
        .await
        .unwrap();
    assert_eq!(found, None);
}

#[tokio::test]
async fn find_duplicates_return_earliest() {
    let okta = MockOkta::start(|_, _| {
        Reply::json(
            200,
            json!([
                client_json("0oaLate", "svc-app", 300),
                client_json("0oaEarly", "svc-app", 100)
            ]),
        )
    })
    .await;
    let found = okta
        .client()
        .find_client_by_name("svc-app", &budget())
        .await
        .unwrap();
    assert_eq!(found.unwrap().client_id, "0oaEarly");
}

#[tokio::test]
async fn find_foreign_next_link_rejected() {
    let okta = MockOkta::start(|_, _| {
        Reply::json(200, json!([])).header("link", "<http://other.example/next>; rel=\"next\"")
    })
    .await;
    let error = okta
        .client()
        .find_client_by_name("svc-app", &budget())
        .await
        .unwrap_err();
    assert_eq!(error.code(), "okta_invalid_response");
    assert_eq!(okta.requests().len(), 1);
}

#[tokio::test]
async fn debug_output_hides_token() {
    let okta = MockOkta::start(|_, _| {
        Reply::json(
            401,
            json!({"errorCode": "E0000011", "errorSummary": "Invalid token provided"}),
        )
    })
    .await;
    let client = okta.client();
    let error = client
        .create_client(&registration(), &budget())
        .await
        .unwrap_err();
    let bad_token = OktaConfig {
        auth: OktaAuth::ApiToken(Secret::new(format!("{TOKEN}\n"))),
        ..config(&okta.url)
    };
    let config_error = OktaClient::new(bad_token).unwrap_err();
    let outputs = [
        format!("{client:?}"),
        format!("{:?}", config(&okta.url)),
        format!("{error:?}"),
        format!("{error}"),
        error.reason(),
        format!("{config_error:?}"),
        format!("{config_error}"),
    ];
    for output in outputs {
        assert!(!output.contains(TOKEN), "token leaked in {output}");
    }
}

#[tokio::test]
async fn config_rejects_zero_concurrency() {
    let url = Url::parse("http://127.0.0.1:1").unwrap();
    let config = OktaConfig {
        max_concurrent_calls: 0,
        ..config(&url)
    };
    let error = OktaClient::new(config).unwrap_err();
    assert_eq!(error.code(), "okta_invalid_config");
}

#[tokio::test]
async fn config_rejects_empty_token() {
    let url = Url::parse("http://127.0.0.1:1").unwrap();
    let config = OktaConfig {
        auth: OktaAuth::ApiToken(Secret::new(" ")),
        ..config(&url)
    };
    let error = OktaClient::new(config).unwrap_err();
    assert_eq!(error.code(), "okta_invalid_config");
}

#[tokio::test]
async fn registration_not_repeated_after_503() {
    let okta = MockOkta::start(|_, _| Reply::empty(503)).await;
    let budget = RetryBudget::new(Duration::from_secs(5));
    let error = okta
        .client()
        .create_client(&registration(), &budget)
        .await
        .unwrap_err();
    assert!(error.may_have_been_applied());
    assert_eq!(
        okta.requests().len(),
        1,
        "a registration Okta may have made is not repeated"
    );
}

//! Tests of rate-limit pacing and the cap on concurrent calls against okta-sim on a loopback
//! port.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use url::Url;

use super::*;
use crate::contract::registration::ClientRegistration;
use crate::sim::{self, Fault, ScriptedResponse, SimConfig, SimHandle};

const CLIENTS: &str = "/oauth2/v1/clients";
const GENEROUS: Duration = Duration::from_secs(60);

async fn start_sim(config: SimConfig) -> SimHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    sim::start(listener, config).await.unwrap()
}

fn client_for(sim: &SimHandle, max_concurrent_calls: usize) -> OktaClient {
    OktaClient::new(OktaConfig {
        org_url: Url::parse(&sim.base_url()).unwrap(),
        auth: OktaAuth::ApiToken(sim.api_token().clone()),
        call_timeout: Duration::from_secs(5),
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        max_concurrent_calls,
    })
    .unwrap()
}

fn registration(name: &str) -> ClientRegistration {
    ClientRegistration {
        client_name: name.to_owned(),
        application_type: "service".to_owned(),
        grant_types: vec!["client_credentials".to_owned()],
        response_types: vec!["token".to_owned()],
        redirect_uris: Vec::new(),
        token_endpoint_auth_method: "client_secret_basic".to_owned(),
        jwks: None,
        jwks_uri: None,
    }
}

/// Runs `count` client registrations at once and returns how many succeeded.
async fn create_concurrently(client: &OktaClient, count: usize) -> usize {
    let calls = (0..count).map(|i| {
        let client = client.clone();
        tokio::spawn(async move {
            let budget = RetryBudget::new(GENEROUS);
            client
                .create_client(&registration(&format!("engage-app-{i}")), &budget)
                .await
        })
    });
    let mut succeeded = 0;
    for call in calls.collect::<Vec<_>>() {
        if call.await.unwrap().is_ok() {
            succeeded += 1;
        }
    }
    succeeded
}

/// Makes the next lookup of a client respond 404 with Remaining 0 and a reset `reset_in` from
/// now, then makes that lookup, which is not retried.
async fn spend_window(sim: &SimHandle, client: &OktaClient, reset_in: Duration) {
    let response = ScriptedResponse::okta_error(404, "E0000007", "Not found: Resource not found")
        .with_rate_limit_reset_in(reset_in);
    sim.script(Fault::respond("GET", "/oauth2/v1/clients/*", response));
    let budget = RetryBudget::new(GENEROUS);
    let found = client.get_client("0oaMissing", &budget).await.unwrap();
    assert_eq!(found, None);
}

fn statuses(sim: &SimHandle) -> Vec<u16> {
    sim.requests().iter().map(|r| r.status).collect()
}

#[tokio::test]
async fn spread_calls_avoid_429() {
    let sim = start_sim(SimConfig {
        rate_limit_per_minute: Some(30),
        rate_limit_window: Duration::from_secs(3),
        ..SimConfig::default()
    })
    .await;
    let client = client_for(&sim, 8);
    let succeeded = create_concurrently(&client, 40).await;
    assert_eq!(succeeded, 40);
    let statuses = statuses(&sim);
    assert_eq!(statuses.len(), 40, "requests: {statuses:?}");
    assert!(!statuses.contains(&429), "requests: {statuses:?}");
}

#[tokio::test]
async fn spent_window_waits_for_reset() {
    let sim = start_sim(SimConfig::default()).await;
    let client = client_for(&sim, 8);
    spend_window(&sim, &client, Duration::from_secs(2)).await;
    let spent_at = Instant::now();
    let budget = RetryBudget::new(GENEROUS);
    client
        .create_client(&registration("engage-app"), &budget)
        .await
        .unwrap();
    let waited = spent_at.elapsed();
    // Reset − Date is 2 s, and the pacer adds the 1 s margin and up to 0.5 s of jitter.
    assert!(waited >= Duration::from_secs(2), "waited {waited:?}");
    assert!(waited < Duration::from_secs(4), "waited {waited:?}");
}

#[tokio::test]
async fn pacing_past_budget_fails_fast() {
    let sim = start_sim(SimConfig::default()).await;
    let client = client_for(&sim, 8);
    spend_window(&sim, &client, Duration::from_secs(30)).await;
    let started = Instant::now();
    let budget = RetryBudget::new(Duration::from_secs(1));
    let error = client
        .create_client(&registration("engage-app"), &budget)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(error.class(), ErrorClass::Transient);
    assert_eq!(error.code(), "okta_rate_limited");
    let retry_after = error.retry_after().unwrap_or_default();
    assert!(retry_after >= Duration::from_secs(30), "{retry_after:?}");
    assert_eq!(sim.requests().len(), 1);
}

#[tokio::test]
async fn concurrency_cap_limits_overlap() {
    let latency = Duration::from_millis(200);
    let sim = start_sim(SimConfig {
        latency,
        ..SimConfig::default()
    })
    .await;
    let client = client_for(&sim, 2);
    let started = Instant::now();
    let succeeded = create_concurrently(&client, 6).await;
    let elapsed = started.elapsed();
    assert_eq!(succeeded, 6);
    assert!(elapsed >= 3 * latency, "took {elapsed:?}");

    // okta-sim holds each request for `latency` and the client holds its permit until the
    // response is read, so with 2 permits any 3 consecutive arrivals span at least `latency`.
    let arrivals: Vec<SystemTime> = sim.requests().iter().map(|r| r.received_at).collect();
    let spans: Vec<Duration> = arrivals
        .windows(3)
        .map(|three| three[2].duration_since(three[0]).unwrap_or_default())
        .collect();
    assert!(spans.iter().all(|span| *span >= latency), "{spans:?}");
    let gaps: Vec<Duration> = arrivals
        .windows(2)
        .map(|two| two[1].duration_since(two[0]).unwrap_or_default())
        .collect();
    assert!(gaps.iter().any(|gap| *gap < latency), "{gaps:?}");
}

#[tokio::test]
async fn concurrency_429_retried_soon() {
    let sim = start_sim(SimConfig::default()).await;
    let far_reset = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + GENEROUS;
    let response = ScriptedResponse::okta_error(429, "E0000047", "API call exceeded rate limit")
        .with_header("x-rate-limit-limit", "0")
        .with_header("x-rate-limit-remaining", "0")
        .with_header("x-rate-limit-reset", &far_reset.as_secs().to_string());
    sim.script(Fault::respond("POST", CLIENTS, response));
    let client = client_for(&sim, 8);
    let started = Instant::now();
    let budget = RetryBudget::new(Duration::from_secs(5));
    let created = client
        .create_client(&registration("engage-app"), &budget)
        .await;
    assert!(created.is_ok(), "{created:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(statuses(&sim), vec![429, 201]);
}

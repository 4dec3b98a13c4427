//! The admin endpoint of a running worker: liveness, readiness as the worker connects,
//! consumes and pauses on a rejected Okta credential, and the Prometheus metrics.
//!
//! Metrics are process-wide and every test in this binary runs a worker, so counts are
//! checked with "at least".

mod common;

use std::time::Duration;

use common::{Harness, WAIT};
use okta_dcr_worker::contract::Level;
use reqwest::StatusCode;
use serde_json::Value;

/// A reply from the admin endpoint: status, `Content-Type` and body.
struct Reply {
    status: StatusCode,
    content_type: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("unreadable JSON {:?}: {error}", self.body))
    }
}

/// Sends `GET path` to the worker's admin endpoint, retrying while it is not listening yet.
async fn get(harness: &Harness, path: &str) -> Reply {
    let address = harness
        .settings
        .worker
        .admin_addr
        .expect("admin endpoint on");
    let url = format!("http://{address}{path}");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match client.get(&url).send().await {
            Ok(response) => return read(response).await,
            Err(error) if tokio::time::Instant::now() >= deadline => {
                panic!("GET {url} failed for {WAIT:?}: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn read(response: reqwest::Response) -> Reply {
    let status = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.text().await.unwrap();
    Reply {
        status,
        content_type,
        body,
    }
}

/// Polls `/readyz` until it returns `expected`, and returns that reply.
async fn readyz_until(harness: &Harness, expected: StatusCode) -> Reply {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let reply = get(harness, "/readyz").await;
        if reply.status == expected {
            return reply;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "/readyz still {} after {WAIT:?}: {}",
                reply.status, reply.body
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Returns the value of the sample whose name and labels are exactly `series`.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

#[tokio::test]
async fn livez_ok() {
    let harness = Harness::start().await;
    let reply = get(&harness, "/livez").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "ok");
    harness.finish().await;
}

#[tokio::test]
async fn readyz_ready_once_consuming() {
    let harness = Harness::start().await;
    let reply = readyz_until(&harness, StatusCode::OK).await;
    let body = reply.json();
    assert_eq!(body["ready"], true, "{body}");
    assert_eq!(body["connected"], true, "{body}");
    assert_eq!(body["consuming"], true, "{body}");
    assert_eq!(body["oktaCredentialAccepted"], true, "{body}");
    harness.finish().await;
}

#[tokio::test]
async fn readyz_follows_rejected_credential() {
    let harness = Harness::start().await;
    readyz_until(&harness, StatusCode::OK).await;

    harness.sim.set_token_accepted(false);
    harness
        .publish(&common::provision("admin-paused-1", "cred-admin-paused"))
        .await;
    let reply = readyz_until(&harness, StatusCode::SERVICE_UNAVAILABLE).await;
    let body = reply.json();
    assert_eq!(body["ready"], false, "{body}");
    assert_eq!(body["oktaCredentialAccepted"], false, "{body}");
    assert_eq!(body["connected"], true, "{body}");

    harness.sim.set_token_accepted(true);
    let reply = readyz_until(&harness, StatusCode::OK).await;
    assert_eq!(reply.json()["oktaCredentialAccepted"], true);
    let result = harness.next_result().await;
    assert_eq!(result.status.level, Level::Success, "{result:?}");
    harness.finish().await;
}

#[tokio::test]
async fn endpoint_stops_with_worker() {
    let mut harness = Harness::start().await;
    readyz_until(&harness, StatusCode::OK).await;
    harness.stop_worker().await.unwrap();
    let address = harness.settings.worker.admin_addr.unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let refused = client
        .get(format!("http://{address}/livez"))
        .send()
        .await
        .is_err();
    assert!(refused, "the admin endpoint must stop with the worker");
    harness.finish().await;
}

#[tokio::test]
async fn metrics_after_provision() {
    let harness = Harness::start().await;
    harness
        .publish(&common::provision("admin-metrics-1", "cred-admin-metrics"))
        .await;
    let result = harness.next_result().await;
    assert_eq!(result.status.level, Level::Success, "{result:?}");

    // The exporter folds histogram samples into buckets on its periodic upkeep (every 5 s), and
    // the worker counts the outcome just after the broker confirms the result, which the test
    // may already have read: both may take a moment to appear.
    let success_key = "okta_dcr_requests_total{operation=\"provision\",outcome=\"success\"}";
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(12);
    let mut reply = get(&harness, "/metrics").await;
    while (!reply.body.contains("\nokta_call_duration_seconds_bucket{")
        || sample(&reply.body, success_key).is_none())
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        reply = get(&harness, "/metrics").await;
    }
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type, "text/plain; version=0.0.4");
    let metrics = &reply.body;
    let successes = sample(
        metrics,
        "okta_dcr_requests_total{operation=\"provision\",outcome=\"success\"}",
    );
    assert!(successes >= Some(1.0), "{metrics}");
    assert!(metrics.contains("\nokta_calls_total{"), "{metrics}");
    assert!(
        metrics.contains("\nokta_call_duration_seconds_bucket{"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE okta_call_duration_seconds histogram"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# HELP okta_dcr_requests_total "),
        "{metrics}"
    );
    harness.finish().await;
}

/// An invalid provision still counts under its job, because its `operation` is readable.
#[tokio::test]
async fn metrics_count_invalid_provision() {
    let harness = Harness::start().await;
    let mut request = common::provision("admin-metrics-invalid-1", "cred-admin-invalid");
    request["credentialData"] = serde_json::json!({
        "grantType": "authorization_code",
        "redirectURLs": ["https://app.example.test/callback#fragment"],
    });
    harness.publish(&request).await;
    let result = harness.next_result().await;
    assert_eq!(result.status.level, Level::Error, "{result:?}");
    assert_eq!(result.status.code, "invalid_request", "{result:?}");

    // The worker counts the outcome just after the broker confirms the result.
    let error_key = "okta_dcr_requests_total{operation=\"provision\",outcome=\"error\"}";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut reply = get(&harness, "/metrics").await;
    while sample(&reply.body, error_key).is_none() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        reply = get(&harness, "/metrics").await;
    }
    let metrics = &reply.body;
    assert!(sample(metrics, error_key) >= Some(1.0), "{metrics}");
    let unknown_key = "okta_dcr_requests_total{operation=\"unknown\",outcome=\"error\"}";
    assert_eq!(sample(metrics, unknown_key), None, "{metrics}");
    harness.finish().await;
}

//! Reliability of the worker binary end to end, against the real RabbitMQ and okta-sim: Okta
//! unreachable for 30 s, a storm of 429 responses, arbitrary message bodies, and several worker
//! processes on one request queue. Each test checks the end state. Every request gets a result,
//! or a dead letter when that is its correct outcome. okta-sim contains exactly one client per
//! provisioned credential, and the workers' output contains no secret and no panic.
//!
//! SIGKILL of the worker is tested in `crash.rs`, and broker connections closed under load in
//! `faults.rs`.

mod common;
mod fuzz;

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, SystemTime};

use common::binary::{BinaryFixture, TAG_HEADER};
use common::end_state::{self, Outcomes};
use lapin::BasicProperties;
use okta_dcr_worker::contract::{self, codes, Level};
use okta_dcr_worker::sim::{Fault, ScriptedResponse, SimHandle};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;
use tokio::time::Instant;

/// The log line of a request moved to a delay queue because Okta kept failing.
const DELAYED: &str = "Okta unavailable; delaying the request through the broker.";

/// The log line of a worker that finished a request's Okta calls.
const OKTA_WORK_DONE: &str = "Okta work done";

const OUTAGE: Duration = Duration::from_secs(30);
const OUTAGE_REQUESTS: usize = 120;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_unreachable_30s_loses_nothing() {
    let mut fixture = BinaryFixture::start(Duration::from_millis(100)).await;
    let request_ids = publish_provisions(&fixture, "outage", OUTAGE_REQUESTS).await;
    // The retry budget covers the outage with room to spare. The in-process retries are
    // shorter than the outage, so requests also wait in the delay queues.
    fixture.spawn(&[
        ("OKTA_DCR_CONCURRENCY", "8"),
        ("OKTA_DCR_RETRY_BUDGET_SECS", "120"),
        ("OKTA_DCR_IN_PROCESS_RETRY_SECS", "5"),
        ("OKTA_DCR_OKTA_TIMEOUT_SECS", "5"),
    ]);

    wait_for_clients(&fixture.simulator, 20).await;
    let went_offline = SystemTime::now();
    fixture.simulator.go_offline().await.unwrap();
    let created = fixture.simulator.clients().len();
    assert!(
        created < OUTAGE_REQUESTS,
        "every provision was done before okta-sim went offline"
    );
    tokio::time::sleep(OUTAGE).await;
    let back_online = SystemTime::now();
    fixture.simulator.go_online().await.unwrap();

    let mut outcomes = Outcomes::default();
    fixture
        .collect_until(
            &mut outcomes,
            Duration::from_secs(90),
            "every request answered after okta-sim came back",
            |outcomes| outcomes.answered(&request_ids) == OUTAGE_REQUESTS,
        )
        .await;
    fixture.wait_until_idle().await;
    fixture.drain_outcomes(&mut outcomes).await;

    // okta-sim records every call it receives: none while offline means each connection was
    // refused instead of getting an error response.
    let received_offline = fixture
        .simulator
        .requests()
        .into_iter()
        .filter(|request| request.received_at > went_offline && request.received_at < back_online)
        .count();
    assert_eq!(received_offline, 0, "okta-sim received calls while offline");
    let server_errors = fixture
        .simulator
        .requests()
        .into_iter()
        .filter(|request| request.status >= 500)
        .count();
    assert_eq!(server_errors, 0, "okta-sim sent server errors");
    assert!(
        fixture.log_count(DELAYED) > 0,
        "no request waited in a delay queue during the outage"
    );
    end_state::assert_clean_end_state(
        &fixture.simulator,
        &outcomes,
        &request_ids,
        0,
        &fixture.logs(),
    );
    fixture.finish().await;
}

const STORM_REQUESTS: usize = 100;
/// 429s for too many concurrent requests (`X-Rate-Limit-Limit: 0`), which the worker retries
/// after a short backoff.
const CONCURRENCY_LIMIT_429S: u32 = 60;
/// 429s for a spent rate-limit window, each with a reset 1 s ahead. The worker's pacer delays
/// every call of the bucket until the reset, so each costs about 2 s.
const RATE_LIMIT_429S: u32 = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_storm_loses_nothing() {
    let mut fixture = BinaryFixture::start(Duration::from_millis(50)).await;
    let clients_path = "/oauth2/v1/clients";
    let concurrency_limit = ScriptedResponse::okta_error(
        429,
        "E0000047",
        "API call exceeded rate limit due to concurrent requests.",
    )
    .with_header("x-rate-limit-limit", "0")
    .with_header("x-rate-limit-remaining", "0");
    // Faults are used in the order they were queued, so the calls on the clients route get
    // 60 concurrency-limit 429s in a row, then 8 rate-limit 429s in a row.
    fixture
        .simulator
        .script(Fault::respond("*", clients_path, concurrency_limit).times(CONCURRENCY_LIMIT_429S));
    fixture.simulator.script(
        Fault::rate_limited("*", clients_path, Duration::from_secs(1)).times(RATE_LIMIT_429S),
    );
    let request_ids = publish_provisions(&fixture, "storm", STORM_REQUESTS).await;
    fixture.spawn(&[
        ("OKTA_DCR_CONCURRENCY", "16"),
        ("OKTA_DCR_RETRY_BUDGET_SECS", "120"),
    ]);

    let mut outcomes = Outcomes::default();
    fixture
        .collect_until(
            &mut outcomes,
            Duration::from_secs(120),
            "every request answered through the 429 storm",
            |outcomes| outcomes.answered(&request_ids) == STORM_REQUESTS,
        )
        .await;
    fixture.wait_until_idle().await;
    fixture.drain_outcomes(&mut outcomes).await;

    let pending = fixture.simulator.pending_faults();
    assert!(pending.is_empty(), "429s left unused: {pending:?}");
    let rate_limited = fixture
        .simulator
        .requests()
        .into_iter()
        .filter(|request| request.status == 429)
        .count();
    assert_eq!(
        rate_limited,
        (CONCURRENCY_LIMIT_429S + RATE_LIMIT_429S) as usize,
        "429 responses sent"
    );
    end_state::assert_clean_end_state(
        &fixture.simulator,
        &outcomes,
        &request_ids,
        0,
        &fixture.logs(),
    );
    fixture.finish().await;
}

const FUZZ_MESSAGES: usize = 200;
/// The body size limit the worker runs with, so that some generated bodies exceed it.
const FUZZ_MAX_BODY_BYTES: usize = 2048;

/// One generated message and the outcome the contract gives it.
struct Published {
    tag: String,
    /// The dead-letter code of an undecodable body, `None` for a body that gets a result.
    dead_letter_code: Option<&'static str>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_bodies_settled_once() {
    let mut fixture = BinaryFixture::start(Duration::from_millis(20)).await;
    let max_body_bytes = FUZZ_MAX_BODY_BYTES.to_string();
    fixture.spawn(&[("OKTA_DCR_MAX_BODY_BYTES", max_body_bytes.as_str())]);

    // A fixed seed, so that a failure can be reproduced with the same bodies.
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = fuzz::message();
    let mut request_ids = BTreeSet::new();
    let mut credential_ids = HashSet::new();
    let mut published = Vec::new();
    while published.len() < FUZZ_MESSAGES {
        let message = strategy.new_tree(&mut runner).unwrap().current();
        let decoded = contract::decode(
            &message.body,
            message.content_type.as_deref(),
            message.message_id.as_deref(),
            FUZZ_MAX_BODY_BYTES,
        );
        let dead_letter_code = match &decoded {
            Err(error) => Some(error.code()),
            Ok(envelope) => {
                // Results are matched by request id, and a second provision of one credential
                // under another request id creates a second client by design, so both stay
                // unique.
                let credential = envelope.body.get("id").and_then(Value::as_str);
                if request_ids.contains(&envelope.request_id)
                    || credential.is_some_and(|id| credential_ids.contains(id))
                {
                    continue;
                }
                request_ids.insert(envelope.request_id.clone());
                credential_ids.extend(credential.map(str::to_owned));
                None
            }
        };
        let tag = format!("fuzz-{}", published.len());
        let mut properties = BasicProperties::default().with_delivery_mode(2);
        if let Some(content_type) = &message.content_type {
            properties = properties.with_content_type(content_type.as_str().into());
        }
        if let Some(message_id) = &message.message_id {
            properties = properties.with_message_id(message_id.as_str().into());
        }
        fixture
            .publish_tagged(&message.body, properties, &tag)
            .await;
        published.push(Published {
            tag,
            dead_letter_code,
        });
    }
    let undecodable = published
        .iter()
        .filter(|message| message.dead_letter_code.is_some())
        .count();

    let mut outcomes = Outcomes::default();
    fixture
        .collect_until(
            &mut outcomes,
            Duration::from_secs(90),
            "a result or dead letter for every message",
            |outcomes| {
                outcomes.answered(&request_ids) == request_ids.len()
                    && outcomes.dead_letters.len() >= undecodable
            },
        )
        .await;
    fixture.wait_until_idle().await;
    fixture.drain_outcomes(&mut outcomes).await;

    end_state::assert_every_request_answered(&outcomes, &request_ids, 0);
    assert_eq!(
        outcomes.dead_letters.len(),
        undecodable,
        "dead letters for {undecodable} undecodable messages"
    );
    for message in &published {
        let dead_letters = outcomes.dead_letters_with(TAG_HEADER, &message.tag);
        let Some(expected_code) = message.dead_letter_code else {
            assert!(
                dead_letters.is_empty(),
                "{} decodes but was dead-lettered",
                message.tag
            );
            continue;
        };
        assert_eq!(dead_letters.len(), 1, "dead letters of {}", message.tag);
        assert_eq!(
            dead_letters[0].text("okta-dcr-error-code").as_deref(),
            Some(expected_code),
            "dead-letter code of {}",
            message.tag
        );
    }
    // The generator must reach every outcome, or the test would prove little.
    let successes = outcomes
        .results
        .iter()
        .filter(|result| result.status.level == Level::Success)
        .count();
    let rejections = outcomes
        .results
        .iter()
        .filter(|result| result.status.code == codes::INVALID_REQUEST)
        .count();
    assert!(successes > 0, "no generated request succeeded");
    assert!(rejections > 0, "no generated request was rejected");
    assert!(undecodable > 0, "no generated message was undecodable");
    end_state::assert_one_client_per_credential(&fixture.simulator, &outcomes);
    end_state::assert_logs_clean(&fixture.simulator, &fixture.logs());
    fixture.finish().await;
}

const SCALE_PROVISIONS: usize = 400;
const SCALE_ROTATES: usize = 10;
const SCALE_DEPROVISIONS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_one_queue() {
    scale_out(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_share_one_queue() {
    scale_out(4).await;
}

/// Runs `workers` worker processes on one request queue through 400 provisions, then rotates
/// and deprovisions some of the credentials while the other provisions are in flight.
async fn scale_out(workers: usize) {
    let mut fixture = BinaryFixture::start(Duration::from_millis(100)).await;
    let mut request_ids = publish_provisions(&fixture, "scale", SCALE_PROVISIONS).await;
    for _ in 0..workers {
        fixture.spawn(&[("OKTA_DCR_CONCURRENCY", "8")]);
    }

    // A rotate or deprovision is published only once its credential's provision has a
    // result, because requests about one credential are kept in order within one worker
    // only.
    let changed = SCALE_ROTATES + SCALE_DEPROVISIONS;
    let first_provisions: BTreeSet<String> = (0..changed)
        .map(|index| format!("r-scale-{index}"))
        .collect();
    let mut outcomes = Outcomes::default();
    fixture
        .collect_until(
            &mut outcomes,
            Duration::from_secs(60),
            "the first provisions answered",
            |outcomes| outcomes.answered(&first_provisions) == changed,
        )
        .await;
    assert!(
        outcomes.answered(&request_ids) < SCALE_PROVISIONS,
        "every provision was done before the rotates and deprovisions were published"
    );
    for index in 0..changed {
        let credential = format!("cred-scale-{index}");
        let (request_id, request) = if index < SCALE_ROTATES {
            let request_id = format!("r-scale-rotate-{index}");
            (request_id.clone(), rotate(&request_id, &credential))
        } else {
            let request_id = format!("r-scale-deprovision-{index}");
            let request = common::deprovision(&request_id, &credential);
            (request_id, request)
        };
        fixture.publish(&request).await;
        request_ids.insert(request_id);
    }

    fixture
        .collect_until(
            &mut outcomes,
            Duration::from_secs(120),
            "every request answered",
            |outcomes| outcomes.answered(&request_ids) == request_ids.len(),
        )
        .await;
    fixture.wait_until_idle().await;
    fixture.drain_outcomes(&mut outcomes).await;

    end_state::assert_clean_end_state(
        &fixture.simulator,
        &outcomes,
        &request_ids,
        0,
        &fixture.logs(),
    );
    assert_eq!(
        fixture.simulator.clients().len(),
        SCALE_PROVISIONS - SCALE_DEPROVISIONS,
        "clients left after the deprovisions"
    );
    for slot in 0..workers {
        assert!(
            fixture.log_of(slot).contains(OKTA_WORK_DONE),
            "worker {slot} of {workers} processed no request"
        );
    }
    fixture.finish().await;
}

/// Publishes `count` provisions of distinct credentials and returns their request ids,
/// `r-{label}-N` for credentials `cred-{label}-N`.
async fn publish_provisions(
    fixture: &BinaryFixture,
    label: &str,
    count: usize,
) -> BTreeSet<String> {
    let mut request_ids = BTreeSet::new();
    for index in 0..count {
        let request_id = format!("r-{label}-{index}");
        let request = common::provision(&request_id, &format!("cred-{label}-{index}"));
        fixture.publish(&request).await;
        request_ids.insert(request_id);
    }
    request_ids
}

/// Returns a rotate request for the credential that `common::provision` creates.
fn rotate(request_id: &str, credential_id: &str) -> Value {
    serde_json::json!({
        "requestId": request_id,
        "operation": "update",
        "credentialAction": "rotate",
        "id": credential_id,
        "name": format!("credential-{credential_id}"),
        "managedApplicationName": "Test App",
        "teamName": "Test Team"
    })
}

/// Waits until okta-sim contains at least `count` clients.
async fn wait_for_clients(simulator: &SimHandle, count: usize) {
    let within = Duration::from_secs(60);
    let deadline = Instant::now() + within;
    while simulator.clients().len() < count {
        assert!(
            Instant::now() < deadline,
            "okta-sim contains {} of {count} clients after {within:?}",
            simulator.clients().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

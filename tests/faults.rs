//! Faults injected into a running worker binary: RabbitMQ closing its connection, its request
//! queue deleted, SIGTERM with requests in flight, and the readiness check while the broker
//! connection is gone. Each test starts its own okta-sim and worker process on uniquely named
//! exchanges and queues, and stops the process and deletes the queues at the end (on a failure
//! too, from `Drop`).

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use lapin::options::QueueDeleteOptions;

use common::binary::{BinaryFixture, CONSUMING, DEADLINE, RECONNECTING, REUSED};
use common::end_state::{self, Outcomes};
use serde_json::Value;
use tokio::time::Instant;

/// Returns the RabbitMQ connection pid of the worker process `worker_pid`, found by the
/// connection name the worker gives itself (`okta-dcr-worker run (pid N)`). Only that
/// process's connection matches, so the test never closes another client's connection.
fn worker_connection(worker_pid: u32) -> Option<String> {
    let output = Command::new("rabbitmqctl")
        .args([
            "-q",
            "list_connections",
            "--no-table-headers",
            "pid",
            "client_properties",
            "name",
        ])
        .output()
        .expect("rabbitmqctl runs");
    assert!(
        output.status.success(),
        "rabbitmqctl list_connections failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let marker = format!("okta-dcr-worker run (pid {worker_pid})");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find(|line| line.contains(&marker))
        .and_then(|line| line.split('\t').next())
        .map(str::to_owned)
}

/// Waits until the worker `worker_pid` has a broker connection other than `previous`, and
/// returns its pid.
async fn wait_for_connection(worker_pid: u32, previous: Option<&str>) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match worker_connection(worker_pid) {
            Some(connection) if Some(connection.as_str()) != previous => return connection,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "the worker opened no new broker connection within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Has RabbitMQ close the connection `connection_pid`.
fn close_connection(connection_pid: &str) {
    let output = Command::new("rabbitmqctl")
        .args(["-q", "close_connection", connection_pid, "test"])
        .output()
        .expect("rabbitmqctl runs");
    assert!(
        output.status.success(),
        "rabbitmqctl close_connection {connection_pid} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

const CLOSE_REQUESTS: usize = 100;
const CLOSES: usize = 2;
const CLOSE_CONCURRENCY: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_connection_loses_nothing() {
    // One rabbitmqctl call takes a second or more, so the Okta latency and concurrency are
    // chosen to keep the 100 provisions running for several seconds, through both closes.
    let mut fixture = BinaryFixture::start(Duration::from_millis(300)).await;
    for index in 0..CLOSE_REQUESTS {
        let request = common::provision(&format!("r-close-{index}"), &format!("cred-{index}"));
        fixture.publish(&request).await;
    }
    let worker = fixture.spawn(&[("OKTA_DCR_CONCURRENCY", &CLOSE_CONCURRENCY.to_string())]);
    let pid = fixture.worker_pid(worker);

    let mut previous: Option<String> = None;
    for close in 1..=CLOSES {
        fixture.wait_for_log(CONSUMING, close).await;
        let connection = wait_for_connection(pid, previous.as_deref()).await;
        close_connection(&connection);
        let created = fixture.simulator.clients().len();
        assert!(
            created < CLOSE_REQUESTS,
            "close {close} came after every provision was done"
        );
        fixture.wait_for_log(RECONNECTING, close).await;
        previous = Some(connection);
    }

    let request_ids: BTreeSet<String> = (0..CLOSE_REQUESTS)
        .map(|index| format!("r-close-{index}"))
        .collect();
    let mut outcomes = Outcomes::default();
    fixture
        .collect_until(
            &mut outcomes,
            DEADLINE,
            "every request answered",
            |outcomes| outcomes.answered(&request_ids) == request_ids.len(),
        )
        .await;
    fixture.wait_until_idle().await;
    fixture.drain_outcomes(&mut outcomes).await;

    // Only a delivery unacked when its connection closed is delivered again, and the prefetch
    // (the concurrency) bounds those to CLOSE_CONCURRENCY per close.
    end_state::assert_clean_end_state(
        &fixture.simulator,
        &outcomes,
        &request_ids,
        CLOSES * CLOSE_CONCURRENCY,
        &fixture.logs(),
    );
    // Each close left registrations done in Okta whose results were not yet published, and
    // their redelivered requests must have found those clients instead of creating new ones.
    assert!(
        fixture.log_count(REUSED) > 0,
        "no close hit a request in flight"
    );
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_request_queue_redeclared() {
    let mut fixture = BinaryFixture::start(Duration::ZERO).await;
    fixture.spawn(&[]);
    fixture.wait_for_log(CONSUMING, 1).await;
    fixture.wait_for_consumers(1).await;

    let queue = fixture.settings.broker.topology.request_queue.clone();
    let deleter = fixture.connection.create_channel().await.unwrap();
    deleter
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let _ = deleter.close(200, "deleted".into()).await;

    fixture.wait_for_log(RECONNECTING, 1).await;
    fixture.wait_for_log(CONSUMING, 2).await;
    fixture.wait_for_consumers(1).await;
    fixture
        .publish(&common::provision("r-after-delete", "cred-after-delete"))
        .await;
    let request_ids = BTreeSet::from(["r-after-delete".to_owned()]);
    let mut outcomes = Outcomes::default();
    fixture
        .collect_until(
            &mut outcomes,
            DEADLINE,
            "the request's result",
            |outcomes| outcomes.answered(&request_ids) == 1,
        )
        .await;

    end_state::assert_every_request_answered(&outcomes, &request_ids, 0);
    end_state::assert_all_success(&outcomes);
    end_state::assert_one_client_per_credential(&fixture.simulator, &outcomes);
    fixture.finish().await;
}

const DRAIN_REQUESTS: usize = 20;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight() {
    let mut fixture = BinaryFixture::start(Duration::from_secs(2)).await;
    for index in 0..DRAIN_REQUESTS {
        let request = common::provision(&format!("r-drain-{index}"), &format!("cred-{index}"));
        fixture.publish(&request).await;
    }
    let drain = DRAIN_TIMEOUT.as_secs().to_string();
    let concurrency = DRAIN_REQUESTS.to_string();
    let env = [
        ("OKTA_DCR_CONCURRENCY", concurrency.as_str()),
        ("OKTA_DCR_DRAIN_TIMEOUT_SECS", drain.as_str()),
    ];
    let worker = fixture.spawn(&env);
    fixture.wait_for_log(CONSUMING, 1).await;
    let deadline = Instant::now() + DEADLINE;
    while fixture.request_queue_state().await.map(|(ready, _)| ready) != Some(0) {
        assert!(Instant::now() < deadline, "the worker took no requests");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Each registration takes 2 s in okta-sim, so none has finished yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fixture.simulator.clients().len(),
        0,
        "requests still in flight"
    );

    let (status, elapsed) = fixture
        .terminate(worker, DRAIN_TIMEOUT + Duration::from_secs(5))
        .await;
    assert!(status.success(), "the worker exited with {status}");
    assert!(
        elapsed < DRAIN_TIMEOUT + Duration::from_secs(2),
        "exited after {elapsed:?}"
    );
    let request_ids: BTreeSet<String> = (0..DRAIN_REQUESTS)
        .map(|index| format!("r-drain-{index}"))
        .collect();
    let mut outcomes = Outcomes::default();
    fixture.drain_outcomes(&mut outcomes).await;
    assert_eq!(
        outcomes.answered(&request_ids),
        DRAIN_REQUESTS,
        "requests answered before exit"
    );

    // A restarted worker finds nothing left to do: no request went back to the queue.
    fixture.respawn(worker, &env);
    fixture.wait_for_log(CONSUMING, 2).await;
    fixture.wait_until_idle().await;
    fixture.drain_outcomes(&mut outcomes).await;
    end_state::assert_every_request_answered(&outcomes, &request_ids, 0);
    end_state::assert_all_success(&outcomes);
    end_state::assert_no_dead_letters(&outcomes);
    end_state::assert_one_client_per_credential(&fixture.simulator, &outcomes);
    fixture.finish().await;
}

/// SIGTERM while the queue still contains a backlog: the requests in flight are acked before the
/// worker exits, so a restarted worker gives none of them a second result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_backlog_acks_in_flight() {
    const REQUESTS: usize = 48;
    let mut fixture = BinaryFixture::start(Duration::from_millis(300)).await;
    for index in 0..REQUESTS {
        let request = common::provision(&format!("r-backlog-{index}"), &format!("cred-{index}"));
        fixture.publish(&request).await;
    }
    let env = [("OKTA_DCR_CONCURRENCY", "8")];
    let worker = fixture.spawn(&env);
    fixture.wait_for_log(CONSUMING, 1).await;
    // Two batches of 8 take about 600 ms; stop in the middle of the third.
    tokio::time::sleep(Duration::from_millis(750)).await;
    let (status, _) = fixture.terminate(worker, DEADLINE).await;
    assert!(status.success(), "the worker exited with {status}");

    let request_ids: BTreeSet<String> = (0..REQUESTS)
        .map(|index| format!("r-backlog-{index}"))
        .collect();
    let mut outcomes = Outcomes::default();
    fixture.drain_outcomes(&mut outcomes).await;
    let before_restart = outcomes.answered(&request_ids);
    assert!(
        before_restart > 0 && before_restart < REQUESTS,
        "{before_restart} of {REQUESTS} answered before the restart"
    );

    fixture.respawn(worker, &env);
    fixture.wait_for_log(CONSUMING, 2).await;
    fixture.wait_until_idle().await;
    fixture.drain_outcomes(&mut outcomes).await;
    end_state::assert_every_request_answered(&outcomes, &request_ids, 0);
    end_state::assert_all_success(&outcomes);
    end_state::assert_one_client_per_credential(&fixture.simulator, &outcomes);
    fixture.finish().await;
}

/// One `/readyz` reply: the HTTP status and the `connected` flag of the JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReadyReply {
    status: u16,
    connected: bool,
}

/// Sends `GET /readyz` to `address`, or returns `None` while nothing listens there.
async fn get_readyz(client: &reqwest::Client, address: &str) -> Option<ReadyReply> {
    let response = client
        .get(format!("http://{address}/readyz"))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.ok()?;
    let connected = body["connected"].as_bool().unwrap_or(false);
    Some(ReadyReply { status, connected })
}

/// Polls `/readyz` every 20 ms until it returns 200 again after a 503 with `connected` false,
/// and returns every reply seen since the first 503.
async fn watch_readiness(address: String) -> Vec<ReadyReply> {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut seen: Vec<ReadyReply> = Vec::new();
    while Instant::now() < deadline {
        if let Some(reply) = get_readyz(&client, &address).await {
            let lost = seen.iter().any(|earlier| !earlier.connected);
            if reply.status != 200 || !seen.is_empty() {
                seen.push(reply);
            }
            if lost && reply.status == 200 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_broker_connection() {
    let mut fixture = BinaryFixture::start(Duration::ZERO).await;
    let address = common::free_local_addr().to_string();
    fixture.spawn(&[("OKTA_DCR_ADMIN_ADDR", address.as_str())]);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = Instant::now() + DEADLINE;
    while get_readyz(&client, &address)
        .await
        .map(|reply| reply.status)
        != Some(200)
    {
        assert!(Instant::now() < deadline, "/readyz never returned 200");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let watcher = tokio::spawn(watch_readiness(address));
    let connection = wait_for_connection(fixture.worker_pid(0), None).await;
    close_connection(&connection);
    let seen = watcher.await.unwrap();

    let lost = seen
        .iter()
        .position(|reply| reply.status == 503 && !reply.connected);
    assert!(lost.is_some(), "no 503 while disconnected: {seen:?}");
    let back = seen.last().map(|reply| reply.status);
    assert_eq!(
        back,
        Some(200),
        "not ready again after reconnecting: {seen:?}"
    );
    fixture.wait_for_log(RECONNECTING, 1).await;
    fixture.finish().await;
}

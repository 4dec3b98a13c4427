//! Faults injected into a running worker binary: RabbitMQ closing its connection, its request
//! queue deleted, SIGTERM with requests in flight, and the readiness check while the broker
//! connection is gone. Each test starts its own okta-sim and worker process on uniquely named
//! exchanges and queues, and stops the process and deletes the queues at the end (on a failure
//! too, from `Drop`).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use okta_dcr_worker::broker::{self, topology};
use okta_dcr_worker::contract::{Level, ResultMessage};
use okta_dcr_worker::settings::{OktaCredential, Settings};
use okta_dcr_worker::sim::{self, SimConfig, SimHandle};
use serde_json::Value;
use tokio::time::Instant;

/// How long a test waits for the worker to start, reconnect or finish its requests.
const DEADLINE: Duration = Duration::from_secs(60);

/// The line the worker logs each time it starts consuming the request queue.
const CONSUMING: &str = "Consuming requests.";

/// The line the worker logs when it lost the broker and is about to reconnect.
const RECONNECTING: &str = "Broker session lost; reconnecting.";

/// The line the worker logs when a redelivered provision finds the client it created before.
const REUSED: &str = "Found the client created by an earlier attempt";

/// A worker binary with its own okta-sim and topology, plus a test connection to the broker.
struct Fixture {
    simulator: SimHandle,
    settings: Settings,
    connection: Connection,
    /// A channel in confirm mode, used to publish requests and read results.
    channel: Channel,
    log_path: PathBuf,
    worker: Option<Child>,
    finished: bool,
}

impl Drop for Fixture {
    /// Stops the worker and deletes the topology when a failing test never reached `finish`.
    fn drop(&mut self) {
        if let Some(mut worker) = self.worker.take() {
            let _ = worker.kill();
            let _ = worker.wait();
        }
        if self.finished {
            return;
        }
        let settings = self.settings.broker.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(connection) = broker::connect(&settings.amqp_url, "test cleanup").await {
                    let _ = topology::delete_topology(&connection, &settings.topology).await;
                    let _ = connection.close(200, "test cleanup".into()).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

impl Fixture {
    /// Starts okta-sim with `latency` per Okta call and declares the test's topology, so that
    /// requests published before the worker starts wait in the request queue.
    async fn start(latency: Duration) -> Fixture {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = SimConfig {
            latency,
            ..SimConfig::default()
        };
        let simulator = sim::start(listener, config).await.unwrap();
        let settings = common::test_settings(&simulator);
        let connection = broker::connect(&settings.broker.amqp_url, "test")
            .await
            .expect("RabbitMQ must run at AMQP_URL (default 127.0.0.1:5672)");
        topology::declare_topology(&connection, &settings.broker.topology)
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let log_path =
            std::env::temp_dir().join(format!("{}.log", settings.broker.topology.request_queue));
        Fixture {
            simulator,
            settings,
            connection,
            channel,
            log_path,
            worker: None,
            finished: false,
        }
    }

    /// Starts the worker binary with the test's topology and okta-sim, the admin endpoint off
    /// unless `env` sets it, and `env` added. Its output is appended to the log file.
    fn spawn(&mut self, env: &[(&str, &str)]) {
        assert!(self.worker.is_none(), "a worker is already running");
        let topology = &self.settings.broker.topology;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let token = match &self.settings.okta.credential {
            OktaCredential::ApiToken(token) => token.expose().to_owned(),
            other => panic!("unexpected credential {other:?}"),
        };
        let mut command = Command::new(env!("CARGO_BIN_EXE_okta-dcr-worker"));
        command
            .arg("run")
            .env("AMQP_URL", self.settings.broker.amqp_url.expose())
            .env("OKTA_ORG_URL", self.settings.okta.org_url.as_str())
            .env("OKTA_API_TOKEN", token)
            .env("OKTA_DCR_RETRY_BUDGET_SECS", "60")
            .env("OKTA_DCR_REQUEST_EXCHANGE", &topology.request_exchange)
            .env("OKTA_DCR_REQUEST_QUEUE", &topology.request_queue)
            .env("OKTA_DCR_RESULT_EXCHANGE", &topology.result_exchange)
            .env(
                "OKTA_DCR_RESULT_QUEUE",
                topology.result_queue.as_deref().unwrap(),
            )
            .env(
                "OKTA_DCR_DEAD_LETTER_EXCHANGE",
                &topology.dead_letter_exchange,
            )
            .env("OKTA_DCR_DEAD_LETTER_QUEUE", &topology.dead_letter_queue)
            // The same delay queues as the test's settings, so that deleting its topology removes them.
            .env("OKTA_DCR_DELAY_STEPS_SECS", delay_steps(topology))
            .env("OKTA_DCR_ADMIN_ADDR", "")
            .env("RUST_LOG", "info");
        for (name, value) in env {
            command.env(name, value);
        }
        let worker = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the worker binary starts");
        self.worker = Some(worker);
    }

    /// Returns the process id of the running worker.
    fn worker_pid(&self) -> u32 {
        self.worker.as_ref().expect("a worker runs").id()
    }

    /// Sends SIGTERM to the worker and waits up to `within` for it to exit.
    async fn terminate(&mut self, within: Duration) -> (ExitStatus, Duration) {
        let pid = self.worker_pid().to_string();
        let sent = Instant::now();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success(), "kill -TERM {pid} failed");
        let mut worker = self.worker.take().unwrap();
        loop {
            if let Some(status) = worker.try_wait().unwrap() {
                return (status, sent.elapsed());
            }
            if sent.elapsed() >= within {
                let _ = worker.kill();
                let _ = worker.wait();
                panic!("the worker did not exit within {within:?} of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Publishes a JSON request to the request exchange and waits for the broker's confirm.
    async fn publish(&self, request: &Value) {
        let exchange = self.settings.broker.topology.request_exchange.as_str();
        let confirmation = self
            .channel
            .basic_publish(
                exchange.into(),
                "".into(),
                BasicPublishOptions::default(),
                request.to_string().as_bytes(),
                lapin::BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirmation.is_ack(), "the broker rejected a request");
    }

    /// Returns how many times the worker's log contains `line`.
    fn log_count(&self, line: &str) -> usize {
        std::fs::read_to_string(&self.log_path)
            .map(|log| log.matches(line).count())
            .unwrap_or(0)
    }

    /// Waits until the worker's log contains `line` at least `count` times.
    async fn wait_for_log(&self, line: &str, count: usize) {
        let deadline = Instant::now() + DEADLINE;
        while self.log_count(line) < count {
            assert!(
                Instant::now() < deadline,
                "the worker did not log {line:?} {count} times within {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Returns the request queue's ready messages and consumers, or `None` while the queue
    /// does not exist.
    async fn request_queue_state(&self) -> Option<(u32, u32)> {
        let probe = self.connection.create_channel().await.unwrap();
        let queue = self.settings.broker.topology.request_queue.as_str();
        let declared = probe
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        // A passive declare of a missing queue closes the probe channel with 404.
        let _ = probe.close(200, "probe".into()).await;
        declared
            .ok()
            .map(|queue| (queue.message_count(), queue.consumer_count()))
    }

    /// Waits until the request queue exists and has a consumer.
    async fn wait_for_consumer(&self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some((_, consumers)) = self.request_queue_state().await {
                if consumers > 0 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no consumer on the request queue within {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the request queue is empty and okta-sim has received no call for a while,
    /// so that no redelivered request is still being processed.
    async fn wait_until_idle(&self) {
        let quiet = Duration::from_millis(1500);
        let deadline = Instant::now() + DEADLINE;
        let mut calls = self.simulator.requests().len();
        let mut since = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.simulator.requests().len();
            if now != calls {
                calls = now;
                since = Instant::now();
            }
            let ready = self.request_queue_state().await.map(|(ready, _)| ready);
            if ready == Some(0) && since.elapsed() >= quiet {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the worker was still busy after {DEADLINE:?}"
            );
        }
    }

    /// Takes one result from the result queue, if one is waiting.
    async fn take_result(&self) -> Option<ResultMessage> {
        let queue = self
            .settings
            .broker
            .topology
            .result_queue
            .as_deref()
            .unwrap();
        let message = self
            .channel
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .unwrap()?;
        message
            .delivery
            .ack(BasicAckOptions::default())
            .await
            .unwrap();
        let result = serde_json::from_slice(&message.delivery.data).unwrap_or_else(|error| {
            panic!(
                "unreadable result {}: {error}",
                String::from_utf8_lossy(&message.delivery.data)
            )
        });
        Some(result)
    }

    /// Reads results until `expected` request ids have at least one, and returns every result
    /// read, by request id.
    async fn collect_results(&self, expected: usize) -> HashMap<String, Vec<ResultMessage>> {
        let mut results: HashMap<String, Vec<ResultMessage>> = HashMap::new();
        let deadline = Instant::now() + DEADLINE;
        while results.len() < expected {
            assert!(
                Instant::now() < deadline,
                "only {} of {expected} requests answered within {DEADLINE:?}",
                results.len()
            );
            match self.take_result().await {
                Some(result) => results
                    .entry(result.request_id.clone())
                    .or_default()
                    .push(result),
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        results
    }

    /// Adds the results still waiting in the result queue to `results`.
    async fn drain_results(&self, results: &mut HashMap<String, Vec<ResultMessage>>) {
        while let Some(result) = self.take_result().await {
            results
                .entry(result.request_id.clone())
                .or_default()
                .push(result);
        }
    }

    /// Stops the worker, deletes the topology and the log file, and stops okta-sim.
    async fn finish(mut self) {
        if self.worker.is_some() {
            let (status, _) = self.terminate(Duration::from_secs(30)).await;
            assert!(status.success(), "the worker exited with {status}");
        }
        topology::delete_topology(&self.connection, &self.settings.broker.topology)
            .await
            .unwrap();
        self.finished = true;
        let _ = std::fs::remove_file(&self.log_path);
        let _ = self.connection.close(200, "test done".into()).await;
        self.simulator.clone().shutdown().await;
    }
}

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

/// Asserts that every result is a Success.
fn assert_all_success(results: &HashMap<String, Vec<ResultMessage>>) {
    for (request_id, answers) in results {
        for result in answers {
            assert_eq!(
                result.status.level,
                Level::Success,
                "{request_id}: {}",
                result.status.reason
            );
        }
    }
}

/// Asserts that okta-sim contains `expected` clients, no two with the same name.
fn assert_one_client_per_credential(simulator: &SimHandle, expected: usize) {
    let clients = simulator.clients();
    assert_eq!(clients.len(), expected, "one Okta client per credential");
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for client in &clients {
        *by_name
            .entry(client.metadata.client_name.as_str())
            .or_default() += 1;
    }
    let duplicates: Vec<_> = by_name.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        duplicates.is_empty(),
        "duplicate client names {duplicates:?}"
    );
}

const CLOSE_REQUESTS: usize = 100;
const CLOSES: usize = 2;
const CLOSE_CONCURRENCY: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_connection_loses_nothing() {
    // One rabbitmqctl call takes a second or more, so the Okta latency and concurrency are
    // chosen to keep the 100 provisions running for several seconds, through both closes.
    let mut fixture = Fixture::start(Duration::from_millis(300)).await;
    for index in 0..CLOSE_REQUESTS {
        let request = common::provision(&format!("r-close-{index}"), &format!("cred-{index}"));
        fixture.publish(&request).await;
    }
    fixture.spawn(&[("OKTA_DCR_CONCURRENCY", &CLOSE_CONCURRENCY.to_string())]);
    let pid = fixture.worker_pid();

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

    let mut results = fixture.collect_results(CLOSE_REQUESTS).await;
    fixture.wait_until_idle().await;
    fixture.drain_results(&mut results).await;

    assert_eq!(results.len(), CLOSE_REQUESTS, "every request answered");
    assert_all_success(&results);
    assert_one_client_per_credential(&fixture.simulator, CLOSE_REQUESTS);
    // Each close left registrations done in Okta whose results were not yet published, and
    // their redelivered requests must have found those clients instead of creating new ones.
    assert!(
        fixture.log_count(REUSED) > 0,
        "no close hit a request in flight"
    );
    // Only a delivery unacked when its connection closed is delivered again, and the prefetch
    // (the concurrency) bounds those to CLOSE_CONCURRENCY per close.
    let answers: usize = results.values().map(Vec::len).sum();
    assert!(
        answers <= CLOSE_REQUESTS + CLOSES * CLOSE_CONCURRENCY,
        "{answers} results for {CLOSE_REQUESTS} requests"
    );
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_request_queue_redeclared() {
    let mut fixture = Fixture::start(Duration::ZERO).await;
    fixture.spawn(&[]);
    fixture.wait_for_log(CONSUMING, 1).await;
    fixture.wait_for_consumer().await;

    let queue = fixture.settings.broker.topology.request_queue.clone();
    let deleter = fixture.connection.create_channel().await.unwrap();
    deleter
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let _ = deleter.close(200, "deleted".into()).await;

    fixture.wait_for_log(RECONNECTING, 1).await;
    fixture.wait_for_log(CONSUMING, 2).await;
    fixture.wait_for_consumer().await;
    fixture
        .publish(&common::provision("r-after-delete", "cred-after-delete"))
        .await;
    let results = fixture.collect_results(1).await;

    assert!(results.contains_key("r-after-delete"), "{results:?}");
    assert_all_success(&results);
    assert_one_client_per_credential(&fixture.simulator, 1);
    fixture.finish().await;
}

const DRAIN_REQUESTS: usize = 20;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight() {
    let mut fixture = Fixture::start(Duration::from_secs(2)).await;
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
    fixture.spawn(&env);
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
        .terminate(DRAIN_TIMEOUT + Duration::from_secs(5))
        .await;
    assert!(status.success(), "the worker exited with {status}");
    assert!(
        elapsed < DRAIN_TIMEOUT + Duration::from_secs(2),
        "exited after {elapsed:?}"
    );
    let mut results = HashMap::new();
    fixture.drain_results(&mut results).await;
    assert_eq!(
        results.len(),
        DRAIN_REQUESTS,
        "requests answered before exit"
    );

    // A restarted worker finds nothing left to do: no request went back to the queue.
    fixture.spawn(&env);
    fixture.wait_for_log(CONSUMING, 2).await;
    fixture.wait_until_idle().await;
    fixture.drain_results(&mut results).await;
    let answers: usize = results.values().map(Vec::len).sum();
    assert_eq!(answers, DRAIN_REQUESTS, "one result per request");
    assert_all_success(&results);
    assert_one_client_per_credential(&fixture.simulator, DRAIN_REQUESTS);
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
    let mut fixture = Fixture::start(Duration::ZERO).await;
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
    let connection = wait_for_connection(fixture.worker_pid(), None).await;
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

fn delay_steps(topology: &okta_dcr_worker::settings::Topology) -> String {
    let steps: Vec<String> = topology.delay_steps.iter().map(u32::to_string).collect();
    steps.join(",")
}

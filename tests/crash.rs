//! The real binary, killed with SIGKILL while provisions are in flight, must leave exactly one
//! Okta client per credential and hand out each credential's current secret last.

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use okta_dcr_worker::broker::{self, topology};
use okta_dcr_worker::contract::{Level, ResultMessage};
use okta_dcr_worker::settings::Settings;
use okta_dcr_worker::sim::{self, SimConfig};

const REQUESTS: usize = 200;
const KILLS: usize = 3;
const MAX_KILLS: usize = 8;

/// Starts the worker binary with the test's settings; its log goes to `log_path`.
fn spawn_worker(settings: &Settings, log_path: &std::path::Path) -> Child {
    let topology = &settings.broker.topology;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .unwrap();
    let token = match &settings.okta.credential {
        okta_dcr_worker::settings::OktaCredential::ApiToken(token) => token.expose().to_owned(),
        other => panic!("unexpected credential {other:?}"),
    };
    Command::new(env!("CARGO_BIN_EXE_okta-dcr-worker"))
        .arg("run")
        .env("AMQP_URL", settings.broker.amqp_url.expose())
        .env("OKTA_ORG_URL", settings.okta.org_url.as_str())
        .env("OKTA_API_TOKEN", token)
        .env("OKTA_DCR_CONCURRENCY", "16")
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
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("the worker binary starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_worker_leaves_one_client_per_credential() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = SimConfig {
        latency: Duration::from_millis(200),
        ..SimConfig::default()
    };
    let simulator = sim::start(listener, config).await.unwrap();
    let settings = common::test_settings(&simulator);
    let names = settings.broker.topology.clone();
    let connection = broker::connect(&settings.broker.amqp_url, "test")
        .await
        .unwrap();
    topology::declare_topology(&connection, &names)
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();

    for index in 0..REQUESTS {
        let request = common::provision(&format!("r-kill-{index}"), &format!("cred-kill-{index}"));
        channel
            .basic_publish(
                names.request_exchange.as_str().into(),
                "".into(),
                BasicPublishOptions::default(),
                request.to_string().as_bytes(),
                lapin::BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    let log_path = std::env::temp_dir().join(format!("{}.log", names.request_queue));
    let mut worker = spawn_worker(&settings, &log_path);
    // At least KILLS kills; more (up to MAX_KILLS) while none has yet landed between a
    // registration and its ack, which a busy machine can make unlucky.
    let mut kills = 0;
    while kills < KILLS || (kills < MAX_KILLS && !log_mentions_reuse(&log_path)) {
        wait_for_registrations(&simulator, 20).await;
        worker.kill().unwrap();
        worker.wait().unwrap();
        worker = spawn_worker(&settings, &log_path);
        kills += 1;
    }

    let result_queue = names.result_queue.as_deref().unwrap();
    let mut results = Collected::default();
    loop {
        collect_results(&channel, result_queue, &mut results).await;
        worker.kill().unwrap();
        worker.wait().unwrap();
        // A request whose result was published but not yet acked is back in the queue now,
        // and would publish a newer result: let a worker finish it before comparing secrets.
        if queue_ready(&connection, &names.request_queue).await == 0 {
            break;
        }
        worker = spawn_worker(&settings, &log_path);
    }
    drain_results(&channel, result_queue, &mut results).await;
    assert!(
        log_mentions_reuse(&log_path),
        "no kill landed between a registration and its ack"
    );
    assert!(results.total >= REQUESTS);

    let clients = simulator.clients();
    assert_eq!(clients.len(), REQUESTS, "one Okta client per credential");
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for client in &clients {
        *by_name
            .entry(client.metadata.client_name.as_str())
            .or_default() += 1;
    }
    assert!(
        by_name.values().all(|count| *count == 1),
        "duplicate client names"
    );

    let current: HashMap<&str, &str> = clients
        .iter()
        .map(|client| {
            let secret = client.client_secret.as_ref().unwrap().expose();
            (client.client_id.as_str(), secret)
        })
        .collect();
    for (request_id, last) in &results.last_by_request {
        let data = last.data.as_ref().unwrap();
        let secret = data.client_secret.as_ref().unwrap().expose();
        assert_eq!(
            current.get(data.client_id.as_str()).copied(),
            Some(secret),
            "{request_id}: the last result must carry the current secret"
        );
    }

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        !log.contains(simulator.api_token().expose()),
        "API token in the log"
    );
    for secret in current.values() {
        assert!(!log.contains(secret), "a client secret in the log");
    }

    std::fs::remove_file(&log_path).unwrap();
    topology::delete_topology(&connection, &names)
        .await
        .unwrap();
    simulator.shutdown().await;
}

/// Waits until okta-sim received `count` more registrations, so that a kill lands while
/// calls are in flight, some of them already carried out by okta-sim but not yet answered.
async fn wait_for_registrations(simulator: &sim::SimHandle, count: usize) {
    let registrations = |simulator: &sim::SimHandle| {
        simulator
            .requests()
            .iter()
            .filter(|request| request.method == "POST" && request.path == "/oauth2/v1/clients")
            .count()
    };
    let target = registrations(simulator) + count;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while registrations(simulator) < target {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker makes no progress"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(120)).await;
}

#[derive(Default)]
struct Collected {
    last_by_request: HashMap<String, ResultMessage>,
    total: usize,
}

/// Reads results until every request has a Success, or fails after two minutes.
async fn collect_results(channel: &lapin::Channel, queue: &str, collected: &mut Collected) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while collected.last_by_request.len() < REQUESTS {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {REQUESTS} requests answered",
            collected.last_by_request.len()
        );
        if !take_result(channel, queue, collected).await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Reads the results still waiting in the queue.
async fn drain_results(channel: &lapin::Channel, queue: &str, collected: &mut Collected) {
    while take_result(channel, queue, collected).await {}
}

async fn take_result(channel: &lapin::Channel, queue: &str, collected: &mut Collected) -> bool {
    let message = channel
        .basic_get(queue.into(), BasicGetOptions::default())
        .await
        .unwrap();
    let Some(message) = message else {
        return false;
    };
    message
        .delivery
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    let result: ResultMessage = serde_json::from_slice(&message.delivery.data).unwrap();
    assert_eq!(
        result.status.level,
        Level::Success,
        "{}",
        result.status.reason
    );
    collected.total += 1;
    collected
        .last_by_request
        .insert(result.request_id.clone(), result);
    true
}

async fn queue_ready(connection: &lapin::Connection, queue: &str) -> u32 {
    let probe = connection.create_channel().await.unwrap();
    let declared = probe
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    let _ = probe.close(200, "probe".into()).await;
    declared.message_count()
}

fn log_mentions_reuse(log_path: &std::path::Path) -> bool {
    std::fs::read_to_string(log_path)
        .map(|log| log.contains("Found the client created by an earlier attempt"))
        .unwrap_or(false)
}

fn delay_steps(topology: &okta_dcr_worker::settings::Topology) -> String {
    let steps: Vec<String> = topology.delay_steps.iter().map(u32::to_string).collect();
    steps.join(",")
}

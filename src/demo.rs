//! `demo`: the whole flow on this machine's RabbitMQ, with an embedded okta-sim.
//!
//! The demo uses its own exchanges and queues (named `okta-dcr-demo-<pid>.*`) and deletes them
//! at the end, so it never touches a real worker's queues. Client secrets are masked in what it
//! prints.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions};
use lapin::types::FieldTable;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::broker::{self, publisher::json_properties, ConfirmedPublisher};
use crate::contract::NameTemplate;
use crate::publish::{read_all, validate_all, Validated};
use crate::secret::Secret;
use crate::settings::{
    BrokerSettings, OktaCredential, OktaSettings, QueueType, Settings, Topology, WorkerSettings,
    DEFAULT_AMQP_URL,
};
use crate::sim::{self, SimConfig};

/// How long the demo waits for all results.
const RESULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the demo on the request files or folders in `paths`.
pub async fn run(paths: &[PathBuf]) -> ExitCode {
    match run_demo(paths).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("okta-dcr-worker demo: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run_demo(paths: &[PathBuf]) -> Result<bool, String> {
    let inputs = read_all(paths)?;
    let (requests, invalid) = validate_all(&inputs, &NameTemplate::default(), 1024 * 1024);
    if let Some((origin, reason)) = invalid.first() {
        return Err(format!("invalid request {origin}: {reason}"));
    }
    if requests.is_empty() {
        return Err("no requests found in the given paths".to_owned());
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|error| format!("cannot start okta-sim: {error}"))?;
    let simulator = sim::start(listener, SimConfig::default())
        .await
        .map_err(|error| format!("cannot start okta-sim: {error}"))?;
    println!("okta-sim listening on {}", simulator.base_url());

    let settings = demo_settings(&simulator)?;
    let (stop, stopped) = oneshot::channel::<()>();
    let worker = tokio::spawn(crate::worker::run(settings.clone(), async {
        let _ = stopped.await;
    }));

    let outcome = publish_and_collect(&settings.broker, &requests).await;
    let _ = stop.send(());
    let worker_result = worker.await;
    cleanup(&settings.broker).await;
    println!("okta-sim now holds {} client(s)", simulator.clients().len());
    simulator.shutdown().await;

    match worker_result {
        Ok(Err(error)) => return Err(format!("the worker stopped: {error}")),
        Err(error) => return Err(format!("the worker task failed: {error}")),
        Ok(Ok(())) => {}
    }
    let results = outcome?;
    let all_success = results
        .iter()
        .all(|result| result["status"]["level"] == "Success");
    Ok(all_success && results.len() == requests.len())
}

fn demo_settings(simulator: &sim::SimHandle) -> Result<Settings, String> {
    let prefix = format!("okta-dcr-demo-{}", std::process::id());
    let amqp_url = std::env::var("AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.to_owned());
    let org_url = url::Url::parse(&simulator.base_url()).map_err(|error| error.to_string())?;
    Ok(Settings {
        broker: BrokerSettings {
            amqp_url: Secret::new(amqp_url),
            topology: Topology {
                request_queue_type: QueueType::Classic,
                delay_steps: vec![10, 30],
                ..Topology::with_prefix(&prefix)
            },
            confirm_timeout: Duration::from_secs(30),
            max_body_bytes: 1024 * 1024,
            heartbeat: Duration::from_secs(30),
        },
        okta: OktaSettings {
            org_url,
            credential: OktaCredential::ApiToken(simulator.api_token().clone()),
            group_id: None,
            call_timeout: Duration::from_secs(10),
            max_concurrent_calls: 8,
        },
        worker: WorkerSettings {
            concurrency: 4,
            retry_budget: Duration::from_secs(30),
            in_process_retry: Duration::from_secs(10),
            client_name_template: None,
            drain_timeout: Duration::from_secs(10),
            admin_addr: None,
        },
    })
}

async fn publish_and_collect(
    settings: &BrokerSettings,
    requests: &[Validated],
) -> Result<Vec<Value>, String> {
    let connection = broker::connect(&settings.amqp_url, "demo")
        .await
        .map_err(|error| format!("cannot connect to RabbitMQ (AMQP_URL): {error}"))?;
    broker::declare_topology(&connection, &settings.topology)
        .await
        .map_err(|error| error.to_string())?;
    let publisher = ConfirmedPublisher::open(&connection, settings.confirm_timeout)
        .await
        .map_err(|error| error.to_string())?;
    for request in requests {
        let properties = json_properties().with_message_id(request.request_id.as_str().into());
        publisher
            .publish(
                &settings.topology.request_exchange,
                "",
                &request.body,
                properties,
            )
            .await
            .map_err(|error| format!("publishing {} failed: {error}", request.origin))?;
        println!(
            "published {} ({} {})",
            request.origin,
            request.job.as_str(),
            request.request_id
        );
    }
    let results = collect_results(&connection, settings, requests.len()).await;
    let _ = connection.close(200, "demo done".into()).await;
    results
}

async fn collect_results(
    connection: &lapin::Connection,
    settings: &BrokerSettings,
    expected: usize,
) -> Result<Vec<Value>, String> {
    let channel = connection
        .create_channel()
        .await
        .map_err(|error| error.to_string())?;
    let queue = settings.topology.result_queue.clone().unwrap_or_default();
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "okta-dcr-demo".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|error| error.to_string())?;
    let mut results = Vec::new();
    let deadline = tokio::time::Instant::now() + RESULT_TIMEOUT;
    while results.len() < expected {
        let next = tokio::time::timeout_at(deadline, consumer.next()).await;
        let delivery = match next {
            Ok(Some(Ok(delivery))) => delivery,
            Ok(_) => return Err("the results consumer stopped".to_owned()),
            Err(_) => {
                return Err(format!(
                    "timed out after {RESULT_TIMEOUT:?} with {} of {expected} results",
                    results.len()
                ))
            }
        };
        let _ = delivery.ack(BasicAckOptions::default()).await;
        let mut result: Value = serde_json::from_slice(&delivery.data)
            .map_err(|error| format!("unreadable result: {error}"))?;
        mask_secret(&mut result);
        println!("result {}:", delivery.routing_key);
        println!(
            "{}",
            serde_json::to_string_pretty(&result).unwrap_or_default()
        );
        results.push(result);
    }
    Ok(results)
}

fn mask_secret(result: &mut Value) {
    if let Some(secret) = result.pointer_mut("/data/clientSecret") {
        let length = secret.as_str().map(str::len).unwrap_or(0);
        *secret = Value::String(format!("<{length} characters, hidden>"));
    }
}

async fn cleanup(settings: &BrokerSettings) {
    if let Ok(connection) = broker::connect(&settings.amqp_url, "demo cleanup").await {
        let _ = broker::topology::delete_topology(&connection, &settings.topology).await;
        let _ = connection.close(200, "demo cleaned up".into()).await;
    }
}

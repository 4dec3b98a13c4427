//! Test harness: a worker running in-process against the real RabbitMQ (`AMQP_URL`, default
//! the local broker) and an okta-sim on 127.0.0.1, with exchanges and queues named uniquely
//! per test and deleted when the test ends.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use okta_dcr_worker::broker::{self, topology};
use okta_dcr_worker::contract::ResultMessage;
use okta_dcr_worker::secret::Secret;
use okta_dcr_worker::settings::{
    BrokerSettings, OktaCredential, OktaSettings, Settings, Topology, WorkerSettings,
    DEFAULT_AMQP_URL,
};
use okta_dcr_worker::sim::{self, RecordedRequest, SimConfig, SimHandle};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a test waits for one result or dead letter.
pub const WAIT: Duration = Duration::from_secs(20);

/// A dead-lettered request read back from the dead-letter queue.
pub struct DeadLetter {
    pub body: Vec<u8>,
    pub headers: FieldTable,
}

impl DeadLetter {
    /// Returns a text header.
    pub fn text(&self, name: &str) -> Option<String> {
        broker::headers::text(Some(&self.headers), name)
    }

    /// Returns an integer header.
    pub fn integer(&self, name: &str) -> Option<i64> {
        broker::headers::integer(Some(&self.headers), name)
    }
}

/// A running worker with its own topology and okta-sim.
pub struct Harness {
    pub settings: Settings,
    pub sim: SimHandle,
    connection: Connection,
    channel: Channel,
    stop: Option<oneshot::Sender<()>>,
    worker: Option<JoinHandle<Result<(), okta_dcr_worker::worker::WorkerError>>>,
    finished: bool,
}

impl Drop for Harness {
    /// Deletes the test's exchanges and queues when a failing test never reached `finish`,
    /// so that a failure leaves nothing behind on the broker.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if let Some(worker) = self.worker.take() {
            worker.abort();
        }
        delete_topology_now(&self.settings.broker);
    }
}

/// Deletes a test's exchanges and queues from a thread of its own, so that it works in `Drop`,
/// inside or outside a runtime.
pub fn delete_topology_now(settings: &BrokerSettings) {
    let settings = settings.clone();
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

impl Harness {
    /// Starts okta-sim and a worker with default test settings.
    pub async fn start() -> Harness {
        Self::start_with(|_| {}).await
    }

    /// Starts okta-sim and a worker, letting `adjust` change the settings first.
    pub async fn start_with(adjust: impl FnOnce(&mut Settings)) -> Harness {
        Self::start_with_sim(SimConfig::default(), adjust).await
    }

    /// Starts okta-sim with `sim_config` and a worker, letting `adjust` change the settings.
    pub async fn start_with_sim(
        sim_config: SimConfig,
        adjust: impl FnOnce(&mut Settings),
    ) -> Harness {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim = sim::start(listener, sim_config).await.unwrap();
        let mut settings = test_settings(&sim);
        adjust(&mut settings);
        let connection = broker::connect(&settings.broker.amqp_url, "test")
            .await
            .expect("RabbitMQ must run at AMQP_URL (default 127.0.0.1:5672)");
        let channel = connection.create_channel().await.unwrap();
        let mut harness = Harness {
            settings,
            sim,
            connection,
            channel,
            stop: None,
            worker: None,
            finished: false,
        };
        harness.start_worker().await;
        harness
    }

    /// Starts (or restarts) the in-process worker. The topology is declared here first, so
    /// that nothing the test publishes can arrive before the worker's queues and bindings
    /// exist; the worker declares it again, which changes nothing.
    pub async fn start_worker(&mut self) {
        topology::declare_topology(&self.connection, &self.settings.broker.topology)
            .await
            .unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let settings = self.settings.clone();
        self.worker = Some(tokio::spawn(okta_dcr_worker::worker::run(
            settings,
            async {
                let _ = stopped.await;
            },
        )));
        self.stop = Some(stop);
    }

    /// Stops the worker and returns how `run` ended.
    pub async fn stop_worker(&mut self) -> Result<(), okta_dcr_worker::worker::WorkerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.worker.take() {
            Some(worker) => worker.await.expect("worker task panicked"),
            None => Ok(()),
        }
    }

    /// Publishes a JSON request to the request exchange.
    pub async fn publish(&self, request: &Value) {
        self.publish_raw(
            request.to_string().as_bytes(),
            Some("application/json"),
            None,
        )
        .await;
    }

    /// Publishes raw bytes with an optional content type and message id.
    pub async fn publish_raw(
        &self,
        body: &[u8],
        content_type: Option<&str>,
        message_id: Option<&str>,
    ) {
        let mut properties = BasicProperties::default().with_delivery_mode(2);
        if let Some(content_type) = content_type {
            properties = properties.with_content_type(content_type.into());
        }
        if let Some(message_id) = message_id {
            properties = properties.with_message_id(message_id.into());
        }
        let confirm = self
            .channel
            .basic_publish(
                self.settings
                    .broker
                    .topology
                    .request_exchange
                    .as_str()
                    .into(),
                "".into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .unwrap();
        drop(confirm);
    }

    /// Waits for the next result message and acks it.
    pub async fn next_result(&self) -> ResultMessage {
        let queue = self.settings.broker.topology.result_queue.clone().unwrap();
        let (body, _) = self.next_message(&queue).await;
        serde_json::from_slice(&body).unwrap_or_else(|error| {
            panic!(
                "unreadable result {}: {error}",
                String::from_utf8_lossy(&body)
            )
        })
    }

    /// Waits for the next result message and returns it as raw JSON, with its routing key.
    pub async fn next_result_json(&self) -> (Value, String) {
        let queue = self.settings.broker.topology.result_queue.clone().unwrap();
        let (body, routing_key) = self.next_message(&queue).await;
        (serde_json::from_slice(&body).unwrap(), routing_key)
    }

    /// Waits for the next dead-lettered request and acks it.
    pub async fn next_dead_letter(&self) -> DeadLetter {
        let queue = self.settings.broker.topology.dead_letter_queue.clone();
        let message = self.get_within(&queue, WAIT).await;
        let message = message.unwrap_or_else(|| panic!("no dead letter within {WAIT:?}"));
        DeadLetter {
            body: message.0,
            headers: message.2.unwrap_or_default(),
        }
    }

    /// Returns how many messages are waiting in `queue`.
    pub async fn queue_len(&self, queue: &str) -> u32 {
        let probe = self.connection.create_channel().await.unwrap();
        let declared = probe
            .queue_declare(
                queue.into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let _ = probe.close(200, "probe".into()).await;
        declared.message_count()
    }

    /// Asserts that nothing arrives in `queue` within `window`.
    pub async fn assert_empty_for(&self, queue: &str, window: Duration) {
        if let Some((body, routing_key, _)) = self.get_within(queue, window).await {
            panic!(
                "unexpected message in {queue} ({routing_key}): {}",
                String::from_utf8_lossy(&body)
            );
        }
    }

    /// Returns the Okta calls okta-sim received for requests, leaving out the worker's
    /// credential check at start (`GET /oauth2/v1/clients?limit=1`).
    pub fn okta_calls(&self) -> Vec<RecordedRequest> {
        self.sim
            .requests()
            .into_iter()
            .filter(|request| request.query.as_deref() != Some("limit=1"))
            .collect()
    }

    /// Returns the Okta calls okta-sim received that match `method` and `path_prefix`.
    pub fn calls(&self, method: &str, path_prefix: &str) -> Vec<RecordedRequest> {
        self.okta_calls()
            .into_iter()
            .filter(|request| request.method == method && request.path.starts_with(path_prefix))
            .collect()
    }

    async fn next_message(&self, queue: &str) -> (Vec<u8>, String) {
        let message = self.get_within(queue, WAIT).await;
        let (body, routing_key, _) =
            message.unwrap_or_else(|| panic!("no message in {queue} within {WAIT:?}"));
        (body, routing_key)
    }

    async fn get_within(
        &self,
        queue: &str,
        window: Duration,
    ) -> Option<(Vec<u8>, String, Option<FieldTable>)> {
        let deadline = tokio::time::Instant::now() + window;
        loop {
            let message = self
                .channel
                .basic_get(queue.into(), BasicGetOptions::default())
                .await
                .unwrap();
            if let Some(message) = message {
                let delivery = message.delivery;
                delivery.ack(BasicAckOptions::default()).await.unwrap();
                let headers = delivery.properties.headers().clone();
                return Some((delivery.data, delivery.routing_key.to_string(), headers));
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Stops the worker, deletes the test's exchanges and queues and stops okta-sim.
    pub async fn finish(mut self) {
        let _ = self.stop_worker().await;
        topology::delete_topology(&self.connection, &self.settings.broker.topology)
            .await
            .unwrap();
        self.finished = true;
        let _ = self.connection.close(200, "test done".into()).await;
        self.sim.clone().shutdown().await;
    }
}

/// Settings for one test: unique names, a short retry budget, okta-sim as Okta, and the admin
/// endpoint on a free local port.
pub fn test_settings(sim: &SimHandle) -> Settings {
    let prefix = format!("okta-dcr-test-{}", uuid::Uuid::new_v4().simple());
    let amqp_url = std::env::var("AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.to_owned());
    Settings {
        broker: BrokerSettings {
            amqp_url: Secret::new(amqp_url),
            topology: Topology {
                delay_steps: vec![1, 2],
                ..Topology::with_prefix(&prefix)
            },
            confirm_timeout: Duration::from_secs(10),
            max_body_bytes: 64 * 1024,
            heartbeat: Duration::from_secs(30),
        },
        okta: OktaSettings {
            org_url: url::Url::parse(&sim.base_url()).unwrap(),
            credential: OktaCredential::ApiToken(sim.api_token().clone()),
            group_id: None,
            call_timeout: Duration::from_secs(5),
            max_concurrent_calls: 8,
        },
        worker: WorkerSettings {
            concurrency: 8,
            retry_budget: Duration::from_secs(10),
            in_process_retry: Duration::from_secs(10),
            client_name_template: None,
            drain_timeout: Duration::from_secs(10),
            admin_addr: Some(free_local_addr()),
        },
    }
}

/// Returns a local address with a port that was free a moment ago. The port is released
/// before the worker binds it, so another process could take it in between; the worker then
/// stops at start with an error naming `OKTA_DCR_ADMIN_ADDR`.
pub fn free_local_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Returns a valid client_credentials provision request.
pub fn provision(request_id: &str, credential_id: &str) -> Value {
    serde_json::json!({
        "requestId": request_id,
        "operation": "provision",
        "id": credential_id,
        "name": format!("credential-{credential_id}"),
        "managedApplicationName": "Test App",
        "teamName": "Test Team",
        "credentialData": {
            "grantType": "client_credentials",
            "tokenAuthMethod": "client_secret_basic"
        },
        "context": { "trace": request_id }
    })
}

/// Returns a deprovision request for the credential that `provision` creates.
pub fn deprovision(request_id: &str, credential_id: &str) -> Value {
    serde_json::json!({
        "requestId": request_id,
        "operation": "deprovision",
        "id": credential_id,
        "name": format!("credential-{credential_id}"),
        "managedApplicationName": "Test App",
        "teamName": "Test Team"
    })
}

pub mod binary;
pub mod end_state;

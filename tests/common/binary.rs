//! Worker binary processes (`run`) against the real RabbitMQ and an in-process okta-sim, with
//! their own uniquely named topology. The processes are stopped and the topology deleted at
//! the end, also when a test fails (from `Drop`).

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use okta_dcr_worker::broker::{self, topology};
use okta_dcr_worker::contract::ResultMessage;
use okta_dcr_worker::settings::{OktaCredential, Settings, Topology};
use okta_dcr_worker::sim::{self, SimConfig, SimHandle};
use serde_json::Value;
use tokio::time::Instant;

use super::end_state::Outcomes;
use super::DeadLetter;

/// How long a fixture waits for a worker to start, reconnect or go idle.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The line a worker logs each time it starts consuming the request queue.
pub const CONSUMING: &str = "Consuming requests.";

/// The line a worker logs when it lost the broker and is about to reconnect.
pub const RECONNECTING: &str = "Broker session lost; reconnecting.";

/// The line a worker logs when a provision that may have run before finds the client it
/// created.
pub const REUSED: &str = "Found the client created by an earlier attempt";

/// The header [`BinaryFixture::publish_tagged`] puts on a request, kept on its dead-letter
/// copy, so that a test can tell which request a dead letter is.
pub const TAG_HEADER: &str = "test-tag";

/// Worker processes sharing one okta-sim and one topology, plus a test connection to the
/// broker.
pub struct BinaryFixture {
    pub simulator: SimHandle,
    pub settings: Settings,
    pub connection: Connection,
    /// A channel in confirm mode, used to publish requests and read results.
    pub channel: Channel,
    /// One log file per worker process started, in start order; a restarted slot appends.
    log_paths: Vec<PathBuf>,
    /// The running process of each slot.
    workers: Vec<Option<Child>>,
    finished: bool,
}

impl Drop for BinaryFixture {
    /// Kills the workers and, when a failing test never reached `finish`, deletes the
    /// topology. The log files are kept then, for the failure's diagnosis.
    fn drop(&mut self) {
        for mut worker in self.workers.iter_mut().filter_map(Option::take) {
            let _ = worker.kill();
            let _ = worker.wait();
        }
        if self.finished {
            return;
        }
        for path in &self.log_paths {
            eprintln!("worker log kept at {}", path.display());
        }
        super::delete_topology_now(&self.settings.broker);
    }
}

impl BinaryFixture {
    /// Starts okta-sim with `latency` per Okta call and declares the test's topology.
    pub async fn start(latency: Duration) -> BinaryFixture {
        let config = SimConfig {
            latency,
            ..SimConfig::default()
        };
        Self::start_with_sim(config).await
    }

    /// Starts okta-sim with `config` and declares the test's topology, so that requests
    /// published before a worker starts wait in the request queue.
    pub async fn start_with_sim(config: SimConfig) -> BinaryFixture {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let simulator = sim::start(listener, config).await.unwrap();
        let settings = super::test_settings(&simulator);
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
        BinaryFixture {
            simulator,
            settings,
            connection,
            channel,
            log_paths: Vec::new(),
            workers: Vec::new(),
            finished: false,
        }
    }

    /// Starts a new worker process with the test's topology and okta-sim, the admin endpoint
    /// off unless `env` sets it, and `env` added, and returns its slot. Its output goes to a
    /// log file of its own.
    pub fn spawn(&mut self, env: &[(&str, &str)]) -> usize {
        let slot = self.workers.len();
        let queue = &self.settings.broker.topology.request_queue;
        let path = std::env::temp_dir().join(format!("{queue}.worker-{slot}.log"));
        self.log_paths.push(path);
        self.workers.push(None);
        self.respawn(slot, env);
        slot
    }

    /// Starts the worker of `slot` again, appending to its log file.
    pub fn respawn(&mut self, slot: usize, env: &[(&str, &str)]) {
        assert!(self.workers[slot].is_none(), "worker {slot} is running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_paths[slot])
            .unwrap();
        let mut command = self.worker_command();
        for (name, value) in env {
            command.env(name, value);
        }
        let worker = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the worker binary starts");
        self.workers[slot] = Some(worker);
    }

    fn worker_command(&self) -> Command {
        let topology = &self.settings.broker.topology;
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
            // The same delay queues as the test's settings, so that deleting its topology
            // removes them.
            .env("OKTA_DCR_DELAY_STEPS_SECS", delay_steps(topology))
            .env("OKTA_DCR_ADMIN_ADDR", "")
            .env("RUST_LOG", "info");
        command
    }

    /// Returns the process id of the worker of `slot`.
    pub fn worker_pid(&self, slot: usize) -> u32 {
        self.workers[slot]
            .as_ref()
            .unwrap_or_else(|| panic!("worker {slot} is not running"))
            .id()
    }

    /// Kills the worker of `slot` with SIGKILL and waits for it to exit.
    pub fn kill(&mut self, slot: usize) {
        let mut worker = self.workers[slot]
            .take()
            .unwrap_or_else(|| panic!("worker {slot} is not running"));
        worker.kill().unwrap();
        worker.wait().unwrap();
    }

    /// Sends SIGTERM to the worker of `slot` and waits up to `within` for it to exit.
    pub async fn terminate(&mut self, slot: usize, within: Duration) -> (ExitStatus, Duration) {
        let pid = self.worker_pid(slot).to_string();
        let sent = Instant::now();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success(), "kill -TERM {pid} failed");
        let mut worker = self.workers[slot].take().unwrap();
        loop {
            if let Some(status) = worker.try_wait().unwrap() {
                return (status, sent.elapsed());
            }
            if sent.elapsed() >= within {
                let _ = worker.kill();
                let _ = worker.wait();
                panic!("worker {slot} did not exit within {within:?} of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops every running worker with SIGTERM and asserts that each exits with status 0.
    pub async fn terminate_all(&mut self) {
        for slot in 0..self.workers.len() {
            if self.workers[slot].is_some() {
                let (status, _) = self.terminate(slot, Duration::from_secs(30)).await;
                assert!(status.success(), "worker {slot} exited with {status}");
            }
        }
    }

    /// Publishes a JSON request to the request exchange and waits for the broker's confirm.
    pub async fn publish(&self, request: &Value) {
        let properties = BasicProperties::default().with_delivery_mode(2);
        self.publish_raw(request.to_string().as_bytes(), properties)
            .await;
    }

    /// Publishes `body` with `properties` plus the header [`TAG_HEADER`] = `tag`.
    pub async fn publish_tagged(&self, body: &[u8], properties: BasicProperties, tag: &str) {
        let mut headers = properties.headers().clone().unwrap_or_default();
        headers.insert(TAG_HEADER.into(), AMQPValue::LongString(tag.into()));
        self.publish_raw(body, properties.with_headers(headers))
            .await;
    }

    /// Publishes `body` with `properties` and waits for the broker's confirm.
    pub async fn publish_raw(&self, body: &[u8], properties: BasicProperties) {
        let exchange = self.settings.broker.topology.request_exchange.as_str();
        let confirmation = self
            .channel
            .basic_publish(
                exchange.into(),
                "".into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirmation.is_ack(), "the broker rejected a request");
    }

    /// Returns the output of every worker process so far, one log after the other.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for path in &self.log_paths {
            text.push_str(&std::fs::read_to_string(path).unwrap_or_default());
        }
        text
    }

    /// Returns the output of the worker of `slot` so far.
    pub fn log_of(&self, slot: usize) -> String {
        std::fs::read_to_string(&self.log_paths[slot]).unwrap_or_default()
    }

    /// Returns how many times the workers' logs contain `line`.
    pub fn log_count(&self, line: &str) -> usize {
        self.logs().matches(line).count()
    }

    /// Waits until the workers' logs contain `line` at least `count` times.
    pub async fn wait_for_log(&self, line: &str, count: usize) {
        let deadline = Instant::now() + DEADLINE;
        while self.log_count(line) < count {
            assert!(
                Instant::now() < deadline,
                "the workers did not log {line:?} {count} times within {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Returns the request queue's ready messages and consumers, or `None` while the queue
    /// does not exist.
    pub async fn request_queue_state(&self) -> Option<(u32, u32)> {
        let queue = self.settings.broker.topology.request_queue.clone();
        self.queue_state(&queue).await
    }

    /// Returns the ready messages and consumers of `queue`, or `None` while it does not exist.
    pub async fn queue_state(&self, queue: &str) -> Option<(u32, u32)> {
        let probe = self.connection.create_channel().await.unwrap();
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

    /// Waits until the request queue has at least `count` consumers.
    pub async fn wait_for_consumers(&self, count: u32) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some((_, consumers)) = self.request_queue_state().await {
                if consumers >= count {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "fewer than {count} consumers on the request queue within {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the request queue and every delay queue are empty and okta-sim has
    /// received no call for a while, so that no redelivered or delayed request is still
    /// being processed.
    pub async fn wait_until_idle(&self) {
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
            if self.queued_requests().await == 0 && since.elapsed() >= quiet {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the workers were still busy after {DEADLINE:?}"
            );
        }
    }

    /// Returns the ready messages in the request queue and the delay queues.
    async fn queued_requests(&self) -> u32 {
        let topology = &self.settings.broker.topology;
        let mut queues = vec![topology.request_queue.clone()];
        queues.extend(
            topology
                .delay_steps
                .iter()
                .map(|seconds| topology.delay_queue(*seconds)),
        );
        let mut ready = 0;
        for queue in queues {
            ready += self.queue_state(&queue).await.map_or(0, |(count, _)| count);
        }
        ready
    }

    /// Takes one result from the result queue, if one is waiting.
    pub async fn take_result(&self) -> Option<ResultMessage> {
        let queue = self.settings.broker.topology.result_queue.clone().unwrap();
        let (body, _) = self.take(&queue).await?;
        let result = serde_json::from_slice(&body).unwrap_or_else(|error| {
            panic!(
                "unreadable result {}: {error}",
                String::from_utf8_lossy(&body)
            )
        });
        Some(result)
    }

    /// Takes one dead letter from the dead-letter queue, if one is waiting.
    pub async fn take_dead_letter(&self) -> Option<DeadLetter> {
        let queue = self.settings.broker.topology.dead_letter_queue.clone();
        let (body, headers) = self.take(&queue).await?;
        Some(DeadLetter { body, headers })
    }

    async fn take(&self, queue: &str) -> Option<(Vec<u8>, FieldTable)> {
        let message = self
            .channel
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .unwrap()?;
        let delivery = message.delivery;
        delivery.ack(BasicAckOptions::default()).await.unwrap();
        let headers = delivery.properties.headers().clone().unwrap_or_default();
        Some((delivery.data, headers))
    }

    /// Moves every result and dead letter waiting now into `outcomes`, and returns how many
    /// it took.
    pub async fn drain_outcomes(&self, outcomes: &mut Outcomes) -> usize {
        let mut taken = 0;
        while let Some(result) = self.take_result().await {
            outcomes.results.push(result);
            taken += 1;
        }
        while let Some(dead_letter) = self.take_dead_letter().await {
            outcomes.dead_letters.push(dead_letter);
            taken += 1;
        }
        taken
    }

    /// Moves one result, or else one dead letter, into `outcomes`, and returns whether one was
    /// waiting.
    async fn take_outcome(&self, outcomes: &mut Outcomes) -> bool {
        if let Some(result) = self.take_result().await {
            outcomes.results.push(result);
            return true;
        }
        match self.take_dead_letter().await {
            Some(dead_letter) => {
                outcomes.dead_letters.push(dead_letter);
                true
            }
            None => false,
        }
    }

    /// Reads results and dead letters into `outcomes`, one at a time, until `done` holds, or
    /// fails after `within` naming `waiting_for`.
    pub async fn collect_until(
        &self,
        outcomes: &mut Outcomes,
        within: Duration,
        waiting_for: &str,
        done: impl Fn(&Outcomes) -> bool,
    ) {
        let deadline = Instant::now() + within;
        while !done(outcomes) {
            assert!(
                Instant::now() < deadline,
                "timed out after {within:?} waiting for {waiting_for}: {} results and {} dead \
                 letters so far",
                outcomes.results.len(),
                outcomes.dead_letters.len()
            );
            if !self.take_outcome(outcomes).await {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Stops the workers with SIGTERM, deletes the topology and the log files, and stops
    /// okta-sim.
    pub async fn finish(mut self) {
        self.terminate_all().await;
        topology::delete_topology(&self.connection, &self.settings.broker.topology)
            .await
            .unwrap();
        self.finished = true;
        for path in &self.log_paths {
            let _ = std::fs::remove_file(path);
        }
        let _ = self.connection.close(200, "test done".into()).await;
        self.simulator.clone().shutdown().await;
    }
}

/// Returns the delay steps of `topology` as `OKTA_DCR_DELAY_STEPS_SECS` takes them.
pub fn delay_steps(topology: &Topology) -> String {
    let steps: Vec<String> = topology.delay_steps.iter().map(u32::to_string).collect();
    steps.join(",")
}

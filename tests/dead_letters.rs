//! `dead-letters list`/`export` and `replay` against the real broker: what they report, what
//! they move, and that everything else stays in the dead-letter queue in its order.

use std::time::Duration;

use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection};
use okta_dcr_worker::broker::headers::{self, DeadLetterReason};
use okta_dcr_worker::broker::{self, topology, ConfirmedPublisher};
use okta_dcr_worker::dead_letters::{self, ListOptions, ReplayOptions};
use okta_dcr_worker::secret::Secret;
use okta_dcr_worker::settings::{BrokerSettings, Topology, DEFAULT_AMQP_URL};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A dead-lettered request to put into the queue.
struct Letter {
    request_id: String,
    code: &'static str,
    replays: i64,
    age: Duration,
}

impl Letter {
    fn new(request_id: &str, code: &'static str) -> Self {
        Self {
            request_id: request_id.to_owned(),
            code,
            replays: 0,
            age: Duration::from_secs(60),
        }
    }
}

/// A message read back from a queue.
struct Read {
    request_id: String,
    headers: FieldTable,
    properties: BasicProperties,
}

/// A topology of its own for one test, declared on start and deleted by `finish`.
struct Broker {
    settings: BrokerSettings,
    connection: Connection,
    publisher: ConfirmedPublisher,
}

impl Broker {
    async fn start() -> Broker {
        let settings = broker_settings();
        let connection = broker::connect(&settings.amqp_url, "test")
            .await
            .expect("RabbitMQ must run at AMQP_URL (default 127.0.0.1:5672)");
        topology::declare_topology(&connection, &settings.topology)
            .await
            .unwrap();
        let publisher = ConfirmedPublisher::open(&connection, Duration::from_secs(10))
            .await
            .unwrap();
        Broker {
            settings,
            connection,
            publisher,
        }
    }

    /// Publishes each letter to the dead-letter exchange the way the worker dead-letters.
    async fn dead_letter(&self, letters: &[Letter]) {
        let topology = &self.settings.topology;
        for letter in letters {
            let at = (OffsetDateTime::now_utc() - letter.age)
                .format(&Rfc3339)
                .unwrap();
            let reason = DeadLetterReason {
                code: letter.code.to_owned(),
                reason: format!("{} after 3 attempts", letter.code),
                attempts: 3,
                okta_request_id: Some("okta-req-1".to_owned()),
            };
            let mut table = headers::with_dead_letter_reason(
                None,
                &reason,
                &topology.request_exchange,
                &topology.request_queue,
                &at,
            );
            table.insert(
                headers::REPLAYS.into(),
                AMQPValue::LongLongInt(letter.replays),
            );
            table.insert("x-first-death-queue".into(), text(&topology.request_queue));
            table.insert("x-delivery-count".into(), AMQPValue::LongLongInt(7));
            table.insert("trace-id".into(), text(&letter.request_id));
            let properties = BasicProperties::default()
                .with_content_type("application/json".into())
                .with_delivery_mode(2)
                .with_message_id(letter.request_id.as_str().into())
                .with_headers(table);
            self.publisher
                .publish(
                    &topology.dead_letter_exchange,
                    "",
                    request(&letter.request_id).to_string().as_bytes(),
                    properties,
                )
                .await
                .unwrap();
        }
    }

    fn dead_letter_queue(&self) -> String {
        self.settings.topology.dead_letter_queue.clone()
    }

    fn request_queue(&self) -> String {
        self.settings.topology.request_queue.clone()
    }

    /// Returns the ready messages in `queue`, once it contains `expected` (requeueing after a
    /// channel closes is asynchronous).
    async fn count_settled(&self, queue: &str, expected: u32) -> u32 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let count = message_count(&self.connection, queue).await;
            if count == expected || tokio::time::Instant::now() >= deadline {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Removes and returns every message in `queue`, in order, once it contains `expected`.
    async fn drain(&self, queue: &str, expected: u32) -> Vec<Read> {
        self.count_settled(queue, expected).await;
        let channel = self.connection.create_channel().await.unwrap();
        let mut messages = Vec::new();
        while let Some(message) = channel
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .unwrap()
        {
            let delivery = message.delivery;
            delivery.ack(BasicAckOptions::default()).await.unwrap();
            let body: Value = serde_json::from_slice(&delivery.data).unwrap();
            messages.push(Read {
                request_id: body["requestId"].as_str().unwrap().to_owned(),
                headers: delivery.properties.headers().clone().unwrap_or_default(),
                properties: delivery.properties,
            });
        }
        let _ = channel.close(200, "drained".into()).await;
        messages
    }

    /// Returns the request ids in `queue`, in order, removing the messages.
    async fn drain_ids(&self, queue: &str, expected: u32) -> Vec<String> {
        let messages = self.drain(queue, expected).await;
        messages.into_iter().map(|read| read.request_id).collect()
    }

    async fn finish(self) {
        topology::delete_topology(&self.connection, &self.settings.topology)
            .await
            .unwrap();
        let _ = self.connection.close(200, "test done".into()).await;
    }
}

fn broker_settings() -> BrokerSettings {
    let prefix = format!("okta-dcr-test-{}", uuid::Uuid::new_v4().simple());
    let amqp_url = std::env::var("AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.to_owned());
    BrokerSettings {
        amqp_url: Secret::new(amqp_url),
        topology: Topology {
            delay_steps: vec![10, 30],
            ..Topology::with_prefix(&prefix)
        },
        confirm_timeout: Duration::from_secs(10),
        max_body_bytes: 64 * 1024,
        heartbeat: Duration::from_secs(30),
    }
}

fn request(request_id: &str) -> Value {
    json!({
        "requestId": request_id,
        "operation": "provision",
        "id": format!("cred-{request_id}"),
        "name": "orders-backend",
        "managedApplicationName": "Orders Portal",
        "teamName": "Commerce",
        "credentialData": { "grantType": "client_credentials" }
    })
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

async fn message_count(connection: &Connection, queue: &str) -> u32 {
    let probe = connection.create_channel().await.unwrap();
    let declared = probe
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let _ = probe.close(200, "counted".into()).await;
    declared.message_count()
}

fn ids(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| value.to_string()).collect()
}

fn four_letters() -> Vec<Letter> {
    vec![
        Letter::new("r1", "invalid_json"),
        Letter::new("r2", "okta_unavailable"),
        Letter::new("r3", "okta_unavailable"),
        Letter::new("r4", "invalid_json"),
    ]
}

#[tokio::test]
async fn list_shows_all_and_keeps_queue() {
    let broker = Broker::start().await;
    broker.dead_letter(&four_letters()).await;

    let listing = dead_letters::list(&broker.settings, &ListOptions::default())
        .await
        .unwrap();

    let listed: Vec<_> = listing
        .entries
        .iter()
        .map(|entry| entry.request_id.clone().unwrap())
        .collect();
    assert_eq!(listed, ids(&["r1", "r2", "r3", "r4"]));
    assert_eq!(listing.entries[1].code.as_deref(), Some("okta_unavailable"));
    assert_eq!(listing.entries[1].credential_id.as_deref(), Some("cred-r2"));
    assert_eq!(listing.entries[1].attempts, Some(3));
    assert_eq!(listing.entries[1].age.as_deref(), Some("1m00s"));
    assert_eq!(listing.lines.len(), 5, "header and four rows");
    assert!(
        listing.lines[0].starts_with("REQUEST ID"),
        "{}",
        listing.lines[0]
    );
    assert!(
        listing.summary.starts_with("4 dead-lettered requests"),
        "{}",
        listing.summary
    );
    let queue = broker.dead_letter_queue();
    assert_eq!(broker.count_settled(&queue, 4).await, 4);
    assert_eq!(
        broker.drain_ids(&queue, 4).await,
        ids(&["r1", "r2", "r3", "r4"])
    );
    broker.finish().await;
}

#[tokio::test]
async fn list_limit_and_json() {
    let broker = Broker::start().await;
    broker.dead_letter(&four_letters()).await;

    let options = ListOptions {
        json: true,
        limit: Some(2),
    };
    let listing = dead_letters::list(&broker.settings, &options)
        .await
        .unwrap();

    assert_eq!(listing.lines.len(), 2);
    let first: Value = serde_json::from_str(&listing.lines[0]).unwrap();
    assert_eq!(first["requestId"], "r1");
    assert_eq!(first["code"], "invalid_json");
    assert_eq!(first["replays"], 0);
    assert!(listing.summary.starts_with("2 of 4"), "{}", listing.summary);
    let queue = broker.dead_letter_queue();
    assert_eq!(
        broker.drain_ids(&queue, 4).await,
        ids(&["r1", "r2", "r3", "r4"])
    );
    broker.finish().await;
}

#[tokio::test]
async fn export_writes_all_and_keeps_queue() {
    let broker = Broker::start().await;
    broker.dead_letter(&four_letters()).await;

    let mut output = Vec::new();
    let report = dead_letters::export(&broker.settings, &mut output)
        .await
        .unwrap();

    assert_eq!(report.exported, 4);
    let lines: Vec<Value> = String::from_utf8(output)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    let second = &lines[1];
    assert_eq!(second["body"]["requestId"], "r2");
    assert!(second["bodyBase64"]
        .as_str()
        .is_some_and(|text| !text.is_empty()));
    assert_eq!(second["properties"]["message_id"], "r2");
    assert_eq!(second["properties"]["content_type"], "application/json");
    assert_eq!(second["properties"]["delivery_mode"], 2);
    assert_eq!(second["headers"][headers::ERROR_CODE], "okta_unavailable");
    assert_eq!(second["headers"][headers::ATTEMPTS], 3);
    assert_eq!(
        second["exchange"],
        broker.settings.topology.dead_letter_exchange.as_str()
    );
    let queue = broker.dead_letter_queue();
    assert_eq!(
        broker.drain_ids(&queue, 4).await,
        ids(&["r1", "r2", "r3", "r4"])
    );
    broker.finish().await;
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let broker = Broker::start().await;
    broker.dead_letter(&four_letters()).await;

    let options = ReplayOptions {
        dry_run: true,
        ..ReplayOptions::default()
    };
    let report = dead_letters::replay(&broker.settings, &options)
        .await
        .unwrap();

    assert_eq!(report.would_replay, 2);
    assert_eq!(report.skipped, 2);
    assert_eq!(report.replayed, 0);
    assert!(
        report.lines[1].starts_with("would replay"),
        "{}",
        report.lines[1]
    );
    assert!(
        report.summary.contains("2 would replay"),
        "{}",
        report.summary
    );
    let queue = broker.dead_letter_queue();
    assert_eq!(
        broker.drain_ids(&queue, 4).await,
        ids(&["r1", "r2", "r3", "r4"])
    );
    assert_eq!(
        message_count(&broker.connection, &broker.request_queue()).await,
        0
    );
    broker.finish().await;
}

#[tokio::test]
async fn replay_code_limit_moves_one() {
    let broker = Broker::start().await;
    broker.dead_letter(&four_letters()).await;

    let options = ReplayOptions {
        code: Some("okta_unavailable".to_owned()),
        limit: Some(1),
        ..ReplayOptions::default()
    };
    let report = dead_letters::replay(&broker.settings, &options)
        .await
        .unwrap();

    assert_eq!(report.replayed, 1);
    assert!(report.limit_reached);
    assert!(report.succeeded());
    assert_eq!(
        report.lines,
        vec!["replayed      requestId r2  code okta_unavailable"]
    );
    assert!(
        report.summary.starts_with("1 replayed, 0 left, 0 failed"),
        "{}",
        report.summary
    );
    let replayed = broker.drain(&broker.request_queue(), 1).await;
    assert_eq!(replayed.len(), 1);
    let message = &replayed[0];
    assert_eq!(message.request_id, "r2");
    assert_eq!(
        headers::integer(Some(&message.headers), headers::REPLAYS),
        Some(1)
    );
    assert_eq!(
        headers::integer(Some(&message.headers), headers::ATTEMPTS),
        Some(3)
    );
    assert_eq!(
        headers::text(Some(&message.headers), "trace-id").as_deref(),
        Some("r2")
    );
    // The quorum request queue adds its own `x-delivery-count` on delivery; the one the
    // dead letter carried (7) must not come back.
    let broker_owned: Vec<_> = message
        .headers
        .inner()
        .keys()
        .filter(|name| name.as_str().starts_with("x-") && name.as_str() != "x-delivery-count")
        .collect();
    assert!(broker_owned.is_empty(), "{broker_owned:?}");
    let delivery_count = headers::integer(Some(&message.headers), "x-delivery-count");
    assert_eq!(delivery_count.unwrap_or(0), 0);
    for name in headers::REASON_HEADERS {
        assert!(!message.headers.contains_key(name), "{name} kept");
    }
    assert_eq!(
        message.properties.message_id().as_ref().unwrap().as_str(),
        "r2"
    );
    assert_eq!(*message.properties.delivery_mode(), Some(2));
    let queue = broker.dead_letter_queue();
    assert_eq!(broker.drain_ids(&queue, 3).await, ids(&["r1", "r3", "r4"]));
    broker.finish().await;
}

#[tokio::test]
async fn request_id_moves_only_that_one() {
    let broker = Broker::start().await;
    broker.dead_letter(&four_letters()).await;

    let options = ReplayOptions {
        request_id: Some("r3".to_owned()),
        ..ReplayOptions::default()
    };
    let report = dead_letters::replay(&broker.settings, &options)
        .await
        .unwrap();

    assert_eq!(report.replayed, 1);
    assert_eq!(report.not_matching, 3);
    assert_eq!(
        broker.drain_ids(&broker.request_queue(), 1).await,
        ids(&["r3"])
    );
    let queue = broker.dead_letter_queue();
    assert_eq!(broker.drain_ids(&queue, 3).await, ids(&["r1", "r2", "r4"]));
    broker.finish().await;
}

#[tokio::test]
async fn default_skips_non_retryable_codes() {
    let broker = Broker::start().await;
    broker.dead_letter(&four_letters()).await;

    let report = dead_letters::replay(&broker.settings, &ReplayOptions::default())
        .await
        .unwrap();

    assert_eq!(report.replayed, 2);
    assert_eq!(report.skipped, 2);
    assert!(report.succeeded());
    let skipped = "skipped       requestId r1  code invalid_json: not retryable, so a replay \
                   would fail again (pass --code invalid_json to replay it anyway)";
    assert_eq!(report.lines[0], skipped);
    assert!(
        report.lines[3].starts_with("skipped       requestId r4"),
        "{}",
        report.lines[3]
    );
    assert_eq!(
        report.summary,
        "2 replayed, 0 left, 0 failed; 2 skipped because their code is not retryable \
         (pass --code CODE to replay them)"
    );
    assert_eq!(
        broker.drain_ids(&broker.request_queue(), 2).await,
        ids(&["r2", "r3"])
    );
    let queue = broker.dead_letter_queue();
    assert_eq!(broker.drain_ids(&queue, 2).await, ids(&["r1", "r4"]));
    broker.finish().await;
}

#[tokio::test]
async fn explicit_code_replays_non_retryable() {
    let broker = Broker::start().await;
    broker.dead_letter(&four_letters()).await;

    let options = ReplayOptions {
        code: Some("invalid_json".to_owned()),
        ..ReplayOptions::default()
    };
    let report = dead_letters::replay(&broker.settings, &options)
        .await
        .unwrap();

    assert_eq!(report.replayed, 2);
    assert_eq!(report.skipped, 0);
    assert_eq!(report.not_matching, 2);
    assert_eq!(
        broker.drain_ids(&broker.request_queue(), 2).await,
        ids(&["r1", "r4"])
    );
    let queue = broker.dead_letter_queue();
    assert_eq!(broker.drain_ids(&queue, 2).await, ids(&["r2", "r3"]));
    broker.finish().await;
}

#[tokio::test]
async fn older_than_respects_time() {
    let broker = Broker::start().await;
    let mut letters = four_letters();
    letters[1].age = Duration::from_secs(2 * 3600);
    letters[2].age = Duration::from_secs(3 * 3600);
    broker.dead_letter(&letters).await;

    let options = ReplayOptions {
        older_than: Some(Duration::from_secs(3600)),
        ..ReplayOptions::default()
    };
    let report = dead_letters::replay(&broker.settings, &options)
        .await
        .unwrap();

    assert_eq!(report.replayed, 2);
    assert_eq!(report.not_matching, 2);
    assert_eq!(
        broker.drain_ids(&broker.request_queue(), 2).await,
        ids(&["r2", "r3"])
    );
    let queue = broker.dead_letter_queue();
    assert_eq!(broker.drain_ids(&queue, 2).await, ids(&["r1", "r4"]));
    broker.finish().await;
}

#[tokio::test]
async fn max_replays_left_and_reported() {
    let broker = Broker::start().await;
    let letters = vec![
        Letter::new("r1", "okta_rate_limited"),
        Letter {
            replays: 5,
            ..Letter::new("r2", "okta_unavailable")
        },
        Letter::new("r3", "okta_unavailable"),
        Letter {
            replays: 4,
            ..Letter::new("r4", "result_unroutable")
        },
    ];
    broker.dead_letter(&letters).await;

    let report = dead_letters::replay(&broker.settings, &ReplayOptions::default())
        .await
        .unwrap();

    assert_eq!(report.replayed, 3);
    assert_eq!(report.left, 1);
    assert!(report.succeeded());
    let left = "left          requestId r2  code okta_unavailable: replayed 5 times already";
    assert!(
        report.lines.iter().any(|line| line == left),
        "{:?}",
        report.lines
    );
    assert!(
        report.summary.starts_with("3 replayed, 1 left, 0 failed"),
        "{}",
        report.summary
    );
    let replayed = broker.drain(&broker.request_queue(), 3).await;
    let r4 = replayed
        .iter()
        .find(|read| read.request_id == "r4")
        .unwrap();
    assert_eq!(
        headers::integer(Some(&r4.headers), headers::REPLAYS),
        Some(5)
    );
    let queue = broker.dead_letter_queue();
    assert_eq!(broker.drain_ids(&queue, 1).await, ids(&["r2"]));
    broker.finish().await;
}

#[tokio::test]
async fn unroutable_replay_fails_and_keeps() {
    let broker = Broker::start().await;
    broker.dead_letter(&four_letters()).await;
    let channel = broker.connection.create_channel().await.unwrap();
    channel
        .queue_delete(
            broker.request_queue().as_str().into(),
            QueueDeleteOptions::default(),
        )
        .await
        .unwrap();

    let options = ReplayOptions {
        code: Some("okta_unavailable".to_owned()),
        ..ReplayOptions::default()
    };
    let report = dead_letters::replay(&broker.settings, &options)
        .await
        .unwrap();

    assert_eq!(report.failed, 2);
    assert_eq!(report.replayed, 0);
    assert!(!report.succeeded());
    assert!(report.lines[0].starts_with("failed"), "{}", report.lines[0]);
    assert!(
        report.lines[0].contains("unroutable"),
        "{}",
        report.lines[0]
    );
    let queue = broker.dead_letter_queue();
    assert_eq!(
        broker.drain_ids(&queue, 4).await,
        ids(&["r1", "r2", "r3", "r4"])
    );
    broker.finish().await;
}

/// More messages than a handful, read twice and partly replayed: the rest stays in order.
#[tokio::test]
async fn many_messages_order_kept() {
    let broker = Broker::start().await;
    let names: Vec<String> = (0..40).map(|index| format!("m{index:02}")).collect();
    let letters: Vec<Letter> = names
        .iter()
        .map(|name| Letter::new(name, "okta_unavailable"))
        .collect();
    broker.dead_letter(&letters).await;

    let listing = dead_letters::list(&broker.settings, &ListOptions::default())
        .await
        .unwrap();
    assert_eq!(listing.entries.len(), 40);
    let options = ReplayOptions {
        request_id: Some("m20".to_owned()),
        ..ReplayOptions::default()
    };
    let report = dead_letters::replay(&broker.settings, &options)
        .await
        .unwrap();
    assert_eq!(report.replayed, 1);

    let expected: Vec<String> = names
        .iter()
        .filter(|name| *name != "m20")
        .cloned()
        .collect();
    let queue = broker.dead_letter_queue();
    assert_eq!(broker.drain_ids(&queue, 39).await, expected);
    broker.finish().await;
}

async fn run_binary(broker: &Broker, arguments: &[&str]) -> std::process::Output {
    let topology = &broker.settings.topology;
    tokio::process::Command::new(env!("CARGO_BIN_EXE_okta-dcr-worker"))
        .args(arguments)
        .env("AMQP_URL", broker.settings.amqp_url.expose())
        .env("OKTA_DCR_REQUEST_EXCHANGE", &topology.request_exchange)
        .env("OKTA_DCR_REQUEST_QUEUE", &topology.request_queue)
        .env("OKTA_DCR_RESULT_EXCHANGE", &topology.result_exchange)
        .env(
            "OKTA_DCR_RESULT_QUEUE",
            topology.result_queue.as_deref().unwrap_or(""),
        )
        .env(
            "OKTA_DCR_DEAD_LETTER_EXCHANGE",
            &topology.dead_letter_exchange,
        )
        .env("OKTA_DCR_DEAD_LETTER_QUEUE", &topology.dead_letter_queue)
        // The same delay queues as the test's settings, so that deleting its topology removes them.
        .env("OKTA_DCR_DELAY_STEPS_SECS", delay_steps(topology))
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn binary_list_and_dry_run() {
    let broker = Broker::start().await;
    broker.dead_letter(&four_letters()).await;

    let listed = run_binary(&broker, &["dead-letters", "list"]).await;
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{stdout}");
    assert!(stdout.starts_with("REQUEST ID"), "{stdout}");
    assert!(stdout.contains("cred-r3"), "{stdout}");
    assert!(stdout.contains("4 dead-lettered requests in"), "{stdout}");

    let dry_run = run_binary(&broker, &["replay", "--dry-run", "--code", "invalid_json"]).await;
    let stdout = String::from_utf8_lossy(&dry_run.stdout);
    assert!(dry_run.status.success(), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "would replay  requestId r1  code invalid_json");
    assert_eq!(lines[1], "would replay  requestId r4  code invalid_json");
    assert_eq!(
        lines[2],
        "0 replayed, 0 left, 0 failed, 2 would replay (dry run: nothing changed); \
         2 did not match the filters"
    );
    let queue = broker.dead_letter_queue();
    assert_eq!(
        broker.drain_ids(&queue, 4).await,
        ids(&["r1", "r2", "r3", "r4"])
    );
    broker.finish().await;
}

#[tokio::test]
async fn binary_rejects_bad_duration() {
    let broker = Broker::start().await;

    let output = run_binary(&broker, &["replay", "--older-than", "2 weeks"]).await;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("\"2 weeks\""), "{stderr}");
    broker.finish().await;
}

#[tokio::test]
async fn binary_replay_failure_exits_nonzero() {
    let broker = Broker::start().await;
    broker.dead_letter(&four_letters()[1..2]).await;
    let channel = broker.connection.create_channel().await.unwrap();
    channel
        .queue_delete(
            broker.request_queue().as_str().into(),
            QueueDeleteOptions::default(),
        )
        .await
        .unwrap();

    let output = run_binary(&broker, &["replay"]).await;

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("0 replayed, 0 left, 1 failed"), "{stdout}");
    broker.finish().await;
}

fn delay_steps(topology: &okta_dcr_worker::settings::Topology) -> String {
    let steps: Vec<String> = topology.delay_steps.iter().map(u32::to_string).collect();
    steps.join(",")
}

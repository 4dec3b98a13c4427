//! Topology declaration against the real broker.

mod common;

use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::ExchangeKind;
use okta_dcr_worker::broker::{self, topology};
use okta_dcr_worker::sim::{self, SimConfig};

#[tokio::test]
async fn queue_with_other_arguments_stops_worker() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let simulator = sim::start(listener, SimConfig::default()).await.unwrap();
    let settings = common::test_settings(&simulator);
    let names = settings.broker.topology.clone();
    let connection = broker::connect(&settings.broker.amqp_url, "test")
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    // The worker's dead-letter exchange, but a classic queue: `x-queue-type` differs first.
    let mut arguments = topology::request_queue_arguments(&names);
    let mut classic = FieldTable::default();
    for (key, value) in arguments.inner() {
        if key.as_str() == "x-dead-letter-exchange" {
            classic.insert(key.clone(), value.clone());
        }
    }
    arguments = classic;
    channel
        .queue_declare(
            names.request_queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
        )
        .await
        .unwrap();

    let outcome = okta_dcr_worker::worker::run(settings.clone(), std::future::pending()).await;
    let message = outcome.expect_err("run must stop").to_string();
    assert!(message.contains(&names.request_queue), "{message}");
    assert!(message.contains("x-queue-type"), "{message}");

    let probe = connection.create_channel().await.unwrap();
    let results_exchange = probe
        .exchange_declare(
            names.result_exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    assert!(
        results_exchange.is_err(),
        "nothing may be created after a mismatch"
    );

    channel
        .queue_delete(
            names.request_queue.as_str().into(),
            QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    simulator.shutdown().await;
}

#[tokio::test]
async fn declaring_twice_is_idempotent() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let simulator = sim::start(listener, SimConfig::default()).await.unwrap();
    let settings = common::test_settings(&simulator);
    let connection = broker::connect(&settings.broker.amqp_url, "test")
        .await
        .unwrap();

    topology::declare_topology(&connection, &settings.broker.topology)
        .await
        .unwrap();
    topology::declare_topology(&connection, &settings.broker.topology)
        .await
        .unwrap();

    topology::delete_topology(&connection, &settings.broker.topology)
        .await
        .unwrap();
    simulator.shutdown().await;
}

//! The baseline consumer: the worker's broker path without Okta. It consumes requests with
//! the worker's prefetch, waits okta-sim's latency in place of the Okta call, publishes a
//! result for each with confirm and `mandatory`, and acks the request. The benchmark reports
//! the worker's throughput as a share of this ceiling.

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use serde_json::{json, Value};

use crate::broker::{self, publisher::json_properties, ConfirmedPublisher};
use crate::settings::BrokerSettings;

/// Consumes until `stop` resolves; fails when the broker connection or a publish fails.
pub async fn serve(
    settings: &BrokerSettings,
    concurrency: u16,
    latency: std::time::Duration,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let topology = &settings.topology;
    let connection = broker::connect(&settings.amqp_url, "bench baseline")
        .await
        .map_err(|error| format!("cannot connect to the broker: {error}"))?;
    let channel = connection
        .create_channel()
        .await
        .map_err(|error| error.to_string())?;
    channel
        .basic_qos(concurrency, BasicQosOptions::default())
        .await
        .map_err(|error| error.to_string())?;
    let publisher = ConfirmedPublisher::open(&connection, settings.confirm_timeout)
        .await
        .map_err(|error| error.to_string())?;
    let mut consumer = channel
        .basic_consume(
            topology.request_queue.as_str().into(),
            format!("okta-dcr-bench-baseline-{}", std::process::id()).into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|error| format!("cannot consume {}: {error}", topology.request_queue))?;
    let (failed_tx, mut failed) = tokio::sync::mpsc::channel::<String>(1);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            next = consumer.next() => match next {
                Some(Ok(delivery)) => {
                    let publisher = publisher.clone();
                    let exchange = topology.result_exchange.clone();
                    let failed_tx = failed_tx.clone();
                    tokio::spawn(async move {
                        if !latency.is_zero() {
                            tokio::time::sleep(latency).await;
                        }
                        if let Err(error) = answer(&publisher, &exchange, delivery).await {
                            let _ = failed_tx.try_send(error);
                        }
                    });
                }
                Some(Err(error)) => return Err(format!("consumer failed: {error}")),
                None => return Err("the broker cancelled the consumer".to_owned()),
            },
            Some(error) = failed.recv() => return Err(error),
            () = &mut stop => break,
        }
    }
    let _ = connection.close(200, "bench baseline done".into()).await;
    Ok(())
}

/// Publishes a success result naming the request's `requestId`, then acks the request.
async fn answer(
    publisher: &ConfirmedPublisher,
    exchange: &str,
    delivery: Delivery,
) -> Result<(), String> {
    let request_id = serde_json::from_slice::<Value>(&delivery.data)
        .ok()
        .and_then(|request| request.get("requestId").cloned())
        .unwrap_or(Value::Null);
    let result = json!({
        "requestId": request_id,
        "status": {"level": "Success"},
    });
    publisher
        .publish(
            exchange,
            "provision.success",
            result.to_string().as_bytes(),
            json_properties(),
        )
        .await
        .map_err(|error| error.to_string())?;
    delivery
        .ack(BasicAckOptions::default())
        .await
        .map(|_| ())
        .map_err(|error| format!("ack failed: {error}"))
}

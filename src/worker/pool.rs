//! The consumer loop and the pool of tasks.
//!
//! The request queue is consumed with prefetch = concurrency, so the broker never hands the
//! worker more deliveries than it runs at once. Each delivery gets its own task; the loop
//! decodes it first, to queue it behind earlier requests about the same credential. The task
//! settles the delivery exactly once, on the channel it came from.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, error, info, info_span, warn, Instrument};

use crate::okta::{ErrorClass, RetryBudget};
use crate::settings::Settings;
use crate::worker::order::CredentialQueue;
use crate::worker::pipeline::{prior_attempts, Decoded, Pipeline, Settlement};
use crate::worker::supervisor::WorkerError;

/// Maximum wait for the broker to take an ack or nack.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// First and longest wait between probes while Okta rejects the worker's credential. The
/// maximum bounds how long a fixed credential goes unnoticed. Each probe is one
/// `GET /oauth2/v1/clients?limit=1`, so a long rejection costs 4 calls a minute in that bucket.
const CREDENTIAL_PROBE_MIN: Duration = Duration::from_secs(1);
const CREDENTIAL_PROBE_MAX: Duration = Duration::from_secs(15);

/// The tasks and per-credential queue the consumer loop shares with the supervisor across
/// broker sessions.
pub struct Pool {
    pub tasks: JoinSet<()>,
    pub order: CredentialQueue,
}

impl Pool {
    /// Creates a pool with no tasks.
    pub fn new() -> Self {
        Self {
            tasks: JoinSet::new(),
            order: CredentialQueue::default(),
        }
    }
}

impl Default for Pool {
    fn default() -> Self {
        Self::new()
    }
}

/// Consumes the request queue on `connection` until `stop` turns true (returns `Ok`) or the
/// channel, the consumer or the connection fails (returns the error, so that the supervisor
/// reconnects). In-flight tasks keep running in `pool` either way.
pub async fn consume(
    connection: &Connection,
    settings: &Settings,
    pipeline: Arc<Pipeline>,
    pool: &mut Pool,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), WorkerError> {
    let channel = connection
        .create_channel()
        .await
        .map_err(WorkerError::Channel)?;
    channel
        .basic_qos(settings.worker.concurrency, BasicQosOptions::default())
        .await
        .map_err(WorkerError::Channel)?;
    let queue = &settings.broker.topology.request_queue;
    let (pause, mut paused) = mpsc::unbounded_channel::<()>();
    if !credential_accepted(&pipeline).await {
        tokio::select! {
            () = stop_requested(stop) => return Ok(()),
            () = wait_for_credential(&pipeline) => {}
        }
    }

    let outcome = 'session: loop {
        let mut consumer = start_consumer(&channel, queue).await?;
        pipeline.readiness.set_consuming(true);
        info!(queue = %queue, concurrency = settings.worker.concurrency, "Consuming requests.");
        loop {
            tokio::select! {
                () = stop_requested(stop) => {
                    stop_consumer(&channel, &consumer, &pipeline).await;
                    break 'session Ok(());
                }
                Some(_) = pool.tasks.join_next(), if !pool.tasks.is_empty() => {}
                Some(()) = paused.recv() => break,
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => spawn_delivery(pool, &pipeline, &pause, delivery),
                    Some(Err(error)) => break 'session Err(WorkerError::Channel(error)),
                    None => break 'session Err(WorkerError::ConsumerEnded),
                },
            }
        }
        stop_consumer(&channel, &consumer, &pipeline).await;
        requeue_buffered(&mut consumer).await;
        let probed = tokio::select! {
            () = stop_requested(stop) => None,
            () = wait_for_credential(&pipeline) => Some(()),
        };
        if probed.is_none() {
            break Ok(());
        }
        while paused.try_recv().is_ok() {}
    };
    pipeline.readiness.set_consuming(false);
    if outcome.is_ok() {
        // The in-flight requests ack their deliveries on `channel`, and lapin closes a channel
        // when its last handle is dropped, which returns every unacked delivery to the queue.
        // So the channel is kept until they finish.
        drain(&mut pool.tasks, settings.worker.drain_timeout).await;
    }
    outcome
}

/// Resolves once `stop` turns true, or at once if its sender is gone.
pub async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`, so it is dropped here, before any await.
    let _ = stop.wait_for(|stopping| *stopping).await.map(|_| ());
}

async fn start_consumer(channel: &Channel, queue: &str) -> Result<Consumer, WorkerError> {
    channel
        .basic_consume(
            queue.into(),
            format!("okta-dcr-worker-{}", std::process::id()).into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(WorkerError::Channel)
}

async fn stop_consumer(channel: &Channel, consumer: &Consumer, pipeline: &Pipeline) {
    pipeline.readiness.set_consuming(false);
    if let Err(error) = channel
        .basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await
    {
        warn!(cause = %error, "Cancelling the consumer failed.");
    }
}

/// Returns deliveries that reached the consumer before it was cancelled to the queue.
async fn requeue_buffered(consumer: &mut Consumer) {
    while let Ok(Some(Ok(delivery))) =
        tokio::time::timeout(Duration::from_millis(100), consumer.next()).await
    {
        let _ = requeue(&delivery).await;
    }
}

/// Checks the worker's credential with one Okta call before consuming, so that a worker
/// started with a wrong credential reports not-ready instead of taking requests. Anything
/// but a rejection of the credential counts as accepted: the requests will find out.
async fn credential_accepted(pipeline: &Pipeline) -> bool {
    let budget = RetryBudget::new(Duration::ZERO);
    match pipeline.okta.check_credential(&budget).await {
        Err(error) if error.class() == ErrorClass::Systemic => {
            error!(code = error.code(), reason = %error.reason(), okta_request_id = error.okta_request_id(), "Okta rejects the worker's credential; not consuming until it is accepted.");
            false
        }
        _ => true,
    }
}

/// Probes Okta with backoff until it accepts the worker's credential again.
async fn wait_for_credential(pipeline: &Pipeline) {
    pipeline.readiness.set_credential_rejected(true);
    let mut wait = CREDENTIAL_PROBE_MIN;
    loop {
        tokio::time::sleep(wait).await;
        let budget = RetryBudget::new(Duration::ZERO);
        match pipeline.okta.check_credential(&budget).await {
            Ok(()) => break,
            Err(error) if error.class() != ErrorClass::Systemic => break,
            Err(error) => {
                wait = next_probe_wait(wait);
                debug!(code = error.code(), next_probe = ?wait, "Okta still rejects the credential.");
            }
        }
    }
    pipeline.readiness.set_credential_rejected(false);
    info!("Okta accepts the worker's credential again; resuming.");
}

/// Doubles the wait between credential probes, up to `CREDENTIAL_PROBE_MAX`.
fn next_probe_wait(wait: Duration) -> Duration {
    (wait * 2).min(CREDENTIAL_PROBE_MAX)
}

fn spawn_delivery(
    pool: &mut Pool,
    pipeline: &Arc<Pipeline>,
    pause: &mpsc::UnboundedSender<()>,
    delivery: Delivery,
) {
    let decoded = pipeline.decode(&delivery);
    let (request_id, credential_id) = match &decoded {
        Decoded::Request(envelope) => (
            envelope.request_id.clone(),
            envelope
                .body
                .get("id")
                .and_then(|id| id.as_str())
                .map(str::to_owned),
        ),
        Decoded::Poison(_) => (String::new(), None),
    };
    let mut turn = credential_id.as_deref().map(|id| pool.order.enqueue(id));
    let span = info_span!(
        "request",
        request_id = %request_id,
        credential_id = credential_id.as_deref().unwrap_or(""),
        operation = tracing::field::Empty,
        attempt = prior_attempts(delivery.properties.headers().as_ref()) + 1,
        redelivered = delivery.redelivered,
    );
    let pipeline = Arc::clone(pipeline);
    let pause = pause.clone();
    pool.tasks.spawn(
        async move {
            let _in_flight = crate::admin::InFlight::start();
            if let Some(turn) = &mut turn {
                turn.wait().await;
            }
            let settlement = pipeline.process(&delivery, decoded).await;
            if settlement == Settlement::RequeueAndPause {
                let _ = pause.send(());
            }
            settle(&delivery, settlement).await;
            drop(turn);
        }
        .instrument(span),
    );
}

/// Acks or nacks the delivery on the channel it came from.
///
/// The ack or nack is bounded by [`SETTLE_TIMEOUT`]: on a channel that is closing it may never
/// complete, and a task stuck here would hold its credential's turn, so that the redelivered
/// copy of the request would wait for ever. The broker redelivers an unsettled delivery once
/// its channel is gone.
async fn settle(delivery: &Delivery, settlement: Settlement) {
    let settled = async {
        match settlement {
            Settlement::Ack => delivery.ack(BasicAckOptions::default()).await,
            Settlement::Requeue | Settlement::RequeueAndPause => requeue(delivery).await,
        }
    };
    match tokio::time::timeout(SETTLE_TIMEOUT, settled).await {
        Ok(Ok(true)) => {}
        // lapin reports a delivery whose channel has closed, or one settled before, as `false`.
        Ok(Ok(false)) => {
            warn!(?settlement, "Settling the delivery was not sent: its channel is closed; the broker will redeliver it.")
        }
        Ok(Err(error)) => {
            warn!(cause = %error, ?settlement, "Settling the delivery failed; the broker will redeliver it.")
        }
        Err(_) => {
            warn!(?settlement, timeout = ?SETTLE_TIMEOUT, "Settling the delivery timed out; the broker will redeliver it.")
        }
    }
}

async fn requeue(delivery: &Delivery) -> Result<bool, lapin::Error> {
    delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        })
        .await
}

/// Waits up to `timeout` for in-flight requests, then aborts the rest; their deliveries stay
/// unacked, so the broker redelivers them.
pub async fn drain(tasks: &mut JoinSet<()>, timeout: Duration) {
    info!(
        in_flight = tasks.len(),
        "Stopping; waiting for in-flight requests."
    );
    let drained = tokio::time::timeout(timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        error!(
            unfinished = tasks.len(),
            "Drain timeout reached; unfinished requests stay unacked and will be redelivered."
        );
        tasks.abort_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_wait_doubles_to_fifteen_seconds() {
        let mut waits = vec![CREDENTIAL_PROBE_MIN];
        for _ in 0..6 {
            waits.push(next_probe_wait(*waits.last().unwrap()));
        }
        let seconds: Vec<u64> = waits.iter().map(Duration::as_secs).collect();
        assert_eq!(seconds, [1, 2, 4, 8, 15, 15, 15]);
    }
}

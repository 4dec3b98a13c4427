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
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::Connection;
use tokio::task::JoinSet;
use tracing::{error, info, info_span, warn, Instrument};

use crate::broker::{self, ConfirmedPublisher, TopologyError};
use crate::contract::{NameTemplate, TemplateError};
use crate::okta::{OktaAuth, OktaClient, OktaConfig, OktaError};
use crate::settings::{OktaCredential, Settings};
use crate::worker::order::CredentialQueue;
use crate::worker::pipeline::{Decoded, Pipeline, Settlement};
use crate::worker::seen::SeenRequests;

/// How many request ids the worker remembers to detect repeats within one process.
const SEEN_CAPACITY: usize = 100_000;

/// How long in-flight requests may run after a shutdown signal before the process exits and
/// leaves them unacked for redelivery.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a task holds a request back after Okta rejected the worker's credential, so that
/// a misconfigured worker does not spin through the queue.
const CREDENTIAL_REJECTED_PAUSE: Duration = Duration::from_secs(10);

/// Why the worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot connect to RabbitMQ: {0}")]
    Connect(lapin::Error),
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("RabbitMQ channel failed: {0}")]
    Channel(lapin::Error),
    #[error("invalid setting OKTA_DCR_CLIENT_NAME_TEMPLATE: {0}")]
    Template(#[from] TemplateError),
    #[error("cannot set up the Okta client: {0}")]
    Okta(#[from] OktaError),
    #[error("the OAuth 2.0 service-app credential (OKTA_CLIENT_ID) is not supported by this build; set OKTA_API_TOKEN")]
    UnsupportedCredential,
    #[error("the broker cancelled the consumer or closed the channel; stopping")]
    ConsumerEnded,
}

/// Runs the worker until `shutdown` resolves: declares the topology, consumes requests and
/// processes them.
pub async fn run(
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), WorkerError> {
    let okta = okta_client(&settings)?;
    let template = match &settings.worker.client_name_template {
        Some(template) => NameTemplate::parse(template)?,
        None => NameTemplate::default(),
    };
    let connection = broker::connect(&settings.broker.amqp_url, "run")
        .await
        .map_err(WorkerError::Connect)?;
    broker::declare_topology(&connection, &settings.broker.topology).await?;
    let publisher = ConfirmedPublisher::open(&connection, settings.broker.confirm_timeout)
        .await
        .map_err(WorkerError::Channel)?;
    let pipeline = Arc::new(Pipeline {
        okta,
        publisher,
        topology: settings.broker.topology.clone(),
        name_template: template,
        group_id: settings.okta.group_id.clone(),
        retry_budget: settings.worker.retry_budget,
        max_body_bytes: settings.broker.max_body_bytes,
        seen: Arc::new(SeenRequests::new(SEEN_CAPACITY)),
    });
    let result = consume(&connection, &settings, pipeline, shutdown).await;
    let _ = connection.close(200, "worker stopped".into()).await;
    result
}

fn okta_client(settings: &Settings) -> Result<OktaClient, WorkerError> {
    let auth = match &settings.okta.credential {
        OktaCredential::ApiToken(token) => OktaAuth::ApiToken(token.clone()),
        OktaCredential::ServiceApp { .. } => return Err(WorkerError::UnsupportedCredential),
    };
    let config = OktaConfig {
        org_url: settings.okta.org_url.clone(),
        auth,
        call_timeout: settings.okta.call_timeout,
        min_backoff: Duration::from_millis(250),
        max_backoff: Duration::from_secs(30),
    };
    Ok(OktaClient::new(config)?)
}

async fn consume(
    connection: &Connection,
    settings: &Settings,
    pipeline: Arc<Pipeline>,
    shutdown: impl std::future::Future<Output = ()>,
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
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            format!("okta-dcr-worker-{}", std::process::id()).into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(WorkerError::Channel)?;
    info!(queue = %queue, concurrency = settings.worker.concurrency, "Worker started; consuming requests.");

    let order = CredentialQueue::default();
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    let outcome = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            next = consumer.next() => match next {
                Some(Ok(delivery)) => spawn_delivery(&mut tasks, &pipeline, &order, delivery),
                Some(Err(error)) => break Err(WorkerError::Channel(error)),
                None => break Err(WorkerError::ConsumerEnded),
            },
        }
    };
    info!(
        in_flight = tasks.len(),
        "Stopping; waiting for in-flight requests."
    );
    let _ = channel
        .basic_cancel(consumer.tag(), Default::default())
        .await;
    drain(&mut tasks).await;
    outcome
}

fn spawn_delivery(
    tasks: &mut JoinSet<()>,
    pipeline: &Arc<Pipeline>,
    order: &CredentialQueue,
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
    let mut turn = credential_id.as_deref().map(|id| order.enqueue(id));
    let span = info_span!(
        "request",
        request_id = %request_id,
        credential_id = credential_id.as_deref().unwrap_or(""),
        operation = tracing::field::Empty,
        redelivered = delivery.redelivered,
    );
    let pipeline = Arc::clone(pipeline);
    tasks.spawn(
        async move {
            if let Some(turn) = &mut turn {
                turn.wait().await;
            }
            let settlement = pipeline.process(&delivery, decoded).await;
            settle(&delivery, settlement).await;
            drop(turn);
        }
        .instrument(span),
    );
}

/// Acks or nacks the delivery on the channel it came from.
async fn settle(delivery: &Delivery, settlement: Settlement) {
    let result = match settlement {
        Settlement::Ack => delivery.ack(BasicAckOptions::default()).await,
        Settlement::Requeue => requeue(delivery).await,
        Settlement::RequeueAndPause => {
            // TODO: stop consuming and probe Okta instead of holding the delivery.
            tokio::time::sleep(CREDENTIAL_REJECTED_PAUSE).await;
            requeue(delivery).await
        }
    };
    if let Err(error) = result {
        warn!(cause = %error, ?settlement, "Settling the delivery failed; the broker will redeliver it.");
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

async fn drain(tasks: &mut JoinSet<()>) {
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
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

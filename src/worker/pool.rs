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
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, error, info, info_span, warn, Instrument};

use crate::admin::{self, AdminError, AdminServer};
use crate::broker::{self, ConfirmedPublisher, TopologyError};
use crate::contract::{NameTemplate, TemplateError};
use crate::okta::{ErrorClass, OktaAuth, OktaClient, OktaConfig, OktaError, RetryBudget};
use crate::settings::{OktaCredential, Settings};
use crate::worker::order::CredentialQueue;
use crate::worker::pipeline::{Decoded, Pipeline, Settlement};
use crate::worker::readiness::Readiness;
use crate::worker::seen::SeenRequests;

/// How many request ids the worker remembers to detect repeats within one process.
const SEEN_CAPACITY: usize = 100_000;

/// How long in-flight requests may run after a shutdown signal before the process exits and
/// leaves them unacked for redelivery.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// First and longest wait between probes while Okta rejects the worker's credential.
const CREDENTIAL_PROBE_MIN: Duration = Duration::from_secs(1);
const CREDENTIAL_PROBE_MAX: Duration = Duration::from_secs(60);

/// Client id looked up to probe the credential: any id works, because a 404 proves that Okta
/// accepted the credential.
const CREDENTIAL_PROBE_CLIENT_ID: &str = "okta-dcr-worker-credential-probe";

/// An error that stops the worker.
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
    #[error(transparent)]
    Admin(#[from] AdminError),
}

/// Runs the worker until `shutdown` resolves: serves the admin endpoint, declares the
/// topology, consumes requests and processes them.
pub async fn run(
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), WorkerError> {
    let okta = okta_client(&settings)?;
    let template = match &settings.worker.client_name_template {
        Some(template) => NameTemplate::parse(template)?,
        None => NameTemplate::default(),
    };
    let readiness = Arc::new(Readiness::default());
    let admin = start_admin(&settings, &readiness).await?;
    let connection = broker::connect(&settings.broker.amqp_url, "run")
        .await
        .map_err(WorkerError::Connect)?;
    readiness.set_connected(true);
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
        readiness: Arc::clone(&readiness),
    });
    let result = consume(&connection, &settings, pipeline, shutdown).await;
    readiness.set_connected(false);
    let _ = connection.close(200, "worker stopped".into()).await;
    if let Some(admin) = admin {
        admin.stop().await;
    }
    result
}

/// Starts the admin endpoint unless `OKTA_DCR_ADMIN_ADDR` is empty. Dropping the returned
/// server on an early return stops it.
async fn start_admin(
    settings: &Settings,
    readiness: &Arc<Readiness>,
) -> Result<Option<AdminServer>, WorkerError> {
    let Some(address) = settings.worker.admin_addr else {
        return Ok(None);
    };
    let server = AdminServer::start(address, Arc::clone(readiness)).await?;
    Ok(Some(server))
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
    let order = CredentialQueue::default();
    let mut tasks = JoinSet::new();
    let (pause, mut paused) = mpsc::unbounded_channel::<()>();
    tokio::pin!(shutdown);

    let outcome = 'session: loop {
        let mut consumer = start_consumer(&channel, queue).await?;
        pipeline.readiness.set_consuming(true);
        info!(queue = %queue, concurrency = settings.worker.concurrency, "Consuming requests.");
        loop {
            tokio::select! {
                _ = &mut shutdown => {
                    stop_consumer(&channel, &consumer, &pipeline).await;
                    break 'session Ok(());
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                Some(()) = paused.recv() => break,
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        spawn_delivery(&mut tasks, &pipeline, &order, &pause, delivery)
                    }
                    Some(Err(error)) => break 'session Err(WorkerError::Channel(error)),
                    None => break 'session Err(WorkerError::ConsumerEnded),
                },
            }
        }
        stop_consumer(&channel, &consumer, &pipeline).await;
        requeue_buffered(&mut consumer).await;
        let probed = tokio::select! {
            _ = &mut shutdown => None,
            () = wait_for_credential(&pipeline) => Some(()),
        };
        if probed.is_none() {
            break Ok(());
        }
        while paused.try_recv().is_ok() {}
    };
    pipeline.readiness.set_consuming(false);
    info!(
        in_flight = tasks.len(),
        "Stopping; waiting for in-flight requests."
    );
    drain(&mut tasks).await;
    let _ = channel.close(200, "worker stopped".into()).await;
    outcome
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

/// Probes Okta with backoff until it accepts the worker's credential again.
async fn wait_for_credential(pipeline: &Pipeline) {
    pipeline.readiness.set_credential_rejected(true);
    let mut wait = CREDENTIAL_PROBE_MIN;
    loop {
        tokio::time::sleep(wait).await;
        let budget = RetryBudget::new(Duration::ZERO);
        match pipeline
            .okta
            .get_client(CREDENTIAL_PROBE_CLIENT_ID, &budget)
            .await
        {
            Ok(_) => break,
            Err(error) if error.class() != ErrorClass::Systemic => break,
            Err(error) => {
                debug!(code = error.code(), next_probe = ?wait, "Okta still rejects the credential.");
                wait = (wait * 2).min(CREDENTIAL_PROBE_MAX);
            }
        }
    }
    pipeline.readiness.set_credential_rejected(false);
    info!("Okta accepts the worker's credential again; resuming.");
}

fn spawn_delivery(
    tasks: &mut JoinSet<()>,
    pipeline: &Arc<Pipeline>,
    order: &CredentialQueue,
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
    let mut turn = credential_id.as_deref().map(|id| order.enqueue(id));
    let span = info_span!(
        "request",
        request_id = %request_id,
        credential_id = credential_id.as_deref().unwrap_or(""),
        operation = tracing::field::Empty,
        redelivered = delivery.redelivered,
    );
    let pipeline = Arc::clone(pipeline);
    let pause = pause.clone();
    tasks.spawn(
        async move {
            let _in_flight = admin::InFlight::start();
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
async fn settle(delivery: &Delivery, settlement: Settlement) {
    let result = match settlement {
        Settlement::Ack => delivery.ack(BasicAckOptions::default()).await,
        Settlement::Requeue | Settlement::RequeueAndPause => requeue(delivery).await,
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

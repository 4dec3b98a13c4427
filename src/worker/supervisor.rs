//! The supervisor: connects, declares the topology, runs the consumer loop, and starts over
//! with capped, jittered backoff whenever the connection, the channel or the consumer is lost.
//!
//! lapin's own opt-in recovery is not used because it does not restore the prefetch. Each
//! session gets a fresh connection, channels and [`Pipeline`]; a task still running from a
//! lost session keeps its old channel, so its delivery is never acked on a new one (the
//! broker redelivers it instead), and the per-credential queue, shared across sessions, makes
//! the redelivered copy wait for the old task.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::admin::{AdminError, AdminServer};
use crate::broker::{self, ConfirmedPublisher, TopologyError};
use crate::contract::{NameTemplate, TemplateError};
use crate::okta::{OktaAuth, OktaClient, OktaConfig, OktaError};
use crate::settings::{OktaCredential, Settings};
use crate::worker::pipeline::Pipeline;
use crate::worker::pool::{self, Pool};
use crate::worker::readiness::Readiness;
use crate::worker::seen::SeenRequests;

/// How many request ids the worker remembers to detect repeats within one process.
const SEEN_CAPACITY: usize = 100_000;

/// First and longest wait before reconnecting to the broker.
const RECONNECT_MIN: Duration = Duration::from_millis(500);
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// A session that lasted this long counts as healthy, so the next reconnect starts from
/// [`RECONNECT_MIN`] again.
const HEALTHY_SESSION: Duration = Duration::from_secs(60);

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
    #[error("the broker cancelled the consumer (was the request queue deleted?)")]
    ConsumerEnded,
    #[error(transparent)]
    Admin(#[from] AdminError),
}

impl WorkerError {
    /// Reports whether reconnecting cannot help: the settings or the broker's existing
    /// topology must change first.
    pub fn is_fatal(&self) -> bool {
        if let WorkerError::Connect(error) = self {
            return is_access_refused(error);
        }
        matches!(
            self,
            WorkerError::Topology(TopologyError::Mismatch { .. })
                | WorkerError::Template(_)
                | WorkerError::Okta(_)
                | WorkerError::Admin(_)
        )
    }
}

/// State that outlives broker sessions.
struct Shared {
    okta: OktaClient,
    name_template: NameTemplate,
    seen: Arc<SeenRequests>,
    readiness: Arc<Readiness>,
}

/// Runs the worker until `shutdown` resolves: connects, declares the topology, consumes and
/// processes requests, and reconnects after any loss of the broker. On shutdown it stops
/// consuming and lets in-flight requests finish within the drain timeout.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    run_with_readiness(settings, Arc::new(Readiness::default()), shutdown).await
}

/// Same as [`run`], reporting the worker's state in `readiness` (read by the health check).
pub async fn run_with_readiness(
    settings: Settings,
    readiness: Arc<Readiness>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let shared = Shared {
        okta: okta_client(&settings)?,
        name_template: match &settings.worker.client_name_template {
            Some(template) => NameTemplate::parse(template)?,
            None => NameTemplate::default(),
        },
        seen: Arc::new(SeenRequests::new(SEEN_CAPACITY)),
        readiness,
    };
    let admin = start_admin(&settings, &shared.readiness).await?;
    let (stop, stopping) = watch::channel(false);
    let mut pool = Pool::new();
    let outcome = {
        let supervised = supervise(&settings, &shared, &mut pool, stopping);
        tokio::pin!(supervised);
        tokio::select! {
            outcome = &mut supervised => outcome,
            () = shutdown => {
                info!("Shutdown requested; no new requests are taken.");
                let _ = stop.send(true);
                supervised.await
            }
        }
    };
    // Tasks left from a session lost before the shutdown; a session that ended on the
    // shutdown drained its own.
    if !pool.tasks.is_empty() {
        pool::drain(&mut pool.tasks, settings.worker.drain_timeout).await;
    }
    if let Some(admin) = admin {
        admin.stop().await;
    }
    info!("Worker stopped.");
    outcome
}

async fn supervise(
    settings: &Settings,
    shared: &Shared,
    pool: &mut Pool,
    mut stopping: watch::Receiver<bool>,
) -> Result<(), WorkerError> {
    let mut wait = RECONNECT_MIN;
    loop {
        let started = Instant::now();
        let error = match session(settings, shared, pool, &mut stopping).await {
            Ok(()) => return Ok(()),
            Err(error) if error.is_fatal() => return Err(error),
            Err(error) => error,
        };
        if started.elapsed() >= HEALTHY_SESSION {
            wait = RECONNECT_MIN;
        }
        let delay = jittered(wait);
        match &error {
            WorkerError::Connect(_) => {
                warn!(cause = %error, retry_in = ?delay, "Cannot connect to RabbitMQ; retrying.")
            }
            _ => warn!(cause = %error, retry_in = ?delay, "Broker session lost; reconnecting."),
        }
        tokio::select! {
            () = pool::stop_requested(&mut stopping) => return Ok(()),
            () = tokio::time::sleep(delay) => {}
        }
        wait = (wait * 2).min(RECONNECT_MAX);
    }
}

/// Connects, declares the topology and consumes until stopped or until the broker is lost.
async fn session(
    settings: &Settings,
    shared: &Shared,
    pool: &mut Pool,
    stopping: &mut watch::Receiver<bool>,
) -> Result<(), WorkerError> {
    let connection = broker::connection::connect_with_heartbeat(
        &settings.broker.amqp_url,
        "run",
        settings.broker.heartbeat,
    )
    .await
    .map_err(WorkerError::Connect)?;
    shared.readiness.set_connected(true);
    let result = run_session(&connection, settings, shared, pool, stopping).await;
    shared.readiness.set_consuming(false);
    if result.is_ok() && !pool.tasks.is_empty() {
        // Stopping: in-flight requests publish their results and ack their deliveries on this
        // connection, so it stays open until they finish or the drain timeout passes.
        pool::drain(&mut pool.tasks, settings.worker.drain_timeout).await;
    }
    shared.readiness.set_connected(false);
    if result.is_ok() {
        info!("Closing the broker connection.");
    }
    let _ = connection.close(200, "worker stopping".into()).await;
    result
}

async fn run_session(
    connection: &lapin::Connection,
    settings: &Settings,
    shared: &Shared,
    pool: &mut Pool,
    stopping: &mut watch::Receiver<bool>,
) -> Result<(), WorkerError> {
    broker::declare_topology(connection, &settings.broker.topology).await?;
    let publisher = ConfirmedPublisher::open(connection, settings.broker.confirm_timeout)
        .await
        .map_err(WorkerError::Channel)?;
    let pipeline = Arc::new(Pipeline {
        okta: shared.okta.clone(),
        publisher,
        topology: settings.broker.topology.clone(),
        name_template: shared.name_template.clone(),
        group_id: settings.okta.group_id.clone(),
        retry_budget: settings.worker.retry_budget,
        in_process_retry: settings.worker.in_process_retry,
        max_body_bytes: settings.broker.max_body_bytes,
        seen: Arc::clone(&shared.seen),
        readiness: Arc::clone(&shared.readiness),
    });
    let result = pool::consume(connection, settings, pipeline, pool, stopping).await;
    if let Err(error) = &result {
        error!(cause = %error, "Consuming stopped.");
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
        OktaCredential::ServiceApp {
            client_id,
            private_key,
            key_id,
        } => OktaAuth::service_app(client_id.clone(), private_key, key_id.clone())?,
    };
    let config = OktaConfig {
        org_url: settings.okta.org_url.clone(),
        auth,
        call_timeout: settings.okta.call_timeout,
        min_backoff: Duration::from_millis(250),
        max_backoff: Duration::from_secs(30),
        max_concurrent_calls: settings.okta.max_concurrent_calls,
    };
    Ok(OktaClient::new(config)?)
}

/// Reports whether the broker refused the credentials or the virtual host in `AMQP_URL`, which
/// no reconnect can fix.
fn is_access_refused(error: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
    match error.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => matches!(
            amqp.kind(),
            AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED)
                | AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED)
        ),
        _ => false,
    }
}

/// Returns `wait` with up to a quarter added at random, so that many workers that lost the
/// same broker do not reconnect in step.
fn jittered(wait: Duration) -> Duration {
    let extra = rand::thread_rng().gen_range(0.0..0.25);
    wait.mul_f64(1.0 + extra)
}

//! The admin HTTP endpoint and the worker's own metrics.
//!
//! Routes, served with axum on `OKTA_DCR_ADMIN_ADDR`:
//!
//! - `GET /livez`: 200 `ok` while the process runs.
//! - `GET /readyz`: 200 when the worker takes requests, 503 otherwise; both with a JSON body
//!   of the [`Readiness`] flags.
//! - `GET /metrics`: the Prometheus text format (version 0.0.4).
//!
//! Every metric name the worker records outside the Okta client is defined here. Labels take
//! values from fixed sets only, so the number of series stays bounded.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::contract::{codes, Job};
use crate::worker::readiness::Readiness;

/// `Content-Type` of the Prometheus text exposition format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

const REQUESTS_TOTAL: &str = "okta_dcr_requests_total";
const RETRIES_TOTAL: &str = "okta_dcr_retries_total";
const DELAYED_TOTAL: &str = "okta_dcr_delayed_total";
const DEAD_LETTERED_TOTAL: &str = "okta_dcr_dead_lettered_total";
const IN_FLIGHT: &str = "okta_dcr_in_flight";
const OKTA_CALLS_TOTAL: &str = "okta_calls_total";
const OKTA_CALL_DURATION: &str = "okta_call_duration_seconds";
const OKTA_RATE_LIMIT_REMAINING: &str = "okta_rate_limit_remaining";
const OKTA_PACING_WAIT: &str = "okta_pacing_wait_seconds";

/// Upper bounds, in seconds, of the `okta_pacing_wait_seconds` buckets: from no wait to a whole
/// one-minute rate-limit window.
const PACING_WAIT_BUCKETS: [f64; 8] = [0.0, 0.1, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0];

/// Upper bounds, in seconds, of the `okta_call_duration_seconds` histogram buckets. The last
/// one matches the default Okta call timeout (`OKTA_DCR_OKTA_TIMEOUT_SECS`, 30 s).
const OKTA_CALL_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0,
];

/// How often histogram samples are folded into their buckets. metrics-exporter-prometheus 0.17
/// keeps raw samples until then, so memory stays bounded even when `/metrics` is not scraped.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// How long [`AdminServer::stop`] waits for open admin requests before it aborts them.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Dead-letter codes counted under their own label. Any other code counts as `other`.
const DEAD_LETTER_CODES: [&str; 17] = [
    codes::INVALID_REQUEST,
    codes::INVALID_JSON,
    codes::INVALID_UTF8,
    codes::BODY_TOO_LARGE,
    codes::UNSUPPORTED_CONTENT_TYPE,
    codes::UNSUPPORTED_OPERATION,
    codes::OKTA_REJECTED,
    codes::OKTA_NOT_FOUND,
    codes::OKTA_UNAVAILABLE,
    codes::OKTA_RATE_LIMITED,
    codes::OKTA_CREDENTIAL_REJECTED,
    codes::OKTA_INVALID_RESPONSE,
    codes::CLIENT_NOT_FOUND,
    codes::AMBIGUOUS_CLIENT,
    codes::ENCRYPTION_FAILED,
    codes::INTERNAL_ERROR,
    codes::RESULT_UNROUTABLE,
];

/// A failure to start the admin endpoint, which stops the worker at start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot install the Prometheus metrics recorder: {0}")]
    Recorder(String),
    #[error("cannot listen on OKTA_DCR_ADMIN_ADDR={address}: {source}; pick a free address, or set it empty to turn the admin endpoint off")]
    Bind {
        address: SocketAddr,
        source: io::Error,
    },
}

/// The end of one delivery: the `outcome` label of `okta_dcr_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A success result was published.
    Success,
    /// An error result was published.
    Error,
    /// The request was published to the dead-letter exchange.
    DeadLettered,
    /// Nothing durable could be published, so the delivery went back to the queue.
    Requeued,
}

impl Outcome {
    /// Returns the label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
            Outcome::DeadLettered => "dead_lettered",
            Outcome::Requeued => "requeued",
        }
    }
}

/// Counts one settled delivery in `okta_dcr_requests_total{operation,outcome}`. The
/// operation label is the job, also for an invalid request whose `operation` and
/// `credentialAction` are valid. Without a job (an undecodable body, or an unknown operation
/// or action) it is `unknown`.
pub fn record_outcome(job: Option<Job>, outcome: Outcome) {
    let operation = job.map_or("unknown", Job::as_str);
    metrics::counter!(REQUESTS_TOTAL, "operation" => operation, "outcome" => outcome.as_str())
        .increment(1);
}

/// Counts one request published to the dead-letter exchange in
/// `okta_dcr_dead_lettered_total{code}`. Codes outside [`crate::contract::codes`] count as
/// `other`.
pub fn record_dead_letter(code: &str) {
    metrics::counter!(DEAD_LETTERED_TOTAL, "code" => dead_letter_label(code)).increment(1);
}

/// Adds the retried Okta calls of one request to `okta_dcr_retries_total`.
pub fn record_retries(retries: u32) {
    metrics::counter!(RETRIES_TOTAL).increment(u64::from(retries));
}

/// Counts one request put on a delay queue in `okta_dcr_delayed_total`.
pub fn record_delayed() {
    metrics::counter!(DELAYED_TOTAL).increment(1);
}

/// One delivery the worker holds unsettled, counted in the `okta_dcr_in_flight` gauge from
/// [`InFlight::start`] until the guard is dropped, including when its task is aborted.
#[derive(Debug)]
#[must_use = "the delivery counts as in flight only while the guard lives"]
pub struct InFlight(());

impl InFlight {
    /// Adds one to `okta_dcr_in_flight`.
    pub fn start() -> Self {
        metrics::gauge!(IN_FLIGHT).increment(1.0);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(IN_FLIGHT).decrement(1.0);
    }
}

/// Installs the process-wide Prometheus recorder and returns its handle. Later calls return
/// the same handle, so several workers in one process (as in the tests) share it.
///
/// Fails when another global `metrics` recorder was installed first.
pub fn install_recorder() -> Result<PrometheusHandle, AdminError> {
    static INSTALLED: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    INSTALLED
        .get_or_init(build_and_install)
        .clone()
        .map_err(AdminError::Recorder)
}

/// The `/readyz` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadyStatus {
    /// All three flags below hold, so the worker takes requests.
    pub ready: bool,
    /// The worker has an open connection to RabbitMQ.
    pub connected: bool,
    /// A consumer is attached to the request queue.
    pub consuming: bool,
    /// Okta accepts the worker's own credential: false from a rejected call until a probe
    /// succeeds again.
    pub okta_credential_accepted: bool,
}

impl ReadyStatus {
    /// Reads the current flags.
    pub fn from_readiness(readiness: &Readiness) -> Self {
        ReadyStatus {
            ready: readiness.is_ready(),
            connected: readiness.is_connected(),
            consuming: readiness.is_consuming(),
            okta_credential_accepted: !readiness.is_credential_rejected(),
        }
    }
}

/// Serves the admin routes on `listener` until `shutdown` resolves, then lets open requests
/// finish. Also folds histogram samples into their buckets every few seconds while it runs.
pub async fn serve(
    listener: TcpListener,
    readiness: Arc<Readiness>,
    metrics: PrometheusHandle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let upkeep = tokio::spawn(run_upkeep(metrics.clone()));
    let app = router(AdminState { readiness, metrics });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    upkeep.abort();
    served
}

/// A running admin endpoint, started by the worker and stopped with it. Dropping it also
/// starts a graceful shutdown, without waiting for it.
#[derive(Debug)]
pub struct AdminServer {
    address: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<io::Result<()>>,
}

impl AdminServer {
    /// Installs the recorder, binds `address` and serves the admin routes in a task.
    pub async fn start(address: SocketAddr, readiness: Arc<Readiness>) -> Result<Self, AdminError> {
        let metrics = install_recorder()?;
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| AdminError::Bind { address, source })?;
        let address = listener
            .local_addr()
            .map_err(|source| AdminError::Bind { address, source })?;
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        };
        let task = tokio::spawn(serve(listener, readiness, metrics, shutdown));
        info!(%address, "Admin endpoint listening on /livez, /readyz and /metrics.");
        Ok(AdminServer {
            address,
            stop,
            task,
        })
    }

    /// Returns the address the endpoint listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting connections and waits up to 5 seconds for open requests, so that the
    /// address is free again when this returns.
    pub async fn stop(self) {
        let AdminServer {
            address,
            stop,
            mut task,
        } = self;
        let _ = stop.send(());
        match tokio::time::timeout(STOP_TIMEOUT, &mut task).await {
            Ok(Ok(Ok(()))) => info!(%address, "Admin endpoint stopped."),
            Ok(Ok(Err(error))) => warn!(%address, cause = %error, "Admin endpoint failed."),
            Ok(Err(error)) => warn!(%address, cause = %error, "Admin endpoint task failed."),
            Err(_) => {
                warn!(%address, timeout = ?STOP_TIMEOUT, "Admin requests still open at stop; aborting them.");
                task.abort();
            }
        }
    }
}

#[derive(Clone)]
struct AdminState {
    readiness: Arc<Readiness>,
    metrics: PrometheusHandle,
}

fn router(state: AdminState) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(state)
}

async fn livez() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let status = ReadyStatus::from_readiness(&state.readiness);
    let code = match status.ready {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    (code, Json(status)).into_response()
}

async fn render_metrics(State(state): State<AdminState>) -> Response {
    let body = state.metrics.render();
    ([(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)], body).into_response()
}

async fn run_upkeep(metrics: PrometheusHandle) {
    let mut interval = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        interval.tick().await;
        metrics.run_upkeep();
    }
}

fn build_and_install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(OKTA_CALL_DURATION.to_owned()),
            &OKTA_CALL_BUCKETS,
        )
        .and_then(|builder| {
            builder.set_buckets_for_metric(
                Matcher::Full(OKTA_PACING_WAIT.to_owned()),
                &PACING_WAIT_BUCKETS,
            )
        })
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|error| error.to_string())?;
    describe_metrics();
    Ok(handle)
}

/// Registers the `# HELP` text of every metric; only takes effect once a recorder is installed.
fn describe_metrics() {
    describe_counter!(
        REQUESTS_TOTAL,
        "Deliveries settled, by job (operation) and by how they ended (outcome)."
    );
    describe_counter!(
        RETRIES_TOTAL,
        "Okta calls retried after a transient failure, over all requests."
    );
    describe_counter!(DELAYED_TOTAL, "Requests put on the delay queue.");
    describe_counter!(
        DEAD_LETTERED_TOTAL,
        "Requests published to the dead-letter exchange, by result code."
    );
    describe_gauge!(
        IN_FLIGHT,
        "Deliveries taken from the request queue and not yet settled."
    );
    describe_counter!(
        OKTA_CALLS_TOTAL,
        "Okta HTTP calls, by route template and HTTP status (or the transport failure)."
    );
    describe_histogram!(
        OKTA_CALL_DURATION,
        Unit::Seconds,
        "Duration of one Okta HTTP call, by route template."
    );
    describe_gauge!(
        OKTA_RATE_LIMIT_REMAINING,
        "Calls left in the current Okta rate-limit window, by bucket."
    );
    describe_histogram!(
        OKTA_PACING_WAIT,
        Unit::Seconds,
        "Time an Okta call waited for its turn in the rate-limit window, by bucket."
    );
}

fn dead_letter_label(code: &str) -> &'static str {
    DEAD_LETTER_CODES
        .into_iter()
        .find(|known| *known == code)
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn start(readiness: Arc<Readiness>) -> AdminServer {
        let address = "127.0.0.1:0".parse().unwrap();
        AdminServer::start(address, readiness).await.unwrap()
    }

    async fn get(server: &AdminServer, path: &str) -> reqwest::Response {
        let url = format!("http://{}{path}", server.local_addr());
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        client.get(url).send().await.unwrap()
    }

    fn ready_readiness() -> Arc<Readiness> {
        let readiness = Arc::new(Readiness::default());
        readiness.set_connected(true);
        readiness.set_consuming(true);
        readiness
    }

    #[test]
    fn known_dead_letter_code_kept() {
        assert_eq!(dead_letter_label("okta_unavailable"), "okta_unavailable");
    }

    #[test]
    fn unknown_dead_letter_code_is_other() {
        assert_eq!(dead_letter_label("made_up_code"), "other");
    }

    #[test]
    fn recorder_installed_once() {
        let first = install_recorder().unwrap();
        let second = install_recorder().unwrap();
        record_outcome(Some(Job::Rotate), Outcome::Requeued);
        let line = "okta_dcr_requests_total{operation=\"rotate\",outcome=\"requeued\"}";
        assert!(first.render().contains(line), "{}", first.render());
        assert!(second.render().contains(line), "{}", second.render());
    }

    #[tokio::test]
    async fn livez_returns_ok() {
        let server = start(Arc::new(Readiness::default())).await;
        let response = get(&server, "/livez").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.unwrap(), "ok");
        server.stop().await;
    }

    #[tokio::test]
    async fn readyz_ready_when_all_flags_hold() {
        let server = start(ready_readiness()).await;
        let response = get(&server, "/readyz").await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "ready": true,
                "connected": true,
                "consuming": true,
                "oktaCredentialAccepted": true
            })
        );
        server.stop().await;
    }

    #[tokio::test]
    async fn readyz_unavailable_when_disconnected() {
        let readiness = ready_readiness();
        readiness.set_connected(false);
        let server = start(readiness).await;
        let response = get(&server, "/readyz").await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["ready"], false);
        assert_eq!(body["connected"], false);
        server.stop().await;
    }

    #[tokio::test]
    async fn readyz_unavailable_when_credential_rejected() {
        let readiness = ready_readiness();
        readiness.set_credential_rejected(true);
        let server = start(readiness).await;
        let response = get(&server, "/readyz").await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["ready"], false);
        assert_eq!(body["oktaCredentialAccepted"], false);
        server.stop().await;
    }

    #[tokio::test]
    async fn metrics_in_prometheus_format() {
        let server = start(Arc::new(Readiness::default())).await;
        record_dead_letter("okta_rate_limited");
        metrics::histogram!(OKTA_CALL_DURATION, "route" => "test").record(0.2);
        let response = get(&server, "/metrics").await;
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap();
        assert_eq!(content_type, PROMETHEUS_CONTENT_TYPE);
        let body = response.text().await.unwrap();
        let dead_letter = "okta_dcr_dead_lettered_total{code=\"okta_rate_limited\"}";
        assert!(body.contains(dead_letter), "{body}");
        let bucket = "okta_call_duration_seconds_bucket{route=\"test\",le=\"0.25\"} ";
        assert!(body.contains(bucket), "{body}");
        server.stop().await;
    }

    #[test]
    fn in_flight_counts_live_guards() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let (during, after) = metrics::with_local_recorder(&recorder, || {
            let guard = InFlight::start();
            let during = handle.render();
            drop(guard);
            (during, handle.render())
        });
        assert!(during.contains("okta_dcr_in_flight 1\n"), "{during}");
        assert!(after.contains("okta_dcr_in_flight 0\n"), "{after}");
    }

    #[tokio::test]
    async fn bind_failure_names_variable() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = taken.local_addr().unwrap();
        let error = AdminServer::start(address, Arc::new(Readiness::default()))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("OKTA_DCR_ADMIN_ADDR"), "{error}");
        assert!(error.contains(&address.to_string()), "{error}");
    }

    #[tokio::test]
    async fn stop_frees_address() {
        let server = start(Arc::new(Readiness::default())).await;
        let address = server.local_addr();
        server.stop().await;
        assert!(TcpListener::bind(address).await.is_ok());
    }
}

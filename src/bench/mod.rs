//! `bench`: measures the worker on this machine's RabbitMQ against an embedded okta-sim, next
//! to a baseline that takes the same broker path without any Okta call.
//!
//! Each run declares a topology of its own in a fresh virtual host, which `rabbitmqctl`
//! creates and deletes (`--vhost` names an existing one instead). The run publishes
//! `--requests` provision requests with publisher confirms, starts `--workers` processes of
//! this binary, and waits for one result per request. It reports:
//!
//! - throughput: results per second, from the moment the first request is published
//!   and every consumer is attached, to the last result;
//! - end-to-end latency percentiles, from each request's publish to its result's arrival;
//! - each process's peak resident memory (`VmHWM`), and its resident memory while the queue
//!   drains;
//! - for the worker: the Okta calls okta-sim served (start-up checks not counted), those
//!   answered 429, and the calls per request.
//!
//! The baseline run starts `bench-baseline` processes instead of workers: they consume with
//! the same prefetch, wait `--latency-ms` in place of the Okta call, publish a result with
//! confirm and `mandatory` for each request, and ack it. The worker's throughput is reported
//! as a share of the baseline's.

mod baseline;
mod measure;
mod vhost;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, Consumer};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::broker::{self, publisher::json_properties, topology, ConfirmedPublisher};
use crate::secret::Secret;
use crate::settings::{QueueType, Topology, DEFAULT_AMQP_URL};
use crate::sim::{self, SimConfig, SimHandle};

pub use baseline::serve as serve_baseline;
use measure::{cpu_time_of, percentile, rss_of};
use vhost::BenchVhost;

/// Start of the message of a failed broker connection.
const CANNOT_CONNECT: &str = "cannot connect to the broker";
/// Publishes awaiting their confirm at once.
const PUBLISH_WINDOW: usize = 256;
/// How often the memory of the measured processes is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// How long the processes get to attach their consumers.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a process gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(40);

/// Options of `okta-dcr-worker bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Provision requests published in each run.
    #[arg(long, default_value_t = 1000)]
    pub requests: usize,
    /// Requests in flight per process: OKTA_DCR_CONCURRENCY and the baseline's prefetch.
    #[arg(long, default_value_t = 64)]
    pub concurrency: u16,
    /// Concurrent Okta calls per worker process (OKTA_DCR_OKTA_CONCURRENCY); defaults to
    /// --concurrency.
    #[arg(long)]
    pub okta_concurrency: Option<u16>,
    /// Processes consuming the one request queue.
    #[arg(long, default_value_t = 1)]
    pub workers: u16,
    /// Delay okta-sim adds to every Okta call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Okta calls okta-sim allows per minute and route bucket; 0 means no limit.
    #[arg(long, default_value_t = 0)]
    pub rate_limit_per_minute: u32,
    /// Group every new client is assigned to (OKTA_GROUP_ID): one more Okta call per provision.
    #[arg(long)]
    pub group_id: Option<String>,
    /// Publish every request before the processes start, so that they drain a backlog.
    #[arg(long)]
    pub preload: bool,
    /// Publish at this many requests per second instead of as fast as confirms allow.
    #[arg(long)]
    pub publish_rate: Option<f64>,
    /// Runs to measure.
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    pub mode: Mode,
    /// Request queue type.
    #[arg(long, default_value = "quorum")]
    pub queue_type: QueueType,
    /// Existing virtual host to run in, instead of a fresh one made with `rabbitmqctl`
    /// (`$RABBITMQCTL` if set).
    #[arg(long)]
    pub vhost: Option<String>,
    /// Seconds a run may take to receive every result before it fails.
    #[arg(long, default_value_t = 900)]
    pub timeout_secs: u64,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The runs `bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The baseline, then the worker.
    Both,
    /// The worker only.
    Worker,
    /// The baseline only.
    Baseline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum RunKind {
    Baseline,
    Worker,
}

impl RunKind {
    fn as_str(self) -> &'static str {
        match self {
            RunKind::Baseline => "baseline",
            RunKind::Worker => "worker",
        }
    }
}

/// Figures of one run.
#[derive(Debug, Serialize)]
struct RunReport {
    run: RunKind,
    requests: usize,
    seconds: f64,
    requests_per_second: f64,
    latency_ms: Latency,
    /// Highest peak resident memory of the run's processes.
    peak_rss_kib: u64,
    /// CPU time the run's processes used, in all, from their start to the last result.
    cpu_seconds: f64,
    /// CPU time per request, in milliseconds.
    cpu_ms_per_request: f64,
    /// Resident memory (highest across processes) when 10, 25, 50, 75, 90 and 100% of the
    /// results had arrived.
    rss_while_draining_kib: Vec<(u8, u64)>,
    successes: usize,
    errors: usize,
    duplicate_results: usize,
    dead_letters: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    okta: Option<OktaFigures>,
    /// Results per clock minute. okta-sim counts its rate limits per clock minute, so this
    /// shows how the worker spent each window.
    results_per_minute: Vec<MinuteCount>,
    /// Results per second over the clock minutes the run covered whole, when there was one.
    sustained_per_second: Option<f64>,
}

#[derive(Debug, Serialize)]
struct MinuteCount {
    /// Start of the minute, in seconds since the Unix epoch.
    minute: u64,
    results: usize,
    /// Whether the run covered the whole minute.
    whole: bool,
}

#[derive(Debug, Default, Serialize)]
struct Latency {
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
}

#[derive(Debug, Serialize)]
struct OktaFigures {
    calls: usize,
    rate_limited: usize,
    calls_per_request: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    requests: usize,
    concurrency: u16,
    okta_concurrency: u16,
    workers: u16,
    latency_ms: u64,
    rate_limit_per_minute: u32,
    group_assignment: bool,
    preload: bool,
    publish_rate: Option<f64>,
    queue_type: &'static str,
    runs: Vec<RunReport>,
    /// Worker throughput as a share of the baseline's, when both ran.
    worker_to_baseline: Option<f64>,
}

/// Runs the benchmark and prints its report.
pub async fn run(args: BenchArgs) -> ExitCode {
    if let Err(message) = check_args(&args) {
        eprintln!("okta-dcr-worker bench: {message}");
        return ExitCode::from(2);
    }
    match run_bench(&args).await {
        Ok(report) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(error) => eprintln!("okta-dcr-worker bench: {error}"),
                }
            } else {
                print_report(&report);
            }
            let complete = report
                .runs
                .iter()
                .all(|run| run.successes == run.requests && run.dead_letters == 0);
            if complete {
                ExitCode::SUCCESS
            } else {
                eprintln!("okta-dcr-worker bench: not every request succeeded (see errors and dead letters)");
                ExitCode::FAILURE
            }
        }
        Err(message) => {
            eprintln!("okta-dcr-worker bench: {message}");
            ExitCode::FAILURE
        }
    }
}

fn check_args(args: &BenchArgs) -> Result<(), String> {
    if args.requests == 0 {
        return Err("--requests must be greater than zero".to_owned());
    }
    if args.concurrency == 0 || args.workers == 0 || args.okta_concurrency == Some(0) {
        return Err(
            "--concurrency, --okta-concurrency and --workers must be greater than zero".to_owned(),
        );
    }
    if args.timeout_secs == 0 {
        return Err("--timeout-secs must be greater than zero".to_owned());
    }
    if let Some(rate) = args.publish_rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err("--publish-rate must be a positive number".to_owned());
        }
    }
    Ok(())
}

async fn run_bench(args: &BenchArgs) -> Result<Report, String> {
    let base_url =
        Secret::new(std::env::var("AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.to_owned()));
    let tag = format!("okta-dcr-bench-{}", std::process::id());
    let vhost = match &args.vhost {
        Some(name) => BenchVhost::existing(&base_url, name)?,
        None => BenchVhost::create(&base_url, &tag)?,
    };
    let logs = std::env::temp_dir().join(&tag);
    std::fs::create_dir_all(&logs)
        .map_err(|error| format!("cannot create {}: {error}", logs.display()))?;

    let outcome = run_all(args, &vhost, &tag, &logs).await;
    let deleted = vhost.delete();
    match (&outcome, deleted) {
        (Ok(_), Ok(())) => {
            let _ = std::fs::remove_dir_all(&logs);
        }
        (_, deleted) => {
            let has_logs =
                std::fs::read_dir(&logs).is_ok_and(|mut entries| entries.next().is_some());
            if has_logs {
                eprintln!(
                    "okta-dcr-worker bench: process logs kept in {}",
                    logs.display()
                );
            } else {
                let _ = std::fs::remove_dir(&logs);
            }
            if let Err(error) = deleted {
                eprintln!("okta-dcr-worker bench: {error}");
            }
        }
    }
    outcome
}

async fn run_all(
    args: &BenchArgs,
    vhost: &BenchVhost,
    tag: &str,
    logs: &Path,
) -> Result<Report, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|error| format!("cannot start okta-sim: {error}"))?;
    let simulator = sim::start(
        listener,
        SimConfig {
            latency: Duration::from_millis(args.latency_ms),
            rate_limit_per_minute: (args.rate_limit_per_minute > 0)
                .then_some(args.rate_limit_per_minute),
            ..SimConfig::default()
        },
    )
    .await
    .map_err(|error| format!("cannot start okta-sim: {error}"))?;

    let kinds: &[RunKind] = match args.mode {
        Mode::Both => &[RunKind::Baseline, RunKind::Worker],
        Mode::Worker => &[RunKind::Worker],
        Mode::Baseline => &[RunKind::Baseline],
    };
    let mut runs = Vec::new();
    for &kind in kinds {
        let topology = Topology {
            request_queue_type: args.queue_type,
            ..Topology::with_prefix(&format!("{tag}-{}", kind.as_str()))
        };
        let run = Run {
            args,
            kind,
            vhost,
            topology: &topology,
            simulator: &simulator,
            logs,
        };
        let measured = run.measure().await;
        let deleted = run.delete_topology().await;
        match (measured, deleted) {
            (Ok(report), Ok(())) => runs.push(report),
            (Ok(report), Err(error)) => {
                eprintln!(
                    "okta-dcr-worker bench: cannot delete the {} run's queues: {error}",
                    kind.as_str()
                );
                runs.push(report);
            }
            // Without a connection there is nothing more to say than the run's own error.
            (Err(error), Ok(())) => return Err(error),
            (Err(error), Err(cleanup)) if cleanup.starts_with(CANNOT_CONNECT) => return Err(error),
            (Err(error), Err(cleanup)) => {
                return Err(format!(
                    "{error} (its queues could not be deleted either: {cleanup})"
                ))
            }
        }
    }
    simulator.shutdown().await;

    let throughput = |kind| {
        runs.iter()
            .find(|run: &&RunReport| run.run == kind)
            .map(|run| run.requests_per_second)
    };
    let worker_to_baseline = match (throughput(RunKind::Worker), throughput(RunKind::Baseline)) {
        (Some(worker), Some(baseline)) if baseline > 0.0 => Some(worker / baseline),
        _ => None,
    };
    Ok(Report {
        requests: args.requests,
        concurrency: args.concurrency,
        okta_concurrency: okta_concurrency(args),
        workers: args.workers,
        latency_ms: args.latency_ms,
        rate_limit_per_minute: args.rate_limit_per_minute,
        group_assignment: args.group_id.is_some(),
        preload: args.preload,
        publish_rate: args.publish_rate,
        queue_type: args.queue_type.as_str(),
        runs,
        worker_to_baseline,
    })
}

fn okta_concurrency(args: &BenchArgs) -> u16 {
    args.okta_concurrency.unwrap_or(args.concurrency)
}

/// One measured run: its topology, processes and results.
struct Run<'a> {
    args: &'a BenchArgs,
    kind: RunKind,
    vhost: &'a BenchVhost,
    topology: &'a Topology,
    simulator: &'a SimHandle,
    logs: &'a Path,
}

/// When each request was published and when its result arrived.
struct Timeline {
    published: Vec<Option<Instant>>,
    answered: Vec<Option<Instant>>,
    successes: usize,
    errors: usize,
    duplicates: usize,
}

impl Run<'_> {
    async fn measure(&self) -> Result<RunReport, String> {
        let connection = broker::connect(&self.vhost.amqp_url, "bench")
            .await
            .map_err(|error| format!("{CANNOT_CONNECT}: {error}"))?;
        topology::declare_topology(&connection, self.topology)
            .await
            .map_err(|error| error.to_string())?;
        let results = self.consume_results(&connection).await?;
        let publisher = ConfirmedPublisher::open(&connection, Duration::from_secs(30))
            .await
            .map_err(|error| error.to_string())?;
        let okta_calls_before = self.okta_calls().0;

        let answered = Arc::new(AtomicUsize::new(0));
        let collector = tokio::spawn(collect(results, self.args.requests, answered.clone()));
        let mut processes = Processes::default();
        let sampler = Sampler::start(answered.clone(), self.args.requests);
        let started = async {
            if self.args.preload {
                let published = self.publish(&publisher).await?;
                let ready_at = self.start_processes(&mut processes, &connection).await?;
                Ok::<_, String>((published, ready_at))
            } else {
                let ready_at = self.start_processes(&mut processes, &connection).await?;
                Ok((self.publish(&publisher).await?, ready_at))
            }
        };
        let outcome = match started.await {
            Ok((published, ready_at)) => {
                sampler.watch(processes.pids());
                self.wait(&mut processes, collector, published, ready_at)
                    .await
            }
            Err(error) => Err(error),
        };
        let memory = sampler.stop().await;
        processes.stop();
        let _ = connection.close(200, "bench done".into()).await;
        let (timeline, window_start) = outcome?;
        let dead_letters = self.dead_letters().await?;
        let okta = (self.kind == RunKind::Worker).then(|| {
            let (calls, rate_limited) = self.okta_calls();
            let calls = calls - okta_calls_before;
            OktaFigures {
                calls,
                rate_limited,
                calls_per_request: calls as f64 / self.args.requests as f64,
            }
        });
        Ok(report(
            self.kind,
            &timeline,
            window_start,
            memory,
            dead_letters,
            okta,
        ))
    }

    async fn consume_results(&self, connection: &Connection) -> Result<Consumer, String> {
        let channel = connection
            .create_channel()
            .await
            .map_err(|error| error.to_string())?;
        channel
            .basic_qos(2000, BasicQosOptions::default())
            .await
            .map_err(|error| error.to_string())?;
        let queue = self.topology.result_queue.as_deref().unwrap_or_default();
        channel
            .basic_consume(
                queue.into(),
                "okta-dcr-bench-results".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|error| format!("cannot consume {queue}: {error}"))
    }

    /// Publishes the requests, at `--publish-rate` when set, and returns when each was sent.
    async fn publish(
        &self,
        publisher: &ConfirmedPublisher,
    ) -> Result<Vec<Option<Instant>>, String> {
        let mut published = vec![None; self.args.requests];
        let window = Arc::new(Semaphore::new(PUBLISH_WINDOW));
        let mut pending = JoinSet::new();
        let mut ticker = self
            .args
            .publish_rate
            .map(|rate| tokio::time::interval(Duration::from_secs_f64(1.0 / rate)));
        for (index, sent_at) in published.iter_mut().enumerate() {
            if let Some(ticker) = ticker.as_mut() {
                ticker.tick().await;
            }
            let permit = window
                .clone()
                .acquire_owned()
                .await
                .map_err(|error| error.to_string())?;
            let publisher = publisher.clone();
            let exchange = self.topology.request_exchange.clone();
            let body = provision_request(self.kind, index).to_string();
            *sent_at = Some(Instant::now());
            pending.spawn(async move {
                let confirmed = publisher
                    .publish(&exchange, "", body.as_bytes(), json_properties())
                    .await;
                drop(permit);
                confirmed
            });
            while let Some(done) = pending.try_join_next() {
                check_published(done)?;
            }
        }
        while let Some(done) = pending.join_next().await {
            check_published(done)?;
        }
        Ok(published)
    }

    /// Starts the processes and returns when all of them consume the request queue.
    async fn start_processes(
        &self,
        processes: &mut Processes,
        connection: &Connection,
    ) -> Result<Instant, String> {
        for number in 1..=self.args.workers {
            let log = self
                .logs
                .join(format!("{}-{number}.log", self.kind.as_str()));
            processes.spawn(self.command(), &log)?;
        }
        let channel = connection
            .create_channel()
            .await
            .map_err(|error| error.to_string())?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            processes.check_running()?;
            let queue = inspect_queue(&channel, &self.topology.request_queue).await?;
            if queue.consumer_count() >= u32::from(self.args.workers) {
                let _ = channel.close(200, "ready".into()).await;
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the {} processes did not attach to {} within {START_TIMEOUT:?}",
                    self.kind.as_str(),
                    self.topology.request_queue
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn command(&self) -> Command {
        let program = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("okta-dcr-worker"));
        let mut command = Command::new(program);
        let topology = self.topology;
        command
            .env("AMQP_URL", self.vhost.amqp_url.expose())
            .env("OKTA_DCR_REQUEST_EXCHANGE", &topology.request_exchange)
            .env("OKTA_DCR_REQUEST_QUEUE", &topology.request_queue)
            .env(
                "OKTA_DCR_REQUEST_QUEUE_TYPE",
                topology.request_queue_type.as_str(),
            )
            .env("OKTA_DCR_RESULT_EXCHANGE", &topology.result_exchange)
            .env(
                "OKTA_DCR_RESULT_QUEUE",
                topology.result_queue.as_deref().unwrap_or_default(),
            )
            .env(
                "OKTA_DCR_DEAD_LETTER_EXCHANGE",
                &topology.dead_letter_exchange,
            )
            .env("OKTA_DCR_DEAD_LETTER_QUEUE", &topology.dead_letter_queue)
            .env("OKTA_DCR_DELAY_STEPS_SECS", join(&topology.delay_steps))
            .env("OKTA_DCR_CONCURRENCY", self.args.concurrency.to_string());
        match self.kind {
            RunKind::Baseline => {
                command
                    .arg("bench-baseline")
                    .args(["--concurrency", &self.args.concurrency.to_string()])
                    .args(["--latency-ms", &self.args.latency_ms.to_string()]);
            }
            RunKind::Worker => {
                command
                    .arg("run")
                    .env("OKTA_ORG_URL", self.simulator.base_url())
                    .env("OKTA_API_TOKEN", self.simulator.api_token().expose())
                    .env(
                        "OKTA_DCR_OKTA_CONCURRENCY",
                        okta_concurrency(self.args).to_string(),
                    )
                    .env("OKTA_DCR_ADMIN_ADDR", "")
                    .env_remove("OKTA_API_TOKEN_FILE")
                    .env_remove("OKTA_CLIENT_ID")
                    .env_remove("OKTA_PRIVATE_KEY")
                    .env_remove("OKTA_PRIVATE_KEY_ID");
                match &self.args.group_id {
                    Some(group) => command.env("OKTA_GROUP_ID", group),
                    None => command.env_remove("OKTA_GROUP_ID"),
                };
            }
        }
        command
    }

    /// Waits for every result while checking that the processes still run.
    async fn wait(
        &self,
        processes: &mut Processes,
        collector: tokio::task::JoinHandle<Timeline>,
        published: Vec<Option<Instant>>,
        ready_at: Instant,
    ) -> Result<(Timeline, Instant), String> {
        let deadline = Instant::now() + Duration::from_secs(self.args.timeout_secs);
        tokio::pin!(collector);
        loop {
            tokio::select! {
                collected = &mut collector => {
                    let mut timeline = collected.map_err(|error| format!("the result collector failed: {error}"))?;
                    timeline.published = published;
                    let first_publish = timeline.published.iter().flatten().min().copied().unwrap_or(ready_at);
                    return Ok((timeline, first_publish.max(ready_at)));
                }
                () = tokio::time::sleep(Duration::from_millis(500)) => {
                    processes.check_running()?;
                    if Instant::now() > deadline {
                        collector.abort();
                        return Err(format!(
                            "not every result arrived within {} s",
                            self.args.timeout_secs
                        ));
                    }
                }
            }
        }
    }

    async fn dead_letters(&self) -> Result<u32, String> {
        let connection = broker::connect(&self.vhost.amqp_url, "bench")
            .await
            .map_err(|error| error.to_string())?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|error| error.to_string())?;
        let queue = inspect_queue(&channel, &self.topology.dead_letter_queue).await?;
        let _ = connection.close(200, "bench done".into()).await;
        Ok(queue.message_count())
    }

    async fn delete_topology(&self) -> Result<(), String> {
        let connection = broker::connect(&self.vhost.amqp_url, "bench cleanup")
            .await
            .map_err(|error| format!("{CANNOT_CONNECT}: {error}"))?;
        let deleted = topology::delete_topology(&connection, self.topology)
            .await
            .map_err(|error| error.to_string());
        let _ = connection.close(200, "bench done".into()).await;
        deleted
    }

    /// Returns the Okta calls okta-sim served so far, without the worker's start-up credential
    /// checks, and how many of them got 429.
    fn okta_calls(&self) -> (usize, usize) {
        let calls: Vec<_> = self
            .simulator
            .requests()
            .into_iter()
            .filter(|call| call.query.as_deref() != Some("limit=1"))
            .collect();
        let rate_limited = calls.iter().filter(|call| call.status == 429).count();
        (calls.len(), rate_limited)
    }
}

/// Reads a queue's message and consumer counts without changing it.
async fn inspect_queue(channel: &lapin::Channel, name: &str) -> Result<lapin::Queue, String> {
    channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|error| format!("cannot inspect queue {name}: {error}"))
}

fn check_published(
    done: Result<Result<(), crate::broker::publisher::PublishError>, tokio::task::JoinError>,
) -> Result<(), String> {
    match done {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(format!("publishing a request failed: {error}")),
        Err(error) => Err(format!("a publish task failed: {error}")),
    }
}

fn provision_request(kind: RunKind, index: usize) -> Value {
    json!({
        "requestId": format!("bench-{}-{index}", kind.as_str()),
        "operation": "provision",
        "id": format!("bench-credential-{}-{index}", kind.as_str()),
        "name": format!("bench-{index}"),
        "managedApplicationName": "Benchmark",
        "teamName": "Benchmark",
        "credentialData": {
            "grantType": "client_credentials",
            "tokenAuthMethod": "client_secret_basic"
        }
    })
}

/// Reads results until `expected` distinct requests have one.
async fn collect(
    mut results: Consumer,
    expected: usize,
    answered_count: Arc<AtomicUsize>,
) -> Timeline {
    let mut timeline = Timeline {
        published: Vec::new(),
        answered: vec![None; expected],
        successes: 0,
        errors: 0,
        duplicates: 0,
    };
    let mut answered = 0;
    while answered < expected {
        let Some(Ok(delivery)) = results.next().await else {
            break;
        };
        let arrived = Instant::now();
        let Ok(result) = serde_json::from_slice::<Value>(&delivery.data) else {
            continue;
        };
        let Some(index) = result["requestId"]
            .as_str()
            .and_then(|id| id.rsplit('-').next())
            .and_then(|index| index.parse::<usize>().ok())
            .filter(|index| *index < expected)
        else {
            continue;
        };
        if timeline.answered[index].is_some() {
            timeline.duplicates += 1;
            continue;
        }
        timeline.answered[index] = Some(arrived);
        if result["status"]["level"] == "Success" {
            timeline.successes += 1;
        } else {
            timeline.errors += 1;
        }
        answered += 1;
        answered_count.store(answered, Ordering::Relaxed);
    }
    timeline
}

fn report(
    kind: RunKind,
    timeline: &Timeline,
    window_start: Instant,
    memory: Memory,
    dead_letters: u32,
    okta: Option<OktaFigures>,
) -> RunReport {
    let mut latencies: Vec<Duration> = timeline
        .published
        .iter()
        .zip(&timeline.answered)
        .filter_map(|(sent, arrived)| Some(arrived.as_ref()?.saturating_duration_since((*sent)?)))
        .collect();
    latencies.sort();
    let millis = |quantile| {
        percentile(&latencies, quantile).map_or(0.0, |latency| latency.as_secs_f64() * 1000.0)
    };
    let last = timeline
        .answered
        .iter()
        .flatten()
        .max()
        .copied()
        .unwrap_or(window_start);
    let seconds = last.saturating_duration_since(window_start).as_secs_f64();
    let answered = timeline.successes + timeline.errors;
    let results_per_minute = per_minute(timeline, window_start, last);
    let whole: Vec<_> = results_per_minute
        .iter()
        .filter(|minute| minute.whole)
        .collect();
    let sustained_per_second = (!whole.is_empty()).then(|| {
        whole.iter().map(|minute| minute.results).sum::<usize>() as f64 / (60 * whole.len()) as f64
    });
    RunReport {
        run: kind,
        requests: timeline.answered.len(),
        seconds,
        requests_per_second: if seconds > 0.0 {
            answered as f64 / seconds
        } else {
            0.0
        },
        latency_ms: Latency {
            p50: millis(0.50),
            p95: millis(0.95),
            p99: millis(0.99),
            max: millis(1.0),
        },
        peak_rss_kib: memory.peak_kib,
        cpu_seconds: memory.cpu.as_secs_f64(),
        cpu_ms_per_request: memory.cpu.as_secs_f64() * 1000.0
            / timeline.answered.len().max(1) as f64,
        rss_while_draining_kib: memory.while_draining,
        successes: timeline.successes,
        errors: timeline.errors,
        duplicate_results: timeline.duplicates,
        dead_letters,
        okta,
        results_per_minute,
        sustained_per_second,
    }
}

/// Counts the results per clock minute between `start` and `last`.
fn per_minute(timeline: &Timeline, start: Instant, last: Instant) -> Vec<MinuteCount> {
    let (now, clock) = (Instant::now(), SystemTime::now());
    let epoch_secs = |instant: Instant| {
        (clock - now.saturating_duration_since(instant))
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs())
    };
    let (first_minute, last_minute) = (epoch_secs(start) / 60, epoch_secs(last) / 60);
    let mut counts = vec![0; (last_minute - first_minute + 1) as usize];
    for arrived in timeline.answered.iter().flatten() {
        let minute = (epoch_secs(*arrived) / 60).clamp(first_minute, last_minute);
        counts[(minute - first_minute) as usize] += 1;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(offset, results)| {
            let minute = first_minute + offset as u64;
            MinuteCount {
                minute: minute * 60,
                results,
                whole: minute > first_minute && minute < last_minute,
            }
        })
        .collect()
}

fn join(steps: &[u32]) -> String {
    steps
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The measured child processes; each is sent SIGTERM when stopped.
#[derive(Default)]
struct Processes {
    children: Vec<(Child, PathBuf)>,
}

impl Processes {
    fn spawn(&mut self, mut command: Command, log_path: &Path) -> Result<(), String> {
        let log = std::fs::File::create(log_path)
            .map_err(|error| format!("cannot create {}: {error}", log_path.display()))?;
        let stderr = log.try_clone().map_err(|error| error.to_string())?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(|error| format!("cannot start {command:?}: {error}"))?;
        self.children.push((child, log_path.to_owned()));
        Ok(())
    }

    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(|(child, _)| child.id()).collect()
    }

    /// Fails when a process has exited.
    fn check_running(&mut self) -> Result<(), String> {
        for (child, log) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "process {} exited early ({status}); its log is {}",
                    child.id(),
                    log.display()
                ));
            }
        }
        Ok(())
    }

    /// Sends SIGTERM to every process and waits for them to exit, killing those that do not.
    fn stop(&mut self) {
        for (child, _) in &self.children {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        for (child, _) in &mut self.children {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        self.children.clear();
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Memory of the measured processes.
#[derive(Debug, Default)]
struct Memory {
    peak_kib: u64,
    /// CPU time of the processes when the sampler stopped.
    cpu: Duration,
    while_draining: Vec<(u8, u64)>,
}

/// Reads the processes' memory every [`SAMPLE_EVERY`] until stopped.
struct Sampler {
    pids: tokio::sync::watch::Sender<Vec<u32>>,
    task: tokio::task::JoinHandle<Memory>,
}

impl Sampler {
    fn start(answered: Arc<AtomicUsize>, expected: usize) -> Self {
        let (sender, mut receiver) = tokio::sync::watch::channel(Vec::new());
        let task = tokio::spawn(async move {
            const MARKS: [u8; 6] = [10, 25, 50, 75, 90, 100];
            let mut memory = Memory::default();
            let mut next_mark = 0;
            loop {
                let pids = receiver.borrow_and_update().clone();
                let readings: Vec<_> = pids.iter().filter_map(|pid| rss_of(*pid)).collect();
                let current = readings
                    .iter()
                    .map(|rss| rss.current_kib)
                    .max()
                    .unwrap_or(0);
                let peak = readings.iter().map(|rss| rss.peak_kib).max().unwrap_or(0);
                memory.peak_kib = memory.peak_kib.max(peak);
                let done = answered.load(Ordering::Relaxed) * 100 / expected.max(1);
                while next_mark < MARKS.len()
                    && done >= usize::from(MARKS[next_mark])
                    && current > 0
                {
                    memory.while_draining.push((MARKS[next_mark], current));
                    next_mark += 1;
                }
                tokio::select! {
                    () = tokio::time::sleep(SAMPLE_EVERY) => {}
                    changed = receiver.changed() => if changed.is_err() { return memory; }
                }
            }
        });
        Self { pids: sender, task }
    }

    /// Starts reading the memory of `pids`.
    fn watch(&self, pids: Vec<u32>) {
        let _ = self.pids.send(pids);
    }

    /// Takes a last reading and returns what was measured.
    async fn stop(self) -> Memory {
        let Sampler { pids, task } = self;
        let final_pids = pids.borrow().clone();
        drop(pids);
        let mut memory = task.await.unwrap_or_default();
        let readings: Vec<_> = final_pids.iter().filter_map(|pid| rss_of(*pid)).collect();
        memory.cpu = final_pids.iter().filter_map(|pid| cpu_time_of(*pid)).sum();
        if let Some(peak) = readings.iter().map(|rss| rss.peak_kib).max() {
            memory.peak_kib = memory.peak_kib.max(peak);
        }
        let complete = memory.while_draining.last().map(|(mark, _)| *mark) == Some(100);
        if let (false, Some(current)) = (complete, readings.iter().map(|rss| rss.current_kib).max())
        {
            memory.while_draining.push((100, current));
        }
        memory
    }
}

fn print_report(report: &Report) {
    let limit = match report.rate_limit_per_minute {
        0 => "no rate limit".to_owned(),
        limit => format!("{limit} calls/min per bucket"),
    };
    println!(
        "{} requests, concurrency {} (Okta calls {}), {} process(es), okta-sim latency {} ms, {limit}, {} queue{}{}{}",
        report.requests,
        report.concurrency,
        report.okta_concurrency,
        report.workers,
        report.latency_ms,
        report.queue_type,
        if report.group_assignment { ", group assignment" } else { "" },
        if report.preload { ", published before the start" } else { ", published while running" },
        report.publish_rate.map(|rate| format!(" at {rate}/s")).unwrap_or_default(),
    );
    println!(
        "{:<9} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>10} {:>7} {:>6}",
        "run",
        "answered",
        "seconds",
        "req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "peak MiB",
        "Okta",
        "429s"
    );
    for run in &report.runs {
        let (calls, limited) = match &run.okta {
            Some(okta) => (okta.calls.to_string(), okta.rate_limited.to_string()),
            None => ("-".to_owned(), "-".to_owned()),
        };
        println!(
            "{:<9} {:>8} {:>8.2} {:>9.1} {:>8.1} {:>8.1} {:>8.1} {:>10.1} {:>7} {:>6}",
            run.run.as_str(),
            run.successes + run.errors,
            run.seconds,
            run.requests_per_second,
            run.latency_ms.p50,
            run.latency_ms.p95,
            run.latency_ms.p99,
            mib(run.peak_rss_kib),
            calls,
            limited,
        );
    }
    for run in &report.runs {
        let profile: Vec<String> = run.while_draining_text().into_iter().collect();
        println!(
            "{} RSS while draining (MiB at % of results): {}",
            run.run.as_str(),
            profile.join(" ")
        );
        println!(
            "{} CPU: {:.2} s in all, {:.3} ms per request",
            run.run.as_str(),
            run.cpu_seconds,
            run.cpu_ms_per_request
        );
        println!(
            "{} outcome: {} success, {} error, {} duplicate result(s), {} dead letter(s)",
            run.run.as_str(),
            run.successes,
            run.errors,
            run.duplicate_results,
            run.dead_letters
        );
        if let Some(sustained) = run.sustained_per_second {
            let counts: Vec<String> = run
                .results_per_minute
                .iter()
                .map(|minute| format!("{}{}", minute.results, if minute.whole { "" } else { "*" }))
                .collect();
            println!(
                "{} results per clock minute (* = partial): {}; sustained over whole minutes: {sustained:.2}/s",
                run.run.as_str(),
                counts.join(" ")
            );
        }
        if let Some(okta) = &run.okta {
            let share = if okta.calls > 0 {
                okta.rate_limited as f64 * 100.0 / okta.calls as f64
            } else {
                0.0
            };
            println!(
                "{} Okta calls per request: {:.2}; answered 429: {} ({share:.2}%)",
                run.run.as_str(),
                okta.calls_per_request,
                okta.rate_limited
            );
        }
    }
    if let Some(ratio) = report.worker_to_baseline {
        println!(
            "worker throughput / baseline throughput: {:.1}%",
            ratio * 100.0
        );
    }
}

impl RunReport {
    fn while_draining_text(&self) -> Vec<String> {
        self.rss_while_draining_kib
            .iter()
            .map(|(percent, kib)| format!("{percent}%={:.1}", mib(*kib)))
            .collect()
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

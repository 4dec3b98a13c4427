//! The `okta-dcr-worker` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tracing::error;

use crate::secret::Secret;
use crate::settings::{self, BrokerSettings, LogFormat, Settings};

/// Provisions OAuth 2.0 clients in Okta for Amplify Engage credential requests taken from
/// RabbitMQ. Settings come from environment variables; see the README.
#[derive(Debug, Parser)]
#[command(name = "okta-dcr-worker", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the worker: declare the topology, consume requests, publish results, until
    /// SIGTERM or SIGINT.
    Run {
        /// Requests processed at once and the consumer prefetch; overrides OKTA_DCR_CONCURRENCY.
        #[arg(long)]
        concurrency: Option<u16>,
    },
    /// Validate request messages and publish them with publisher confirms. Reads a JSON
    /// object, a JSON array or NDJSON from each FILE, or from stdin when FILE is `-` or absent.
    Publish {
        /// Files or folders (their `*.json` and `*.ndjson` files) to read; `-` is stdin.
        files: Vec<PathBuf>,
    },
    /// Run okta-sim, an in-memory Okta stand-in, until Ctrl-C.
    OktaSim {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// API token to accept (SSWS); generated and printed when absent. An empty token is
        /// rejected.
        #[arg(long, env = "OKTA_SIM_API_TOKEN", hide_env_values = true, value_parser = parse_sim_token)]
        token: Option<String>,
        /// Delay added to every Okta response, in milliseconds.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Okta calls allowed per minute and route bucket; 0 means no limit.
        #[arg(long, default_value_t = 0)]
        rate_limit_per_minute: u32,
        /// File to write the API token to (mode 0600), for a worker that reads it through
        /// OKTA_API_TOKEN_FILE; the token is then not printed.
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Check a running worker's readiness through its admin endpoint: exit 0 when `/readyz`
    /// answers 200, 1 otherwise. Made for container health checks.
    Health {
        /// Admin endpoint address; defaults to OKTA_DCR_ADMIN_ADDR or 127.0.0.1:9090.
        #[arg(long, env = "OKTA_DCR_ADMIN_ADDR", default_value = crate::settings::DEFAULT_ADMIN_ADDR)]
        addr: SocketAddr,
    },
    /// Run the whole flow on this machine's RabbitMQ with an embedded okta-sim: start the
    /// worker, publish the request files, print their results, clean up.
    Demo {
        /// Request files to publish, or folders of `*.json` files.
        #[arg(default_value = "examples")]
        paths: Vec<PathBuf>,
    },
    /// List or export the requests in the dead-letter queue, leaving the queue unchanged.
    DeadLetters {
        #[command(subcommand)]
        command: crate::dead_letters::DeadLettersCommand,
    },
    /// Move dead-lettered requests back to the request exchange, with publisher confirms.
    Replay(crate::dead_letters::ReplayArgs),
    /// Measure throughput, latency and memory of the worker against an embedded okta-sim on
    /// this machine's RabbitMQ, next to a baseline of the broker path alone.
    Bench(crate::bench::BenchArgs),
    /// The benchmark's baseline consumer: consume requests, publish a result for each with
    /// confirm and `mandatory`, ack; no Okta call. Started by `bench`.
    #[command(hide = true)]
    BenchBaseline {
        /// Requests processed at once and the consumer prefetch.
        #[arg(long, default_value_t = 16)]
        concurrency: u16,
        /// Time to wait per request in place of the Okta call, in milliseconds.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
    },
}

/// Parses the command line, runs the command and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = init_logging() {
        eprintln!("okta-dcr-worker: {error}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("okta-dcr-worker: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run_command(cli.command))
}

async fn run_command(command: Command) -> ExitCode {
    match command {
        Command::Run { concurrency } => run_worker(concurrency).await,
        Command::Publish { files } => {
            let settings = match BrokerSettings::from_env() {
                Ok(settings) => settings,
                Err(error) => return setting_failed(error),
            };
            crate::publish::run(&settings, &files).await
        }
        Command::OktaSim {
            listen,
            token,
            latency_ms,
            rate_limit_per_minute,
            token_file,
        } => {
            let config = crate::sim::SimConfig {
                api_token: token.map(Secret::new),
                latency: Duration::from_millis(latency_ms),
                rate_limit_per_minute: (rate_limit_per_minute > 0).then_some(rate_limit_per_minute),
                ..crate::sim::SimConfig::default()
            };
            let served = match token_file {
                Some(path) => serve_sim_with_token_file(listen, config, &path).await,
                None => crate::sim::serve_forever(listen, config).await,
            };
            match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("okta-dcr-worker: okta-sim on {listen} failed: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Demo { paths } => crate::demo::run(&paths).await,
        Command::Health { addr } => check_health(addr).await,
        Command::DeadLetters { command } => match BrokerSettings::from_env() {
            Ok(settings) => crate::dead_letters::run_dead_letters(&settings, command).await,
            Err(error) => setting_failed(error),
        },
        Command::Replay(args) => match BrokerSettings::from_env() {
            Ok(settings) => crate::dead_letters::run_replay(&settings, args).await,
            Err(error) => setting_failed(error),
        },
        Command::Bench(args) => crate::bench::run(args).await,
        Command::BenchBaseline {
            concurrency,
            latency_ms,
        } => run_baseline(concurrency.max(1), Duration::from_millis(latency_ms)).await,
    }
}

async fn run_worker(concurrency: Option<u16>) -> ExitCode {
    let mut settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => return setting_failed(error),
    };
    if let Some(concurrency) = concurrency {
        if concurrency == 0 {
            eprintln!("okta-dcr-worker: invalid --concurrency 0: must be greater than zero");
            return ExitCode::from(2);
        }
        settings.worker.concurrency = concurrency;
    }
    match crate::worker::run(settings, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            error!(cause = %error, "Worker stopped.");
            eprintln!("okta-dcr-worker: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run_baseline(concurrency: u16, latency: Duration) -> ExitCode {
    let settings = match BrokerSettings::from_env() {
        Ok(settings) => settings,
        Err(error) => return setting_failed(error),
    };
    match crate::bench::serve_baseline(&settings, concurrency, latency, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("okta-dcr-worker bench-baseline: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_sim_with_token_file(
    listen: SocketAddr,
    config: crate::sim::SimConfig,
    path: &std::path::Path,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let simulator = crate::sim::start(listener, config).await?;
    write_private_file(path, simulator.api_token().expose())?;
    println!(
        "okta-sim base_url={} api_token_file={}",
        simulator.base_url(),
        path.display()
    );
    shutdown_signal().await;
    simulator.shutdown().await;
    Ok(())
}

/// Rejects an empty or blank okta-sim token, which would make the token file empty and the
/// `Authorization: SSWS` header carry no secret. clap exits with status 2 on the error.
fn parse_sim_token(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err(
            "the API token is empty. Set --token or OKTA_SIM_API_TOKEN to a \
             non-empty value, or unset both to have a token generated"
                .to_owned(),
        );
    }
    Ok(value.to_owned())
}

fn write_private_file(path: &std::path::Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(content.as_bytes())
}

async fn check_health(addr: SocketAddr) -> ExitCode {
    let url = format!("http://{addr}/readyz");
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            eprintln!("okta-dcr-worker health: {error}");
            return ExitCode::FAILURE;
        }
    };
    match client.get(&url).send().await {
        Ok(response) => {
            let ready = response.status().is_success();
            println!("{}", response.text().await.unwrap_or_default());
            if ready {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("okta-dcr-worker health: {url} failed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn setting_failed(error: settings::SettingsError) -> ExitCode {
    eprintln!("okta-dcr-worker: {error}");
    ExitCode::from(2)
}

/// Resolves on the first SIGTERM or SIGINT, and exits the process at once on the second.
pub async fn shutdown_signal() {
    wait_for_signal().await;
    tokio::spawn(async {
        wait_for_signal().await;
        eprintln!("okta-dcr-worker: second signal; exiting without waiting for in-flight requests");
        std::process::exit(130);
    });
}

async fn wait_for_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

fn init_logging() -> Result<(), settings::SettingsError> {
    use tracing_subscriber::EnvFilter;
    // lapin logs every message the broker returns at WARN, body included, and a returned result
    // carries a client secret: that target is always off. Without RUST_LOG, lapin's own
    // channel errors are off too, because the worker logs each failure it acts on itself.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,lapin=off"))
        .add_directive(
            "lapin::returned_messages=off"
                .parse()
                .expect("a constant directive parses"),
        );
    // Colours only on a terminal: a file or a log collector would get the escape codes as text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match settings::log_format_from_env()? {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_empty_token_rejected() {
        for token in ["", "   "] {
            let parsed = Cli::try_parse_from(["okta-dcr-worker", "okta-sim", "--token", token]);
            let error = parsed.expect_err("an empty token must be rejected");
            assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation);
            assert_eq!(error.exit_code(), 2);
            let message = error.to_string();
            assert!(message.contains("the API token is empty"), "{message}");
            assert!(message.contains("OKTA_SIM_API_TOKEN"), "{message}");
        }
    }

    #[test]
    fn sim_token_accepted() {
        let parsed = Cli::try_parse_from(["okta-dcr-worker", "okta-sim", "--token", "dev-token"]);
        let cli = parsed.expect("a non-empty token is accepted");
        let Command::OktaSim { token, .. } = cli.command else {
            panic!("parsed {:?}", cli.command);
        };
        assert_eq!(token.as_deref(), Some("dev-token"));
    }
}

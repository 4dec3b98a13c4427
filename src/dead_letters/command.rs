//! Command-line arguments of `dead-letters` and `replay`, and printing their results.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::duration::parse_duration;
use super::export::export;
use super::replay::{replay, ReplayOptions, DEFAULT_MAX_REPLAYS};
use super::summary::{list, ListOptions};
use crate::settings::BrokerSettings;

/// `dead-letters` subcommands.
#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// Show the dead-lettered requests as a table (or NDJSON), oldest first, without removing
    /// or reordering them.
    List {
        /// One JSON object per line instead of a table; the count goes to stderr.
        #[arg(long)]
        json: bool,
        /// Show at most N requests from the head of the queue.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
    },
    /// Write every dead-lettered request (body, properties, headers) as NDJSON to FILE (`-`
    /// is stdout), without removing or reordering them.
    Export {
        /// File to write, replaced if it exists; `-` is stdout.
        file: PathBuf,
    },
}

/// Arguments of `replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Replay at most N requests.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    limit: Option<u32>,
    /// Replay only the request with this requestId.
    #[arg(long, value_name = "ID")]
    request_id: Option<String>,
    /// Replay only requests dead-lettered with this error code, e.g. okta_unavailable.
    /// Without it, requests whose code is not retryable (such as invalid_json) are skipped.
    /// Name their code here to replay them anyway.
    #[arg(long, value_name = "CODE")]
    code: Option<String>,
    /// Replay only requests dead-lettered at least this long ago: 30s, 15m, 2h, 1d.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    older_than: Option<Duration>,
    /// Leave requests that were already replayed this many times.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_REPLAYS)]
    max_replays: u32,
    /// Print what would be replayed and change nothing.
    #[arg(long)]
    dry_run: bool,
}

impl From<ReplayArgs> for ReplayOptions {
    fn from(args: ReplayArgs) -> Self {
        Self {
            limit: args.limit,
            request_id: args.request_id,
            code: args.code,
            older_than: args.older_than,
            max_replays: args.max_replays,
            dry_run: args.dry_run,
        }
    }
}

/// Runs `dead-letters list` or `dead-letters export` and returns the exit code: 0 on
/// success, 1 when the broker or the file failed.
pub async fn run_dead_letters(settings: &BrokerSettings, command: DeadLettersCommand) -> ExitCode {
    match command {
        DeadLettersCommand::List { json, limit } => run_list(settings, json, limit).await,
        DeadLettersCommand::Export { file } => run_export(settings, &file).await,
    }
}

/// Runs `replay`, prints one line per request considered and a summary, and returns the exit
/// code: 1 when any request failed or the replay stopped early.
pub async fn run_replay(settings: &BrokerSettings, args: ReplayArgs) -> ExitCode {
    match replay(settings, &args.into()).await {
        Ok(report) => {
            for line in &report.lines {
                println!("{line}");
            }
            println!("{}", report.summary);
            if report.succeeded() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => failed("replay", &error),
    }
}

async fn run_list(settings: &BrokerSettings, json: bool, limit: Option<u32>) -> ExitCode {
    let options = ListOptions { json, limit };
    match list(settings, &options).await {
        Ok(listing) => {
            for line in &listing.lines {
                println!("{line}");
            }
            if json {
                eprintln!("{}", listing.summary);
            } else {
                println!("{}", listing.summary);
            }
            ExitCode::SUCCESS
        }
        Err(error) => failed("dead-letters list", &error),
    }
}

async fn run_export(settings: &BrokerSettings, file: &Path) -> ExitCode {
    let mut output: Box<dyn Write> = if file == Path::new("-") {
        Box::new(std::io::stdout().lock())
    } else {
        match std::fs::File::create(file) {
            Ok(created) => Box::new(std::io::BufWriter::new(created)),
            Err(error) => {
                eprintln!(
                    "okta-dcr-worker dead-letters export: cannot create {}: {error}",
                    file.display()
                );
                return ExitCode::FAILURE;
            }
        }
    };
    match export(settings, &mut output).await {
        Ok(report) => {
            let target = if file.as_os_str() == "-" {
                "standard output".to_owned()
            } else {
                file.display().to_string()
            };
            eprintln!(
                "{} dead-lettered requests exported to {target}",
                report.exported
            );
            ExitCode::SUCCESS
        }
        Err(error) => failed("dead-letters export", &error),
    }
}

fn failed(command: &str, error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("okta-dcr-worker {command}: {error}");
    ExitCode::FAILURE
}

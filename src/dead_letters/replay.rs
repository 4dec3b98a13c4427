//! `replay`: move dead-lettered requests back to the request exchange.

use std::time::Duration;

use lapin::Connection;
use time::OffsetDateTime;
use tracing::{info, warn};

use super::reader::{self, DeadLetter, Reader};
use super::summary::Summary;
use super::DeadLetterError;
use crate::broker::{self, headers, ConfirmedPublisher};
use crate::contract::codes;
use crate::settings::BrokerSettings;

/// Replays after which a request is left in the dead-letter queue unless `--max-replays` is
/// raised, so that a request that fails every time does not loop for ever.
pub const DEFAULT_MAX_REPLAYS: u32 = 5;

/// Filters and limits of `replay`. Every filter that is set must match.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Stop after this many requests were replayed (or would be, with `dry_run`).
    pub limit: Option<u32>,
    /// Only the request with this `requestId` (or AMQP `message_id`).
    pub request_id: Option<String>,
    /// Only requests with this `okta-dcr-error-code`. When it is `None`, requests whose code
    /// is not retryable are skipped, because a replay would fail the same way.
    pub code: Option<String>,
    /// Only requests dead-lettered at least this long ago; a request without a readable
    /// `okta-dcr-dead-lettered-at` does not match.
    pub older_than: Option<Duration>,
    /// Requests already replayed this many times are left where they are.
    pub max_replays: u32,
    /// Report what would be replayed and change nothing.
    pub dry_run: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            limit: None,
            request_id: None,
            code: None,
            older_than: None,
            max_replays: DEFAULT_MAX_REPLAYS,
            dry_run: false,
        }
    }
}

/// Outcome of `replay`, with one line per request that matched the filters.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    pub replayed: usize,
    /// Requests `dry_run` would have replayed.
    pub would_replay: usize,
    /// Requests that matched but were not replayed (`max_replays` reached).
    pub left: usize,
    /// Requests that matched but were not replayed because their code is not retryable and
    /// no `code` filter asked for it.
    pub skipped: usize,
    /// Requests whose republish or acknowledgement failed; they stay in the dead-letter queue.
    pub failed: usize,
    /// Requests read that did not match the filters; they stay where they were.
    pub not_matching: usize,
    /// True when `limit` stopped the replay before the end of the queue.
    pub limit_reached: bool,
    /// Reason the replay stopped early after a broker failure, if it did.
    pub stopped: Option<String>,
    /// `replayed`, `would replay`, `left`, `skipped` and `failed` lines, for stdout.
    pub lines: Vec<String>,
    /// The closing count line.
    pub summary: String,
}

impl ReplayReport {
    /// True when nothing failed and the replay ran to its end.
    pub fn succeeded(&self) -> bool {
        self.failed == 0 && self.stopped.is_none()
    }
}

/// Replays the dead-lettered requests that match `options`. Setup failures (no broker, no
/// queue) are errors; failures while replaying are counted in the report.
pub async fn replay(
    settings: &BrokerSettings,
    options: &ReplayOptions,
) -> Result<ReplayReport, DeadLetterError> {
    let connection = broker::connect(&settings.amqp_url, "replay")
        .await
        .map_err(DeadLetterError::Connect)?;
    let outcome = replay_on(&connection, settings, options).await;
    let _ = connection.close(200, "replayed".into()).await;
    outcome
}

async fn replay_on(
    connection: &Connection,
    settings: &BrokerSettings,
    options: &ReplayOptions,
) -> Result<ReplayReport, DeadLetterError> {
    let topology = &settings.topology;
    if !options.dry_run {
        reader::check_exchange(connection, &topology.request_exchange).await?;
    }
    let publisher = ConfirmedPublisher::open(connection, settings.confirm_timeout)
        .await
        .map_err(|source| reader::broker("opening the publishing channel", source))?;
    let (mut reader, _) = Reader::open(connection, &topology.dead_letter_queue, None).await?;
    let mut run = Run {
        settings,
        options,
        publisher: &publisher,
        now: OffsetDateTime::now_utc(),
        report: ReplayReport::default(),
    };
    let read = run.read_all(&mut reader).await;
    let mut report = run.report;
    if let Err(error) = read {
        report.stopped = Some(error.to_string());
    }
    // Requeues what matched nothing, what was left and what failed, in its original order.
    if let Err(error) = reader.release().await {
        report.stopped.get_or_insert(error.to_string());
    }
    let _ = publisher.channel().close(200, "replayed".into()).await;
    report.summary = summary_line(&report, options);
    Ok(report)
}

/// State of one replay.
struct Run<'a> {
    settings: &'a BrokerSettings,
    options: &'a ReplayOptions,
    publisher: &'a ConfirmedPublisher,
    now: OffsetDateTime,
    report: ReplayReport,
}

impl Run<'_> {
    /// Considers each message until the queue (as it was at the start) is read or the limit
    /// is reached.
    async fn read_all(&mut self, reader: &mut Reader) -> Result<(), DeadLetterError> {
        while !self.limit_reached() {
            let Some(message) = reader.next().await? else {
                return Ok(());
            };
            self.consider(reader, &message).await?;
        }
        self.report.limit_reached = true;
        Ok(())
    }

    async fn consider(
        &mut self,
        reader: &mut Reader,
        message: &DeadLetter,
    ) -> Result<(), DeadLetterError> {
        let summary = Summary::of(message, self.now);
        if !self.matches(&summary) {
            self.report.not_matching += 1;
            return Ok(());
        }
        if let Some(reason) = skip_reason(self.options, &summary) {
            self.report.skipped += 1;
            self.line("skipped", &summary, Some(&reason));
            return Ok(());
        }
        let replays = summary.replays.unwrap_or(0);
        if replays >= i64::from(self.options.max_replays) {
            self.report.left += 1;
            let reason = format!("replayed {replays} times already");
            self.line("left", &summary, Some(&reason));
            return Ok(());
        }
        if self.options.dry_run {
            self.report.would_replay += 1;
            self.line("would replay", &summary, None);
            return Ok(());
        }
        self.republish(reader, message, &summary).await
    }

    fn matches(&self, summary: &Summary) -> bool {
        let options = self.options;
        let request_id = options
            .request_id
            .as_ref()
            .is_none_or(|id| summary.request_id.as_ref() == Some(id));
        let code = options
            .code
            .as_ref()
            .is_none_or(|code| summary.code.as_ref() == Some(code));
        let old_enough = options.older_than.is_none_or(|older_than| {
            summary
                .age_seconds
                .is_some_and(|age| age >= older_than.as_secs())
        });
        request_id && code && old_enough
    }

    /// Publishes the request to the request exchange and acknowledges the dead-letter copy
    /// once the broker confirmed it. A failed publish leaves the copy unacknowledged, so that
    /// `release` requeues it at its place. Requeueing it here would make `basic.get` return it
    /// again in this run.
    async fn republish(
        &mut self,
        reader: &mut Reader,
        message: &DeadLetter,
        summary: &Summary,
    ) -> Result<(), DeadLetterError> {
        let topology = &self.settings.topology;
        let properties = message
            .properties
            .clone()
            .with_headers(headers::for_replay(message.headers()));
        let published = self
            .publisher
            .publish(
                &topology.request_exchange,
                &topology.request_queue,
                &message.body,
                properties,
            )
            .await;
        if let Err(error) = published {
            warn!(request_id = summary.request_id_or_dash(), cause = %error, "Replay failed.");
            self.report.failed += 1;
            let reason = format!("{error}; it stays in the dead-letter queue");
            self.line("failed", summary, Some(&reason));
            return Ok(());
        }
        if let Err(error) = reader.ack(message.delivery_tag).await {
            self.report.failed += 1;
            let reason = "republished, but the dead-letter copy could not be acknowledged; \
                          it stays there as a duplicate";
            self.line("failed", summary, Some(reason));
            return Err(error);
        }
        info!(
            request_id = summary.request_id_or_dash(),
            code = summary.code_or_dash(),
            "Replayed."
        );
        self.report.replayed += 1;
        self.line("replayed", summary, None);
        Ok(())
    }

    fn limit_reached(&self) -> bool {
        let done = self.report.replayed + self.report.would_replay;
        self.options
            .limit
            .is_some_and(|limit| done >= limit as usize)
    }

    fn line(&mut self, outcome: &str, summary: &Summary, reason: Option<&str>) {
        let mut line = format!(
            "{outcome:<12}  requestId {}  code {}",
            summary.request_id_or_dash(),
            summary.code_or_dash()
        );
        if let Some(reason) = reason {
            line.push_str(": ");
            line.push_str(reason);
        }
        self.report.lines.push(line);
    }
}

/// Returns the reason to skip a matching request, or `None` to replay it. Without a `code`
/// filter, a request whose code is not retryable is skipped. A request without a code
/// (dead-lettered by the broker itself, such as by a delivery limit) is replayed.
fn skip_reason(options: &ReplayOptions, summary: &Summary) -> Option<String> {
    if options.code.is_some() {
        return None;
    }
    let code = summary.code.as_deref()?;
    if codes::is_retryable(code) {
        return None;
    }
    Some(format!(
        "not retryable, so a replay would fail again (pass --code {code} to replay it anyway)"
    ))
}

fn summary_line(report: &ReplayReport, options: &ReplayOptions) -> String {
    let mut line = format!(
        "{} replayed, {} left, {} failed",
        report.replayed, report.left, report.failed
    );
    if options.dry_run {
        line.push_str(&format!(
            ", {} would replay (dry run: nothing changed)",
            report.would_replay
        ));
    }
    if report.skipped > 0 {
        line.push_str(&format!(
            "; {} skipped because their code is not retryable (pass --code CODE to replay them)",
            report.skipped
        ));
    }
    if report.not_matching > 0 {
        line.push_str(&format!(
            "; {} did not match the filters",
            report.not_matching
        ));
    }
    if report.limit_reached {
        line.push_str("; stopped at --limit, later requests were not read");
    }
    if let Some(reason) = &report.stopped {
        line.push_str(&format!("; stopped early: {reason}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(code: Option<&str>) -> Summary {
        Summary {
            request_id: Some("r1".to_owned()),
            credential_id: None,
            operation: None,
            code: code.map(str::to_owned),
            reason: None,
            attempts: None,
            replays: None,
            dead_lettered_at: None,
            age: None,
            age_seconds: None,
        }
    }

    #[test]
    fn default_skips_permanent_code() {
        let reason = skip_reason(&ReplayOptions::default(), &summary(Some("invalid_json")));
        let reason = reason.expect("invalid_json is skipped");
        assert!(reason.contains("not retryable"), "{reason}");
        assert!(reason.contains("--code invalid_json"), "{reason}");
    }

    #[test]
    fn default_skips_unknown_code() {
        let skipped = skip_reason(&ReplayOptions::default(), &summary(Some("no_such_code")));
        assert!(skipped.is_some());
    }

    #[test]
    fn default_replays_retryable_code() {
        let skipped = skip_reason(
            &ReplayOptions::default(),
            &summary(Some("okta_unavailable")),
        );
        assert_eq!(skipped, None);
    }

    #[test]
    fn default_replays_without_code() {
        assert_eq!(skip_reason(&ReplayOptions::default(), &summary(None)), None);
    }

    #[test]
    fn explicit_code_replays_permanent_code() {
        let options = ReplayOptions {
            code: Some("invalid_json".to_owned()),
            ..ReplayOptions::default()
        };
        assert_eq!(skip_reason(&options, &summary(Some("invalid_json"))), None);
    }

    #[test]
    fn summary_counts_skipped() {
        let report = ReplayReport {
            replayed: 2,
            skipped: 3,
            ..ReplayReport::default()
        };
        let line = summary_line(&report, &ReplayOptions::default());
        assert_eq!(
            line,
            "2 replayed, 0 left, 0 failed; 3 skipped because their code is not retryable \
             (pass --code CODE to replay them)"
        );
    }
}

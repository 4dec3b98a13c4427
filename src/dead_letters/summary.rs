//! `dead-letters list`: one line per dead-lettered request, as a table or NDJSON.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::duration::format_age;
use super::reader::{DeadLetter, Reader};
use super::DeadLetterError;
use crate::broker::{self, headers};
use crate::settings::BrokerSettings;

/// Maximum width of the reason in the table, in characters; NDJSON carries the whole reason.
const REASON_WIDTH: usize = 48;

/// Maximum width of the request id and credential id columns, in characters. It fits a UUID
/// (36 characters) with a short prefix. Longer ids are shortened in the table only, so that one
/// of them cannot push the other columns off the screen. NDJSON and `export` carry them whole.
const ID_WIDTH: usize = 40;

/// Options of `dead-letters list`.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// One JSON object per line instead of a table.
    pub json: bool,
    /// Read at most this many messages from the head of the queue.
    pub limit: Option<u32>,
}

/// Result of `dead-letters list`.
#[derive(Debug, Clone)]
pub struct Listing {
    pub entries: Vec<Summary>,
    /// Ready messages in the queue when the listing started.
    pub queue_count: u32,
    /// The table rows (with a header row) or the NDJSON lines, for stdout.
    pub lines: Vec<String>,
    /// The count line; the command prints it to stderr in JSON mode, to keep stdout NDJSON.
    pub summary: String,
}

/// The fields of one dead-lettered request an operator looks at. Absent values are `None`
/// (`null` in JSON, `-` in the table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// `requestId` from the JSON body, else the AMQP `message_id`.
    pub request_id: Option<String>,
    /// The credential id (`id` in the body).
    #[serde(rename = "id")]
    pub credential_id: Option<String>,
    pub operation: Option<String>,
    /// `okta-dcr-error-code`.
    pub code: Option<String>,
    /// `okta-dcr-error-reason`.
    pub reason: Option<String>,
    /// `okta-dcr-attempts`.
    pub attempts: Option<i64>,
    /// `okta-dcr-replays`.
    pub replays: Option<i64>,
    /// `okta-dcr-dead-lettered-at`, as found (RFC 3339).
    pub dead_lettered_at: Option<String>,
    /// Time since `dead_lettered_at`, formatted like `2h05m`.
    pub age: Option<String>,
    /// Time since `dead_lettered_at`, in whole seconds.
    #[serde(skip)]
    pub age_seconds: Option<u64>,
}

impl Summary {
    /// Reads the summary of `message`, with ages counted up to `now`.
    pub fn of(message: &DeadLetter, now: OffsetDateTime) -> Self {
        let body = serde_json::from_slice::<Value>(&message.body).ok();
        let field = |name: &str| {
            body.as_ref()
                .and_then(|body| body.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let headers = message.headers();
        let dead_lettered_at = headers::text(headers, headers::DEAD_LETTERED_AT);
        let age = dead_lettered_at.as_deref().and_then(|at| age_at(at, now));
        Self {
            request_id: field("requestId").or_else(|| {
                message
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|id| id.to_string())
            }),
            credential_id: field("id"),
            operation: field("operation"),
            code: headers::text(headers, headers::ERROR_CODE),
            reason: headers::text(headers, headers::ERROR_REASON),
            attempts: headers::integer(headers, headers::ATTEMPTS),
            replays: headers::integer(headers, headers::REPLAYS),
            dead_lettered_at,
            age: age.map(format_age),
            age_seconds: age.map(|age| age.as_secs()),
        }
    }

    /// Returns the request id, or `-` when the message has none.
    pub fn request_id_or_dash(&self) -> &str {
        self.request_id.as_deref().unwrap_or("-")
    }

    /// Returns the error code, or `-` when the message has none.
    pub fn code_or_dash(&self) -> &str {
        self.code.as_deref().unwrap_or("-")
    }
}

/// Lists the dead-letter queue without changing it.
pub async fn list(
    settings: &BrokerSettings,
    options: &ListOptions,
) -> Result<Listing, DeadLetterError> {
    let connection = broker::connect(&settings.amqp_url, "dead-letters")
        .await
        .map_err(DeadLetterError::Connect)?;
    let queue = &settings.topology.dead_letter_queue;
    let (mut reader, queue_count) = Reader::open(&connection, queue, options.limit).await?;
    let now = OffsetDateTime::now_utc();
    let mut entries = Vec::new();
    let read = read_summaries(&mut reader, now, &mut entries).await;
    let released = reader.release().await;
    let _ = connection.close(200, "listed".into()).await;
    read?;
    released?;
    let lines = if options.json {
        entries.iter().map(json_line).collect()
    } else {
        table(&entries)
    };
    let summary = count_line(entries.len(), queue_count, queue);
    Ok(Listing {
        entries,
        queue_count,
        lines,
        summary,
    })
}

async fn read_summaries(
    reader: &mut Reader,
    now: OffsetDateTime,
    entries: &mut Vec<Summary>,
) -> Result<(), DeadLetterError> {
    while let Some(message) = reader.next().await? {
        entries.push(Summary::of(&message, now));
    }
    Ok(())
}

fn age_at(dead_lettered_at: &str, now: OffsetDateTime) -> Option<Duration> {
    let at = OffsetDateTime::parse(dead_lettered_at, &Rfc3339).ok()?;
    // A timestamp in the future (clock skew between hosts) counts as age zero.
    Some((now - at).try_into().unwrap_or(Duration::ZERO))
}

fn json_line(summary: &Summary) -> String {
    serde_json::to_string(summary).unwrap_or_else(|error| format!("{{\"error\":\"{error}\"}}"))
}

/// Formats the entries as a table with a header row and columns as wide as their contents.
fn table(entries: &[Summary]) -> Vec<String> {
    if entries.is_empty() {
        return Vec::new();
    }
    let header = [
        "REQUEST ID",
        "CREDENTIAL",
        "OPERATION",
        "CODE",
        "REASON",
        "ATTEMPTS",
        "REPLAYS",
        "AGE",
    ]
    .map(str::to_owned);
    let mut rows = vec![header.to_vec()];
    rows.extend(entries.iter().map(row));
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter().map(|row| pad(row, &widths)).collect()
}

fn row(summary: &Summary) -> Vec<String> {
    let text = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    let number = |value: Option<i64>| value.map_or_else(|| "-".to_owned(), |n| n.to_string());
    vec![
        shorten(summary.request_id_or_dash(), ID_WIDTH),
        shorten(summary.credential_id.as_deref().unwrap_or("-"), ID_WIDTH),
        text(&summary.operation),
        summary.code_or_dash().to_owned(),
        shorten(summary.reason.as_deref().unwrap_or("-"), REASON_WIDTH),
        number(summary.attempts),
        number(summary.replays),
        text(&summary.age),
    ]
}

fn pad(row: &[String], widths: &[usize]) -> String {
    let cells: Vec<String> = row
        .iter()
        .zip(widths)
        .map(|(cell, width)| format!("{cell:<width$}"))
        .collect();
    cells.join("  ").trim_end().to_owned()
}

/// Shortens `text` to `width` characters, ending with `…` when cut, on one line.
fn shorten(text: &str, width: usize) -> String {
    let one_line = text.replace(['\n', '\r', '\t'], " ");
    if one_line.chars().count() <= width {
        return one_line;
    }
    let kept: String = one_line.chars().take(width.saturating_sub(1)).collect();
    format!("{kept}…")
}

fn count_line(shown: usize, queue_count: u32, queue: &str) -> String {
    let noun = if queue_count == 1 {
        "request"
    } else {
        "requests"
    };
    if shown as u64 == u64::from(queue_count) {
        format!("{queue_count} dead-lettered {noun} in `{queue}`")
    } else {
        format!("{shown} of {queue_count} dead-lettered {noun} in `{queue}` shown")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::{AMQPValue, FieldTable, LongString};
    use lapin::BasicProperties;
    use serde_json::json;
    use time::macros::datetime;

    fn message(body: &str, headers: &[(&str, AMQPValue)]) -> DeadLetter {
        let mut table = FieldTable::default();
        for (name, value) in headers {
            table.insert((*name).into(), value.clone());
        }
        DeadLetter {
            delivery_tag: 1,
            exchange: "dead-letter".to_owned(),
            routing_key: "requests".to_owned(),
            properties: BasicProperties::default()
                .with_message_id("message-1".into())
                .with_headers(table),
            body: body.as_bytes().to_vec(),
        }
    }

    fn text(value: &str) -> AMQPValue {
        AMQPValue::LongString(LongString::from(value))
    }

    const NOW: OffsetDateTime = datetime!(2025-03-01 12:00:00 UTC);

    #[test]
    fn summary_reads_body_and_headers() {
        let message = message(
            r#"{"requestId":"r1","id":"cred-1","operation":"provision"}"#,
            &[
                (headers::ERROR_CODE, text("okta_unavailable")),
                (headers::ATTEMPTS, AMQPValue::LongLongInt(3)),
                (headers::REPLAYS, AMQPValue::LongLongInt(1)),
                (headers::DEAD_LETTERED_AT, text("2025-03-01T11:56:48Z")),
            ],
        );
        let summary = Summary::of(&message, NOW);
        assert_eq!(summary.request_id.as_deref(), Some("r1"));
        assert_eq!(summary.credential_id.as_deref(), Some("cred-1"));
        assert_eq!(summary.operation.as_deref(), Some("provision"));
        assert_eq!(summary.code.as_deref(), Some("okta_unavailable"));
        assert_eq!(summary.attempts, Some(3));
        assert_eq!(summary.replays, Some(1));
        assert_eq!(summary.age.as_deref(), Some("3m12s"));
    }

    #[test]
    fn summary_falls_back_to_message_id() {
        let summary = Summary::of(&message("not json", &[]), NOW);
        assert_eq!(summary.request_id.as_deref(), Some("message-1"));
    }

    #[test]
    fn summary_future_timestamp_is_zero_age() {
        let message = message(
            "{}",
            &[(headers::DEAD_LETTERED_AT, text("2025-03-01T12:05:00Z"))],
        );
        assert_eq!(Summary::of(&message, NOW).age.as_deref(), Some("0s"));
    }

    #[test]
    fn table_shortens_reason() {
        let long = "x".repeat(REASON_WIDTH + 10);
        let message = message("{}", &[(headers::ERROR_REASON, text(&long))]);
        let lines = table(&[Summary::of(&message, NOW)]);
        let shortened = format!("{}…", "x".repeat(REASON_WIDTH - 1));
        assert!(lines[1].contains(&shortened), "{}", lines[1]);
        assert!(!lines[1].contains(&long), "{}", lines[1]);
    }

    #[test]
    fn table_shortens_long_ids() {
        let request_id = "r".repeat(300);
        let credential_id = "c".repeat(300);
        let body = json!({ "requestId": request_id, "id": credential_id }).to_string();
        let entries = [Summary::of(&message(&body, &[]), NOW)];
        let lines = table(&entries);

        let shortened_request_id = format!("{}…", "r".repeat(ID_WIDTH - 1));
        let shortened_credential_id = format!("{}…", "c".repeat(ID_WIDTH - 1));
        assert!(lines[1].starts_with(&shortened_request_id), "{}", lines[1]);
        assert!(lines[1].contains(&shortened_credential_id), "{}", lines[1]);
        assert!(!lines[1].contains(&request_id), "{}", lines[1]);
        // The header's next column starts right after the capped request id column.
        assert_eq!(
            lines[0].find("CREDENTIAL"),
            Some(ID_WIDTH + 2),
            "{}",
            lines[0]
        );
        assert_eq!(
            lines[1].chars().position(|c| c == 'c'),
            Some(ID_WIDTH + 2),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn json_line_keeps_long_request_id() {
        let request_id = "r".repeat(300);
        let body = json!({ "requestId": request_id }).to_string();
        let line = json_line(&Summary::of(&message(&body, &[]), NOW));
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["requestId"], request_id.as_str());
    }

    #[test]
    fn table_shows_dash_for_missing() {
        let mut message = message("not json", &[]);
        message.properties = BasicProperties::default();
        let lines = table(&[Summary::of(&message, NOW)]);
        assert!(lines[1].starts_with("-  "), "{}", lines[1]);
    }

    #[test]
    fn count_line_mentions_limit() {
        assert_eq!(
            count_line(2, 5, "dlq"),
            "2 of 5 dead-lettered requests in `dlq` shown"
        );
        assert_eq!(count_line(1, 1, "dlq"), "1 dead-lettered request in `dlq`");
    }
}

//! Names and helpers for the headers the worker sets on dead-lettered and retried requests.
//!
//! None of them starts with `x-`: RabbitMQ 3.13 and later own `x-` headers, and RabbitMQ 4
//! ignores a client-set `x-death`.

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

/// Stable machine code of the failure, e.g. `okta_unavailable` or `invalid_json`.
pub const ERROR_CODE: &str = "okta-dcr-error-code";
/// Short reason for a person; never contains a secret.
pub const ERROR_REASON: &str = "okta-dcr-error-reason";
/// RFC 3339 UTC time the request was dead-lettered.
pub const DEAD_LETTERED_AT: &str = "okta-dcr-dead-lettered-at";
/// How many times the request was tried, across deliveries.
pub const ATTEMPTS: &str = "okta-dcr-attempts";
/// How many times an operator replayed the request from the dead-letter queue.
pub const REPLAYS: &str = "okta-dcr-replays";
/// Exchange the request was originally published to.
pub const ORIGINAL_EXCHANGE: &str = "okta-dcr-original-exchange";
/// Routing key the request was originally published with.
pub const ORIGINAL_ROUTING_KEY: &str = "okta-dcr-original-routing-key";
/// RFC 3339 UTC time the request was first tried; the retry budget counts from it.
pub const FIRST_ATTEMPT_AT: &str = "okta-dcr-first-attempt-at";
/// How many delay queues the request went through.
pub const DELAYS: &str = "okta-dcr-delays";
/// RFC 3339 UTC time the request last entered a delay queue, after its last Okta call ended.
pub const DELAYED_AT: &str = "okta-dcr-delayed-at";
/// The `X-Okta-Request-Id` of the Okta response that caused the failure, when there was one.
pub const OKTA_REQUEST_ID: &str = "okta-dcr-okta-request-id";

/// The reason a request is dead-lettered.
#[derive(Debug, Clone)]
pub struct DeadLetterReason {
    pub code: String,
    pub reason: String,
    pub attempts: u32,
    pub okta_request_id: Option<String>,
}

/// Returns `headers` with the dead-letter headers added (replacing earlier values, except the
/// original exchange and routing key, which keep the first publish's).
pub fn with_dead_letter_reason(
    headers: Option<&FieldTable>,
    reason: &DeadLetterReason,
    original_exchange: &str,
    original_routing_key: &str,
    dead_lettered_at: &str,
) -> FieldTable {
    let mut table = headers.cloned().unwrap_or_default();
    insert_text(&mut table, ERROR_CODE, &reason.code);
    insert_text(&mut table, ERROR_REASON, &truncate(&reason.reason, 500));
    insert_text(&mut table, DEAD_LETTERED_AT, dead_lettered_at);
    table.insert(
        ATTEMPTS.into(),
        AMQPValue::LongLongInt(reason.attempts.into()),
    );
    if !table.contains_key(REPLAYS) {
        table.insert(REPLAYS.into(), AMQPValue::LongLongInt(0));
    }
    // A request that went through a delay queue arrives with that queue as its routing key; the
    // headers set when it was first delayed keep where it was really published.
    keep_original_target(&mut table, original_exchange, original_routing_key);
    match &reason.okta_request_id {
        Some(id) => insert_text(&mut table, OKTA_REQUEST_ID, id),
        None => remove(&mut table, OKTA_REQUEST_ID),
    }
    table
}

/// Headers the worker sets to say why a request was dead-lettered. A replayed request drops
/// them, because the reason belongs to the failed attempt, not to the next one.
pub const REASON_HEADERS: [&str; 4] = [ERROR_CODE, ERROR_REASON, DEAD_LETTERED_AT, OKTA_REQUEST_ID];

/// Returns the headers of a dead-lettered request prepared for replay: every `x-` header
/// (owned by the broker: `x-death`, `x-first-death-*`, `x-delivery-count`, …) and the
/// [`REASON_HEADERS`] are dropped, and so is the retry state ([`FIRST_ATTEMPT_AT`],
/// [`DELAYS`], [`DELAYED_AT`]) so that the replay gets a fresh retry budget; [`REPLAYS`] is incremented, and the
/// others (notably [`ATTEMPTS`]) are kept.
pub fn for_replay(headers: Option<&FieldTable>) -> FieldTable {
    let replays = integer(headers, REPLAYS).unwrap_or(0).saturating_add(1);
    let mut kept = std::collections::BTreeMap::new();
    if let Some(headers) = headers {
        for (name, value) in headers.inner() {
            let retry_state = [FIRST_ATTEMPT_AT, DELAYS, DELAYED_AT].contains(&name.as_str());
            if !name.as_str().starts_with("x-")
                && !REASON_HEADERS.contains(&name.as_str())
                && !retry_state
            {
                kept.insert(name.clone(), value.clone());
            }
        }
    }
    kept.insert(REPLAYS.into(), AMQPValue::LongLongInt(replays));
    FieldTable::from(kept)
}

/// Reads an integer header, accepting any AMQP integer type (publishers differ).
pub fn integer(headers: Option<&FieldTable>, name: &str) -> Option<i64> {
    match headers?.inner().get(name)? {
        AMQPValue::ShortShortInt(value) => Some((*value).into()),
        AMQPValue::ShortShortUInt(value) => Some((*value).into()),
        AMQPValue::ShortInt(value) => Some((*value).into()),
        AMQPValue::ShortUInt(value) => Some((*value).into()),
        AMQPValue::LongInt(value) => Some((*value).into()),
        AMQPValue::LongUInt(value) => Some((*value).into()),
        AMQPValue::LongLongInt(value) => Some(*value),
        AMQPValue::LongString(value) => std::str::from_utf8(value.as_bytes()).ok()?.parse().ok(),
        _ => None,
    }
}

/// Reads a text header.
pub fn text(headers: Option<&FieldTable>, name: &str) -> Option<String> {
    match headers?.inner().get(name)? {
        AMQPValue::LongString(value) => Some(String::from_utf8_lossy(value.as_bytes()).into()),
        AMQPValue::ShortString(value) => Some(value.as_str().to_owned()),
        _ => None,
    }
}

/// Records where a request was first published, unless an earlier hop already did.
pub fn keep_original_target(table: &mut FieldTable, exchange: &str, routing_key: &str) {
    if !table.contains_key(ORIGINAL_EXCHANGE) {
        insert_text(table, ORIGINAL_EXCHANGE, exchange);
        insert_text(table, ORIGINAL_ROUTING_KEY, routing_key);
    }
}

fn insert_text(table: &mut FieldTable, name: &str, value: &str) {
    table.insert(
        ShortString::from(name),
        AMQPValue::LongString(LongString::from(value)),
    );
}

fn remove(table: &mut FieldTable, name: &str) {
    let kept = table
        .inner()
        .iter()
        .filter(|(key, _)| key.as_str() != name)
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect::<std::collections::BTreeMap<_, _>>();
    *table = FieldTable::from(kept);
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((index, _)) => format!("{}…", &text[..index]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead_lettered() -> FieldTable {
        let reason = DeadLetterReason {
            code: "okta_unavailable".to_owned(),
            reason: "Okta answered 503".to_owned(),
            attempts: 4,
            okta_request_id: Some("okta-req-1".to_owned()),
        };
        let mut table = with_dead_letter_reason(None, &reason, "requests", "requests", "now");
        table.insert("x-death".into(), AMQPValue::FieldArray(Vec::new().into()));
        table.insert("x-delivery-count".into(), AMQPValue::LongLongInt(2));
        insert_text(&mut table, "trace-id", "t-1");
        table
    }

    #[test]
    fn replay_headers_drop_broker_headers() {
        let headers = for_replay(Some(&dead_lettered()));
        let broker_owned: Vec<_> = headers
            .inner()
            .keys()
            .filter(|name| name.as_str().starts_with("x-"))
            .collect();
        assert!(broker_owned.is_empty(), "{broker_owned:?}");
    }

    #[test]
    fn replay_headers_drop_reason() {
        let headers = for_replay(Some(&dead_lettered()));
        for name in REASON_HEADERS {
            assert!(!headers.contains_key(name), "{name} kept");
        }
    }

    #[test]
    fn replay_headers_keep_attempts_and_others() {
        let headers = for_replay(Some(&dead_lettered()));
        assert_eq!(integer(Some(&headers), ATTEMPTS), Some(4));
        assert_eq!(text(Some(&headers), "trace-id").as_deref(), Some("t-1"));
        assert_eq!(
            text(Some(&headers), ORIGINAL_EXCHANGE).as_deref(),
            Some("requests")
        );
    }

    #[test]
    fn replay_headers_increment_replays() {
        let once = for_replay(Some(&dead_lettered()));
        let twice = for_replay(Some(&once));
        assert_eq!(integer(Some(&once), REPLAYS), Some(1));
        assert_eq!(integer(Some(&twice), REPLAYS), Some(2));
    }

    #[test]
    fn replay_headers_without_headers() {
        let headers = for_replay(None);
        assert_eq!(integer(Some(&headers), REPLAYS), Some(1));
    }

    #[test]
    fn replay_gets_fresh_retry_budget() {
        let mut original = FieldTable::default();
        insert_text(&mut original, FIRST_ATTEMPT_AT, "2026-01-01T00:00:00Z");
        original.insert(DELAYS.into(), AMQPValue::LongLongInt(3));
        original.insert(ATTEMPTS.into(), AMQPValue::LongLongInt(5));
        let headers = for_replay(Some(&original));
        assert!(!headers.contains_key(FIRST_ATTEMPT_AT));
        assert!(!headers.contains_key(DELAYS));
        assert_eq!(integer(Some(&headers), ATTEMPTS), Some(5));
    }

    #[test]
    fn original_target_kept_across_hops() {
        let reason = DeadLetterReason {
            code: "okta_unavailable".to_owned(),
            reason: "down".to_owned(),
            attempts: 2,
            okta_request_id: None,
        };
        let mut delayed = FieldTable::default();
        keep_original_target(&mut delayed, "requests", "");
        let headers = with_dead_letter_reason(
            Some(&delayed),
            &reason,
            "",
            "requests.delay.10s",
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(
            text(Some(&headers), ORIGINAL_EXCHANGE).as_deref(),
            Some("requests")
        );
        assert_eq!(
            text(Some(&headers), ORIGINAL_ROUTING_KEY).as_deref(),
            Some("")
        );
    }
}

//! `dead-letters export`: every dead-lettered request as one NDJSON line, with its body,
//! properties and headers, so that it can be inspected or kept outside the broker.

use std::io::Write;

use base64::Engine;
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use serde_json::{json, Map, Value};

use super::reader::{DeadLetter, Reader};
use super::DeadLetterError;
use crate::broker;
use crate::settings::BrokerSettings;

/// Result of `dead-letters export`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// Lines written, one per message.
    pub exported: usize,
    /// Ready messages in the queue when the export started.
    pub queue_count: u32,
}

/// Writes every message of the dead-letter queue to `output` as NDJSON, without changing the
/// queue.
pub async fn export(
    settings: &BrokerSettings,
    output: &mut dyn Write,
) -> Result<ExportReport, DeadLetterError> {
    let connection = broker::connect(&settings.amqp_url, "dead-letters export")
        .await
        .map_err(DeadLetterError::Connect)?;
    let queue = &settings.topology.dead_letter_queue;
    let (mut reader, queue_count) = Reader::open(&connection, queue, None).await?;
    let written = write_all(&mut reader, output).await;
    let released = reader.release().await;
    let _ = connection.close(200, "exported".into()).await;
    let exported = written?;
    released?;
    output.flush()?;
    Ok(ExportReport {
        exported,
        queue_count,
    })
}

async fn write_all(reader: &mut Reader, output: &mut dyn Write) -> Result<usize, DeadLetterError> {
    let mut exported = 0;
    while let Some(message) = reader.next().await? {
        writeln!(output, "{}", to_json_line(&message))?;
        exported += 1;
    }
    Ok(exported)
}

/// Returns the NDJSON line of one message: `body` (the body as JSON when it is valid UTF-8
/// JSON, else `null`), `bodyBase64` (always, standard base64), `properties` (only those set,
/// with AMQP names such as `content_type`), `headers`, `routingKey` and `exchange`.
pub fn to_json_line(message: &DeadLetter) -> String {
    let line = json!({
        "body": serde_json::from_slice::<Value>(&message.body).ok(),
        "bodyBase64": base64::engine::general_purpose::STANDARD.encode(&message.body),
        "properties": properties(&message.properties),
        "headers": message.headers().map_or_else(|| Value::Object(Map::new()), table),
        "routingKey": message.routing_key,
        "exchange": message.exchange,
    });
    line.to_string()
}

fn properties(properties: &BasicProperties) -> Value {
    let text = |value: &Option<lapin::types::ShortString>| {
        value.as_ref().map(|value| json!(value.as_str()))
    };
    let fields = [
        ("content_type", text(properties.content_type())),
        ("content_encoding", text(properties.content_encoding())),
        (
            "delivery_mode",
            properties.delivery_mode().map(|mode| json!(mode)),
        ),
        (
            "priority",
            properties.priority().map(|priority| json!(priority)),
        ),
        ("correlation_id", text(properties.correlation_id())),
        ("reply_to", text(properties.reply_to())),
        ("expiration", text(properties.expiration())),
        ("message_id", text(properties.message_id())),
        (
            "timestamp",
            properties.timestamp().map(|seconds| json!(seconds)),
        ),
        ("type", text(properties.kind())),
        ("user_id", text(properties.user_id())),
        ("app_id", text(properties.app_id())),
        ("cluster_id", text(properties.cluster_id())),
    ];
    let set = fields
        .into_iter()
        .filter_map(|(name, value)| value.map(|value| (name.to_owned(), value)));
    Value::Object(set.collect())
}

fn table(table: &FieldTable) -> Value {
    let entries = table
        .inner()
        .iter()
        .map(|(name, value)| (name.to_string(), amqp_value(value)));
    Value::Object(entries.collect())
}

/// Converts a header value to JSON. Byte arrays become base64 text and decimals an object
/// with `scale` and `value`, because JSON has no equivalent.
fn amqp_value(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(value) => json!(value),
        AMQPValue::ShortShortInt(value) => json!(value),
        AMQPValue::ShortShortUInt(value) => json!(value),
        AMQPValue::ShortInt(value) => json!(value),
        AMQPValue::ShortUInt(value) => json!(value),
        AMQPValue::LongInt(value) => json!(value),
        AMQPValue::LongUInt(value) => json!(value),
        AMQPValue::LongLongInt(value) => json!(value),
        AMQPValue::Float(value) => json!(value),
        AMQPValue::Double(value) => json!(value),
        AMQPValue::DecimalValue(decimal) => json!({"scale": decimal.scale, "value": decimal.value}),
        AMQPValue::ShortString(value) => json!(value.as_str()),
        // NOTE: a header that is not valid UTF-8 is exported with replacement characters.
        AMQPValue::LongString(value) => json!(String::from_utf8_lossy(value.as_bytes())),
        AMQPValue::FieldArray(array) => {
            Value::Array(array.as_slice().iter().map(amqp_value).collect())
        }
        AMQPValue::Timestamp(seconds) => json!(seconds),
        AMQPValue::FieldTable(nested) => table(nested),
        AMQPValue::ByteArray(bytes) => {
            json!(base64::engine::general_purpose::STANDARD.encode(bytes.as_slice()))
        }
        AMQPValue::Void => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::LongString;

    fn message(body: &[u8]) -> DeadLetter {
        let mut headers = FieldTable::default();
        headers.insert(
            "okta-dcr-error-code".into(),
            AMQPValue::LongString(LongString::from("invalid_json")),
        );
        let mut death = FieldTable::default();
        death.insert("count".into(), AMQPValue::LongLongInt(1));
        headers.insert(
            "x-death".into(),
            AMQPValue::FieldArray(vec![AMQPValue::FieldTable(death)].into()),
        );
        DeadLetter {
            delivery_tag: 1,
            exchange: "dead-letter".to_owned(),
            routing_key: "requests".to_owned(),
            properties: BasicProperties::default()
                .with_content_type("application/json".into())
                .with_delivery_mode(2)
                .with_headers(headers),
            body: body.to_vec(),
        }
    }

    fn parse(message: &DeadLetter) -> Value {
        serde_json::from_str(&to_json_line(message)).unwrap()
    }

    #[test]
    fn json_body_is_embedded() {
        let line = parse(&message(br#"{"requestId":"r1"}"#));
        assert_eq!(line["body"]["requestId"], "r1");
        assert_eq!(line["bodyBase64"], "eyJyZXF1ZXN0SWQiOiJyMSJ9");
    }

    #[test]
    fn invalid_body_is_null_with_base64() {
        let line = parse(&message(&[0xff, 0xfe]));
        assert_eq!(line["body"], Value::Null);
        assert_eq!(line["bodyBase64"], "//4=");
    }

    #[test]
    fn properties_only_set_ones() {
        let line = parse(&message(b"{}"));
        let properties = line["properties"].as_object().unwrap();
        assert_eq!(properties["content_type"], "application/json");
        assert_eq!(properties["delivery_mode"], 2);
        assert!(!properties.contains_key("message_id"), "{properties:?}");
    }

    #[test]
    fn headers_nested_values() {
        let line = parse(&message(b"{}"));
        assert_eq!(line["headers"]["okta-dcr-error-code"], "invalid_json");
        assert_eq!(line["headers"]["x-death"][0]["count"], 1);
    }

    #[test]
    fn routing_fields_present() {
        let line = parse(&message(b"{}"));
        assert_eq!(line["routingKey"], "requests");
        assert_eq!(line["exchange"], "dead-letter");
    }
}

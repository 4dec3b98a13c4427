//! Decoding of a raw AMQP message body into a JSON object with a request id.

use serde_json::{Map, Value};

use super::codes;
use super::error::{excerpt, json_type_name};

/// Default maximum body size in bytes (1 MiB); a request is normally well under 10 KiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Maximum length of a request id in characters.
pub const MAX_REQUEST_ID_CHARS: usize = 200;

/// A decoded request body: a JSON object and the request id that every result carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// `requestId` from the body, or the AMQP `message_id` property when the body has none.
    pub request_id: String,
    /// The body as sent; unknown members are kept so that results can copy them.
    pub body: Map<String, Value>,
}

/// Errors from decoding a message body. No variant contains the body, except a short
/// excerpt of the content type or the request id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The body is larger than the maximum.
    #[error("message body is {size} bytes, more than the maximum of {max} bytes")]
    BodyTooLarge {
        /// Body size in bytes.
        size: usize,
        /// Configured maximum in bytes.
        max: usize,
    },
    /// The AMQP `content_type` property names a type other than JSON.
    #[error("unsupported content type `{0}`: send `application/json`")]
    UnsupportedContentType(String),
    /// The body is not UTF-8.
    #[error("message body is not valid UTF-8: invalid byte at offset {offset}")]
    InvalidUtf8 {
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// The body is not JSON.
    #[error("message body is not valid JSON: {message}")]
    InvalidJson {
        /// serde_json's description, with line and column.
        message: String,
        /// Line of the error, counted from 1.
        line: usize,
        /// Column of the error, counted from 1.
        column: usize,
    },
    /// The body is JSON but not an object.
    #[error("message body is {0}, expected a JSON object")]
    NotAnObject(&'static str),
    /// The body has no usable request id.
    #[error("{0}")]
    InvalidRequestId(String),
}

impl DecodeError {
    /// Returns the stable result code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BodyTooLarge { .. } => codes::BODY_TOO_LARGE,
            Self::UnsupportedContentType(_) => codes::UNSUPPORTED_CONTENT_TYPE,
            Self::InvalidUtf8 { .. } => codes::INVALID_UTF8,
            Self::InvalidJson { .. } => codes::INVALID_JSON,
            Self::NotAnObject(_) | Self::InvalidRequestId(_) => codes::INVALID_REQUEST,
        }
    }

    /// Returns a short human-readable reason for the result message.
    pub fn reason(&self) -> String {
        self.to_string()
    }
}

/// Decodes a message body into an [`Envelope`].
///
/// `content_type` is the AMQP property. It is compared case-insensitively without its
/// parameters, and an absent or empty one means JSON. `message_id` is the AMQP property,
/// used as the request id when the body has no `requestId`. Bodies over `max_body_bytes`
/// are rejected before parsing.
pub fn decode(
    body: &[u8],
    content_type: Option<&str>,
    message_id: Option<&str>,
    max_body_bytes: usize,
) -> Result<Envelope, DecodeError> {
    if body.len() > max_body_bytes {
        return Err(DecodeError::BodyTooLarge {
            size: body.len(),
            max: max_body_bytes,
        });
    }
    check_content_type(content_type)?;
    let text = std::str::from_utf8(body).map_err(|error| DecodeError::InvalidUtf8 {
        offset: error.valid_up_to(),
    })?;
    let body = parse_object(text)?;
    let request_id = request_id(&body, message_id)?;
    Ok(Envelope { request_id, body })
}

fn check_content_type(content_type: Option<&str>) -> Result<(), DecodeError> {
    let Some(content_type) = content_type else {
        return Ok(());
    };
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media_type.is_empty() || media_type == "application/json" {
        return Ok(());
    }
    Err(DecodeError::UnsupportedContentType(excerpt(content_type)))
}

fn parse_object(text: &str) -> Result<Map<String, Value>, DecodeError> {
    let value: Value = serde_json::from_str(text).map_err(|error| DecodeError::InvalidJson {
        message: error.to_string(),
        line: error.line(),
        column: error.column(),
    })?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(DecodeError::NotAnObject(json_type_name(&other))),
    }
}

fn request_id(body: &Map<String, Value>, message_id: Option<&str>) -> Result<String, DecodeError> {
    match body.get("requestId") {
        None | Some(Value::Null) => request_id_from_message_id(message_id),
        Some(Value::String(id)) => checked_request_id(id, "`requestId`"),
        Some(other) => Err(DecodeError::InvalidRequestId(format!(
            "invalid `requestId`: expected a string of 1 to {MAX_REQUEST_ID_CHARS} characters, \
             found {}",
            json_type_name(other)
        ))),
    }
}

fn request_id_from_message_id(message_id: Option<&str>) -> Result<String, DecodeError> {
    match message_id {
        Some(id) => checked_request_id(id, "AMQP `message_id`"),
        None => Err(DecodeError::InvalidRequestId(
            "missing `requestId`, and the message has no AMQP `message_id` property to use \
             instead"
                .to_owned(),
        )),
    }
}

fn checked_request_id(id: &str, source: &str) -> Result<String, DecodeError> {
    let chars = id.chars().count();
    if (1..=MAX_REQUEST_ID_CHARS).contains(&chars) {
        return Ok(id.to_owned());
    }
    Err(DecodeError::InvalidRequestId(format!(
        "invalid {source} value `{}`: expected 1 to {MAX_REQUEST_ID_CHARS} characters, found \
         {chars}",
        excerpt(id)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &[u8] = br#"{"requestId": "r1", "operation": "provision"}"#;

    fn decode_default(body: &[u8], content_type: Option<&str>) -> Result<Envelope, DecodeError> {
        decode(body, content_type, None, DEFAULT_MAX_BODY_BYTES)
    }

    #[test]
    fn decode_valid_body() {
        let envelope = decode_default(VALID, Some("application/json")).unwrap();
        assert_eq!(envelope.request_id, "r1");
        assert_eq!(envelope.body["operation"], "provision");
    }

    #[test]
    fn content_type_with_parameters_accepted() {
        let result = decode_default(VALID, Some("Application/JSON; charset=utf-8"));
        assert!(result.is_ok());
    }

    #[test]
    fn missing_content_type_accepted() {
        assert!(decode_default(VALID, None).is_ok());
    }

    #[test]
    fn empty_content_type_accepted() {
        assert!(decode_default(VALID, Some("")).is_ok());
    }

    #[test]
    fn text_plain_rejected() {
        let error = decode_default(VALID, Some("text/plain")).unwrap_err();
        assert_eq!(error.code(), "unsupported_content_type");
        assert!(error.reason().contains("text/plain"));
    }

    #[test]
    fn body_over_limit_rejected() {
        let error = decode(VALID, None, None, 10).unwrap_err();
        assert_eq!(error.code(), "body_too_large");
    }

    #[test]
    fn body_at_limit_accepted() {
        assert!(decode(VALID, None, None, VALID.len()).is_ok());
    }

    #[test]
    fn invalid_utf8_rejected() {
        let body = [0x7b, 0x22, 0x72, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d];
        let error = decode_default(&body, None).unwrap_err();
        assert_eq!(error.code(), "invalid_utf8");
        assert_eq!(error, DecodeError::InvalidUtf8 { offset: 6 });
    }

    #[test]
    fn truncated_json_rejected() {
        let body = br#"{"requestId": "r1", "operation": "provision","#;
        let error = decode_default(body, None).unwrap_err();
        assert_eq!(error.code(), "invalid_json");
        assert!(error.reason().contains("line 1 column 45"), "{error}");
    }

    #[test]
    fn json_array_rejected() {
        let error = decode_default(b"[1, 2]", None).unwrap_err();
        assert_eq!(error.code(), "invalid_request");
        assert_eq!(
            error.reason(),
            "message body is an array, expected a JSON object"
        );
    }

    #[test]
    fn missing_request_id_uses_message_id() {
        let envelope = decode(b"{}", None, Some("m-1"), DEFAULT_MAX_BODY_BYTES).unwrap();
        assert_eq!(envelope.request_id, "m-1");
    }

    #[test]
    fn body_request_id_wins_over_message_id() {
        let envelope = decode(VALID, None, Some("m-1"), DEFAULT_MAX_BODY_BYTES).unwrap();
        assert_eq!(envelope.request_id, "r1");
    }

    #[test]
    fn missing_request_id_without_message_id_rejected() {
        let error = decode_default(b"{}", None).unwrap_err();
        assert_eq!(error.code(), "invalid_request");
        assert!(error.reason().contains("missing `requestId`"));
    }

    #[test]
    fn empty_request_id_rejected() {
        let error = decode_default(br#"{"requestId": ""}"#, None).unwrap_err();
        assert_eq!(error.code(), "invalid_request");
    }

    #[test]
    fn long_request_id_rejected() {
        let body = format!(r#"{{"requestId": "{}"}}"#, "r".repeat(201));
        let error = decode_default(body.as_bytes(), None).unwrap_err();
        assert!(error.reason().contains("found 201"), "{error}");
    }

    #[test]
    fn request_id_of_200_chars_accepted() {
        let body = format!(r#"{{"requestId": "{}"}}"#, "r".repeat(200));
        assert!(decode_default(body.as_bytes(), None).is_ok());
    }

    #[test]
    fn numeric_request_id_rejected() {
        let error = decode_default(br#"{"requestId": 7}"#, None).unwrap_err();
        assert!(error.reason().contains("found a number"), "{error}");
    }
}

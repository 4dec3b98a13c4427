//! The validation error returned by request parsing, the Okta metadata mapping and client
//! naming.

use std::fmt;

use serde_json::Value;

use super::codes;

/// Maximum characters of an offending value kept in a [`ValidationError`]; longer values are
/// cut and end with `…`.
pub const MAX_ERROR_VALUE_CHARS: usize = 120;

/// Whether a field is absent or present with an unusable value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The field is absent or JSON `null`.
    Missing,
    /// The field is present but its type or value is rejected.
    Invalid,
}

/// A request rejected before Okta is called.
///
/// `field` is a JSON path into the request body such as `credentialData.redirect_uris[0]`.
/// `value` is a short excerpt of the offending value (control characters escaped, at most
/// [`MAX_ERROR_VALUE_CHARS`]), and is `None` where the value could be key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    /// Whether the field is missing or invalid.
    pub kind: ErrorKind,
    /// JSON path of the rejected field.
    pub field: String,
    /// Excerpt of the rejected value, never key material.
    pub value: Option<String>,
    /// Reason for the rejection and, where useful, what to send instead.
    pub message: String,
}

impl ValidationError {
    /// Creates an error for an absent field; `message` may be empty.
    pub fn missing(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Missing,
            field: field.into(),
            value: None,
            message: message.into(),
        }
    }

    /// Creates an error for a field whose value is rejected; the value is shortened.
    pub fn invalid(field: impl Into<String>, value: &str, message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Invalid,
            field: field.into(),
            value: Some(excerpt(value)),
            message: message.into(),
        }
    }

    /// Creates an error for a rejected field whose value must not be repeated, such as key
    /// material, or which the message already describes.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Invalid,
            field: field.into(),
            value: None,
            message: message.into(),
        }
    }

    /// Creates an error for a field of the wrong JSON type, naming the type found.
    pub fn wrong_type(field: impl Into<String>, expected: &str, found: &Value) -> Self {
        let message = format!("expected {expected}, found {}", json_type_name(found));
        Self::invalid_field(field, message)
    }

    /// Returns the result code for every validation failure, `invalid_request`.
    pub fn code(&self) -> &'static str {
        codes::INVALID_REQUEST
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, &self.value) {
            (ErrorKind::Missing, _) => write!(f, "missing `{}`", self.field)?,
            (ErrorKind::Invalid, Some(value)) => {
                write!(f, "invalid `{}` value `{value}`", self.field)?
            }
            (ErrorKind::Invalid, None) => write!(f, "invalid `{}`", self.field)?,
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// Returns the JSON type name of a value with its article, for error messages.
pub(crate) fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Shortens a value for an error message and escapes control characters, so that a value
/// cannot break a log line.
pub(crate) fn excerpt(value: &str) -> String {
    let mut out = String::new();
    for (index, c) in value.chars().enumerate() {
        if index == MAX_ERROR_VALUE_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_missing() {
        let error = ValidationError::missing("id", "");
        assert_eq!(error.to_string(), "missing `id`");
    }

    #[test]
    fn display_invalid_with_value() {
        let error = ValidationError::invalid(
            "credentialData.redirect_uris[0]",
            "/cb",
            "redirect URI must be absolute",
        );
        assert_eq!(
            error.to_string(),
            "invalid `credentialData.redirect_uris[0]` value `/cb`: redirect URI must be absolute"
        );
    }

    #[test]
    fn display_wrong_type() {
        let error = ValidationError::wrong_type("teamName", "a string", &Value::from(3));
        assert_eq!(
            error.to_string(),
            "invalid `teamName`: expected a string, found a number"
        );
    }

    #[test]
    fn code_is_invalid_request() {
        assert_eq!(ValidationError::missing("id", "").code(), "invalid_request");
    }

    #[test]
    fn excerpt_cuts_long_values() {
        let long = "a".repeat(500);
        let short = excerpt(&long);
        assert_eq!(short.chars().count(), MAX_ERROR_VALUE_CHARS + 1);
        assert!(short.ends_with('…'));
    }

    #[test]
    fn excerpt_escapes_control_characters() {
        assert_eq!(excerpt("a\nb"), "a\\nb");
    }
}

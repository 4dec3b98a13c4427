//! The result message published once per request, on routing key `<job>.<success|error>`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::decode::{DecodeError, Envelope};
use super::error::ValidationError;
use super::request::{CredentialAction, Job, Operation, Request};
use crate::okta::model::RegisteredClient;
use crate::secret::Secret;

/// The outcome of one request. Optional members are left out of the JSON when `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultMessage {
    /// The request's id (or the AMQP `message_id` used in its place).
    pub request_id: String,
    /// Engage credential id, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `operation`: the parsed name, or the raw value of a rejected request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Value>,
    /// `credentialAction` exactly as the request sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_action: Option<Value>,
    /// Success or error, with a stable code.
    pub status: Status,
    /// Credential state after a successful job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<CredentialState>,
    /// The client's credentials after provision or rotate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<ResultData>,
    /// The Okta `client_id` the request acted on, for later requests to send back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_client_id: Option<String>,
    /// The request's `context`, unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    /// When the worker finished, RFC 3339 in UTC.
    pub completed_at: String,
    /// Processing attempts, counting this one.
    pub attempts: u32,
}

/// `Success` or `Error`, as Engage's agent SDK names provisioning statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Level {
    /// The job is done.
    Success,
    /// The job failed; see `code` and `retryable`.
    Error,
}

impl Level {
    /// Returns the lowercase name used as the last part of the routing key.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
        }
    }
}

/// The status of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// `Success` or `Error`.
    pub level: Level,
    /// Human-readable reason, never containing a secret.
    pub reason: String,
    /// Stable code from [`super::codes`]; `ok` on success.
    pub code: String,
    /// Whether sending the same request again may succeed.
    pub retryable: bool,
}

/// The credential state Engage shows after a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialState {
    /// The client can get tokens.
    Active,
    /// The client is suspended, expired or deleted.
    Inactive,
}

/// The client's credentials. `Debug` shows the secret as `[redacted]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultData {
    /// Okta `client_id`.
    pub client_id: String,
    /// Client secret, or its encryption; absent for public and private_key_jwt clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    /// When Okta issued the client id, in seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id_issued_at: Option<i64>,
    /// When the secret expires, in seconds since the Unix epoch; 0 means never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<i64>,
}

impl From<RegisteredClient> for ResultData {
    fn from(client: RegisteredClient) -> Self {
        Self {
            client_id: client.client_id,
            client_secret: client.client_secret,
            client_id_issued_at: client.client_id_issued_at,
            client_secret_expires_at: client.client_secret_expires_at,
        }
    }
}

/// `status.code` of every success.
pub const SUCCESS_CODE: &str = "ok";

impl ResultMessage {
    /// Builds the result of a job that succeeded.
    pub fn success(
        request: &Request,
        state: CredentialState,
        data: Option<ResultData>,
        idp_client_id: Option<String>,
        reason: &str,
        attempts: u32,
    ) -> Self {
        let status = Status {
            level: Level::Success,
            reason: reason.to_owned(),
            code: SUCCESS_CODE.to_owned(),
            retryable: false,
        };
        Self {
            state: Some(state),
            data,
            idp_client_id,
            ..Self::for_request(request, status, attempts)
        }
    }

    /// Builds the result of a job that failed; `code` comes from [`super::codes`].
    pub fn error(
        request: &Request,
        code: &str,
        reason: &str,
        retryable: bool,
        attempts: u32,
    ) -> Self {
        let status = Status {
            level: Level::Error,
            reason: reason.to_owned(),
            code: code.to_owned(),
            retryable,
        };
        Self::for_request(request, status, attempts)
    }

    /// Builds the result of a request that decoded but failed validation. `id`,
    /// `operation`, `credentialAction` and `context` are copied from the body when present.
    pub fn rejected(envelope: &Envelope, error: &ValidationError, attempts: u32) -> Self {
        let body = &envelope.body;
        Self {
            request_id: envelope.request_id.clone(),
            id: body.get("id").and_then(Value::as_str).map(str::to_owned),
            operation: present(body, "operation"),
            credential_action: present(body, "credentialAction"),
            status: Status {
                level: Level::Error,
                reason: error.to_string(),
                code: error.code().to_owned(),
                retryable: false,
            },
            state: None,
            data: None,
            idp_client_id: None,
            context: present(body, "context"),
            completed_at: now_rfc3339(),
            attempts,
        }
    }

    /// Builds the result of a body that could not be decoded. `request_id` is whatever id
    /// the caller has, such as the AMQP `message_id`.
    pub fn undecodable(request_id: &str, error: &DecodeError, attempts: u32) -> Self {
        Self {
            request_id: request_id.to_owned(),
            id: None,
            operation: None,
            credential_action: None,
            status: Status {
                level: Level::Error,
                reason: error.reason(),
                code: error.code().to_owned(),
                retryable: false,
            },
            state: None,
            data: None,
            idp_client_id: None,
            context: None,
            completed_at: now_rfc3339(),
            attempts,
        }
    }

    /// Returns the routing key `<job>.<success|error>`, such as `rotate.error`.
    ///
    /// The job is derived from `operation` and `credentialAction`, so a result read back
    /// from a queue gives the same key. When the job cannot be derived, the key is
    /// `<operation>.error` for a known operation and `unknown.error` otherwise, so request
    /// text never reaches a routing key.
    pub fn routing_key(&self) -> String {
        let operation = self
            .operation
            .as_ref()
            .and_then(Value::as_str)
            .and_then(Operation::parse);
        let action = CredentialAction::from_value(self.credential_action.as_ref(), "")
            .ok()
            .flatten();
        let job = operation.and_then(|operation| Job::resolve(operation, action));
        match (job, operation) {
            (Some(job), _) => format!("{job}.{}", self.status.level.as_str()),
            (None, Some(operation)) => format!("{operation}.error"),
            (None, None) => "unknown.error".to_owned(),
        }
    }

    /// Serializes the message to JSON, including the client secret.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialization cannot fail: every member is a string, number, boolean or a JSON
        // value, and all map keys are strings.
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn for_request(request: &Request, status: Status, attempts: u32) -> Self {
        Self {
            request_id: request.request_id.clone(),
            id: Some(request.id.clone()),
            operation: Some(Value::from(request.operation.as_str())),
            credential_action: request.raw_credential_action.clone(),
            status,
            state: None,
            data: None,
            idp_client_id: request.idp_client_id.clone(),
            context: request.context.clone(),
            completed_at: now_rfc3339(),
            attempts,
        }
    }
}

fn present(body: &Map<String, Value>, key: &str) -> Option<Value> {
    body.get(key).filter(|value| !value.is_null()).cloned()
}

fn now_rfc3339() -> String {
    // Formatting fails only for years outside 0..=9999, which the clock does not return.
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

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
        match (self.job(), self.parsed_operation()) {
            (Some(job), _) => format!("{job}.{}", self.status.level.as_str()),
            (None, Some(operation)) => format!("{operation}.error"),
            (None, None) => "unknown.error".to_owned(),
        }
    }

    /// Returns the job derived from `operation` and `credentialAction`. A rejected request
    /// has one whenever both fields are valid, even when another field failed validation.
    pub fn job(&self) -> Option<Job> {
        let action = CredentialAction::from_value(self.credential_action.as_ref(), "")
            .ok()
            .flatten();
        self.parsed_operation()
            .and_then(|operation| Job::resolve(operation, action))
    }

    fn parsed_operation(&self) -> Option<Operation> {
        self.operation
            .as_ref()
            .and_then(Value::as_str)
            .and_then(Operation::parse)
    }

    /// Serializes the message to JSON, including the client secret.
    pub fn to_json(&self) -> Vec<u8> {
        // serde_json fails only on a non-string map key or a failing Serialize impl, and
        // this type has neither, so the empty fallback is never used.
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::request::parse_request;
    use super::*;

    fn envelope(body: Value) -> Envelope {
        Envelope {
            request_id: "r1".to_owned(),
            body: match body {
                Value::Object(map) => map,
                _ => Map::new(),
            },
        }
    }

    fn request(body: Value) -> Request {
        parse_request(&envelope(body)).unwrap()
    }

    fn provision() -> Request {
        request(json!({
            "operation": "provision",
            "id": "cred-1",
            "name": "key",
            "managedApplicationName": "Shop",
            "credentialData": {},
            "context": { "k": "v" },
        }))
    }

    fn data() -> ResultData {
        ResultData {
            client_id: "0oa1".to_owned(),
            client_secret: Some(Secret::new("s3cr3t-value")),
            client_id_issued_at: Some(1_700_000_000),
            client_secret_expires_at: Some(0),
        }
    }

    fn as_json(message: &ResultMessage) -> Value {
        serde_json::from_slice(&message.to_json()).unwrap()
    }

    #[test]
    fn success_json_field_names() {
        let message = ResultMessage::success(
            &provision(),
            CredentialState::Active,
            Some(data()),
            Some("0oa1".to_owned()),
            "client created",
            1,
        );
        let value = as_json(&message);
        assert_eq!(value["requestId"], "r1");
        assert_eq!(value["id"], "cred-1");
        assert_eq!(value["operation"], "provision");
        assert_eq!(value["status"]["level"], "Success");
        assert_eq!(value["status"]["code"], "ok");
        assert_eq!(value["status"]["retryable"], false);
        assert_eq!(value["state"], "active");
        assert_eq!(value["data"]["clientId"], "0oa1");
        assert_eq!(value["data"]["clientSecret"], "s3cr3t-value");
        assert_eq!(value["data"]["clientIdIssuedAt"], 1_700_000_000);
        assert_eq!(value["data"]["clientSecretExpiresAt"], 0);
        assert_eq!(value["idpClientId"], "0oa1");
        assert_eq!(value["context"], json!({ "k": "v" }));
        assert_eq!(value["attempts"], 1);
    }

    #[test]
    fn none_fields_omitted() {
        let message = ResultMessage::error(&provision(), "okta_unavailable", "timed out", true, 3);
        let value = as_json(&message);
        let object = value.as_object().unwrap();
        for absent in ["state", "data", "idpClientId", "credentialAction"] {
            assert!(!object.contains_key(absent), "{absent}");
        }
    }

    #[test]
    fn error_status_set() {
        let message = ResultMessage::error(&provision(), "okta_unavailable", "timed out", true, 3);
        assert_eq!(message.status.level, Level::Error);
        assert_eq!(message.status.code, "okta_unavailable");
        assert!(message.status.retryable);
        assert_eq!(as_json(&message)["status"]["level"], "Error");
    }

    #[test]
    fn completed_at_is_rfc3339_utc() {
        let message = ResultMessage::error(&provision(), "internal_error", "x", false, 1);
        let parsed = OffsetDateTime::parse(&message.completed_at, &Rfc3339).unwrap();
        assert_eq!(parsed.offset(), time::UtcOffset::UTC);
    }

    #[test]
    fn debug_redacts_secret() {
        let message = ResultMessage::success(
            &provision(),
            CredentialState::Active,
            Some(data()),
            None,
            "client created",
            1,
        );
        let debug = format!("{message:?}");
        assert!(!debug.contains("s3cr3t-value"));
        assert!(debug.contains("[redacted]"));
    }

    #[test]
    fn json_round_trips() {
        let message = ResultMessage::success(
            &provision(),
            CredentialState::Inactive,
            Some(data()),
            None,
            "done",
            2,
        );
        let read: ResultMessage = serde_json::from_slice(&message.to_json()).unwrap();
        assert_eq!(read, message);
    }

    #[test]
    fn routing_keys_by_job() {
        let cases = [
            (json!("enable"), "enable.success"),
            (json!(2), "suspend.success"),
            (json!("rotate"), "rotate.success"),
            (json!(4), "expire.success"),
        ];
        for (action, key) in cases {
            let request = request(json!({
                "operation": "update", "id": "cred-1", "credentialAction": action,
            }));
            let message =
                ResultMessage::success(&request, CredentialState::Active, None, None, "ok", 1);
            assert_eq!(message.routing_key(), key);
        }
    }

    #[test]
    fn routing_key_provision_success() {
        let message =
            ResultMessage::success(&provision(), CredentialState::Active, None, None, "ok", 1);
        assert_eq!(message.routing_key(), "provision.success");
    }

    #[test]
    fn routing_key_rotate_error() {
        let request = request(json!({
            "operation": "update", "id": "cred-1", "credentialAction": 3,
        }));
        let message = ResultMessage::error(&request, "client_not_found", "gone", false, 1);
        assert_eq!(message.routing_key(), "rotate.error");
    }

    #[test]
    fn routing_key_deprovision_error() {
        let request = request(json!({ "operation": "deprovision", "id": "cred-1" }));
        let message = ResultMessage::error(&request, "okta_unavailable", "down", true, 1);
        assert_eq!(message.routing_key(), "deprovision.error");
    }

    #[test]
    fn rejected_copies_raw_fields() {
        let body = json!({
            "operation": "update",
            "id": "cred-1",
            "credentialAction": "reboot",
            "context": [1],
        });
        let envelope = envelope(body);
        let error = parse_request(&envelope).unwrap_err();
        let message = ResultMessage::rejected(&envelope, &error, 1);
        assert_eq!(message.id.as_deref(), Some("cred-1"));
        assert_eq!(message.operation, Some(json!("update")));
        assert_eq!(message.credential_action, Some(json!("reboot")));
        assert_eq!(message.context, Some(json!([1])));
        assert_eq!(message.status.code, "invalid_request");
        assert!(!message.status.retryable);
        assert!(message.status.reason.contains("reboot"));
    }

    #[test]
    fn rejected_update_routes_by_operation() {
        let envelope = envelope(json!({ "operation": "update", "credentialAction": 7 }));
        let error = parse_request(&envelope).unwrap_err();
        let message = ResultMessage::rejected(&envelope, &error, 1);
        assert_eq!(message.routing_key(), "update.error");
    }

    #[test]
    fn rejected_provision_routes_by_job() {
        let envelope = envelope(json!({ "operation": "provision", "id": "cred-1" }));
        let error = parse_request(&envelope).unwrap_err();
        let message = ResultMessage::rejected(&envelope, &error, 1);
        assert_eq!(message.routing_key(), "provision.error");
    }

    #[test]
    fn rejected_provision_keeps_job() {
        let body = json!({
            "operation": "provision", "id": "cred-1", "name": "n", "managedApplicationName": "a",
            "credentialData": {
                "grantType": "authorization_code", "redirectURLs": ["https://app.test/cb#top"],
            },
        });
        let envelope = envelope(body);
        let error = parse_request(&envelope).unwrap_err();
        assert_eq!(error.field, "credentialData.redirectURLs[0]");
        let message = ResultMessage::rejected(&envelope, &error, 1);
        assert_eq!(message.job(), Some(Job::Provision));
    }

    #[test]
    fn rejected_without_action_has_no_job() {
        let envelope = envelope(json!({ "operation": "update", "id": "cred-1" }));
        let error = parse_request(&envelope).unwrap_err();
        let message = ResultMessage::rejected(&envelope, &error, 1);
        assert_eq!(message.job(), None);
    }

    #[test]
    fn unknown_operation_routes_to_unknown() {
        let envelope = envelope(json!({ "operation": "frob.#", "id": "cred-1" }));
        let error = parse_request(&envelope).unwrap_err();
        let message = ResultMessage::rejected(&envelope, &error, 1);
        assert_eq!(message.routing_key(), "unknown.error");
    }

    #[test]
    fn undecodable_uses_decode_code() {
        let error = DecodeError::InvalidUtf8 { offset: 6 };
        let message = ResultMessage::undecodable("m-1", &error, 1);
        assert_eq!(message.status.code, "invalid_utf8");
        assert_eq!(message.routing_key(), "unknown.error");
    }

    #[test]
    fn result_data_from_registered_client() {
        let client: RegisteredClient = serde_json::from_value(json!({
            "client_id": "0oa1",
            "client_name": "Shop key",
            "client_id_issued_at": 5,
        }))
        .unwrap();
        let data = ResultData::from(client);
        assert_eq!(data.client_id, "0oa1");
        assert_eq!(data.client_secret, None);
        assert_eq!(data.client_id_issued_at, Some(5));
    }
}

//! A validated credential request: what Engage asked for and the job the worker runs.

use std::fmt;

use serde_json::Value;

use super::credential_data::CredentialData;
use super::decode::Envelope;
use super::encryption::EncryptionSpec;
use super::error::{json_type_name, ValidationError};
use super::fields::Fields;

/// The request's `operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Create an Okta client.
    Provision,
    /// Delete the Okta client.
    Deprovision,
    /// Change the client according to `credentialAction`.
    Update,
}

impl Operation {
    /// Returns the lowercase name used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provision => "provision",
            Self::Deprovision => "deprovision",
            Self::Update => "update",
        }
    }

    /// Parses an operation name without regard to case.
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "provision" => Some(Self::Provision),
            "deprovision" => Some(Self::Deprovision),
            "update" => Some(Self::Update),
            _ => None,
        }
    }
}

/// The request's `credentialAction`, as a name or as Engage's integer code.
///
/// The integer codes follow `CredentialAction` in Axway's agent SDK
/// (`pkg/apic/provisioning/definitions.go`: `Enable = iota + 1`, then `Suspend`, `Rotate`,
/// `Expire`), so 1 = enable, 2 = suspend, 3 = rotate, 4 = expire; 0 is the Go zero value
/// and means no action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialAction {
    /// Reactivate a suspended client (code 1).
    Enable,
    /// Deactivate the client without deleting it (code 2).
    Suspend,
    /// Issue a new client secret (code 3).
    Rotate,
    /// Delete the client like `deprovision`, reporting state `inactive` (code 4).
    Expire,
}

impl CredentialAction {
    /// Returns the lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enable => "enable",
            Self::Suspend => "suspend",
            Self::Rotate => "rotate",
            Self::Expire => "expire",
        }
    }

    /// Returns Engage's integer code.
    pub fn code(self) -> u8 {
        match self {
            Self::Enable => 1,
            Self::Suspend => 2,
            Self::Rotate => 3,
            Self::Expire => 4,
        }
    }

    /// Parses a name without regard to case.
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "enable" => Some(Self::Enable),
            "suspend" => Some(Self::Suspend),
            "rotate" => Some(Self::Rotate),
            "expire" => Some(Self::Expire),
            _ => None,
        }
    }

    /// Maps Engage's integer code; 0 and unknown codes give `None`.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            1 => Some(Self::Enable),
            2 => Some(Self::Suspend),
            3 => Some(Self::Rotate),
            4 => Some(Self::Expire),
            _ => None,
        }
    }

    /// Reads a `credentialAction` value. `Ok(None)` means no action: absent, `null`, `0`,
    /// `""` or `"none"`. `field` is the JSON path used in errors.
    pub fn from_value(value: Option<&Value>, field: &str) -> Result<Option<Self>, ValidationError> {
        let unknown = |text: &str| {
            ValidationError::invalid(
                field,
                text,
                "unknown credential action; use enable, suspend, rotate or expire, or Engage's \
                 codes 1 to 4",
            )
        };
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(number)) => match number.as_i64() {
                Some(0) => Ok(None),
                Some(code) => Self::from_code(code)
                    .map(Some)
                    .ok_or_else(|| unknown(&code.to_string())),
                None => Err(unknown(&number.to_string())),
            },
            Some(Value::String(text)) => match text.trim() {
                "" => Ok(None),
                name if name.eq_ignore_ascii_case("none") => Ok(None),
                name => Self::parse(name).map(Some).ok_or_else(|| unknown(text)),
            },
            Some(other) => Err(ValidationError::invalid_field(
                field,
                format!(
                    "expected a string or an integer, found {}",
                    json_type_name(other)
                ),
            )),
        }
    }
}

/// The action the worker takes for a request. `as_str()` returns the lowercase name that
/// starts result routing keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Job {
    /// Create a client (`provision`).
    Provision,
    /// Delete the client (`deprovision`).
    Deprovision,
    /// Issue a new secret (`update` + `rotate`).
    Rotate,
    /// Deactivate the client (`update` + `suspend`).
    Suspend,
    /// Activate the client (`update` + `enable`).
    Enable,
    /// Delete the client and report state `inactive` (`update` + `expire`).
    Expire,
}

impl Job {
    /// Returns the lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provision => "provision",
            Self::Deprovision => "deprovision",
            Self::Rotate => "rotate",
            Self::Suspend => "suspend",
            Self::Enable => "enable",
            Self::Expire => "expire",
        }
    }

    /// Returns the job for an operation and action. `update` needs an action; the other
    /// operations ignore it.
    pub fn resolve(operation: Operation, action: Option<CredentialAction>) -> Option<Self> {
        match (operation, action) {
            (Operation::Provision, _) => Some(Self::Provision),
            (Operation::Deprovision, _) => Some(Self::Deprovision),
            (Operation::Update, Some(CredentialAction::Enable)) => Some(Self::Enable),
            (Operation::Update, Some(CredentialAction::Suspend)) => Some(Self::Suspend),
            (Operation::Update, Some(CredentialAction::Rotate)) => Some(Self::Rotate),
            (Operation::Update, Some(CredentialAction::Expire)) => Some(Self::Expire),
            (Operation::Update, None) => None,
        }
    }
}

macro_rules! display_as_str {
    ($($name:ty),*) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

display_as_str!(Operation, CredentialAction, Job);

/// A validated credential request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The idempotency key, from the envelope.
    pub request_id: String,
    /// `operation`.
    pub operation: Operation,
    /// `credentialAction`, when given and not 0.
    pub credential_action: Option<CredentialAction>,
    /// The action the worker takes.
    pub job: Job,
    /// Engage credential id; the same for every request about one credential.
    pub id: String,
    /// Credential `name`; required for provision.
    pub name: Option<String>,
    /// `managedApplicationName`; required for provision.
    pub managed_application_name: Option<String>,
    /// `teamName`.
    pub team_name: Option<String>,
    /// `credentialType`, such as `oauth-secret`; informational.
    pub credential_type: Option<String>,
    /// Validated `credentialData`; parsed for provision only, `None` otherwise.
    pub credential_data: Option<CredentialData>,
    /// `idpClientId`: the Okta `client_id` from the provision result.
    pub idp_client_id: Option<String>,
    /// `encryption`: how to encrypt the client secret in the result.
    pub encryption: Option<EncryptionSpec>,
    /// `context`, copied into the result unchanged.
    pub context: Option<Value>,
    /// `credentialAction` exactly as sent, copied into the result.
    pub raw_credential_action: Option<Value>,
}

/// Validates a decoded request. Unknown top-level members are ignored, and optional string
/// members that are empty count as absent. `credentialData` is validated for provision only,
/// but an unknown `credentialAction` is rejected for every operation.
pub fn parse_request(envelope: &Envelope) -> Result<Request, ValidationError> {
    let fields = Fields::new(&envelope.body, "");

    let operation = parse_operation(&fields)?;
    let raw_credential_action = fields.get("credentialAction").cloned();
    let credential_action =
        CredentialAction::from_value(raw_credential_action.as_ref(), "credentialAction")?;
    let job = Job::resolve(operation, credential_action)
        .ok_or_else(|| missing_action(raw_credential_action.as_ref()))?;

    let id = fields.required_string("id")?.to_owned();
    let provision = operation == Operation::Provision;
    let name = string_field(&fields, "name", provision)?;
    let managed_application_name = string_field(&fields, "managedApplicationName", provision)?;

    let credential_data = match job {
        Job::Provision => Some(parse_credential_data(&fields)?),
        // A rotation only needs to know whether the client has a secret; data that does not
        // parse is left out rather than failing a request that does not depend on it.
        Job::Rotate => fields
            .optional_object("credentialData")
            .ok()
            .flatten()
            .and_then(|map| CredentialData::parse(map, "credentialData").ok()),
        _ => None,
    };
    let encryption = match fields.optional_object("encryption")? {
        Some(map) => Some(EncryptionSpec::parse(map, "encryption")?),
        None => None,
    };

    Ok(Request {
        request_id: envelope.request_id.clone(),
        operation,
        credential_action,
        job,
        id,
        name,
        managed_application_name,
        team_name: string_field(&fields, "teamName", false)?,
        credential_type: string_field(&fields, "credentialType", false)?,
        credential_data,
        idp_client_id: string_field(&fields, "idpClientId", false)?,
        encryption,
        context: fields.get("context").cloned(),
        raw_credential_action,
    })
}

fn parse_operation(fields: &Fields<'_>) -> Result<Operation, ValidationError> {
    let name = fields.required_string("operation")?;
    Operation::parse(name).ok_or_else(|| {
        ValidationError::invalid(
            "operation",
            name,
            "unknown operation; use provision, deprovision or update",
        )
    })
}

/// Builds the error for an `update` without a usable action.
fn missing_action(raw: Option<&Value>) -> ValidationError {
    let message = "`update` needs a credential action: enable, suspend, rotate or expire \
                   (Engage's codes 1 to 4)";
    match raw {
        None => ValidationError::missing("credentialAction", message),
        Some(Value::String(text)) => ValidationError::invalid("credentialAction", text, message),
        Some(other) => ValidationError::invalid("credentialAction", &other.to_string(), message),
    }
}

fn string_field(
    fields: &Fields<'_>,
    key: &str,
    required: bool,
) -> Result<Option<String>, ValidationError> {
    let value = if required {
        Some(fields.required_string(key)?)
    } else {
        fields.optional_string(key)?
    };
    Ok(value.map(str::to_owned))
}

fn parse_credential_data(fields: &Fields<'_>) -> Result<CredentialData, ValidationError> {
    let map = fields
        .optional_object("credentialData")?
        .ok_or_else(|| ValidationError::missing("credentialData", "required for `provision`"))?;
    CredentialData::parse(map, "credentialData")
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Map};

    use super::super::jwks::tests::RFC7638_SPKI_PEM;
    use super::*;

    fn envelope(body: Value) -> Envelope {
        let body = match body {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        Envelope {
            request_id: "r1".to_owned(),
            body,
        }
    }

    fn provision() -> Value {
        json!({
            "requestId": "r1",
            "operation": "provision",
            "id": "cred-1",
            "name": "checkout-key",
            "managedApplicationName": "Shop",
            "teamName": "Payments",
            "credentialType": "oauth-secret",
            "credentialData": { "grantType": "client_credentials" },
            "context": { "trace": [1, 2] },
            "futureField": true,
        })
    }

    fn update(action: Value) -> Value {
        json!({ "operation": "update", "id": "cred-1", "credentialAction": action })
    }

    fn parse(body: Value) -> Result<Request, ValidationError> {
        parse_request(&envelope(body))
    }

    #[test]
    fn provision_parsed() {
        let request = parse(provision()).unwrap();
        assert_eq!(request.request_id, "r1");
        assert_eq!(request.operation, Operation::Provision);
        assert_eq!(request.job, Job::Provision);
        assert_eq!(request.id, "cred-1");
        assert_eq!(request.name.as_deref(), Some("checkout-key"));
        assert_eq!(request.managed_application_name.as_deref(), Some("Shop"));
        assert_eq!(request.team_name.as_deref(), Some("Payments"));
        assert_eq!(request.credential_type.as_deref(), Some("oauth-secret"));
        assert!(request.credential_data.is_some());
        assert_eq!(request.context, Some(json!({ "trace": [1, 2] })));
    }

    #[test]
    fn missing_id_rejected() {
        let mut body = provision();
        body["id"] = Value::Null;
        let error = parse(body).unwrap_err();
        assert_eq!(error.to_string(), "missing `id`");
    }

    #[test]
    fn numeric_id_rejected_naming_type() {
        let mut body = provision();
        body["id"] = json!(42);
        let error = parse(body).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid `id`: expected a string, found a number"
        );
    }

    #[test]
    fn missing_operation_rejected() {
        let error = parse(json!({ "id": "cred-1" })).unwrap_err();
        assert_eq!(error.to_string(), "missing `operation`");
    }

    #[test]
    fn unknown_operation_rejected() {
        let error = parse(json!({ "operation": "create", "id": "cred-1" })).unwrap_err();
        assert_eq!(error.value.as_deref(), Some("create"));
    }

    #[test]
    fn operation_case_ignored() {
        let request = parse(json!({ "operation": "Deprovision", "id": "cred-1" })).unwrap();
        assert_eq!(request.job, Job::Deprovision);
    }

    #[test]
    fn provision_without_name_rejected() {
        let mut body = provision();
        body.as_object_mut().map(|map| map.remove("name"));
        let error = parse(body).unwrap_err();
        assert_eq!(error.to_string(), "missing `name`");
    }

    #[test]
    fn provision_without_application_rejected() {
        let mut body = provision();
        body["managedApplicationName"] = json!("");
        let error = parse(body).unwrap_err();
        assert_eq!(error.to_string(), "missing `managedApplicationName`");
    }

    #[test]
    fn provision_without_credential_data_rejected() {
        let mut body = provision();
        body.as_object_mut().map(|map| map.remove("credentialData"));
        let error = parse(body).unwrap_err();
        assert_eq!(error.field, "credentialData");
    }

    #[test]
    fn credential_data_of_wrong_type_rejected() {
        let mut body = provision();
        body["credentialData"] = json!("client_credentials");
        let error = parse(body).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid `credentialData`: expected an object, found a string"
        );
    }

    #[test]
    fn team_of_wrong_type_rejected() {
        let mut body = provision();
        body["teamName"] = json!(["Payments"]);
        let error = parse(body).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid `teamName`: expected a string, found an array"
        );
    }

    #[test]
    fn deprovision_needs_only_id() {
        let request = parse(json!({ "operation": "deprovision", "id": "cred-1" })).unwrap();
        assert_eq!(request.job, Job::Deprovision);
        assert!(request.credential_data.is_none());
    }

    #[test]
    fn deprovision_ignores_bad_credential_data() {
        let body = json!({
            "operation": "deprovision",
            "id": "cred-1",
            "credentialData": { "grantType": "password" },
        });
        assert!(parse(body).is_ok());
    }

    #[test]
    fn update_action_strings() {
        let cases = [
            ("enable", Job::Enable),
            ("suspend", Job::Suspend),
            ("rotate", Job::Rotate),
            ("expire", Job::Expire),
            ("Rotate", Job::Rotate),
        ];
        for (action, job) in cases {
            let request = parse(update(json!(action))).unwrap();
            assert_eq!(request.job, job, "{action}");
        }
    }

    #[test]
    fn update_action_integers() {
        let cases = [
            (1, Job::Enable),
            (2, Job::Suspend),
            (3, Job::Rotate),
            (4, Job::Expire),
        ];
        for (code, job) in cases {
            let request = parse(update(json!(code))).unwrap();
            assert_eq!(request.job, job, "{code}");
        }
    }

    #[test]
    fn raw_action_kept() {
        let request = parse(update(json!(3))).unwrap();
        assert_eq!(request.raw_credential_action, Some(json!(3)));
        assert_eq!(request.credential_action, Some(CredentialAction::Rotate));
    }

    #[test]
    fn update_action_zero_rejected() {
        let error = parse(update(json!(0))).unwrap_err();
        assert_eq!(error.field, "credentialAction");
        assert_eq!(error.value.as_deref(), Some("0"));
    }

    #[test]
    fn update_action_seven_rejected() {
        let error = parse(update(json!(7))).unwrap_err();
        assert_eq!(error.value.as_deref(), Some("7"));
    }

    #[test]
    fn update_action_reboot_rejected() {
        let error = parse(update(json!("reboot"))).unwrap_err();
        assert_eq!(error.value.as_deref(), Some("reboot"));
    }

    #[test]
    fn update_action_fraction_rejected() {
        let error = parse(update(json!(2.5))).unwrap_err();
        assert_eq!(error.value.as_deref(), Some("2.5"));
    }

    #[test]
    fn update_action_boolean_rejected() {
        let error = parse(update(json!(true))).unwrap_err();
        assert!(error.message.contains("found a boolean"), "{error}");
    }

    #[test]
    fn update_without_action_rejected() {
        let error = parse(json!({ "operation": "update", "id": "cred-1" })).unwrap_err();
        assert_eq!(error.kind, super::super::error::ErrorKind::Missing);
        assert_eq!(error.field, "credentialAction");
    }

    #[test]
    fn provision_ignores_action() {
        let mut body = provision();
        body["credentialAction"] = json!(0);
        let request = parse(body).unwrap();
        assert_eq!(request.job, Job::Provision);
        assert_eq!(request.credential_action, None);
    }

    #[test]
    fn idp_client_id_read() {
        let mut body = update(json!("rotate"));
        body["idpClientId"] = json!("0oa1");
        let request = parse(body).unwrap();
        assert_eq!(request.idp_client_id.as_deref(), Some("0oa1"));
    }

    #[test]
    fn encryption_parsed() {
        let mut body = provision();
        body["encryption"] = json!({ "key": RFC7638_SPKI_PEM, "algorithm": "PKCS" });
        let request = parse(body).unwrap();
        let encryption = request.encryption.unwrap();
        assert_eq!(encryption.algorithm.as_str(), "PKCS");
        assert_eq!(encryption.hash.as_str(), "SHA256");
    }

    #[test]
    fn encryption_of_wrong_type_rejected() {
        let mut body = provision();
        body["encryption"] = json!("RSA-OAEP");
        let error = parse(body).unwrap_err();
        assert_eq!(error.field, "encryption");
    }

    #[test]
    fn action_codes_round_trip() {
        for action in [
            CredentialAction::Enable,
            CredentialAction::Suspend,
            CredentialAction::Rotate,
            CredentialAction::Expire,
        ] {
            let code = i64::from(action.code());
            assert_eq!(CredentialAction::from_code(code), Some(action));
        }
    }

    #[test]
    fn job_names() {
        assert_eq!(Job::Provision.as_str(), "provision");
        assert_eq!(Job::Rotate.to_string(), "rotate");
    }
}

//! The Okta client registration body (RFC 7591 metadata as Okta's DCR API takes it).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ValidationError;
use super::naming::{client_name, NameTemplate};
use super::request::{Job, Request};

/// Client metadata sent in `POST /oauth2/v1/clients`. Built from a validated request by
/// [`crate::contract::build_registration`], so every value here already passed the mapping rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientRegistration {
    /// Deterministic name, at most 100 characters; the key for finding the client again.
    pub client_name: String,
    /// `web`, `browser`, `native` or `service`.
    pub application_type: String,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    /// `client_secret_basic`, `client_secret_post`, `client_secret_jwt`, `private_key_jwt` or
    /// `none`.
    pub token_endpoint_auth_method: String,
    /// Public keys only (a JWKS object); private members are rejected before this is built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
}

impl ClientRegistration {
    /// Reports whether Okta issues a client secret for this registration.
    pub fn has_secret(&self) -> bool {
        matches!(
            self.token_endpoint_auth_method.as_str(),
            "client_secret_basic" | "client_secret_post" | "client_secret_jwt"
        )
    }
}

/// Builds the Okta registration body of a provision request. Scopes are not part of it,
/// because Okta's DCR body has no scope member.
pub fn build_registration(
    request: &Request,
    template: &NameTemplate,
) -> Result<ClientRegistration, ValidationError> {
    if request.job != Job::Provision {
        return Err(ValidationError::invalid(
            "operation",
            request.operation.as_str(),
            "a client registration is built only for `provision` requests",
        ));
    }
    let data = request
        .credential_data
        .as_ref()
        .ok_or_else(|| ValidationError::missing("credentialData", "required for `provision`"))?;
    Ok(ClientRegistration {
        client_name: client_name(request, template)?,
        application_type: data.application_type.as_str().to_owned(),
        grant_types: names(&data.grant_types, |grant| grant.as_str()),
        response_types: names(&data.response_types, |response| response.as_str()),
        redirect_uris: data.redirect_uris.clone(),
        token_endpoint_auth_method: data.token_endpoint_auth_method.as_str().to_owned(),
        jwks: data.jwks.clone(),
        jwks_uri: data.jwks_uri.clone(),
    })
}

fn names<T: Copy>(items: &[T], name: impl Fn(T) -> &'static str) -> Vec<String> {
    items.iter().map(|item| name(*item).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::decode::Envelope;
    use super::super::naming::id_short;
    use super::super::request::parse_request;
    use super::*;

    fn request(credential_data: Value) -> Request {
        let body = json!({
            "operation": "provision",
            "id": "cred-1",
            "name": "checkout-key",
            "managedApplicationName": "Shop",
            "credentialData": credential_data,
        });
        let Value::Object(body) = body else {
            panic!("body is an object");
        };
        let envelope = Envelope {
            request_id: "r1".to_owned(),
            body,
        };
        parse_request(&envelope).unwrap()
    }

    fn build(credential_data: Value) -> ClientRegistration {
        build_registration(&request(credential_data), &NameTemplate::default()).unwrap()
    }

    #[test]
    fn default_registration() {
        let registration = build(json!({}));
        let expected = ClientRegistration {
            client_name: format!("Shop checkout-key {}", id_short("cred-1")),
            application_type: "service".to_owned(),
            grant_types: vec!["client_credentials".to_owned()],
            response_types: vec!["token".to_owned()],
            redirect_uris: Vec::new(),
            token_endpoint_auth_method: "client_secret_basic".to_owned(),
            jwks: None,
            jwks_uri: None,
        };
        assert_eq!(registration, expected);
        assert!(registration.has_secret());
    }

    #[test]
    fn vocabularies_give_same_registration() {
        let engage = build(json!({
            "grantType": "authorization_code",
            "tokenAuthMethod": "client_secret_post",
            "scopes": ["orders.read"],
            "redirectURLs": ["https://app.example.test/cb"],
        }));
        let rfc7591 = build(json!({
            "grant_types": ["authorization_code"],
            "token_endpoint_auth_method": "client_secret_post",
            "scope": "orders.read",
            "redirect_uris": ["https://app.example.test/cb"],
        }));
        assert_eq!(engage, rfc7591);
    }

    #[test]
    fn registration_json_has_no_scope() {
        let registration = build(json!({ "scope": "orders.read" }));
        let value = serde_json::to_value(&registration).unwrap();
        assert_eq!(value.get("scope"), None);
    }

    #[test]
    fn client_name_from_template_not_credential_data() {
        let registration = build(json!({ "client_name": "Chosen by consumer" }));
        assert_eq!(
            registration.client_name,
            format!("Shop checkout-key {}", id_short("cred-1"))
        );
    }

    #[test]
    fn public_client_registration() {
        let registration = build(json!({
            "grantType": "authorization_code",
            "redirectURLs": ["http://localhost:8080/cb"],
        }));
        assert_eq!(registration.application_type, "browser");
        assert_eq!(registration.token_endpoint_auth_method, "none");
        assert_eq!(registration.response_types, vec!["code"]);
        assert!(!registration.has_secret());
    }

    #[test]
    fn deprovision_has_no_registration() {
        let mut request = request(json!({}));
        request.job = Job::Deprovision;
        let error = build_registration(&request, &NameTemplate::default()).unwrap_err();
        assert_eq!(error.field, "operation");
    }

    #[test]
    fn long_name_rejected() {
        let mut request = request(json!({}));
        request.name = Some("n".repeat(90));
        let error = build_registration(&request, &NameTemplate::default()).unwrap_err();
        assert_eq!(error.field, "client_name");
    }

    #[test]
    fn client_name_for_deprovision() {
        let body = json!({
            "operation": "deprovision",
            "id": "cred-1",
            "name": "checkout-key",
            "managedApplicationName": "Shop",
            "teamName": "Payments",
        });
        let Value::Object(body) = body else {
            panic!("body is an object");
        };
        let envelope = Envelope {
            request_id: "r2".to_owned(),
            body,
        };
        let request = parse_request(&envelope).unwrap();
        let name = client_name(&request, &NameTemplate::default()).unwrap();
        assert_eq!(
            name,
            format!("Shop Payments checkout-key {}", id_short("cred-1"))
        );
    }

    #[test]
    fn client_name_names_missing_fields() {
        let body = json!({ "operation": "deprovision", "id": "cred-1" });
        let Value::Object(body) = body else {
            panic!("body is an object");
        };
        let envelope = Envelope {
            request_id: "r2".to_owned(),
            body,
        };
        let request = parse_request(&envelope).unwrap();
        let error = client_name(&request, &NameTemplate::default()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("`name` and `managedApplicationName`"),
            "{error}"
        );
    }
}

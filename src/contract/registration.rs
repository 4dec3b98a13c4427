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

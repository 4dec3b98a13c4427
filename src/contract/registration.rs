//! The Okta client registration body (RFC 7591 metadata as Okta's DCR API takes it).

use serde::{Deserialize, Serialize};
use serde_json::Value;

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

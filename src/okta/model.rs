//! Okta response bodies the worker reads.

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// An OAuth 2.0 client as Okta's DCR API returns it (`POST`/`GET /oauth2/v1/clients`,
/// `POST .../lifecycle/newSecret`). Okta shows `client_secret` only in the response that
/// created or rotated it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredClient {
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    #[serde(default)]
    pub client_name: String,
    /// Seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id_issued_at: Option<i64>,
    /// Seconds since the Unix epoch; 0 means the secret does not expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_type: Option<String>,
}

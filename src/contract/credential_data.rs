//! The normalized `credentialData` of a provision request: the OAuth 2.0 client that Okta
//! will register, after both vocabularies are merged and the mapping rules have run.

use std::fmt;

use serde_json::{Map, Value};

use super::error::ValidationError;
use super::mapping;
use super::vocabulary::read_settings;

/// An OAuth 2.0 grant type this worker registers. Okta also supports `password` and SAML
/// bearer grants, which are rejected here as unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GrantType {
    /// `client_credentials`: a machine client with no user.
    ClientCredentials,
    /// `authorization_code`, with PKCE for public clients.
    AuthorizationCode,
    /// `refresh_token`; only together with `authorization_code`.
    RefreshToken,
    /// `implicit`.
    Implicit,
}

impl GrantType {
    /// Returns the RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::Implicit => "implicit",
        }
    }

    /// Parses an RFC 7591 name; names are case-sensitive.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "client_credentials" => Some(Self::ClientCredentials),
            "authorization_code" => Some(Self::AuthorizationCode),
            "refresh_token" => Some(Self::RefreshToken),
            "implicit" => Some(Self::Implicit),
            _ => None,
        }
    }
}

/// A token endpoint authentication method (RFC 7591 section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// `client_secret_basic`: the secret in an HTTP Basic header.
    ClientSecretBasic,
    /// `client_secret_post`: the secret in the form body.
    ClientSecretPost,
    /// `client_secret_jwt`: a JWT signed with the secret.
    ClientSecretJwt,
    /// `private_key_jwt`: a JWT signed with a key from the registered JWKS.
    PrivateKeyJwt,
    /// `none`: a public client (PKCE).
    None,
}

impl AuthMethod {
    /// Returns the RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretJwt => "client_secret_jwt",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::None => "none",
        }
    }

    /// Parses an RFC 7591 name; names are case-sensitive.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            "client_secret_post" => Some(Self::ClientSecretPost),
            "client_secret_jwt" => Some(Self::ClientSecretJwt),
            "private_key_jwt" => Some(Self::PrivateKeyJwt),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    /// Reports whether Okta issues a client secret for this method.
    pub fn uses_secret(self) -> bool {
        matches!(
            self,
            Self::ClientSecretBasic | Self::ClientSecretPost | Self::ClientSecretJwt
        )
    }
}

/// Okta's `application_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApplicationType {
    /// A confidential client with a user: authorization_code plus a secret or private key.
    Web,
    /// A public single-page client: authorization_code with PKCE, or implicit.
    Browser,
    /// A mobile or desktop client; custom-scheme redirect URIs are allowed.
    Native,
    /// A machine client: client_credentials only.
    Service,
}

impl ApplicationType {
    /// Returns Okta's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::Browser => "browser",
            Self::Native => "native",
            Self::Service => "service",
        }
    }

    /// Parses Okta's name; names are case-sensitive.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "web" => Some(Self::Web),
            "browser" => Some(Self::Browser),
            "native" => Some(Self::Native),
            "service" => Some(Self::Service),
            _ => None,
        }
    }
}

/// An OAuth 2.0 response type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResponseType {
    /// `code`, for authorization_code.
    Code,
    /// `token`, for implicit and (in Okta's metadata) client_credentials.
    Token,
    /// `id_token`, for implicit.
    IdToken,
}

impl ResponseType {
    /// Returns the OAuth 2.0 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Code => "code",
            Self::Token => "token",
            Self::IdToken => "id_token",
        }
    }

    /// Parses an OAuth 2.0 name; names are case-sensitive.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "code" => Some(Self::Code),
            "token" => Some(Self::Token),
            "id_token" => Some(Self::IdToken),
            _ => None,
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

display_as_str!(GrantType, AuthMethod, ApplicationType, ResponseType);

/// The OAuth 2.0 client described by a provision request, validated against the mapping
/// rules.
///
/// Defaults, when `credentialData` names nothing: grant `client_credentials` with
/// `client_secret_basic`. The method defaults to `private_key_jwt` when keys are given,
/// and to `none` (a public client) for redirect grants unless `application_type` is `web`.
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialData {
    /// Grant types without duplicates, in request order.
    pub grant_types: Vec<GrantType>,
    /// Token endpoint authentication method.
    pub token_endpoint_auth_method: AuthMethod,
    /// Okta application type.
    pub application_type: ApplicationType,
    /// Response types in the order code, token, id_token.
    pub response_types: Vec<ResponseType>,
    /// Checked redirect URIs, empty for client_credentials.
    pub redirect_uris: Vec<String>,
    /// Requested scopes without duplicates. Okta's DCR body has no scope member, so the
    /// worker only validates them and sends them nowhere.
    pub scopes: Vec<String>,
    /// Public JWKS for private_key_jwt, with every key's `kid` set.
    pub jwks: Option<Value>,
    /// JWKS URL for private_key_jwt (absolute https).
    pub jwks_uri: Option<String>,
    /// `client_name` as requested, checked to be at most 100 characters without control
    /// characters. It does not become the Okta client name, because that name comes from the
    /// name template so that the worker can find the client again.
    pub client_name: Option<String>,
}

impl CredentialData {
    /// Parses and validates `credentialData` found at JSON path `prefix`.
    pub fn parse(map: &Map<String, Value>, prefix: &str) -> Result<Self, ValidationError> {
        let requested = read_settings(map, prefix)?;
        mapping::resolve(requested, prefix)
    }

    /// Reports whether Okta issues a client secret for this client.
    pub fn issues_secret(&self) -> bool {
        self.token_endpoint_auth_method.uses_secret()
    }
}

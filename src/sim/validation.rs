//! Validation of a `POST /oauth2/v1/clients` body, following the rules Okta applies to OAuth 2.0
//! client metadata, and the defaults RFC 7591 gives to omitted fields.

use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use crate::contract::registration::ClientRegistration;

/// Application types Okta accepts in `application_type`.
const APPLICATION_TYPES: [&str; 4] = ["web", "browser", "native", "service"];

/// Grant types Okta accepts for OAuth 2.0 clients.
const GRANT_TYPES: [&str; 11] = [
    "authorization_code",
    "implicit",
    "refresh_token",
    "client_credentials",
    "password",
    "interaction_code",
    "urn:ietf:params:oauth:grant-type:device_code",
    "urn:ietf:params:oauth:grant-type:token-exchange",
    "urn:ietf:params:oauth:grant-type:saml2-bearer",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
    "urn:openid:params:grant-type:ciba",
];

/// Client authentication methods Okta accepts in `token_endpoint_auth_method`.
const AUTH_METHODS: [&str; 5] = [
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
    "private_key_jwt",
    "none",
];

/// JWK members that carry private key material (RFC 7518 sections 6.2.2 and 6.3.2).
const PRIVATE_JWK_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

/// A reason Okta would reject client metadata. The `Display` text is the `error_description`
/// of the 400 `invalid_client_metadata` response and names the offending value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum RegistrationError {
    #[error("invalid client metadata: {0}")]
    InvalidJson(String),
    #[error("'client_name' is required and must not be empty")]
    MissingClientName,
    #[error("'application_type' must be one of web, browser, native, service; got '{0}'")]
    UnknownApplicationType(String),
    #[error("'grant_types' contains an unknown grant type '{0}'")]
    UnknownGrantType(String),
    #[error("'response_types' contains an unknown response type '{0}'")]
    UnknownResponseType(String),
    #[error("'response_types' value '{response_type}' requires grant type '{grant_type}'")]
    ResponseTypeWithoutGrant {
        response_type: String,
        grant_type: &'static str,
    },
    #[error("service applications support only the 'client_credentials' grant type; got '{0}'")]
    ServiceGrantType(String),
    #[error("service applications require the 'client_credentials' grant type")]
    ServiceWithoutGrant,
    #[error("grant type 'client_credentials' is only valid for service applications; got application_type '{0}'")]
    ClientCredentialsOutsideService(String),
    #[error("grant type '{0}' requires at least one value in 'redirect_uris'")]
    MissingRedirectUri(String),
    #[error("'redirect_uris' must contain absolute URIs; got '{0}'")]
    RelativeRedirectUri(String),
    #[error("'redirect_uris' must not contain a fragment; got '{0}'")]
    RedirectUriFragment(String),
    #[error("'token_endpoint_auth_method' has an unknown value '{0}'")]
    UnknownAuthMethod(String),
    #[error("browser applications must use token_endpoint_auth_method 'none'; got '{0}'")]
    BrowserAuthMethod(String),
    #[error("token_endpoint_auth_method 'private_key_jwt' requires 'jwks' or 'jwks_uri'")]
    MissingKeys,
    #[error("'jwks' must be an object with a 'keys' array of JWK objects")]
    InvalidJwks,
    #[error("'jwks' key '{kid}' contains private key member '{member}'; send public keys only")]
    PrivateKeyMember { kid: String, member: &'static str },
    #[error("'jwks_uri' must be an absolute URI; got '{0}'")]
    RelativeJwksUri(String),
}

/// The registration body as sent, before defaults: every field may be missing.
#[derive(Debug, Deserialize)]
struct RegistrationRequest {
    client_name: Option<String>,
    application_type: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    token_endpoint_auth_method: Option<String>,
    jwks: Option<Value>,
    jwks_uri: Option<String>,
}

/// Validates a registration body and returns the metadata to store, with RFC 7591 defaults for
/// omitted fields: `application_type` `web`, `grant_types` `["authorization_code"]`,
/// `token_endpoint_auth_method` `client_secret_basic`, and `response_types` derived from the
/// grant types. Unknown fields are ignored, as Okta ignores them.
pub(crate) fn validate_registration(body: Value) -> Result<ClientRegistration, RegistrationError> {
    let request: RegistrationRequest = serde_json::from_value(body)
        .map_err(|error| RegistrationError::InvalidJson(error.to_string()))?;

    let client_name = request
        .client_name
        .filter(|name| !name.trim().is_empty())
        .ok_or(RegistrationError::MissingClientName)?;
    let application_type = request.application_type.unwrap_or_else(|| "web".into());
    let grant_types = request
        .grant_types
        .unwrap_or_else(|| vec!["authorization_code".into()]);
    let response_types = request
        .response_types
        .unwrap_or_else(|| default_response_types(&grant_types));
    let token_endpoint_auth_method = request
        .token_endpoint_auth_method
        .unwrap_or_else(|| "client_secret_basic".into());

    check_application_type(&application_type)?;
    check_grant_types(&application_type, &grant_types)?;
    check_response_types(&response_types, &grant_types)?;
    check_redirect_uris(&grant_types, &request.redirect_uris)?;
    check_auth_method(&application_type, &token_endpoint_auth_method)?;
    check_keys(
        &token_endpoint_auth_method,
        request.jwks.as_ref(),
        request.jwks_uri.as_deref(),
    )?;

    Ok(ClientRegistration {
        client_name,
        application_type,
        grant_types,
        response_types,
        redirect_uris: request.redirect_uris,
        token_endpoint_auth_method,
        jwks: request.jwks,
        jwks_uri: request.jwks_uri,
    })
}

fn default_response_types(grant_types: &[String]) -> Vec<String> {
    let has = |grant: &str| grant_types.iter().any(|g| g == grant);
    if has("authorization_code") {
        vec!["code".into()]
    } else if has("implicit") || has("client_credentials") {
        vec!["token".into()]
    } else {
        Vec::new()
    }
}

fn check_application_type(application_type: &str) -> Result<(), RegistrationError> {
    if APPLICATION_TYPES.contains(&application_type) {
        Ok(())
    } else {
        Err(RegistrationError::UnknownApplicationType(
            application_type.into(),
        ))
    }
}

fn check_grant_types(
    application_type: &str,
    grant_types: &[String],
) -> Result<(), RegistrationError> {
    for grant in grant_types {
        if !GRANT_TYPES.contains(&grant.as_str()) {
            return Err(RegistrationError::UnknownGrantType(grant.clone()));
        }
        if application_type == "service" && grant != "client_credentials" {
            return Err(RegistrationError::ServiceGrantType(grant.clone()));
        }
        if application_type != "service" && grant == "client_credentials" {
            return Err(RegistrationError::ClientCredentialsOutsideService(
                application_type.into(),
            ));
        }
    }
    if application_type == "service" && grant_types.is_empty() {
        return Err(RegistrationError::ServiceWithoutGrant);
    }
    Ok(())
}

/// Checks the RFC 7591 section 2.1 pairing of response types with grant types: `code` needs
/// `authorization_code`, and `token` or `id_token` need `implicit`. Service apps may also use
/// `token` with `client_credentials`, as Okta registers them.
fn check_response_types(
    response_types: &[String],
    grant_types: &[String],
) -> Result<(), RegistrationError> {
    let has = |grant: &str| grant_types.iter().any(|g| g == grant);
    for response_type in response_types {
        let required = match response_type.as_str() {
            "code" => "authorization_code",
            "token" if has("client_credentials") => "client_credentials",
            "token" | "id_token" => "implicit",
            other => return Err(RegistrationError::UnknownResponseType(other.into())),
        };
        if !has(required) {
            return Err(RegistrationError::ResponseTypeWithoutGrant {
                response_type: response_type.clone(),
                grant_type: required,
            });
        }
    }
    Ok(())
}

fn check_redirect_uris(
    grant_types: &[String],
    redirect_uris: &[String],
) -> Result<(), RegistrationError> {
    let redirecting_grant = grant_types
        .iter()
        .find(|grant| *grant == "authorization_code" || *grant == "implicit");
    if let Some(grant) = redirecting_grant {
        if redirect_uris.is_empty() {
            return Err(RegistrationError::MissingRedirectUri(grant.clone()));
        }
    }
    for uri in redirect_uris {
        let parsed = url::Url::parse(uri)
            .map_err(|_| RegistrationError::RelativeRedirectUri(uri.clone()))?;
        if parsed.fragment().is_some() {
            return Err(RegistrationError::RedirectUriFragment(uri.clone()));
        }
    }
    Ok(())
}

fn check_auth_method(application_type: &str, method: &str) -> Result<(), RegistrationError> {
    if !AUTH_METHODS.contains(&method) {
        return Err(RegistrationError::UnknownAuthMethod(method.into()));
    }
    if application_type == "browser" && method != "none" {
        return Err(RegistrationError::BrowserAuthMethod(method.into()));
    }
    Ok(())
}

fn check_keys(
    method: &str,
    jwks: Option<&Value>,
    jwks_uri: Option<&str>,
) -> Result<(), RegistrationError> {
    if method == "private_key_jwt" && jwks.is_none() && jwks_uri.is_none() {
        return Err(RegistrationError::MissingKeys);
    }
    if let Some(jwks) = jwks {
        check_public_jwks(jwks)?;
    }
    if let Some(uri) = jwks_uri {
        url::Url::parse(uri).map_err(|_| RegistrationError::RelativeJwksUri(uri.into()))?;
    }
    Ok(())
}

fn check_public_jwks(jwks: &Value) -> Result<(), RegistrationError> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(RegistrationError::InvalidJwks)?;
    for key in keys {
        let members = key.as_object().ok_or(RegistrationError::InvalidJwks)?;
        let private_member = PRIVATE_JWK_MEMBERS
            .iter()
            .find(|member| members.contains_key(**member));
        if let Some(member) = private_member {
            let kid = members
                .get("kid")
                .and_then(Value::as_str)
                .unwrap_or("(no kid)");
            return Err(RegistrationError::PrivateKeyMember {
                kid: kid.into(),
                member,
            });
        }
    }
    Ok(())
}

//! The mapping rules from a consumer's requested settings to Okta client metadata. Every
//! rule runs before Okta is called, and every rejection names the field and the value.
//!
//! - `client_credentials` stays alone and makes a `service` client with response type
//!   `token`. It needs a secret-based method or `private_key_jwt`, and no redirect URIs.
//! - `authorization_code` (optionally with `refresh_token`) makes a public `browser` client
//!   (PKCE, method `none`) unless a secret-based method or `private_key_jwt` is given, which
//!   makes a `web` client. `native` is used only when requested explicitly.
//! - `implicit` makes a `browser` client with response types `token` and `id_token`.
//! - An explicit `application_type` that contradicts the grants or the method is rejected.
//! - `private_key_jwt` needs `jwks` or a JWKS URI, and keys need `private_key_jwt`.

use serde_json::Value;

use super::credential_data::{
    ApplicationType, AuthMethod, CredentialData, GrantType, ResponseType,
};
use super::error::ValidationError;
use super::jwks::normalize_jwks;
use super::naming::check_client_name;
use super::uris::{check_jwks_uri, check_redirect_uri};
use super::vocabulary::{RequestedSettings, Sourced};

/// Applies the mapping rules to the settings read from `credentialData` at `prefix`.
pub(crate) fn resolve(
    requested: RequestedSettings,
    prefix: &str,
) -> Result<CredentialData, ValidationError> {
    let grants = parse_grants(&requested)?;
    let method = parse_method(&requested)?;
    let application_type = parse_application_type(&requested)?;
    let keys = parse_keys(&requested)?;
    let context = Context {
        prefix,
        requested: &requested,
        grants: &grants,
        method,
        application_type,
        has_keys: keys.jwks.is_some() || keys.jwks_uri.is_some(),
    };
    let profile = if grants.contains(&GrantType::ClientCredentials) {
        context.service_profile()?
    } else {
        context.redirect_profile()?
    };
    context.check_keys_fit_method(profile.method)?;
    let redirect_uris = context.redirect_uris(profile.application_type)?;
    let client_name = match &requested.client_name {
        Some(name) => {
            check_client_name(&name.value, &name.path, "shorten or fix `client_name`")?;
            Some(name.value.clone())
        }
        None => None,
    };
    Ok(CredentialData {
        grant_types: grants,
        token_endpoint_auth_method: profile.method,
        application_type: profile.application_type,
        response_types: profile.response_types,
        redirect_uris,
        scopes: requested
            .scopes
            .map(|scopes| scopes.value)
            .unwrap_or_default(),
        jwks: keys.jwks,
        jwks_uri: keys.jwks_uri,
        client_name,
    })
}

/// What the rules decide about the client.
struct Profile {
    application_type: ApplicationType,
    method: AuthMethod,
    response_types: Vec<ResponseType>,
}

/// Validated key material for private_key_jwt.
struct Keys {
    jwks: Option<Value>,
    jwks_uri: Option<String>,
}

/// The parsed settings the rules look at, with the JSON paths they came from.
struct Context<'a> {
    prefix: &'a str,
    requested: &'a RequestedSettings,
    grants: &'a [GrantType],
    method: Option<(AuthMethod, &'a str)>,
    application_type: Option<(ApplicationType, &'a str)>,
    has_keys: bool,
}

impl Context<'_> {
    fn service_profile(&self) -> Result<Profile, ValidationError> {
        let method = self.method_or_default(AuthMethod::ClientSecretBasic);
        if let Some((AuthMethod::None, path)) = self.method {
            return Err(ValidationError::invalid(
                path,
                "none",
                "client_credentials clients must authenticate; use client_secret_basic, \
                 client_secret_post, client_secret_jwt or private_key_jwt",
            ));
        }
        if let Some((application_type, path)) = self.application_type {
            if application_type != ApplicationType::Service {
                return Err(ValidationError::invalid(
                    path,
                    application_type.as_str(),
                    "client_credentials clients are `service` applications",
                ));
            }
        }
        self.reject_redirect_uris()?;
        self.check_service_response_types()?;
        Ok(Profile {
            application_type: ApplicationType::Service,
            method,
            response_types: vec![ResponseType::Token],
        })
    }

    fn redirect_profile(&self) -> Result<Profile, ValidationError> {
        let has_code = self.grants.contains(&GrantType::AuthorizationCode);
        if self.grants.contains(&GrantType::RefreshToken) && !has_code {
            return Err(ValidationError::invalid_field(
                self.grants_path(),
                "`refresh_token` needs `authorization_code`",
            ));
        }
        let web_default = matches!(self.application_type, Some((ApplicationType::Web, _)));
        let method = self.method_or_default(if web_default {
            AuthMethod::ClientSecretBasic
        } else {
            AuthMethod::None
        });
        let application_type = self.redirect_application_type(method, has_code)?;
        let response_types = self.redirect_response_types(has_code)?;
        Ok(Profile {
            application_type,
            method,
            response_types,
        })
    }

    /// Picks the application type for redirect grants, or checks the explicit one.
    fn redirect_application_type(
        &self,
        method: AuthMethod,
        has_code: bool,
    ) -> Result<ApplicationType, ValidationError> {
        let public = method == AuthMethod::None;
        let Some((requested, path)) = self.application_type else {
            if public {
                return Ok(ApplicationType::Browser);
            }
            if has_code {
                return Ok(ApplicationType::Web);
            }
            return Err(ValidationError::invalid(
                self.method_path(),
                method.as_str(),
                "`implicit` without `authorization_code` makes a public browser client; use \
                 token_endpoint_auth_method `none` or add `authorization_code`",
            ));
        };
        let reject =
            |message: String| Err(ValidationError::invalid(path, requested.as_str(), message));
        match requested {
            ApplicationType::Service => reject(format!(
                "`service` clients use only client_credentials, but the grants are {}",
                grant_list(self.grants)
            )),
            ApplicationType::Web if public => reject(
                "`web` clients authenticate at the token endpoint, but the method is `none`; \
                 use `browser` or `native` for a public client"
                    .to_owned(),
            ),
            ApplicationType::Web | ApplicationType::Native if !has_code => reject(format!(
                "Okta `{requested}` clients need `authorization_code`"
            )),
            ApplicationType::Browser if !public => reject(format!(
                "`browser` clients are public and use token_endpoint_auth_method `none`, but \
                 the method is `{method}`"
            )),
            _ => Ok(requested),
        }
    }

    /// Returns the response types implied by the grants, or checks the requested ones.
    fn redirect_response_types(
        &self,
        has_code: bool,
    ) -> Result<Vec<ResponseType>, ValidationError> {
        let has_implicit = self.grants.contains(&GrantType::Implicit);
        let Some(requested) = &self.requested.response_types else {
            let mut implied = Vec::new();
            if has_code {
                implied.push(ResponseType::Code);
            }
            if has_implicit {
                implied.extend([ResponseType::Token, ResponseType::IdToken]);
            }
            return Ok(implied);
        };
        let types = parse_response_types(requested)?;
        for (index, response_type) in types.iter().enumerate() {
            let allowed = match response_type {
                ResponseType::Code => has_code,
                ResponseType::Token | ResponseType::IdToken => has_implicit,
            };
            if !allowed {
                let needed = match response_type {
                    ResponseType::Code => "authorization_code",
                    _ => "implicit",
                };
                return Err(ValidationError::invalid(
                    requested.item_path(index),
                    response_type.as_str(),
                    format!("response type `{response_type}` needs grant `{needed}`"),
                ));
            }
        }
        if has_code && !types.contains(&ResponseType::Code) {
            return Err(ValidationError::invalid_field(
                requested.path.clone(),
                "`authorization_code` needs response type `code`",
            ));
        }
        let has_implicit_type = types.iter().any(|t| *t != ResponseType::Code);
        if has_implicit && !has_implicit_type {
            return Err(ValidationError::invalid_field(
                requested.path.clone(),
                "`implicit` needs response type `token`, `id_token` or both",
            ));
        }
        let mut sorted = types;
        sorted.sort();
        sorted.dedup();
        Ok(sorted)
    }

    fn check_service_response_types(&self) -> Result<(), ValidationError> {
        let Some(requested) = &self.requested.response_types else {
            return Ok(());
        };
        let types = parse_response_types(requested)?;
        match types.iter().position(|t| *t != ResponseType::Token) {
            Some(index) => Err(ValidationError::invalid(
                requested.item_path(index),
                types[index].as_str(),
                "client_credentials clients use response type `token` only",
            )),
            None => Ok(()),
        }
    }

    fn reject_redirect_uris(&self) -> Result<(), ValidationError> {
        match &self.requested.redirect_uris {
            Some(uris) if !uris.value.is_empty() => Err(ValidationError::invalid(
                uris.item_path(0),
                &uris.value[0],
                "client_credentials clients do not use redirect URIs; remove them",
            )),
            _ => Ok(()),
        }
    }

    /// Checks the redirect URIs of a client with redirect grants; service clients have none.
    fn redirect_uris(
        &self,
        application_type: ApplicationType,
    ) -> Result<Vec<String>, ValidationError> {
        if application_type == ApplicationType::Service {
            return Ok(Vec::new());
        }
        let message = "authorization_code and implicit clients need at least one redirect URI";
        let uris = match &self.requested.redirect_uris {
            None => {
                let path = format!("{}.redirect_uris", self.prefix);
                return Err(ValidationError::missing(path, message));
            }
            Some(uris) if uris.value.is_empty() => {
                return Err(ValidationError::invalid_field(uris.path.clone(), message));
            }
            Some(uris) => uris,
        };
        let native = application_type == ApplicationType::Native;
        for (index, uri) in uris.value.iter().enumerate() {
            check_redirect_uri(uri, &uris.item_path(index), native)?;
        }
        let mut unique: Vec<String> = Vec::with_capacity(uris.value.len());
        for uri in &uris.value {
            if !unique.contains(uri) {
                unique.push(uri.clone());
            }
        }
        Ok(unique)
    }

    fn check_keys_fit_method(&self, method: AuthMethod) -> Result<(), ValidationError> {
        if method == AuthMethod::PrivateKeyJwt && !self.has_keys {
            return Err(ValidationError::missing(
                format!("{}.jwks", self.prefix),
                "private_key_jwt needs the client's public keys in `jwks`, or a URL in \
                 `jwksURI` or `jwks_uri`",
            ));
        }
        if method != AuthMethod::PrivateKeyJwt && self.has_keys {
            return Err(ValidationError::invalid_field(
                self.keys_path(),
                format!(
                    "public keys are used only with token_endpoint_auth_method \
                     `private_key_jwt`, but the method is `{method}`"
                ),
            ));
        }
        Ok(())
    }

    /// Returns the requested method, or `private_key_jwt` when keys are given, or `default`.
    fn method_or_default(&self, default: AuthMethod) -> AuthMethod {
        match self.method {
            Some((method, _)) => method,
            None if self.has_keys => AuthMethod::PrivateKeyJwt,
            None => default,
        }
    }

    fn method_path(&self) -> String {
        match self.method {
            Some((_, path)) => path.to_owned(),
            None => format!("{}.token_endpoint_auth_method", self.prefix),
        }
    }

    fn grants_path(&self) -> String {
        match &self.requested.grant_types {
            Some(grants) => grants.path.clone(),
            None => format!("{}.grant_types", self.prefix),
        }
    }

    fn keys_path(&self) -> String {
        let requested = self.requested;
        let path = requested.jwks.as_ref().map(|jwks| jwks.path.clone());
        path.or_else(|| requested.jwks_uri.as_ref().map(|uri| uri.path.clone()))
            .unwrap_or_else(|| format!("{}.jwks", self.prefix))
    }
}

fn parse_grants(requested: &RequestedSettings) -> Result<Vec<GrantType>, ValidationError> {
    let Some(names) = &requested.grant_types else {
        return Ok(vec![GrantType::ClientCredentials]);
    };
    if names.value.is_empty() {
        return Err(ValidationError::invalid_field(
            names.path.clone(),
            "at least one grant type is needed",
        ));
    }
    let mut grants = Vec::with_capacity(names.value.len());
    for (index, name) in names.value.iter().enumerate() {
        let grant = GrantType::parse(name).ok_or_else(|| {
            ValidationError::invalid(
                names.item_path(index),
                name,
                "unknown grant type; use client_credentials, authorization_code, \
                 refresh_token or implicit",
            )
        })?;
        if !grants.contains(&grant) {
            grants.push(grant);
        }
    }
    if grants.contains(&GrantType::ClientCredentials) && grants.len() > 1 {
        let others: Vec<GrantType> = grants
            .iter()
            .copied()
            .filter(|grant| *grant != GrantType::ClientCredentials)
            .collect();
        return Err(ValidationError::invalid_field(
            names.path.clone(),
            format!(
                "`client_credentials` cannot be combined with {}; ask for a separate \
                 credential for each",
                grant_list(&others)
            ),
        ));
    }
    Ok(grants)
}

fn parse_method(
    requested: &RequestedSettings,
) -> Result<Option<(AuthMethod, &str)>, ValidationError> {
    let Some(name) = &requested.auth_method else {
        return Ok(None);
    };
    match AuthMethod::parse(&name.value) {
        Some(method) => Ok(Some((method, name.path.as_str()))),
        None => Err(ValidationError::invalid(
            name.path.clone(),
            &name.value,
            "unknown token endpoint auth method; use client_secret_basic, client_secret_post, \
             client_secret_jwt, private_key_jwt or none",
        )),
    }
}

fn parse_application_type(
    requested: &RequestedSettings,
) -> Result<Option<(ApplicationType, &str)>, ValidationError> {
    let Some(name) = &requested.application_type else {
        return Ok(None);
    };
    match ApplicationType::parse(&name.value) {
        Some(application_type) => Ok(Some((application_type, name.path.as_str()))),
        None => Err(ValidationError::invalid(
            name.path.clone(),
            &name.value,
            "unknown application type; use web, browser, native or service",
        )),
    }
}

fn parse_keys(requested: &RequestedSettings) -> Result<Keys, ValidationError> {
    if let (Some(jwks), Some(uri)) = (&requested.jwks, &requested.jwks_uri) {
        return Err(ValidationError::invalid_field(
            jwks.path.clone(),
            format!(
                "send either `{}` or `{}`, not both (RFC 7591 section 2)",
                jwks.path, uri.path
            ),
        ));
    }
    let jwks = match &requested.jwks {
        Some(jwks) => Some(normalize_jwks(&jwks.value, &jwks.path)?),
        None => None,
    };
    let jwks_uri = match &requested.jwks_uri {
        Some(uri) => {
            check_jwks_uri(&uri.value, &uri.path)?;
            Some(uri.value.clone())
        }
        None => None,
    };
    Ok(Keys { jwks, jwks_uri })
}

fn parse_response_types(
    requested: &Sourced<Vec<String>>,
) -> Result<Vec<ResponseType>, ValidationError> {
    requested
        .value
        .iter()
        .enumerate()
        .map(|(index, name)| {
            ResponseType::parse(name).ok_or_else(|| {
                ValidationError::invalid(
                    requested.item_path(index),
                    name,
                    "unknown response type; use code, token or id_token",
                )
            })
        })
        .collect()
}

/// Formats grants for a message, such as "`authorization_code` and `implicit`".
fn grant_list(grants: &[GrantType]) -> String {
    let names: Vec<String> = grants.iter().map(|grant| format!("`{grant}`")).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

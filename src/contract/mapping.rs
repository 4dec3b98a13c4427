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
    let rules = Rules {
        prefix,
        requested: &requested,
        grants: &grants,
        method,
        application_type,
        has_keys: keys.jwks.is_some() || keys.jwks_uri.is_some(),
    };
    let profile = if grants.contains(&GrantType::ClientCredentials) {
        rules.service_profile()?
    } else {
        rules.redirect_profile()?
    };
    rules.check_keys_fit_method(profile.method)?;
    let redirect_uris = rules.redirect_uris(profile.application_type)?;
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

/// The application type, method and response types the rules chose.
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
struct Rules<'a> {
    prefix: &'a str,
    requested: &'a RequestedSettings,
    grants: &'a [GrantType],
    method: Option<(AuthMethod, &'a str)>,
    application_type: Option<(ApplicationType, &'a str)>,
    has_keys: bool,
}

impl Rules<'_> {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::jwks::tests::{RFC7638_N, RFC7638_SPKI_PEM, RFC7638_THUMBPRINT};
    use super::*;

    fn parse(value: Value) -> Result<CredentialData, ValidationError> {
        match value {
            Value::Object(map) => CredentialData::parse(&map, "credentialData"),
            _ => Err(ValidationError::missing("credentialData", "")),
        }
    }

    fn code_flow(extra: Value) -> Value {
        let mut data = json!({
            "grant_types": ["authorization_code"],
            "redirect_uris": ["https://app.example.test/cb"],
        });
        if let (Value::Object(data), Value::Object(extra)) = (&mut data, extra) {
            data.extend(extra);
        }
        data
    }

    #[test]
    fn empty_data_gets_defaults() {
        let data = parse(json!({})).unwrap();
        assert_eq!(data.grant_types, vec![GrantType::ClientCredentials]);
        assert_eq!(
            data.token_endpoint_auth_method,
            AuthMethod::ClientSecretBasic
        );
        assert_eq!(data.application_type, ApplicationType::Service);
        assert_eq!(data.response_types, vec![ResponseType::Token]);
        assert!(data.redirect_uris.is_empty());
        assert!(data.issues_secret());
    }

    #[test]
    fn client_credentials_mixed_rejected() {
        let error = parse(json!({ "grant_types": ["client_credentials", "authorization_code"] }))
            .unwrap_err();
        assert_eq!(error.field, "credentialData.grant_types");
        assert!(error.message.contains("`client_credentials`"), "{error}");
        assert!(error.message.contains("`authorization_code`"), "{error}");
    }

    #[test]
    fn client_credentials_with_none_rejected() {
        let error = parse(json!({ "token_endpoint_auth_method": "none" })).unwrap_err();
        assert_eq!(error.field, "credentialData.token_endpoint_auth_method");
        assert_eq!(error.value.as_deref(), Some("none"));
    }

    #[test]
    fn client_credentials_with_redirect_rejected() {
        let error = parse(json!({ "redirectURLs": ["https://app.example.test/cb"] })).unwrap_err();
        assert_eq!(error.field, "credentialData.redirectURLs[0]");
        assert!(error.message.contains("do not use redirect URIs"));
    }

    #[test]
    fn client_credentials_as_web_rejected() {
        let error = parse(json!({ "application_type": "web" })).unwrap_err();
        assert_eq!(error.field, "credentialData.application_type");
        assert_eq!(error.value.as_deref(), Some("web"));
    }

    #[test]
    fn client_credentials_response_type_code_rejected() {
        let error = parse(json!({ "response_types": ["code"] })).unwrap_err();
        assert_eq!(error.field, "credentialData.response_types[0]");
    }

    #[test]
    fn client_credentials_secret_post_accepted() {
        let data = parse(json!({ "tokenAuthMethod": "client_secret_post" })).unwrap();
        assert_eq!(
            data.token_endpoint_auth_method,
            AuthMethod::ClientSecretPost
        );
    }

    #[test]
    fn client_credentials_with_pem_uses_private_key_jwt() {
        let data = parse(json!({ "jwks": RFC7638_SPKI_PEM })).unwrap();
        assert_eq!(data.token_endpoint_auth_method, AuthMethod::PrivateKeyJwt);
        assert!(!data.issues_secret());
        let jwks = data.jwks.unwrap();
        assert_eq!(jwks["keys"][0]["kid"], RFC7638_THUMBPRINT);
    }

    #[test]
    fn private_key_jwt_without_keys_rejected() {
        let error = parse(json!({ "tokenAuthMethod": "private_key_jwt" })).unwrap_err();
        assert_eq!(
            error.to_string().split(':').next(),
            Some("missing `credentialData.jwks`")
        );
    }

    #[test]
    fn private_key_jwt_with_jwks_uri_accepted() {
        let data = parse(json!({
            "tokenAuthMethod": "private_key_jwt",
            "jwksURI": "https://keys.example.test/jwks.json",
        }))
        .unwrap();
        assert_eq!(
            data.jwks_uri.as_deref(),
            Some("https://keys.example.test/jwks.json")
        );
    }

    #[test]
    fn http_jwks_uri_rejected() {
        let error = parse(json!({
            "tokenAuthMethod": "private_key_jwt",
            "jwks_uri": "http://keys.example.test/jwks.json",
        }))
        .unwrap_err();
        assert_eq!(error.field, "credentialData.jwks_uri");
    }

    #[test]
    fn jwks_and_jwks_uri_rejected() {
        let error = parse(json!({
            "jwks": RFC7638_SPKI_PEM,
            "jwks_uri": "https://keys.example.test/jwks.json",
        }))
        .unwrap_err();
        assert_eq!(error.field, "credentialData.jwks");
    }

    #[test]
    fn keys_with_secret_method_rejected() {
        let error = parse(json!({
            "tokenAuthMethod": "client_secret_basic",
            "jwks": RFC7638_SPKI_PEM,
        }))
        .unwrap_err();
        assert_eq!(error.field, "credentialData.jwks");
        assert!(error.message.contains("`client_secret_basic`"));
    }

    #[test]
    fn jwk_private_member_reported_in_path() {
        let jwk = json!({ "kty": "RSA", "n": RFC7638_N, "e": "AQAB", "d": "cHJpdmF0ZQ" });
        let error = parse(json!({ "jwks": { "keys": [jwk] } })).unwrap_err();
        assert_eq!(error.field, "credentialData.jwks.keys[0].d");
        assert!(!error.to_string().contains("cHJpdmF0ZQ"));
    }

    #[test]
    fn authorization_code_without_method_is_browser() {
        let data = parse(code_flow(json!({}))).unwrap();
        assert_eq!(data.application_type, ApplicationType::Browser);
        assert_eq!(data.token_endpoint_auth_method, AuthMethod::None);
        assert_eq!(data.response_types, vec![ResponseType::Code]);
    }

    #[test]
    fn authorization_code_with_secret_is_web() {
        let data = parse(code_flow(json!({
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "client_secret_post",
        })))
        .unwrap();
        assert_eq!(data.application_type, ApplicationType::Web);
        assert_eq!(
            data.grant_types,
            vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
        );
    }

    #[test]
    fn authorization_code_with_private_key_jwt_is_web() {
        let data = parse(code_flow(json!({ "jwks": RFC7638_SPKI_PEM }))).unwrap();
        assert_eq!(data.application_type, ApplicationType::Web);
        assert_eq!(data.token_endpoint_auth_method, AuthMethod::PrivateKeyJwt);
    }

    #[test]
    fn explicit_web_defaults_to_secret() {
        let data = parse(code_flow(json!({ "application_type": "web" }))).unwrap();
        assert_eq!(
            data.token_endpoint_auth_method,
            AuthMethod::ClientSecretBasic
        );
    }

    #[test]
    fn explicit_web_with_none_rejected() {
        let error = parse(code_flow(json!({
            "application_type": "web",
            "token_endpoint_auth_method": "none",
        })))
        .unwrap_err();
        assert_eq!(error.value.as_deref(), Some("web"));
    }

    #[test]
    fn explicit_browser_with_secret_rejected() {
        let error = parse(code_flow(json!({
            "application_type": "browser",
            "tokenAuthMethod": "client_secret_basic",
        })))
        .unwrap_err();
        assert_eq!(error.value.as_deref(), Some("browser"));
    }

    #[test]
    fn explicit_service_with_code_rejected() {
        let error = parse(code_flow(json!({ "application_type": "service" }))).unwrap_err();
        assert!(error.message.contains("`authorization_code`"), "{error}");
    }

    #[test]
    fn native_allows_custom_scheme() {
        let data = parse(code_flow(json!({
            "application_type": "native",
            "redirect_uris": ["com.example.app:/callback"],
        })))
        .unwrap();
        assert_eq!(data.application_type, ApplicationType::Native);
        assert_eq!(data.redirect_uris, vec!["com.example.app:/callback"]);
    }

    #[test]
    fn browser_custom_scheme_rejected() {
        let error = parse(code_flow(
            json!({ "redirect_uris": ["com.example.app:/callback"] }),
        ))
        .unwrap_err();
        assert_eq!(error.field, "credentialData.redirect_uris[0]");
    }

    #[test]
    fn native_without_code_rejected() {
        let error = parse(json!({
            "grant_types": ["implicit"],
            "application_type": "native",
            "redirect_uris": ["https://app.example.test/cb"],
        }))
        .unwrap_err();
        assert_eq!(error.value.as_deref(), Some("native"));
    }

    #[test]
    fn implicit_is_browser_with_token_types() {
        let data = parse(json!({
            "grant_types": ["implicit"],
            "redirect_uris": ["https://app.example.test/cb"],
        }))
        .unwrap();
        assert_eq!(data.application_type, ApplicationType::Browser);
        assert_eq!(
            data.response_types,
            vec![ResponseType::Token, ResponseType::IdToken]
        );
    }

    #[test]
    fn implicit_with_secret_rejected() {
        let error = parse(json!({
            "grant_types": ["implicit"],
            "token_endpoint_auth_method": "client_secret_basic",
            "redirect_uris": ["https://app.example.test/cb"],
        }))
        .unwrap_err();
        assert_eq!(error.value.as_deref(), Some("client_secret_basic"));
    }

    #[test]
    fn refresh_token_alone_rejected() {
        let error = parse(json!({
            "grant_types": ["refresh_token"],
            "redirect_uris": ["https://app.example.test/cb"],
        }))
        .unwrap_err();
        assert!(error.message.contains("`refresh_token` needs"), "{error}");
    }

    #[test]
    fn code_without_redirect_rejected() {
        let error = parse(json!({ "grantType": "authorization_code" })).unwrap_err();
        assert_eq!(error.field, "credentialData.redirect_uris");
    }

    #[test]
    fn code_with_empty_redirect_list_rejected() {
        let error = parse(code_flow(json!({ "redirect_uris": [] }))).unwrap_err();
        assert_eq!(error.field, "credentialData.redirect_uris");
    }

    #[test]
    fn bad_redirect_uris_rejected() {
        for uri in [
            "/cb",
            "https://app.example.test/cb#x",
            "http://app.example.test/cb",
        ] {
            let error = parse(code_flow(json!({ "redirect_uris": [uri] }))).unwrap_err();
            assert_eq!(error.field, "credentialData.redirect_uris[0]", "{uri}");
            assert_eq!(error.value.as_deref(), Some(uri));
        }
    }

    #[test]
    fn relative_redirect_message() {
        let error = parse(code_flow(json!({ "redirect_uris": ["/cb"] }))).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid `credentialData.redirect_uris[0]` value `/cb`: redirect URI must be absolute"
        );
    }

    #[test]
    fn loopback_redirect_accepted() {
        let data = parse(code_flow(
            json!({ "redirect_uris": ["http://localhost:8080/cb"] }),
        ))
        .unwrap();
        assert_eq!(data.redirect_uris, vec!["http://localhost:8080/cb"]);
    }

    #[test]
    fn unknown_grant_rejected() {
        let error = parse(json!({ "grantType": "password" })).unwrap_err();
        assert_eq!(error.field, "credentialData.grantType");
        assert_eq!(error.value.as_deref(), Some("password"));
    }

    #[test]
    fn unknown_method_rejected() {
        let error = parse(json!({ "tokenAuthMethod": "tls_client_auth" })).unwrap_err();
        assert_eq!(error.value.as_deref(), Some("tls_client_auth"));
    }

    #[test]
    fn unknown_application_type_rejected() {
        let error = parse(json!({ "application_type": "daemon" })).unwrap_err();
        assert_eq!(error.value.as_deref(), Some("daemon"));
    }

    #[test]
    fn empty_grant_list_rejected() {
        let error = parse(json!({ "grant_types": [] })).unwrap_err();
        assert_eq!(error.field, "credentialData.grant_types");
    }

    #[test]
    fn response_type_code_without_grant_rejected() {
        let error = parse(json!({
            "grant_types": ["implicit"],
            "response_types": ["code", "token"],
            "redirect_uris": ["https://app.example.test/cb"],
        }))
        .unwrap_err();
        assert_eq!(error.field, "credentialData.response_types[0]");
    }

    #[test]
    fn response_types_missing_code_rejected() {
        let error = parse(code_flow(json!({ "response_types": [] }))).unwrap_err();
        assert!(error.message.contains("response type `code`"), "{error}");
    }

    #[test]
    fn implicit_id_token_only_kept() {
        let data = parse(json!({
            "grant_types": ["implicit"],
            "response_types": ["id_token"],
            "redirect_uris": ["https://app.example.test/cb"],
        }))
        .unwrap();
        assert_eq!(data.response_types, vec![ResponseType::IdToken]);
    }

    #[test]
    fn scopes_kept() {
        let data = parse(json!({ "scope": "orders.read orders.write" })).unwrap();
        assert_eq!(data.scopes, vec!["orders.read", "orders.write"]);
    }

    #[test]
    fn client_name_of_101_chars_rejected() {
        let error = parse(json!({ "client_name": "n".repeat(101) })).unwrap_err();
        assert_eq!(error.field, "credentialData.client_name");
        assert!(error.message.contains("101 characters"), "{error}");
    }

    #[test]
    fn client_name_with_control_rejected() {
        let error = parse(json!({ "client_name": "my\u{7}client" })).unwrap_err();
        assert_eq!(error.value.as_deref(), Some("my\\u{7}client"));
    }

    #[test]
    fn client_name_kept() {
        let data = parse(json!({ "client_name": "Orders" })).unwrap();
        assert_eq!(data.client_name.as_deref(), Some("Orders"));
    }

    #[test]
    fn grant_list_joins_names() {
        let grants = [GrantType::AuthorizationCode, GrantType::Implicit];
        assert_eq!(grant_list(&grants), "`authorization_code` and `implicit`");
    }
}

//! Reading `credentialData` in both vocabularies it arrives in: the keys of Engage's agent
//! SDK (`grantType`, `tokenAuthMethod`, `scopes`, `redirectURLs`, `jwks`, `jwksURI`) and the
//! RFC 7591 client metadata names that Fusion sends (`grant_types`,
//! `token_endpoint_auth_method`, `scope`, `redirect_uris`, `jwks_uri`, and more).
//!
//! When both vocabularies give one setting, the values must agree (lists compared as sets);
//! otherwise the request is rejected naming both keys.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::error::ValidationError;
use super::fields::Fields;

/// A value with the JSON path it was read from, so that later checks name the key the
/// consumer actually sent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sourced<T> {
    /// JSON path of the key, such as `credentialData.redirectURLs`.
    pub(crate) path: String,
    /// Whether the value came from a JSON array, so that items are named `path[i]`.
    pub(crate) from_array: bool,
    pub(crate) value: T,
}

impl<T> Sourced<T> {
    /// Returns the JSON path of item `index` of a list setting.
    pub(crate) fn item_path(&self, index: usize) -> String {
        if self.from_array {
            format!("{}[{index}]", self.path)
        } else {
            self.path.clone()
        }
    }
}

/// The settings a consumer asked for, before the mapping rules run.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RequestedSettings {
    pub(crate) grant_types: Option<Sourced<Vec<String>>>,
    pub(crate) auth_method: Option<Sourced<String>>,
    pub(crate) scopes: Option<Sourced<Vec<String>>>,
    pub(crate) redirect_uris: Option<Sourced<Vec<String>>>,
    pub(crate) response_types: Option<Sourced<Vec<String>>>,
    pub(crate) application_type: Option<Sourced<String>>,
    pub(crate) jwks: Option<Sourced<Value>>,
    pub(crate) jwks_uri: Option<Sourced<String>>,
    pub(crate) client_name: Option<Sourced<String>>,
}

/// Reads `credentialData` found at `prefix` and merges the two vocabularies.
pub(crate) fn read_settings(
    map: &Map<String, Value>,
    prefix: &str,
) -> Result<RequestedSettings, ValidationError> {
    let fields = Fields::new(map, prefix);
    Ok(RequestedSettings {
        grant_types: merge_sets(
            engage_grant_type(&fields)?,
            string_list(&fields, "grant_types")?,
        )?,
        auth_method: merge_strings(
            string(&fields, "tokenAuthMethod")?,
            string(&fields, "token_endpoint_auth_method")?,
        )?,
        scopes: merge_sets(scopes(&fields, "scopes")?, scopes(&fields, "scope")?)?,
        redirect_uris: merge_sets(
            string_list(&fields, "redirectURLs")?,
            string_list(&fields, "redirect_uris")?,
        )?,
        response_types: string_list(&fields, "response_types")?,
        application_type: string(&fields, "application_type")?,
        jwks: fields.get("jwks").map(|value| Sourced {
            path: fields.path("jwks"),
            from_array: false,
            value: value.clone(),
        }),
        jwks_uri: merge_strings(string(&fields, "jwksURI")?, string(&fields, "jwks_uri")?)?,
        client_name: string(&fields, "client_name")?,
    })
}

/// Reads Engage's `grantType`, a single grant type string.
fn engage_grant_type(fields: &Fields<'_>) -> Result<Option<Sourced<Vec<String>>>, ValidationError> {
    Ok(string(fields, "grantType")?.map(|grant| Sourced {
        path: grant.path,
        from_array: false,
        value: vec![grant.value],
    }))
}

fn string(fields: &Fields<'_>, key: &str) -> Result<Option<Sourced<String>>, ValidationError> {
    Ok(fields.optional_string(key)?.map(|value| Sourced {
        path: fields.path(key),
        from_array: false,
        value: value.to_owned(),
    }))
}

fn string_list(
    fields: &Fields<'_>,
    key: &str,
) -> Result<Option<Sourced<Vec<String>>>, ValidationError> {
    Ok(fields.optional_string_array(key)?.map(|value| Sourced {
        path: fields.path(key),
        from_array: true,
        value,
    }))
}

/// Reads a scope list: a JSON array of scope tokens or one space-separated string
/// (RFC 6749 section 3.3). Duplicates are dropped, keeping the first.
fn scopes(fields: &Fields<'_>, key: &str) -> Result<Option<Sourced<Vec<String>>>, ValidationError> {
    let path = fields.path(key);
    let Some(value) = fields.get(key) else {
        return Ok(None);
    };
    let (tokens, from_array) = match value {
        Value::String(text) => (text.split_whitespace().map(str::to_owned).collect(), false),
        Value::Array(_) => (fields.optional_string_array(key)?.unwrap_or_default(), true),
        other => {
            return Err(ValidationError::wrong_type(
                path,
                "an array of strings or a space-separated string",
                other,
            ))
        }
    };
    let scopes = Sourced {
        path,
        from_array,
        value: tokens,
    };
    check_scope_tokens(&scopes)?;
    let mut seen = BTreeSet::new();
    let unique = scopes
        .value
        .iter()
        .filter(|scope| seen.insert(scope.as_str()))
        .cloned()
        .collect();
    Ok(Some(Sourced {
        value: unique,
        ..scopes
    }))
}

/// Checks each scope against RFC 6749 section 3.3:
/// `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn check_scope_tokens(scopes: &Sourced<Vec<String>>) -> Result<(), ValidationError> {
    let is_scope_char = |c: char| matches!(c, '\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e');
    for (index, scope) in scopes.value.iter().enumerate() {
        if scope.is_empty() || !scope.chars().all(is_scope_char) {
            return Err(ValidationError::invalid(
                scopes.item_path(index),
                scope,
                "a scope must be printable ASCII without spaces, `\"` or `\\`",
            ));
        }
    }
    Ok(())
}

fn merge_strings(
    engage: Option<Sourced<String>>,
    rfc7591: Option<Sourced<String>>,
) -> Result<Option<Sourced<String>>, ValidationError> {
    match (engage, rfc7591) {
        (Some(engage), Some(rfc7591)) if engage.value != rfc7591.value => {
            Err(conflict(&engage, &engage.value, &rfc7591, &rfc7591.value))
        }
        (engage, rfc7591) => Ok(rfc7591.or(engage)),
    }
}

fn merge_sets(
    engage: Option<Sourced<Vec<String>>>,
    rfc7591: Option<Sourced<Vec<String>>>,
) -> Result<Option<Sourced<Vec<String>>>, ValidationError> {
    match (engage, rfc7591) {
        (Some(engage), Some(rfc7591)) if as_set(&engage.value) != as_set(&rfc7591.value) => {
            let engage_text = engage.value.join(" ");
            let rfc7591_text = rfc7591.value.join(" ");
            Err(conflict(&engage, &engage_text, &rfc7591, &rfc7591_text))
        }
        (engage, rfc7591) => Ok(rfc7591.or(engage)),
    }
}

fn as_set(values: &[String]) -> BTreeSet<&str> {
    values.iter().map(String::as_str).collect()
}

fn conflict<T>(
    engage: &Sourced<T>,
    engage_value: &str,
    rfc7591: &Sourced<T>,
    rfc7591_value: &str,
) -> ValidationError {
    ValidationError::invalid_field(
        engage.path.clone(),
        format!(
            "`{}` is `{}` but `{}` is `{}`; send one of them, or the same value in both",
            engage.path,
            super::error::excerpt(engage_value),
            rfc7591.path,
            super::error::excerpt(rfc7591_value),
        ),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(value: Value) -> Result<RequestedSettings, ValidationError> {
        match value {
            Value::Object(map) => read_settings(&map, "credentialData"),
            _ => Err(ValidationError::missing("credentialData", "")),
        }
    }

    fn values<T: Clone>(setting: Option<Sourced<T>>) -> Option<T> {
        setting.map(|sourced| sourced.value)
    }

    #[test]
    fn engage_grant_type_read() {
        let settings = read(json!({ "grantType": "authorization_code" })).unwrap();
        assert_eq!(
            values(settings.grant_types),
            Some(vec!["authorization_code".to_owned()])
        );
    }

    #[test]
    fn agreeing_vocabularies_accepted() {
        let settings = read(json!({
            "grantType": "client_credentials",
            "grant_types": ["client_credentials"],
            "tokenAuthMethod": "client_secret_post",
            "token_endpoint_auth_method": "client_secret_post",
        }))
        .unwrap();
        assert_eq!(
            values(settings.auth_method).as_deref(),
            Some("client_secret_post")
        );
    }

    #[test]
    fn conflicting_grants_name_both_keys() {
        let error = read(json!({
            "grantType": "authorization_code",
            "grant_types": ["client_credentials"],
        }))
        .unwrap_err();
        assert!(
            error.message.contains("`credentialData.grantType`"),
            "{error}"
        );
        assert!(
            error.message.contains("`credentialData.grant_types`"),
            "{error}"
        );
    }

    #[test]
    fn conflicting_auth_methods_rejected() {
        let error = read(json!({
            "tokenAuthMethod": "client_secret_basic",
            "token_endpoint_auth_method": "private_key_jwt",
        }))
        .unwrap_err();
        assert!(error
            .message
            .contains("`credentialData.token_endpoint_auth_method`"));
    }

    #[test]
    fn conflicting_redirect_uris_rejected() {
        let error = read(json!({
            "redirectURLs": ["https://a.example.test/cb"],
            "redirect_uris": ["https://b.example.test/cb"],
        }))
        .unwrap_err();
        assert_eq!(error.field, "credentialData.redirectURLs");
    }

    #[test]
    fn conflicting_jwks_uris_rejected() {
        let error = read(json!({
            "jwksURI": "https://a.example.test/jwks",
            "jwks_uri": "https://b.example.test/jwks",
        }))
        .unwrap_err();
        assert_eq!(error.field, "credentialData.jwksURI");
    }

    #[test]
    fn redirect_uri_order_ignored() {
        let settings = read(json!({
            "redirectURLs": ["https://a.example.test/cb", "https://b.example.test/cb"],
            "redirect_uris": ["https://b.example.test/cb", "https://a.example.test/cb"],
        }));
        assert!(settings.is_ok());
    }

    #[test]
    fn scope_string_split_on_spaces() {
        let settings = read(json!({ "scope": "read  write read" })).unwrap();
        assert_eq!(
            values(settings.scopes),
            Some(vec!["read".to_owned(), "write".to_owned()])
        );
    }

    #[test]
    fn scope_array_equals_scope_string() {
        let settings = read(json!({ "scopes": ["write", "read"], "scope": "read write" }));
        assert!(settings.is_ok());
    }

    #[test]
    fn conflicting_scopes_rejected() {
        let error = read(json!({ "scopes": ["read"], "scope": "read write" })).unwrap_err();
        assert_eq!(error.field, "credentialData.scopes");
    }

    #[test]
    fn scope_with_quote_rejected() {
        let error = read(json!({ "scopes": ["read", "a\"b"] })).unwrap_err();
        assert_eq!(error.field, "credentialData.scopes[1]");
        assert_eq!(error.value.as_deref(), Some("a\"b"));
    }

    #[test]
    fn scope_of_wrong_type_rejected() {
        let error = read(json!({ "scope": 5 })).unwrap_err();
        assert!(error.message.contains("found a number"), "{error}");
    }

    #[test]
    fn grant_types_of_wrong_type_rejected() {
        let error = read(json!({ "grant_types": "client_credentials" })).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid `credentialData.grant_types`: expected an array of strings, found a string"
        );
    }
}

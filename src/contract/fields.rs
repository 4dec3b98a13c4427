//! Typed reads of JSON object members that report the JSON path and the type found.

use serde_json::{Map, Value};

use super::error::ValidationError;

/// A JSON object and its path in the request body (empty at the top level).
#[derive(Clone, Copy)]
pub(crate) struct Fields<'a> {
    map: &'a Map<String, Value>,
    prefix: &'a str,
}

impl<'a> Fields<'a> {
    /// Wraps an object found at `prefix` (`""` for the body itself).
    pub(crate) fn new(map: &'a Map<String, Value>, prefix: &'a str) -> Self {
        Self { map, prefix }
    }

    /// Returns the JSON path of a member, such as `credentialData.scope`.
    pub(crate) fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    /// Returns a member's value; JSON `null` counts as absent.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|value| !value.is_null())
    }

    /// Reads an optional string. An empty or all-whitespace string counts as absent, because
    /// Engage sends `""` for unset optional fields.
    pub(crate) fn optional_string(&self, key: &str) -> Result<Option<&'a str>, ValidationError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(ValidationError::wrong_type(
                self.path(key),
                "a string",
                other,
            )),
        }
    }

    /// Reads a string that must be present and not empty.
    pub(crate) fn required_string(&self, key: &str) -> Result<&'a str, ValidationError> {
        self.optional_string(key)?
            .ok_or_else(|| ValidationError::missing(self.path(key), ""))
    }

    /// Reads an optional object.
    pub(crate) fn optional_object(
        &self,
        key: &str,
    ) -> Result<Option<&'a Map<String, Value>>, ValidationError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(other) => Err(ValidationError::wrong_type(
                self.path(key),
                "an object",
                other,
            )),
        }
    }

    /// Reads an optional array of strings; an element of another type is reported with its
    /// index, such as `credentialData.redirect_uris[2]`.
    pub(crate) fn optional_string_array(
        &self,
        key: &str,
    ) -> Result<Option<Vec<String>>, ValidationError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => string_items(&self.path(key), items).map(Some),
            Some(other) => Err(ValidationError::wrong_type(
                self.path(key),
                "an array of strings",
                other,
            )),
        }
    }
}

fn string_items(path: &str, items: &[Value]) -> Result<Vec<String>, ValidationError> {
    items
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::String(text) => Ok(text.clone()),
            other => Err(ValidationError::wrong_type(
                format!("{path}[{index}]"),
                "a string",
                other,
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn path_adds_prefix() {
        let map = Map::new();
        let fields = Fields::new(&map, "credentialData");
        assert_eq!(fields.path("scope"), "credentialData.scope");
    }

    #[test]
    fn optional_string_treats_empty_as_absent() {
        let map = object(json!({ "teamName": "  " }));
        let fields = Fields::new(&map, "");
        assert_eq!(fields.optional_string("teamName"), Ok(None));
    }

    #[test]
    fn optional_string_rejects_number() {
        let map = object(json!({ "teamName": 5 }));
        let error = Fields::new(&map, "")
            .optional_string("teamName")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid `teamName`: expected a string, found a number"
        );
    }

    #[test]
    fn required_string_null_is_missing() {
        let map = object(json!({ "id": null }));
        let error = Fields::new(&map, "").required_string("id").unwrap_err();
        assert_eq!(error.to_string(), "missing `id`");
    }

    #[test]
    fn string_array_names_bad_element() {
        let map = object(json!({ "redirect_uris": ["https://a.example.test", 3] }));
        let fields = Fields::new(&map, "credentialData");
        let error = fields.optional_string_array("redirect_uris").unwrap_err();
        assert_eq!(error.field, "credentialData.redirect_uris[1]");
    }
}

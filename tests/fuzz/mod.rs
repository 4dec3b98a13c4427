//! proptest strategies for request messages: arbitrary bytes, arbitrary JSON, and JSON shaped
//! like a request whose fields take plausible, wrong or arbitrary values.

#![allow(dead_code)]

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// A message body with the AMQP properties the decoder reads.
#[derive(Debug, Clone)]
pub struct FuzzMessage {
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    pub message_id: Option<String>,
}

/// Members of a request body, used as object keys so that arbitrary JSON often reaches the
/// validator's branches.
const REQUEST_KEYS: [&str; 12] = [
    "requestId",
    "operation",
    "credentialAction",
    "id",
    "name",
    "managedApplicationName",
    "teamName",
    "credentialData",
    "idpClientId",
    "encryption",
    "context",
    "credentialType",
];

/// Returns a message with any body: arbitrary bytes, arbitrary JSON or a request-shaped JSON
/// object, sometimes cut short, with a content type and message id that may be absent or
/// wrong.
pub fn message() -> impl Strategy<Value = FuzzMessage> {
    let body = prop_oneof![
        2 => vec(any::<u8>(), 0..512),
        3 => json_value().prop_map(|value| value.to_string().into_bytes()),
        5 => request_shaped().prop_map(|value| value.to_string().into_bytes()),
        1 => (request_shaped(), any::<prop::sample::Index>()).prop_map(|(value, cut)| {
            let text = value.to_string().into_bytes();
            text[..cut.index(text.len() + 1)].to_vec()
        }),
        1 => request_shaped().prop_map(|value| {
            let mut text = value.to_string().into_bytes();
            text.extend_from_slice(&[0xff, 0xfe]);
            text
        }),
    ];
    (body, content_type(), message_id()).prop_map(|(body, content_type, message_id)| FuzzMessage {
        body,
        content_type,
        message_id,
    })
}

/// Returns an AMQP `content_type`: absent, JSON in several spellings, or another type.
pub fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => Just(None),
        4 => Just(Some("application/json".to_owned())),
        1 => Just(Some("Application/JSON; charset=utf-8".to_owned())),
        1 => Just(Some(String::new())),
        1 => Just(Some("text/plain".to_owned())),
        1 => "[ -~]{0,40}".prop_map(Some),
    ]
}

/// Returns an AMQP `message_id`, absent in a quarter of the cases. At most 60 characters, well
/// under the 255 bytes of an AMQP short string.
pub fn message_id() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        2 => "[a-zA-Z0-9-]{1,40}".prop_map(Some),
        1 => "\\PC{0,60}".prop_map(Some),
    ]
}

/// Returns any JSON value, up to 4 levels deep, whose object keys are often request members.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(object_key(), inner, 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

fn object_key() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::sample::select(REQUEST_KEYS.to_vec()).prop_map(str::to_owned),
        1 => ".{0,12}",
    ]
}

/// Returns a JSON object with the members of a request, each absent, plausible, or arbitrary
/// JSON.
pub fn request_shaped() -> impl Strategy<Value = Value> {
    let members = vec![
        member("requestId", request_id()),
        member("operation", operation()),
        member("credentialAction", credential_action()),
        member("id", "[a-z0-9-]{1,30}".prop_map(Value::from)),
        member("name", display_name()),
        member("managedApplicationName", display_name()),
        member("teamName", display_name()),
        member("credentialData", credential_data()),
        member("idpClientId", "0oa[a-zA-Z0-9]{5,20}".prop_map(Value::from)),
        member("encryption", encryption()),
        member("context", json_value()),
    ];
    members.prop_map(|members| Value::Object(members.into_iter().flatten().collect()))
}

/// Returns a valid client_credentials provision: its name fields are short printable text that
/// starts with a letter or digit, so the validator must accept it.
pub fn valid_provision() -> impl Strategy<Value = Value> {
    (
        "[a-zA-Z0-9-]{1,40}",
        "[a-z0-9-]{1,30}",
        "[a-zA-Z0-9][a-zA-Z0-9 ._-]{0,19}",
        "[a-zA-Z0-9][a-zA-Z0-9 ._-]{0,19}",
        proptest::option::of("[a-zA-Z0-9][a-zA-Z0-9 ._-]{0,19}"),
        prop::sample::select(vec!["client_secret_basic", "client_secret_post"]),
    )
        .prop_map(|(request_id, id, name, application, team, method)| {
            serde_json::json!({
                "requestId": request_id,
                "operation": "provision",
                "id": id,
                "name": name,
                "managedApplicationName": application,
                "teamName": team,
                "credentialData": {
                    "grantType": "client_credentials",
                    "tokenAuthMethod": method,
                },
            })
        })
}

/// Returns the member `key` absent (a quarter of the cases), with a value of `plausible`, or
/// with arbitrary JSON.
fn member(
    key: &'static str,
    plausible: impl Strategy<Value = Value> + 'static,
) -> BoxedStrategy<Option<(String, Value)>> {
    prop_oneof![
        2 => Just(None),
        5 => plausible.prop_map(move |value| Some((key.to_owned(), value))),
        1 => json_value().prop_map(move |value| Some((key.to_owned(), value))),
    ]
    .boxed()
}

fn request_id() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => "[a-zA-Z0-9-]{1,40}".prop_map(Value::from),
        1 => Just(Value::from("")),
        1 => "[a-z]{201,210}".prop_map(Value::from),
        1 => "\\PC{1,20}".prop_map(Value::from),
    ]
}

fn operation() -> impl Strategy<Value = Value> {
    let names = vec![
        "provision",
        "deprovision",
        "update",
        "PROVISION",
        "Update",
        "",
        "delete",
    ];
    prop_oneof![
        4 => prop::sample::select(names).prop_map(Value::from),
        1 => ".{0,12}".prop_map(Value::from),
    ]
}

fn credential_action() -> impl Strategy<Value = Value> {
    let names = vec![
        "enable", "suspend", "rotate", "expire", "none", "", "ROTATE", "reboot",
    ];
    prop_oneof![
        3 => prop::sample::select(names).prop_map(Value::from),
        2 => (-1i64..6).prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
    ]
}

fn display_name() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => "[a-zA-Z0-9 ._-]{0,30}".prop_map(Value::from),
        1 => ".{0,120}".prop_map(Value::from),
        1 => "[ \t\n\u{7f}\u{0}]{0,5}".prop_map(Value::from),
    ]
}

fn credential_data() -> impl Strategy<Value = Value> {
    let grants = vec![
        "client_credentials",
        "authorization_code",
        "refresh_token",
        "implicit",
        "password",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ];
    let methods = vec![
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
        "none",
        "tls_client_auth",
    ];
    let application_types = vec!["service", "web", "browser", "native", "spa"];
    let members = vec![
        member("grantType", choice(grants.clone())),
        member(
            "grant_types",
            vec(choice(grants), 0..4).prop_map(Value::from),
        ),
        member("tokenAuthMethod", choice(methods.clone())),
        member("token_endpoint_auth_method", choice(methods)),
        member(
            "redirectURLs",
            vec(redirect_uri(), 0..3).prop_map(Value::from),
        ),
        member(
            "redirect_uris",
            vec(redirect_uri(), 0..3).prop_map(Value::from),
        ),
        member("scopes", vec("[a-z.:]{1,20}", 0..3).prop_map(Value::from)),
        member("scope", "[a-z.: ]{0,30}".prop_map(Value::from)),
        member(
            "response_types",
            vec(choice(vec!["token", "code", "id_token", "x"]), 0..3).prop_map(Value::from),
        ),
        member("application_type", choice(application_types)),
        member("jwks", jwks()),
        member("jwksURI", uri().prop_map(Value::from)),
    ];
    members.prop_map(|members| Value::Object(members.into_iter().flatten().collect::<Map<_, _>>()))
}

fn choice(values: Vec<&'static str>) -> impl Strategy<Value = Value> {
    prop::sample::select(values).prop_map(Value::from)
}

fn redirect_uri() -> impl Strategy<Value = Value> {
    uri().prop_map(Value::from)
}

fn uri() -> impl Strategy<Value = String> {
    let samples = vec![
        "https://app.example.com/callback",
        "http://localhost:8080/cb",
        "http://127.0.0.1/cb",
        "http://example.com/cb",
        "https://example.com/cb#fragment",
        "com.example.app:/cb",
        "ftp://example.com",
        "/relative",
    ];
    prop_oneof![
        3 => prop::sample::select(samples).prop_map(str::to_owned),
        1 => ".{0,40}",
    ]
}

fn jwks() -> impl Strategy<Value = Value> {
    let key = (
        prop::sample::select(vec!["RSA", "EC", "oct", "OKP"]),
        "[A-Za-z0-9_-]{0,40}",
        proptest::option::of("[a-z0-9-]{1,10}"),
        any::<bool>(),
    )
        .prop_map(|(kty, material, kid, private)| {
            let mut key = serde_json::json!({ "kty": kty, "n": material, "e": "AQAB", "x": material, "crv": "P-256" });
            if let Some(kid) = kid {
                key["kid"] = Value::from(kid);
            }
            if private {
                key["d"] = Value::from("c2VjcmV0");
            }
            key
        });
    prop_oneof![
        3 => vec(key, 0..3).prop_map(|keys| serde_json::json!({ "keys": keys })),
        1 => Just(Value::from(
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END PUBLIC KEY-----"
        )),
        1 => ".{0,40}".prop_map(Value::from),
    ]
}

fn encryption() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just(Value::from(
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"
            )),
            Just(Value::from(
                "-----BEGIN RSA PUBLIC KEY-----\n-----END RSA PUBLIC KEY-----"
            )),
            ".{0,40}".prop_map(Value::from),
        ],
        proptest::option::of(choice(vec!["RSA-OAEP", "PKCS", "rsa-oaep", "AES"])),
        proptest::option::of(choice(vec!["SHA256", "SHA1", "MD5"])),
    )
        .prop_map(|(key, algorithm, hash)| {
            let mut spec = Map::new();
            spec.insert("key".to_owned(), key);
            if let Some(algorithm) = algorithm {
                spec.insert("algorithm".to_owned(), algorithm);
            }
            if let Some(hash) = hash {
                spec.insert("hash".to_owned(), hash);
            }
            Value::Object(spec)
        })
}

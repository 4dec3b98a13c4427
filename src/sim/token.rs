//! The org authorization server's token endpoint, `POST /oauth2/v1/token`, for one OAuth 2.0
//! service app that authenticates with `private_key_jwt`, and the access tokens it issues.
//!
//! The request must be a form with `grant_type=client_credentials`, a `scope` of known Okta
//! management scopes, `client_assertion_type` set to the JWT bearer type and a
//! `client_assertion` that [`super::assertion::verify`] accepts and whose `jti` was not used
//! before. Errors use the OAuth 2.0 body `{"error", "error_description"}`: 401
//! `invalid_client` for a rejected assertion, 400 for the other problems.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rsa::RsaPublicKey;
use serde_json::json;

use super::assertion::{self, AssertionError};
use super::ids;
use super::okta_errors::oauth_error_body;
use super::state::{epoch_secs, SimState};

/// Path of the token endpoint.
pub(crate) const TOKEN_PATH: &str = "/oauth2/v1/token";

/// `client_assertion_type` of a JWT client assertion (RFC 7523 section 2.2).
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Scopes the endpoint grants; any other requested scope gets 400 `invalid_scope`.
const KNOWN_SCOPES: [&str; 6] = [
    "okta.clients.register",
    "okta.clients.read",
    "okta.clients.manage",
    "okta.apps.read",
    "okta.apps.manage",
    "okta.groups.read",
];

/// The OAuth 2.0 service app the simulator accepts at its token endpoint.
#[derive(Debug, Clone)]
pub struct SimServiceApp {
    /// Client id the assertion's `iss` and `sub` must carry.
    pub client_id: String,
    /// PEM RSA public key (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`) that verifies the
    /// assertion signature.
    pub public_key_pem: String,
    /// Lifetime of issued access tokens, reported as `expires_in` in whole seconds (rounded
    /// up). Okta's default is one hour.
    pub token_lifetime: Duration,
}

/// The service app with its parsed key, fixed at start.
#[derive(Debug)]
pub(crate) struct ServiceAppVerifier {
    client_id: String,
    public_key: RsaPublicKey,
    token_lifetime: Duration,
}

/// Access tokens issued and assertion ids seen.
#[derive(Debug, Default)]
pub(crate) struct TokenStore {
    /// Token value to the instant it stops working.
    access_tokens: HashMap<String, Instant>,
    /// `jti` of each accepted assertion to its `exp`, kept until the assertion expires.
    used_jtis: HashMap<String, u64>,
}

/// A rejected token request.
struct TokenRejection {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl ServiceAppVerifier {
    /// Parses the public key. Fails with `InvalidInput` when it is not a PEM RSA public key.
    pub(crate) fn new(app: SimServiceApp) -> io::Result<Self> {
        let public_key = assertion::parse_public_key(&app.public_key_pem).map_err(|reason| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the service app public key is not a PEM RSA public key: {reason}"),
            )
        })?;
        Ok(Self {
            client_id: app.client_id,
            public_key,
            token_lifetime: app.token_lifetime,
        })
    }
}

impl TokenStore {
    /// Reports whether `token` was issued here and has neither expired nor been revoked.
    pub(crate) fn is_valid(&self, token: &str, now: Instant) -> bool {
        self.access_tokens
            .get(token)
            .is_some_and(|expires_at| now < *expires_at)
    }

    /// Makes every issued access token invalid.
    pub(crate) fn revoke_all(&mut self) -> usize {
        let revoked = self.access_tokens.len();
        self.access_tokens.clear();
        revoked
    }

    /// Remembers the assertion's `jti`; `false` when it was already used. Entries of expired
    /// assertions are dropped first, because an expired assertion is rejected anyway.
    fn remember_jti(&mut self, jti: &str, expires_at: u64, now_secs: u64) -> bool {
        self.used_jtis.retain(|_, exp| *exp > now_secs);
        if self.used_jtis.contains_key(jti) {
            return false;
        }
        self.used_jtis.insert(jti.to_owned(), expires_at);
        true
    }

    fn issue(&mut self, lifetime: Duration, now: Instant) -> String {
        self.access_tokens.retain(|_, expires_at| *expires_at > now);
        let token = ids::new_access_token();
        self.access_tokens.insert(token.clone(), now + lifetime);
        token
    }
}

/// `POST /oauth2/v1/token`: 200 with a Bearer access token, or an OAuth 2.0 error.
pub(crate) async fn issue_token(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match grant(&state, &headers, &body) {
        Ok(response) => response,
        Err(rejection) => {
            tracing::debug!(
                error = rejection.error,
                description = %rejection.description,
                "Rejected token request"
            );
            let body = oauth_error_body(rejection.error, &rejection.description);
            (rejection.status, Json(body)).into_response()
        }
    }
}

fn grant(state: &SimState, headers: &HeaderMap, body: &[u8]) -> Result<Response, TokenRejection> {
    let form = parse_form(headers, body)?;
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return Err(TokenRejection::bad_request(
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        ));
    }
    let Some(app) = &state.service_app else {
        return Err(TokenRejection::invalid_client(
            "no service app is configured".to_owned(),
        ));
    };
    if form.get("client_assertion_type").map(String::as_str) != Some(ASSERTION_TYPE) {
        return Err(TokenRejection::bad_request(
            "invalid_request",
            &format!("client_assertion_type must be {ASSERTION_TYPE}"),
        ));
    }
    let scope = check_scope(form.get("scope"))?;
    let audience = format!("{}{TOKEN_PATH}", state.base_url);
    let now_secs = epoch_secs(SystemTime::now());
    let assertion = form.get("client_assertion").map_or("", String::as_str);
    let verified = assertion::verify(
        assertion,
        &app.public_key,
        &app.client_id,
        &audience,
        now_secs,
    )
    .map_err(|error| TokenRejection::invalid_client(error.to_string()))?;
    if form.get("client_id").is_some_and(|id| *id != app.client_id) {
        return Err(TokenRejection::invalid_client(
            "client_id does not match the client_assertion".to_owned(),
        ));
    }

    let mut store = state.lock();
    if !store
        .tokens
        .remember_jti(&verified.jti, verified.expires_at, now_secs)
    {
        return Err(TokenRejection::invalid_client(
            AssertionError::ReusedJti.to_string(),
        ));
    }
    let token = store.tokens.issue(app.token_lifetime, Instant::now());
    drop(store);
    tracing::debug!(client_id = %app.client_id, "Issued access token");
    Ok(token_response(&token, app.token_lifetime, &scope))
}

/// Parses the form body; a repeated parameter is rejected, as RFC 6749 section 3.2 requires.
fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, TokenRejection> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(TokenRejection::bad_request(
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let mut form = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(body) {
        if form.insert(name.to_string(), value.into_owned()).is_some() {
            return Err(TokenRejection::bad_request(
                "invalid_request",
                &format!("the parameter {name} appears more than once"),
            ));
        }
    }
    Ok(form)
}

/// Returns the requested scopes, or rejects a missing or unknown one.
fn check_scope(scope: Option<&String>) -> Result<String, TokenRejection> {
    let scopes: Vec<&str> = scope.map_or(Vec::new(), |s| s.split_whitespace().collect());
    if scopes.is_empty() {
        return Err(TokenRejection::bad_request(
            "invalid_scope",
            "scope is required for the client_credentials grant",
        ));
    }
    if let Some(unknown) = scopes.iter().find(|s| !KNOWN_SCOPES.contains(s)) {
        return Err(TokenRejection::bad_request(
            "invalid_scope",
            &format!("the scope {unknown} is not known"),
        ));
    }
    Ok(scopes.join(" "))
}

fn token_response(token: &str, lifetime: Duration, scope: &str) -> Response {
    let expires_in = lifetime.as_secs() + u64::from(lifetime.subsec_nanos() > 0);
    let body = json!({
        "token_type": "Bearer",
        "expires_in": expires_in,
        "access_token": token,
        "scope": scope,
    });
    ([(CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

impl TokenRejection {
    fn bad_request(error: &'static str, description: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.to_owned(),
        }
    }

    fn invalid_client(description: String) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description,
        }
    }
}

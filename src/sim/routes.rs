//! Handlers for the Okta routes the worker calls: the Dynamic Client Registration API under
//! `/oauth2/v1/clients`, the app lifecycle and group routes under `/api/v1/apps`, and the
//! token endpoint `/oauth2/v1/token` (see [`super::token`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::LINK;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::okta_errors;
use super::pipeline::okta_pipeline;
use super::state::{AppStatus, SimClient, SimState};
use super::token;
use super::validation::validate_registration;
use crate::contract::registration::ClientRegistration;
use crate::secret::Secret;

/// Page size of `GET /oauth2/v1/clients` when `limit` is absent.
const DEFAULT_PAGE_SIZE: usize = 20;

/// Largest page size; a larger `limit` is lowered to this.
const MAX_PAGE_SIZE: usize = 200;

/// A client in a DCR response (RFC 7591 section 3.2.1 plus the registered metadata).
#[derive(Serialize)]
struct ClientBody<'a> {
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<&'a Secret>,
    client_id_issued_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret_expires_at: Option<i64>,
    #[serde(flatten)]
    metadata: &'a ClientRegistration,
}

/// Builds the Okta routes, with the unknown-route and wrong-method fallbacks, all behind
/// [`okta_pipeline`].
pub(crate) fn router(state: Arc<SimState>) -> Router<Arc<SimState>> {
    Router::new()
        .route("/oauth2/v1/clients", post(create_client).get(list_clients))
        .route(
            "/oauth2/v1/clients/{client_id}",
            get(get_client).delete(delete_client),
        )
        .route(
            "/oauth2/v1/clients/{client_id}/lifecycle/newSecret",
            post(new_secret),
        )
        .route(
            "/api/v1/apps/{app_id}/lifecycle/activate",
            post(activate_app),
        )
        .route(
            "/api/v1/apps/{app_id}/lifecycle/deactivate",
            post(deactivate_app),
        )
        .route("/api/v1/apps/{app_id}/groups/{group_id}", put(assign_group))
        .route(token::TOKEN_PATH, post(token::issue_token))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(unknown_route)
        .layer(from_fn_with_state(state, okta_pipeline))
}

/// `POST /oauth2/v1/clients`: 201 with the new client and, for secret-based methods, its
/// secret. Duplicate names are allowed, as in Okta.
async fn create_client(State(state): State<Arc<SimState>>, body: Bytes) -> Response {
    let document: Value = match serde_json::from_slice(&body) {
        Ok(document @ Value::Object(_)) => document,
        _ => return okta_errors::malformed_body(),
    };
    let metadata = match validate_registration(document) {
        Ok(metadata) => metadata,
        Err(error) => {
            tracing::debug!(%error, "Rejected client registration");
            return okta_errors::invalid_client_metadata(&error.to_string());
        }
    };
    let client = state.lock().clients.insert(metadata);
    tracing::debug!(client_id = %client.client_id, "Created client");
    (StatusCode::CREATED, Json(client_body(&client, true))).into_response()
}

/// `GET /oauth2/v1/clients?q=&limit=&after=`: clients in creation order whose `client_name`
/// starts with `q` (Okta documents a startsWith match), without secrets. A `Link` header with
/// `rel="self"` is always sent, and a second one with `rel="next"` when more clients match,
/// as Okta sends them.
async fn list_clients(State(state): State<Arc<SimState>>, RawQuery(query): RawQuery) -> Response {
    let params = match ListParams::parse(query.as_deref()) {
        Ok(params) => params,
        Err(detail) => return okta_errors::validation_failed(&detail),
    };
    let (page, has_more) =
        state
            .lock()
            .clients
            .page(params.q.as_deref(), params.after.as_deref(), params.limit);

    let bodies: Vec<ClientBody<'_>> = page.iter().map(|c| client_body(c, false)).collect();
    let mut response = Json(bodies).into_response();
    let headers = response.headers_mut();
    let self_link = format!(
        "<{}/oauth2/v1/clients{}>; rel=\"self\"",
        state.base_url,
        query.map(|q| format!("?{q}")).unwrap_or_default()
    );
    append_link(headers, &self_link);
    if let (true, Some(last)) = (has_more, page.last()) {
        let next = params.next_url(&state.base_url, &last.client_id);
        append_link(headers, &format!("<{next}>; rel=\"next\""));
    }
    response
}

/// `GET /oauth2/v1/clients/{clientId}`: the client without its secret.
async fn get_client(State(state): State<Arc<SimState>>, Path(client_id): Path<String>) -> Response {
    match state.lock().clients.get(&client_id) {
        Some(client) => Json(client_body(client, false)).into_response(),
        None => okta_errors::app_not_found(&client_id),
    }
}

/// `DELETE /oauth2/v1/clients/{clientId}`: 204.
///
/// With `delete_requires_inactive`, an ACTIVE app is rejected with 403 E0000056 "Delete
/// application forbidden.", Okta's error code for a forbidden application delete.
// NOTE: not verified against Okta: neither the code nor whether DCR's own DELETE checks the
// app status could be confirmed in Okta's API reference.
async fn delete_client(
    State(state): State<Arc<SimState>>,
    Path(client_id): Path<String>,
) -> Response {
    let mut store = state.lock();
    let Some(client) = store.clients.get(&client_id) else {
        return okta_errors::app_not_found(&client_id);
    };
    if state.settings.delete_requires_inactive && client.status == AppStatus::Active {
        return okta_errors::okta_error(
            StatusCode::FORBIDDEN,
            "E0000056",
            "Delete application forbidden.",
        );
    }
    store.clients.remove(&client_id);
    drop(store);
    tracing::debug!(%client_id, "Deleted client");
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /oauth2/v1/clients/{clientId}/lifecycle/newSecret`: 200 with the client and a new
/// secret, which replaces the old one. Clients without a secret get 400.
async fn new_secret(State(state): State<Arc<SimState>>, Path(client_id): Path<String>) -> Response {
    let mut store = state.lock();
    let Some(client) = store.clients.get(&client_id) else {
        return okta_errors::app_not_found(&client_id);
    };
    if !client.metadata.has_secret() {
        let description = format!(
            "client '{client_id}' uses token_endpoint_auth_method '{}', which has no client secret",
            client.metadata.token_endpoint_auth_method
        );
        return okta_errors::invalid_client_metadata(&description);
    }
    let Some(client) = store.clients.renew_secret(&client_id) else {
        return okta_errors::app_not_found(&client_id);
    };
    let body = Json(client_body(client, true)).into_response();
    drop(store);
    tracing::debug!(%client_id, "Rotated client secret");
    body
}

/// `POST /api/v1/apps/{appId}/lifecycle/activate`: 200 `{}`.
async fn activate_app(State(state): State<Arc<SimState>>, Path(app_id): Path<String>) -> Response {
    set_status(&state, &app_id, AppStatus::Active)
}

/// `POST /api/v1/apps/{appId}/lifecycle/deactivate`: 200 `{}`.
async fn deactivate_app(
    State(state): State<Arc<SimState>>,
    Path(app_id): Path<String>,
) -> Response {
    set_status(&state, &app_id, AppStatus::Inactive)
}

/// `PUT /api/v1/apps/{appId}/groups/{groupId}`: records the group on the app and returns the
/// assignment. Assigning the same group again changes nothing. The request body (priority,
/// profile) is ignored and `priority` is always 0.
async fn assign_group(
    State(state): State<Arc<SimState>>,
    Path((app_id, group_id)): Path<(String, String)>,
) -> Response {
    let mut store = state.lock();
    let Some(client) = store.clients.get_mut(&app_id) else {
        return okta_errors::app_not_found(&app_id);
    };
    if !client.group_ids.contains(&group_id) {
        client.group_ids.push(group_id.clone());
    }
    drop(store);
    let last_updated = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    Json(json!({
        "id": group_id,
        "priority": 0,
        "lastUpdated": last_updated,
        "_links": {
            "app": {"href": format!("{}/api/v1/apps/{app_id}", state.base_url)},
            "group": {"href": format!("{}/api/v1/groups/{group_id}", state.base_url)},
        },
    }))
    .into_response()
}

/// Any path without a route: 404 E0000007.
async fn unknown_route(uri: Uri) -> Response {
    let summary = format!("Not found: Resource not found: {}", uri.path());
    okta_errors::okta_error(StatusCode::NOT_FOUND, "E0000007", &summary)
}

/// A known path with a method it does not have: 405 E0000022, as Okta responds.
async fn method_not_allowed() -> Response {
    okta_errors::okta_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "E0000022",
        "The endpoint does not support the provided HTTP method",
    )
}

fn set_status(state: &SimState, app_id: &str, status: AppStatus) -> Response {
    let mut store = state.lock();
    let Some(client) = store.clients.get_mut(app_id) else {
        return okta_errors::app_not_found(app_id);
    };
    client.status = status;
    drop(store);
    tracing::debug!(%app_id, ?status, "Changed app status");
    Json(json!({})).into_response()
}

fn client_body(client: &SimClient, include_secret: bool) -> ClientBody<'_> {
    ClientBody {
        client_id: &client.client_id,
        client_secret: client.client_secret.as_ref().filter(|_| include_secret),
        client_id_issued_at: client.client_id_issued_at,
        client_secret_expires_at: client.metadata.has_secret().then_some(0),
        metadata: &client.metadata,
    }
}

fn append_link(headers: &mut axum::http::HeaderMap, link: &str) {
    if let Ok(value) = HeaderValue::from_str(link) {
        headers.append(LINK, value);
    }
}

/// Query parameters of `GET /oauth2/v1/clients`.
struct ListParams {
    q: Option<String>,
    after: Option<String>,
    limit: usize,
}

impl ListParams {
    /// Parses the query string. Unknown parameters are ignored. The error describes an invalid
    /// `limit`.
    fn parse(query: Option<&str>) -> Result<Self, String> {
        let mut params = Self {
            q: None,
            after: None,
            limit: DEFAULT_PAGE_SIZE,
        };
        let pairs = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes());
        for (name, value) in pairs {
            match name.as_ref() {
                "q" => params.q = Some(value.into_owned()),
                "after" => params.after = Some(value.into_owned()),
                "limit" => params.limit = parse_limit(&value)?,
                _ => {}
            }
        }
        Ok(params)
    }

    fn next_url(&self, base_url: &str, last_client_id: &str) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(q) = &self.q {
            query.append_pair("q", q);
        }
        query.append_pair("limit", &self.limit.to_string());
        query.append_pair("after", last_client_id);
        format!("{base_url}/oauth2/v1/clients?{}", query.finish())
    }
}

fn parse_limit(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(limit) if limit >= 1 => Ok(limit.min(MAX_PAGE_SIZE)),
        _ => Err(format!(
            "limit must be an integer from 1 to {MAX_PAGE_SIZE}; got '{value}'"
        )),
    }
}

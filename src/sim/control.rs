//! The control API under `/sim/v1/`, for tests that run the simulator as a separate process.
//! It takes the same `Authorization: SSWS <token>` header as the Okta routes, and is never
//! recorded, delayed, rate-limited, faulted or rejected by `set_token_accepted(false)`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth;
use super::faults::Fault;
use super::okta_errors;
use super::state::SimState;

/// Body of `POST /sim/v1/token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenAcceptance {
    /// `false` makes every Okta route respond 401 E0000011.
    pub accepted: bool,
}

/// Builds the control routes.
pub(crate) fn router(state: Arc<SimState>) -> Router<Arc<SimState>> {
    Router::new()
        .route("/sim/v1/clients", get(list_clients))
        .route(
            "/sim/v1/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .route("/sim/v1/requests", get(list_requests))
        .route("/sim/v1/token", post(set_token))
        .route("/sim/v1/tokens/revoke", post(revoke_tokens))
        .route_layer(from_fn_with_state(state, require_token))
}

async fn require_token(
    State(state): State<Arc<SimState>>,
    request: Request,
    next: Next,
) -> Response {
    if auth::has_api_token(request.headers(), &state.api_token) {
        next.run(request).await
    } else {
        okta_errors::invalid_token()
    }
}

async fn list_clients(State(state): State<Arc<SimState>>) -> Response {
    Json(state.lock().clients.snapshot()).into_response()
}

/// Queues a fault; 204, or 400 E0000001 naming what is wrong with it.
async fn add_fault(State(state): State<Arc<SimState>>, body: Bytes) -> Response {
    let fault: Fault = match serde_json::from_slice(&body) {
        Ok(fault) => fault,
        Err(error) => return okta_errors::validation_failed(&format!("invalid fault: {error}")),
    };
    if let Err(error) = fault.validate() {
        return okta_errors::validation_failed(&error.to_string());
    }
    tracing::debug!(method = %fault.method, path = %fault.path, count = fault.count, "Scripted fault");
    state.lock().faults.push(fault);
    StatusCode::NO_CONTENT.into_response()
}

async fn list_faults(State(state): State<Arc<SimState>>) -> Response {
    Json(state.lock().faults.pending()).into_response()
}

async fn clear_faults(State(state): State<Arc<SimState>>) -> Response {
    state.lock().faults.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn list_requests(State(state): State<Arc<SimState>>) -> Response {
    Json(state.lock().requests.completed()).into_response()
}

async fn set_token(State(state): State<Arc<SimState>>, body: Bytes) -> Response {
    let acceptance: TokenAcceptance = match serde_json::from_slice(&body) {
        Ok(acceptance) => acceptance,
        Err(error) => {
            return okta_errors::validation_failed(&format!("invalid token setting: {error}"))
        }
    };
    state.lock().token_accepted = acceptance.accepted;
    tracing::debug!(
        accepted = acceptance.accepted,
        "Changed API token acceptance"
    );
    StatusCode::NO_CONTENT.into_response()
}

/// Revokes every access token issued by the token endpoint; 204.
async fn revoke_tokens(State(state): State<Arc<SimState>>) -> Response {
    let revoked = state.lock().tokens.revoke_all();
    tracing::debug!(revoked, "Revoked access tokens");
    StatusCode::NO_CONTENT.into_response()
}

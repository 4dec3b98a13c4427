//! `okta-sim`: an in-memory stand-in for the parts of Okta the worker uses, for demos,
//! end-to-end tests and benchmarks.
//!
//! It serves the Dynamic Client Registration API (`/oauth2/v1/clients`, including
//! `lifecycle/newSecret`), app activation and deactivation
//! (`/api/v1/apps/{appId}/lifecycle/...`) and group assignment
//! (`PUT /api/v1/apps/{appId}/groups/{groupId}`). Every Okta route takes
//! `Authorization: SSWS <token>` and responds with `Date`, `X-Okta-Request-Id` and
//! `X-Rate-Limit-Limit`/`-Remaining`/`-Reset` headers. Rate limits count per one-minute window
//! (configurable with [`SimConfig::rate_limit_window`]) in three buckets, `/oauth2/v1/clients*`, `/api/v1/apps*` and `/oauth2/v1/token`. Nothing is
//! persisted: the state lives as long as the process.
//!
//! With [`SimConfig::service_app`] set, the token endpoint `POST /oauth2/v1/token` issues
//! access tokens to that OAuth 2.0 service app for the `client_credentials` grant with a
//! `private_key_jwt` client assertion, and the Okta routes also accept
//! `Authorization: Bearer <access token>` until the token expires or is revoked. A revoked or
//! expired token gets 401 E0000011, like a wrong API token. The token endpoint takes no
//! `Authorization` header and is recorded, rate-limited and faulted like the other routes.
//!
//! In-process, [`start`] returns a [`SimHandle`] to inspect clients and requests and to script
//! [`Fault`]s. The `okta-sim` subcommand runs [`serve_forever`], which prints one line such as
//!
//! ```text
//! okta-sim base_url=http://127.0.0.1:8080 api_token=00Ab...
//! ```
//!
//! (`api_token` appears only when the token was generated) and serves until Ctrl-C or SIGTERM.
//!
//! # Outages
//!
//! [`SimHandle::go_offline`] imitates an Okta that cannot be reached: the listening socket
//! closes, so new connections are refused, and every open connection is dropped, so calls in
//! progress end without a response. The port stays bound meanwhile, and
//! [`SimHandle::go_online`] serves again on the same address with the clients, faults,
//! recorded requests and rate-limit counts it had. The control API has no equivalent, because
//! it is served on the same socket.
//!
//! # Control API
//!
//! A separate process is driven over HTTP under `/sim/v1/`, with the same
//! `Authorization: SSWS <token>` header. Control requests are not recorded, delayed,
//! rate-limited or faulted, and keep working after the token was set to rejected.
//!
//! | Request | Effect |
//! | --- | --- |
//! | `GET /sim/v1/clients` | JSON array of [`SimClient`], with current secrets |
//! | `POST /sim/v1/faults` | queues a [`Fault`] (JSON); 204, or 400 naming the problem |
//! | `GET /sim/v1/faults` | faults still queued, with the uses left in `count` |
//! | `DELETE /sim/v1/faults` | removes all queued faults; 204 |
//! | `GET /sim/v1/requests` | JSON array of [`RecordedRequest`], in arrival order |
//! | `POST /sim/v1/token` | `{"accepted": false}` makes every Okta route except the token endpoint respond 401; `true` restores |
//! | `POST /sim/v1/tokens/revoke` | every issued access token stops working; 204 |
//!
//! For example, to make the next two registrations fail with 503, and the next delete remove
//! the client but respond 502 as if the response was lost:
//!
//! ```sh
//! H="Authorization: SSWS $TOKEN"
//! curl -sf -H "$H" -H 'Content-Type: application/json' "$BASE/sim/v1/faults" -d '{
//!   "method": "POST", "path": "/oauth2/v1/clients", "count": 2,
//!   "action": {"kind": "respond", "status": 503,
//!              "body": {"errorCode": "E0000009", "errorSummary": "Internal Server Error"}}}'
//! curl -sf -H "$H" -H 'Content-Type: application/json' "$BASE/sim/v1/faults" -d '{
//!   "method": "DELETE", "path": "/oauth2/v1/clients/*",
//!   "action": {"kind": "apply_then_respond", "status": 502}}'
//! curl -sf -H "$H" "$BASE/sim/v1/requests"
//! ```
//!
//! A fault has the fields `method` (or `*`), `path` (`*` matches one segment), `count`
//! (default 1), `delay_ms` (default 0) and `action`. The action has `kind` (`respond` or
//! `apply_then_respond`), `status`, and optional `body`, `headers` and
//! `rate_limit_reset_in_secs`, which sets `X-Rate-Limit-Reset` to `Date` plus that many seconds
//! and Remaining to 0. [`Fault`] describes each field.

mod assertion;
mod auth;
mod control;
mod faults;
mod ids;
mod okta_errors;
mod pipeline;
mod rate_limit;
mod routes;
mod server;
mod state;
mod token;
mod validation;

#[cfg(test)]
pub(crate) mod test_keys;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod token_tests;

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use control::TokenAcceptance;
pub use faults::{Fault, FaultAction, FaultError, ScriptedResponse};
pub use okta_errors::{oauth_error_body, okta_error_body};
pub use state::{AppStatus, RecordedRequest, SimClient};
pub use token::SimServiceApp;

use crate::secret::Secret;
use rate_limit::RateLimiter;
use server::Server;
use state::{Settings, SimState};
use token::{ServiceAppVerifier, TOKEN_PATH};

/// Settings of a simulator instance.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Token the Okta and control routes accept as `SSWS <token>`. `None` generates a random
    /// Okta-shaped token at start, readable through [`SimHandle::api_token`].
    pub api_token: Option<Secret>,
    /// Delay added to every Okta-route call, to imitate network and Okta latency: half before
    /// the route takes effect and half after. Default 0.
    pub latency: Duration,
    /// Requests allowed per bucket per window before 429 E0000047. `None` (the default) never
    /// rejects, and reports a limit of 1,000,000 with the real remaining count, so that the
    /// worker's pacing never delays calls.
    pub rate_limit_per_minute: Option<u32>,
    /// Length of a rate-limit window, rounded down to whole seconds (at least 1 s), because
    /// `X-Rate-Limit-Reset` names whole seconds. Default 60 s as in Okta; tests shorten it so
    /// that a window passes quickly. `rate_limit_per_minute` then counts per window.
    pub rate_limit_window: Duration,
    /// When `true`, deleting an ACTIVE client gets 403 E0000056, so the worker must
    /// deactivate it first. Default `false`.
    pub delete_requires_inactive: bool,
    /// The OAuth 2.0 service app the token endpoint issues access tokens to. `None` (the
    /// default) rejects every token request with 401 `invalid_client`.
    pub service_app: Option<SimServiceApp>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            api_token: None,
            latency: Duration::ZERO,
            rate_limit_per_minute: None,
            rate_limit_window: Duration::from_secs(60),
            delete_requires_inactive: false,
            service_app: None,
        }
    }
}

/// A running simulator. Clones share the same server. The server stops on
/// [`SimHandle::shutdown`], or once every clone is dropped.
#[derive(Clone)]
pub struct SimHandle {
    state: Arc<SimState>,
    server: Arc<Server>,
}

/// Starts the simulator on `listener` in a spawned task and returns at once.
///
/// # Errors
///
/// Fails when the listener's local address cannot be read, or with `InvalidInput` when the
/// service app's public key is not a PEM RSA public key.
pub async fn start(listener: TcpListener, config: SimConfig) -> io::Result<SimHandle> {
    let base_url = base_url_for(listener.local_addr()?);
    let service_app = config
        .service_app
        .map(ServiceAppVerifier::new)
        .transpose()?;
    let api_token = config.api_token.unwrap_or_else(ids::new_api_token);
    let settings = Settings {
        latency: config.latency,
        delete_requires_inactive: config.delete_requires_inactive,
    };
    let state = Arc::new(SimState::new(
        settings,
        RateLimiter::new(
            config.rate_limit_per_minute,
            config.rate_limit_window.as_secs(),
        ),
        api_token,
        service_app,
        base_url,
    ));

    let app = routes::router(state.clone())
        .merge(control::router(state.clone()))
        .with_state(state.clone());
    let server = Arc::new(Server::start(listener, app)?);
    tracing::info!(base_url = %state.base_url, "Started okta-sim");
    Ok(SimHandle { state, server })
}

impl SimHandle {
    /// Returns the URL to give the worker as its Okta base URL, such as
    /// `http://127.0.0.1:8080`. A listener on an unspecified address (`0.0.0.0`, `::`) is
    /// reported as loopback.
    pub fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    /// Returns the token the simulator accepts as `SSWS <token>`.
    pub fn api_token(&self) -> &Secret {
        &self.state.api_token
    }

    /// Returns all clients in creation order, with current secrets, status and groups.
    pub fn clients(&self) -> Vec<SimClient> {
        self.state.lock().clients.snapshot()
    }

    /// Queues a fault after those already queued; the first matching fault is used. A fault
    /// with an invalid status responds 500 and its invalid headers are skipped, whereas the
    /// control API rejects such faults with 400.
    pub fn script(&self, fault: Fault) {
        if let Err(error) = fault.validate() {
            tracing::warn!(%error, "Scripted an invalid fault");
        }
        self.state.lock().faults.push(fault);
    }

    /// Removes every queued fault.
    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    /// Returns the faults still queued; `count` is the number of uses left.
    pub fn pending_faults(&self) -> Vec<Fault> {
        self.state.lock().faults.pending()
    }

    /// Returns the completed requests on Okta routes (unknown paths included, control routes
    /// excluded) in arrival order. A request still in progress is not listed yet. Only the
    /// last 100 000 requests are kept.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.lock().requests.completed()
    }

    /// Returns how many requests reached the token endpoint, whatever their outcome. Each is
    /// also listed by [`SimHandle::requests`] with path `/oauth2/v1/token`.
    pub fn token_requests(&self) -> usize {
        let store = self.state.lock();
        let requests = store.requests.completed();
        requests.iter().filter(|r| r.path == TOKEN_PATH).count()
    }

    /// Revokes every access token issued so far, as when an Okta admin revokes the service
    /// app's tokens: Okta routes respond 401 E0000011 to them until the client requests a new
    /// one.
    pub fn revoke_access_tokens(&self) {
        let revoked = self.state.lock().tokens.revoke_all();
        tracing::debug!(revoked, "Revoked access tokens");
    }

    /// With `false`, every Okta route except the token endpoint responds 401 E0000011 even with
    /// the right API token or access token, as when Okta revokes the worker's credential.
    /// `true` restores normal checking.
    pub fn set_token_accepted(&self, accepted: bool) {
        self.state.lock().token_accepted = accepted;
    }

    /// Returns every client secret the simulator issued, in order: those of new clients and
    /// of `lifecycle/newSecret`, including secrets since replaced and those of deleted clients.
    pub fn issued_secrets(&self) -> Vec<Secret> {
        self.state.lock().clients.issued_secrets().to_vec()
    }

    /// Takes the simulator off the network, as when Okta is unreachable: the listening socket
    /// closes, so new connections are refused, and every open connection is dropped, so calls
    /// in progress fail without a response (a call whose route already ran keeps its effect).
    /// Clients, faults, recorded requests and rate-limit counts are kept. Does nothing when the
    /// simulator is already offline or was shut down.
    ///
    /// # Errors
    ///
    /// Fails when the port cannot be held after the listener closed; the server is then
    /// stopped.
    pub async fn go_offline(&self) -> io::Result<()> {
        self.server.go_offline().await
    }

    /// Serves again on the same address, with the state it had when it went offline. Does
    /// nothing when the simulator is online or was shut down.
    ///
    /// # Errors
    ///
    /// Fails when the socket cannot listen again; the server is then stopped.
    pub async fn go_online(&self) -> io::Result<()> {
        self.server.go_online().await
    }

    /// Stops accepting connections, lets requests in progress finish, and waits for the
    /// server to end. Other clones of the handle see a stopped server.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
        tracing::info!(base_url = %self.state.base_url, "Stopped okta-sim");
    }
}

/// Binds `addr`, prints one line with the base URL (and the API token when it was generated)
/// to stdout, and serves until Ctrl-C (SIGINT) or SIGTERM.
///
/// # Errors
///
/// Fails when the address cannot be bound or the signal handlers cannot be installed.
pub async fn serve_forever(addr: SocketAddr, config: SimConfig) -> io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    // Installed before the line is printed, so a script that sends SIGTERM as soon as it reads
    // the line still gets a graceful stop.
    let stop = stop_signal()?;
    serve_until(listener, config, |line| println!("{line}"), stop).await
}

/// Starts the simulator, passes the startup line to `announce`, and serves until `stop`
/// resolves.
async fn serve_until(
    listener: TcpListener,
    config: SimConfig,
    announce: impl FnOnce(&str),
    stop: impl Future<Output = ()>,
) -> io::Result<()> {
    let token_generated = config.api_token.is_none();
    let handle = start(listener, config).await?;

    let mut line = format!("okta-sim base_url={}", handle.base_url());
    if token_generated {
        // The generated token is printed so the user can pass it to the worker. This line is
        // the only place it appears.
        line.push_str(&format!(" api_token={}", handle.api_token().expose()));
    }
    announce(&line);

    stop.await;
    handle.shutdown().await;
    Ok(())
}

#[cfg(unix)]
fn stop_signal() -> io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!(signal = "SIGINT", "Stopping okta-sim"),
            _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "Stopping okta-sim"),
        }
    })
}

#[cfg(not(unix))]
fn stop_signal() -> io::Result<impl Future<Output = ()>> {
    Ok(async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => tracing::info!("Stopping okta-sim after Ctrl-C"),
            Err(error) => tracing::error!(%error, "Failed to wait for Ctrl-C, stopping okta-sim"),
        }
    })
}

fn base_url_for(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

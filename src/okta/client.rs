//! The Okta operations the worker uses: DCR client create, find, get, delete and secret
//! rotation, and app activation, deactivation and group assignment.

use std::fmt;
use std::sync::Arc;

use url::Url;

use super::config::OktaConfig;
use super::error::OktaError;
use super::model::RegisteredClient;
use super::pagination::next_link;
use super::rate_limit::{RateLimitBucket, RateLimitSnapshot};
use super::retry::RetryBudget;
use super::route::Route;
use super::transport::{Success, Transport};
use crate::contract::registration::ClientRegistration;

/// Page size requested from `GET /oauth2/v1/clients`; 200 is the maximum Okta documents.
const LIST_PAGE_SIZE: &str = "200";

/// Maximum pages read for one name search (200 clients each). More means the `q` filter
/// matched far more clients than one name can, so the search stops with an error instead
/// of looping.
const MAX_LIST_PAGES: usize = 100;

/// The outcome of [`OktaClient::delete_client`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// The client existed and is now deleted.
    Deleted,
    /// Okta reported no such client, so there was nothing to delete.
    AlreadyAbsent,
}

/// Client for Okta's DCR and app APIs. Cloning is cheap and clones share the HTTP
/// connection pool and the rate-limit snapshots.
#[derive(Clone)]
pub struct OktaClient {
    inner: Arc<Transport>,
}

impl OktaClient {
    /// Validates the configuration and builds the HTTP client. Fails with
    /// [`OktaError::Config`] on an unusable URL, duration or token. A service app requests its
    /// first access token with the first call, not here.
    pub fn new(config: OktaConfig) -> Result<Self, OktaError> {
        let transport = Transport::new(config)?;
        warn_on_plain_http(&transport.org_url);
        Ok(Self {
            inner: Arc::new(transport),
        })
    }

    /// Registers a new OAuth 2.0 client (`POST /oauth2/v1/clients`). The result carries the
    /// client secret when the registration uses one.
    pub async fn create_client(
        &self,
        registration: &ClientRegistration,
        budget: &RetryBudget,
    ) -> Result<RegisteredClient, OktaError> {
        let url = self.inner.url(&["oauth2", "v1", "clients"])?;
        let body = serde_json::to_vec(registration).map_err(|error| {
            OktaError::Config(format!("cannot serialize the client registration: {error}"))
        })?;
        let route = Route::CreateClient;
        let response = self.inner.call(route, &url, Some(&body), budget).await?;
        response.json()
    }

    /// Finds the client whose `client_name` equals `name` exactly, following every result
    /// page of `GET /oauth2/v1/clients?q=<name>`. Okta's `q` matches name prefixes, so other
    /// clients are dropped here. With several exact matches it returns the one issued first
    /// and logs a warning with all their ids.
    pub async fn find_client_by_name(
        &self,
        name: &str,
        budget: &RetryBudget,
    ) -> Result<Option<RegisteredClient>, OktaError> {
        let mut page_url = Some(self.first_list_page(name)?);
        let mut matches = Vec::new();
        let mut pages = 0;
        while let Some(url) = page_url.take() {
            pages += 1;
            let response = self
                .inner
                .call(Route::ListClients, &url, None, budget)
                .await?;
            let clients: Vec<RegisteredClient> = response.json()?;
            matches.extend(clients.into_iter().filter(|c| c.client_name == name));
            page_url = self.next_page(&url, &response)?;
            if page_url.is_some() && pages >= MAX_LIST_PAGES {
                return Err(list_error(
                    &response,
                    "more result pages than the search reads",
                ));
            }
        }
        Ok(earliest_issued(name, matches))
    }

    /// Reads one client (`GET /oauth2/v1/clients/{clientId}`). Returns `None` when Okta
    /// reports it absent (404 `E0000007` or 401 `invalid_client`).
    pub async fn get_client(
        &self,
        client_id: &str,
        budget: &RetryBudget,
    ) -> Result<Option<RegisteredClient>, OktaError> {
        let url = self.inner.url(&["oauth2", "v1", "clients", client_id])?;
        match self.inner.call(Route::GetClient, &url, None, budget).await {
            Ok(response) => response.json().map(Some),
            Err(error) if error.is_absent() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Deletes a client (`DELETE /oauth2/v1/clients/{clientId}`). When Okta rejects it because
    /// the app is still active, it deactivates the app and deletes again. An absent client
    /// yields [`Deletion::AlreadyAbsent`].
    pub async fn delete_client(
        &self,
        client_id: &str,
        budget: &RetryBudget,
    ) -> Result<Deletion, OktaError> {
        match self.delete_once(client_id, budget).await {
            Err(error) if error.requires_deactivation() => {
                tracing::info!(
                    client_id,
                    okta_request_id = error.okta_request_id(),
                    "Okta rejected deleting an active app, deactivating it first"
                );
            }
            other => return other,
        }
        match self.deactivate_app(client_id, budget).await {
            Err(error) if error.is_absent() => return Ok(Deletion::AlreadyAbsent),
            Err(error) => return Err(error),
            Ok(()) => {}
        }
        self.delete_once(client_id, budget).await
    }

    /// Issues a new client secret
    /// (`POST /oauth2/v1/clients/{clientId}/lifecycle/newSecret`) and returns the client
    /// with it.
    pub async fn new_secret(
        &self,
        client_id: &str,
        budget: &RetryBudget,
    ) -> Result<RegisteredClient, OktaError> {
        let segments = [
            "oauth2",
            "v1",
            "clients",
            client_id,
            "lifecycle",
            "newSecret",
        ];
        let url = self.inner.url(&segments)?;
        let response = self
            .inner
            .call(Route::NewSecret, &url, None, budget)
            .await?;
        response.json()
    }

    /// Activates an app (`POST /api/v1/apps/{appId}/lifecycle/activate`). A DCR client's
    /// `client_id` is also its app id.
    pub async fn activate_app(&self, app_id: &str, budget: &RetryBudget) -> Result<(), OktaError> {
        let url = self
            .inner
            .url(&["api", "v1", "apps", app_id, "lifecycle", "activate"])?;
        self.inner
            .call(Route::ActivateApp, &url, None, budget)
            .await?;
        Ok(())
    }

    /// Deactivates an app (`POST /api/v1/apps/{appId}/lifecycle/deactivate`).
    pub async fn deactivate_app(
        &self,
        app_id: &str,
        budget: &RetryBudget,
    ) -> Result<(), OktaError> {
        let url = self
            .inner
            .url(&["api", "v1", "apps", app_id, "lifecycle", "deactivate"])?;
        self.inner
            .call(Route::DeactivateApp, &url, None, budget)
            .await?;
        Ok(())
    }

    /// Assigns a group to an app (`PUT /api/v1/apps/{appId}/groups/{groupId}` with body
    /// `{}`). Assigning a group that is already assigned succeeds.
    pub async fn assign_group(
        &self,
        app_id: &str,
        group_id: &str,
        budget: &RetryBudget,
    ) -> Result<(), OktaError> {
        let url = self
            .inner
            .url(&["api", "v1", "apps", app_id, "groups", group_id])?;
        let route = Route::AssignGroup;
        self.inner.call(route, &url, Some(b"{}"), budget).await?;
        Ok(())
    }

    /// Checks that Okta accepts the credential, with the cheapest authenticated call
    /// (`GET /oauth2/v1/clients?limit=1`). A service app requests an access token first when it
    /// has none. Used to probe whether a rejected credential works again.
    ///
    /// # Errors
    ///
    /// The call's error; a rejected credential has [`super::ErrorClass::Systemic`] and code
    /// `okta_credential_rejected`.
    pub async fn check_credential(&self, budget: &RetryBudget) -> Result<(), OktaError> {
        let mut url = self.inner.url(&["oauth2", "v1", "clients"])?;
        url.query_pairs_mut().append_pair("limit", "1");
        self.inner
            .call(Route::ListClients, &url, None, budget)
            .await?;
        Ok(())
    }

    /// Returns the rate-limit headers of the latest response in `bucket`, if any carried
    /// them.
    pub fn last_rate_limit(&self, bucket: RateLimitBucket) -> Option<RateLimitSnapshot> {
        self.inner.rate_limits.latest(bucket)
    }

    async fn delete_once(
        &self,
        client_id: &str,
        budget: &RetryBudget,
    ) -> Result<Deletion, OktaError> {
        let url = self.inner.url(&["oauth2", "v1", "clients", client_id])?;
        match self
            .inner
            .call(Route::DeleteClient, &url, None, budget)
            .await
        {
            Ok(_) => Ok(Deletion::Deleted),
            Err(error) if error.is_absent() => Ok(Deletion::AlreadyAbsent),
            Err(error) => Err(error),
        }
    }

    fn first_list_page(&self, name: &str) -> Result<Url, OktaError> {
        let mut url = self.inner.url(&["oauth2", "v1", "clients"])?;
        url.query_pairs_mut()
            .append_pair("q", name)
            .append_pair("limit", LIST_PAGE_SIZE);
        Ok(url)
    }

    /// Returns the next page URL. A link to another origin is rejected, because following
    /// it would send the credential there.
    fn next_page(&self, current: &Url, response: &Success) -> Result<Option<Url>, OktaError> {
        let Some(link) = next_link(&response.headers) else {
            return Ok(None);
        };
        let next = current
            .join(&link)
            .map_err(|_| list_error(response, "the next-page link is not a valid URL"))?;
        if next.origin() != self.inner.org_url.origin() {
            return Err(list_error(
                response,
                "the next-page link points to another host",
            ));
        }
        Ok(Some(next))
    }
}

impl fmt::Debug for OktaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OktaClient")
            .field("org_url", &self.inner.org_url.as_str())
            .field("auth", &self.inner.authorizer)
            .field("call_timeout", &self.inner.call_timeout)
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

/// Picks the client issued first; a client without `client_id_issued_at` sorts last.
fn earliest_issued(name: &str, mut matches: Vec<RegisteredClient>) -> Option<RegisteredClient> {
    matches.sort_by_key(|c| {
        (
            c.client_id_issued_at.unwrap_or(i64::MAX),
            c.client_id.clone(),
        )
    });
    if matches.len() > 1 {
        let ids: Vec<&str> = matches.iter().map(|c| c.client_id.as_str()).collect();
        tracing::warn!(
            client_name = name,
            client_ids = ?ids,
            "Several Okta clients have the same name, using the one issued first"
        );
    }
    matches.into_iter().next()
}

fn list_error(response: &Success, detail: &str) -> OktaError {
    OktaError::InvalidResponse {
        route: Route::ListClients.template(),
        status: response.status,
        detail: detail.to_owned(),
        request_id: response.request_id(),
    }
}

/// Warns when the credential would travel unencrypted to a host other than this machine.
fn warn_on_plain_http(org_url: &Url) {
    let loopback = match org_url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(domain)) => domain == "localhost",
        None => false,
    };
    if org_url.scheme() == "http" && !loopback {
        tracing::warn!(
            org_url = org_url.as_str(),
            "Okta org URL uses plain http, the credential is sent unencrypted"
        );
    }
}

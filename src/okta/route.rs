//! The Okta endpoints the client calls, named by route template so that logs and metric
//! labels stay low in cardinality.

use reqwest::Method;

use super::rate_limit::RateLimitBucket;

/// One Okta endpoint. The concrete path is built by the client, with every id
/// percent-encoded as a single path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    CreateClient,
    ListClients,
    GetClient,
    DeleteClient,
    NewSecret,
    ActivateApp,
    DeactivateApp,
    AssignGroup,
    /// The org authorization server's token endpoint, called for service-app access tokens.
    Token,
}

impl Route {
    /// Returns the method and path template, for example `POST /oauth2/v1/clients`.
    pub(crate) fn template(self) -> &'static str {
        match self {
            Route::CreateClient => "POST /oauth2/v1/clients",
            Route::ListClients => "GET /oauth2/v1/clients",
            Route::GetClient => "GET /oauth2/v1/clients/{clientId}",
            Route::DeleteClient => "DELETE /oauth2/v1/clients/{clientId}",
            Route::NewSecret => "POST /oauth2/v1/clients/{clientId}/lifecycle/newSecret",
            Route::ActivateApp => "POST /api/v1/apps/{appId}/lifecycle/activate",
            Route::DeactivateApp => "POST /api/v1/apps/{appId}/lifecycle/deactivate",
            Route::AssignGroup => "PUT /api/v1/apps/{appId}/groups/{groupId}",
            Route::Token => "POST /oauth2/v1/token",
        }
    }

    pub(crate) fn method(self) -> Method {
        match self {
            Route::ListClients | Route::GetClient => Method::GET,
            Route::DeleteClient => Method::DELETE,
            Route::AssignGroup => Method::PUT,
            Route::CreateClient
            | Route::NewSecret
            | Route::ActivateApp
            | Route::DeactivateApp
            | Route::Token => Method::POST,
        }
    }

    /// Returns the Okta rate-limit bucket that counts calls to this route.
    pub(crate) fn bucket(self) -> RateLimitBucket {
        match self {
            Route::CreateClient
            | Route::ListClients
            | Route::GetClient
            | Route::DeleteClient
            | Route::NewSecret => RateLimitBucket::Clients,
            Route::ActivateApp | Route::DeactivateApp | Route::AssignGroup => RateLimitBucket::Apps,
            Route::Token => RateLimitBucket::Token,
        }
    }
}

//! Client for Okta's Dynamic Client Registration and app APIs.
//!
//! Every call retries transient failures (rate limits, server errors, timeouts) with capped
//! exponential backoff, or until the rate-limit reset when Okta names one, within a
//! [`RetryBudget`] shared by all calls made for one request. Before each call, the client
//! spreads the calls left in Okta's rate-limit window evenly over the time left (see
//! `pacing`), and it caps the calls in flight at [`OktaConfig::max_concurrent_calls`]. Errors carry a class and a
//! stable code (see [`error`]) so the worker can decide between failing the request,
//! delaying it and stopping.
//!
//! The client authenticates with an Okta API token (`SSWS`) or as an OAuth 2.0 service app
//! whose access tokens it requests with a signed client assertion (`private_key_jwt`), caches,
//! and renews before they expire or after Okta rejects one.

mod client;
mod config;
mod credential;
pub mod error;
pub mod model;
mod pacing;
mod pagination;
mod rate_limit;
mod retry;
mod route;
mod service_app;
mod token;
mod transport;

#[cfg(test)]
mod pacing_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod token_tests;

pub use client::{Deletion, OktaClient};
pub use config::{OktaAuth, OktaConfig};
pub use error::{ApiError, ErrorBody, ErrorClass, OktaError};
pub use model::RegisteredClient;
pub use rate_limit::{RateLimitBucket, RateLimitSnapshot};
pub use retry::RetryBudget;
pub use service_app::{ServiceApp, ASSERTION_LIFETIME, DEFAULT_RENEWAL_MARGIN};
pub use token::SCOPES;

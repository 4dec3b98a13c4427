//! Retry of transient Okta failures: capped exponential backoff with jitter, waits for the
//! rate-limit reset, and a deadline shared by every call made for one request.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use rand::Rng;

use super::error::{ErrorClass, OktaError};
use super::route::Route;

/// Upper bound of the random delay added after a rate-limit reset, so that workers that
/// were throttled together do not all retry in the same instant.
const MAX_RESET_JITTER: Duration = Duration::from_millis(500);

/// The time and attempt count of one request, shared by all Okta calls made for it.
///
/// A retry whose wait would end past the deadline is not made: the call returns its last
/// error at once, so the caller can delay the request elsewhere.
#[derive(Debug)]
pub struct RetryBudget {
    deadline: Instant,
    attempts: AtomicU32,
    retries: AtomicU32,
}

impl RetryBudget {
    /// Starts a budget whose deadline is `total` from now.
    pub fn new(total: Duration) -> Self {
        Self {
            deadline: Instant::now() + total,
            attempts: AtomicU32::new(0),
            retries: AtomicU32::new(0),
        }
    }

    /// Returns the number of HTTP attempts made so far under this budget.
    pub fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// Returns how many of those attempts were retries of a failed call.
    pub fn retries(&self) -> u32 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Returns the time left until the deadline, zero once it has passed.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Returns the instant after which no retry starts.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Counts one HTTP attempt and returns the new count.
    pub(crate) fn record_attempt(&self) -> u32 {
        self.attempts.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Counts a failed call that the caller makes again itself, outside the client's retries.
    pub fn record_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
}

/// Backoff settings of an `OktaClient`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    pub(crate) min_backoff: Duration,
    pub(crate) max_backoff: Duration,
}

impl RetryPolicy {
    /// Runs `attempt` until it succeeds, fails with a non-transient error, or the next wait
    /// would pass the budget's deadline.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        route: Route,
        budget: &RetryBudget,
        attempt: F,
    ) -> Result<T, OktaError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, OktaError>>,
    {
        let result = attempt
            .retry(self.backoff())
            .when(|error| is_retryable(route, error))
            .adjust(|error, backoff| self.next_wait(route, error, backoff, budget))
            .notify(|error, wait| {
                budget.record_retry();
                log_retry(route, error, budget.attempts(), wait)
            })
            .await;
        if let Err(error) = &result {
            tracing::debug!(
                route = route.template(),
                status = error.status(),
                error_code = error.code(),
                okta_request_id = error.okta_request_id(),
                attempts = budget.attempts(),
                "Okta call failed: {error}"
            );
        }
        result
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_backoff)
            .with_max_delay(self.max_backoff)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
    }

    /// Returns the wait before the next attempt, or `None` to stop because the wait would
    /// end past the deadline.
    ///
    /// A known rate-limit reset wins over the exponential backoff. backon adds up to 100 %
    /// jitter after applying its maximum, so the backoff is capped here again.
    fn next_wait(
        &self,
        route: Route,
        error: &OktaError,
        backoff: Option<Duration>,
        budget: &RetryBudget,
    ) -> Option<Duration> {
        let wait = match error.retry_after() {
            Some(reset_wait) => reset_wait + reset_jitter(),
            None => backoff?.min(self.max_backoff),
        };
        if wait > budget.remaining() {
            tracing::debug!(
                route = route.template(),
                error_code = error.code(),
                wait_ms = millis(wait),
                remaining_ms = millis(budget.remaining()),
                "Retry budget cannot cover the next wait, giving up"
            );
            return None;
        }
        Some(wait)
    }
}

/// Transient errors are retried, except a client registration that Okta may have carried out:
/// repeating it could create a second client, so the caller looks the client up instead.
fn is_retryable(route: Route, error: &OktaError) -> bool {
    let repeat_may_duplicate = route == Route::CreateClient && error.may_have_been_applied();
    error.class() == ErrorClass::Transient && !repeat_may_duplicate
}

fn log_retry(route: Route, error: &OktaError, attempt: u32, wait: Duration) {
    let key = format!("retry {} {}", route.template(), error.code());
    let Some(suppressed) = crate::log_limit::repeats().check(&key) else {
        return;
    };
    tracing::warn!(
        route = route.template(),
        suppressed,
        status = error.status(),
        error_code = error.code(),
        okta_request_id = error.okta_request_id(),
        attempt,
        wait_ms = millis(wait),
        "Retrying Okta call: {}",
        error.reason()
    );
}

/// Returns a random delay of up to [`MAX_RESET_JITTER`] to add after a rate-limit reset.
pub(crate) fn reset_jitter() -> Duration {
    let max_millis = u64::try_from(MAX_RESET_JITTER.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::thread_rng().gen_range(0..=max_millis))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_counts_attempts() {
        let budget = RetryBudget::new(Duration::from_secs(1));
        budget.record_attempt();
        budget.record_attempt();
        assert_eq!(budget.attempts(), 2);
    }

    #[test]
    fn budget_remaining_saturates() {
        let budget = RetryBudget::new(Duration::ZERO);
        assert_eq!(budget.remaining(), Duration::ZERO);
    }

    #[test]
    fn backoff_capped_at_max() {
        let policy = RetryPolicy {
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(150),
        };
        let budget = RetryBudget::new(Duration::from_secs(60));
        let error = OktaError::Timeout {
            route: "GET /oauth2/v1/clients",
            timeout: Duration::from_secs(1),
        };
        let backoff = Some(Duration::from_millis(290));
        let wait = policy.next_wait(Route::ListClients, &error, backoff, &budget);
        assert_eq!(wait, Some(Duration::from_millis(150)));
    }
}

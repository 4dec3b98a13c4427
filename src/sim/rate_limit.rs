//! Request counting in Okta's style: each bucket of routes has its own count over fixed
//! windows aligned to the epoch (one minute unless configured shorter for tests), reported in
//! `X-Rate-Limit-*` headers.

use std::collections::HashMap;

/// `X-Rate-Limit-Limit` reported when no limit is configured. Far above any real Okta limit,
/// so that a client pacing its calls by these headers is never held back by a limit that does
/// not exist.
pub(crate) const UNLIMITED_REPORTED_LIMIT: u32 = 1_000_000;

/// A group of routes that shares one count, like Okta's per-endpoint rate-limit buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Bucket {
    /// `/oauth2/v1/clients` and everything under it.
    Clients,
    /// `/api/v1/apps` and everything under it.
    Apps,
    /// The token endpoint `/oauth2/v1/token`.
    Token,
    /// Any other path (unknown routes).
    Other,
}

impl Bucket {
    /// Returns the bucket a request path counts against.
    pub(crate) fn for_path(path: &str) -> Self {
        if is_under(path, "/oauth2/v1/clients") {
            Self::Clients
        } else if is_under(path, "/api/v1/apps") {
            Self::Apps
        } else if is_under(path, "/oauth2/v1/token") {
            Self::Token
        } else {
            Self::Other
        }
    }
}

/// The rate-limit state after counting one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateDecision {
    /// Value of `X-Rate-Limit-Limit`.
    pub(crate) limit: u32,
    /// Value of `X-Rate-Limit-Remaining`.
    pub(crate) remaining: u32,
    /// Value of `X-Rate-Limit-Reset`: epoch seconds at which the current window ends.
    pub(crate) reset: u64,
    /// Whether the request is over a configured limit and must get 429.
    pub(crate) exceeded: bool,
}

/// Request counts per bucket for the current window.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit_per_window: Option<u32>,
    /// Window length in whole seconds, at least 1.
    window_secs: u64,
    windows: HashMap<Bucket, Window>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: u64,
    count: u32,
}

impl RateLimiter {
    /// Creates a limiter that allows `limit_per_window` requests per bucket in each window of
    /// `window_secs` seconds (1 when 0 is given); `None` counts requests but never rejects them.
    pub(crate) fn new(limit_per_window: Option<u32>, window_secs: u64) -> Self {
        Self {
            limit_per_window,
            window_secs: window_secs.max(1),
            windows: HashMap::new(),
        }
    }

    /// Counts one request in `bucket` at `now_secs` (epoch seconds) and returns the headers'
    /// values and whether the request is over the limit.
    pub(crate) fn count(&mut self, bucket: Bucket, now_secs: u64) -> RateDecision {
        let start = self.window_end(now_secs) - self.window_secs;
        let window = self
            .windows
            .entry(bucket)
            .or_insert(Window { start, count: 0 });
        if window.start != start {
            *window = Window { start, count: 0 };
        }
        window.count = window.count.saturating_add(1);

        let limit = self.limit_per_window.unwrap_or(UNLIMITED_REPORTED_LIMIT);
        RateDecision {
            limit,
            remaining: limit.saturating_sub(window.count),
            reset: start + self.window_secs,
            exceeded: self.limit_per_window.is_some() && window.count > limit,
        }
    }

    /// Returns the end of the window containing `now_secs`, in epoch seconds.
    pub(crate) fn window_end(&self, now_secs: u64) -> u64 {
        now_secs - now_secs % self.window_secs + self.window_secs
    }
}

fn is_under(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_for_path_splits_routes() {
        assert_eq!(Bucket::for_path("/oauth2/v1/clients"), Bucket::Clients);
        assert_eq!(Bucket::for_path("/oauth2/v1/clients/0oa1"), Bucket::Clients);
        assert_eq!(
            Bucket::for_path("/api/v1/apps/0oa1/lifecycle/activate"),
            Bucket::Apps
        );
        assert_eq!(Bucket::for_path("/oauth2/v1/token"), Bucket::Token);
        assert_eq!(Bucket::for_path("/oauth2/v1/clientsx"), Bucket::Other);
        assert_eq!(Bucket::for_path("/api/v1/users"), Bucket::Other);
    }

    #[test]
    fn count_rejects_over_limit() {
        let mut limiter = RateLimiter::new(Some(2), 60);
        let first = limiter.count(Bucket::Clients, 120);
        assert_eq!(first.remaining, 1);
        assert!(!first.exceeded);
        let second = limiter.count(Bucket::Clients, 121);
        assert_eq!(second.remaining, 0);
        assert!(!second.exceeded);
        let third = limiter.count(Bucket::Clients, 122);
        assert_eq!(third.remaining, 0);
        assert!(third.exceeded);
    }

    #[test]
    fn count_restarts_in_next_window() {
        let mut limiter = RateLimiter::new(Some(1), 60);
        limiter.count(Bucket::Clients, 100);
        let over = limiter.count(Bucket::Clients, 119);
        assert!(over.exceeded);
        assert_eq!(over.reset, 120);
        let next = limiter.count(Bucket::Clients, 120);
        assert!(!next.exceeded);
        assert_eq!(next.reset, 180);
    }

    #[test]
    fn count_uses_configured_window() {
        let mut limiter = RateLimiter::new(Some(1), 3);
        limiter.count(Bucket::Clients, 100);
        let over = limiter.count(Bucket::Clients, 101);
        assert!(over.exceeded);
        assert_eq!(over.reset, 102);
        let next = limiter.count(Bucket::Clients, 102);
        assert!(!next.exceeded);
        assert_eq!(next.reset, 105);
    }

    #[test]
    fn count_keeps_buckets_apart() {
        let mut limiter = RateLimiter::new(Some(1), 60);
        limiter.count(Bucket::Clients, 10);
        let apps = limiter.count(Bucket::Apps, 10);
        assert!(!apps.exceeded);
        assert_eq!(apps.remaining, 0);
    }

    #[test]
    fn count_without_limit_never_rejects() {
        let mut limiter = RateLimiter::new(None, 60);
        let decision = limiter.count(Bucket::Apps, 10);
        assert_eq!(decision.limit, UNLIMITED_REPORTED_LIMIT);
        assert_eq!(decision.remaining, UNLIMITED_REPORTED_LIMIT - 1);
        assert!(!decision.exceeded);
    }
}

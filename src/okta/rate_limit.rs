//! Okta rate-limit headers: parsing, the latest snapshot per bucket, and metrics.
//!
//! Okta sends `X-Rate-Limit-Limit`, `X-Rate-Limit-Remaining` and `X-Rate-Limit-Reset` (Unix
//! seconds) on its responses. The reset time is measured against the response `Date` header,
//! not the local clock, so that a skewed local clock does not shorten or stretch a wait.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, DATE};

const LIMIT_HEADER: &str = "x-rate-limit-limit";
const REMAINING_HEADER: &str = "x-rate-limit-remaining";
const RESET_HEADER: &str = "x-rate-limit-reset";

/// Margin added after the reset time before a retry, because Okta's reset and `Date`
/// values are whole seconds.
const RESET_MARGIN: Duration = Duration::from_secs(1);

/// An Okta rate-limit bucket: Okta counts calls per endpoint group, not per concrete path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateLimitBucket {
    /// `/oauth2/v1/clients` and the paths below it.
    Clients,
    /// `/api/v1/apps` and the paths below it.
    Apps,
    /// `/oauth2/v1/token`, where a service app gets its access tokens.
    Token,
}

impl RateLimitBucket {
    /// Returns the path prefix that names the bucket, also used as the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RateLimitBucket::Clients => "/oauth2/v1/clients",
            RateLimitBucket::Apps => "/api/v1/apps",
            RateLimitBucket::Token => "/oauth2/v1/token",
        }
    }
}

/// The rate-limit headers of one Okta response. A header that appears several times (as
/// several lines or a comma-separated list) yields its lowest value, which is the most
/// cautious reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSnapshot {
    /// Calls allowed per window (`X-Rate-Limit-Limit`).
    pub limit: Option<u64>,
    /// Calls left in the current window (`X-Rate-Limit-Remaining`).
    pub remaining: Option<u64>,
    /// When the window resets (`X-Rate-Limit-Reset`, Unix seconds).
    pub reset: Option<SystemTime>,
    /// The response `Date` header, the clock that `reset` is measured against.
    pub date: Option<SystemTime>,
}

impl RateLimitSnapshot {
    /// Parses the rate-limit headers of a response. Returns `None` when the response carries
    /// none of them. Values that are not unsigned integers are ignored.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let snapshot = Self {
            limit: lowest_value(headers, LIMIT_HEADER),
            remaining: lowest_value(headers, REMAINING_HEADER),
            reset: lowest_value(headers, RESET_HEADER)
                .map(|seconds| UNIX_EPOCH + Duration::from_secs(seconds)),
            date: response_date(headers),
        };
        let has_rate_limit =
            snapshot.limit.is_some() || snapshot.remaining.is_some() || snapshot.reset.is_some();
        has_rate_limit.then_some(snapshot)
    }

    /// Reports whether the response is about Okta's limit on concurrent requests, which it
    /// marks with `X-Rate-Limit-Limit: 0`. Its Remaining and Reset then say nothing about the
    /// per-minute window, and a short backoff suffices.
    pub fn is_concurrency_limit(&self) -> bool {
        self.limit == Some(0)
    }

    /// Returns how long after the response a retry is safe: reset − `Date` + 1 s, or zero
    /// plus the margin when the reset has already passed. Returns `None` when the reset or
    /// the `Date` header is missing or unparsable.
    pub fn wait_for_reset(&self) -> Option<Duration> {
        let (reset, date) = (self.reset?, self.date?);
        let until_reset = reset.duration_since(date).unwrap_or(Duration::ZERO);
        Some(until_reset + RESET_MARGIN)
    }
}

/// The latest rate-limit snapshot per bucket, shared by all clones of one `OktaClient`.
#[derive(Debug, Default)]
pub(crate) struct RateLimitTracker {
    clients: Mutex<Option<RateLimitSnapshot>>,
    apps: Mutex<Option<RateLimitSnapshot>>,
    token: Mutex<Option<RateLimitSnapshot>>,
}

impl RateLimitTracker {
    /// Stores the snapshot as the latest of its bucket and publishes the
    /// `okta_rate_limit_remaining{bucket}` gauge.
    ///
    /// Every Okta response passes through here, so a pacing limiter shared by all requests
    /// is fed from this point.
    pub(crate) fn record(&self, bucket: RateLimitBucket, snapshot: RateLimitSnapshot) {
        *self
            .slot(bucket)
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(snapshot);
        if let Some(remaining) = snapshot.remaining {
            metrics::gauge!("okta_rate_limit_remaining", "bucket" => bucket.as_str())
                .set(remaining as f64);
        }
    }

    pub(crate) fn latest(&self, bucket: RateLimitBucket) -> Option<RateLimitSnapshot> {
        *self
            .slot(bucket)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn slot(&self, bucket: RateLimitBucket) -> &Mutex<Option<RateLimitSnapshot>> {
        match bucket {
            RateLimitBucket::Clients => &self.clients,
            RateLimitBucket::Apps => &self.apps,
            RateLimitBucket::Token => &self.token,
        }
    }
}

fn lowest_value(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(','))
        .filter_map(|item| item.trim().parse::<u64>().ok())
        .min()
}

fn response_date(headers: &HeaderMap) -> Option<SystemTime> {
    let value = headers.get(DATE)?.to_str().ok()?;
    httpdate::parse_http_date(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    const DATE_TEXT: &str = "Tue, 01 Jul 2025 12:00:00 GMT";
    const DATE_SECONDS: u64 = 1_751_371_200;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn snapshot_parses_all_headers() {
        let reset = (DATE_SECONDS + 30).to_string();
        let map = headers(&[
            ("x-rate-limit-limit", "100"),
            ("x-rate-limit-remaining", "7"),
            ("x-rate-limit-reset", &reset),
            ("date", DATE_TEXT),
        ]);
        let snapshot = RateLimitSnapshot::from_headers(&map).unwrap();
        assert_eq!(snapshot.limit, Some(100));
        assert_eq!(snapshot.remaining, Some(7));
        assert_eq!(snapshot.wait_for_reset(), Some(Duration::from_secs(31)));
    }

    #[test]
    fn snapshot_absent_without_headers() {
        let map = headers(&[("date", DATE_TEXT)]);
        assert_eq!(RateLimitSnapshot::from_headers(&map), None);
    }

    #[test]
    fn reset_repeated_lines_take_earliest() {
        let late = (DATE_SECONDS + 60).to_string();
        let early = (DATE_SECONDS + 5).to_string();
        let map = headers(&[
            ("x-rate-limit-reset", &late),
            ("x-rate-limit-reset", &early),
            ("date", DATE_TEXT),
        ]);
        let snapshot = RateLimitSnapshot::from_headers(&map).unwrap();
        assert_eq!(snapshot.wait_for_reset(), Some(Duration::from_secs(6)));
    }

    #[test]
    fn reset_comma_list_takes_earliest() {
        let list = format!("{}, {}", DATE_SECONDS + 60, DATE_SECONDS + 2);
        let map = headers(&[("x-rate-limit-reset", &list), ("date", DATE_TEXT)]);
        let snapshot = RateLimitSnapshot::from_headers(&map).unwrap();
        assert_eq!(snapshot.wait_for_reset(), Some(Duration::from_secs(3)));
    }

    #[test]
    fn reset_unparsable_gives_no_wait() {
        let map = headers(&[
            ("x-rate-limit-reset", "soon"),
            ("x-rate-limit-remaining", "0"),
            ("date", DATE_TEXT),
        ]);
        let snapshot = RateLimitSnapshot::from_headers(&map).unwrap();
        assert_eq!(snapshot.wait_for_reset(), None);
    }

    #[test]
    fn reset_without_date_gives_no_wait() {
        let reset = (DATE_SECONDS + 30).to_string();
        let map = headers(&[("x-rate-limit-reset", &reset)]);
        let snapshot = RateLimitSnapshot::from_headers(&map).unwrap();
        assert_eq!(snapshot.wait_for_reset(), None);
    }

    #[test]
    fn reset_in_past_waits_margin_only() {
        let reset = (DATE_SECONDS - 10).to_string();
        let map = headers(&[("x-rate-limit-reset", &reset), ("date", DATE_TEXT)]);
        let snapshot = RateLimitSnapshot::from_headers(&map).unwrap();
        assert_eq!(snapshot.wait_for_reset(), Some(RESET_MARGIN));
    }

    #[test]
    fn zero_limit_is_concurrency_limit() {
        let map = headers(&[("x-rate-limit-limit", "0"), ("date", DATE_TEXT)]);
        let snapshot = RateLimitSnapshot::from_headers(&map).unwrap();
        assert!(snapshot.is_concurrency_limit());
    }

    #[test]
    fn window_limit_not_concurrency_limit() {
        let map = headers(&[("x-rate-limit-limit", "50"), ("date", DATE_TEXT)]);
        let snapshot = RateLimitSnapshot::from_headers(&map).unwrap();
        assert!(!snapshot.is_concurrency_limit());
    }

    #[test]
    fn tracker_keeps_latest_per_bucket() {
        let tracker = RateLimitTracker::default();
        let first = RateLimitSnapshot {
            limit: Some(10),
            remaining: Some(9),
            reset: None,
            date: None,
        };
        let second = RateLimitSnapshot {
            remaining: Some(8),
            ..first
        };
        tracker.record(RateLimitBucket::Clients, first);
        tracker.record(RateLimitBucket::Clients, second);
        assert_eq!(tracker.latest(RateLimitBucket::Clients), Some(second));
        assert_eq!(tracker.latest(RateLimitBucket::Apps), None);
    }
}

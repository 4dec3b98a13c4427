//! Rate limiting of repeated log lines: during an Okta outage every worker task fails the same
//! way, and one line per failure would bury everything else.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long identical lines are folded into one.
const WINDOW: Duration = Duration::from_secs(10);

/// Most distinct keys remembered; past that the oldest windows are dropped, so a flood of
/// distinct errors cannot grow memory without bound.
const MAX_KEYS: usize = 1024;

/// Remembers, per key, when a line was last written and how many were suppressed since.
pub struct RepeatLimiter {
    window: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    logged_at: Instant,
    suppressed: u64,
}

impl RepeatLimiter {
    /// Creates a limiter that lets one line per key through each `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Returns `Some(suppressed)` when a line with `key` should be written, with the number of
    /// identical lines suppressed since the last one, or `None` to suppress it.
    pub fn check(&self, key: &str) -> Option<u64> {
        let now = Instant::now();
        let mut entries = match self.entries.lock() {
            Ok(entries) => entries,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(entry) = entries.get_mut(key) {
            if now.duration_since(entry.logged_at) < self.window {
                entry.suppressed += 1;
                return None;
            }
            let suppressed = entry.suppressed;
            *entry = Entry {
                logged_at: now,
                suppressed: 0,
            };
            return Some(suppressed);
        }
        if entries.len() >= MAX_KEYS {
            let window = self.window;
            entries.retain(|_, entry| now.duration_since(entry.logged_at) < window);
        }
        entries.insert(
            key.to_owned(),
            Entry {
                logged_at: now,
                suppressed: 0,
            },
        );
        Some(0)
    }
}

/// Returns the process-wide limiter for repeated warnings and errors.
pub fn repeats() -> &'static RepeatLimiter {
    static LIMITER: OnceLock<RepeatLimiter> = OnceLock::new();
    LIMITER.get_or_init(|| RepeatLimiter::new(WINDOW))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_suppressed_within_window() {
        let limiter = RepeatLimiter::new(Duration::from_secs(60));
        assert_eq!(limiter.check("okta_unavailable"), Some(0));
        assert_eq!(limiter.check("okta_unavailable"), None);
        assert_eq!(limiter.check("okta_unavailable"), None);
        assert_eq!(limiter.check("okta_rate_limited"), Some(0));
    }

    #[test]
    fn suppressed_count_reported_after_window() {
        let limiter = RepeatLimiter::new(Duration::from_millis(20));
        assert_eq!(limiter.check("key"), Some(0));
        assert_eq!(limiter.check("key"), None);
        assert_eq!(limiter.check("key"), None);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(limiter.check("key"), Some(2));
    }
}

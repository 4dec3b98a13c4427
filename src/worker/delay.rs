//! Delayed retries through the broker: when Okta stays unavailable longer than one delivery
//! may retry in the worker, the request waits in a delay queue and comes back by itself, so
//! no delivery is held unacked for long.
//!
//! Three headers carry the state between tries: `okta-dcr-first-attempt-at` (when the request
//! was first tried, RFC 3339 UTC), `okta-dcr-delays` (how many delay queues it went through)
//! and `okta-dcr-delayed-at` (when it last entered one). The retry budget counts from the
//! first attempt.

use std::time::Duration;

use lapin::types::{AMQPValue, FieldTable, LongString};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::broker::headers;

/// Retry state of a request, read from its headers.
#[derive(Debug, Clone, Copy)]
pub struct RetryClock {
    /// When the request was first tried; now, for a request never tried before.
    pub first_attempt_at: OffsetDateTime,
    /// How many delay queues the request went through.
    pub delays: u32,
    /// When the request last entered a delay queue, if it did.
    pub delayed_at: Option<OffsetDateTime>,
}

impl RetryClock {
    /// Reads the retry state from a delivery's headers.
    pub fn from_headers(table: Option<&FieldTable>) -> Self {
        let first_attempt_at = headers::text(table, headers::FIRST_ATTEMPT_AT)
            .and_then(|text| OffsetDateTime::parse(&text, &Rfc3339).ok())
            .unwrap_or_else(OffsetDateTime::now_utc);
        let delays = headers::integer(table, headers::DELAYS)
            .and_then(|value| u32::try_from(value).ok())
            .unwrap_or(0);
        let delayed_at = headers::text(table, headers::DELAYED_AT)
            .and_then(|text| OffsetDateTime::parse(&text, &Rfc3339).ok());
        Self {
            first_attempt_at,
            delays,
            delayed_at,
        }
    }

    /// Returns the time since the request last entered a delay queue, or `None` when it never
    /// did. Its last Okta call ended before that, so the call is at least this long ago.
    pub fn since_delayed(&self) -> Option<Duration> {
        let elapsed = OffsetDateTime::now_utc() - self.delayed_at?;
        Duration::try_from(elapsed).ok()
    }

    /// Returns the time since the first attempt.
    pub fn elapsed(&self) -> Duration {
        let elapsed = OffsetDateTime::now_utc() - self.first_attempt_at;
        Duration::try_from(elapsed).unwrap_or(Duration::ZERO)
    }

    /// Returns the part of `total` left after the time since the first attempt.
    pub fn remaining(&self, total: Duration) -> Duration {
        total.saturating_sub(self.elapsed())
    }
}

/// Chooses the delay step for the next try, in seconds, or `None` when the request must be
/// dead-lettered because the next try would come after the retry budget.
///
/// With `retry_after` known (Okta's rate-limit reset), the shortest step at least that long
/// is taken; otherwise the steps are walked in order, staying on the longest.
pub fn choose_step(
    steps: &[u32],
    retry_after: Option<Duration>,
    clock: &RetryClock,
    budget: Duration,
) -> Option<u32> {
    let by_count = || {
        let index = usize::try_from(clock.delays).unwrap_or(usize::MAX);
        steps.get(index).or(steps.last()).copied()
    };
    let step = match retry_after {
        Some(wait) => steps
            .iter()
            .copied()
            .find(|step| Duration::from_secs(u64::from(*step)) >= wait)
            .or(steps.last().copied()),
        None => by_count(),
    }?;
    let next_try = clock.elapsed() + Duration::from_secs(u64::from(step));
    (next_try <= budget).then_some(step)
}

/// Returns the headers for the delayed copy: the original ones with the attempts, the first
/// attempt time, the delay count and the time of this delay updated.
pub fn delayed_headers(
    table: Option<&FieldTable>,
    clock: &RetryClock,
    attempts: u32,
) -> FieldTable {
    let mut table = table.cloned().unwrap_or_default();
    let first_attempt_at = clock.first_attempt_at.format(&Rfc3339).unwrap_or_default();
    table.insert(
        headers::FIRST_ATTEMPT_AT.into(),
        AMQPValue::LongString(LongString::from(first_attempt_at.as_str())),
    );
    table.insert(
        headers::ATTEMPTS.into(),
        AMQPValue::LongLongInt(attempts.into()),
    );
    table.insert(
        headers::DELAYS.into(),
        AMQPValue::LongLongInt(i64::from(clock.delays) + 1),
    );
    let delayed_at = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    table.insert(
        headers::DELAYED_AT.into(),
        AMQPValue::LongString(LongString::from(delayed_at.as_str())),
    );
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(elapsed_secs: i64, delays: u32) -> RetryClock {
        RetryClock {
            first_attempt_at: OffsetDateTime::now_utc() - time::Duration::seconds(elapsed_secs),
            delays,
            delayed_at: None,
        }
    }

    const STEPS: [u32; 3] = [10, 30, 60];
    const BUDGET: Duration = Duration::from_secs(300);

    #[test]
    fn steps_walked_in_order() {
        assert_eq!(choose_step(&STEPS, None, &clock(0, 0), BUDGET), Some(10));
        assert_eq!(choose_step(&STEPS, None, &clock(0, 1), BUDGET), Some(30));
        assert_eq!(choose_step(&STEPS, None, &clock(0, 7), BUDGET), Some(60));
    }

    #[test]
    fn reset_picks_long_enough_step() {
        let wait = Some(Duration::from_secs(25));
        assert_eq!(choose_step(&STEPS, wait, &clock(0, 0), BUDGET), Some(30));
    }

    #[test]
    fn step_past_budget_dead_letters() {
        assert_eq!(choose_step(&STEPS, None, &clock(280, 2), BUDGET), None);
        assert_eq!(choose_step(&STEPS, None, &clock(280, 0), BUDGET), Some(10));
    }

    #[test]
    fn no_steps_dead_letters() {
        assert_eq!(choose_step(&[], None, &clock(0, 0), BUDGET), None);
    }

    #[test]
    fn headers_round_trip() {
        let original = clock(42, 1);
        let table = delayed_headers(None, &original, 3);
        let read = RetryClock::from_headers(Some(&table));
        assert_eq!(read.delays, 2);
        assert_eq!(
            read.first_attempt_at.unix_timestamp(),
            original.first_attempt_at.unix_timestamp()
        );
        assert_eq!(headers::integer(Some(&table), headers::ATTEMPTS), Some(3));
        let since_delayed = read.since_delayed().expect("the delay time is recorded");
        assert!(since_delayed < Duration::from_secs(5), "{since_delayed:?}");
    }

    #[test]
    fn never_delayed_has_no_delay_time() {
        assert_eq!(RetryClock::from_headers(None).since_delayed(), None);
    }
}

//! Client-side pacing of Okta calls within each rate-limit window.
//!
//! Okta counts calls per bucket in fixed windows (one minute) and reports on every response the
//! calls left in the window and when it resets. Instead of spending the window in one burst and
//! then collecting 429s, the pacer spreads the calls left evenly over the time left: the next
//! call of a bucket starts no sooner than `previous start + time left / calls left`. When no
//! call is left, calls wait until the reset plus a random jitter.
//!
//! All tasks of one `OktaClient` share one schedule per bucket. A task reserves its start time
//! under the schedule's mutex and sleeps outside it, so concurrent tasks take distinct starts.
//!
//! While the current window is unknown (before the first response, and after each reset), one
//! call starts at once as a probe and the other calls of the bucket wait for its response. So a
//! crowd of waiting tasks does not spend an unknown window in one burst.
//!
//! Safety margins: the window is taken to end 1 s after `X-Rate-Limit-Reset` (Okta's times are
//! whole seconds), and calls started but not yet answered are subtracted from the reported
//! calls left, because Okta may not have counted them yet.
//!
//! The token endpoint is not paced, because the client calls it about once per access-token
//! lifetime and outside any request's budget. Its responses still update its bucket.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;

use super::error::OktaError;
use super::rate_limit::{RateLimitBucket, RateLimitSnapshot};
use super::retry::{reset_jitter, RetryBudget};
use super::route::Route;

/// The pacing schedules of all buckets, shared by all clones of one `OktaClient`.
pub(crate) struct Pacer {
    clients: Schedule,
    apps: Schedule,
    token: Schedule,
    /// Maximum time other calls wait for a probe's response before sending a probe of their
    /// own, because a probe whose task was cancelled never reports.
    probe_timeout: Duration,
}

/// A started call. Dropping it, after the response or on failure, ends the call for the
/// schedule.
pub(crate) struct Turn<'a> {
    schedule: &'a Schedule,
    /// The probe deadline when this call is the bucket's probe, which also identifies the probe.
    probe_until: Option<Instant>,
}

/// The schedule of one bucket, and the signal that wakes calls waiting for a probe.
#[derive(Default)]
struct Schedule {
    state: Mutex<ScheduleState>,
    answered: Notify,
}

#[derive(Debug, Default)]
struct ScheduleState {
    /// The current window, when a response reported it and it has not surely reset yet.
    window: Option<Window>,
    /// Earliest start of the next call in the current window.
    next_start: Option<Instant>,
    /// Calls started and not yet ended.
    in_flight: u64,
    /// Deadline of the probe in flight while the window is unknown.
    probe_until: Option<Instant>,
}

/// One rate-limit window as the responses reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    /// `X-Rate-Limit-Reset` as Okta sent it, which identifies the window.
    reset: SystemTime,
    /// Local instant after which the window has surely reset: reset − `Date` + 1 s after the
    /// response arrived.
    ends_at: Instant,
    /// Calls left, less the calls started since the report.
    remaining: u64,
}

/// The next step of a call, decided under the schedule's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Start at this instant, which is reserved for the call.
    Start {
        at: Instant,
        probe_until: Option<Instant>,
    },
    /// The window is spent: sleep until this instant, then decide again.
    AwaitReset(Instant),
    /// A probe is in flight: wait for a response of the bucket, at most until this instant,
    /// then decide again.
    AwaitProbe(Instant),
    /// The wait until the call may start passes the budget's deadline.
    OverBudget(Duration),
}

impl Pacer {
    /// Creates a pacer with no window reported yet. `probe_timeout` is normally the call
    /// timeout.
    pub(crate) fn new(probe_timeout: Duration) -> Self {
        Self {
            clients: Schedule::default(),
            apps: Schedule::default(),
            token: Schedule::default(),
            probe_timeout,
        }
    }

    /// Waits until `route` may be called and reserves the call's start.
    ///
    /// Records the wait in the `okta_pacing_wait_seconds{bucket}` histogram.
    ///
    /// # Errors
    ///
    /// [`OktaError::RateLimitWait`], at once and without waiting, when the call could start
    /// only after the budget's deadline. Its `retry_after` is the wait from now.
    pub(crate) async fn wait_turn(
        &self,
        route: Route,
        budget: &RetryBudget,
    ) -> Result<Turn<'_>, OktaError> {
        let bucket = route.bucket();
        let schedule = self.schedule(bucket);
        let waiting_since = Instant::now();
        loop {
            // Created before deciding, so that a response arriving in between still wakes it.
            let answered = schedule.answered.notified();
            let now = Instant::now();
            let step =
                schedule
                    .lock()
                    .decide(now, budget.remaining(), self.probe_timeout, reset_jitter());
            match step {
                Step::Start { at, probe_until } => {
                    tokio::time::sleep_until(at.into()).await;
                    record_wait(bucket, waiting_since.elapsed());
                    return Ok(Turn {
                        schedule,
                        probe_until,
                    });
                }
                Step::AwaitReset(until) => tokio::time::sleep_until(until.into()).await,
                Step::AwaitProbe(until) => {
                    // Either outcome leads to a new decision, so the timeout result is unused.
                    let _ = tokio::time::timeout_at(until.into(), answered).await;
                }
                Step::OverBudget(wait) => return Err(over_budget(route, wait, budget)),
            }
        }
    }

    /// Updates the bucket's window from a response's rate-limit headers, received at
    /// `received_at`, and wakes the calls waiting for a probe.
    pub(crate) fn observe(
        &self,
        bucket: RateLimitBucket,
        snapshot: &RateLimitSnapshot,
        received_at: Instant,
    ) {
        let schedule = self.schedule(bucket);
        schedule.lock().observe(snapshot, received_at);
        schedule.answered.notify_waiters();
    }

    fn schedule(&self, bucket: RateLimitBucket) -> &Schedule {
        match bucket {
            RateLimitBucket::Clients => &self.clients,
            RateLimitBucket::Apps => &self.apps,
            RateLimitBucket::Token => &self.token,
        }
    }
}

impl Drop for Turn<'_> {
    /// Ends the call. A probe that ends without a usable report lets a waiting call probe.
    fn drop(&mut self) {
        let mut state = self.schedule.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        let probe_unanswered = self.probe_until.is_some() && state.probe_until == self.probe_until;
        if probe_unanswered {
            state.probe_until = None;
        }
        drop(state);
        if probe_unanswered {
            self.schedule.answered.notify_waiters();
        }
    }
}

impl Schedule {
    /// Locks the state. The state stays consistent if a holder panicked, so a poisoned lock is
    /// taken over.
    fn lock(&self) -> MutexGuard<'_, ScheduleState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ScheduleState {
    /// Decides the next step of a call requested at `now` with `budget_left`, reserving the
    /// start when the step is [`Step::Start`]. `jitter` is added to a wait for the reset.
    fn decide(
        &mut self,
        now: Instant,
        budget_left: Duration,
        probe_timeout: Duration,
        jitter: Duration,
    ) -> Step {
        if self.window.is_some_and(|window| window.ends_at <= now) {
            self.window = None;
            self.next_start = None;
        }
        match self.window {
            None => self.decide_unknown(now, budget_left, probe_timeout),
            Some(window) => self.decide_known(window, now, budget_left, jitter),
        }
    }

    /// Sends a probe, or waits for the one in flight. The probe's response usually arrives
    /// long before its deadline, so a budget shorter than the deadline only shortens the wait.
    fn decide_unknown(&mut self, now: Instant, budget_left: Duration, timeout: Duration) -> Step {
        match self.probe_until {
            Some(until) if until > now && budget_left.is_zero() => Step::OverBudget(until - now),
            Some(until) if until > now => Step::AwaitProbe(until.min(now + budget_left)),
            _ => {
                let probe_until = Some(now + timeout);
                self.probe_until = probe_until;
                self.in_flight += 1;
                Step::Start {
                    at: now,
                    probe_until,
                }
            }
        }
    }

    /// Reserves the next even share of the window, or waits for its reset when it is spent.
    fn decide_known(
        &mut self,
        window: Window,
        now: Instant,
        budget_left: Duration,
        jitter: Duration,
    ) -> Step {
        let start = self.next_start.map_or(now, |next| next.max(now));
        if window.remaining == 0 || start >= window.ends_at {
            let until = window.ends_at + jitter;
            return within_budget(until - now, budget_left, Step::AwaitReset(until));
        }
        if start - now > budget_left {
            return Step::OverBudget(start - now);
        }
        let calls_left = u32::try_from(window.remaining).unwrap_or(u32::MAX);
        self.next_start = Some(start + (window.ends_at - start) / calls_left);
        self.window = Some(Window {
            remaining: window.remaining - 1,
            ..window
        });
        self.in_flight += 1;
        Step::Start {
            at: start,
            probe_until: None,
        }
    }

    /// Takes in a response's report. A later report of the same window can only lower the
    /// calls left, a report of a newer window replaces it, and a late report of an older window
    /// is ignored.
    fn observe(&mut self, snapshot: &RateLimitSnapshot, received_at: Instant) {
        self.probe_until = None;
        // The reporting call is still counted in `in_flight`, and Okta has counted it.
        let unanswered = self.in_flight.saturating_sub(1);
        let Some(reported) = Window::from_snapshot(snapshot, received_at, unanswered) else {
            return;
        };
        self.window = match self.window {
            Some(current) if current.reset == reported.reset => Some(Window {
                remaining: current.remaining.min(reported.remaining),
                ..current
            }),
            Some(current) if current.reset > reported.reset => Some(current),
            _ => Some(reported),
        };
    }
}

impl Window {
    /// Builds the window a response reports, less `unanswered` calls that Okta may not have
    /// counted yet. Returns `None` for a concurrency-limit response (`X-Rate-Limit-Limit: 0`),
    /// whose other headers do not describe the window, and when a header or `Date` is missing.
    fn from_snapshot(
        snapshot: &RateLimitSnapshot,
        received_at: Instant,
        unanswered: u64,
    ) -> Option<Self> {
        if snapshot.is_concurrency_limit() {
            return None;
        }
        Some(Self {
            reset: snapshot.reset?,
            ends_at: received_at + snapshot.wait_for_reset()?,
            remaining: snapshot.remaining?.saturating_sub(unanswered),
        })
    }
}

/// Returns `step`, or [`Step::OverBudget`] when `wait` is longer than `budget_left`.
fn within_budget(wait: Duration, budget_left: Duration, step: Step) -> Step {
    if wait > budget_left {
        Step::OverBudget(wait)
    } else {
        step
    }
}

fn over_budget(route: Route, wait: Duration, budget: &RetryBudget) -> OktaError {
    tracing::debug!(
        route = route.template(),
        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        remaining_ms = u64::try_from(budget.remaining().as_millis()).unwrap_or(u64::MAX),
        "Okta rate-limit pacing needs a wait past the retry budget, not sending the call"
    );
    OktaError::RateLimitWait {
        route: route.template(),
        retry_after: wait,
    }
}

fn record_wait(bucket: RateLimitBucket, wait: Duration) {
    metrics::histogram!("okta_pacing_wait_seconds", "bucket" => bucket.as_str())
        .record(wait.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
    const BUDGET: Duration = Duration::from_secs(300);
    const NO_JITTER: Duration = Duration::ZERO;

    /// Builds a report of a window that resets `reset_in` seconds after `Date`.
    fn snapshot(limit: u64, remaining: u64, reset_in: u64) -> RateLimitSnapshot {
        let date = UNIX_EPOCH + Duration::from_secs(1_751_371_200);
        RateLimitSnapshot {
            limit: Some(limit),
            remaining: Some(remaining),
            reset: Some(date + Duration::from_secs(reset_in)),
            date: Some(date),
        }
    }

    fn start_at(step: Step) -> Instant {
        match step {
            Step::Start { at, .. } => at,
            other => panic!("expected a start, got {other:?}"),
        }
    }

    #[test]
    fn unknown_window_starts_at_once() {
        let mut state = ScheduleState::default();
        let now = Instant::now();
        let step = state.decide(now, BUDGET, PROBE_TIMEOUT, NO_JITTER);
        assert_eq!(start_at(step), now);
    }

    #[test]
    fn unknown_window_waits_for_probe() {
        let mut state = ScheduleState::default();
        let now = Instant::now();
        state.decide(now, BUDGET, PROBE_TIMEOUT, NO_JITTER);
        let step = state.decide(now, BUDGET, PROBE_TIMEOUT, NO_JITTER);
        assert_eq!(step, Step::AwaitProbe(now + PROBE_TIMEOUT));
    }

    #[test]
    fn probe_wait_capped_by_budget() {
        let mut state = ScheduleState::default();
        let now = Instant::now();
        state.decide(now, BUDGET, PROBE_TIMEOUT, NO_JITTER);
        let budget = Duration::from_secs(2);
        let step = state.decide(now, budget, PROBE_TIMEOUT, NO_JITTER);
        assert_eq!(step, Step::AwaitProbe(now + budget));
    }

    #[test]
    fn probe_wait_without_budget_fails() {
        let mut state = ScheduleState::default();
        let now = Instant::now();
        state.decide(now, BUDGET, PROBE_TIMEOUT, NO_JITTER);
        let step = state.decide(now, Duration::ZERO, PROBE_TIMEOUT, NO_JITTER);
        assert_eq!(step, Step::OverBudget(PROBE_TIMEOUT));
    }

    #[test]
    fn calls_spread_over_window() {
        let mut state = ScheduleState::default();
        let now = Instant::now();
        // 4 calls left and a reset in 3 s, plus the 1 s margin: one call per second.
        state.observe(&snapshot(10, 4, 3), now);
        let starts: Vec<Instant> = (0..4)
            .map(|_| start_at(state.decide(now, BUDGET, PROBE_TIMEOUT, NO_JITTER)))
            .collect();
        let expected: Vec<Instant> = (0..4).map(|s| now + Duration::from_secs(s)).collect();
        assert_eq!(starts, expected);
    }

    #[test]
    fn spent_window_waits_for_reset() {
        let mut state = ScheduleState::default();
        let now = Instant::now();
        state.observe(&snapshot(10, 0, 2), now);
        let jitter = Duration::from_millis(200);
        let step = state.decide(now, BUDGET, PROBE_TIMEOUT, jitter);
        let reset_with_margin = now + Duration::from_secs(3);
        assert_eq!(step, Step::AwaitReset(reset_with_margin + jitter));
    }

    #[test]
    fn reset_wait_past_budget_fails() {
        let mut state = ScheduleState::default();
        let now = Instant::now();
        state.observe(&snapshot(10, 0, 59), now);
        let step = state.decide(now, Duration::from_secs(5), PROBE_TIMEOUT, NO_JITTER);
        assert_eq!(step, Step::OverBudget(Duration::from_secs(60)));
    }

    #[test]
    fn over_budget_reserves_nothing() {
        let mut state = ScheduleState::default();
        let now = Instant::now();
        state.observe(&snapshot(10, 2, 19), now);
        state.decide(now, BUDGET, PROBE_TIMEOUT, NO_JITTER);
        let refused = state.decide(now, Duration::from_secs(1), PROBE_TIMEOUT, NO_JITTER);
        assert_eq!(refused, Step::OverBudget(Duration::from_secs(10)));
        let next = state.decide(now, BUDGET, PROBE_TIMEOUT, NO_JITTER);
        assert_eq!(start_at(next), now + Duration::from_secs(10));
    }

    #[test]
    fn window_forgotten_after_reset() {
        let mut state = ScheduleState::default();
        let now = Instant::now();
        state.observe(&snapshot(10, 0, 1), now);
        let later = now + Duration::from_secs(2);
        let step = state.decide(later, BUDGET, PROBE_TIMEOUT, NO_JITTER);
        assert_eq!(start_at(step), later);
    }

    #[test]
    fn same_window_keeps_lowest_remaining() {
        let mut state = ScheduleState::default();
        let now = Instant::now();
        state.observe(&snapshot(10, 3, 30), now);
        state.observe(&snapshot(10, 7, 30), now);
        assert_eq!(state.window.map(|w| w.remaining), Some(3));
    }

    #[test]
    fn newer_window_replaces_older() {
        let mut state = ScheduleState::default();
        let now = Instant::now();
        state.observe(&snapshot(10, 0, 30), now);
        state.observe(&snapshot(10, 9, 90), now);
        assert_eq!(state.window.map(|w| w.remaining), Some(9));
    }

    #[test]
    fn older_window_report_ignored() {
        let mut state = ScheduleState::default();
        let now = Instant::now();
        state.observe(&snapshot(10, 9, 90), now);
        state.observe(&snapshot(10, 0, 30), now);
        assert_eq!(state.window.map(|w| w.remaining), Some(9));
    }

    #[test]
    fn unanswered_calls_subtracted() {
        let mut state = ScheduleState::default();
        let now = Instant::now();
        state.in_flight = 3;
        state.observe(&snapshot(10, 9, 30), now);
        assert_eq!(state.window.map(|w| w.remaining), Some(7));
    }

    #[test]
    fn concurrency_limit_report_ignored() {
        let mut state = ScheduleState::default();
        let now = Instant::now();
        state.observe(&snapshot(0, 0, 30), now);
        assert_eq!(state.window, None);
    }

    #[test]
    fn report_ends_probe() {
        let mut state = ScheduleState::default();
        let now = Instant::now();
        state.decide(now, BUDGET, PROBE_TIMEOUT, NO_JITTER);
        state.observe(&snapshot(0, 0, 30), now);
        assert_eq!(state.probe_until, None);
    }
}

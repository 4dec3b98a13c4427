//! A bounded memory of the request ids this process has already taken up.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// Request ids seen by this process, the oldest forgotten first once `capacity` is reached.
///
/// A provision whose id is in here may have created its Okta client already (for example when
/// the result publish failed and the request came back), so the worker looks the client up
/// before creating one.
pub struct SeenRequests {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl SeenRequests {
    /// Creates an empty memory holding at most `capacity` ids.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Records `request_id` and reports whether it had been seen before.
    pub fn insert(&self, request_id: &str) -> bool {
        let mut inner = match self.inner.lock() {
            Ok(inner) => inner,
            Err(poisoned) => poisoned.into_inner(),
        };
        if inner.ids.contains(request_id) {
            return true;
        }
        if inner.order.len() >= self.capacity {
            if let Some(oldest) = inner.order.pop_front() {
                inner.ids.remove(&oldest);
            }
        }
        inner.ids.insert(request_id.to_owned());
        inner.order.push_back(request_id.to_owned());
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_insert_reports_seen() {
        let seen = SeenRequests::new(10);
        assert!(!seen.insert("r1"));
        assert!(seen.insert("r1"));
    }

    #[test]
    fn oldest_forgotten_at_capacity() {
        let seen = SeenRequests::new(2);
        seen.insert("r1");
        seen.insert("r2");
        seen.insert("r3");
        assert!(!seen.insert("r1"));
        assert!(seen.insert("r3"));
    }
}

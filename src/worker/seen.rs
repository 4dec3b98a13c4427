//! A bounded memory of the request ids this process has already taken up.

use std::collections::hash_map::RandomState;
use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::Mutex;

/// Request ids seen by this process, the oldest forgotten first once `capacity` is reached.
///
/// A provision whose id is in here may have created its Okta client already (for example when
/// the result publish failed and the request came back), so the worker looks the client up
/// before creating one.
///
/// Each id is kept as a 64-bit fingerprint, and the memory is allocated in full at start, so
/// that it stays the same size however many requests pass. Two ids with the same fingerprint
/// (less than one chance in a billion among 100,000 ids) only make the worker look a client
/// up before creating it, which costs one more Okta call and changes nothing else.
pub struct SeenRequests {
    capacity: usize,
    hasher: RandomState,
    inner: Mutex<Inner>,
}

struct Inner {
    fingerprints: HashSet<u64>,
    order: VecDeque<u64>,
}

impl SeenRequests {
    /// Creates an empty memory holding at most `capacity` ids.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            hasher: RandomState::new(),
            inner: Mutex::new(Inner {
                fingerprints: HashSet::with_capacity(capacity),
                order: VecDeque::with_capacity(capacity),
            }),
        }
    }

    /// Records `request_id` and reports whether it had been seen before.
    pub fn insert(&self, request_id: &str) -> bool {
        let fingerprint = self.hasher.hash_one(request_id);
        let mut inner = match self.inner.lock() {
            Ok(inner) => inner,
            Err(poisoned) => poisoned.into_inner(),
        };
        if inner.fingerprints.contains(&fingerprint) {
            return true;
        }
        if inner.order.len() >= self.capacity {
            if let Some(oldest) = inner.order.pop_front() {
                inner.fingerprints.remove(&oldest);
            }
        }
        inner.fingerprints.insert(fingerprint);
        inner.order.push_back(fingerprint);
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

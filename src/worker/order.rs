//! Per-credential ordering: requests about one credential run one at a time, in the order
//! they were delivered, while requests about different credentials run concurrently.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Hands out turns per credential id. The consumer loop calls [`CredentialQueue::enqueue`] in
/// delivery order, so turns follow delivery order.
#[derive(Default, Clone)]
pub struct CredentialQueue {
    tails: Arc<Mutex<HashMap<String, watch::Receiver<bool>>>>,
}

/// A place in line for one credential. [`Turn::wait`] returns once every earlier request for
/// the same credential finished; dropping the turn lets the next one go.
pub struct Turn {
    previous: Option<watch::Receiver<bool>>,
    done: watch::Sender<bool>,
    key: String,
    tails: Arc<Mutex<HashMap<String, watch::Receiver<bool>>>>,
}

impl CredentialQueue {
    /// Takes the next place in line for `credential_id`.
    pub fn enqueue(&self, credential_id: &str) -> Turn {
        let (done, receiver) = watch::channel(false);
        let mut tails = lock(&self.tails);
        let previous = tails.insert(credential_id.to_owned(), receiver);
        Turn {
            previous,
            done,
            key: credential_id.to_owned(),
            tails: Arc::clone(&self.tails),
        }
    }

    /// Returns how many credentials have requests in line; for tests and metrics.
    pub fn len(&self) -> usize {
        lock(&self.tails).len()
    }

    /// Reports whether no credential has requests in line.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Turn {
    /// Waits until the previous request for the same credential has finished.
    pub async fn wait(&mut self) {
        if let Some(previous) = &mut self.previous {
            // An error means the previous turn was dropped, which also ends it.
            let _ = previous.wait_for(|done| *done).await;
        }
        self.previous = None;
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let _ = self.done.send(true);
        let mut tails = lock(&self.tails);
        let is_last = tails
            .get(&self.key)
            .is_some_and(|tail| tail.same_channel(&self.done.subscribe()));
        if is_last {
            tails.remove(&self.key);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn same_credential_waits_for_previous() {
        let queue = CredentialQueue::default();
        let first = queue.enqueue("c1");
        let mut second = queue.enqueue("c1");
        let waited = tokio::time::timeout(Duration::from_millis(50), second.wait()).await;
        assert!(waited.is_err(), "second turn ran before the first ended");
        drop(first);
        let waited = tokio::time::timeout(Duration::from_millis(500), second.wait()).await;
        assert!(
            waited.is_ok(),
            "second turn did not run after the first ended"
        );
    }

    #[tokio::test]
    async fn other_credential_runs_at_once() {
        let queue = CredentialQueue::default();
        let _first = queue.enqueue("c1");
        let mut other = queue.enqueue("c2");
        let waited = tokio::time::timeout(Duration::from_millis(50), other.wait()).await;
        assert!(waited.is_ok());
    }

    #[tokio::test]
    async fn finished_credentials_are_forgotten() {
        let queue = CredentialQueue::default();
        let first = queue.enqueue("c1");
        let second = queue.enqueue("c1");
        drop(first);
        assert_eq!(queue.len(), 1);
        drop(second);
        assert!(queue.is_empty());
    }
}

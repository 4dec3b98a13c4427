//! What the worker reports about itself: whether it is connected to RabbitMQ, whether it
//! consumes, and whether Okta accepts its credential. Read by the readiness check and the logs.

use std::sync::atomic::{AtomicBool, Ordering};

/// Flags set by the consumer loop and read by health checks.
#[derive(Debug, Default)]
pub struct Readiness {
    connected: AtomicBool,
    consuming: AtomicBool,
    credential_rejected: AtomicBool,
}

impl Readiness {
    /// Records whether the worker has an open connection to RabbitMQ.
    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    /// Records whether a consumer is attached to the request queue.
    pub fn set_consuming(&self, consuming: bool) {
        self.consuming.store(consuming, Ordering::Relaxed);
    }

    /// Records whether Okta rejected the worker's own credential.
    pub fn set_credential_rejected(&self, rejected: bool) {
        self.credential_rejected.store(rejected, Ordering::Relaxed);
    }

    /// Reports whether the worker has an open connection to RabbitMQ.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Reports whether a consumer is attached to the request queue.
    pub fn is_consuming(&self) -> bool {
        self.consuming.load(Ordering::Relaxed)
    }

    /// Reports whether Okta currently rejects the worker's credential.
    pub fn is_credential_rejected(&self) -> bool {
        self.credential_rejected.load(Ordering::Relaxed)
    }

    /// Reports whether the worker takes requests: connected and consuming, with a credential
    /// Okta accepts.
    pub fn is_ready(&self) -> bool {
        self.is_connected() && self.is_consuming() && !self.is_credential_rejected()
    }
}

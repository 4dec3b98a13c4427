//! The worker: a pool of tokio tasks that consume requests, run each through the
//! per-request [`pipeline`], and settle every delivery exactly once.

pub mod order;
pub mod pipeline;
pub mod pool;
pub mod readiness;
pub mod seen;

pub use pipeline::{Pipeline, Settlement};
pub use pool::{run, WorkerError};

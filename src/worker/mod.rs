//! The worker: a [`supervisor`] that keeps a broker session alive, a [`pool`] of tokio tasks
//! that consume requests and run each through the per-request [`pipeline`], settling every
//! delivery exactly once. The Okta calls of each kind of request live in `jobs`.

pub mod delay;
mod jobs;
pub mod order;
pub mod pipeline;
pub mod pool;
pub mod readiness;
pub mod seen;
pub mod supervisor;

pub use pipeline::{Pipeline, Settlement};
pub use supervisor::{run, run_with_readiness, WorkerError};

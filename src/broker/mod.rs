//! RabbitMQ plumbing: the connection, the topology, the confirmed publisher and the
//! dead-letter headers. The consumer loop lives in [`crate::worker`], which owns the
//! per-delivery decisions.

pub mod connection;
pub mod headers;
pub mod publisher;
pub mod topology;

pub use connection::connect;
pub use publisher::{ConfirmedPublisher, PublishError};
pub use topology::{declare_topology, TopologyError};

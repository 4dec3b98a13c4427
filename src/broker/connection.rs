//! Opening the AMQP connection.

use lapin::{Connection, ConnectionProperties};

use crate::secret::Secret;

/// Opens a connection to `amqp_url`, naming it after the product and `role` so that operators
/// can tell the worker's connection from others in the management UI and `rabbitmqctl
/// list_connections`.
pub async fn connect(amqp_url: &Secret, role: &str) -> Result<Connection, lapin::Error> {
    let name = format!("okta-dcr-worker {role} (pid {})", std::process::id());
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(amqp_url.expose(), properties).await
}

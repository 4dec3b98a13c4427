//! Opening the AMQP connection.

use std::str::FromStr;
use std::time::Duration;

use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};

use crate::secret::Secret;

/// Opens a connection to `amqp_url`, naming it after the product and `role` so that operators
/// can tell the worker's connection from others in the management UI and `rabbitmqctl
/// list_connections`.
pub async fn connect(amqp_url: &Secret, role: &str) -> Result<Connection, lapin::Error> {
    Connection::connect(amqp_url.expose(), named(role)).await
}

/// Opens a connection like [`connect`], asking the broker for a heartbeat every `heartbeat`
/// unless `AMQP_URL` sets its own `heartbeat` query parameter.
pub async fn connect_with_heartbeat(
    amqp_url: &Secret,
    role: &str,
    heartbeat: Duration,
) -> Result<Connection, lapin::Error> {
    let mut uri = match AMQPUri::from_str(amqp_url.expose()) {
        Ok(uri) => uri,
        // Settings validation parses the URL first; this path reports the same error.
        Err(_) => return connect(amqp_url, role).await,
    };
    if uri.query.heartbeat.is_none() {
        uri.query.heartbeat = Some(u16::try_from(heartbeat.as_secs()).unwrap_or(u16::MAX));
    }
    Connection::connect_uri(uri, named(role)).await
}

/// Returns connection properties carrying the name `okta-dcr-worker <role> (pid N)`.
fn named(role: &str) -> ConnectionProperties {
    let name = format!("okta-dcr-worker {role} (pid {})", std::process::id());
    ConnectionProperties::default().with_connection_name(name.into())
}

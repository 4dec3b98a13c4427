//! Declaring the exchanges, queues and bindings the worker relies on.
//!
//! Declaration is checked before anything is created: every object that already exists is
//! declared again with the expected arguments on a throwaway channel first. RabbitMQ answers a
//! mismatch with `PRECONDITION_FAILED` and changes nothing, so a worker pointed at a broker
//! whose queues were set up differently stops with a message naming the object and the
//! argument, and leaves the broker as it found it.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, ErrorKind, ExchangeKind};

use crate::settings::{QueueType, Topology};

/// A failure to declare the topology.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error(
        "{kind} `{name}` already exists with other arguments ({detail}); nothing was changed. \
         Delete it, or change the settings to match it"
    )]
    Mismatch {
        kind: &'static str,
        name: String,
        detail: String,
    },
    #[error("declaring {kind} `{name}` failed: {source}")]
    Broker {
        kind: &'static str,
        name: String,
        source: lapin::Error,
    },
}

/// One exchange or queue with the arguments it must have.
enum Object {
    Exchange { name: String, kind: ExchangeKind },
    Queue { name: String, arguments: FieldTable },
}

/// Declares every exchange, queue and binding in `topology`, after checking that none of
/// them already exists with other arguments.
pub async fn declare_topology(
    connection: &Connection,
    topology: &Topology,
) -> Result<(), TopologyError> {
    let objects = objects(topology);
    for object in &objects {
        check_existing(connection, object).await?;
    }
    let channel = open_channel(connection, "channel", "topology").await?;
    for object in &objects {
        declare(&channel, object, false)
            .await
            .map_err(|error| error.into_topology_error(object))?;
    }
    bind(&channel, topology).await?;
    let _ = channel.close(200, "topology declared".into()).await;
    Ok(())
}

/// Returns the arguments of the request queue: its type, its dead-letter exchange and, for
/// quorum queues with a limit set, the delivery limit.
pub fn request_queue_arguments(topology: &Topology) -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        text(topology.request_queue_type.as_str()),
    );
    arguments.insert(
        "x-dead-letter-exchange".into(),
        text(&topology.dead_letter_exchange),
    );
    if topology.request_queue_type == QueueType::Quorum && topology.delivery_limit > 0 {
        arguments.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(topology.delivery_limit.into()),
        );
    }
    arguments
}

fn objects(topology: &Topology) -> Vec<Object> {
    let mut objects = vec![
        Object::Exchange {
            name: topology.request_exchange.clone(),
            kind: ExchangeKind::Fanout,
        },
        Object::Exchange {
            name: topology.result_exchange.clone(),
            kind: ExchangeKind::Topic,
        },
        Object::Exchange {
            name: topology.dead_letter_exchange.clone(),
            kind: ExchangeKind::Fanout,
        },
        Object::Queue {
            name: topology.request_queue.clone(),
            arguments: request_queue_arguments(topology),
        },
        Object::Queue {
            name: topology.dead_letter_queue.clone(),
            arguments: FieldTable::default(),
        },
    ];
    if let Some(result_queue) = &topology.result_queue {
        objects.push(Object::Queue {
            name: result_queue.clone(),
            arguments: FieldTable::default(),
        });
    }
    for seconds in &topology.delay_steps {
        objects.push(Object::Queue {
            name: topology.delay_queue(*seconds),
            arguments: delay_queue_arguments(topology, *seconds),
        });
    }
    objects
}

/// Returns the arguments of a delay queue: its messages expire after `seconds` and are then
/// dead-lettered by the broker into the request exchange, which routes them to the request
/// queue again.
pub fn delay_queue_arguments(topology: &Topology, seconds: u32) -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), text(QueueType::Classic.as_str()));
    arguments.insert(
        "x-message-ttl".into(),
        AMQPValue::LongLongInt(i64::from(seconds) * 1000),
    );
    arguments.insert(
        "x-dead-letter-exchange".into(),
        text(&topology.request_exchange),
    );
    arguments
}

/// Declares `object` again on a throwaway channel if it exists, so that a mismatch is found
/// before anything is created.
async fn check_existing(connection: &Connection, object: &Object) -> Result<(), TopologyError> {
    let probe = open_channel(connection, object.kind(), object.name()).await?;
    match declare(&probe, object, true).await {
        Ok(()) => {}
        Err(error) if is_soft(&error, AMQPSoftError::NOTFOUND) => return Ok(()),
        Err(error) => return Err(error.into_topology_error(object)),
    }
    let check = open_channel(connection, object.kind(), object.name()).await?;
    let result = declare(&check, object, false).await;
    let _ = check.close(200, "checked".into()).await;
    result.map_err(|error| error.into_topology_error(object))
}

async fn declare(channel: &Channel, object: &Object, passive: bool) -> Result<(), DeclareError> {
    match object {
        Object::Exchange { name, kind } => channel
            .exchange_declare(
                name.as_str().into(),
                kind.clone(),
                ExchangeDeclareOptions {
                    passive,
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(DeclareError),
        Object::Queue { name, arguments } => channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions {
                    passive,
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                arguments.clone(),
            )
            .await
            .map(|_| ())
            .map_err(DeclareError),
    }
}

async fn bind(channel: &Channel, topology: &Topology) -> Result<(), TopologyError> {
    let mut bindings = vec![
        (&topology.request_queue, &topology.request_exchange, ""),
        (
            &topology.dead_letter_queue,
            &topology.dead_letter_exchange,
            "",
        ),
    ];
    if let Some(result_queue) = &topology.result_queue {
        bindings.push((result_queue, &topology.result_exchange, "#"));
    }
    for (queue, exchange, routing_key) in bindings {
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                routing_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|source| TopologyError::Broker {
                kind: "binding of queue",
                name: queue.clone(),
                source,
            })?;
    }
    Ok(())
}

async fn open_channel(
    connection: &Connection,
    kind: &'static str,
    name: &str,
) -> Result<Channel, TopologyError> {
    connection
        .create_channel()
        .await
        .map_err(|source| TopologyError::Broker {
            kind,
            name: name.to_owned(),
            source,
        })
}

/// A failed declaration, before it is known which object it concerns.
struct DeclareError(lapin::Error);

impl DeclareError {
    fn into_topology_error(self, object: &Object) -> TopologyError {
        if is_soft(&self, AMQPSoftError::PRECONDITIONFAILED) {
            if let ErrorKind::ProtocolError(amqp) = self.0.kind() {
                return TopologyError::Mismatch {
                    kind: object.kind(),
                    name: object.name().to_owned(),
                    detail: amqp.get_message().to_string(),
                };
            }
        }
        TopologyError::Broker {
            kind: object.kind(),
            name: object.name().to_owned(),
            source: self.0,
        }
    }
}

fn is_soft(error: &DeclareError, expected: AMQPSoftError) -> bool {
    matches!(
        error.0.kind(),
        ErrorKind::ProtocolError(amqp) if *amqp.kind() == AMQPErrorKind::Soft(expected)
    )
}

impl Object {
    fn kind(&self) -> &'static str {
        match self {
            Object::Exchange { .. } => "exchange",
            Object::Queue { .. } => "queue",
        }
    }

    fn name(&self) -> &str {
        match self {
            Object::Exchange { name, .. } | Object::Queue { name, .. } => name,
        }
    }
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// Deletes every exchange and queue in `topology`, with what they hold. For the demo and for
/// tests that made a topology of their own; never called by `run`.
pub async fn delete_topology(
    connection: &Connection,
    topology: &Topology,
) -> Result<(), lapin::Error> {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    let channel = connection.create_channel().await?;
    let mut queues = vec![
        topology.request_queue.clone(),
        topology.dead_letter_queue.clone(),
    ];
    queues.extend(topology.result_queue.clone());
    queues.extend(
        topology
            .delay_steps
            .iter()
            .map(|step| topology.delay_queue(*step)),
    );
    for queue in &queues {
        channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await?;
    }
    for exchange in [
        &topology.request_exchange,
        &topology.result_exchange,
        &topology.dead_letter_exchange,
    ] {
        channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await?;
    }
    channel.close(200, "topology deleted".into()).await
}

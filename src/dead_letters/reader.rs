//! Reading the dead-letter queue without removing or reordering what stays in it.

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, ExchangeDeclareOptions, QueueDeclareOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ErrorKind, ExchangeKind};

use super::DeadLetterError;

/// One message read from the dead-letter queue and not yet acknowledged.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Delivery tag on the reading channel.
    pub delivery_tag: u64,
    /// Exchange the message was last published to (the dead-letter exchange).
    pub exchange: String,
    pub routing_key: String,
    pub properties: BasicProperties,
    pub body: Vec<u8>,
}

impl DeadLetter {
    /// Returns the message headers, if any.
    pub fn headers(&self) -> Option<&FieldTable> {
        self.properties.headers().as_ref()
    }
}

/// A channel reading one queue with `basic.get` and no acknowledgement, up to the number of
/// messages the queue held when it was opened.
pub(crate) struct Reader {
    channel: Channel,
    queue: String,
    remaining: u32,
    /// Delivery tags read and not acknowledged, in delivery order.
    unacked: std::collections::BTreeSet<u64>,
}

impl Reader {
    /// Opens a channel on `queue`; reads at most `limit` messages when given. Returns the
    /// reader and the queue's message count.
    pub(crate) async fn open(
        connection: &Connection,
        queue: &str,
        limit: Option<u32>,
    ) -> Result<(Self, u32), DeadLetterError> {
        let count = message_count(connection, queue).await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|source| broker("opening a channel", source))?;
        let remaining = limit.map_or(count, |limit| limit.min(count));
        let reader = Self {
            channel,
            queue: queue.to_owned(),
            remaining,
            unacked: std::collections::BTreeSet::new(),
        };
        Ok((reader, count))
    }

    /// Reads the next message, or `None` once the queue is empty or the bound is reached.
    pub(crate) async fn next(&mut self) -> Result<Option<DeadLetter>, DeadLetterError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let message = self
            .channel
            .basic_get(
                self.queue.as_str().into(),
                BasicGetOptions { no_ack: false },
            )
            .await
            .map_err(|source| broker("reading the dead-letter queue (basic.get)", source))?;
        let Some(message) = message else {
            self.remaining = 0;
            return Ok(None);
        };
        self.remaining -= 1;
        let delivery = message.delivery;
        self.unacked.insert(delivery.delivery_tag);
        Ok(Some(DeadLetter {
            delivery_tag: delivery.delivery_tag,
            exchange: delivery.exchange.to_string(),
            routing_key: delivery.routing_key.to_string(),
            properties: delivery.properties,
            body: delivery.data,
        }))
    }

    /// Acknowledges one message, which removes it from the queue.
    pub(crate) async fn ack(&mut self, delivery_tag: u64) -> Result<(), DeadLetterError> {
        self.channel
            .basic_ack(delivery_tag, BasicAckOptions { multiple: false })
            .await
            .map_err(|source| broker("acknowledging the dead-letter copy", source))?;
        self.unacked.remove(&delivery_tag);
        Ok(())
    }

    /// Requeues every message read and not acknowledged, then closes the channel.
    ///
    /// Each message gets its own `basic.nack` with `requeue`, in delivery order. A classic
    /// queue restores the original positions anyway, but a quorum queue needs the returns in
    /// order (see the module documentation).
    pub(crate) async fn release(self) -> Result<(), DeadLetterError> {
        let options = BasicNackOptions {
            multiple: false,
            requeue: true,
        };
        for delivery_tag in &self.unacked {
            self.channel
                .basic_nack(*delivery_tag, options)
                .await
                .map_err(|source| broker("requeueing the messages read (basic.nack)", source))?;
        }
        self.channel
            .close(200, "dead letters read".into())
            .await
            .map_err(|source| broker("closing the reading channel", source))
    }
}

/// Returns the number of ready messages in `queue`, from a passive declare on a throwaway
/// channel (the broker closes a channel whose passive declare fails).
async fn message_count(connection: &Connection, queue: &str) -> Result<u32, DeadLetterError> {
    let probe = connection
        .create_channel()
        .await
        .map_err(|source| broker("opening a channel", source))?;
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declared = probe
        .queue_declare(queue.into(), options, FieldTable::default())
        .await;
    match declared {
        Ok(declared) => {
            let _ = probe.close(200, "counted".into()).await;
            Ok(declared.message_count())
        }
        Err(error) if is_not_found(&error) => Err(DeadLetterError::QueueNotFound(queue.to_owned())),
        Err(source) => Err(broker("reading the dead-letter queue length", source)),
    }
}

/// Checks that `exchange` exists, so that a replay to a missing exchange stops before it reads
/// anything.
pub(crate) async fn check_exchange(
    connection: &Connection,
    exchange: &str,
) -> Result<(), DeadLetterError> {
    let probe = connection
        .create_channel()
        .await
        .map_err(|source| broker("opening a channel", source))?;
    let options = ExchangeDeclareOptions {
        passive: true,
        ..ExchangeDeclareOptions::default()
    };
    let declared = probe
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Fanout,
            options,
            FieldTable::default(),
        )
        .await;
    match declared {
        Ok(()) => {
            let _ = probe.close(200, "checked".into()).await;
            Ok(())
        }
        Err(error) if is_not_found(&error) => {
            Err(DeadLetterError::ExchangeNotFound(exchange.to_owned()))
        }
        Err(source) => Err(broker("checking the request exchange", source)),
    }
}

pub(crate) fn broker(action: &'static str, source: lapin::Error) -> DeadLetterError {
    DeadLetterError::Broker { action, source }
}

fn is_not_found(error: &lapin::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::ProtocolError(amqp)
            if *amqp.kind() == AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND)
    )
}

//! Publishing with publisher confirms, the `mandatory` flag and a timeout.
//!
//! A publish counts as done only when the broker confirmed it (basic.ack) and did not return
//! it as unroutable. Callers ack the delivery that caused the publish only after that, so a
//! crash between the two leads to a redelivery, never to a lost message.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection};

/// A failure that keeps a publish from counting as done.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the broker rejected the publish to exchange `{exchange}` (basic.nack)")]
    Nacked { exchange: String },
    #[error(
        "the broker returned the message as unroutable: exchange `{exchange}` routing key \
         `{routing_key}` has no bound queue ({reply_text})"
    )]
    Unroutable {
        exchange: String,
        routing_key: String,
        reply_text: String,
    },
    #[error("no publisher confirm from the broker within {0:?}")]
    ConfirmTimedOut(Duration),
    #[error("publish failed: {0}")]
    Broker(#[from] lapin::Error),
}

/// A channel in confirm mode, shared by all worker tasks (lapin channels are `Clone` and
/// safe to publish on concurrently; each publish gets its own confirm).
#[derive(Clone)]
pub struct ConfirmedPublisher {
    channel: Channel,
    confirm_timeout: Duration,
}

impl ConfirmedPublisher {
    /// Opens a channel on `connection` and puts it in confirm mode.
    pub async fn open(
        connection: &Connection,
        confirm_timeout: Duration,
    ) -> Result<Self, lapin::Error> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self {
            channel,
            confirm_timeout,
        })
    }

    /// Publishes `payload` with `mandatory` set and waits for the confirm.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        let publish = async {
            let confirm = self
                .channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    payload,
                    properties,
                )
                .await?;
            confirm.await
        };
        let confirmation = tokio::time::timeout(self.confirm_timeout, publish)
            .await
            .map_err(|_| PublishError::ConfirmTimedOut(self.confirm_timeout))??;
        if confirmation.is_nack() {
            return Err(PublishError::Nacked {
                exchange: exchange.to_owned(),
            });
        }
        if let Some(returned) = confirmation.take_message() {
            return Err(PublishError::Unroutable {
                exchange: exchange.to_owned(),
                routing_key: routing_key.to_owned(),
                reply_text: returned.reply_text.to_string(),
            });
        }
        Ok(())
    }

    /// Returns the underlying channel, e.g. to check whether it is still open.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }
}

/// Properties of a persistent JSON message.
pub fn json_properties() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
}

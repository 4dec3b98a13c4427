//! `dead-letters` and `replay`: operator commands for the dead-letter queue.
//!
//! Both read the queue with `basic.get` without acknowledging, on one channel, and never read
//! more messages than the queue held when they started, so that a request the worker
//! dead-letters meanwhile is not read twice. Whatever they do not move is requeued at the end,
//! one `basic.nack` (`requeue`) per message in delivery order, before the channel is closed.
//! RabbitMQ puts requeued messages back at their original positions in a classic queue, so
//! listing, exporting and replaying keep the order of what stays. The dead-letter queue is
//! declared classic for that reason, and the order is kept even when a process is killed halfway.
//!
//! NOTE: a quorum queue puts requeued messages in front of the unread ones in the order it
//! processes the returns. On RabbitMQ 3.10.8, more than 32 messages returned together (one
//! `basic.nack` with `multiple`, a closed channel, or individual nacks in quick succession)
//! came back out of order, and each return counts in `x-delivery-count`. Pointing
//! `OKTA_DCR_DEAD_LETTER_QUEUE` at a quorum queue therefore loses the order, and with a
//! delivery limit may drop messages that were only listed.
//!
//! `replay` acknowledges the dead-letter copy of a request only after the broker confirmed the
//! republished one. A process killed in between leaves the request both in the request queue
//! and in the dead-letter queue, and the worker handles that duplicate like any redelivery.
//! Nothing is lost, because unacknowledged messages go back to the queue when the connection
//! closes.

mod command;
mod duration;
mod export;
mod reader;
mod replay;
mod summary;

pub use command::{run_dead_letters, run_replay, DeadLettersCommand, ReplayArgs};
pub use duration::{format_age, parse_duration, DurationError};
pub use export::{export, to_json_line, ExportReport};
pub use reader::DeadLetter;
pub use replay::{replay, ReplayOptions, ReplayReport, DEFAULT_MAX_REPLAYS};
pub use summary::{list, ListOptions, Listing, Summary};

/// Failure of a dead-letter command: no broker, no queue, or a broker or file error.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("cannot connect to RabbitMQ (AMQP_URL): {0}")]
    Connect(lapin::Error),
    #[error(
        "dead-letter queue `{0}` not found: check OKTA_DCR_DEAD_LETTER_QUEUE, or start the \
         worker once to declare it"
    )]
    QueueNotFound(String),
    #[error(
        "request exchange `{0}` not found: check OKTA_DCR_REQUEST_EXCHANGE, or start the \
         worker once to declare it"
    )]
    ExchangeNotFound(String),
    #[error("{action} failed: {source}")]
    Broker {
        action: &'static str,
        source: lapin::Error,
    },
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
}

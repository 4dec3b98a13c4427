//! The per-request pipeline: decode, validate, call Okta, publish the outcome.
//!
//! Every delivery ends in exactly one of three ways, returned as a [`Settlement`]:
//!
//! - a result message (Success or Error) was published and confirmed: ack;
//! - the request itself was published to the dead-letter exchange and confirmed: ack;
//! - neither could be made durable (broker trouble, or the worker's own Okta credential was
//!   rejected): requeue, so the broker delivers it again.

use std::sync::Arc;
use std::time::Duration;

use lapin::message::Delivery;
use lapin::types::FieldTable;
use lapin::BasicProperties;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tracing::{debug, error, info, warn};

use crate::admin::{self, Outcome};
use crate::broker::headers::{self, DeadLetterReason};
use crate::broker::publisher::{json_properties, ConfirmedPublisher, PublishError};
use crate::contract::{
    self, codes, EncryptionError, Envelope, Job, Level, NameTemplate, Request, ResultMessage,
    ValidationError,
};
use crate::okta::{ErrorClass, OktaClient, OktaError, RetryBudget};
use crate::settings::Topology;
use crate::worker::delay::{choose_step, delayed_headers, RetryClock};
use crate::worker::jobs::{LookUp, VISIBILITY_WINDOW};
use crate::worker::readiness::Readiness;
use crate::worker::seen::SeenRequests;

/// The disposition of a delivery once the pipeline is done with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// The outcome is durable in the broker: acknowledge the delivery.
    Ack,
    /// No durable outcome: return the delivery to the queue for another try.
    Requeue,
    /// The worker's own Okta credential was rejected: return the delivery to the queue and
    /// stop taking new ones until Okta accepts the credential again.
    RequeueAndPause,
}

/// Everything one request needs, shared by all worker tasks.
pub struct Pipeline {
    pub okta: OktaClient,
    pub publisher: ConfirmedPublisher,
    pub topology: Topology,
    pub name_template: NameTemplate,
    pub group_id: Option<String>,
    pub retry_budget: Duration,
    pub in_process_retry: Duration,
    pub max_body_bytes: usize,
    pub seen: Arc<SeenRequests>,
    pub readiness: Arc<Readiness>,
}

/// A decoded delivery: what the consumer loop hands to a task.
pub enum Decoded {
    Request(Envelope),
    Poison(DeadLetterReason),
}

/// How often a request was tried, and since when.
#[derive(Debug, Clone, Copy)]
struct Tries {
    attempts: u32,
    clock: RetryClock,
}

/// The failure of a job.
pub(crate) enum JobError {
    Invalid(ValidationError),
    Encryption(EncryptionError),
    ClientNotFound(String),
    Okta(OktaError),
}

impl From<OktaError> for JobError {
    fn from(error: OktaError) -> Self {
        JobError::Okta(error)
    }
}

impl Pipeline {
    /// Decodes a delivery's body. Cheap enough for the consumer loop, which needs the
    /// credential id to keep requests about one credential in order.
    pub fn decode(&self, delivery: &Delivery) -> Decoded {
        let properties = &delivery.properties;
        let content_type = properties
            .content_type()
            .as_ref()
            .map(|value| value.as_str());
        let message_id = properties.message_id().as_ref().map(|value| value.as_str());
        match contract::decode(
            &delivery.data,
            content_type,
            message_id,
            self.max_body_bytes,
        ) {
            Ok(envelope) => Decoded::Request(envelope),
            Err(error) => Decoded::Poison(DeadLetterReason {
                code: error.code().to_owned(),
                reason: error.reason(),
                attempts: prior_attempts(properties.headers().as_ref()) + 1,
                okta_request_id: None,
            }),
        }
    }

    /// Processes one decoded delivery and returns how to settle it.
    pub async fn process(&self, delivery: &Delivery, decoded: Decoded) -> Settlement {
        match decoded {
            Decoded::Poison(reason) => {
                warn!(code = %reason.code, reason = %reason.reason, "Dead-lettering an undecodable request.");
                self.dead_letter(delivery, None, &reason).await
            }
            Decoded::Request(envelope) => self.process_request(delivery, &envelope).await,
        }
    }

    async fn process_request(&self, delivery: &Delivery, envelope: &Envelope) -> Settlement {
        let headers = delivery.properties.headers().as_ref();
        let prior = prior_attempts(headers);
        let request = match contract::parse_request(envelope) {
            Ok(request) => request,
            Err(error) => {
                info!(code = codes::INVALID_REQUEST, reason = %error, "Rejecting an invalid request.");
                let result = ResultMessage::rejected(envelope, &error, prior + 1);
                return self.publish_result(delivery, result.job(), &result).await;
            }
        };
        tracing::Span::current().record("operation", request.job.as_str());

        let may_repeat = delivery.redelivered
            || prior > 0
            || headers::integer(headers, headers::REPLAYS).unwrap_or(0) > 0
            || self.seen.insert(&request.request_id);
        let clock = RetryClock::from_headers(headers);
        let look_up = choose_look_up(may_repeat, delivery.redelivered, &clock);
        let in_process = self
            .in_process_retry
            .min(clock.remaining(self.retry_budget));
        let budget = RetryBudget::new(in_process);
        let outcome = self.run_job(&request, &budget, look_up).await;
        // One attempt for this delivery, plus one for each retry of a failed Okta call.
        let attempts = prior + 1 + budget.retries();
        admin::record_retries(budget.retries());
        let tries = Tries { attempts, clock };
        self.settle_outcome(delivery, &request, outcome, tries)
            .await
    }

    async fn settle_outcome(
        &self,
        delivery: &Delivery,
        request: &Request,
        outcome: Result<ResultMessage, JobError>,
        tries: Tries,
    ) -> Settlement {
        let attempts = tries.attempts;
        let result = match outcome {
            Ok(mut result) => {
                result.attempts = attempts;
                info!(attempts, "Okta work done; publishing the Success result.");
                result
            }
            Err(JobError::Invalid(error)) => {
                info!(reason = %error, "Rejecting an invalid request.");
                ResultMessage::error(
                    request,
                    codes::INVALID_REQUEST,
                    &error.to_string(),
                    false,
                    attempts,
                )
            }
            Err(JobError::Encryption(error)) => {
                warn!(cause = %error, "Encrypting the client secret failed; publishing an error without it.");
                ResultMessage::error(request, error.code(), &error.to_string(), false, attempts)
            }
            Err(JobError::ClientNotFound(name)) => {
                let reason = format!("no Okta client named `{name}` was found; pass idpClientId");
                info!(%reason, "Request failed.");
                ResultMessage::error(request, codes::CLIENT_NOT_FOUND, &reason, false, attempts)
            }
            Err(JobError::Okta(error)) => {
                return self
                    .settle_okta_error(delivery, request, error, tries)
                    .await
            }
        };
        self.publish_result(delivery, Some(request.job), &result)
            .await
    }

    async fn settle_okta_error(
        &self,
        delivery: &Delivery,
        request: &Request,
        error: OktaError,
        tries: Tries,
    ) -> Settlement {
        let attempts = tries.attempts;
        let okta_request_id = error.okta_request_id().map(str::to_owned);
        match error.class() {
            ErrorClass::Permanent => {
                info!(code = error.code(), reason = %error.reason(), okta_request_id, "Okta rejected the request.");
                let result =
                    ResultMessage::error(request, error.code(), &error.reason(), false, attempts);
                self.publish_result(delivery, Some(request.job), &result)
                    .await
            }
            ErrorClass::Transient => {
                let steps = &self.topology.delay_steps;
                let step = choose_step(steps, error.retry_after(), &tries.clock, self.retry_budget);
                let repeats = crate::log_limit::repeats();
                if let Some(seconds) = step {
                    if let Some(suppressed) = repeats.check(&format!("delay {}", error.code())) {
                        warn!(code = error.code(), reason = %error.reason(), okta_request_id, attempts, delay_secs = seconds, suppressed, "Okta unavailable; delaying the request through the broker.");
                    }
                    return self.delay(delivery, request.job, seconds, &tries).await;
                }
                if let Some(suppressed) = repeats.check(&format!("budget {}", error.code())) {
                    warn!(code = error.code(), reason = %error.reason(), okta_request_id, attempts, suppressed, "Retry budget spent; dead-lettering the request.");
                }
                let reason = DeadLetterReason {
                    code: error.code().to_owned(),
                    reason: error.reason(),
                    attempts,
                    okta_request_id,
                };
                self.dead_letter(delivery, Some(request.job), &reason).await
            }
            ErrorClass::Systemic => {
                if !self.readiness.is_credential_rejected() {
                    error!(code = error.code(), reason = %error.reason(), okta_request_id, "Okta rejected the worker's own credential; pausing until it is accepted again. Requests go back to the queue.");
                }
                self.readiness.set_credential_rejected(true);
                admin::record_outcome(Some(request.job), Outcome::Requeued);
                Settlement::RequeueAndPause
            }
        }
    }

    /// Moves the request to the delay queue of `seconds`, from where the broker returns it to
    /// the request queue. The delivery is acked only after the delayed copy is confirmed.
    async fn delay(
        &self,
        delivery: &Delivery,
        job: Job,
        seconds: u32,
        tries: &Tries,
    ) -> Settlement {
        let mut headers = delayed_headers(
            delivery.properties.headers().as_ref(),
            &tries.clock,
            tries.attempts,
        );
        headers::keep_original_target(
            &mut headers,
            delivery.exchange.as_str(),
            delivery.routing_key.as_str(),
        );
        let properties = copy_properties(&delivery.properties).with_headers(headers);
        let queue = self.topology.delay_queue(seconds);
        let published = self
            .publisher
            .publish("", &queue, &delivery.data, properties)
            .await;
        match published {
            Ok(()) => {
                admin::record_delayed();
                Settlement::Ack
            }
            Err(error) => {
                error!(cause = %error, %queue, "Delaying the request failed; it goes back to the queue.");
                admin::record_outcome(Some(job), Outcome::Requeued);
                Settlement::Requeue
            }
        }
    }

    /// Publishes the result. A result the broker cannot route (no queue bound to the results
    /// exchange) dead-letters the request instead of requeueing it, because every new try would
    /// renew the client's secret and fail the same way; a replay, once a queue is bound, finds
    /// the client and renews its secret once.
    async fn publish_result(
        &self,
        delivery: &Delivery,
        job: Option<Job>,
        result: &ResultMessage,
    ) -> Settlement {
        let properties = json_properties()
            .with_correlation_id(result.request_id.as_str().into())
            .with_message_id(uuid::Uuid::new_v4().to_string().into())
            .with_timestamp(unix_seconds())
            .with_app_id("okta-dcr-worker".into());
        let routing_key = result.routing_key();
        let published = self
            .publisher
            .publish(
                &self.topology.result_exchange,
                &routing_key,
                &result.to_json(),
                properties,
            )
            .await;
        match published {
            Ok(()) => {
                debug!(%routing_key, "Result published.");
                let outcome = match result.status.level {
                    Level::Success => Outcome::Success,
                    Level::Error => Outcome::Error,
                };
                admin::record_outcome(job, outcome);
                Settlement::Ack
            }
            Err(error @ PublishError::Unroutable { .. }) => {
                error!(%routing_key, cause = %error, "No queue is bound for the result; dead-lettering the request.");
                let reason = DeadLetterReason {
                    code: codes::RESULT_UNROUTABLE.to_owned(),
                    reason: error.to_string(),
                    attempts: result.attempts,
                    okta_request_id: None,
                };
                self.dead_letter(delivery, job, &reason).await
            }
            Err(error) => {
                error!(%routing_key, cause = %error, "Publishing the result failed; the request goes back to the queue.");
                admin::record_outcome(job, Outcome::Requeued);
                Settlement::Requeue
            }
        }
    }

    async fn dead_letter(
        &self,
        delivery: &Delivery,
        job: Option<Job>,
        reason: &DeadLetterReason,
    ) -> Settlement {
        let now = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        let headers = headers::with_dead_letter_reason(
            delivery.properties.headers().as_ref(),
            reason,
            delivery.exchange.as_str(),
            delivery.routing_key.as_str(),
            &now,
        );
        let properties = copy_properties(&delivery.properties).with_headers(headers);
        let published = self
            .publisher
            .publish(
                &self.topology.dead_letter_exchange,
                &self.topology.dead_letter_queue,
                &delivery.data,
                properties,
            )
            .await;
        match published {
            Ok(()) => {
                admin::record_outcome(job, Outcome::DeadLettered);
                admin::record_dead_letter(&reason.code);
                Settlement::Ack
            }
            Err(error) => {
                error!(cause = %error, code = %reason.code, "Dead-lettering failed; the request goes back to the queue.");
                admin::record_outcome(job, Outcome::Requeued);
                Settlement::Requeue
            }
        }
    }
}

/// Attempts recorded by earlier deliveries (a delay queue or a replay carries the count).
pub(crate) fn prior_attempts(headers: Option<&FieldTable>) -> u32 {
    headers::integer(headers, headers::ATTEMPTS)
        .and_then(|value| u32::try_from(value).ok())
        .unwrap_or(0)
}

/// Keeps the properties a dead-lettered request must carry so that a replay is identical to
/// the original publish.
/// Chooses how a provision looks for a client an earlier try may have created. A request back
/// from a delay queue, and not redelivered since, had its last Okta call end before the
/// delay began: when that is longer ago than Okta takes to list a new client, one look-up
/// is enough.
fn choose_look_up(may_repeat: bool, redelivered: bool, clock: &RetryClock) -> LookUp {
    if !may_repeat {
        return LookUp::Skip;
    }
    match clock.since_delayed() {
        Some(since) if !redelivered && since >= VISIBILITY_WINDOW => LookUp::Once,
        _ => LookUp::OverWindow,
    }
}

fn copy_properties(properties: &BasicProperties) -> BasicProperties {
    let mut copy = json_properties();
    if let Some(content_type) = properties.content_type() {
        copy = copy.with_content_type(content_type.clone());
    }
    if let Some(message_id) = properties.message_id() {
        copy = copy.with_message_id(message_id.clone());
    }
    if let Some(correlation_id) = properties.correlation_id() {
        copy = copy.with_correlation_id(correlation_id.clone());
    }
    if let Some(timestamp) = properties.timestamp() {
        copy = copy.with_timestamp(*timestamp);
    }
    copy
}

fn unix_seconds() -> u64 {
    OffsetDateTime::now_utc().unix_timestamp().max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(delayed_secs_ago: Option<i64>) -> RetryClock {
        let now = OffsetDateTime::now_utc();
        RetryClock {
            first_attempt_at: now - time::Duration::seconds(60),
            delays: u32::from(delayed_secs_ago.is_some()),
            delayed_at: delayed_secs_ago.map(|secs| now - time::Duration::seconds(secs)),
        }
    }

    #[test]
    fn first_delivery_skips_look_up() {
        assert_eq!(choose_look_up(false, false, &clock(None)), LookUp::Skip);
    }

    #[test]
    fn long_delay_looks_once() {
        assert_eq!(choose_look_up(true, false, &clock(Some(10))), LookUp::Once);
    }

    #[test]
    fn short_delay_looks_over_window() {
        assert_eq!(
            choose_look_up(true, false, &clock(Some(2))),
            LookUp::OverWindow
        );
    }

    #[test]
    fn redelivery_looks_over_window() {
        assert_eq!(
            choose_look_up(true, true, &clock(Some(10))),
            LookUp::OverWindow
        );
        assert_eq!(choose_look_up(true, true, &clock(None)), LookUp::OverWindow);
    }
}

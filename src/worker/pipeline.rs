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
    self, codes, encrypt_secret, ClientRegistration, CredentialState, EncryptionError, Envelope,
    Job, Level, NameTemplate, Request, ResultData, ResultMessage, ValidationError,
};
use crate::okta::{Deletion, ErrorClass, OktaClient, OktaError, RegisteredClient, RetryBudget};
use crate::secret::Secret;
use crate::settings::Topology;
use crate::worker::delay::{choose_step, delayed_headers, RetryClock};
use crate::worker::readiness::Readiness;
use crate::worker::seen::SeenRequests;

/// How long a client that may have just been created is looked for before it counts as not
/// created. NOTE: an estimate of Okta's listing delay, not a documented bound; a client that
/// Okta lists only later than this could still be created twice.
const VISIBILITY_WINDOW: Duration = Duration::from_secs(5);
const VISIBILITY_FIRST_WAIT: Duration = Duration::from_millis(250);
const VISIBILITY_MAX_WAIT: Duration = Duration::from_secs(2);

/// Length of the sample secret encrypted to check a request's key; Okta's client secrets are
/// 40 to 64 characters.
const SAMPLE_SECRET_BYTES: usize = 64;

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
enum JobError {
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
                return self
                    .publish_result(
                        delivery,
                        None,
                        &ResultMessage::rejected(envelope, &error, prior + 1),
                    )
                    .await;
            }
        };
        tracing::Span::current().record("operation", request.job.as_str());

        let may_repeat = delivery.redelivered
            || prior > 0
            || headers::integer(headers, headers::REPLAYS).unwrap_or(0) > 0
            || self.seen.insert(&request.request_id);
        let clock = RetryClock::from_headers(headers);
        let in_process = self
            .in_process_retry
            .min(clock.remaining(self.retry_budget));
        let budget = RetryBudget::new(in_process);
        let outcome = self.run_job(&request, &budget, may_repeat).await;
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
                info!(attempts, "Request succeeded.");
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
        let headers = delayed_headers(
            delivery.properties.headers().as_ref(),
            &tries.clock,
            tries.attempts,
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

    async fn run_job(
        &self,
        request: &Request,
        budget: &RetryBudget,
        may_repeat: bool,
    ) -> Result<ResultMessage, JobError> {
        check_encryption_key(request)?;
        match request.job {
            Job::Provision => self.provision(request, budget, may_repeat).await,
            Job::Deprovision | Job::Expire => self.deprovision(request, budget).await,
            Job::Rotate => self.rotate(request, budget).await,
            Job::Suspend => self.set_active(request, budget, false).await,
            Job::Enable => self.set_active(request, budget, true).await,
        }
    }

    /// Creates the client, or, when this request may have created it before, finds it by
    /// name and issues a new secret instead, because Okta never shows a secret twice.
    async fn provision(
        &self,
        request: &Request,
        budget: &RetryBudget,
        may_repeat: bool,
    ) -> Result<ResultMessage, JobError> {
        let registration = contract::build_registration(request, &self.name_template)
            .map_err(JobError::Invalid)?;
        let existing = match may_repeat {
            true => self.find_created(&registration.client_name, budget).await?,
            false => None,
        };
        let (client, reason) = match existing {
            Some(client) => self.reuse(client, &registration, budget).await?,
            None => self.create(&registration, budget).await?,
        };
        if let Some(group_id) = &self.group_id {
            self.okta
                .assign_group(&client.client_id, group_id, budget)
                .await?;
        }
        success(request, CredentialState::Active, &client, reason)
    }

    /// Registers the client. A registration that failed in a way Okta may still have carried
    /// out (a timeout, a broken connection, a 5xx) is never simply repeated: the client is
    /// looked up by name first, and only created again when it cannot be found.
    async fn create(
        &self,
        registration: &ClientRegistration,
        budget: &RetryBudget,
    ) -> Result<(RegisteredClient, &'static str), JobError> {
        loop {
            let error = match self.okta.create_client(registration, budget).await {
                Ok(client) => return Ok((client, "client created")),
                Err(error) if error.may_have_been_applied() => error,
                Err(error) => return Err(error.into()),
            };
            warn!(code = error.code(), okta_request_id = error.okta_request_id(), cause = %error, "Client registration failed but may have been carried out; looking the client up before trying again.");
            if let Some(client) = self.find_created(&registration.client_name, budget).await? {
                return self.reuse(client, registration, budget).await;
            }
            if budget.remaining() < VISIBILITY_WINDOW {
                return Err(error.into());
            }
        }
    }

    /// Finds a client this request may have created. Okta may list a new client only a few
    /// seconds after creating it, so a miss is retried over a short, bounded window before it
    /// counts as "not created".
    async fn find_created(
        &self,
        name: &str,
        budget: &RetryBudget,
    ) -> Result<Option<RegisteredClient>, JobError> {
        let deadline = tokio::time::Instant::now() + VISIBILITY_WINDOW.min(budget.remaining());
        let mut wait = VISIBILITY_FIRST_WAIT;
        loop {
            match self.okta.find_client_by_name(name, budget).await {
                Ok(Some(client)) => return Ok(Some(client)),
                Ok(None) => {}
                Err(error) if error.code() == codes::OKTA_NOT_FOUND => {}
                Err(error) => return Err(error.into()),
            }
            if tokio::time::Instant::now() + wait > deadline {
                return Ok(None);
            }
            debug!(client_name = %name, next_look_up = ?wait, "Client not listed yet; looking again.");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(VISIBILITY_MAX_WAIT);
        }
    }

    async fn reuse(
        &self,
        client: RegisteredClient,
        registration: &ClientRegistration,
        budget: &RetryBudget,
    ) -> Result<(RegisteredClient, &'static str), JobError> {
        info!(client_id = %client.client_id, "Found the client created by an earlier attempt; not creating another.");
        let client = self.refresh_secret(client, registration, budget).await?;
        Ok((client, "client already existed; secret renewed"))
    }

    async fn refresh_secret(
        &self,
        client: RegisteredClient,
        registration: &ClientRegistration,
        budget: &RetryBudget,
    ) -> Result<RegisteredClient, JobError> {
        if !registration.has_secret() {
            return Ok(client);
        }
        Ok(self.okta.new_secret(&client.client_id, budget).await?)
    }

    async fn deprovision(
        &self,
        request: &Request,
        budget: &RetryBudget,
    ) -> Result<ResultMessage, JobError> {
        let client_id = match self.resolve_client_id(request, budget).await? {
            Some(client_id) => client_id,
            None => return Ok(absent(request)),
        };
        let reason = match self.okta.delete_client(&client_id, budget).await? {
            Deletion::Deleted => "client deleted",
            Deletion::AlreadyAbsent => "client already absent",
        };
        let mut result = ResultMessage::success(
            request,
            CredentialState::Inactive,
            None,
            Some(client_id),
            reason,
            0,
        );
        result.data = None;
        Ok(result)
    }

    async fn rotate(
        &self,
        request: &Request,
        budget: &RetryBudget,
    ) -> Result<ResultMessage, JobError> {
        let has_secret = request
            .credential_data
            .as_ref()
            .map(|data| data.issues_secret());
        if has_secret == Some(false) {
            return Err(JobError::Invalid(ValidationError::invalid_field(
                "credentialData",
                "rotation does not apply: the client has no secret (a public or private_key_jwt \
                 client)",
            )));
        }
        let client_id = self.require_client_id(request, budget).await?;
        let client = self.okta.new_secret(&client_id, budget).await?;
        success(request, CredentialState::Active, &client, "secret rotated")
    }

    async fn set_active(
        &self,
        request: &Request,
        budget: &RetryBudget,
        active: bool,
    ) -> Result<ResultMessage, JobError> {
        let client_id = self.require_client_id(request, budget).await?;
        let (state, reason) = if active {
            self.okta.activate_app(&client_id, budget).await?;
            (CredentialState::Active, "client activated")
        } else {
            self.okta.deactivate_app(&client_id, budget).await?;
            (CredentialState::Inactive, "client deactivated")
        };
        Ok(ResultMessage::success(
            request,
            state,
            None,
            Some(client_id),
            reason,
            0,
        ))
    }

    async fn require_client_id(
        &self,
        request: &Request,
        budget: &RetryBudget,
    ) -> Result<String, JobError> {
        match self.resolve_client_id(request, budget).await? {
            Some(client_id) => Ok(client_id),
            None => Err(JobError::ClientNotFound(
                contract::client_name(request, &self.name_template).unwrap_or_default(),
            )),
        }
    }

    /// Returns `idpClientId` when the request has it, or else finds the client by its
    /// deterministic name.
    async fn resolve_client_id(
        &self,
        request: &Request,
        budget: &RetryBudget,
    ) -> Result<Option<String>, JobError> {
        if let Some(client_id) = &request.idp_client_id {
            return Ok(Some(client_id.clone()));
        }
        let name =
            contract::client_name(request, &self.name_template).map_err(JobError::Invalid)?;
        let client = self.okta.find_client_by_name(&name, budget).await?;
        Ok(client.map(|client| client.client_id))
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

/// Builds a Success result carrying the client, with its secret encrypted when the request
/// asks for it. No plaintext secret leaves this function for such a request.
fn success(
    request: &Request,
    state: CredentialState,
    client: &RegisteredClient,
    reason: &str,
) -> Result<ResultMessage, JobError> {
    let client_secret = match (&client.client_secret, &request.encryption) {
        (Some(secret), Some(spec)) => Some(Secret::new(
            encrypt_secret(secret, spec).map_err(JobError::Encryption)?,
        )),
        (secret, _) => secret.clone(),
    };
    let data = ResultData {
        client_id: client.client_id.clone(),
        client_secret,
        client_id_issued_at: client.client_id_issued_at,
        client_secret_expires_at: client.client_secret_expires_at,
    };
    Ok(ResultMessage::success(
        request,
        state,
        Some(data),
        Some(client.client_id.clone()),
        reason,
        0,
    ))
}

/// Encrypts a sample secret with the request's key before any Okta call, so that a key that
/// cannot be used fails the request before a client is created whose secret nobody could read.
fn check_encryption_key(request: &Request) -> Result<(), JobError> {
    let Some(spec) = &request.encryption else {
        return Ok(());
    };
    let sample = Secret::new("s".repeat(SAMPLE_SECRET_BYTES));
    encrypt_secret(&sample, spec)
        .map(|_| ())
        .map_err(JobError::Encryption)
}

fn absent(request: &Request) -> ResultMessage {
    ResultMessage::success(
        request,
        CredentialState::Inactive,
        None,
        None,
        "client already absent",
        0,
    )
}

/// Attempts recorded by earlier deliveries (a delay queue or a replay carries the count).
fn prior_attempts(headers: Option<&FieldTable>) -> u32 {
    headers::integer(headers, headers::ATTEMPTS)
        .and_then(|value| u32::try_from(value).ok())
        .unwrap_or(0)
}

/// Keeps the properties a dead-lettered request must carry so that a replay is identical to
/// the original publish.
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

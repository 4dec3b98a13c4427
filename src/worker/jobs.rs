//! The jobs: the Okta calls for each kind of request, and the Success results they build.

use std::time::Duration;

use tracing::{debug, info, warn};

use crate::contract::{
    self, codes, encrypt_secret, ClientRegistration, CredentialState, Job, Request, ResultData,
    ResultMessage, ValidationError,
};
use crate::okta::{Deletion, RegisteredClient, RetryBudget};
use crate::secret::Secret;
use crate::worker::pipeline::{JobError, Pipeline};

/// How long a client that may have just been created is looked for before it counts as not
/// created. NOTE: an estimate of Okta's listing delay, not a documented bound; a client that
/// Okta lists only later than this could still be created twice.
pub(crate) const VISIBILITY_WINDOW: Duration = Duration::from_secs(5);
const VISIBILITY_FIRST_WAIT: Duration = Duration::from_millis(250);
const VISIBILITY_MAX_WAIT: Duration = Duration::from_secs(2);

/// Length of the sample secret encrypted to check a request's key; Okta's client secrets are
/// 40 to 64 characters.
const SAMPLE_SECRET_BYTES: usize = 64;

/// The look-up a provision makes for a client that an earlier try of it may have created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LookUp {
    /// A first delivery: create without looking.
    Skip,
    /// The earlier try ended longer than [`VISIBILITY_WINDOW`] ago, so Okta lists any client
    /// it created by now: look once.
    Once,
    /// The earlier try may have just ended: look over [`VISIBILITY_WINDOW`].
    OverWindow,
}

impl Pipeline {
    pub(crate) async fn run_job(
        &self,
        request: &Request,
        budget: &RetryBudget,
        look_up: LookUp,
    ) -> Result<ResultMessage, JobError> {
        check_encryption_key(request)?;
        match request.job {
            Job::Provision => self.provision(request, budget, look_up).await,
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
        look_up: LookUp,
    ) -> Result<ResultMessage, JobError> {
        let registration = contract::build_registration(request, &self.name_template)
            .map_err(JobError::Invalid)?;
        let name = &registration.client_name;
        let existing = match look_up {
            LookUp::Skip => None,
            LookUp::Once => self.find_listed(name, budget).await?,
            LookUp::OverWindow => self.find_created(name, budget).await?,
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
            budget.record_retry();
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
            if let Some(client) = self.find_listed(name, budget).await? {
                return Ok(Some(client));
            }
            if tokio::time::Instant::now() + wait > deadline {
                return Ok(None);
            }
            debug!(client_name = %name, next_look_up = ?wait, "Client not listed yet; looking again.");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(VISIBILITY_MAX_WAIT);
        }
    }

    /// Looks the client up by name once.
    async fn find_listed(
        &self,
        name: &str,
        budget: &RetryBudget,
    ) -> Result<Option<RegisteredClient>, JobError> {
        match self.okta.find_client_by_name(name, budget).await {
            Ok(client) => Ok(client),
            Err(error) if error.code() == codes::OKTA_NOT_FOUND => Ok(None),
            Err(error) => Err(error.into()),
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

//! Settings read from environment variables with `envy` and validated at start.
//!
//! Every variable is read as text and parsed here, so that an invalid value stops the process
//! with one line naming the variable, the value and what is expected. Secrets (`OKTA_API_TOKEN`,
//! `OKTA_PRIVATE_KEY`) are held in [`Secret`] and never printed.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use url::Url;

use crate::secret::Secret;

/// Prefix of the variables that tune the worker; the fixed names (`AMQP_URL`, `OKTA_*`) have none.
pub const PREFIX: &str = "OKTA_DCR_";

/// Default `AMQP_URL`: the local broker's default virtual host as `guest`.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Default `OKTA_DCR_ADMIN_ADDR`: loopback only, so health and metrics are not exposed beyond
/// the host unless the operator asks for it.
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:9090";

/// A setting that is missing or cannot be used; names the variable.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("missing setting {variable}: {hint}")]
    Missing {
        variable: String,
        hint: &'static str,
    },
    #[error("invalid setting {variable}={value:?}: {reason}")]
    Invalid {
        variable: String,
        value: String,
        reason: String,
    },
    #[error("could not read the environment: {0}")]
    Environment(String),
}

/// Kind of the request queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueType {
    /// Replicated, the default: survives the loss of a broker node in a cluster.
    Quorum,
    /// A single-node queue, for brokers or policies that do not allow quorum queues.
    Classic,
}

impl QueueType {
    /// Returns the `x-queue-type` argument value.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Quorum => "quorum",
            QueueType::Classic => "classic",
        }
    }
}

impl FromStr for QueueType {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "quorum" => Ok(QueueType::Quorum),
            "classic" => Ok(QueueType::Classic),
            _ => Err("expected `quorum` or `classic`".to_owned()),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected `text` or `json`".to_owned()),
        }
    }
}

/// Names of the broker objects. Each name has a default and a variable to change it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Fanout exchange requests are published to (`OKTA_DCR_REQUEST_EXCHANGE`,
    /// default `okta-dcr.requests`).
    pub request_exchange: String,
    /// Queue the worker consumes (`OKTA_DCR_REQUEST_QUEUE`, default `okta-dcr.requests`). Because
    /// it has the same name as the exchange by default, publishing to the default exchange with
    /// this routing key also enqueues a request.
    pub request_queue: String,
    /// `quorum` (default) or `classic` (`OKTA_DCR_REQUEST_QUEUE_TYPE`).
    pub request_queue_type: QueueType,
    /// Deliveries of one request after which a quorum queue dead-letters it
    /// (`OKTA_DCR_DELIVERY_LIMIT`, default 0 = no limit). Off by default because RabbitMQ also
    /// counts the requeues of a paused worker and the redeliveries after a lost connection,
    /// which would dead-letter healthy requests without a reason header.
    pub delivery_limit: u32,
    /// Topic exchange results are published to (`OKTA_DCR_RESULT_EXCHANGE`, default
    /// `okta-dcr.results`), with routing key `<job>.<success|error>`.
    pub result_exchange: String,
    /// Queue bound to the results exchange with `#` so that no result is lost before a relay
    /// attaches (`OKTA_DCR_RESULT_QUEUE`, default `okta-dcr.results`; empty: not declared).
    pub result_queue: Option<String>,
    /// Delays, in seconds, of the delay queues a request waits in between tries while Okta is
    /// unavailable (`OKTA_DCR_DELAY_STEPS_SECS`, default `10,30,60,120`). Each step is a queue
    /// named `<request queue>.delay.<seconds>s` whose messages expire back into the request
    /// exchange.
    pub delay_steps: Vec<u32>,
    /// Fanout exchange for requests that cannot be processed (`OKTA_DCR_DEAD_LETTER_EXCHANGE`,
    /// default `okta-dcr.dead-letter`).
    pub dead_letter_exchange: String,
    /// Queue holding dead-lettered requests (`OKTA_DCR_DEAD_LETTER_QUEUE`, default
    /// `okta-dcr.dead-letter`).
    pub dead_letter_queue: String,
}

impl Topology {
    /// Returns a topology whose every name starts with `prefix` (`<prefix>.requests`,
    /// `<prefix>.results`, `<prefix>.dead-letter`), with the default arguments otherwise; for
    /// the demo and for tests, which need objects of their own.
    pub fn with_prefix(prefix: &str) -> Self {
        Topology {
            request_exchange: format!("{prefix}.requests"),
            request_queue: format!("{prefix}.requests"),
            request_queue_type: QueueType::Quorum,
            delivery_limit: 0,
            result_exchange: format!("{prefix}.results"),
            result_queue: Some(format!("{prefix}.results")),
            dead_letter_exchange: format!("{prefix}.dead-letter"),
            dead_letter_queue: format!("{prefix}.dead-letter"),
            delay_steps: vec![10, 30, 60, 120],
        }
    }

    /// Returns the name of the delay queue for a delay of `seconds`.
    pub fn delay_queue(&self, seconds: u32) -> String {
        format!("{}.delay.{seconds}s", self.request_queue)
    }
}

/// Settings shared by every command that talks to the broker.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// `AMQP_URL`, default [`DEFAULT_AMQP_URL`]. The password in it is never logged.
    pub amqp_url: Secret,
    pub topology: Topology,
    /// How long to wait for a publisher confirm before treating the publish as failed
    /// (`OKTA_DCR_CONFIRM_TIMEOUT_SECS`, default 30 seconds).
    pub confirm_timeout: Duration,
    /// Largest request body accepted (`OKTA_DCR_MAX_BODY_BYTES`, default 1 MiB); larger ones
    /// are dead-lettered.
    pub max_body_bytes: usize,
    /// AMQP heartbeat interval asked of the broker (`OKTA_DCR_HEARTBEAT_SECS`, default 30
    /// seconds); a connection silent for about twice as long counts as lost.
    pub heartbeat: Duration,
}

/// The credential the worker authenticates to Okta with.
#[derive(Debug, Clone)]
pub enum OktaCredential {
    /// `OKTA_API_TOKEN`, or the content of the file named by `OKTA_API_TOKEN_FILE`: an SSWS
    /// API token.
    ApiToken(Secret),
    /// `OKTA_CLIENT_ID` + `OKTA_PRIVATE_KEY` (PEM, or a path to a PEM file): an OAuth 2.0
    /// service app using private_key_jwt. `OKTA_PRIVATE_KEY_ID` is the `kid` the key was
    /// registered with in Okta; without it the key's RFC 7638 thumbprint is sent.
    ServiceApp {
        client_id: String,
        private_key: Secret,
        key_id: Option<String>,
    },
}

/// Settings of the Okta client.
#[derive(Debug, Clone)]
pub struct OktaSettings {
    /// `OKTA_ORG_URL`, e.g. `https://example.okta.com`; required.
    pub org_url: Url,
    pub credential: OktaCredential,
    /// `OKTA_GROUP_ID`: when set, every new client is assigned to this group.
    pub group_id: Option<String>,
    /// Timeout of one HTTP call (`OKTA_DCR_OKTA_TIMEOUT_SECS`, default 30 seconds).
    pub call_timeout: Duration,
    /// Maximum Okta HTTP calls in flight at once over all requests
    /// (`OKTA_DCR_OKTA_CONCURRENCY`, default 8), well under Okta's per-org limit on concurrent
    /// requests, which other clients of the org share.
    pub max_concurrent_calls: usize,
}

/// Settings of the worker's processing.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Requests processed at once, and the consumer prefetch (`OKTA_DCR_CONCURRENCY`, default 16).
    pub concurrency: u16,
    /// Time from a request's first try after which transient Okta failures stop being retried
    /// and the request is dead-lettered (`OKTA_DCR_RETRY_BUDGET_SECS`, default 300 seconds).
    pub retry_budget: Duration,
    /// How long one delivery retries transient failures in the worker before it moves to a
    /// delay queue instead of staying unacked (`OKTA_DCR_IN_PROCESS_RETRY_SECS`, default 30
    /// seconds).
    pub in_process_retry: Duration,
    /// Okta client name template (`OKTA_DCR_CLIENT_NAME_TEMPLATE`); see the README for the
    /// placeholders. Empty means the built-in default.
    pub client_name_template: Option<String>,
    /// How long in-flight requests may run after SIGTERM or SIGINT before the worker exits and
    /// leaves them unacked for redelivery (`OKTA_DCR_DRAIN_TIMEOUT_SECS`, default 30 seconds).
    pub drain_timeout: Duration,
    /// Address of the admin HTTP endpoint serving `/livez`, `/readyz` and `/metrics`
    /// (`OKTA_DCR_ADMIN_ADDR`, an IP address and port, default [`DEFAULT_ADMIN_ADDR`]; set
    /// empty to serve none).
    pub admin_addr: Option<SocketAddr>,
}

/// Everything `run` needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub broker: BrokerSettings,
    pub okta: OktaSettings,
    pub worker: WorkerSettings,
}

impl Settings {
    /// Reads and validates every setting `run` uses.
    pub fn from_env() -> Result<Self, SettingsError> {
        let env = Environment::capture()?;
        Ok(Settings {
            broker: BrokerSettings::from_environment(&env)?,
            okta: OktaSettings::from_environment(&env)?,
            worker: WorkerSettings::from_environment(&env)?,
        })
    }
}

impl BrokerSettings {
    /// Reads the broker settings alone, for commands that do not call Okta.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_environment(&Environment::capture()?)
    }

    fn from_environment(env: &Environment) -> Result<Self, SettingsError> {
        let amqp_url = env.text("AMQP_URL").unwrap_or(DEFAULT_AMQP_URL);
        validate_amqp_url(amqp_url)?;
        // Set but empty means "do not declare a results queue"; unset means the default.
        let result_queue = match env.raw("OKTA_DCR_RESULT_QUEUE") {
            Some(value) => value.trim(),
            None => "okta-dcr.results",
        };
        Ok(BrokerSettings {
            amqp_url: Secret::new(amqp_url),
            topology: Topology {
                request_exchange: env.name("OKTA_DCR_REQUEST_EXCHANGE", "okta-dcr.requests")?,
                request_queue: env.name("OKTA_DCR_REQUEST_QUEUE", "okta-dcr.requests")?,
                request_queue_type: env.parse("OKTA_DCR_REQUEST_QUEUE_TYPE", QueueType::Quorum)?,
                delivery_limit: env.parse("OKTA_DCR_DELIVERY_LIMIT", 0)?,
                result_exchange: env.name("OKTA_DCR_RESULT_EXCHANGE", "okta-dcr.results")?,
                result_queue: (!result_queue.is_empty()).then(|| result_queue.to_owned()),
                delay_steps: delay_steps(env)?,
                dead_letter_exchange: env
                    .name("OKTA_DCR_DEAD_LETTER_EXCHANGE", "okta-dcr.dead-letter")?,
                dead_letter_queue: env
                    .name("OKTA_DCR_DEAD_LETTER_QUEUE", "okta-dcr.dead-letter")?,
            },
            confirm_timeout: env.seconds("OKTA_DCR_CONFIRM_TIMEOUT_SECS", 30)?,
            max_body_bytes: env.positive("OKTA_DCR_MAX_BODY_BYTES", 1024 * 1024)?,
            heartbeat: env.seconds("OKTA_DCR_HEARTBEAT_SECS", 30)?,
        })
    }
}

impl OktaSettings {
    fn from_environment(env: &Environment) -> Result<Self, SettingsError> {
        let org_url = env.text("OKTA_ORG_URL").ok_or(SettingsError::Missing {
            variable: "OKTA_ORG_URL".to_owned(),
            hint: "set it to your Okta org, e.g. https://example.okta.com",
        })?;
        Ok(OktaSettings {
            org_url: parse_org_url(org_url)?,
            credential: okta_credential(env)?,
            group_id: env.text("OKTA_GROUP_ID").map(str::to_owned),
            call_timeout: env.seconds("OKTA_DCR_OKTA_TIMEOUT_SECS", 30)?,
            max_concurrent_calls: env.positive("OKTA_DCR_OKTA_CONCURRENCY", 8)?,
        })
    }
}

impl WorkerSettings {
    fn from_environment(env: &Environment) -> Result<Self, SettingsError> {
        Ok(WorkerSettings {
            concurrency: env.positive("OKTA_DCR_CONCURRENCY", 16)?,
            retry_budget: env.seconds("OKTA_DCR_RETRY_BUDGET_SECS", 300)?,
            in_process_retry: env.seconds("OKTA_DCR_IN_PROCESS_RETRY_SECS", 30)?,
            client_name_template: client_name_template(env)?,
            drain_timeout: env.seconds("OKTA_DCR_DRAIN_TIMEOUT_SECS", 30)?,
            admin_addr: admin_addr(env)?,
        })
    }
}

fn delay_steps(env: &Environment) -> Result<Vec<u32>, SettingsError> {
    const VARIABLE: &str = "OKTA_DCR_DELAY_STEPS_SECS";
    let text = env.text(VARIABLE).unwrap_or("10,30,60,120");
    let mut steps = Vec::new();
    for part in text.split(',') {
        let step: u32 = part.trim().parse().map_err(|_| {
            env.invalid(
                VARIABLE,
                "expected whole seconds separated by commas, e.g. 10,30,60",
            )
        })?;
        if step == 0 {
            return Err(env.invalid(VARIABLE, "every delay must be greater than zero"));
        }
        steps.push(step);
    }
    steps.sort_unstable();
    steps.dedup();
    Ok(steps)
}

fn client_name_template(env: &Environment) -> Result<Option<String>, SettingsError> {
    let Some(template) = env.text("OKTA_DCR_CLIENT_NAME_TEMPLATE") else {
        return Ok(None);
    };
    crate::contract::NameTemplate::parse(template).map_err(|error| SettingsError::Invalid {
        variable: "OKTA_DCR_CLIENT_NAME_TEMPLATE".to_owned(),
        value: template.to_owned(),
        reason: error.to_string(),
    })?;
    Ok(Some(template.to_owned()))
}

/// Reads `OKTA_DCR_LOG_FORMAT` (`text`, the default, or `json`).
pub fn log_format_from_env() -> Result<LogFormat, SettingsError> {
    Environment::capture()?.parse("OKTA_DCR_LOG_FORMAT", LogFormat::Text)
}

/// The process environment as `envy` reads it, with empty values treated as unset.
struct Environment(HashMap<String, String>);

impl Environment {
    fn capture() -> Result<Self, SettingsError> {
        // Variables that are not UTF-8 cannot be settings; skipping them keeps an unrelated
        // variable from stopping the process (`std::env::vars` would panic on them).
        let variables = std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        });
        envy::from_iter::<_, HashMap<String, String>>(variables)
            .map(Environment)
            .map_err(|error| SettingsError::Environment(error.to_string()))
    }

    fn raw(&self, variable: &str) -> Option<&str> {
        self.0
            .get(&variable.to_lowercase())
            .or_else(|| self.0.get(variable))
            .map(String::as_str)
    }

    fn text(&self, variable: &str) -> Option<&str> {
        self.raw(variable)
            .map(str::trim)
            .filter(|value| !value.is_empty())
    }

    fn parse<T: FromStr>(&self, variable: &str, default: T) -> Result<T, SettingsError>
    where
        T::Err: fmt::Display,
    {
        match self.text(variable) {
            None => Ok(default),
            Some(value) => value
                .parse()
                .map_err(|error: T::Err| SettingsError::Invalid {
                    variable: variable.to_owned(),
                    value: value.to_owned(),
                    reason: error.to_string(),
                }),
        }
    }

    fn positive<T>(&self, variable: &str, default: T) -> Result<T, SettingsError>
    where
        T: FromStr + Default + PartialEq,
        T::Err: fmt::Display,
    {
        let value = self.parse(variable, default).map_err(|error| match error {
            SettingsError::Invalid {
                variable,
                value,
                reason,
            } => SettingsError::Invalid {
                variable,
                value,
                reason: format!("{reason}; expected a whole number greater than zero"),
            },
            other => other,
        })?;
        if value == T::default() {
            return Err(self.invalid(variable, "must be greater than zero"));
        }
        Ok(value)
    }

    fn seconds(&self, variable: &str, default: u64) -> Result<Duration, SettingsError> {
        self.positive(variable, default).map(Duration::from_secs)
    }

    /// Reads an AMQP object name: at most 255 bytes, as AMQP short strings are.
    fn name(&self, variable: &str, default: &str) -> Result<String, SettingsError> {
        let value = self.text(variable).unwrap_or(default);
        if value.len() > 255 {
            return Err(self.invalid(variable, "AMQP names are at most 255 bytes"));
        }
        Ok(value.to_owned())
    }

    fn invalid(&self, variable: &str, reason: &str) -> SettingsError {
        SettingsError::Invalid {
            variable: variable.to_owned(),
            value: self.text(variable).unwrap_or_default().to_owned(),
            reason: reason.to_owned(),
        }
    }
}

/// Checks `AMQP_URL` with the same parser lapin uses, without echoing its password.
fn validate_amqp_url(value: &str) -> Result<(), SettingsError> {
    lapin::uri::AMQPUri::from_str(value)
        .map(|_| ())
        .map_err(|reason| SettingsError::Invalid {
            variable: "AMQP_URL".to_owned(),
            value: redact_url_password(value),
            reason: format!("{reason}; expected e.g. {DEFAULT_AMQP_URL}"),
        })
}

/// Reads `OKTA_DCR_ADMIN_ADDR`: set but empty turns the admin endpoint off, unset means the
/// default.
fn admin_addr(env: &Environment) -> Result<Option<SocketAddr>, SettingsError> {
    let value = match env.raw("OKTA_DCR_ADMIN_ADDR") {
        Some(value) => value.trim(),
        None => DEFAULT_ADMIN_ADDR,
    };
    if value.is_empty() {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|error| SettingsError::Invalid {
            variable: "OKTA_DCR_ADMIN_ADDR".to_owned(),
            value: value.to_owned(),
            reason: format!("{error}; expected an IP address and port such as {DEFAULT_ADMIN_ADDR}, or empty to turn the admin endpoint off"),
        })
}

fn parse_org_url(value: &str) -> Result<Url, SettingsError> {
    let invalid = |reason: String| SettingsError::Invalid {
        variable: "OKTA_ORG_URL".to_owned(),
        value: value.to_owned(),
        reason,
    };
    let url = Url::parse(value).map_err(|error| {
        invalid(format!(
            "{error}; expected an http(s) URL such as https://example.okta.com"
        ))
    })?;
    if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
        return Err(invalid(
            "expected an http(s) URL such as https://example.okta.com".into(),
        ));
    }
    Ok(url)
}

fn okta_credential(env: &Environment) -> Result<OktaCredential, SettingsError> {
    if let Some(token) = env.text("OKTA_API_TOKEN") {
        return Ok(OktaCredential::ApiToken(Secret::new(token)));
    }
    if let Some(path) = env.text("OKTA_API_TOKEN_FILE") {
        return read_token_file(path).map(OktaCredential::ApiToken);
    }
    match (env.text("OKTA_CLIENT_ID"), env.text("OKTA_PRIVATE_KEY")) {
        (Some(client_id), Some(private_key)) => Ok(OktaCredential::ServiceApp {
            client_id: client_id.to_owned(),
            private_key: Secret::new(private_key),
            key_id: env.text("OKTA_PRIVATE_KEY_ID").map(str::to_owned),
        }),
        (Some(_), None) => Err(SettingsError::Missing {
            variable: "OKTA_PRIVATE_KEY".to_owned(),
            hint: "OKTA_CLIENT_ID needs the service app's private key (PEM or a file path)",
        }),
        _ => Err(SettingsError::Missing {
            variable: "OKTA_API_TOKEN".to_owned(),
            hint: "set an Okta API token, or OKTA_CLIENT_ID and OKTA_PRIVATE_KEY",
        }),
    }
}

/// Reads an API token from a file (a Docker or Kubernetes secret, or okta-sim's
/// `--token-file`), without the trailing newline.
fn read_token_file(path: &str) -> Result<Secret, SettingsError> {
    let invalid = |reason: String| SettingsError::Invalid {
        variable: "OKTA_API_TOKEN_FILE".to_owned(),
        value: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|error| invalid(error.to_string()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(invalid("the file is empty".to_owned()));
    }
    Ok(Secret::new(token))
}

/// Replaces the password of a URL-like string with `***`, for error messages.
fn redact_url_password(value: &str) -> String {
    match Url::parse(value) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(_) => value.to_owned(),
        Err(_) => match value.rfind('@') {
            Some(at) => format!("***{}", &value[at..]),
            None => value.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn environment(pairs: &[(&str, &str)]) -> Environment {
        Environment(
            pairs
                .iter()
                .map(|(key, value)| (key.to_lowercase(), value.to_string()))
                .collect(),
        )
    }

    fn full(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let env = environment(pairs);
        Ok(Settings {
            broker: BrokerSettings::from_environment(&env)?,
            okta: OktaSettings::from_environment(&env)?,
            worker: WorkerSettings::from_environment(&env)?,
        })
    }

    const OKTA: [(&str, &str); 2] = [
        ("OKTA_ORG_URL", "https://example.okta.com"),
        ("OKTA_API_TOKEN", "00token-value"),
    ];

    #[test]
    fn defaults_apply() {
        let settings = full(&OKTA).unwrap();
        assert_eq!(settings.broker.amqp_url.expose(), DEFAULT_AMQP_URL);
        assert_eq!(settings.broker.topology.request_queue, "okta-dcr.requests");
        assert_eq!(
            settings.broker.topology.request_queue_type,
            QueueType::Quorum
        );
        assert_eq!(
            settings.broker.topology.result_queue.as_deref(),
            Some("okta-dcr.results")
        );
        assert_eq!(settings.broker.max_body_bytes, 1024 * 1024);
        assert_eq!(settings.worker.concurrency, 16);
        assert_eq!(settings.worker.retry_budget, Duration::from_secs(300));
        assert_eq!(settings.worker.in_process_retry, Duration::from_secs(30));
        assert_eq!(settings.broker.topology.delay_steps, vec![10, 30, 60, 120]);
        assert_eq!(
            settings.worker.admin_addr,
            Some(SocketAddr::from(([127, 0, 0, 1], 9090)))
        );
    }

    #[test]
    fn admin_addr_read() {
        let mut pairs = OKTA.to_vec();
        pairs.push(("OKTA_DCR_ADMIN_ADDR", "0.0.0.0:9464"));
        let settings = full(&pairs).unwrap();
        assert_eq!(
            settings.worker.admin_addr,
            Some(SocketAddr::from(([0, 0, 0, 0], 9464)))
        );
    }

    #[test]
    fn empty_admin_addr_disables_it() {
        let mut pairs = OKTA.to_vec();
        pairs.push(("OKTA_DCR_ADMIN_ADDR", ""));
        let settings = full(&pairs).unwrap();
        assert_eq!(settings.worker.admin_addr, None);
    }

    #[test]
    fn admin_addr_without_port_rejected() {
        let mut pairs = OKTA.to_vec();
        pairs.push(("OKTA_DCR_ADMIN_ADDR", "localhost"));
        let error = full(&pairs).unwrap_err().to_string();
        assert!(
            error.contains("OKTA_DCR_ADMIN_ADDR=\"localhost\""),
            "{error}"
        );
        assert!(error.contains("IP address and port"), "{error}");
    }

    #[test]
    fn missing_org_url_names_variable() {
        let error = full(&[("OKTA_API_TOKEN", "t")]).unwrap_err();
        assert!(error.to_string().contains("OKTA_ORG_URL"), "{error}");
    }

    #[test]
    fn unparsable_amqp_url_names_variable() {
        let mut pairs = OKTA.to_vec();
        pairs.push(("AMQP_URL", "amqp://guest:hunter2@[bad"));
        let error = full(&pairs).unwrap_err().to_string();
        assert!(error.contains("AMQP_URL"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn zero_concurrency_rejected() {
        let mut pairs = OKTA.to_vec();
        pairs.push(("OKTA_DCR_CONCURRENCY", "0"));
        let error = full(&pairs).unwrap_err().to_string();
        assert!(error.contains("OKTA_DCR_CONCURRENCY"), "{error}");
        assert!(error.contains("greater than zero"), "{error}");
    }

    #[test]
    fn okta_concurrency_defaults_to_8() {
        let settings = full(&OKTA).unwrap();
        assert_eq!(settings.okta.max_concurrent_calls, 8);
    }

    #[test]
    fn okta_concurrency_read() {
        let mut pairs = OKTA.to_vec();
        pairs.push(("OKTA_DCR_OKTA_CONCURRENCY", "3"));
        let settings = full(&pairs).unwrap();
        assert_eq!(settings.okta.max_concurrent_calls, 3);
    }

    #[test]
    fn zero_okta_concurrency_rejected() {
        let mut pairs = OKTA.to_vec();
        pairs.push(("OKTA_DCR_OKTA_CONCURRENCY", "0"));
        let error = full(&pairs).unwrap_err().to_string();
        assert!(error.contains("OKTA_DCR_OKTA_CONCURRENCY"), "{error}");
    }

    #[test]
    fn non_numeric_concurrency_rejected() {
        let mut pairs = OKTA.to_vec();
        pairs.push(("OKTA_DCR_CONCURRENCY", "many"));
        let error = full(&pairs).unwrap_err().to_string();
        assert!(error.contains("OKTA_DCR_CONCURRENCY=\"many\""), "{error}");
    }

    #[test]
    fn missing_credential_names_variable() {
        let error = full(&[("OKTA_ORG_URL", "https://example.okta.com")]).unwrap_err();
        assert!(error.to_string().contains("OKTA_API_TOKEN"), "{error}");
    }

    #[test]
    fn token_read_from_file() {
        let path = std::env::temp_dir().join(format!("okta-dcr-token-{}", std::process::id()));
        std::fs::write(&path, "file-token\n").unwrap();
        let settings = full(&[
            ("OKTA_ORG_URL", "https://example.okta.com"),
            ("OKTA_API_TOKEN_FILE", path.to_str().unwrap()),
        ])
        .unwrap();
        std::fs::remove_file(&path).unwrap();
        match settings.okta.credential {
            OktaCredential::ApiToken(token) => assert_eq!(token.expose(), "file-token"),
            other => panic!("unexpected credential {other:?}"),
        }
    }

    #[test]
    fn missing_token_file_names_variable() {
        let error = full(&[
            ("OKTA_ORG_URL", "https://example.okta.com"),
            ("OKTA_API_TOKEN_FILE", "/nonexistent/okta-token"),
        ])
        .unwrap_err();
        assert!(error.to_string().contains("OKTA_API_TOKEN_FILE"), "{error}");
    }

    #[test]
    fn client_id_without_key_names_key() {
        let error = full(&[
            ("OKTA_ORG_URL", "https://example.okta.com"),
            ("OKTA_CLIENT_ID", "0oa123"),
        ])
        .unwrap_err();
        assert!(error.to_string().contains("OKTA_PRIVATE_KEY"), "{error}");
    }

    #[test]
    fn token_redacted_in_debug() {
        let settings = full(&OKTA).unwrap();
        let debug = format!("{settings:?}");
        assert!(!debug.contains("00token-value"), "{debug}");
        assert!(!debug.contains("guest:guest"), "{debug}");
    }

    #[test]
    fn empty_result_queue_disables_it() {
        let mut pairs = OKTA.to_vec();
        pairs.push(("OKTA_DCR_RESULT_QUEUE", ""));
        let settings = full(&pairs).unwrap();
        assert_eq!(settings.broker.topology.result_queue, None);
    }

    #[test]
    fn invalid_template_names_variable() {
        let mut pairs = OKTA.to_vec();
        pairs.push(("OKTA_DCR_CLIENT_NAME_TEMPLATE", "{application} {nope}"));
        let error = full(&pairs).unwrap_err().to_string();
        assert!(error.contains("OKTA_DCR_CLIENT_NAME_TEMPLATE"), "{error}");
    }

    #[test]
    fn delay_steps_parsed_sorted() {
        let mut pairs = OKTA.to_vec();
        pairs.push(("OKTA_DCR_DELAY_STEPS_SECS", "60, 5,60"));
        let settings = full(&pairs).unwrap();
        assert_eq!(settings.broker.topology.delay_steps, vec![5, 60]);
    }

    #[test]
    fn negative_concurrency_names_expected_value() {
        let mut pairs = OKTA.to_vec();
        pairs.push(("OKTA_DCR_CONCURRENCY", "-3"));
        let error = full(&pairs).unwrap_err().to_string();
        assert!(error.contains("OKTA_DCR_CONCURRENCY"), "{error}");
        assert!(
            error.contains("expected a whole number greater than zero"),
            "{error}"
        );
    }

    #[test]
    fn relative_org_url_names_expected_form() {
        let mut pairs = OKTA.to_vec();
        pairs.retain(|(name, _)| *name != "OKTA_ORG_URL");
        pairs.push(("OKTA_ORG_URL", "not-a-url"));
        let error = full(&pairs).unwrap_err().to_string();
        assert!(error.contains("OKTA_ORG_URL"), "{error}");
        assert!(error.contains("https://example.okta.com"), "{error}");
    }

    #[test]
    fn zero_delay_step_rejected() {
        let mut pairs = OKTA.to_vec();
        pairs.push(("OKTA_DCR_DELAY_STEPS_SECS", "10,0"));
        let error = full(&pairs).unwrap_err().to_string();
        assert!(error.contains("OKTA_DCR_DELAY_STEPS_SECS"), "{error}");
    }

    #[test]
    fn classic_queue_type_accepted() {
        let mut pairs = OKTA.to_vec();
        pairs.push(("OKTA_DCR_REQUEST_QUEUE_TYPE", "classic"));
        let settings = full(&pairs).unwrap();
        assert_eq!(
            settings.broker.topology.request_queue_type,
            QueueType::Classic
        );
    }
}

//! End-state checks shared by the end-to-end tests: a result or a dead letter for every
//! request, one Okta client per provisioned credential, each credential's last result
//! carrying its current secret, and no secret or panic in the workers' output.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use okta_dcr_worker::contract::{CredentialAction, Job, Level, Operation, ResultMessage};
use okta_dcr_worker::sim::SimHandle;
use serde_json::Value;

use super::DeadLetter;

/// Results and dead letters read back from the broker, in arrival order.
#[derive(Default)]
pub struct Outcomes {
    pub results: Vec<ResultMessage>,
    pub dead_letters: Vec<DeadLetter>,
}

impl Outcomes {
    /// Returns the results of each request id, in arrival order.
    pub fn results_by_request(&self) -> HashMap<&str, Vec<&ResultMessage>> {
        let mut by_request: HashMap<&str, Vec<&ResultMessage>> = HashMap::new();
        for result in &self.results {
            by_request
                .entry(result.request_id.as_str())
                .or_default()
                .push(result);
        }
        by_request
    }

    /// Returns how many of `request_ids` have at least one result.
    pub fn answered<'a>(&self, request_ids: impl IntoIterator<Item = &'a String>) -> usize {
        let answered: BTreeSet<&str> = self.results.iter().map(|r| r.request_id.as_str()).collect();
        request_ids
            .into_iter()
            .filter(|id| answered.contains(id.as_str()))
            .count()
    }

    /// Returns the dead letters whose header `name` is `value`.
    pub fn dead_letters_with(&self, name: &str, value: &str) -> Vec<&DeadLetter> {
        self.dead_letters
            .iter()
            .filter(|dead_letter| dead_letter.text(name).as_deref() == Some(value))
            .collect()
    }
}

/// Asserts that each of `request_ids` has a result and that no other request has one. A
/// request may have more than one result only when `max_repeats` allows it (redeliveries
/// after a crash or a lost connection publish a result again).
/// Asserts the end state of a run that should lose nothing: every request answered with a
/// Success (at most `max_repeats` results more than once), no dead letter, one client per
/// credential whose last result carries its current secret, and no secret in `logs`.
pub fn assert_clean_end_state(
    simulator: &SimHandle,
    outcomes: &Outcomes,
    request_ids: &BTreeSet<String>,
    max_repeats: usize,
    logs: &str,
) {
    assert_every_request_answered(outcomes, request_ids, max_repeats);
    assert_all_success(outcomes);
    assert_no_dead_letters(outcomes);
    assert_one_client_per_credential(simulator, outcomes);
    assert_last_results_carry_current_secrets(simulator, outcomes);
    assert_logs_clean(simulator, logs);
}

pub fn assert_every_request_answered(
    outcomes: &Outcomes,
    request_ids: &BTreeSet<String>,
    max_repeats: usize,
) {
    let by_request = outcomes.results_by_request();
    let missing: Vec<&String> = request_ids
        .iter()
        .filter(|id| !by_request.contains_key(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} requests have no result, such as {:?}",
        missing.len(),
        request_ids.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
    let unknown: Vec<&&str> = by_request
        .keys()
        .filter(|id| !request_ids.contains(**id))
        .collect();
    assert!(
        unknown.is_empty(),
        "results for unknown requests {unknown:?}"
    );
    let repeats: usize = by_request.values().map(|results| results.len() - 1).sum();
    assert!(
        repeats <= max_repeats,
        "{repeats} repeated results for {} requests, at most {max_repeats} expected",
        request_ids.len()
    );
}

/// Asserts that every result is a Success.
pub fn assert_all_success(outcomes: &Outcomes) {
    for result in &outcomes.results {
        assert_eq!(
            result.status.level,
            Level::Success,
            "{}: {} ({})",
            result.request_id,
            result.status.reason,
            result.status.code
        );
    }
}

/// Asserts that nothing was dead-lettered.
pub fn assert_no_dead_letters(outcomes: &Outcomes) {
    let codes: Vec<Option<String>> = outcomes
        .dead_letters
        .iter()
        .map(|dead_letter| dead_letter.text("okta-dcr-error-code"))
        .collect();
    assert!(
        codes.is_empty(),
        "unexpected dead letters with codes {codes:?}"
    );
}

/// Asserts that okta-sim contains exactly one client for each credential that a Success provision
/// result names and no Success deprovision or expire removed, that every provision result of a
/// credential (redeliveries included) names that same client, and that no other client exists.
pub fn assert_one_client_per_credential(simulator: &SimHandle, outcomes: &Outcomes) {
    let mut provisioned: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut removed: BTreeSet<&str> = BTreeSet::new();
    for result in successes(outcomes) {
        let Some(credential) = result.id.as_deref() else {
            continue;
        };
        match job(result) {
            Some(Job::Provision) => {
                let data = result.data.as_ref();
                let client_id = data.map(|data| data.client_id.as_str());
                let client_id = client_id.unwrap_or_else(|| {
                    panic!("{}: Success provision without data", result.request_id)
                });
                provisioned.entry(credential).or_default().insert(client_id);
            }
            Some(Job::Deprovision | Job::Expire) => {
                removed.insert(credential);
            }
            _ => {}
        }
    }
    for (credential, client_ids) in &provisioned {
        assert_eq!(
            client_ids.len(),
            1,
            "credential {credential} was provisioned as several clients {client_ids:?}"
        );
    }
    let expected: BTreeSet<&str> = provisioned
        .iter()
        .filter(|(credential, _)| !removed.contains(*credential))
        .flat_map(|(_, client_ids)| client_ids.iter().copied())
        .collect();

    let clients = simulator.clients();
    let actual: BTreeSet<&str> = clients.iter().map(|c| c.client_id.as_str()).collect();
    assert_eq!(
        clients.len(),
        expected.len(),
        "okta-sim contains {} clients for {} live credentials",
        clients.len(),
        expected.len()
    );
    let unexpected: Vec<&&str> = actual.difference(&expected).take(5).collect();
    assert!(
        unexpected.is_empty(),
        "okta-sim contains clients that no result names, such as {unexpected:?}"
    );
    let absent: Vec<&&str> = expected.difference(&actual).take(5).collect();
    assert!(
        absent.is_empty(),
        "clients named in results are gone: {absent:?}"
    );
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for client in &clients {
        *by_name
            .entry(client.metadata.client_name.as_str())
            .or_default() += 1;
    }
    let duplicates: Vec<_> = by_name.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        duplicates.is_empty(),
        "duplicate client names {duplicates:?}"
    );
}

/// Asserts that, for each client in okta-sim, the last result (in arrival order) that carries
/// one of its secrets carries the current one, so that the credential the relay stores last
/// works.
pub fn assert_last_results_carry_current_secrets(simulator: &SimHandle, outcomes: &Outcomes) {
    let mut last_secret: HashMap<&str, (&str, &str)> = HashMap::new();
    for result in successes(outcomes) {
        let Some(data) = &result.data else {
            continue;
        };
        if let Some(secret) = &data.client_secret {
            last_secret.insert(
                data.client_id.as_str(),
                (result.request_id.as_str(), secret.expose()),
            );
        }
    }
    for client in simulator.clients() {
        let Some(current) = &client.client_secret else {
            continue;
        };
        let Some((request_id, delivered)) = last_secret.get(client.client_id.as_str()) else {
            panic!("no result carries a secret of client {}", client.client_id);
        };
        assert!(
            *delivered == current.expose(),
            "{request_id}: the last result for client {} carries a replaced secret",
            client.client_id
        );
    }
}

/// Asserts that the workers' output `logs` contains neither okta-sim's API token nor any
/// client secret okta-sim issued, and no panic.
pub fn assert_logs_clean(simulator: &SimHandle, logs: &str) {
    assert!(!logs.is_empty(), "no worker output was captured");
    assert!(
        !logs.contains(simulator.api_token().expose()),
        "the Okta API token is in the worker log"
    );
    let issued = simulator.issued_secrets();
    let leaked = issued
        .iter()
        .filter(|secret| logs.contains(secret.expose()))
        .count();
    assert_eq!(
        leaked,
        0,
        "{leaked} of {} client secrets are in the worker log",
        issued.len()
    );
    let panic = logs.lines().find(|line| line.contains("panicked"));
    assert!(panic.is_none(), "a worker panicked: {panic:?}");
}

fn successes(outcomes: &Outcomes) -> impl Iterator<Item = &ResultMessage> {
    outcomes
        .results
        .iter()
        .filter(|result| result.status.level == Level::Success)
}

/// Returns the job a result is about, resolved from its operation and credential action as
/// the worker resolves them.
fn job(result: &ResultMessage) -> Option<Job> {
    let operation = result.operation.as_ref().and_then(Value::as_str)?;
    let operation = Operation::parse(operation)?;
    let action =
        CredentialAction::from_value(result.credential_action.as_ref(), "credentialAction");
    Job::resolve(operation, action.ok().flatten())
}

//! In-memory state of the simulator: clients, scripted faults, the request record and rate-limit
//! counts, behind one mutex that is never held across an `.await`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::faults::FaultQueue;
use super::ids;
use super::rate_limit::RateLimiter;
use super::token::{ServiceAppVerifier, TokenStore};
use crate::contract::registration::ClientRegistration;
use crate::secret::Secret;

/// Maximum number of requests [`RequestLog`] keeps; older entries are dropped first, so a long
/// benchmark does not grow memory without bound.
pub(crate) const MAX_RECORDED_REQUESTS: usize = 100_000;

/// Lifecycle status of an app, as Okta reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AppStatus {
    /// The app can be used; new clients start here.
    Active,
    /// The app was deactivated.
    Inactive,
}

/// A client as the simulator stores it, including its current secret. Returned by
/// `SimHandle::clients` and `GET /sim/v1/clients` so tests can compare what the worker
/// delivered with what Okta stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimClient {
    /// Client id, also the app id in `/api/v1/apps/{appId}`.
    pub client_id: String,
    /// Current secret; `None` for `none` and `private_key_jwt` clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    /// Creation time, in seconds since the Unix epoch.
    pub client_id_issued_at: i64,
    /// Lifecycle status.
    pub status: AppStatus,
    /// Groups assigned with `PUT /api/v1/apps/{appId}/groups/{groupId}`, in assignment order.
    #[serde(default)]
    pub group_ids: Vec<String>,
    /// Registered metadata, with defaults applied.
    #[serde(flatten)]
    pub metadata: ClientRegistration,
}

/// One request received on an Okta route (control routes are not recorded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// HTTP method, such as `POST`.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Query string without the `?`, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Arrival time. JSON: RFC 3339 text.
    #[serde(with = "rfc3339")]
    pub received_at: SystemTime,
    /// Status code of the response sent.
    pub status: u16,
    /// Whether a scripted fault chose the response.
    pub faulted: bool,
}

/// Settings fixed at start.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) latency: Duration,
    pub(crate) delete_requires_inactive: bool,
}

/// State shared by all request handlers.
#[derive(Debug)]
pub(crate) struct SimState {
    pub(crate) settings: Settings,
    pub(crate) api_token: Secret,
    /// The service app the token endpoint accepts; `None` rejects every token request.
    pub(crate) service_app: Option<ServiceAppVerifier>,
    /// `http://host:port` of the listener, for `Link` headers, `_links` and the token audience.
    pub(crate) base_url: String,
    store: Mutex<Store>,
}

/// Everything that changes while the simulator runs.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) clients: Clients,
    pub(crate) faults: FaultQueue,
    pub(crate) requests: RequestLog,
    pub(crate) rate_limiter: RateLimiter,
    /// `false` makes every Okta route respond 401 whatever the token.
    pub(crate) token_accepted: bool,
    /// Access tokens issued by the token endpoint and the assertion ids it has seen.
    pub(crate) tokens: TokenStore,
}

impl SimState {
    pub(crate) fn new(
        settings: Settings,
        rate_limiter: RateLimiter,
        api_token: Secret,
        service_app: Option<ServiceAppVerifier>,
        base_url: String,
    ) -> Self {
        let store = Store {
            clients: Clients::default(),
            faults: FaultQueue::default(),
            requests: RequestLog::default(),
            rate_limiter,
            token_accepted: true,
            tokens: TokenStore::default(),
        };
        Self {
            settings,
            api_token,
            service_app,
            base_url,
            store: Mutex::new(store),
        }
    }

    /// Locks the store. A panic in another handler leaves the data usable, so a poisoned lock
    /// is taken over instead of failing every later request.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Clients in creation order.
#[derive(Debug, Default)]
pub(crate) struct Clients {
    by_sequence: BTreeMap<u64, SimClient>,
    /// Sequence number of every id ever issued, deleted ones included, so an `after` cursor
    /// still works when its client was deleted between two pages.
    sequence_by_id: HashMap<String, u64>,
    next_sequence: u64,
    /// Every secret handed out, in order, so that tests can look for any of them in logs.
    /// NOTE: grows by one entry per secret for the life of the simulator.
    issued_secrets: Vec<Secret>,
}

impl Clients {
    /// Stores a new active client with a fresh id and, for secret-based methods, a secret.
    pub(crate) fn insert(&mut self, metadata: ClientRegistration) -> SimClient {
        let client_id = ids::new_client_id();
        let client_secret = metadata.has_secret().then(ids::new_client_secret);
        self.issued_secrets.extend(client_secret.clone());
        let client = SimClient {
            client_id: client_id.clone(),
            client_secret,
            client_id_issued_at: i64::try_from(epoch_secs(SystemTime::now())).unwrap_or(i64::MAX),
            status: AppStatus::Active,
            group_ids: Vec::new(),
            metadata,
        };
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.sequence_by_id.insert(client_id, sequence);
        self.by_sequence.insert(sequence, client.clone());
        client
    }

    pub(crate) fn get(&self, client_id: &str) -> Option<&SimClient> {
        let sequence = self.sequence_by_id.get(client_id)?;
        self.by_sequence.get(sequence)
    }

    pub(crate) fn get_mut(&mut self, client_id: &str) -> Option<&mut SimClient> {
        let sequence = self.sequence_by_id.get(client_id)?;
        self.by_sequence.get_mut(sequence)
    }

    /// Replaces the secret of the client `client_id` with a new one and returns the client,
    /// or `None` when no such client exists.
    pub(crate) fn renew_secret(&mut self, client_id: &str) -> Option<&SimClient> {
        let sequence = *self.sequence_by_id.get(client_id)?;
        let client = self.by_sequence.get_mut(&sequence)?;
        let secret = ids::new_client_secret();
        self.issued_secrets.push(secret.clone());
        client.client_secret = Some(secret);
        Some(client)
    }

    pub(crate) fn issued_secrets(&self) -> &[Secret] {
        &self.issued_secrets
    }

    pub(crate) fn remove(&mut self, client_id: &str) -> Option<SimClient> {
        let sequence = self.sequence_by_id.get(client_id)?;
        self.by_sequence.remove(sequence)
    }

    /// Returns up to `limit` clients whose name starts with `name_prefix`, created after the
    /// client `after`, and whether more matching clients follow. An `after` id that was never
    /// issued gives an empty page.
    pub(crate) fn page(
        &self,
        name_prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<SimClient>, bool) {
        let first_sequence = match after {
            Some(id) => match self.sequence_by_id.get(id) {
                Some(sequence) => sequence + 1,
                None => return (Vec::new(), false),
            },
            None => 0,
        };
        let mut matching = self
            .by_sequence
            .range(first_sequence..)
            .map(|(_, client)| client)
            .filter(|client| {
                name_prefix.is_none_or(|prefix| client.metadata.client_name.starts_with(prefix))
            });
        let page: Vec<SimClient> = matching.by_ref().take(limit).cloned().collect();
        let has_more = matching.next().is_some();
        (page, has_more)
    }

    pub(crate) fn snapshot(&self) -> Vec<SimClient> {
        self.by_sequence.values().cloned().collect()
    }
}

/// Requests in arrival order. An entry is reserved when the request arrives and completed when
/// its response is sent, so concurrent requests keep their arrival order.
#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    entries: VecDeque<LogEntry>,
    /// Index of `entries[0]` among all requests ever recorded.
    first_index: usize,
}

#[derive(Debug)]
struct LogEntry {
    method: String,
    path: String,
    query: Option<String>,
    received_at: SystemTime,
    outcome: Option<(u16, bool)>,
}

impl RequestLog {
    /// Reserves an entry for an arriving request and returns its index for [`Self::complete`].
    pub(crate) fn begin(
        &mut self,
        method: String,
        path: String,
        query: Option<String>,
        received_at: SystemTime,
    ) -> usize {
        if self.entries.len() == MAX_RECORDED_REQUESTS {
            self.entries.pop_front();
            self.first_index += 1;
        }
        self.entries.push_back(LogEntry {
            method,
            path,
            query,
            received_at,
            outcome: None,
        });
        self.first_index + self.entries.len() - 1
    }

    /// Stores the status sent for the request at `index`; ignored if the entry was dropped.
    pub(crate) fn complete(&mut self, index: usize, status: u16, faulted: bool) {
        let Some(position) = index.checked_sub(self.first_index) else {
            return;
        };
        if let Some(entry) = self.entries.get_mut(position) {
            entry.outcome = Some((status, faulted));
        }
    }

    /// Returns the requests whose response was sent, in arrival order.
    pub(crate) fn completed(&self) -> Vec<RecordedRequest> {
        self.entries
            .iter()
            .filter_map(|entry| {
                let (status, faulted) = entry.outcome?;
                Some(RecordedRequest {
                    method: entry.method.clone(),
                    path: entry.path.clone(),
                    query: entry.query.clone(),
                    received_at: entry.received_at,
                    status,
                    faulted,
                })
            })
            .collect()
    }
}

/// Returns seconds since the Unix epoch; 0 for a time before it.
pub(crate) fn epoch_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// Serde for a `SystemTime` as RFC 3339 text.
mod rfc3339 {
    use std::time::SystemTime;

    use serde::{de::Error as _, ser::Error as _, Deserialize, Deserializer, Serializer};
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;

    pub(super) fn serialize<S: Serializer>(
        value: &SystemTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let text = OffsetDateTime::from(*value)
            .format(&Rfc3339)
            .map_err(S::Error::custom)?;
        serializer.serialize_str(&text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        let parsed = OffsetDateTime::parse(&text, &Rfc3339).map_err(D::Error::custom)?;
        Ok(SystemTime::from(parsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(name: &str) -> ClientRegistration {
        ClientRegistration {
            client_name: name.into(),
            application_type: "service".into(),
            grant_types: vec!["client_credentials".into()],
            response_types: vec!["token".into()],
            redirect_uris: Vec::new(),
            token_endpoint_auth_method: "client_secret_basic".into(),
            jwks: None,
            jwks_uri: None,
        }
    }

    #[test]
    fn page_after_deleted_cursor_continues() {
        let mut clients = Clients::default();
        let first = clients.insert(registration("a"));
        let second = clients.insert(registration("b"));
        clients.remove(&first.client_id);
        let (page, has_more) = clients.page(None, Some(&first.client_id), 10);
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].client_id, second.client_id);
        assert!(!has_more);
    }

    #[test]
    fn page_unknown_cursor_is_empty() {
        let mut clients = Clients::default();
        clients.insert(registration("a"));
        let (page, has_more) = clients.page(None, Some("0oaUnknown"), 10);
        assert!(page.is_empty());
        assert!(!has_more);
    }

    #[test]
    fn log_drops_oldest_past_capacity() {
        let mut log = RequestLog::default();
        let now = SystemTime::now();
        for i in 0..=MAX_RECORDED_REQUESTS {
            let index = log.begin("GET".into(), format!("/{i}"), None, now);
            log.complete(index, 200, false);
        }
        let completed = log.completed();
        assert_eq!(completed.len(), MAX_RECORDED_REQUESTS);
        assert_eq!(completed[0].path, "/1");
        log.complete(0, 500, true);
        assert_eq!(log.completed()[0].status, 200);
    }

    #[test]
    fn recorded_request_json_round_trip() {
        let request = RecordedRequest {
            method: "GET".into(),
            path: "/oauth2/v1/clients".into(),
            query: Some("q=a".into()),
            received_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            status: 200,
            faulted: false,
        };
        let json = serde_json::to_value(&request).expect("serializes");
        assert_eq!(json["received_at"], "2023-11-14T22:13:20.123Z");
        let back: RecordedRequest = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, request);
    }
}

//! The task store: Miroir's durable state (tasks, leases, mirrored CR state, TTL'd rows,
//! CDC cursors, missed write operations per node, the placement state) behind one trait,
//! with a SQLite backend (one pod) and a Redis backend (several pods). Switching backends
//! changes nothing a client or operator can observe; `tests/store_contract.rs` runs one
//! contract suite against both.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

pub mod sqlite;
pub mod redis;
mod codec;

/// Opens the configured backend (SQLite file or Redis), migrating/checking its schema.
pub async fn open(cfg: &crate::config::TaskStoreConfig) -> StoreResult<std::sync::Arc<dyn TaskStore>> {
    match cfg.backend {
        crate::config::StoreBackend::Sqlite => Ok(std::sync::Arc::new(sqlite::SqliteStore::open(&cfg.path).await?)),
        crate::config::StoreBackend::Redis => {
            let url = cfg
                .url
                .as_deref()
                .ok_or_else(|| StoreError::Other("`task_store.url` is required for the redis backend".into()))?;
            Ok(std::sync::Arc::new(redis::RedisStore::connect(url, &cfg.prefix).await?))
        }
    }
}

/// Meilisearch task statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TaskStatus {
    Enqueued,
    Processing,
    Succeeded,
    Failed,
    Canceled,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Enqueued => "enqueued",
            TaskStatus::Processing => "processing",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Canceled => "canceled",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "enqueued" => TaskStatus::Enqueued,
            "processing" => TaskStatus::Processing,
            "succeeded" => TaskStatus::Succeeded,
            "failed" => TaskStatus::Failed,
            "canceled" => TaskStatus::Canceled,
            _ => return None,
        })
    }
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Canceled)
    }
}

/// A node-side task that a Miroir task is made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeTask {
    pub node_id: String,
    pub task_uid: u64,
}

/// A Miroir task as stored. `uid` is Miroir's own monotonic integer, shared by all pods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub uid: u64,
    pub index_uid: Option<String>,
    /// Meilisearch task type, e.g. `documentAdditionOrUpdate`.
    pub kind: String,
    /// Last known aggregated status.
    pub status: TaskStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub enqueued_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// `details` as one Meilisearch would report them for the client's request.
    pub details: Value,
    /// Meilisearch error object when failed.
    pub error: Option<Value>,
    pub canceled_by: Option<u64>,
    /// The node tasks this task fans out to.
    pub node_tasks: Vec<NodeTask>,
    /// `customMetadata` the client attached to the write (Meilisearch 1.50), as given.
    #[serde(default)]
    pub custom_metadata: Option<String>,
    /// For a `taskCancelation`: the uids of the Miroir tasks it cancels (internal, never shown).
    #[serde(default)]
    pub targets: Vec<u64>,
}

/// A task to create; the store allocates `uid`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub index_uid: Option<String>,
    pub kind: String,
    pub status: TaskStatus,
    pub enqueued_at: OffsetDateTime,
    pub details: Value,
    pub error: Option<Value>,
    pub node_tasks: Vec<NodeTask>,
    /// `customMetadata` of the request, if any.
    pub custom_metadata: Option<String>,
    /// For a `taskCancelation`: the Miroir tasks it cancels.
    pub targets: Vec<u64>,
}

impl NewTask {
    /// The stored record of this task under `uid`, before anything ran.
    pub fn into_record(self, uid: u64) -> TaskRecord {
        TaskRecord {
            uid,
            index_uid: self.index_uid,
            kind: self.kind,
            status: self.status,
            enqueued_at: self.enqueued_at,
            started_at: None,
            finished_at: None,
            details: self.details,
            error: self.error,
            canceled_by: None,
            node_tasks: self.node_tasks,
            custom_metadata: self.custom_metadata,
            targets: self.targets,
        }
    }
}

/// Filters of `GET /tasks`, `DELETE /tasks`, `POST /tasks/cancel` (all conjunctive; empty
/// vectors mean "no filter on this field").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskFilter {
    pub uids: Vec<u64>,
    pub statuses: Vec<TaskStatus>,
    pub types: Vec<String>,
    pub index_uids: Vec<String>,
    pub before_enqueued_at: Option<OffsetDateTime>,
    pub after_enqueued_at: Option<OffsetDateTime>,
    /// Batches the task was processed in. A Miroir task is its own batch (uid = task uid) once
    /// it has started: `batchUids` matches started tasks whose uid is listed.
    pub batch_uids: Vec<u64>,
    /// `taskCancelation` uids: matches canceled tasks whose `canceled_by` is listed.
    pub canceled_by: Vec<u64>,
    /// Exclusive bounds on `startedAt` / `finishedAt`; a task without the date never matches.
    pub before_started_at: Option<OffsetDateTime>,
    pub after_started_at: Option<OffsetDateTime>,
    pub before_finished_at: Option<OffsetDateTime>,
    pub after_finished_at: Option<OffsetDateTime>,
}

impl TaskFilter {
    /// Whether the filter has conditions on fields the backends do not index (they live in the
    /// record's JSON): those are checked on the decoded records ([`TaskFilter::matches_unindexed`]).
    pub fn has_unindexed(&self) -> bool {
        !self.batch_uids.is_empty()
            || !self.canceled_by.is_empty()
            || self.before_started_at.is_some()
            || self.after_started_at.is_some()
            || self.before_finished_at.is_some()
            || self.after_finished_at.is_some()
    }

    /// The conditions the backends index (uids, statuses, types, index uids, enqueue dates).
    pub fn indexed_part(&self) -> TaskFilter {
        TaskFilter {
            uids: self.uids.clone(),
            statuses: self.statuses.clone(),
            types: self.types.clone(),
            index_uids: self.index_uids.clone(),
            before_enqueued_at: self.before_enqueued_at,
            after_enqueued_at: self.after_enqueued_at,
            ..Default::default()
        }
    }

    /// The unindexed conditions, on one record (the indexed ones are not checked here).
    pub fn matches_unindexed(&self, t: &TaskRecord) -> bool {
        fn within(v: Option<OffsetDateTime>, before: Option<OffsetDateTime>, after: Option<OffsetDateTime>) -> bool {
            if before.is_none() && after.is_none() {
                return true;
            }
            v.is_some_and(|v| before.is_none_or(|b| v < b) && after.is_none_or(|a| v > a))
        }
        (self.batch_uids.is_empty() || (t.status != TaskStatus::Enqueued && self.batch_uids.contains(&t.uid)))
            && (self.canceled_by.is_empty()
                || (t.status == TaskStatus::Canceled && t.canceled_by.is_some_and(|c| self.canceled_by.contains(&c))))
            && within(t.started_at, self.before_started_at, self.after_started_at)
            && within(t.finished_at, self.before_finished_at, self.after_finished_at)
    }
}

/// One page of `tasks` (every task matching a filter, newest first), as `list_tasks` pages.
pub(crate) fn page_of(mut tasks: Vec<TaskRecord>, paging: &TaskPaging) -> TaskPage {
    let total = tasks.len() as u64;
    if paging.reverse {
        tasks.reverse();
    }
    let mut results: Vec<TaskRecord> = tasks
        .into_iter()
        .filter(|t| paging.from.is_none_or(|f| if paging.reverse { t.uid >= f } else { t.uid <= f }))
        .take(paging.limit.saturating_add(1))
        .collect();
    let next = if results.len() > paging.limit { results.pop().map(|t| t.uid) } else { None };
    TaskPage { results, total, next }
}

/// Paging of `GET /tasks`: newest first unless `reverse`; `from` is the uid to start at.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskPaging {
    pub limit: usize,
    pub from: Option<u64>,
    pub reverse: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskPage {
    pub results: Vec<TaskRecord>,
    /// Number of tasks matching the filter (ignoring paging).
    pub total: u64,
    /// `from` of the next page, if any.
    pub next: Option<u64>,
}

/// An API key as stored (Meilisearch's key object without its value: the value is derived
/// from the master key and the uid, see [`crate::auth::derive_key`], and never stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyRecord {
    pub uid: uuid::Uuid,
    pub name: Option<String>,
    pub description: Option<String>,
    /// As given at creation (wildcards unexpanded, duplicates kept).
    pub actions: Vec<String>,
    /// Index uid patterns, as given.
    pub indexes: Vec<String>,
    /// With the offset the client gave.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A lease (leader election) as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    #[allow(dead_code)]
    pub expires_at: OffsetDateTime,
}

/// Tables holding the reconciled specs of the control plane's custom resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MirrorTable {
    Aliases,
    TenantMap,
    Canaries,
    RolloverPolicies,
}

impl MirrorTable {
    pub fn name(self) -> &'static str {
        match self {
            MirrorTable::Aliases => "aliases",
            MirrorTable::TenantMap => "tenant_map",
            MirrorTable::Canaries => "canaries",
            MirrorTable::RolloverPolicies => "rollover_policies",
        }
    }
    pub const ALL: [MirrorTable; 4] = [
        MirrorTable::Aliases,
        MirrorTable::TenantMap,
        MirrorTable::Canaries,
        MirrorTable::RolloverPolicies,
    ];
}

/// Kinds of rows that expire by themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TtlKind {
    Session,
    IdempotencyKey,
}

impl TtlKind {
    pub fn name(self) -> &'static str {
        match self {
            TtlKind::Session => "sessions",
            TtlKind::IdempotencyKey => "idempotency_keys",
        }
    }
}

/// A write operation a node missed (it was down or unreachable when Miroir sent it), to be
/// replayed to that node, in order, before the node answers reads again.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMissedOp {
    pub index_uid: Option<String>,
    /// The shards the operation touches; empty: the whole index (or everything).
    pub shards: Vec<u32>,
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// The node route as Miroir sends it, query string included
    /// (e.g. `/indexes/movies/documents?primaryKey=id`).
    pub path: String,
    pub content_type: Option<String>,
    /// The request body, byte for byte (stored as a BLOB / binary string, never re-encoded).
    pub body: Vec<u8>,
    /// The Miroir task the operation belongs to.
    pub task_uid: Option<u64>,
    pub created_at: OffsetDateTime,
}

impl NewMissedOp {
    /// The stored operation of `node_id` under `seq`.
    pub fn into_op(self, node_id: &str, seq: u64) -> MissedOp {
        MissedOp { node_id: node_id.to_string(), seq, op: self }
    }
}

/// A missed operation as stored: the operation plus its node and per-node sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct MissedOp {
    pub node_id: String,
    /// Per node: 1 for the first operation ever appended, then +1 without gaps; never reused,
    /// not even after [`TaskStore::ack_missed`] or [`TaskStore::drop_missed`].
    pub seq: u64,
    pub op: NewMissedOp,
}

/// What a node still has to replay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MissedSummary {
    /// Number of pending operations.
    pub pending: u64,
    /// Sum of their body lengths.
    pub bytes: u64,
    /// Sequence number of the oldest / newest pending operation (`None` when none is pending).
    pub oldest_seq: Option<u64>,
    pub newest_seq: Option<u64>,
}

/// One delivery of a webhook notification to enqueue: which webhook, and the request body.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWebhookDelivery {
    /// The webhook's uuid (hyphenated; the nil uuid is the one from Miroir's config).
    pub webhook: String,
    /// The request body before compression: NDJSON of the finished task objects.
    pub body: Vec<u8>,
}

/// A pending webhook delivery (the outbox row), sent until the receiver answers 2xx.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    /// Allocated by the store, increasing in enqueue order.
    pub id: u64,
    /// The Miroir task whose end it reports.
    pub task_uid: u64,
    pub webhook: String,
    pub body: Vec<u8>,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not to be sent before (millisecond precision).
    pub next_attempt_at: OffsetDateTime,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached (e.g. Redis down); clients get 503 and may retry.
    #[error("task store unavailable: {0}")]
    Unavailable(String),
    /// The database was written by a newer Miroir.
    #[error("task store schema version {found} is newer than this Miroir supports ({supported}); upgrade Miroir or point it at another database")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("task store error: {0}")]
    Other(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything Miroir keeps durably. All methods are safe to call concurrently from several
/// processes sharing one backend.
/// What [`TaskStore::watch_index_context`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextEvent {
    /// The context of this index (`None`: of every index) may have changed.
    Changed(Option<String>),
    /// The subscription is (again) up: bumps made before may have been missed.
    Connected,
    /// The subscription failed: bumps are missed until the next `Connected`.
    Disconnected,
}

#[async_trait]
pub trait TaskStore: Send + Sync + 'static {
    /// Backend name for logs and metrics: `sqlite` or `redis`.
    fn backend(&self) -> &'static str;
    /// Cheap liveness check.
    async fn ping(&self) -> StoreResult<()>;

    // ---- tasks
    /// Allocates the next uid (monotonic, never reused, shared by every process on the
    /// backend) and stores the task.
    async fn create_task(&self, task: NewTask) -> StoreResult<TaskRecord>;
    async fn get_task(&self, uid: u64) -> StoreResult<Option<TaskRecord>>;
    /// Replaces the stored record with the same uid (status, timestamps, details, error...).
    async fn update_task(&self, task: &TaskRecord) -> StoreResult<()>;
    async fn list_tasks(&self, filter: &TaskFilter, paging: &TaskPaging) -> StoreResult<TaskPage>;
    /// All tasks matching the filter, newest first (for cancel/delete).
    async fn find_tasks(&self, filter: &TaskFilter) -> StoreResult<Vec<TaskRecord>>;
    /// Deletes the given uids; returns how many existed.
    async fn delete_tasks(&self, uids: &[u64]) -> StoreResult<u64>;

    // ---- leases
    /// Takes the lease if it is free, expired, or already held by `holder` (then renews it).
    /// Returns whether `holder` holds the lease afterwards.
    async fn try_acquire_lease(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<bool>;
    /// Releases the lease if `holder` holds it.
    async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()>;
    async fn get_lease(&self, name: &str) -> StoreResult<Option<Lease>>;

    // ---- mirrored custom-resource state, keyed by (cluster, name)
    /// Inserts or replaces; idempotent.
    async fn upsert_mirror(&self, table: MirrorTable, cluster: &str, name: &str, spec: &Value) -> StoreResult<()>;
    async fn get_mirror(&self, table: MirrorTable, cluster: &str, name: &str) -> StoreResult<Option<Value>>;
    /// Rows of one cluster, ordered by name.
    async fn list_mirror(&self, table: MirrorTable, cluster: &str) -> StoreResult<Vec<(String, Value)>>;
    async fn delete_mirror(&self, table: MirrorTable, cluster: &str, name: &str) -> StoreResult<()>;
    /// Removes everything belonging to `cluster` (mirrored rows, leases `cluster/*`, CDC
    /// cursors of the cluster): the MiroirCluster finalizer.
    async fn delete_cluster_state(&self, cluster: &str) -> StoreResult<()>;

    // ---- rows that expire
    async fn put_ttl(&self, kind: TtlKind, key: &str, value: &Value, ttl: Duration) -> StoreResult<()>;
    async fn get_ttl(&self, kind: TtlKind, key: &str) -> StoreResult<Option<Value>>;

    // ---- client-visible index settings Miroir keeps different on the nodes
    /// Inserts or replaces the overlay of one index (a settings-shaped JSON object).
    async fn put_index_settings(&self, index_uid: &str, settings: &Value) -> StoreResult<()>;
    async fn get_index_settings(&self, index_uid: &str) -> StoreResult<Option<Value>>;
    async fn delete_index_settings(&self, index_uid: &str) -> StoreResult<()>;

    // ---- index context version (the read path's cache of primary keys and settings)
    /// Records that the context (primary key, client-visible settings) of `index_uid`
    /// (`None`: of every index) may have changed, and tells every Miroir process sharing this
    /// store ([`TaskStore::watch_index_context`]). Returns the new version (one counter for
    /// the whole backend, increasing).
    async fn bump_index_context(&self, index_uid: Option<&str>) -> StoreResult<u64>;
    /// The current index context version (0: never bumped).
    async fn index_context_version(&self) -> StoreResult<u64>;
    /// Bumps made by any process sharing this store, as they happen (the subscription is
    /// kept up in the background; it ends when the receiver is dropped). `None`: no other
    /// process shares this backend's state, local invalidation is enough (SQLite).
    fn watch_index_context(&self) -> Option<tokio::sync::mpsc::Receiver<ContextEvent>>;

    // ---- experimental features (one record for the whole backend)
    /// Stores the features object the client last set (replaces the previous one).
    async fn put_features(&self, features: &Value) -> StoreResult<()>;
    /// The stored features object (`None`: never set through Miroir), exactly as stored.
    async fn get_features(&self) -> StoreResult<Option<Value>>;

    // ---- API keys (shared by every Miroir on the backend; values are never stored)
    /// Stores a new key; `false` (and nothing written) when its uid is already taken.
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<bool>;
    async fn get_api_key(&self, uid: uuid::Uuid) -> StoreResult<Option<ApiKeyRecord>>;
    /// Every key, newest `createdAt` first (equal times: uid ascending).
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Replaces an existing key; `false` when there is none with that uid (it is not created).
    async fn update_api_key(&self, key: &ApiKeyRecord) -> StoreResult<bool>;
    /// `false` when there was no key with that uid.
    async fn delete_api_key(&self, uid: uuid::Uuid) -> StoreResult<bool>;
    /// Stores every key of `keys` if, and only if, the store holds no key at all; atomic, so
    /// of several Miroirs starting at once exactly one stores them. Returns whether it did.
    async fn insert_api_keys_if_empty(&self, keys: &[ApiKeyRecord]) -> StoreResult<bool>;

    // ---- CDC cursors, keyed by (cluster, name)
    /// Moves the cursor to `position` unless it is already further; returns the stored value.
    async fn advance_cdc_cursor(&self, cluster: &str, name: &str, position: u64) -> StoreResult<u64>;
    async fn get_cdc_cursor(&self, cluster: &str, name: &str) -> StoreResult<Option<u64>>;

    // ---- missed write operations per node (replica catch-up). A node's pending operations
    // always form one gap-free run of sequence numbers, oldest first: appends add at the end,
    // acks remove from the front.
    /// Durably appends one operation to `node_id`'s log and returns it with its sequence
    /// number: per node, strictly increasing and gap-free, even when several processes
    /// append at once (allocation and write are one atomic step).
    async fn append_missed(&self, node_id: &str, op: NewMissedOp) -> StoreResult<MissedOp>;
    /// Pending operations of the node with `seq > after_seq` (all when `None`), in sequence
    /// order, at most `limit`: page on with the last `seq` returned.
    async fn list_missed(&self, node_id: &str, after_seq: Option<u64>, limit: usize) -> StoreResult<Vec<MissedOp>>;
    /// Deletes the node's operations with `seq <= up_to_seq` (they were replayed); returns how
    /// many it deleted. Idempotent: acking again (or acking less) deletes nothing.
    async fn ack_missed(&self, node_id: &str, up_to_seq: u64) -> StoreResult<u64>;
    /// Counts of the node's pending operations, from counters the writes maintain (no scan).
    async fn missed_summary(&self, node_id: &str) -> StoreResult<MissedSummary>;
    /// Deletes every pending operation of the node (it is being rebuilt from a replica
    /// instead); returns how many. Sequence numbers still continue where they were.
    async fn drop_missed(&self, node_id: &str) -> StoreResult<u64>;
    /// Ids of the nodes with at least one pending operation, sorted (to resume replay at start-up).
    async fn nodes_with_missed(&self) -> StoreResult<Vec<String>>;

    // ---- placement state (topology + rebalance plan). One record for the whole backend (not
    // per cluster: `delete_cluster_state` leaves it alone), shared by every Miroir process and
    // changed only by compare-and-set on its version, so two processes never overwrite each
    // other: read, modify, `put_placement(read_version, ..)`, and on `None` read again.
    /// The stored placement state and its version (`None`: never stored). The value is opaque
    /// JSON owned by the rebalance module; it comes back exactly as stored (same keys in the
    /// same order, same numbers).
    async fn get_placement(&self) -> StoreResult<Option<(u64, Value)>>;
    /// Stores `state` as version `expected + 1` if, and only if, the stored version is
    /// `expected` (`0`: nothing stored yet), atomically (several processes may race). Returns
    /// the new version, or `None` when another process changed it first (nothing written).
    /// Versions start at 1 and grow by one per successful put; they are never reused.
    async fn put_placement(&self, expected: u64, state: &Value) -> StoreResult<Option<u64>>;

    // ---- webhooks (Meilisearch's `/webhooks`): the whole set is one JSON document, changed
    // only by compare-and-set on its version exactly as the placement state, so that limits
    // (at most 20 webhooks) hold when several processes change it at once.
    /// The stored webhooks document and its version (`None`: never stored).
    async fn get_webhooks(&self) -> StoreResult<Option<(u64, Value)>>;
    /// Stores `webhooks` as version `expected + 1` if the stored version is `expected`
    /// (`0`: nothing stored yet); `None` when another process changed it first.
    async fn put_webhooks(&self, expected: u64, webhooks: &Value) -> StoreResult<Option<u64>>;

    // ---- webhook delivery outbox. Every finished task is recorded once (its "event"); the
    // deliveries of an event are enqueued in the same atomic step, so a task's end is neither
    // lost nor enqueued twice, whichever process (or how many) observes it.
    /// If no event was recorded for `task_uid` yet: records it and enqueues `deliveries` (due
    /// now), atomically, and returns `true`. Otherwise writes nothing and returns `false`.
    async fn enqueue_webhook_event(&self, task_uid: u64, deliveries: &[NewWebhookDelivery]) -> StoreResult<bool>;
    /// Pending deliveries due at `now` (`next_attempt_at <= now`), earliest first, at most `limit`.
    async fn due_webhook_deliveries(&self, now: OffsetDateTime, limit: usize) -> StoreResult<Vec<WebhookDelivery>>;
    /// Records a failed attempt: the delivery is due again at `next_attempt_at`. `false` when
    /// the delivery no longer exists (nothing written).
    async fn retry_webhook_delivery(&self, id: u64, attempts: u32, next_attempt_at: OffsetDateTime) -> StoreResult<bool>;
    /// Removes a delivery (sent, or given up); `false` when it did not exist.
    async fn finish_webhook_delivery(&self, id: u64) -> StoreResult<bool>;
    /// Forgets the events of tasks with uid `< below` (they will never be observed again: the
    /// caller's scan starts at `below`); returns how many were forgotten.
    async fn prune_webhook_events(&self, below: u64) -> StoreResult<u64>;

    // ---- backup manifests (`POST /dumps`, `POST /snapshots`), keyed by the backup's uid
    /// Inserts or replaces.
    async fn put_backup(&self, uid: &str, manifest: &Value) -> StoreResult<()>;
    async fn get_backup(&self, uid: &str) -> StoreResult<Option<Value>>;
    /// Every manifest's uid, ascending.
    async fn list_backups(&self) -> StoreResult<Vec<String>>;
}

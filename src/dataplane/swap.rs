//! Index swaps and renames (`POST /swap-indexes`), atomic from the client's view.
//!
//! Every node swaps its own copy of the indexes when it processes its swap task, and nodes
//! process their queues at different moments: between the first and the last node, a search
//! scattered over the nodes would mix the two indexes. So Miroir holds the indexes involved
//! while the swap is applied (see `docs/compat/swap.md`):
//!
//! 1. **Gates.** Every request on `/indexes/{uid}/...` holds the gate of `uid` (one of
//!    [`GATES`], by hash) shared for its whole duration (reads and writes alike);
//!    `/multi-search`, `/stats` (which may read any index) and `POST /indexes` hold the global
//!    gate shared. A swap takes the global gate and the gate of every
//!    index involved exclusively (after the requests in flight end), so requests on those
//!    indexes wait — at most [`PATIENCE`], then `503 miroir_swap_in_progress` — and requests
//!    on other indexes go on.
//! 2. **Other Miroir processes** (Redis task store) learn of the swap through the lease
//!    [`SWAP_LEASE`], whose holder names the indexes: each process reads it at most every
//!    `rebalance.poll_interval_ms` and holds requests on those indexes while it is taken. The
//!    swapping process waits two poll intervals plus `rebalance.cutover_grace_ms` before the
//!    nodes get the swap, so requests the others started before they saw it have ended. The
//!    lease also makes swaps cluster-wide one at a time, and expires if the process dies.
//! 3. **Existence** is decided once, by Miroir, before any node is touched (Meilisearch's own
//!    checks and wording): a swap of a missing index fails as one Meilisearch's task fails.
//! 4. **Nodes.** The swap is sent to every node that takes writes; one that does not (down,
//!    catching up) or fails to take it, or whose swap task cannot be seen ending, gets a full
//!    rebuild from its up-to-date replicas queued instead (a swap replayed twice would swap
//!    back, a rebuild is idempotent), so it serves no read before it holds the swapped state.
//! 5. When every node that took it has processed it, Miroir's own state follows (task
//!    history, settings overlay), the Miroir task becomes terminal, and the gates open.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deserr::Deserr;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::{OwnedMutexGuard, OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use super::fanout::{evaluate_quorum, NodeCall};
use super::replica::RebuildScope;
use super::tasks::store_error;
use super::Proxy;
use crate::error::{ApiError, ApiResult, Code};
use crate::model::deserr::{ErrorCode, JsonError};
use crate::model::search::BodyIndexUid;
use crate::model::IndexUid;
use crate::node::NodePath;
use crate::store::{NewTask, NodeTask, TaskFilter, TaskRecord, TaskStatus};

/// The lease held while a swap runs (holder: `<process> <uid,uid,...>`).
pub const SWAP_LEASE: &str = "miroir/index-swap";
/// How long a request waits for a swap of its index (and a swap for the requests in flight).
pub const PATIENCE: Duration = Duration::from_secs(30);
/// Lifetime of the swap lease (renewed while the swap runs).
const LEASE_TTL: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------- request

/// Markers for the codes of the swap payload's fields.
pub mod codes {
    #[derive(Debug, Default)]
    pub struct InvalidSwapIndexes;
    #[derive(Debug, Default)]
    pub struct MissingSwapIndexes;
    #[derive(Debug, Default)]
    pub struct InvalidSwapRename;
}

impl ErrorCode for codes::InvalidSwapIndexes {
    fn code() -> Code {
        Code::InvalidSwapIndexes
    }
}
impl ErrorCode for codes::MissingSwapIndexes {
    fn code() -> Code {
        Code::MissingSwapIndexes
    }
}
impl ErrorCode for codes::InvalidSwapRename {
    fn code() -> Code {
        Code::InvalidSwapRename
    }
}

/// One element of the request body, as Meilisearch types it.
#[derive(Debug, Deserr)]
#[deserr(error = JsonError, rename_all = camelCase, deny_unknown_fields)]
struct SwapPayload {
    #[deserr(error = JsonError<codes::InvalidSwapIndexes>, missing_field_error = missing_swap_indexes)]
    indexes: Vec<BodyIndexUid>,
    #[deserr(default, error = JsonError<codes::InvalidSwapRename>)]
    rename: bool,
}

fn missing_swap_indexes(field: &str, location: deserr::ValuePointerRef) -> JsonError<codes::MissingSwapIndexes> {
    deserr::take_cf_content(<JsonError<codes::MissingSwapIndexes> as deserr::DeserializeError>::error::<std::convert::Infallible>(
        None,
        deserr::ErrorKind::MissingField { field },
        location,
    ))
}

/// One swap (or rename, `lhs` → `rhs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swap {
    pub lhs: IndexUid,
    pub rhs: IndexUid,
    pub rename: bool,
}

/// Parses the body of `POST /swap-indexes` as Meilisearch's route does: typed fields first,
/// then two indexes per swap. `authorized` is asked for both indexes of each swap in turn (a
/// `false` is Meilisearch's 403). Duplicates are checked after ([`check_duplicates`]).
pub fn parse_request(body: Value, authorized: impl Fn(&str) -> bool) -> ApiResult<Vec<Swap>> {
    let payload: Vec<SwapPayload> = crate::model::deserr::parse(body)?;
    let mut swaps = Vec::with_capacity(payload.len());
    for p in payload {
        let [lhs, rhs] = <[BodyIndexUid; 2]>::try_from(p.indexes).map_err(|all| {
            let list: Vec<String> = all.iter().map(|u| format!("\"{}\"", u.0)).collect();
            ApiError::new(
                Code::InvalidSwapIndexes,
                format!("Two indexes must be given for each swap. The list `[{}]` contains {} indexes.", list.join(", "), all.len()),
            )
        })?;
        if !authorized(&lhs.0) || !authorized(&rhs.0) {
            return Err(ApiError::new(Code::InvalidApiKey, crate::auth::INVALID_API_KEY));
        }
        swaps.push(Swap { lhs: lhs.0, rhs: rhs.0, rename: p.rename });
    }
    Ok(swaps)
}

/// Meilisearch's check when the task is registered: no index named twice.
pub fn check_duplicates(swaps: &[Swap]) -> ApiResult<()> {
    let mut seen = BTreeSet::new();
    let mut dup = BTreeSet::new();
    for s in swaps {
        for n in [s.lhs.as_str(), s.rhs.as_str()] {
            if !seen.insert(n) {
                dup.insert(n);
            }
        }
    }
    match dup.len() {
        0 => Ok(()),
        1 => Err(ApiError::new(
            Code::InvalidSwapDuplicateIndexFound,
            format!("Indexes must be declared only once during a swap. `{}` was specified several times.", dup.first().expect("one")),
        )),
        _ => Err(ApiError::new(
            Code::InvalidSwapDuplicateIndexFound,
            format!("Indexes must be declared only once during a swap. {} were specified several times.", quoted(dup.iter())),
        )),
    }
}

fn quoted<S: std::fmt::Display>(names: impl Iterator<Item = S>) -> String {
    names.map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// `details` of the task: `{"swaps": [{"indexes": [lhs, rhs], "rename": bool}, ...]}`.
pub fn details(swaps: &[Swap]) -> Value {
    json!({"swaps": swaps.iter().map(|s| json!({"indexes": [s.lhs.as_str(), s.rhs.as_str()], "rename": s.rename})).collect::<Vec<_>>()})
}

/// The body sent to the nodes (canonical: what Miroir validated, nothing else).
pub fn node_body(swaps: &[Swap]) -> Value {
    Value::Array(swaps.iter().map(|s| json!({"indexes": [s.lhs.as_str(), s.rhs.as_str()], "rename": s.rename})).collect())
}

/// Meilisearch's verdict when it processes the swap: every missing index (lhs always, rhs
/// unless renaming), then every rename onto an existing index. `None`: the swap can be applied.
pub fn existence_error(swaps: &[Swap], exists: impl Fn(&str) -> bool) -> Option<ApiError> {
    let mut not_found: BTreeSet<&str> = BTreeSet::new();
    let mut conflicts: BTreeSet<(&str, &str)> = BTreeSet::new();
    for s in swaps {
        if !exists(&s.lhs) {
            not_found.insert(&s.lhs);
        }
        match (exists(&s.rhs), s.rename) {
            (true, true) => {
                conflicts.insert((&s.lhs, &s.rhs));
            }
            (false, false) => {
                not_found.insert(&s.rhs);
            }
            _ => {}
        }
    }
    if not_found.len() == 1 {
        return Some(ApiError::new(Code::IndexNotFound, format!("Index `{}` not found.", not_found.first().expect("one"))));
    }
    if !not_found.is_empty() {
        return Some(ApiError::new(Code::IndexNotFound, format!("Indexes {} not found.", quoted(not_found.iter()))));
    }
    if conflicts.len() == 1 {
        let (l, r) = conflicts.first().expect("one");
        return Some(ApiError::new(
            Code::IndexAlreadyExists,
            format!("Cannot rename `{l}` to `{r}` as the index already exists. Hint: You can remove `{r}` first and then do your remove."),
        ));
    }
    if !conflicts.is_empty() {
        let names: Vec<&str> = conflicts.iter().map(|(_, r)| *r).collect();
        return Some(ApiError::new(
            Code::IndexAlreadyExists,
            format!(
                "The following indexes are being renamed but cannot because their new name conflicts with an already existing index: {}. Renaming doesn't overwrite the other index name.",
                quoted(names.iter())
            ),
        ));
    }
    None
}

/// Every index a swap names.
pub fn involved(swaps: &[Swap]) -> BTreeSet<String> {
    swaps.iter().flat_map(|s| [s.lhs.to_string(), s.rhs.to_string()]).collect()
}

/// The other name of `name` under one swap (`None`: not involved).
fn swapped<'a>(name: &str, s: &'a Swap) -> Option<&'a str> {
    if name == s.lhs.as_str() {
        Some(s.rhs.as_str())
    } else if name == s.rhs.as_str() {
        Some(s.lhs.as_str())
    } else {
        None
    }
}

/// A task of the history as Meilisearch rewrites it when it swaps: its index, and the names
/// inside the details of earlier swaps. Returns whether anything changed.
pub fn rewrite_task(task: &mut TaskRecord, swaps: &[Swap]) -> bool {
    let mut changed = false;
    for s in swaps {
        if let Some(other) = task.index_uid.as_deref().and_then(|i| swapped(i, s)) {
            task.index_uid = Some(other.to_string());
            changed = true;
        }
        if task.kind == "indexSwap" {
            for sw in task.details.get_mut("swaps").and_then(Value::as_array_mut).into_iter().flatten() {
                for name in sw.get_mut("indexes").and_then(Value::as_array_mut).into_iter().flatten() {
                    if let Some(other) = name.as_str().and_then(|n| swapped(n, s)) {
                        *name = Value::String(other.to_string());
                        changed = true;
                    }
                }
            }
        }
    }
    changed
}

// ---------------------------------------------------------------------------------- gates

/// What a request holds: the gate it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A request on one index.
    Index(String),
    /// A request that may read any index (`/multi-search`, `/stats`).
    All,
}

/// Which gate a request needs (`None`: it touches no index's data). An index creation names
/// its index in the body: it waits for any swap (a rename onto a name being created would
/// otherwise reach the nodes in different orders).
pub fn scope_of(method: &Method, path: &str) -> Option<Scope> {
    let mut parts = path.trim_start_matches('/').split('/');
    match (parts.next(), parts.next()) {
        (Some("indexes"), None | Some("")) if *method == Method::POST => Some(Scope::All),
        (Some("indexes"), Some(uid)) if !uid.is_empty() => {
            let uid = percent_encoding::percent_decode_str(uid).decode_utf8_lossy().into_owned();
            Some(Scope::Index(uid))
        }
        (Some("multi-search" | "stats"), None) => Some(Scope::All),
        _ => None,
    }
}

/// Gates per process: an index uses the gate its name hashes to (a fixed number, so that
/// requests naming any number of indexes cost no memory; a swap also holds the few other
/// indexes sharing its gates, for as long as it runs).
const GATES: usize = 64;

/// Per-process swap state.
pub struct SwapState {
    gates: Vec<Arc<RwLock<()>>>,
    all: Arc<RwLock<()>>,
    /// One swap at a time in this process.
    serial: Arc<tokio::sync::Mutex<()>>,
    /// This process, in the lease holder.
    process: String,
    /// The swap another process runs, as last read from the store (with when).
    remote: Mutex<Option<(Instant, Option<BTreeSet<String>>)>>,
}

impl Default for SwapState {
    fn default() -> Self {
        SwapState {
            gates: (0..GATES).map(|_| Arc::default()).collect(),
            all: Default::default(),
            serial: Default::default(),
            process: uuid::Uuid::new_v4().to_string(),
            remote: Default::default(),
        }
    }
}

/// The gate a request holds until it ends.
pub struct Pass {
    _guard: Option<OwnedRwLockReadGuard<()>>,
}

/// Everything a running swap holds; released when dropped.
struct Held {
    _serial: OwnedMutexGuard<()>,
    _all: OwnedRwLockWriteGuard<()>,
    _indexes: Vec<OwnedRwLockWriteGuard<()>>,
}

fn in_progress() -> ApiError {
    ApiError::new(
        Code::MiroirSwapInProgress,
        "An index swap involving this index is being applied on the Meilisearch nodes and is taking too long; nothing was done. Retry the request.",
    )
}

impl SwapState {
    fn slot(index: &str) -> usize {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        index.hash(&mut h);
        (h.finish() % GATES as u64) as usize
    }

    fn gate(&self, index: &str) -> Arc<RwLock<()>> {
        self.gates[Self::slot(index)].clone()
    }
}

impl Proxy {
    fn swap_state(&self) -> &SwapState {
        &self.inner.swap
    }

    /// Waits until no swap holds `scope` (here or in another process), and holds it shared.
    pub async fn enter_gate(&self, scope: &Scope) -> ApiResult<Pass> {
        let started = Instant::now();
        if self.store().backend() != "sqlite" {
            loop {
                let busy = match self.remote_swap().await {
                    Some(indexes) => match scope {
                        Scope::All => true,
                        Scope::Index(i) => indexes.contains(i),
                    },
                    None => false,
                };
                if !busy {
                    break;
                }
                if started.elapsed() > PATIENCE {
                    return Err(in_progress());
                }
                tokio::time::sleep(self.poll_interval()).await;
            }
        }
        let gate = match scope {
            Scope::All => self.swap_state().all.clone(),
            Scope::Index(i) => self.swap_state().gate(i),
        };
        let left = PATIENCE.saturating_sub(started.elapsed());
        let guard = tokio::time::timeout(left, gate.read_owned()).await.map_err(|_| in_progress())?;
        Ok(Pass { _guard: Some(guard) })
    }

    /// Held by background work that reads or copies every index (rebuilds): no swap runs
    /// meanwhile, and it does not start during a swap.
    pub async fn hold_swaps(&self) -> Pass {
        Pass { _guard: Some(self.swap_state().all.clone().read_owned().await) }
    }

    /// Held by background work on one index (anti-entropy).
    pub async fn hold_index_swaps(&self, index: &str) -> Pass {
        Pass { _guard: Some(self.swap_state().gate(index).read_owned().await) }
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.options().rebalance.poll_interval_ms.max(10))
    }

    /// The indexes of a swap another process runs (`None`: none), read from the store at
    /// most once per poll interval. A store that cannot be read holds nothing back.
    async fn remote_swap(&self) -> Option<BTreeSet<String>> {
        let poll = self.poll_interval();
        if let Some((at, v)) = self.swap_state().remote.lock().expect("swap remote").clone() {
            if at.elapsed() < poll {
                return v;
            }
        }
        let v = match self.store().get_lease(SWAP_LEASE).await {
            Ok(Some(lease)) if lease.expires_at > time::OffsetDateTime::now_utc() => {
                let (process, list) = lease.holder.split_once(' ').unwrap_or((lease.holder.as_str(), ""));
                (process != self.swap_state().process).then(|| list.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the index swap lease");
                None
            }
        };
        *self.swap_state().remote.lock().expect("swap remote") = Some((Instant::now(), v.clone()));
        v
    }

    /// Takes everything a swap of `indexes` needs: this process's swap turn, the cluster-wide
    /// lease (Redis), then the gates. Returns the held state and the lease holder (if any).
    async fn hold_for_swap(&self, indexes: &BTreeSet<String>) -> ApiResult<(Held, Option<String>)> {
        let started = Instant::now();
        let serial = tokio::time::timeout(PATIENCE, self.swap_state().serial.clone().lock_owned()).await.map_err(|_| in_progress())?;
        let mut holder = None;
        if self.store().backend() != "sqlite" {
            let h = format!("{} {}", self.swap_state().process, indexes.iter().cloned().collect::<Vec<_>>().join(","));
            loop {
                if self.store().try_acquire_lease(SWAP_LEASE, &h, LEASE_TTL).await.map_err(store_error)? {
                    break;
                }
                if started.elapsed() > PATIENCE {
                    return Err(in_progress());
                }
                tokio::time::sleep(self.poll_interval()).await;
            }
            holder = Some(h);
            // Every other process reads the lease within a poll interval; requests they began
            // before end within the grace.
            let o = self.options().rebalance;
            tokio::time::sleep(Duration::from_millis(2 * o.poll_interval_ms + o.cutover_grace_ms)).await;
        }
        let result = async {
            let left = PATIENCE.saturating_sub(started.elapsed());
            let all = tokio::time::timeout(left, self.swap_state().all.clone().write_owned()).await.map_err(|_| in_progress())?;
            let mut guards = Vec::new();
            // Each gate once, in a fixed order.
            let slots: BTreeSet<usize> = indexes.iter().map(|i| SwapState::slot(i)).collect();
            for slot in slots {
                let left = PATIENCE.saturating_sub(started.elapsed());
                guards.push(tokio::time::timeout(left, self.swap_state().gates[slot].clone().write_owned()).await.map_err(|_| in_progress())?);
            }
            Ok::<_, ApiError>(Held { _serial: serial, _all: all, _indexes: guards })
        }
        .await;
        match result {
            Ok(held) => Ok((held, holder)),
            Err(e) => {
                if let Some(h) = &holder {
                    let _ = self.store().release_lease(SWAP_LEASE, h).await;
                }
                Err(e)
            }
        }
    }

    /// `POST /swap-indexes` after validation: answers the task (enqueued); the swap is
    /// applied on the nodes in the background, the indexes held until it is everywhere.
    pub async fn swap_indexes(&self, swaps: Vec<Swap>) -> ApiResult<TaskRecord> {
        let enqueued_at = time::OffsetDateTime::now_utc();
        let details = details(&swaps);
        let routing = self.routing_or_error()?;
        if let Some(m) = &routing.migration {
            return Err(ApiError::new(
                Code::MiroirRebalanceInProgress,
                format!("Indexes cannot be swapped while a migration moves shards between nodes ({}); retry when it ends.", m.id),
            ));
        }
        let indexes = involved(&swaps);
        let (held, holder) = self.hold_for_swap(&indexes).await?;
        let release = |holder: Option<String>| async move {
            if let Some(h) = holder {
                let _ = self.store().release_lease(SWAP_LEASE, &h).await;
            }
        };
        // Decided once, for the whole cluster, before any node is touched.
        let mut exists: BTreeMap<String, bool> = BTreeMap::new();
        for i in &indexes {
            // Parsed from the request already.
            let Ok(uid) = IndexUid::parse(i) else { continue };
            match self.index_meta(&routing, &uid).await {
                Ok(meta) => {
                    exists.insert(i.clone(), meta.is_some());
                }
                Err(e) => {
                    release(holder).await;
                    return Err(e);
                }
            }
        }
        if let Some(e) = existence_error(&swaps, |i| exists.get(i).copied().unwrap_or(false)) {
            let task = self.create_failed_task("indexSwap", None, details, &e).await;
            drop(held);
            release(holder).await;
            return task;
        }
        let sent = self.send_swap(&routing, &swaps).await;
        let accepted = match sent {
            Ok(a) => a,
            Err(e) => {
                drop(held);
                release(holder).await;
                return Err(e);
            }
        };
        let task = self
            .store()
            .create_task(NewTask {
                index_uid: None,
                kind: "indexSwap".into(),
                status: TaskStatus::Enqueued,
                enqueued_at,
                details,
                error: None,
                // Filled in when the swap has ended everywhere: until then the task stays
                // enqueued, so a client that waits for it sees the swapped state.
                node_tasks: Vec::new(),
                custom_metadata: None,
                targets: Vec::new(),
            })
            .await
            .map_err(store_error);
        self.index_context_changed(None).await;
        let task = match task {
            Ok(t) => t,
            Err(e) => {
                // The nodes swap anyway: finish it (history, gates), answer the store error.
                tracing::error!(error = ?e, "an index swap was sent to the nodes but its task could not be stored");
                let proxy = self.clone();
                tokio::spawn(async move { proxy.finish_swap(None, swaps, accepted, held, holder).await });
                return Err(e);
            }
        };
        let proxy = self.clone();
        let t = task.clone();
        tokio::spawn(async move { proxy.finish_swap(Some(t), swaps, accepted, held, holder).await });
        Ok(task)
    }

    /// Sends the swap to every node taking writes (one first: its 4xx is the client's
    /// error); nodes that do not take it get a rebuild queued. Returns the node tasks.
    async fn send_swap(&self, routing: &super::RoutingTable, swaps: &[Swap]) -> ApiResult<Vec<NodeTask>> {
        let body = serde_json::to_vec(&node_body(swaps)).expect("json");
        let call = |node: &str| NodeCall {
            node_id: node.to_string(),
            method: Method::POST,
            path: NodePath::route("/swap-indexes"),
            content_type: Some("application/json"),
            body: Some(body.clone()),
        };
        let takes = |id: &str| self.inner.health.get(id).state == super::health::NodeState::Healthy && self.inner.sync.takes_writes(id);
        let (now, later): (Vec<&str>, Vec<&str>) = routing.topology.nodes.iter().map(|n| n.id.as_str()).partition(|id| takes(id));
        let mut missed: Vec<String> = later.iter().map(|s| s.to_string()).collect();
        let mut outcomes = Vec::new();
        let mut rest = now.into_iter();
        for id in rest.by_ref() {
            let out = self.call_nodes(routing, vec![call(id)]).await.pop().expect("one outcome");
            if let Some(e) = out.client_error() {
                return Err(e);
            }
            let ok = out.accepted();
            outcomes.push(out);
            if ok {
                break;
            }
        }
        let calls: Vec<NodeCall> = rest.map(call).collect();
        outcomes.extend(self.call_nodes(routing, calls).await);
        let accepted = super::write::node_tasks(&outcomes);
        if accepted.is_empty() {
            return Err(super::fanout::auth_refusals(&outcomes)
                .unwrap_or_else(|| ApiError::new(Code::MiroirNodeUnavailable, "No Meilisearch node could take the index swap; nothing was changed.")));
        }
        missed.extend(outcomes.iter().filter(|o| !o.accepted()).map(|o| o.node_id.clone()));
        for node in &missed {
            self.rebuild_after_swap(node).await?;
        }
        let ids: std::collections::HashSet<String> = accepted.iter().map(|t| t.node_id.clone()).collect();
        let all: BTreeSet<u32> = (0..routing.topology.shards).collect();
        let report = evaluate_quorum(&routing.assignment, routing.topology.replication_factor, &all, &ids);
        if !report.missed.is_empty() {
            tracing::warn!(missed = ?report.missed, "an index swap missed quorum in some replica groups; their nodes are rebuilt");
        }
        Ok(accepted)
    }

    /// A node that did not apply a swap with the others is rebuilt from its up-to-date
    /// replicas (a swap is not idempotent: replaying it after a crash could swap back).
    async fn rebuild_after_swap(&self, node: &str) -> ApiResult<()> {
        tracing::warn!(node = %node, "node did not take an index swap; it is rebuilt from its replicas before it serves reads again");
        let scope = RebuildScope { reason: "the node missed an index swap".into(), ..Default::default() };
        self.queue_rebuild(node, &scope).await.map_err(store_error)
    }

    /// Waits for every node task, makes Miroir's state follow, completes the task, and
    /// releases the gates.
    async fn finish_swap(&self, task: Option<TaskRecord>, swaps: Vec<Swap>, accepted: Vec<NodeTask>, held: Held, holder: Option<String>) {
        let renew = holder.clone().map(|h| {
            let store = self.store();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LEASE_TTL / 3).await;
                    if !matches!(store.try_acquire_lease(SWAP_LEASE, &h, LEASE_TTL).await, Ok(true)) {
                        tracing::warn!("the index swap lease could not be renewed");
                    }
                }
            })
        });
        let routing = self.routing();
        let waits = accepted.iter().map(|nt| {
            let addr = routing.as_ref().and_then(|r| r.topology.node(&nt.node_id)).map(|n| n.address.clone());
            async move {
                let addr = addr?;
                match self.wait_task_body(&addr, nt.task_uid).await {
                    Ok(v) => Some((nt.node_id.clone(), v)),
                    Err(e) => {
                        tracing::warn!(node = %nt.node_id, error = %e, "cannot see the node's index swap task end");
                        None
                    }
                }
            }
        });
        let views: Vec<(String, Value)> = futures::future::join_all(waits).await.into_iter().flatten().collect();
        let succeeded: Vec<(String, Value)> = views.iter().filter(|(_, v)| v["status"] == "succeeded").cloned().collect();
        // Nodes that did not end with the others' result are rebuilt from them.
        let judged: Vec<(String, Value)> = if succeeded.is_empty() { views.clone() } else { succeeded.clone() };
        for nt in &accepted {
            if !judged.iter().any(|(n, _)| n == &nt.node_id) {
                if let Err(e) = self.rebuild_after_swap(&nt.node_id).await {
                    tracing::error!(node = %nt.node_id, error = ?e, "cannot queue the rebuild of a node that missed an index swap");
                }
            }
        }
        if !succeeded.is_empty() {
            if let Err(e) = self.follow_swap(task.as_ref().map(|t| t.uid), &swaps).await {
                tracing::error!(error = ?e, "Miroir's state could not follow an index swap");
            }
        }
        if let (Some(task), Some(routing)) = (task, routing) {
            let node_tasks: Vec<NodeTask> = accepted.iter().filter(|nt| judged.iter().any(|(n, _)| n == &nt.node_id)).cloned().collect();
            let mut with = task.clone();
            with.node_tasks = node_tasks.clone();
            let group_of: HashMap<String, u32> = routing.topology.nodes.iter().map(|n| (n.id.clone(), n.replica_group)).collect();
            let mut done = super::tasks::aggregate(&with, &judged, &group_of, routing.topology.replication_factor);
            if !done.status.is_terminal() {
                // No node could be asked: the swap is on its way to every node (rebuilds).
                done.status = TaskStatus::Succeeded;
                done.started_at = Some(task.enqueued_at);
                done.finished_at = Some(time::OffsetDateTime::now_utc());
            }
            done.node_tasks = node_tasks;
            if let Err(e) = self.store().update_task(&done).await {
                tracing::error!(error = %e, "cannot store the end of an index swap task");
            }
        }
        // The indexes' contexts were swapped (overlays too): see `context_cache`.
        self.index_context_changed(None).await;
        drop(held);
        if let Some(r) = renew {
            r.abort();
        }
        if let Some(h) = holder {
            let _ = self.store().release_lease(SWAP_LEASE, &h).await;
        }
    }

    /// Miroir's per-index state follows a swap: the task history (as Meilisearch rewrites
    /// its own: tasks before the swap now name the other index) and the settings overlay.
    async fn follow_swap(&self, swap_uid: Option<u64>, swaps: &[Swap]) -> ApiResult<()> {
        let store = self.store();
        let names: Vec<String> = involved(swaps).into_iter().collect();
        let mut tasks = store.find_tasks(&TaskFilter { index_uids: names, ..Default::default() }).await.map_err(store_error)?;
        tasks.extend(
            store.find_tasks(&TaskFilter { types: vec!["indexSwap".into()], ..Default::default() }).await.map_err(store_error)?,
        );
        let mut done = BTreeSet::new();
        for t in tasks {
            if swap_uid.is_some_and(|u| t.uid >= u) || !done.insert(t.uid) {
                continue;
            }
            // Brought up to date first, so a concurrent refresh has nothing left to write.
            let mut t = self.refreshed_task(t).await?;
            if rewrite_task(&mut t, swaps) {
                store.update_task(&t).await.map_err(store_error)?;
            }
        }
        for s in swaps {
            let l = store.get_index_settings(&s.lhs).await.map_err(store_error)?;
            let r = store.get_index_settings(&s.rhs).await.map_err(store_error)?;
            for (name, value) in [(&s.lhs, r), (&s.rhs, l)] {
                match value {
                    Some(v) => store.put_index_settings(name, &v).await.map_err(store_error)?,
                    None => store.delete_index_settings(name).await.map_err(store_error)?,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> ApiResult<Vec<Swap>> {
        parse_request(v, |_| true)
    }

    fn msg(e: ApiError) -> (String, String) {
        (e.code_name(), e.body()["message"].as_str().unwrap().to_string())
    }

    #[test]
    fn meilisearch_validation_wording() {
        assert_eq!(
            msg(parse(json!("doggo")).unwrap_err()),
            ("bad_request".into(), "Invalid value type: expected an array, but found a string: `\"doggo\"`".into())
        );
        assert_eq!(
            msg(parse(json!(["doggo"])).unwrap_err()),
            ("bad_request".into(), "Invalid value type at `[0]`: expected an object, but found a string: `\"doggo\"`".into())
        );
        assert_eq!(
            msg(parse(json!([{"indexes": "doggo"}])).unwrap_err()),
            ("invalid_swap_indexes".into(), "Invalid value type at `[0].indexes`: expected an array, but found a string: `\"doggo\"`".into())
        );
        assert_eq!(
            msg(parse(json!([{"indexes": ["doggo"]}])).unwrap_err()),
            ("invalid_swap_indexes".into(), "Two indexes must be given for each swap. The list `[\"doggo\"]` contains 1 indexes.".into())
        );
        assert_eq!(
            msg(parse(json!([{"indexes": ["a", "b"], "rename": "hello"}])).unwrap_err()),
            ("invalid_swap_rename".into(), "Invalid value type at `[0].rename`: expected a boolean, but found a string: `\"hello\"`".into())
        );
        assert_eq!(msg(parse(json!([{}])).unwrap_err()).0, "missing_swap_indexes");
        let s = parse(json!([{"indexes": ["doggo", "catto"]}, {"indexes": ["girafo", "doggo"]}])).unwrap();
        assert_eq!(
            msg(check_duplicates(&s).unwrap_err()),
            ("invalid_swap_duplicate_index_found".into(), "Indexes must be declared only once during a swap. `doggo` was specified several times.".into())
        );
        let s = parse(json!([{"indexes": ["a", "b"]}, {"indexes": ["b", "a"]}])).unwrap();
        assert_eq!(
            msg(check_duplicates(&s).unwrap_err()).1,
            "Indexes must be declared only once during a swap. `a`, `b` were specified several times."
        );
        assert!(parse(json!([])).unwrap().is_empty());
    }

    #[test]
    fn existence_as_meilisearch_judges_it() {
        let s = parse(json!([{"indexes": ["a", "b"]}, {"indexes": ["c", "d"], "rename": true}])).unwrap();
        let e = existence_error(&s, |i| i == "a").unwrap();
        assert_eq!(msg(e), ("index_not_found".into(), "Indexes `b`, `c` not found.".into()));
        assert!(existence_error(&s, |i| ["a", "b", "c"].contains(&i)).is_none());
        let e = existence_error(&s, |_| true).unwrap();
        assert_eq!(e.code_name(), "index_already_exists");
        assert_eq!(e.body()["message"], "Cannot rename `c` to `d` as the index already exists. Hint: You can remove `d` first and then do your remove.");
    }

    #[test]
    fn history_is_rewritten_like_meilisearchs() {
        let s = parse(json!([{"indexes": ["a", "b"]}])).unwrap();
        let mut t = NewTask {
            index_uid: Some("a".into()),
            kind: "documentAdditionOrUpdate".into(),
            status: TaskStatus::Succeeded,
            enqueued_at: time::OffsetDateTime::now_utc(),
            details: json!({}),
            error: None,
            node_tasks: vec![],
            custom_metadata: None,
            targets: vec![],
        }
        .into_record(1);
        assert!(rewrite_task(&mut t, &s));
        assert_eq!(t.index_uid.as_deref(), Some("b"));
        let mut sw = t.clone();
        sw.kind = "indexSwap".into();
        sw.index_uid = None;
        sw.details = json!({"swaps": [{"indexes": ["b", "x"], "rename": false}]});
        assert!(rewrite_task(&mut sw, &s));
        assert_eq!(sw.details, json!({"swaps": [{"indexes": ["a", "x"], "rename": false}]}));
        let get = Method::GET;
        assert_eq!(scope_of(&Method::POST, "/indexes/a/search"), Some(Scope::Index("a".into())));
        assert_eq!(scope_of(&get, "/indexes/a"), Some(Scope::Index("a".into())));
        assert_eq!(scope_of(&get, "/indexes"), None);
        assert_eq!(scope_of(&Method::POST, "/indexes"), Some(Scope::All));
        assert_eq!(scope_of(&Method::POST, "/multi-search"), Some(Scope::All));
        assert_eq!(scope_of(&get, "/stats"), Some(Scope::All));
        assert_eq!(scope_of(&get, "/tasks"), None);
    }
}

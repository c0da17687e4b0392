//! Rebalancing: nodes added, drained and removed while reads and writes go on.
//!
//! A topology change becomes a durable, versioned migration plan in the task store (one
//! record changed by compare-and-set, see [`plan::PlacementState`]); one process, the holder
//! of the [`REBALANCE_LEASE`], executes it ([`executor`]); every process reads the stored
//! record every `rebalance.poll_interval_ms` and routes by it ([`plan::routing_for`]):
//!
//! 1. `copying` — reads and quorum use the old holders; every write still goes to them and is
//!    also queued (durably, before the 202) for the nodes receiving its shards. The new
//!    holders get every index and its settings, then each moving shard's documents (paged from
//!    an up-to-date old holder with a `_miroir_shard` filter, by the same shard copy that
//!    rebuilds a replica), then the queue, in order.
//! 2. `fencing` — writes wait in every process while the queue is drained to its end.
//! 3. `cut-over` — reads and writes use the new placement (every process switches on the same
//!    stored version); the old holders still get the writes of the shards they gave up, so a
//!    process that has not seen the switch yet reads nothing stale.
//! 4. `cleaning` — the moved shards are deleted from the nodes that gave them up; the
//!    migration ends and the target becomes the topology.
//!
//! A restart or a lease change resumes from the stored phase: a shard copy starts by deleting
//! what the destination holds of the shard, so copying it again never leaves a state that
//! differs from the source.

pub mod plan;
mod executor;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use reqwest::Method;
use serde_json::{json, Value};

pub use plan::{MigrationCause, MigrationRouting, Phase, PlacementState, PlanError};

use super::fanout::WritePart;
use super::tasks::store_error;
use super::topology::{NodeSpec, Topology};
use super::Proxy;
use crate::error::{ApiError, ApiResult, Code};
use crate::model::IndexUid;
use crate::node::NodePath;
use crate::store::{StoreError, StoreResult};

pub use executor::spawn;

/// Lease of the process that executes migrations.
pub const REBALANCE_LEASE: &str = "miroir/rebalance";

/// Metrics of data movement (`miroir_rebalance_*`).
#[derive(Default, Clone)]
pub struct RebalanceMetrics {
    /// 1 while a migration runs.
    pub running: Gauge,
    pub shards_total: Gauge,
    pub shards_moved: Gauge,
    pub documents_copied: Counter,
    pub operations_replayed: Counter,
    pub migrations_started: Counter,
    pub migrations_finished: Counter,
    pub errors: Counter,
}

impl RebalanceMetrics {
    pub fn register(&self, sub: &mut Registry) {
        sub.register("rebalance_running", "1 while a migration (nodes added, drained or removed) runs", self.running.clone());
        sub.register("rebalance_shards", "Shards the running migration moves", self.shards_total.clone());
        sub.register("rebalance_shards_moved", "Shards of the running migration whose documents are on their new holders", self.shards_moved.clone());
        sub.register("rebalance_documents_copied", "Documents copied to new holders by migrations (this process)", self.documents_copied.clone());
        sub.register("rebalance_operations_replayed", "Queued writes replayed to new holders by migrations (this process)", self.operations_replayed.clone());
        sub.register("rebalance_migrations_started", "Migrations planned by this process", self.migrations_started.clone());
        sub.register("rebalance_migrations_finished", "Migrations this process brought to their end", self.migrations_finished.clone());
        sub.register("rebalance_errors", "Errors met by the migration executor (it retries)", self.errors.clone());
    }
}

/// Per-process rebalance state.
#[derive(Default)]
pub struct RebalanceState {
    /// Held (shared) by every write from the moment it reads the routing until its parts are
    /// sent or queued; the executor holds it exclusively to switch routing at the cut-over.
    pub(crate) gate: std::sync::Arc<tokio::sync::RwLock<()>>,
    /// Notified when routing changes (writes waiting on a fence).
    pub(crate) changed: tokio::sync::Notify,
    /// Wakes the executor (a change was planned).
    pub(crate) wake: tokio::sync::Notify,
    /// Stored version of the placement installed in routing (0: none from the store).
    pub(crate) installed: AtomicU64,
    /// Documents copied in this process, with when, for the rate shown in status.
    pub(crate) samples: Mutex<Vec<(Instant, u64)>>,
    pub(crate) throttle: Throttle,
}

/// A documents-per-second budget shared by every concurrent shard copy.
#[derive(Default)]
pub struct Throttle {
    next: tokio::sync::Mutex<Option<Instant>>,
}

impl Throttle {
    /// Waits until `documents` more may be written under `per_second` (0: no limit).
    pub async fn take(&self, documents: u64, per_second: u64) {
        if per_second == 0 || documents == 0 {
            return;
        }
        let mut next = self.next.lock().await;
        let now = Instant::now();
        let at = next.filter(|t| *t > now).unwrap_or(now);
        *next = Some(at + Duration::from_secs_f64(documents as f64 / per_second as f64));
        drop(next);
        tokio::time::sleep_until(at.into()).await;
    }
}

/// A routing table held for one write: the gate stays shared until it is dropped.
pub struct WriteRoute {
    _gate: tokio::sync::OwnedRwLockReadGuard<()>,
    routing: std::sync::Arc<super::RoutingTable>,
}

impl std::ops::Deref for WriteRoute {
    type Target = super::RoutingTable;
    fn deref(&self) -> &super::RoutingTable {
        &self.routing
    }
}

/// How long a write waits for a cut-over before it is refused (nothing applied).
const FENCE_PATIENCE: Duration = Duration::from_secs(60);

/// The deletion a node receiving `incoming` shards gets queued, for a broadcast document
/// deletion (by filter, all documents, or the whole index): the same deletion restricted to
/// those shards. `None` for any other request.
pub fn restricted_deletion(method: &Method, path: &NodePath, body: Option<&Value>, uid: &IndexUid, incoming: &[u32]) -> Option<Value> {
    let p = path.path();
    let index = NodePath::index(uid);
    let docs = index.clone().then("documents");
    let by_filter = *method == Method::POST && p == docs.clone().then("delete").path();
    let all = *method == Method::DELETE && (p == docs.path() || p == index.path());
    if !by_filter && !all {
        return None;
    }
    let client = if by_filter { body.and_then(|b| b.get("filter")) } else { None };
    let filter = super::scatter::shard_filter(client, incoming, false)?;
    Some(json!({ "filter": filter }))
}

/// Errors of a topology change asked for through the admin API, the config or the operator.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("a migration is running ({0}); one topology change at a time: wait until it ends")]
    InProgress(String),
    #[error("node `{0}` is not in the topology")]
    UnknownNode(String),
    #[error("node `{0}` is already in the topology")]
    NodeExists(String),
    #[error("node `{node}` still holds {shards} shard(s); drain it first (POST /_miroir/nodes/{node}/drain) or remove it with `?force=true`")]
    HoldsData { node: String, shards: usize },
    #[error("{0}")]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> ApiError {
        let code = match &e {
            ChangeError::InProgress(_) => Code::MiroirRebalanceInProgress,
            ChangeError::UnknownNode(_) => Code::MiroirNodeNotFound,
            ChangeError::NodeExists(_) => Code::MiroirNodeExists,
            ChangeError::HoldsData { .. } => Code::MiroirNodeHoldsData,
            ChangeError::Plan(_) => Code::MiroirInvalidTopology,
            ChangeError::Store(s) => return store_error(StoreError::Unavailable(s.to_string())),
        };
        ApiError::new(code, e.to_string())
    }
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

impl Proxy {
    /// The routing table for a write, with the cut-over gate held shared. A write that finds
    /// the routing fenced (a cut-over in progress) waits until it is not.
    pub(crate) async fn write_routing(&self) -> ApiResult<WriteRoute> {
        let started = Instant::now();
        loop {
            let changed = self.inner.rebalance.changed.notified();
            let gate = self.inner.rebalance.gate.clone().read_owned().await;
            let routing = self.routing_or_error()?;
            if !routing.migration.as_ref().is_some_and(|m| m.fenced) {
                return Ok(WriteRoute { _gate: gate, routing });
            }
            drop(gate);
            if started.elapsed() > FENCE_PATIENCE {
                return Err(ApiError::new(
                    Code::MiroirWritesPaused,
                    "Writes are paused for the cut-over of a migration that is taking too long; nothing was applied. Retry the request.",
                ));
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), changed).await;
        }
    }

    /// Appends a write part to the running migration's queue for its node (durably; called
    /// before the write is acknowledged).
    pub(crate) async fn queue_for_migration(&self, migration: &str, index: Option<&str>, part: WritePart) -> ApiResult<()> {
        let queue = plan::queue_name(migration, &part.call.node_id);
        self.store().append_missed(&queue, part.into_op(index)).await.map_err(store_error)?;
        Ok(())
    }

    /// The stored placement state, if any.
    pub async fn load_placement(&self) -> StoreResult<Option<(u64, PlacementState)>> {
        match self.store().get_placement().await? {
            None => Ok(None),
            Some((v, json)) => {
                let state: PlacementState = serde_json::from_value(json)
                    .map_err(|e| StoreError::Other(format!("the stored placement state cannot be read: {e}")))?;
                Ok(Some((v, state)))
            }
        }
    }

    /// Routes by a stored placement state (unless a newer one is installed already).
    pub fn install_placement(&self, version: u64, state: &PlacementState) {
        let table = plan::routing_for(state, version);
        {
            let mut slot = self.inner.routing.write().expect("routing lock");
            if self.inner.rebalance.installed.load(Ordering::SeqCst) > version {
                return;
            }
            self.inner.health.retain_nodes(&table.topology);
            self.inner.sync.retain(|id| table.topology.node(id).is_some());
            if let Some(m) = &table.migration {
                // A joining node has no task yet while its peers have indexes: that is not
                // a node that lost its data.
                for id in &m.joining {
                    self.inner.sync.mark_checked(id);
                }
            }
            *slot = Some(std::sync::Arc::new(table));
            self.inner.rebalance.installed.store(version, Ordering::SeqCst);
        }
        let m = &self.inner.metrics.rebalance;
        match state.migration.as_ref().filter(|m| !m.phase.ended()) {
            Some(mig) => {
                m.running.set(1);
                m.shards_total.set(mig.moves.len() as i64);
                m.shards_moved.set(mig.shards_moved() as i64);
            }
            None => {
                m.running.set(0);
                m.shards_total.set(0);
                m.shards_moved.set(0);
            }
        }
        self.inner.rebalance.changed.notify_waiters();
    }

    /// Reads the stored state and installs it if it is newer than what routing uses.
    pub async fn refresh_placement(&self) -> StoreResult<Option<(u64, PlacementState)>> {
        let loaded = self.load_placement().await?;
        if let Some((v, state)) = &loaded {
            if *v != self.inner.rebalance.installed.load(Ordering::SeqCst) {
                self.install_placement(*v, state);
            }
        }
        Ok(loaded)
    }

    /// Read-modify-write of the stored state (retried on a concurrent change); installs the
    /// result. `change` returns `Ok(false)` when there is nothing to write.
    pub(crate) async fn update_placement<T>(
        &self,
        mut change: impl FnMut(Option<&mut PlacementState>) -> Result<(bool, Option<PlacementState>, T), ChangeError>,
    ) -> Result<T, ChangeError> {
        loop {
            let loaded = self.load_placement().await?;
            let (expected, mut state) = match loaded {
                Some((v, s)) => (v, Some(s)),
                None => (0, None),
            };
            let (write, fresh, out) = change(state.as_mut())?;
            let next = match (fresh, state) {
                (Some(f), _) => f,
                (None, Some(s)) => s,
                (None, None) => return Ok(out),
            };
            if !write {
                if expected > 0 {
                    self.install_placement(expected, &next);
                }
                return Ok(out);
            }
            let json = serde_json::to_value(&next).expect("placement state is JSON");
            if let Some(v) = self.store().put_placement(expected, &json).await? {
                self.install_placement(v, &next);
                self.inner.rebalance.wake.notify_one();
                return Ok(out);
            }
        }
    }

    /// The topology a config file (`miroir serve`, at start and on SIGHUP) or a MiroirCluster
    /// spec (`miroir operator`) declares. The first time, it is stored and routed by as it is.
    /// Afterwards a declaration that differs from the last one is a topology change: nodes
    /// whose address changed are updated at once; nodes added or removed become a migration
    /// (never routed to before their data has moved). A declaration equal to the last one
    /// changes nothing, so a node added through the admin API stays after a restart.
    pub async fn declare_topology(&self, declared: Topology, source: &str) -> Result<Option<plan::Migration>, ChangeError> {
        declared.validate().map_err(PlanError::from)?;
        let started = self
            .update_placement(|state| {
                let Some(state) = state else {
                    let mut fresh = PlacementState::new(declared.clone());
                    fresh.declared = Some(declared.clone());
                    return Ok((true, Some(fresh), None));
                };
                if state.topology.shards != declared.shards {
                    return Err(PlanError::ShardsChanged { from: state.topology.shards, to: declared.shards }.into());
                }
                if state.declared.as_ref() == Some(&declared) {
                    return Ok((false, None, None));
                }
                state.declared = Some(declared.clone());
                if let Some(m) = state.migration.as_ref().filter(|m| !m.phase.ended()) {
                    tracing::warn!(migration = %m.id, "the declared topology changed while a migration runs; it is planned when that one ends");
                    state.declared_pending = true;
                    return Ok((true, None, None));
                }
                if same_nodes(&state.topology, &declared) {
                    state.topology = declared.clone();
                    return Ok((true, None, None));
                }
                let cause = MigrationCause { source: source.to_string(), description: describe_change(&state.topology, &declared) };
                let m = plan::plan_migration(&state.topology, &declared, cause, Vec::new(), now())?;
                state.drained.retain(|d| declared.node(&d.id).is_none());
                state.migration = m.clone();
                Ok((true, None, m))
            })
            .await?;
        if let Some(m) = &started {
            self.migration_started(m);
        }
        Ok(started)
    }

    fn migration_started(&self, m: &plan::Migration) {
        self.inner.metrics.rebalance.migrations_started.inc();
        tracing::info!(migration = %m.id, cause = %m.cause.description, shards = m.moves.len(), joining = ?m.joining, leaving = ?m.leaving, "migration planned");
    }

    /// Plans a migration from the current topology to `f(topology)`.
    async fn change_topology(
        &self,
        source: &str,
        draining: Vec<String>,
        f: impl Fn(&PlacementState) -> Result<Topology, ChangeError>,
    ) -> Result<Option<plan::Migration>, ChangeError> {
        let started = self
            .update_placement(|state| {
                let Some(state) = state else {
                    return Err(ChangeError::Store(StoreError::Other("no topology is stored yet".into())));
                };
                if let Some(m) = state.migration.as_ref().filter(|m| !m.phase.ended()) {
                    return Err(ChangeError::InProgress(m.id.clone()));
                }
                let target = f(state)?;
                let cause = MigrationCause { source: source.to_string(), description: describe_change(&state.topology, &target) };
                let m = plan::plan_migration(&state.topology, &target, cause, draining.clone(), now())?;
                match m {
                    Some(m) => {
                        state.drained.retain(|d| target.node(&d.id).is_none());
                        state.migration = Some(m.clone());
                        Ok((true, None, Some(m)))
                    }
                    None => {
                        let changed = state.topology != target;
                        state.topology = target;
                        Ok((changed, None, None))
                    }
                }
            })
            .await?;
        if let Some(m) = &started {
            self.migration_started(m);
        }
        Ok(started)
    }

    /// Makes sure a placement state is stored (the topology routing uses now, for a proxy
    /// whose topology was applied directly).
    async fn ensure_placement(&self) -> Result<(), ChangeError> {
        let Some(routing) = self.routing() else {
            return Err(ChangeError::Store(StoreError::Other("Miroir has no topology yet".into())));
        };
        self.update_placement(|state| match state {
            Some(_) => Ok((false, None, ())),
            None => Ok((true, Some(PlacementState::new(routing.topology.clone())), ())),
        })
        .await
    }

    /// `POST /_miroir/nodes`: a node joins; the shards the new placement gives it move to it.
    pub async fn add_node(&self, node: NodeSpec) -> Result<Option<plan::Migration>, ChangeError> {
        self.ensure_placement().await?;
        self.change_topology("admin-api", Vec::new(), |state| {
            if state.topology.node(&node.id).is_some() {
                return Err(ChangeError::NodeExists(node.id.clone()));
            }
            let mut t = state.topology.clone();
            t.nodes.push(node.clone());
            Ok(t)
        })
        .await
    }

    /// `POST /_miroir/nodes/{id}/drain`: every shard of the node moves to the others; the node
    /// stays known (drained, holding nothing) until it is removed.
    pub async fn drain_node(&self, id: &str) -> Result<Option<plan::Migration>, ChangeError> {
        self.ensure_placement().await?;
        self.change_topology("admin-api", vec![id.to_string()], |state| {
            if state.topology.node(id).is_none() {
                return Err(ChangeError::UnknownNode(id.to_string()));
            }
            let mut t = state.topology.clone();
            t.nodes.retain(|n| n.id != id);
            Ok(t)
        })
        .await
    }

    /// `DELETE /_miroir/nodes/{id}`: forgets a drained node; a node that still holds shards is
    /// refused unless `force` (then its shards move from their other holders).
    pub async fn remove_node(&self, id: &str, force: bool) -> Result<Option<plan::Migration>, ChangeError> {
        self.ensure_placement().await?;
        let forgotten = self
            .update_placement(|state| {
                let state = state.expect("ensured");
                if let Some(m) = state.migration.as_ref().filter(|m| !m.phase.ended()) {
                    return Err(ChangeError::InProgress(m.id.clone()));
                }
                let before = state.drained.len();
                state.drained.retain(|d| d.id != id);
                if state.drained.len() != before {
                    return Ok((true, None, true));
                }
                if state.topology.node(id).is_none() {
                    return Err(ChangeError::UnknownNode(id.to_string()));
                }
                let shards = state.topology.assignment().shards_by_node().get(id).map(Vec::len).unwrap_or(0);
                if shards > 0 && !force {
                    return Err(ChangeError::HoldsData { node: id.to_string(), shards });
                }
                Ok((false, None, false))
            })
            .await?;
        if forgotten {
            return Ok(None);
        }
        self.change_topology("admin-api", Vec::new(), |state| {
            let mut t = state.topology.clone();
            t.nodes.retain(|n| n.id != id);
            Ok(t)
        })
        .await
    }

    /// `GET /_miroir/rebalance`.
    pub async fn rebalance_status(&self) -> StoreResult<Value> {
        let loaded = self.load_placement().await?;
        let rate = self.copy_rate();
        let Some((version, state)) = loaded else {
            return Ok(json!({"phase": "idle", "version": 0, "migration": null, "last": null, "drained": []}));
        };
        let running = state.migration.as_ref().filter(|m| !m.phase.ended());
        let view = |m: &plan::Migration, live: bool| {
            let total_docs: u64 = m.documents_copied;
            let moved = m.shards_moved();
            let eta = if live && rate > 0.0 && moved > 0 && moved < m.moves.len() {
                // Documents per moved shard so far, times the shards left, at the current rate.
                let per_shard = total_docs as f64 / moved as f64;
                Some(((m.moves.len() - moved) as f64 * per_shard / rate).ceil() as u64)
            } else {
                None
            };
            json!({
                "id": m.id,
                "phase": m.phase,
                "cause": m.cause,
                "startedAt": fmt(m.started_at),
                "phaseSince": fmt(m.phase_since),
                "finishedAt": m.finished_at.map(fmt),
                "joining": m.joining,
                "leaving": m.leaving,
                "shardsTotal": m.moves.len(),
                "shardsMoved": moved,
                "documentsCopied": total_docs,
                "operationsReplayed": m.operations_replayed,
                "documentsPerSecond": if live { Some((rate * 10.0).round() / 10.0) } else { None },
                "etaSeconds": eta,
                "error": m.error,
                "shards": m.moves.iter().map(|mv| json!({
                    "shard": mv.shard, "from": mv.sources, "to": mv.to, "drop": mv.drop,
                    "state": shard_state(m.phase, mv.copied), "documents": mv.documents,
                })).collect::<Vec<_>>(),
            })
        };
        Ok(json!({
            "phase": running.map(|m| serde_json::to_value(m.phase).expect("phase")).unwrap_or(json!("idle")),
            "version": version,
            "migration": running.map(|m| view(m, true)),
            "last": state.last.as_ref().map(|m| view(m, false)),
            "drained": state.drained.iter().map(|n| &n.id).collect::<Vec<_>>(),
            "declaredPending": state.declared_pending,
        }))
    }

    /// Documents per second copied by this process over the last 30 s.
    fn copy_rate(&self) -> f64 {
        let mut s = self.inner.rebalance.samples.lock().expect("samples");
        s.retain(|(t, _)| t.elapsed() < Duration::from_secs(30));
        let (Some(first), Some(_)) = (s.first(), s.last()) else { return 0.0 };
        let docs: u64 = s.iter().map(|(_, d)| d).sum();
        let secs = first.0.elapsed().as_secs_f64().max(1.0);
        docs as f64 / secs
    }

    pub(crate) fn record_copied(&self, documents: u64) {
        self.inner.metrics.rebalance.documents_copied.inc_by(documents);
        self.inner.rebalance.samples.lock().expect("samples").push((Instant::now(), documents));
    }
}

fn shard_state(phase: Phase, copied: bool) -> &'static str {
    match (phase, copied) {
        (Phase::Copying, false) => "pending",
        (Phase::Copying, true) => "copied",
        (Phase::Fencing, _) => "cutting-over",
        (Phase::CutOver | Phase::Cleaning, _) => "cut-over",
        (Phase::Done, _) => "done",
        (Phase::Cancelled, _) => "cancelled",
    }
}

fn fmt(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Same node ids in the same groups (addresses may differ).
fn same_nodes(a: &Topology, b: &Topology) -> bool {
    let ids = |t: &Topology| t.nodes.iter().map(|n| (n.id.clone(), n.replica_group)).collect::<std::collections::BTreeSet<_>>();
    ids(a) == ids(b) && a.replication_factor == b.replication_factor && a.replica_groups == b.replica_groups
}

/// "added node-4; removed node-2" for logs, status and events.
pub fn describe_change(from: &Topology, to: &Topology) -> String {
    let added: Vec<&str> = to.nodes.iter().filter(|n| from.node(&n.id).is_none()).map(|n| n.id.as_str()).collect();
    let removed: Vec<&str> = from.nodes.iter().filter(|n| to.node(&n.id).is_none()).map(|n| n.id.as_str()).collect();
    let mut parts = Vec::new();
    if !added.is_empty() {
        parts.push(format!("added {}", added.join(", ")));
    }
    if !removed.is_empty() {
        parts.push(format!("removed {}", removed.join(", ")));
    }
    if from.replication_factor != to.replication_factor {
        parts.push(format!("replication factor {} → {}", from.replication_factor, to.replication_factor));
    }
    if from.replica_groups != to.replica_groups {
        parts.push(format!("replica groups {} → {}", from.replica_groups, to.replica_groups));
    }
    if parts.is_empty() {
        parts.push("placement changed".into());
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid() -> IndexUid {
        IndexUid::parse("movies").unwrap()
    }

    #[test]
    fn deletions_are_restricted_to_the_incoming_shards() {
        let i = uid();
        let by_filter = NodePath::index(&i).then("documents").then("delete");
        assert_eq!(
            restricted_deletion(&Method::POST, &by_filter, Some(&json!({"filter": "genre = a"})), &i, &[3, 7]),
            Some(json!({"filter": "_miroir_shard IN [3, 7] AND (genre = a)"}))
        );
        let all = NodePath::index(&i).then("documents");
        assert_eq!(restricted_deletion(&Method::DELETE, &all, None, &i, &[1]), Some(json!({"filter": "_miroir_shard IN [1]"})));
        assert_eq!(restricted_deletion(&Method::DELETE, &NodePath::index(&i), None, &i, &[1]), Some(json!({"filter": "_miroir_shard IN [1]"})));
        // Writes that are not deletions of documents are not restricted copies.
        assert_eq!(restricted_deletion(&Method::POST, &all, Some(&json!([])), &i, &[1]), None);
        assert_eq!(restricted_deletion(&Method::PATCH, &NodePath::index(&i).then("settings"), Some(&json!({})), &i, &[1]), None);
    }

    #[tokio::test]
    async fn the_throttle_spaces_documents_out() {
        let t = Throttle::default();
        let start = Instant::now();
        t.take(10, 100).await;
        t.take(10, 100).await;
        t.take(10, 100).await;
        // The first batch goes at once, the next ones 100 ms apart (a lower bound: sleeping
        // never ends early).
        assert!(start.elapsed() >= Duration::from_millis(200), "{:?}", start.elapsed());
        let unlimited = Instant::now();
        t.take(1_000_000, 0).await;
        assert!(unlimited.elapsed() < Duration::from_secs(1), "no limit: no wait");
    }
}

//! Replica catch-up: writes a node missed are recorded durably, then replayed to it in their
//! original order before it answers reads again; a node that missed too much, or came back
//! empty, is rebuilt from an up-to-date replica instead.
//!
//! - Recording ([`Proxy::record_missed`]) happens inside the write, before the client's 202:
//!   the operation (method, node route, body byte for byte, shards) is appended to the node's
//!   log in the task store. Past `replication.missed_budget_bytes` of pending bodies, the log
//!   is replaced by one rebuild marker ([`REBUILD_METHOD`]) followed by whatever comes next.
//! - The replay worker ([`spawn`]) runs in the process holding the `miroir/replica-sync` lease
//!   (always the one process with SQLite). For every healthy node it first checks whether the
//!   node came back empty (no task at all while a peer has an index: its data dir was lost;
//!   the health checker also queues a rebuild when a node's newest task uid goes back) and
//!   if so queues a rebuild; then it replays the node's log page by page: each operation is
//!   sent as it was recorded, the page is acknowledged in the store only once the node has
//!   *processed* the last of its tasks (so a crash of Miroir in the middle replays that page
//!   again, which is harmless: every recorded operation is idempotent when replayed in order
//!   after itself), and the node is caught up when its log is empty.
//! - Every process refreshes its view of every node's log from the store on the same tick,
//!   so a pod that did not record a miss still stops reading from that node.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use super::fanout::WritePart;
use super::replica::{RebuildScope, REBUILD_METHOD};
use super::tasks::store_error;
use super::{Proxy, RoutingTable};
use crate::error::ApiResult;
use crate::node::NodePath;
use crate::store::{MissedOp, NewMissedOp, StoreResult};

/// Lease of the process that replays missed writes and runs rebuilds.
pub const REPLAY_LEASE: &str = "miroir/replica-sync";
/// Operations read from the log per page.
const PAGE: usize = 64;
/// A page is cut once its bodies exceed this (the node indexes it as one unit of waiting).
const PAGE_BYTES: usize = 16 * 1024 * 1024;

impl Proxy {
    /// Appends a write part the node did not take to its missed-operation log (durably),
    /// then enforces the node's byte budget. Called before the write is acknowledged.
    pub(crate) async fn record_missed(&self, index: Option<&str>, part: WritePart) -> ApiResult<u64> {
        let node = part.call.node_id.clone();
        let op = part.into_op(index);
        let bytes = op.body.len() as u64;
        let lock = self.inner.sync.lock_of(&node);
        let _held = lock.lock().await;
        let seq = self.store().append_missed(&node, op).await.map_err(store_error)?.seq;
        self.inner.sync.add_pending(&node, bytes, false);
        let budget = self.options().replication.missed_budget_bytes;
        if self.inner.sync.get(&node).pending_bytes > budget {
            tracing::warn!(node = %node, budget, "missed writes exceed the node's budget; its shards will be rebuilt from a replica instead");
            let scope = RebuildScope { reason: format!("missed writes exceeded the budget of {budget} bytes"), ..Default::default() };
            self.queue_rebuild_locked(&node, &scope).await.map_err(store_error)?;
        }
        self.publish_sync_metrics(&node);
        Ok(seq)
    }

    /// Queues a rebuild of the node: a marker appended to its log, then (for a rebuild of
    /// everything) everything before the marker dropped (the rebuild copies a state that
    /// includes it). In this order, so a crash
    /// in between only leaves operations that get replayed before the rebuild. The caller holds
    /// the node's sync lock.
    async fn queue_rebuild_locked(&self, node: &str, scope: &RebuildScope) -> StoreResult<()> {
        let marker = NewMissedOp {
            index_uid: None,
            shards: scope.shards.clone().unwrap_or_default(),
            method: REBUILD_METHOD.to_string(),
            path: "/".to_string(),
            content_type: Some("application/json".into()),
            body: serde_json::to_vec(scope).expect("json"),
            task_uid: None,
            created_at: time::OffsetDateTime::now_utc(),
        };
        let marker = self.store().append_missed(node, marker).await?;
        // Only a rebuild of everything covers every operation before it: a scoped one leaves
        // them to be replayed first (they may touch indexes or shards it does not copy).
        if scope.covers_everything() && marker.seq > 1 {
            self.store().ack_missed(node, marker.seq - 1).await?;
        }
        self.refresh_sync_locked(node).await
    }

    /// Queues a rebuild of the node (takes its sync lock).
    pub async fn queue_rebuild(&self, node: &str, scope: &RebuildScope) -> StoreResult<()> {
        let lock = self.inner.sync.lock_of(node);
        let _held = lock.lock().await;
        self.queue_rebuild_locked(node, scope).await?;
        self.inner.sync.wake.notify_one();
        Ok(())
    }

    /// Reloads the node's pending counts (and whether a rebuild is queued) from the store.
    async fn refresh_sync_locked(&self, node: &str) -> StoreResult<()> {
        let summary = self.store().missed_summary(node).await?;
        let rebuilding = if summary.pending > 0 {
            self.store().list_missed(node, None, 1).await?.first().is_some_and(|op| op.op.method == REBUILD_METHOD)
        } else {
            false
        };
        self.inner.sync.set_summary(node, summary, rebuilding);
        self.publish_sync_metrics(node);
        Ok(())
    }

    pub(crate) async fn refresh_sync(&self, node: &str) -> StoreResult<()> {
        let lock = self.inner.sync.lock_of(node);
        let _held = lock.lock().await;
        self.refresh_sync_locked(node).await
    }

    fn publish_sync_metrics(&self, node: &str) {
        let s = self.inner.sync.get(node);
        let l = super::metrics::NodeLabels { node: node.to_string() };
        let m = &self.inner.metrics;
        m.pending_operations.get_or_create(&l).set(s.pending_operations as i64);
        m.pending_bytes.get_or_create(&l).set(s.pending_bytes as i64);
        m.caught_up.get_or_create(&l).set(i64::from(s.caught_up()));
    }

    /// Whether the node answers like one that lost its data dir: it has no task at all (not
    /// even an enqueued one: Meilisearch keeps its task queue on disk, and a node Miroir wrote
    /// to has some) while another live node has an index.
    async fn came_back_empty(&self, routing: &RoutingTable, node: &str) -> Option<bool> {
        let total = |id: &str, route: &'static str| {
            let addr = routing.topology.node(id).map(|n| n.address.clone());
            let id = id.to_string();
            async move {
                let addr = addr?;
                let path = NodePath::route(route).query("limit", "1");
                let timeout = Duration::from_millis(self.options().health.timeout_ms.max(1000));
                let r = self.inner.nodes.send_json(&addr, Method::GET, &path, None, timeout).await.ok()?;
                if crate::node::is_auth_refusal(&r) {
                    self.node_refuses_key(&id);
                }
                r.is_success().then(|| r.body.get("total").and_then(Value::as_u64)).flatten()
            }
        };
        if total(node, "/tasks").await? > 0 {
            return Some(false);
        }
        for peer in routing.topology.nodes.iter().filter(|n| n.id != node) {
            if total(&peer.id, "/indexes").await.unwrap_or(0) > 0 {
                return Some(true);
            }
        }
        Some(false)
    }

    /// Before serving: every node's log loaded from the store, and every node that answers
    /// checked for lost data, so the first requests are routed as they should be.
    pub async fn prepare_sync(&self) {
        let Some(routing) = self.routing() else { return };
        let all = routing.topology.nodes.iter().map(|n| {
            let routing = routing.clone();
            async move { self.sync_node(&routing, &n.id, false).await }
        });
        futures::future::join_all(all).await;
    }

    /// One tick of the worker for one node.
    async fn sync_node(&self, routing: &RoutingTable, node: &str, replays: bool) {
        if let Err(e) = self.refresh_sync(node).await {
            tracing::warn!(node = %node, error = %e, "cannot read the node's missed writes");
            return;
        }
        let live = self.inner.health.get(node).state == super::health::NodeState::Healthy;
        if !live {
            return;
        }
        // One check at a time per node, and only while it is still unchecked: `prepare_sync`
        // and the worker's first tick both check every node at start, and a check that began
        // while the node was unchecked must not conclude after another one let it take writes
        // (a fresh node that just received the first index would look like one that lost it).
        let check = self.inner.sync.check_lock_of(node);
        let checking = check.lock().await;
        if self.inner.sync.is_unchecked(node) {
            // The cluster's experimental features before anything else (a node that was
            // down, joins, or lost its data may lack them); it stays unchecked until then.
            if let Some(addr) = routing.topology.node(node).map(|n| n.address.clone()) {
                if let Err(e) = self.ensure_features(&addr).await {
                    tracing::warn!(node = %node, error = %e, "cannot give the node the experimental features; retrying");
                    return;
                }
            }
        }
        if routing.migration.as_ref().is_some_and(|m| m.joining.contains(node)) {
            // Joining with a migration: it has nothing yet, and gets it from the migration.
            self.inner.sync.mark_checked(node);
        }
        if self.inner.sync.is_unchecked(node) {
            match self.came_back_empty(routing, node).await {
                None => return, // could not ask; next tick
                Some(true) => {
                    tracing::warn!(node = %node, "node came back without any task while a peer has an index (data dir lost?); rebuilding it from its replicas");
                    let scope = RebuildScope { reason: "the node came back empty".into(), ..Default::default() };
                    if let Err(e) = self.queue_rebuild(node, &scope).await {
                        tracing::warn!(node = %node, error = %e, "cannot queue the rebuild");
                        return;
                    }
                }
                Some(false) => {}
            }
            self.inner.sync.mark_checked(node);
            self.publish_sync_metrics(node);
        }
        drop(checking);
        if replays && self.inner.sync.get(node).pending_operations > 0 {
            if let Err(e) = self.replay(routing, node).await {
                tracing::warn!(node = %node, error = %e, "replay stopped; retrying later");
            }
        }
    }

    /// Replays the node's log until it is empty (caught up) or something stops it.
    async fn replay(&self, routing: &RoutingTable, node: &str) -> Result<(), String> {
        let addr = routing.topology.node(node).map(|n| n.address.clone()).ok_or("node left the topology")?;
        let started = Instant::now();
        let mut replayed = 0u64;
        loop {
            if self.inner.health.get(node).state != super::health::NodeState::Healthy {
                return Err("the node is down again".into());
            }
            let ops = self.store().list_missed(node, None, PAGE).await.map_err(|e| e.to_string())?;
            if ops.is_empty() {
                // Caught up unless a write appended meanwhile: decided under the node's lock,
                // which every append holds too.
                let lock = self.inner.sync.lock_of(node);
                let _held = lock.lock().await;
                self.refresh_sync_locked(node).await.map_err(|e| e.to_string())?;
                if self.inner.sync.get(node).pending_operations == 0 {
                    if replayed > 0 {
                        tracing::info!(node = %node, operations = replayed, seconds = started.elapsed().as_secs_f64(), "node caught up");
                    }
                    return Ok(());
                }
                continue;
            }
            if ops[0].op.method == REBUILD_METHOD {
                let scope: RebuildScope = serde_json::from_slice(&ops[0].op.body).unwrap_or_default();
                tracing::info!(node = %node, reason = %scope.reason, "rebuilding the node from its replicas");
                let t = Instant::now();
                self.rebuild(routing, node, &scope).await.map_err(|e| format!("rebuild failed: {e}"))?;
                self.inner.metrics.rebuilds.get_or_create(&super::metrics::NodeLabels { node: node.to_string() }).inc();
                tracing::info!(node = %node, seconds = t.elapsed().as_secs_f64(), "node rebuilt");
                self.store().ack_missed(node, ops[0].seq).await.map_err(|e| e.to_string())?;
                self.refresh_sync(node).await.map_err(|e| e.to_string())?;
                continue;
            }
            let page = cut_page(&ops);
            let mut last_task = None;
            for op in page {
                match self.replay_one(&addr, op).await? {
                    Replayed::Task(uid) => last_task = Some(uid),
                    Replayed::Refused(status, body) => {
                        // The node refuses what its replicas took: it has diverged. Copy it
                        // from them instead of guessing.
                        tracing::warn!(node = %node, seq = op.seq, status, body = %body, "node refused a replayed write; rebuilding it instead");
                        let scope = RebuildScope { reason: format!("a replayed write was refused with status {status}"), ..Default::default() };
                        self.queue_rebuild(node, &scope).await.map_err(|e| e.to_string())?;
                        return Ok(());
                    }
                }
            }
            if let Some(uid) = last_task {
                self.wait_node_task(&addr, uid).await.map_err(|e| e.to_string())?;
            }
            let last = page.last().expect("non-empty page");
            self.store().ack_missed(node, last.seq).await.map_err(|e| e.to_string())?;
            self.inner.metrics.replayed_operations.get_or_create(&super::metrics::NodeLabels { node: node.to_string() }).inc_by(page.len() as u64);
            replayed += page.len() as u64;
            self.refresh_sync(node).await.map_err(|e| e.to_string())?;
        }
    }

    /// Sends one recorded operation as it was recorded.
    pub(crate) async fn replay_one(&self, addr: &str, op: &MissedOp) -> Result<Replayed, String> {
        let method = Method::from_bytes(op.op.method.as_bytes()).map_err(|_| format!("operation {} has a bad method", op.seq))?;
        let path = NodePath::stored(&op.op.path).ok_or_else(|| format!("operation {} has a bad path", op.seq))?;
        let body = (!op.op.body.is_empty() || op.op.content_type.is_some()).then(|| op.op.body.clone());
        let r = self
            .inner
            .nodes
            .send_raw(addr, method, &path, op.op.content_type.as_deref(), body, self.node_timeout())
            .await
            .map_err(|e| e.to_string())?;
        if crate::node::is_auth_refusal(&r) {
            return Err("the node refuses Miroir's node master key".into());
        }
        match r.status {
            200..=299 => match r.body.get("taskUid").and_then(Value::as_u64) {
                Some(uid) => Ok(Replayed::Task(uid)),
                None => Err(format!("operation {}: the node answered no task", op.seq)),
            },
            400..=499 => Ok(Replayed::Refused(r.status, r.body)),
            s => Err(format!("operation {}: the node answered {s}", op.seq)),
        }
    }
}

pub(crate) enum Replayed {
    Task(u64),
    Refused(u16, Value),
}

/// The operations replayed before the next wait: up to the first rebuild marker, at most
/// [`PAGE_BYTES`] of bodies (always at least one).
pub(crate) fn cut_page(ops: &[MissedOp]) -> &[MissedOp] {
    let mut bytes = 0;
    let mut n = 0;
    for op in ops {
        if op.op.method == REBUILD_METHOD || (n > 0 && bytes + op.op.body.len() > PAGE_BYTES) {
            break;
        }
        bytes += op.op.body.len();
        n += 1;
    }
    &ops[..n.max(1)]
}

/// The background worker: every `replication.replay_interval_ms` (and whenever a write records
/// a miss) it refreshes every node's sync state and, in the lease holder, checks nodes that
/// came back and replays their logs. Stops when the handle is aborted.
pub(crate) fn spawn(proxy: Proxy, holder: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut leader_until: Option<Instant> = None;
        let mut last_attempt: Option<Instant> = None;
        loop {
            let interval = Duration::from_millis(proxy.options().replication.replay_interval_ms.max(10));
            // The lease: held for 10 intervals (at least 5 s), renewed every tick.
            let ttl = (interval * 10).max(Duration::from_secs(5));
            if last_attempt.is_none_or(|t| t.elapsed() >= interval) {
                last_attempt = Some(Instant::now());
                match proxy.store().try_acquire_lease(REPLAY_LEASE, &holder, ttl).await {
                    Ok(true) => leader_until = Some(Instant::now() + ttl),
                    Ok(false) => leader_until = None,
                    Err(e) => tracing::warn!(error = %e, "cannot renew the replica-sync lease"),
                }
            }
            let leader = leader_until.is_some_and(|t| Instant::now() < t);
            if let Some(routing) = proxy.routing() {
                let ticks = routing.topology.nodes.iter().map(|n| {
                    let proxy = proxy.clone();
                    let routing = routing.clone();
                    let id = n.id.clone();
                    async move { proxy.sync_node(&routing, &id, leader).await }
                });
                let ticks = futures::future::join_all(ticks);
                match leader_until.filter(|_| leader) {
                    None => {
                        ticks.await;
                    }
                    Some(until) => {
                        // A replay or a rebuild can outlast the lease: keep renewing it while the
                        // tick runs, and stop the tick as soon as the lease is lost, so that two
                        // processes never replay one node's log at the same time (the other one
                        // would send operations this one already sent, interleaved with the
                        // newer ones: a document could end at an older version).
                        let renew = async {
                            let mut until = until;
                            loop {
                                tokio::time::sleep(interval).await;
                                match proxy.store().try_acquire_lease(REPLAY_LEASE, &holder, ttl).await {
                                    Ok(true) => until = Instant::now() + ttl,
                                    Ok(false) => return,
                                    Err(e) => {
                                        tracing::warn!(error = %e, "cannot renew the replica-sync lease");
                                        if Instant::now() + interval >= until {
                                            return;
                                        }
                                    }
                                }
                            }
                        };
                        tokio::select! {
                            _ = ticks => {}
                            _ = renew => {
                                tracing::warn!("lost the replica-sync lease during a replay; another process resumes it");
                                leader_until = None;
                            }
                        }
                        // renewed meanwhile: ask again on the next tick
                        last_attempt = None;
                    }
                }
            }
            tokio::select! {
                _ = proxy.inner.sync.wake.notified() => {}
                _ = tokio::time::sleep(interval) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(seq: u64, method: &str, bytes: usize) -> MissedOp {
        NewMissedOp {
            index_uid: Some("i".into()),
            shards: vec![],
            method: method.into(),
            path: "/indexes/i/documents".into(),
            content_type: None,
            body: vec![b'x'; bytes],
            task_uid: None,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
        }
        .into_op("n", seq)
    }

    /// A rebuild of everything replaces the log; a scoped one (some indexes or shards) keeps
    /// the operations before it, which may touch what it does not copy.
    #[tokio::test]
    async fn only_a_full_rebuild_drops_the_operations_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::sqlite::SqliteStore::open(dir.path().join("m.db")).await.unwrap();
        let proxy = Proxy::new(crate::dataplane::ProxyOptions::default(), std::sync::Arc::new(store));
        let write = |index: &str| NewMissedOp {
            index_uid: Some(index.into()),
            shards: vec![0],
            method: "POST".into(),
            path: format!("/indexes/{index}/documents"),
            content_type: Some("application/json".into()),
            body: b"[]".to_vec(),
            task_uid: None,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        for node in ["a", "b"] {
            proxy.store().append_missed(node, write("movies")).await.unwrap();
            proxy.store().append_missed(node, write("books")).await.unwrap();
        }
        let scoped = RebuildScope { indexes: Some(vec!["movies".into()]), shards: None, reason: "test".into() };
        proxy.queue_rebuild("a", &scoped).await.unwrap();
        let left: Vec<String> = proxy.store().list_missed("a", None, 10).await.unwrap().into_iter().map(|o| o.op.method).collect();
        assert_eq!(left, vec!["POST", "POST", REBUILD_METHOD], "a scoped rebuild keeps the writes before it");

        proxy.queue_rebuild("b", &RebuildScope { reason: "test".into(), ..Default::default() }).await.unwrap();
        let left: Vec<String> = proxy.store().list_missed("b", None, 10).await.unwrap().into_iter().map(|o| o.op.method).collect();
        assert_eq!(left, vec![REBUILD_METHOD], "a full rebuild covers them");
    }

    #[test]
    fn a_page_stops_before_a_rebuild_marker_and_at_the_byte_limit() {
        let ops = vec![op(1, "POST", 10), op(2, "PUT", 10), op(3, REBUILD_METHOD, 5), op(4, "POST", 1)];
        assert_eq!(cut_page(&ops).len(), 2);
        let big = vec![op(1, "POST", PAGE_BYTES), op(2, "POST", 1)];
        assert_eq!(cut_page(&big).len(), 1);
        let huge = vec![op(1, "POST", PAGE_BYTES * 2)];
        assert_eq!(cut_page(&huge).len(), 1, "one operation larger than a page is still replayed");
    }
}

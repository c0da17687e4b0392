//! The data plane: routing (`hash`, `topology`), node health (`health`), the write service
//! with quorum (`write`, `fanout`), tasks (`tasks`), the read service: scatter/gather
//! (`read`, `scatter`) and result merging (`merge`). The HTTP layer (`crate::http`) calls it.
//!
//! [`Proxy`] is the handle the rest of the program holds: `miroir serve` builds one from the
//! config file, `miroir operator` from a MiroirCluster; both change routing only through
//! [`Proxy::apply_topology`].

pub mod hash;
pub mod topology;
pub mod placement;
pub mod health;
pub mod merge;
pub mod fanout;
pub mod payload;
pub mod tasks;
pub mod server;
pub mod scatter;
pub mod read;
pub mod write;
pub mod settings;
pub mod metrics;
pub mod replica;
pub mod catchup;
pub mod repair;
pub mod antientropy;
pub mod rebalance;
pub mod webhooks;
pub mod backup;
pub mod features;
pub mod edition;
pub mod swap;
pub mod context_cache;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::config::{HealthConfig, Keys, RebalanceConfig, ReplicationConfig, ScatterConfig};
use crate::node::NodeClient;
use crate::store::TaskStore;
use topology::{Assignment, Topology, TopologyError};

/// Routing state derived from one topology (and the migration in progress, if any).
/// Swapped atomically on change.
#[derive(Debug)]
pub struct RoutingTable {
    /// Every node that gets traffic (during a migration: the nodes of both placements); its
    /// `shards`, `replication_factor` and `replica_groups` are those reads are routed by.
    pub topology: Topology,
    /// Where reads go and what quorum counts.
    pub assignment: Assignment,
    /// Bumped on every applied change.
    pub version: u64,
    /// Node → the shards it holds physically (ascending): its readable ones, plus, during a
    /// migration, the ones it is receiving or still giving up. A read restricted to some
    /// shards needs a `_miroir_shard` filter unless they are all this node holds.
    pub held: BTreeMap<String, Vec<u32>>,
    /// How writes and reads are routed while a migration runs.
    pub migration: Option<rebalance::MigrationRouting>,
}

impl RoutingTable {
    /// The table of a topology with no migration.
    pub fn plain(topology: Topology, assignment: Assignment, version: u64) -> RoutingTable {
        let held = assignment.shards_by_node();
        RoutingTable { topology, assignment, version, held, migration: None }
    }

    /// Whether `node` answers for exactly `shards` with no filter (it holds no other shard).
    pub fn holds_only(&self, node: &str, shards: &[u32]) -> bool {
        self.held.get(node).is_some_and(|h| h == shards)
    }
}

/// What applying a topology changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyChange {
    /// False when the new topology equals the current one.
    pub changed: bool,
    /// Shards whose holder set changed in some group (their data would have to move:
    /// a rebalance is required before reads of those shards are complete).
    pub moved_shards: Vec<u32>,
}

/// Options a proxy is built with.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    pub keys: Keys,
    pub health: HealthConfig,
    pub scatter: ScatterConfig,
    pub max_body_bytes: usize,
    pub replication: ReplicationConfig,
    pub rebalance: RebalanceConfig,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            keys: Keys::default(),
            health: HealthConfig::default(),
            scatter: ScatterConfig::default(),
            max_body_bytes: crate::config::ServerConfig::default().max_body_bytes,
            replication: ReplicationConfig::default(),
            rebalance: RebalanceConfig::default(),
        }
    }
}

/// Cheap to clone; all clones share state.
#[derive(Clone)]
pub struct Proxy {
    pub(crate) inner: Arc<ProxyInner>,
}

pub(crate) struct ProxyInner {
    pub(crate) routing: RwLock<Option<Arc<RoutingTable>>>,
    pub(crate) options: RwLock<ProxyOptions>,
    pub(crate) store: Arc<dyn TaskStore>,
    pub(crate) nodes: NodeClient,
    pub(crate) health: health::HealthRegistry,
    pub(crate) metrics: metrics::ProxyMetrics,
    pub(crate) sync: replica::SyncRegistry,
    pub(crate) anti_entropy: antientropy::AntiEntropyState,
    pub(crate) rebalance: rebalance::RebalanceState,
    /// Per index uid (`""`: writes not about one index): held while a write is sent to the
    /// nodes, so every node receives this process's writes to an index in the same order.
    pub(crate) write_order: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The config's webhook and the notification worker's wake-up.
    pub(crate) webhooks: webhooks::WebhookState,
    /// Index swaps: the per-index gates requests hold, and the swap in progress.
    pub(crate) swap: swap::SwapState,
    /// Set on SIGTERM: `/ready` answers 503 while the requests in flight finish.
    pub(crate) draining: std::sync::atomic::AtomicBool,
    /// Index contexts (primary key, settings) the read path reuses (see `context_cache`).
    pub(crate) contexts: context_cache::ContextCache,
}

impl Proxy {
    /// A proxy with no topology yet: data routes answer 503 until one is applied.
    pub fn new(options: ProxyOptions, store: Arc<dyn TaskStore>) -> Proxy {
        let nodes = NodeClient::new(options.keys.node_master_key.clone());
        Proxy {
            inner: Arc::new(ProxyInner {
                routing: RwLock::new(None),
                options: RwLock::new(options),
                store,
                nodes,
                health: health::HealthRegistry::default(),
                metrics: metrics::ProxyMetrics::default(),
                sync: replica::SyncRegistry::default(),
                anti_entropy: Default::default(),
                rebalance: Default::default(),
                write_order: Default::default(),
                webhooks: Default::default(),
                swap: Default::default(),
                draining: Default::default(),
                contexts: Default::default(),
            }),
        }
    }

    /// Validates and installs a topology; routing changes for every request that starts
    /// afterwards. Health state of nodes that stay is kept; new nodes start healthy.
    pub fn apply_topology(&self, next: Topology) -> Result<TopologyChange, TopologyError> {
        next.validate()?;
        let assignment = next.assignment();
        let mut slot = self.inner.routing.write().expect("routing lock");
        let (changed, moved, version) = match slot.as_ref() {
            Some(cur) if cur.topology == next => return Ok(TopologyChange { changed: false, moved_shards: vec![] }),
            Some(cur) => (true, cur.assignment.moved_shards(&assignment), cur.version + 1),
            None => (true, Vec::new(), 1),
        };
        self.inner.health.retain_nodes(&next);
        self.inner.sync.retain(|id| next.node(id).is_some());
        *slot = Some(Arc::new(RoutingTable::plain(next, assignment, version)));
        Ok(TopologyChange { changed, moved_shards: moved })
    }

    /// Replaces health and scatter settings (takes effect on the next probe / request).
    pub fn set_runtime(&self, health: HealthConfig, scatter: ScatterConfig) {
        let mut o = self.inner.options.write().expect("options lock");
        o.health = health;
        o.scatter = scatter;
    }

    /// Replaces the three keys (a key rotation): clients are checked against the new master
    /// and admin keys, and the nodes get the new node master key, from the next request on.
    /// API keys derived from the master key change with it, as on Meilisearch.
    pub fn set_keys(&self, keys: Keys) {
        self.inner.nodes.set_key(keys.node_master_key.clone());
        self.inner.options.write().expect("options lock").keys = keys;
    }

    /// The process is stopping: `/ready` answers 503 from now on (requests are still served).
    pub fn begin_drain(&self) {
        self.inner.draining.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Why this process cannot take traffic yet (or any more), or `Ok` with what it knows:
    /// the task store answers, a topology is applied, every node was probed at least once,
    /// and it is not stopping. Checks the store (at most `timeout`).
    pub async fn readiness(&self, timeout: std::time::Duration) -> Result<serde_json::Value, Vec<String>> {
        let mut reasons = Vec::new();
        if self.inner.draining.load(std::sync::atomic::Ordering::SeqCst) {
            reasons.push("shutting down: finishing the requests in flight".to_string());
        }
        let store_ok = match tokio::time::timeout(timeout, self.inner.store.ping()).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                reasons.push(format!("the task store does not answer: {e}"));
                false
            }
            Err(_) => {
                reasons.push(format!("the task store did not answer within {} ms", timeout.as_millis()));
                false
            }
        };
        self.inner.metrics.observe_store(store_ok);
        let routing = self.routing();
        match &routing {
            None => reasons.push("no topology is applied yet".into()),
            Some(_) if self.inner.health.rounds() == 0 => reasons.push("the nodes have not been probed yet".into()),
            Some(_) => {}
        }
        if !reasons.is_empty() {
            return Err(reasons);
        }
        let health = self.node_health();
        let healthy = health.iter().filter(|(_, h)| h.is_usable()).count();
        let caught_up = health.iter().filter(|(id, _)| self.serves_reads(id)).count();
        Ok(serde_json::json!({
            "status": "ready",
            "topologyVersion": routing.as_ref().map(|r| r.version),
            "nodes": health.len(),
            "healthyNodes": healthy,
            "nodesServingReads": caught_up,
        }))
    }

    pub fn routing(&self) -> Option<Arc<RoutingTable>> {
        self.inner.routing.read().expect("routing lock").clone()
    }

    pub fn options(&self) -> ProxyOptions {
        self.inner.options.read().expect("options lock").clone()
    }

    pub fn store(&self) -> Arc<dyn TaskStore> {
        self.inner.store.clone()
    }

    /// The proxy's metrics (register them in the registry `/metrics` serves).
    pub fn metrics(&self) -> &metrics::ProxyMetrics {
        &self.inner.metrics
    }

    /// Health of every node of the current topology.
    pub fn node_health(&self) -> Vec<(String, health::NodeHealth)> {
        match self.routing() {
            Some(r) => r
                .topology
                .nodes
                .iter()
                .map(|n| (n.id.clone(), self.inner.health.get(&n.id)))
                .collect(),
            None => Vec::new(),
        }
    }

    /// Sync state of every node of the current topology.
    pub fn node_sync(&self) -> Vec<(String, replica::NodeSync)> {
        match self.routing() {
            Some(r) => r.topology.nodes.iter().map(|n| (n.id.clone(), self.inner.sync.get(&n.id))).collect(),
            None => Vec::new(),
        }
    }

    /// Whether reads may be sent to the node: it is healthy and holds every acknowledged
    /// write (caught up).
    pub fn serves_reads(&self, node: &str) -> bool {
        self.inner.health.get(node).is_usable() && self.inner.sync.get(node).caught_up()
    }

    /// The HTTP application (Meilisearch API + `/_miroir/*`).
    pub fn router(&self) -> axum::Router {
        crate::http::router(self.clone())
    }

    /// The context (primary key, settings) of `index` (`None`: of every index) may have
    /// changed through a write whose task is already stored: drops the cached contexts here
    /// and, through the task store, in every other process (see [`context_cache`]).
    pub(crate) async fn index_context_changed(&self, index: Option<&str>) {
        self.inner.contexts.invalidate(index);
        if let Err(e) = self.inner.store.bump_index_context(index).await {
            // The other processes' subscriptions fail with the store: their caches are off.
            tracing::warn!(index, error = %e, "cannot publish an index context change");
        }
    }

    /// The cached context of an index, however old (for tests and diagnostics).
    pub fn cached_index_context(&self, uid: &str) -> Option<Arc<merge::IndexContext>> {
        self.inner.contexts.get(uid, std::time::Duration::MAX)
    }

    /// Starts following the index context changes other processes publish through the task
    /// store (none with SQLite): the cache is off while the subscription is down, and emptied
    /// whenever it (re)connects. Stops when aborted.
    pub fn spawn_context_watch(&self) -> tokio::task::JoinHandle<()> {
        let Some(mut events) = self.inner.store.watch_index_context() else {
            return tokio::spawn(async {});
        };
        self.inner.contexts.set_enabled(false);
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                let Some(inner) = weak.upgrade() else { return };
                match ev {
                    crate::store::ContextEvent::Changed(index) => inner.contexts.invalidate(index.as_deref()),
                    crate::store::ContextEvent::Connected => inner.contexts.set_enabled(true),
                    crate::store::ContextEvent::Disconnected => inner.contexts.set_enabled(false),
                }
            }
        })
    }

    /// Starts the background node health checker; it stops when the returned handle is
    /// dropped or aborted.
    pub fn spawn_health_checker(&self) -> tokio::task::JoinHandle<()> {
        health::spawn(self.clone())
    }

    /// Starts the replica-sync worker (missed-write replay, rebuilds; see [`catchup`]); it
    /// stops when the returned handle is aborted.
    /// Returns the worker and the holder id it uses for the lease.
    pub fn spawn_replica_sync(&self) -> (tokio::task::JoinHandle<()>, String) {
        let holder = format!("miroir-{}", uuid::Uuid::new_v4());
        (catchup::spawn(self.clone(), holder.clone()), holder)
    }
}

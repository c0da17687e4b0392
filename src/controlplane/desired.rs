//! Pure stages of the MiroirCluster reconcile: validate the spec and build the desired
//! state, then compute the status from what the proxy runs. No I/O here, so every rule
//! is unit-tested.

use time::OffsetDateTime;

use super::crd::{
    ClusterPhase, Condition, KeySecretRefs, MeilisearchSpec, MiroirClusterSpec, MiroirClusterStatus, NodeStatus, RebalanceStatus,
    SecretKeyRef, ShardCoverage, UnderReplicatedShard,
};
use crate::config::{HealthConfig, ScatterConfig};
use crate::dataplane::health::{NodeHealth, NodeState};
use crate::dataplane::rebalance::plan::{Migration, PlacementState, PlanError};
use crate::dataplane::replica::{NodeSync, SyncState};
use crate::dataplane::topology::{Assignment, NodeSpec, Topology, TopologyError};

/// One broken rule of a spec: the field path (`spec.replicationFactor`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Joins errors into one line for a condition message or an event note.
pub fn join_errors(errors: &[SpecError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// Where the task store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    Sqlite { path: String },
    Redis { url_secret: SecretKeyRef, prefix: String },
}

/// Everything the operator applies for one MiroirCluster.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredCluster {
    /// Every node the spec asks for: `spec.nodes` plus, with `spec.meilisearch`, every desired
    /// managed node (what is declared is [`super::managed::declared_topology`]).
    pub topology: Topology,
    /// `spec.meilisearch` and the nodes' master key Secret, when the operator runs the nodes.
    pub meilisearch: Option<(MeilisearchSpec, SecretKeyRef)>,
    pub health: HealthConfig,
    pub scatter: ScatterConfig,
    pub store: StoreChoice,
    pub keys: KeySecretRefs,
}

/// The topology a spec describes (not validated).
pub fn topology_of(spec: &MiroirClusterSpec) -> Topology {
    Topology {
        shards: spec.shards,
        replication_factor: spec.replication_factor,
        replica_groups: spec.replica_groups,
        nodes: spec
            .nodes
            .iter()
            .map(|n| NodeSpec { id: n.id.clone(), address: n.address.clone(), replica_group: n.replica_group })
            .collect(),
    }
}

/// The CRD field a topology error is about (the error's own message names the config key).
fn topology_field(e: &TopologyError) -> String {
    match e {
        TopologyError::ShardsZero => "spec.shards".into(),
        TopologyError::ReplicationFactorZero | TopologyError::ReplicationFactorTooLarge { .. } => {
            "spec.replicationFactor".into()
        }
        TopologyError::ReplicaGroupsZero | TopologyError::EmptyGroup(_) => "spec.replicaGroups".into(),
        TopologyError::DuplicateNodeId(_) | TopologyError::EmptyNodeId => "spec.nodes".into(),
        TopologyError::BadAddress { id, .. } => format!("spec.nodes[{id}].address"),
        TopologyError::GroupOutOfRange { id, .. } => format!("spec.nodes[{id}].replicaGroup"),
    }
}

/// A topology the proxy refused to plan (`Proxy::declare_topology`), as a spec error.
pub fn plan_error(e: &PlanError) -> SpecError {
    match e {
        PlanError::ShardsChanged { .. } => SpecError { field: "spec.shards".into(), message: e.to_string() },
        PlanError::Invalid(t) => SpecError { field: topology_field(t), message: t.to_string() },
    }
}

fn check_secret_ref(errors: &mut Vec<SpecError>, field: &str, r: &SecretKeyRef) {
    if r.name.is_empty() {
        errors.push(SpecError { field: format!("{field}.name"), message: "must not be empty".into() });
    }
    if r.key.is_empty() {
        errors.push(SpecError { field: format!("{field}.key"), message: "must not be empty".into() });
    }
}

/// Validates a spec and builds the desired state. `applied` is the topology the proxy runs
/// now, if any: `shards` cannot change (the API server enforces it too, with CEL). Managed
/// nodes (`spec.meilisearch`) are named as for a MiroirCluster `cluster` in `default`: use
/// [`build_desired_for`] with the real name.
pub fn build_desired(spec: &MiroirClusterSpec, applied: Option<&Topology>) -> Result<DesiredCluster, Vec<SpecError>> {
    build_desired_for("cluster", "default", spec, applied, &Default::default())
}

/// [`build_desired`] for the MiroirCluster `name` in `namespace` (managed node ids and
/// addresses depend on them; `address_override` is the tests' seam, see
/// [`super::managed::ManagedContext`]).
pub fn build_desired_for(
    name: &str,
    namespace: &str,
    spec: &MiroirClusterSpec,
    applied: Option<&Topology>,
    address_override: &std::collections::BTreeMap<String, String>,
) -> Result<DesiredCluster, Vec<SpecError>> {
    let mut errors = Vec::new();
    let ctx = super::managed::ManagedContext { cluster: name, namespace, owner: Default::default(), address_override };
    let topology = super::managed::full_topology(spec, &ctx);
    let mut meilisearch = None;
    let mut rf_reported = false;
    if let Some(ms) = &spec.meilisearch {
        // Scaling below RF cannot happen: the data of a group needs RF nodes. Reported (the
        // cluster is Stalled, nothing is changed) rather than half-done.
        for g in 0..spec.replica_groups {
            let external = spec.nodes.iter().filter(|n| n.replica_group == g).count() as u32;
            if external + ms.nodes_per_group < spec.replication_factor && !rf_reported {
                rf_reported = true;
                errors.push(SpecError {
                    field: "spec.meilisearch.nodesPerGroup".into(),
                    message: format!(
                        "replica group {g} would have {} node(s), fewer than replicationFactor {}: every shard needs {} copies in the group; nothing is scaled",
                        external + ms.nodes_per_group,
                        spec.replication_factor,
                        spec.replication_factor
                    ),
                });
            }
        }
        if ms.nodes_per_group == 0 {
            errors.push(SpecError { field: "spec.meilisearch.nodesPerGroup".into(), message: "must be at least 1 (got 0)".into() });
        }
        for (field, v) in [("spec.meilisearch.image", &ms.image), ("spec.meilisearch.version", &ms.version)] {
            if v.is_empty() || v.contains(char::is_whitespace) {
                errors.push(SpecError { field: field.into(), message: format!("`{v}` is not an image name or tag") });
            }
        }
        match (&ms.master_key_secret_ref, &spec.keys.node_master_key) {
            (Some(m), Some(k)) if m != k => errors.push(SpecError {
                field: "spec.meilisearch.masterKeySecretRef".into(),
                message: "must equal spec.keys.nodeMasterKey (the key Miroir presents to the nodes), or be left out".into(),
            }),
            (Some(r), _) | (None, Some(r)) => {
                check_secret_ref(&mut errors, "spec.meilisearch.masterKeySecretRef", r);
                meilisearch = Some((ms.clone(), r.clone()));
            }
            (None, None) => errors.push(SpecError {
                field: "spec.keys.nodeMasterKey".into(),
                message: "is required with spec.meilisearch: the operator's nodes run with this master key".into(),
            }),
        }
    }
    // Shape rules (RF, groups, ids, addresses) are the proxy's own: one implementation.
    if let Err(e) = topology.validate() {
        let rf = matches!(e, TopologyError::ReplicationFactorTooLarge { .. });
        if !(rf && rf_reported) {
            errors.push(SpecError { field: topology_field(&e), message: e.to_string() });
        }
    }
    if let Some(cur) = applied {
        if cur.shards != spec.shards {
            errors.push(SpecError {
                field: "spec.shards".into(),
                message: format!("is immutable: the cluster runs with {} shards, the spec asks for {}", cur.shards, spec.shards),
            });
        }
    }

    let store = match (&spec.task_store.sqlite, &spec.task_store.redis) {
        (Some(s), None) => {
            if s.path.is_empty() {
                errors.push(SpecError { field: "spec.taskStore.sqlite.path".into(), message: "must not be empty".into() });
            }
            Some(StoreChoice::Sqlite { path: s.path.clone() })
        }
        (None, Some(r)) => {
            check_secret_ref(&mut errors, "spec.taskStore.redis.urlSecretRef", &r.url_secret_ref);
            Some(StoreChoice::Redis { url_secret: r.url_secret_ref.clone(), prefix: r.prefix.clone() })
        }
        _ => {
            errors.push(SpecError {
                field: "spec.taskStore".into(),
                message: "set exactly one of `sqlite` or `redis`".into(),
            });
            None
        }
    };

    for (field, r) in [
        ("spec.keys.masterKey", &spec.keys.master_key),
        ("spec.keys.nodeMasterKey", &spec.keys.node_master_key),
        ("spec.keys.adminApiKey", &spec.keys.admin_api_key),
    ] {
        if let Some(r) = r {
            check_secret_ref(&mut errors, field, r);
        }
    }

    let h = &spec.health;
    for (field, value) in [
        ("spec.health.intervalMs", h.interval_ms),
        ("spec.health.timeoutMs", h.timeout_ms),
        ("spec.health.unhealthyThreshold", u64::from(h.unhealthy_threshold)),
        ("spec.health.recoveryThreshold", u64::from(h.recovery_threshold)),
        ("spec.scatter.nodeTimeoutMs", spec.scatter.node_timeout_ms),
    ] {
        if value == 0 {
            errors.push(SpecError { field: field.into(), message: "must be at least 1 (got 0)".into() });
        }
    }

    match store {
        Some(store) if errors.is_empty() => Ok(DesiredCluster {
            topology,
            meilisearch,
            health: (&spec.health).into(),
            scatter: (&spec.scatter).into(),
            store,
            keys: spec.keys.clone(),
        }),
        _ => Err(errors),
    }
}

/// What the proxy of this pod runs now.
#[derive(Debug, Clone)]
pub struct RunningView<'a> {
    pub topology: &'a Topology,
    pub assignment: &'a Assignment,
    pub health: &'a [(String, NodeHealth)],
    /// Replica sync state of each node (missing: caught up).
    pub sync: &'a [(String, NodeSync)],
}

/// One migration as the status shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationView {
    pub id: String,
    /// `copying`, `fencing`, `cut-over`, `cleaning`, `done`, `cancelled`.
    pub phase: String,
    pub ended: bool,
    /// What changed (`added node-4`).
    pub cause: String,
    pub shards_total: u32,
    pub shards_moved: u32,
    pub documents_copied: u64,
    pub error: Option<String>,
}

impl From<&Migration> for MigrationView {
    fn from(m: &Migration) -> Self {
        MigrationView {
            id: m.id.clone(),
            phase: serde_json::to_value(m.phase).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
            ended: m.phase.ended(),
            cause: m.cause.description.clone(),
            shards_total: m.moves.len() as u32,
            shards_moved: m.shards_moved() as u32,
            documents_copied: m.documents_copied,
            error: m.error.clone(),
        }
    }
}

/// What the status needs of the stored placement state (`Proxy::load_placement`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RebalanceView {
    /// The migration that runs now.
    pub running: Option<MigrationView>,
    /// The last one that ended.
    pub last: Option<MigrationView>,
    /// The declared topology changed while a migration ran: planned when it ends.
    pub declared_pending: bool,
}

impl From<&PlacementState> for RebalanceView {
    fn from(s: &PlacementState) -> Self {
        RebalanceView {
            running: s.migration.as_ref().filter(|m| !m.phase.ended()).map(MigrationView::from),
            last: s.last.as_ref().map(MigrationView::from),
            declared_pending: s.declared_pending,
        }
    }
}

impl RebalanceView {
    /// The `status.rebalance` block: the running migration, else the last one.
    pub fn status(&self) -> RebalanceStatus {
        match (&self.running, &self.last) {
            (Some(m), _) => RebalanceStatus {
                phase: m.phase.clone(),
                migration: Some(m.id.clone()),
                cause: Some(m.cause.clone()),
                shards_moved: m.shards_moved,
                shards_total: m.shards_total,
                documents_copied: m.documents_copied,
                progress: Some(format!("{} {}/{}", m.phase, m.shards_moved, m.shards_total)),
                error: m.error.clone(),
            },
            (None, Some(m)) => RebalanceStatus {
                phase: IDLE.into(),
                migration: Some(m.id.clone()),
                cause: Some(m.cause.clone()),
                shards_moved: m.shards_moved,
                shards_total: m.shards_total,
                documents_copied: m.documents_copied,
                progress: Some(IDLE.into()),
                error: None,
            },
            (None, None) => RebalanceStatus { phase: IDLE.into(), progress: Some(IDLE.into()), ..Default::default() },
        }
    }
}

/// `status.rebalance.phase` when no migration runs.
pub const IDLE: &str = "idle";

/// Inputs of the status computation.
#[derive(Debug, Clone)]
pub struct StatusInput<'a> {
    pub generation: Option<i64>,
    /// The spec's validation result.
    pub validation: Result<(), &'a [SpecError]>,
    /// None until a topology was applied.
    pub running: Option<RunningView<'a>>,
    /// Migrations, from the stored placement state (None: nothing stored yet).
    pub rebalance: Option<&'a RebalanceView>,
    /// Managed nodes whose pods are awaited before they become nodes (the message).
    pub waiting: Option<&'a str>,
    pub now: OffsetDateTime,
}

/// Shard coverage of a running topology given node health.
pub fn shard_coverage(view: &RunningView<'_>) -> ShardCoverage {
    let usable = |id: &str| {
        view.health.iter().find(|(n, _)| n == id).map(|(_, h)| h.is_usable()).unwrap_or(true)
            && !view.sync.iter().find(|(n, _)| n == id).is_some_and(|(_, s)| is_behind(s.state))
    };
    let t = view.topology;
    let mut cov = ShardCoverage::default();
    for s in 0..t.shards {
        let mut any_healthy = false;
        let mut full = true;
        for g in 0..t.replica_groups {
            let healthy = view.assignment.holders(g, s).iter().filter(|id| usable(id)).count() as u32;
            any_healthy |= healthy > 0;
            if healthy < t.replication_factor {
                full = false;
                cov.under_replicated.push(UnderReplicatedShard { shard: s, replica_group: g, healthy_copies: healthy });
            }
        }
        if full {
            cov.fully_replicated += 1;
        }
        if !any_healthy {
            cov.unavailable.push(s);
        }
    }
    cov
}

fn state_name(s: NodeState) -> &'static str {
    match s {
        NodeState::Healthy => "healthy",
        NodeState::Failed => "failed",
        NodeState::Recovering => "recovering",
        NodeState::Unauthorized => "unauthorized",
    }
}

/// Behind on acknowledged writes. (`unchecked` is not: it lasts until the proxy's next look at a
/// node that just came back or since the process started, and the status says it per node.)
fn is_behind(s: SyncState) -> bool {
    matches!(s, SyncState::CatchingUp | SyncState::Rebuilding)
}

fn sync_name(s: SyncState) -> &'static str {
    match s {
        SyncState::CaughtUp => "caught-up",
        SyncState::CatchingUp => "catching-up",
        SyncState::Rebuilding => "rebuilding",
        SyncState::Unchecked => "unchecked",
    }
}

fn cond(type_: &str, status: &str, reason: &str, message: String, generation: Option<i64>, now: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_transition_time: now.into(),
        observed_generation: generation,
    }
}

/// Keeps `lastTransitionTime` of conditions whose `status` did not change.
pub fn carry_transition_times(prev: &[Condition], next: &mut [Condition]) {
    for c in next.iter_mut() {
        if let Some(p) = prev.iter().find(|p| p.type_ == c.type_) {
            if p.status == c.status {
                c.last_transition_time = p.last_transition_time.clone();
            }
        }
    }
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn list(shards: &[u32]) -> String {
    const SHOWN: usize = 20;
    let mut s = shards.iter().take(SHOWN).map(u32::to_string).collect::<Vec<_>>().join(", ");
    if shards.len() > SHOWN {
        s.push_str(&format!(" and {} more", shards.len() - SHOWN));
    }
    s
}

/// `12345` → `12,345`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `Progressing=True/Rebalancing` message of a running migration.
fn rebalancing_message(m: &MigrationView, declared_pending: bool) -> String {
    let mut msg = format!(
        "moving {} shard(s) ({}): phase {}, {}/{} moved, {} documents copied",
        m.shards_total,
        m.cause,
        m.phase,
        m.shards_moved,
        m.shards_total,
        thousands(m.documents_copied)
    );
    if let Some(e) = &m.error {
        msg.push_str(&format!("; retrying after an error: {e}"));
    }
    if declared_pending {
        msg.push_str("; a newer spec change is planned when this migration ends");
    }
    msg
}

/// `Progressing=False/Idle` message: the last migration's outcome.
fn idle_message(last: Option<&MigrationView>) -> String {
    match last {
        None => "no migration has run".into(),
        Some(m) if m.phase == "done" => {
            format!("last migration {} done: {}, {} shard(s) moved", m.id, m.cause, m.shards_total)
        }
        Some(m) => format!(
            "last migration {} {}: {}, {}/{} shard(s) moved",
            m.id, m.phase, m.cause, m.shards_moved, m.shards_total
        ),
    }
}

/// An event about data movement, decided by [`rebalance_events`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebalanceEvent {
    /// Warning (else Normal).
    pub warning: bool,
    /// `RebalanceStarted`, `RebalanceFinished` or `RebalanceFailed`.
    pub reason: &'static str,
    pub note: String,
}

fn started_event(m: &MigrationView) -> RebalanceEvent {
    RebalanceEvent {
        warning: false,
        reason: "RebalanceStarted",
        note: format!("migration {}: {}; {} shard(s) to move", m.id, m.cause, m.shards_total),
    }
}

fn finished_event(id: &str, last: Option<&MigrationView>) -> RebalanceEvent {
    let note = match last.filter(|l| l.id == id) {
        Some(l) => format!(
            "migration {} {}: {}, {}/{} shard(s) moved, {} documents copied",
            l.id,
            l.phase,
            l.cause,
            l.shards_moved,
            l.shards_total,
            thousands(l.documents_copied)
        ),
        None => format!("migration {id} ended"),
    };
    RebalanceEvent { warning: false, reason: "RebalanceFinished", note }
}

/// The events a change of `status.rebalance` calls for: `before` is what the status said
/// (None: unknown), `now` the stored state. A migration seen for the first time is
/// `RebalanceStarted`; one seen running that no longer runs is `RebalanceFinished`; a running
/// one whose error is new is `RebalanceFailed` (the executor retries; the same error again is
/// not reported twice).
pub fn rebalance_events(before: Option<&RebalanceStatus>, now: &RebalanceView) -> Vec<RebalanceEvent> {
    let mut out = Vec::new();
    let before_id = before.and_then(|b| b.migration.as_deref());
    let before_running = before.filter(|b| b.phase != IDLE).and_then(|b| b.migration.as_deref());
    match &now.running {
        Some(r) => {
            let same = before_id == Some(r.id.as_str());
            if !same {
                if let Some(id) = before_running {
                    out.push(finished_event(id, now.last.as_ref()));
                }
                out.push(started_event(r));
            }
            if let Some(e) = &r.error {
                let known = same && before.and_then(|b| b.error.as_deref()) == Some(e.as_str());
                if !known {
                    out.push(RebalanceEvent {
                        warning: true,
                        reason: "RebalanceFailed",
                        note: format!("migration {} ({}): {e}; retrying", r.id, r.phase),
                    });
                }
            }
        }
        None => {
            if let Some(id) = before_running {
                out.push(finished_event(id, now.last.as_ref()));
            } else if let (Some(_), Some(l)) = (before, &now.last) {
                if before_id != Some(l.id.as_str()) {
                    // Planned and ended between two looks.
                    out.push(started_event(l));
                    out.push(finished_event(&l.id, Some(l)));
                }
            }
        }
    }
    out
}

/// The status the cluster should show. `prev` keeps transition times stable so that an
/// unchanged situation yields an identical status (and no write).
pub fn cluster_status(prev: Option<&MiroirClusterStatus>, input: &StatusInput<'_>) -> MiroirClusterStatus {
    let now = rfc3339(input.now);
    let g = input.generation;
    let mut status = MiroirClusterStatus { observed_generation: g, ..Default::default() };

    let coverage = input.running.as_ref().map(shard_coverage);
    if let Some(view) = &input.running {
        let by_node = view.assignment.shards_by_node();
        status.nodes = view
            .topology
            .nodes
            .iter()
            .map(|n| {
                let h = view.health.iter().find(|(id, _)| *id == n.id).map(|(_, h)| *h).unwrap_or_default();
                let sync = view.sync.iter().find(|(id, _)| *id == n.id).map(|(_, s)| *s);
                NodeStatus {
                    id: n.id.clone(),
                    replica_group: n.replica_group,
                    health: state_name(h.state).into(),
                    shards: by_node.get(&n.id).map(Vec::len).unwrap_or(0) as u32,
                    sync: sync_name(sync.map(|s| s.state).unwrap_or(SyncState::CaughtUp)).into(),
                    pending_operations: sync.map(|s| s.pending_operations).unwrap_or(0),
                    pending_bytes: sync.map(|s| s.pending_bytes).unwrap_or(0),
                }
            })
            .collect();
        let healthy = status.nodes.iter().filter(|n| n.health == "healthy" && n.sync != "catching-up" && n.sync != "rebuilding").count();
        status.nodes_ready = Some(format!("{healthy}/{}", status.nodes.len()));
    }
    status.rebalance = input.rebalance.map(RebalanceView::status);
    let migrating = input.rebalance.and_then(|r| r.running.as_ref());
    let declared_pending = input.rebalance.is_some_and(|r| r.declared_pending);
    // While a migration runs: Progressing=True/Rebalancing (whatever the spec says now: the
    // data moves in the background until it is done).
    let progressing = |otherwise: Condition| match migrating {
        Some(m) => cond("Progressing", "True", "Rebalancing", rebalancing_message(m, declared_pending), g, &now),
        None => otherwise,
    };

    let (phase, conditions) = match (&input.validation, &coverage) {
        (Err(errors), _) => {
            let msg = join_errors(errors);
            (
                ClusterPhase::Stalled,
                vec![
                    cond("Ready", "False", "InvalidSpec", msg.clone(), g, &now),
                    progressing(cond("Progressing", "False", "InvalidSpec", msg, g, &now)),
                    cond("Degraded", "Unknown", "InvalidSpec", "the spec cannot be applied".into(), g, &now),
                ],
            )
        }
        (Ok(()), None) => (
            ClusterPhase::Pending,
            match input.waiting {
                None => vec![
                    cond("Ready", "Unknown", "Reconciling", "the topology is not applied yet".into(), g, &now),
                    cond("Progressing", "True", "Reconciling", "applying the topology".into(), g, &now),
                    cond("Degraded", "Unknown", "Reconciling", String::new(), g, &now),
                ],
                Some(w) => vec![
                    cond("Ready", "Unknown", "WaitingForPods", w.into(), g, &now),
                    cond("Progressing", "True", "WaitingForPods", w.into(), g, &now),
                    cond("Degraded", "Unknown", "WaitingForPods", String::new(), g, &now),
                ],
            },
        ),
        (Ok(()), Some(cov)) => {
            let degraded = if !cov.unavailable.is_empty() {
                cond(
                    "Degraded",
                    "True",
                    "ShardsUnavailable",
                    format!("no healthy copy of shard(s) {}", list(&cov.unavailable)),
                    g,
                    &now,
                )
            } else if !cov.under_replicated.is_empty() {
                let mut shards: Vec<u32> = cov.under_replicated.iter().map(|u| u.shard).collect();
                shards.dedup();
                cond(
                    "Degraded",
                    "True",
                    "UnderReplicated",
                    format!("shard(s) {} have fewer than {} healthy copies in some group", list(&shards), input.running.as_ref().map(|v| v.topology.replication_factor).unwrap_or(0)),
                    g,
                    &now,
                )
            } else {
                cond("Degraded", "False", "AllShardsReplicated", String::new(), g, &now)
            };
            let idle = match input.waiting {
                // A scale-up: new pods become nodes (and a migration) once ready.
                Some(w) => cond("Progressing", "True", "WaitingForPods", w.into(), g, &now),
                None => cond(
                    "Progressing",
                    "False",
                    "Idle",
                    idle_message(input.rebalance.and_then(|r| r.last.as_ref())),
                    g,
                    &now,
                ),
            };
            // Reads keep going to the old holders until the cut-over: a migration does not
            // make the cluster unready; Ready follows shard coverage.
            let ready = if !cov.unavailable.is_empty() {
                cond("Ready", "False", "ShardsUnavailable", degraded.message.clone(), g, &now)
            } else if !cov.under_replicated.is_empty() {
                cond("Ready", "True", "ServingDegraded", "every shard has a healthy copy".into(), g, &now)
            } else {
                cond("Ready", "True", "TopologyApplied", String::new(), g, &now)
            };
            let phase = if migrating.is_some() {
                ClusterPhase::Rebalancing
            } else if !cov.unavailable.is_empty() || !cov.under_replicated.is_empty() {
                ClusterPhase::Degraded
            } else {
                ClusterPhase::Ready
            };
            (phase, vec![ready, progressing(idle), degraded])
        }
    };
    status.phase = Some(phase);
    status.conditions = conditions;
    status.shard_coverage = coverage;
    if let Some(p) = prev {
        carry_transition_times(&p.conditions, &mut status.conditions);
        // Conditions other parts of the operator own (`SecretsAvailable`, written by the key
        // Secret watcher) are kept as they are.
        let own = |t: &str| matches!(t, "Ready" | "Progressing" | "Degraded");
        status.conditions.extend(p.conditions.iter().filter(|c| !own(&c.type_)).cloned());
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controlplane::crd::{ClusterNode, RedisStoreSpec, TaskStoreSpec};

    fn spec(shards: u32, rf: u32, groups: &[&[&str]]) -> MiroirClusterSpec {
        let mut nodes = Vec::new();
        for (g, ids) in groups.iter().enumerate() {
            for id in *ids {
                nodes.push(ClusterNode {
                    id: id.to_string(),
                    address: format!("http://{id}.meili:7700"),
                    replica_group: g as u32,
                });
            }
        }
        MiroirClusterSpec {
            shards,
            replication_factor: rf,
            replica_groups: groups.len() as u32,
            nodes,
            meilisearch: None,
            task_store: Default::default(),
            keys: Default::default(),
            health: Default::default(),
            scatter: Default::default(),
        }
    }

    fn fields(r: Result<DesiredCluster, Vec<SpecError>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn valid_spec_builds_the_topology_and_runtime() {
        let mut s = spec(8, 2, &[&["a", "b"], &["c", "d", "e"]]);
        s.health.interval_ms = 250;
        s.scatter.unavailable_shard_policy = crate::controlplane::crd::UnavailableShardPolicySpec::Error;
        let d = build_desired(&s, None).unwrap();
        assert_eq!(d.topology.shards, 8);
        assert_eq!(d.topology.group_nodes(1), vec!["c", "d", "e"]);
        assert_eq!(d.health.interval_ms, 250);
        assert_eq!(d.scatter.unavailable_shard_policy, crate::config::UnavailableShardPolicy::Error);
        assert_eq!(d.store, StoreChoice::Sqlite { path: "/var/lib/miroir/miroir.db".into() });
    }

    #[test]
    fn each_topology_rule_names_its_field() {
        assert_eq!(fields(build_desired(&spec(0, 1, &[&["a"]]), None)), ["spec.shards"]);
        assert_eq!(fields(build_desired(&spec(4, 0, &[&["a"]]), None)), ["spec.replicationFactor"]);
        assert_eq!(fields(build_desired(&spec(4, 3, &[&["a", "b"]]), None)), ["spec.replicationFactor"]);
        let mut s = spec(4, 1, &[&["a"]]);
        s.replica_groups = 0;
        assert_eq!(fields(build_desired(&s, None)), ["spec.replicaGroups"]);
        let mut s = spec(4, 1, &[&["a"]]);
        s.replica_groups = 2; // group 1 has no nodes
        assert_eq!(fields(build_desired(&s, None)), ["spec.replicaGroups"]);
        assert_eq!(fields(build_desired(&spec(4, 1, &[&["a", "a"]]), None)), ["spec.nodes"]);
        assert_eq!(fields(build_desired(&spec(4, 1, &[&[""]]), None)), ["spec.nodes"]);
        let mut s = spec(4, 1, &[&["a"]]);
        s.nodes[0].address = "ftp://x".into();
        assert_eq!(fields(build_desired(&s, None)), ["spec.nodes[a].address"]);
        let mut s = spec(4, 1, &[&["a"]]);
        s.nodes.push(ClusterNode { id: "b".into(), address: "http://b:7700".into(), replica_group: 5 });
        assert_eq!(fields(build_desired(&s, None)), ["spec.nodes[b].replicaGroup"]);
    }

    #[test]
    fn rf_larger_than_a_group_message_is_explicit() {
        let e = build_desired(&spec(4, 2, &[&["a", "b"], &["c"]]), None).unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(e[0].message.contains("larger than replica group 1"), "{}", e[0]);
    }

    #[test]
    fn shards_cannot_change_once_applied() {
        let running = topology_of(&spec(4, 1, &[&["a"]]));
        assert_eq!(fields(build_desired(&spec(8, 1, &[&["a"]]), Some(&running))), ["spec.shards"]);
        assert!(build_desired(&spec(4, 1, &[&["a", "b"]]), Some(&running)).is_ok());
    }

    #[test]
    fn task_store_needs_exactly_one_backend() {
        let mut s = spec(4, 1, &[&["a"]]);
        s.task_store = TaskStoreSpec { sqlite: None, redis: None };
        assert_eq!(fields(build_desired(&s, None)), ["spec.taskStore"]);
        let redis = RedisStoreSpec {
            url_secret_ref: SecretKeyRef { name: "r".into(), key: "url".into() },
            prefix: "p:".into(),
        };
        s.task_store = TaskStoreSpec { sqlite: Some(crate::controlplane::crd::SqliteStoreSpec { path: "x".into() }), redis: Some(redis.clone()) };
        assert_eq!(fields(build_desired(&s, None)), ["spec.taskStore"]);
        s.task_store = TaskStoreSpec { sqlite: None, redis: Some(redis) };
        assert!(matches!(build_desired(&s, None).unwrap().store, StoreChoice::Redis { .. }));
        s.task_store.redis.as_mut().unwrap().url_secret_ref.key.clear();
        assert_eq!(fields(build_desired(&s, None)), ["spec.taskStore.redis.urlSecretRef.key"]);
        s.task_store = TaskStoreSpec { sqlite: Some(crate::controlplane::crd::SqliteStoreSpec { path: String::new() }), redis: None };
        assert_eq!(fields(build_desired(&s, None)), ["spec.taskStore.sqlite.path"]);
    }

    #[test]
    fn secret_refs_and_durations_must_be_set() {
        let mut s = spec(4, 1, &[&["a"]]);
        s.keys.master_key = Some(SecretKeyRef { name: String::new(), key: "k".into() });
        s.health.timeout_ms = 0;
        s.health.recovery_threshold = 0;
        s.scatter.node_timeout_ms = 0;
        assert_eq!(
            fields(build_desired(&s, None)),
            ["spec.keys.masterKey.name", "spec.health.timeoutMs", "spec.health.recoveryThreshold", "spec.scatter.nodeTimeoutMs"]
        );
        let mut s = spec(4, 1, &[&["a"]]);
        s.health.interval_ms = 0;
        s.health.unhealthy_threshold = 0;
        assert_eq!(fields(build_desired(&s, None)), ["spec.health.intervalMs", "spec.health.unhealthyThreshold"]);
    }

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-01-02 03:04:05 UTC)
    }

    fn failed() -> NodeHealth {
        NodeHealth { state: NodeState::Failed, consecutive_failures: 3, consecutive_successes: 0 }
    }

    #[test]
    fn healthy_cluster_is_ready() {
        let t = topology_of(&spec(4, 1, &[&["a", "b"]]));
        let a = t.assignment();
        let health = vec![];
        let st = cluster_status(
            None,
            &StatusInput {
                generation: Some(3),
                validation: Ok(()),
                running: Some(RunningView { topology: &t, assignment: &a, health: &health, sync: &[] }),
                rebalance: None,
                waiting: None,
                now: now(),
            },
        );
        assert_eq!(st.phase, Some(ClusterPhase::Ready));
        assert_eq!(st.observed_generation, Some(3));
        assert_eq!(st.nodes_ready.as_deref(), Some("2/2"));
        assert_eq!(st.nodes.iter().map(|n| n.shards).sum::<u32>(), 4);
        let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!((ready.status.as_str(), ready.observed_generation), ("True", Some(3)));
        assert_eq!(st.shard_coverage.unwrap().fully_replicated, 4);
    }

    #[test]
    fn failed_nodes_degrade_or_unready_the_cluster() {
        let t = topology_of(&spec(8, 2, &[&["a", "b", "c"]]));
        let a = t.assignment();
        // One node down: every shard it held has 1 of 2 copies, none is unavailable.
        let health = vec![("a".to_string(), failed())];
        let input = StatusInput {
            generation: Some(1),
            validation: Ok(()),
            running: Some(RunningView { topology: &t, assignment: &a, health: &health, sync: &[] }),
            rebalance: None,
            waiting: None,
            now: now(),
        };
        let st = cluster_status(None, &input);
        assert_eq!(st.phase, Some(ClusterPhase::Degraded));
        let cov = st.shard_coverage.clone().unwrap();
        let held_by_a = a.shards_by_node()["a"].len();
        assert_eq!(cov.under_replicated.len(), held_by_a);
        assert!(cov.under_replicated.iter().all(|u| u.healthy_copies == 1));
        assert!(cov.unavailable.is_empty());
        assert_eq!(st.nodes_ready.as_deref(), Some("2/3"));
        assert_eq!(st.conditions[0].status, "True", "still serving every shard");
        // Everything down: every shard unavailable, not Ready.
        let health: Vec<_> = ["a", "b", "c"].iter().map(|n| (n.to_string(), failed())).collect();
        let st = cluster_status(None, &StatusInput { running: Some(RunningView { topology: &t, assignment: &a, health: &health, sync: &[] }), ..input });
        assert_eq!(st.shard_coverage.unwrap().unavailable.len(), 8);
        assert_eq!((st.conditions[0].status.as_str(), st.conditions[0].reason.as_str()), ("False", "ShardsUnavailable"));
    }

    fn migration(id: &str, phase: &str, moved: u32, docs: u64, error: Option<&str>) -> MigrationView {
        MigrationView {
            id: id.into(),
            phase: phase.into(),
            ended: matches!(phase, "done" | "cancelled"),
            cause: "added d".into(),
            shards_total: 3,
            shards_moved: moved,
            documents_copied: docs,
            error: error.map(str::to_string),
        }
    }

    fn running(m: MigrationView) -> RebalanceView {
        RebalanceView { running: Some(m), last: None, declared_pending: false }
    }

    fn idle(last: Option<MigrationView>) -> RebalanceView {
        RebalanceView { running: None, last, declared_pending: false }
    }

    #[test]
    fn a_running_migration_is_progressing_and_an_ended_one_idle() {
        let t = topology_of(&spec(4, 1, &[&["a", "b"]]));
        let a = t.assignment();
        let view = running(migration("3f2a", "copying", 1, 12_345, None));
        let input = StatusInput {
            generation: Some(2),
            validation: Ok(()),
            running: Some(RunningView { topology: &t, assignment: &a, health: &[], sync: &[] }),
            rebalance: Some(&view),
            waiting: None,
            now: now(),
        };
        let st = cluster_status(None, &input);
        assert_eq!(st.phase, Some(ClusterPhase::Rebalancing));
        let p = st.conditions.iter().find(|c| c.type_ == "Progressing").unwrap();
        assert_eq!((p.status.as_str(), p.reason.as_str()), ("True", "Rebalancing"));
        assert_eq!(p.message, "moving 3 shard(s) (added d): phase copying, 1/3 moved, 12,345 documents copied");
        // Reads stay on the old holders meanwhile: still Ready.
        let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "TopologyApplied"));
        let r = st.rebalance.clone().unwrap();
        assert_eq!((r.phase.as_str(), r.migration.as_deref(), r.shards_moved, r.shards_total, r.documents_copied), ("copying", Some("3f2a"), 1, 3, 12_345));

        // Progress changes the message, not the transition time.
        let later_view = running(migration("3f2a", "fencing", 3, 20_000, Some("node d: timeout")));
        let later = StatusInput { rebalance: Some(&later_view), now: now() + time::Duration::minutes(1), ..input.clone() };
        let st2 = cluster_status(Some(&st), &later);
        let p2 = st2.conditions.iter().find(|c| c.type_ == "Progressing").unwrap();
        assert_eq!(p2.last_transition_time, p.last_transition_time);
        assert!(p2.message.ends_with("; retrying after an error: node d: timeout"), "{}", p2.message);
        assert_eq!(st2.rebalance.as_ref().unwrap().error.as_deref(), Some("node d: timeout"));

        // Done: Progressing=False/Idle naming the outcome, transition time moves.
        let done_view = idle(Some(migration("3f2a", "done", 3, 20_000, None)));
        let done = StatusInput { rebalance: Some(&done_view), now: now() + time::Duration::minutes(2), ..input.clone() };
        let st3 = cluster_status(Some(&st2), &done);
        assert_eq!(st3.phase, Some(ClusterPhase::Ready));
        let p3 = st3.conditions.iter().find(|c| c.type_ == "Progressing").unwrap();
        assert_eq!((p3.status.as_str(), p3.reason.as_str()), ("False", "Idle"));
        assert_eq!(p3.message, "last migration 3f2a done: added d, 3 shard(s) moved");
        assert_ne!(p3.last_transition_time, p.last_transition_time);
        let r = st3.rebalance.unwrap();
        assert_eq!((r.phase.as_str(), r.migration.as_deref(), r.shards_moved, r.shards_total, r.error), ("idle", Some("3f2a"), 3, 3, None));

        // Never migrated: the condition is there all the same (for `kubectl wait`).
        let none = idle(None);
        let st4 = cluster_status(None, &StatusInput { rebalance: Some(&none), ..input.clone() });
        let p4 = st4.conditions.iter().find(|c| c.type_ == "Progressing").unwrap();
        assert_eq!((p4.status.as_str(), p4.reason.as_str(), p4.message.as_str()), ("False", "Idle", "no migration has run"));
        assert_eq!(st4.rebalance.unwrap().phase, "idle");
        let st5 = cluster_status(None, &StatusInput { rebalance: None, ..input });
        assert_eq!(st5.conditions.iter().find(|c| c.type_ == "Progressing").unwrap().reason, "Idle");
        assert_eq!(st5.rebalance, None);
    }

    #[test]
    fn changing_shards_is_an_invalid_spec_naming_shards() {
        // Caught before the declaration (the proxy runs 4 shards) ...
        let running_t = topology_of(&spec(4, 1, &[&["a"]]));
        let errors = build_desired(&spec(8, 1, &[&["a"]]), Some(&running_t)).unwrap_err();
        // ... or by the declaration itself (the task store holds 4 shards).
        let declared = plan_error(&PlanError::ShardsChanged { from: 4, to: 8 });
        assert_eq!(declared.field, "spec.shards");
        assert!(declared.message.contains("4 → 8"), "{declared}");
        for errors in [errors, vec![declared]] {
            let a = running_t.assignment();
            let view = idle(None);
            let st = cluster_status(
                None,
                &StatusInput {
                    generation: Some(2),
                    validation: Err(&errors),
                    running: Some(RunningView { topology: &running_t, assignment: &a, health: &[], sync: &[] }),
                    rebalance: Some(&view),
                    waiting: None,
                    now: now(),
                },
            );
            assert_eq!(st.phase, Some(ClusterPhase::Stalled));
            for type_ in ["Ready", "Progressing"] {
                let c = st.conditions.iter().find(|c| c.type_ == type_).unwrap();
                assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "InvalidSpec"));
                assert!(c.message.contains("spec.shards"), "{}", c.message);
            }
        }
        // An invalid topology refused by the planner names its field too.
        let e = plan_error(&PlanError::Invalid(TopologyError::ReplicationFactorZero));
        assert_eq!(e.field, "spec.replicationFactor");
    }

    #[test]
    fn an_invalid_spec_during_a_migration_still_shows_it_progressing() {
        let errors = vec![SpecError { field: "spec.shards".into(), message: "is immutable".into() }];
        let view = running(migration("m1", "copying", 0, 0, None));
        let st = cluster_status(
            None,
            &StatusInput { generation: Some(3), validation: Err(&errors), running: None, rebalance: Some(&view), waiting: None, now: now() },
        );
        let p = st.conditions.iter().find(|c| c.type_ == "Progressing").unwrap();
        assert_eq!((p.status.as_str(), p.reason.as_str()), ("True", "Rebalancing"));
        assert_eq!(st.conditions[0].reason, "InvalidSpec");
    }

    #[test]
    fn rebalance_events_follow_status_changes_once() {
        let reasons = |ev: Vec<RebalanceEvent>| ev.into_iter().map(|e| e.reason).collect::<Vec<_>>();
        let nothing = idle(None);
        let idle_before = nothing.status();
        // Unknown before and nothing running: nothing to say.
        assert!(rebalance_events(None, &nothing).is_empty());
        assert!(rebalance_events(Some(&idle_before), &nothing).is_empty());

        // Started.
        let run = running(migration("m1", "copying", 0, 0, None));
        let ev = rebalance_events(Some(&idle_before), &run);
        assert_eq!(ev, vec![RebalanceEvent { warning: false, reason: "RebalanceStarted", note: "migration m1: added d; 3 shard(s) to move".into() }]);
        // A status that already says it: nothing more.
        let seen = run.status();
        assert_eq!(seen.progress.as_deref(), Some(format!("{} {}/{}", seen.phase, seen.shards_moved, seen.shards_total).as_str()));
        assert_eq!(idle_before.progress.as_deref(), Some("idle"));
        assert!(rebalance_events(Some(&seen), &running(migration("m1", "copying", 2, 500, None))).is_empty());

        // An error: one Warning, not repeated while the text stays; a new text is reported.
        let failing = running(migration("m1", "copying", 2, 500, Some("node d refused")));
        let ev = rebalance_events(Some(&seen), &failing);
        assert_eq!(reasons(ev.clone()), ["RebalanceFailed"]);
        assert!(ev[0].warning && ev[0].note.contains("node d refused"), "{ev:?}");
        assert!(rebalance_events(Some(&failing.status()), &failing).is_empty());
        let other = running(migration("m1", "copying", 2, 500, Some("timeout")));
        assert_eq!(reasons(rebalance_events(Some(&failing.status()), &other)), ["RebalanceFailed"]);

        // Finished, with its outcome; then quiet.
        let done = idle(Some(migration("m1", "done", 3, 900, None)));
        let ev = rebalance_events(Some(&other.status()), &done);
        assert_eq!(ev.len(), 1);
        assert_eq!((ev[0].reason, ev[0].note.as_str()), ("RebalanceFinished", "migration m1 done: added d, 3/3 shard(s) moved, 900 documents copied"));
        assert!(rebalance_events(Some(&done.status()), &done).is_empty());

        // The next migration: started (the previous one was seen ended already).
        let next = RebalanceView { running: Some(migration("m2", "copying", 0, 0, None)), last: done.last.clone(), declared_pending: false };
        assert_eq!(reasons(rebalance_events(Some(&done.status()), &next)), ["RebalanceStarted"]);
        // One that ran and ended between two looks: both.
        let quick = idle(Some(migration("m3", "done", 3, 10, None)));
        assert_eq!(reasons(rebalance_events(Some(&done.status()), &quick)), ["RebalanceStarted", "RebalanceFinished"]);
        // m1 seen running, now m2 runs: m1 finished, m2 started.
        assert_eq!(reasons(rebalance_events(Some(&seen), &next)), ["RebalanceFinished", "RebalanceStarted"]);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(12_345), "12,345");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn invalid_spec_is_stalled_with_reason_and_unchanged_status_is_identical() {
        let errors = vec![SpecError { field: "spec.replicationFactor".into(), message: "too large".into() }];
        let input = StatusInput { generation: Some(5), validation: Err(&errors), running: None, rebalance: None, waiting: None, now: now() };
        let st = cluster_status(None, &input);
        assert_eq!(st.phase, Some(ClusterPhase::Stalled));
        assert_eq!(st.conditions[0].reason, "InvalidSpec");
        assert!(st.conditions[0].message.contains("spec.replicationFactor: too large"));
        // Recomputed later with the same inputs: equal, transition times kept.
        let later = StatusInput { now: now() + time::Duration::minutes(5), ..input.clone() };
        assert_eq!(cluster_status(Some(&st), &later), st);
        // Pending when valid but nothing applied yet.
        let pending = cluster_status(Some(&st), &StatusInput { validation: Ok(()), ..later });
        assert_eq!(pending.phase, Some(ClusterPhase::Pending));
        assert_ne!(pending.conditions[0].last_transition_time, st.conditions[0].last_transition_time);
    }
}

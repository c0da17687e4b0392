//! Pure stages of the MiroirCluster reconcile: validate the spec and build the desired
//! state, then compute the status from what the proxy runs. No I/O here, so every rule
//! is unit-tested.

use time::OffsetDateTime;

use super::crd::{
    ClusterPhase, Condition, KeySecretRefs, MiroirClusterSpec, MiroirClusterStatus, NodeStatus, SecretKeyRef,
    ShardCoverage, UnderReplicatedShard,
};
use crate::config::{HealthConfig, ScatterConfig};
use crate::dataplane::health::{NodeHealth, NodeState};
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
    pub topology: Topology,
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

fn check_secret_ref(errors: &mut Vec<SpecError>, field: &str, r: &SecretKeyRef) {
    if r.name.is_empty() {
        errors.push(SpecError { field: format!("{field}.name"), message: "must not be empty".into() });
    }
    if r.key.is_empty() {
        errors.push(SpecError { field: format!("{field}.key"), message: "must not be empty".into() });
    }
}

/// Validates a spec and builds the desired state. `applied` is the topology the proxy runs
/// now, if any: `shards` cannot change (the API server enforces it too, with CEL).
pub fn build_desired(spec: &MiroirClusterSpec, applied: Option<&Topology>) -> Result<DesiredCluster, Vec<SpecError>> {
    let mut errors = Vec::new();
    let topology = topology_of(spec);
    // Shape rules (RF, groups, ids, addresses) are the proxy's own: one implementation.
    if let Err(e) = topology.validate() {
        errors.push(SpecError { field: topology_field(&e), message: e.to_string() });
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

/// Inputs of the status computation.
#[derive(Debug, Clone)]
pub struct StatusInput<'a> {
    pub generation: Option<i64>,
    /// The spec's validation result.
    pub validation: Result<(), &'a [SpecError]>,
    /// None until a topology was applied.
    pub running: Option<RunningView<'a>>,
    /// Shards moved by topology changes and not rebalanced yet.
    pub pending_rebalance: &'a [u32],
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
    status.pending_rebalance_shards = input.pending_rebalance.to_vec();

    let (phase, conditions) = match (&input.validation, &coverage) {
        (Err(errors), _) => {
            let msg = join_errors(errors);
            (
                ClusterPhase::Stalled,
                vec![
                    cond("Ready", "False", "InvalidSpec", msg.clone(), g, &now),
                    cond("Progressing", "False", "InvalidSpec", msg, g, &now),
                    cond("Degraded", "Unknown", "InvalidSpec", "the spec cannot be applied".into(), g, &now),
                ],
            )
        }
        (Ok(()), None) => (
            ClusterPhase::Pending,
            vec![
                cond("Ready", "Unknown", "Reconciling", "the topology is not applied yet".into(), g, &now),
                cond("Progressing", "True", "Reconciling", "applying the topology".into(), g, &now),
                cond("Degraded", "Unknown", "Reconciling", String::new(), g, &now),
            ],
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
            if !input.pending_rebalance.is_empty() {
                let msg = format!(
                    "shard(s) {} moved to other nodes; their data must be rebalanced (not automated yet)",
                    list(input.pending_rebalance)
                );
                (
                    ClusterPhase::Rebalancing,
                    vec![
                        cond("Ready", "False", "RebalanceRequired", msg.clone(), g, &now),
                        cond("Progressing", "True", "RebalanceRequired", msg, g, &now),
                        degraded,
                    ],
                )
            } else if !cov.unavailable.is_empty() {
                (
                    ClusterPhase::Degraded,
                    vec![
                        cond("Ready", "False", "ShardsUnavailable", degraded.message.clone(), g, &now),
                        cond("Progressing", "False", "TopologyApplied", String::new(), g, &now),
                        degraded,
                    ],
                )
            } else if !cov.under_replicated.is_empty() {
                (
                    ClusterPhase::Degraded,
                    vec![
                        cond("Ready", "True", "ServingDegraded", "every shard has a healthy copy".into(), g, &now),
                        cond("Progressing", "False", "TopologyApplied", String::new(), g, &now),
                        degraded,
                    ],
                )
            } else {
                (
                    ClusterPhase::Ready,
                    vec![
                        cond("Ready", "True", "TopologyApplied", String::new(), g, &now),
                        cond("Progressing", "False", "TopologyApplied", String::new(), g, &now),
                        degraded,
                    ],
                )
            }
        }
    };
    status.phase = Some(phase);
    status.conditions = conditions;
    status.shard_coverage = coverage;
    if let Some(p) = prev {
        carry_transition_times(&p.conditions, &mut status.conditions);
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
                pending_rebalance: &[],
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
            pending_rebalance: &[],
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

    #[test]
    fn moved_shards_mean_rebalance_required() {
        let t = topology_of(&spec(4, 1, &[&["a", "b"]]));
        let a = t.assignment();
        let st = cluster_status(
            None,
            &StatusInput {
                generation: Some(2),
                validation: Ok(()),
                running: Some(RunningView { topology: &t, assignment: &a, health: &[], sync: &[] }),
                pending_rebalance: &[1, 3],
                now: now(),
            },
        );
        assert_eq!(st.phase, Some(ClusterPhase::Rebalancing));
        let p = st.conditions.iter().find(|c| c.type_ == "Progressing").unwrap();
        assert_eq!((p.status.as_str(), p.reason.as_str()), ("True", "RebalanceRequired"));
        assert_eq!(st.pending_rebalance_shards, vec![1, 3]);
    }

    #[test]
    fn invalid_spec_is_stalled_with_reason_and_unchanged_status_is_identical() {
        let errors = vec![SpecError { field: "spec.replicationFactor".into(), message: "too large".into() }];
        let input = StatusInput { generation: Some(5), validation: Err(&errors), running: None, pending_rebalance: &[], now: now() };
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

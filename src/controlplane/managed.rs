//! Meilisearch nodes run by the operator (`MiroirCluster.spec.meilisearch`): pure functions
//! from the spec and what is observed (the StatefulSets' status, the stored placement, node
//! health) to the topology to declare and the objects to apply. No I/O here.
//!
//! Per replica group `g` the operator owns a StatefulSet `<cluster>-g<g>`, a headless Service
//! of the same name and a PodDisruptionBudget, all owned by the MiroirCluster. Node ids are
//! the pod names (`<cluster>-g<g>-<ordinal>`), addresses the pods' stable DNS names
//! (`http://<pod>.<service>.<namespace>.svc:7700`).
//!
//! * **Scale up**: a new pod becomes a node of the declared topology once the StatefulSet
//!   reports it ready; the declaration plans a migration that moves its shards in.
//! * **Scale down**: the highest ordinals leave the declared topology first (a migration moves
//!   their shards away); the StatefulSet keeps them until no placement (current topology or a
//!   running migration) names them, then shrinks.
//! * **Upgrades** (any change of the pod template, e.g. `version`): rolling updates with a
//!   partition the operator lowers one pod at a time, once every pod at or above it runs the
//!   new revision, is ready, and its node is healthy and caught up with acknowledged writes.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodSpec, PodTemplateSpec, Probe, SecretKeySelector, Service, ServicePort, ServiceSpec, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::crd::{MeilisearchSpec, MiroirClusterSpec, SecretKeyRef};
use crate::dataplane::rebalance::plan::PlacementState;
use crate::dataplane::topology::{NodeSpec, Topology};

/// Meilisearch's HTTP port in the pods.
pub const PORT: i32 = 7700;
/// The data volume's mount path (the official image's working directory).
pub const DATA_PATH: &str = "/meili_data";
/// Annotation on each StatefulSet: hash of the pod template the operator last applied.
pub const TEMPLATE_HASH: &str = "miroir.io/template-hash";
/// Label naming the MiroirCluster of an owned object.
pub const CLUSTER_LABEL: &str = "miroir.io/cluster";
/// Label naming the replica group of an owned object.
pub const GROUP_LABEL: &str = "miroir.io/replica-group";

/// Name of group `g`'s StatefulSet, headless Service and PodDisruptionBudget.
pub fn group_name(cluster: &str, g: u32) -> String {
    format!("{cluster}-g{g}")
}

/// Node id of a pod: its name.
pub fn node_id(cluster: &str, g: u32, ordinal: u32) -> String {
    format!("{}-{ordinal}", group_name(cluster, g))
}

/// The pod's stable DNS name, as a node address.
pub fn node_address(cluster: &str, namespace: &str, g: u32, ordinal: u32) -> String {
    format!("http://{}.{}.{namespace}.svc:{PORT}", node_id(cluster, g, ordinal), group_name(cluster, g))
}

/// Group and ordinal of a managed node id (`None` for other ids).
pub fn parse_node_id(cluster: &str, id: &str) -> Option<(u32, u32)> {
    let rest = id.strip_prefix(cluster)?.strip_prefix("-g")?;
    let (g, ordinal) = rest.split_once('-')?;
    let g: u32 = g.parse().ok()?;
    let ordinal: u32 = ordinal.parse().ok()?;
    (node_id(cluster, g, ordinal) == id).then_some((g, ordinal))
}

/// Where the operator's objects go and whom they belong to.
#[derive(Debug, Clone)]
pub struct ManagedContext<'a> {
    pub cluster: &'a str,
    pub namespace: &'a str,
    /// Owner reference to the MiroirCluster (controller).
    pub owner: OwnerReference,
    /// **Tests only**: node id → base URL used instead of the pod's DNS name, so that nodes
    /// from the test seam stand in for pods no kubelet runs. Empty in `miroir operator`.
    pub address_override: &'a BTreeMap<String, String>,
}

impl ManagedContext<'_> {
    fn address(&self, g: u32, ordinal: u32) -> String {
        let id = node_id(self.cluster, g, ordinal);
        self.address_override.get(&id).cloned().unwrap_or_else(|| node_address(self.cluster, self.namespace, g, ordinal))
    }

    fn node(&self, g: u32, ordinal: u32) -> NodeSpec {
        NodeSpec { id: node_id(self.cluster, g, ordinal), address: self.address(g, ordinal), replica_group: g }
    }
}

/// What the operator observes of one group's StatefulSet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedGroup {
    pub exists: bool,
    /// `metadata.generation` and `status.observedGeneration`.
    pub generation: Option<i64>,
    pub observed_generation: Option<i64>,
    /// `spec.replicas` and the rolling-update partition as last applied.
    pub replicas: i32,
    pub partition: i32,
    /// The [`TEMPLATE_HASH`] annotation.
    pub template_hash: Option<String>,
    /// `status.readyReplicas`, `status.updatedReplicas`.
    pub ready_replicas: i32,
    pub updated_replicas: i32,
}

impl ObservedGroup {
    pub fn of(sts: Option<&StatefulSet>) -> ObservedGroup {
        let Some(sts) = sts else { return ObservedGroup::default() };
        let spec = sts.spec.as_ref();
        let status = sts.status.as_ref();
        ObservedGroup {
            exists: true,
            generation: sts.metadata.generation,
            observed_generation: status.and_then(|s| s.observed_generation),
            replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
            partition: spec
                .and_then(|s| s.update_strategy.as_ref())
                .and_then(|u| u.rolling_update.as_ref())
                .and_then(|r| r.partition)
                .unwrap_or(0),
            template_hash: sts.metadata.annotations.as_ref().and_then(|a| a.get(TEMPLATE_HASH).cloned()),
            ready_replicas: status.and_then(|s| s.ready_replicas).unwrap_or(0),
            updated_replicas: status.and_then(|s| s.updated_replicas).unwrap_or(0),
        }
    }
}

/// The topology the spec describes with every desired managed node (what validation checks).
pub fn full_topology(spec: &MiroirClusterSpec, ctx: &ManagedContext<'_>) -> Topology {
    let mut t = super::desired::topology_of(spec);
    if let Some(ms) = &spec.meilisearch {
        for g in 0..spec.replica_groups {
            for i in 0..ms.nodes_per_group {
                t.nodes.push(ctx.node(g, i));
            }
        }
    }
    t
}

/// Managed node ids a placement still routes to or moves data between (the current
/// topology, and a running migration's target): their pods must stay.
fn placed_ids(placement: Option<&PlacementState>) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    if let Some(p) = placement {
        ids.extend(p.topology.nodes.iter().map(|n| n.id.clone()));
        if let Some(m) = p.migration.as_ref().filter(|m| !m.phase.ended()) {
            ids.extend(m.target.nodes.iter().map(|n| n.id.clone()));
        }
    }
    ids
}

/// The topology to declare now: the spec's external nodes, and per group the managed
/// ordinals below `nodesPerGroup` that are already nodes (declared before) or whose pod is
/// ready. `Err` (a message saying what is awaited) while no valid topology can be declared
/// yet: before the first declaration, until every desired pod is ready.
pub fn declared_topology(
    spec: &MiroirClusterSpec,
    ctx: &ManagedContext<'_>,
    observed: &[ObservedGroup],
    placement: Option<&PlacementState>,
) -> Result<Topology, String> {
    let mut t = super::desired::topology_of(spec);
    let Some(ms) = &spec.meilisearch else { return Ok(t) };
    let known: BTreeSet<String> = placement
        .map(|p| {
            let mut ids = placed_ids(Some(p));
            ids.extend(p.declared.iter().flat_map(|d| d.nodes.iter().map(|n| n.id.clone())));
            ids
        })
        .unwrap_or_default();
    let mut waiting = Vec::new();
    for g in 0..spec.replica_groups {
        let ready = observed.get(g as usize).map(|o| o.ready_replicas.max(0) as u32).unwrap_or(0);
        let mut members = 0;
        for i in 0..ms.nodes_per_group {
            let node = ctx.node(g, i);
            if known.contains(&node.id) || i < ready {
                t.nodes.push(node);
                members += 1;
            }
        }
        if members < ms.nodes_per_group {
            waiting.push(format!("{} {}/{} pod(s) ready", group_name(ctx.cluster, g), ready.min(ms.nodes_per_group), ms.nodes_per_group));
        }
    }
    if waiting.is_empty() {
        return Ok(t);
    }
    let msg = format!("waiting for Meilisearch pods: {}", waiting.join(", "));
    if placement.is_none() {
        return Err(msg);
    }
    match t.validate() {
        Ok(()) => Ok(t),
        Err(e) => Err(format!("{msg} ({e})")),
    }
}

/// Scale-up still waiting for pods: the message of [`declared_topology`] for the nodes it left
/// out, when it declared a topology anyway.
pub fn pods_awaited(spec: &MiroirClusterSpec, ctx: &ManagedContext<'_>, declared: &Topology) -> Option<String> {
    let ms = spec.meilisearch.as_ref()?;
    let missing: Vec<String> = (0..spec.replica_groups)
        .flat_map(|g| (0..ms.nodes_per_group).map(move |i| (g, i)))
        .map(|(g, i)| node_id(ctx.cluster, g, i))
        .filter(|id| declared.node(id).is_none())
        .collect();
    (!missing.is_empty()).then(|| format!("waiting for Meilisearch pod(s) {} to be ready", missing.join(", ")))
}

/// `spec.replicas` of group `g`: the desired count, or more while the placement still holds
/// data on higher ordinals (a scale-down shrinks only once their data has moved).
pub fn group_replicas(spec: &MiroirClusterSpec, cluster: &str, g: u32, placement: Option<&PlacementState>) -> i32 {
    let desired = spec.meilisearch.as_ref().map(|m| m.nodes_per_group).unwrap_or(0);
    let highest = placed_ids(placement)
        .iter()
        .filter_map(|id| parse_node_id(cluster, id))
        .filter(|(group, _)| *group == g)
        .map(|(_, ordinal)| ordinal + 1)
        .max()
        .unwrap_or(0);
    desired.max(highest) as i32
}

/// The rolling-update partition of a group: pods with an ordinal at or above it run the new
/// template. A new template starts at the highest ordinal; the partition moves down one
/// pod at a time once every pod at or above it is updated and ready (the StatefulSet's status
/// for the current generation says so) and `caught_up` holds for their nodes.
pub fn partition(obs: &ObservedGroup, template_hash: &str, replicas: i32, caught_up: &dyn Fn(u32) -> bool) -> i32 {
    if !obs.exists {
        return 0;
    }
    if obs.template_hash.as_deref() != Some(template_hash) {
        // A new template: roll the highest existing ordinal first.
        return (obs.replicas.min(replicas) - 1).max(0);
    }
    let p = obs.partition.min(replicas).max(0);
    if p == 0 {
        return 0;
    }
    let current = obs.observed_generation.is_some() && obs.observed_generation == obs.generation;
    let rolled = obs.updated_replicas >= obs.replicas - p;
    let ready = obs.ready_replicas >= obs.replicas;
    let nodes = (p as u32..obs.replicas.max(0) as u32).all(caught_up);
    if current && rolled && ready && nodes {
        p - 1
    } else {
        p
    }
}

/// `--max-indexing-threads` and `MEILI_MAX_INDEXING_MEMORY` from the container's limits
/// (else requests): half the CPUs (at least 1), two thirds of the memory in bytes — what
/// Meilisearch derives from the machine when it is not told, applied to the container.
pub fn indexing_limits(resources: Option<&k8s_openapi::api::core::v1::ResourceRequirements>) -> (Option<u64>, Option<u64>) {
    let get = |name: &str| {
        let r = resources?;
        r.limits.as_ref().and_then(|l| l.get(name)).or_else(|| r.requests.as_ref().and_then(|l| l.get(name))).and_then(|q| parse_quantity(&q.0))
    };
    let threads = get("cpu").map(|cpus| ((cpus.floor() as u64) / 2).max(1));
    let memory = get("memory").map(|bytes| (bytes * 2.0 / 3.0).floor() as u64).filter(|b| *b > 0);
    (threads, memory)
}

/// A Kubernetes quantity (`500m`, `2`, `1.5`, `512Mi`, `1G`, `1e9`) as a number.
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let suffixes: [(&str, f64); 13] = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    for (s, mul) in suffixes {
        if let Some(num) = q.strip_suffix(s) {
            return num.parse::<f64>().ok().filter(|n| n.is_finite() && *n >= 0.0).map(|n| n * mul);
        }
    }
    let (num, mul) = match q.strip_suffix('P') {
        Some(n) => (n, 1e15),
        None => match q.strip_suffix('E') {
            Some(n) if !n.is_empty() && !n.contains(['e', 'E']) => (n, 1e18),
            _ => (q, 1.0),
        },
    };
    num.parse::<f64>().ok().filter(|n| n.is_finite() && *n >= 0.0).map(|n| n * mul)
}

/// The objects the operator applies for one managed cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedObjects {
    pub statefulsets: Vec<StatefulSet>,
    pub services: Vec<Service>,
    pub disruption_budgets: Vec<PodDisruptionBudget>,
}

fn labels(cluster: &str, g: u32) -> BTreeMap<String, String> {
    [
        ("app.kubernetes.io/name", "meilisearch".to_string()),
        ("app.kubernetes.io/instance", cluster.to_string()),
        ("app.kubernetes.io/component", "search-node".to_string()),
        ("app.kubernetes.io/managed-by", super::controller::MANAGER.to_string()),
        (CLUSTER_LABEL, cluster.to_string()),
        (GROUP_LABEL, g.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn selector(cluster: &str, g: u32) -> BTreeMap<String, String> {
    [(CLUSTER_LABEL.to_string(), cluster.to_string()), (GROUP_LABEL.to_string(), g.to_string())].into_iter().collect()
}

fn meta(ctx: &ManagedContext<'_>, g: u32) -> ObjectMeta {
    ObjectMeta {
        name: Some(group_name(ctx.cluster, g)),
        namespace: Some(ctx.namespace.to_string()),
        labels: Some(labels(ctx.cluster, g)),
        owner_references: Some(vec![ctx.owner.clone()]),
        ..Default::default()
    }
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), value_from: None }
}

fn health_probe(period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction { path: Some("/health".into()), port: IntOrString::String("http".into()), ..Default::default() }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Default::default()
    }
}

/// The pod template of group `g`.
pub fn pod_template(ctx: &ManagedContext<'_>, g: u32, ms: &MeilisearchSpec, master_key: &SecretKeyRef) -> PodTemplateSpec {
    let (threads, memory) = indexing_limits(ms.resources.as_ref());
    let mut vars = vec![
        env("MEILI_HTTP_ADDR", format!("0.0.0.0:{PORT}")),
        env("MEILI_DB_PATH", format!("{DATA_PATH}/data.ms")),
        env("MEILI_DUMP_DIR", format!("{DATA_PATH}/dumps")),
        env("MEILI_SNAPSHOT_DIR", format!("{DATA_PATH}/snapshots")),
        env("MEILI_ENV", "production"),
        env("MEILI_NO_ANALYTICS", "true"),
        EnvVar {
            name: "MEILI_MASTER_KEY".into(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector { name: master_key.name.clone(), key: master_key.key.clone(), optional: Some(false) }),
                ..Default::default()
            }),
        },
    ];
    if let Some(bytes) = memory {
        vars.push(env("MEILI_MAX_INDEXING_MEMORY", bytes.to_string()));
    }
    vars.extend(ms.env.iter().cloned());
    // The image's entrypoint is `tini --`; its command `/bin/meilisearch` is given again
    // because `args` replaces it.
    let args = threads.map(|t| vec!["/bin/meilisearch".to_string(), "--max-indexing-threads".into(), t.to_string()]);
    PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: Some(labels(ctx.cluster, g)), ..Default::default() }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "meilisearch".into(),
                image: Some(format!("{}:{}", ms.image, ms.version)),
                args,
                env: Some(vars),
                ports: Some(vec![ContainerPort { name: Some("http".into()), container_port: PORT, protocol: Some("TCP".into()), ..Default::default() }]),
                // Loading a large database can take a while: liveness starts after startup.
                startup_probe: Some(health_probe(10, 60)),
                readiness_probe: Some(health_probe(5, 3)),
                liveness_probe: Some(health_probe(10, 6)),
                resources: ms.resources.clone(),
                volume_mounts: Some(vec![VolumeMount { name: "data".into(), mount_path: DATA_PATH.into(), ..Default::default() }]),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

/// Stable hash of a pod template (FNV-1a over its JSON), for [`TEMPLATE_HASH`].
pub fn template_hash(t: &PodTemplateSpec) -> String {
    let bytes = serde_json::to_vec(t).expect("a pod template is JSON");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Every object the operator applies for a managed cluster. `observed` is indexed by group;
/// `caught_up(node id)` says whether a node is healthy and holds every acknowledged write.
pub fn managed_objects(
    spec: &MiroirClusterSpec,
    ms: &MeilisearchSpec,
    master_key: &SecretKeyRef,
    ctx: &ManagedContext<'_>,
    observed: &[ObservedGroup],
    placement: Option<&PlacementState>,
    caught_up: &dyn Fn(&str) -> bool,
) -> ManagedObjects {
    let mut out = ManagedObjects { statefulsets: Vec::new(), services: Vec::new(), disruption_budgets: Vec::new() };
    for g in 0..spec.replica_groups {
        let name = group_name(ctx.cluster, g);
        let template = pod_template(ctx, g, ms, master_key);
        let hash = template_hash(&template);
        let replicas = group_replicas(spec, ctx.cluster, g, placement);
        let obs = observed.get(g as usize).cloned().unwrap_or_default();
        let node_caught_up = |ordinal: u32| caught_up(&node_id(ctx.cluster, g, ordinal));
        let partition = partition(&obs, &hash, replicas, &node_caught_up);
        let mut m = meta(ctx, g);
        m.annotations = Some([(TEMPLATE_HASH.to_string(), hash)].into_iter().collect());
        out.statefulsets.push(StatefulSet {
            metadata: m,
            spec: Some(StatefulSetSpec {
                service_name: Some(name.clone()),
                replicas: Some(replicas),
                selector: LabelSelector { match_labels: Some(selector(ctx.cluster, g)), ..Default::default() },
                pod_management_policy: Some("OrderedReady".into()),
                update_strategy: Some(StatefulSetUpdateStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateStatefulSetStrategy { partition: Some(partition), max_unavailable: None }),
                }),
                // A pod removed by a scale-down was drained first: its volume goes with it.
                persistent_volume_claim_retention_policy: Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Retain".into()),
                    when_scaled: Some("Delete".into()),
                }),
                template,
                volume_claim_templates: Some(vec![PersistentVolumeClaim {
                    metadata: ObjectMeta { name: Some("data".into()), labels: Some(selector(ctx.cluster, g)), ..Default::default() },
                    spec: Some(PersistentVolumeClaimSpec {
                        access_modes: Some(vec!["ReadWriteOnce".into()]),
                        storage_class_name: ms.storage.storage_class_name.clone(),
                        resources: Some(VolumeResourceRequirements {
                            requests: Some([("storage".to_string(), Quantity(ms.storage.size.0.clone()))].into_iter().collect()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        });
        out.services.push(Service {
            metadata: meta(ctx, g),
            spec: Some(ServiceSpec {
                cluster_ip: Some("None".into()),
                // Miroir reaches a node that is starting or catching up (it probes it itself).
                publish_not_ready_addresses: Some(true),
                selector: Some(selector(ctx.cluster, g)),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: PORT,
                    target_port: Some(IntOrString::String("http".into())),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        });
        out.disruption_budgets.push(PodDisruptionBudget {
            metadata: meta(ctx, g),
            spec: Some(PodDisruptionBudgetSpec {
                // One pod of a group at a time; the other groups (and the other replicas of
                // each shard in the group) keep serving.
                max_unavailable: Some(IntOrString::Int(1)),
                selector: Some(LabelSelector { match_labels: Some(selector(ctx.cluster, g)), ..Default::default() }),
                ..Default::default()
            }),
            status: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controlplane::crd::MiroirClusterSpec;
    use serde_json::json;

    fn spec(nodes_per_group: u32, rf: u32, groups: u32) -> MiroirClusterSpec {
        serde_json::from_value(json!({
            "shards": 16, "replicationFactor": rf, "replicaGroups": groups,
            "keys": {"nodeMasterKey": {"name": "meili", "key": "master"}},
            "meilisearch": {"nodesPerGroup": nodes_per_group,
                "resources": {"limits": {"cpu": "4", "memory": "3Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}},
                "storage": {"storageClassName": "fast", "size": "20Gi"},
                "env": [{"name": "MEILI_LOG_LEVEL", "value": "WARN"}]}
        }))
        .unwrap()
    }

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "miroir.io/v1alpha1".into(),
            kind: "MiroirCluster".into(),
            name: "search".into(),
            uid: "uid-1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    fn key() -> SecretKeyRef {
        SecretKeyRef { name: "meili".into(), key: "master".into() }
    }

    static NO_OVERRIDE: BTreeMap<String, String> = BTreeMap::new();

    fn ctx() -> ManagedContext<'static> {
        ManagedContext { cluster: "search", namespace: "prod", owner: owner(), address_override: &NO_OVERRIDE }
    }

    fn ready(n: i32) -> ObservedGroup {
        ObservedGroup { exists: true, generation: Some(1), observed_generation: Some(1), replicas: n, partition: 0, template_hash: None, ready_replicas: n, updated_replicas: n }
    }

    #[test]
    fn names_and_addresses_are_the_pods_stable_dns_names() {
        assert_eq!(node_id("search", 1, 2), "search-g1-2");
        assert_eq!(node_address("search", "prod", 1, 2), "http://search-g1-2.search-g1.prod.svc:7700");
        assert_eq!(parse_node_id("search", "search-g1-2"), Some((1, 2)));
        assert_eq!(parse_node_id("search", "search-g1-02"), None);
        assert_eq!(parse_node_id("search", "other-g1-2"), None);
        assert_eq!(parse_node_id("search", "search-g1"), None);
        let t = full_topology(&spec(3, 2, 2), &ctx());
        assert_eq!(t.nodes.len(), 6);
        assert_eq!(t.nodes[4].id, "search-g1-1");
        assert_eq!(t.nodes[4].address, "http://search-g1-1.search-g1.prod.svc:7700");
        assert_eq!(t.nodes[4].replica_group, 1);
        t.validate().unwrap();
        // The test seam replaces addresses, never ids.
        let over: BTreeMap<String, String> = [("search-g0-0".to_string(), "http://127.0.0.1:1234".to_string())].into();
        let c = ManagedContext { address_override: &over, ..ctx() };
        let t = full_topology(&spec(1, 1, 1), &c);
        assert_eq!((t.nodes[0].id.as_str(), t.nodes[0].address.as_str()), ("search-g0-0", "http://127.0.0.1:1234"));
    }

    #[test]
    fn objects_per_group_with_owner_probes_storage_and_limits() {
        let s = spec(3, 2, 2);
        let ms = s.meilisearch.clone().unwrap();
        let objs = managed_objects(&s, &ms, &key(), &ctx(), &[], None, &|_| true);
        assert_eq!((objs.statefulsets.len(), objs.services.len(), objs.disruption_budgets.len()), (2, 2, 2));
        let sts = serde_json::to_value(&objs.statefulsets[1]).unwrap();
        assert_eq!(sts["apiVersion"], "apps/v1");
        assert_eq!(sts["kind"], "StatefulSet");
        assert_eq!(sts["metadata"]["name"], "search-g1");
        assert_eq!(sts["metadata"]["namespace"], "prod");
        assert_eq!(sts["metadata"]["ownerReferences"], json!([{"apiVersion": "miroir.io/v1alpha1", "kind": "MiroirCluster",
            "name": "search", "uid": "uid-1", "controller": true, "blockOwnerDeletion": true}]));
        let spec_ = &sts["spec"];
        assert_eq!(spec_["replicas"], 3);
        assert_eq!(spec_["serviceName"], "search-g1");
        assert_eq!(spec_["selector"]["matchLabels"], json!({"miroir.io/cluster": "search", "miroir.io/replica-group": "1"}));
        assert_eq!(spec_["updateStrategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
        let pod = &spec_["template"]["spec"]["containers"][0];
        assert_eq!(pod["image"], "getmeili/meilisearch:v1.50.0");
        // limits: 4 CPUs → 2 indexing threads; 3 GiB → 2 GiB of indexing memory.
        assert_eq!(pod["args"], json!(["/bin/meilisearch", "--max-indexing-threads", "2"]));
        let envs = pod["env"].as_array().unwrap();
        let var = |n: &str| envs.iter().find(|e| e["name"] == n).cloned();
        assert_eq!(var("MEILI_MAX_INDEXING_MEMORY").unwrap()["value"], (2u64 << 30).to_string());
        assert_eq!(var("MEILI_MASTER_KEY").unwrap()["valueFrom"]["secretKeyRef"], json!({"name": "meili", "key": "master", "optional": false}));
        assert_eq!(var("MEILI_DB_PATH").unwrap()["value"], "/meili_data/data.ms");
        assert_eq!(envs.last().unwrap()["name"], "MEILI_LOG_LEVEL", "extra env comes last");
        for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
            assert_eq!(pod[probe]["httpGet"], json!({"path": "/health", "port": "http"}), "{probe}");
        }
        assert_eq!(pod["resources"]["limits"], json!({"cpu": "4", "memory": "3Gi"}));
        let claim = &spec_["volumeClaimTemplates"][0];
        assert_eq!(claim["spec"]["storageClassName"], "fast");
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "20Gi");
        assert_eq!(pod["volumeMounts"][0], json!({"name": "data", "mountPath": "/meili_data"}));
        let svc = serde_json::to_value(&objs.services[0]).unwrap();
        assert_eq!((svc["kind"].as_str(), svc["spec"]["clusterIP"].as_str()), (Some("Service"), Some("None")));
        assert_eq!(svc["spec"]["publishNotReadyAddresses"], true);
        assert_eq!(svc["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        let pdb = serde_json::to_value(&objs.disruption_budgets[0]).unwrap();
        assert_eq!((pdb["apiVersion"].as_str(), pdb["spec"]["maxUnavailable"].as_i64()), (Some("policy/v1"), Some(1)));
        assert_eq!(pdb["metadata"]["ownerReferences"][0]["kind"], "MiroirCluster");
    }

    #[test]
    fn indexing_limits_follow_limits_then_requests() {
        let r = |v: serde_json::Value| serde_json::from_value::<k8s_openapi::api::core::v1::ResourceRequirements>(v).unwrap();
        assert_eq!(indexing_limits(None), (None, None));
        assert_eq!(indexing_limits(Some(&r(json!({"requests": {"cpu": "500m", "memory": "1536Mi"}})))), (Some(1), Some(1 << 30)));
        assert_eq!(indexing_limits(Some(&r(json!({"limits": {"cpu": "8"}, "requests": {"cpu": "1"}})))), (Some(4), None));
        assert_eq!(parse_quantity("1.5"), Some(1.5));
        assert_eq!(parse_quantity("250m"), Some(0.25));
        assert_eq!(parse_quantity("1G"), Some(1e9));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("2Ki"), Some(2048.0));
        assert_eq!(parse_quantity("x"), None);
    }

    #[test]
    fn first_declaration_waits_for_every_pod_then_new_pods_join_when_ready() {
        let s = spec(3, 2, 1);
        // Nothing declared yet, 2 of 3 ready: wait.
        let err = declared_topology(&s, &ctx(), &[ready(2)], None).unwrap_err();
        assert!(err.contains("search-g0 2/3"), "{err}");
        let t = declared_topology(&s, &ctx(), &[ready(3)], None).unwrap();
        assert_eq!(t.nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["search-g0-0", "search-g0-1", "search-g0-2"]);
        // Scale up to 5 with 4 ready: ordinal 3 joins now, 4 later.
        let placement = PlacementState::new(t.clone());
        let s5 = spec(5, 2, 1);
        let t4 = declared_topology(&s5, &ctx(), &[ready(4)], Some(&placement)).unwrap();
        assert_eq!(t4.nodes.len(), 4);
        assert!(pods_awaited(&s5, &ctx(), &t4).unwrap().contains("search-g0-4"));
        // A member whose pod is not ready (a restart) stays a node.
        let t_restart = declared_topology(&s, &ctx(), &[ready(1)], Some(&placement)).unwrap();
        assert_eq!(t_restart, t);
        // Scale down to 2: the highest ordinal leaves the declaration at once ...
        let s2 = spec(2, 2, 1);
        let t2 = declared_topology(&s2, &ctx(), &[ready(3)], Some(&placement)).unwrap();
        assert_eq!(t2.nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["search-g0-0", "search-g0-1"]);
        // ... but the StatefulSet keeps it while the placement still uses it.
        assert_eq!(group_replicas(&s2, "search", 0, Some(&placement)), 3);
        let mut moving = placement.clone();
        moving.topology = t2.clone();
        assert_eq!(group_replicas(&s2, "search", 0, Some(&moving)), 2, "once its data moved");
        assert_eq!(group_replicas(&s5, "search", 0, Some(&placement)), 5);
    }

    #[test]
    fn a_new_template_rolls_one_pod_at_a_time_each_caught_up_first() {
        let all = |_: u32| true;
        let none = |_: u32| false;
        assert_eq!(partition(&ObservedGroup::default(), "h2", 3, &all), 0, "a new StatefulSet starts at 0");
        let mut obs = ObservedGroup { template_hash: Some("h1".into()), ..ready(3) };
        // Template changed: only the highest ordinal rolls.
        assert_eq!(partition(&obs, "h2", 3, &all), 2);
        // Applied (partition 2, new hash, new generation) but the status is not current yet.
        obs = ObservedGroup { template_hash: Some("h2".into()), partition: 2, generation: Some(2), ..obs };
        assert_eq!(partition(&obs, "h2", 3, &all), 2);
        // Status current, pod 2 updated and ready, but its node is still catching up.
        obs.observed_generation = Some(2);
        obs.updated_replicas = 1;
        assert_eq!(partition(&obs, "h2", 3, &none), 2);
        assert_eq!(partition(&obs, "h2", 3, &|o| o != 2), 2);
        // Caught up: next pod.
        assert_eq!(partition(&obs, "h2", 3, &all), 1);
        // Pod 1 updated but not ready yet.
        obs = ObservedGroup { partition: 1, generation: Some(3), observed_generation: Some(3), updated_replicas: 2, ready_replicas: 2, ..obs };
        assert_eq!(partition(&obs, "h2", 3, &all), 1);
        obs.ready_replicas = 3;
        assert_eq!(partition(&obs, "h2", 3, &all), 0);
        obs.partition = 0;
        assert_eq!(partition(&obs, "h2", 3, &all), 0, "done");
        // The hash covers the image.
        let s = spec(1, 1, 1);
        let mut ms = s.meilisearch.clone().unwrap();
        let h1 = template_hash(&pod_template(&ctx(), 0, &ms, &key()));
        ms.version = "v1.51.0".into();
        assert_ne!(template_hash(&pod_template(&ctx(), 0, &ms, &key())), h1);
    }
}

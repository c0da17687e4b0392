//! `MiroirCluster`: the cluster's shape (shards, replication, nodes), where its durable
//! state lives, and how the proxy checks health and scatters searches.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, SecretKeyRef};
use crate::config::{HealthConfig, ScatterConfig, UnavailableShardPolicy};

/// Desired shape of one Miroir cluster. Field meanings are those of the `miroir serve`
/// config file (`config/example.yaml`), spelled in camelCase.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "miroir.io",
    version = "v1alpha1",
    kind = "MiroirCluster",
    namespaced,
    status = "MiroirClusterStatus",
    shortname = "mc",
    category = "miroir",
    doc = "A fleet of Meilisearch nodes served as one Meilisearch by Miroir.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Nodes", type_ = "string", json_path = ".status.nodesReady", description = "healthy/total nodes"),
    printcolumn(name = "Shards", type_ = "integer", json_path = ".spec.shards"),
    printcolumn(name = "RF", type_ = "integer", json_path = ".spec.replicationFactor"),
    printcolumn(name = "RG", type_ = "integer", json_path = ".spec.replicaGroups"),
    printcolumn(name = "Rebalance", type_ = "string", json_path = ".status.rebalance.progress", description = "idle, or the running migration's phase and shards moved/total"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("has(self.meilisearch) || (has(self.nodes) && self.nodes.size() >= 1)")
    .message("give spec.nodes (nodes run elsewhere), spec.meilisearch (nodes the operator runs), or both"))]
#[x_kube(validation = Rule::new("!has(self.nodes) || self.nodes.all(n, n.replicaGroup < self.replicaGroups)")
    .message("every node's replicaGroup must be less than replicaGroups (groups are numbered from 0)"))]
#[x_kube(validation = Rule::new("!has(self.nodes) || has(self.meilisearch) || self.nodes.all(n, self.nodes.filter(m, m.replicaGroup == n.replicaGroup).size() >= self.replicationFactor)")
    .message("replicationFactor must not exceed the number of nodes of any replica group"))]
#[x_kube(validation = Rule::new("has(self.meilisearch) || self.replicaGroups <= self.nodes.size()")
    .message("every replica group needs at least one node"))]
#[serde(rename_all = "camelCase")]
pub struct MiroirClusterSpec {
    /// Number of shards documents are hashed into; 1260 unless there is a reason to differ
    /// (docs/hashing.md). Cannot change once set.
    #[schemars(range(min = 1, max = 65536))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("shards is immutable"))]
    pub shards: u32,
    /// Copies of each shard inside one replica group.
    #[schemars(range(min = 1, max = 64))]
    pub replication_factor: u32,
    /// Number of replica groups; each holds every shard RF times.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 64))]
    pub replica_groups: u32,
    /// Meilisearch nodes run elsewhere (not by the operator). Ids are unique. Optional when
    /// `meilisearch` is set; both may be used (the operator's nodes are added to these).
    #[serde(default)]
    #[schemars(length(max = 256))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["id".into()]))]
    pub nodes: Vec<ClusterNode>,
    /// Meilisearch nodes the operator runs: per replica group a StatefulSet
    /// (`<cluster>-g<group>`) with a headless Service and a PodDisruptionBudget. Node ids are
    /// the pod names, addresses their stable DNS names. Scaling `nodesPerGroup` moves the data
    /// first (scale-down drains the highest ordinals before the StatefulSet shrinks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meilisearch: Option<MeilisearchSpec>,
    /// Where tasks, leases and mirrored resource state live.
    #[serde(default)]
    pub task_store: TaskStoreSpec,
    /// Secrets holding the API keys.
    #[serde(default)]
    pub keys: KeySecretRefs,
    /// Node health checking.
    #[serde(default)]
    pub health: HealthSpec,
    /// Scatter/gather of searches.
    #[serde(default)]
    pub scatter: ScatterSpec,
}

fn one() -> u32 {
    1
}

/// One Meilisearch node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNode {
    /// Stable id; shard placement is derived from it.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$"))]
    pub id: String,
    /// Base URL of the node, e.g. `http://meili-0.meili:7700`.
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://.+"))]
    pub address: String,
    /// Replica group of the node (numbered from 0).
    #[serde(default)]
    #[schemars(range(max = 63))]
    pub replica_group: u32,
}

/// Meilisearch nodes run by the operator (see `docs/operator.md`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeilisearchSpec {
    /// Container image without its tag.
    #[serde(default = "default_image")]
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// Image tag (the Meilisearch version), e.g. `v1.50.0`. Changing it rolls the pods one
    /// per replica group at a time, each node caught up before the next.
    #[serde(default = "default_version")]
    #[schemars(length(min = 1, max = 128))]
    pub version: String,
    /// Meilisearch nodes (pods) in every replica group.
    #[schemars(range(min = 1, max = 256))]
    pub nodes_per_group: u32,
    /// CPU and memory of each node. The limits (else the requests) set Meilisearch's
    /// `--max-indexing-threads` (half the CPUs, at least 1) and `MEILI_MAX_INDEXING_MEMORY`
    /// (two thirds of the memory), as Meilisearch would derive them from the whole machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<k8s_openapi::api::core::v1::ResourceRequirements>,
    /// The data volume of each node (a PersistentVolumeClaim per pod).
    #[serde(default)]
    pub storage: StorageSpec,
    /// The nodes' master key (`MEILI_MASTER_KEY`). Defaults to `spec.keys.nodeMasterKey`
    /// (the key Miroir presents to the nodes); when both are given they must be equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_key_secret_ref: Option<SecretKeyRef>,
    /// Extra environment variables of the Meilisearch container (after the operator's own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<k8s_openapi::api::core::v1::EnvVar>,
}

fn default_image() -> String {
    "getmeili/meilisearch".into()
}

fn default_version() -> String {
    "v1.50.0".into()
}

/// A node's data volume.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// StorageClass of the claims (the cluster's default class when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Size of each claim, e.g. `10Gi`.
    #[serde(default = "default_size")]
    pub size: k8s_openapi::apimachinery::pkg::api::resource::Quantity,
}

fn default_size() -> k8s_openapi::apimachinery::pkg::api::resource::Quantity {
    k8s_openapi::apimachinery::pkg::api::resource::Quantity("10Gi".into())
}

impl Default for StorageSpec {
    fn default() -> Self {
        StorageSpec { storage_class_name: None, size: default_size() }
    }
}

/// Exactly one of `sqlite` (one operator pod) or `redis` (several pods).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("oneOf" = [{"required": ["sqlite"]}, {"required": ["redis"]}]))]
pub struct TaskStoreSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlite: Option<SqliteStoreSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisStoreSpec>,
}

impl Default for TaskStoreSpec {
    fn default() -> Self {
        TaskStoreSpec { sqlite: Some(SqliteStoreSpec { path: default_sqlite_path() }), redis: None }
    }
}

/// SQLite database file inside the operator pod (mount a volume there).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SqliteStoreSpec {
    #[serde(default = "default_sqlite_path")]
    #[schemars(length(min = 1, max = 4096))]
    pub path: String,
}

fn default_sqlite_path() -> String {
    "/var/lib/miroir/miroir.db".to_string()
}

/// Redis; the URL (it may contain a password) comes from a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisStoreSpec {
    pub url_secret_ref: SecretKeyRef,
    /// Key prefix in Redis.
    #[serde(default = "default_prefix")]
    #[schemars(length(max = 256))]
    pub prefix: String,
}

fn default_prefix() -> String {
    "miroir:".to_string()
}

/// Secrets holding the keys (see `docs/operator.md`). Each is optional: without
/// `masterKey` the proxy does not check client keys, as Meilisearch without a master key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeySecretRefs {
    /// Key clients must present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_key: Option<SecretKeyRef>,
    /// Key Miroir presents to the nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_master_key: Option<SecretKeyRef>,
    /// Key for the `/_miroir/*` admin routes (falls back to the master key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_api_key: Option<SecretKeyRef>,
}

/// Same meaning as `health` in the config file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthSpec {
    #[serde(default = "d_interval")]
    #[schemars(range(min = 1))]
    pub interval_ms: u64,
    #[serde(default = "d_timeout")]
    #[schemars(range(min = 1))]
    pub timeout_ms: u64,
    #[serde(default = "d_unhealthy")]
    #[schemars(range(min = 1))]
    pub unhealthy_threshold: u32,
    #[serde(default = "d_recovery")]
    #[schemars(range(min = 1))]
    pub recovery_threshold: u32,
}

fn d_interval() -> u64 {
    HealthConfig::default().interval_ms
}
fn d_timeout() -> u64 {
    HealthConfig::default().timeout_ms
}
fn d_unhealthy() -> u32 {
    HealthConfig::default().unhealthy_threshold
}
fn d_recovery() -> u32 {
    HealthConfig::default().recovery_threshold
}

impl Default for HealthSpec {
    fn default() -> Self {
        HealthConfig::default().into()
    }
}

impl From<HealthConfig> for HealthSpec {
    fn from(h: HealthConfig) -> Self {
        HealthSpec {
            interval_ms: h.interval_ms,
            timeout_ms: h.timeout_ms,
            unhealthy_threshold: h.unhealthy_threshold,
            recovery_threshold: h.recovery_threshold,
        }
    }
}

impl From<&HealthSpec> for HealthConfig {
    fn from(h: &HealthSpec) -> Self {
        HealthConfig {
            interval_ms: h.interval_ms,
            timeout_ms: h.timeout_ms,
            unhealthy_threshold: h.unhealthy_threshold,
            recovery_threshold: h.recovery_threshold,
        }
    }
}

/// Same meaning as `scatter` in the config file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScatterSpec {
    #[serde(default = "d_node_timeout")]
    #[schemars(range(min = 1))]
    pub node_timeout_ms: u64,
    #[serde(default)]
    pub unavailable_shard_policy: UnavailableShardPolicySpec,
}

fn d_node_timeout() -> u64 {
    ScatterConfig::default().node_timeout_ms
}

impl Default for ScatterSpec {
    fn default() -> Self {
        ScatterSpec { node_timeout_ms: d_node_timeout(), unavailable_shard_policy: UnavailableShardPolicySpec::Partial }
    }
}

/// What a search does when some shard has no usable copy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UnavailableShardPolicySpec {
    /// Answer from the available shards, naming the missing ones in `X-Miroir-Degraded`.
    #[default]
    Partial,
    /// Answer 503 `miroir_shard_unavailable`.
    Error,
}

impl From<&ScatterSpec> for ScatterConfig {
    fn from(s: &ScatterSpec) -> Self {
        ScatterConfig {
            node_timeout_ms: s.node_timeout_ms,
            unavailable_shard_policy: match s.unavailable_shard_policy {
                UnavailableShardPolicySpec::Partial => UnavailableShardPolicy::Partial,
                UnavailableShardPolicySpec::Error => UnavailableShardPolicy::Error,
            },
            ..ScatterConfig::default()
        }
    }
}

/// Lifecycle phase shown by `kubectl get`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ClusterPhase {
    /// Accepted; the operator has not applied it yet.
    Pending,
    /// Applied; every shard has RF healthy copies in every group.
    Ready,
    /// Applied; some shard has fewer than RF healthy copies in some group.
    Degraded,
    /// Applied; a migration moves shards between nodes (reads and writes go on; see
    /// `status.rebalance` and the `Progressing` condition).
    Rebalancing,
    /// Cannot be applied (invalid spec or a persistent error); see the `Ready` condition.
    Stalled,
}

/// Observed state, written by the operator that holds the lease.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MiroirClusterStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ClusterPhase>,
    /// `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing`, `Degraded`.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// `healthy/total`, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes_ready: Option<String>,
    /// Every node with its health and the number of shards it holds.
    #[serde(default)]
    pub nodes: Vec<NodeStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_coverage: Option<ShardCoverage>,
    /// The running migration (nodes added or removed), else the last one; absent until the
    /// task store holds a placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebalance: Option<RebalanceStatus>,
}

/// Data movement, as `GET /_miroir/rebalance` reports it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceStatus {
    /// `idle`, or the running migration's phase: `copying`, `fencing`, `cut-over`, `cleaning`.
    #[serde(default)]
    pub phase: String,
    /// Id of the running migration, else of the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<String>,
    /// What changed, e.g. `added node-4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Shards whose documents are on their new holders.
    #[serde(default)]
    pub shards_moved: u32,
    /// Shards the migration moves.
    #[serde(default)]
    pub shards_total: u32,
    #[serde(default)]
    pub documents_copied: u64,
    /// `idle`, or `<phase> <shards moved>/<shards total>` while a migration runs (the
    /// `Rebalance` column of `kubectl get miroirclusters`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// The last error the running migration met (it is retried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One node as observed by the proxy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    pub id: String,
    pub replica_group: u32,
    /// `healthy`, `failed`, `recovering` or `unauthorized`.
    pub health: String,
    /// Number of shards (copies) the node holds.
    pub shards: u32,
    /// `caught-up` (holds every acknowledged write; answers reads), `catching-up` (missed
    /// writes being replayed), `rebuilding` (being copied from a replica) or `unchecked`.
    #[serde(default)]
    pub sync: String,
    /// Missed write operations waiting to be replayed to the node, and their bytes.
    #[serde(default)]
    pub pending_operations: u64,
    #[serde(default)]
    pub pending_bytes: u64,
}

/// Shards with fewer than RF healthy copies.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardCoverage {
    /// Shards that have RF healthy copies in every group.
    pub fully_replicated: u32,
    /// (shard, group) pairs with fewer than RF healthy copies.
    #[serde(default)]
    pub under_replicated: Vec<UnderReplicatedShard>,
    /// Shards with no healthy copy in any group: searches miss them.
    #[serde(default)]
    pub unavailable: Vec<u32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnderReplicatedShard {
    pub shard: u32,
    pub replica_group: u32,
    pub healthy_copies: u32,
}

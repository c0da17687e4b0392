//! The custom resources of group `miroir.io`, version `v1alpha1` (all namespaced).
//!
//! The Rust types are the single source of the CRDs: `miroir crd` prints [`all_crds`], and
//! `crds/*.yaml` is that output (a test fails when they differ).

// Several `printcolumn(type_ = ...)` arguments look like duplicated attributes to clippy.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod alias;
mod canary;
mod cluster;
mod rollover;
mod tenant;

pub use alias::{Alias, AliasSpec, AliasStatus};
pub use canary::{Canary, CanaryAssertions, CanaryFailure, CanarySpec, CanaryStatus, TopKContains};
pub use cluster::{
    ClusterNode, ClusterPhase, HealthSpec, KeySecretRefs, MeilisearchSpec, MiroirCluster, MiroirClusterSpec, MiroirClusterStatus,
    NodeStatus, RebalanceStatus, RedisStoreSpec, ScatterSpec, ShardCoverage, SqliteStoreSpec, StorageSpec, TaskStoreSpec, UnavailableShardPolicySpec,
    UnderReplicatedShard,
};
pub use rollover::{RetentionSpec, RolloverPolicy, RolloverPolicySpec, RolloverPolicyStatus, RolloverTemplate, RolloverTriggers};
pub use tenant::{Tenant, TenantSpec, TenantStatus};

/// API group of every Miroir custom resource.
pub const GROUP: &str = "miroir.io";
/// API version of every Miroir custom resource.
pub const VERSION: &str = "v1alpha1";

/// A key of a Kubernetes Secret in the resource's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret's `data`.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A standard Kubernetes condition (`type`, `status`, `reason`, `message`,
/// `lastTransitionTime`, `observedGeneration`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Progressing` or `Degraded`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// One CamelCase word saying why.
    pub reason: String,
    /// Human-readable detail.
    #[serde(default)]
    pub message: String,
    /// RFC 3339 time of the last change of `status`.
    pub last_transition_time: String,
    /// `metadata.generation` this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// JSON object with arbitrary content (a Meilisearch search body, index settings).
pub(crate) fn free_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// Every CRD, in a stable order, with only the integer formats the API server knows
/// (see [`kubernetes_formats`]).
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    [MiroirCluster::crd(), Alias::crd(), Tenant::crd(), Canary::crd(), RolloverPolicy::crd()]
        .into_iter()
        .map(kubernetes_formats)
        .collect()
}

/// `format` values of an integer the Kubernetes API server knows (others draw an
/// `unrecognized format` warning on every apply).
pub const KNOWN_INTEGER_FORMATS: [&str; 2] = ["int32", "int64"];

/// schemars names Rust's unsigned and small integers (`uint32`, `uint64`, `uint8`, `int16`,
/// ...); the API server only knows `int32` and `int64` (and stores every integer as a
/// 64-bit signed one). Each is mapped to the smallest known format holding its range
/// (`uint32` → `int64`; `uint64` → `int64`, the API server's own limit); the `minimum: 0`
/// schemars emits for unsigned types stays.
pub fn kubernetes_formats(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                if m.get("type").and_then(|t| t.as_str()) == Some("integer") {
                    if let Some(f) = m.get("format").and_then(|f| f.as_str()) {
                        let mapped = match f {
                            "int8" | "int16" | "uint8" | "uint16" | "int32" => "int32",
                            _ => "int64",
                        };
                        m.insert("format".into(), mapped.into());
                    }
                }
                m.values_mut().for_each(walk);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    for v in &mut crd.spec.versions {
        if let Some(schema) = v.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
            let mut json = serde_json::to_value(&*schema).expect("a schema is JSON");
            walk(&mut json);
            *schema = serde_json::from_value(json).expect("still a schema");
        }
    }
    crd
}

/// File name under `crds/` of each CRD (`<plural>.<group>.yaml`) paired with its YAML,
/// sorted by file name.
pub fn crd_files() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = all_crds()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let yaml = serde_yaml_ng::to_string(&crd).expect("a CRD serializes to YAML");
            (format!("{name}.yaml"), yaml)
        })
        .collect();
    files.sort();
    files
}

/// All CRDs as one multi-document YAML stream (what `miroir crd` prints): the files of
/// `crds/` in name order, each preceded by `---`.
pub fn crd_yaml() -> String {
    crd_files().into_iter().map(|(_, yaml)| format!("---\n{yaml}")).collect()
}

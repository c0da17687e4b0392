//! `Canary`: a search run periodically against an index, with assertions on the answer.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{free_object, Condition};

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "miroir.io",
    version = "v1alpha1",
    kind = "Canary",
    namespaced,
    status = "CanaryStatus",
    shortname = "mic",
    category = "miroir",
    doc = "A periodic search with assertions on its answer.",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(name = "Index", type_ = "string", json_path = ".spec.index"),
    printcolumn(name = "Result", type_ = "string", json_path = ".status.result"),
    printcolumn(name = "Passes", type_ = "integer", json_path = ".status.passCount"),
    printcolumn(name = "Failures", type_ = "integer", json_path = ".status.failCount"),
    printcolumn(name = "Last Run", type_ = "date", json_path = ".status.lastRunTime"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct CanarySpec {
    /// Name of the MiroirCluster (same namespace).
    #[schemars(length(min = 1, max = 253))]
    pub cluster: String,
    /// Index (or alias) searched.
    #[schemars(length(min = 1, max = 400))]
    pub index: String,
    /// Seconds between runs.
    #[serde(default = "d_interval")]
    #[schemars(range(min = 5, max = 86400))]
    pub interval_seconds: u32,
    /// A Meilisearch search body, as `POST /indexes/{index}/search` takes it.
    #[schemars(schema_with = "free_object")]
    pub query: Map<String, Value>,
    /// At least one assertion.
    pub assertions: CanaryAssertions,
}

fn d_interval() -> u32 {
    60
}

/// What the answer must satisfy (every given assertion must hold).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1))]
pub struct CanaryAssertions {
    /// Primary key of the expected first hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_hit_id: Option<String>,
    /// The first `k` hits must contain every id of `ids`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k_contains: Option<TopKContains>,
    /// `estimatedTotalHits` (or `totalHits`) must be at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_hits: Option<u64>,
    /// The search must answer within this many milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_latency_ms: Option<u64>,
    /// No hit may have this primary key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub must_not_contain_id: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("size(self.ids) <= self.k").message("ids cannot hold more ids than k"))]
pub struct TopKContains {
    #[schemars(range(min = 1, max = 1000))]
    pub k: u32,
    #[schemars(length(min = 1, max = 1000))]
    pub ids: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// RFC 3339 time of the last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_time: Option<String>,
    /// `Pass` or `Fail` for the last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Assertions that failed on the last run, with what was observed.
    #[serde(default)]
    pub failing_assertions: Vec<CanaryFailure>,
    #[serde(default)]
    pub pass_count: u64,
    #[serde(default)]
    pub fail_count: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryFailure {
    /// e.g. `topHitId`.
    pub assertion: String,
    pub expected: String,
    pub observed: String,
}

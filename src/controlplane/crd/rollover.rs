//! `RolloverPolicy`: time- or size-based index rollover behind a write and a read alias.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{free_object, Condition};

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "miroir.io",
    version = "v1alpha1",
    kind = "RolloverPolicy",
    namespaced,
    status = "RolloverPolicyStatus",
    shortname = "mirp",
    category = "miroir",
    doc = "Rolls a write alias over to a fresh index by age or size and keeps the last N.",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(name = "Write Alias", type_ = "string", json_path = ".spec.writeAlias"),
    printcolumn(name = "Current", type_ = "string", json_path = ".status.currentWriteIndex"),
    printcolumn(name = "Last Rollover", type_ = "date", json_path = ".status.lastRolloverTime"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("self.writeAlias != self.readAlias").message("writeAlias and readAlias must differ"))]
#[serde(rename_all = "camelCase")]
pub struct RolloverPolicySpec {
    /// Name of the MiroirCluster (same namespace).
    #[schemars(length(min = 1, max = 253))]
    pub cluster: String,
    /// Alias writes go to (always the newest index).
    #[schemars(length(min = 1, max = 400), regex(pattern = r"^[a-zA-Z0-9_-]+$"))]
    pub write_alias: String,
    /// Alias reads go to (every kept index).
    #[schemars(length(min = 1, max = 400), regex(pattern = r"^[a-zA-Z0-9_-]+$"))]
    pub read_alias: String,
    /// Name of new indexes, with one placeholder: `{YYYY-MM-DD}`, `{YYYY-MM}`, `{YYYYMMDD}`,
    /// `{YYYY-MM-DD-HH}` or `{N}` (a counter), e.g. `logs-{YYYY-MM-DD}`.
    #[schemars(
        length(min = 3, max = 300),
        regex(pattern = r"^[a-zA-Z0-9_-]*\{(YYYY-MM-DD|YYYY-MM|YYYYMMDD|YYYY-MM-DD-HH|N)\}[a-zA-Z0-9_-]*$")
    )]
    pub pattern: String,
    /// When to roll over (whichever comes first).
    pub triggers: RolloverTriggers,
    #[serde(default)]
    pub retention: RetentionSpec,
    /// How new indexes are created.
    #[serde(default)]
    pub template: RolloverTemplate,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1))]
pub struct RolloverTriggers {
    /// Roll over once the write index holds this many documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_docs: Option<u64>,
    /// Roll over once the write index is this old: a number and a unit (`s`, `m`, `h`, `d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[1-9][0-9]*(s|m|h|d)$"))]
    pub max_age: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// Indexes kept (the write index included); older ones are deleted.
    #[serde(default = "d_keep")]
    #[schemars(range(min = 1, max = 10000))]
    pub keep_indexes: u32,
}

fn d_keep() -> u32 {
    7
}

impl Default for RetentionSpec {
    fn default() -> Self {
        RetentionSpec { keep_indexes: d_keep() }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloverTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub primary_key: Option<String>,
    /// Meilisearch index settings applied to each new index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_object_opt")]
    pub settings: Option<Map<String, Value>>,
}

fn free_object_opt(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    free_object(g)
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloverPolicyStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_write_index: Option<String>,
    /// Indexes the policy manages, oldest first.
    #[serde(default)]
    pub managed_indexes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rollover_time: Option<String>,
}

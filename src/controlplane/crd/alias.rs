//! `Alias`: a stable index name that points at one index (or, for reads, several).

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::Condition;

/// An alias of a cluster. Exactly one of `target` or `targets` is set.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "miroir.io",
    version = "v1alpha1",
    kind = "Alias",
    namespaced,
    status = "AliasStatus",
    shortname = "mia",
    category = "miroir",
    doc = "An index alias served by a MiroirCluster.",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(name = "Targets", type_ = "string", json_path = ".status.targetsSummary"),
    printcolumn(name = "Version", type_ = "integer", json_path = ".status.version"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("has(self.target) != has(self.targets)").message("set exactly one of target or targets"))]
#[schemars(extend("oneOf" = [{"required": ["target"]}, {"required": ["targets"]}]))]
#[serde(rename_all = "camelCase")]
pub struct AliasSpec {
    /// Name of the MiroirCluster (same namespace).
    #[schemars(length(min = 1, max = 253))]
    pub cluster: String,
    /// The one index the alias points at (reads and writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 400), regex(pattern = r"^[a-zA-Z0-9_-]+$"))]
    pub target: Option<String>,
    /// Several indexes (reads only: a search scatters over all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub targets: Option<Vec<String>>,
}

impl AliasSpec {
    /// The targets, whichever field holds them.
    pub fn target_list(&self) -> Vec<String> {
        match (&self.target, &self.targets) {
            (Some(t), _) => vec![t.clone()],
            (None, Some(ts)) => ts.clone(),
            (None, None) => Vec::new(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AliasStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Indexes the alias resolves to now.
    #[serde(default)]
    pub resolved_targets: Vec<String>,
    /// Comma-separated targets, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets_summary: Option<String>,
    /// Bumped each time the targets change (a "flip").
    #[serde(default)]
    pub version: u64,
    /// RFC 3339 time of the last flip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_flip_time: Option<String>,
}

//! `Tenant`: pins a tenant's traffic to one replica group or to dedicated nodes.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{Condition, SecretKeyRef};

/// A tenant of a cluster: either `replicaGroup` or `dedicated: true`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "miroir.io",
    version = "v1alpha1",
    kind = "Tenant",
    namespaced,
    status = "TenantStatus",
    shortname = "mit",
    category = "miroir",
    doc = "A tenant of a MiroirCluster, pinned to a replica group.",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(name = "Tenant", type_ = "string", json_path = ".spec.tenantId"),
    printcolumn(name = "Group", type_ = "integer", json_path = ".status.pinnedGroup"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("has(self.replicaGroup) != (has(self.dedicated) && self.dedicated)")
    .message("set exactly one of replicaGroup or dedicated: true"))]
#[serde(rename_all = "camelCase")]
pub struct TenantSpec {
    /// Name of the MiroirCluster (same namespace).
    #[schemars(length(min = 1, max = 253))]
    pub cluster: String,
    /// The tenant id requests carry.
    #[schemars(length(min = 1, max = 253))]
    pub tenant_id: String,
    /// Replica group the tenant is served by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 63))]
    pub replica_group: Option<u32>,
    /// Serve the tenant from a replica group of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedicated: Option<bool>,
    /// Secret holding the tenant's API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<SecretKeyRef>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The replica group the tenant is pinned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_group: Option<u32>,
}

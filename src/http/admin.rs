//! `/health`, `/version` and Miroir's own `/_miroir/topology` and `/_miroir/consistency`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use reqwest::Method;
use serde_json::{json, Value};

use super::pass;
use crate::dataplane::Proxy;
use crate::error::ApiResult;
use crate::node::NodePath;

pub async fn health() -> Json<Value> {
    Json(json!({"status": "available"}))
}

/// How long `/ready` waits for the task store (probe timeouts must be longer).
pub const READY_STORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /ready` (no key, like `/health`): 200 once this process can serve (task store
/// answers, topology applied, nodes probed once, not stopping), else 503
/// `miroir_not_ready` naming every reason.
pub async fn ready(State(proxy): State<Proxy>) -> Response {
    match proxy.readiness(READY_STORE_TIMEOUT).await {
        Ok(body) => Json(body).into_response(),
        Err(reasons) => not_ready(&reasons).into_response(),
    }
}

/// The 503 `/ready` answers, in Meilisearch's error shape.
pub fn not_ready(reasons: &[String]) -> crate::error::ApiError {
    crate::error::ApiError::new(crate::error::Code::MiroirNotReady, format!("Miroir is not ready: {}.", reasons.join("; ")))
}

pub async fn version(State(proxy): State<Proxy>) -> ApiResult<Response> {
    let routing = proxy.routing_or_error()?;
    pass(proxy.read_any(&routing, Method::GET, &NodePath::route("/version"), None).await?)
}

pub async fn topology(State(proxy): State<Proxy>) -> ApiResult<Json<Value>> {
    let routing = proxy.routing_or_error()?;
    let nodes: Vec<Value> = routing
        .topology
        .nodes
        .iter()
        .map(|n| {
            let h = proxy.inner.health.get(&n.id);
            let sync = proxy.inner.sync.get(&n.id);
            json!({"id": n.id, "address": n.address, "replicaGroup": n.replica_group, "health": h.state,
                   "consecutiveFailures": h.consecutive_failures, "consecutiveSuccesses": h.consecutive_successes,
                   "sync": sync, "servesReads": proxy.serves_reads(&n.id)})
        })
        .collect();
    let groups: Vec<Value> = routing
        .assignment
        .groups
        .iter()
        .enumerate()
        .map(|(g, shards)| {
            json!({"replicaGroup": g, "shards": shards.iter().enumerate().map(|(s, h)| json!({"shard": s, "nodes": h})).collect::<Vec<_>>()})
        })
        .collect();
    Ok(Json(json!({
        "version": routing.version,
        "shards": routing.topology.shards,
        "replicationFactor": routing.topology.replication_factor,
        "replicaGroups": routing.topology.replica_groups,
        "nodes": nodes,
        "assignment": groups,
    })))
}

/// The last anti-entropy pass's report (see `crate::dataplane::antientropy`).
pub async fn consistency(State(proxy): State<Proxy>) -> Json<crate::dataplane::antientropy::ConsistencyReport> {
    Json(proxy.consistency_report())
}

/// Runs an anti-entropy pass now and answers its report.
pub async fn consistency_check(State(proxy): State<Proxy>) -> Json<crate::dataplane::antientropy::ConsistencyReport> {
    Json(proxy.check_consistency().await)
}

//! `/health`, `/version` and Miroir's own `/_miroir/topology`.

use axum::extract::State;
use axum::response::Response;
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

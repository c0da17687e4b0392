//! `/_miroir/nodes` and `/_miroir/rebalance`: adding, draining and removing Meilisearch nodes
//! while traffic flows (admin key). Every change is a migration the task store keeps; see
//! `crate::dataplane::rebalance`.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::{json_response, parse_json, query_pairs, RouteParams};
use crate::dataplane::rebalance::plan::Migration;
use crate::dataplane::topology::NodeSpec;
use crate::dataplane::Proxy;
use crate::error::{ApiError, ApiResult, Code};

/// 202 with the planned migration, or 200 when nothing has to move.
fn planned(m: Option<Migration>) -> Response {
    match m {
        Some(m) => json_response(
            StatusCode::ACCEPTED,
            json!({"migration": m.id, "phase": m.phase, "cause": m.cause, "shardsTotal": m.moves.len(),
                   "joining": m.joining, "leaving": m.leaving, "status": "/_miroir/rebalance"}),
        ),
        None => json_response(StatusCode::OK, json!({"migration": null, "message": "nothing has to move"})),
    }
}

fn bad(message: String) -> ApiError {
    ApiError::new(Code::MiroirInvalidTopology, message)
}

/// `GET /_miroir/nodes`: the nodes routing knows, and the drained ones.
pub async fn list(State(proxy): State<Proxy>) -> ApiResult<Response> {
    let routing = proxy.routing_or_error()?;
    let held = routing.assignment.shards_by_node();
    let nodes: Vec<Value> = routing
        .topology
        .nodes
        .iter()
        .map(|n| {
            json!({"id": n.id, "address": n.address, "replicaGroup": n.replica_group,
                   "health": proxy.node_health().into_iter().find(|(id, _)| id == &n.id).map(|(_, h)| h.state),
                   "shards": held.get(&n.id).map(Vec::len).unwrap_or(0)})
        })
        .collect();
    let state = proxy.load_placement().await.map_err(crate::dataplane::tasks::store_error)?;
    let drained: Vec<Value> = state
        .map(|(_, s)| s.drained.iter().map(|n| json!({"id": n.id, "address": n.address, "replicaGroup": n.replica_group})).collect())
        .unwrap_or_default();
    Ok(json_response(StatusCode::OK, json!({"nodes": nodes, "drained": drained})))
}

/// `POST /_miroir/nodes` with `{"id", "address", "replicaGroup"?}`.
pub async fn add(State(proxy): State<Proxy>, body: axum::body::Bytes) -> ApiResult<Response> {
    let body = parse_json(&body)?;
    let obj = body.as_object().ok_or_else(|| bad("the body must be an object: {\"id\", \"address\", \"replicaGroup\"}".into()))?;
    for k in obj.keys() {
        if !matches!(k.as_str(), "id" | "address" | "replicaGroup") {
            return Err(bad(format!("unknown field `{k}`: expected one of `id`, `address`, `replicaGroup`")));
        }
    }
    let id = obj.get("id").and_then(Value::as_str).ok_or_else(|| bad("`id` is required and must be a string".into()))?;
    let address = obj.get("address").and_then(Value::as_str).ok_or_else(|| bad("`address` is required and must be a string".into()))?;
    let group = match obj.get("replicaGroup") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_u64().and_then(|g| u32::try_from(g).ok()).ok_or_else(|| bad("`replicaGroup` must be a non-negative integer".into()))?,
    };
    let spec = NodeSpec { id: id.to_string(), address: address.to_string(), replica_group: group };
    Ok(planned(proxy.add_node(spec).await?))
}

/// `POST /_miroir/nodes/{id}/drain`.
pub async fn drain(State(proxy): State<Proxy>, params: RouteParams) -> ApiResult<Response> {
    let id = params.raw_document_id().to_string();
    Ok(planned(proxy.drain_node(&id).await?))
}

/// `DELETE /_miroir/nodes/{id}[?force=true]`.
pub async fn remove(State(proxy): State<Proxy>, params: RouteParams, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let id = params.raw_document_id().to_string();
    let mut force = false;
    for (k, v) in query_pairs(&q) {
        match (k.as_str(), v.as_str()) {
            ("force", "true") => force = true,
            ("force", "false") => force = false,
            ("force", other) => return Err(bad(format!("`force` must be `true` or `false`, not `{other}`"))),
            (other, _) => return Err(bad(format!("unknown parameter `{other}`: expected `force`"))),
        }
    }
    match proxy.remove_node(&id, force).await? {
        Some(m) => Ok(planned(Some(m))),
        None => Ok(json_response(StatusCode::OK, json!({"removed": id}))),
    }
}

/// `GET /_miroir/rebalance`.
pub async fn status(State(proxy): State<Proxy>) -> ApiResult<Response> {
    let body = proxy.rebalance_status().await.map_err(crate::dataplane::tasks::store_error)?;
    Ok(json_response(StatusCode::OK, body))
}

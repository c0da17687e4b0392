//! `/indexes` and `/indexes/{uid}`: broadcast to every node, answered like one Meilisearch.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use reqwest::Method;
use serde_json::{json, Value};

use super::{accepted, node_error_or, pass, query_pairs, read_response, JsonBody, RouteParams};
use crate::dataplane::fanout::NodeCall;
use crate::dataplane::tasks::store_error;
use crate::dataplane::write::WriteAck;
use crate::dataplane::{Proxy, RoutingTable};
use crate::error::{ApiError, ApiResult, Code};
use crate::model::deserr::parse;
use crate::model::fields::ListFields;
use crate::model::IndexUid;
use crate::node::NodePath;

pub async fn list(State(proxy): State<Proxy>, auth: crate::auth::AuthContext, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let path = NodePath::route("/indexes").client_query(query_pairs(&q));
    let routing = proxy.routing_or_error()?;
    let mut answer = proxy.read_any(&routing, Method::GET, &path, None).await?;
    if answer.is_success() {
        if let Some(Value::Array(results)) = answer.body.get_mut("results") {
            fill_primary_keys(&proxy, &routing, results).await;
        }
    }
    if !answer.is_success() || auth.all_indexes_authorized() {
        return pass(answer);
    }
    // A key restricted to some indexes lists only those, paged among themselves (the node
    // validated the query and echoes the offset and limit it read).
    let (offset, limit) = (answer.body["offset"].as_u64().unwrap_or(0) as usize, answer.body["limit"].as_u64().unwrap_or(20) as usize);
    let all = proxy.read_any(&routing, Method::GET, &NodePath::route("/indexes").query("limit", u32::MAX.to_string()), None).await?;
    let mut all = all;
    if let Some(Value::Array(results)) = all.body.get_mut("results") {
        fill_primary_keys(&proxy, &routing, results).await;
    }
    let mut reachable: Vec<Value> = all.body["results"]
        .as_array()
        .map(|r| r.iter().filter(|i| i["uid"].as_str().is_some_and(|u| auth.index_authorized(u))).cloned().collect())
        .unwrap_or_default();
    let total = reachable.len();
    let results: Vec<Value> = reachable.drain(..).skip(offset).take(limit).collect();
    let mut body = answer.body;
    body["results"] = Value::Array(results);
    body["total"] = json!(total);
    Ok(super::json_response(axum::http::StatusCode::OK, body))
}

pub async fn get(State(proxy): State<Proxy>, params: RouteParams) -> ApiResult<Response> {
    let uid = params.index_uid()?;
    let routing = proxy.routing_or_error()?;
    let mut r = proxy.read_any(&routing, Method::GET, &NodePath::index(&uid), None).await?;
    if r.is_success() {
        fill_primary_keys(&proxy, &routing, std::slice::from_mut(&mut r.body)).await;
    }
    pass(r)
}

/// A primary key Meilisearch inferred from the first documents is set on the nodes that got
/// some of them; a node that got none still shows `null`. The cluster's index has the key
/// as soon as any node has it: it is taken from the nodes that have it.
async fn fill_primary_keys(proxy: &Proxy, routing: &RoutingTable, indexes: &mut [Value]) {
    for ix in indexes.iter_mut().filter(|ix| ix.get("primaryKey").is_some_and(Value::is_null)) {
        let Some(uid) = ix.get("uid").and_then(Value::as_str).and_then(|u| IndexUid::parse(u).ok()) else { continue };
        let known = proxy.cluster_primary_key(routing, &uid).await;
        if let Some(pk) = known {
            ix["primaryKey"] = pk;
        }
    }
}

pub async fn create(State(proxy): State<Proxy>, auth: crate::auth::AuthContext, JsonBody(body): JsonBody) -> ApiResult<Response> {
    // A key may create only the indexes its `indexes` reach (Meilisearch answers 403).
    if let Some(u) = body.get("uid").and_then(Value::as_str) {
        if !auth.may_create_index(u) {
            return Err(ApiError::new(Code::InvalidApiKey, crate::auth::INVALID_API_KEY));
        }
    }
    let routing = proxy.routing_or_error()?;
    // The uid travels in the body; a node validates it (and answers as Meilisearch does).
    let uid = body.get("uid").and_then(Value::as_str).and_then(|u| IndexUid::parse(u).ok());
    // Only a new index gets Miroir's settings; an existing one must stay as it is (the
    // creation task then fails with `index_already_exists`, as on one Meilisearch).
    let exists = match &uid {
        Some(u) => proxy.index_meta(&routing, u).await?.is_some(),
        None => false,
    };
    let pk = body.get("primaryKey").cloned().unwrap_or(Value::Null);
    let ack = proxy.broadcast_write(Method::POST, &NodePath::route("/indexes"), Some(&body), uid.as_ref(), json!({"primaryKey": pk})).await?;
    if let (Some(u), false) = (&uid, exists) {
        proxy.init_index_settings(&routing, u).await?;
        proxy.index_context_changed(Some(u.as_str())).await;
    }
    Ok(accepted(ack))
}

pub async fn update(State(proxy): State<Proxy>, params: RouteParams, JsonBody(body): JsonBody) -> ApiResult<Response> {
    let uid = params.index_uid()?;
    let pk = body.get("primaryKey").cloned().unwrap_or(Value::Null);
    if let Some(new_pk) = pk.as_str() {
        // Meilisearch refuses to change the primary key of a non-empty index. Each node only
        // sees its own shards, so decide for the whole cluster here, before any node is
        // touched; otherwise empty nodes would accept a key the others refuse.
        let routing = proxy.routing_or_error()?;
        if let Some(meta) = proxy.index_meta(&routing, &uid).await? {
            if let Some(current) = meta.get("primaryKey").and_then(Value::as_str) {
                if current != new_pk && cluster_has_documents(&proxy, &routing, &uid).await? {
                    let e = ApiError::new(
                        Code::IndexPrimaryKeyAlreadyExists,
                        format!("Index `{uid}`: Index already has a primary key: `{current}`."),
                    );
                    let task = proxy.create_failed_task("indexUpdate", Some(uid.as_str()), json!({"primaryKey": new_pk}), &e).await?;
                    return Ok(accepted(WriteAck { task, report: None }));
                }
            }
        }
    }
    let ack = proxy.broadcast_write(Method::PATCH, &NodePath::index(&uid), Some(&body), Some(&uid), json!({"primaryKey": pk})).await?;
    Ok(accepted(ack))
}

/// Whether any node holds a document of the index.
async fn cluster_has_documents(proxy: &Proxy, routing: &RoutingTable, uid: &IndexUid) -> ApiResult<bool> {
    let calls: Vec<NodeCall> = routing
        .topology
        .nodes
        .iter()
        .map(|n| NodeCall { node_id: n.id.clone(), method: Method::GET, path: NodePath::index(uid).then("stats"), content_type: None, body: None })
        .collect();
    let outcomes = proxy.call_nodes(routing, calls).await;
    let mut has = false;
    for o in &outcomes {
        match &o.result {
            Ok(r) if r.is_success() => {
                has |= r.body.get("numberOfDocuments").and_then(Value::as_u64).unwrap_or(0) > 0;
            }
            // The index does not exist on that node: no document there.
            Ok(r) if r.status == 404 => {}
            // A node that cannot say might hold documents: refuse to decide.
            _ => {
                return Err(ApiError::new(
                    Code::MiroirNodeUnavailable,
                    format!("Node `{}` could not be asked whether index `{uid}` is empty; retry when every node is up.", o.node_id),
                ))
            }
        }
    }
    Ok(has)
}

pub async fn delete(State(proxy): State<Proxy>, params: RouteParams) -> ApiResult<Response> {
    let uid = params.index_uid()?;
    let ack = proxy.broadcast_write(Method::DELETE, &NodePath::index(&uid), None, Some(&uid), json!({"deletedDocuments": null})).await?;
    proxy.store().delete_index_settings(uid.as_str()).await.map_err(store_error)?;
    proxy.index_context_changed(Some(uid.as_str())).await;
    Ok(accepted(ack))
}

/// `POST /indexes/{uid}/compact`: every node compacts its copy; one `indexCompaction` task
/// whose sizes are the nodes' summed.
pub async fn compact(State(proxy): State<Proxy>, params: RouteParams) -> ApiResult<Response> {
    let uid = params.index_uid()?;
    let path = NodePath::index(&uid).then("compact");
    Ok(accepted(proxy.broadcast_write(Method::POST, &path, None, Some(&uid), json!({})).await?))
}

/// `POST /indexes/{uid}/fields`: the union of the field lists of one covering set of nodes,
/// paginated (see [`Proxy::list_fields`]). Meilisearch reads the body first, then looks the
/// index up by the name as given: a name that is not a valid uid is an index it does not have.
pub async fn fields(State(proxy): State<Proxy>, params: RouteParams, JsonBody(body): JsonBody) -> ApiResult<Response> {
    let uid = params.index_uid();
    let request: ListFields = match parse(body.clone()) {
        Ok(r) => r,
        Err(own) => {
            return Err(match &uid {
                Ok(uid) => node_error_or(&proxy, &NodePath::index(uid).then("fields"), &body, own).await,
                Err(_) => own,
            })
        }
    };
    let uid = uid.map_err(|_| ApiError::new(Code::IndexNotFound, format!("Index `{}` not found.", params.raw_index_uid())))?;
    Ok(read_response(proxy.list_fields(&uid, &request).await?))
}

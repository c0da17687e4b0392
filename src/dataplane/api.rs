//! The HTTP API: Meilisearch's routes, answered like one Meilisearch, plus `/_miroir/*`.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::fanout::{group_by_node, NodeCall, QuorumReport, DEGRADED_HEADER};
use super::hash::shard_of;
use super::payload::{document_id, format_from_content_type, infer_primary_key, parse_documents, Document};
use super::tasks::{parse_task_query, store_error, summarized, task_view};
use super::{Proxy, RoutingTable};
use crate::error::{ApiError, ApiResult, Code};
use crate::store::NodeTask;

pub use super::merge::{RESERVED_PREFIX, SHARD_FIELD};
use super::settings as node_settings;

pub fn router(proxy: Proxy) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/indexes", get(list_indexes).post(create_index))
        .route("/indexes/{uid}", get(get_index).patch(update_index).delete(delete_index))
        .route("/indexes/{uid}/settings", get(get_settings).patch(update_settings).put(update_settings).delete(reset_settings))
        .route(
            "/indexes/{uid}/settings/{sub}",
            get(get_sub_setting).patch(update_sub_setting).put(update_sub_setting).delete(reset_sub_setting),
        )
        .route(
            "/indexes/{uid}/documents",
            get(list_documents).post(add_documents).put(update_documents).delete(delete_all_documents),
        )
        .route("/indexes/{uid}/documents/fetch", post(fetch_documents))
        .route("/indexes/{uid}/documents/delete-batch", post(delete_batch))
        .route("/indexes/{uid}/documents/delete", post(delete_by_filter))
        .route("/indexes/{uid}/documents/{id}", get(get_document).delete(delete_document))
        .route("/indexes/{uid}/search", get(search).post(search))
        .route("/indexes/{uid}/facet-search", post(facet_search))
        .route("/indexes/{uid}/stats", get(index_stats))
        .route("/multi-search", post(multi_search))
        .route("/stats", get(global_stats))
        .route("/tasks", get(list_tasks).delete(delete_tasks))
        .route("/tasks/cancel", post(cancel_tasks))
        .route("/tasks/{uid}", get(get_task))
        .route("/_miroir/topology", get(topology))
        // Meilisearch routes Miroir does not support (yet): a clear 501, not a 404.
        .route("/keys", axum::routing::any(unsupported))
        .route("/keys/{key}", axum::routing::any(unsupported))
        .route("/swap-indexes", axum::routing::any(unsupported))
        .route("/dumps", axum::routing::any(unsupported))
        .route("/snapshots", axum::routing::any(unsupported))
        .route("/batches", axum::routing::any(unsupported))
        .route("/batches/{uid}", axum::routing::any(unsupported))
        .route("/experimental-features", axum::routing::any(unsupported))
        .route("/export", axum::routing::any(unsupported))
        .route("/network", axum::routing::any(unsupported))
        .route("/indexes/{uid}/documents/edit", axum::routing::any(unsupported))
        .route("/indexes/{uid}/similar", axum::routing::any(unsupported))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(proxy.clone(), auth))
        .route_layer(middleware::from_fn_with_state(proxy.metrics().clone(), super::metrics::track))
        .with_state(proxy)
}

// ---------------------------------------------------------------- plumbing

async fn auth(State(proxy): State<Proxy>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/health" {
        return next.run(req).await;
    }
    let keys = proxy.options().keys;
    let expected = if path.starts_with("/_miroir/") {
        keys.admin_api_key.get().or(keys.master_key.get()).map(str::to_string)
    } else {
        keys.master_key.get().map(str::to_string)
    };
    let Some(expected) = expected else { return next.run(req).await };
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match given {
        None => ApiError::new(
            Code::MissingAuthorizationHeader,
            "The Authorization header is missing. It must use the bearer authorization method.",
        )
        .into_response(),
        Some(v) => {
            let token = v.strip_prefix("Bearer ").unwrap_or("").trim();
            if constant_time_eq(token.as_bytes(), expected.as_bytes()) {
                next.run(req).await
            } else {
                ApiError::new(Code::InvalidApiKey, "The provided API key is invalid.").into_response()
            }
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn unsupported(req: Request) -> ApiError {
    ApiError::not_implemented(&format!("`{} {}`", req.method(), req.uri().path()))
}

async fn not_found() -> ApiError {
    ApiError::new(Code::NotFound, "Not found.")
}

fn human_size(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} B")
    }
}

async fn read_body(proxy: &Proxy, body: Body) -> ApiResult<Bytes> {
    let limit = proxy.options().max_body_bytes;
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            Code::PayloadTooLarge,
            format!("The provided payload reached the size limit. The maximum accepted payload size is {}.", human_size(limit)),
        )
    })
}

/// Parses a JSON request body (non-document routes).
fn parse_json(bytes: &[u8]) -> ApiResult<Value> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(Code::MissingPayload, "A json payload is missing."));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(Code::MalformedPayload, format!("The json payload provided is malformed. `{e}`.")))
}

fn query_pairs(raw: &Option<String>) -> Vec<(String, String)> {
    raw.as_deref()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn routing(proxy: &Proxy) -> ApiResult<std::sync::Arc<RoutingTable>> {
    proxy.routing().ok_or_else(|| {
        ApiError::new(Code::MiroirNodeUnavailable, "Miroir has no topology yet: no Meilisearch node is configured.")
    })
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// A 202 with the summarized task, plus `X-Miroir-Degraded` when some group missed quorum.
fn accepted(task: &crate::store::TaskRecord, report: Option<&QuorumReport>) -> Response {
    let mut resp = json_response(StatusCode::ACCEPTED, summarized(task));
    if let Some(h) = report.and_then(QuorumReport::header_value) {
        if let Ok(v) = HeaderValue::from_str(&h) {
            resp.headers_mut().insert(DEGRADED_HEADER, v);
        }
    }
    resp
}

fn node_tasks(outcomes: &[super::fanout::CallOutcome]) -> Vec<NodeTask> {
    outcomes
        .iter()
        .filter(|o| o.accepted())
        .filter_map(|o| {
            let r = o.result.as_ref().ok()?;
            Some(NodeTask { node_id: o.node_id.clone(), task_uid: r.body.get("taskUid")?.as_u64()? })
        })
        .collect()
}

/// Broadcast a write to every node and record the task.
async fn broadcast_write(
    proxy: &Proxy,
    method: Method,
    path: &str,
    body: Option<&Value>,
    index_uid: Option<&str>,
    details: Value,
) -> ApiResult<Response> {
    let enqueued_at = time::OffsetDateTime::now_utc();
    let routing = routing(proxy)?;
    let (outcomes, report) = proxy.broadcast(&routing, method, path, body).await?;
    if !report.ok() {
        return Err(report.into_error());
    }
    let kind = outcomes
        .iter()
        .find_map(|o| o.result.as_ref().ok().filter(|r| r.is_success()).and_then(|r| r.body.get("type")).and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    let task = proxy.create_task(&kind, index_uid, details, node_tasks(&outcomes), enqueued_at).await?;
    Ok(accepted(&task, Some(&report)))
}

fn pass(r: crate::node::NodeResponse) -> ApiResult<Response> {
    if r.is_success() {
        Ok(json_response(StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK), r.body))
    } else {
        Err(ApiError::Passthrough { status: r.status, body: super::read::sanitize_node_error(r.body) })
    }
}

/// Removes Miroir's reserved attributes from a document-shaped object (and `_formatted`).
pub fn strip_reserved(doc: &mut Map<String, Value>) {
    doc.retain(|k, _| !k.starts_with(RESERVED_PREFIX));
    if let Some(Value::Object(f)) = doc.get_mut("_formatted") {
        f.retain(|k, _| !k.starts_with(RESERVED_PREFIX));
    }
}

// ---------------------------------------------------------------- health, version, topology

async fn health() -> Json<Value> {
    Json(json!({"status": "available"}))
}

async fn version(State(proxy): State<Proxy>) -> ApiResult<Response> {
    let routing = routing(&proxy)?;
    pass(proxy.read_any(&routing, Method::GET, "/version", None).await?)
}

async fn topology(State(proxy): State<Proxy>) -> ApiResult<Json<Value>> {
    let routing = routing(&proxy)?;
    let nodes: Vec<Value> = routing
        .topology
        .nodes
        .iter()
        .map(|n| {
            let h = proxy.inner.health.get(&n.id);
            json!({"id": n.id, "address": n.address, "replicaGroup": n.replica_group, "health": h.state,
                   "consecutiveFailures": h.consecutive_failures, "consecutiveSuccesses": h.consecutive_successes})
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

// ---------------------------------------------------------------- indexes

async fn list_indexes(State(proxy): State<Proxy>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let routing = routing(&proxy)?;
    let path = match q {
        Some(q) => format!("/indexes?{q}"),
        None => "/indexes".to_string(),
    };
    pass(proxy.read_any(&routing, Method::GET, &path, None).await?)
}

async fn get_index(State(proxy): State<Proxy>, Path(uid): Path<String>) -> ApiResult<Response> {
    let routing = routing(&proxy)?;
    pass(proxy.read_any(&routing, Method::GET, &format!("/indexes/{uid}"), None).await?)
}

/// What one node says about an index: `None` if it does not exist.
async fn index_meta(proxy: &Proxy, routing: &RoutingTable, uid: &str) -> ApiResult<Option<Value>> {
    let r = proxy.read_any(routing, Method::GET, &format!("/indexes/{}", urlenc(uid)), None).await?;
    match r.status {
        200 => Ok(Some(r.body)),
        404 => Ok(None),
        _ => Err(ApiError::Passthrough { status: r.status, body: r.body }),
    }
}

fn urlenc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Gives a freshly created index Miroir's node settings (`_miroir_shard` filterable, the
/// node-side facet limit) and records the client-visible defaults.
async fn init_index_settings(proxy: &Proxy, routing: &RoutingTable, uid: &str) -> ApiResult<()> {
    let body = node_settings::initial_node_settings();
    let (_, report) = proxy.broadcast(routing, Method::PATCH, &format!("/indexes/{uid}/settings"), Some(&body)).await?;
    if !report.ok() {
        return Err(report.into_error());
    }
    proxy
        .store()
        .put_index_settings(uid, &node_settings::overlay(node_settings::DEFAULT_MAX_VALUES_PER_FACET))
        .await
        .map_err(store_error)
}

async fn create_index(State(proxy): State<Proxy>, body: Body) -> ApiResult<Response> {
    let body = parse_json(&read_body(&proxy, body).await?)?;
    let routing = routing(&proxy)?;
    let uid = body.get("uid").and_then(Value::as_str).map(str::to_string);
    // Only a new index gets Miroir's settings; an existing one must stay as it is (the
    // creation task then fails with `index_already_exists`, as on one Meilisearch).
    let exists = match &uid {
        Some(u) if valid_index_uid(u) => index_meta(&proxy, &routing, u).await?.is_some(),
        _ => false,
    };
    let pk = body.get("primaryKey").cloned().unwrap_or(Value::Null);
    let resp = broadcast_write(&proxy, Method::POST, "/indexes", Some(&body), uid.as_deref(), json!({"primaryKey": pk})).await?;
    if let (Some(u), false) = (&uid, exists) {
        init_index_settings(&proxy, &routing, u).await?;
    }
    Ok(resp)
}

fn valid_index_uid(uid: &str) -> bool {
    !uid.is_empty() && uid.len() <= 512 && uid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

async fn update_index(State(proxy): State<Proxy>, Path(uid): Path<String>, body: Body) -> ApiResult<Response> {
    let body = parse_json(&read_body(&proxy, body).await?)?;
    let pk = body.get("primaryKey").cloned().unwrap_or(Value::Null);
    if let Some(new_pk) = pk.as_str() {
        // Meilisearch refuses to change the primary key of a non-empty index. Each node only
        // sees its own shards, so decide for the whole cluster here, before any node is
        // touched; otherwise empty nodes would accept a key the others refuse.
        let routing = routing(&proxy)?;
        if let Some(meta) = index_meta(&proxy, &routing, &uid).await? {
            if let Some(current) = meta.get("primaryKey").and_then(Value::as_str) {
                if current != new_pk && cluster_has_documents(&proxy, &routing, &uid).await? {
                    let e = ApiError::new(
                        Code::IndexPrimaryKeyAlreadyExists,
                        format!("Index `{uid}`: Index already has a primary key: `{current}`."),
                    );
                    let task = proxy.create_failed_task("indexUpdate", Some(&uid), json!({"primaryKey": new_pk}), &e).await?;
                    return Ok(accepted(&task, None));
                }
            }
        }
    }
    broadcast_write(&proxy, Method::PATCH, &format!("/indexes/{uid}"), Some(&body), Some(&uid), json!({"primaryKey": pk})).await
}

/// Whether any node holds a document of the index.
async fn cluster_has_documents(proxy: &Proxy, routing: &RoutingTable, uid: &str) -> ApiResult<bool> {
    let calls: Vec<NodeCall> = routing
        .topology
        .nodes
        .iter()
        .map(|n| NodeCall {
            node_id: n.id.clone(),
            method: Method::GET,
            path: format!("/indexes/{uid}/stats"),
            content_type: None,
            body: None,
        })
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

async fn delete_index(State(proxy): State<Proxy>, Path(uid): Path<String>) -> ApiResult<Response> {
    let resp = broadcast_write(&proxy, Method::DELETE, &format!("/indexes/{uid}"), None, Some(&uid), json!({"deletedDocuments": null})).await?;
    proxy.store().delete_index_settings(&uid).await.map_err(store_error)?;
    Ok(resp)
}

// ---------------------------------------------------------------- settings

/// The client-visible `maxValuesPerFacet` of an index, when Miroir keeps it apart from the
/// nodes' value.
pub(crate) async fn client_max_values_per_facet(proxy: &Proxy, uid: &str) -> ApiResult<Option<u64>> {
    let overlay = proxy.store().get_index_settings(uid).await.map_err(store_error)?;
    Ok(overlay.as_ref().and_then(node_settings::overlay_max))
}

/// Records the client-visible facet limit after a successful `faceting` update.
async fn record_faceting(proxy: &Proxy, uid: &str, client_faceting: &Value) -> ApiResult<()> {
    let previous = client_max_values_per_facet(proxy, uid).await?.unwrap_or(node_settings::DEFAULT_MAX_VALUES_PER_FACET);
    let next = node_settings::client_max_after(previous, client_faceting);
    proxy.store().put_index_settings(uid, &node_settings::overlay(next)).await.map_err(store_error)
}

async fn get_settings(State(proxy): State<Proxy>, Path(uid): Path<String>) -> ApiResult<Response> {
    let routing = routing(&proxy)?;
    let mut r = proxy.read_any(&routing, Method::GET, &format!("/indexes/{uid}/settings"), None).await?;
    if r.is_success() {
        node_settings::to_client_settings(&mut r.body, client_max_values_per_facet(&proxy, &uid).await?);
    }
    pass(r)
}

/// Broadcasts a settings change; `client_faceting` is the client's `faceting` value when the
/// change touches it (recorded in the task details and the overlay).
async fn settings_write(proxy: &Proxy, uid: &str, method: Method, sub: Option<&str>, node_body: Option<&Value>, client_faceting: Option<Value>) -> ApiResult<Response> {
    let path = match sub {
        Some(sub) => format!("/indexes/{uid}/settings/{sub}"),
        None => format!("/indexes/{uid}/settings"),
    };
    let details = match &client_faceting {
        Some(f) => json!({"faceting": f}),
        None => json!({}),
    };
    let resp = broadcast_write(proxy, method, &path, node_body, Some(uid), details).await?;
    if let Some(f) = client_faceting {
        record_faceting(proxy, uid, &f).await?;
    }
    Ok(resp)
}

async fn update_settings(State(proxy): State<Proxy>, Path(uid): Path<String>, method: Method, body: Body) -> ApiResult<Response> {
    let mut body = parse_json(&read_body(&proxy, body).await?)?;
    let mut client_faceting = None;
    if let Some(obj) = body.as_object_mut() {
        client_faceting = obj.get("faceting").cloned();
        node_settings::to_node_settings(obj);
    }
    settings_write(&proxy, &uid, method, None, Some(&body), client_faceting).await
}

async fn reset_settings(State(proxy): State<Proxy>, Path(uid): Path<String>) -> ApiResult<Response> {
    // A reset must keep Miroir's node settings: reset everything with one PATCH that also
    // re-sets them, so every node's queue applies it as one task.
    let mut body = Map::new();
    for k in RESETTABLE_SETTINGS {
        body.insert(k.to_string(), Value::Null);
    }
    body.insert("filterableAttributes".into(), Value::Null);
    node_settings::to_node_settings(&mut body);
    settings_write(&proxy, &uid, Method::PATCH, None, Some(&Value::Object(body)), Some(Value::Null)).await
}

const RESETTABLE_SETTINGS: &[&str] = &[
    "displayedAttributes",
    "searchableAttributes",
    "sortableAttributes",
    "rankingRules",
    "stopWords",
    "nonSeparatorTokens",
    "separatorTokens",
    "dictionary",
    "synonyms",
    "distinctAttribute",
    "proximityPrecision",
    "typoTolerance",
    "faceting",
    "pagination",
    "searchCutoffMs",
    "localizedAttributes",
    "facetSearch",
    "prefixSearch",
];

async fn get_sub_setting(State(proxy): State<Proxy>, Path((uid, sub)): Path<(String, String)>) -> ApiResult<Response> {
    let routing = routing(&proxy)?;
    let mut r = proxy.read_any(&routing, Method::GET, &format!("/indexes/{uid}/settings/{sub}"), None).await?;
    if r.is_success() {
        match sub.as_str() {
            "filterable-attributes" => node_settings::hide_filterable_list(&mut r.body),
            "faceting" => node_settings::to_client_faceting(&mut r.body, client_max_values_per_facet(&proxy, &uid).await?),
            _ => {}
        }
    }
    pass(r)
}

async fn update_sub_setting(
    State(proxy): State<Proxy>,
    Path((uid, sub)): Path<(String, String)>,
    method: Method,
    body: Body,
) -> ApiResult<Response> {
    let body = parse_json(&read_body(&proxy, body).await?)?;
    match sub.as_str() {
        "filterable-attributes" => {
            let node_body = node_settings::node_filterable(Some(&body));
            settings_write(&proxy, &uid, method, Some(&sub), Some(&node_body), None).await
        }
        "faceting" => {
            let node_body = node_settings::node_faceting(&body);
            settings_write(&proxy, &uid, method, Some(&sub), Some(&node_body), Some(body)).await
        }
        _ => settings_write(&proxy, &uid, method, Some(&sub), Some(&body), None).await,
    }
}

async fn reset_sub_setting(State(proxy): State<Proxy>, Path((uid, sub)): Path<(String, String)>) -> ApiResult<Response> {
    match sub.as_str() {
        // Resets that must keep Miroir's node settings are sent as updates.
        "filterable-attributes" => {
            let body = node_settings::node_filterable(None);
            settings_write(&proxy, &uid, Method::PUT, Some(&sub), Some(&body), None).await
        }
        "faceting" => {
            let body = node_settings::node_faceting(&Value::Null);
            settings_write(&proxy, &uid, Method::PATCH, Some(&sub), Some(&body), Some(Value::Null)).await
        }
        _ => settings_write(&proxy, &uid, Method::DELETE, Some(&sub), None, None).await,
    }
}

// ---------------------------------------------------------------- documents: writes

async fn add_documents(State(proxy): State<Proxy>, Path(uid): Path<String>, RawQuery(q): RawQuery, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    write_documents(proxy, uid, q, headers, body, Method::POST).await
}

async fn update_documents(State(proxy): State<Proxy>, Path(uid): Path<String>, RawQuery(q): RawQuery, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    write_documents(proxy, uid, q, headers, body, Method::PUT).await
}

async fn write_documents(proxy: Proxy, uid: String, q: Option<String>, headers: HeaderMap, body: Body, method: Method) -> ApiResult<Response> {
    const KIND: &str = "documentAdditionOrUpdate";
    let enqueued_at = time::OffsetDateTime::now_utc();
    let params = query_pairs(&q);
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let format = format_from_content_type(ct)?;
    let bytes = read_body(&proxy, body).await?;
    let delimiter = params.iter().find(|(k, _)| k == "csvDelimiter").map(|(_, v)| v.as_bytes());
    let delimiter = match delimiter {
        None => None,
        Some([b]) if b.is_ascii() => Some(*b),
        Some(_) => {
            return Err(ApiError::new(Code::InvalidDocumentCsvDelimiter, "Invalid value in parameter `csvDelimiter`: expected a string of one character, but found the following string of 5 characters: `param`".replace("param", &String::from_utf8_lossy(delimiter.unwrap_or_default()))))
        }
    };
    let mut docs = parse_documents(&bytes, format, delimiter.unwrap_or(b','))?;
    if !valid_index_uid(&uid) {
        return Err(ApiError::new(Code::InvalidIndexUid, format!("`{uid}` is not a valid index uid. Index uid can be an integer or a string containing only alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes.")));
    }
    for d in &docs {
        if let Some(k) = d.keys().find(|k| k.starts_with(RESERVED_PREFIX)) {
            return Err(ApiError::new(
                Code::MiroirReservedField,
                format!("The field `{k}` is reserved: attributes starting with `{RESERVED_PREFIX}` are used by Miroir and cannot be written by clients."),
            ));
        }
    }
    let routing = routing(&proxy)?;
    let details = json!({"receivedDocuments": docs.len(), "indexedDocuments": null});
    let meta = index_meta(&proxy, &routing, &uid).await?;
    let index_pk = meta.as_ref().and_then(|m| m.get("primaryKey")).and_then(Value::as_str).map(str::to_string);
    let query_pk = params.iter().find(|(k, _)| k == "primaryKey").map(|(_, v)| v.clone());

    // Resolve the primary key as Meilisearch would; failures fail the task, no node touched.
    let pk = match (&index_pk, &query_pk) {
        (Some(ipk), Some(qpk)) if ipk != qpk => Err(ApiError::new(
            Code::IndexPrimaryKeyAlreadyExists,
            format!("Index `{uid}`: Index already has a primary key: `{ipk}`."),
        )),
        (Some(ipk), _) => Ok(ipk.clone()),
        (None, Some(qpk)) => Ok(qpk.clone()),
        (None, None) => infer_primary_key(docs.first()),
    };
    // A batch Meilisearch would fail inside its task: the index is still created (as one
    // Meilisearch does), no document reaches a node, and the task fails with the same error.
    let pk_and_ids = pk.and_then(|pk| {
        let routed = docs
            .iter()
            .enumerate()
            .map(|(i, d)| document_id(d, &pk).map(|id| (shard_of(&id, routing.topology.shards), i)))
            .collect::<Result<Vec<(u32, usize)>, ApiError>>()?;
        Ok((pk, routed))
    });
    let (pk, routed) = match pk_and_ids {
        Ok(x) => x,
        Err(e) => {
            if meta.is_none() {
                create_index_everywhere(&proxy, &routing, &uid, None).await?;
            }
            let task = proxy.create_failed_task(KIND, Some(&uid), json!({"receivedDocuments": docs.len(), "indexedDocuments": 0}), &e).await?;
            return Ok(accepted(&task, None));
        }
    };
    for (shard, i) in &routed {
        docs[*i].insert(SHARD_FIELD.into(), json!(shard));
    }
    if meta.is_none() {
        // Create the index everywhere first (each node's queue keeps the order), so every
        // node knows it even if this batch sends it no document.
        create_index_everywhere(&proxy, &routing, &uid, Some(&pk)).await?;
    }
    let per_node: BTreeMap<String, Vec<usize>> = group_by_node(&routing.assignment, &routed);
    let path = format!("/indexes/{uid}/documents?primaryKey={}", urlenc(&pk));
    let calls: Vec<NodeCall> = per_node
        .into_iter()
        .map(|(node, idx)| {
            let batch: Vec<&Document> = idx.iter().map(|i| &docs[*i]).collect();
            NodeCall {
                node_id: node,
                method: method.clone(),
                path: path.clone(),
                content_type: Some("application/json"),
                body: Some(serde_json::to_vec(&batch).expect("json")),
            }
        })
        .collect();
    let outcomes = proxy.call_nodes(&routing, calls).await;
    if let Some(e) = outcomes.iter().find_map(|o| o.client_error()) {
        return Err(e);
    }
    let shards: BTreeSet<u32> = routed.iter().map(|(s, _)| *s).collect();
    let accepted_nodes: HashSet<String> = outcomes.iter().filter(|o| o.accepted()).map(|o| o.node_id.clone()).collect();
    let report = super::fanout::evaluate_quorum(&routing.assignment, routing.topology.replication_factor, &shards, &accepted_nodes);
    if !report.ok() {
        return Err(report.into_error());
    }
    let task = proxy.create_task(KIND, Some(&uid), details, node_tasks(&outcomes), enqueued_at).await?;
    Ok(accepted(&task, Some(&report)))
}

/// Creates an index on every node (Miroir-internal: no client task), with Miroir's settings.
async fn create_index_everywhere(proxy: &Proxy, routing: &RoutingTable, uid: &str, pk: Option<&str>) -> ApiResult<()> {
    let (_, report) = proxy
        .broadcast(routing, Method::POST, "/indexes", Some(&json!({"uid": uid, "primaryKey": pk})))
        .await?;
    if !report.ok() {
        return Err(report.into_error());
    }
    init_index_settings(proxy, routing, uid).await
}

/// Deletes documents by id: each id goes to the holders of its shard.
async fn delete_ids(proxy: &Proxy, uid: &str, ids: Vec<Value>) -> ApiResult<Response> {
    let enqueued_at = time::OffsetDateTime::now_utc();
    let routing = routing(proxy)?;
    let mut routed: Vec<(u32, Value)> = Vec::with_capacity(ids.len());
    for id in &ids {
        let canonical = super::hash::canonical_pk(id).ok_or_else(|| {
            ApiError::new(Code::InvalidDocumentId, format!("Document identifier `{id}` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes."))
        })?;
        routed.push((shard_of(&canonical, routing.topology.shards), id.clone()));
    }
    let details = json!({"providedIds": ids.len(), "deletedDocuments": null, "originalFilter": null});
    let per_node = group_by_node(&routing.assignment, &routed);
    if per_node.is_empty() {
        // Nothing to route: an empty batch still is a (trivially successful) deletion task
        // on one Meilisearch; send it to one node so the task has a real lifecycle.
        return broadcast_write(proxy, Method::POST, &format!("/indexes/{uid}/documents/delete-batch"), Some(&json!([])), Some(uid), details).await;
    }
    let calls: Vec<NodeCall> = per_node
        .into_iter()
        .map(|(node, ids)| NodeCall {
            node_id: node,
            method: Method::POST,
            path: format!("/indexes/{uid}/documents/delete-batch"),
            content_type: Some("application/json"),
            body: Some(serde_json::to_vec(&ids).expect("json")),
        })
        .collect();
    let outcomes = proxy.call_nodes(&routing, calls).await;
    if let Some(e) = outcomes.iter().find_map(|o| o.client_error()) {
        return Err(e);
    }
    let shards: BTreeSet<u32> = routed.iter().map(|(s, _)| *s).collect();
    let ok: HashSet<String> = outcomes.iter().filter(|o| o.accepted()).map(|o| o.node_id.clone()).collect();
    let report = super::fanout::evaluate_quorum(&routing.assignment, routing.topology.replication_factor, &shards, &ok);
    if !report.ok() {
        return Err(report.into_error());
    }
    let task = proxy.create_task("documentDeletion", Some(uid), details, node_tasks(&outcomes), enqueued_at).await?;
    Ok(accepted(&task, Some(&report)))
}

async fn delete_document(State(proxy): State<Proxy>, Path((uid, id)): Path<(String, String)>) -> ApiResult<Response> {
    delete_ids(&proxy, &uid, vec![Value::String(id)]).await
}

async fn delete_batch(State(proxy): State<Proxy>, Path(uid): Path<String>, body: Body) -> ApiResult<Response> {
    let body = parse_json(&read_body(&proxy, body).await?)?;
    let Value::Array(ids) = body else {
        return Err(ApiError::new(Code::BadRequest, format!("Invalid value type: expected an array, but found {}", json_kind(&body))));
    };
    delete_ids(&proxy, &uid, ids).await
}

fn json_kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("a boolean: `{b}`"),
        Value::Number(n) => format!("a positive integer: `{n}`"),
        Value::String(s) => format!("a string: `\"{s}\"`"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

async fn delete_by_filter(State(proxy): State<Proxy>, Path(uid): Path<String>, body: Body) -> ApiResult<Response> {
    let body = parse_json(&read_body(&proxy, body).await?)?;
    let filter = body.get("filter").cloned();
    let details = json!({"providedIds": 0, "deletedDocuments": null, "originalFilter": filter.map(|f| f.to_string())});
    broadcast_write(&proxy, Method::POST, &format!("/indexes/{uid}/documents/delete"), Some(&body), Some(&uid), details).await
}

async fn delete_all_documents(State(proxy): State<Proxy>, Path(uid): Path<String>) -> ApiResult<Response> {
    broadcast_write(&proxy, Method::DELETE, &format!("/indexes/{uid}/documents"), None, Some(&uid), json!({"deletedDocuments": null})).await
}

// ---------------------------------------------------------------- documents: reads

async fn get_document(State(proxy): State<Proxy>, Path((uid, id)): Path<(String, String)>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let routing = routing(&proxy)?;
    let shard = shard_of(&id, routing.topology.shards);
    // Healthy holders of the shard, group by group.
    let mut candidates: Vec<&str> = Vec::new();
    for g in &routing.assignment.groups {
        for n in &g[shard as usize] {
            if proxy.inner.health.get(n).is_usable() {
                candidates.push(n);
            }
        }
    }
    if candidates.is_empty() {
        return Err(ApiError::new(Code::MiroirShardUnavailable, format!("Shard {shard} has no healthy copy; the document cannot be read right now."))
            .with_header(DEGRADED_HEADER, format!("shards={shard}")));
    }
    let path = match q {
        Some(q) => format!("/indexes/{uid}/documents/{}?{q}", urlenc(&id)),
        None => format!("/indexes/{uid}/documents/{}", urlenc(&id)),
    };
    let mut r = proxy.read_from(&routing, candidates, Method::GET, &path, None).await?;
    let ok = r.is_success();
    if let (true, Value::Object(doc)) = (ok, &mut r.body) {
        strip_reserved(doc);
    }
    pass(r)
}

/// Converts GET query parameters into the JSON body the POST variant of the route takes.
/// `None` when a parameter is unknown or malformed: the caller then lets a node answer the
/// original GET, so the client gets exactly Meilisearch's error.
fn params_to_body(params: &[(String, String)], lists: &[&str], ints: &[&str], floats: &[&str], bools: &[&str], strings: &[&str]) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    for (k, v) in params {
        let k = k.as_str();
        let value = if lists.contains(&k) {
            Value::Array(v.split(',').map(|s| Value::String(s.trim().to_string())).filter(|s| s.as_str() != Some("")).collect())
        } else if ints.contains(&k) {
            json!(v.parse::<u64>().ok()?)
        } else if floats.contains(&k) {
            json!(v.parse::<f64>().ok()?)
        } else if bools.contains(&k) {
            json!(v.parse::<bool>().ok()?)
        } else if strings.contains(&k) {
            Value::String(v.clone())
        } else {
            return None;
        };
        out.insert(k.to_string(), value);
    }
    Some(out)
}

fn with_degraded(mut resp: Response, answer: &super::read::ReadAnswer) -> Response {
    if let Some((name, value)) = answer.degraded_header() {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
    resp
}

fn read_response(answer: super::read::ReadAnswer) -> Response {
    let resp = json_response(StatusCode::OK, answer.body.clone());
    with_degraded(resp, &answer)
}

/// Answers a GET from one node as it is (used for requests Miroir cannot parse, so the
/// client sees the node's own validation error).
async fn node_answers_get(proxy: &Proxy, path_and_query: &str) -> ApiResult<Response> {
    let routing = routing(proxy)?;
    let r = proxy.read_any(&routing, Method::GET, path_and_query, None).await?;
    if r.is_success() {
        Err(ApiError::internal(format!("Miroir could not interpret the request `{path_and_query}` that a node accepted.")))
    } else {
        Err(ApiError::Passthrough { status: r.status, body: super::read::sanitize_node_error(r.body) })
    }
}

fn object_body(v: Value) -> ApiResult<Map<String, Value>> {
    match v {
        Value::Object(m) => Ok(m),
        other => Err(ApiError::new(Code::BadRequest, format!("Invalid value type: expected an object, but found {}", json_kind(&other)))),
    }
}

async fn list_documents(State(proxy): State<Proxy>, Path(uid): Path<String>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let params = query_pairs(&q);
    let Some(body) = params_to_body(&params, &["fields", "ids"], &["offset", "limit"], &[], &["retrieveVectors"], &["filter"]) else {
        return node_answers_get(&proxy, &format!("/indexes/{uid}/documents?{}", q.unwrap_or_default())).await;
    };
    Ok(read_response(proxy.list_documents(&uid, &body).await?))
}

async fn fetch_documents(State(proxy): State<Proxy>, Path(uid): Path<String>, body: Body) -> ApiResult<Response> {
    let body = object_body(parse_json(&read_body(&proxy, body).await?)?)?;
    Ok(read_response(proxy.list_documents(&uid, &body).await?))
}

// ---------------------------------------------------------------- search, stats

const SEARCH_LISTS: &[&str] = &["attributesToRetrieve", "attributesToCrop", "attributesToHighlight", "sort", "facets", "attributesToSearchOn", "locales"];
const SEARCH_INTS: &[&str] = &["offset", "limit", "page", "hitsPerPage", "cropLength"];
const SEARCH_FLOATS: &[&str] = &["rankingScoreThreshold"];
const SEARCH_BOOLS: &[&str] = &["showMatchesPosition", "showRankingScore", "showRankingScoreDetails", "retrieveVectors", "showPerformanceDetails"];
const SEARCH_STRINGS: &[&str] = &["q", "filter", "distinct", "cropMarker", "highlightPreTag", "highlightPostTag", "matchingStrategy"];

async fn search(State(proxy): State<Proxy>, Path(uid): Path<String>, method: Method, RawQuery(q): RawQuery, body: Body) -> ApiResult<Response> {
    let client = if method == Method::GET {
        let params = query_pairs(&q);
        match params_to_body(&params, SEARCH_LISTS, SEARCH_INTS, SEARCH_FLOATS, SEARCH_BOOLS, SEARCH_STRINGS) {
            Some(b) => b,
            None => return node_answers_get(&proxy, &format!("/indexes/{uid}/search?{}", q.unwrap_or_default())).await,
        }
    } else {
        object_body(parse_json(&read_body(&proxy, body).await?)?)?
    };
    Ok(read_response(proxy.search(&uid, &client).await?))
}

async fn facet_search(State(proxy): State<Proxy>, Path(uid): Path<String>, body: Body) -> ApiResult<Response> {
    let client = object_body(parse_json(&read_body(&proxy, body).await?)?)?;
    Ok(read_response(proxy.facet_search(&uid, &client).await?))
}

async fn multi_search(State(proxy): State<Proxy>, body: Body) -> ApiResult<Response> {
    let body = parse_json(&read_body(&proxy, body).await?)?;
    Ok(read_response(proxy.multi_search(&body).await?))
}

async fn index_stats(State(proxy): State<Proxy>, Path(uid): Path<String>) -> ApiResult<Response> {
    Ok(read_response(proxy.index_stats(&uid).await?))
}

async fn global_stats(State(proxy): State<Proxy>) -> ApiResult<Response> {
    Ok(read_response(proxy.global_stats().await?))
}

// ---------------------------------------------------------------- tasks

async fn get_task(State(proxy): State<Proxy>, Path(uid): Path<String>) -> ApiResult<Json<Value>> {
    let uid: u64 = uid.parse().map_err(|_| {
        ApiError::new(Code::InvalidTaskUids, format!("Invalid value in parameter `taskUid`: could not parse `{uid}` as a positive integer"))
    })?;
    Ok(Json(task_view(&proxy.get_task(uid).await?)))
}

async fn list_tasks(State(proxy): State<Proxy>, RawQuery(q): RawQuery) -> ApiResult<Json<Value>> {
    let tq = parse_task_query(&query_pairs(&q), q.as_deref().unwrap_or(""), true)?;
    Ok(Json(proxy.list_tasks(&tq).await?))
}

async fn delete_tasks(State(proxy): State<Proxy>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let tq = parse_task_query(&query_pairs(&q), q.as_deref().unwrap_or(""), false)?;
    if !tq.has_filter {
        return Err(ApiError::new(Code::MissingTaskFilters, "Query parameters to filter the tasks to delete are missing. Available query parameters are: `uids`, `indexUids`, `statuses`, `types`, `canceledBy`, `beforeEnqueuedAt`, `afterEnqueuedAt`, `beforeStartedAt`, `afterStartedAt`, `beforeFinishedAt`, `afterFinishedAt`."));
    }
    let store = proxy.store();
    let matched = store.find_tasks(&tq.filter).await.map_err(store_error)?;
    let mut finished = Vec::new();
    for t in matched.iter().cloned() {
        let t = proxy.refreshed_task(t).await?;
        if t.status.is_terminal() {
            finished.push(t.uid);
        }
    }
    let details = json!({"matchedTasks": matched.len(), "deletedTasks": null, "originalFilter": tq.original});
    let task = proxy.create_task("taskDeletion", None, details, vec![], time::OffsetDateTime::now_utc()).await?;
    let deleted = store.delete_tasks(&finished).await.map_err(store_error)?;
    let now = time::OffsetDateTime::now_utc();
    let mut done = task.clone();
    done.status = crate::store::TaskStatus::Succeeded;
    done.started_at = Some(now);
    done.finished_at = Some(time::OffsetDateTime::now_utc());
    done.details = json!({"matchedTasks": matched.len(), "deletedTasks": deleted, "originalFilter": tq.original});
    store.update_task(&done).await.map_err(store_error)?;
    // Meilisearch answers 200 (not 202) here.
    Ok(json_response(StatusCode::OK, summarized(&task)))
}

async fn cancel_tasks(State(proxy): State<Proxy>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let tq = parse_task_query(&query_pairs(&q), q.as_deref().unwrap_or(""), false)?;
    if !tq.has_filter {
        return Err(ApiError::new(Code::MissingTaskFilters, "Query parameters to filter the tasks to cancel are missing. Available query parameters are: `uids`, `indexUids`, `statuses`, `types`, `canceledBy`, `beforeEnqueuedAt`, `afterEnqueuedAt`, `beforeStartedAt`, `afterStartedAt`, `beforeFinishedAt`, `afterFinishedAt`."));
    }
    let enqueued_at = time::OffsetDateTime::now_utc();
    let routing = routing(&proxy)?;
    let matched = proxy.store().find_tasks(&tq.filter).await.map_err(store_error)?;
    // Cancel the node tasks behind every matched, unfinished Miroir task.
    let mut per_node: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for t in &matched {
        let t = proxy.refreshed_task(t.clone()).await?;
        if !t.status.is_terminal() {
            for nt in &t.node_tasks {
                per_node.entry(nt.node_id.clone()).or_default().push(nt.task_uid);
            }
        }
    }
    let calls: Vec<NodeCall> = per_node
        .into_iter()
        .map(|(node, uids)| NodeCall {
            node_id: node,
            method: Method::POST,
            path: format!("/tasks/cancel?uids={}", uids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")),
            content_type: None,
            body: None,
        })
        .collect();
    let outcomes = proxy.call_nodes(&routing, calls).await;
    let details = json!({"matchedTasks": matched.len(), "canceledTasks": null, "originalFilter": tq.original});
    let task = proxy.create_task("taskCancelation", None, details, node_tasks(&outcomes), enqueued_at).await?;
    Ok(json_response(StatusCode::OK, summarized(&task)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_fields_are_stripped_from_hits() {
        let mut d: Map<String, Value> = serde_json::from_value(json!({"id": 1, SHARD_FIELD: 3, "_formatted": {"id": "1", SHARD_FIELD: "3"}})).unwrap();
        strip_reserved(&mut d);
        assert_eq!(Value::Object(d), json!({"id": 1, "_formatted": {"id": "1"}}));
    }
}

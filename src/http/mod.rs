//! The HTTP layer: Meilisearch's routes, answered like one Meilisearch, plus `/_miroir/*`.
//! One module per Meilisearch resource; each handler validates its input into typed values
//! ([`crate::model`]) and calls the read and write services of [`crate::dataplane`]. Auth runs
//! at the edge ([`auth`]).

mod admin;
pub use admin::{not_ready, READY_STORE_TIMEOUT};
mod auth;
mod batches;
mod documents;
mod extract;
mod features;
mod indexes;
mod keys;
mod nodes;
mod render;
mod search;
mod settings;
mod stats;
mod swap;
mod tasks;
mod webhooks;
mod backup;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::{Map, Value};

use crate::dataplane::fanout::DEGRADED_HEADER;
use crate::dataplane::read::ReadAnswer;
use crate::dataplane::write::WriteAck;
use crate::dataplane::Proxy;
use crate::error::{ApiError, ApiResult, Code};

pub use extract::{JsonBody, JsonBytes, RouteParams};
pub use keys::ensure_default_keys;

pub fn router(proxy: Proxy) -> Router {
    Router::new()
        .route("/health", get(admin::health))
        .route("/ready", get(admin::ready))
        .route("/version", get(admin::version))
        .route("/indexes", get(indexes::list).post(indexes::create))
        .route("/indexes/{uid}", get(indexes::get).patch(indexes::update).delete(indexes::delete))
        .route("/indexes/{uid}/settings", get(settings::get_all).patch(settings::update_all).put(settings::update_all).delete(settings::reset_all))
        .route("/indexes/{uid}/settings/{setting}", get(settings::get_one).patch(settings::update_one).put(settings::update_one).delete(settings::reset_one))
        .route(
            "/indexes/{uid}/documents",
            get(documents::list).post(documents::replace).put(documents::update).delete(documents::delete_all),
        )
        .route("/indexes/{uid}/documents/fetch", post(documents::fetch))
        .route("/indexes/{uid}/documents/delete-batch", post(documents::delete_batch))
        .route("/indexes/{uid}/documents/delete", post(documents::delete_by_filter))
        .route("/indexes/{uid}/documents/{id}", get(documents::get_one).delete(documents::delete_one))
        .route("/indexes/{uid}/search", get(search::search_get).post(search::search_post))
        .route("/indexes/{uid}/facet-search", post(search::facet_search))
        .route("/indexes/{uid}/similar", get(search::similar_get).post(search::similar_post))
        .route("/indexes/{uid}/stats", get(stats::index_stats))
        .route("/multi-search", post(search::multi_search))
        .route("/stats", get(stats::global_stats))
        .route("/tasks", get(tasks::list).delete(tasks::delete))
        .route("/tasks/cancel", post(tasks::cancel))
        .route("/tasks/compact", post(tasks::compact))
        .route("/tasks/{uid}", get(tasks::get))
        .route("/keys", get(keys::list).post(keys::create))
        .route("/keys/{key}", get(keys::get).patch(keys::update).delete(keys::delete))
        .route("/_miroir/topology", get(admin::topology))
        .route("/_miroir/consistency", get(admin::consistency))
        .route("/_miroir/consistency/check", post(admin::consistency_check))
        .route("/_miroir/nodes", get(nodes::list).post(nodes::add))
        .route("/_miroir/nodes/{id}", axum::routing::delete(nodes::remove))
        .route("/_miroir/nodes/{id}/drain", post(nodes::drain))
        .route("/_miroir/rebalance", get(nodes::status))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/webhooks/{uuid}", get(webhooks::get).patch(webhooks::update).delete(webhooks::delete))
        .route("/_miroir/backups", get(backup::list))
        .route("/_miroir/backups/{uid}", get(backup::get))
        .route("/_miroir/restore", post(backup::restore))
        .route("/swap-indexes", post(swap::swap_indexes))
        // Meilisearch routes Miroir does not support (yet): a clear 501, not a 404.
        .route("/dumps", post(backup::dump))
        .route("/snapshots", post(backup::snapshot))
        .route("/batches", get(batches::list))
        .route("/batches/{uid}", get(batches::get))
        .route("/experimental-features", get(features::get).patch(features::patch))
        .route("/export", any(backup::export))
        .route("/network", any(backup::network))
        .route("/network/control", any(backup::network))
        .route("/logs/stream", any(backup::logs))
        .route("/logs/stderr", any(backup::logs))
        .route("/chats", any(backup::chats))
        .route("/chats/{workspace}", any(backup::chats))
        .route("/chats/{workspace}/settings", any(backup::chats))
        .route("/chats/{workspace}/chat/completions", any(backup::chats))
        .route("/tasks/{uid}/documents", any(unsupported))
        .route("/indexes/{uid}/documents/edit", post(documents::edit))
        .route("/indexes/{uid}/compact", post(indexes::compact))
        .route("/indexes/{uid}/fields", post(indexes::fields))
        .route("/render-template", post(render::render))
        .route("/dynamic-search-rules", any(unsupported))
        .route("/dynamic-search-rules/{uid}", any(unsupported))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(proxy.clone(), swap::gate))
        .layer(middleware::from_fn_with_state(proxy.clone(), auth::auth))
        .layer(cors_layer())
        .route_layer(middleware::from_fn_with_state(proxy.metrics().clone(), crate::dataplane::metrics::track))
        .with_state(proxy)
}

/// CORS as Meilisearch answers it: any origin, method and header, preflights answered before
/// auth, so browser front ends with a search key or tenant token work.
pub fn cors_layer() -> tower_http::cors::CorsLayer {
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods(tower_http::cors::Any)
        .allow_headers(tower_http::cors::Any)
        .max_age(std::time::Duration::from_secs(86_400))
}

async fn unsupported(req: Request) -> ApiError {
    // The path is the client's own; it is only echoed back, never sent anywhere.
    ApiError::not_implemented(&format!("`{} {}`", req.method(), req.uri().path()))
}

async fn not_found() -> ApiError {
    ApiError::new(Code::NotFound, "Not found.")
}

// ---------------------------------------------------------------- request plumbing

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

/// Parses a JSON request body (non-document routes), as Meilisearch does.
fn parse_json(bytes: &[u8]) -> ApiResult<Value> {
    crate::model::json::parse(bytes)
}

fn query_pairs(raw: &Option<String>) -> Vec<(String, String)> {
    raw.as_deref()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------- responses

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// A 202 with the summarized task, plus `X-Miroir-Degraded` when some group missed quorum.
fn accepted(ack: WriteAck) -> Response {
    let mut resp = json_response(StatusCode::ACCEPTED, crate::dataplane::tasks::summarized(&ack.task));
    if let Some(h) = ack.report.as_ref().and_then(|r| r.header_value()) {
        if let Ok(v) = HeaderValue::from_str(&h) {
            resp.headers_mut().insert(DEGRADED_HEADER, v);
        }
    }
    resp
}

/// A node's answer as it is (errors cleaned of Miroir's names).
fn pass(r: crate::node::NodeResponse) -> ApiResult<Response> {
    if r.is_success() {
        Ok(json_response(StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK), r.body))
    } else {
        Err(ApiError::Passthrough { status: r.status, body: crate::dataplane::read::sanitize_node_error(r.body) })
    }
}

/// A merged read, with `X-Miroir-Degraded` when shards were missing.
fn read_response(answer: ReadAnswer) -> Response {
    let mut resp = json_response(StatusCode::OK, answer.body.clone());
    if let Some((name, value)) = answer.degraded_header() {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
    resp
}

// ---------------------------------------------------------------- GET routes with a POST twin

/// Converts GET query parameters into the JSON body the POST variant of the route takes.
/// `None` when a parameter is unknown or malformed: the caller then lets a node answer the
/// original GET, so the client gets exactly Meilisearch's error.
fn params_to_body(params: &[(String, String)], lists: &[&str], ints: &[&str], floats: &[&str], bools: &[&str], strings: &[&str]) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    for (k, v) in params {
        let k = k.as_str();
        let value = if k == "sort" && lists.contains(&k) {
            Value::Array(sort_param(v).into_iter().map(Value::String).collect())
        } else if k == "filter" && strings.contains(&k) {
            // A filter that reads as JSON is that JSON (`filter=["a = 1"]`), else a string.
            serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.clone()))
        } else if lists.contains(&k) {
            // Comma lists: empty items dropped, items not trimmed (Meilisearch's `CS` lists).
            Value::Array(v.split(',').filter(|s| !s.is_empty()).map(|s| Value::String(s.to_string())).collect())
        } else if ints.contains(&k) {
            serde_json::json!(v.parse::<u64>().ok()?)
        } else if floats.contains(&k) {
            serde_json::json!(v.parse::<f64>().ok()?)
        } else if bools.contains(&k) {
            serde_json::json!(v.parse::<bool>().ok()?)
        } else if strings.contains(&k) {
            Value::String(v.clone())
        } else {
            return None;
        };
        out.insert(k.to_string(), value);
    }
    Some(out)
}

/// A GET `sort` parameter as Meilisearch reads it: outer quotes dropped, split on commas,
/// items trimmed, and `_geoPoint(lat, lng):dir` put back together.
fn sort_param(v: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut merging = false;
    for item in v.trim_matches('"').split(',').map(str::trim) {
        if item.starts_with("_geoPoint(") {
            out.push(item.to_string());
            merging = true;
        } else if merging && !out.is_empty() {
            let last = out.last_mut().expect("not empty");
            last.push(',');
            last.push_str(item);
            merging = !(item.ends_with("):desc") || item.ends_with("):asc"));
        } else {
            out.push(item.to_string());
        }
    }
    out
}

/// A body Miroir's request model refused: one node is asked the client's own request (for the
/// route the client named), so the client gets the node's, that is Meilisearch's, wording.
/// Should the node accept it, Miroir's own error stands.
async fn node_error_or(proxy: &Proxy, path: &crate::node::NodePath, body: &Value, own: ApiError) -> ApiError {
    let Ok(routing) = proxy.routing_or_error() else { return own };
    match proxy.read_any(&routing, reqwest::Method::POST, path, Some(body)).await {
        Ok(r) if !r.is_success() => ApiError::Passthrough { status: r.status, body: crate::dataplane::read::sanitize_node_error(r.body) },
        _ => own,
    }
}

/// Answers a GET from one node as it is (used for requests Miroir cannot parse, so the
/// client sees the node's own validation error for the route it named).
async fn node_answers_get(proxy: &Proxy, path: crate::node::NodePath) -> ApiResult<Response> {
    let routing = proxy.routing_or_error()?;
    let r = proxy.read_any(&routing, reqwest::Method::GET, &path, None).await?;
    if r.is_success() {
        Err(ApiError::internal(format!("Miroir could not interpret a `GET {}` request that a node accepted.", path.path())))
    } else {
        Err(ApiError::Passthrough { status: r.status, body: crate::dataplane::read::sanitize_node_error(r.body) })
    }
}

//! HTTP layer of the test node: Meilisearch's routes, auth, validation and error shapes.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, MatchedPath, RawQuery, Request, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::engine::{self, IndexSnapshot, SearchQuery};
use super::filter::{self, ErrorForm, EvalError, FilterParamError};
use miroir::dataplane::payload::{self, Document};
use super::settings;
use super::state::{Index, State, Status, Task, TaskKind, TASK_TYPES};
use crate::error::{ApiError, ApiResult, Code};
use miroir::error::describe_kind as describe;

/// Largest accepted payload (Meilisearch's default `--http-payload-size-limit`).
const PAYLOAD_LIMIT: usize = 100 * 1024 * 1024;

/// Shared by the HTTP handlers and the task processor.
pub struct Node {
    pub master_key: Option<String>,
    /// Where `POST /dumps` and `POST /snapshots` write (`None`: those routes answer 501).
    pub dump_dir: Option<std::path::PathBuf>,
    pub snapshot_dir: Option<std::path::PathBuf>,
    pub state: Mutex<State>,
    pub wake: tokio::sync::Notify,
}

impl Node {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn enqueue(&self, index_uid: Option<String>, kind: TaskKind, details: Option<Value>) -> Value {
        let summary = self.lock().register(index_uid, kind, details).summary();
        self.wake.notify_one();
        summary
    }
}

type S = AxState<Arc<Node>>;

fn accepted(v: Value) -> Response {
    (StatusCode::ACCEPTED, Json(v)).into_response()
}

fn ok(v: Value) -> Response {
    (StatusCode::OK, Json(v)).into_response()
}

pub fn router(node: Arc<Node>) -> Router {
    let settings_routes = Router::new()
        .route("/indexes/{uid}/settings", get(get_settings).patch(patch_settings).delete(delete_settings))
        .route(
            "/indexes/{uid}/settings/{name}",
            get(get_sub_setting).put(put_sub_setting).patch(patch_sub_setting).delete(delete_sub_setting),
        );
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "available"})) }))
        .route("/version", get(|| async { Json(json!({"commitSha": "unknown", "commitDate": "unknown", "pkgVersion": "1.50.0"})) }))
        .route("/stats", get(global_stats))
        .route("/tasks", get(list_tasks).delete(delete_tasks))
        .route("/tasks/cancel", post(cancel_tasks))
        .route("/tasks/{uid}", get(get_task))
        .route("/indexes", get(list_indexes).post(create_index))
        .route("/indexes/{uid}", get(get_index).patch(update_index).delete(delete_index))
        .route("/indexes/{uid}/stats", get(index_stats))
        .route(
            "/indexes/{uid}/documents",
            get(list_documents).post(add_documents).put(update_documents).delete(clear_documents),
        )
        .route("/indexes/{uid}/documents/fetch", post(fetch_documents))
        .route("/indexes/{uid}/documents/delete-batch", post(delete_batch))
        .route("/indexes/{uid}/documents/delete", post(delete_by_filter))
        .route("/indexes/{uid}/documents/{id}", get(get_document).delete(delete_document))
        .route("/indexes/{uid}/search", get(search_get).post(search_post))
        .route("/indexes/{uid}/facet-search", post(facet_search))
        .route("/indexes/{uid}/similar", get(similar_get).post(similar_post))
        .route("/multi-search", post(multi_search))
        .route("/dumps", post(create_dump))
        .route("/snapshots", post(create_snapshot))
        .route("/experimental-features", get(get_features).patch(patch_features))
        .route("/indexes/{uid}/documents/edit", post(edit_documents))
        .route("/indexes/{uid}/compact", post(compact_index))
        .route("/swap-indexes", post(swap_indexes))
        .route("/indexes/{uid}/fields", post(list_fields))
        .route("/render-template", post(render_template))
        .merge(settings_routes)
        .merge(unimplemented_routes())
        .layer(middleware::from_fn_with_state(node.clone(), auth))
        // Meilisearch's CORS (one definition, shared with Miroir).
        .layer(miroir::http::cors_layer())
        .with_state(node)
}

/// Meilisearch routes the test node does not implement: 501 rather than a misleading 404.
fn unimplemented_routes() -> Router<Arc<Node>> {
    let mut r = Router::new();
    for path in [
        "/keys",
        "/keys/{key}",
        "/batches",
        "/batches/{uid}",
        "/network",
        "/metrics",
        "/export",
        "/logs/stream",
        "/logs/stderr",
    ] {
        r = r.route(path, axum::routing::any(move || async move { ApiError::not_implemented(&format!("`{path}` in the test node")) }));
    }
    r
}

// ---------------------------------------------------------------------------------------
// auth

async fn auth(AxState(node): S, req: Request, next: Next) -> Response {
    if let Some(key) = &node.master_key {
        if req.uri().path() != "/health" {
            let header = req.headers().get("authorization").and_then(|h| h.to_str().ok());
            match header.and_then(|h| h.strip_prefix("Bearer ")) {
                None => {
                    return ApiError::new(
                        Code::MissingAuthorizationHeader,
                        "The Authorization header is missing. It must use the bearer authorization method.",
                    )
                    .into_response()
                }
                Some(given) if given.trim() != key => {
                    return ApiError::new(Code::InvalidApiKey, "The provided API key is invalid.").into_response()
                }
                Some(_) => {}
            }
        }
    }
    next.run(req).await
}

// ---------------------------------------------------------------------------------------
// helpers

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(Code::BadRequest, message)
}

fn index_not_found(uid: &str) -> ApiError {
    ApiError::new(Code::IndexNotFound, format!("Index `{uid}` not found."))
}

fn valid_index_uid(uid: &str) -> bool {
    !uid.is_empty() && uid.len() <= 512 && uid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn index_uid_message(uid: &str) -> String {
    format!("`{uid}` is not a valid index uid. Index uid can be an integer or a string containing only alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes.")
}

/// Validates an index uid taken from the path.
fn path_uid(uid: &str) -> ApiResult<()> {
    if valid_index_uid(uid) {
        Ok(())
    } else {
        Err(ApiError::new(Code::InvalidIndexUid, index_uid_message(uid)))
    }
}

async fn read_body(body: Body) -> ApiResult<Bytes> {
    axum::body::to_bytes(body, PAYLOAD_LIMIT).await.map_err(|_| {
        ApiError::new(Code::PayloadTooLarge, "The provided payload reached the size limit. The maximum accepted payload size is 100 MiB.")
    })
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers.get("content-type").and_then(|v| v.to_str().ok())
}

/// A JSON request body, with Meilisearch's errors for a missing or wrong content type,
/// a missing payload and a malformed one.
/// A JSON body, read with Meilisearch's rules (shared with Miroir: `miroir::model::json`).
fn json_body(headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    miroir::model::json::check_content_type(headers.get(axum::http::header::CONTENT_TYPE).map(|v| v.as_bytes()))?;
    Ok(miroir::model::json::parse(body)?)
}

/// Checks a request body against Meilisearch's typed request (shared with Miroir:
/// `miroir::model::search`), so bad input is refused with Meilisearch's code, message and path.
fn check_typed<T: deserr::Deserr<miroir::model::deserr::JsonError>>(body: &Value) -> ApiResult<()> {
    miroir::model::deserr::parse::<T>(body.clone())?;
    Ok(())
}

fn expect_object(v: &Value) -> ApiResult<&Map<String, Value>> {
    v.as_object().ok_or_else(|| bad_request(format!("Invalid value type: expected an object, but found {}: `{v}`", describe(v))))
}


fn check_fields(obj: &Map<String, Value>, allowed: &[&str]) -> ApiResult<()> {
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(bad_request(format!(
                "Unknown field `{k}`: expected one of {}",
                allowed.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    Ok(())
}

fn query_pairs(raw: &Option<String>) -> Vec<(String, String)> {
    raw.as_deref()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn check_params(pairs: &[(String, String)], allowed: &[&str]) -> ApiResult<()> {
    for (k, _) in pairs {
        if !allowed.contains(&k.as_str()) {
            return Err(bad_request(format!(
                "Unknown parameter `{k}`: expected one of {}",
                allowed.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    Ok(())
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn parse_usize_param(pairs: &[(String, String)], name: &str, code: Code) -> ApiResult<Option<usize>> {
    match param(pairs, name) {
        None => Ok(None),
        Some(v) => v.trim().parse::<usize>().map(Some).map_err(|_| {
            ApiError::new(code, format!("Invalid value in parameter `{name}`: could not parse `{v}` as a positive integer"))
        }),
    }
}

fn request_uid() -> String {
    let ms = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let r: u128 = rand::random();
    let v = ((ms as u128 & 0xffff_ffff_ffff) << 80) | (0x7u128 << 76) | (r & ((1u128 << 76) - 1));
    let v = (v & !(0x3u128 << 62)) | (0x2u128 << 62);
    let h = format!("{v:032x}");
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// Keeps only `fields` of a document (Meilisearch's attribute selection; nested `a.b` and `*`).
pub fn select_fields(doc: &Document, fields: Option<&[String]>) -> Document {
    let Some(fields) = fields else { return doc.clone() };
    if fields.iter().any(|f| f == "*") {
        return doc.clone();
    }
    let mut out = Map::new();
    for (k, v) in doc {
        if fields.iter().any(|f| f == k) {
            out.insert(k.clone(), v.clone());
            continue;
        }
        let prefix = format!("{k}.");
        let nested: Vec<String> = fields.iter().filter_map(|f| f.strip_prefix(&prefix).map(str::to_string)).collect();
        if nested.is_empty() {
            continue;
        }
        match v {
            Value::Object(m) => {
                let sub = select_fields(m, Some(&nested));
                if !sub.is_empty() {
                    out.insert(k.clone(), Value::Object(sub));
                }
            }
            Value::Array(items) => {
                let subs: Vec<Value> = items
                    .iter()
                    .filter_map(|x| x.as_object().map(|m| select_fields(m, Some(&nested))))
                    .filter(|m| !m.is_empty())
                    .map(Value::Object)
                    .collect();
                if !subs.is_empty() {
                    out.insert(k.clone(), Value::Array(subs));
                }
            }
            _ => {}
        }
    }
    out
}

/// Where a filter comes from decides its error code, prefix and positions.
#[derive(Clone, Copy)]
enum FilterUse {
    Documents,
    Search,
    /// `/similar`: its own code; errors name the filter as written, without the index.
    Similar,
}

/// Parses a filter parameter (syntax only).
fn parse_filter(value: Option<&Value>, usage: FilterUse) -> ApiResult<Option<filter::FilterExpr>> {
    let code = match usage {
        FilterUse::Documents => Code::InvalidDocumentFilter,
        FilterUse::Search => Code::InvalidSearchFilter,
        FilterUse::Similar => Code::InvalidSimilarFilter,
    };
    match value {
        None => Ok(None),
        Some(v) => filter::parse_filter_value(v).map_err(|e| match e {
            FilterParamError::Syntax(fe) => ApiError::new(code, fe.to_string()),
            FilterParamError::InvalidExpression(m) => ApiError::new(code, m),
        }),
    }
}

/// Documents of `index` matching `filter` with their internal ids, in internal-id order.
fn filtered_docs<'a>(index: &'a Index, filter: Option<&Value>, usage: FilterUse) -> ApiResult<Vec<(u32, &'a Document)>> {
    let Some(expr) = parse_filter(filter, usage)? else {
        return Ok(index.docs.iter().map(|(i, d)| (*i, d)).collect());
    };
    let form = match usage {
        FilterUse::Documents | FilterUse::Similar => ErrorForm::Original,
        FilterUse::Search => ErrorForm::Quoted,
    };
    let compiled = filter::compile(&expr, &index.filterable(), form).map_err(|e| match (e, usage) {
        (EvalError::Invalid(fe), FilterUse::Documents) => ApiError::new(Code::InvalidDocumentFilter, fe.to_string()),
        (EvalError::Invalid(fe), FilterUse::Similar) => ApiError::new(Code::InvalidSimilarFilter, fe.to_string()),
        (EvalError::Invalid(fe), FilterUse::Search) => {
            ApiError::new(Code::InvalidSearchFilter, format!("Index `{}`: {fe}", index.uid))
        }
        (EvalError::NotImplemented(what), _) => ApiError::not_implemented(what),
    })?;
    Ok(index.docs.iter().filter(|(_, d)| compiled.matches(d)).map(|(i, d)| (*i, d)).collect())
}

// ---------------------------------------------------------------------------------------
// stats, indexes

async fn global_stats(AxState(node): S, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let human = check_stats_params(&q)?;
    let mut stats = node.lock().global_stats();
    if human {
        for k in ["databaseSize", "usedDatabaseSize"] {
            stats[k] = human_bytes(&stats[k]);
        }
        if let Some(Value::Object(ixs)) = stats.get_mut("indexes") {
            ixs.values_mut().for_each(human_index_stats);
        }
    }
    Ok(ok(stats))
}

fn human_bytes(v: &Value) -> Value {
    let adjusted = byte_unit::Byte::from_u64(v.as_u64().unwrap_or(0)).get_appropriate_unit(byte_unit::UnitType::Binary);
    Value::String(format!("{adjusted:#.2}"))
}

fn human_index_stats(s: &mut Value) {
    for k in ["rawDocumentDbSize", "avgDocumentSize"] {
        s[k] = human_bytes(&s[k]);
    }
}

/// `showInternalDatabaseSizes` and `sizeFormat`, validated as Meilisearch does. The test
/// node answers sizes in bytes and has no internal databases to show: Miroir's tests only
/// compare its answer for them with a plain node's.
fn check_stats_params(q: &Option<String>) -> ApiResult<bool> {
    let pairs = query_pairs(q);
    check_params(&pairs, &["showInternalDatabaseSizes", "sizeFormat"])?;
    if let Some(v) = param(&pairs, "showInternalDatabaseSizes") {
        if v.parse::<bool>().is_err() {
            return Err(ApiError::new(
                Code::InvalidStatsShowInternalDatabaseSizes,
                format!("Invalid value in parameter `showInternalDatabaseSizes`: could not parse `{v}` as a boolean, expected either `true` or `false`"),
            ));
        }
    }
    match param(&pairs, "sizeFormat") {
        None | Some("raw") => Ok(false),
        Some("human") => Ok(true),
        Some(v) => Err(ApiError::new(
            Code::InvalidStatsSizeFormat,
            format!("Unknown value `{v}` for parameter `sizeFormat`: expected one of `human`, `raw`"),
        )),
    }
}

async fn index_stats(AxState(node): S, Path(uid): Path<String>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let human = check_stats_params(&q)?;
    path_uid(&uid)?;
    let st = node.lock();
    let ix = st.indexes.get(&uid).ok_or_else(|| index_not_found(&uid))?;
    let mut stats = ix.stats(st.is_indexing(&uid));
    if human {
        human_index_stats(&mut stats);
    }
    Ok(ok(stats))
}

async fn list_indexes(AxState(node): S, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let pairs = query_pairs(&q);
    check_params(&pairs, &["offset", "limit"])?;
    let offset = parse_usize_param(&pairs, "offset", Code::InvalidIndexOffset)?.unwrap_or(0);
    let limit = parse_usize_param(&pairs, "limit", Code::InvalidIndexLimit)?.unwrap_or(20);
    let st = node.lock();
    let results: Vec<Value> = st.indexes.values().skip(offset).take(limit).map(Index::to_json).collect();
    Ok(ok(json!({"results": results, "offset": offset, "limit": limit, "total": st.indexes.len()})))
}

async fn get_index(AxState(node): S, Path(uid): Path<String>) -> ApiResult<Response> {
    path_uid(&uid)?;
    let st = node.lock();
    Ok(ok(st.indexes.get(&uid).ok_or_else(|| index_not_found(&uid))?.to_json()))
}

fn primary_key_field(obj: &Map<String, Value>) -> ApiResult<Option<String>> {
    match obj.get("primaryKey") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(ApiError::new(
            Code::InvalidIndexPrimaryKey,
            format!("Invalid value type at `.primaryKey`: expected a string, but found {}: `{v}`", describe(v)),
        )),
    }
}

async fn create_index(AxState(node): S, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let body = json_body(&headers, &read_body(body).await?)?;
    let obj = expect_object(&body)?;
    check_fields(obj, &["uid", "primaryKey"])?;
    let uid = match obj.get("uid") {
        None => return Err(ApiError::new(Code::MissingIndexUid, "Missing field `uid`")),
        Some(Value::String(s)) => s.clone(),
        Some(v) => {
            return Err(ApiError::new(
                Code::InvalidIndexUid,
                format!("Invalid value type at `.uid`: expected a string, but found {}: `{v}`", describe(v)),
            ))
        }
    };
    if !valid_index_uid(&uid) {
        return Err(ApiError::new(Code::InvalidIndexUid, format!("Invalid value at `.uid`: {}", index_uid_message(&uid))));
    }
    let primary_key = primary_key_field(obj)?;
    Ok(accepted(node.enqueue(Some(uid), TaskKind::IndexCreation { primary_key }, None)))
}

async fn update_index(AxState(node): S, Path(uid): Path<String>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    path_uid(&uid)?;
    let body = json_body(&headers, &read_body(body).await?)?;
    let obj = expect_object(&body)?;
    check_fields(obj, &["primaryKey", "uid"])?;
    if obj.get("uid").is_some_and(|v| !v.is_null()) {
        return Err(ApiError::not_implemented("renaming an index in the test node"));
    }
    let primary_key = primary_key_field(obj)?;
    Ok(accepted(node.enqueue(Some(uid), TaskKind::IndexUpdate { primary_key }, None)))
}

/// `POST /swap-indexes`: Meilisearch's validation (shared with Miroir), one task.
async fn swap_indexes(AxState(node): S, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let body = json_body(&headers, &read_body(body).await?)?;
    let swaps = miroir::dataplane::swap::parse_request(body, |_| true)?;
    miroir::dataplane::swap::check_duplicates(&swaps)?;
    Ok(accepted(node.enqueue(None, TaskKind::IndexSwap { swaps }, None)))
}

async fn delete_index(AxState(node): S, Path(uid): Path<String>) -> ApiResult<Response> {
    path_uid(&uid)?;
    Ok(accepted(node.enqueue(Some(uid), TaskKind::IndexDeletion, None)))
}

// ---------------------------------------------------------------------------------------
// settings

async fn get_settings(AxState(node): S, Path(uid): Path<String>) -> ApiResult<Response> {
    path_uid(&uid)?;
    let st = node.lock();
    Ok(ok(st.indexes.get(&uid).ok_or_else(|| index_not_found(&uid))?.settings.clone()))
}

fn current_settings(node: &Node, uid: &str) -> Value {
    node.lock().indexes.get(uid).map(|i| i.settings.clone()).unwrap_or_else(settings::defaults)
}

async fn patch_settings(AxState(node): S, Path(uid): Path<String>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    path_uid(&uid)?;
    let body = json_body(&headers, &read_body(body).await?)?;
    let update = settings::validate_update(&body, &current_settings(&node, &uid))?;
    Ok(accepted(node.enqueue(Some(uid), TaskKind::SettingsUpdate { update }, None)))
}

async fn delete_settings(AxState(node): S, Path(uid): Path<String>) -> ApiResult<Response> {
    path_uid(&uid)?;
    let update = settings::reset_all();
    Ok(accepted(node.enqueue(Some(uid), TaskKind::SettingsUpdate { update }, None)))
}

/// `(field, uses PATCH)` of a settings sub-route; `None` for a route Meilisearch lacks (404).
fn sub_route(name: &str) -> Option<(&'static str, bool)> {
    settings::SUB_ROUTES.iter().find(|(route, _, _)| *route == name).map(|(_, field, patch)| (*field, *patch))
}

async fn get_sub_setting(AxState(node): S, Path((uid, name)): Path<(String, String)>) -> ApiResult<Response> {
    path_uid(&uid)?;
    let Some((field, _)) = sub_route(&name) else { return Ok(StatusCode::NOT_FOUND.into_response()) };
    let st = node.lock();
    Ok(ok(st.indexes.get(&uid).ok_or_else(|| index_not_found(&uid))?.settings[field].clone()))
}

async fn set_sub_setting(node: Arc<Node>, uid: String, name: String, headers: HeaderMap, body: Body, patch: bool) -> ApiResult<Response> {
    path_uid(&uid)?;
    let Some((field, uses_patch)) = sub_route(&name) else { return Ok(StatusCode::NOT_FOUND.into_response()) };
    if uses_patch != patch {
        return Ok(StatusCode::METHOD_NOT_ALLOWED.into_response());
    }
    let body = json_body(&headers, &read_body(body).await?)?;
    let mut obj = Map::new();
    obj.insert(field.to_string(), body);
    let update = settings::validate_update(&Value::Object(obj), &current_settings(&node, &uid))?;
    Ok(accepted(node.enqueue(Some(uid), TaskKind::SettingsUpdate { update }, None)))
}

async fn put_sub_setting(AxState(node): S, Path((uid, name)): Path<(String, String)>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    set_sub_setting(node, uid, name, headers, body, false).await
}

async fn patch_sub_setting(AxState(node): S, Path((uid, name)): Path<(String, String)>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    set_sub_setting(node, uid, name, headers, body, true).await
}

async fn delete_sub_setting(AxState(node): S, Path((uid, name)): Path<(String, String)>) -> ApiResult<Response> {
    path_uid(&uid)?;
    let Some((field, _)) = sub_route(&name) else { return Ok(StatusCode::NOT_FOUND.into_response()) };
    let mut obj = Map::new();
    obj.insert(field.to_string(), Value::Null);
    let update = settings::validate_update(&Value::Object(obj), &settings::defaults())?;
    Ok(accepted(node.enqueue(Some(uid), TaskKind::SettingsUpdate { update }, None)))
}

/// Route parameters, each percent-decoded once and lossily, as Meilisearch (actix) decodes
/// them: a segment that is not UTF-8 becomes U+FFFD and then fails validation, instead of
/// being rejected as a malformed URL.
struct Path<T>(T);

trait FromSegments: Sized {
    fn from_segments(v: Vec<String>) -> Option<Self>;
}

impl FromSegments for String {
    fn from_segments(v: Vec<String>) -> Option<Self> {
        v.into_iter().next()
    }
}

impl FromSegments for (String, String) {
    fn from_segments(v: Vec<String>) -> Option<Self> {
        let mut it = v.into_iter();
        Some((it.next()?, it.next()?))
    }
}

impl<S: Send + Sync, T: FromSegments> FromRequestParts<S> for Path<T> {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, StatusCode> {
        let template = parts.extensions.get::<MatchedPath>().ok_or(StatusCode::NOT_FOUND)?.as_str().to_string();
        let values: Vec<String> = template
            .split('/')
            .zip(parts.uri.path().split('/'))
            .filter(|(t, _)| t.starts_with('{'))
            .map(|(_, raw)| percent_encoding::percent_decode_str(raw).decode_utf8_lossy().into_owned())
            .collect();
        T::from_segments(values).map(Path).ok_or(StatusCode::NOT_FOUND)
    }
}

// ---------------------------------------------------------------------------------------
// documents

async fn write_documents(node: Arc<Node>, uid: String, q: Option<String>, headers: HeaderMap, body: Body, replace: bool) -> ApiResult<Response> {
    path_uid(&uid)?;
    let pairs = query_pairs(&q);
    check_params(&pairs, &["primaryKey", "csvDelimiter", "customMetadata", "skipCreation"])?;
    let format = payload::format_from_content_type(content_type(&headers))?;
    let delimiter = match param(&pairs, "csvDelimiter") {
        None => b',',
        Some(d) => {
            if format != payload::Format::Csv {
                return Err(ApiError::new(
                    Code::InvalidContentType,
                    format!("The Content-Type `{}` does not support the use of a csv delimiter. The csv delimiter can only be used with the Content-Type `text/csv`.", content_type(&headers).unwrap_or_default()),
                ));
            }
            match d.as_bytes() {
                [b] if b.is_ascii() => *b,
                _ => {
                    return Err(ApiError::new(
                        Code::InvalidDocumentCsvDelimiter,
                        format!("Invalid value in parameter `csvDelimiter`: csv delimiter must be an ascii character. Found: `{d}`"),
                    ))
                }
            }
        }
    };
    if param(&pairs, "customMetadata").is_some() {
        return Err(ApiError::not_implemented("`customMetadata` in the test node"));
    }
    let skip_creation = match param(&pairs, "skipCreation") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(v) => {
            return Err(ApiError::new(Code::InvalidSkipCreation, format!("skipCreation must be either `true` or `false`. Found: `{v}`")))
        }
    };
    let primary_key = param(&pairs, "primaryKey").map(str::to_string);
    let bytes = read_body(body).await?;
    let documents = payload::parse_documents(&bytes, format, delimiter)?;
    drop(bytes);
    Ok(accepted(node.enqueue(Some(uid), TaskKind::DocumentAdditionOrUpdate { documents, primary_key, replace, skip_creation }, None)))
}

async fn add_documents(AxState(node): S, Path(uid): Path<String>, RawQuery(q): RawQuery, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    write_documents(node, uid, q, headers, body, true).await
}

async fn update_documents(AxState(node): S, Path(uid): Path<String>, RawQuery(q): RawQuery, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    write_documents(node, uid, q, headers, body, false).await
}

async fn clear_documents(AxState(node): S, Path(uid): Path<String>) -> ApiResult<Response> {
    path_uid(&uid)?;
    Ok(accepted(node.enqueue(Some(uid), TaskKind::DocumentClear, None)))
}

async fn delete_document(AxState(node): S, Path((uid, id)): Path<(String, String)>) -> ApiResult<Response> {
    path_uid(&uid)?;
    Ok(accepted(node.enqueue(Some(uid), TaskKind::DocumentDeletion { ids: vec![id] }, None)))
}

async fn delete_batch(AxState(node): S, Path(uid): Path<String>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    path_uid(&uid)?;
    let body = json_body(&headers, &read_body(body).await?)?;
    let arr = body.as_array().ok_or_else(|| {
        bad_request(format!("Invalid value type: expected an array, but found {}: `{body}`", describe(&body)))
    })?;
    let mut ids = Vec::with_capacity(arr.len());
    for (i, v) in arr.iter().enumerate() {
        match payload::external_id_of(v) {
            Some(id) => ids.push(id),
            None => {
                return Err(bad_request(format!(
                    "Invalid value type at `[{i}]`: expected a string or an integer, but found {}: `{v}`",
                    describe(v)
                )))
            }
        }
    }
    Ok(accepted(node.enqueue(Some(uid), TaskKind::DocumentDeletion { ids }, None)))
}

async fn delete_by_filter(AxState(node): S, Path(uid): Path<String>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    path_uid(&uid)?;
    let body = json_body(&headers, &read_body(body).await?)?;
    let obj = expect_object(&body)?;
    check_fields(obj, &["filter"])?;
    let filter = match obj.get("filter") {
        None => return Err(ApiError::new(Code::MissingDocumentFilter, "Missing field `filter`")),
        Some(f) => f.clone(),
    };
    if parse_filter(Some(&filter), FilterUse::Documents)?.is_none() {
        return Err(ApiError::new(Code::InvalidDocumentFilter, "Sending an empty filter is forbidden."));
    }
    Ok(accepted(node.enqueue(Some(uid), TaskKind::DocumentDeletionByFilter { filter }, None)))
}

async fn get_document(AxState(node): S, Path((uid, id)): Path<(String, String)>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    path_uid(&uid)?;
    let pairs = query_pairs(&q);
    check_params(&pairs, &["fields", "retrieveVectors"])?;
    let retrieve_vectors = retrieve_vectors_param(&pairs)?;
    let fields: Option<Vec<String>> = param(&pairs, "fields").map(|f| f.split(',').map(|s| s.trim().to_string()).collect());
    let st = node.lock();
    let ix = st.indexes.get(&uid).ok_or_else(|| index_not_found(&uid))?;
    let doc = ix.get(&id).ok_or_else(|| ApiError::new(Code::DocumentNotFound, format!("Document `{id}` not found.")))?;
    let mut out = select_fields(doc, fields.as_deref());
    engine::vector::render(&mut out, doc, &ix.settings, retrieve_vectors);
    Ok(ok(Value::Object(out)))
}

/// `retrieveVectors` of a documents GET.
fn retrieve_vectors_param(pairs: &[(String, String)]) -> ApiResult<bool> {
    match param(pairs, "retrieveVectors") {
        None => Ok(false),
        Some(v) => v.parse::<bool>().map_err(|_| {
            ApiError::new(Code::InvalidDocumentRetrieveVectors, format!("Invalid value in parameter `retrieveVectors`: could not parse `{v}` as a boolean, expected either `true` or `false`"))
        }),
    }
}

struct FetchParams {
    retrieve_vectors: bool,
    offset: usize,
    limit: usize,
    fields: Option<Vec<String>>,
    filter: Option<Value>,
    ids: Option<Vec<String>>,
    sort: Option<Vec<String>>,
}

/// A GET `sort` as Meilisearch's `fix_sort_query_parameters` reads it: outer quotes dropped,
/// split on commas outside `_geoPoint(…)`, items trimmed.
fn split_sort(raw: &str) -> Vec<String> {
    let mut items = Vec::new();
    let (mut depth, mut cur) = (0i32, String::new());
    for c in raw.trim_matches('"').chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                items.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    items.push(cur.trim().to_string());
    items
}

fn fetch(node: &Node, uid: &str, p: FetchParams) -> ApiResult<Response> {
    let st = node.lock();
    let ix = st.indexes.get(uid).ok_or_else(|| index_not_found(uid))?;
    let sort = match &p.sort {
        Some(list) => Some(engine::parse_document_sort(list, &ix.settings)?),
        None => None,
    };
    let mut docs = filtered_docs(ix, p.filter.as_ref(), FilterUse::Documents)?;
    if let Some(ids) = &p.ids {
        let wanted: std::collections::HashSet<u32> = ids.iter().filter_map(|id| ix.ids.get(id).copied()).collect();
        docs.retain(|(internal, _)| wanted.contains(internal));
    }
    if let Some(crits) = &sort {
        engine::sort_documents(&mut docs, crits);
    }
    let total = docs.len();
    let results: Vec<Value> = docs
        .into_iter()
        .skip(p.offset)
        .take(p.limit)
        .map(|(_, d)| {
            let mut out = select_fields(d, p.fields.as_deref());
            engine::vector::render(&mut out, d, &ix.settings, p.retrieve_vectors);
            Value::Object(out)
        })
        .collect();
    Ok(ok(json!({"results": results, "offset": p.offset, "limit": p.limit, "total": total})))
}

async fn list_documents(AxState(node): S, Path(uid): Path<String>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    path_uid(&uid)?;
    let pairs = query_pairs(&q);
    check_params(&pairs, &["offset", "limit", "fields", "retrieveVectors", "ids", "filter", "sort"])?;
    let retrieve_vectors = retrieve_vectors_param(&pairs)?;
    let split = |s: &str| s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect::<Vec<_>>();
    let p = FetchParams {
        retrieve_vectors,
        offset: parse_usize_param(&pairs, "offset", Code::InvalidDocumentOffset)?.unwrap_or(0),
        limit: parse_usize_param(&pairs, "limit", Code::InvalidDocumentLimit)?.unwrap_or(20),
        fields: param(&pairs, "fields").map(split),
        filter: param(&pairs, "filter").map(|f| serde_json::from_str(f).unwrap_or_else(|_| Value::String(f.to_string()))),
        ids: param(&pairs, "ids").map(split),
        sort: param(&pairs, "sort").map(split_sort),
    };
    fetch(&node, &uid, p)
}

async fn fetch_documents(AxState(node): S, Path(uid): Path<String>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let body = json_body(&headers, &read_body(body).await?)?;
    check_typed::<miroir::model::search::BrowseQuery>(&body)?;
    path_uid(&uid)?;
    let obj = expect_object(&body)?;
    check_fields(obj, &["offset", "limit", "fields", "retrieveVectors", "filter", "ids", "sort"])?;
    let uint = |name: &str, code: Code, default: usize| -> ApiResult<usize> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_u64().map(|n| n as usize).ok_or_else(|| {
                ApiError::new(code, format!("Invalid value type at `.{name}`: expected a positive integer, but found {}: `{v}`", describe(v)))
            }),
        }
    };
    let strings = |name: &str, code: Code| -> ApiResult<Option<Vec<String>>> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    payload::external_id_of(x).ok_or_else(|| {
                        ApiError::new(code, format!("Invalid value type at `.{name}`: expected a string, but found {}: `{x}`", describe(x)))
                    })
                })
                .collect::<ApiResult<Vec<_>>>()
                .map(Some),
            Some(v) => Err(ApiError::new(code, format!("Invalid value type at `.{name}`: expected an array, but found {}: `{v}`", describe(v)))),
        }
    };
    let p = FetchParams {
        retrieve_vectors: obj.get("retrieveVectors").and_then(Value::as_bool).unwrap_or(false),
        offset: uint("offset", Code::InvalidDocumentOffset, 0)?,
        limit: uint("limit", Code::InvalidDocumentLimit, 20)?,
        fields: strings("fields", Code::InvalidDocumentFields)?,
        filter: obj.get("filter").filter(|v| !v.is_null()).cloned(),
        ids: strings("ids", Code::InvalidDocumentIds)?,
        sort: obj.get("sort").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect()),
    };
    fetch(&node, &uid, p)
}

// ---------------------------------------------------------------------------------------
// search

fn snapshot<'a>(index: &'a Index, query: &SearchQuery) -> ApiResult<IndexSnapshot<'a>> {
    let documents = filtered_docs(index, query.filter.as_ref(), FilterUse::Search)?.into_iter().map(|(_, d)| d).collect();
    Ok(IndexSnapshot {
        uid: &index.uid,
        primary_key: index.primary_key.as_deref(),
        settings: &index.settings,
        documents,
    })
}

fn with_request_uid(mut v: Value, uid: &str) -> Value {
    if let Some(o) = v.as_object_mut() {
        // `performanceDetails`, then `semanticHitCount`, come after `requestUid` in
        // Meilisearch's answers.
        let perf = o.shift_remove("performanceDetails");
        let semantic = o.shift_remove("semanticHitCount");
        o.insert("requestUid".to_string(), Value::String(uid.to_string()));
        if let Some(p) = perf {
            o.insert("performanceDetails".to_string(), p);
        }
        if let Some(s) = semantic {
            o.insert("semanticHitCount".to_string(), s);
        }
    }
    v
}

fn run_search(node: &Node, uid: &str, query: &SearchQuery) -> ApiResult<Value> {
    let st = node.lock();
    let ix = st.indexes.get(uid).ok_or_else(|| index_not_found(uid))?;
    // Meilisearch decides the kind of search (embedder, vector) before it reads the filter.
    engine::semantic_kind(query, &ix.settings)?;
    let snap = snapshot(ix, query)?;
    engine::search(&snap, query)
}

async fn search_post(AxState(node): S, Path(uid): Path<String>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let body = json_body(&headers, &read_body(body).await?)?;
    check_typed::<miroir::model::search::SearchQuery>(&body)?;
    path_uid(&uid)?;
    let query = engine::parse_search_query(&body, false)?;
    Ok(ok(with_request_uid(run_search(&node, &uid, &query)?, &request_uid())))
}

async fn search_get(AxState(node): S, Path(uid): Path<String>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    path_uid(&uid)?;
    let query = engine::parse_search_params(&query_pairs(&q))?;
    Ok(ok(with_request_uid(run_search(&node, &uid, &query)?, &request_uid())))
}

// ---------------------------------------------------------------------------------------
// similar documents

/// `SimilarQueryGet`'s parameters, in Meilisearch's order.
const SIMILAR_PARAMS: &[&str] = &[
    "id",
    "embedder",
    "offset",
    "limit",
    "attributesToRetrieve",
    "retrieveVectors",
    "filter",
    "showRankingScore",
    "showRankingScoreDetails",
    "showPerformanceDetails",
    "rankingScoreThreshold",
];

/// `GET /similar` parameters as the `SimilarQuery` object, with Meilisearch's errors.
fn similar_params(pairs: &[(String, String)]) -> ApiResult<Map<String, Value>> {
    let mut out = Map::new();
    for (k, v) in pairs {
        let value = match k.as_str() {
            "id" | "embedder" => Value::String(v.clone()),
            "filter" => serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.clone())),
            "offset" | "limit" => {
                let code = if k == "offset" { Code::InvalidSimilarOffset } else { Code::InvalidSimilarLimit };
                let n: usize = v.parse().map_err(|_| {
                    ApiError::new(code, format!("Invalid value in parameter `{k}`: could not parse `{v}` as a positive integer"))
                })?;
                json!(n)
            }
            "attributesToRetrieve" => Value::Array(v.split(',').filter(|s| !s.is_empty()).map(|s| Value::String(s.to_string())).collect()),
            "retrieveVectors" | "showRankingScore" | "showRankingScoreDetails" | "showPerformanceDetails" => {
                let code = match k.as_str() {
                    "retrieveVectors" => Code::InvalidSimilarRetrieveVectors,
                    "showRankingScore" => Code::InvalidSimilarShowRankingScore,
                    "showRankingScoreDetails" => Code::InvalidSimilarShowRankingScoreDetails,
                    _ => Code::InvalidSimilarShowPerformanceDetails,
                };
                let b: bool = v.parse().map_err(|_| {
                    ApiError::new(code, format!("Invalid value in parameter `{k}`: could not parse `{v}` as a boolean, expected either `true` or `false`"))
                })?;
                Value::Bool(b)
            }
            "rankingScoreThreshold" => {
                let f = v.parse::<f64>().ok().filter(|f| (0.0..=1.0).contains(f)).ok_or_else(|| {
                    ApiError::new(
                        Code::InvalidSimilarRankingScoreThreshold,
                        "Invalid value in parameter `rankingScoreThreshold`: the value of `rankingScoreThreshold` is invalid, expected a float between `0.0` and `1.0`.",
                    )
                })?;
                json!(f)
            }
            _ => return Err(miroir::model::deserr::unknown_param(k, SIMILAR_PARAMS).into()),
        };
        out.insert(k.clone(), value);
    }
    for required in ["id", "embedder"] {
        if !out.contains_key(required) {
            return Err(bad_request(format!("Missing parameter `{required}`")));
        }
    }
    Ok(out)
}

/// `/similar` on one index, as Meilisearch's `perform_similar` checks and answers it: the
/// embedder, the filter's syntax, the id's form, the id's document, the filter's attributes.
fn run_similar(node: &Node, uid: &str, q: &Map<String, Value>) -> ApiResult<Value> {
    let st = node.lock();
    let ix = st.indexes.get(uid).ok_or_else(|| index_not_found(uid))?;
    let embedder = q.get("embedder").and_then(Value::as_str).unwrap_or_default();
    if !engine::vector::embedders(&ix.settings).iter().any(|(n, _)| n == embedder) {
        return Err(ApiError::new(Code::InvalidSimilarEmbedder, format!("Cannot find embedder with name `{embedder}`.")));
    }
    let filter = q.get("filter").filter(|f| !f.is_null());
    parse_filter(filter, FilterUse::Similar)?;
    let given = q.get("id").cloned().unwrap_or(Value::Null);
    let id = miroir::model::DocumentId::from_value(&given).ok_or_else(|| {
        ApiError::new(
            Code::InvalidSimilarId,
            format!("Invalid value at `.id`: Document identifier `{given}` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes."),
        )
    })?;
    let id = id.as_str().to_string();
    let Some(&internal) = ix.ids.get(&id) else {
        return Err(ApiError::new(Code::NotFoundSimilarId, format!("Document `{id}` not found.")));
    };
    let candidates: Vec<&Document> = filtered_docs(ix, filter, FilterUse::Similar)?.into_iter().filter(|(i, _)| *i != internal).map(|(_, d)| d).collect();
    let mut field_order: Vec<String> = Vec::new();
    for d in ix.docs.values() {
        for k in d.keys() {
            if !field_order.contains(k) {
                field_order.push(k.clone());
            }
        }
    }
    let input = engine::SimilarInput { settings: &ix.settings, id, reference: &ix.docs[&internal], candidates, field_order };
    Ok(engine::similar(input, q))
}

async fn similar_post(AxState(node): S, Path(uid): Path<String>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let body = json_body(&headers, &read_body(body).await?)?;
    check_typed::<miroir::model::search::SimilarQuery>(&body)?;
    path_uid(&uid)?;
    Ok(ok(run_similar(&node, &uid, expect_object(&body)?)?))
}

async fn similar_get(AxState(node): S, Path(uid): Path<String>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let query = similar_params(&query_pairs(&q))?;
    path_uid(&uid)?;
    Ok(ok(run_similar(&node, &uid, &query)?))
}

async fn facet_search(AxState(node): S, Path(uid): Path<String>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let body = json_body(&headers, &read_body(body).await?)?;
    check_typed::<miroir::model::search::FacetSearchQuery>(&body)?;
    path_uid(&uid)?;
    let query = engine::parse_facet_search_query(&body)?;
    let st = node.lock();
    let ix = st.indexes.get(&uid).ok_or_else(|| index_not_found(&uid))?;
    let snap = snapshot(ix, &query)?;
    Ok(ok(engine::facet_search(&snap, &query)?))
}

/// `Inside `.queries[i]`: ...` for a query that failed while searching. Only
/// `index_not_found` changes status (to 400: the index is not part of the URL).
fn inside_query(i: usize, e: ApiError) -> ApiError {
    match e {
        ApiError::Own { code: Code::NotImplemented, .. } => e,
        ApiError::Own { code, message } => {
            let message = format!("Inside `.queries[{i}]`: {message}");
            if code == Code::IndexNotFound {
                ApiError::Passthrough { status: 400, body: crate::error::error_object(code, &message) }
            } else {
                ApiError::Own { code, message }
            }
        }
        other => other,
    }
}

/// A query of a multi-search that failed to deserialize: its error locations are relative to
/// the query, Meilisearch's are relative to the request (`.queries[i]`).
fn relocate(i: usize, e: ApiError) -> ApiError {
    let ApiError::Own { code, message } = e else { return e };
    let at = format!(".queries[{i}]");
    let message = if let Some(rest) = message.strip_prefix("Unknown field `") {
        match rest.split_once("`: ") {
            Some((field, tail)) => format!("Unknown field `{field}` inside `{at}`: {tail}"),
            None => message,
        }
    } else if message.starts_with("Missing field `") && !message.contains(" inside `") {
        format!("{message} inside `{at}`")
    } else {
        message.replacen("at `.", &format!("at `{at}."), 1)
    };
    ApiError::Own { code, message }
}

async fn multi_search(AxState(node): S, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let body = json_body(&headers, &read_body(body).await?)?;
    miroir::model::deserr::parse::<miroir::model::search::MultiSearch>(body.clone())?.check()?;
    let obj = expect_object(&body)?;
    check_fields(obj, &["federation", "queries"])?;
    let queries = match obj.get("queries") {
        None => return Err(bad_request("Missing field `queries`")),
        Some(Value::Array(q)) => q,
        Some(v) => {
            return Err(bad_request(format!(
                "Invalid value type at `.queries`: expected an array, but found {}: `{v}`",
                describe(v)
            )))
        }
    };
    let federation = obj.get("federation").filter(|v| !v.is_null());
    let mut parsed = Vec::with_capacity(queries.len());
    for (i, q) in queries.iter().enumerate() {
        let query = engine::parse_search_query(q, true).map_err(|e| relocate(i, e))?;
        let Some(index_uid) = query.index_uid.clone() else {
            return Err(relocate(i, ApiError::new(Code::MissingIndexUid, "Missing field `indexUid`")));
        };
        if !valid_index_uid(&index_uid) {
            return Err(ApiError::new(Code::InvalidIndexUid, format!("Invalid value at `.queries[{i}].indexUid`: {}", index_uid_message(&index_uid))));
        }
        parsed.push((index_uid, query));
    }
    let request_uid = request_uid();
    let st = node.lock();
    match federation {
        None => {
            let mut results = Vec::with_capacity(parsed.len());
            for (i, (index_uid, query)) in parsed.iter().enumerate() {
                let res = (|| {
                    let ix = st.indexes.get(index_uid).ok_or_else(|| index_not_found(index_uid))?;
                    let snap = snapshot(ix, query)?;
                    engine::search(&snap, query)
                })()
                .map_err(|e| inside_query(i, e))?;
                let mut out = Map::new();
                out.insert("indexUid".to_string(), Value::String(index_uid.clone()));
                if let Value::Object(m) = res {
                    out.extend(m);
                }
                results.push(with_request_uid(Value::Object(out), &request_uid));
            }
            Ok(ok(json!({"results": results})))
        }
        Some(federation) => {
            let mut inputs = Vec::with_capacity(parsed.len());
            for (i, (index_uid, query)) in parsed.into_iter().enumerate() {
                let ix = st.indexes.get(&index_uid).ok_or_else(|| inside_query(i, index_not_found(&index_uid)))?;
                let snap = snapshot(ix, &query).map_err(|e| inside_query(i, e))?;
                inputs.push((snap, query));
            }
            let res = engine::federated_search(&inputs, federation)?;
            Ok(ok(with_request_uid(res, &request_uid)))
        }
    }
}

// ---------------------------------------------------------------------------------------
// tasks

const TASK_LIST_PARAMS: [&str; 15] = [
    "limit", "from", "reverse", "batchUids", "uids", "canceledBy", "types", "statuses", "indexUids",
    "afterEnqueuedAt", "beforeEnqueuedAt", "afterStartedAt", "beforeStartedAt", "afterFinishedAt", "beforeFinishedAt",
];
const TASK_FILTER_PARAMS: [&str; 12] = [
    "uids", "batchUids", "canceledBy", "types", "statuses", "indexUids", "afterEnqueuedAt", "beforeEnqueuedAt",
    "afterStartedAt", "beforeStartedAt", "afterFinishedAt", "beforeFinishedAt",
];

/// Task filters of `GET/DELETE /tasks` and `POST /tasks/cancel`.
#[derive(Default)]
struct TaskFilter {
    uids: Option<Vec<u32>>,
    batch_uids: Option<Vec<u32>>,
    canceled_by: Option<Vec<u32>>,
    types: Option<Vec<String>>,
    statuses: Option<Vec<String>>,
    index_uids: Option<Vec<String>>,
    dates: Vec<(&'static str, OffsetDateTime)>,
}

fn list_param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<Vec<&'a str>> {
    let v = param(pairs, name)?;
    // Empty items are dropped and items are not trimmed, as Meilisearch reads a comma list.
    let items: Vec<&str> = v.split(',').filter(|s| !s.is_empty()).collect();
    if items.contains(&"*") {
        None
    } else {
        Some(items)
    }
}

/// How deserr names an item of a comma-separated parameter: `name` for a single value,
/// `name[i]` inside a list.
fn item_name(name: &str, i: usize, len: usize) -> String {
    if len > 1 {
        format!("{name}[{i}]")
    } else {
        name.to_string()
    }
}

fn uint_list(pairs: &[(String, String)], name: &str, code: Code) -> ApiResult<Option<Vec<u32>>> {
    list_param(pairs, name)
        .map(|items| {
            let len = items.len();
            items
                .into_iter()
                .enumerate()
                .map(|(i, s)| {
                    s.parse::<u32>().map_err(|_| {
                        ApiError::new(
                            code,
                            format!("Invalid value in parameter `{}`: could not parse `{s}` as a positive integer", item_name(name, i, len)),
                        )
                    })
                })
                .collect()
        })
        .transpose()
}

fn parse_date(name: &str, s: &str, code: Code) -> ApiResult<OffsetDateTime> {
    let err = || {
        ApiError::new(
            code,
            format!("Invalid value in parameter `{name}`: `{s}` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format."),
        )
    };
    if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(t);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(s, &fmt).map_err(|_| err())?;
    let t = d.midnight().assume_utc();
    // `after` a day means after its end
    Ok(if name.starts_with("after") { t + time::Duration::days(1) } else { t })
}

fn parse_task_filter(pairs: &[(String, String)]) -> ApiResult<TaskFilter> {
    let mut f = TaskFilter {
        uids: uint_list(pairs, "uids", Code::InvalidTaskUids)?,
        batch_uids: uint_list(pairs, "batchUids", Code::InvalidTaskBatchUids)?,
        canceled_by: uint_list(pairs, "canceledBy", Code::InvalidTaskCanceledBy)?,
        ..TaskFilter::default()
    };
    // statuses and types are matched case-insensitively, as Meilisearch parses them
    if let Some(items) = list_param(pairs, "statuses") {
        let mut statuses = Vec::new();
        for (i, s) in items.iter().enumerate() {
            match Status::ALL.iter().find(|k| k.eq_ignore_ascii_case(s)) {
                Some(k) => statuses.push(k.to_string()),
                None => {
                    return Err(ApiError::new(
                        Code::InvalidTaskStatuses,
                        format!("Invalid value in parameter `{}`: `{s}` is not a valid task status. Available statuses are `enqueued`, `processing`, `succeeded`, `failed`, `canceled`.", item_name("statuses", i, items.len())),
                    ))
                }
            }
        }
        f.statuses = Some(statuses);
    }
    if let Some(items) = list_param(pairs, "types") {
        let mut types = Vec::new();
        for (i, t) in items.iter().enumerate() {
            match TASK_TYPES.iter().find(|k| k.eq_ignore_ascii_case(t)) {
                Some(k) => types.push(k.to_string()),
                None => {
                    return Err(ApiError::new(
                        Code::InvalidTaskTypes,
                        format!(
                            "Invalid value in parameter `{}`: `{t}` is not a valid task type. Available types are {}.",
                            item_name("types", i, items.len()),
                            TASK_TYPES.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")
                        ),
                    ))
                }
            }
        }
        f.types = Some(types);
    }
    if let Some(items) = list_param(pairs, "indexUids") {
        for (i, u) in items.iter().enumerate() {
            if !valid_index_uid(u) {
                return Err(ApiError::new(
                    Code::InvalidIndexUid,
                    format!("Invalid value in parameter `{}`: {}", item_name("indexUids", i, items.len()), index_uid_message(u)),
                ));
            }
        }
        f.index_uids = Some(items.into_iter().map(str::to_string).collect());
    }
    for (name, code) in [
        ("afterEnqueuedAt", Code::InvalidTaskAfterEnqueuedAt),
        ("beforeEnqueuedAt", Code::InvalidTaskBeforeEnqueuedAt),
        ("afterStartedAt", Code::InvalidTaskAfterStartedAt),
        ("beforeStartedAt", Code::InvalidTaskBeforeStartedAt),
        ("afterFinishedAt", Code::InvalidTaskAfterFinishedAt),
        ("beforeFinishedAt", Code::InvalidTaskBeforeFinishedAt),
    ] {
        // `*` is no bound at all, as on Meilisearch.
        if let Some(v) = param(pairs, name).filter(|v| *v != "*") {
            f.dates.push((name, parse_date(name, v, code)?));
        }
    }
    Ok(f)
}

impl TaskFilter {
    fn matches(&self, t: &Task) -> bool {
        let in_list = |list: &Option<Vec<u32>>, v: Option<u32>| list.as_ref().is_none_or(|l| v.is_some_and(|v| l.contains(&v)));
        if !in_list(&self.uids, Some(t.uid)) || !in_list(&self.batch_uids, t.batch_uid) || !in_list(&self.canceled_by, t.canceled_by) {
            return false;
        }
        if self.types.as_ref().is_some_and(|l| !l.iter().any(|x| x == t.type_name())) {
            return false;
        }
        if self.statuses.as_ref().is_some_and(|l| !l.iter().any(|x| x == t.status.as_str())) {
            return false;
        }
        if let Some(l) = &self.index_uids {
            if !t.index_uid.as_ref().is_some_and(|u| l.contains(u)) {
                return false;
            }
        }
        for (name, at) in &self.dates {
            let value = match *name {
                "afterEnqueuedAt" | "beforeEnqueuedAt" => Some(t.enqueued_at),
                "afterStartedAt" | "beforeStartedAt" => t.started_at,
                _ => t.finished_at,
            };
            let Some(value) = value else { return false };
            let ok = if name.starts_with("after") { value > *at } else { value < *at };
            if !ok {
                return false;
            }
        }
        true
    }
}

async fn get_task(AxState(node): S, Path(uid): Path<String>) -> ApiResult<Response> {
    let not_found = || ApiError::new(Code::TaskNotFound, format!("Task `{uid}` not found."));
    let n: u32 = uid.parse().map_err(|_| {
        ApiError::new(Code::InvalidTaskUids, format!("Task uid `{uid}` is invalid. It should only contain numeric characters."))
    })?;
    let st = node.lock();
    Ok(ok(st.tasks.get(&n).ok_or_else(not_found)?.to_json()))
}

async fn list_tasks(AxState(node): S, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let pairs = query_pairs(&q);
    check_params(&pairs, &TASK_LIST_PARAMS)?;
    let limit = parse_usize_param(&pairs, "limit", Code::InvalidTaskLimit)?.unwrap_or(20);
    let from = parse_usize_param(&pairs, "from", Code::InvalidTaskFrom)?.map(|f| f as u32);
    let reverse = match param(&pairs, "reverse") {
        None => false,
        Some("true") => true,
        Some("false") => false,
        Some(v) => {
            return Err(ApiError::new(
                Code::InvalidTaskReverse,
                format!("Invalid value in parameter `reverse`: could not parse `{v}` as a boolean, expected either `true` or `false`"),
            ))
        }
    };
    let filter = parse_task_filter(&pairs)?;
    let st = node.lock();
    let matching: Vec<&Task> = if reverse {
        st.tasks.values().filter(|t| filter.matches(t)).collect()
    } else {
        st.tasks.values().rev().filter(|t| filter.matches(t)).collect()
    };
    let total = matching.len();
    let after_from: Vec<&Task> = matching
        .into_iter()
        .filter(|t| match from {
            None => true,
            Some(f) if reverse => t.uid >= f,
            Some(f) => t.uid <= f,
        })
        .collect();
    let page: Vec<Value> = after_from.iter().take(limit).map(|t| t.to_json()).collect();
    // `from` is the first task returned (none when `limit=0`), `next` the one after the page
    let first = after_from.iter().take(limit).next().map(|t| t.uid);
    let next = after_from.get(limit).map(|t| t.uid);
    Ok(ok(json!({"results": page, "total": total, "limit": limit, "from": first, "next": next})))
}

fn matched_uids(node: &Node, pairs: &[(String, String)], what: &str) -> ApiResult<(Vec<u32>, String)> {
    check_params(pairs, &TASK_FILTER_PARAMS)?;
    if !pairs.iter().any(|(k, _)| TASK_FILTER_PARAMS.contains(&k.as_str())) {
        return Err(ApiError::new(
            Code::MissingTaskFilters,
            format!("Query parameters to filter the tasks to {what} are missing. Available query parameters are: `uids`, `indexUids`, `statuses`, `types`, `canceledBy`, `beforeEnqueuedAt`, `afterEnqueuedAt`, `beforeStartedAt`, `afterStartedAt`, `beforeFinishedAt`, `afterFinishedAt`."),
        ));
    }
    let filter = parse_task_filter(pairs)?;
    let st = node.lock();
    let uids = st.tasks.values().filter(|t| filter.matches(t)).map(|t| t.uid).collect();
    Ok((uids, String::new()))
}

async fn delete_tasks(AxState(node): S, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let pairs = query_pairs(&q);
    let (uids, _) = matched_uids(&node, &pairs, "delete")?;
    let details = json!({"matchedTasks": uids.len(), "deletedTasks": null, "originalFilter": format!("?{}", q.unwrap_or_default())});
    Ok(ok(node.enqueue(None, TaskKind::TaskDeletion { uids }, Some(details))))
}

async fn cancel_tasks(AxState(node): S, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let pairs = query_pairs(&q);
    let (uids, _) = matched_uids(&node, &pairs, "cancel")?;
    let details = json!({"matchedTasks": uids.len(), "canceledTasks": null, "originalFilter": format!("?{}", q.unwrap_or_default())});
    Ok(ok(node.enqueue(None, TaskKind::TaskCancelation { uids }, Some(details))))
}

async fn create_dump(AxState(node): S) -> ApiResult<Response> {
    let dir = node.dump_dir.clone().ok_or_else(|| ApiError::not_implemented("`/dumps` without a dump directory"))?;
    Ok(accepted(node.enqueue(None, TaskKind::DumpCreation { dir }, None)))
}

async fn create_snapshot(AxState(node): S) -> ApiResult<Response> {
    let dir = node.snapshot_dir.clone().ok_or_else(|| ApiError::not_implemented("`/snapshots` without a snapshot directory"))?;
    Ok(accepted(node.enqueue(None, TaskKind::SnapshotCreation { dir }, None)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_selection_keeps_document_order() {
        let d = json!({"id": 2, "title": "M", "year": 1927, "n": {"a": 1, "b": 2}}).as_object().unwrap().clone();
        let f = vec!["year".to_string(), "title".to_string(), "n.b".to_string()];
        assert_eq!(serde_json::to_string(&select_fields(&d, Some(&f))).unwrap(), r#"{"title":"M","year":1927,"n":{"b":2}}"#);
    }

    #[test]
    fn multi_search_errors_are_located_like_meilisearch() {
        let e = inside_query(1, ApiError::new(Code::IndexNotFound, "Index `nope` not found."));
        assert_eq!(e.status().as_u16(), 400);
        assert_eq!(e.body()["message"], "Inside `.queries[1]`: Index `nope` not found.");
        assert_eq!(e.body()["code"], "index_not_found");
        let e = inside_query(0, ApiError::new(Code::InvalidSearchFilter, "x"));
        assert_eq!(e.status().as_u16(), 400);
        let e = relocate(2, ApiError::new(Code::BadRequest, "Unknown field `x`: expected one of `q`"));
        assert_eq!(e.body()["message"], "Unknown field `x` inside `.queries[2]`: expected one of `q`");
        let e = relocate(0, ApiError::new(Code::InvalidSearchLimit, "Invalid value type at `.limit`: expected a positive integer"));
        assert_eq!(e.body()["message"], "Invalid value type at `.queries[0].limit`: expected a positive integer");
        let e = relocate(3, ApiError::new(Code::MissingIndexUid, "Missing field `indexUid`"));
        assert_eq!(e.body()["message"], "Missing field `indexUid` inside `.queries[3]`");
    }

    #[test]
    fn request_uid_looks_like_uuid_v7() {
        let u = request_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "7");
    }
}

// ---------------------------------------------------------------------------------------
// experimental features, edition by function, compaction

async fn get_features(AxState(node): S) -> Response {
    ok(Value::Object(node.lock().features()))
}

async fn patch_features(AxState(node): S, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let body = json_body(&headers, &read_body(body).await?)?;
    let mut st = node.lock();
    let next = super::features::patch(&st.features(), &body)?;
    st.features = next.clone();
    Ok(ok(Value::Object(next)))
}

async fn edit_documents(AxState(node): S, Path(uid): Path<String>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    // Meilisearch's order: the body (deserr), the feature, the uid, the function, the filter,
    // the context.
    let body = json_body(&headers, &read_body(body).await?)?;
    let obj = expect_object(&body)?;
    check_fields(obj, &["filter", "context", "function"])?;
    let function = match obj.get("function") {
        None => return Err(ApiError::new(Code::MissingDocumentEditionFunction, "Missing field `function`")),
        Some(Value::String(f)) => f.clone(),
        Some(other) => {
            return Err(ApiError::new(
                Code::InvalidDocumentEditionFunctionFilter,
                format!("Invalid value type at `.function`: expected a string, but found {}: `{other}`", describe(other)),
            ))
        }
    };
    let filter = obj.get("filter").filter(|f| !f.is_null()).cloned();
    let context = obj.get("context").filter(|c| !c.is_null()).cloned();
    if node.lock().features().get("editDocumentsByFunction") != Some(&Value::Bool(true)) {
        return Err(ApiError::new(
            Code::FeatureNotEnabled,
            "Using the documents edit route requires enabling the `edit documents by function` experimental feature. See https://github.com/orgs/meilisearch/discussions/762",
        ));
    }
    path_uid(&uid)?;
    super::edition::check_compiles(&function)?;
    if filter.is_some() && parse_filter(filter.as_ref(), FilterUse::Documents)?.is_none() {
        return Err(ApiError::new(Code::InvalidDocumentFilter, "Sending an empty filter is forbidden."));
    }
    if context.as_ref().is_some_and(|c| !c.is_object()) {
        return Err(ApiError::new(Code::InvalidDocumentEditionContext, "The context must be an object"));
    }
    Ok(accepted(node.enqueue(Some(uid), TaskKind::DocumentEdition { filter, context, function }, None)))
}

async fn compact_index(AxState(node): S, Path(uid): Path<String>) -> ApiResult<Response> {
    path_uid(&uid)?;
    Ok(accepted(node.enqueue(Some(uid), TaskKind::IndexCompaction, None)))
}

// ---------------------------------------------------------------------------------------
// index fields, template rendering

async fn list_fields(AxState(node): S, Path(uid): Path<String>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    // Meilisearch's order: the body, then the index, looked up by the name as given.
    let body = json_body(&headers, &read_body(body).await?)?;
    let request = miroir::model::deserr::parse::<miroir::model::fields::ListFields>(body)?;
    let st = node.lock();
    let ix = st.indexes.get(&uid).ok_or_else(|| index_not_found(&uid))?;
    Ok(ok(super::fields::list(&ix.fields, &ix.settings, &request)))
}

async fn render_template(AxState(node): S, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let body = json_body(&headers, &read_body(body).await?)?;
    let query = miroir::model::deserr::parse::<miroir::model::render::RenderQuery>(body)?;
    let st = node.lock();
    Ok(ok(super::render::render(&st, &query)?))
}

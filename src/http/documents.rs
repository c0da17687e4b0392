//! `/indexes/{uid}/documents`: writes routed by shard to their holders (JSON, NDJSON, CSV),
//! deletions by id, filter or all, and reads (one document, listing, fetch).

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use reqwest::Method;
use serde_json::{json, Value};

use super::{accepted, node_answers_get, params_to_body, parse_json, pass, query_pairs, read_body, read_response, JsonBody, JsonBytes, RouteParams};
use crate::model::deserr::parse;
use crate::model::search::BrowseQuery;
use crate::dataplane::fanout::DEGRADED_HEADER;
use crate::dataplane::merge::{strip_reserved, RESERVED_PREFIX};
use crate::dataplane::payload::{format_from_content_type, parse_documents};
use crate::dataplane::tasks::with_custom_metadata;
use crate::dataplane::write::DocumentWrite;
use crate::dataplane::Proxy;
use crate::error::{ApiError, ApiResult, Code};
use crate::node::NodePath;

pub async fn replace(State(proxy): State<Proxy>, params: RouteParams, RawQuery(q): RawQuery, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    write(proxy, params, q, headers, body, Method::POST).await
}

pub async fn update(State(proxy): State<Proxy>, params: RouteParams, RawQuery(q): RawQuery, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    write(proxy, params, q, headers, body, Method::PUT).await
}

async fn write(proxy: Proxy, params: RouteParams, q: Option<String>, headers: HeaderMap, body: Body, method: Method) -> ApiResult<Response> {
    let query = query_pairs(&q);
    let delimiter = match query.iter().find(|(k, _)| k == "csvDelimiter").map(|(_, v)| v.as_bytes()) {
        None => b',',
        Some([b]) if b.is_ascii() => *b,
        Some(other) => {
            return Err(ApiError::new(
                Code::InvalidDocumentCsvDelimiter,
                format!(
                    "Invalid value in parameter `csvDelimiter`: expected a string of one character, but found the following string of 5 characters: `{}`",
                    String::from_utf8_lossy(other)
                ),
            ))
        }
    };
    let skip_creation = match query.iter().rev().find(|(k, _)| k == "skipCreation").map(|(_, v)| v.as_str()) {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(v) => {
            return Err(ApiError::new(Code::InvalidSkipCreation, format!("skipCreation must be either `true` or `false`. Found: `{v}`")))
        }
    };
    // Meilisearch's order: query parameters, the uid, the content type, the payload.
    let uid = params.index_uid()?;
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let format = format_from_content_type(ct)?;
    let bytes = read_body(&proxy, body).await?;
    let documents = parse_documents(&bytes, format, delimiter)?;
    for d in &documents {
        if let Some(k) = d.keys().find(|k| k.starts_with(RESERVED_PREFIX)) {
            return Err(ApiError::new(
                Code::MiroirReservedField,
                format!("The field `{k}` is reserved: attributes starting with `{RESERVED_PREFIX}` are used by Miroir and cannot be written by clients."),
            ));
        }
    }
    let primary_key = query.iter().find(|(k, _)| k == "primaryKey").map(|(_, v)| v.clone());
    let meta = custom_metadata(&query);
    Ok(accepted(with_custom_metadata(meta, proxy.write_documents(DocumentWrite { uid, method, documents, primary_key, skip_creation })).await?))
}

/// `customMetadata` of a document write (Meilisearch 1.50): kept with the Miroir task and
/// shown on it; the nodes never see it.
fn custom_metadata(query: &[(String, String)]) -> Option<String> {
    query.iter().rev().find(|(k, _)| k == "customMetadata").map(|(_, v)| v.clone())
}

pub async fn delete_one(State(proxy): State<Proxy>, params: RouteParams, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let uid = params.index_uid()?;
    let meta = custom_metadata(&query_pairs(&q));
    // The id goes to the nodes in a JSON body, never in a URL.
    Ok(accepted(with_custom_metadata(meta, proxy.delete_ids(&uid, vec![Value::String(params.raw_document_id().to_string())])).await?))
}

pub async fn delete_batch(State(proxy): State<Proxy>, params: RouteParams, RawQuery(q): RawQuery, JsonBytes(bytes): JsonBytes) -> ApiResult<Response> {
    // Meilisearch reads this body with serde, not deserr: its data errors say so.
    parse_json(&bytes)?;
    let ids: Vec<Value> = serde_json::from_slice(&bytes).map_err(|e| ApiError::new(Code::BadRequest, format!("Json deserialize error: {e}")))?;
    let uid = params.index_uid()?;
    let meta = custom_metadata(&query_pairs(&q));
    Ok(accepted(with_custom_metadata(meta, proxy.delete_ids(&uid, ids)).await?))
}

pub async fn delete_by_filter(State(proxy): State<Proxy>, params: RouteParams, RawQuery(q): RawQuery, JsonBody(body): JsonBody) -> ApiResult<Response> {
    let uid = params.index_uid()?;
    let filter = body.get("filter").cloned();
    let details = json!({"providedIds": 0, "deletedDocuments": null, "originalFilter": filter.map(|f| f.to_string())});
    let path = NodePath::index(&uid).then("documents").then("delete");
    let meta = custom_metadata(&query_pairs(&q));
    Ok(accepted(with_custom_metadata(meta, proxy.broadcast_write(Method::POST, &path, Some(&body), Some(&uid), details)).await?))
}

pub async fn delete_all(State(proxy): State<Proxy>, params: RouteParams, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let uid = params.index_uid()?;
    let path = NodePath::index(&uid).then("documents");
    let meta = custom_metadata(&query_pairs(&q));
    Ok(accepted(with_custom_metadata(meta, proxy.broadcast_write(Method::DELETE, &path, None, Some(&uid), json!({"deletedDocuments": null}))).await?))
}

pub async fn get_one(State(proxy): State<Proxy>, params: RouteParams, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let uid = params.index_uid()?;
    let Some(id) = params.document_id() else {
        // No document can have such an id (Meilisearch answers the same for it).
        return Err(ApiError::new(Code::DocumentNotFound, format!("Document `{}` not found.", params.raw_document_id())));
    };
    let routing = proxy.routing_or_error()?;
    let candidates = proxy.document_holders(&routing, &id).map_err(|shard| {
        ApiError::new(Code::MiroirShardUnavailable, format!("Shard {shard} has no healthy copy; the document cannot be read right now."))
            .with_header(DEGRADED_HEADER, format!("shards={shard}"))
    })?;
    let path = NodePath::index(&uid).then("documents").document(&id).client_query(query_pairs(&q));
    let mut r = proxy.read_from(&routing, candidates.iter().map(String::as_str).collect(), Method::GET, &path, None).await?;
    if let (true, Value::Object(doc)) = (r.is_success(), &mut r.body) {
        strip_reserved(doc);
    }
    pass(r)
}

pub async fn list(State(proxy): State<Proxy>, params: RouteParams, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let query = query_pairs(&q);
    let uid = params.index_uid()?;
    let Some(body) = params_to_body(&query, &["fields", "ids", "sort"], &["offset", "limit"], &[], &["retrieveVectors"], &["filter"]) else {
        return node_answers_get(&proxy, NodePath::index(&uid).then("documents").client_query(query)).await;
    };
    Ok(read_response(proxy.list_documents(&uid, &body).await?))
}

pub async fn fetch(State(proxy): State<Proxy>, params: RouteParams, JsonBody(body): JsonBody) -> ApiResult<Response> {
    let _: BrowseQuery = parse(body.clone())?;
    let uid = params.index_uid()?;
    let Value::Object(body) = body else { unreachable!("a browse query is an object") };
    Ok(read_response(proxy.list_documents(&uid, &body).await?))
}

/// `POST /indexes/{uid}/documents/edit`: the function is broadcast to every node (each edits
/// the documents it holds) as one `documentEdition` task. An edition cannot move a document
/// between shards: changing the primary key fails the task on the node, as on Meilisearch.
pub async fn edit(State(proxy): State<Proxy>, params: RouteParams, JsonBody(body): JsonBody) -> ApiResult<Response> {
    use crate::dataplane::edition;
    let uid = params.index_uid()?;
    let path = NodePath::index(&uid).then("documents").then("edit");
    let function = body.get("function").and_then(Value::as_str).map(str::to_string);
    let Some(function) = function.filter(|f| edition::compiles(f)) else {
        // Not a request Meilisearch accepts: the first node answers its error, untouched.
        return Ok(accepted(proxy.broadcast_write(Method::POST, &path, Some(&body), Some(&uid), json!({})).await?));
    };
    let filter = body.get("filter").filter(|f| !f.is_null());
    let details = json!({
        "editedDocuments": null,
        "deletedDocuments": null,
        "originalFilter": filter.map(Value::to_string),
        "context": body.get("context").cloned().unwrap_or(Value::Null),
        "function": function,
    });
    let mut sent = body.clone();
    sent["function"] = Value::String(edition::wrap(&function));
    Ok(accepted(proxy.broadcast_write(Method::POST, &path, Some(&sent), Some(&uid), details).await?))
}

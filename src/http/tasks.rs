//! `/tasks`: Miroir's own task uids, aggregated from the node tasks behind each.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use reqwest::Method;
use serde_json::{json, Value};

use super::{json_response, query_pairs, RouteParams};
use crate::dataplane::fanout::NodeCall;
use crate::dataplane::tasks::{parse_task_query, store_error, summarized, task_view};
use crate::dataplane::write::node_tasks;
use crate::auth::AuthContext;
use crate::dataplane::Proxy;
use crate::error::{ApiError, ApiResult, Code};
use crate::node::NodePath;

const FILTERS: &str = "`uids`, `indexUids`, `statuses`, `types`, `canceledBy`, `beforeEnqueuedAt`, `afterEnqueuedAt`, `beforeStartedAt`, `afterStartedAt`, `beforeFinishedAt`, `afterFinishedAt`";

pub async fn get(State(proxy): State<Proxy>, auth: AuthContext, params: RouteParams) -> ApiResult<Json<Value>> {
    let uid = params.task_uid()?;
    let task = proxy.get_task(uid).await?;
    if !auth.task_visible(task.index_uid.as_deref(), &task.kind) {
        return Err(ApiError::new(Code::TaskNotFound, format!("Task `{uid}` not found.")));
    }
    Ok(Json(task_view(&task)))
}

pub async fn list(State(proxy): State<Proxy>, auth: AuthContext, RawQuery(q): RawQuery) -> ApiResult<Json<Value>> {
    let tq = parse_task_query(&query_pairs(&q), q.as_deref().unwrap_or(""), true)?;
    let mut page = proxy.list_tasks(&tq).await?;
    // A key restricted to some indexes sees only their tasks (Meilisearch drops the others
    // from the page; `total` still counts every matching task).
    if let Some(Value::Array(results)) = page.get_mut("results") {
        results.retain(|t| auth.task_visible(t["indexUid"].as_str(), t["type"].as_str().unwrap_or("")));
    }
    Ok(Json(page))
}

pub async fn delete(State(proxy): State<Proxy>, auth: AuthContext, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let tq = parse_task_query(&query_pairs(&q), q.as_deref().unwrap_or(""), false)?;
    if !tq.has_filter {
        return Err(ApiError::new(Code::MissingTaskFilters, format!("Query parameters to filter the tasks to delete are missing. Available query parameters are: {FILTERS}.")));
    }
    let store = proxy.store();
    let mut matched = store.find_tasks(&tq.filter).await.map_err(store_error)?;
    matched.retain(|t| auth.task_visible(t.index_uid.as_deref(), &t.kind));
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

pub async fn cancel(State(proxy): State<Proxy>, auth: AuthContext, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let tq = parse_task_query(&query_pairs(&q), q.as_deref().unwrap_or(""), false)?;
    if !tq.has_filter {
        return Err(ApiError::new(Code::MissingTaskFilters, format!("Query parameters to filter the tasks to cancel are missing. Available query parameters are: {FILTERS}.")));
    }
    let enqueued_at = time::OffsetDateTime::now_utc();
    let routing = proxy.routing_or_error()?;
    let mut matched = proxy.store().find_tasks(&tq.filter).await.map_err(store_error)?;
    matched.retain(|t| auth.task_visible(t.index_uid.as_deref(), &t.kind));
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
            path: NodePath::route("/tasks/cancel").query("uids", uids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")),
            content_type: None,
            body: None,
        })
        .collect();
    let outcomes = proxy.call_nodes(&routing, calls).await;
    let details = json!({"matchedTasks": matched.len(), "canceledTasks": null, "originalFilter": tq.original});
    let task = proxy.create_task("taskCancelation", None, details, node_tasks(&outcomes), enqueued_at).await?;
    Ok(json_response(StatusCode::OK, summarized(&task)))
}

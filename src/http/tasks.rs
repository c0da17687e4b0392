//! `/tasks`: Miroir's own task uids, aggregated from the node tasks behind each.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde_json::{json, Value};

use super::{json_response, query_pairs, RouteParams};
use crate::auth::AuthContext;
use crate::dataplane::tasks::{parse_task_query, store_error, summarized, task_view};
use crate::dataplane::Proxy;
use crate::error::{ApiError, ApiResult, Code};

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
    if tq.filters_on_progress() {
        proxy.refresh_unfinished().await?;
    }
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
    proxy.save_task(&task, &done).await?;
    // Meilisearch answers 200 (not 202) here.
    Ok(json_response(StatusCode::OK, summarized(&task)))
}

pub async fn cancel(State(proxy): State<Proxy>, auth: AuthContext, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let tq = parse_task_query(&query_pairs(&q), q.as_deref().unwrap_or(""), false)?;
    if !tq.has_filter {
        return Err(ApiError::new(Code::MissingTaskFilters, format!("Query parameters to filter the tasks to cancel are missing. Available query parameters are: {FILTERS}.")));
    }
    let enqueued_at = time::OffsetDateTime::now_utc();
    if tq.filters_on_progress() {
        proxy.refresh_unfinished().await?;
    }
    let mut matched = proxy.store().find_tasks(&tq.filter).await.map_err(store_error)?;
    matched.retain(|t| auth.task_visible(t.index_uid.as_deref(), &t.kind));
    let details = json!({"matchedTasks": matched.len(), "canceledTasks": null, "originalFilter": tq.original});
    let task = proxy.cancel_tasks(matched, details, enqueued_at).await?;
    // Meilisearch answers 200 (not 202) here.
    Ok(json_response(StatusCode::OK, summarized(&task)))
}

/// `POST /tasks/compact` (Meilisearch 1.50, behind the `taskQueueCompactionRoute` experimental
/// feature) compacts the node's own task database and then keeps the node's write transaction
/// open until the node is restarted ("you must restart your instance"): sent to every node it
/// would freeze the whole cluster. Miroir's task queue is its task store, which is not
/// compacted on request: not implemented, on purpose.
pub async fn compact() -> ApiError {
    ApiError::not_implemented("`POST /tasks/compact` (task queue compaction would stop every node until it is restarted)")
}

//! `/batches`: Miroir's batches. A Miroir task is processed as its own batch (batch uid = task
//! uid, once the task has started), answered with Meilisearch's batch object.

use axum::extract::{RawQuery, State};
use axum::Json;
use serde_json::Value;

use super::{query_pairs, RouteParams};
use crate::auth::AuthContext;
use crate::dataplane::tasks::{batch_view, parse_task_query};
use crate::dataplane::Proxy;
use crate::error::{ApiError, ApiResult, Code};

pub async fn get(State(proxy): State<Proxy>, auth: AuthContext, params: RouteParams) -> ApiResult<Json<Value>> {
    let uid = params.batch_uid()?;
    let task = proxy.get_batch(uid).await?;
    if !auth.task_visible(task.index_uid.as_deref(), &task.kind) {
        return Err(ApiError::new(Code::BatchNotFound, format!("Batch `{uid}` not found.")));
    }
    Ok(Json(batch_view(&task)))
}

pub async fn list(State(proxy): State<Proxy>, auth: AuthContext, RawQuery(q): RawQuery) -> ApiResult<Json<Value>> {
    // The same parameters as `GET /tasks` (Meilisearch reads them with the same type).
    let tq = parse_task_query(&query_pairs(&q), q.as_deref().unwrap_or(""), true)?;
    let mut page = proxy.list_batches(&tq).await?;
    if let Some(Value::Array(results)) = page.get_mut("results") {
        results.retain(|b| {
            let index = b.pointer("/stats/indexUids").and_then(Value::as_object).and_then(|m| m.keys().next().cloned());
            let kind = b.pointer("/stats/types").and_then(Value::as_object).and_then(|m| m.keys().next().cloned()).unwrap_or_default();
            auth.task_visible(index.as_deref(), &kind)
        });
    }
    Ok(Json(page))
}

//! Miroir tasks: one client-visible task (Miroir's own monotonic uid) per write, made of
//! the node tasks it fanned out to. Status is aggregated from the node tasks (processing
//! while any node is; failed with the node's error if any failed; succeeded when all
//! succeeded) and cached in the task store once terminal.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::Proxy;
use crate::error::{ApiError, ApiResult, Code};
use crate::store::{NewTask, NodeTask, StoreError, TaskFilter, TaskPaging, TaskRecord, TaskStatus};

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("rfc3339")
}

fn parse_time(v: Option<&Value>) -> Option<OffsetDateTime> {
    v.and_then(Value::as_str).and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
}

/// ISO-8601 duration as Meilisearch writes it (`PT0.005164311S`).
pub fn iso_duration(d: time::Duration) -> String {
    let d = if d.is_negative() { time::Duration::ZERO } else { d };
    format!("PT{}.{:09}S", d.whole_seconds(), d.subsec_nanoseconds())
}

pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Unavailable(m) => {
            ApiError::new(Code::MiroirStoreUnavailable, format!("The task store is unavailable: {m}. Retry later."))
        }
        other => ApiError::internal(other.to_string()),
    }
}

/// The summarized task answered with 202.
pub fn summarized(t: &TaskRecord) -> Value {
    json!({
        "taskUid": t.uid,
        "indexUid": t.index_uid,
        "status": t.status.as_str(),
        "type": t.kind,
        "enqueuedAt": rfc3339(t.enqueued_at),
    })
}

/// The full task object, in Meilisearch's field order.
pub fn task_view(t: &TaskRecord) -> Value {
    let duration = match (t.started_at, t.finished_at) {
        (Some(s), Some(f)) => Value::String(iso_duration(f - s)),
        _ => Value::Null,
    };
    json!({
        "uid": t.uid,
        "batchUid": if t.status == TaskStatus::Enqueued { Value::Null } else { json!(t.uid) },
        "indexUid": t.index_uid,
        "status": t.status.as_str(),
        "type": t.kind,
        "canceledBy": t.canceled_by,
        "details": t.details,
        "error": t.error,
        "duration": duration,
        "enqueuedAt": rfc3339(t.enqueued_at),
        "startedAt": t.started_at.map(rfc3339),
        "finishedAt": t.finished_at.map(rfc3339),
    })
}

/// Removes Miroir's own attributes from settings-shaped details.
pub fn strip_internal_settings(details: &mut Value) {
    if let Some(fa) = details.get_mut("filterableAttributes") {
        super::settings::hide_filterable_list(fa);
    }
}

/// Pure aggregation of node task objects into the Miroir task.
/// `group_of` maps node id → replica group, `rf` is the replication factor (for dividing
/// per-node document counts back to one copy).
pub fn aggregate(task: &TaskRecord, node_views: &[(String, Value)], group_of: &HashMap<String, u32>, rf: u32) -> TaskRecord {
    let mut out = task.clone();
    if node_views.len() < task.node_tasks.len() {
        // Some node could not be asked: keep what we know.
        return out;
    }
    let statuses: Vec<TaskStatus> = node_views
        .iter()
        .map(|(_, v)| v.get("status").and_then(Value::as_str).and_then(TaskStatus::parse).unwrap_or(TaskStatus::Enqueued))
        .collect();
    let all_terminal = statuses.iter().all(|s| s.is_terminal());
    let status = if statuses.iter().any(|s| *s == TaskStatus::Processing) {
        TaskStatus::Processing
    } else if all_terminal && statuses.iter().any(|s| *s == TaskStatus::Failed) {
        TaskStatus::Failed
    } else if all_terminal && statuses.iter().any(|s| *s == TaskStatus::Canceled) {
        TaskStatus::Canceled
    } else if all_terminal {
        TaskStatus::Succeeded
    } else if statuses.iter().any(|s| s.is_terminal()) {
        TaskStatus::Processing
    } else {
        TaskStatus::Enqueued
    };
    out.status = status;
    out.started_at = node_views.iter().filter_map(|(_, v)| parse_time(v.get("startedAt"))).min();
    if status.is_terminal() {
        out.finished_at = node_views.iter().filter_map(|(_, v)| parse_time(v.get("finishedAt"))).max();
        if out.finished_at.is_none() {
            out.finished_at = Some(OffsetDateTime::now_utc());
        }
        if out.started_at.is_none() {
            out.started_at = out.finished_at;
        }
    }
    if status == TaskStatus::Failed {
        out.error = node_views
            .iter()
            .find(|(_, v)| v.get("status").and_then(Value::as_str) == Some("failed"))
            .and_then(|(_, v)| v.get("error").cloned());
        if task.kind == "documentEdition" {
            // The nodes ran the wrapped function: positions as in the client's.
            if let Some(Value::String(m)) = out.error.as_mut().and_then(|e| e.get_mut("message")) {
                *m = super::edition::unwrap_error_message(m);
            }
        }
    }
    if status == TaskStatus::Canceled {
        out.canceled_by = node_views.iter().find_map(|(_, v)| v.get("canceledBy").and_then(Value::as_u64));
    }
    out.details = aggregate_details(task, node_views, group_of, rf, status);
    out
}

fn aggregate_details(
    task: &TaskRecord,
    node_views: &[(String, Value)],
    group_of: &HashMap<String, u32>,
    rf: u32,
    status: TaskStatus,
) -> Value {
    let mut details = task.details.clone();
    let Some(obj) = details.as_object_mut() else { return details };
    match task.kind.as_str() {
        "documentAdditionOrUpdate" => {
            if status.is_terminal() {
                let received = obj.get("receivedDocuments").cloned().unwrap_or(json!(0));
                let indexed = if status == TaskStatus::Succeeded { received } else { json!(0) };
                obj.insert("indexedDocuments".into(), indexed);
            }
        }
        "documentDeletion" | "indexDeletion" | "documentDeletionByFilter" => {
            if status.is_terminal() {
                // Every document is held by RF nodes of each group: count one group's copies.
                let mut per_group: HashMap<u32, u64> = HashMap::new();
                for (node, v) in node_views {
                    let n = v.pointer("/details/deletedDocuments").and_then(Value::as_u64).unwrap_or(0);
                    *per_group.entry(*group_of.get(node).unwrap_or(&0)).or_default() += n;
                }
                let deleted = per_group.values().max().copied().unwrap_or(0) / rf.max(1) as u64;
                obj.insert("deletedDocuments".into(), json!(deleted));
            }
        }
        "documentEdition" => {
            if status.is_terminal() {
                // Each node edits the copies it holds: count one copy, as for deletions.
                for key in ["editedDocuments", "deletedDocuments"] {
                    let n = if status == TaskStatus::Succeeded { one_copy(node_views, group_of, rf, key) } else { 0 };
                    obj.insert(key.into(), json!(n));
                }
            }
        }
        "indexCompaction" => {
            // Every node compacted its copy: the sizes of the whole cluster.
            if status == TaskStatus::Succeeded {
                for key in ["preCompactionSize", "postCompactionSize"] {
                    let sizes: Option<u64> = node_views
                        .iter()
                        .map(|(_, v)| v.pointer(&format!("/details/{key}")).and_then(Value::as_str).and_then(|s| byte_unit::Byte::parse_str(s, false).ok()).map(|b| b.as_u64()))
                        .sum();
                    if let Some(total) = sizes {
                        obj.insert(key.into(), json!(byte_unit::Byte::from_u64(total).get_appropriate_unit(byte_unit::UnitType::Both).to_string()));
                    }
                }
            }
        }
        "settingsUpdate" | "indexCreation" | "indexUpdate" => {
            if let Some(d) = node_views.first().and_then(|(_, v)| v.get("details")).cloned() {
                let mut d = d;
                strip_internal_settings(&mut d);
                // The nodes hold Miroir's facet limit: report what the client asked for.
                if let (Some(client), Some(out)) = (obj.get("faceting"), d.as_object_mut()) {
                    if out.contains_key("faceting") {
                        out.insert("faceting".into(), client.clone());
                    }
                }
                return d;
            }
        }
        _ => {}
    }
    details
}

/// A per-node count of documents over one copy of the data: summed per replica group (each
/// group holds every document once per replica), the largest group's, divided by RF.
fn one_copy(node_views: &[(String, Value)], group_of: &HashMap<String, u32>, rf: u32, key: &str) -> u64 {
    let mut per_group: HashMap<u32, u64> = HashMap::new();
    for (node, v) in node_views {
        let n = v.pointer(&format!("/details/{key}")).and_then(Value::as_u64).unwrap_or(0);
        *per_group.entry(*group_of.get(node).unwrap_or(&0)).or_default() += n;
    }
    per_group.values().max().copied().unwrap_or(0) / rf.max(1) as u64
}

impl Proxy {
    /// Stores a new task for a write the nodes accepted.
    /// `enqueued_at` is when the request arrived: before any node could start the work.
    pub(crate) async fn create_task(
        &self,
        kind: &str,
        index_uid: Option<&str>,
        details: Value,
        node_tasks: Vec<NodeTask>,
        enqueued_at: OffsetDateTime,
    ) -> ApiResult<TaskRecord> {
        self.inner
            .store
            .create_task(NewTask {
                index_uid: index_uid.map(str::to_string),
                kind: kind.to_string(),
                status: TaskStatus::Enqueued,
                enqueued_at,
                details,
                error: None,
                node_tasks,
            })
            .await
            .map_err(store_error)
    }

    /// Stores a task that failed before any node was touched (e.g. primary-key inference),
    /// exactly as Meilisearch would report it: 202 now, `failed` when read.
    pub(crate) async fn create_failed_task(
        &self,
        kind: &str,
        index_uid: Option<&str>,
        details: Value,
        error: &ApiError,
    ) -> ApiResult<TaskRecord> {
        let now = OffsetDateTime::now_utc();
        let rec = self
            .inner
            .store
            .create_task(NewTask {
                index_uid: index_uid.map(str::to_string),
                kind: kind.to_string(),
                status: TaskStatus::Enqueued,
                enqueued_at: now,
                details: details.clone(),
                error: None,
                node_tasks: vec![],
            })
            .await
            .map_err(store_error)?;
        let mut failed = rec.clone();
        failed.status = TaskStatus::Failed;
        failed.started_at = Some(now);
        failed.finished_at = Some(OffsetDateTime::now_utc());
        failed.error = Some(error.body());
        self.inner.store.update_task(&failed).await.map_err(store_error)?;
        Ok(rec)
    }

    /// Reads a task, refreshing its status from the nodes when it is not terminal yet.
    pub(crate) async fn refreshed_task(&self, task: TaskRecord) -> ApiResult<TaskRecord> {
        if task.status.is_terminal() || task.node_tasks.is_empty() {
            return Ok(task);
        }
        let Some(routing) = self.routing() else { return Ok(task) };
        // Node tasks of nodes that have left the topology (removed or drained after a
        // migration moved their shards away, data and queued writes included) cannot be
        // asked any more: the task is judged by the node tasks of the nodes still there, and
        // one with none left has ended with its nodes.
        let present: Vec<crate::store::NodeTask> =
            task.node_tasks.iter().filter(|nt| routing.topology.node(&nt.node_id).is_some()).cloned().collect();
        if present.is_empty() {
            let mut done = task.clone();
            done.status = TaskStatus::Succeeded;
            let now = OffsetDateTime::now_utc();
            done.started_at = done.started_at.or(Some(now));
            done.finished_at = Some(now);
            self.inner.store.update_task(&done).await.map_err(store_error)?;
            return Ok(done);
        }
        let judged = TaskRecord { node_tasks: present, ..task.clone() };
        let timeout = self.node_timeout();
        let futs = judged.node_tasks.iter().map(|nt| {
            let addr = routing.topology.node(&nt.node_id).map(|n| n.address.clone());
            let path = crate::node::NodePath::task(nt.task_uid);
            async move {
                let addr = addr?;
                let r = self.inner.nodes.send_json(&addr, Method::GET, &path, None, timeout).await.ok()?;
                r.is_success().then(|| (nt.node_id.clone(), r.body))
            }
        });
        let views: Vec<(String, Value)> = futures::future::join_all(futs).await.into_iter().flatten().collect();
        let group_of: HashMap<String, u32> =
            routing.topology.nodes.iter().map(|n| (n.id.clone(), n.replica_group)).collect();
        let mut next = aggregate(&judged, &views, &group_of, routing.topology.replication_factor);
        next.node_tasks = task.node_tasks.clone();
        if next != task {
            self.inner.store.update_task(&next).await.map_err(store_error)?;
        }
        Ok(next)
    }

    pub(crate) async fn get_task(&self, uid: u64) -> ApiResult<TaskRecord> {
        let t = self.inner.store.get_task(uid).await.map_err(store_error)?;
        let t = t.ok_or_else(|| ApiError::new(Code::TaskNotFound, format!("Task `{uid}` not found.")))?;
        self.refreshed_task(t).await
    }
}

/// Query parameters of `GET/DELETE /tasks` and `POST /tasks/cancel`.
#[derive(Debug, Default)]
pub struct TaskQuery {
    pub filter: TaskFilter,
    pub limit: usize,
    pub from: Option<u64>,
    pub reverse: bool,
    /// Whether any filter parameter was given (DELETE and cancel require one).
    pub has_filter: bool,
    /// The query string as received (for `originalFilter`).
    pub original: String,
}

/// The parameters of `GET /tasks`, in Meilisearch's order (its "expected one of" list).
const LIST_PARAMS: &[&str] = &[
    "limit", "from", "reverse", "batchUids", "uids", "canceledBy", "types", "statuses", "indexUids", "afterEnqueuedAt",
    "beforeEnqueuedAt", "afterStartedAt", "beforeStartedAt", "afterFinishedAt", "beforeFinishedAt",
];
/// The parameters of `DELETE /tasks` and `POST /tasks/cancel`.
const FILTER_PARAMS: &[&str] = &[
    "uids", "batchUids", "canceledBy", "types", "statuses", "indexUids", "afterEnqueuedAt", "beforeEnqueuedAt",
    "afterStartedAt", "beforeStartedAt", "afterFinishedAt", "beforeFinishedAt",
];

/// A comma list parameter (`*` anywhere: no filter): each element parsed by `item`, whose
/// error is located at `param[i]` when the list has several elements, as Meilisearch does.
fn star_list<T>(param: &str, v: &str, code: Code, item: impl Fn(&str) -> Result<T, String>) -> ApiResult<Option<Vec<T>>> {
    let items: Vec<&str> = v.split(',').filter(|s| !s.is_empty()).collect();
    let mut out = Vec::new();
    let mut star = false;
    for (i, s) in items.iter().enumerate() {
        if *s == "*" {
            star = true;
            continue;
        }
        match item(s) {
            Ok(t) => out.push(t),
            Err(msg) => {
                let at = if items.len() > 1 { format!("{param}[{i}]") } else { param.to_string() };
                return Err(ApiError::new(code, format!("Invalid value in parameter `{at}`: {msg}")));
            }
        }
    }
    Ok(if star { None } else { Some(out) })
}

fn positive_integer(s: &str) -> Result<u32, String> {
    s.parse::<u32>().map_err(|_| format!("could not parse `{s}` as a positive integer"))
}

pub fn parse_task_query(params: &[(String, String)], raw_query: &str, allow_paging: bool) -> ApiResult<TaskQuery> {
    let mut q = TaskQuery { limit: 20, original: format!("?{raw_query}"), ..Default::default() };
    let accepted = if allow_paging { LIST_PARAMS } else { FILTER_PARAMS };
    // As Meilisearch reads a query string: keys in the order they first appear, the last value
    // of a repeated key.
    let mut ordered: Vec<(&str, &str)> = Vec::new();
    for (k, v) in params {
        match ordered.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v,
            None => ordered.push((k, v)),
        }
    }
    let mut unimplemented = None;
    for (k, v) in ordered {
        if !accepted.contains(&k) {
            return Err(crate::model::deserr::unknown_param(k, accepted));
        }
        let int = |code: Code| move |v: &str| positive_integer(v).map_err(|m| ApiError::new(code, format!("Invalid value in parameter `{k}`: {m}")));
        match k {
            "limit" => q.limit = int(Code::InvalidTaskLimit)(v)? as usize,
            "from" => q.from = Some(int(Code::InvalidTaskFrom)(v)? as u64),
            "reverse" => {
                q.reverse = v.parse().map_err(|_| {
                    ApiError::new(Code::InvalidTaskReverse, format!("Invalid value in parameter `reverse`: could not parse `{v}` as a boolean, expected either `true` or `false`"))
                })?
            }
            "uids" => {
                if let Some(uids) = star_list(k, v, Code::InvalidTaskUids, positive_integer)? {
                    q.filter.uids = uids.into_iter().map(u64::from).collect();
                }
            }
            "batchUids" | "canceledBy" => {
                let code = if k == "batchUids" { Code::InvalidBatchUids } else { Code::InvalidTaskCanceledBy };
                if star_list(k, v, code, positive_integer)?.is_some_and(|l| !l.is_empty()) {
                    unimplemented.get_or_insert(k);
                }
            }
            "statuses" => {
                let parsed = star_list(k, v, Code::InvalidTaskStatuses, |s| {
                    TaskStatus::parse(&s.to_ascii_lowercase()).ok_or_else(|| {
                        format!("`{s}` is not a valid task status. Available statuses are `enqueued`, `processing`, `succeeded`, `failed`, `canceled`.")
                    })
                })?;
                if let Some(st) = parsed {
                    q.filter.statuses = st;
                }
            }
            "types" => {
                let parsed = star_list(k, v, Code::InvalidTaskTypes, |s| {
                    TASK_TYPES.iter().find(|t| t.eq_ignore_ascii_case(s)).map(|t| t.to_string()).ok_or_else(|| {
                        format!("`{s}` is not a valid task type. Available types are {}.", TASK_TYPES.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", "))
                    })
                })?;
                if let Some(t) = parsed {
                    q.filter.types = t;
                }
            }
            "indexUids" => {
                let parsed = star_list(k, v, Code::InvalidIndexUid, |s| {
                    crate::model::IndexUid::parse(s).map(|u| u.to_string()).map_err(|e| e.body()["message"].as_str().unwrap_or_default().to_string())
                })?;
                if let Some(u) = parsed {
                    q.filter.index_uids = u;
                }
            }
            _ => {
                // the six date filters
                let code = match k {
                    "beforeEnqueuedAt" => Code::InvalidTaskBeforeEnqueuedAt,
                    "afterEnqueuedAt" => Code::InvalidTaskAfterEnqueuedAt,
                    "beforeStartedAt" => Code::InvalidTaskBeforeStartedAt,
                    "afterStartedAt" => Code::InvalidTaskAfterStartedAt,
                    "beforeFinishedAt" => Code::InvalidTaskBeforeFinishedAt,
                    _ => Code::InvalidTaskAfterFinishedAt,
                };
                if v != "*" {
                    let t = parse_date_param(v, k.starts_with("after")).ok_or_else(|| {
                        ApiError::new(code, format!("Invalid value in parameter `{k}`: `{v}` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format."))
                    })?;
                    match k {
                        "beforeEnqueuedAt" => q.filter.before_enqueued_at = Some(t),
                        "afterEnqueuedAt" => q.filter.after_enqueued_at = Some(t),
                        _ => {
                            unimplemented.get_or_insert(k);
                        }
                    }
                }
            }
        }
        if !matches!(k, "limit" | "from" | "reverse") {
            q.has_filter = true;
        }
    }
    if let Some(k) = unimplemented {
        return Err(ApiError::not_implemented(&format!("The task filter `{k}`")));
    }
    Ok(q)
}

/// RFC 3339, or `YYYY-MM-DD` (midnight UTC; the next midnight for an `after*` bound, as
/// Meilisearch reads a day).
fn parse_date_param(v: &str, after: bool) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(v, &Rfc3339) {
        return Some(t);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(v, &fmt).ok()?;
    let day = if after { day.next_day()? } else { day };
    Some(day.midnight().assume_utc())
}

pub const TASK_TYPES: &[&str] = &[
    "documentAdditionOrUpdate",
    "documentEdition",
    "documentDeletion",
    "settingsUpdate",
    "indexCreation",
    "indexDeletion",
    "indexUpdate",
    "indexSwap",
    "taskCancelation",
    "taskDeletion",
    "dumpCreation",
    "snapshotCreation",
    "export",
    "upgradeDatabase",
    "indexCompaction",
    "networkTopologyChange",
    "dsrUpdate",
    "dsrClear",
];

/// `GET /tasks` body.
pub fn task_list_view(results: Vec<Value>, total: u64, limit: usize, from: Option<u64>, next: Option<u64>) -> Value {
    let from = from.or_else(|| results.first().and_then(|t| t.get("uid")).and_then(Value::as_u64));
    let mut m = Map::new();
    m.insert("results".into(), Value::Array(results));
    m.insert("total".into(), json!(total));
    m.insert("limit".into(), json!(limit));
    m.insert("from".into(), json!(from));
    m.insert("next".into(), json!(next));
    Value::Object(m)
}

impl Proxy {
    pub(crate) async fn list_tasks(&self, q: &TaskQuery) -> ApiResult<Value> {
        let page = self
            .inner
            .store
            .list_tasks(&q.filter, &TaskPaging { limit: q.limit, from: q.from, reverse: q.reverse })
            .await
            .map_err(store_error)?;
        let mut views = Vec::with_capacity(page.results.len());
        for t in page.results {
            views.push(task_view(&self.refreshed_task(t).await?));
        }
        let from = if views.is_empty() { None } else { q.from };
        Ok(task_list_view(views, page.total, q.limit, from, page.next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: &str, details: Value, nodes: &[&str]) -> TaskRecord {
        TaskRecord {
            uid: 7,
            index_uid: Some("movies".into()),
            kind: kind.into(),
            status: TaskStatus::Enqueued,
            enqueued_at: OffsetDateTime::now_utc(),
            started_at: None,
            finished_at: None,
            details,
            error: None,
            canceled_by: None,
            node_tasks: nodes.iter().enumerate().map(|(i, n)| NodeTask { node_id: n.to_string(), task_uid: i as u64 }).collect(),
        }
    }

    fn node_task(status: &str, details: Value) -> Value {
        json!({"status": status, "details": details, "startedAt": "2026-11-26T00:59:23.19595018Z",
               "finishedAt": if status == "processing" { Value::Null } else { json!("2026-11-26T00:59:23.201114491Z") },
               "error": if status == "failed" { json!({"message": "boom", "code": "invalid_document_id", "type": "invalid_request", "link": "l"}) } else { Value::Null }})
    }

    #[test]
    fn status_aggregation() {
        let groups: HashMap<String, u32> = [("a".into(), 0), ("b".into(), 0)].into_iter().collect();
        let t = rec("documentAdditionOrUpdate", json!({"receivedDocuments": 3, "indexedDocuments": null}), &["a", "b"]);
        let p = aggregate(&t, &[("a".into(), node_task("succeeded", json!({}))), ("b".into(), node_task("processing", json!({})))], &groups, 1);
        assert_eq!(p.status, TaskStatus::Processing);
        let s = aggregate(&t, &[("a".into(), node_task("succeeded", json!({}))), ("b".into(), node_task("succeeded", json!({})))], &groups, 1);
        assert_eq!(s.status, TaskStatus::Succeeded);
        assert_eq!(s.details, json!({"receivedDocuments": 3, "indexedDocuments": 3}));
        assert!(s.finished_at.is_some());
        let f = aggregate(&t, &[("a".into(), node_task("failed", json!({}))), ("b".into(), node_task("succeeded", json!({})))], &groups, 1);
        assert_eq!(f.status, TaskStatus::Failed);
        assert_eq!(f.error.unwrap()["code"], "invalid_document_id");
        // a node that could not be asked: nothing changes
        let u = aggregate(&t, &[("a".into(), node_task("succeeded", json!({})))], &groups, 1);
        assert_eq!(u, t);
    }

    #[test]
    fn deletion_counts_one_copy() {
        let groups: HashMap<String, u32> = [("a".into(), 0), ("b".into(), 0), ("c".into(), 1), ("d".into(), 1)].into_iter().collect();
        let t = rec("documentDeletion", json!({"providedIds": 2, "deletedDocuments": null, "originalFilter": null}), &["a", "b", "c", "d"]);
        let views: Vec<(String, Value)> = ["a", "b", "c", "d"].iter().map(|n| (n.to_string(), node_task("succeeded", json!({"deletedDocuments": 2})))).collect();
        // RF=2 in each group: each group's nodes report 4 deletions for 2 documents.
        let s = aggregate(&t, &views, &groups, 2);
        assert_eq!(s.details["deletedDocuments"], 2);
    }

    #[test]
    fn edition_counts_one_copy_and_compaction_sums_sizes() {
        let groups: HashMap<String, u32> = [("a".into(), 0), ("b".into(), 0), ("c".into(), 1), ("d".into(), 1)].into_iter().collect();
        let t = rec("documentEdition", json!({"editedDocuments": null, "deletedDocuments": null, "originalFilter": null, "context": null, "function": "doc.a = 1"}), &["a", "b", "c", "d"]);
        let views: Vec<(String, Value)> = [("a", 3), ("b", 1), ("c", 2), ("d", 2)]
            .iter()
            .map(|(n, k)| (n.to_string(), node_task("succeeded", json!({"editedDocuments": k, "deletedDocuments": k}))))
            .collect();
        let s = aggregate(&t, &views, &groups, 2);
        // each group holds the 2 documents twice (RF=2)
        assert_eq!(s.details, json!({"editedDocuments": 2, "deletedDocuments": 2, "originalFilter": null, "context": null, "function": "doc.a = 1"}));
        let f = aggregate(&t, &[("a".into(), node_task("failed", json!({}))), ("b".into(), node_task("succeeded", json!({}))), ("c".into(), node_task("succeeded", json!({}))), ("d".into(), node_task("succeeded", json!({})))], &groups, 2);
        assert_eq!(f.details["editedDocuments"], json!(0));
        let t = rec("indexCompaction", json!({}), &["a", "b"]);
        let views: Vec<(String, Value)> = ["a", "b"]
            .iter()
            .map(|n| (n.to_string(), node_task("succeeded", json!({"preCompactionSize": "1 KiB", "postCompactionSize": "512 B"}))))
            .collect();
        let s = aggregate(&t, &views, &groups, 1);
        assert_eq!(s.details, json!({"preCompactionSize": "2 KiB", "postCompactionSize": "1 KiB"}));
    }

    #[test]
    fn settings_details_hide_internal_attribute() {
        let groups: HashMap<String, u32> = [("a".into(), 0)].into_iter().collect();
        let t = rec("settingsUpdate", json!({}), &["a"]);
        let s = aggregate(&t, &[("a".into(), node_task("succeeded", json!({"filterableAttributes": ["genre", "_miroir_shard"]})))], &groups, 1);
        assert_eq!(s.details, json!({"filterableAttributes": ["genre"]}));
    }

    #[test]
    fn durations_like_meilisearch() {
        assert_eq!(iso_duration(time::Duration::nanoseconds(5_164_311)), "PT0.005164311S");
    }

    #[test]
    fn bad_status_filter_message() {
        let e = parse_task_query(&[("statuses".into(), "nope".into())], "statuses=nope", true).unwrap_err();
        assert_eq!(e.body()["message"], "Invalid value in parameter `statuses`: `nope` is not a valid task status. Available statuses are `enqueued`, `processing`, `succeeded`, `failed`, `canceled`.");
    }
}

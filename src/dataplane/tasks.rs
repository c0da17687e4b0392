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
    let mut v = json!({
        "taskUid": t.uid,
        "indexUid": t.index_uid,
        "status": t.status.as_str(),
        "type": t.kind,
        "enqueuedAt": rfc3339(t.enqueued_at),
    });
    if let (Some(m), Some(o)) = (&t.custom_metadata, v.as_object_mut()) {
        o.insert("customMetadata".into(), json!(m));
    }
    v
}

tokio::task_local! {
    /// `customMetadata` of the write request being served: the HTTP layer sets it around the
    /// write, and every Miroir task created inside records it (the nodes never see it).
    pub static CUSTOM_METADATA: Option<String>;
}

/// Runs `fut` (a write) so that the tasks it creates carry `meta`.
pub async fn with_custom_metadata<F: std::future::Future>(meta: Option<String>, fut: F) -> F::Output {
    CUSTOM_METADATA.scope(meta, fut).await
}

fn current_custom_metadata() -> Option<String> {
    CUSTOM_METADATA.try_with(Clone::clone).ok().flatten()
}

/// The full task object, in Meilisearch's field order.
pub fn task_view(t: &TaskRecord) -> Value {
    let duration = match (t.started_at, t.finished_at) {
        (Some(s), Some(f)) => Value::String(iso_duration(f - s)),
        _ => Value::Null,
    };
    let mut v = json!({
        "uid": t.uid,
        "batchUid": batch_uid(t),
        "indexUid": t.index_uid,
        "status": t.status.as_str(),
        "type": t.kind,
        // Set on a task a cancelation targets, shown once the task is canceled.
        "canceledBy": if t.status == TaskStatus::Canceled { json!(t.canceled_by) } else { Value::Null },
        "details": t.details,
        "error": t.error,
        "duration": duration,
        "enqueuedAt": rfc3339(t.enqueued_at),
        "startedAt": t.started_at.map(rfc3339),
        "finishedAt": t.finished_at.map(rfc3339),
    });
    // Meilisearch leaves `details` out of tasks that have none (`snapshotCreation`).
    if t.details.is_null() {
        if let Some(o) = v.as_object_mut() {
            o.shift_remove("details");
        }
    }
    if let (Some(m), Some(o)) = (&t.custom_metadata, v.as_object_mut()) {
        o.insert("customMetadata".into(), json!(m));
    }
    v
}

/// A Miroir task is processed as its own batch: batch uid = task uid, once it has started.
pub fn batch_uid(t: &TaskRecord) -> Option<u64> {
    (t.status != TaskStatus::Enqueued).then_some(t.uid)
}

/// Task kinds Meilisearch never batches with another task (its autobatcher's
/// `TaskCannotBeBatched` stop reason): index creation, update and swap, document edition,
/// compaction, and the tasks of no index.
const UNBATCHABLE_KINDS: &[&str] = &[
    "indexCreation", "indexUpdate", "indexSwap", "documentEdition", "indexCompaction", "taskCancelation", "taskDeletion",
    "dumpCreation", "snapshotCreation", "export", "upgradeDatabase", "networkTopologyChange",
];

/// Why Meilisearch would have closed a batch holding only this task (`batchStrategy`).
fn batch_strategy(t: &TaskRecord) -> String {
    match &t.index_uid {
        _ if UNBATCHABLE_KINDS.contains(&t.kind.as_str()) || t.index_uid.is_none() => format!(
            "created batch containing only task with id {} of type `{}` that cannot be batched with any other task.",
            t.uid, t.kind
        ),
        _ if t.kind == "indexDeletion" => format!("stopped after task with id {} because it deletes the index", t.uid),
        Some(i) => format!("batched all enqueued tasks for index `{i}`"),
        None => unreachable!("tasks of no index are handled above"),
    }
}

/// The batch object of a started task, in Meilisearch's `BatchView` field order.
pub fn batch_view(t: &TaskRecord) -> Value {
    let started = t.started_at.unwrap_or(t.enqueued_at);
    let mut status = Map::new();
    status.insert(t.status.as_str().into(), json!(1));
    let mut types = Map::new();
    types.insert(t.kind.clone(), json!(1));
    let mut index_uids = Map::new();
    if let Some(i) = &t.index_uid {
        index_uids.insert(i.clone(), json!(1));
    }
    let strategy = batch_strategy(t);
    // A batch's details merge its tasks' details, fields without a value left out (an index
    // created without a primary key has `{}`).
    let mut details = t.details.as_object().cloned().unwrap_or_default();
    details.retain(|_, v| !v.is_null());
    json!({
        "uid": t.uid,
        "progress": null,
        "details": details,
        "stats": {
            "totalNbTasks": 1,
            "status": status,
            "types": types,
            "indexUids": index_uids,
        },
        "duration": t.finished_at.map(|f| iso_duration(f - started)),
        "startedAt": rfc3339(started),
        "finishedAt": t.finished_at.map(rfc3339),
        "batchStrategy": strategy,
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
    // `canceled_by` is in Miroir's uid space: the node's cancelation uid means nothing to the
    // client. It is set by the Miroir cancelation that targets the task (see `cancel_tasks`).
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
                if status == TaskStatus::Succeeded {
                    for key in ["editedDocuments", "deletedDocuments"] {
                        obj.insert(key.into(), json!(one_copy(node_views, group_of, rf, key)));
                    }
                } else {
                    // As Meilisearch's `Details::to_failed`: no document edited, the deletion
                    // count left as it was (`null`).
                    obj.insert("editedDocuments".into(), json!(0));
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
        "dumpCreation" => {
            if status.is_terminal() {
                return super::backup::finished_details(task, status);
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
        self.new_task(kind, index_uid, details, node_tasks, enqueued_at, vec![]).await
    }

    async fn new_task(
        &self,
        kind: &str,
        index_uid: Option<&str>,
        details: Value,
        node_tasks: Vec<NodeTask>,
        enqueued_at: OffsetDateTime,
        targets: Vec<u64>,
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
                custom_metadata: current_custom_metadata(),
                targets,
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
        let rec = self.new_task(kind, index_uid, details, vec![], now, vec![]).await?;
        let mut failed = rec.clone();
        failed.status = TaskStatus::Failed;
        failed.started_at = Some(now);
        failed.finished_at = Some(OffsetDateTime::now_utc());
        failed.error = Some(error.body());
        self.save_task(&rec, &failed).await?;
        Ok(rec)
    }

    /// The one place where a task's new state is stored, so the one place where a Miroir task
    /// becomes terminal (`before` is the state it was read in). Anything that must happen
    /// once a task has finished (e.g. webhooks) belongs here.
    pub(crate) async fn save_task(&self, before: &TaskRecord, after: &TaskRecord) -> ApiResult<()> {
        if before == after {
            return Ok(());
        }
        self.inner.store.update_task(after).await.map_err(store_error)?;
        if after.status.is_terminal() && !before.status.is_terminal() {
            tracing::debug!(uid = after.uid, kind = %after.kind, status = after.status.as_str(), "miroir task finished");
            // Document writes are left out: a cached context never depends on an unfinished
            // one (see `context_cache`), and bumping on each would empty the cache constantly.
            if super::context_cache::changes_context(&after.kind) && after.kind != "documentAdditionOrUpdate" {
                let index = if after.kind == "indexSwap" { None } else { after.index_uid.as_deref() };
                self.index_context_changed(index).await;
            }
        }
        Ok(())
    }

    /// Reads a task, refreshing its status from the nodes when it is not terminal yet.
    pub(crate) async fn refreshed_task(&self, task: TaskRecord) -> ApiResult<TaskRecord> {
        if task.status.is_terminal() {
            return Ok(task);
        }
        if task.kind == "taskCancelation" {
            return self.refreshed_cancelation(task).await;
        }
        let next = self.node_progress(&task).await?;
        self.save_task(&task, &next).await?;
        Ok(next)
    }

    /// The task as its node tasks say it is now (nothing stored).
    async fn node_progress(&self, task: &TaskRecord) -> ApiResult<TaskRecord> {
        if task.status.is_terminal() || task.node_tasks.is_empty() {
            return Ok(task.clone());
        }
        let Some(routing) = self.routing() else { return Ok(task.clone()) };
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
        Ok(next)
    }

    /// A `taskCancelation` is done once the node cancelations behind it are, and every Miroir
    /// task it targets has finished (canceled, or finished before the cancelation reached it).
    /// It then succeeds with `canceledTasks` = the targets it canceled.
    async fn refreshed_cancelation(&self, task: TaskRecord) -> ApiResult<TaskRecord> {
        let nodes = self.node_progress(&task).await?;
        let mut next = nodes.clone();
        if !task.node_tasks.is_empty() && !nodes.status.is_terminal() {
            self.save_task(&task, &next).await?;
            return Ok(next);
        }
        let mut canceled = 0u64;
        let mut running = false;
        for uid in &task.targets {
            let Some(t) = self.inner.store.get_task(*uid).await.map_err(store_error)? else { continue };
            let mut t = if t.kind == "taskCancelation" { t } else { self.refresh_target(t).await? };
            if !t.status.is_terminal() {
                running = true;
                continue;
            }
            if t.status == TaskStatus::Canceled {
                // A target canceled before this cancelation could mark it is still its doing.
                if t.canceled_by.is_none() {
                    let before = t.clone();
                    t.canceled_by = Some(task.uid);
                    self.save_task(&before, &t).await?;
                }
                if t.canceled_by == Some(task.uid) {
                    canceled += 1;
                }
            }
        }
        let now = OffsetDateTime::now_utc();
        next.started_at = next.started_at.or(Some(now));
        if running {
            next.status = TaskStatus::Processing;
            next.finished_at = None;
        } else {
            next.status = TaskStatus::Succeeded;
            next.error = None;
            next.finished_at = Some(now);
            if let Some(d) = next.details.as_object_mut() {
                d.insert("canceledTasks".into(), json!(canceled));
            }
        }
        self.save_task(&task, &next).await?;
        Ok(next)
    }

    /// `refreshed_task` for a task that is not a cancelation (no recursion).
    async fn refresh_target(&self, task: TaskRecord) -> ApiResult<TaskRecord> {
        if task.status.is_terminal() {
            return Ok(task);
        }
        let next = self.node_progress(&task).await?;
        self.save_task(&task, &next).await?;
        Ok(next)
    }

    /// Cancels the unfinished Miroir tasks among `matched`: their node tasks are canceled on
    /// every node, and one `taskCancelation` Miroir task records it (marking its targets so
    /// they report `canceledBy` once canceled).
    pub(crate) async fn cancel_tasks(&self, matched: Vec<TaskRecord>, details: Value, enqueued_at: OffsetDateTime) -> ApiResult<TaskRecord> {
        let routing = self.routing_or_error()?;
        let mut per_node: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
        let mut targets = Vec::new();
        for t in matched {
            if matches!(t.kind.as_str(), "taskCancelation" | "taskDeletion") {
                continue;
            }
            let t = self.refreshed_task(t).await?;
            if t.status.is_terminal() || t.node_tasks.is_empty() {
                continue;
            }
            for nt in &t.node_tasks {
                per_node.entry(nt.node_id.clone()).or_default().push(nt.task_uid);
            }
            targets.push(t.uid);
        }
        let calls: Vec<super::fanout::NodeCall> = per_node
            .into_iter()
            .map(|(node, uids)| super::fanout::NodeCall {
                node_id: node,
                method: Method::POST,
                path: crate::node::NodePath::route("/tasks/cancel")
                    .query("uids", uids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")),
                content_type: None,
                body: None,
            })
            .collect();
        let outcomes = if calls.is_empty() { vec![] } else { self.call_nodes(&routing, calls).await };
        let node_tasks = super::write::node_tasks(&outcomes);
        let task = self.new_task("taskCancelation", None, details, node_tasks, enqueued_at, targets.clone()).await?;
        for uid in targets {
            if let Some(t) = self.inner.store.get_task(uid).await.map_err(store_error)? {
                if t.canceled_by.is_none() && (!t.status.is_terminal() || t.status == TaskStatus::Canceled) {
                    let mut marked = t.clone();
                    marked.canceled_by = Some(task.uid);
                    self.save_task(&t, &marked).await?;
                }
            }
        }
        Ok(task)
    }

    pub(crate) async fn get_task(&self, uid: u64) -> ApiResult<TaskRecord> {
        let t = self.inner.store.get_task(uid).await.map_err(store_error)?;
        let t = t.ok_or_else(|| ApiError::new(Code::TaskNotFound, format!("Task `{uid}` not found.")))?;
        self.refreshed_task(t).await
    }

    /// Refreshes every unfinished task first, so that filters on progress (statuses, dates,
    /// batches, cancelations) judge what the nodes say now, not what was last read.
    pub(crate) async fn refresh_unfinished(&self) -> ApiResult<()> {
        let filter = TaskFilter { statuses: vec![TaskStatus::Enqueued, TaskStatus::Processing], ..Default::default() };
        let pending = self.inner.store.find_tasks(&filter).await.map_err(store_error)?;
        for t in pending {
            self.refreshed_task(t).await?;
        }
        Ok(())
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
            "batchUids" => {
                if let Some(uids) = star_list(k, v, Code::InvalidBatchUids, positive_integer)? {
                    q.filter.batch_uids = uids.into_iter().map(u64::from).collect();
                }
            }
            "canceledBy" => {
                if let Some(uids) = star_list(k, v, Code::InvalidTaskCanceledBy, positive_integer)? {
                    q.filter.canceled_by = uids.into_iter().map(u64::from).collect();
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
                    let slot = match k {
                        "beforeEnqueuedAt" => &mut q.filter.before_enqueued_at,
                        "afterEnqueuedAt" => &mut q.filter.after_enqueued_at,
                        "beforeStartedAt" => &mut q.filter.before_started_at,
                        "afterStartedAt" => &mut q.filter.after_started_at,
                        "beforeFinishedAt" => &mut q.filter.before_finished_at,
                        _ => &mut q.filter.after_finished_at,
                    };
                    *slot = Some(t);
                }
            }
        }
        if !matches!(k, "limit" | "from" | "reverse") {
            q.has_filter = true;
        }
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

/// `GET /tasks` (and `GET /batches`) body: `from` is the first result's uid, as Meilisearch
/// answers it (not the `from` asked for).
pub fn task_list_view(results: Vec<Value>, total: u64, limit: usize, next: Option<u64>) -> Value {
    let from = results.first().and_then(|t| t.get("uid")).and_then(Value::as_u64);
    let mut m = Map::new();
    m.insert("results".into(), Value::Array(results));
    m.insert("total".into(), json!(total));
    m.insert("limit".into(), json!(limit));
    m.insert("from".into(), json!(from));
    m.insert("next".into(), json!(next));
    Value::Object(m)
}

impl TaskQuery {
    /// Whether the filter looks at how far tasks have got (which a refresh may change).
    pub fn filters_on_progress(&self) -> bool {
        let f = &self.filter;
        !f.statuses.is_empty() || f.has_unindexed()
    }
}

impl Proxy {
    /// The page of tasks `q` asks for, each refreshed.
    pub(crate) async fn list_tasks(&self, q: &TaskQuery) -> ApiResult<Value> {
        let page = self.page_tasks(&q.filter, q).await?;
        let mut views = Vec::with_capacity(page.results.len());
        for t in page.results {
            views.push(task_view(&self.refreshed_task(t).await?));
        }
        Ok(task_list_view(views, page.total, q.limit, page.next))
    }

    async fn page_tasks(&self, filter: &TaskFilter, q: &TaskQuery) -> ApiResult<crate::store::TaskPage> {
        if q.filters_on_progress() {
            self.refresh_unfinished().await?;
        }
        let paging = TaskPaging { limit: q.limit, from: q.from, reverse: q.reverse };
        self.inner.store.list_tasks(filter, &paging).await.map_err(store_error)
    }

    /// `GET /batches`: the batches of the started tasks matching `q` (one task, one batch).
    pub(crate) async fn list_batches(&self, q: &TaskQuery) -> ApiResult<Value> {
        let mut filter = q.filter.clone();
        // A batch exists once its task has started: an `enqueued` status matches no batch.
        let started = [TaskStatus::Processing, TaskStatus::Succeeded, TaskStatus::Failed, TaskStatus::Canceled];
        filter.statuses = if filter.statuses.is_empty() {
            started.to_vec()
        } else {
            filter.statuses.iter().copied().filter(|s| *s != TaskStatus::Enqueued).collect()
        };
        if filter.statuses.is_empty() {
            return Ok(task_list_view(vec![], 0, q.limit, None));
        }
        // Which batches exist depends on progress: judge it as the nodes say it is now.
        if !q.filters_on_progress() {
            self.refresh_unfinished().await?;
        }
        let page = self.page_tasks(&filter, q).await?;
        let mut views = Vec::with_capacity(page.results.len());
        for t in page.results {
            views.push(batch_view(&self.refreshed_task(t).await?));
        }
        Ok(task_list_view(views, page.total, q.limit, page.next))
    }

    /// `GET /batches/{uid}`.
    pub(crate) async fn get_batch(&self, uid: u64) -> ApiResult<TaskRecord> {
        let not_found = || ApiError::new(Code::BatchNotFound, format!("Batch `{uid}` not found."));
        let t = self.inner.store.get_task(uid).await.map_err(store_error)?.ok_or_else(not_found)?;
        let t = self.refreshed_task(t).await?;
        if t.status == TaskStatus::Enqueued {
            return Err(not_found());
        }
        Ok(t)
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
            custom_metadata: None,
            targets: vec![],
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
        assert_eq!(f.details["deletedDocuments"], Value::Null);
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

    fn parse(q: &str, paging: bool) -> ApiResult<TaskQuery> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes()).into_owned().collect();
        parse_task_query(&pairs, q, paging)
    }

    fn message(e: ApiError) -> (String, String) {
        let b = e.body();
        (b["code"].as_str().unwrap().to_string(), b["message"].as_str().unwrap().to_string())
    }

    #[test]
    fn every_filter_of_meilisearch_parses() {
        let q = parse("batchUids=1,2&canceledBy=7&beforeStartedAt=2026-01-02&afterStartedAt=2026-01-01T10:00:00Z&beforeFinishedAt=2026-01-03T00:00:00%2B01:00&afterFinishedAt=2026-01-01&reverse=true&from=3&limit=4", true).unwrap();
        assert_eq!(q.filter.batch_uids, vec![1, 2]);
        assert_eq!(q.filter.canceled_by, vec![7]);
        assert_eq!(q.filter.before_started_at, Some(time::macros::datetime!(2026-01-02 0:00 UTC)));
        assert_eq!(q.filter.after_started_at, Some(time::macros::datetime!(2026-01-01 10:00 UTC)));
        assert_eq!(q.filter.before_finished_at, Some(time::macros::datetime!(2026-01-02 23:00 UTC)));
        // A day as an `after` bound means after that whole day.
        assert_eq!(q.filter.after_finished_at, Some(time::macros::datetime!(2026-01-02 0:00 UTC)));
        assert_eq!((q.reverse, q.from, q.limit), (true, Some(3), 4));
        assert!(q.filter.has_unindexed());
        // `*` is "no filter" for every filter, dates included, and still counts as a filter
        // for DELETE / cancel.
        for k in FILTER_PARAMS {
            let q = parse(&format!("{k}=*"), false).unwrap();
            assert_eq!(q.filter, TaskFilter::default(), "{k}");
            assert!(q.has_filter, "{k}");
        }
        let q = parse("uids=1,*", false).unwrap();
        assert_eq!(q.filter, TaskFilter::default());
        // every task type of 1.50, any case
        for t in ["dsrUpdate", "dsrClear", "export", "upgradeDatabase", "indexCompaction", "networkTopologyChange", "DOCUMENTEDITION"] {
            assert_eq!(parse(&format!("types={t}"), true).unwrap().filter.types.len(), 1, "{t}");
        }
        assert!(!parse("limit=3&from=2&reverse=false", false).is_ok_and(|q| q.has_filter));
    }

    #[test]
    fn filter_errors_like_meilisearch() {
        let cases = [
            ("batchUids=abc", "invalid_batch_uids", "Invalid value in parameter `batchUids`: could not parse `abc` as a positive integer"),
            ("batchUids=1,x", "invalid_batch_uids", "Invalid value in parameter `batchUids[1]`: could not parse `x` as a positive integer"),
            ("canceledBy=-1", "invalid_task_canceled_by", "Invalid value in parameter `canceledBy`: could not parse `-1` as a positive integer"),
            ("beforeStartedAt=yesterday", "invalid_task_before_started_at", "Invalid value in parameter `beforeStartedAt`: `yesterday` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format."),
            ("afterFinishedAt=2026-13-01", "invalid_task_after_finished_at", "Invalid value in parameter `afterFinishedAt`: `2026-13-01` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format."),
            ("types=nope", "invalid_task_types", "Invalid value in parameter `types`: `nope` is not a valid task type. Available types are `documentAdditionOrUpdate`, `documentEdition`, `documentDeletion`, `settingsUpdate`, `indexCreation`, `indexDeletion`, `indexUpdate`, `indexSwap`, `taskCancelation`, `taskDeletion`, `dumpCreation`, `snapshotCreation`, `export`, `upgradeDatabase`, `indexCompaction`, `networkTopologyChange`, `dsrUpdate`, `dsrClear`."),
        ];
        for (q, code, msg) in cases {
            assert_eq!(message(parse(q, true).unwrap_err()), (code.to_string(), msg.to_string()), "{q}");
        }
        let (code, msg) = message(parse("limit=2", false).unwrap_err());
        assert_eq!(code, "bad_request");
        assert!(msg.starts_with("Unknown parameter `limit`: expected one of `uids`, `batchUids`, `canceledBy`"), "{msg}");
    }

    #[test]
    fn views_carry_custom_metadata_last_and_canceled_by_once_canceled() {
        let mut t = rec("documentAdditionOrUpdate", json!({"receivedDocuments": 1, "indexedDocuments": null}), &["a"]);
        t.canceled_by = Some(3);
        let v = task_view(&t);
        assert_eq!(v["canceledBy"], Value::Null, "a mark is not shown before the task is canceled");
        assert_eq!(v["batchUid"], Value::Null);
        assert!(v.get("customMetadata").is_none(), "absent, not null, without metadata");
        assert!(summarized(&t).get("customMetadata").is_none());
        t.custom_metadata = Some("deploy-42".into());
        t.status = TaskStatus::Canceled;
        t.started_at = Some(t.enqueued_at);
        t.finished_at = Some(t.enqueued_at + time::Duration::milliseconds(5));
        let v = task_view(&t);
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["uid", "batchUid", "indexUid", "status", "type", "canceledBy", "details", "error", "duration", "enqueuedAt", "startedAt", "finishedAt", "customMetadata"]);
        assert_eq!((v["canceledBy"].clone(), v["batchUid"].clone(), v["customMetadata"].clone()), (json!(3), json!(7), json!("deploy-42")));
        let s = summarized(&t);
        let keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["taskUid", "indexUid", "status", "type", "enqueuedAt", "customMetadata"]);
    }

    #[test]
    fn node_cancelation_uids_never_leak() {
        let groups: HashMap<String, u32> = [("a".into(), 0)].into_iter().collect();
        let mut t = rec("documentAdditionOrUpdate", json!({"receivedDocuments": 1, "indexedDocuments": null}), &["a"]);
        let mut node = node_task("canceled", json!({}));
        node["canceledBy"] = json!(41);
        let c = aggregate(&t, &[("a".into(), node.clone())], &groups, 1);
        assert_eq!((c.status, c.canceled_by), (TaskStatus::Canceled, None));
        t.canceled_by = Some(2);
        let c = aggregate(&t, &[("a".into(), node)], &groups, 1);
        assert_eq!((c.status, c.canceled_by), (TaskStatus::Canceled, Some(2)));
        assert_eq!(c.details["indexedDocuments"], 0);
    }

    #[test]
    fn batch_view_like_meilisearch() {
        let mut t = rec("documentAdditionOrUpdate", json!({"receivedDocuments": 2, "indexedDocuments": 2}), &["a"]);
        t.status = TaskStatus::Succeeded;
        t.started_at = Some(time::macros::datetime!(2026-11-26 00:59:23.19595018 UTC));
        t.finished_at = Some(time::macros::datetime!(2026-11-26 00:59:23.201114491 UTC));
        let b = batch_view(&t);
        let keys: Vec<&str> = b.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["uid", "progress", "details", "stats", "duration", "startedAt", "finishedAt", "batchStrategy"]);
        assert_eq!(
            b["stats"],
            json!({"totalNbTasks": 1, "status": {"succeeded": 1}, "types": {"documentAdditionOrUpdate": 1}, "indexUids": {"movies": 1}})
        );
        let stat_keys: Vec<&str> = b["stats"].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(stat_keys, ["totalNbTasks", "status", "types", "indexUids"]);
        assert_eq!(b["duration"], "PT0.005164311S");
        assert_eq!(b["details"], t.details);
        assert_eq!(b["batchStrategy"], "batched all enqueued tasks for index `movies`");
        t.kind = "taskDeletion".into();
        t.index_uid = None;
        t.details = Value::Null;
        let b = batch_view(&t);
        assert_eq!(b["details"], json!({}));
        assert_eq!(b["stats"]["indexUids"], json!({}));
        assert_eq!(b["batchStrategy"], "created batch containing only task with id 7 of type `taskDeletion` that cannot be batched with any other task.");
        // As seen on Meilisearch 1.50: index creations are never batched, and a primary key
        // that was not given is left out of the batch's details.
        t.kind = "indexCreation".into();
        t.index_uid = Some("books".into());
        t.details = json!({"primaryKey": null});
        let b = batch_view(&t);
        assert_eq!(b["details"], json!({}));
        assert_eq!(b["batchStrategy"], "created batch containing only task with id 7 of type `indexCreation` that cannot be batched with any other task.");
        t.kind = "indexDeletion".into();
        t.details = json!({"deletedDocuments": 3});
        assert_eq!(batch_view(&t)["batchStrategy"], "stopped after task with id 7 because it deletes the index");
    }

    #[test]
    fn list_from_is_the_first_result() {
        let v = task_list_view(vec![json!({"uid": 5}), json!({"uid": 4})], 9, 2, Some(3));
        assert_eq!(v, json!({"results": [{"uid": 5}, {"uid": 4}], "total": 9, "limit": 2, "from": 5, "next": 3}));
        assert_eq!(task_list_view(vec![], 0, 20, None)["from"], Value::Null);
    }

    /// The bookkeeping of a cancelation, without nodes (no topology: node tasks cannot be
    /// asked, so their outcome is written into the store as a refresh would).
    #[tokio::test]
    async fn cancelation_finishes_and_counts_what_it_canceled() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::sqlite::SqliteStore::open(dir.path().join("m.db")).await.unwrap();
        let proxy = Proxy::new(crate::dataplane::ProxyOptions::default(), std::sync::Arc::new(store));
        let store = proxy.store();
        let new = |kind: &str| NewTask {
            index_uid: Some("movies".into()),
            kind: kind.into(),
            status: TaskStatus::Enqueued,
            enqueued_at: OffsetDateTime::now_utc(),
            details: json!({"receivedDocuments": 1, "indexedDocuments": null}),
            error: None,
            node_tasks: vec![NodeTask { node_id: "n".into(), task_uid: 1 }],
            custom_metadata: None,
            targets: vec![],
        };
        let mut targets = Vec::new();
        for _ in 0..4 {
            let mut t = store.create_task(new("documentAdditionOrUpdate")).await.unwrap();
            t.status = TaskStatus::Processing;
            store.update_task(&t).await.unwrap();
            targets.push(t);
        }
        let details = json!({"matchedTasks": 4, "canceledTasks": null, "originalFilter": "?uids=0,1,2,3"});
        let cancel = proxy.new_task("taskCancelation", None, details, vec![], OffsetDateTime::now_utc(), targets.iter().map(|t| t.uid).collect()).await.unwrap();
        // Targets still running: the cancelation is processing, not done.
        let c = proxy.get_task(cancel.uid).await.unwrap();
        assert_eq!((c.status, c.finished_at), (TaskStatus::Processing, None));
        assert!(c.started_at.is_some());
        // Outcomes: canceled by this cancelation (marked), canceled before it could mark it,
        // finished before the cancelation reached it, canceled by another cancelation.
        let outcomes = [(TaskStatus::Canceled, Some(cancel.uid)), (TaskStatus::Canceled, None), (TaskStatus::Succeeded, Some(cancel.uid)), (TaskStatus::Canceled, Some(99))];
        for (t, (status, by)) in targets.iter_mut().zip(outcomes) {
            t.status = status;
            t.canceled_by = by;
            t.started_at = Some(t.enqueued_at);
            t.finished_at = Some(OffsetDateTime::now_utc());
            store.update_task(t).await.unwrap();
        }
        let c = proxy.get_task(cancel.uid).await.unwrap();
        assert_eq!(c.status, TaskStatus::Succeeded);
        assert!(c.finished_at.is_some());
        assert_eq!(c.details, json!({"matchedTasks": 4, "canceledTasks": 2, "originalFilter": "?uids=0,1,2,3"}));
        let mut views = Vec::new();
        for t in &targets {
            views.push(task_view(&store.get_task(t.uid).await.unwrap().unwrap()));
        }
        let by: Vec<Value> = views.iter().map(|v| v["canceledBy"].clone()).collect();
        assert_eq!(by, [json!(cancel.uid), json!(cancel.uid), Value::Null, json!(99)]);
        // Terminal now: reading again changes nothing.
        assert_eq!(proxy.get_task(cancel.uid).await.unwrap(), c);
        // `canceledBy` finds exactly what it canceled.
        let f = TaskFilter { canceled_by: vec![cancel.uid], ..Default::default() };
        let found: Vec<u64> = store.find_tasks(&f).await.unwrap().iter().map(|t| t.uid).collect();
        assert_eq!(found, vec![targets[1].uid, targets[0].uid]);
        // A cancelation with nothing to cancel finishes at once.
        let empty = proxy.new_task("taskCancelation", None, json!({"matchedTasks": 0, "canceledTasks": null, "originalFilter": "?uids=77"}), vec![], OffsetDateTime::now_utc(), vec![]).await.unwrap();
        let e = proxy.get_task(empty.uid).await.unwrap();
        assert_eq!((e.status, e.details["canceledTasks"].clone()), (TaskStatus::Succeeded, json!(0)));
    }
}

//! The node's state: indexes with their documents and settings, and the task queue with its
//! processing (one task per batch, in uid order; cancelations and deletions of tasks first,
//! as Meilisearch's scheduler does).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::filter::{self, ErrorForm, EvalError};
use miroir::dataplane::payload::{self, Document};
use super::settings::{self, SettingsUpdate};
use crate::error::{ApiError, Code};

pub fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn fmt_duration(d: time::Duration) -> String {
    format!("PT{}.{:09}S", d.whole_seconds(), d.subsec_nanoseconds().max(0))
}

/// One index.
#[derive(Debug, Clone)]
pub struct Index {
    pub uid: String,
    pub primary_key: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// The full settings object, as `GET /settings` answers it.
    pub settings: Value,
    /// Documents by internal id (ascending = Meilisearch's internal order).
    pub docs: BTreeMap<u32, Document>,
    /// External id → internal id.
    pub ids: HashMap<String, u32>,
    /// Internal ids freed by deletions below `next_id` (milli reuses the smallest free id).
    free: BTreeSet<u32>,
    next_id: u32,
    /// The fields-ids map: every field (nested paths included) any document ever had; like
    /// milli's, it never shrinks (`POST /indexes/{uid}/fields`).
    pub fields: BTreeSet<String>,
}

impl Index {
    pub fn new(uid: &str, primary_key: Option<String>, now: OffsetDateTime) -> Self {
        Index {
            uid: uid.to_string(),
            primary_key,
            created_at: now,
            updated_at: now,
            settings: settings::defaults(),
            docs: BTreeMap::new(),
            ids: HashMap::new(),
            free: BTreeSet::new(),
            next_id: 0,
            fields: BTreeSet::new(),
        }
    }

    /// Adds a stored document's fields to the fields-ids map.
    pub fn note_fields(&mut self, doc: &Document) {
        for f in crate::fields::field_paths(doc) {
            if !self.fields.contains(&f) {
                self.fields.insert(f);
            }
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "uid": self.uid,
            "createdAt": fmt_time(self.created_at),
            "updatedAt": fmt_time(self.updated_at),
            "primaryKey": self.primary_key,
        })
    }

    fn alloc_id(&mut self) -> u32 {
        if let Some(id) = self.free.pop_first() {
            return id;
        }
        self.next_id += 1;
        self.next_id - 1
    }

    fn free_id(&mut self, id: u32) {
        self.free.insert(id);
        while self.next_id > 0 && self.free.remove(&(self.next_id - 1)) {
            self.next_id -= 1;
        }
    }

    pub fn delete_external(&mut self, ext: &str) -> bool {
        match self.ids.remove(ext) {
            Some(internal) => {
                self.docs.remove(&internal);
                self.free_id(internal);
                true
            }
            None => false,
        }
    }

    pub fn clear(&mut self) -> usize {
        let n = self.docs.len();
        self.docs.clear();
        self.ids.clear();
        self.free.clear();
        self.next_id = 0;
        n
    }

    pub fn get(&self, ext: &str) -> Option<&Document> {
        self.ids.get(ext).and_then(|i| self.docs.get(i))
    }

    pub fn filterable(&self) -> Vec<filter::Rule> {
        filter::rules_from_setting(&self.settings["filterableAttributes"])
    }

    /// `numberOfDocuments`, sizes and `fieldDistribution`, as `/stats` shows them.
    pub fn stats(&self, is_indexing: bool) -> Value {
        let n = self.docs.len() as u64;
        let bytes: u64 = self.docs.values().map(|d| serde_json::to_vec(d).map(|v| v.len() as u64).unwrap_or(0)).sum();
        let raw = if n == 0 { 0 } else { bytes.div_ceil(4096).max(1) * 4096 };
        let avg = raw.checked_div(n).unwrap_or(0);
        let mut dist: BTreeMap<&str, u64> = BTreeMap::new();
        for d in self.docs.values() {
            for k in d.keys() {
                *dist.entry(k.as_str()).or_default() += 1;
            }
        }
        json!({
            "numberOfDocuments": n,
            "rawDocumentDbSize": raw,
            "avgDocumentSize": avg,
            "isIndexing": is_indexing,
            "numberOfEmbeddings": 0,
            "numberOfEmbeddedDocuments": 0,
            "fieldDistribution": dist,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Enqueued,
    Processing,
    Succeeded,
    Failed,
    Canceled,
}

impl Status {
    pub const ALL: [&'static str; 5] = ["enqueued", "processing", "succeeded", "failed", "canceled"];
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Enqueued => "enqueued",
            Status::Processing => "processing",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Canceled => "canceled",
        }
    }
    pub fn is_finished(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Canceled)
    }
}

/// Task types Meilisearch knows (for filter validation): the data plane's list.
pub use miroir::dataplane::tasks::TASK_TYPES;

/// What a task does, with its payload (dropped once the task is finished).
#[derive(Debug, Clone)]
pub enum TaskKind {
    IndexCreation { primary_key: Option<String> },
    IndexUpdate { primary_key: Option<String> },
    IndexDeletion,
    /// `skip_creation`: documents that do not exist yet are ignored (`?skipCreation=true`).
    DocumentAdditionOrUpdate { documents: Vec<Document>, primary_key: Option<String>, replace: bool, skip_creation: bool },
    /// `POST /indexes/{uid}/documents/edit` (the function as the client sent it).
    DocumentEdition { filter: Option<Value>, context: Option<Value>, function: String },
    /// `POST /indexes/{uid}/compact`.
    IndexCompaction,
    DocumentDeletion { ids: Vec<String> },
    DocumentDeletionByFilter { filter: Value },
    DocumentClear,
    SettingsUpdate { update: SettingsUpdate },
    TaskDeletion { uids: Vec<u32> },
    TaskCancelation { uids: Vec<u32> },
    /// Writes the node's indexes to `<dir>/<dumpUid>.dump` (the test node's own format, see
    /// [`State::dump`]; Meilisearch's is a tarball).
    DumpCreation { dir: std::path::PathBuf },
    /// Writes the same content to `<dir>/data.ms.snapshot` (replaced each time).
    SnapshotCreation { dir: std::path::PathBuf },
    /// A finished task read from a dump (its payload is gone, as after any processing).
    Imported { type_name: &'static str },
    /// `POST /swap-indexes` (validated by the route, existence checked when processed).
    IndexSwap { swaps: Vec<miroir::dataplane::swap::Swap> },
}

impl TaskKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            TaskKind::IndexCreation { .. } => "indexCreation",
            TaskKind::IndexUpdate { .. } => "indexUpdate",
            TaskKind::IndexDeletion => "indexDeletion",
            TaskKind::DocumentAdditionOrUpdate { .. } => "documentAdditionOrUpdate",
            TaskKind::DocumentEdition { .. } => "documentEdition",
            TaskKind::IndexCompaction => "indexCompaction",
            TaskKind::DocumentDeletion { .. }
            | TaskKind::DocumentDeletionByFilter { .. }
            | TaskKind::DocumentClear => "documentDeletion",
            TaskKind::SettingsUpdate { .. } => "settingsUpdate",
            TaskKind::TaskDeletion { .. } => "taskDeletion",
            TaskKind::TaskCancelation { .. } => "taskCancelation",
            TaskKind::DumpCreation { .. } => "dumpCreation",
            TaskKind::SnapshotCreation { .. } => "snapshotCreation",
            TaskKind::Imported { type_name } => type_name,
            TaskKind::IndexSwap { .. } => "indexSwap",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Task {
    pub uid: u32,
    pub batch_uid: Option<u32>,
    pub index_uid: Option<String>,
    pub status: Status,
    pub kind: TaskKind,
    pub canceled_by: Option<u32>,
    pub details: Value,
    pub error: Option<Value>,
    pub enqueued_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
}

impl Task {
    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }

    pub fn to_json(&self) -> Value {
        let duration = match (self.started_at, self.finished_at) {
            (Some(s), Some(f)) => Value::String(fmt_duration(f - s)),
            _ => Value::Null,
        };
        let mut view = json!({
            "uid": self.uid,
            "batchUid": self.batch_uid,
            "indexUid": self.index_uid,
            "status": self.status.as_str(),
            "type": self.type_name(),
            "canceledBy": self.canceled_by,
            "details": self.details,
            "error": self.error,
            "duration": duration,
            "enqueuedAt": fmt_time(self.enqueued_at),
            "startedAt": self.started_at.map(fmt_time),
            "finishedAt": self.finished_at.map(fmt_time),
        });
        if self.details.is_null() {
            if let Some(o) = view.as_object_mut() {
                o.shift_remove("details");
            }
        }
        view
    }

    /// The summarized task answered with 202.
    pub fn summary(&self) -> Value {
        json!({
            "taskUid": self.uid,
            "indexUid": self.index_uid,
            "status": self.status.as_str(),
            "type": self.type_name(),
            "enqueuedAt": fmt_time(self.enqueued_at),
        })
    }
}

/// Whole-node state.
#[derive(Debug, Default)]
pub struct State {
    pub indexes: BTreeMap<String, Index>,
    pub tasks: BTreeMap<u32, Task>,
    next_task_uid: u32,
    next_batch_uid: u32,
    pub last_update: Option<OffsetDateTime>,
    /// The experimental features as set by `PATCH /experimental-features` (empty: defaults).
    pub features: Map<String, Value>,
}

fn details_enqueued(kind: &TaskKind) -> Value {
    match kind {
        TaskKind::IndexCreation { primary_key } | TaskKind::IndexUpdate { primary_key } => {
            json!({ "primaryKey": primary_key })
        }
        TaskKind::IndexDeletion | TaskKind::DocumentClear => json!({ "deletedDocuments": null }),
        TaskKind::DocumentAdditionOrUpdate { documents, .. } => {
            json!({ "receivedDocuments": documents.len(), "indexedDocuments": null })
        }
        TaskKind::DocumentDeletion { ids } => {
            json!({ "providedIds": ids.len(), "deletedDocuments": null, "originalFilter": null })
        }
        TaskKind::DocumentDeletionByFilter { filter } => {
            json!({ "providedIds": 0, "deletedDocuments": null, "originalFilter": filter.to_string() })
        }
        TaskKind::SettingsUpdate { update } => update.details.clone(),
        TaskKind::DocumentEdition { filter, context, function } => json!({
            "editedDocuments": null,
            "deletedDocuments": null,
            "originalFilter": filter.as_ref().map(|f| f.to_string()),
            "context": context,
            "function": function,
        }),
        TaskKind::IndexCompaction => json!({}),
        TaskKind::TaskDeletion { .. } | TaskKind::TaskCancelation { .. } => Value::Null,
        TaskKind::DumpCreation { .. } => json!({ "dumpUid": null }),
        // Meilisearch's snapshot tasks have no details (the field is left out).
        TaskKind::SnapshotCreation { .. } | TaskKind::Imported { .. } => Value::Null,
        TaskKind::IndexSwap { swaps } => miroir::dataplane::swap::details(swaps),
    }
}

/// Details of a task that did not do its work (failed or canceled), as Meilisearch's
/// `Details::to_failed` (an edition's `deletedDocuments` stays as it was).
fn details_unapplied(details: &mut Value) {
    let edition = details.get("editedDocuments").is_some();
    if let Some(o) = details.as_object_mut() {
        for key in ["indexedDocuments", "editedDocuments", "deletedDocuments", "deletedTasks", "canceledTasks"] {
            if o.contains_key(key) && !(edition && key == "deletedDocuments") {
                o.insert(key.to_string(), json!(0));
            }
        }
    }
}

fn index_not_found(uid: &str) -> ApiError {
    ApiError::new(Code::IndexNotFound, format!("Index `{uid}` not found."))
}

fn with_index_prefix(uid: &str, e: ApiError) -> ApiError {
    match e {
        ApiError::Own { code, message } => {
            ApiError::Own { code, message: format!("Index `{uid}`: {message}") }
        }
        other => other,
    }
}

impl State {
    /// The experimental features object, as `GET /experimental-features` answers it.
    pub fn features(&self) -> Map<String, Value> {
        if self.features.is_empty() {
            super::features::defaults()
        } else {
            self.features.clone()
        }
    }

    /// Registers a task; `details` of task deletion/cancelation are given by the caller.
    pub fn register(&mut self, index_uid: Option<String>, kind: TaskKind, details: Option<Value>) -> &Task {
        let uid = self.next_task_uid;
        self.next_task_uid += 1;
        let details = details.unwrap_or_else(|| details_enqueued(&kind));
        let task = Task {
            uid,
            batch_uid: None,
            index_uid,
            status: Status::Enqueued,
            kind,
            canceled_by: None,
            details,
            error: None,
            enqueued_at: OffsetDateTime::now_utc(),
            started_at: None,
            finished_at: None,
        };
        self.tasks.insert(uid, task);
        &self.tasks[&uid]
    }

    pub fn has_enqueued(&self) -> bool {
        self.tasks.values().any(|t| t.status == Status::Enqueued)
    }

    pub fn is_indexing(&self, index: &str) -> bool {
        self.tasks
            .values()
            .any(|t| t.status == Status::Processing && t.index_uid.as_deref() == Some(index))
    }

    /// Next task to process: cancelations first, then task deletions, then everything else,
    /// each in uid order.
    fn next_task(&self) -> Option<u32> {
        let enqueued = || self.tasks.values().filter(|t| t.status == Status::Enqueued);
        enqueued()
            .find(|t| matches!(t.kind, TaskKind::TaskCancelation { .. }))
            .or_else(|| enqueued().find(|t| matches!(t.kind, TaskKind::TaskDeletion { .. })))
            .or_else(|| enqueued().next())
            .map(|t| t.uid)
    }

    /// Processes one enqueued task; returns false when there was none.
    pub fn process_next(&mut self) -> bool {
        let Some(uid) = self.next_task() else { return false };
        let batch = self.next_batch_uid;
        self.next_batch_uid += 1;
        let started = OffsetDateTime::now_utc();
        let (index_uid, kind) = {
            let t = self.tasks.get_mut(&uid).unwrap();
            t.status = Status::Processing;
            t.batch_uid = Some(batch);
            t.started_at = Some(started);
            // the payload is no longer needed once processed
            let placeholder = match &t.kind {
                TaskKind::DocumentAdditionOrUpdate { primary_key, replace, skip_creation, .. } => TaskKind::DocumentAdditionOrUpdate {
                    documents: Vec::new(),
                    primary_key: primary_key.clone(),
                    replace: *replace,
                    skip_creation: *skip_creation,
                },
                other => other.clone(),
            };
            (t.index_uid.clone(), std::mem::replace(&mut t.kind, placeholder))
        };
        let mut details = self.tasks[&uid].details.clone();
        let result = self.execute(uid, batch, index_uid.as_deref(), kind, &mut details);
        let finished = OffsetDateTime::now_utc();
        if let Some(ix) = index_uid.as_deref().and_then(|u| self.indexes.get_mut(u)) {
            if result.is_ok() {
                ix.updated_at = finished;
            }
        }
        let t = self.tasks.get_mut(&uid).unwrap();
        match result {
            Ok(()) => t.status = Status::Succeeded,
            Err(e) => {
                details_unapplied(&mut details);
                t.status = Status::Failed;
                t.error = Some(e.body());
            }
        }
        t.details = details;
        t.finished_at = Some(finished);
        self.last_update = Some(finished);
        true
    }

    fn execute(&mut self, uid: u32, batch: u32, index_uid: Option<&str>, kind: TaskKind, details: &mut Value) -> Result<(), ApiError> {
        let now = OffsetDateTime::now_utc();
        let index_uid = index_uid.unwrap_or_default();
        match kind {
            TaskKind::IndexCreation { primary_key } => {
                if self.indexes.contains_key(index_uid) {
                    return Err(ApiError::new(Code::IndexAlreadyExists, format!("Index `{index_uid}` already exists.")));
                }
                self.indexes.insert(index_uid.to_string(), Index::new(index_uid, primary_key, now));
                Ok(())
            }
            TaskKind::IndexUpdate { primary_key } => {
                let ix = self.indexes.get_mut(index_uid).ok_or_else(|| index_not_found(index_uid))?;
                if let Some(pk) = primary_key {
                    match &ix.primary_key {
                        Some(existing) if *existing != pk && !ix.docs.is_empty() => {
                            return Err(with_index_prefix(
                                index_uid,
                                ApiError::new(Code::IndexPrimaryKeyAlreadyExists, format!("Index already has a primary key: `{existing}`.")),
                            ));
                        }
                        _ => ix.primary_key = Some(pk),
                    }
                }
                Ok(())
            }
            TaskKind::IndexDeletion => {
                let ix = self.indexes.remove(index_uid).ok_or_else(|| index_not_found(index_uid))?;
                details["deletedDocuments"] = json!(ix.docs.len());
                Ok(())
            }
            TaskKind::DocumentAdditionOrUpdate { documents, primary_key, replace, skip_creation } => {
                let ix = self
                    .indexes
                    .entry(index_uid.to_string())
                    .or_insert_with(|| Index::new(index_uid, None, now));
                let pk = match (&ix.primary_key, primary_key) {
                    (Some(existing), Some(given)) if *existing != given => {
                        return Err(with_index_prefix(
                            index_uid,
                            ApiError::new(Code::IndexPrimaryKeyAlreadyExists, format!("Index already has a primary key: `{existing}`.")),
                        ));
                    }
                    (Some(existing), _) => existing.clone(),
                    (None, Some(given)) => given,
                    (None, None) => {
                        if documents.is_empty() {
                            details["indexedDocuments"] = json!(0);
                            return Ok(());
                        }
                        payload::infer_primary_key(documents.first())?
                    }
                };
                let mut ext_ids = Vec::with_capacity(documents.len());
                for d in &documents {
                    ext_ids.push(payload::document_id(d, &pk)?);
                }
                // New and replaced documents must give an entry for every embedder.
                let mut missing: Option<(String, Vec<String>)> = None;
                for (d, ext) in documents.iter().zip(&ext_ids) {
                    if !replace && ix.ids.contains_key(ext) {
                        continue;
                    }
                    if let Some(name) = crate::engine::vector::missing_entry(d, &ix.settings) {
                        let m = missing.get_or_insert_with(|| (name, Vec::new()));
                        m.1.push(ext.clone());
                    }
                }
                if let Some((name, ids)) = missing {
                    return Err(with_index_prefix(index_uid, ApiError::new(Code::VectorEmbeddingError, crate::engine::vector::missing_message(&name, &ids))));
                }
                for (d, ext) in documents.iter().zip(&ext_ids) {
                    crate::engine::vector::check_document(d, ext, &ix.settings).map_err(|(known, msg)| {
                        if known {
                            ApiError::new(Code::InvalidVectorDimensions, msg)
                        } else {
                            ApiError::not_implemented(&format!("This `_vectors` value ({msg}) in the test node"))
                        }
                    })?;
                }
                ix.primary_key = Some(pk);
                let n = documents.len();
                for (doc, ext) in documents.into_iter().zip(ext_ids) {
                    match ix.ids.get(&ext) {
                        Some(&internal) => {
                            ix.note_fields(&doc);
                            let slot = ix.docs.get_mut(&internal).unwrap();
                            if replace {
                                *slot = doc;
                            } else {
                                for (k, v) in doc {
                                    slot.insert(k, v);
                                }
                            }
                        }
                        None if skip_creation => {}
                        None => {
                            let internal = ix.alloc_id();
                            ix.ids.insert(ext, internal);
                            ix.note_fields(&doc);
                            ix.docs.insert(internal, doc);
                        }
                    }
                }
                details["indexedDocuments"] = json!(n);
                Ok(())
            }
            TaskKind::DocumentDeletion { ids } => {
                let ix = self.indexes.get_mut(index_uid).ok_or_else(|| index_not_found(index_uid))?;
                let deleted = ids.iter().filter(|id| ix.delete_external(id)).count();
                details["deletedDocuments"] = json!(deleted);
                Ok(())
            }
            TaskKind::DocumentDeletionByFilter { filter } => {
                let ix = self.indexes.get_mut(index_uid).ok_or_else(|| index_not_found(index_uid))?;
                let compiled = match filter::parse_filter_value(&filter) {
                    Ok(Some(expr)) => filter::compile(&expr, &ix.filterable(), ErrorForm::Original).map_err(|e| match e {
                        EvalError::Invalid(fe) => with_index_prefix(index_uid, ApiError::new(Code::InvalidDocumentFilter, fe.to_string())),
                        EvalError::NotImplemented(what) => ApiError::not_implemented(what),
                    })?,
                    Ok(None) => filter::Compiled::all(),
                    Err(e) => return Err(ApiError::new(Code::InvalidDocumentFilter, e.to_string())),
                };
                let doomed: Vec<String> = ix
                    .ids
                    .iter()
                    .filter(|(_, internal)| compiled.matches(&ix.docs[internal]))
                    .map(|(ext, _)| ext.clone())
                    .collect();
                for ext in &doomed {
                    ix.delete_external(ext);
                }
                details["deletedDocuments"] = json!(doomed.len());
                Ok(())
            }
            TaskKind::DocumentEdition { filter, context, function } => {
                let ix = self.indexes.get_mut(index_uid).ok_or_else(|| index_not_found(index_uid))?;
                let (edited, deleted) = super::edition::apply(ix, filter.as_ref(), context.as_ref(), &function)
                    .map_err(|e| with_index_prefix(index_uid, e))?;
                details["editedDocuments"] = json!(edited);
                details["deletedDocuments"] = json!(deleted);
                Ok(())
            }
            TaskKind::IndexCompaction => {
                let ix = self.indexes.get(index_uid).ok_or_else(|| index_not_found(index_uid))?;
                // The test node's size of an index: its documents database (as `/stats`).
                let size = ix.stats(false)["rawDocumentDbSize"].as_u64().unwrap_or(0) + 16384;
                details["preCompactionSize"] = json!(super::edition::human_size(size));
                details["postCompactionSize"] = json!(super::edition::human_size(size));
                Ok(())
            }
            TaskKind::DocumentClear => {
                let ix = self.indexes.get_mut(index_uid).ok_or_else(|| index_not_found(index_uid))?;
                details["deletedDocuments"] = json!(ix.clear());
                Ok(())
            }
            TaskKind::SettingsUpdate { update } => {
                let ix = self
                    .indexes
                    .entry(index_uid.to_string())
                    .or_insert_with(|| Index::new(index_uid, None, now));
                settings::apply(&mut ix.settings, &update);
                Ok(())
            }
            TaskKind::TaskDeletion { uids } => {
                let mut deleted = 0;
                for u in uids {
                    if u != uid && self.tasks.get(&u).is_some_and(|t| t.status.is_finished()) {
                        self.tasks.remove(&u);
                        deleted += 1;
                    }
                }
                details["deletedTasks"] = json!(deleted);
                Ok(())
            }
            TaskKind::IndexSwap { swaps } => {
                // Meilisearch's checks, then every pair swapped (or renamed) at once, and
                // the history before this task rewritten to follow.
                if let Some(e) = miroir::dataplane::swap::existence_error(&swaps, |i| self.indexes.contains_key(i)) {
                    return Err(e.into());
                }
                for s in &swaps {
                    let (l, r) = (s.lhs.to_string(), s.rhs.to_string());
                    let a = self.indexes.remove(&l);
                    let b = self.indexes.remove(&r);
                    for (name, ix) in [(&r, a), (&l, b)] {
                        if let Some(mut ix) = ix {
                            ix.uid = name.clone();
                            self.indexes.insert(name.clone(), ix);
                        }
                    }
                    for t in self.tasks.range_mut(..uid).map(|(_, t)| t) {
                        if let Some(i) = t.index_uid.as_deref() {
                            if i == l {
                                t.index_uid = Some(r.clone());
                            } else if i == r {
                                t.index_uid = Some(l.clone());
                            }
                        }
                        if matches!(t.kind, TaskKind::IndexSwap { .. }) {
                            for name in t.details.pointer_mut("/swaps").and_then(Value::as_array_mut).into_iter().flatten().filter_map(|sw| sw.get_mut("indexes")).filter_map(Value::as_array_mut).flatten() {
                                if name.as_str() == Some(l.as_str()) {
                                    *name = json!(r);
                                } else if name.as_str() == Some(r.as_str()) {
                                    *name = json!(l);
                                }
                            }
                        }
                    }
                }
                Ok(())
            }
            TaskKind::TaskCancelation { uids } => {
                let mut canceled = 0;
                for u in uids {
                    if let Some(t) = self.tasks.get_mut(&u) {
                        if t.status == Status::Enqueued && u != uid {
                            t.status = Status::Canceled;
                            t.canceled_by = Some(uid);
                            t.batch_uid = Some(batch);
                            t.finished_at = Some(now);
                            details_unapplied(&mut t.details);
                            if let TaskKind::DocumentAdditionOrUpdate { documents, .. } = &mut t.kind {
                                documents.clear();
                            }
                            canceled += 1;
                        }
                    }
                }
                details["canceledTasks"] = json!(canceled);
                Ok(())
            }
            TaskKind::DumpCreation { dir } => {
                // Named as Meilisearch names dumps: the time the dump started, milliseconds.
                let fmt = time::macros::format_description!(
                    "[year repr:full][month repr:numerical][day padding:zero]-[hour padding:zero][minute padding:zero][second padding:zero][subsecond digits:3]"
                );
                let dump_uid = now.format(&fmt).expect("dump uid");
                self.write_backup(&dir, &format!("{dump_uid}.dump"))?;
                details["dumpUid"] = json!(dump_uid);
                Ok(())
            }
            TaskKind::SnapshotCreation { dir } => self.write_backup(&dir, "data.ms.snapshot"),
            TaskKind::Imported { .. } => Ok(()),
        }
    }

    fn write_backup(&self, dir: &std::path::Path, name: &str) -> Result<(), ApiError> {
        let io = |e: std::io::Error| ApiError::new(Code::Internal, format!("cannot write `{name}`: {e}"));
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec(&self.dump()).expect("json")).map_err(io)?;
        std::fs::rename(&tmp, dir.join(name)).map_err(io)
    }

    /// The test node's dump: every index with its primary key, settings and documents (in
    /// internal order). Tasks and keys are not kept (the test node has no keys).
    pub fn dump(&self) -> Value {
        let indexes: Vec<Value> = self
            .indexes
            .values()
            .map(|ix| {
                json!({
                    "uid": ix.uid,
                    "primaryKey": ix.primary_key,
                    "createdAt": fmt_time(ix.created_at),
                    "updatedAt": fmt_time(ix.updated_at),
                    "settings": ix.settings,
                    "documents": ix.docs.values().collect::<Vec<_>>(),
                })
            })
            .collect();
        // The task queue too, as Meilisearch's dumps hold it (finished tasks only here).
        let tasks: Vec<Value> = self.tasks.values().filter(|t| t.status.is_finished()).map(Task::to_json).collect();
        json!({ "testNodeDump": 1, "indexes": indexes, "tasks": tasks })
    }

    /// A node started from a dump (`--import-dump`): its indexes, settings and documents.
    pub fn from_dump(dump: &Value) -> Result<State, String> {
        let mut state = State::default();
        let indexes = dump["indexes"].as_array().ok_or("not a test-node dump (no `indexes`)")?;
        let parse = |v: &Value| v.as_str().and_then(|s| OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok());
        for ix in indexes {
            let uid = ix["uid"].as_str().ok_or("an index without uid")?;
            let now = OffsetDateTime::now_utc();
            let mut index = Index::new(uid, ix["primaryKey"].as_str().map(str::to_string), parse(&ix["createdAt"]).unwrap_or(now));
            index.updated_at = parse(&ix["updatedAt"]).unwrap_or(now);
            index.settings = ix["settings"].clone();
            let pk = index.primary_key.clone();
            for d in ix["documents"].as_array().ok_or("an index without documents")? {
                let doc = d.as_object().ok_or("a document is not an object")?.clone();
                let pk = pk.as_deref().ok_or("documents without a primary key")?;
                let ext = payload::document_id(&doc, pk).map_err(|e| e.to_string())?;
                let internal = index.alloc_id();
                index.ids.insert(ext, internal);
                index.note_fields(&doc);
                index.docs.insert(internal, doc);
            }
            state.indexes.insert(uid.to_string(), index);
        }
        for t in dump["tasks"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let uid = t["uid"].as_u64().ok_or("a task without uid")? as u32;
            let type_name = t["type"].as_str().and_then(|n| TASK_TYPES.iter().find(|k| **k == n)).ok_or("a task of unknown type")?;
            let status = match t["status"].as_str() {
                Some("succeeded") => Status::Succeeded,
                Some("failed") => Status::Failed,
                Some("canceled") => Status::Canceled,
                _ => continue,
            };
            let batch_uid = t["batchUid"].as_u64().map(|b| b as u32);
            state.tasks.insert(
                uid,
                Task {
                    uid,
                    batch_uid,
                    index_uid: t["indexUid"].as_str().map(str::to_string),
                    status,
                    kind: TaskKind::Imported { type_name },
                    canceled_by: t["canceledBy"].as_u64().map(|c| c as u32),
                    details: t.get("details").cloned().unwrap_or(Value::Null),
                    error: t.get("error").cloned().filter(|e| !e.is_null()),
                    enqueued_at: parse(&t["enqueuedAt"]).ok_or("a task without enqueuedAt")?,
                    started_at: parse(&t["startedAt"]),
                    finished_at: parse(&t["finishedAt"]),
                },
            );
            state.next_task_uid = state.next_task_uid.max(uid + 1);
            state.next_batch_uid = state.next_batch_uid.max(batch_uid.map_or(0, |b| b + 1));
        }
        Ok(state)
    }

    /// Global `/stats`.
    pub fn global_stats(&self) -> Value {
        let mut indexes = Map::new();
        let mut used = 0u64;
        for (uid, ix) in &self.indexes {
            let s = ix.stats(self.is_indexing(uid));
            used += s["rawDocumentDbSize"].as_u64().unwrap_or(0) + 16384;
            indexes.insert(uid.clone(), s);
        }
        let used = used + 4096 * 64;
        json!({
            "databaseSize": used * 2,
            "usedDatabaseSize": used,
            "lastUpdate": self.last_update.map(fmt_time),
            "indexes": indexes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(v: Value) -> Vec<Document> {
        v.as_array().unwrap().iter().map(|d| d.as_object().unwrap().clone()).collect()
    }

    fn run_all(s: &mut State) {
        while s.process_next() {}
    }

    #[test]
    fn replaced_documents_keep_their_internal_id_and_freed_ids_are_reused() {
        let mut s = State::default();
        s.register(
            Some("m".into()),
            TaskKind::DocumentAdditionOrUpdate { documents: docs(json!([{"id": 1}, {"id": 2}, {"id": 3}])), primary_key: None, replace: true, skip_creation: false },
            None,
        );
        s.register(Some("m".into()), TaskKind::DocumentDeletion { ids: vec!["1".into()] }, None);
        s.register(
            Some("m".into()),
            TaskKind::DocumentAdditionOrUpdate { documents: docs(json!([{"id": 9}, {"id": "3", "x": 1}])), primary_key: None, replace: false, skip_creation: false },
            None,
        );
        run_all(&mut s);
        let ix = &s.indexes["m"];
        let order: Vec<Value> = ix.docs.values().map(|d| d["id"].clone()).collect();
        assert_eq!(order, vec![json!(9), json!(2), json!("3")]);
        assert_eq!(ix.get("3").unwrap()["x"], json!(1));
        assert_eq!(s.tasks[&2].details, json!({"receivedDocuments": 2, "indexedDocuments": 2}));
    }

    #[test]
    fn failing_additions_still_create_the_index_and_report_zero() {
        let mut s = State::default();
        s.register(Some("multi".into()), TaskKind::DocumentAdditionOrUpdate { documents: docs(json!([{"id": 1, "movie_id": 2}])), primary_key: None, replace: true, skip_creation: false }, None);
        run_all(&mut s);
        let t = &s.tasks[&0];
        assert_eq!(t.status, Status::Failed);
        assert_eq!(t.details, json!({"receivedDocuments": 1, "indexedDocuments": 0}));
        assert!(s.indexes.contains_key("multi"));
        assert_eq!(s.indexes["multi"].primary_key, None);
    }

    #[test]
    fn cancelation_runs_before_older_enqueued_tasks() {
        let mut s = State::default();
        s.register(Some("a".into()), TaskKind::IndexCreation { primary_key: None }, None);
        s.register(None, TaskKind::TaskCancelation { uids: vec![0] }, Some(json!({"matchedTasks": 1, "canceledTasks": null, "originalFilter": "?uids=0"})));
        run_all(&mut s);
        assert_eq!(s.tasks[&0].status, Status::Canceled);
        assert_eq!(s.tasks[&0].canceled_by, Some(1));
        assert_eq!(s.tasks[&1].details["canceledTasks"], json!(1));
        assert!(!s.indexes.contains_key("a"));
    }

    #[test]
    fn task_json_shape() {
        let mut s = State::default();
        s.register(Some("movies".into()), TaskKind::IndexCreation { primary_key: Some("id".into()) }, None);
        run_all(&mut s);
        let v = s.tasks[&0].to_json();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["uid", "batchUid", "indexUid", "status", "type", "canceledBy", "details", "error", "duration", "enqueuedAt", "startedAt", "finishedAt"]);
        assert!(v["duration"].as_str().unwrap().starts_with("PT"));
    }
}

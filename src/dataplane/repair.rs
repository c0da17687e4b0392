//! Data movement between nodes, Miroir-internal: the primitives a rebuild, the replay worker
//! and the anti-entropy check ([`super::antientropy`]) are made of.
//!
//! Everything here talks to one node at a time with Miroir's node master key, never through
//! the quorum write path: the node being filled is by definition not caught up, so the client
//! write path would only append to its log. Documents are found by their `_miroir_shard` tag
//! (every index on the nodes has it filterable), so "the documents of shard s" is one filter on
//! any node, and a copy keeps the tag: the copy is exactly the source's document.
//!
//! Every node answer is checked (status, shape, the node task's outcome); nothing here panics
//! on what a node says. Node tasks are waited for, so a caller that gets `Ok` knows the
//! destination applied the change.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::hash::canonical_pk;
use super::merge::SHARD_FIELD;
use super::replica::RebuildScope;
use super::{Proxy, RoutingTable};
use crate::model::IndexUid;
use crate::node::{NodePath, NodeResponse};
use crate::store::StoreError;

/// Documents per fetch and per write: Meilisearch's answers stay small, and a write of this
/// many documents is one cheap node task.
pub const PAGE: usize = 1000;
/// How often a node task is polled.
const TASK_POLL: Duration = Duration::from_millis(50);
/// How long a node task may take before the caller gives up on it (a rebuild of a large shard
/// is many tasks, each bounded by this).
const TASK_DEADLINE: Duration = Duration::from_secs(600);
/// Rounds of "compare the id sets, fix the difference" after a shard copy.
const VERIFY_ROUNDS: usize = 3;
/// Attempts at a settings PATCH, dropping one key the node rejects each time.
const SETTINGS_ATTEMPTS: usize = 8;

/// Why moving data between nodes failed. The messages name the node (by address) and what
/// was asked of it.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The node could not be reached, timed out, refused Miroir's key or answered no JSON.
    #[error("node {node} could not answer {what}: {message}")]
    Unreachable { node: String, what: String, message: String },
    /// The node answered with an error (HTTP status and body), or its task ended `failed`
    /// or `canceled` (then `status` is the task route's 200 and `body` the task).
    #[error("node {node} answered {status} to {what}: {body}")]
    Node { node: String, what: String, status: u16, body: Value },
    /// A node task did not finish within the deadline.
    #[error("node {node}: task {task_uid} did not finish within {secs} s")]
    TaskTimeout { node: String, task_uid: u64, secs: u64 },
    /// No node that serves reads holds the shard (or, with `shard: None`, no node at all serves
    /// reads to list the indexes from): there is nothing up to date to copy from.
    #[error("no up-to-date replica to copy {} from", describe_source(.index.as_deref(), *.shard))]
    NoSource { index: Option<String>, shard: Option<u32> },
    /// The node is not in the current topology.
    #[error("node `{0}` is not in the topology")]
    UnknownNode(String),
    /// A copied shard still differed from its source after the verification rounds, in
    /// documents the last round had already copied or deleted (the destination refuses them).
    #[error("index `{index}` shard(s) {shards}: {missing} document(s) missing and {extra} extra on {node} after {rounds} verification rounds")]
    Unverified { node: String, index: String, shards: String, missing: usize, extra: usize, rounds: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn describe_source(index: Option<&str>, shard: Option<u32>) -> String {
    match (index, shard) {
        (Some(i), Some(s)) => format!("index `{i}` shard {s}"),
        (None, Some(s)) => format!("shard {s}"),
        (Some(i), None) => format!("index `{i}`"),
        (None, None) => "the index list".to_string(),
    }
}

/// What one shard copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyStats {
    /// Documents read from the source and written to the destination by the bulk copy.
    pub documents: u64,
    /// Documents copied or deleted afterwards because the verification found them differing.
    pub fixed: u64,
    /// Verification rounds run (1 when the bulk copy was already exact).
    pub verify_rounds: usize,
    pub elapsed_ms: u64,
    /// Documents of the bulk copy per shard (copies of several shards at once).
    #[serde(skip)]
    pub per_shard: BTreeMap<u32, u64>,
}

/// One shard of one index rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardRebuild {
    pub index: String,
    pub shard: u32,
    /// The node id copied from.
    pub source: String,
    pub stats: CopyStats,
}

/// What a rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RebuildStats {
    /// Indexes whose metadata (primary key, settings) was made the source's.
    pub indexes: Vec<String>,
    /// Indexes the node had and the source does not (deleted from the node).
    pub deleted_indexes: Vec<String>,
    pub shards: Vec<ShardRebuild>,
    /// Documents without `_miroir_shard` deleted from the node (never written by Miroir).
    pub untagged_deleted: u64,
    pub documents: u64,
    pub elapsed_ms: u64,
}

/// The top-level settings key a node's rejection names, if it is one of `body`'s keys:
/// Meilisearch words an unknown key "Unknown field `key`: expected one of ..." and a bad
/// value "Invalid value ... at `.key...`".
fn rejected_key(message: &str, body: &Map<String, Value>) -> Option<String> {
    let candidate = if let Some(rest) = message.split("Unknown field `").nth(1) {
        rest.split('`').next().map(str::to_string)
    } else {
        message.split("`.").nth(1).map(|rest| rest.split(['`', '.', '[']).next().unwrap_or("").to_string())
    };
    candidate.filter(|k| body.contains_key(k))
}

/// Settings as a node answers them, made fit to be sent to another node. An embedder's
/// `apiKey` comes back redacted from `GET /settings`: sending it would replace the working
/// key with the redaction, so such embedders cannot be copied node to node (they are left
/// out, with a warning; the operator sets them again through Miroir).
fn copyable_settings(settings: &Value) -> (Map<String, Value>, Vec<String>) {
    let mut body = settings.as_object().cloned().unwrap_or_default();
    let mut dropped = Vec::new();
    let has_keys = body
        .get("embedders")
        .and_then(Value::as_object)
        .is_some_and(|e| e.values().any(|emb| emb.get("apiKey").is_some_and(|k| !k.is_null())));
    if has_keys {
        body.remove("embedders");
        dropped.push("embedders".to_string());
    }
    (body, dropped)
}

impl Proxy {
    /// Node calls that move data may carry a thousand documents: at least 30 s each.
    fn data_timeout(&self) -> Duration {
        self.node_timeout().max(Duration::from_secs(30))
    }

    /// One node call; any HTTP answer is `Ok` (the caller judges the status).
    async fn node_call(&self, address: &str, method: Method, path: &NodePath, body: Option<&Value>) -> Result<NodeResponse, SyncError> {
        let what = format!("{method} {path}");
        let r = self
            .inner
            .nodes
            .send_json(address, method, path, body, self.data_timeout())
            .await
            .map_err(|e| SyncError::Unreachable { node: address.to_string(), what: what.clone(), message: e.to_string() })?;
        if crate::node::is_auth_refusal(&r) {
            return Err(SyncError::Unreachable { node: address.to_string(), what, message: "the node refuses Miroir's node master key".into() });
        }
        Ok(r)
    }

    /// One node call that must succeed (2xx); its body.
    pub(crate) async fn node_ok(&self, address: &str, method: Method, path: &NodePath, body: Option<&Value>) -> Result<Value, SyncError> {
        let r = self.node_call(address, method.clone(), path, body).await?;
        if r.is_success() {
            Ok(r.body)
        } else {
            Err(SyncError::Node { node: address.to_string(), what: format!("{method} {path}"), status: r.status, body: r.body })
        }
    }

    /// A call that enqueues a node task; its uid.
    async fn enqueue(&self, address: &str, method: Method, path: &NodePath, body: Option<&Value>) -> Result<u64, SyncError> {
        let answer = self.node_ok(address, method.clone(), path, body).await?;
        answer.get("taskUid").and_then(Value::as_u64).ok_or_else(|| SyncError::Node {
            node: address.to_string(),
            what: format!("{method} {path}"),
            status: 202,
            body: answer.clone(),
        })
    }

    /// Polls `GET /tasks/{uid}` until the task is terminal; the task as the node answers it.
    pub(crate) async fn wait_task_body(&self, address: &str, task_uid: u64) -> Result<Value, SyncError> {
        let deadline = Instant::now() + TASK_DEADLINE;
        loop {
            let task = self.node_ok(address, Method::GET, &NodePath::task(task_uid), None).await?;
            if matches!(task.get("status").and_then(Value::as_str), Some("succeeded" | "failed" | "canceled")) {
                return Ok(task);
            }
            if Instant::now() >= deadline {
                return Err(SyncError::TaskTimeout { node: address.to_string(), task_uid, secs: TASK_DEADLINE.as_secs() });
            }
            tokio::time::sleep(TASK_POLL).await;
        }
    }

    /// Waits for a node task to end and answers its terminal status (`succeeded`, `failed`
    /// or `canceled`), polling every 50 ms for at most 10 minutes.
    pub(crate) async fn wait_node_task(&self, address: &str, task_uid: u64) -> Result<String, SyncError> {
        let task = self.wait_task_body(address, task_uid).await?;
        Ok(task.get("status").and_then(Value::as_str).unwrap_or_default().to_string())
    }

    /// Waits for a node task and requires it to have succeeded (a failed one is the node's
    /// error, with the task as body).
    async fn wait_succeeded(&self, address: &str, task_uid: u64) -> Result<Value, SyncError> {
        let task = self.wait_task_body(address, task_uid).await?;
        if task.get("status").and_then(Value::as_str) == Some("succeeded") {
            Ok(task)
        } else {
            Err(SyncError::Node { node: address.to_string(), what: format!("task {task_uid}"), status: 200, body: task })
        }
    }

    /// One page of `POST /indexes/{uid}/documents/fetch`: the documents and the total the node
    /// counts for the request.
    async fn fetch_page(&self, address: &str, index: &IndexUid, body: &Value) -> Result<(Vec<Value>, Option<u64>), SyncError> {
        let path = NodePath::index(index).then("documents").then("fetch");
        let mut answer = self.node_ok(address, Method::POST, &path, Some(body)).await?;
        let total = answer.get("total").and_then(Value::as_u64);
        match answer.get_mut("results").map(Value::take) {
            Some(Value::Array(docs)) => Ok((docs, total)),
            _ => Err(SyncError::Node { node: address.to_string(), what: format!("POST {path}"), status: 200, body: answer }),
        }
    }

    /// The canonical ids of the documents matching `filter` on the node, paged by offset.
    async fn ids_matching(&self, address: &str, index: &IndexUid, pk: &str, filter: &str) -> Result<BTreeSet<String>, SyncError> {
        let mut ids = BTreeSet::new();
        let mut offset = 0usize;
        loop {
            let body = json!({"filter": filter, "fields": [pk], "limit": PAGE, "offset": offset});
            let (docs, total) = self.fetch_page(address, index, &body).await?;
            for d in &docs {
                match d.get(pk).and_then(canonical_pk) {
                    Some(id) => {
                        ids.insert(id);
                    }
                    // A document without a valid primary key cannot be on a node: say so, go on.
                    None => tracing::warn!(node = %address, index = %index, document = %d, "document without a valid primary key"),
                }
            }
            offset += docs.len();
            if docs.len() < PAGE || total.is_some_and(|t| offset as u64 >= t) {
                return Ok(ids);
            }
        }
    }

    /// Ids (canonical strings) of the documents of `shard` on the node.
    pub(crate) async fn shard_ids(&self, address: &str, index: &IndexUid, pk: &str, shard: u32) -> Result<BTreeSet<String>, SyncError> {
        self.ids_matching(address, index, pk, &format!("{SHARD_FIELD} = {shard}")).await
    }

    /// Ids of the node's documents without `_miroir_shard`: Miroir never wrote them (every
    /// document Miroir writes carries its shard).
    pub(crate) async fn untagged_ids(&self, address: &str, index: &IndexUid, pk: &str) -> Result<BTreeSet<String>, SyncError> {
        self.ids_matching(address, index, pk, &format!("{SHARD_FIELD} NOT EXISTS")).await
    }

    /// Whether documents must be fetched with their vectors: only when the index has
    /// embedders (user-provided embeddings would be lost otherwise; without embedders a node
    /// has no vectors to give).
    async fn needs_vectors(&self, address: &str, index: &IndexUid) -> Result<bool, SyncError> {
        let e = self.node_ok(address, Method::GET, &NodePath::index(index).then("settings").then("embedders"), None).await?;
        Ok(e.as_object().is_some_and(|o| !o.is_empty()))
    }

    /// Writes documents fetched from a node to another as they are (`POST`: replace, so the
    /// result equals the source's document, `_miroir_shard` included); the task uid.
    async fn post_documents(&self, dst_addr: &str, index: &IndexUid, pk: &str, docs: &[Value]) -> Result<u64, SyncError> {
        let path = NodePath::index(index).then("documents").query("primaryKey", pk);
        self.enqueue(dst_addr, Method::POST, &path, Some(&Value::Array(docs.to_vec()))).await
    }

    /// Copies the documents with these ids from `src` to `dst` (ids the source does not have
    /// are skipped). Returns the last destination task, not waited for.
    pub(crate) async fn copy_ids(&self, src_addr: &str, dst_addr: &str, index: &IndexUid, pk: &str, ids: &[String]) -> Result<Option<u64>, SyncError> {
        let vectors = !ids.is_empty() && self.needs_vectors(src_addr, index).await?;
        let mut last = None;
        for chunk in ids.chunks(PAGE) {
            let mut body = json!({"ids": chunk, "limit": PAGE, "offset": 0});
            if vectors {
                body["retrieveVectors"] = json!(true);
            }
            let (docs, _) = self.fetch_page(src_addr, index, &body).await?;
            if !docs.is_empty() {
                last = Some(self.post_documents(dst_addr, index, pk, &docs).await?);
            }
        }
        Ok(last)
    }

    /// Deletes documents by id on one node; the last task, not waited for.
    pub(crate) async fn delete_ids_on(&self, address: &str, index: &IndexUid, ids: &[String]) -> Result<Option<u64>, SyncError> {
        let path = NodePath::index(index).then("documents").then("delete-batch");
        let mut last = None;
        for chunk in ids.chunks(PAGE) {
            last = Some(self.enqueue(address, Method::POST, &path, Some(&json!(chunk))).await?);
        }
        Ok(last)
    }

    /// Deletes the node's documents matching a filter; the task, not waited for. Applied in
    /// the node's queue order, it only removes what matches when it runs.
    pub(crate) async fn delete_where(&self, address: &str, index: &IndexUid, filter: &str) -> Result<u64, SyncError> {
        let path = NodePath::index(index).then("documents").then("delete");
        self.enqueue(address, Method::POST, &path, Some(&json!({"filter": filter}))).await
    }

    /// The node's index (`None`: it has none of that uid).
    pub(crate) async fn node_index(&self, address: &str, index: &IndexUid) -> Result<Option<Value>, SyncError> {
        let path = NodePath::index(index);
        let r = self.node_call(address, Method::GET, &path, None).await?;
        match r.status {
            200 => Ok(Some(r.body)),
            404 => Ok(None),
            status => Err(SyncError::Node { node: address.to_string(), what: format!("GET {path}"), status, body: r.body }),
        }
    }

    /// Every index of a node, with its primary key (`GET /indexes`, paged).
    pub(crate) async fn node_indexes(&self, address: &str) -> Result<BTreeMap<String, Option<String>>, SyncError> {
        let mut out = BTreeMap::new();
        let mut offset = 0usize;
        loop {
            let path = NodePath::route("/indexes").query("limit", PAGE.to_string()).query("offset", offset.to_string());
            let answer = self.node_ok(address, Method::GET, &path, None).await?;
            let Some(results) = answer.get("results").and_then(Value::as_array) else {
                return Err(SyncError::Node { node: address.to_string(), what: format!("GET {path}"), status: 200, body: answer });
            };
            for ix in results {
                if let Some(uid) = ix.get("uid").and_then(Value::as_str) {
                    out.insert(uid.to_string(), ix.get("primaryKey").and_then(Value::as_str).map(str::to_string));
                }
            }
            offset += results.len();
            let total = answer.get("total").and_then(Value::as_u64);
            if results.len() < PAGE || total.is_some_and(|t| offset as u64 >= t) {
                return Ok(out);
            }
        }
    }

    /// The node's settings of an index, as it answers them.
    pub(crate) async fn node_settings(&self, address: &str, index: &IndexUid) -> Result<Value, SyncError> {
        self.node_ok(address, Method::GET, &NodePath::index(index).then("settings"), None).await
    }

    /// Sends settings to a node (`PATCH /indexes/{uid}/settings`). A key the node refuses at
    /// once (400) is dropped and the rest sent again, so one setting a node will not take back
    /// does not keep every other from being copied; the dropped keys are logged and returned.
    /// The task is not waited for.
    pub(crate) async fn patch_settings(&self, address: &str, index: &IndexUid, settings: &Value) -> Result<(u64, Vec<String>), SyncError> {
        let (mut body, mut dropped) = copyable_settings(settings);
        let path = NodePath::index(index).then("settings");
        for _ in 0..SETTINGS_ATTEMPTS {
            let r = self.node_call(address, Method::PATCH, &path, Some(&Value::Object(body.clone()))).await?;
            if r.is_success() {
                let uid = r.body.get("taskUid").and_then(Value::as_u64).ok_or_else(|| SyncError::Node {
                    node: address.to_string(),
                    what: format!("PATCH {path}"),
                    status: r.status,
                    body: r.body.clone(),
                })?;
                if !dropped.is_empty() {
                    tracing::warn!(node = %address, index = %index, dropped = ?dropped, "settings the node does not take back were not copied");
                }
                return Ok((uid, dropped));
            }
            let message = r.body.get("message").and_then(Value::as_str).unwrap_or_default();
            match (r.status, rejected_key(message, &body)) {
                (400, Some(key)) => {
                    body.remove(&key);
                    dropped.push(key);
                }
                (status, _) => {
                    return Err(SyncError::Node { node: address.to_string(), what: format!("PATCH {path}"), status, body: r.body })
                }
            }
        }
        Err(SyncError::Node {
            node: address.to_string(),
            what: format!("PATCH {path}"),
            status: 400,
            body: json!({"message": format!("still refused after dropping {dropped:?}")}),
        })
    }

    /// Makes sure the index exists on `dst` with the source's primary key and the source's
    /// node-side settings (`_miroir_shard` filterable included), waiting for the node tasks.
    /// An index on `dst` with another primary key is deleted and created again (its
    /// documents cannot be the source's).
    pub(crate) async fn copy_index_meta(&self, src_addr: &str, dst_addr: &str, index: &IndexUid) -> Result<(), SyncError> {
        let Some(src_meta) = self.node_index(src_addr, index).await? else {
            return Err(SyncError::Node {
                node: src_addr.to_string(),
                what: format!("GET {}", NodePath::index(index)),
                status: 404,
                body: json!({"message": format!("index `{index}` not found on the source")}),
            });
        };
        let src_pk = src_meta.get("primaryKey").and_then(Value::as_str).map(str::to_string);
        let dst_meta = self.node_index(dst_addr, index).await?;
        let dst_pk = dst_meta.as_ref().and_then(|m| m.get("primaryKey")).and_then(Value::as_str).map(str::to_string);
        match (&dst_meta, &src_pk, &dst_pk) {
            (Some(_), a, b) if a == b => {}
            (Some(_), Some(pk), None) => {
                let t = self.enqueue(dst_addr, Method::PATCH, &NodePath::index(index), Some(&json!({"primaryKey": pk}))).await?;
                self.wait_succeeded(dst_addr, t).await?;
            }
            (Some(_), _, _) => {
                tracing::warn!(node = %dst_addr, index = %index, ?src_pk, ?dst_pk, "primary key differs from the source's; deleting the index to create it again");
                let t = self.enqueue(dst_addr, Method::DELETE, &NodePath::index(index), None).await?;
                self.wait_succeeded(dst_addr, t).await?;
                self.create_index_on(dst_addr, index, src_pk.as_deref()).await?;
            }
            (None, _, _) => self.create_index_on(dst_addr, index, src_pk.as_deref()).await?,
        }
        let src_settings = self.node_settings(src_addr, index).await?;
        if self.node_settings(dst_addr, index).await? == src_settings {
            return Ok(());
        }
        let mut settings = src_settings;
        for _ in 0..SETTINGS_ATTEMPTS {
            let (t, dropped) = self.patch_settings(dst_addr, index, &settings).await?;
            let task = self.wait_task_body(dst_addr, t).await?;
            if task.get("status").and_then(Value::as_str) == Some("succeeded") {
                return Ok(());
            }
            // Refused inside the task: drop the key it names too, if it names one.
            let message = task.pointer("/error/message").and_then(Value::as_str).unwrap_or_default();
            let mut body = copyable_settings(&settings).0;
            for k in &dropped {
                body.remove(k);
            }
            match rejected_key(message, &body) {
                Some(key) => {
                    tracing::warn!(node = %dst_addr, index = %index, key = %key, message = %message, "setting refused by the node; copying the others");
                    body.remove(&key);
                    settings = Value::Object(body);
                }
                None => return Err(SyncError::Node { node: dst_addr.to_string(), what: format!("task {t}"), status: 200, body: task }),
            }
        }
        Err(SyncError::Node {
            node: dst_addr.to_string(),
            what: format!("PATCH {}", NodePath::index(index).then("settings")),
            status: 400,
            body: json!({"message": "settings still refused after dropping the keys the node named"}),
        })
    }

    /// `POST /indexes` on one node, an index that already exists being fine.
    async fn create_index_on(&self, address: &str, index: &IndexUid, pk: Option<&str>) -> Result<(), SyncError> {
        let t = self.enqueue(address, Method::POST, &NodePath::route("/indexes"), Some(&json!({"uid": index.as_str(), "primaryKey": pk}))).await?;
        let task = self.wait_task_body(address, t).await?;
        match (task.get("status").and_then(Value::as_str), task.pointer("/error/code").and_then(Value::as_str)) {
            (Some("succeeded"), _) | (_, Some("index_already_exists")) => Ok(()),
            _ => Err(SyncError::Node { node: address.to_string(), what: format!("task {t}"), status: 200, body: task }),
        }
    }

    /// Makes shards `shards` of the index on `dst` exactly the source's: their documents on
    /// `dst` are deleted, every document of theirs on `src` is written to `dst` (one filter,
    /// one page stream: copying many small shards between the same two nodes pays the
    /// per-copy round trips and node tasks once), and then the id sets of both are compared
    /// and the difference fixed (offset paging over a source that changes meanwhile can skip
    /// a document), up to [`VERIFY_ROUNDS`] rounds. Differences still new after the last round
    /// are writes the source took meanwhile, which reach `dst` by replay; one that survived
    /// its own fix is an error. With `Some(per_second)`, pages wait for
    /// the shared documents-per-second budget of migrations (`0`: none) and count in the
    /// rebalance progress.
    pub(crate) async fn copy_shards(
        &self,
        src_addr: &str,
        dst_addr: &str,
        index: &IndexUid,
        pk: &str,
        shards: &[u32],
        pace: Option<u64>,
    ) -> Result<CopyStats, SyncError> {
        let started = Instant::now();
        let filter = match shards {
            [one] => format!("{SHARD_FIELD} = {one}"),
            many => format!("{SHARD_FIELD} IN [{}]", many.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")),
        };
        let vectors = self.needs_vectors(src_addr, index).await?;
        let mut last = self.delete_where(dst_addr, index, &filter).await?;
        let mut stats = CopyStats::default();
        let mut offset = 0usize;
        loop {
            let mut body = json!({"filter": filter, "limit": PAGE, "offset": offset});
            if vectors {
                body["retrieveVectors"] = json!(true);
            }
            let (docs, total) = self.fetch_page(src_addr, index, &body).await?;
            if !docs.is_empty() {
                if let Some(per_second) = pace {
                    self.inner.rebalance.throttle.take(docs.len() as u64, per_second).await;
                }
                last = self.post_documents(dst_addr, index, pk, &docs).await?;
                if pace.is_some() {
                    self.record_copied(docs.len() as u64);
                }
                for d in &docs {
                    if let Some(s) = d.get(SHARD_FIELD).and_then(Value::as_u64) {
                        *stats.per_shard.entry(s as u32).or_default() += 1;
                    }
                }
            }
            offset += docs.len();
            stats.documents += docs.len() as u64;
            if docs.len() < PAGE || total.is_some_and(|t| offset as u64 >= t) {
                break;
            }
        }
        // Tasks of one index run in order on a node: the last one done means all are (one
        // that failed shows up as a difference below).
        self.wait_node_task(dst_addr, last).await?;
        // What the previous round fixed: a difference that survives its own fix is the
        // destination refusing it; a new one each round is the source taking writes meanwhile
        // (those reach the destination by replay, it is not caught up yet).
        let mut fixed_before: (Vec<String>, Vec<String>) = Default::default();
        loop {
            stats.verify_rounds += 1;
            let (src_ids, dst_ids) = futures::try_join!(self.ids_matching(src_addr, index, pk, &filter), self.ids_matching(dst_addr, index, pk, &filter))?;
            let missing: Vec<String> = src_ids.difference(&dst_ids).cloned().collect();
            let extra: Vec<String> = dst_ids.difference(&src_ids).cloned().collect();
            if missing.is_empty() && extra.is_empty() {
                break;
            }
            if stats.verify_rounds > VERIFY_ROUNDS {
                let still_missing = missing.iter().filter(|id| fixed_before.0.contains(id)).count();
                let still_extra = extra.iter().filter(|id| fixed_before.1.contains(id)).count();
                if still_missing + still_extra > 0 {
                    return Err(SyncError::Unverified {
                        node: dst_addr.to_string(),
                        index: index.to_string(),
                        shards: shards.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
                        missing: still_missing,
                        extra: still_extra,
                        rounds: VERIFY_ROUNDS,
                    });
                }
                tracing::info!(node = %dst_addr, index = %index, shards = ?shards, missing = missing.len(), extra = extra.len(), "the source keeps taking writes; the last differences are left to replay");
                break;
            }
            tracing::info!(node = %dst_addr, index = %index, shards = ?shards, missing = missing.len(), extra = extra.len(), "shard copy differs from its source; fixing");
            stats.fixed += (missing.len() + extra.len()) as u64;
            let a = self.delete_ids_on(dst_addr, index, &extra).await?;
            let b = self.copy_ids(src_addr, dst_addr, index, pk, &missing).await?;
            if let Some(t) = b.or(a) {
                self.wait_node_task(dst_addr, t).await?;
            }
            fixed_before = (missing, extra);
        }
        stats.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(stats)
    }

    /// Makes the node's content that of up-to-date replicas: every index of an up-to-date node
    /// (those of `scope.indexes`, or all, and then indexes the source lacks are deleted from
    /// the node), with its primary key and settings, and for every shard the node holds (in
    /// any group; those of `scope.shards`, or all) the documents of an up-to-date holder of the
    /// shard. Only moves data: the caller marks the node caught up afterwards.
    pub async fn rebuild(&self, routing: &RoutingTable, node: &str, scope: &RebuildScope) -> Result<RebuildStats, SyncError> {
        // No index swap runs while a node is copied from its replicas (it would copy a half
        // swapped state), and none starts before the copy ends.
        let _no_swap = self.hold_swaps().await;
        let started = Instant::now();
        let dst = routing.topology.node(node).ok_or_else(|| SyncError::UnknownNode(node.to_string()))?;
        let dst_addr = dst.address.clone();
        // The cluster's experimental features first: settings and documents may need them.
        self.ensure_features(&dst_addr)
            .await
            .map_err(|message| SyncError::Unreachable { node: dst_addr.clone(), what: "PATCH /experimental-features".into(), message })?;
        let address_of = |id: &str| routing.topology.node(id).map(|n| n.address.clone());
        // The index list comes from an up-to-date node; same group first (any would do).
        let mut candidates: Vec<&str> = routing.topology.nodes.iter().map(|n| n.id.as_str()).filter(|id| *id != node).collect();
        candidates.sort_by_key(|id| routing.topology.node(id).map(|n| n.replica_group != dst.replica_group));
        let lister = candidates
            .iter()
            .find(|id| self.serves_reads(id))
            .ok_or(SyncError::NoSource { index: None, shard: None })?;
        let lister_addr = address_of(lister).ok_or_else(|| SyncError::UnknownNode(lister.to_string()))?;
        let source_indexes = self.node_indexes(&lister_addr).await?;
        let node_indexes = self.node_indexes(&dst_addr).await?;
        let wanted = |uid: &str| scope.indexes.as_ref().is_none_or(|l| l.iter().any(|x| x == uid));

        let mut stats = RebuildStats::default();
        // Indexes the node should not have: all that the source lacks (full rebuild), or those
        // named in the scope that the source lacks (deleted through Miroir meanwhile).
        for uid in node_indexes.keys().filter(|u| wanted(u) && !source_indexes.contains_key(*u)) {
            let Ok(index) = IndexUid::parse(uid) else { continue };
            let t = self.enqueue(&dst_addr, Method::DELETE, &NodePath::index(&index), None).await?;
            self.wait_succeeded(&dst_addr, t).await?;
            tracing::info!(node = %node, index = %uid, "deleted an index the up-to-date replicas do not have");
            stats.deleted_indexes.push(uid.clone());
        }
        let held: BTreeSet<u32> = routing
            .assignment
            .groups
            .iter()
            .flat_map(|g| g.iter().enumerate().filter(|(_, h)| h.iter().any(|n| n == node)).map(|(s, _)| s as u32))
            .filter(|s| scope.shards.as_ref().is_none_or(|l| l.contains(s)))
            .collect();
        for (uid, pk) in source_indexes.iter().filter(|(u, _)| wanted(u)) {
            let Ok(index) = IndexUid::parse(uid) else {
                tracing::warn!(node = %lister, index = %uid, "a node lists an index uid Miroir cannot address; skipped");
                continue;
            };
            self.copy_index_meta(&lister_addr, &dst_addr, &index).await?;
            stats.indexes.push(uid.clone());
            if scope.shards.is_none() {
                // Documents Miroir never wrote have no place on a rebuilt node.
                let t = self.delete_where(&dst_addr, &index, &format!("{SHARD_FIELD} NOT EXISTS")).await?;
                let task = self.wait_succeeded(&dst_addr, t).await?;
                stats.untagged_deleted += task.pointer("/details/deletedDocuments").and_then(Value::as_u64).unwrap_or(0);
            }
            // No primary key on an up-to-date node: the index has no document yet.
            let Some(pk) = pk else { continue };
            // The held shards grouped by the up-to-date holder they are copied from, each group
            // copied at once: a few node tasks per source instead of a few per shard (on real
            // Meilisearch every task is a commit; a node holding hundreds of shards would take
            // minutes to come back otherwise).
            let mut by_source: BTreeMap<String, Vec<u32>> = BTreeMap::new();
            for &shard in &held {
                let source = routing
                    .assignment
                    .groups
                    .iter()
                    .flat_map(|g| g[shard as usize].iter())
                    .find(|id| id.as_str() != node && self.serves_reads(id))
                    .ok_or_else(|| SyncError::NoSource { index: Some(uid.clone()), shard: Some(shard) })?;
                by_source.entry(source.clone()).or_default().push(shard);
            }
            for (source, shards) in by_source {
                let src_addr = address_of(&source).ok_or_else(|| SyncError::UnknownNode(source.clone()))?;
                let copy = self.copy_shards(&src_addr, &dst_addr, &index, pk, &shards, None).await?;
                tracing::info!(node = %node, index = %uid, shards = shards.len(), source = %source, documents = copy.documents, fixed = copy.fixed, elapsed_ms = copy.elapsed_ms, "shards rebuilt");
                stats.documents += copy.documents;
                for shard in shards {
                    let documents = copy.per_shard.get(&shard).copied().unwrap_or(0);
                    let one = CopyStats { documents, per_shard: BTreeMap::new(), ..copy.clone() };
                    stats.shards.push(ShardRebuild { index: uid.clone(), shard, source: source.clone(), stats: one });
                }
            }
        }
        stats.elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::info!(node = %node, reason = %scope.reason, indexes = stats.indexes.len(), shards = stats.shards.len(), documents = stats.documents, elapsed_ms = stats.elapsed_ms, "rebuild done");
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_rejected_key_is_read_from_meilisearchs_wording() {
        let body = keys(json!({"displayedAttributes": ["*"], "chat": {}, "typoTolerance": {}}));
        assert_eq!(rejected_key("Unknown field `chat`: expected one of `displayedAttributes`, `typoTolerance`", &body).as_deref(), Some("chat"));
        assert_eq!(rejected_key("Invalid value type at `.typoTolerance.enabled`: expected a boolean", &body).as_deref(), Some("typoTolerance"));
        assert_eq!(rejected_key("Invalid value at `.displayedAttributes[0]`: nope", &body).as_deref(), Some("displayedAttributes"));
        // A key the body does not have, or no key at all: nothing to drop.
        assert_eq!(rejected_key("Unknown field `other`: expected one of `chat`", &body), None);
        assert_eq!(rejected_key("Index `x` not found.", &body), None);
    }

    #[test]
    fn embedders_with_redacted_keys_are_not_copied() {
        let (b, dropped) = copyable_settings(&json!({"embedders": {"e": {"source": "openAi", "apiKey": "sk-XXX..."}}, "stopWords": []}));
        assert!(!b.contains_key("embedders"));
        assert_eq!(dropped, vec!["embedders"]);
        let (b, dropped) = copyable_settings(&json!({"embedders": {"e": {"source": "userProvided", "dimensions": 3}}}));
        assert!(b.contains_key("embedders"));
        assert!(dropped.is_empty());
    }
}

//! Cluster-wide backups: `POST /dumps` and `POST /snapshots` as ONE Miroir task made of every
//! node's own dump (snapshot) task, plus a manifest kept in the task store
//! (`GET /_miroir/backups/{uid}`) saying which file on which node belongs to the backup, the
//! topology and placement the documents were spread by, and the task-store state a restored
//! cluster needs (API keys, webhooks, index settings Miroir keeps different on the nodes).
//!
//! Consistency: the node dumps are enqueued with this process's write gate held exclusively
//! (as a migration's cut-over does): every write this process acknowledged before is already
//! enqueued on its nodes (so it is in their dumps, Meilisearch processes its queue in order),
//! and no write starts until every node has the dump enqueued. Nodes that missed writes (down
//! at the time, replay pending) are named in the manifest (`pendingOperations`).
//!
//! Miroir cannot fetch the files: a node writes its dump into its own `--dump-dir`
//! (`<dumpUid>.dump`) and its snapshot into its `--snapshot-dir` (`<db name>.snapshot`); the
//! manifest names node, node task and file. `docs/backup.md` describes the restore.

use reqwest::Method;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::fanout::NodeCall;
use super::tasks::{rfc3339, store_error};
use super::write::node_tasks;
use super::Proxy;
use crate::error::{ApiError, ApiResult, Code};
use crate::node::NodePath;
use crate::store::{TaskRecord, TaskStatus};

/// Which kind of backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupKind {
    Dump,
    Snapshot,
}

impl BackupKind {
    pub fn task_type(self) -> &'static str {
        match self {
            BackupKind::Dump => "dumpCreation",
            BackupKind::Snapshot => "snapshotCreation",
        }
    }
    fn route(self) -> NodePath {
        match self {
            BackupKind::Dump => NodePath::route("/dumps"),
            BackupKind::Snapshot => NodePath::route("/snapshots"),
        }
    }
    fn name(self) -> &'static str {
        match self {
            BackupKind::Dump => "dump",
            BackupKind::Snapshot => "snapshot",
        }
    }
}

/// The uid of a backup, as Meilisearch names a dump (`20261203-113805123`, the time it was
/// asked for, milliseconds): the `dumpUid` of the Miroir task and the manifest's key.
pub fn backup_uid(enqueued_at: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!(
        "[year repr:full][month repr:numerical][day padding:zero]-[hour padding:zero][minute padding:zero][second padding:zero][subsecond digits:3]"
    );
    enqueued_at.format(&fmt).expect("a dump uid format")
}

/// `details` of a finished Miroir backup task.
pub fn finished_details(task: &TaskRecord, status: TaskStatus) -> Value {
    match task.kind.as_str() {
        "dumpCreation" => {
            json!({ "dumpUid": if status == TaskStatus::Succeeded { json!(backup_uid(task.enqueued_at)) } else { Value::Null } })
        }
        _ => task.details.clone(),
    }
}

impl Proxy {
    /// Starts a cluster-wide backup: every node's dump (snapshot) task, enqueued under the
    /// write fence, as one Miroir task; its manifest stored under [`backup_uid`].
    pub(crate) async fn create_backup(&self, kind: BackupKind) -> ApiResult<TaskRecord> {
        let enqueued_at = OffsetDateTime::now_utc();
        let (routing, outcomes) = {
            // Every write of this process holds the gate shared until its parts are sent: the
            // exclusive hold waits for those in flight and keeps new ones out meanwhile.
            let _fence = self.inner.rebalance.gate.clone().write_owned().await;
            let routing = self.routing_or_error()?;
            if let Some(m) = &routing.migration {
                return Err(ApiError::new(
                    Code::MiroirRebalanceInProgress,
                    format!("A migration ({}) is moving documents between nodes; a {} taken now could miss some. Retry once it has ended (GET /_miroir/rebalance).", m.id, kind.name()),
                ));
            }
            let calls: Vec<NodeCall> = routing
                .topology
                .nodes
                .iter()
                .map(|n| NodeCall { node_id: n.id.clone(), method: Method::POST, path: kind.route(), content_type: None, body: None })
                .collect();
            let outcomes = self.call_nodes(&routing, calls).await;
            (routing, outcomes)
        };
        let missing: Vec<&str> = outcomes.iter().filter(|o| !o.accepted()).map(|o| o.node_id.as_str()).collect();
        if !missing.is_empty() {
            return Err(ApiError::new(
                Code::MiroirNodeUnavailable,
                format!(
                    "A {} of the cluster needs every node, and {} did not accept it; no backup was recorded. Retry once every node is up.",
                    kind.name(),
                    missing.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let nt = node_tasks(&outcomes);
        let details = match kind {
            BackupKind::Dump => json!({ "dumpUid": null }),
            BackupKind::Snapshot => Value::Null,
        };
        let task = self.create_task(kind.task_type(), None, details, nt.clone(), enqueued_at).await?;
        let uid = backup_uid(enqueued_at);
        let store = self.store();
        let mut nodes = Vec::new();
        for n in &routing.topology.nodes {
            let pending = store.missed_summary(&n.id).await.map_err(store_error)?.pending;
            nodes.push(json!({
                "nodeId": n.id,
                "address": n.address,
                "replicaGroup": n.replica_group,
                "nodeTaskUid": nt.iter().find(|t| t.node_id == n.id).map(|t| t.task_uid),
                "status": "enqueued",
                "dumpUid": null,
                "file": null,
                "pendingOperations": pending,
            }));
        }
        let placement = store.get_placement().await.map_err(store_error)?.map(|(_, p)| p);
        let (_, webhooks) = self.runtime_webhooks().await?;
        let keys = store.list_api_keys().await.map_err(store_error)?;
        let manifest = json!({
            "uid": uid,
            "type": kind.task_type(),
            "taskUid": task.uid,
            "status": "enqueued",
            "createdAt": rfc3339(enqueued_at),
            "topology": routing.topology,
            "placement": placement,
            "nodes": nodes,
            "store": {
                "apiKeys": keys,
                "webhooks": webhooks,
                "indexSettings": self.settings_overlays().await,
            },
        });
        store.put_backup(&uid, &manifest).await.map_err(store_error)?;
        Ok(task)
    }

    /// Miroir's per-index settings overlays, by index uid (indexes as one node lists them).
    async fn settings_overlays(&self) -> Value {
        let mut out = Map::new();
        let Ok(routing) = self.routing_or_error() else { return Value::Object(out) };
        let path = NodePath::route("/indexes").query("limit", "100000");
        let Ok(r) = self.read_any(&routing, Method::GET, &path, None).await else { return Value::Object(out) };
        let uids: Vec<String> = r.body["results"]
            .as_array()
            .map(|a| a.iter().filter_map(|i| i["uid"].as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        for uid in uids {
            if let Ok(Some(s)) = self.store().get_index_settings(&uid).await {
                out.insert(uid, s);
            }
        }
        Value::Object(out)
    }

    /// The manifest of a backup, completed from the nodes' tasks once they have ended (each
    /// node's dump uid and file), and stored again when it changed.
    pub(crate) async fn backup_manifest(&self, uid: &str) -> ApiResult<Option<Value>> {
        let store = self.store();
        let Some(mut m) = store.get_backup(uid).await.map_err(store_error)? else { return Ok(None) };
        if m["status"] == "succeeded" || m["status"] == "failed" {
            return Ok(Some(m));
        }
        let before = m.clone();
        if let Some(task_uid) = m["taskUid"].as_u64() {
            if let Ok(t) = self.get_task(task_uid).await {
                m["status"] = json!(t.status.as_str());
            }
        }
        let routing = self.routing();
        let kind = m["type"].as_str().unwrap_or_default().to_string();
        if let (Some(routing), Some(nodes)) = (routing, m["nodes"].as_array_mut()) {
            for n in nodes.iter_mut() {
                if n["status"] == "succeeded" {
                    continue;
                }
                let (Some(id), Some(task)) = (n["nodeId"].as_str().map(str::to_string), n["nodeTaskUid"].as_u64()) else { continue };
                let Some(addr) = routing.topology.node(&id).map(|x| x.address.clone()) else { continue };
                let Ok(r) = self.inner.nodes.send_json(&addr, Method::GET, &NodePath::task(task), None, self.node_timeout()).await else {
                    continue;
                };
                if !r.is_success() {
                    continue;
                }
                n["status"] = r.body["status"].clone();
                if kind == "dumpCreation" {
                    if let Some(d) = r.body.pointer("/details/dumpUid").and_then(Value::as_str) {
                        n["dumpUid"] = json!(d);
                        n["file"] = json!(format!("{d}.dump in the node's dump directory (--dump-dir, default `dumps/`)"));
                    }
                } else if r.body["status"] == "succeeded" {
                    n["file"] = json!("<db name>.snapshot (e.g. `data.ms.snapshot`) in the node's snapshot directory (--snapshot-dir, default `snapshots/`); each snapshot replaces the previous one");
                }
            }
        }
        if m != before {
            store.put_backup(uid, &m).await.map_err(store_error)?;
        }
        Ok(Some(m))
    }

    /// Writes the task-store part of a backup manifest (`store`) into this Miroir's store, for
    /// a cluster restored from the backup: the API keys (replacing every key: with the same
    /// master key they are the same key values again), the webhook set (replaced), and the
    /// index-settings overlays. Returns how many of each.
    pub(crate) async fn restore_store(&self, manifest: &Value) -> ApiResult<Value> {
        let bad = |m: String| ApiError::new(Code::BadRequest, m);
        let part = manifest.get("store").and_then(Value::as_object).ok_or_else(|| {
            bad("The body must be a backup manifest (as `GET /_miroir/backups/{uid}` answers it): its `store` object is missing.".into())
        })?;
        let keys: Vec<crate::store::ApiKeyRecord> = serde_json::from_value(part.get("apiKeys").cloned().unwrap_or(json!([])))
            .map_err(|e| bad(format!("`store.apiKeys` cannot be read: {e}")))?;
        let webhooks: super::webhooks::Webhooks = serde_json::from_value(part.get("webhooks").cloned().unwrap_or(json!({})))
            .map_err(|e| bad(format!("`store.webhooks` cannot be read: {e}")))?;
        let settings = match part.get("indexSettings") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(bad("`store.indexSettings` must be an object".into())),
        };
        let store = self.store();
        for k in store.list_api_keys().await.map_err(store_error)? {
            store.delete_api_key(k.uid).await.map_err(store_error)?;
        }
        for k in &keys {
            store.insert_api_key(k).await.map_err(store_error)?;
        }
        loop {
            let (version, _) = self.runtime_webhooks().await?;
            if self.put_runtime_webhooks(version, &webhooks).await? {
                break;
            }
        }
        for (uid, s) in &settings {
            store.put_index_settings(uid, s).await.map_err(store_error)?;
        }
        self.index_context_changed(None).await;
        Ok(json!({ "apiKeys": keys.len(), "webhooks": webhooks.len(), "indexSettings": settings.len() }))
    }

    /// Every backup's uid, oldest first.
    pub(crate) async fn backup_uids(&self) -> ApiResult<Vec<String>> {
        self.store().list_backups().await.map_err(store_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_read_as_meilisearch_dump_uids() {
        let t = time::macros::datetime!(2026-12-03 11:38:05.123456 UTC);
        assert_eq!(backup_uid(t), "20261203-113805123");
    }
}

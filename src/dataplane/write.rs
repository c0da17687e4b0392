//! The write service: broadcasts (index and settings changes), document writes grouped per
//! node, deletions by id; each judged by the quorum rule and recorded as one Miroir task.
//! The HTTP layer parses and validates the request; this module only routes and records.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{json, Value};

use super::fanout::{group_for_write, CallOutcome, NodeCall, QuorumReport, WritePart};
use super::hash::shard_of;
use super::merge::SHARD_FIELD;
use super::payload::{document_id, infer_primary_key, Document};
use super::settings as node_settings;
use super::tasks::store_error;
use super::{Proxy, RoutingTable};
use crate::error::{ApiError, ApiResult, Code};
use crate::model::{DocumentId, IndexUid};
use crate::node::NodePath;
use crate::store::{NodeTask, TaskRecord};

/// An accepted write: the task the client gets, and which groups missed quorum (if any).
#[derive(Debug)]
pub struct WriteAck {
    pub task: TaskRecord,
    pub report: Option<QuorumReport>,
}

/// The node tasks behind a write: one per node that accepted it.
pub fn node_tasks(outcomes: &[CallOutcome]) -> Vec<NodeTask> {
    outcomes
        .iter()
        .filter(|o| o.accepted())
        .filter_map(|o| {
            let r = o.result.as_ref().ok()?;
            Some(NodeTask { node_id: o.node_id.clone(), task_uid: r.body.get("taskUid")?.as_u64()? })
        })
        .collect()
}

/// The distinct shards, ascending.
fn shard_list(shards: impl Iterator<Item = u32>) -> Vec<u32> {
    shards.collect::<BTreeSet<u32>>().into_iter().collect()
}

/// A document write as the HTTP layer parsed it.
pub struct DocumentWrite {
    pub uid: IndexUid,
    /// `POST` (replace) or `PUT` (update).
    pub method: Method,
    pub documents: Vec<Document>,
    /// `?primaryKey=`.
    pub primary_key: Option<String>,
    /// `?skipCreation=true`: documents that do not exist are ignored. Each document goes only
    /// to the holders of its shard, which are the only nodes that can hold it: every node
    /// skips exactly the documents that do not exist in the cluster.
    pub skip_creation: bool,
}

impl Proxy {
    pub(crate) fn routing_or_error(&self) -> ApiResult<std::sync::Arc<RoutingTable>> {
        self.routing().ok_or_else(|| {
            ApiError::new(Code::MiroirNodeUnavailable, "Miroir has no topology yet: no Meilisearch node is configured.")
        })
    }

    /// Broadcasts a write to every node and records the task.
    pub async fn broadcast_write(
        &self,
        method: Method,
        path: &NodePath,
        body: Option<&Value>,
        index_uid: Option<&IndexUid>,
        details: Value,
    ) -> ApiResult<WriteAck> {
        let enqueued_at = time::OffsetDateTime::now_utc();
        let routing = self.write_routing().await?;
        let (outcomes, report) = self.broadcast(&routing, index_uid.map(IndexUid::as_str), method, path, body).await?;
        if !report.ok() {
            return Err(super::fanout::auth_refusals(&outcomes).unwrap_or_else(|| report.into_error()));
        }
        let kind = outcomes
            .iter()
            .find_map(|o| {
                o.result.as_ref().ok().filter(|r| r.is_success()).and_then(|r| r.body.get("type")).and_then(Value::as_str).map(str::to_string)
            })
            .unwrap_or_default();
        let task = self.create_task(&kind, index_uid.map(IndexUid::as_str), details, node_tasks(&outcomes), enqueued_at).await?;
        if super::context_cache::changes_context(&kind) {
            // After the task is stored: see `context_cache`.
            self.index_context_changed(index_uid.map(IndexUid::as_str)).await;
        }
        Ok(WriteAck { task, report: Some(report) })
    }

    /// What one node says about an index: `None` if it does not exist.
    pub async fn index_meta(&self, routing: &RoutingTable, uid: &IndexUid) -> ApiResult<Option<Value>> {
        let r = self.read_any(routing, Method::GET, &NodePath::index(uid), None).await?;
        match r.status {
            200 if r.body.get("primaryKey").is_some_and(Value::is_null) => {
                // A key inferred from the first documents is only on the nodes that got some.
                let mut body = r.body;
                let known = self.cluster_primary_key(routing, uid).await;
                if let Some(pk) = known {
                    body["primaryKey"] = pk;
                }
                Ok(Some(body))
            }
            200 => Ok(Some(r.body)),
            404 => Ok(None),
            _ => Err(ApiError::Passthrough { status: r.status, body: r.body }),
        }
    }

    /// The primary key any node that serves reads has for the index. Meilisearch infers it
    /// from the first documents: only the nodes that got some of them have it, the others
    /// still answer `null`, yet the cluster's index has it.
    pub async fn cluster_primary_key(&self, routing: &RoutingTable, uid: &IndexUid) -> Option<Value> {
        let calls: Vec<super::fanout::NodeCall> = routing
            .topology
            .nodes
            .iter()
            .filter(|n| self.serves_reads(&n.id))
            .map(|n| super::fanout::NodeCall { node_id: n.id.clone(), method: Method::GET, path: NodePath::index(uid), content_type: None, body: None })
            .collect();
        self.call_nodes(routing, calls).await.into_iter().find_map(|o| {
            o.result.ok().filter(|r| r.is_success()).and_then(|r| r.body.get("primaryKey").filter(|p| p.is_string()).cloned())
        })
    }

    /// Gives a freshly created index Miroir's node settings (`_miroir_shard` filterable, the
    /// node-side facet limit) and records the client-visible defaults.
    pub async fn init_index_settings(&self, routing: &RoutingTable, uid: &IndexUid) -> ApiResult<()> {
        let body = node_settings::initial_node_settings();
        let (_, report) =
            self.broadcast(routing, Some(uid.as_str()), Method::PATCH, &NodePath::index(uid).then("settings"), Some(&body)).await?;
        if !report.ok() {
            return Err(report.into_error());
        }
        self.store()
            .put_index_settings(uid.as_str(), &node_settings::overlay(node_settings::DEFAULT_MAX_VALUES_PER_FACET))
            .await
            .map_err(store_error)
    }

    /// Creates an index on every node (Miroir-internal: no client task), with Miroir's settings.
    async fn create_index_everywhere(&self, routing: &RoutingTable, uid: &IndexUid, pk: Option<&str>) -> ApiResult<()> {
        let (_, report) = self
            .broadcast(routing, Some(uid.as_str()), Method::POST, &NodePath::route("/indexes"), Some(&json!({"uid": uid.as_str(), "primaryKey": pk})))
            .await?;
        if !report.ok() {
            return Err(report.into_error());
        }
        self.init_index_settings(routing, uid).await
    }

    /// Adds or updates documents: each goes to the holders of its shard, tagged with it.
    pub async fn write_documents(&self, w: DocumentWrite) -> ApiResult<WriteAck> {
        const KIND: &str = "documentAdditionOrUpdate";
        let enqueued_at = time::OffsetDateTime::now_utc();
        let DocumentWrite { uid, method, mut documents, primary_key: query_pk, skip_creation } = w;
        let routing = self.write_routing().await?;
        let details = json!({"receivedDocuments": documents.len(), "indexedDocuments": null});
        let meta = self.index_meta(&routing, &uid).await?;
        let index_pk = meta.as_ref().and_then(|m| m.get("primaryKey")).and_then(Value::as_str).map(str::to_string);

        // Resolve the primary key as Meilisearch would; failures fail the task, no node touched.
        let pk = match (&index_pk, &query_pk) {
            (Some(ipk), Some(qpk)) if ipk != qpk => Err(ApiError::new(
                Code::IndexPrimaryKeyAlreadyExists,
                format!("Index `{uid}`: Index already has a primary key: `{ipk}`."),
            )),
            (Some(ipk), _) => Ok(ipk.clone()),
            (None, Some(qpk)) => Ok(qpk.clone()),
            (None, None) => infer_primary_key(documents.first()),
        };
        // A batch Meilisearch would fail inside its task: the index is still created (as one
        // Meilisearch does), no document reaches a node, and the task fails with the same error.
        let pk_and_ids = pk.and_then(|pk| {
            let routed = documents
                .iter()
                .enumerate()
                .map(|(i, d)| document_id(d, &pk).map(|id| (shard_of(&id, routing.topology.shards), i)))
                .collect::<Result<Vec<(u32, usize)>, ApiError>>()?;
            Ok((pk, routed))
        });
        let (pk, routed) = match pk_and_ids {
            Ok(x) => x,
            Err(e) => {
                if meta.is_none() {
                    self.create_index_everywhere(&routing, &uid, None).await?;
                }
                let details = json!({"receivedDocuments": documents.len(), "indexedDocuments": 0});
                let task = self.create_failed_task(KIND, Some(uid.as_str()), details, &e).await?;
                if index_pk.is_none() {
                    self.index_context_changed(Some(uid.as_str())).await;
                }
                return Ok(WriteAck { task, report: None });
            }
        };
        for (shard, i) in &routed {
            documents[*i].insert(SHARD_FIELD.into(), json!(shard));
        }
        if meta.is_none() {
            // Create the index everywhere first (each node's queue keeps the order), so every
            // node knows it even if this batch sends it no document.
            self.create_index_everywhere(&routing, &uid, Some(&pk)).await?;
        }
        let per_node: BTreeMap<(String, bool), Vec<(u32, usize)>> =
            group_for_write(&routing, &routed.iter().map(|(s, i)| (*s, (*s, *i))).collect::<Vec<_>>());
        let mut path = NodePath::index(&uid).then("documents").query("primaryKey", pk.as_str());
        if skip_creation {
            path = path.query("skipCreation", "true");
        }
        let parts: Vec<WritePart> = per_node
            .into_iter()
            .map(|((node, queued), idx)| {
                let batch: Vec<&Document> = idx.iter().map(|(_, i)| &documents[*i]).collect();
                WritePart {
                    queued,
                    call: NodeCall {
                        node_id: node,
                        method: method.clone(),
                        path: path.clone(),
                        content_type: Some("application/json"),
                        body: Some(serde_json::to_vec(&batch).expect("json")),
                    },
                    shards: shard_list(idx.iter().map(|(s, _)| *s)),
                }
            })
            .collect();
        let shards: BTreeSet<u32> = routed.iter().map(|(s, _)| *s).collect();
        let (outcomes, report) = self.routed_write(&routing, uid.as_str(), parts, &shards).await?;
        let task = self.create_task(KIND, Some(uid.as_str()), details, node_tasks(&outcomes), enqueued_at).await?;
        if index_pk.is_none() {
            // The nodes set (or infer) the primary key: a context change (see `context_cache`).
            self.index_context_changed(Some(uid.as_str())).await;
        }
        Ok(WriteAck { task, report: Some(report) })
    }

    /// Sends per-node calls of a routed write and judges them by quorum over `shards`; a
    /// node's 4xx is the client's error.
    async fn routed_write(&self, routing: &RoutingTable, index: &str, parts: Vec<WritePart>, shards: &BTreeSet<u32>) -> ApiResult<(Vec<CallOutcome>, QuorumReport)> {
        let outcomes = self.send_write(routing, Some(index), parts, false).await?;
        let report = self.judge_quorum(routing, shards, &outcomes).await;
        if !report.ok() {
            return Err(super::fanout::auth_refusals(&outcomes).unwrap_or_else(|| report.into_error()));
        }
        Ok((outcomes, report))
    }

    /// Deletes documents by id: each id goes to the holders of its shard. `ids` are the values
    /// as the client gave them (sent to the nodes as they are, in a JSON body).
    pub async fn delete_ids(&self, uid: &IndexUid, ids: Vec<Value>) -> ApiResult<WriteAck> {
        let enqueued_at = time::OffsetDateTime::now_utc();
        let routing = self.write_routing().await?;
        let mut routed: Vec<(u32, Value)> = Vec::with_capacity(ids.len());
        for id in &ids {
            let canonical = super::hash::canonical_pk(id).ok_or_else(|| {
                ApiError::new(Code::InvalidDocumentId, format!("Document identifier `{id}` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes."))
            })?;
            routed.push((shard_of(&canonical, routing.topology.shards), id.clone()));
        }
        let details = json!({"providedIds": ids.len(), "deletedDocuments": null, "originalFilter": null});
        let path = NodePath::index(uid).then("documents").then("delete-batch");
        let per_node = group_for_write(&routing, &routed.iter().map(|(s, id)| (*s, (*s, id.clone()))).collect::<Vec<_>>());
        if per_node.is_empty() {
            // Nothing to route: an empty batch still is a (trivially successful) deletion task
            // on one Meilisearch; broadcast it so the task has a real lifecycle.
            return self.broadcast_write(Method::POST, &path, Some(&json!([])), Some(uid), details).await;
        }
        let parts: Vec<WritePart> = per_node
            .into_iter()
            .map(|((node, queued), ids)| WritePart {
                queued,
                shards: shard_list(ids.iter().map(|(s, _)| *s)),
                call: NodeCall {
                    node_id: node,
                    method: Method::POST,
                    path: path.clone(),
                    content_type: Some("application/json"),
                    body: Some(serde_json::to_vec(&ids.iter().map(|(_, id)| id).collect::<Vec<_>>()).expect("json")),
                },
            })
            .collect();
        let shards: BTreeSet<u32> = routed.iter().map(|(s, _)| *s).collect();
        let (outcomes, report) = self.routed_write(&routing, uid.as_str(), parts, &shards).await?;
        let task = self.create_task("documentDeletion", Some(uid.as_str()), details, node_tasks(&outcomes), enqueued_at).await?;
        Ok(WriteAck { task, report: Some(report) })
    }

    /// The healthy holders of a document's shard, group by group (`Err`: none is healthy).
    pub fn document_holders(&self, routing: &RoutingTable, id: &DocumentId) -> Result<Vec<String>, u32> {
        let shard = shard_of(id.as_str(), routing.topology.shards);
        let mut candidates = Vec::new();
        for g in &routing.assignment.groups {
            for n in &g[shard as usize] {
                if self.serves_reads(n) {
                    candidates.push(n.clone());
                }
            }
        }
        if candidates.is_empty() {
            Err(shard)
        } else {
            Ok(candidates)
        }
    }
}

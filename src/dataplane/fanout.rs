//! Sending requests to nodes in parallel and judging the outcome by the quorum rule:
//! within a replica group, a shard's write succeeds when floor(RF/2)+1 of its RF holders
//! accepted it; a request succeeds when, for every shard it touched, at least one group
//! reached quorum. Groups/shards that missed quorum are reported in `X-Miroir-Degraded`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use reqwest::Method;

use super::topology::Assignment;
use super::{Proxy, RoutingTable};
use crate::error::{ApiError, Code};
use crate::node::{NodeError, NodePath, NodeResponse};

pub const DEGRADED_HEADER: &str = "x-miroir-degraded";

/// One request to one node.
#[derive(Debug, Clone)]
pub struct NodeCall {
    pub node_id: String,
    pub method: Method,
    pub path: NodePath,
    pub content_type: Option<&'static str>,
    pub body: Option<Vec<u8>>,
}

/// One node's part of a write: the request and the shards it carries (empty: everything the
/// node holds, e.g. a settings change).
#[derive(Debug, Clone)]
pub struct WritePart {
    pub call: NodeCall,
    pub shards: Vec<u32>,
    /// Not sent now: appended to the running migration's queue for the node, which is
    /// receiving these shards (or joining the cluster), and replayed to it in order.
    pub queued: bool,
}

impl WritePart {
    /// The part as a stored operation (a missed write, or a migration's queued one): sent
    /// again later exactly as it would have been sent now.
    pub fn into_op(self, index: Option<&str>) -> crate::store::NewMissedOp {
        crate::store::NewMissedOp {
            index_uid: index.map(str::to_string),
            shards: self.shards,
            method: self.call.method.to_string(),
            path: self.call.path.to_string(),
            content_type: self.call.content_type.map(str::to_string),
            body: self.call.body.unwrap_or_default(),
            task_uid: None,
            created_at: time::OffsetDateTime::now_utc(),
        }
    }
}

/// What one node answered (or why it could not).
#[derive(Debug)]
pub struct CallOutcome {
    pub node_id: String,
    pub result: Result<NodeResponse, NodeError>,
}

impl CallOutcome {
    pub fn accepted(&self) -> bool {
        matches!(&self.result, Ok(r) if r.is_success())
    }
    /// A 4xx answer: the request itself is wrong; pass the node's error through.
    pub fn client_error(&self) -> Option<ApiError> {
        match &self.result {
            Ok(r) if (400..500).contains(&r.status) => {
                Some(ApiError::Passthrough { status: r.status, body: super::read::sanitize_node_error(r.body.clone()) })
            }
            _ => None,
        }
    }
}

/// The verdict of the quorum rule over a set of shards.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuorumReport {
    /// (group, shard) pairs that missed quorum.
    pub missed: Vec<(u32, u32)>,
    /// Shards that reached quorum in no group at all.
    pub failed_shards: Vec<u32>,
}

impl QuorumReport {
    pub fn ok(&self) -> bool {
        self.failed_shards.is_empty()
    }

    /// `X-Miroir-Degraded` value: `shards=<group>/<shard>,...` (empty when nothing missed).
    pub fn header_value(&self) -> Option<String> {
        if self.missed.is_empty() {
            return None;
        }
        let list: Vec<String> = self.missed.iter().map(|(g, s)| format!("{g}/{s}")).collect();
        Some(format!("shards={}", list.join(",")))
    }

    pub fn into_error(self) -> ApiError {
        let shards: Vec<String> = self.failed_shards.iter().map(u32::to_string).collect();
        let mut e = ApiError::new(
            Code::MiroirNoQuorum,
            format!(
                "Write quorum was not reached for shard(s) {} in any replica group, so the write is not acknowledged. It may still be applied: it is queued for the nodes that missed it and replayed when they are back. Retrying it is safe.",
                shards.join(", ")
            ),
        );
        if let Some(h) = self.header_value() {
            e = e.with_header(DEGRADED_HEADER, h);
        }
        e
    }
}

/// Pure quorum evaluation.
pub fn evaluate_quorum(
    assignment: &Assignment,
    replication_factor: u32,
    shards: &BTreeSet<u32>,
    accepted: &HashSet<String>,
) -> QuorumReport {
    let need = (replication_factor / 2 + 1) as usize;
    let mut report = QuorumReport::default();
    for &s in shards {
        let mut any = false;
        for (g, group) in assignment.groups.iter().enumerate() {
            let ok = group[s as usize].iter().filter(|n| accepted.contains(*n)).count() >= need;
            if ok {
                any = true;
            } else {
                report.missed.push((g as u32, s));
            }
        }
        if !any {
            report.failed_shards.push(s);
        }
    }
    report.missed.sort_unstable();
    report
}

impl Proxy {
    pub(crate) fn node_timeout(&self) -> Duration {
        Duration::from_millis(self.options().scatter.node_timeout_ms)
    }

    /// Records that a node refuses Miroir's node master key: it gets no traffic, and the
    /// first time it is logged once, loudly.
    pub(crate) fn node_refuses_key(&self, node_id: &str) {
        self.inner.metrics.node_auth_refusals.get_or_create(&super::metrics::NodeLabels { node: node_id.to_string() }).inc();
        if self.inner.health.mark_unauthorized(node_id) {
            tracing::error!(
                node = %node_id,
                "node refuses Miroir's node master key (MIROIR_NODE_MASTER_KEY unset or not the node's master key); it gets no traffic until it accepts it"
            );
        }
    }

    /// Sends every call in parallel. Calls to nodes currently marked failed are not sent
    /// (they count as not accepted). A node that cannot be reached is marked failed.
    pub(crate) async fn call_nodes(&self, routing: &RoutingTable, calls: Vec<NodeCall>) -> Vec<CallOutcome> {
        let timeout = self.node_timeout();
        let futs = calls.into_iter().map(|c| {
            let address = routing.topology.node(&c.node_id).map(|n| n.address.clone());
            async move {
                let result = match address {
                    None => Err(NodeError::Unreachable { address: c.node_id.clone(), message: "not in topology".into() }),
                    Some(_) if self.inner.health.get(&c.node_id).state == super::health::NodeState::Failed => {
                        Err(NodeError::Unreachable { address: c.node_id.clone(), message: "node is marked failed".into() })
                    }
                    Some(addr) => {
                        let r = self
                            .inner
                            .nodes
                            .send_raw(&addr, c.method.clone(), &c.path, c.content_type, c.body.clone(), timeout)
                            .await;
                        // A node refusing Miroir's key is Miroir's problem, never the client's:
                        // its 401/403 is not passed on.
                        let r = match r {
                            Ok(resp) if crate::node::is_auth_refusal(&resp) => {
                                self.node_refuses_key(&c.node_id);
                                Err(NodeError::Unauthorized { address: addr.clone() })
                            }
                            other => other,
                        };
                        if matches!(r, Err(NodeError::Unreachable { .. }) | Err(NodeError::Timeout { .. })) {
                            tracing::warn!(node = %c.node_id, "node unreachable; marking it failed");
                            self.inner.metrics.node_failures.get_or_create(&super::metrics::NodeLabels { node: c.node_id.clone() }).inc();
                            self.inner.health.mark_failed(&c.node_id);
                            self.inner.sync.mark_unchecked(&c.node_id);
                        }
                        r
                    }
                };
                CallOutcome { node_id: c.node_id, result }
            }
        });
        futures::future::join_all(futs).await
    }

    /// Sends the same JSON request to every node of the topology as one recorded write
    /// ([`Proxy::send_write`]): first to one caught-up node, so that a request the nodes
    /// reject (4xx) is passed through without touching the others, then to the rest. Judged
    /// by quorum over all shards.
    pub(crate) async fn broadcast(
        &self,
        routing: &RoutingTable,
        index: Option<&str>,
        method: Method,
        path: &NodePath,
        body: Option<&serde_json::Value>,
    ) -> Result<(Vec<CallOutcome>, QuorumReport), ApiError> {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("json"));
        let mut parts: Vec<WritePart> = routing
            .topology
            .nodes
            .iter()
            .map(|n| WritePart {
                call: NodeCall {
                    node_id: n.id.clone(),
                    method: method.clone(),
                    path: path.clone(),
                    content_type: bytes.as_ref().map(|_| "application/json"),
                    body: bytes.clone(),
                },
                shards: Vec::new(),
                queued: routing.migration.as_ref().is_some_and(|m| m.joining.contains(&n.id)),
            })
            .collect();
        // A node receiving shards gets a document deletion directly (it applies to the shards
        // it serves) and, queued, the same deletion restricted to the shards it receives: their
        // copy may bring back documents the deletion removed.
        if let (Some(m), Some(uid)) = (&routing.migration, index.and_then(|i| crate::model::IndexUid::parse(i).ok())) {
            for n in &routing.topology.nodes {
                let incoming = m.incoming(&n.id);
                if incoming.is_empty() {
                    continue;
                }
                if let Some(restricted) = super::rebalance::restricted_deletion(&method, path, body, &uid, &incoming) {
                    parts.push(WritePart {
                        call: NodeCall {
                            node_id: n.id.clone(),
                            method: Method::POST,
                            path: NodePath::index(&uid).then("documents").then("delete"),
                            content_type: Some("application/json"),
                            body: Some(serde_json::to_vec(&restricted).expect("json")),
                        },
                        shards: incoming,
                        queued: true,
                    });
                }
            }
        }
        let outcomes = self.send_write(routing, index, parts, true).await?;
        let all: BTreeSet<u32> = (0..routing.topology.shards).collect();
        let report = self.judge_quorum(routing, &all, &outcomes).await;
        Ok((outcomes, report))
    }

    /// The quorum rule over `shards` for the outcomes of one write. A write that misses
    /// quorum only because holders of its shards are healthy but still replaying writes they
    /// missed (the write was appended to their log, behind those) waits up to
    /// `replication.queued_write_wait_ms` for the replay to apply it: a node whose log no
    /// longer holds the write's operation, and does not start with a rebuild that dropped it,
    /// has applied it (the replay acknowledges an operation only once the node's task for it
    /// finished), so it counts for quorum. Without
    /// this, with one copy per group, every write to a shard whose holder is catching up
    /// for a moment (after a rebalance, a restart) would be refused.
    pub(crate) async fn judge_quorum(&self, routing: &RoutingTable, shards: &BTreeSet<u32>, outcomes: &[CallOutcome]) -> QuorumReport {
        let rf = routing.topology.replication_factor;
        let mut accepted: HashSet<String> = outcomes.iter().filter(|o| o.accepted()).map(|o| o.node_id.clone()).collect();
        let report = evaluate_quorum(&routing.assignment, rf, shards, &accepted);
        let wait = self.options().replication.queued_write_wait_ms;
        if report.ok() || wait == 0 {
            return report;
        }
        let mut waiting: Vec<(String, u64)> = outcomes
            .iter()
            .filter_map(|o| match &o.result {
                Err(NodeError::Queued { node, seq })
                    if self.inner.health.get(node).state == super::health::NodeState::Healthy
                        && self.inner.sync.get(node).state == super::replica::SyncState::CatchingUp =>
                {
                    Some((node.clone(), *seq))
                }
                _ => None,
            })
            .collect();
        let mut could = accepted.clone();
        could.extend(waiting.iter().map(|(n, _)| n.clone()));
        if waiting.is_empty() || !evaluate_quorum(&routing.assignment, rf, shards, &could).ok() {
            return report;
        }
        self.inner.sync.wake.notify_one();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(wait);
        loop {
            let mut still = Vec::new();
            for (node, seq) in waiting {
                // Past the write's operation by replay, not by a full rebuild's marker (which
                // dropped it: the node gets the write only when the rebuild copies it).
                match self.store().list_missed(&node, None, 1).await {
                    Ok(ops) if ops.first().is_none_or(|op| op.seq > seq && op.op.method != super::replica::REBUILD_METHOD) => {
                        accepted.insert(node);
                    }
                    _ => still.push((node, seq)),
                }
            }
            waiting = still;
            if waiting.is_empty() || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        evaluate_quorum(&routing.assignment, rf, shards, &accepted)
    }

    /// Sends the parts of one write, in the order this process received its writes to the
    /// index, and makes sure each part reaches its node eventually:
    /// - a node that is not healthy and caught up gets nothing now: the part is appended to its
    ///   missed-operation log, behind what it already missed;
    /// - a part the node could not take (unreachable, timeout, 5xx, refused key) is appended
    ///   the same way;
    /// and both happen durably *before* this returns, so an acknowledged write never depends
    /// on memory. With `probe_first`, one caught-up node is asked first and its 4xx is
    /// returned as the client's error with nothing sent or recorded elsewhere. When no node at
    /// all accepted the write nothing is recorded (nothing was applied; the client is told
    /// to retry).
    pub(crate) async fn send_write(
        &self,
        routing: &RoutingTable,
        index: Option<&str>,
        parts: Vec<WritePart>,
        probe_first: bool,
    ) -> Result<Vec<CallOutcome>, ApiError> {
        let order = self.write_order_lock(index);
        let _in_order = order.lock().await;
        let (queued, parts): (Vec<WritePart>, Vec<WritePart>) = parts.into_iter().partition(|p| p.queued);
        // A healthy node this process still sees catching up may have been caught up by the
        // replay worker of another process (with a shared store): read its log again before
        // appending behind it, or the write would wait in a log that process considers empty
        // while it serves reads from the node.
        let mut looked: Vec<String> = Vec::new();
        for p in &parts {
            let node = &p.call.node_id;
            if !looked.contains(node)
                && self.inner.health.get(node).state == super::health::NodeState::Healthy
                && self.inner.sync.get(node).state == super::replica::SyncState::CatchingUp
            {
                looked.push(node.clone());
                if let Err(e) = self.refresh_sync(node).await {
                    tracing::warn!(node = %node, error = %e, "cannot read the node's missed writes; the write is queued for it");
                }
            }
        }
        let (direct, mut deferred): (Vec<WritePart>, Vec<WritePart>) =
            parts.into_iter().partition(|p| self.takes_writes_now(&p.call.node_id));
        let mut outcomes: Vec<CallOutcome> = Vec::new();
        let mut sent: Vec<(WritePart, CallOutcome)> = Vec::new();
        let mut direct = direct.into_iter();
        if probe_first {
            for part in direct.by_ref() {
                let out = self.call_nodes(routing, vec![part.call.clone()]).await.pop().expect("one outcome");
                if let Some(e) = out.client_error() {
                    return Err(e);
                }
                let accepted = out.accepted();
                sent.push((part, out));
                if accepted {
                    break;
                }
            }
        }
        let rest: Vec<WritePart> = direct.collect();
        let rest_outcomes = self.call_nodes(routing, rest.iter().map(|p| p.call.clone()).collect()).await;
        sent.extend(rest.into_iter().zip(rest_outcomes));
        if let Some(e) = sent.iter().find_map(|(_, o)| o.client_error()) {
            return Err(e);
        }
        let any_accepted = sent.iter().any(|(_, o)| o.accepted());
        for (part, out) in sent {
            if out.accepted() || !any_accepted {
                outcomes.push(out);
            } else {
                deferred.push(part);
                if let Ok(r) = &out.result {
                    tracing::warn!(node = %out.node_id, status = r.status, "node failed a write; it is queued for replay");
                }
            }
        }
        if !any_accepted {
            // Nothing was applied anywhere: nothing to make consistent, nothing recorded.
            outcomes.extend(deferred.into_iter().map(|p| CallOutcome {
                node_id: p.call.node_id.clone(),
                result: Err(NodeError::Unreachable { address: p.call.node_id, message: "not sent: the node is not caught up".into() }),
            }));
            return Ok(outcomes);
        }
        for part in deferred {
            let node = part.call.node_id.clone();
            let seq = self.record_missed(index, part).await?;
            outcomes.push(CallOutcome { node_id: node.clone(), result: Err(NodeError::Queued { node, seq }) });
        }
        if let Some(m) = &routing.migration {
            for part in queued {
                self.queue_for_migration(&m.id, index, part).await?;
            }
        }
        Ok(outcomes)
    }

    /// Whether a write can be sent to the node now instead of being queued for it.
    fn takes_writes_now(&self, node: &str) -> bool {
        self.inner.health.get(node).state == super::health::NodeState::Healthy && self.inner.sync.takes_writes(node)
    }

    fn write_order_lock(&self, index: Option<&str>) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        self.inner.write_order.lock().expect("write order lock").entry(index.unwrap_or("").to_string()).or_default().clone()
    }

    /// Node ids that reads may be sent to (healthy and caught up), in topology order; a node
    /// joining with a migration answers none until the cut-over (it may lack an index yet).
    pub(crate) fn usable_nodes<'a>(&self, routing: &'a RoutingTable) -> Vec<&'a str> {
        routing
            .topology
            .nodes
            .iter()
            .filter(|n| !routing.migration.as_ref().is_some_and(|m| m.joining.contains(&n.id)))
            .filter(|n| self.serves_reads(&n.id))
            .map(|n| n.id.as_str())
            .collect()
    }

    /// Sends a read to the first usable node that answers. Node errors (4xx/5xx) are
    /// answered as the node gave them.
    pub(crate) async fn read_any(
        &self,
        routing: &RoutingTable,
        method: Method,
        path: &NodePath,
        body: Option<&serde_json::Value>,
    ) -> Result<NodeResponse, ApiError> {
        self.read_from(routing, self.usable_nodes(routing), method, path, body).await
    }

    /// Like [`Proxy::read_any`] over the given candidates, in order.
    pub(crate) async fn read_from(
        &self,
        routing: &RoutingTable,
        candidates: Vec<&str>,
        method: Method,
        path: &NodePath,
        body: Option<&serde_json::Value>,
    ) -> Result<NodeResponse, ApiError> {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("json"));
        let mut refused = Vec::new();
        for id in candidates {
            let call = NodeCall {
                node_id: id.to_string(),
                method: method.clone(),
                path: path.clone(),
                content_type: bytes.as_ref().map(|_| "application/json"),
                body: bytes.clone(),
            };
            let out = self.call_nodes(routing, vec![call]).await.pop().expect("one outcome");
            match out.result {
                Ok(r) => return Ok(r),
                Err(NodeError::Unauthorized { .. }) => refused.push(out.node_id),
                Err(_) => {}
            }
        }
        if refused.is_empty() {
            // Nodes known to refuse Miroir's key got no request: name them all the same.
            refused = routing
                .topology
                .nodes
                .iter()
                .filter(|n| self.inner.health.get(&n.id).state == super::health::NodeState::Unauthorized)
                .map(|n| n.id.clone())
                .collect();
        }
        if !refused.is_empty() {
            return Err(node_auth_error(&refused));
        }
        Err(ApiError::new(Code::MiroirNodeUnavailable, "No Meilisearch node could answer the request."))
    }
}

/// The error a client gets when nodes that should answer refuse Miroir's node master key.
pub fn node_auth_error(nodes: &[String]) -> ApiError {
    let list: Vec<String> = nodes.iter().map(|n| format!("`{n}`")).collect();
    ApiError::new(
        Code::MiroirNodeAuth,
        format!("Meilisearch node {} refuses Miroir's node master key; the operator must set MIROIR_NODE_MASTER_KEY to the nodes' master key.", list.join(", ")),
    )
}

/// The auth error behind a failed fan-out, if nodes refused Miroir's key.
pub fn auth_refusals(outcomes: &[CallOutcome]) -> Option<ApiError> {
    let refused: Vec<String> =
        outcomes.iter().filter(|o| matches!(o.result, Err(NodeError::Unauthorized { .. }))).map(|o| o.node_id.clone()).collect();
    (!refused.is_empty()).then(|| node_auth_error(&refused))
}

/// Groups items by the nodes that must receive them: every holder of the item's shard in
/// every replica group.
pub fn group_by_node<T: Clone>(assignment: &Assignment, items: &[(u32, T)]) -> BTreeMap<String, Vec<T>> {
    let mut out: BTreeMap<String, Vec<T>> = BTreeMap::new();
    for (shard, item) in items {
        for group in &assignment.groups {
            for n in &group[*shard as usize] {
                out.entry(n.clone()).or_default().push(item.clone());
            }
        }
    }
    out
}

/// Groups the items of a write by (node, queued): the holders of each item's shard get it
/// directly; during a migration, nodes receiving the shard get it queued, and nodes that
/// gave it up at the cut-over still get it directly until the clean-up.
pub fn group_for_write<T: Clone>(routing: &RoutingTable, items: &[(u32, T)]) -> BTreeMap<(String, bool), Vec<T>> {
    let mut out: BTreeMap<(String, bool), Vec<T>> = BTreeMap::new();
    for (node, v) in group_by_node(&routing.assignment, items) {
        out.insert((node, false), v);
    }
    if let Some(m) = &routing.migration {
        for (shard, item) in items {
            for n in m.queued.get(shard).into_iter().flatten() {
                out.entry((n.clone(), true)).or_default().push(item.clone());
            }
            for n in m.also.get(shard).into_iter().flatten() {
                out.entry((n.clone(), false)).or_default().push(item.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::topology::{NodeSpec, Topology};

    fn topo() -> Topology {
        let nodes = ["a", "b", "c", "d"]
            .iter()
            .enumerate()
            .map(|(i, id)| NodeSpec { id: id.to_string(), address: "http://x:1".into(), replica_group: (i / 2) as u32 })
            .collect();
        Topology { shards: 8, replication_factor: 2, replica_groups: 2, nodes }
    }

    #[test]
    fn one_group_with_quorum_is_enough_and_the_other_is_reported() {
        let t = topo();
        let a = t.assignment();
        let shards: BTreeSet<u32> = (0..8).collect();
        let accepted: HashSet<String> = ["b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let r = evaluate_quorum(&a, 2, &shards, &accepted);
        assert!(r.ok());
        // RF=2 needs both holders: group 0 lost `a`, so every shard misses quorum there.
        assert_eq!(r.missed, (0..8).map(|s| (0, s)).collect::<Vec<_>>());
        assert_eq!(r.header_value().unwrap(), "shards=0/0,0/1,0/2,0/3,0/4,0/5,0/6,0/7");
    }

    #[test]
    fn no_group_with_quorum_fails_naming_shards() {
        let t = topo();
        let a = t.assignment();
        let shards: BTreeSet<u32> = [1, 3].into_iter().collect();
        let accepted: HashSet<String> = ["b", "d"].iter().map(|s| s.to_string()).collect();
        let r = evaluate_quorum(&a, 2, &shards, &accepted);
        assert_eq!(r.failed_shards, vec![1, 3]);
        let e = r.into_error();
        assert_eq!(e.status().as_u16(), 503);
        assert_eq!(e.code_name(), "miroir_no_quorum");
        assert!(e.body()["message"].as_str().unwrap().contains("1, 3"));
    }

    #[test]
    fn rf3_needs_two_of_three() {
        let nodes = ["a", "b", "c"]
            .iter()
            .map(|id| NodeSpec { id: id.to_string(), address: "http://x:1".into(), replica_group: 0 })
            .collect();
        let t = Topology { shards: 4, replication_factor: 3, replica_groups: 1, nodes };
        let a = t.assignment();
        let shards: BTreeSet<u32> = (0..4).collect();
        let two: HashSet<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        assert!(evaluate_quorum(&a, 3, &shards, &two).ok());
        let one: HashSet<String> = ["a"].iter().map(|s| s.to_string()).collect();
        assert!(!evaluate_quorum(&a, 3, &shards, &one).ok());
    }
}

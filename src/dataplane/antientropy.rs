//! Anti-entropy: a background check that the replicas of every shard hold the same documents,
//! and that every node has the same settings for every index, repairing what differs.
//!
//! The replay of missed writes (the catch-up worker) keeps a node that missed writes out of
//! reads until it has them; this check is for what replay cannot see: a document lost or added
//! on a node behind Miroir's back (an operator writing to a node directly, a node restored
//! from an old snapshot, a bug). It only looks at nodes that currently serve reads (healthy and
//! caught up); nodes catching up or failed are the replay worker's.
//!
//! # The repair rule
//! For each index and shard, the id sets of the shard (`_miroir_shard = s`) on its holders in
//! every group are compared:
//! * a document present on some replica and absent on another is **copied** there from one
//!   that has it: every caught-up replica holds every acknowledged write, so a missing one was
//!   lost;
//! * with three replicas or more, a document present on **fewer than half** of them and absent
//!   on the others is **deleted** from those that have it (the majority did not take it: a write
//!   that was never acknowledged, or a document added behind Miroir's back). With two replicas
//!   there is no majority and **the union wins** (a copy is never lost for a stray);
//! * a document **without** `_miroir_shard` was never written by Miroir (every document Miroir
//!   writes carries its shard) and is deleted, with a filter deletion that removes only what is
//!   still untagged when the node runs it.
//!
//! A document carrying a plausible tag is indistinguishable from one Miroir wrote: it follows
//! the replica rule above (kept and copied with two replicas, deleted when a minority of three).
//!
//! Settings: `GET /indexes/{uid}/settings` of every up-to-date node are compared; the nodes
//! that differ from a strict majority get the majority's settings; a tie is reported, never
//! repaired (there is no way to tell which side is right).
//!
//! # Writes in flight
//! Node tasks are asynchronous: an acknowledged write may be applied on one replica and still
//! queued on another, which looks like a divergence. So a difference is never repaired from the
//! first look: for a shard (or settings) that differs, the check takes this process's write
//! order lock of the index (no write of this process to the index is sent meanwhile), waits
//! until the replicas have no queued task for the index, looks again and repairs only what
//! still differs, enqueuing the repair before the lock is released (a node runs an index's
//! tasks in order, so a later client write lands after the repair). Writes sent by *other*
//! Miroir processes (Redis store, several pods) are not held back; a document written and
//! deleted by another pod during that window may come back, and a later pass sees it as any
//! other divergence.
//!
//! # Cost
//! A pass reads every document id of every shard from every up-to-date holder (1000 per
//! request) and every index's settings from every node, pausing 10 ms between shards; nothing
//! is written when all agree. Only the process holding the `miroir/anti-entropy` lease runs the
//! periodic pass (`replication.anti_entropy_interval_ms`, 0 = never); `POST
//! /_miroir/consistency/check` runs one at once in the process asked.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::hash::shard_of;
use super::merge::SHARD_FIELD;
use super::repair::SyncError;
use super::{Proxy, RoutingTable};
use crate::model::IndexUid;
use crate::node::NodePath;

/// The lease the periodic pass runs under: one process of a fleet sharing a store runs it.
pub const LEASE: &str = "miroir/anti-entropy";
/// Pause between two shards, so the check never loads the nodes.
const SHARD_PAUSE: Duration = Duration::from_millis(10);
/// How long a confirmation waits for the replicas to finish the index's queued tasks.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);
/// How often a long pass renews its lease.
const LEASE_RENEW: Duration = Duration::from_secs(10);
/// How long the lease outlives the last renewal, beyond one interval.
const LEASE_SLACK: Duration = Duration::from_secs(30);

/// `startedAt` / `finishedAt` of a pass (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunTimes {
    pub started_at: String,
    pub finished_at: String,
}

/// Documents of one shard on one replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaCount {
    pub node: String,
    pub documents: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardReport {
    pub shard: u32,
    /// The up-to-date holders compared, with their document count (as last looked at, before
    /// any repair).
    pub replicas: Vec<ReplicaCount>,
    /// No difference was found (or the first look's difference was writes still in flight).
    pub consistent: bool,
    /// Copies a replica lacked (one per document and replica).
    pub missing: u64,
    /// Copies held by a minority (deleted; one per document and replica).
    pub extra: u64,
    /// Of `missing + extra`, the copies and deletions the nodes applied.
    pub repaired: u64,
    /// Documents tagged for this shard whose id hashes to another shard: reported, never
    /// deleted (after a change of the shard count every tag would look so).
    pub misplaced: u64,
    /// Why the shard could not be compared or repaired (it is looked at again next pass).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Documents without `_miroir_shard` found (and deleted) on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UntaggedReport {
    pub node: String,
    pub documents: u64,
    pub deleted: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsReport {
    pub consistent: bool,
    /// Nodes that got the majority's settings.
    pub repaired_nodes: Vec<String>,
    /// The nodes split without a strict majority: reported, not repaired.
    pub tie: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexReport {
    pub uid: String,
    /// Up-to-date nodes that do not have the index at all (reported; their shards are not
    /// compared).
    pub missing_on: Vec<String>,
    pub shards: Vec<ShardReport>,
    pub untagged: Vec<UntaggedReport>,
    pub settings: SettingsReport,
}

/// Cumulative counts since this process started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub passes: u64,
    pub repaired_documents: u64,
    pub repaired_settings: u64,
}

/// What one pass found and did (`GET /_miroir/consistency`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsistencyReport {
    /// `None` until a pass has run in this process.
    pub last_run: Option<RunTimes>,
    pub interval_ms: u64,
    pub indexes: Vec<IndexReport>,
    /// Shards whose replicas differed (after the confirming second look).
    pub divergent_shards: u64,
    /// Document copies and deletions applied by the pass (untagged deletions included).
    pub repaired_documents: u64,
    /// Problems that kept part of the pass from running (a node that could not be listed...).
    pub errors: Vec<String>,
    pub totals: Totals,
}

/// Metrics of the check (registered under `miroir_`).
#[derive(Clone, Default)]
pub struct AntiEntropyMetrics {
    pub divergent_shards: Gauge,
    pub repaired_documents: Counter,
    pub passes: Counter,
}

impl AntiEntropyMetrics {
    pub fn register(&self, sub: &mut Registry) {
        sub.register("anti_entropy_divergent_shards", "Shards whose replicas differed in the last anti-entropy pass", self.divergent_shards.clone());
        sub.register("anti_entropy_repaired_documents", "Document copies and deletions applied by the anti-entropy check", self.repaired_documents.clone());
        sub.register("anti_entropy_passes", "Anti-entropy passes run", self.passes.clone());
    }
}

/// Per-process state of the check.
pub(crate) struct AntiEntropyState {
    /// This process's lease holder id.
    holder: String,
    last: Mutex<Option<ConsistencyReport>>,
    totals: Mutex<Totals>,
    /// Held for a whole pass: passes of one process never overlap.
    pass: tokio::sync::Mutex<()>,
}

impl Default for AntiEntropyState {
    fn default() -> Self {
        AntiEntropyState {
            holder: format!("miroir-{}", uuid::Uuid::new_v4()),
            last: Mutex::new(None),
            totals: Mutex::new(Totals::default()),
            pass: tokio::sync::Mutex::new(()),
        }
    }
}

/// What to do about one shard: copies (to, from, ids) and deletions (node, ids).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardPlan {
    pub copies: Vec<(String, String, Vec<String>)>,
    pub deletes: Vec<(String, Vec<String>)>,
    pub missing: u64,
    pub extra: u64,
}

impl ShardPlan {
    pub fn is_empty(&self) -> bool {
        self.copies.is_empty() && self.deletes.is_empty()
    }
}

/// The repair rule (module doc), pure: replicas are `(node, ids)` in preference order; a copy
/// comes from the first replica holding the document.
pub fn plan_shard(replicas: &[(String, BTreeSet<String>)]) -> ShardPlan {
    let n = replicas.len();
    let mut copies: BTreeMap<(usize, usize), Vec<String>> = BTreeMap::new();
    let mut deletes: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut plan = ShardPlan::default();
    let union: BTreeSet<&String> = replicas.iter().flat_map(|(_, ids)| ids.iter()).collect();
    for id in union {
        let holders: Vec<usize> = (0..n).filter(|&i| replicas[i].1.contains(id)).collect();
        if holders.len() == n {
            continue;
        }
        if n >= 3 && holders.len() * 2 < n {
            for &h in &holders {
                deletes.entry(h).or_default().push(id.clone());
            }
            plan.extra += holders.len() as u64;
        } else {
            let from = holders[0];
            for to in (0..n).filter(|i| !holders.contains(i)) {
                copies.entry((to, from)).or_default().push(id.clone());
            }
            plan.missing += (n - holders.len()) as u64;
        }
    }
    plan.copies = copies.into_iter().map(|((to, from), ids)| (replicas[to].0.clone(), replicas[from].0.clone(), ids)).collect();
    plan.deletes = deletes.into_iter().map(|(i, ids)| (replicas[i].0.clone(), ids)).collect();
    plan
}

/// Which nodes get which settings: `Some((settings, nodes))` when a strict majority agrees
/// (the nodes outside it), `None` on a tie. Pure; `observed` is `(node, settings)`.
pub fn settings_majority(observed: &[(String, Value)]) -> Option<(Value, Vec<String>)> {
    let mut groups: Vec<(&Value, Vec<&String>)> = Vec::new();
    for (node, s) in observed {
        match groups.iter_mut().find(|(v, _)| *v == s) {
            Some((_, nodes)) => nodes.push(node),
            None => groups.push((s, vec![node])),
        }
    }
    let (winner, _) = groups.iter().find(|(_, nodes)| nodes.len() * 2 > observed.len())?;
    let others = observed.iter().filter(|(_, s)| s != *winner).map(|(n, _)| n.clone()).collect();
    Some(((*winner).clone(), others))
}

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// An up-to-date node: id and address.
#[derive(Debug, Clone)]
struct Peer {
    id: String,
    addr: String,
}

/// The lease, as the pass holds it (`None`: a pass asked for directly, not under the lease).
struct LeaseHold<'a> {
    holder: &'a str,
    ttl: Duration,
    renewed: Instant,
}

impl Proxy {
    /// The report of the last pass in this process (a report with `lastRun: null` before any).
    pub fn consistency_report(&self) -> ConsistencyReport {
        let state = &self.inner.anti_entropy;
        let mut r = state.last.lock().expect("anti-entropy lock").clone().unwrap_or_default();
        r.interval_ms = self.options().replication.anti_entropy_interval_ms;
        r.totals = state.totals.lock().expect("anti-entropy lock").clone();
        r
    }

    /// Runs one pass now (waiting for a pass already running in this process to end) and
    /// answers its report.
    pub async fn check_consistency(&self) -> ConsistencyReport {
        self.run_pass(None).await
    }

    /// Starts the periodic check: a pass every `replication.anti_entropy_interval_ms` (0: none;
    /// the setting is read again every few seconds), only while this process holds the
    /// `miroir/anti-entropy` lease. Stops when the handle is aborted.
    pub fn spawn_anti_entropy(&self) -> tokio::task::JoinHandle<()> {
        let proxy = self.clone();
        tokio::spawn(async move {
            loop {
                let interval = proxy.options().replication.anti_entropy_interval_ms;
                if interval == 0 {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
                let interval = Duration::from_millis(interval);
                tokio::time::sleep(interval).await;
                let holder = proxy.inner.anti_entropy.holder.clone();
                let ttl = interval + LEASE_SLACK;
                match proxy.store().try_acquire_lease(LEASE, &holder, ttl).await {
                    Ok(true) => {
                        let hold = LeaseHold { holder: &holder, ttl, renewed: Instant::now() };
                        proxy.run_pass(Some(hold)).await;
                    }
                    Ok(false) => tracing::debug!("another Miroir process holds the anti-entropy lease"),
                    Err(e) => tracing::warn!(error = %e, "cannot take the anti-entropy lease; pass skipped"),
                }
            }
        })
    }

    async fn run_pass(&self, mut lease: Option<LeaseHold<'_>>) -> ConsistencyReport {
        let state = &self.inner.anti_entropy;
        let _one = state.pass.lock().await;
        let started_at = now_rfc3339();
        let started = Instant::now();
        let mut report = ConsistencyReport::default();
        match self.routing() {
            // Shards are on more nodes than their holders while they move: the migration
            // copies and verifies them; the check waits until it ends.
            Some(routing) if routing.migration.is_some() => {
                report.errors.push("a migration is running; the check waits until it ends".into())
            }
            Some(routing) => self.pass(&routing, &mut report, &mut lease).await,
            None => report.errors.push("no topology".into()),
        }
        if let Some(l) = lease.as_mut() {
            let _ = self.renew(l).await;
        }
        report.last_run = Some(RunTimes { started_at, finished_at: now_rfc3339() });
        report.interval_ms = self.options().replication.anti_entropy_interval_ms;
        let m = &self.inner.metrics.anti_entropy;
        m.passes.inc();
        m.divergent_shards.set(report.divergent_shards as i64);
        m.repaired_documents.inc_by(report.repaired_documents);
        let repaired_settings = report.indexes.iter().map(|i| i.settings.repaired_nodes.len() as u64).sum::<u64>();
        {
            let mut t = state.totals.lock().expect("anti-entropy lock");
            t.passes += 1;
            t.repaired_documents += report.repaired_documents;
            t.repaired_settings += repaired_settings;
            report.totals = t.clone();
        }
        if report.divergent_shards > 0 || report.repaired_documents > 0 || repaired_settings > 0 || !report.errors.is_empty() {
            tracing::info!(divergent_shards = report.divergent_shards, repaired_documents = report.repaired_documents, repaired_settings, errors = ?report.errors, elapsed_ms = started.elapsed().as_millis() as u64, "anti-entropy pass");
        } else {
            tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "anti-entropy pass: replicas agree");
        }
        *state.last.lock().expect("anti-entropy lock") = Some(report.clone());
        report
    }

    /// Renews the lease when due; false when it was lost (the pass stops: another process
    /// runs the check now).
    async fn renew(&self, l: &mut LeaseHold<'_>) -> bool {
        match self.store().try_acquire_lease(LEASE, l.holder, l.ttl).await {
            Ok(true) => {
                l.renewed = Instant::now();
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the anti-entropy lease; stopping the pass");
                false
            }
        }
    }

    /// Renews the lease of a periodic pass when due; false (and the pass stops, noted in the
    /// report) when it was lost: another process runs the check now.
    async fn keep_lease(&self, lease: &mut Option<LeaseHold<'_>>, report: &mut ConsistencyReport) -> bool {
        match lease.as_mut() {
            Some(l) if l.renewed.elapsed() >= LEASE_RENEW => {
                if self.renew(l).await {
                    true
                } else {
                    report.errors.push("the anti-entropy lease was lost; pass stopped".into());
                    false
                }
            }
            _ => true,
        }
    }

    async fn pass(&self, routing: &RoutingTable, report: &mut ConsistencyReport, lease: &mut Option<LeaseHold<'_>>) {
        let serving: Vec<Peer> = routing
            .topology
            .nodes
            .iter()
            .filter(|n| self.serves_reads(&n.id))
            .map(|n| Peer { id: n.id.clone(), addr: n.address.clone() })
            .collect();
        if serving.is_empty() {
            report.errors.push("no node serves reads".into());
            return;
        }
        let lists = futures::future::join_all(serving.iter().map(|p| self.node_indexes(&p.addr))).await;
        let mut listed: Vec<(Peer, BTreeMap<String, Option<String>>)> = Vec::new();
        for (p, l) in serving.into_iter().zip(lists) {
            match l {
                Ok(l) => listed.push((p, l)),
                Err(e) => report.errors.push(format!("{}: {e}", p.id)),
            }
        }
        let uids: BTreeSet<String> = listed.iter().flat_map(|(_, l)| l.keys().cloned()).collect();
        for uid in uids {
            if !self.keep_lease(lease, report).await {
                return;
            }
            let Ok(index) = IndexUid::parse(&uid) else { continue };
            // An index being swapped differs between nodes until every node has swapped it.
            let _no_swap = self.hold_index_swaps(&uid).await;
            let present: Vec<Peer> = listed.iter().filter(|(_, l)| l.contains_key(&uid)).map(|(p, _)| p.clone()).collect();
            let mut ix = IndexReport {
                uid: uid.clone(),
                missing_on: listed.iter().filter(|(_, l)| !l.contains_key(&uid)).map(|(p, _)| p.id.clone()).collect(),
                ..IndexReport::default()
            };
            ix.settings = self.check_settings(&index, &present).await;
            let pk = listed.iter().find_map(|(_, l)| l.get(&uid).cloned().flatten());
            if let Some(pk) = pk {
                for p in &present {
                    match self.clear_untagged(&p.addr, &index, &pk).await {
                        Ok(Some((found, deleted))) => {
                            report.repaired_documents += deleted;
                            ix.untagged.push(UntaggedReport { node: p.id.clone(), documents: found, deleted });
                        }
                        Ok(None) => {}
                        Err(e) => report.errors.push(format!("index `{uid}` on {}: {e}", p.id)),
                    }
                }
                for shard in 0..routing.topology.shards {
                    if !self.keep_lease(lease, report).await {
                        report.indexes.push(ix);
                        return;
                    }
                    let replicas: Vec<Peer> = routing
                        .assignment
                        .groups
                        .iter()
                        .flat_map(|g| g[shard as usize].iter())
                        .filter_map(|id| present.iter().find(|p| &p.id == id).cloned())
                        .collect();
                    let s = self.check_shard(routing, &index, &pk, shard, &replicas).await;
                    if !s.consistent && s.missing + s.extra > 0 {
                        report.divergent_shards += 1;
                    }
                    report.repaired_documents += s.repaired;
                    ix.shards.push(s);
                    tokio::time::sleep(SHARD_PAUSE).await;
                }
            }
            report.indexes.push(ix);
        }
    }

    /// Deletes the node's documents without `_miroir_shard`, if it has any: (found, deleted).
    /// A filter deletion removes only what is still untagged when the node runs it, so a
    /// Miroir write of the same id queued before it is not lost.
    async fn clear_untagged(&self, addr: &str, index: &IndexUid, pk: &str) -> Result<Option<(u64, u64)>, SyncError> {
        let found = self.untagged_ids(addr, index, pk).await?;
        if found.is_empty() {
            return Ok(None);
        }
        tracing::warn!(node = %addr, index = %index, documents = found.len(), "documents Miroir never wrote (no `_miroir_shard`); deleting them");
        let t = self.delete_where(addr, index, &format!("{SHARD_FIELD} NOT EXISTS")).await?;
        let task = self.wait_task_body(addr, t).await?;
        let deleted = if task.get("status").and_then(Value::as_str) == Some("succeeded") {
            task.pointer("/details/deletedDocuments").and_then(Value::as_u64).unwrap_or(found.len() as u64)
        } else {
            0
        };
        Ok(Some((found.len() as u64, deleted)))
    }

    /// This process's write order lock of an index (the one the write path holds while it
    /// sends a write to the nodes).
    fn index_write_lock(&self, index: &IndexUid) -> Arc<tokio::sync::Mutex<()>> {
        self.inner.write_order.lock().expect("write order lock").entry(index.as_str().to_string()).or_default().clone()
    }

    /// Waits until none of the nodes has a queued or running task for the index; false if
    /// they still have after [`DRAIN_DEADLINE`].
    async fn drain(&self, addrs: &[&str], index: &IndexUid) -> Result<bool, SyncError> {
        let deadline = Instant::now() + DRAIN_DEADLINE;
        let path = NodePath::route("/tasks").query("indexUids", index.as_str()).query("statuses", "enqueued,processing").query("limit", "1");
        loop {
            let mut idle = true;
            for a in addrs {
                let r = self.node_ok(a, Method::GET, &path, None).await?;
                let total = r.get("total").and_then(Value::as_u64);
                let any = r.get("results").and_then(Value::as_array).is_some_and(|x| !x.is_empty());
                if total.map(|t| t > 0).unwrap_or(any) {
                    idle = false;
                    break;
                }
            }
            if idle {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The id sets of the shard on each replica.
    async fn observe_shard(&self, index: &IndexUid, pk: &str, shard: u32, replicas: &[Peer]) -> Result<Vec<(String, BTreeSet<String>)>, SyncError> {
        let sets = futures::future::try_join_all(replicas.iter().map(|p| self.shard_ids(&p.addr, index, pk, shard))).await?;
        Ok(replicas.iter().map(|p| p.id.clone()).zip(sets).collect())
    }

    async fn check_shard(&self, routing: &RoutingTable, index: &IndexUid, pk: &str, shard: u32, replicas: &[Peer]) -> ShardReport {
        let mut r = ShardReport { shard, consistent: true, ..ShardReport::default() };
        let fill = |r: &mut ShardReport, observed: &[(String, BTreeSet<String>)]| {
            r.replicas = observed.iter().map(|(n, ids)| ReplicaCount { node: n.clone(), documents: ids.len() as u64 }).collect();
            let all: BTreeSet<&String> = observed.iter().flat_map(|(_, ids)| ids.iter()).collect();
            r.misplaced = all.into_iter().filter(|id| shard_of(id, routing.topology.shards) != shard).count() as u64;
        };
        let first = match self.observe_shard(index, pk, shard, replicas).await {
            Ok(o) => o,
            Err(e) => {
                r.error = Some(e.to_string());
                return r;
            }
        };
        fill(&mut r, &first);
        if plan_shard(&first).is_empty() {
            return r;
        }
        // A second look, with this process's writes to the index held back and the replicas'
        // queues empty; the repair is enqueued before the writes go on.
        let lock = self.index_write_lock(index);
        let guard = lock.lock().await;
        let addrs: Vec<&str> = replicas.iter().map(|p| p.addr.as_str()).collect();
        match self.drain(&addrs, index).await {
            Ok(true) => {}
            Ok(false) => {
                r.consistent = false;
                r.error = Some("the replicas kept indexing; the difference is looked at again next pass".into());
                return r;
            }
            Err(e) => {
                r.consistent = false;
                r.error = Some(e.to_string());
                return r;
            }
        }
        let second = match self.observe_shard(index, pk, shard, replicas).await {
            Ok(o) => o,
            Err(e) => {
                r.consistent = false;
                r.error = Some(e.to_string());
                return r;
            }
        };
        fill(&mut r, &second);
        let plan = plan_shard(&second);
        if plan.is_empty() {
            return r;
        }
        r.consistent = false;
        // A replica that missed a write since the pass began holds less than the others for a
        // reason the rule does not know of (it is catching up): the majority would be wrong.
        // Under the lock no write of this process to the index can make one miss more.
        if let Some(p) = replicas.iter().find(|p| !self.serves_reads(&p.id)) {
            r.error = Some(format!("{} stopped serving reads during the pass; the shard is looked at again next pass", p.id));
            return r;
        }
        r.missing = plan.missing;
        r.extra = plan.extra;
        let addr_of = |id: &str| replicas.iter().find(|p| p.id == id).map(|p| p.addr.clone()).unwrap_or_default();
        // (node address, last task, copies it covers)
        let mut enqueued: Vec<(String, u64, u64)> = Vec::new();
        let mut errors = Vec::new();
        for (node, ids) in &plan.deletes {
            tracing::warn!(index = %index, shard, node = %node, documents = ids.len(), "documents only a minority of replicas hold; deleting them");
            match self.delete_ids_on(&addr_of(node), index, ids).await {
                Ok(Some(t)) => enqueued.push((addr_of(node), t, ids.len() as u64)),
                Ok(None) => {}
                Err(e) => errors.push(e.to_string()),
            }
        }
        for (to, from, ids) in &plan.copies {
            tracing::warn!(index = %index, shard, node = %to, source = %from, documents = ids.len(), "documents missing on a replica; copying them");
            match self.copy_ids(&addr_of(from), &addr_of(to), index, pk, ids).await {
                Ok(Some(t)) => enqueued.push((addr_of(to), t, ids.len() as u64)),
                Ok(None) => {}
                Err(e) => errors.push(e.to_string()),
            }
        }
        drop(guard);
        for (addr, t, n) in enqueued {
            match self.wait_node_task(&addr, t).await {
                Ok(s) if s == "succeeded" => r.repaired += n,
                Ok(s) => errors.push(format!("repair task {t} on {addr} {s}")),
                Err(e) => errors.push(e.to_string()),
            }
        }
        if !errors.is_empty() {
            r.error = Some(errors.join("; "));
        }
        r
    }

    async fn observe_settings(&self, index: &IndexUid, nodes: &[Peer]) -> Result<Vec<(String, Value)>, SyncError> {
        let all = futures::future::try_join_all(nodes.iter().map(|p| self.node_settings(&p.addr, index))).await?;
        Ok(nodes.iter().map(|p| p.id.clone()).zip(all).collect())
    }

    async fn check_settings(&self, index: &IndexUid, nodes: &[Peer]) -> SettingsReport {
        let mut r = SettingsReport { consistent: true, ..SettingsReport::default() };
        let agree = |o: &[(String, Value)]| o.windows(2).all(|w| w[0].1 == w[1].1);
        match self.observe_settings(index, nodes).await {
            Ok(o) if agree(&o) => return r,
            Ok(_) => {}
            Err(e) => {
                r.error = Some(e.to_string());
                return r;
            }
        }
        let lock = self.index_write_lock(index);
        let guard = lock.lock().await;
        let addrs: Vec<&str> = nodes.iter().map(|p| p.addr.as_str()).collect();
        let observed = match self.drain(&addrs, index).await {
            Ok(true) => self.observe_settings(index, nodes).await,
            Ok(false) => {
                r.error = Some("the nodes kept indexing; settings are compared again next pass".into());
                return r;
            }
            Err(e) => Err(e),
        };
        let observed = match observed {
            Ok(o) if agree(&o) => return r,
            Ok(o) => o,
            Err(e) => {
                r.error = Some(e.to_string());
                return r;
            }
        };
        r.consistent = false;
        if let Some(p) = nodes.iter().find(|p| !self.serves_reads(&p.id)) {
            r.error = Some(format!("{} stopped serving reads during the pass; settings are compared again next pass", p.id));
            return r;
        }
        let Some((settings, behind)) = settings_majority(&observed) else {
            tracing::warn!(index = %index, "nodes disagree on the index settings without a majority; not repaired");
            r.tie = true;
            return r;
        };
        let mut enqueued = Vec::new();
        let mut errors = Vec::new();
        for node in behind {
            let addr = nodes.iter().find(|p| p.id == node).map(|p| p.addr.clone()).unwrap_or_default();
            tracing::warn!(index = %index, node = %node, "settings differ from the other nodes'; applying the majority's");
            match self.patch_settings(&addr, index, &settings).await {
                Ok((t, _)) => enqueued.push((node, addr, t)),
                Err(e) => errors.push(e.to_string()),
            }
        }
        drop(guard);
        for (node, addr, t) in enqueued {
            match self.wait_node_task(&addr, t).await {
                Ok(s) if s == "succeeded" => r.repaired_nodes.push(node),
                Ok(s) => errors.push(format!("settings task {t} on {node} {s}")),
                Err(e) => errors.push(e.to_string()),
            }
        }
        if !errors.is_empty() {
            r.error = Some(errors.join("; "));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn replicas(sets: &[(&str, &[&str])]) -> Vec<(String, BTreeSet<String>)> {
        sets.iter().map(|(n, ids)| (n.to_string(), set(ids))).collect()
    }

    #[test]
    fn with_two_replicas_the_union_wins() {
        let p = plan_shard(&replicas(&[("a", &["1", "2", "3"]), ("b", &["1", "4"])]));
        assert_eq!(p.copies, vec![("a".into(), "b".into(), vec!["4".into()]), ("b".into(), "a".into(), vec!["2".into(), "3".into()])]);
        assert!(p.deletes.is_empty());
        assert_eq!((p.missing, p.extra), (3, 0));
        assert!(plan_shard(&replicas(&[("a", &["1"]), ("b", &["1"])])).is_empty());
    }

    #[test]
    fn with_three_replicas_a_minority_copy_is_deleted_and_a_majority_copy_spread() {
        let p = plan_shard(&replicas(&[("a", &["1", "2", "x"]), ("b", &["1", "2"]), ("c", &["1"])]));
        // `2` is on two of three: copied to c (from a, the first holder); `x` only on a: deleted.
        assert_eq!(p.copies, vec![("c".into(), "a".into(), vec!["2".into()])]);
        assert_eq!(p.deletes, vec![("a".into(), vec!["x".into()])]);
        assert_eq!((p.missing, p.extra), (1, 1));
    }

    #[test]
    fn with_four_replicas_half_is_not_a_minority() {
        let p = plan_shard(&replicas(&[("a", &["1"]), ("b", &["1"]), ("c", &[]), ("d", &[])]));
        assert!(p.deletes.is_empty());
        assert_eq!(p.missing, 2);
        let p = plan_shard(&replicas(&[("a", &["1"]), ("b", &[]), ("c", &[]), ("d", &[])]));
        assert_eq!(p.deletes, vec![("a".into(), vec!["1".into()])]);
    }

    #[test]
    fn a_single_replica_has_nothing_to_compare() {
        assert!(plan_shard(&replicas(&[("a", &["1", "2"])])).is_empty());
        assert!(plan_shard(&[]).is_empty());
    }

    #[test]
    fn settings_follow_a_strict_majority_and_a_tie_is_left_alone() {
        let s = |v: u64| json!({"pagination": {"maxTotalHits": v}});
        let obs = vec![("a".to_string(), s(1)), ("b".to_string(), s(1)), ("c".to_string(), s(2))];
        assert_eq!(settings_majority(&obs), Some((s(1), vec!["c".to_string()])));
        let tie = vec![("a".to_string(), s(1)), ("b".to_string(), s(2))];
        assert_eq!(settings_majority(&tie), None);
        let split = vec![("a".to_string(), s(1)), ("b".to_string(), s(1)), ("c".to_string(), s(2)), ("d".to_string(), s(3))];
        assert_eq!(settings_majority(&split), None);
    }
}

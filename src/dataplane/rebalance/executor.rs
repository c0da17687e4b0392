//! The migration executor: every process runs the loop (it keeps routing in step with the
//! stored placement); only the holder of [`super::REBALANCE_LEASE`] moves data and advances
//! the phases. Each phase is written to the store before the next one starts, so a restart
//! (or another process taking the lease) resumes where the stored plan says.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;

use super::plan::{Migration, Phase, PlacementState};
use super::{now, ChangeError, REBALANCE_LEASE};
use crate::controlplane::leader::{Election, LeaseTiming, Leadership};
use crate::dataplane::catchup::{cut_page, Replayed};
use crate::dataplane::merge::SHARD_FIELD;
use crate::dataplane::{Proxy, RoutingTable};
use crate::model::IndexUid;

/// Operations read from a migration queue per page.
const QUEUE_PAGE: usize = 64;
/// Rounds of queue replay while writes still flow, before the fence.
const CATCH_UP_ROUNDS: usize = 5;
/// Shards copied together from one source to one destination.
const UNIT_SHARDS: usize = 32;

/// Lease timing of the executor: a crashed holder is replaced within `ttl`.
const TIMING: LeaseTiming = LeaseTiming { ttl: Duration::from_secs(6), renew_every: Duration::from_secs(2) };

/// Stops the election when the executor stops (aborted with the server).
struct ElectionGuard(Option<Election>);

impl Drop for ElectionGuard {
    fn drop(&mut self) {
        if let Some(e) = self.0.take() {
            e.abandon();
        }
    }
}

/// Starts the executor loop; returns it and the lease holder id it uses (released by a
/// clean shutdown).
pub fn spawn(proxy: Proxy) -> (tokio::task::JoinHandle<()>, String) {
    let holder = format!("miroir-{}", uuid::Uuid::new_v4());
    let h = holder.clone();
    let join = tokio::spawn(async move {
        let election = Election::start(proxy.store(), REBALANCE_LEASE.to_string(), h, TIMING);
        let leadership = election.leadership.clone();
        let _guard = ElectionGuard(Some(election));
        let mut backoff = Duration::from_millis(500);
        loop {
            let poll = Duration::from_millis(proxy.options().rebalance.poll_interval_ms.max(10));
            let mut wait = poll;
            match proxy.refresh_placement().await {
                Ok(Some((_, state))) if leadership.is_leader() => {
                    if let Some(m) = state.migration.clone().filter(|m| !m.phase.ended()) {
                        match proxy.step(&leadership, &state, m).await {
                            Ok(()) => {
                                backoff = Duration::from_millis(500);
                                wait = Duration::ZERO;
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "migration step failed; retrying");
                                proxy.inner.metrics.rebalance.errors.inc();
                                proxy.note_error(&e).await;
                                wait = backoff;
                                backoff = (backoff * 2).min(Duration::from_secs(10));
                            }
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the placement state"),
            }
            if !wait.is_zero() {
                tokio::select! {
                    _ = proxy.inner.rebalance.wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    });
    (join, holder)
}

/// The stored migration must still be `id` in `phase` for a step to write its result.
fn expect_phase<'a>(state: Option<&'a mut PlacementState>, id: &str, phase: Phase) -> Result<&'a mut Migration, ChangeError> {
    let m = state.and_then(|s| s.migration.as_mut()).filter(|m| m.id == id && m.phase == phase);
    m.ok_or_else(|| ChangeError::InProgress(format!("{id} moved on meanwhile")))
}

impl Proxy {
    /// Advances a migration by one phase.
    async fn step(&self, leadership: &Leadership, state: &PlacementState, m: Migration) -> Result<(), String> {
        let routing = self.routing().ok_or("no routing installed")?;
        match m.phase {
            Phase::Copying => self.copy_phase(leadership, state, &m, &routing).await,
            Phase::Fencing => self.fence_phase(&m, &routing).await,
            Phase::CutOver => {
                // Every process switches within a poll interval; wait for that before the old
                // holders stop getting writes and lose the shards.
                self.settle(&m).await;
                // No write of this process is still on its way to an old holder once the
                // clean-up starts.
                let _gate = self.inner.rebalance.gate.clone().write_owned().await;
                self.advance(&m, Phase::CutOver, Phase::Cleaning).await
            }
            Phase::Cleaning => self.clean_phase(&m, &routing).await,
            Phase::Done | Phase::Cancelled => Ok(()),
        }
    }

    /// Waits until every process has read the stored phase of `m` (two poll intervals after
    /// it was written; with SQLite there is one process and nothing to wait for).
    async fn settle(&self, m: &Migration) {
        if self.store().backend() == "sqlite" {
            return;
        }
        let poll = self.options().rebalance.poll_interval_ms;
        let due = m.phase_since + time::Duration::milliseconds(2 * poll as i64 + 100);
        let left = (due - now()).whole_milliseconds();
        if left > 0 {
            tokio::time::sleep(Duration::from_millis(left as u64)).await;
        }
    }

    /// [`Proxy::settle`], then (with several processes) the grace for writes they had
    /// already started under the previous phase.
    async fn settle_with_grace(&self, m: &Migration) {
        self.settle(m).await;
        if self.store().backend() != "sqlite" {
            tokio::time::sleep(Duration::from_millis(self.options().rebalance.cutover_grace_ms)).await;
        }
    }

    async fn advance(&self, m: &Migration, from: Phase, to: Phase) -> Result<(), String> {
        self.update_placement(|state| {
            let mig = expect_phase(state, &m.id, from)?;
            mig.phase = to;
            mig.phase_since = now();
            mig.error = None;
            Ok((true, None, ()))
        })
        .await
        .map_err(|e| e.to_string())?;
        tracing::info!(migration = %m.id, phase = ?to, "migration phase");
        Ok(())
    }

    /// Records the executor's last error in the stored migration (shown in status).
    async fn note_error(&self, error: &str) {
        let r = self
            .update_placement(|state| {
                let Some(m) = state.and_then(|s| s.migration.as_mut()).filter(|m| !m.phase.ended()) else {
                    return Ok((false, None, ()));
                };
                let changed = m.error.as_deref() != Some(error);
                m.error = Some(error.to_string());
                Ok((changed, None, ()))
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "cannot record the migration error");
        }
    }

    fn address(&self, routing: &RoutingTable, node: &str) -> Result<String, String> {
        routing.topology.node(node).map(|n| n.address.clone()).ok_or_else(|| format!("node `{node}` has no address"))
    }

    /// Index uid → primary key, read from a node of the source topology that serves reads.
    async fn source_indexes(&self, state: &PlacementState, routing: &RoutingTable) -> Result<BTreeMap<String, Option<String>>, String> {
        let lister = state
            .topology
            .nodes
            .iter()
            .find(|n| self.serves_reads(&n.id))
            .ok_or("no node of the current topology serves reads: nothing to copy from")?;
        self.node_indexes(&self.address(routing, &lister.id)?).await.map_err(|e| e.to_string())
    }

    async fn copy_phase(&self, leadership: &Leadership, state: &PlacementState, m: &Migration, routing: &RoutingTable) -> Result<(), String> {
        // Every write must be queued for the new holders before the first page is read: in
        // this process, writes that began under the routing before the plan are waited for
        // (they hold the gate); other processes read the plan within two poll intervals, and
        // finish the writes they began before within the grace.
        drop(self.inner.rebalance.gate.clone().write_owned().await);
        self.settle_with_grace(m).await;
        let indexes = self.source_indexes(state, routing).await?;
        let lister = state.topology.nodes.iter().find(|n| self.serves_reads(&n.id)).map(|n| n.id.clone()).ok_or("no source")?;
        let lister_addr = self.address(routing, &lister)?;
        // A write acknowledged before the plan (so not queued) may still wait in a source's
        // task queue: the copy reads what the source has processed, so wait for every task
        // the sources had enqueued by now.
        let mut sources: BTreeSet<String> = m.moves.iter().filter(|mv| !mv.copied).flat_map(|mv| mv.sources.iter().cloned()).collect();
        sources.insert(lister.clone());
        for node in sources.iter().filter(|n| self.serves_reads(n)) {
            self.wait_enqueued(&self.address(routing, node)?).await?;
        }
        for node in &m.joining {
            let dst = self.address(routing, node)?;
            // The cluster's experimental features first: settings and documents may need them.
            self.ensure_features(&dst).await?;
            for uid in indexes.keys() {
                let Ok(index) = IndexUid::parse(uid) else { continue };
                self.copy_index_meta(&lister_addr, &dst, &index).await.map_err(|e| e.to_string())?;
            }
        }
        let opts = self.options().rebalance;
        // Work units: the shards one source sends one destination, a few dozen at a time (one
        // filter, one verification each), so that many small shards cost few round trips.
        let pending: Vec<_> = m.moves.iter().filter(|mv| !mv.copied).collect();
        let mut by_pair: BTreeMap<(String, String), Vec<u32>> = BTreeMap::new();
        let mut units_left: BTreeMap<u32, usize> = BTreeMap::new();
        for mv in &pending {
            let source = mv
                .sources
                .iter()
                .find(|n| self.serves_reads(n))
                .ok_or_else(|| format!("shard {}: none of its holders ({}) serves reads", mv.shard, mv.sources.join(", ")))?;
            units_left.insert(mv.shard, mv.to.len());
            for dst in &mv.to {
                by_pair.entry((source.clone(), dst.clone())).or_default().push(mv.shard);
            }
        }
        let units: Vec<(String, String, Vec<u32>)> = by_pair
            .into_iter()
            .flat_map(|((src, dst), shards)| shards.chunks(UNIT_SHARDS).map(|c| (src.clone(), dst.clone(), c.to_vec())).collect::<Vec<_>>())
            .collect();
        // Moves with nothing to receive (only copies to drop) are done at once.
        let nothing: Vec<u32> = units_left.iter().filter(|(_, n)| **n == 0).map(|(s, _)| *s).collect();
        let progress = std::sync::Mutex::new((units_left, BTreeMap::<u32, u64>::new()));
        self.mark_copied(m, &nothing, &BTreeMap::new()).await?;
        let indexes = &indexes;
        let progress = &progress;
        let results: Vec<Result<(), String>> = futures::stream::iter(units)
            .map(|(src_node, dst_node, shards)| async move {
                if !leadership.is_leader() {
                    return Err("lost the rebalance lease".to_string());
                }
                let src = self.address(routing, &src_node)?;
                let dst = self.address(routing, &dst_node)?;
                let mut per_shard: BTreeMap<u32, u64> = BTreeMap::new();
                for (uid, pk) in indexes {
                    let (Ok(index), Some(pk)) = (IndexUid::parse(uid), pk) else { continue };
                    let copy = self
                        .copy_shards(&src, &dst, &index, pk, &shards, Some(opts.max_documents_per_second))
                        .await
                        .map_err(|e| e.to_string())?;
                    for (s, n) in copy.per_shard {
                        *per_shard.entry(s).or_default() += n;
                    }
                }
                let (done, docs) = {
                    let mut p = progress.lock().expect("progress");
                    let mut done = Vec::new();
                    for s in &shards {
                        *p.1.entry(*s).or_default() += per_shard.get(s).copied().unwrap_or(0);
                        if let Some(left) = p.0.get_mut(s) {
                            *left = left.saturating_sub(1);
                            if *left == 0 {
                                done.push(*s);
                            }
                        }
                    }
                    let docs: BTreeMap<u32, u64> = done.iter().map(|s| (*s, p.1.get(s).copied().unwrap_or(0))).collect();
                    (done, docs)
                };
                self.mark_copied(m, &done, &docs).await?;
                tracing::info!(migration = %m.id, from = %src_node, to = %dst_node, shards = shards.len(), documents = per_shard.values().sum::<u64>(), "shards copied");
                Ok(())
            })
            .buffer_unordered(opts.max_concurrent_moves.max(1))
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>, String>>()?;
        // The queues now, while writes still flow, so that the fence has little left to do:
        // rounds up to what each queue held when the round began (writes keep coming; a round
        // that would chase them could last as long as they do), until little is left.
        for _ in 0..CATCH_UP_ROUNDS {
            let left = self.drain_queues(m, routing, false).await?;
            if left <= QUEUE_PAGE as u64 {
                break;
            }
        }
        self.advance(m, Phase::Copying, Phase::Fencing).await
    }

    /// Waits until the node has processed every task it had enqueued when this was called.
    async fn wait_enqueued(&self, addr: &str) -> Result<(), String> {
        let path = crate::node::NodePath::route("/tasks").query("limit", "1");
        let newest = self.node_ok(addr, reqwest::Method::GET, &path, None).await.map_err(|e| e.to_string())?;
        if let Some(uid) = newest.pointer("/results/0/uid").and_then(serde_json::Value::as_u64) {
            self.wait_node_task(addr, uid).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Records shards as copied (their documents on every new holder), with their counts.
    async fn mark_copied(&self, m: &Migration, shards: &[u32], docs: &BTreeMap<u32, u64>) -> Result<(), String> {
        if shards.is_empty() {
            return Ok(());
        }
        self.update_placement(|state| {
            let mig = expect_phase(state, &m.id, Phase::Copying)?;
            for x in mig.moves.iter_mut().filter(|x| shards.contains(&x.shard) && !x.copied) {
                x.copied = true;
                x.documents = docs.get(&x.shard).copied().unwrap_or(0);
                mig.documents_copied += x.documents;
            }
            mig.error = None;
            Ok((true, None, ()))
        })
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    async fn fence_phase(&self, m: &Migration, routing: &RoutingTable) -> Result<(), String> {
        // This process: no write is between reading the routing and queueing its parts.
        let _gate = self.inner.rebalance.gate.clone().write_owned().await;
        // Other processes: they stop starting writes within a poll interval; the ones they
        // started finish within the grace.
        if self.store().backend() != "sqlite" {
            let o = self.options().rebalance;
            tokio::time::sleep(Duration::from_millis(o.cutover_grace_ms.max(2 * o.poll_interval_ms))).await;
        }
        self.drain_queues(m, routing, true).await?;
        self.await_joining_caught_up(m).await?;
        self.advance(m, Phase::Fencing, Phase::CutOver).await
    }

    /// A joining node may have writes of its own to replay (a broadcast it could not take
    /// yet, e.g. before this process first read its empty log): after the cut-over it is the
    /// only holder of its shards in a group with one copy, and while it replays, reads of
    /// those shards would be partial and writes would wait. With writes held, the replay
    /// worker (whichever process runs it) empties its log first; past `FENCE_CATCH_UP` (or when it is down) the
    /// cut-over goes on as before (the node catches up afterwards; nothing is lost).
    async fn await_joining_caught_up(&self, m: &Migration) -> Result<(), String> {
        const FENCE_CATCH_UP: Duration = Duration::from_secs(10);
        let deadline = tokio::time::Instant::now() + FENCE_CATCH_UP;
        for node in &m.joining {
            loop {
                let pending = self.store().missed_summary(node).await.map_err(|e| e.to_string())?.pending;
                if pending == 0 {
                    // This process routes writes by its own view of the log: read it now.
                    self.refresh_sync(node).await.map_err(|e| e.to_string())?;
                    break;
                }
                // Only a healthy node is replayed to: holding writes for a down one helps nobody.
                let healthy = self.inner.health.get(node).state == crate::dataplane::health::NodeState::Healthy;
                if !healthy || tokio::time::Instant::now() >= deadline {
                    tracing::warn!(node = %node, pending, healthy, "a joining node is still replaying missed writes at the cut-over");
                    break;
                }
                self.inner.sync.wake.notify_one();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// Replays every queue of the migration to its node: to its end (`to_end`, writes are held),
    /// or up to what it held when this began. Returns the operations still queued after it.
    async fn drain_queues(&self, m: &Migration, routing: &RoutingTable, to_end: bool) -> Result<u64, String> {
        let mut replayed = 0u64;
        let mut left = 0u64;
        for node in m.queue_nodes() {
            let addr = self.address(routing, &node)?;
            let queue = m.queue_of(&node);
            let up_to = if to_end { None } else { self.store().missed_summary(&queue).await.map_err(|e| e.to_string())?.newest_seq };
            replayed += self.drain_queue(&queue, &node, &addr, up_to).await?;
            left += self.store().missed_summary(&queue).await.map_err(|e| e.to_string())?.pending;
        }
        if replayed > 0 {
            self.update_placement(|state| {
                let Some(mig) = state.and_then(|s| s.migration.as_mut()).filter(|x| x.id == m.id) else {
                    return Ok((false, None, ()));
                };
                mig.operations_replayed += replayed;
                Ok((true, None, ()))
            })
            .await
            .map_err(|e| e.to_string())?;
        }
        Ok(left)
    }

    /// Replays one queue in order, a page at a time, until it is empty or past `up_to`; a page
    /// is acknowledged once the node has processed its last task (a crash replays it again,
    /// which is harmless in order).
    async fn drain_queue(&self, queue: &str, node: &str, addr: &str, up_to: Option<u64>) -> Result<u64, String> {
        let mut replayed = 0u64;
        loop {
            let mut ops = self.store().list_missed(queue, None, QUEUE_PAGE).await.map_err(|e| e.to_string())?;
            if let Some(limit) = up_to {
                ops.retain(|op| op.seq <= limit);
            }
            if ops.is_empty() {
                return Ok(replayed);
            }
            let page = cut_page(&ops);
            let mut last_task = None;
            for op in page {
                match self.replay_one(addr, op).await? {
                    Replayed::Task(uid) => last_task = Some(uid),
                    // A synchronous refusal of something its peers took (e.g. an index the
                    // node does not have yet for a setting): the next queued operations or the
                    // anti-entropy check settle it; the migration goes on.
                    Replayed::Refused(status, body) => {
                        tracing::warn!(node = %node, seq = op.seq, status, body = %body, "a new holder refused a queued write")
                    }
                }
            }
            if let Some(uid) = last_task {
                self.wait_node_task(addr, uid).await.map_err(|e| e.to_string())?;
            }
            let last = page.last().expect("non-empty page");
            self.store().ack_missed(queue, last.seq).await.map_err(|e| e.to_string())?;
            replayed += page.len() as u64;
            self.inner.metrics.rebalance.operations_replayed.inc_by(page.len() as u64);
        }
    }

    async fn clean_phase(&self, m: &Migration, routing: &RoutingTable) -> Result<(), String> {
        // Other processes stop writing to the old holders once they read this phase; the
        // writes they started before finish within the grace.
        self.settle_with_grace(m).await;
        let mut drops: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
        for mv in &m.moves {
            for n in &mv.drop {
                drops.entry(n.as_str()).or_default().insert(mv.shard);
            }
        }
        for (node, shards) in drops {
            let leaving = m.leaving.iter().any(|x| x == node);
            let addr = self.address(routing, node)?;
            let indexes = match self.node_indexes(&addr).await {
                Ok(i) => i,
                Err(e) if leaving => {
                    tracing::warn!(node = %node, error = %e, "a node leaving the cluster cannot be cleaned; its copies stay on it");
                    continue;
                }
                Err(e) => return Err(e.to_string()),
            };
            let list: Vec<String> = shards.iter().map(u32::to_string).collect();
            let filter = format!("{SHARD_FIELD} IN [{}]", list.join(", "));
            for uid in indexes.keys() {
                let Ok(index) = IndexUid::parse(uid) else { continue };
                let t = self.delete_where(&addr, &index, &filter).await.map_err(|e| e.to_string())?;
                self.wait_node_task(&addr, t).await.map_err(|e| e.to_string())?;
            }
            tracing::info!(migration = %m.id, node = %node, shards = shards.len(), "moved shards deleted from the node that gave them up");
        }
        for node in m.queue_nodes() {
            self.store().drop_missed(&m.queue_of(&node)).await.map_err(|e| e.to_string())?;
        }
        for node in &m.leaving {
            self.store().drop_missed(node).await.map_err(|e| e.to_string())?;
        }
        let next = self
            .update_placement(|state| {
                let Some(state) = state else { return Err(ChangeError::InProgress(format!("{} is no longer stored", m.id))) };
                let mut done = expect_phase(Some(&mut *state), &m.id, Phase::Cleaning)?.clone();
                done.phase = Phase::Done;
                done.phase_since = now();
                done.finished_at = Some(now());
                done.error = None;
                for id in &done.draining {
                    if let Some(spec) = state.topology.node(id).cloned() {
                        state.drained.retain(|d| d.id != spec.id);
                        state.drained.push(spec);
                    }
                }
                state.topology = done.target.clone();
                state.last = Some(done);
                state.migration = None;
                let mut next = None;
                if state.declared_pending {
                    state.declared_pending = false;
                    if let Some(d) = state.declared.clone() {
                        let cause = super::MigrationCause { source: "config".into(), description: super::describe_change(&state.topology, &d) };
                        next = super::plan::plan_migration(&state.topology, &d, cause, Vec::new(), now())?;
                        state.migration = next.clone();
                    }
                }
                Ok((true, None, next))
            })
            .await
            .map_err(|e| e.to_string())?;
        self.inner.metrics.rebalance.migrations_finished.inc();
        tracing::info!(migration = %m.id, shards = m.moves.len(), documents = m.documents_copied, "migration done");
        if let Some(n) = next {
            self.migration_started(&n);
        }
        Ok(())
    }
}

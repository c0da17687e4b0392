//! The placement state and migration plans: pure data and pure functions (no I/O), so that
//! every rule about what moves where, and how reads and writes are routed while it moves, is
//! unit-tested without a node.
//!
//! A topology change is never applied to routing at once. It becomes a [`Migration`]: for
//! every shard whose holder set changes, the nodes that hold it now (`sources`), the nodes
//! that will (`to`) and the nodes that will no longer (`drop`). The migration goes through
//! [`Phase`]s; [`routing_for`] derives, for each phase, where reads go and where each write
//! part goes (sent now, or appended to the migration's queue for a node that is receiving
//! the shard), so that no read misses a shard and no acknowledged write is lost.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::dataplane::topology::{Assignment, NodeSpec, Topology};
use crate::dataplane::RoutingTable;

/// What the task store keeps (one versioned record, changed by compare-and-set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementState {
    /// The topology reads are routed by (the last one cut over to).
    pub topology: Topology,
    /// Nodes drained of every shard and taken out of placement, still known until removed.
    #[serde(default)]
    pub drained: Vec<NodeSpec>,
    /// The topology the last config file (or MiroirCluster spec) asked for: a restart or a
    /// reload plans a migration only when this changes, so a change made through the admin
    /// API is not undone by a restart with the old file.
    #[serde(default)]
    pub declared: Option<Topology>,
    /// The declared topology changed while a migration ran: planned when it ends.
    #[serde(default)]
    pub declared_pending: bool,
    #[serde(default)]
    pub migration: Option<Migration>,
    /// The last migration that ended (for `GET /_miroir/rebalance`).
    #[serde(default)]
    pub last: Option<Migration>,
}

impl PlacementState {
    pub fn new(topology: Topology) -> PlacementState {
        PlacementState { topology, drained: Vec::new(), declared: None, declared_pending: false, migration: None, last: None }
    }

    /// The topology the cluster is going to: the migration's target, else the current one.
    pub fn destination(&self) -> &Topology {
        self.migration.as_ref().map(|m| &m.target).unwrap_or(&self.topology)
    }
}

/// Where a migration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Reads: old holders. Writes: old holders, and queued for the new holders. The new
    /// holders get every index and its settings, then each moving shard's documents, then the
    /// queue is replayed to them.
    Copying,
    /// Writes wait (every process) while the last queued writes are replayed; reads still
    /// go to the old holders.
    Fencing,
    /// Reads and writes: new holders; old holders still get the writes of the shards they
    /// are giving up (so a process that has not switched yet reads nothing stale).
    CutOver,
    /// The moved shards are deleted from the nodes that gave them up (which no longer get
    /// their writes; reads filter them out there until they are gone).
    Cleaning,
    /// Ended: everything moved and cleaned.
    Done,
    /// Ended: cancelled before the cut-over (nothing was switched; copies were deleted).
    Cancelled,
}

impl Phase {
    pub fn ended(self) -> bool {
        matches!(self, Phase::Done | Phase::Cancelled)
    }
    /// Whether reads and writes use the target placement.
    pub fn switched(self) -> bool {
        matches!(self, Phase::CutOver | Phase::Cleaning | Phase::Done)
    }
}

/// One shard whose holder set changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardMove {
    pub shard: u32,
    /// Its holders before (any group): the copy is read from one of them that is up to date.
    pub sources: Vec<String>,
    /// Nodes that hold it afterwards and not before.
    pub to: Vec<String>,
    /// Nodes that hold it before and not afterwards.
    pub drop: Vec<String>,
    /// Its documents are on every `to` node (the queue still has to be replayed).
    #[serde(default)]
    pub copied: bool,
    /// Documents copied so far (every index, every `to` node).
    #[serde(default)]
    pub documents: u64,
}

/// Why the cluster changes, as shown in status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationCause {
    /// `config`, `admin-api`, `operator`.
    pub source: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Migration {
    pub id: String,
    pub cause: MigrationCause,
    pub phase: Phase,
    pub target: Topology,
    /// Nodes in the target that are in no group of the source topology: every write part
    /// for them is queued until the cut-over (index creations and settings included).
    pub joining: Vec<String>,
    /// Nodes of the source topology not in the target (removed or drained).
    pub leaving: Vec<String>,
    /// Nodes drained by this migration (they stay known as drained once it ends).
    #[serde(default)]
    pub draining: Vec<String>,
    pub moves: Vec<ShardMove>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub phase_since: time::OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub finished_at: Option<time::OffsetDateTime>,
    /// The last error the executor met (it retries); cleared by progress.
    #[serde(default)]
    pub error: Option<String>,
    /// Every copied shard's indexes; a copy after a restart starts from here.
    #[serde(default)]
    pub documents_copied: u64,
    /// Queued write operations replayed to the new holders so far.
    #[serde(default)]
    pub operations_replayed: u64,
}

impl Migration {
    /// Name of the migration queue of `node` in the task store's operation logs.
    pub fn queue_of(&self, node: &str) -> String {
        queue_name(&self.id, node)
    }
    /// Nodes that have a queue: every node receiving a shard or joining.
    pub fn queue_nodes(&self) -> BTreeSet<String> {
        self.moves.iter().flat_map(|m| m.to.iter().cloned()).chain(self.joining.iter().cloned()).collect()
    }
    pub fn shards_moved(&self) -> usize {
        self.moves.iter().filter(|m| m.copied).count()
    }
}

/// Operation-log name of a migration queue (never a node id: node ids cannot contain `#`
/// and `/` at once... and the prefix makes it unmistakable).
pub fn queue_name(migration: &str, node: &str) -> String {
    format!("rebalance#{migration}/{node}")
}

/// Every (shard → holder set over all groups).
fn holder_sets(a: &Assignment, shards: u32) -> Vec<BTreeSet<String>> {
    (0..shards as usize)
        .map(|s| a.groups.iter().flat_map(|g| g.get(s).into_iter().flatten().cloned()).collect())
        .collect()
}

/// The shards whose holder sets differ between two placements (pure).
pub fn plan_moves(from: &Topology, to: &Topology) -> Vec<ShardMove> {
    let before = holder_sets(&from.assignment(), from.shards);
    let after = holder_sets(&to.assignment(), to.shards);
    before
        .iter()
        .zip(after.iter())
        .enumerate()
        .filter(|(_, (b, a))| b != a)
        .map(|(s, (b, a))| ShardMove {
            shard: s as u32,
            sources: b.iter().cloned().collect(),
            to: a.difference(b).cloned().collect(),
            drop: b.difference(a).cloned().collect(),
            copied: false,
            documents: 0,
        })
        .collect()
}

/// Why a topology change cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("`shards` cannot change on a running cluster ({from} → {to}): documents are hashed into a fixed number of shards")]
    ShardsChanged { from: u32, to: u32 },
    #[error(transparent)]
    Invalid(#[from] crate::dataplane::topology::TopologyError),
}

/// A migration from `from` to `to` (validated), or `None` when nothing has to move. Nodes
/// whose id stays but whose address changed move nothing.
pub fn plan_migration(
    from: &Topology,
    to: &Topology,
    cause: MigrationCause,
    draining: Vec<String>,
    now: time::OffsetDateTime,
) -> Result<Option<Migration>, PlanError> {
    to.validate()?;
    if from.shards != to.shards {
        return Err(PlanError::ShardsChanged { from: from.shards, to: to.shards });
    }
    let moves = plan_moves(from, to);
    let from_ids: BTreeSet<&str> = from.nodes.iter().map(|n| n.id.as_str()).collect();
    let to_ids: BTreeSet<&str> = to.nodes.iter().map(|n| n.id.as_str()).collect();
    let joining: Vec<String> = to_ids.difference(&from_ids).map(|s| s.to_string()).collect();
    let leaving: Vec<String> = from_ids.difference(&to_ids).map(|s| s.to_string()).collect();
    if moves.is_empty() && joining.is_empty() && leaving.is_empty() {
        return Ok(None);
    }
    Ok(Some(Migration {
        id: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
        cause,
        phase: Phase::Copying,
        target: to.clone(),
        joining,
        leaving,
        draining,
        moves,
        started_at: now,
        phase_since: now,
        finished_at: None,
        error: None,
        documents_copied: 0,
        operations_replayed: 0,
    }))
}

/// How writes and reads are routed while a migration runs (see [`Phase`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MigrationRouting {
    pub id: String,
    pub phase: Option<Phase>,
    /// Nodes every write part of which is queued (they join with this migration).
    pub joining: BTreeSet<String>,
    /// Shard → nodes its writes are queued for (they are receiving it).
    pub queued: BTreeMap<u32, Vec<String>>,
    /// Shard → nodes that still get its writes directly, outside the quorum (they gave it up
    /// at the cut-over and lose it at the clean-up).
    pub also: BTreeMap<u32, Vec<String>>,
    /// Writes wait until the phase changes.
    pub fenced: bool,
}

impl MigrationRouting {
    /// Whether a write part for `node` carrying `shards` is queued (not sent).
    pub fn queues(&self, node: &str, shard: u32) -> bool {
        self.joining.contains(node) || self.queued.get(&shard).is_some_and(|n| n.iter().any(|x| x == node))
    }
    /// Shards `node` is receiving (writes to them are queued), when it is not a joining node.
    pub fn incoming(&self, node: &str) -> Vec<u32> {
        if self.joining.contains(node) {
            return Vec::new();
        }
        self.queued.iter().filter(|(_, n)| n.iter().any(|x| x == node)).map(|(s, _)| *s).collect()
    }
}

/// The routing table of a placement state (pure): reads by the source placement until the
/// cut-over, by the target's after; the node list is every node that gets traffic.
pub fn routing_for(state: &PlacementState, version: u64) -> RoutingTable {
    let Some(m) = state.migration.as_ref().filter(|m| !m.phase.ended()) else {
        let assignment = state.topology.assignment();
        return RoutingTable::plain(state.topology.clone(), assignment, version);
    };
    let switched = m.phase.switched();
    let (read, other) = if switched { (&m.target, &state.topology) } else { (&state.topology, &m.target) };
    let mut topology = read.clone();
    for n in &other.nodes {
        if topology.node(&n.id).is_none() {
            topology.nodes.push(n.clone());
        }
    }
    topology.replica_groups = topology.replica_groups.max(other.replica_groups);
    let mut r = MigrationRouting { id: m.id.clone(), phase: Some(m.phase), ..Default::default() };
    let mut held: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    let assignment = read.assignment();
    for (node, shards) in assignment.shards_by_node() {
        held.entry(node).or_default().extend(shards);
    }
    for mv in &m.moves {
        if switched {
            // Only until the clean-up starts: a write sent to a node after its copy of the
            // shard was deleted would stay there.
            if m.phase == Phase::CutOver && !mv.drop.is_empty() {
                r.also.insert(mv.shard, mv.drop.clone());
            }
            for n in &mv.drop {
                held.entry(n.clone()).or_default().insert(mv.shard);
            }
        } else {
            r.queued.insert(mv.shard, mv.to.clone());
            for n in &mv.to {
                held.entry(n.clone()).or_default().insert(mv.shard);
            }
        }
    }
    if !switched {
        r.joining = m.joining.iter().cloned().collect();
    }
    r.fenced = m.phase == Phase::Fencing;
    let mut table = RoutingTable::plain(topology, assignment, version);
    table.held = held.into_iter().map(|(k, v)| (k, v.into_iter().collect())).collect();
    table.migration = Some(r);
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo(ids: &[&str]) -> Topology {
        Topology {
            shards: 64,
            replication_factor: 1,
            replica_groups: 1,
            nodes: ids
                .iter()
                .map(|id| NodeSpec { id: id.to_string(), address: format!("http://127.0.0.1:1/{id}"), replica_group: 0 })
                .collect(),
        }
    }

    fn cause() -> MigrationCause {
        MigrationCause { source: "test".into(), description: "t".into() }
    }

    #[test]
    fn a_move_is_exactly_each_shard_whose_holders_change() {
        let from = topo(&["a", "b", "c"]);
        let to = topo(&["a", "b", "c", "d"]);
        let m = plan_migration(&from, &to, cause(), vec![], time::OffsetDateTime::UNIX_EPOCH).unwrap().unwrap();
        assert_eq!(m.joining, vec!["d"]);
        assert!(m.leaving.is_empty());
        let (before, after) = (from.assignment(), to.assignment());
        let set = |a: &Assignment, s: u32| a.holders(0, s).iter().cloned().collect::<BTreeSet<String>>();
        for s in 0..64 {
            let (b, a) = (set(&before, s), set(&after, s));
            match m.moves.iter().find(|x| x.shard == s) {
                None => assert_eq!(b, a, "shard {s} changes holders but is not moved"),
                Some(mv) => {
                    assert_ne!(b, a, "shard {s} is moved for nothing");
                    assert_eq!(mv.sources, b.iter().cloned().collect::<Vec<_>>());
                    assert_eq!(mv.to, a.difference(&b).cloned().collect::<Vec<_>>());
                    assert_eq!(mv.drop, b.difference(&a).cloned().collect::<Vec<_>>());
                }
            }
        }
        assert!(m.moves.iter().any(|x| x.to == vec!["d"]), "the new node receives shards");
        assert_eq!(m.queue_nodes().into_iter().collect::<Vec<_>>().contains(&"d".to_string()), true);
    }

    #[test]
    fn same_nodes_or_new_addresses_move_nothing() {
        let from = topo(&["a", "b"]);
        let mut to = from.clone();
        to.nodes[0].address = "http://127.0.0.1:2/a".into();
        assert_eq!(plan_migration(&from, &to, cause(), vec![], time::OffsetDateTime::UNIX_EPOCH).unwrap(), None);
        let mut bad = to.clone();
        bad.shards = 32;
        assert!(matches!(plan_migration(&from, &bad, cause(), vec![], time::OffsetDateTime::UNIX_EPOCH), Err(PlanError::ShardsChanged { .. })));
    }

    #[test]
    fn routing_reads_old_holders_and_queues_for_new_ones_until_the_cut_over() {
        let from = topo(&["a", "b", "c"]);
        let to = topo(&["a", "b", "c", "d"]);
        let m = plan_migration(&from, &to, cause(), vec![], time::OffsetDateTime::UNIX_EPOCH).unwrap().unwrap();
        let moved = m.moves[0].clone();
        let mut state = PlacementState::new(from.clone());
        state.migration = Some(m);
        let r = routing_for(&state, 3);
        assert_eq!(r.assignment, from.assignment(), "reads by the old placement");
        assert!(r.topology.node("d").is_some(), "the joining node is probed and addressed");
        let mr = r.migration.as_ref().unwrap();
        assert!(mr.queues("d", moved.shard));
        assert!(mr.queues("d", 9999), "everything for a joining node is queued");
        assert!(!mr.queues(&moved.sources[0], moved.shard));
        assert!(r.held["d"].contains(&moved.shard), "the new holder physically holds what it receives");
        assert!(!mr.fenced);

        state.migration.as_mut().unwrap().phase = Phase::Fencing;
        assert!(routing_for(&state, 4).migration.unwrap().fenced);

        state.migration.as_mut().unwrap().phase = Phase::Cleaning;
        let r = routing_for(&state, 6);
        assert!(r.migration.as_ref().unwrap().also.is_empty(), "no write reaches a copy being deleted");
        assert!(r.held[&moved.drop[0]].contains(&moved.shard), "reads filter it out until it is gone");

        state.migration.as_mut().unwrap().phase = Phase::CutOver;
        let r = routing_for(&state, 5);
        assert_eq!(r.assignment, to.assignment(), "reads by the new placement");
        let mr = r.migration.as_ref().unwrap();
        assert!(!mr.queues("d", moved.shard));
        assert_eq!(mr.also[&moved.shard], moved.drop, "old holders still get the shard's writes");
        assert!(r.held[&moved.drop[0]].contains(&moved.shard));
    }

    #[test]
    fn draining_a_node_moves_everything_off_it() {
        let from = topo(&["a", "b", "c", "d"]);
        let to = topo(&["a", "b", "c"]);
        let m = plan_migration(&from, &to, cause(), vec!["d".into()], time::OffsetDateTime::UNIX_EPOCH).unwrap().unwrap();
        assert_eq!(m.leaving, vec!["d"]);
        assert_eq!(m.draining, vec!["d"]);
        let held_by_d = from.assignment().shards_by_node().remove("d").unwrap();
        for s in &held_by_d {
            let mv = m.moves.iter().find(|x| x.shard == *s).unwrap_or_else(|| panic!("shard {s} of d is not moved"));
            assert!(mv.drop.contains(&"d".to_string()));
        }
        assert!(m.moves.iter().all(|mv| !mv.to.contains(&"d".to_string())));
    }

    #[test]
    fn a_new_replica_group_receives_every_shard_and_nobody_loses_one() {
        let from = topo(&["a", "b"]);
        let mut to = from.clone();
        to.replica_groups = 2;
        for id in ["c", "d"] {
            to.nodes.push(NodeSpec { id: id.into(), address: format!("http://127.0.0.1:1/{id}"), replica_group: 1 });
        }
        let m = plan_migration(&from, &to, cause(), vec![], time::OffsetDateTime::UNIX_EPOCH).unwrap().unwrap();
        assert_eq!(m.joining, vec!["c", "d"]);
        assert_eq!(m.moves.len(), 64, "every shard gets a copy in the new group");
        for mv in &m.moves {
            assert_eq!(mv.to.len(), 1);
            assert!(mv.to[0] == "c" || mv.to[0] == "d");
            assert!(mv.drop.is_empty(), "shard {}: the first group keeps it", mv.shard);
        }
        // Until the cut-over the new group is written through the queue and never read.
        let mut state = PlacementState::new(from.clone());
        state.migration = Some(m);
        let r = routing_for(&state, 2);
        assert_eq!(r.assignment.groups.len(), 1);
        assert!(r.migration.as_ref().unwrap().joining.contains("c"));
    }
}

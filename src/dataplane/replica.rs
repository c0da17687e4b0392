//! Replica sync state: whether each node holds every acknowledged write.
//!
//! The truth is durable: the node's missed-operation log in the task store (see
//! [`crate::store::TaskStore::append_missed`]). This registry is each process's view of it:
//! refreshed from the store by the health checker before a node is let back in, updated at
//! once by this process's own writes, and by the replay worker as it drains a log.
//!
//! A node is *caught up* when its log is empty and it has been checked since it last came
//! back (a node that returns with an empty data dir is found then and rebuilt). Only caught-up,
//! healthy nodes answer reads; writes for a node that is not caught up are appended to its log
//! (behind what it already missed) instead of being sent, so it never applies an older version
//! of a document after a newer one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::store::MissedSummary;

/// The method of a stored operation that is not an HTTP request but a request to rebuild
/// the node (some or all of its shards) from an up-to-date replica. Its body is a JSON
/// [`RebuildScope`].
pub const REBUILD_METHOD: &str = "MIROIR-REBUILD";

/// What a rebuild covers (`None`: everything).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RebuildScope {
    /// Index uids to rebuild (`None`: every index, and indexes the node should not have are deleted).
    #[serde(default)]
    pub indexes: Option<Vec<String>>,
    /// Shards to rebuild among those the node holds (`None`: all of them).
    #[serde(default)]
    pub shards: Option<Vec<u32>>,
    /// Why, for logs and `/_miroir/topology`.
    #[serde(default)]
    pub reason: String,
}

impl RebuildScope {
    /// Whether the rebuild copies every index and every shard the node holds.
    pub fn covers_everything(&self) -> bool {
        self.indexes.is_none() && self.shards.is_none()
    }
}

/// A node's sync state as this process knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncState {
    /// No pending operation; checked since it last came back.
    CaughtUp,
    /// Pending operations are being replayed (or wait for the node to come back).
    CatchingUp,
    /// A rebuild from an up-to-date replica is queued or running.
    Rebuilding,
    /// Came back (or Miroir started) and has not been checked yet.
    Unchecked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSync {
    pub state: SyncState,
    pub pending_operations: u64,
    pub pending_bytes: u64,
}

impl NodeSync {
    pub fn caught_up(&self) -> bool {
        self.state == SyncState::CaughtUp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_counter_that_goes_back_is_reported_once() {
        let r = SyncRegistry::default();
        assert!(!r.task_counter_went_back("n", None), "never seen: nothing to compare");
        assert!(!r.task_counter_went_back("n", Some(4)));
        assert!(!r.task_counter_went_back("n", Some(9)));
        assert!(r.task_counter_went_back("n", Some(2)), "9 then 2: the node lost its tasks");
        assert!(!r.task_counter_went_back("n", Some(3)), "reported once, then counted from the new value");
        assert!(r.task_counter_went_back("n", None), "no task at all after some");
        assert!(!r.task_counter_went_back("n", Some(0)));
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    summary: MissedSummary,
    /// A rebuild marker is pending.
    rebuilding: bool,
    /// Not checked since it came back (or since this process started).
    unchecked: bool,
    /// The pending counts were read from the store at least once.
    loaded: bool,
}

impl Default for Entry {
    fn default() -> Self {
        // A process that just started knows nothing about a node until it has looked.
        Entry { summary: MissedSummary::default(), rebuilding: false, unchecked: true, loaded: false }
    }
}

/// Per-process view of every node's sync state, plus the per-node locks that make
/// "is it behind? then append" and "is the log empty? then it is caught up" atomic.
#[derive(Default)]
pub struct SyncRegistry {
    nodes: Mutex<HashMap<String, Entry>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Per node: held while the node is checked for lost data (one check at a time).
    checks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Per node: the newest node task uid a probe has seen.
    newest_tasks: Mutex<HashMap<String, u64>>,
    /// Wakes the replay worker.
    pub(crate) wake: tokio::sync::Notify,
}

impl SyncRegistry {
    pub fn get(&self, node: &str) -> NodeSync {
        let e = self.nodes.lock().expect("sync lock").get(node).copied().unwrap_or_default();
        let state = if e.rebuilding {
            SyncState::Rebuilding
        } else if e.summary.pending > 0 {
            SyncState::CatchingUp
        } else if e.unchecked || !e.loaded {
            SyncState::Unchecked
        } else {
            SyncState::CaughtUp
        };
        NodeSync { state, pending_operations: e.summary.pending, pending_bytes: e.summary.bytes }
    }

    /// Whether writes may be sent to the node directly: its log is known to be empty and it
    /// has been checked for lost data since it came back (a write landing on a node that lost
    /// its data dir would make it look like it had not).
    pub fn takes_writes(&self, node: &str) -> bool {
        let m = self.nodes.lock().expect("sync lock");
        m.get(node).is_some_and(|e| e.loaded && !e.unchecked && e.summary.pending == 0)
    }

    /// Records the newest task uid a probe saw; true when it is older than one seen before
    /// (or the node has no task any more): the node lost its data dir. The mark moves to the
    /// new value, so one loss is reported once.
    pub fn task_counter_went_back(&self, node: &str, newest: Option<u64>) -> bool {
        let mut m = self.newest_tasks.lock().expect("sync tasks");
        let seen = m.get(node).copied();
        let went_back = match (seen, newest) {
            (Some(s), Some(n)) => n < s,
            (Some(_), None) => true,
            (None, _) => false,
        };
        match newest {
            Some(n) => {
                m.insert(node.to_string(), n);
            }
            None => {
                m.remove(node);
            }
        }
        went_back
    }

    /// The lock serialising log decisions for one node.
    pub fn lock_of(&self, node: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().expect("sync locks").entry(node.to_string()).or_default().clone()
    }

    /// The lock held while the node is checked for lost data.
    pub fn check_lock_of(&self, node: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.checks.lock().expect("sync checks").entry(node.to_string()).or_default().clone()
    }

    /// Replaces the pending counts from the store.
    pub fn set_summary(&self, node: &str, summary: MissedSummary, rebuilding: bool) {
        let mut m = self.nodes.lock().expect("sync lock");
        let e = m.entry(node.to_string()).or_default();
        e.summary = summary;
        e.rebuilding = rebuilding && summary.pending > 0;
        e.loaded = true;
    }

    /// One more pending operation of `bytes` (appended by this process).
    pub fn add_pending(&self, node: &str, bytes: u64, rebuild: bool) {
        let mut m = self.nodes.lock().expect("sync lock");
        let e = m.entry(node.to_string()).or_default();
        e.summary.pending += 1;
        e.summary.bytes += bytes;
        e.rebuilding |= rebuild;
        drop(m);
        self.wake.notify_one();
    }

    /// The node came back (or may have lost its data): check it before it answers reads.
    pub fn mark_unchecked(&self, node: &str) {
        self.nodes.lock().expect("sync lock").entry(node.to_string()).or_default().unchecked = true;
        self.wake.notify_one();
    }

    pub fn mark_checked(&self, node: &str) {
        self.nodes.lock().expect("sync lock").entry(node.to_string()).or_default().unchecked = false;
    }

    pub fn is_unchecked(&self, node: &str) -> bool {
        self.nodes.lock().expect("sync lock").get(node).map(|e| e.unchecked).unwrap_or(true)
    }

    /// Forgets nodes that left the topology.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.nodes.lock().expect("sync lock").retain(|id, _| keep(id));
    }
}

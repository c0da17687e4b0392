//! Choosing a covering set for a read: every shard exactly once. A read goes to one replica
//! group (round-robin per process); inside it each shard is served by its preferred healthy
//! holder, else by another healthy holder in the group, else by a healthy holder in another
//! group. Shards with no healthy copy anywhere are reported as missing. Each node's
//! sub-query is restricted to the shards it answers for, so no hit is counted twice.

use std::collections::BTreeMap;

use serde_json::Value;

use super::merge::SHARD_FIELD;
use super::topology::Assignment;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoveringSet {
    /// Node id → the shards it answers for (ascending).
    pub per_node: BTreeMap<String, Vec<u32>>,
    /// Shards with no healthy copy in any group.
    pub missing: Vec<u32>,
}

/// Pure: `first_group` is tried first, then the other groups in order.
pub fn covering_set(assignment: &Assignment, first_group: u32, usable: impl Fn(&str) -> bool) -> CoveringSet {
    let groups = assignment.groups.len() as u32;
    let shards = assignment.groups.first().map(Vec::len).unwrap_or(0) as u32;
    let mut per_node: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut missing = Vec::new();
    for s in 0..shards {
        let holder = (0..groups)
            .map(|i| (first_group + i) % groups)
            .flat_map(|g| assignment.holders(g, s).iter())
            .find(|n| usable(n));
        match holder {
            Some(n) => per_node.entry(n.clone()).or_default().push(s),
            None => missing.push(s),
        }
    }
    CoveringSet { per_node, missing }
}

/// The node-side filter restricting a sub-query to `shards`, combined with the client's
/// filter (string or array form; the array form's outer level is AND). `None` when the
/// node answers for every shard it holds and the client has no filter.
pub fn shard_filter(client_filter: Option<&Value>, shards: &[u32], node_holds_only_these: bool) -> Option<Value> {
    let client = client_filter.filter(|f| !f.is_null());
    if node_holds_only_these {
        return client.cloned();
    }
    let list: Vec<String> = shards.iter().map(u32::to_string).collect();
    let restriction = format!("{SHARD_FIELD} IN [{}]", list.join(", "));
    Some(match client {
        None => Value::String(restriction),
        Some(Value::String(f)) if f.trim().is_empty() => Value::String(restriction),
        Some(Value::String(f)) => Value::String(format!("{restriction} AND ({f})")),
        Some(Value::Array(parts)) => {
            let mut all = vec![Value::String(restriction)];
            all.extend(parts.iter().cloned());
            Value::Array(all)
        }
        // Let the node reject a malformed filter with its own error.
        Some(other) => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::topology::{NodeSpec, Topology};
    use serde_json::json;

    fn topo(rf: u32, groups: &[usize]) -> Topology {
        let mut nodes = vec![];
        for (g, n) in groups.iter().enumerate() {
            for i in 0..*n {
                nodes.push(NodeSpec { id: format!("g{g}n{i}"), address: "http://x:1".into(), replica_group: g as u32 });
            }
        }
        Topology { shards: 32, replication_factor: rf, replica_groups: groups.len() as u32, nodes }
    }

    #[test]
    fn every_shard_exactly_once_from_the_chosen_group() {
        let t = topo(2, &[3, 3]);
        let a = t.assignment();
        for g in 0..2 {
            let c = covering_set(&a, g, |_| true);
            let mut all: Vec<u32> = c.per_node.values().flatten().copied().collect();
            all.sort();
            assert_eq!(all, (0..32).collect::<Vec<_>>());
            assert!(c.missing.is_empty());
            for n in c.per_node.keys() {
                assert!(n.starts_with(&format!("g{g}")));
            }
        }
    }

    #[test]
    fn falls_back_inside_the_group_then_to_other_groups() {
        let t = topo(2, &[2, 2]);
        let a = t.assignment();
        // g0n0 down: g0n1 holds every shard too (RF=2 in a 2-node group).
        let c = covering_set(&a, 0, |n| n != "g0n0");
        assert_eq!(c.per_node.keys().collect::<Vec<_>>(), vec!["g0n1"]);
        // Whole group 0 down: group 1 answers.
        let c = covering_set(&a, 0, |n| !n.starts_with("g0"));
        assert!(c.per_node.keys().all(|n| n.starts_with("g1")));
        // Nothing up: all shards missing.
        let c = covering_set(&a, 0, |_| false);
        assert_eq!(c.missing.len(), 32);
    }

    #[test]
    fn filters_combine_with_the_client_filter() {
        assert_eq!(shard_filter(None, &[1, 5], false), Some(json!("_miroir_shard IN [1, 5]")));
        assert_eq!(shard_filter(Some(&json!("genre = Drama")), &[1], false), Some(json!("_miroir_shard IN [1] AND (genre = Drama)")));
        assert_eq!(
            shard_filter(Some(&json!([["a = 1", "b = 2"], "c = 3"])), &[2], false),
            Some(json!(["_miroir_shard IN [2]", ["a = 1", "b = 2"], "c = 3"]))
        );
        assert_eq!(shard_filter(Some(&json!("x = 1")), &[1], true), Some(json!("x = 1")));
        assert_eq!(shard_filter(None, &[1], true), None);
    }
}

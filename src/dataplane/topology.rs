//! The cluster's shape: shards, replication factor, replica groups and nodes, and the
//! shard → node assignment derived from it by rendezvous hashing.
//!
//! `miroir serve --config` (from the YAML file) and `miroir operator` (from a MiroirCluster
//! spec) both build a [`Topology`] and hand it to the proxy through the same call
//! (`Proxy::apply_topology`), so there is one code path into routing.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::placement::assign_group;

/// One Meilisearch node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub id: String,
    /// Base URL, e.g. `http://10.0.0.5:7700`.
    pub address: String,
    pub replica_group: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub shards: u32,
    pub replication_factor: u32,
    pub replica_groups: u32,
    pub nodes: Vec<NodeSpec>,
}

/// Why a topology is invalid. Each message names the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("`shards` must be at least 1 (got 0)")]
    ShardsZero,
    #[error("`replication_factor` must be at least 1 (got 0)")]
    ReplicationFactorZero,
    #[error("`replica_groups` must be at least 1 (got 0)")]
    ReplicaGroupsZero,
    #[error("`nodes`: node id `{0}` appears more than once")]
    DuplicateNodeId(String),
    #[error("`nodes`: a node has an empty `id`")]
    EmptyNodeId,
    #[error("`nodes[{id}].address`: `{address}` is not an http(s) URL")]
    BadAddress { id: String, address: String },
    #[error("`nodes[{id}].replica_group`: {group} is out of range (replica_groups = {groups}, groups are numbered from 0)")]
    GroupOutOfRange { id: String, group: u32, groups: u32 },
    #[error("`replica_groups`: group {0} has no nodes")]
    EmptyGroup(u32),
    #[error("`replication_factor`: {rf} is larger than replica group {group}, which has {nodes} node(s)")]
    ReplicationFactorTooLarge { rf: u32, group: u32, nodes: usize },
}

impl Topology {
    pub fn validate(&self) -> Result<(), TopologyError> {
        if self.shards == 0 {
            return Err(TopologyError::ShardsZero);
        }
        if self.replication_factor == 0 {
            return Err(TopologyError::ReplicationFactorZero);
        }
        if self.replica_groups == 0 {
            return Err(TopologyError::ReplicaGroupsZero);
        }
        let mut seen = BTreeSet::new();
        for n in &self.nodes {
            if n.id.is_empty() {
                return Err(TopologyError::EmptyNodeId);
            }
            if !seen.insert(n.id.as_str()) {
                return Err(TopologyError::DuplicateNodeId(n.id.clone()));
            }
            let ok = url::Url::parse(&n.address)
                .map(|u| (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some())
                .unwrap_or(false);
            if !ok {
                return Err(TopologyError::BadAddress { id: n.id.clone(), address: n.address.clone() });
            }
            if n.replica_group >= self.replica_groups {
                return Err(TopologyError::GroupOutOfRange {
                    id: n.id.clone(),
                    group: n.replica_group,
                    groups: self.replica_groups,
                });
            }
        }
        for g in 0..self.replica_groups {
            let count = self.group_nodes(g).len();
            if count == 0 {
                return Err(TopologyError::EmptyGroup(g));
            }
            if (self.replication_factor as usize) > count {
                return Err(TopologyError::ReplicationFactorTooLarge {
                    rf: self.replication_factor,
                    group: g,
                    nodes: count,
                });
            }
        }
        Ok(())
    }

    /// Ids of the nodes of replica group `g`, in declaration order.
    pub fn group_nodes(&self, g: u32) -> Vec<&str> {
        self.nodes.iter().filter(|n| n.replica_group == g).map(|n| n.id.as_str()).collect()
    }

    pub fn node(&self, id: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The shard → node table. Call only on a validated topology.
    pub fn assignment(&self) -> Assignment {
        let groups = (0..self.replica_groups)
            .map(|g| assign_group(self.shards, self.replication_factor as usize, &self.group_nodes(g)))
            .collect();
        Assignment { groups }
    }
}

/// `groups[g][s]` = the RF node ids holding shard `s` in replica group `g`, best first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assignment {
    pub groups: Vec<Vec<Vec<String>>>,
}

impl Assignment {
    pub fn holders(&self, group: u32, shard: u32) -> &[String] {
        &self.groups[group as usize][shard as usize]
    }

    /// Shards each node holds, per node id.
    pub fn shards_by_node(&self) -> BTreeMap<String, Vec<u32>> {
        let mut out: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for group in &self.groups {
            for (s, holders) in group.iter().enumerate() {
                for n in holders {
                    out.entry(n.clone()).or_default().push(s as u32);
                }
            }
        }
        out
    }

    /// Shards whose holder set differs between `self` and `next` in any group.
    pub fn moved_shards(&self, next: &Assignment) -> Vec<u32> {
        let shards = self.groups.first().map(Vec::len).unwrap_or(0);
        (0..shards as u32)
            .filter(|&s| {
                let before: Vec<BTreeSet<&String>> =
                    self.groups.iter().map(|g| g[s as usize].iter().collect()).collect();
                let after: Vec<BTreeSet<&String>> = next
                    .groups
                    .iter()
                    .map(|g| g.get(s as usize).map(|h| h.iter().collect()).unwrap_or_default())
                    .collect();
                before != after
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn topo(shards: u32, rf: u32, groups: &[&[&str]]) -> Topology {
        let mut nodes = Vec::new();
        for (g, ids) in groups.iter().enumerate() {
            for id in *ids {
                nodes.push(NodeSpec {
                    id: id.to_string(),
                    address: format!("http://127.0.0.1:1/{id}"),
                    replica_group: g as u32,
                });
            }
        }
        Topology { shards, replication_factor: rf, replica_groups: groups.len() as u32, nodes }
    }

    #[test]
    fn validation_names_the_key() {
        assert_eq!(topo(0, 1, &[&["a"]]).validate(), Err(TopologyError::ShardsZero));
        let e = topo(4, 3, &[&["a", "b"]]).validate().unwrap_err();
        assert!(e.to_string().starts_with("`replication_factor`"), "{e}");
        let e = topo(4, 1, &[&["a", "a"]]).validate().unwrap_err();
        assert_eq!(e, TopologyError::DuplicateNodeId("a".into()));
        let mut t = topo(4, 1, &[&["a"]]);
        t.replica_groups = 2;
        assert_eq!(t.validate(), Err(TopologyError::EmptyGroup(1)));
    }

    #[test]
    fn every_shard_has_rf_distinct_holders_in_every_group() {
        let t = topo(16, 2, &[&["a", "b", "c"], &["d", "e"]]);
        t.validate().unwrap();
        let a = t.assignment();
        for g in 0..2 {
            for s in 0..16 {
                let h = a.holders(g, s);
                assert_eq!(h.len(), 2);
                assert_ne!(h[0], h[1]);
                for n in h {
                    assert_eq!(t.node(n).unwrap().replica_group, g);
                }
            }
        }
    }
}

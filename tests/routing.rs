//! Routing: the hash specification pinned by checked-in vectors (computed by an
//! independent implementation), and rendezvous properties.

use std::collections::BTreeMap;

use miroir::dataplane::hash::{hrw_weight, shard_of, HRW_SEED, SHARD_SEED};
use miroir::dataplane::topology::{NodeSpec, Topology};
use proptest::prelude::*;
use serde_json::Value;
use xxhash_rust::xxh3::xxh3_64_with_seed;

fn vectors() -> Value {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hash_vectors.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn shard_hash_matches_fixture_vectors() {
    let v = vectors();
    assert_eq!(v["shard_seed"].as_u64().unwrap(), SHARD_SEED);
    for case in v["shard"].as_array().unwrap() {
        let key = case["key"].as_str().unwrap();
        let hash: u64 = case["hash"].as_str().unwrap().parse().unwrap();
        assert_eq!(xxh3_64_with_seed(key.as_bytes(), SHARD_SEED), hash, "key {key:?}");
        assert_eq!(shard_of(key, 16) as u64, case["shard_mod_16"].as_u64().unwrap());
        assert_eq!(shard_of(key, 7) as u64, case["shard_mod_7"].as_u64().unwrap());
        assert_eq!(shard_of(key, 1024) as u64, case["shard_mod_1024"].as_u64().unwrap());
    }
}

#[test]
fn hrw_weight_matches_fixture_vectors() {
    let v = vectors();
    assert_eq!(v["hrw_seed"].as_u64().unwrap(), HRW_SEED);
    for case in v["hrw"].as_array().unwrap() {
        let w: u64 = case["weight"].as_str().unwrap().parse().unwrap();
        let shard = case["shard"].as_u64().unwrap() as u32;
        let node = case["node"].as_str().unwrap();
        assert_eq!(hrw_weight(shard, node), w, "shard {shard} node {node}");
    }
}

fn topo(shards: u32, rf: u32, group_sizes: &[usize]) -> Topology {
    let mut nodes = Vec::new();
    for (g, n) in group_sizes.iter().enumerate() {
        for i in 0..*n {
            nodes.push(NodeSpec { id: format!("g{g}-n{i}"), address: format!("http://127.0.0.1:{}", 7700 + i), replica_group: g as u32 });
        }
    }
    Topology { shards, replication_factor: rf, replica_groups: group_sizes.len() as u32, nodes }
}

#[test]
fn document_hash_is_uniform_over_shards() {
    let shards = 16u32;
    let n = 160_000;
    let mut counts = vec![0u32; shards as usize];
    for i in 0..n {
        counts[shard_of(&i.to_string(), shards) as usize] += 1;
    }
    // Chi-square with 15 degrees of freedom: the 99.9th percentile is 37.7.
    let expected = n as f64 / shards as f64;
    let chi2: f64 = counts.iter().map(|c| (*c as f64 - expected).powi(2) / expected).sum();
    assert!(chi2 < 37.7, "chi2 = {chi2}, counts = {counts:?}");
}

#[test]
fn rendezvous_spreads_shards_over_nodes() {
    let t = topo(1024, 1, &[4]);
    let by_node = t.assignment().shards_by_node();
    for (node, shards) in &by_node {
        // 256 expected per node; a binomial(1024, 1/4) is within ±60 with overwhelming probability.
        assert!((196..=316).contains(&shards.len()), "{node} holds {}", shards.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Adding a node to a group moves only shards that move *to* the new node, and other
    /// groups do not change at all.
    #[test]
    fn adding_a_node_moves_only_shards_to_it(shards in 1u32..200, rf in 1u32..4, size in 1usize..7, other in 1usize..4) {
        prop_assume!(rf as usize <= size && rf as usize <= other);
        let before = topo(shards, rf, &[size, other]);
        let mut after = before.clone();
        after.nodes.push(NodeSpec { id: "new".into(), address: "http://127.0.0.1:9999".into(), replica_group: 0 });
        before.validate().unwrap();
        after.validate().unwrap();
        let (a, b) = (before.assignment(), after.assignment());
        for s in 0..shards as usize {
            let old: Vec<&String> = a.groups[0][s].iter().collect();
            let new: Vec<&String> = b.groups[0][s].iter().collect();
            for n in &new {
                prop_assert!(old.contains(n) || n.as_str() == "new", "shard {s}: {n} appeared");
            }
            // At most one holder is replaced, and only by the new node.
            let lost = old.iter().filter(|n| !new.contains(n)).count();
            prop_assert!(lost <= 1);
            prop_assert_eq!(&a.groups[1][s], &b.groups[1][s]);
        }
    }

    /// Removing a node moves only the shards it held.
    #[test]
    fn removing_a_node_moves_only_its_shards(shards in 1u32..200, rf in 1u32..3, size in 2usize..7) {
        prop_assume!((rf as usize) < size);
        let before = topo(shards, rf, &[size]);
        let mut after = before.clone();
        let gone = after.nodes.remove(0).id;
        let (a, b) = (before.assignment(), after.assignment());
        let moved = a.moved_shards(&b);
        let held: BTreeMap<String, Vec<u32>> = a.shards_by_node();
        let expected = held.get(&gone).cloned().unwrap_or_default();
        prop_assert_eq!(moved, expected);
    }
}

//! Shard → node placement within one replica group: *bounded-load rank rendezvous*.
//!
//! Specified byte-for-byte in `docs/hashing.md` ("Shard → nodes"), pinned by the `placement`
//! vectors in `tests/fixtures/hash_vectors.json` (computed by an independent implementation)
//! and measured by `cargo bench --bench placement`. In short:
//!
//! 1. Every node ranks all shards by its rendezvous weight [`hrw_weight`]`(shard, node)`,
//!    highest first (rank 0 = its favourite shard). The ranking depends only on the node id
//!    and the shard count, never on the other members.
//! 2. The (shard, node) pairs are visited by rank ascending (ties: weight descending, then
//!    node id bytewise ascending), and a pair is taken when the shard still has fewer than RF
//!    holders and the node holds fewer than [`capacity`] shards.
//! 3. If a shard is left with fewer than RF holders (every member that does not hold it is
//!    full; impossible with RF = 1, rare with RF ≥ 2 and seen only in small tables), the
//!    capacity is raised by one and step 2 starts over from an empty table, until every shard
//!    has RF holders.
//!
//! Without the capacity, step 2 is plain rendezvous on per-node ranks (the holder of a shard is
//! the member that ranks it best): adding a node moves only shards *to* it. Ranks, unlike raw
//! weights, give every node exactly one claim per round, so loads drift apart only through
//! collisions; the capacity, a little above the mean, trims what is left, and moves few shards
//! doing so because few nodes reach it (measurements in docs/hashing.md).

use super::hash::hrw_weight;

/// The shard count `miroir dev` and the Helm chart use when none is given (docs/hashing.md,
/// "Why 1260 shards"): with the capacity below it keeps the largest node within 1.10 × the
/// mean and the data moved by adding a node within 1.15 × the optimum, for 3 to 8 nodes.
pub const DEFAULT_SHARDS: u32 = 1260;

/// Capacity slack, as a fraction `SLACK_NUM / SLACK_DEN` of the mean load.
pub const SLACK_NUM: u64 = 1;
pub const SLACK_DEN: u64 = 20;

/// The most shard replicas one node of a group of `nodes` members may hold:
/// `ceil(shards × rf × (SLACK_DEN + SLACK_NUM) / (SLACK_DEN × nodes))`, i.e. the mean load
/// plus 5 %, rounded up.
pub fn capacity(shards: u32, rf: usize, nodes: usize) -> usize {
    let num = shards as u64 * rf as u64 * (SLACK_DEN + SLACK_NUM);
    let den = SLACK_DEN * nodes as u64;
    num.div_ceil(den) as usize
}

/// Shards `0..shards` in the order `node` prefers them: weight descending, ties by shard
/// ascending. `ranks[s]` = position of shard `s` in that order.
fn ranks(shards: u32, node: &str) -> (Vec<u64>, Vec<u32>) {
    let weights: Vec<u64> = (0..shards).map(|s| hrw_weight(s, node)).collect();
    let mut order: Vec<u32> = (0..shards).collect();
    order.sort_unstable_by(|&a, &b| weights[b as usize].cmp(&weights[a as usize]).then(a.cmp(&b)));
    let mut rank = vec![0u32; shards as usize];
    for (r, &s) in order.iter().enumerate() {
        rank[s as usize] = r as u32;
    }
    (weights, rank)
}

/// The holders of every shard in one replica group: `out[s]` = the `rf` distinct member ids
/// holding shard `s`, best first (in the order they were given the shard). A pure function of
/// its arguments: every Miroir computes the same table, whatever the order of `members`.
///
/// `members` must be distinct, and `1 <= rf <= members.len()`.
pub fn assign_group(shards: u32, rf: usize, members: &[&str]) -> Vec<Vec<String>> {
    let n = members.len();
    assert!(rf >= 1 && rf <= n, "rf ({rf}) must be between 1 and the group size ({n})");
    let pairs = visiting_order(shards, members);
    let mut cap = capacity(shards, rf, n);
    loop {
        if let Some(table) = fill(&pairs, shards, rf, n, cap) {
            return table.into_iter().map(|h| h.into_iter().map(|i| members[i].to_string()).collect()).collect();
        }
        // Terminates: with cap >= shards no member is ever full, so every shard meets all
        // n >= rf members.
        cap += 1;
    }
}

/// (rank, weight, member index, shard) of every pair, sorted in visiting order: rank
/// ascending, weight descending, member id bytewise ascending (a member has one shard per
/// rank, so this is a total order).
fn visiting_order(shards: u32, members: &[&str]) -> Vec<(u32, u64, usize, u32)> {
    let mut pairs = Vec::with_capacity(shards as usize * members.len());
    for (i, m) in members.iter().enumerate() {
        let (weights, rank) = ranks(shards, m);
        for s in 0..shards {
            pairs.push((rank[s as usize], weights[s as usize], i, s));
        }
    }
    pairs.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then(b.1.cmp(&a.1))
            .then_with(|| members[a.2].as_bytes().cmp(members[b.2].as_bytes()))
    });
    pairs
}

/// One pass: a pair is taken when its shard has fewer than `rf` holders and its member fewer
/// than `cap` shards. `None` when some shard is left short. (A member never gets a shard
/// twice: each (shard, member) pair is visited once.)
fn fill(pairs: &[(u32, u64, usize, u32)], shards: u32, rf: usize, n: usize, cap: usize) -> Option<Vec<Vec<usize>>> {
    let mut load = vec![0usize; n];
    let mut out: Vec<Vec<usize>> = vec![Vec::with_capacity(rf); shards as usize];
    for &(_, _, i, s) in pairs {
        let h = &mut out[s as usize];
        if h.len() < rf && load[i] < cap {
            h.push(i);
            load[i] += 1;
        }
    }
    out.iter().all(|h| h.len() == rf).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}-{i}")).collect()
    }

    /// Every shard gets `rf` distinct holders; no member holds more than the capacity, except
    /// where the capacity was raised because a pass at the lower one left a shard short.
    #[test]
    fn every_shard_has_rf_distinct_holders_and_loads_stay_within_capacity() {
        let mut raised = 0;
        for n in 1..=9 {
            for rf in 1..=n.min(4) {
                for shards in [1u32, 2, 3, 4, 5, 7, 10, 11, 16, 33, 100, 257, 1260] {
                    for prefix in ["node", "x", "meili"] {
                        let ids = names(prefix, n);
                        let members: Vec<&str> = ids.iter().map(String::as_str).collect();
                        let t = assign_group(shards, rf, &members);
                        assert_eq!(t.len(), shards as usize);
                        let mut load = vec![0usize; n];
                        for h in &t {
                            assert_eq!(h.len(), rf);
                            for (k, id) in h.iter().enumerate() {
                                assert!(!h[..k].contains(id), "{h:?}");
                                load[members.iter().position(|m| m == id).unwrap()] += 1;
                            }
                        }
                        let max = *load.iter().max().unwrap();
                        let cap = capacity(shards, rf, n);
                        if max > cap {
                            raised += 1;
                            // Only where the lower capacity leaves a shard short, which RF = 1
                            // never does (n × cap >= S × 1.05 > S).
                            assert!(rf >= 2, "n {n} S {shards}: {load:?}");
                            let pairs = visiting_order(shards, &members);
                            assert!(fill(&pairs, shards, rf, n, max - 1).is_none(), "n {n} rf {rf} S {shards}: {load:?}");
                        }
                    }
                }
            }
        }
        // The raise exists for small tables only; if this never happens the test above
        // checks nothing about it.
        assert!(raised > 0);
    }

    #[test]
    fn member_order_does_not_matter() {
        let a = assign_group(64, 2, &["a", "b", "c", "d"]);
        let b = assign_group(64, 2, &["d", "b", "a", "c"]);
        assert_eq!(a, b);
    }

    #[test]
    fn with_rf_one_and_no_full_member_the_best_ranked_member_holds_the_shard() {
        // A capacity nobody reaches: plain rendezvous on ranks.
        let members = ["a", "b", "c"];
        let pairs = visiting_order(50, &members);
        let t = fill(&pairs, 50, 1, 3, 50).unwrap();
        let ranked: Vec<Vec<u32>> = members.iter().map(|m| ranks(50, m).1).collect();
        for s in 0..50usize {
            let best = (0..3).min_by_key(|&i| (ranked[i][s], std::cmp::Reverse(hrw_weight(s as u32, members[i])))).unwrap();
            assert_eq!(t[s], vec![best]);
        }
    }

    #[test]
    fn capacity_is_the_mean_plus_five_percent_rounded_up() {
        assert_eq!(capacity(1260, 1, 3), 441); // 420 × 1.05
        assert_eq!(capacity(1260, 1, 8), 166); // 157.5 × 1.05 = 165.4
        assert_eq!(capacity(1260, 2, 5), 530); // 504 × 1.05 = 529.2
        assert_eq!(capacity(16, 2, 3), 12); // 10.67 × 1.05 = 11.2
        assert_eq!(capacity(1, 1, 5), 1);
    }
}

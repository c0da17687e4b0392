//! Shard → node placement within one replica group: bounded-load rendezvous.
//! Specified byte-for-byte in `docs/hashing.md` ("Shard → nodes") and pinned by the
//! `placement` vectors in `tests/fixtures/hash_vectors.json`.

use super::hash::hrw_weight;

/// The holders of every shard in one replica group: `out[s]` = the `rf` distinct node ids
/// holding shard `s`, best first. A pure function of its arguments (every Miroir computes
/// the same table). `members` must be distinct and at least `rf` long.
pub fn assign_group(shards: u32, rf: usize, members: &[&str]) -> Vec<Vec<String>> {
    let n = members.len();
    assert!(rf >= 1 && rf <= n, "rf must be between 1 and the group size");
    let total = shards as usize * rf;
    let cap = total.div_ceil(n);
    let mut pairs: Vec<(u64, u32, usize)> = Vec::with_capacity(total);
    for s in 0..shards {
        for (i, m) in members.iter().enumerate() {
            pairs.push((hrw_weight(s, m), s, i));
        }
    }
    pairs.sort_by(|a, b| {
        b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then_with(|| members[a.2].as_bytes().cmp(members[b.2].as_bytes()))
    });
    let mut load = vec![0usize; n];
    let mut out: Vec<Vec<usize>> = vec![Vec::with_capacity(rf); shards as usize];
    for &(_, s, i) in &pairs {
        let h = &mut out[s as usize];
        if h.len() < rf && load[i] < cap {
            h.push(i);
            load[i] += 1;
        }
    }
    for &(_, s, i) in &pairs {
        let h = &mut out[s as usize];
        if h.len() < rf && !h.contains(&i) {
            h.push(i);
            load[i] += 1;
        }
    }
    out.into_iter().map(|h| h.into_iter().map(|i| members[i].to_string()).collect()).collect()
}

//! The two hashes that place data. Specified byte-for-byte in `docs/hashing.md` and pinned
//! by fixture vectors in `tests/fixtures/hash_vectors.json`; do not change either without a
//! data migration.
//!
//! * shard of a document: `xxh3_64_with_seed(utf8(canonical_pk), SHARD_SEED) mod S`
//! * rendezvous weight of (shard, node): `xxh3_64_with_seed(be_u32(shard) ++ utf8(node_id), HRW_SEED)`

use serde_json::Value;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Seed of the document → shard hash: ASCII "miroir" as a big-endian integer.
pub const SHARD_SEED: u64 = 0x6d69_726f_6972;
/// Seed of the rendezvous (shard, node) weight: ASCII "hrw" as a big-endian integer.
pub const HRW_SEED: u64 = 0x0068_7277;

/// The canonical string form of a primary-key value: an integer is written in decimal
/// (so `1` and `"1"` are the same document, as they are for Meilisearch), a string as is.
/// Anything else is not a valid document id and yields `None`.
pub fn canonical_pk(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(i.to_string())
            } else {
                n.as_u64().map(|u| u.to_string())
            }
        }
        _ => None,
    }
}

/// Shard of a document with the given canonical primary key.
pub fn shard_of(canonical_pk: &str, shards: u32) -> u32 {
    assert!(shards > 0, "shards must be > 0");
    (xxh3_64_with_seed(canonical_pk.as_bytes(), SHARD_SEED) % shards as u64) as u32
}

/// Rendezvous weight of `node_id` for `shard`; the RF highest weights win.
pub fn hrw_weight(shard: u32, node_id: &str) -> u64 {
    let mut buf = Vec::with_capacity(4 + node_id.len());
    buf.extend_from_slice(&shard.to_be_bytes());
    buf.extend_from_slice(node_id.as_bytes());
    xxh3_64_with_seed(&buf, HRW_SEED)
}

/// The `rf` nodes (by id) that hold `shard`, among `candidates`, best first.
/// Ties on weight (astronomically unlikely) break by node id ascending.
pub fn rendezvous<'a>(shard: u32, candidates: &[&'a str], rf: usize) -> Vec<&'a str> {
    let mut scored: Vec<(u64, &'a str)> =
        candidates.iter().map(|n| (hrw_weight(shard, n), *n)).collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.into_iter().take(rf).map(|(_, n)| n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integer_and_string_ids_are_one_document() {
        assert_eq!(canonical_pk(&json!(1)), canonical_pk(&json!("1")));
        assert_eq!(shard_of("1", 16), shard_of(&canonical_pk(&json!(1)).unwrap(), 16));
        assert_eq!(canonical_pk(&json!(1.5)), None);
        assert_eq!(canonical_pk(&json!(null)), None);
        assert_eq!(canonical_pk(&json!(-7)).as_deref(), Some("-7"));
    }

    #[test]
    fn rendezvous_is_a_prefix_of_the_full_ranking() {
        let nodes = ["a", "b", "c", "d"];
        for s in 0..64 {
            let all = rendezvous(s, &nodes, 4);
            assert_eq!(rendezvous(s, &nodes, 2), all[..2].to_vec());
        }
    }
}

//! Comparing a ranked list through Miroir with one node's, modulo ties: Meilisearch orders
//! hits with equal ranking keys by internal document id, which differs between a node that
//! holds everything and the shards, so only the groups of equal keys must agree.

use std::collections::BTreeSet;
use std::fmt::Debug;

/// Groups consecutive `(key, id)` items with equal keys and compares the groups as sets of
/// ids (by size only for a group cut by the window's start or end: which of its members fall
/// inside the window depends on the tie order).
pub fn compare_groups<K: PartialEq + Clone + Debug>(single: &[(K, String)], miroir: &[(K, String)], cut_start: bool, cut_end: bool) -> Result<(), String> {
    if single.len() != miroir.len() {
        return Err(format!("{} items vs {}", single.len(), miroir.len()));
    }
    let groups = |items: &[(K, String)]| -> Vec<(K, Vec<String>)> {
        let mut g: Vec<(K, Vec<String>)> = Vec::new();
        for (k, id) in items {
            match g.last_mut() {
                Some((last, ids)) if last == k => ids.push(id.clone()),
                _ => g.push((k.clone(), vec![id.clone()])),
            }
        }
        g
    };
    let (a, b) = (groups(single), groups(miroir));
    if a.len() != b.len() {
        return Err(format!("{} tie groups vs {}: {a:?} / {b:?}", a.len(), b.len()));
    }
    let n = a.len();
    for (i, ((ka, ia), (kb, ib))) in a.iter().zip(&b).enumerate() {
        if ka != kb {
            return Err(format!("group {i}: keys differ: {ka:?} vs {kb:?}"));
        }
        if (i == 0 && cut_start) || (i + 1 == n && cut_end) {
            if ia.len() != ib.len() {
                return Err(format!("group {i}: {} vs {} items", ia.len(), ib.len()));
            }
        } else {
            let (sa, sb): (BTreeSet<_>, BTreeSet<_>) = (ia.iter().collect(), ib.iter().collect());
            if sa != sb {
                return Err(format!("group {i}: {sa:?} vs {sb:?}"));
            }
        }
    }
    Ok(())
}

/// Two answers of the same request: the same fields in the same order, with equal values
/// except `hits` (compared modulo ties by the caller) and what names or times the request.
pub fn same_fields_but_hits(single: &serde_json::Value, miroir: &serde_json::Value) -> Result<(), String> {
    let (sa, sb) = (single.as_object().ok_or("not an object")?, miroir.as_object().ok_or("not an object")?);
    let ka: Vec<&String> = sa.keys().collect();
    let kb: Vec<&String> = sb.keys().collect();
    if ka != kb {
        return Err(format!("fields {ka:?} vs {kb:?}"));
    }
    for (k, v) in sa {
        if !["hits", "processingTimeMs", "requestUid", "performanceDetails"].contains(&k.as_str()) && sb.get(k) != Some(v) {
            return Err(format!("`{k}`: {v} vs {}", sb[k]));
        }
    }
    Ok(())
}

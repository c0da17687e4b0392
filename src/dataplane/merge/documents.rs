//! `GET /indexes/{uid}/documents` and `POST /indexes/{uid}/documents/fetch` over a covering
//! set: the index is read as the concatenation of every node's documents (nodes in a fixed
//! order, each node's documents restricted to the shards it covers, in the node's own order),
//! so any page size pages through every document exactly once.
//!
//! The caller first learns each node's `total` for its shards (a fetch with the client's
//! filter AND `_miroir_shard IN [...]` and `limit: 0` answers the exact count), then fetches
//! the ranges [`plan_document_pages`] names, with the same filter and fields, then calls
//! [`merge_document_pages`].

use serde_json::{json, Map, Value};

use super::{bad_node_answer, strip_reserved};
use crate::error::ApiError;

/// Which `(node index, offset, limit)` ranges make up the window `offset..offset+limit` of
/// the concatenated listing. Empty ranges are left out.
pub fn plan_document_pages(node_totals: &[u64], offset: u64, limit: u64) -> Vec<(usize, u64, u64)> {
    let end = offset.saturating_add(limit);
    let mut start_of_node = 0u64;
    let mut out = Vec::new();
    for (i, &total) in node_totals.iter().enumerate() {
        let node_end = start_of_node.saturating_add(total);
        let from = offset.max(start_of_node);
        let to = end.min(node_end);
        if from < to {
            out.push((i, from - start_of_node, to - from));
        }
        start_of_node = node_end;
        if start_of_node >= end {
            break;
        }
    }
    out
}

/// Merges the node answers to the ranges of [`plan_document_pages`] (in plan order) into
/// `{results, offset, limit, total}`; `total` is the sum of the node totals the plan was made
/// from. `_miroir_*` fields are removed from every document.
pub fn merge_document_pages(
    offset: u64,
    limit: u64,
    node_totals: &[u64],
    pages: Vec<Value>,
) -> Result<Value, ApiError> {
    let mut results = Vec::new();
    for page in pages {
        let list = page
            .get("results")
            .and_then(Value::as_array)
            .ok_or_else(|| bad_node_answer("document listing"))?;
        for d in list {
            let mut d: Map<String, Value> = d.as_object().cloned().ok_or_else(|| bad_node_answer("document"))?;
            strip_reserved(&mut d);
            results.push(Value::Object(d));
        }
    }
    results.truncate(limit as usize);
    Ok(json!({
        "results": results,
        "offset": offset,
        "limit": limit,
        "total": node_totals.iter().sum::<u64>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn recorded_listing_over_three_nodes() {
        // "documents list": limit=3, offset=2, fields=id,title over 12 movies.
        let docs: Vec<Value> = (1..=12).map(|i| json!({"id": i, "title": format!("t{i}"), "_miroir_shard": i % 3})).collect();
        let totals = [4u64, 5, 3];
        let plan = plan_document_pages(&totals, 2, 3);
        assert_eq!(plan, vec![(0, 2, 2), (1, 0, 1)]);
        let starts = [0usize, 4, 9];
        let pages = plan
            .iter()
            .map(|&(n, off, lim)| {
                let s = starts[n] + off as usize;
                json!({"results": docs[s..s + lim as usize], "offset": off, "limit": lim, "total": totals[n]})
            })
            .collect();
        let merged = merge_document_pages(2, 3, &totals, pages).unwrap();
        assert_eq!(
            serde_json::to_string(&merged).unwrap(),
            serde_json::to_string(&json!({"results": [{"id": 3, "title": "t3"}, {"id": 4, "title": "t4"}, {"id": 5, "title": "t5"}], "offset": 2, "limit": 3, "total": 12})).unwrap()
        );
    }

    #[test]
    fn edges() {
        assert_eq!(plan_document_pages(&[], 0, 20), vec![]);
        assert_eq!(plan_document_pages(&[0, 0, 5], 0, 20), vec![(2, 0, 5)]);
        assert_eq!(plan_document_pages(&[3, 3], 10, 20), vec![]);
        assert_eq!(plan_document_pages(&[3, 3], 0, 0), vec![]);
        assert_eq!(plan_document_pages(&[3, 3], u64::MAX, u64::MAX), vec![]);
        assert!(merge_document_pages(0, 1, &[1], vec![json!({"oops": 1})]).is_err());
    }

    proptest! {
        /// Paging with any page size visits every document exactly once, in order.
        #[test]
        fn pages_cover_everything_once(totals in prop::collection::vec(0u64..20, 0..6), page in 1u64..25) {
            let sum: u64 = totals.iter().sum();
            let mut seen = Vec::new();
            let mut offset = 0;
            while offset < sum + page {
                for (n, off, lim) in plan_document_pages(&totals, offset, page) {
                    prop_assert!(lim > 0 && off + lim <= totals[n]);
                    for j in off..off + lim {
                        seen.push((n, j));
                    }
                }
                offset += page;
            }
            let expected: Vec<(usize, u64)> =
                totals.iter().enumerate().flat_map(|(n, &t)| (0..t).map(move |j| (n, j))).collect();
            prop_assert_eq!(seen, expected);
        }
    }
}

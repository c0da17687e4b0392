//! Facet distributions, facet stats and facet search answers summed across nodes, then
//! sorted and truncated as one Meilisearch would.
//!
//! Exactness: nodes truncate each facet to their own `maxValuesPerFacet` before answering.
//! With `alpha` order the merged first N values are always exact (a value's rank on a node
//! is never worse than its global rank). With `count` order they are exact whenever no node
//! had to truncate: nodes must therefore be configured with
//! [`IndexContext::node_max_values_per_facet`] (≥ 1000, above the client's setting), which
//! makes counts exact whenever a facet has at most that many distinct values on each node;
//! beyond that a value frequent overall but never among a node's top values can be missed.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Map, Value};

use super::rank::normalize;
use super::{bad_node_answer, is_reserved_field, FacetOrder, IndexContext};
use crate::error::ApiError;

/// Below this many candidates milli lists numeric facet values in the order of their string
/// form (`"10" < "9"`), above it in numeric order (`LINEAR_SCAN_CANDIDATES_THRESHOLD`).
const LINEAR_SCAN_CANDIDATES_THRESHOLD: u64 = 3000;

#[derive(Debug)]
struct Entry {
    display: String,
    normalized: String,
    number: Option<f64>,
    count: u64,
}

/// A facet key milli produced from a number (`f64::to_string`), e.g. `1920`, `8.15`.
fn as_number(key: &str) -> Option<f64> {
    let f: f64 = key.parse().ok()?;
    (f.is_finite() && f.to_string() == key).then_some(f)
}

fn cmp_f64(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).unwrap_or(Ordering::Equal)
}

/// Sums one facet's value → count maps; values equal after normalization are one value
/// (shown as first seen).
fn sum_values<'a>(maps: impl Iterator<Item = &'a Map<String, Value>>) -> Vec<Entry> {
    let mut index: HashMap<(bool, String), usize> = HashMap::new();
    let mut entries: Vec<Entry> = Vec::new();
    for map in maps {
        for (key, count) in map {
            let count = count.as_u64().unwrap_or(0);
            let number = as_number(key);
            let normalized = match number {
                Some(f) => f.to_string(),
                None => normalize(key),
            };
            match index.get(&(number.is_some(), normalized.clone())) {
                Some(&i) => entries[i].count += count,
                None => {
                    index.insert((number.is_some(), normalized.clone()), entries.len());
                    entries.push(Entry { display: key.clone(), normalized, number, count });
                }
            }
        }
    }
    entries
}

fn sort_entries(entries: &mut [Entry], order: FacetOrder, candidates: u64) {
    entries.sort_by(|a, b| {
        // numbers always come before strings
        match (a.number, b.number) {
            (Some(_), None) => return Ordering::Less,
            (None, Some(_)) => return Ordering::Greater,
            _ => {}
        }
        match order {
            FacetOrder::Alpha => match (a.number, b.number) {
                (Some(x), Some(y)) if candidates > LINEAR_SCAN_CANDIDATES_THRESHOLD => cmp_f64(x, y),
                (Some(_), Some(_)) => a.display.cmp(&b.display),
                _ => a.normalized.cmp(&b.normalized).then_with(|| a.display.cmp(&b.display)),
            },
            // ties: milli pops the greatest facet key first
            FacetOrder::Count => b.count.cmp(&a.count).then_with(|| match (a.number, b.number) {
                (Some(x), Some(y)) => cmp_f64(y, x),
                _ => b.normalized.cmp(&a.normalized),
            }),
        }
    });
}

/// Merges `facetDistribution` objects of several nodes. `candidates` is the (estimated)
/// number of matching documents, which decides how milli orders numeric values in `alpha`
/// order. Facets are listed by name (as Meilisearch does); `_miroir_*` facets are dropped.
pub fn merge_facet_distributions(
    ctx: &IndexContext,
    distributions: &[&Map<String, Value>],
    candidates: u64,
) -> Map<String, Value> {
    let mut by_facet: BTreeMap<&str, Vec<&Map<String, Value>>> = BTreeMap::new();
    for dist in distributions {
        for (facet, values) in dist.iter() {
            if is_reserved_field(facet) {
                continue;
            }
            let slot = by_facet.entry(facet.as_str()).or_default();
            if let Some(values) = values.as_object() {
                slot.push(values);
            }
        }
    }
    let mut out = Map::new();
    for (facet, maps) in by_facet {
        let mut entries = sum_values(maps.into_iter());
        sort_entries(&mut entries, ctx.facet_order(facet), candidates);
        entries.truncate(ctx.max_values_per_facet);
        let values: Map<String, Value> = entries.into_iter().map(|e| (e.display, json!(e.count))).collect();
        out.insert(facet.to_string(), Value::Object(values));
    }
    out
}

/// Merges `facetStats` objects: min of mins, max of maxes, per facet, by facet name.
pub fn merge_facet_stats(stats: &[&Map<String, Value>]) -> Map<String, Value> {
    let mut merged: BTreeMap<&str, (Value, Value)> = BTreeMap::new();
    for node in stats {
        for (facet, s) in node.iter() {
            if is_reserved_field(facet) {
                continue;
            }
            let (Some(min), Some(max)) = (s.get("min"), s.get("max")) else { continue };
            let (Some(fmin), Some(fmax)) = (min.as_f64(), max.as_f64()) else { continue };
            match merged.get_mut(facet.as_str()) {
                None => {
                    merged.insert(facet, (min.clone(), max.clone()));
                }
                Some((cur_min, cur_max)) => {
                    if fmin < cur_min.as_f64().unwrap_or(f64::INFINITY) {
                        *cur_min = min.clone();
                    }
                    if fmax > cur_max.as_f64().unwrap_or(f64::NEG_INFINITY) {
                        *cur_max = max.clone();
                    }
                }
            }
        }
    }
    merged
        .into_iter()
        .map(|(facet, (min, max))| (facet.to_string(), json!({"min": min, "max": max})))
        .collect()
}

/// Merges the answers of `POST /indexes/{uid}/facet-search` for facet `facet_name`:
/// `facetHits` summed per value, ordered as the facet's `sortFacetValuesBy` says (alpha:
/// normalized value order; count: most frequent first, ties by value descending, as milli's
/// facet search) and truncated to `maxValuesPerFacet`; `facetQuery` echoed;
/// `processingTimeMs` the slowest node's.
pub fn merge_facet_search(
    ctx: &IndexContext,
    facet_name: &str,
    node_responses: Vec<Value>,
) -> Result<Value, ApiError> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut hits: Vec<(String, String, u64)> = Vec::new(); // (display, normalized, count)
    let mut time = 0u64;
    for resp in &node_responses {
        let list = resp
            .get("facetHits")
            .and_then(Value::as_array)
            .ok_or_else(|| bad_node_answer("facet search answer"))?;
        time = time.max(resp.get("processingTimeMs").and_then(Value::as_u64).unwrap_or(0));
        for h in list {
            let (Some(value), Some(count)) = (h.get("value").and_then(Value::as_str), h.get("count").and_then(Value::as_u64))
            else {
                return Err(bad_node_answer("facet hit"));
            };
            let norm = normalize(value);
            match index.get(&norm) {
                Some(&i) => hits[i].2 += count,
                None => {
                    index.insert(norm.clone(), hits.len());
                    hits.push((value.to_string(), norm, count));
                }
            }
        }
    }
    match ctx.facet_order(facet_name) {
        FacetOrder::Alpha => hits.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0))),
        FacetOrder::Count => hits.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| b.0.cmp(&a.0))),
    }
    hits.truncate(ctx.max_values_per_facet);
    let facet_hits: Vec<Value> = hits.into_iter().map(|(v, _, c)| json!({"value": v, "count": c})).collect();
    let facet_query = node_responses.first().and_then(|r| r.get("facetQuery")).cloned().unwrap_or(Value::Null);
    let mut out = Map::new();
    out.insert("facetHits".into(), Value::Array(facet_hits));
    out.insert("facetQuery".into(), facet_query);
    out.insert("processingTimeMs".into(), json!(time));
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn recorded_facets_split_over_two_nodes_merge_back() {
        // "search facets": 12 movies, facets genres + year, default (alpha) order.
        // Node A holds ids 1-6, node B ids 7-12.
        let a = obj(json!({
            "genres": {"Action": 1, "Comedy": 3, "Drama": 1, "Fantasy": 1, "Horror": 2, "Mystery": 2, "Romance": 1, "Science Fiction": 1},
            "year": {"1920": 1, "1922": 1, "1923": 1, "1924": 1, "1926": 1, "1927": 1}}));
        let b = obj(json!({
            "genres": {"Adventure": 1, "Comedy": 3, "Drama": 4, "History": 2, "Horror": 1, "Romance": 1},
            "year": {"1921": 1, "1925": 3, "1928": 2}}));
        let merged = merge_facet_distributions(&IndexContext::default(), &[&a, &b], 12);
        let expected = json!({"genres": {"Action": 1, "Adventure": 1, "Comedy": 6, "Drama": 5, "Fantasy": 1, "History": 2, "Horror": 3, "Mystery": 2, "Romance": 2, "Science Fiction": 1}, "year": {"1920": 1, "1921": 1, "1922": 1, "1923": 1, "1924": 1, "1925": 3, "1926": 1, "1927": 1, "1928": 2}});
        assert_eq!(serde_json::to_string(&merged).unwrap(), serde_json::to_string(&expected).unwrap());
    }

    #[test]
    fn count_order_and_truncation_as_recorded() {
        // "facets truncated by maxValuesPerFacet, sorted by count": maxValuesPerFacet 2, count.
        let ctx = IndexContext {
            max_values_per_facet: 2,
            sort_facet_values_by: BTreeMap::from([("*".into(), FacetOrder::Count)]),
            ..Default::default()
        };
        // nodes 1-6 / 7-12, not truncated (node-side maxValuesPerFacet is larger)
        let a = obj(json!({"genres": {"Comedy": 3, "Horror": 2, "Mystery": 2, "Action": 1, "Drama": 1, "Fantasy": 1, "Romance": 1, "Science Fiction": 1},
            "director": {"Buster Keaton": 2, "F. W. Murnau": 1, "Fred C. Newmeyer": 1, "Fritz Lang": 1, "Robert Wiene": 1}}));
        let b = obj(json!({"genres": {"Drama": 4, "Comedy": 3, "History": 2, "Adventure": 1, "Horror": 1, "Romance": 1},
            "director": {"Charlie Chaplin": 2, "Buster Keaton": 1, "Carl Theodor Dreyer": 1, "Rupert Julian": 1, "Sergei Eisenstein": 1}}));
        let merged = merge_facet_distributions(&ctx, &[&a, &b], 12);
        let expected = json!({"director": {"Buster Keaton": 3, "Charlie Chaplin": 2}, "genres": {"Comedy": 6, "Drama": 5}});
        assert_eq!(serde_json::to_string(&merged).unwrap(), serde_json::to_string(&expected).unwrap());
    }

    #[test]
    fn count_ties_greatest_value_first_and_numbers_first() {
        let ctx = IndexContext {
            sort_facet_values_by: BTreeMap::from([("*".into(), FacetOrder::Count)]),
            ..Default::default()
        };
        let a = obj(json!({"f": {"apple": 1, "Banana": 1, "7": 1}}));
        let b = obj(json!({"f": {"cherry": 1, "banana": 1}}));
        let merged = merge_facet_distributions(&ctx, &[&a, &b], 5);
        let keys: Vec<_> = merged["f"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap())).collect();
        assert_eq!(keys, vec![("7".into(), 1), ("Banana".into(), 2), ("cherry".into(), 1), ("apple".into(), 1)]);
    }

    #[test]
    fn alpha_numbers_string_order_below_threshold_numeric_above() {
        let a = obj(json!({"n": {"9": 1, "10": 1, "-1": 1}}));
        let small = merge_facet_distributions(&IndexContext::default(), &[&a], 3);
        assert_eq!(small["n"].as_object().unwrap().keys().collect::<Vec<_>>(), vec!["-1", "10", "9"]);
        let big = merge_facet_distributions(&IndexContext::default(), &[&a], 5000);
        assert_eq!(big["n"].as_object().unwrap().keys().collect::<Vec<_>>(), vec!["-1", "9", "10"]);
    }

    #[test]
    fn reserved_facets_dropped_and_empty_kept() {
        let a = obj(json!({"_miroir_shard": {"1": 3}, "genres": {}}));
        let merged = merge_facet_distributions(&IndexContext::default(), &[&a], 3);
        assert_eq!(Value::Object(merged), json!({"genres": {}}));
    }

    #[test]
    fn stats_min_max() {
        let a = obj(json!({"year": {"min": 1920.0, "max": 1926.0}}));
        let b = obj(json!({"year": {"min": 1921.0, "max": 1928.0}, "rating": {"min": 7.6, "max": 8.3}}));
        let merged = merge_facet_stats(&[&a, &b]);
        let expected = json!({"rating": {"min": 7.6, "max": 8.3}, "year": {"min": 1920.0, "max": 1928.0}});
        assert_eq!(serde_json::to_string(&merged).unwrap(), serde_json::to_string(&expected).unwrap());
    }

    #[test]
    fn facet_search_as_recorded() {
        let a = json!({"facetHits": [{"value": "Comedy", "count": 4}], "facetQuery": "com", "processingTimeMs": 0});
        let b = json!({"facetHits": [{"value": "Comedy", "count": 2}], "facetQuery": "com", "processingTimeMs": 2});
        let merged = merge_facet_search(&IndexContext::default(), "genres", vec![a, b]).unwrap();
        assert_eq!(
            serde_json::to_string(&merged).unwrap(),
            serde_json::to_string(&json!({"facetHits": [{"value": "Comedy", "count": 6}], "facetQuery": "com", "processingTimeMs": 2})).unwrap()
        );
    }

    #[test]
    fn facet_search_count_order_and_truncation() {
        let ctx = IndexContext {
            max_values_per_facet: 2,
            sort_facet_values_by: BTreeMap::from([("genres".into(), FacetOrder::Count)]),
            ..Default::default()
        };
        let a = json!({"facetHits": [{"value": "Drama", "count": 1}, {"value": "Comedy", "count": 1}], "facetQuery": null, "processingTimeMs": 0});
        let b = json!({"facetHits": [{"value": "Action", "count": 1}, {"value": "Drama", "count": 1}], "facetQuery": null, "processingTimeMs": 0});
        let merged = merge_facet_search(&ctx, "genres", vec![a.clone(), b.clone()]).unwrap();
        assert_eq!(merged["facetHits"], json!([{"value": "Drama", "count": 2}, {"value": "Comedy", "count": 1}]));
        let alpha = merge_facet_search(&IndexContext::default(), "genres", vec![a, b]).unwrap();
        assert_eq!(alpha["facetHits"], json!([{"value": "Action", "count": 1}, {"value": "Comedy", "count": 1}, {"value": "Drama", "count": 2}]));
        assert!(merge_facet_search(&ctx, "genres", vec![json!({"oops": 1})]).is_err());
    }

    use proptest::prelude::*;

    fn counts(values: &[(usize, u64)], names: &[&str]) -> Map<String, Value> {
        let mut m: BTreeMap<String, u64> = BTreeMap::new();
        for (v, c) in values {
            *m.entry(names[*v].to_string()).or_default() += c;
        }
        m.into_iter().map(|(k, v)| (k, json!(v))).collect()
    }

    proptest! {
        /// Alpha order: merging node answers each truncated to maxValuesPerFacet gives the
        /// single node's (truncated) distribution. Count order: the same whenever the node-side
        /// limit keeps every value of every node.
        #[test]
        fn split_facets_merge_to_the_single_node_answer(
            values in prop::collection::vec((0usize..12, 1u64..4, 0usize..4), 0..40),
            max in 1usize..6,
            count_order in any::<bool>(),
        ) {
            let names = ["10", "9", "-2.5", "apple", "Banana", "cherry", "Date", "elder", "fig", "Grape", "kiwi", "lime"];
            let order = if count_order { FacetOrder::Count } else { FacetOrder::Alpha };
            let ctx = IndexContext { max_values_per_facet: max, sort_facet_values_by: BTreeMap::from([("*".into(), order)]), ..Default::default() };
            let node_ctx = IndexContext { max_values_per_facet: if count_order { 100 } else { max }, ..ctx.clone() };
            let all: Vec<(usize, u64)> = values.iter().map(|(v, c, _)| (*v, *c)).collect();
            let single_node = merge_facet_distributions(&ctx, &[&json!({"f": counts(&all, &names)}).as_object().unwrap().clone()], 10);
            let nodes: Vec<Map<String, Value>> = (0..4)
                .map(|n| {
                    let part: Vec<(usize, u64)> = values.iter().filter(|(_, _, node)| *node == n).map(|(v, c, _)| (*v, *c)).collect();
                    let raw = json!({"f": counts(&part, &names)}).as_object().unwrap().clone();
                    merge_facet_distributions(&node_ctx, &[&raw], 10)
                })
                .collect();
            let refs: Vec<&Map<String, Value>> = nodes.iter().collect();
            let merged = merge_facet_distributions(&ctx, &refs, 10);
            prop_assert_eq!(serde_json::to_string(&merged).unwrap(), serde_json::to_string(&single_node).unwrap());
        }
    }
}

//! Federated multi-search (`POST /multi-search` with `federation`) whose queries were each
//! scattered over the covering set of their index.
//!
//! Each query goes to its nodes as a plain single-index search ([`plan_federated_node_search`]);
//! [`merge_federated`] merges every query's node answers as [`super::merge_search`] would
//! (ranking details, distinct), then merges the queries as Meilisearch's federated search
//! does: by weighted score values (`ScoreDetails::weighted_score_values`, compared with
//! `compare_partial`, falling back to the weighted global score), ties to the earlier query;
//! a document matched by several queries of its index appears once; `federation.distinct`
//! applies across all queries.
//!
//! Known inexactness: when several queries target the same index, Meilisearch counts and
//! facets the union of their matches; node answers only give per-query totals, so that
//! index's total is the largest query total (or the documents seen, if more), and its
//! `facetsByIndex` entry counts the first query's matches only.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};

use serde_json::{json, Map, Value};

use super::facets::{merge_facet_distributions, merge_facet_stats};
use super::rank::{federated_order, weighted_values, Weighted};
use super::search::{distinct_keys, merge_query_hits, widened_fields, HitShape, Pagination};
use super::{bad_node_answer, IndexContext};
use crate::error::ApiError;

/// One query of a federated search, with the answers of its covering set.
#[derive(Debug, Clone)]
pub struct FederatedQuery {
    /// The query as the client sent it (`indexUid`, `federationOptions`, `q`, …).
    pub query: Map<String, Value>,
    /// The index the query targets.
    pub ctx: IndexContext,
    /// Answers of the nodes to [`plan_federated_node_search`]'s body.
    pub node_responses: Vec<Value>,
}

fn index_uid(query: &Map<String, Value>) -> &str {
    query.get("indexUid").and_then(Value::as_str).unwrap_or("")
}

/// The primary key value of a hit, as a string, when the index has one and the hit shows it.
fn primary_key_of(hit: &Map<String, Value>, ctx: &IndexContext) -> Option<String> {
    let pk = ctx.primary_key.as_deref()?;
    match super::get_path(hit, pk)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn weight(query: &Map<String, Value>) -> f64 {
    query.pointer_get("federationOptions", "weight").and_then(Value::as_f64).unwrap_or(1.0)
}

trait PointerGet {
    fn pointer_get(&self, a: &str, b: &str) -> Option<&Value>;
}
impl PointerGet for Map<String, Value> {
    fn pointer_get(&self, a: &str, b: &str) -> Option<&Value> {
        self.get(a).and_then(|v| v.get(b))
    }
}

/// `facetsByIndex` of the federation for `index`, when `position` is the first query on that
/// index (facets are counted once per index).
fn facets_for(federation: &Map<String, Value>, queries: &[Map<String, Value>], position: usize) -> Option<Value> {
    let uid = index_uid(&queries[position]);
    let first = queries.iter().position(|q| index_uid(q) == uid)?;
    if first != position {
        return None;
    }
    federation.pointer_get("facetsByIndex", uid).filter(|v| v.is_array()).cloned()
}

/// The body sent to every node of the covering set for query `position` of a federated
/// search (the caller adds the shard filter and sends it to `POST /indexes/{uid}/search`):
/// the query without `indexUid`/`federationOptions`, the federation's best
/// `offset + limit` (or `page × hitsPerPage`) hits, ranking score and details on, fields the
/// merge needs added, and the federation's `facetsByIndex` entry for the index on the first
/// query of each index.
pub fn plan_federated_node_search(
    federation: &Map<String, Value>,
    queries: &[Map<String, Value>],
    position: usize,
    ctx: &IndexContext,
) -> Map<String, Value> {
    let query = &with_federation_distinct(&queries[position], federation);
    let mut body = query.clone();
    body.shift_remove("indexUid");
    body.shift_remove("federationOptions");
    let pagination = Pagination::of(federation);
    pagination.write_node_pagination(&mut body, pagination.fetch().min(ctx.max_total_hits));
    body.insert("showRankingScore".into(), json!(true));
    body.insert("showRankingScoreDetails".into(), json!(true));
    let widened = widened_fields(query, ctx);
    if let Some(Value::Array(list)) = body.get_mut("attributesToRetrieve") {
        list.extend(widened.into_iter().map(Value::String));
    }
    body.shift_remove("facets");
    if let Some(facets) = facets_for(federation, queries, position) {
        body.insert("facets".into(), facets);
    }
    body
}

/// The facet answers of the first query on an index.
struct IndexFacets {
    ctx: IndexContext,
    distributions: Vec<Map<String, Value>>,
    stats: Vec<Map<String, Value>>,
    candidates: u64,
}

/// One index's merged facets.
struct MergedFacets {
    distribution: Map<String, Value>,
    stats: Map<String, Value>,
    ctx: IndexContext,
}

struct Candidate {
    hit: Map<String, Value>,
    values: Vec<Weighted>,
    global: f64,
}

/// The query as the nodes must run it: `federation.distinct`, when given, applies to every
/// query.
fn with_federation_distinct(query: &Map<String, Value>, federation: &Map<String, Value>) -> Map<String, Value> {
    let mut q = query.clone();
    if let Some(d) = federation.get("distinct").filter(|d| d.is_string()) {
        q.insert("distinct".into(), d.clone());
    }
    q
}

/// Inserts `_federation` where Meilisearch puts it: after the document's own fields (and
/// `_geoDistance`, `_vectors`), before `_formatted` and the other per-hit fields.
fn insert_federation(hit: &mut Map<String, Value>, federation: Value) {
    const AFTER: [&str; 4] = ["_formatted", "_matchesPosition", "_rankingScore", "_rankingScoreDetails"];
    let at = hit.keys().position(|k| AFTER.contains(&k.as_str())).unwrap_or(hit.len());
    hit.shift_insert(at, "_federation".into(), federation);
}

/// Merges a federated search. `federation` is the request's `federation` object; `queries`
/// are in request order. The answer has Meilisearch's federated shape: hits carrying
/// `_federation {indexUid, queriesPosition, weightedRankingScore}`, `processingTimeMs`,
/// pagination fields, then `facetDistribution`/`facetStats` (with `mergeFacets`) or
/// `facetsByIndex`. No `requestUid` (the caller appends its own).
pub fn merge_federated(federation: &Map<String, Value>, queries: Vec<FederatedQuery>) -> Result<Value, ApiError> {
    let pagination = Pagination::of(federation);
    let fed_distinct = federation.get("distinct").and_then(Value::as_str);
    let mut lists: Vec<std::vec::IntoIter<Candidate>> = Vec::new();
    let mut time = 0u64;
    // per index: totals of its queries and the primary keys of their hits
    let mut index_totals: BTreeMap<String, (Vec<u64>, HashSet<String>)> = BTreeMap::new();
    // per index: facet distributions and stats of the first query on it
    let mut facets: BTreeMap<String, IndexFacets> = BTreeMap::new();
    for q in &queries {
        let answers: Vec<&Map<String, Value>> = q
            .node_responses
            .iter()
            .map(|r| r.as_object().ok_or_else(|| bad_node_answer("search answer")))
            .collect::<Result<_, _>>()?;
        let query = with_federation_distinct(&q.query, federation);
        let merged = merge_query_hits(&query, &q.ctx, pagination, &answers)?;
        time = time.max(merged.processing_time);
        let uid = index_uid(&q.query).to_string();
        let slot = index_totals.entry(uid.clone()).or_default();
        slot.0.push(merged.total);
        slot.1.extend(merged.hits.iter().filter_map(|h| primary_key_of(h, &q.ctx)));
        if !facets.contains_key(&uid) && federation.pointer_get("facetsByIndex", &uid).is_some() {
            let pick = |k: &str| answers.iter().filter_map(|a| a.get(k).and_then(Value::as_object)).cloned().collect();
            facets.insert(
                uid,
                IndexFacets {
                    ctx: q.ctx.clone(),
                    distributions: pick("facetDistribution"),
                    stats: pick("facetStats"),
                    candidates: merged.total,
                },
            );
        }
        let w = weight(&q.query);
        let candidates: Vec<Candidate> = merged
            .hits
            .into_iter()
            .map(|hit| Candidate {
                values: weighted_values(&hit, w),
                global: hit.get("_rankingScore").and_then(Value::as_f64).unwrap_or(0.0) * w,
                hit,
            })
            .collect();
        lists.push(candidates.into_iter());
    }
    // An index's total is the size of the union of its queries' matches: exact with one query
    // per index; with several, the largest query total or the distinct documents seen.
    let mut total: u64 = index_totals
        .values()
        .map(|(totals, seen)| match totals.as_slice() {
            [one] => *one,
            many => many.iter().copied().max().unwrap_or(0).max(seen.len() as u64),
        })
        .sum();

    let (offset, limit) = pagination.window();
    let end = offset.saturating_add(limit);
    let mut heads: Vec<Option<Candidate>> = lists.iter_mut().map(Iterator::next).collect();
    let mut seen_docs: HashSet<(String, String)> = HashSet::new();
    let mut seen_values: HashSet<String> = HashSet::new();
    let mut hits = Vec::new();
    let mut rank = 0u64;
    // with `federation.distinct` every hit is visited so that rejected ones leave the total
    while rank < end || fed_distinct.is_some() {
        let mut best: Option<usize> = None;
        for (i, head) in heads.iter().enumerate() {
            let Some(c) = head else { continue };
            best = match best {
                Some(b) => {
                    let bc = heads[b].as_ref().expect("best head");
                    if federated_order((&c.values, c.global), (&bc.values, bc.global)) == Ordering::Less {
                        Some(i)
                    } else {
                        Some(b)
                    }
                }
                None => Some(i),
            };
        }
        let Some(b) = best else { break };
        let c = heads[b].take().expect("best head");
        heads[b] = lists[b].next();
        let q = &queries[b];
        let uid = index_uid(&q.query);
        // a document matched by several queries of its index appears once, at its best
        if let Some(pk) = primary_key_of(&c.hit, &q.ctx) {
            if !seen_docs.insert((uid.to_string(), pk)) {
                continue;
            }
        }
        if let Some(attr) = fed_distinct {
            let keys = distinct_keys(&c.hit, attr);
            if keys.iter().any(|k| seen_values.contains(k)) {
                total = total.saturating_sub(1);
                continue;
            }
            seen_values.extend(keys);
        }
        if rank >= offset && rank < end {
            let mut hit = c.hit;
            HitShape::of(&with_federation_distinct(&q.query, federation), &q.ctx).apply(&mut hit);
            insert_federation(
                &mut hit,
                json!({"indexUid": uid, "queriesPosition": b, "weightedRankingScore": c.global}),
            );
            hits.push(Value::Object(hit));
        }
        rank += 1;
    }

    let mut out = Map::new();
    out.insert("hits".into(), Value::Array(hits));
    out.insert("processingTimeMs".into(), json!(time));
    for (k, v) in pagination.answer_fields(total) {
        out.insert(k.into(), v);
    }
    let by_index: BTreeMap<String, MergedFacets> = facets
        .into_iter()
        .map(|(uid, f)| {
            let dists: Vec<&Map<String, Value>> = f.distributions.iter().collect();
            let stats: Vec<&Map<String, Value>> = f.stats.iter().collect();
            let merged = MergedFacets {
                distribution: merge_facet_distributions(&f.ctx, &dists, f.candidates),
                stats: merge_facet_stats(&stats),
                ctx: f.ctx,
            };
            (uid, merged)
        })
        .collect();
    match federation.get("mergeFacets").filter(|m| m.is_object()) {
        Some(merge) if !by_index.is_empty() => {
            let max = merge.get("maxValuesPerFacet").and_then(Value::as_u64).map(|m| m as usize);
            let (d, s) = merge_across_indexes(&by_index, max);
            out.insert("facetDistribution".into(), Value::Object(d));
            out.insert("facetStats".into(), Value::Object(s));
        }
        _ => {
            if !by_index.is_empty() {
                let v: Map<String, Value> = by_index
                    .into_iter()
                    .map(|(uid, m)| (uid, json!({"distribution": m.distribution, "stats": m.stats})))
                    .collect();
                out.insert("facetsByIndex".into(), Value::Object(v));
            }
        }
    }
    Ok(Value::Object(out))
}

/// `FederatedFacets::merge`: distributions summed per facet and value, ordered as the first
/// index (by uid) having the facet orders it — alpha by raw value, count most frequent
/// first (ties by value) — truncated to `mergeFacets.maxValuesPerFacet` when given.
fn merge_across_indexes(
    by_index: &BTreeMap<String, MergedFacets>,
    max: Option<usize>,
) -> (Map<String, Value>, Map<String, Value>) {
    let mut dist: BTreeMap<String, (super::FacetOrder, Vec<(String, u64)>)> = BTreeMap::new();
    for m in by_index.values() {
        for (facet, values) in &m.distribution {
            let entry = dist.entry(facet.clone()).or_insert_with(|| (m.ctx.facet_order(facet), Vec::new()));
            for (value, count) in values.as_object().into_iter().flatten() {
                let count = count.as_u64().unwrap_or(0);
                match entry.1.iter_mut().find(|(v, _)| v == value) {
                    Some(slot) => slot.1 += count,
                    None => entry.1.push((value.clone(), count)),
                }
            }
        }
    }
    let distribution = dist
        .into_iter()
        .map(|(facet, (order, mut values))| {
            match order {
                super::FacetOrder::Alpha => values.sort_by(|a, b| a.0.cmp(&b.0)),
                super::FacetOrder::Count => values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0))),
            }
            if let Some(m) = max {
                values.truncate(m);
            }
            (facet, Value::Object(values.into_iter().map(|(v, c)| (v, json!(c))).collect()))
        })
        .collect();
    let stats: Vec<&Map<String, Value>> = by_index.values().map(|m| &m.stats).collect();
    (distribution, merge_facet_stats(&stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::merge::search::tests::{case, movies_ctx, node_answer, Ranked};

    fn queries_of(req: &Value) -> Vec<Map<String, Value>> {
        req["queries"].as_array().unwrap().iter().map(|q| q.as_object().unwrap().clone()).collect()
    }

    /// Splits each query's single-node ranking over k nodes (contiguous) and merges.
    fn run(req: &Value, rankings: Vec<(IndexContext, Vec<Ranked>)>, k: usize) -> Value {
        let federation = req["federation"].as_object().unwrap().clone();
        let queries = queries_of(req);
        let inputs = queries
            .iter()
            .enumerate()
            .zip(rankings)
            .map(|((pos, q), (ctx, full))| {
                let body = plan_federated_node_search(&federation, &queries, pos, &ctx);
                let n = full.len().max(1);
                let answers = (0..k)
                    .map(|node| {
                        let own: Vec<Ranked> =
                            full.iter().enumerate().filter(|(i, _)| i * k / n == node).map(|(_, r)| r.clone()).collect();
                        node_answer(&body, &ctx, &own, node as u64)
                    })
                    .collect();
                FederatedQuery { query: q.clone(), ctx, node_responses: answers }
            })
            .collect();
        merge_federated(&federation, inputs).unwrap()
    }

    fn comparable(mut v: Value) -> String {
        let o = v.as_object_mut().unwrap();
        o.shift_remove("requestUid");
        o.insert("processingTimeMs".into(), json!(0));
        serde_json::to_string(&v).unwrap()
    }

    fn the_details() -> Map<String, Value> {
        let (_, resp) = case("search ranking score + details");
        let h = resp["hits"][0].as_object().unwrap();
        h.iter().filter(|(k, _)| k.starts_with("_ranking")).map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    #[test]
    fn recorded_federated_search() {
        let (_, expected) = case("federated multi-search");
        let req = json!({"federation": {"limit": 5}, "queries": [{"indexUid": "movies", "q": "the"}, {"indexUid": "csvmovies", "q": "the", "federationOptions": {"weight": 0.5}}]});
        let movies: Vec<Ranked> = [3, 5, 7, 8, 10, 12].iter().map(|&id| Ranked { id, extras: the_details() }).collect();
        // csvmovies is simulated with the movies documents (its one hit never makes the page)
        let csv = vec![Ranked { id: 12, extras: the_details() }];
        for k in 1..=3 {
            let merged = run(&req, vec![(movies_ctx(), movies.clone()), (movies_ctx(), csv.clone())], k);
            assert_eq!(comparable(merged), comparable(expected.clone()), "over {k} nodes");
        }
    }

    #[test]
    fn recorded_federated_facets() {
        let (req, expected) = case("federated multi-search facets");
        let req = Value::Object(req);
        let all: Vec<Ranked> = (1..=12)
            .map(|id| Ranked { id, extras: json!({"_rankingScore": 1.0, "_rankingScoreDetails": {}}).as_object().unwrap().clone() })
            .collect();
        for k in 1..=3 {
            let merged = run(&req, vec![(movies_ctx(), all.clone())], k);
            assert_eq!(comparable(merged), comparable(expected.clone()), "over {k} nodes");
        }
    }

    #[test]
    fn weights_interleave_queries_and_merge_facets() {
        let req = json!({"federation": {"offset": 1, "limit": 3, "facetsByIndex": {"a": ["genres"], "b": ["genres"]}, "mergeFacets": {"maxValuesPerFacet": 3}},
            "queries": [{"indexUid": "a", "q": "x"}, {"indexUid": "b", "q": "x", "federationOptions": {"weight": 0.9}}]});
        let scored = |id: u64, s: f64| Ranked { id, extras: json!({"_rankingScore": s, "_rankingScoreDetails": {"words": {"order": 0, "matchingWords": 1, "maxMatchingWords": 1, "score": s}}}).as_object().unwrap().clone() };
        let a = vec![scored(1, 1.0), scored(2, 0.5)];
        let b = vec![scored(3, 1.0), scored(4, 0.8)];
        let merged = run(&req, vec![(movies_ctx(), a), (movies_ctx(), b)], 2);
        // ranking: 1 (1.0), 3 (0.9), 4 (0.72), 2 (0.5); page = offset 1, limit 3
        let ids: Vec<u64> = merged["hits"].as_array().unwrap().iter().map(|h| h["id"].as_u64().unwrap()).collect();
        assert_eq!(ids, vec![3, 4, 2]);
        assert_eq!(merged["hits"][0]["_federation"], json!({"indexUid": "b", "queriesPosition": 1, "weightedRankingScore": 0.9}));
        assert!(merged["hits"][0].get("_rankingScore").is_none());
        assert_eq!(merged["estimatedTotalHits"], json!(4));
        assert_eq!(merged["facetDistribution"], json!({"genres": {"Action": 1, "Comedy": 2, "Drama": 1}}));
        assert_eq!(merged["facetStats"], json!({}));
        assert!(merged.get("facetsByIndex").is_none());
    }

    #[test]
    fn plan_per_query() {
        let federation = json!({"offset": 2, "limit": 3, "facetsByIndex": {"movies": ["genres"]}});
        let queries = vec![
            json!({"indexUid": "movies", "q": "a", "federationOptions": {"weight": 2.0}}).as_object().unwrap().clone(),
            json!({"indexUid": "movies", "q": "b"}).as_object().unwrap().clone(),
        ];
        let p0 = plan_federated_node_search(federation.as_object().unwrap(), &queries, 0, &movies_ctx());
        assert_eq!(Value::Object(p0), json!({"q": "a", "offset": 0, "limit": 5, "showRankingScore": true, "showRankingScoreDetails": true, "facets": ["genres"]}));
        let p1 = plan_federated_node_search(federation.as_object().unwrap(), &queries, 1, &movies_ctx());
        assert!(p1.get("facets").is_none());
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;

    fn q(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn scored_hit(id: u64, director: &str, s: f64) -> Value {
        json!({"id": id, "director": director, "_formatted": {"id": id.to_string()}, "_rankingScore": s,
            "_rankingScoreDetails": {"words": {"order": 0, "matchingWords": 1, "maxMatchingWords": 1, "score": s}}})
    }

    fn answer(hits: Vec<Value>, total: u64) -> Value {
        json!({"hits": hits, "query": "", "processingTimeMs": 3, "limit": 20, "offset": 0, "estimatedTotalHits": total})
    }

    #[test]
    fn same_document_from_two_queries_of_one_index_appears_once() {
        let ctx = IndexContext { primary_key: Some("id".into()), ..Default::default() };
        let federation = q(json!({}));
        let q0 = FederatedQuery {
            query: q(json!({"indexUid": "m", "q": "a", "attributesToHighlight": ["id"]})),
            ctx: ctx.clone(),
            node_responses: vec![answer(vec![scored_hit(1, "x", 0.9), scored_hit(2, "y", 0.5)], 2)],
        };
        let q1 = FederatedQuery {
            query: q(json!({"indexUid": "m", "q": "b"})),
            ctx,
            node_responses: vec![answer(vec![scored_hit(2, "y", 0.95)], 1)],
        };
        let merged = merge_federated(&federation, vec![q0, q1]).unwrap();
        let ids: Vec<u64> = merged["hits"].as_array().unwrap().iter().map(|h| h["id"].as_u64().unwrap()).collect();
        assert_eq!(ids, vec![2, 1]);
        assert_eq!(merged["estimatedTotalHits"], json!(2));
        // `_federation` sits between the document and `_formatted`
        let keys: Vec<&String> = merged["hits"][1].as_object().unwrap().keys().collect();
        assert_eq!(keys, vec!["id", "director", "_federation", "_formatted"]);
    }

    #[test]
    fn federation_distinct_applies_across_queries() {
        let ctx = IndexContext { primary_key: Some("id".into()), ..Default::default() };
        let federation = q(json!({"distinct": "director", "limit": 1}));
        let plan = plan_federated_node_search(&federation, &[q(json!({"indexUid": "a", "attributesToRetrieve": ["id"]}))], 0, &ctx);
        assert_eq!(plan["distinct"], json!("director"));
        assert_eq!(plan["attributesToRetrieve"], json!(["id", "director"]));
        let qa = FederatedQuery {
            query: q(json!({"indexUid": "a", "attributesToRetrieve": ["id"]})),
            ctx: ctx.clone(),
            node_responses: vec![answer(vec![scored_hit(1, "x", 0.9)], 1)],
        };
        let qb = FederatedQuery {
            query: q(json!({"indexUid": "b"})),
            ctx,
            node_responses: vec![answer(vec![scored_hit(7, "x", 0.8), scored_hit(8, "z", 0.7)], 2)],
        };
        let merged = merge_federated(&federation, vec![qa, qb]).unwrap();
        assert_eq!(merged["hits"].as_array().unwrap().len(), 1);
        assert_eq!(merged["hits"][0]["id"], json!(1));
        assert!(merged["hits"][0].get("director").is_none());
        // 3 matches, one rejected as a duplicate director
        assert_eq!(merged["estimatedTotalHits"], json!(2));
        assert_eq!(merged["processingTimeMs"], json!(3));
    }
}

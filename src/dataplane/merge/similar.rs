//! `/indexes/{uid}/similar`: what to ask the nodes, and how to merge their answers into the
//! answer of one Meilisearch holding every document.
//!
//! Meilisearch (`milli::Similar`) ranks the documents of the filtered universe, the reference
//! document left out, by the similarity of their vector to the reference's for the embedder
//! (`vectorSort`, `1 - distance`, the only ranking detail), skips `offset`, takes `limit`, and
//! stops at the first hit under `rankingScoreThreshold`. `estimatedTotalHits` is the size of
//! the filtered universe without the reference (capped by `maxTotalHits`), except when the
//! threshold stopped the page: then it is the number of documents ranked before the first one
//! under the threshold (those skipped by `offset` included).
//!
//! The reference lives on one shard. The node of the covering set answering for that shard
//! (the *holder*) runs `/similar` itself, restricted to its shards ([`holder_body`]): the
//! reference is left out and errors are Meilisearch's. Every other node runs a vector search
//! with the reference's vector ([`vector_search_body`]); its hits are the same documents with
//! the same similarity, since both compare the stored vectors with the reference's. Hits of a
//! vector search without a vector (`similarity: null`) are not similar documents and are
//! dropped, and their ranking details are rewritten to `/similar`'s single `vectorSort` entry.
//! [`merge_similar`] then applies milli's loop to the merged ranking.

use serde_json::{json, Map, Value};

use super::{bad_node_answer, get_u64, strip_reserved};
use crate::error::ApiError;

const DEFAULT_LIMIT: u64 = 20;

/// The client's window and display flags.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimilarWindow {
    pub offset: u64,
    pub limit: u64,
    pub threshold: Option<f64>,
    pub show_score: bool,
    pub show_details: bool,
}

impl SimilarWindow {
    pub fn of(client: &Map<String, Value>) -> SimilarWindow {
        let flag = |k: &str| client.get(k).and_then(Value::as_bool).unwrap_or(false);
        SimilarWindow {
            offset: get_u64(client, "offset").unwrap_or(0),
            limit: get_u64(client, "limit").unwrap_or(DEFAULT_LIMIT),
            threshold: client.get("rankingScoreThreshold").and_then(Value::as_f64),
            show_score: flag("showRankingScore"),
            show_details: flag("showRankingScoreDetails"),
        }
    }

    /// How many of its best hits every node must return.
    pub fn fetch(&self) -> u64 {
        self.offset.saturating_add(self.limit)
    }
}

/// Fields of the client's request that shape hits and pass to every node as they are.
const HIT_FIELDS: [&str; 2] = ["attributesToRetrieve", "retrieveVectors"];

/// The `/similar` body for the holder of the reference document; the caller sets its filter
/// (the client's, restricted to the holder's shards). The first `offset + limit` hits with
/// their scores, no threshold (Miroir applies it on the merged ranking).
pub fn holder_body(client: &Map<String, Value>) -> Map<String, Value> {
    let window = SimilarWindow::of(client);
    let mut body = client.clone();
    body.shift_remove("rankingScoreThreshold");
    body.insert("offset".into(), json!(0));
    body.insert("limit".into(), json!(window.fetch()));
    body.insert("showRankingScore".into(), json!(true));
    body.insert("showRankingScoreDetails".into(), json!(true));
    body
}

/// The vector search asked of every other node of the covering set; the caller sets its
/// filter. `vector: None` (the reference has no vector for the embedder) asks only for the
/// node's count of matching documents.
pub fn vector_search_body(client: &Map<String, Value>, vector: Option<&Value>) -> Map<String, Value> {
    let window = SimilarWindow::of(client);
    let mut body = Map::new();
    let Some(vector) = vector else {
        body.insert("limit".into(), json!(0));
        return body;
    };
    body.insert("vector".into(), vector.clone());
    body.insert(
        "hybrid".into(),
        json!({"embedder": client.get("embedder").cloned().unwrap_or(Value::Null), "semanticRatio": 1.0}),
    );
    body.insert("offset".into(), json!(0));
    body.insert("limit".into(), json!(window.fetch()));
    for k in HIT_FIELDS {
        if let Some(v) = client.get(k) {
            body.insert(k.into(), v.clone());
        }
    }
    body.insert("showRankingScore".into(), json!(true));
    body.insert("showRankingScoreDetails".into(), json!(true));
    body
}

/// Whether a vector search of an index with these ranking rules is ordered by similarity
/// first, as `/similar` is: milli puts its vector rule where the first of `words`, `typo`,
/// `proximity`, `attribute`, `attributeRank`, `wordPosition`, `exactness` stands, so a
/// custom `attr:asc`/`attr:desc` rule before it (or no such rule at all) orders hits
/// otherwise. `sort` adds nothing to a search without a `sort` parameter.
pub fn vector_rule_leads(ranking_rules: &[String]) -> bool {
    for r in ranking_rules {
        match r.as_str() {
            "words" | "typo" | "proximity" | "attribute" | "attributeRank" | "wordPosition" | "exactness" => return true,
            "sort" => continue,
            _ => return false,
        }
    }
    false
}

/// The similarity of a hit (`_rankingScoreDetails.vectorSort.similarity`), if it has one.
fn similarity(hit: &Map<String, Value>) -> Option<&Value> {
    hit.get("_rankingScoreDetails")
        .and_then(|d| d.get("vectorSort"))
        .and_then(|v| v.get("similarity"))
        .filter(|s| s.is_number())
}

fn hits_of(answer: &Value) -> Result<Vec<Map<String, Value>>, ApiError> {
    answer
        .get("hits")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_node_answer("similar documents answer"))?
        .iter()
        .map(|h| h.as_object().cloned().ok_or_else(|| bad_node_answer("hit")))
        .collect()
}

/// A hit's score: `_rankingScore` (the similarity widened to `f64`, exactly as milli compares
/// it with the threshold).
fn score(hit: &Map<String, Value>) -> f64 {
    hit.get("_rankingScore").and_then(Value::as_f64).unwrap_or(0.0)
}

/// A vector-search hit as `/similar` shows it, or `None` for a document without a vector.
fn as_similar_hit(mut hit: Map<String, Value>) -> Option<Map<String, Value>> {
    let s = similarity(&hit)?.clone();
    if let Some(d) = hit.get_mut("_rankingScoreDetails") {
        *d = json!({"vectorSort": {"order": 0, "similarity": s}});
    }
    Some(hit)
}

/// Merges the holder's `/similar` answer and the other nodes' vector-search answers into the
/// client's answer: `hits`, `id`, `processingTimeMs`, `limit`, `offset`, `estimatedTotalHits`,
/// and the holder's `performanceDetails` when the client asked for them.
pub fn merge_similar(
    client: &Map<String, Value>,
    max_total_hits: u64,
    holder: &Value,
    others: &[Value],
) -> Result<Value, ApiError> {
    let window = SimilarWindow::of(client);
    let mut ranked: Vec<Map<String, Value>> = hits_of(holder)?;
    for answer in others {
        ranked.extend(hits_of(answer)?.into_iter().filter_map(as_similar_hit));
    }
    // Best first; stable, so equal scores keep node order (a node orders ties by internal id).
    ranked.sort_by(|a, b| score(b).partial_cmp(&score(a)).unwrap_or(std::cmp::Ordering::Equal));

    let universe = std::iter::once(holder).chain(others.iter()).map(|a| get_u64(a.as_object().unwrap_or(&Map::new()), "estimatedTotalHits").unwrap_or(0)).sum::<u64>();
    let mut total = universe;
    let mut hits = Vec::new();
    let start = window.offset.min(ranked.len() as u64) as usize;
    for (i, hit) in ranked.into_iter().enumerate().skip(start).take(window.limit.min(usize::MAX as u64) as usize) {
        if window.threshold.is_some_and(|t| score(&hit) < t) {
            // milli: the candidates become the documents ranked before this one.
            total = i as u64;
            break;
        }
        hits.push(hit);
    }
    let hits: Vec<Value> = hits
        .into_iter()
        .map(|mut h| {
            strip_reserved(&mut h);
            if !window.show_score {
                h.shift_remove("_rankingScore");
            }
            if !window.show_details {
                h.shift_remove("_rankingScoreDetails");
            }
            Value::Object(h)
        })
        .collect();

    let processing = std::iter::once(holder).chain(others.iter()).filter_map(|a| a.get("processingTimeMs").and_then(Value::as_u64)).max().unwrap_or(0);
    let mut out = Map::new();
    out.insert("hits".into(), Value::Array(hits));
    out.insert("id".into(), holder.get("id").cloned().unwrap_or(Value::Null));
    out.insert("processingTimeMs".into(), json!(processing));
    out.insert("limit".into(), json!(window.limit));
    out.insert("offset".into(), json!(window.offset));
    out.insert("estimatedTotalHits".into(), json!(total.min(max_total_hits)));
    if let Some(p) = holder.get("performanceDetails") {
        out.insert("performanceDetails".into(), p.clone());
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: u64, s: f64) -> Value {
        json!({"id": id, "_miroir_shard": 3, "_rankingScore": s, "_rankingScoreDetails": {"vectorSort": {"order": 0, "similarity": s}}})
    }

    fn search_hit(id: u64, s: Option<f64>) -> Value {
        json!({"id": id, "_rankingScore": s.unwrap_or(0.0), "_rankingScoreDetails": {"vectorSort": {"order": 0, "similarity": s}, "year:desc": {"order": 1, "value": 2000}}})
    }

    fn client(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn ids(v: &Value) -> Vec<u64> {
        v["hits"].as_array().unwrap().iter().map(|h| h["id"].as_u64().unwrap()).collect()
    }

    #[test]
    fn nodes_are_asked_for_the_window_without_the_threshold() {
        let c = client(json!({"id": 7, "embedder": "e", "offset": 2, "limit": 3, "rankingScoreThreshold": 0.5, "retrieveVectors": true, "filter": "a = 1"}));
        let h = holder_body(&c);
        assert_eq!(h["offset"], 0);
        assert_eq!(h["limit"], 5);
        assert!(!h.contains_key("rankingScoreThreshold"));
        assert_eq!(h["showRankingScoreDetails"], true);
        let v = vector_search_body(&c, Some(&json!([1.0, 0.5])));
        assert_eq!(Value::Object(v), json!({
            "vector": [1.0, 0.5], "hybrid": {"embedder": "e", "semanticRatio": 1.0}, "offset": 0, "limit": 5,
            "retrieveVectors": true, "showRankingScore": true, "showRankingScoreDetails": true
        }));
        assert_eq!(Value::Object(vector_search_body(&c, None)), json!({"limit": 0}));
    }

    #[test]
    fn merged_by_similarity_documents_without_vectors_dropped() {
        let c = client(json!({"id": 7, "embedder": "e", "showRankingScoreDetails": true}));
        let holder = json!({"hits": [hit(1, 0.9), hit(2, 0.5)], "id": "7", "processingTimeMs": 3, "limit": 20, "offset": 0, "estimatedTotalHits": 4});
        let other = json!({"hits": [search_hit(3, Some(0.7)), search_hit(4, None)], "processingTimeMs": 5, "estimatedTotalHits": 2, "semanticHitCount": 2});
        let out = merge_similar(&c, 1000, &holder, &[other]).unwrap();
        assert_eq!(ids(&out), vec![1, 3, 2]);
        assert_eq!(out["hits"][1], json!({"id": 3, "_rankingScoreDetails": {"vectorSort": {"order": 0, "similarity": 0.7}}}));
        assert_eq!(out["estimatedTotalHits"], 6);
        assert_eq!(out["id"], "7");
        assert_eq!(out["processingTimeMs"], 5);
        let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["hits", "id", "processingTimeMs", "limit", "offset", "estimatedTotalHits"]);
    }

    #[test]
    fn the_threshold_stops_the_page_and_the_count_as_milli_does() {
        let holder = json!({"hits": [hit(1, 0.9), hit(2, 0.6), hit(5, 0.2)], "id": "7", "estimatedTotalHits": 10});
        let other = json!({"hits": [search_hit(3, Some(0.7)), search_hit(4, Some(0.3))], "estimatedTotalHits": 10});
        let run = |c: Value| merge_similar(&client(c), 1000, &holder, std::slice::from_ref(&other)).unwrap();
        // ranking: 1 (0.9), 3 (0.7), 2 (0.6), 4 (0.3), 5 (0.2)
        let out = run(json!({"id": 7, "embedder": "e", "rankingScoreThreshold": 0.5}));
        assert_eq!(ids(&out), vec![1, 3, 2]);
        assert_eq!(out["estimatedTotalHits"], 3);
        // documents skipped by `offset` count, and are not checked
        let out = run(json!({"id": 7, "embedder": "e", "offset": 1, "limit": 1, "rankingScoreThreshold": 0.8}));
        assert!(ids(&out).is_empty());
        assert_eq!(out["estimatedTotalHits"], 1);
        // the page ends before the first hit under the threshold: the whole universe
        let out = run(json!({"id": 7, "embedder": "e", "limit": 2, "rankingScoreThreshold": 0.5}));
        assert_eq!(ids(&out), vec![1, 3]);
        assert_eq!(out["estimatedTotalHits"], 20);
        // capped by maxTotalHits
        let out = merge_similar(&client(json!({"id": 7, "embedder": "e"})), 15, &holder, std::slice::from_ref(&other)).unwrap();
        assert_eq!(out["estimatedTotalHits"], 15);
        // offset past the end
        let out = run(json!({"id": 7, "embedder": "e", "offset": 9}));
        assert!(ids(&out).is_empty());
        assert_eq!(out["estimatedTotalHits"], 20);
    }

    #[test]
    fn the_vector_rule_must_lead() {
        let r = |v: &[&str]| vector_rule_leads(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(r(&["words", "typo", "proximity", "attributeRank", "sort", "wordPosition", "exactness"]));
        assert!(r(&["sort", "exactness", "year:desc"]));
        assert!(!r(&["year:desc", "words"]));
        assert!(!r(&["sort"]));
        assert!(!r(&[]));
    }
}

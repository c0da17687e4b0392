//! `merge_search` against the recorded answers of a real Meilisearch: the 12 recorded movies
//! are spread over k simulated nodes, each node answers the planned sub-query over its own
//! documents (ranked as the single node ranked them, with its own totals, facets, distinct),
//! and the merged answer must equal the recorded single-node answer.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::super::{compare_hits, merge_facet_distributions, FacetOrder, IndexContext, SHARD_FIELD};
use super::*;

pub(crate) fn fixture() -> &'static Value {
    static FIXTURE: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| serde_json::from_str(include_str!("testdata/recorded.json")).expect("fixture"))
}

pub(crate) fn case(name: &str) -> (Map<String, Value>, Value) {
    let c = &fixture()["cases"][name];
    assert!(c.is_object(), "no recorded case {name}");
    (c["request"].as_object().cloned().unwrap_or_default(), c["response"].clone())
}

pub(crate) fn doc(id: u64) -> Map<String, Value> {
    fixture()["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == json!(id))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_else(|| panic!("no document {id}"))
}

/// The movies index as configured by the recording (filterable genres, year, director, _geo).
pub(crate) fn movies_ctx() -> IndexContext {
    IndexContext { primary_key: Some("id".into()), ..Default::default() }
}

fn capped_ctx() -> IndexContext {
    IndexContext {
        max_total_hits: 5,
        max_values_per_facet: 2,
        sort_facet_values_by: BTreeMap::from([("*".into(), FacetOrder::Count)]),
        ..movies_ctx()
    }
}

/// One entry of a single node's full ranking: a document id and the special fields
/// (`_rankingScore`, `_rankingScoreDetails`, `_formatted`, …) the node attaches to it.
#[derive(Clone, Debug)]
pub(crate) struct Ranked {
    pub id: u64,
    pub extras: Map<String, Value>,
}

fn tied(ids: &[u64]) -> Vec<Ranked> {
    ids.iter()
        .map(|&id| Ranked {
            id,
            extras: json!({"_rankingScore": 1.0, "_rankingScoreDetails": {}}).as_object().unwrap().clone(),
        })
        .collect()
}

/// The ranking of a recorded answer that lists every matching document.
fn from_recorded(resp: &Value) -> Vec<Ranked> {
    resp["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let h = h.as_object().unwrap();
            let mut extras: Map<String, Value> =
                h.iter().filter(|(k, _)| k.starts_with('_') && *k != "_geo").map(|(k, v)| (k.clone(), v.clone())).collect();
            extras.entry("_rankingScore").or_insert(json!(1.0));
            extras.entry("_rankingScoreDetails").or_insert(json!({}));
            let id = h.get("id").and_then(Value::as_u64).unwrap_or_else(|| {
                // restricted attributesToRetrieve: find the document by title
                (1..=12).find(|&i| doc(i)["title"] == h["title"]).expect("document")
            });
            Ranked { id, extras }
        })
        .collect()
}

fn project(doc: &Map<String, Value>, attrs: Option<&Vec<Value>>) -> Map<String, Value> {
    match attrs {
        Some(list) if !list.iter().any(|a| a == "*") => {
            doc.iter().filter(|(k, _)| list.iter().any(|a| a == *k)).map(|(k, v)| (k.clone(), v.clone())).collect()
        }
        _ => doc.clone(),
    }
}

fn facet_values(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.as_f64().unwrap().to_string()),
        Value::Array(a) => a.iter().for_each(|x| facet_values(x, out)),
        _ => {}
    }
}

/// What one node answers to `node_query` when it holds the documents of `own` (its part of
/// the single-node ranking, in order).
pub(crate) fn node_answer(node_query: &Map<String, Value>, ctx: &IndexContext, own: &[Ranked], shard: u64) -> Value {
    // distinct is applied by the node over its own documents
    let distinct = effective_distinct(node_query, ctx);
    let mut seen = std::collections::HashSet::new();
    let own: Vec<&Ranked> = own
        .iter()
        .filter(|r| match &distinct {
            Some(attr) => match doc(r.id).get(attr) {
                Some(v) => seen.insert(v.to_string()),
                None => true,
            },
            None => true,
        })
        .collect();
    let pagination = Pagination::of(node_query);
    let fetch = pagination.fetch() as usize;
    let attrs = node_query.get("attributesToRetrieve").and_then(Value::as_array);
    let hits: Vec<Value> = own
        .iter()
        .take(fetch)
        .map(|r| {
            let mut h = project(&doc(r.id), attrs);
            h.insert(SHARD_FIELD.into(), json!(shard));
            for (k, v) in &r.extras {
                let mut v = v.clone();
                if k == "_formatted" {
                    v.as_object_mut().unwrap().insert(SHARD_FIELD.into(), json!(shard.to_string()));
                }
                h.insert(k.clone(), v);
            }
            Value::Object(h)
        })
        .collect();
    let total = own.len() as u64;
    let mut out = Map::new();
    out.insert("hits".into(), Value::Array(hits));
    out.insert("query".into(), node_query.get("q").cloned().unwrap_or(json!("")));
    out.insert("processingTimeMs".into(), json!(shard));
    let node_pagination = Pagination::of(node_query);
    for (k, v) in node_pagination.answer_fields(total) {
        out.insert(k.into(), v);
    }
    if let Some(facets) = node_query.get("facets").and_then(Value::as_array) {
        let mut dist = Map::new();
        let mut stats = Map::new();
        for f in facets.iter().filter_map(Value::as_str) {
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
            for r in &own {
                let mut vals = Vec::new();
                if let Some(v) = doc(r.id).get(f) {
                    facet_values(v, &mut vals);
                    if let Some(n) = v.as_f64() {
                        min = min.min(n);
                        max = max.max(n);
                    }
                }
                for v in vals {
                    *counts.entry(v).or_default() += 1;
                }
            }
            dist.insert(f.into(), json!(counts));
            if min.is_finite() {
                stats.insert(f.into(), json!({"min": min, "max": max}));
            }
        }
        // the node sorts and truncates with its own settings
        let node_ctx = IndexContext { max_values_per_facet: ctx.node_max_values_per_facet(), ..ctx.clone() };
        let dist = merge_facet_distributions(&node_ctx, &[&dist], total);
        out.insert("facetDistribution".into(), Value::Object(dist));
        out.insert("facetStats".into(), Value::Object(stats));
    }
    out.insert("requestUid".into(), json!(format!("node-{shard}")));
    Value::Object(out)
}

/// Splits a single-node ranking over `k` nodes by `assign(id)` and merges the answers.
pub(crate) fn run(
    client: &Map<String, Value>,
    ctx: &IndexContext,
    full: &[Ranked],
    k: usize,
    assign: impl Fn(u64) -> usize,
) -> Value {
    let node_query = plan_node_search(client, ctx);
    let answers = (0..k)
        .map(|n| {
            let own: Vec<Ranked> = full.iter().filter(|r| assign(r.id) == n).cloned().collect();
            node_answer(&node_query, ctx, &own, n as u64)
        })
        .collect();
    merge_search(client, ctx, answers).expect("merge")
}

/// The recorded answer without its volatile fields, as compared.
fn comparable(mut v: Value) -> String {
    let o = v.as_object_mut().unwrap();
    o.shift_remove("requestUid");
    o.insert("processingTimeMs".into(), json!(0));
    serde_json::to_string(&v).unwrap()
}

/// Contiguous splits keep the single node's tie order (ties go to the lower node), so the
/// merged answer must be byte-for-byte the recorded one.
fn check_case(name: &str, ctx: &IndexContext, full: Vec<Ranked>) {
    let (client, expected) = case(name);
    for k in 1..=4usize {
        let merged = run(&client, ctx, &full, k, |id| ((id as usize - 1) * k) / 12);
        assert_eq!(comparable(merged), comparable(expected.clone()), "case {name:?} over {k} nodes");
    }
}

fn all_ids() -> Vec<u64> {
    (1..=12).collect()
}

#[test]
fn recorded_full_answers() {
    for name in [
        "search basic",
        "search typo",
        "search sort + details",
        "search filter",
        "search filter array form",
        "search attributesToRetrieve",
        "search highlight + crop",
        "search rankingScoreThreshold",
    ] {
        let (_, resp) = case(name);
        check_case(name, &movies_ctx(), from_recorded(&resp));
    }
}

#[test]
fn recorded_windows_of_longer_rankings() {
    // q "the": six tied hits (see the federated recording), the first four shown.
    let (_, resp) = case("search ranking score + details");
    let extras = from_recorded(&resp)[0].extras.clone();
    let full: Vec<Ranked> = [3, 5, 7, 8, 10, 12].iter().map(|&id| Ranked { id, extras: extras.clone() }).collect();
    check_case("search ranking score + details", &movies_ctx(), full);

    // placeholder sorted by rating:desc: every document, ties in id order.
    let mut by_rating: Vec<u64> = all_ids();
    by_rating.sort_by(|a, b| doc(*b)["rating"].as_f64().unwrap().partial_cmp(&doc(*a)["rating"].as_f64().unwrap()).unwrap());
    let sorted = |ids: &[u64]| -> Vec<Ranked> {
        ids.iter()
            .map(|&id| Ranked {
                id,
                extras: json!({"_rankingScore": 1.0, "_rankingScoreDetails": {"rating:desc": {"order": 0, "value": doc(id)["rating"]}}})
                    .as_object()
                    .unwrap()
                    .clone(),
            })
            .collect()
    };
    check_case("search placeholder sort", &movies_ctx(), sorted(&by_rating));
    check_case("search distinct", &movies_ctx(), sorted(&by_rating));

    for name in ["search facets", "search pagination page/hitsPerPage", "search offset/limit"] {
        check_case(name, &movies_ctx(), tied(&all_ids()));
    }
    let comedies = [3, 4, 6, 7, 8, 11];
    check_case("search hitsPerPage 0", &movies_ctx(), tied(&comedies));
    check_case("search page 0", &movies_ctx(), tied(&comedies));
}

#[test]
fn recorded_caps_and_truncated_facets() {
    for name in [
        "search capped by maxTotalHits (offset/limit)",
        "search capped by maxTotalHits (page mode)",
        "search offset beyond maxTotalHits",
        "facets truncated by maxValuesPerFacet, sorted by count",
    ] {
        check_case(name, &capped_ctx(), tied(&all_ids()));
    }
}

#[test]
fn geo_sort_orders_by_distance_across_nodes() {
    let (client, expected) = case("search geo sort");
    let full = from_recorded(&expected);
    // any split: distances differ, so the order is fully determined
    let merged = run(&client, &movies_ctx(), &full, 3, |id| (id % 3) as usize);
    assert_eq!(merged["hits"], expected["hits"]);
}

#[test]
fn plan_widens_and_paginates() {
    let ctx = IndexContext { distinct_attribute: Some("director".into()), ..movies_ctx() };
    let client = json!({"q": "x", "offset": 3, "limit": 4, "attributesToRetrieve": ["title"], "facets": ["genres"]});
    let plan = plan_node_search(client.as_object().unwrap(), &ctx);
    assert_eq!(
        Value::Object(plan),
        json!({"q": "x", "attributesToRetrieve": ["title", "id", "director"], "facets": ["genres"],
               "offset": 0, "limit": 7, "showRankingScore": true, "showRankingScoreDetails": true})
    );
    // page mode stays page mode (exact totals); page 0 fetches nothing; capped by maxTotalHits
    let plan = |v: Value, ctx: &IndexContext| Value::Object(plan_node_search(v.as_object().unwrap(), ctx));
    assert_eq!(plan(json!({"page": 3, "hitsPerPage": 5}), &ctx)["hitsPerPage"], json!(15));
    assert_eq!(plan(json!({"page": 3, "hitsPerPage": 5}), &ctx)["page"], json!(1));
    assert_eq!(plan(json!({"page": 0}), &ctx)["hitsPerPage"], json!(0));
    assert_eq!(plan(json!({"hitsPerPage": 0}), &ctx)["hitsPerPage"], json!(0));
    assert_eq!(plan(json!({"offset": 900, "limit": 200}), &ctx)["limit"], json!(1000));
    // "*" and already-covered fields are not widened
    let p = plan(json!({"attributesToRetrieve": ["*"]}), &ctx);
    assert_eq!(p["attributesToRetrieve"], json!(["*"]));
    let p = plan(json!({"attributesToRetrieve": ["id", "director"], "distinct": "director"}), &ctx);
    assert_eq!(p["attributesToRetrieve"], json!(["id", "director"]));
    let p = plan(json!({"attributesToRetrieve": ["i*", "dir*"]}), &ctx);
    assert_eq!(p["attributesToRetrieve"], json!(["i*", "dir*"]));
    let p = plan(json!({"attributesToRetrieve": ["title"], "distinct": "director.name"}), &ctx);
    assert_eq!(p["attributesToRetrieve"], json!(["title", "id", "director.name"]));
}

#[test]
fn widened_fields_stay_in_formatted_only_when_highlighted() {
    let ctx = movies_ctx();
    let client = json!({"q": "kid", "attributesToRetrieve": ["title"], "attributesToHighlight": ["id"]});
    let client = client.as_object().unwrap();
    let node = json!({"hits": [{"id": 8, "title": "The Kid", "_miroir_shard": 1,
        "_formatted": {"id": "8", "title": "The Kid", "_miroir_shard": "1"}, "_rankingScore": 1.0, "_rankingScoreDetails": {}}],
        "query": "kid", "processingTimeMs": 1, "limit": 20, "offset": 0, "estimatedTotalHits": 1, "requestUid": "x"});
    let merged = merge_search(client, &ctx, vec![node]).unwrap();
    assert_eq!(
        serde_json::to_string(&merged).unwrap(),
        serde_json::to_string(&json!({"hits": [{"title": "The Kid", "_formatted": {"id": "8", "title": "The Kid"}}],
            "query": "kid", "processingTimeMs": 1, "limit": 20, "offset": 0, "estimatedTotalHits": 1})).unwrap()
    );
}

#[test]
fn distinct_across_nodes_keeps_the_best_and_counts_once() {
    // Keaton films 3 (node 0) and 4, 11 (node 1); the best Keaton is on node 1.
    let client = json!({"q": "", "distinct": "director", "sort": ["rating:desc"]});
    let ids = [4u64, 3, 11];
    let full: Vec<Ranked> = ids
        .iter()
        .map(|&id| Ranked {
            id,
            extras: json!({"_rankingScore": 1.0, "_rankingScoreDetails": {"rating:desc": {"order": 0, "value": doc(id)["rating"]}}})
                .as_object()
                .unwrap()
                .clone(),
        })
        .collect();
    let merged = run(client.as_object().unwrap(), &movies_ctx(), &full, 2, |id| if id == 3 { 0 } else { 1 });
    let hit_ids: Vec<&Value> = merged["hits"].as_array().unwrap().iter().map(|h| &h["id"]).collect();
    assert_eq!(hit_ids, vec![&json!(4)]);
    assert_eq!(merged["estimatedTotalHits"], json!(1));
}

#[test]
fn bad_node_answers_are_errors() {
    let client = Map::new();
    assert!(merge_search(&client, &movies_ctx(), vec![json!({"nohits": []})]).is_err());
    assert!(merge_search(&client, &movies_ctx(), vec![json!({"hits": [1]})]).is_err());
    // no nodes at all: an empty answer in Meilisearch's shape
    let empty = merge_search(&client, &movies_ctx(), vec![]).unwrap();
    assert_eq!(
        serde_json::to_string(&empty).unwrap(),
        r#"{"hits":[],"query":"","processingTimeMs":0,"limit":20,"offset":0,"estimatedTotalHits":0}"#
    );
}

// ------------------------------------------------------------------ property test

/// Details of a synthetic ranked hit: (words, attributeRank score, sort value).
fn synthetic(id: u64, words: u64, attr: u64, year: Option<i64>) -> Map<String, Value> {
    let year = year.map(|y| json!(y)).unwrap_or(Value::Null);
    json!({"id": id, "_rankingScoreDetails": {
        "words": {"order": 0, "matchingWords": words, "maxMatchingWords": 3, "score": words as f64 / 3.0},
        "year:desc": {"order": 1, "value": year},
        "attributeRank": {"order": 2, "score": attr as f64 / 4.0}}})
    .as_object()
    .unwrap()
    .clone()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    /// Any split of a ranked list over k nodes (each node's part keeps the order) merges back
    /// into the same order, up to ties (hits with equal details, compared as sets).
    #[test]
    fn merge_reproduces_the_ranking_up_to_ties(
        raw in prop::collection::vec((0u64..4, 0u64..5, prop::option::of(1990i64..1995)), 0..40),
        k in 1usize..6,
        seeds in prop::collection::vec(0usize..1000, 40),
    ) {
        let mut hits: Vec<Map<String, Value>> =
            raw.iter().enumerate().map(|(i, (w, a, y))| synthetic(i as u64, *w, *a, *y)).collect();
        // the single node's ranking: by the details (stable, so ties keep id order)
        hits.sort_by(compare_hits);
        let mut nodes: Vec<Vec<Map<String, Value>>> = vec![Vec::new(); k];
        for (i, h) in hits.iter().enumerate() {
            nodes[seeds[i] % k].push(h.clone());
        }
        let (merged, dropped) = rank_and_distinct(nodes, None);
        prop_assert_eq!(dropped, 0);
        prop_assert_eq!(merged.len(), hits.len());
        let mut i = 0;
        while i < hits.len() {
            let mut j = i + 1;
            while j < hits.len() && compare_hits(&hits[i], &hits[j]) == std::cmp::Ordering::Equal {
                j += 1;
            }
            let mut want: Vec<&Value> = hits[i..j].iter().map(|h| &h["id"]).collect();
            let mut got: Vec<&Value> = merged[i..j].iter().map(|h| &h["id"]).collect();
            want.sort_by_key(|v| v.as_u64());
            got.sort_by_key(|v| v.as_u64());
            prop_assert_eq!(want, got, "tie group {}..{}", i, j);
            i = j;
        }
    }
}

/// A node answer built from synthetic hits (each node's part of the ranking, its own distinct
/// applied), answering `node_query`'s pagination.
fn synthetic_node(node_query: &Map<String, Value>, own: &[Map<String, Value>], distinct: bool) -> Value {
    let mut seen = std::collections::HashSet::new();
    let own: Vec<&Map<String, Value>> =
        own.iter().filter(|h| !distinct || seen.insert(h["group"].as_u64().unwrap())).collect();
    let pagination = Pagination::of(node_query);
    let hits: Vec<Value> = own.iter().take(pagination.fetch() as usize).map(|h| Value::Object((*h).clone())).collect();
    let mut out = Map::new();
    out.insert("hits".into(), Value::Array(hits));
    out.insert("query".into(), json!(""));
    out.insert("processingTimeMs".into(), json!(1));
    for (k, v) in pagination.answer_fields(own.len() as u64) {
        out.insert(k.into(), v);
    }
    Value::Object(out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    /// End to end over random splits: the page the client asked for (offset/limit or
    /// page/hitsPerPage, with or without distinct) is exactly the single node's page, and the
    /// totals are exact whenever every node returned all its hits.
    #[test]
    fn merged_pages_equal_the_single_node_pages(
        n in 0usize..30,
        groups in prop::collection::vec(0u64..6, 30),
        seeds in prop::collection::vec(0usize..1000, 30),
        k in 1usize..5,
        page_mode in any::<bool>(),
        distinct in any::<bool>(),
        a in 0u64..12,
        b in 0u64..12,
    ) {
        // distinct scores: a strict single-node ranking, best first
        let ranking: Vec<Map<String, Value>> = (0..n)
            .map(|i| json!({"id": i, "group": groups[i], "_rankingScore": 1.0 - i as f64 / 100.0,
                "_rankingScoreDetails": {"words": {"order": 0, "matchingWords": 100 - i, "maxMatchingWords": 100, "score": 1.0 - i as f64 / 100.0}}})
                .as_object().unwrap().clone())
            .collect();
        let mut seen = std::collections::HashSet::new();
        let expected: Vec<u64> = ranking
            .iter()
            .filter(|h| !distinct || seen.insert(h["group"].as_u64().unwrap()))
            .map(|h| h["id"].as_u64().unwrap())
            .collect();
        let mut client = if page_mode { json!({"page": a, "hitsPerPage": b}) } else { json!({"offset": a, "limit": b}) };
        if distinct {
            client["distinct"] = json!("group");
        }
        let client = client.as_object().unwrap().clone();
        let ctx = IndexContext { primary_key: Some("id".into()), ..Default::default() };
        let node_query = plan_node_search(&client, &ctx);
        let parts: Vec<Vec<Map<String, Value>>> = (0..k)
            .map(|node| ranking.iter().enumerate().filter(|(i, _)| seeds[*i] % k == node).map(|(_, h)| h.clone()).collect())
            .collect();
        let answers = parts.iter().map(|p| synthetic_node(&node_query, p, distinct)).collect();
        let merged = merge_search(&client, &ctx, answers).unwrap();

        let (offset, limit) = Pagination::of(&client).window();
        let want: Vec<u64> = expected.iter().skip(offset as usize).take(limit as usize).copied().collect();
        let got: Vec<u64> = merged["hits"].as_array().unwrap().iter().map(|h| h["id"].as_u64().unwrap()).collect();
        prop_assert_eq!(got, want);
        for h in merged["hits"].as_array().unwrap() {
            prop_assert!(h.get("_rankingScore").is_none() && h.get("_rankingScoreDetails").is_none());
        }
        let fetch = Pagination::of(&client).fetch() as usize;
        let complete = parts.iter().all(|p| p.len() <= fetch);
        let total_key = if page_mode { "totalHits" } else { "estimatedTotalHits" };
        let total = merged[total_key].as_u64().unwrap();
        if complete || !distinct {
            prop_assert_eq!(total, expected.len() as u64);
        } else {
            prop_assert!(total >= expected.len() as u64);
        }
        if page_mode {
            let pages = if b == 0 { 0 } else { total.div_ceil(b) };
            prop_assert_eq!(&merged["totalPages"], &json!(pages));
        }
    }
}

#[test]
fn recorded_multi_search_result_shape() {
    let (req, expected) = case("multi-search");
    let q = req["queries"][0].as_object().unwrap().clone();
    let (_, keaton) = case("search basic");
    let merged = run(&q, &movies_ctx(), &from_recorded(&keaton), 2, |id| (id as usize - 1) / 6);
    let got = multi_search_result("movies", merged);
    let mut want = expected["results"][0].clone();
    want["processingTimeMs"] = json!(got["processingTimeMs"]);
    assert_eq!(serde_json::to_string(&got).unwrap(), serde_json::to_string(&want).unwrap());
}

#[test]
fn performance_details_keep_the_slowest_node_per_step() {
    use super::{finish_search_answer, merge_performance_details, parse_duration};
    assert_eq!(parse_duration("812.00ns"), Some(812.0));
    assert_eq!(parse_duration("15.43µs"), Some(15430.0));
    assert_eq!(parse_duration("1.20ms"), Some(1_200_000.0));
    assert_eq!(parse_duration("2.00s"), Some(2e9));
    assert_eq!(parse_duration("fast"), None);
    let a = json!({"performanceDetails": {"search > keyword ranking": "1.50ms", "search": "2.00ms"}});
    let b = json!({"performanceDetails": {"search > keyword ranking": "900.00µs", "search > facet distribution": "3.00µs", "search": "2.10ms"}});
    let merged = merge_performance_details([&a, &b]).unwrap();
    assert_eq!(
        serde_json::to_string(&merged).unwrap(),
        r#"{"search > keyword ranking":"1.50ms","search":"2.10ms","search > facet distribution":"3.00µs"}"#
    );
    assert!(merge_performance_details([&json!({"hits": []})]).is_none());
    let mut body = json!({"hits": [], "query": ""});
    finish_search_answer(&mut body, "u", Some(merged));
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["hits", "query", "requestUid", "performanceDetails"]);
}

#[test]
fn semantic_hit_count_counts_the_page_and_comes_last() {
    use super::finish_search_answer;
    let hit = |id: u64, s: Option<f64>| {
        json!({"id": id, "_rankingScore": s.unwrap_or(0.0), "_rankingScoreDetails": {"vectorSort": {"order": 0, "similarity": s}}})
    };
    let client: Map<String, Value> = json!({"vector": [1.0], "hybrid": {"embedder": "e"}, "limit": 3, "offset": 1}).as_object().unwrap().clone();
    let a = json!({"hits": [hit(1, Some(0.9)), hit(2, Some(0.5))], "query": "", "processingTimeMs": 1, "limit": 4, "offset": 0, "estimatedTotalHits": 2, "semanticHitCount": 2});
    let b = json!({"hits": [hit(3, Some(0.7)), hit(4, None)], "query": "", "processingTimeMs": 1, "limit": 4, "offset": 0, "estimatedTotalHits": 2, "semanticHitCount": 2});
    let mut merged = merge_search(&client, &movies_ctx(), vec![a, b]).unwrap();
    finish_search_answer(&mut merged, "u", None);
    let ids: Vec<u64> = merged["hits"].as_array().unwrap().iter().map(|h| h["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [3, 2, 4]);
    // Meilisearch counts the hits of the page, after `requestUid`.
    assert_eq!(merged["semanticHitCount"], 3);
    let keys: Vec<&String> = merged.as_object().unwrap().keys().collect();
    assert_eq!(keys.last().unwrap().as_str(), "semanticHitCount");
    assert_eq!(keys[keys.len() - 2].as_str(), "requestUid");
}

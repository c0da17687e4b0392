//! Read fidelity: the same corpus in one Meilisearch node and in Miroir (3 nodes RF=1, and
//! 4 nodes RG=2 RF=2); well over 100 queries must give the same hits in the same order, the
//! same facet counts and the same totals. Tied hits (equal `_rankingScoreDetails`) are
//! compared as sets: a node orders ties by internal document id, which no sharded
//! deployment can reproduce (and which differs between two real nodes fed in different
//! orders).

mod common;

use std::collections::BTreeSet;

use common::corpus::{self, WORDS};
use common::{Cluster, Http, Node, Spec, NODE_KEY};
use serde_json::{json, Map, Value};

const DOCS: u64 = 3000;

async fn load(http: &Http) {
    let (s, b) = http.post("/indexes", &json!({"uid": "products", "primaryKey": "id"})).await;
    assert_eq!(s, 202, "{b}");
    http.wait_task(b["taskUid"].as_u64().unwrap()).await;
    let (s, _, b) = http.send_json(reqwest::Method::PATCH, "/indexes/products/settings", &corpus::settings()).await;
    assert_eq!(s, 202, "{b}");
    let t = http.wait_task(b["taskUid"].as_u64().unwrap()).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let docs = corpus::documents(DOCS);
    for chunk in docs.chunks(1000) {
        let (s, b) = http.post("/indexes/products/documents", &Value::Array(chunk.to_vec())).await;
        assert_eq!(s, 202, "{b}");
        let t = http.wait_task(b["taskUid"].as_u64().unwrap()).await;
        assert_eq!(t["status"], "succeeded", "{t}");
    }
}

fn q(body: Value) -> Value {
    body
}

/// The search bodies of the suite (each also asks for ranking details, which the
/// comparison needs to recognise ties).
fn searches() -> Vec<Value> {
    let mut out = Vec::new();
    for w in &WORDS[..20] {
        out.push(q(json!({"q": w})));
    }
    for pair in WORDS.chunks(2).take(10) {
        out.push(q(json!({"q": format!("{} {}", pair[0], pair[1]), "limit": 30})));
    }
    for typo in ["glaicer", "lanterm", "nebual", "ochard", "prairei", "thundr", "umbrela", "willwo", "zephir", "midnigth"] {
        out.push(q(json!({"q": typo})));
    }
    for phrase in ["\"golden river\"", "\"ocean forest\"", "\"amber\"", "\"city garden\" winter", "\"summit valley\""] {
        out.push(q(json!({"q": phrase})));
    }
    for prefix in ["mou", "gard", "sil", "cr", "win"] {
        out.push(q(json!({"q": prefix, "limit": 15})));
    }
    for sort in [
        json!(["price:asc"]),
        json!(["price:desc"]),
        json!(["year:desc", "price:asc"]),
        json!(["rating:desc", "year:asc"]),
        json!(["title:asc"]),
        json!(["_geoPoint(48.85, 2.35):asc"]),
        json!(["rating:asc", "price:desc"]),
    ] {
        out.push(q(json!({"q": "", "sort": sort.clone(), "limit": 25})));
        out.push(q(json!({"q": "river", "sort": sort})));
    }
    for filter in [
        json!("category = Books"),
        json!("price > 100 AND price < 200"),
        json!("year 2000 TO 2010"),
        json!("tags IN [red, blue]"),
        json!("NOT in_stock = true"),
        json!("brand != Acme AND rating >= 8"),
        json!("_geoRadius(45.0, 0.0, 300000)"),
        json!([["category = Books", "category = Music"], "rating > 5"]),
        json!("tags = green OR (year < 1995 AND price > 400)"),
        json!("brand EXISTS"),
    ] {
        out.push(q(json!({"q": "", "filter": filter.clone(), "sort": ["price:asc"], "limit": 40})));
        out.push(q(json!({"q": "meadow", "filter": filter})));
    }
    for (distinct, sort) in [("brand", "price:asc"), ("category", "price:desc"), ("brand", "year:desc")] {
        out.push(q(json!({"q": "", "distinct": distinct, "sort": [sort]})));
        out.push(q(json!({"q": "canyon", "distinct": distinct})));
    }
    for (qq, facets) in [
        ("", json!(["category", "brand", "tags", "rating"])),
        ("ocean", json!(["category", "tags"])),
        ("golden", json!(["price", "year"])),
        ("", json!(["in_stock", "rating"])),
        ("silver summer", json!(["brand"])),
    ] {
        out.push(q(json!({"q": qq, "facets": facets.clone(), "limit": 5})));
        out.push(q(json!({"q": qq, "facets": facets, "filter": "rating > 3", "limit": 5})));
    }
    for (offset, limit) in [(100, 20), (500, 50), (1000, 30), (2000, 40), (2990, 20), (4000, 10)] {
        out.push(q(json!({"q": "", "sort": ["price:asc", "year:asc"], "offset": offset, "limit": limit})));
    }
    out.push(q(json!({"q": "amber", "offset": 40, "limit": 20})));
    out.push(q(json!({"q": "", "offset": 1000, "limit": 20})));
    for (page, hpp) in [(1, 20), (5, 20), (50, 7), (3, 100), (0, 20), (2, 0), (430, 7)] {
        out.push(q(json!({"q": "", "sort": ["price:desc"], "page": page, "hitsPerPage": hpp})));
    }
    out.push(q(json!({"q": "river", "page": 2, "hitsPerPage": 10})));
    for atr in [json!(["title"]), json!(["id", "price"]), json!(["brand", "tags"])] {
        out.push(q(json!({"q": "summit", "attributesToRetrieve": atr.clone(), "sort": ["price:asc"]})));
        out.push(q(json!({"q": "", "attributesToRetrieve": atr, "distinct": "brand", "sort": ["year:asc"]})));
    }
    out.push(q(json!({"q": "golden river", "attributesToHighlight": ["title"], "attributesToCrop": ["description"], "cropLength": 4, "showMatchesPosition": true})));
    out.push(q(json!({"q": "midnight", "showRankingScore": true, "rankingScoreThreshold": 0.5})));
    out.push(q(json!({"q": "ocean city", "matchingStrategy": "all"})));
    out
}

fn multi_searches() -> Vec<Value> {
    vec![
        json!({"queries": [{"indexUid": "products", "q": "amber"}, {"indexUid": "products", "q": "", "sort": ["price:asc"], "limit": 5}]}),
        json!({"queries": [{"indexUid": "products", "q": "ocean", "facets": ["category"]}, {"indexUid": "products", "q": "desert", "filter": "rating > 5"}]}),
        json!({"federation": {"limit": 20}, "queries": [{"indexUid": "products", "q": "glacier"}, {"indexUid": "products", "q": "harbor", "federationOptions": {"weight": 0.8}}]}),
        json!({"federation": {"offset": 10, "limit": 15}, "queries": [{"indexUid": "products", "q": "copper"}, {"indexUid": "products", "q": "silver"}]}),
        json!({"federation": {"limit": 10, "facetsByIndex": {"products": ["category"]}}, "queries": [{"indexUid": "products", "q": "forest"}]}),
    ]
}

fn with_details(mut body: Value) -> Value {
    body.as_object_mut().unwrap().insert("showRankingScoreDetails".into(), json!(true));
    body
}

fn hit_key(hit: &Value, distinct: Option<&str>) -> String {
    match distinct {
        Some(attr) => hit.get(attr).map(Value::to_string).unwrap_or_default(),
        None => hit.get("id").map(Value::to_string).unwrap_or_else(|| hit.to_string()),
    }
}

/// Compares two hit lists group by group (a group = consecutive hits with equal details).
fn compare_hits(single: &[Value], miroir: &[Value], distinct: Option<&str>, page_full: bool, offset: u64) -> Result<(), String> {
    if single.len() != miroir.len() {
        return Err(format!("{} hits vs {}", single.len(), miroir.len()));
    }
    // Keyed by the ranking details (the weighted score for federated hits), compared modulo
    // ties: a group cut by the start or the end of the page may hold different tied members.
    let keyed = |hits: &[Value]| -> Vec<(Value, String)> {
        hits.iter()
            .map(|h| {
                let d = h.get("_rankingScoreDetails").cloned().unwrap_or(Value::Null);
                let d = match (d, h.get("_federation")) {
                    (Value::Null, Some(f)) => f.get("weightedRankingScore").cloned().unwrap_or(Value::Null),
                    (d, _) => d,
                };
                (d, hit_key(h, distinct))
            })
            .collect()
    };
    common::ties::compare_groups(&keyed(single), &keyed(miroir), offset > 0, page_full)?;
    // Same documents, same content (attributes, _formatted, _geoDistance...).
    if distinct.is_none() {
        for h in miroir.iter().filter(|h| h.get("id").is_some()) {
            if let Some(s) = single.iter().find(|s| s.get("id") == h.get("id")) {
                if s != h {
                    return Err(format!("hit differs: {s} vs {h}"));
                }
            }
        }
    }
    Ok(())
}

fn compare_search(query: &Value, single: &Value, miroir: &Value) -> Result<(), String> {
    let skip = ["hits", "processingTimeMs", "requestUid"];
    let (sa, sb) = (single.as_object().unwrap(), miroir.as_object().unwrap());
    let ka: Vec<&String> = sa.keys().collect();
    let kb: Vec<&String> = sb.keys().collect();
    if ka != kb {
        return Err(format!("fields {ka:?} vs {kb:?}"));
    }
    for (k, v) in sa {
        if !skip.contains(&k.as_str()) && sb.get(k) != Some(v) {
            return Err(format!("`{k}`: {v} vs {}", sb[k]));
        }
    }
    let offset = query.get("offset").and_then(Value::as_u64).unwrap_or(0)
        + query.get("page").and_then(Value::as_u64).map(|p| p.saturating_sub(1) * query.get("hitsPerPage").and_then(Value::as_u64).unwrap_or(20)).unwrap_or(0);
    let page_size = query.get("limit").or(query.get("hitsPerPage")).and_then(Value::as_u64).unwrap_or(20);
    let hits_a = sa["hits"].as_array().unwrap();
    let full = hits_a.len() as u64 == page_size;
    compare_hits(hits_a, sb["hits"].as_array().unwrap(), query.get("distinct").and_then(Value::as_str), full, offset)
}

async fn run_suite(spec: Spec) {
    let mut single = Node::start("single").await;
    let single_http = Http { base: single.url.clone(), key: Some(NODE_KEY.to_string()) };
    let cluster = Cluster::start(spec).await;
    let miroir = cluster.http();
    load(&single_http).await;
    load(&miroir).await;

    let mut failures = Vec::new();
    let mut count = 0;
    for query in searches() {
        let query = with_details(query);
        let (s1, a) = single_http.post("/indexes/products/search", &query).await;
        let (s2, b) = miroir.post("/indexes/products/search", &query).await;
        count += 1;
        if s1 != s2 {
            failures.push(format!("{query}: status {s1} vs {s2}: {b}"));
            continue;
        }
        if s1 != 200 {
            failures.push(format!("{query}: single node failed: {a}"));
            continue;
        }
        if let Err(e) = compare_search(&query, &a, &b) {
            failures.push(format!("{query}: {e}"));
        }
    }
    for body in multi_searches() {
        let federated = body.get("federation").is_some();
        let mut body = body;
        for q in body["queries"].as_array_mut().unwrap() {
            q.as_object_mut().unwrap().insert("showRankingScoreDetails".into(), json!(!federated));
        }
        let (s1, a) = single_http.post("/multi-search", &body).await;
        let (s2, b) = miroir.post("/multi-search", &body).await;
        count += 1;
        if (s1, s2) != (200, 200) {
            failures.push(format!("{body}: status {s1} vs {s2}: {a} / {b}"));
            continue;
        }
        let r = if federated {
            compare_search(&body["federation"], &a, &b)
        } else {
            a["results"].as_array().unwrap().iter().zip(b["results"].as_array().unwrap()).zip(body["queries"].as_array().unwrap()).try_for_each(|((x, y), q)| compare_search(q, x, y))
        };
        if let Err(e) = r {
            failures.push(format!("{body}: {e}"));
        }
    }
    // Facet search merges per value.
    for (facet, fq) in [("category", "bo"), ("brand", ""), ("tags", "r")] {
        let body = json!({"facetName": facet, "facetQuery": fq});
        let (_, a) = single_http.post("/indexes/products/facet-search", &body).await;
        let (_, b) = miroir.post("/indexes/products/facet-search", &body).await;
        count += 1;
        if a["facetHits"] != b["facetHits"] {
            failures.push(format!("facet search {body}: {} vs {}", a["facetHits"], b["facetHits"]));
        }
    }
    assert!(count >= 100, "only {count} queries");
    assert!(failures.is_empty(), "{} of {count} queries differ:\n{}", failures.len(), failures.join("\n"));

    // Stats agree too.
    let (_, a) = single_http.get("/indexes/products/stats").await;
    let (_, b) = miroir.get("/indexes/products/stats").await;
    assert_eq!(a["numberOfDocuments"], b["numberOfDocuments"]);
    assert_eq!(a["fieldDistribution"], b["fieldDistribution"]);
    single.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_answers_as_one_node_rf1_three_nodes() {
    run_suite(Spec::rf1_3_nodes()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_answers_as_one_node_rg2_rf2_four_nodes() {
    run_suite(Spec::rg2_rf2_4_nodes()).await;
}

/// Listing every document of a 10,000-document index with any page size returns each
/// exactly once with the exact total, for RF = 1, 2, 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_listing_pages_cover_every_document_once() {
    for rf in 1..=3u32 {
        let cluster = Cluster::start(Spec { shards: 16, replication_factor: rf, groups: vec![3] }).await;
        let http = cluster.http();
        let docs = corpus::documents(10_000);
        let (s, b) = http.post("/indexes/all/documents?primaryKey=id", &Value::Array(docs)).await;
        assert_eq!(s, 202, "{b}");
        let t = cluster.wait_task(b["taskUid"].as_u64().unwrap()).await;
        assert_eq!(t["status"], "succeeded", "{t}");
        for page in [1u64, 7, 20, 1000] {
            // Page size 1 over 10,000 documents is 10,000 requests: sample it on a window.
            let (start, end) = if page == 1 { (4_990u64, 5_010u64) } else { (0, 10_000) };
            let mut seen = BTreeSet::new();
            let mut offset = start;
            while offset < end {
                let (s, body) = http.get(&format!("/indexes/all/documents?offset={offset}&limit={page}&fields=id")).await;
                assert_eq!(s, 200, "{body}");
                assert_eq!(body["total"], 10_000, "rf {rf} page {page}");
                let results = body["results"].as_array().unwrap();
                assert!(!results.is_empty() || offset >= 10_000);
                for d in results {
                    let o: &Map<String, Value> = d.as_object().unwrap();
                    assert_eq!(o.keys().collect::<Vec<_>>(), vec!["id"], "{d}");
                    assert!(seen.insert(d["id"].as_u64().unwrap()), "rf {rf} page {page}: {d} twice");
                }
                offset += page;
            }
            assert_eq!(seen.len() as u64, end - start, "rf {rf} page {page}");
        }
        // The POST variant with a filter, too.
        let (s, body) = http.post("/indexes/all/documents/fetch", &json!({"limit": 5, "offset": 0, "filter": "rating = 3"})).await;
        assert_eq!(s, 400, "rating is not filterable: {body}");
        assert_eq!(body["code"], "invalid_document_filter");
        assert!(!body["message"].as_str().unwrap().contains("_miroir"), "{body}");
    }
}

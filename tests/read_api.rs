//! Read routes beyond plain search, compared with one plain node holding the same data:
//! GET search parameters, sorted document listings (`GET /documents?sort=`, `POST
//! /documents/fetch {"sort"}`), `showPerformanceDetails` (search, multi-search, federated).
//! Ties (documents with equal sort values, hits with equal ranking details) are compared as
//! sets: one node orders them by internal document id, which a sharded index cannot
//! reproduce.

mod common;


use common::corpus;
use common::{Cluster, Http, Node, Spec, NODE_KEY};
use serde_json::{json, Value};

const DOCS: u64 = 400;

/// The corpus plus documents with a string price and without a price (milli sorts numbers,
/// then strings, then documents without a value).
fn documents() -> Vec<Value> {
    let mut docs = corpus::documents(DOCS);
    docs.push(json!({"id": 5000, "title": "amber odd price", "price": "ask", "year": 2001, "rating": 3}));
    docs.push(json!({"id": 5001, "title": "amber other odd price", "price": "Call us", "year": 2002, "rating": 4}));
    docs.push(json!({"id": 5002, "title": "amber no price", "year": 2003, "rating": 5}));
    docs.push(json!({"id": 5003, "title": "river no price either", "rating": 5}));
    docs
}

async fn load(http: &Http) {
    let (s, b) = http.post("/indexes", &json!({"uid": "products", "primaryKey": "id"})).await;
    assert_eq!(s, 202, "{b}");
    http.wait_task(b["taskUid"].as_u64().unwrap()).await;
    let (s, _, b) = http.send_json(reqwest::Method::PATCH, "/indexes/products/settings", &corpus::settings()).await;
    assert_eq!(s, 202, "{b}");
    let t = http.wait_task(b["taskUid"].as_u64().unwrap()).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let (s, b) = http.post("/indexes/products/documents", &Value::Array(documents())).await;
    assert_eq!(s, 202, "{b}");
    let t = http.wait_task(b["taskUid"].as_u64().unwrap()).await;
    assert_eq!(t["status"], "succeeded", "{t}");
}

use common::ties::compare_groups;

fn sort_fields(sort: &[&str]) -> Vec<String> {
    sort.iter()
        .map(|s| if s.starts_with("_geoPoint(") { "_geo".to_string() } else { s.rsplit_once(':').unwrap().0.to_string() })
        .collect()
}

/// A listing's documents keyed by their sort values.
fn keyed_documents(body: &Value, fields: &[String]) -> Vec<(Value, String)> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (Value::Array(fields.iter().map(|f| d.get(f).cloned().unwrap_or(Value::Null)).collect()), d["id"].to_string()))
        .collect()
}

fn compare_listing(sort: &[&str], offset: u64, limit: u64, single: &Value, miroir: &Value) -> Result<(), String> {
    for k in ["offset", "limit", "total"] {
        if single[k] != miroir[k] {
            return Err(format!("`{k}`: {} vs {}", single[k], miroir[k]));
        }
    }
    let keys_a: Vec<&String> = single.as_object().unwrap().keys().collect();
    let keys_b: Vec<&String> = miroir.as_object().unwrap().keys().collect();
    if keys_a != keys_b {
        return Err(format!("fields {keys_a:?} vs {keys_b:?}"));
    }
    let fields = sort_fields(sort);
    let (a, b) = (keyed_documents(single, &fields), keyed_documents(miroir, &fields));
    let full = a.len() as u64 == limit;
    compare_groups(&a, &b, offset > 0, full)?;
    // Same documents, same content.
    for d in miroir["results"].as_array().unwrap() {
        if let Some(s) = single["results"].as_array().unwrap().iter().find(|s| s["id"] == d["id"]) {
            if s != d {
                return Err(format!("document differs: {s} vs {d}"));
            }
        }
    }
    Ok(())
}

fn hits_keyed(body: &Value) -> Vec<(Value, String)> {
    body["hits"].as_array().unwrap().iter().map(|h| (h["_rankingScoreDetails"].clone(), h["id"].to_string())).collect()
}

/// A search answer: same fields in the same order, same values except timings and ids of
/// the request, hits equal modulo ties.
fn compare_search(single: &Value, miroir: &Value, offset: u64, limit: u64) -> Result<(), String> {
    common::ties::same_fields_but_hits(single, miroir)?;
    let (sa, sb) = (single, miroir);
    let (a, b) = (hits_keyed(single), hits_keyed(miroir));
    compare_groups(&a, &b, offset > 0, a.len() as u64 == limit)?;
    for h in sb["hits"].as_array().unwrap() {
        if let Some(s) = sa["hits"].as_array().unwrap().iter().find(|s| s["id"] == h["id"]) {
            if s != h {
                return Err(format!("hit differs: {s} vs {h}"));
            }
        }
    }
    Ok(())
}

/// `performanceDetails` as Meilisearch prints it: step → `{:.2?}` of a duration.
fn check_performance_details(body: &Value) -> Result<(), String> {
    let o = body.as_object().ok_or("not an object")?;
    let keys: Vec<&String> = o.keys().collect();
    let n = keys.len();
    if n < 2 || keys[n - 2] != "requestUid" || keys[n - 1] != "performanceDetails" {
        return Err(format!("`performanceDetails` must follow `requestUid` at the end: {keys:?}"));
    }
    let details = o["performanceDetails"].as_object().ok_or("performanceDetails is not an object")?;
    if details.is_empty() {
        return Err("empty performanceDetails".into());
    }
    for (step, d) in details {
        let d = d.as_str().ok_or(format!("{step}: not a string"))?;
        let unit_at = d.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or(format!("{step}: {d}"))?;
        let (num, unit) = d.split_at(unit_at);
        if num.parse::<f64>().is_err() || !["ns", "µs", "ms", "s"].contains(&unit) {
            return Err(format!("{step}: `{d}` is not a duration"));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_routes_answer_as_one_node() {
    let mut single = Node::start("single").await;
    let one = Http { base: single.url.clone(), key: Some(NODE_KEY.to_string()) };
    let cluster = Cluster::start(Spec::rf1_3_nodes()).await;
    let miroir = cluster.http();
    load(&one).await;
    load(&miroir).await;
    let mut failures: Vec<String> = Vec::new();
    let mut checks = 0;

    // ---------------------------------------------------------------- sorted listings
    let listings: Vec<(Vec<&str>, u64, u64, Value)> = vec![
        (vec!["price:asc"], 0, 30, json!({"fields": ["id", "price"]})),
        (vec!["price:desc"], 380, 40, json!({"fields": ["id", "price", "title"]})),
        (vec!["price:asc"], 390, 20, json!({})),
        (vec!["price:desc", "year:asc"], 50, 40, json!({"fields": ["id", "price", "year"]})),
        (vec!["year:desc", "rating:asc"], 100, 50, json!({"fields": ["id", "year", "rating"]})),
        (vec!["rating:desc"], 0, 60, json!({"filter": "price > 100"})),
        (vec!["title:asc"], 5, 25, json!({"fields": ["id", "title"], "filter": "category = Books"})),
        (vec!["_geoPoint(48.85, 2.35):asc"], 0, 20, json!({"fields": ["id", "_geo"]})),
        (vec!["_geoPoint(45.0, 0.0):desc", "price:asc"], 10, 20, json!({"fields": ["id", "_geo", "price"]})),
        (vec!["rating:asc", "price:desc"], 1000, 10, json!({})),
    ];
    for (sort, offset, limit, extra) in &listings {
        let mut body = json!({"sort": sort, "offset": offset, "limit": limit});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let (s1, a) = one.post("/indexes/products/documents/fetch", &body).await;
        let (s2, b) = miroir.post("/indexes/products/documents/fetch", &body).await;
        checks += 1;
        if (s1, s2) != (200, 200) {
            failures.push(format!("fetch {body}: status {s1} vs {s2}: {a} / {b}"));
        } else if let Err(e) = compare_listing(sort, *offset, *limit, &a, &b) {
            failures.push(format!("fetch {body}: {e}"));
        }
        // The GET twin.
        let mut url = format!("/indexes/products/documents?sort={}&offset={offset}&limit={limit}", urlencode(&sort.join(",")));
        if let Some(f) = extra.get("fields") {
            let list: Vec<&str> = f.as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
            url.push_str(&format!("&fields={}", list.join(",")));
        }
        if let Some(f) = extra.get("filter") {
            url.push_str(&format!("&filter={}", urlencode(f.as_str().unwrap())));
        }
        let (s1, a) = one.get(&url).await;
        let (s2, b) = miroir.get(&url).await;
        checks += 1;
        if (s1, s2) != (200, 200) {
            failures.push(format!("GET {url}: status {s1} vs {s2}: {a} / {b}"));
        } else if let Err(e) = compare_listing(sort, *offset, *limit, &a, &b) {
            failures.push(format!("GET {url}: {e}"));
        }
    }
    // Fields the sort reads but the client did not ask for are not shown.
    let (s, narrow) = miroir.post("/indexes/products/documents/fetch", &json!({"sort": ["price:asc"], "fields": ["id"], "limit": 30})).await;
    let (_, wide) = miroir.post("/indexes/products/documents/fetch", &json!({"sort": ["price:asc"], "fields": ["id", "price"], "limit": 30})).await;
    checks += 1;
    assert_eq!(s, 200, "{narrow}");
    for d in narrow["results"].as_array().unwrap() {
        assert_eq!(d.as_object().unwrap().keys().collect::<Vec<_>>(), vec!["id"], "{d}");
    }
    let ids = |v: &Value| v["results"].as_array().unwrap().iter().map(|d| d["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&narrow), ids(&wide));
    // Bad sorts: the node's error, unchanged (and without Miroir's attributes).
    for body in [
        json!({"sort": ["brand:asc"]}),
        json!({"sort": ["price:up"]}),
        json!({"sort": ["_geo:asc"]}),
        json!({"sort": ["description:desc"], "filter": "price > 10"}),
    ] {
        let (s1, a) = one.post("/indexes/products/documents/fetch", &body).await;
        let (s2, b) = miroir.post("/indexes/products/documents/fetch", &body).await;
        checks += 1;
        if s1 != s2 || a != b {
            failures.push(format!("fetch {body}: {s1} {a} vs {s2} {b}"));
        }
    }
    let (s1, a) = one.get("/indexes/products/documents?sort=brand:desc").await;
    let (s2, b) = miroir.get("/indexes/products/documents?sort=brand:desc").await;
    checks += 1;
    if s1 != s2 || a != b {
        failures.push(format!("GET sort=brand:desc: {s1} {a} vs {s2} {b}"));
    }

    // ---------------------------------------------------------------- GET search
    let gets: Vec<(&str, u64, u64)> = vec![
        ("q=amber&showRankingScore=true&showRankingScoreDetails=true&limit=5", 0, 5),
        ("q=river&rankingScoreThreshold=0.5&showRankingScoreDetails=true", 0, 20),
        ("q=&sort=price:asc&filter=category%20%3D%20Books&limit=7&offset=3&showRankingScoreDetails=true", 3, 7),
        ("q=ocean&retrieveVectors=false&showRankingScoreDetails=true&attributesToRetrieve=id,title", 0, 20),
        ("q=golden%20river&matchingStrategy=all&showRankingScoreDetails=true&page=2&hitsPerPage=3", 3, 3),
        ("q=amber&hybridSemanticRatio=0.5", 0, 20),
        ("q=amber&vector=0.1,0.2,0.3", 0, 20),
        ("q=amber&hybridSemanticRatio=2.5&hybridEmbedder=default", 0, 20),
    ];
    for (params, offset, limit) in &gets {
        let url = format!("/indexes/products/search?{params}");
        let (s1, a) = one.get(&url).await;
        let (s2, b) = miroir.get(&url).await;
        checks += 1;
        if s1 != s2 {
            failures.push(format!("GET {url}: status {s1} vs {s2}: {a} / {b}"));
        } else if s1 != 200 {
            if a != b {
                failures.push(format!("GET {url}: {a} vs {b}"));
            }
        } else if let Err(e) = compare_search(&a, &b, *offset, *limit) {
            failures.push(format!("GET {url}: {e}"));
        }
    }

    // Meilisearch's own checks of the GET form, worded by Meilisearch.
    for (params, code) in [("q=a&hybridSemanticRatio=0.5", "invalid_search_hybrid_query"), ("q=a&vector=0.1,0.2", "missing_search_hybrid")] {
        let (s, b) = miroir.get(&format!("/indexes/products/search?{params}")).await;
        checks += 1;
        if s != 400 || b["code"] != code {
            failures.push(format!("GET search?{params}: {s} {b}, expected {code}"));
        }
    }

    // ---------------------------------------------------------------- performance details
    for (what, path, body) in [
        ("POST search", "/indexes/products/search", json!({"q": "amber", "showPerformanceDetails": true, "showRankingScoreDetails": true})),
        ("POST search, facets", "/indexes/products/search", json!({"q": "", "facets": ["category"], "filter": "rating > 2", "showPerformanceDetails": true, "showRankingScoreDetails": true})),
    ] {
        let (s1, a) = one.post(path, &body).await;
        let (s2, b) = miroir.post(path, &body).await;
        checks += 1;
        if (s1, s2) != (200, 200) {
            failures.push(format!("{what}: status {s1} vs {s2}: {a} / {b}"));
            continue;
        }
        for (who, v) in [("node", &a), ("miroir", &b)] {
            if let Err(e) = check_performance_details(v) {
                failures.push(format!("{what} ({who}): {e}"));
            }
        }
        if let Err(e) = compare_search(&a, &b, 0, 20) {
            failures.push(format!("{what}: {e}"));
        }
    }
    let url = "/indexes/products/search?q=amber&showPerformanceDetails=true";
    let (s, b) = miroir.get(url).await;
    checks += 1;
    if s != 200 {
        failures.push(format!("GET {url}: {s} {b}"));
    } else if let Err(e) = check_performance_details(&b) {
        failures.push(format!("GET {url}: {e}"));
    }
    let multi = json!({"queries": [{"indexUid": "products", "q": "river", "showPerformanceDetails": true}, {"indexUid": "products", "q": "amber"}]});
    let (s1, a) = one.post("/multi-search", &multi).await;
    let (s2, b) = miroir.post("/multi-search", &multi).await;
    checks += 1;
    if (s1, s2) != (200, 200) {
        failures.push(format!("multi-search: {s1} vs {s2}: {a} / {b}"));
    } else {
        for (who, v) in [("node", &a), ("miroir", &b)] {
            if let Err(e) = check_performance_details(&v["results"][0]) {
                failures.push(format!("multi-search ({who}): {e}"));
            }
            if v["results"][1].get("performanceDetails").is_some() {
                failures.push(format!("multi-search ({who}): details on a query that did not ask"));
            }
        }
    }
    // Inside a federated search only the federation may ask.
    for flag in [true, false] {
        let body = json!({"federation": {}, "queries": [{"indexUid": "products", "q": "river"}, {"indexUid": "products", "q": "amber", "showPerformanceDetails": flag}]});
        let (s1, a) = one.post("/multi-search", &body).await;
        let (s2, b) = miroir.post("/multi-search", &body).await;
        checks += 1;
        if s1 != s2 || a != b {
            failures.push(format!("federated, query showPerformanceDetails={flag}: {s1} {a} vs {s2} {b}"));
        }
    }

    // The federation's own details.
    let body = json!({"federation": {"showPerformanceDetails": true}, "queries": [{"indexUid": "products", "q": "river"}, {"indexUid": "products", "q": "amber"}]});
    let (s1, a) = one.post("/multi-search", &body).await;
    let (s2, b) = miroir.post("/multi-search", &body).await;
    checks += 1;
    if (s1, s2) != (200, 200) {
        failures.push(format!("federation.showPerformanceDetails: {s1} vs {s2}: {a} / {b}"));
    } else {
        for (who, v) in [("node", &a), ("miroir", &b)] {
            if let Err(e) = check_performance_details(v) {
                failures.push(format!("federation.showPerformanceDetails ({who}): {e}"));
            }
        }
    }

    assert!(failures.is_empty(), "{} of {checks} checks failed:\n{}", failures.len(), failures.join("\n"));
    single.stop().await;
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

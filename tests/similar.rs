//! `GET`/`POST /indexes/{uid}/similar` and vector search through Miroir, compared with one
//! plain node holding the same documents: an index with a `userProvided` embedder, documents
//! with 5-dimensional vectors (a few without, a few in the `{"embeddings", "regenerate"}`
//! form, a few sharing a vector) spread over 3 nodes. Every request is sent to both; answers
//! must have the same fields in the same order and the same values, except
//! `processingTimeMs` (and `requestUid`, `performanceDetails`); hits must be the same modulo
//! the order of ties (documents with the same similarity: a node orders them by internal id,
//! which a sharded index cannot reproduce). Bad requests must get the same status and body.
//!
//! The corpus is small and low-dimensional, so real Meilisearch's approximate vector index
//! answers exactly.

mod common;

use std::collections::{BTreeSet, HashMap};

use common::{Cluster, Http, Node, Spec, NODE_KEY};
use serde_json::{json, Map, Value};

const DOCS: u64 = 240;
const GENRES: [&str; 4] = ["rock", "jazz", "folk", "pop"];
/// Reference documents, on different shards (and nodes): plain vectors, the object form
/// (`i % 37 == 5`: 42). Documents sharing a vector (`i % 41 == 7`) are ties in every
/// ranking; none is a reference: an approximate index (real Meilisearch's) may miss some of a
/// reference's exact duplicates, which makes one node's answer inexact.
const REFERENCES: [u64; 7] = [1, 42, 77, 118, 160, 203, 235];
/// A document without a vector.
const NO_VECTOR: u64 = 50;

/// A deterministic value in [-1, 1) with three decimals.
fn coordinate(seed: u64) -> f64 {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51afd7ed558ccd);
    x ^= x >> 29;
    ((x % 2000) as f64 - 1000.0) / 1000.0
}

fn vector(i: u64) -> Vec<f64> {
    // Documents 7, 48, 89, … share one vector (ties).
    let seed = if i % 41 == 7 { 7 } else { i };
    (0..5).map(|d| coordinate(seed * 5 + d + 1)).collect()
}

fn documents() -> Vec<Value> {
    (0..DOCS)
        .map(|i| {
            let mut d = json!({"id": i, "title": format!("track {i}"), "genre": GENRES[(i % 4) as usize], "year": 1980 + (i % 40)});
            // `null`: the document opts out (a `userProvided` embedder needs an entry).
            let v = vector(i);
            d["_vectors"] = if i % 50 == 0 {
                json!({"emb": null})
            } else if i % 37 == 5 {
                json!({"emb": {"embeddings": [v], "regenerate": false}})
            } else {
                json!({"emb": v})
            };
            d
        })
        .collect()
}

async fn load(http: &Http) {
    let (s, b) = http.post("/indexes", &json!({"uid": "tracks", "primaryKey": "id"})).await;
    assert_eq!(s, 202, "{b}");
    http.wait_task(b["taskUid"].as_u64().unwrap()).await;
    let settings = json!({
        "filterableAttributes": ["genre", "year"],
        "embedders": {"emb": {"source": "userProvided", "dimensions": 5}}
    });
    let (s, _, b) = http.send_json(reqwest::Method::PATCH, "/indexes/tracks/settings", &settings).await;
    assert_eq!(s, 202, "{b}");
    let t = http.wait_task(b["taskUid"].as_u64().unwrap()).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let (s, b) = http.post("/indexes/tracks/documents", &Value::Array(documents())).await;
    assert_eq!(s, 202, "{b}");
    let t = http.wait_task(b["taskUid"].as_u64().unwrap()).await;
    assert_eq!(t["status"], "succeeded", "{t}");
}

use common::ties::compare_groups;

/// Two answers: same fields in the same order, same values but `hits` and the volatile
/// ones; hits equal modulo ties, keyed by `score_of(hit)`.
fn compare(single: &Value, miroir: &Value, limit: u64, offset: u64, score_of: &dyn Fn(&Value) -> String) -> Result<(), String> {
    common::ties::same_fields_but_hits(single, miroir)?;
    // A hit is known by all it shows (some requests leave `id` out); within a tie group the
    // same hits, whole, must appear.
    let keyed = |b: &Value| -> Vec<(String, String)> { b["hits"].as_array().unwrap().iter().map(|h| (score_of(h), h.to_string())).collect() };
    let (a, b) = (keyed(single), keyed(miroir));
    compare_groups(&a, &b, offset > 0, a.len() as u64 == limit)
}

/// A `/similar` hit's score: its `_rankingScore`, else the score of its document.
fn similar_score(h: &Value, scores: &HashMap<String, String>) -> String {
    match h.get("_rankingScore") {
        Some(s) => s.to_string(),
        None => scores.get(&h["id"].to_string()).cloned().unwrap_or_else(|| panic!("a hit without `id` nor `_rankingScore`: {h}")),
    }
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The GET form of a `/similar` body.
fn as_query(body: &Value) -> String {
    let mut parts = Vec::new();
    for (k, v) in body.as_object().unwrap() {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Array(items) if k == "attributesToRetrieve" => items.iter().map(|i| i.as_str().unwrap().to_string()).collect::<Vec<_>>().join(","),
            other => other.to_string(),
        };
        parts.push(format!("{k}={}", encode(&text)));
    }
    parts.join("&")
}

/// Every `/similar` request of the comparison (POST and GET) for every reference; returns
/// the number of checks. With `holder` (document id → node), also checks that the best hits
/// come from every node.
async fn compare_similar(one: &Http, miroir: &Http, holder: Option<&HashMap<u64, usize>>, failures: &mut Vec<String>) -> usize {
    let mut checks = 0;
    for reference in REFERENCES.iter().copied().chain([NO_VECTOR]) {
        // Every document's similarity to the reference, from the single node: ties are hits
        // with the same score.
        let (s, all) = one.post("/indexes/tracks/similar", &json!({"id": reference, "embedder": "emb", "limit": 1000, "showRankingScore": true})).await;
        assert_eq!(s, 200, "{all}");
        let scores: HashMap<String, String> =
            all["hits"].as_array().unwrap().iter().map(|h| (h["id"].to_string(), h["_rankingScore"].to_string())).collect();
        if reference == NO_VECTOR {
            assert!(scores.is_empty(), "a document without a vector has no similar documents: {all}");
        } else {
            assert_eq!(scores.len() as u64, DOCS - DOCS.div_ceil(50) - 1, "every document with a vector but the reference");
        }
        // Miroir's hits come from every node.
        if let Some(holder) = holder.filter(|_| reference != NO_VECTOR) {
            let (_, b) = miroir.post("/indexes/tracks/similar", &json!({"id": reference, "embedder": "emb", "limit": 30})).await;
            let from: BTreeSet<usize> = b["hits"].as_array().unwrap_or(&vec![]).iter().map(|h| holder[&h["id"].as_u64().unwrap()]).collect();
            if from.len() != 3 {
                failures.push(format!("ref {reference}: the 30 best hits come from nodes {from:?} only"));
            }
        }
        let mut sorted: Vec<f64> = all["hits"].as_array().unwrap().iter().map(|h| h["_rankingScore"].as_f64().unwrap()).collect();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let at = |i: usize| sorted.get(i).copied().unwrap_or(0.5);
        let (t10, t3) = (at(10), at(3));
        let score_of = |h: &Value| similar_score(h, &scores);

        let mut bodies: Vec<Value> = vec![
            json!({}),
            json!({"retrieveVectors": true}),
            json!({"showRankingScore": true, "showRankingScoreDetails": true}),
            json!({"filter": "genre = rock", "showRankingScore": true}),
            json!({"filter": ["genre = jazz", "year > 1995"], "retrieveVectors": true, "showRankingScoreDetails": true}),
            json!({"filter": "genre IN [rock, folk] AND year < 2010", "limit": 50}),
            json!({"offset": 5, "limit": 7, "showRankingScore": true}),
            json!({"offset": 0, "limit": 1}),
            json!({"limit": 0}),
            json!({"offset": 1000}),
            json!({"offset": 200, "limit": 50}),
            json!({"attributesToRetrieve": ["title", "year"], "showRankingScore": true}),
            json!({"attributesToRetrieve": ["id"], "retrieveVectors": true, "showRankingScore": true}),
            json!({"attributesToRetrieve": ["*"], "limit": 5}),
            json!({"rankingScoreThreshold": t10, "showRankingScore": true}),
            json!({"rankingScoreThreshold": t10, "offset": 4, "limit": 3}),
            json!({"rankingScoreThreshold": t3, "offset": 5, "limit": 5}),
            json!({"rankingScoreThreshold": 0.0, "limit": 10}),
            json!({"rankingScoreThreshold": 1.0}),
            json!({"rankingScoreThreshold": t10, "filter": "genre = pop", "limit": 100}),
            json!({"showPerformanceDetails": true, "limit": 3}),
        ];
        if reference == 1 {
            // The index's documents, filtered: ties of the shared vector included.
            bodies.push(json!({"limit": 240, "showRankingScoreDetails": true}));
        }
        for extra in bodies {
            let mut body = json!({"id": reference, "embedder": "emb"});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            let limit = body.get("limit").and_then(Value::as_u64).unwrap_or(20);
            let offset = body.get("offset").and_then(Value::as_u64).unwrap_or(0);
            let (s1, a) = one.post("/indexes/tracks/similar", &body).await;
            let (s2, b) = miroir.post("/indexes/tracks/similar", &body).await;
            checks += 1;
            if (s1, s2) != (200, 200) {
                failures.push(format!("POST {body}: status {s1} vs {s2}: {a} / {b}"));
            } else if let Err(e) = compare(&a, &b, limit, offset, &score_of) {
                failures.push(format!("POST {body}: {e}"));
            }
            // The GET twin (`id` a string there, as Meilisearch reads it).
            let url = format!("/indexes/tracks/similar?{}", as_query(&body));
            let (s1, a) = one.get(&url).await;
            let (s2, b) = miroir.get(&url).await;
            checks += 1;
            if (s1, s2) != (200, 200) {
                failures.push(format!("GET {url}: status {s1} vs {s2}: {a} / {b}"));
            } else if let Err(e) = compare(&a, &b, limit, offset, &score_of) {
                failures.push(format!("GET {url}: {e}"));
            }
        }
    }

    checks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similar_documents_answer_as_one_node() {
    let single = Node::start("single").await;
    let one = Http { base: single.url.clone(), key: Some(NODE_KEY.to_string()) };
    let cluster = Cluster::start(Spec::rf1_3_nodes()).await;
    let miroir = cluster.http();
    load(&one).await;
    load(&miroir).await;

    // The documents are spread over the three nodes, and so are the references.
    let mut holder: HashMap<u64, usize> = HashMap::new();
    for i in 0..cluster.nodes.len() {
        let (s, b) = cluster.node_http(i).post("/indexes/tracks/documents/fetch", &json!({"fields": ["id"], "limit": 1000})).await;
        assert_eq!(s, 200, "{b}");
        let ids: Vec<u64> = b["results"].as_array().unwrap().iter().map(|d| d["id"].as_u64().unwrap()).collect();
        assert!(ids.len() > 40 && ids.len() < 120, "node {i} holds {} documents", ids.len());
        holder.extend(ids.into_iter().map(|id| (id, i)));
    }
    assert_eq!(holder.len() as u64, DOCS);
    let ref_nodes: BTreeSet<usize> = REFERENCES.iter().map(|r| holder[r]).collect();
    assert_eq!(ref_nodes.len(), 3, "references on every node: {ref_nodes:?}");

    let mut failures: Vec<String> = Vec::new();
    let mut checks = compare_similar(&one, &miroir, Some(&holder), &mut failures).await;

    // Bad requests: the same status and body.
    let posts = vec![
        json!({"embedder": "emb"}),
        json!({"id": 1}),
        json!({"id": 99999, "embedder": "emb"}),
        json!({"id": "a b", "embedder": "emb"}),
        json!({"id": ["x"], "embedder": "emb"}),
        json!({"id": 1.5, "embedder": "emb"}),
        json!({"id": 1, "embedder": "nope"}),
        json!({"id": 99999, "embedder": "nope"}),
        json!({"id": "a b", "embedder": "nope"}),
        json!({"id": 1, "embedder": 42}),
        json!({"id": 1, "embedder": "emb", "filter": "genre = "}),
        json!({"id": 1, "embedder": "emb", "filter": "title & Glass"}),
        json!({"id": 1, "embedder": "emb", "filter": ["genre = rock", "year >"]}),
        json!({"id": 1, "embedder": "emb", "filter": true}),
        json!({"id": 1, "embedder": "emb", "filter": "title = x"}),
        json!({"id": 99999, "embedder": "emb", "filter": "title = x"}),
        json!({"id": 99999, "embedder": "emb", "filter": "genre = "}),
        json!({"id": 1, "embedder": "emb", "limit": -1}),
        json!({"id": 1, "embedder": "emb", "limit": "x"}),
        json!({"id": 1, "embedder": "emb", "offset": "doggo"}),
        json!({"id": 1, "embedder": "emb", "rankingScoreThreshold": 1.5}),
        json!({"id": 1, "embedder": "emb", "rankingScoreThreshold": "x"}),
        json!({"id": 1, "embedder": "emb", "retrieveVectors": "x"}),
        json!({"id": 1, "embedder": "emb", "attributesToRetrieve": "title"}),
        json!({"id": 1, "embedder": "emb", "foo": 1}),
        json!({"id": 1, "embedder": "emb", "showRankingScore": 1}),
        json!("not an object"),
    ];
    for body in &posts {
        let (s1, a) = one.post("/indexes/tracks/similar", body).await;
        let (s2, b) = miroir.post("/indexes/tracks/similar", body).await;
        checks += 1;
        if s1 != s2 || a != b || !(400..500).contains(&s1) {
            failures.push(format!("POST {body}: {s1} {a} vs {s2} {b}"));
        }
    }
    for (path, body) in [("/indexes/nope/similar", json!({"id": 1, "embedder": "emb"})), ("/indexes/bad%20uid/similar", json!({"id": 1, "embedder": "emb"}))] {
        let (s1, a) = one.post(path, &body).await;
        let (s2, b) = miroir.post(path, &body).await;
        checks += 1;
        if s1 != s2 || a != b {
            failures.push(format!("POST {path}: {s1} {a} vs {s2} {b}"));
        }
    }
    for query in [
        "embedder=emb",
        "id=1",
        "id=99999&embedder=emb",
        "id=a%20b&embedder=emb",
        "id=1&embedder=nope",
        "id=1&embedder=emb&limit=x",
        "id=1&embedder=emb&offset=-2",
        "id=1&embedder=emb&rankingScoreThreshold=2",
        "id=1&embedder=emb&rankingScoreThreshold=abc",
        "id=1&embedder=emb&retrieveVectors=maybe",
        "id=1&embedder=emb&showRankingScoreDetails=1",
        "id=1&embedder=emb&nope=1",
        "id=1&embedder=emb&filter=genre%20%3D",
        "id=1&embedder=emb&filter=title%20%3D%20x",
        "retrieveVectors=doggo",
    ] {
        let url = format!("/indexes/tracks/similar?{query}");
        let (s1, a) = one.get(&url).await;
        let (s2, b) = miroir.get(&url).await;
        checks += 1;
        if s1 != s2 || a != b || !(400..500).contains(&s1) {
            failures.push(format!("GET {url}: {s1} {a} vs {s2} {b}"));
        }
    }

    // Vector search, through Miroir as on one node.
    let searches = vec![
        json!({"vector": vector(3), "hybrid": {"embedder": "emb", "semanticRatio": 1.0}, "showRankingScoreDetails": true}),
        json!({"vector": vector(3), "hybrid": {"embedder": "emb"}, "showRankingScore": true, "showRankingScoreDetails": true, "limit": 50}),
        json!({"vector": vector(90), "hybrid": {"embedder": "emb", "semanticRatio": 1.0}, "filter": "genre = folk", "offset": 3, "limit": 8, "showRankingScoreDetails": true}),
        json!({"vector": vector(90), "hybrid": {"embedder": "emb", "semanticRatio": 1.0}, "retrieveVectors": true, "attributesToRetrieve": ["title"], "showRankingScoreDetails": true, "limit": 5}),
        json!({"vector": vector(7), "hybrid": {"embedder": "emb", "semanticRatio": 1.0}, "showRankingScoreDetails": true, "limit": 240}),
        json!({"vector": vector(12), "hybrid": {"embedder": "emb", "semanticRatio": 1.0}, "facets": ["genre"], "showRankingScoreDetails": true, "limit": 4}),
        json!({"vector": vector(12), "hybrid": {"embedder": "emb", "semanticRatio": 1.0}, "page": 2, "hitsPerPage": 6, "showRankingScoreDetails": true}),
    ];
    for body in &searches {
        let limit = body.get("limit").and_then(Value::as_u64).or(body.get("hitsPerPage").and_then(Value::as_u64)).unwrap_or(20);
        let offset = body.get("offset").and_then(Value::as_u64).unwrap_or(if body.get("page").is_some() { 6 } else { 0 });
        let (s1, a) = one.post("/indexes/tracks/search", body).await;
        let (s2, b) = miroir.post("/indexes/tracks/search", body).await;
        checks += 1;
        let details = |h: &Value| h["_rankingScoreDetails"].to_string();
        if (s1, s2) != (200, 200) {
            failures.push(format!("search {body}: status {s1} vs {s2}: {a} / {b}"));
        } else if let Err(e) = compare(&a, &b, limit, offset, &details) {
            failures.push(format!("search {body}: {e}"));
        }
    }
    for body in [
        json!({"vector": [1.0, 2.0], "hybrid": {"embedder": "emb", "semanticRatio": 1.0}}),
        json!({"vector": vector(3), "hybrid": {"embedder": "nope", "semanticRatio": 1.0}}),
        json!({"vector": vector(3)}),
    ] {
        let (s1, a) = one.post("/indexes/tracks/search", &body).await;
        let (s2, b) = miroir.post("/indexes/tracks/search", &body).await;
        checks += 1;
        if s1 != s2 || a != b || !(400..500).contains(&s1) {
            failures.push(format!("search {body}: {s1} {a} vs {s2} {b}"));
        }
    }

    // Documents with their vectors.
    for path in ["/indexes/tracks/documents/5?retrieveVectors=true", "/indexes/tracks/documents/50?retrieveVectors=true", "/indexes/tracks/documents/9"] {
        let (s1, a) = one.get(path).await;
        let (s2, b) = miroir.get(path).await;
        checks += 1;
        if (s1, &a) != (s2, &b) {
            failures.push(format!("GET {path}: {s1} {a} vs {s2} {b}"));
        }
    }

    assert!(failures.is_empty(), "{} of {checks} checks failed:\n{}", failures.len(), failures.join("\n"));
    drop(single);
}

/// With two copies of every shard on three nodes, each node answers for part of what it
/// holds: the reference's holder runs `/similar` restricted to its shards of the covering set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similar_documents_with_replicas_answer_as_one_node() {
    let single = Node::start("single").await;
    let one = Http { base: single.url.clone(), key: Some(NODE_KEY.to_string()) };
    let cluster = Cluster::start(Spec { shards: 16, replication_factor: 2, groups: vec![3] }).await;
    let miroir = cluster.http();
    load(&one).await;
    load(&miroir).await;
    let mut failures = Vec::new();
    let checks = compare_similar(&one, &miroir, None, &mut failures).await;
    assert!(failures.is_empty(), "{} of {checks} checks failed:\n{}", failures.len(), failures.join("\n"));
    drop(single);
}

/// A tenant token's filter restricts the documents `/similar` returns, and a reference the
/// token cannot see is not found, as Meilisearch's `perform_similar` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_tokens_restrict_similar_documents() {
    let cluster = Cluster::start(Spec::rf1_3_nodes()).await;
    let http = cluster.http();
    load(&http).await;
    let (s, b) = http.post("/keys", &json!({"actions": ["search"], "indexes": ["*"], "expiresAt": null})).await;
    assert_eq!(s, 201, "{b}");
    let (uid, key) = (b["uid"].as_str().unwrap().to_string(), b["key"].as_str().unwrap().to_string());
    let sdk = meilisearch_sdk::client::Client::new("http://unused", Some("unused")).unwrap();
    let token = sdk.generate_tenant_token(uid, json!({"tracks": {"filter": "genre = rock"}}), Some(&key), None).unwrap();
    let tenant = http.with_key(&token);
    // 42 is rock (42 % 4 == 2 is folk: pick the rock references).
    let rock: Vec<u64> = REFERENCES.iter().copied().filter(|r| r % 4 == 0).collect();
    let other: Vec<u64> = REFERENCES.iter().copied().filter(|r| r % 4 != 0).collect();
    assert!(!rock.is_empty() && !other.is_empty());
    for r in rock {
        let (s, a) = tenant.post("/indexes/tracks/similar", &json!({"id": r, "embedder": "emb", "showRankingScore": true, "filter": "year > 1990"})).await;
        assert_eq!(s, 200, "{a}");
        let (_, b) = http
            .post("/indexes/tracks/similar", &json!({"id": r, "embedder": "emb", "showRankingScore": true, "filter": ["year > 1990", "genre = rock"]}))
            .await;
        let strip = |v: &Value| {
            let mut m: Map<String, Value> = v.as_object().unwrap().clone();
            m.remove("processingTimeMs");
            Value::Object(m)
        };
        assert_eq!(strip(&a), strip(&b));
        assert!(a["hits"].as_array().unwrap().iter().all(|h| h["genre"] == "rock"), "{a}");
        let (s, g) = tenant.get(&format!("/indexes/tracks/similar?id={r}&embedder=emb&showRankingScore=true&filter=year%20%3E%201990")).await;
        assert_eq!(s, 200, "{g}");
        assert_eq!(strip(&g), strip(&b));
    }
    for r in other {
        let (s, a) = tenant.post("/indexes/tracks/similar", &json!({"id": r, "embedder": "emb"})).await;
        assert_eq!(s, 400, "{a}");
        assert_eq!(a["code"], "not_found_similar_id", "{a}");
        assert_eq!(a["message"], format!("Document `{r}` not found."));
    }
}

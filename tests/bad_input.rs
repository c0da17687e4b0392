//! Every bad input is refused as one Meilisearch refuses it. Thousands of mutations of valid
//! requests (wrong types, negative and huge numbers, deep nesting, invalid UTF-8, truncated
//! JSON, unknown and reserved fields, wrong content types, bad query parameters) are sent
//! through Miroir and to a reference node holding the same index with the same settings (one
//! Meilisearch holding all the data); the answers must have the same status, the same error
//! code and the same message. No mutation may make Miroir panic or answer 5xx.

mod common;

use std::collections::BTreeMap;

use common::raw_http::send_bytes;
use common::{Cluster, Node, Spec, MASTER_KEY, NODE_KEY};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// One request as sent on the wire.
#[derive(Debug, Clone)]
struct Case {
    what: String,
    method: &'static str,
    target: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
}

fn json_case(what: String, method: &'static str, target: &str, body: &Value) -> Case {
    Case { what, method, target: target.to_string(), content_type: Some("application/json"), body: serde_json::to_vec(body).unwrap() }
}

/// Values of every JSON kind, and the edge values of numbers.
fn bad_values() -> Vec<Value> {
    let mut deep = json!("x");
    for _ in 0..40 {
        deep = json!([deep]);
    }
    vec![
        json!("abc"),
        json!(""),
        json!(-1),
        json!(0),
        json!(1.5),
        json!(1e308),
        json!(-1e-9),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(true),
        json!(null),
        json!([]),
        json!(["a", 1]),
        json!({}),
        json!({"a": 1}),
        json!(" "),
        json!("*"),
        json!([[]]),
        deep,
    ]
}

/// The valid requests the mutations start from.
fn bases() -> Vec<(&'static str, String, Value)> {
    vec![
        (
            "POST",
            "/indexes/movies/search".into(),
            json!({"q": "galaxy", "offset": 0, "limit": 5, "page": 1, "hitsPerPage": 3, "filter": "genre = Drama", "sort": ["year:desc"],
                   "facets": ["genre"], "attributesToRetrieve": ["title"], "attributesToHighlight": ["title"], "attributesToCrop": ["title"],
                   "cropLength": 5, "cropMarker": "…", "highlightPreTag": "<b>", "highlightPostTag": "</b>", "showMatchesPosition": true,
                   "matchingStrategy": "all", "showRankingScore": true, "showRankingScoreDetails": true, "rankingScoreThreshold": 0.1,
                   "distinct": "genre", "attributesToSearchOn": ["title"], "retrieveVectors": false}),
        ),
        ("POST", "/indexes/movies/facet-search".into(), json!({"facetName": "genre", "facetQuery": "dr", "q": "", "filter": "year > 1990", "exhaustiveFacetCount": true, "matchingStrategy": "last"})),
        (
            "POST",
            "/multi-search".into(),
            json!({"queries": [{"indexUid": "movies", "q": "a", "limit": 2, "filter": "genre = Drama"}, {"indexUid": "movies", "q": "b", "offset": 1, "showRankingScore": true}]}),
        ),
        (
            "POST",
            "/multi-search".into(),
            json!({"federation": {"limit": 5, "offset": 0, "facetsByIndex": {"movies": ["genre"]}, "mergeFacets": {"maxValuesPerFacet": 10}},
                   "queries": [{"indexUid": "movies", "q": "a", "federationOptions": {"weight": 1.5}}, {"indexUid": "movies", "q": "b", "federationOptions": {"weight": 0.5}}]}),
        ),
        ("POST", "/indexes/movies/documents/fetch".into(), json!({"offset": 0, "limit": 3, "fields": ["title"], "filter": "genre = Drama", "retrieveVectors": false})),
    ]
}

/// GET routes and their valid parameters.
fn get_bases() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
    vec![
        (
            "/indexes/movies/search",
            vec![("q", "galaxy"), ("limit", "5"), ("offset", "1"), ("filter", "genre = Drama"), ("sort", "year:desc"), ("facets", "genre"),
                 ("attributesToRetrieve", "title,id"), ("showRankingScore", "true"), ("matchingStrategy", "all"), ("cropLength", "4"),
                 ("rankingScoreThreshold", "0.2"), ("page", "1"), ("hitsPerPage", "2")],
        ),
        ("/indexes/movies/documents", vec![("limit", "3"), ("offset", "1"), ("fields", "title"), ("filter", "genre = Drama"), ("retrieveVectors", "false")]),
        ("/indexes", vec![("limit", "3"), ("offset", "0")]),
    ]
}

const BAD_PARAM_VALUES: &[&str] = &["abc", "-1", "", "1.5", "1e308", "true", "*", "%FF", "99999999999999999999", "a,b", "%00"];

/// Flips the value at one JSON path of `v` (object keys and array indexes).
fn mutate_at(v: &Value, path: &[String], new: &Value) -> Value {
    let mut out = v.clone();
    let mut cur = &mut out;
    for p in path {
        cur = match cur {
            Value::Object(m) => m.get_mut(p).unwrap(),
            Value::Array(a) => &mut a[p.parse::<usize>().unwrap()],
            _ => unreachable!(),
        };
    }
    *cur = new.clone();
    out
}

/// Every path to a value inside `v` (not the root).
fn paths(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                prefix.push(k.clone());
                out.push(prefix.clone());
                paths(x, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                prefix.push(i.to_string());
                out.push(prefix.clone());
                paths(x, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn cases() -> Vec<Case> {
    let mut rng = StdRng::seed_from_u64(0x6d69726f6972);
    let mut out = Vec::new();
    for (method, target, base) in bases() {
        out.push(json_case(format!("{target} valid"), method, &target, &base));
        let mut all = Vec::new();
        paths(&base, &mut Vec::new(), &mut all);
        // every value replaced by every kind of bad value
        for p in &all {
            for bad in bad_values() {
                out.push(json_case(format!("{target} {p:?} = {bad}"), method, &target, &mutate_at(&base, p, &bad)));
            }
        }
        // unknown, misspelt and reserved fields, at the root and in every object inside
        for p in std::iter::once(Vec::new()).chain(all.iter().cloned()) {
            let at = p.iter().fold(&base, |v, k| match v {
                Value::Object(m) => &m[k],
                Value::Array(a) => &a[k.parse::<usize>().unwrap()],
                _ => v,
            });
            if let Value::Object(m) = at {
                let mut names: Vec<String> = vec!["doggo".into(), "_miroir_shard".into(), "_miroir".into(), "".into()];
                if let Some(k) = m.keys().next() {
                    names.push(format!("{k}s"));
                }
                for name in names {
                    let mut obj = m.clone();
                    obj.insert(name.clone(), json!(1));
                    let v = if p.is_empty() { Value::Object(obj) } else { mutate_at(&base, &p, &Value::Object(obj)) };
                    out.push(json_case(format!("{target} {p:?} + field {name:?}"), method, &target, &v));
                }
            }
        }
        // the root of another kind
        for root in [json!([]), json!("x"), json!(1), json!(null), json!(true)] {
            out.push(json_case(format!("{target} root {root}"), method, &target, &root));
        }
        // truncated JSON and invalid UTF-8
        let text = serde_json::to_vec(&base).unwrap();
        for _ in 0..25 {
            let cut = rng.random_range(0..text.len());
            out.push(Case { what: format!("{target} truncated at {cut}"), method, target: target.clone(), content_type: Some("application/json"), body: text[..cut].to_vec() });
            let mut garbled = text.clone();
            let at = rng.random_range(0..garbled.len());
            garbled.insert(at, 0xFF);
            out.push(Case { what: format!("{target} 0xFF at {at}"), method, target: target.clone(), content_type: Some("application/json"), body: garbled });
        }
        // deep nesting past serde_json's recursion limit
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        out.push(Case { what: format!("{target} deep"), method, target: target.clone(), content_type: Some("application/json"), body: format!("{{\"filter\": {deep}}}").into_bytes() });
        // content types and empty bodies
        for (ct, body) in [(None, text.clone()), (Some("text/plain"), text.clone()), (Some("application/x-ndjson"), text.clone()), (Some("application/json; charset=utf-8"), text.clone()),
                           (Some("application/vnd.api+json"), text.clone()), (Some("application/json"), Vec::new()), (Some("application/json"), b"  \n".to_vec())] {
            out.push(Case { what: format!("{target} content type {ct:?}, {} bytes", body.len()), method, target: target.clone(), content_type: ct, body });
        }
    }
    for (route, params) in get_bases() {
        let q = |ps: &[(String, String)]| -> String { ps.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&") };
        let base: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.replace(' ', "%20"))).collect();
        out.push(Case { what: format!("GET {route} valid"), method: "GET", target: format!("{route}?{}", q(&base)), content_type: None, body: Vec::new() });
        for i in 0..base.len() {
            for bad in BAD_PARAM_VALUES {
                let mut ps = base.clone();
                ps[i].1 = bad.to_string();
                out.push(Case { what: format!("GET {route} {}={bad}", ps[i].0), method: "GET", target: format!("{route}?{}", q(&ps)), content_type: None, body: Vec::new() });
            }
        }
        for extra in ["doggo=1", "limits=2", "_miroir_shard=1", "%FF=1", "=1"] {
            out.push(Case { what: format!("GET {route} + {extra}"), method: "GET", target: format!("{route}?{}&{extra}", q(&base)), content_type: None, body: Vec::new() });
        }
    }
    // task queries
    for param in ["uids", "statuses", "types", "indexUids", "limit", "from", "reverse", "canceledBy", "batchUids", "afterEnqueuedAt", "beforeEnqueuedAt", "afterStartedAt", "beforeStartedAt", "afterFinishedAt", "beforeFinishedAt", "doggo"] {
        for bad in BAD_PARAM_VALUES.iter().chain(&["1,2", "succeeded", "documentAdditionOrUpdate", "2026-01-01", "movies"]) {
            out.push(Case { what: format!("GET /tasks {param}={bad}"), method: "GET", target: format!("/tasks?{param}={bad}"), content_type: None, body: Vec::new() });
        }
    }
    out
}

/// What is compared: status, code and message (`None` where the answer is a success).
fn outcome(status: u16, body: &Value) -> (u16, Option<Value>, Option<Value>) {
    if status < 400 {
        (status, None, None)
    } else {
        (status, body.get("code").cloned(), body.get("message").cloned())
    }
}

async fn setup(base: &str, key: &str) {
    let send = |m: &'static str, t: &'static str, b: Value| async move { send_bytes(base, Some(key), m, t, Some("application/json"), &serde_json::to_vec(&b).unwrap()).await };
    let docs: Vec<Value> = (0..40).map(|i| {
        let (word, genre) = (["galaxy", "river", "dream"][i % 3], ["Drama", "Comedy"][i % 2]);
        json!({"id": i, "title": format!("movie {i} {word}"), "genre": genre, "year": 1980 + i})
    }).collect();
    let (s, t) = send("POST", "/indexes/movies/documents?primaryKey=id", json!(docs)).await;
    assert_eq!(s, 202, "{t}");
    let (s, t2) = send("PATCH", "/indexes/movies/settings", json!({"filterableAttributes": ["genre", "year"], "sortableAttributes": ["year"]})).await;
    assert_eq!(s, 202, "{t2}");
    for uid in [t["taskUid"].as_u64().unwrap(), t2["taskUid"].as_u64().unwrap()] {
        for _ in 0..2000 {
            let (_, task) = send_bytes(base, Some(key), "GET", &format!("/tasks/{uid}"), None, b"").await;
            if task["status"] == "succeeded" {
                break;
            }
            assert_ne!(task["status"], "failed", "{task}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_refused_as_one_meilisearch_refuses_them() {
    let cluster = Cluster::start(Spec { shards: 4, replication_factor: 1, groups: vec![2] }).await;
    let reference = Node::start_with_key("reference", Some(NODE_KEY)).await;
    setup(&cluster.url(), MASTER_KEY).await;
    setup(&reference.url, NODE_KEY).await;

    let cases = cases();
    let (mut refused, mut accepted) = (0, 0);
    let mut server_errors: Vec<String> = Vec::new();
    let mut mismatches: BTreeMap<String, String> = BTreeMap::new();
    for c in &cases {
        let (ms, mb) = send_bytes(&cluster.url(), Some(MASTER_KEY), c.method, &c.target, c.content_type, &c.body).await;
        if ms >= 500 {
            server_errors.push(format!("{}: Miroir answered {ms} {mb}", c.what));
        }
        let (ns, nb) = send_bytes(&reference.url, Some(NODE_KEY), c.method, &c.target, c.content_type, &c.body).await;
        if ns >= 500 {
            continue; // the reference node's own failure says nothing about Miroir
        }
        if ns >= 400 {
            refused += 1;
        } else {
            accepted += 1;
        }
        let (m, n) = (outcome(ms, &mb), outcome(ns, &nb));
        if m != n {
            mismatches.insert(c.what.clone(), format!("Miroir {ms} {mb} / node {ns} {nb}"));
        }
    }
    // Straight to stderr (past the harness's capture), so every run shows the counts.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "bad-input suite: {} cases, {refused} refused and {accepted} accepted by the reference node, {} mismatches",
        cases.len(),
        mismatches.len()
    );
    if let Ok(path) = std::env::var("MIROIR_BAD_INPUT_REPORT") {
        let all: Vec<String> = mismatches.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        std::fs::write(path, [server_errors.clone(), all].concat().join("\n")).unwrap();
    }
    assert!(server_errors.is_empty(), "{} answers were 5xx:\n{}", server_errors.len(), server_errors.join("\n"));
    assert!(cases.len() >= 2000, "only {} cases", cases.len());
    assert!(refused >= 1000, "the mutations must mostly be refusals: {refused}");
    let report: Vec<String> = mismatches.iter().take(40).map(|(k, v)| format!("{k}: {v}")).collect();
    assert!(mismatches.is_empty(), "{} mismatches (first 40):\n{}", mismatches.len(), report.join("\n"));
}

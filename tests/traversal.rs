//! Nothing but the route a client names reaches a node. Index uids, document ids, setting
//! names and task uids carrying `..`, `%2F`, `%2e%2e`, double encoding, `?`, `#` and NUL are
//! sent through Miroir to every route (raw request targets, no client-side normalisation); a
//! recording proxy in front of the node proves which node routes were called, and the node's
//! own task list that nothing else happened there. Each answer is compared with what the node
//! itself answers to the same request.

mod common;

use common::raw_http::send;
use common::recorder::Recorder;
use common::{Cluster, Spec, NODE_KEY, MASTER_KEY};
use serde_json::{json, Value};

/// Path segments as a client writes them in the URL.
const BAD_SEGMENTS: &[&str] = &[
    "..",
    "%2e%2e",
    ".%2E",
    "..%2Fkeys",
    "..%2F..%2Fkeys",
    "%2e%2e%2Fkeys",
    "%252e%252e%252Fkeys",
    "movies%2F..%2F..%2Fkeys",
    "movies%2Fdocuments",
    "movies%3Fx%3D1",
    "movies%23frag",
    "movies%00",
    "%00",
    "..%2Ftasks%3Fstatuses%3Dsucceeded",
    "%2F",
    "%C3%A9",
    "%FF",
];

/// (method, route with `{}` for the bad segment, body).
fn routes() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        ("GET", "/indexes/{}", None),
        ("PATCH", "/indexes/{}", Some(json!({"primaryKey": "id"}))),
        ("DELETE", "/indexes/{}", None),
        ("GET", "/indexes/{}/settings", None),
        ("PATCH", "/indexes/{}/settings", Some(json!({"stopWords": ["a"]}))),
        ("DELETE", "/indexes/{}/settings", None),
        ("GET", "/indexes/{}/settings/stop-words", None),
        ("PUT", "/indexes/{}/settings/stop-words", Some(json!(["a"]))),
        ("DELETE", "/indexes/{}/settings/stop-words", None),
        ("GET", "/indexes/movies/settings/{}", None),
        ("PUT", "/indexes/movies/settings/{}", Some(json!(["a"]))),
        ("DELETE", "/indexes/movies/settings/{}", None),
        ("GET", "/indexes/{}/documents", None),
        ("POST", "/indexes/{}/documents", Some(json!([{"id": 1}]))),
        ("PUT", "/indexes/{}/documents", Some(json!([{"id": 1}]))),
        ("DELETE", "/indexes/{}/documents", None),
        ("POST", "/indexes/{}/documents/fetch", Some(json!({}))),
        ("POST", "/indexes/{}/documents/delete-batch", Some(json!([1]))),
        ("POST", "/indexes/{}/documents/delete", Some(json!({"filter": "id = 1"}))),
        ("GET", "/indexes/{}/documents/1", None),
        ("DELETE", "/indexes/{}/documents/1", None),
        ("GET", "/indexes/movies/documents/{}", None),
        ("DELETE", "/indexes/movies/documents/{}", None),
        ("GET", "/indexes/{}/search", None),
        ("GET", "/indexes/{}/search?q=a", None),
        ("POST", "/indexes/{}/search", Some(json!({"q": "a"}))),
        ("POST", "/indexes/{}/facet-search", Some(json!({"facetName": "genre"}))),
        ("GET", "/indexes/{}/stats", None),
        ("POST", "/indexes/{}/fields", Some(json!({}))),
        ("GET", "/tasks/{}", None),
    ]
}

/// A node route Miroir may call while serving these requests: the fixed routes, and
/// routes of index `movies` (the only valid index named), with valid ids only.
fn allowed(method: &str, target: &str) -> bool {
    let path = target.split('?').next().unwrap_or("");
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    let id_ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match segs.as_slice() {
        ["health"] | ["version"] | ["stats"] | ["multi-search"] | ["tasks"] | ["indexes"] => true,
        ["tasks", n] => n.bytes().all(|b| b.is_ascii_digit()),
        ["indexes", "movies"] => method != "DELETE",
        ["indexes", "movies", "settings"] | ["indexes", "movies", "stats"] | ["indexes", "movies", "search"] | ["indexes", "movies", "facet-search"] => true,
        ["indexes", "movies", "fields"] => method == "POST",
        ["indexes", "movies", "settings", s] => miroir::model::SettingRoute::from_segment(s).is_some(),
        ["indexes", "movies", "documents"] => method == "GET" || method == "POST" && target.contains("primaryKey="),
        ["indexes", "movies", "documents", "fetch"] | ["indexes", "movies", "documents", "delete-batch"] => method == "POST",
        ["indexes", "movies", "documents", id] => method == "GET" && id_ok(id),
        _ => false,
    }
}

#[tokio::test]
async fn only_the_named_route_reaches_a_node() {
    let cluster = Cluster::start_addressed(Spec { shards: 4, replication_factor: 1, groups: vec![1] }, common::test_options(), |n| {
        let url = n.url.clone();
        async move { Recorder::start(&url).await.url }
    })
    .await;
    let recorder_url = cluster.topology.nodes[0].address.clone();
    let node = cluster.nodes[0].url.clone();
    let miroir = cluster.url();

    // One real index with documents, set up through Miroir.
    let (s, t) = cluster.http().post("/indexes/movies/documents?primaryKey=id", &json!([{"id": 1, "genre": "Drama"}, {"id": 2, "genre": "Comedy"}])).await;
    assert_eq!(s, 202, "{t}");
    let t = cluster.wait_task(t["taskUid"].as_u64().unwrap()).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let (_, node_keys_before) = send(&node, Some(NODE_KEY), "GET", "/keys", None).await;
    let (_, node_tasks_before) = send(&node, Some(NODE_KEY), "GET", "/tasks?limit=1000", None).await;

    // The recorder's own log of what Miroir sent from here on.
    let recorder = recorder_for(&recorder_url);
    let _ = recorder.take();

    let mut compared = 0;
    for (method, route, body) in routes() {
        for bad in BAD_SEGMENTS {
            let target = route.replace("{}", bad);
            let (ms, mb) = send(&miroir, Some(MASTER_KEY), method, &target, body.as_ref()).await;
            assert!(ms < 500, "{method} {target} through Miroir answered {ms}: {mb}");
            let (ns, nb) = send(&node, Some(NODE_KEY), method, &target, body.as_ref()).await;
            // What a node does to its own data is not the comparison: only requests it refuses
            // are compared (a deletion of an id nobody has is accepted by both).
            if ns >= 400 {
                assert_eq!(ms, ns, "{method} {target}: Miroir {mb} vs node {nb}");
                if let Some(code) = nb.get("code") {
                    assert_eq!(mb.get("code"), Some(code), "{method} {target}: Miroir {mb} vs node {nb}");
                }
                compared += 1;
            } else {
                assert!(ms < 300, "{method} {target}: node accepted ({ns} {nb}), Miroir answered {ms} {mb}");
            }
        }
    }
    // Multi-search names its indexes in the body.
    for bad in ["../keys", "movies/../../keys", "..", "movies?x=1", "movies#a", "a\u{0}b"] {
        let body = json!({"queries": [{"indexUid": bad, "q": "a"}]});
        let (ms, mb) = send(&miroir, Some(MASTER_KEY), "POST", "/multi-search", Some(&body)).await;
        let (ns, nb) = send(&node, Some(NODE_KEY), "POST", "/multi-search", Some(&body)).await;
        assert_eq!((ms, &mb["code"], &mb["message"]), (ns, &nb["code"], &nb["message"]), "multi-search {bad:?}");
        compared += 1;
    }
    assert!(compared > 200, "only {compared} refusals compared");

    // What reached the node: only the routes the requests named, for the one valid index.
    let seen = recorder.take();
    assert!(!seen.is_empty(), "the recorder saw Miroir's calls");
    let bad: Vec<&(String, String)> = seen.iter().filter(|(m, t)| !allowed(m, t)).collect();
    assert!(bad.is_empty(), "node routes no client named: {bad:?}");
    assert!(seen.iter().all(|(_, t)| !t.contains("keys") && !t.contains("%2F") && !t.contains("..")), "{seen:?}");

    // And on the node: its keys are as they were, and the only tasks enqueued since the setup
    // are deletions of ids in `movies` (requests for such ids, sent by the test to the node
    // directly and through Miroir, are accepted by both).
    let (_, node_keys_after) = send(&node, Some(NODE_KEY), "GET", "/keys", None).await;
    assert_eq!(node_keys_before["total"], node_keys_after["total"]);
    let uids = |v: &Value| -> Vec<u64> { v["results"].as_array().unwrap().iter().filter_map(|t| t["uid"].as_u64()).collect() };
    let before = uids(&node_tasks_before);
    let (_, tasks) = send(&node, Some(NODE_KEY), "GET", "/tasks?limit=1000", None).await;
    for t in tasks["results"].as_array().unwrap().iter().filter(|t| !before.contains(&t["uid"].as_u64().unwrap())) {
        assert!(t["type"] == "documentDeletion" && t["indexUid"] == "movies", "unexpected node task {t}");
    }
    let (_, stats) = send(&node, Some(NODE_KEY), "GET", "/indexes/movies/stats", None).await;
    assert_eq!(stats["numberOfDocuments"], 2, "the documents are still there: {stats}");
}

/// The recorder registered at `url` (the harness started it in the address closure).
fn recorder_for(url: &str) -> Recorder {
    Recorder::registered(url)
}

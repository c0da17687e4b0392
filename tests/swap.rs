//! `POST /swap-indexes` through Miroir: swaps and renames answered like one Meilisearch (task,
//! details, history, every validation error compared with a plain node), atomic for readers
//! (searches running during repeated swaps never see the two indexes mixed), the nodes holding
//! exactly what was acknowledged afterwards, and a node killed in the middle of a swap caught
//! up (rebuilt from its replicas) before it answers reads again.

mod common;
#[path = "common/store_fixtures.rs"]
mod store_fixtures;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::{Cluster, Http, Node, Spec, NODE_KEY};
use reqwest::Method;
use serde_json::{json, Value};

fn dataset(side: &str, n: u64) -> Value {
    Value::Array((0..n).map(|i| json!({"id": i, "side": side, "title": format!("{side} {i}")})).collect())
}

async fn write(http: &Http, index: &str, docs: &Value) -> u64 {
    let (s, _, b) = http.send_json(Method::POST, &format!("/indexes/{index}/documents?primaryKey=id"), docs).await;
    assert_eq!(s, 202, "{b}");
    let t = http.wait_task(b["taskUid"].as_u64().unwrap()).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    t["uid"].as_u64().unwrap()
}

async fn swap(http: &Http, body: &Value) -> Value {
    let (s, b) = http.post("/swap-indexes", body).await;
    assert_eq!(s, 202, "{b}");
    let keys: Vec<&String> = b.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["taskUid", "indexUid", "status", "type", "enqueuedAt"], "{b}");
    assert_eq!((&b["indexUid"], &b["status"], &b["type"]), (&json!(null), &json!("enqueued"), &json!("indexSwap")), "{b}");
    http.wait_task(b["taskUid"].as_u64().unwrap()).await
}

/// The side every hit of `index` has, with the number of hits; panics on a mixed answer.
async fn side_of(http: &Http, index: &str) -> (String, usize) {
    let (s, b) = http.post(&format!("/indexes/{index}/search"), &json!({"limit": 1000})).await;
    assert_eq!(s, 200, "{b}");
    let sides: BTreeSet<&str> = b["hits"].as_array().unwrap().iter().map(|h| h["side"].as_str().unwrap()).collect();
    assert_eq!(sides.len(), 1, "{index}: mixed answer {b}");
    (sides.first().unwrap().to_string(), b["hits"].as_array().unwrap().len())
}

/// Readers searching both indexes (and both at once) until stopped; every answer must be
/// entirely one dataset (a 503 `miroir_swap_in_progress` would be allowed, but counted).
struct Readers {
    stop: Arc<AtomicBool>,
    reads: Arc<AtomicU64>,
    problems: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// A whole answer is one side with all its documents; a partial one (`degraded`: a node died
/// under it) may miss documents but never mixes sides.
fn check_answer(what: &str, status: u16, degraded: bool, body: &Value, sizes: &[(&str, usize)]) -> Option<String> {
    if status != 200 {
        return Some(format!("{what}: status {status}: {body}"));
    }
    let hits = body["hits"].as_array()?;
    let sides: BTreeSet<&str> = hits.iter().filter_map(|h| h["side"].as_str()).collect();
    if sides.len() != 1 {
        return Some(format!("{what}: mixed answer, sides {sides:?}"));
    }
    let side = *sides.first().unwrap();
    match sizes.iter().find(|(s, _)| *s == side) {
        Some((_, n)) if *n == hits.len() || (degraded && hits.len() < *n) => None,
        _ => Some(format!("{what}: {} hits of `{side}`", hits.len())),
    }
}

fn spawn_readers(http: &Http, indexes: &[&'static str], sizes: Vec<(&'static str, usize)>) -> Readers {
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let problems = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (k, index) in indexes.iter().enumerate() {
        let (http, stop, reads, problems, sizes, index) = (http.clone(), stop.clone(), reads.clone(), problems.clone(), sizes.clone(), *index);
        let other = indexes[(k + 1) % indexes.len()];
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let (s, h, b) = http.send_json(Method::POST, &format!("/indexes/{index}/search"), &json!({"limit": 1000})).await;
                if let Some(p) = check_answer(index, s, h.contains_key("x-miroir-degraded"), &b, &sizes) {
                    problems.lock().unwrap().push(p);
                }
                // Both indexes in one request: each result whole, and the two different.
                let (s, h, b) = http
                    .send_json(Method::POST, "/multi-search", &json!({"queries": [{"indexUid": index, "limit": 1000}, {"indexUid": other, "limit": 1000}]}))
                    .await;
                let degraded = h.contains_key("x-miroir-degraded");
                if s != 200 {
                    problems.lock().unwrap().push(format!("multi-search: status {s}: {b}"));
                } else {
                    let r = b["results"].as_array().unwrap();
                    let mut seen = BTreeSet::new();
                    for x in r {
                        match check_answer("multi-search", 200, degraded, x, &sizes) {
                            Some(p) => problems.lock().unwrap().push(p),
                            None => {
                                seen.insert(x["hits"][0]["side"].as_str().unwrap_or("").to_string());
                            }
                        }
                    }
                    if seen.len() != 2 {
                        problems.lock().unwrap().push(format!("multi-search: both indexes answered {seen:?}"));
                    }
                }
                reads.fetch_add(2, Ordering::SeqCst);
            }
        }));
    }
    Readers { stop, reads, problems, tasks }
}

impl Readers {
    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.unwrap();
        }
        (self.reads.load(Ordering::SeqCst), self.problems.lock().unwrap().clone())
    }
}

/// Every document of `index` on every node (directly), as (id, side); and each node holds
/// only one side.
async fn on_nodes(c: &Cluster, index: &str) -> BTreeSet<(u64, String)> {
    let mut all = BTreeSet::new();
    for i in 0..c.nodes.len() {
        let (s, b) = c.node_http(i).post(&format!("/indexes/{index}/documents/fetch"), &json!({"limit": 10000, "fields": ["id", "side"]})).await;
        assert_eq!(s, 200, "node {i}: {b}");
        let docs: Vec<(u64, String)> =
            b["results"].as_array().unwrap().iter().map(|d| (d["id"].as_u64().unwrap(), d["side"].as_str().unwrap().to_string())).collect();
        let sides: BTreeSet<&String> = docs.iter().map(|(_, s)| s).collect();
        assert!(sides.len() <= 1, "node {i} holds both sides in `{index}`: {sides:?}");
        all.extend(docs);
    }
    all
}

fn expected(side: &str, n: u64) -> BTreeSet<(u64, String)> {
    (0..n).map(|i| (i, side.to_string())).collect()
}

/// The task list as a client compares it: everything but uids and times.
async fn history(http: &Http, query: &str) -> Vec<Value> {
    let (s, b) = http.get(&format!("/tasks?{query}")).await;
    assert_eq!(s, 200, "{b}");
    b["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| json!({"indexUid": t["indexUid"], "status": t["status"], "type": t["type"], "details": t["details"], "error": t["error"]}))
        .collect()
}

fn spec() -> Spec {
    // Every shard on two of the three nodes: a node can die without a shard going missing.
    Spec { shards: 16, replication_factor: 2, groups: vec![3] }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swaps_and_renames_are_atomic_and_follow_meilisearch() {
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(std::env::var("MIROIR_TEST_LOG").unwrap_or_else(|_| "warn".into()))).with_test_writer().try_init();
    let mut single = Node::start("single").await;
    let plain = Http { base: single.url.clone(), key: Some(NODE_KEY.to_string()) };
    let mut c = Cluster::start(spec()).await;
    let miroir = c.http();

    // Same history on both: two indexes with distinguishable documents.
    for http in [&plain, &miroir] {
        write(http, "alpha", &dataset("a", 40)).await;
        write(http, "beta", &dataset("b", 25)).await;
    }

    // ---- repeated swaps while readers search both indexes
    let readers = spawn_readers(&miroir, &["alpha", "beta"], vec![("a", 40), ("b", 25)]);
    let mut alpha_side = "a";
    for round in 0..6 {
        let t = swap(&miroir, &json!([{"indexes": ["alpha", "beta"]}])).await;
        assert_eq!(t["status"], "succeeded", "{t}");
        assert_eq!(t["details"], json!({"swaps": [{"indexes": ["alpha", "beta"], "rename": false}]}), "{t}");
        assert_eq!(t["indexUid"], json!(null));
        alpha_side = if alpha_side == "a" { "b" } else { "a" };
        // Once the task is done, every read sees the swapped state.
        assert_eq!(side_of(&miroir, "alpha").await.0, alpha_side, "round {round}");
        // Keep the readers reading between swaps (no timing: a fixed number of our own reads).
        for _ in 0..5 {
            side_of(&miroir, "beta").await;
        }
    }
    let (reads, problems) = readers.finish().await;
    assert!(reads > 0, "the readers never ran");
    assert!(problems.is_empty(), "{} of {reads} reads saw a half-swapped state: {:?}", problems.len(), &problems[..problems.len().min(5)]);

    // The nodes hold exactly the acknowledged datasets, under the swapped names (even number
    // of swaps: back where they started).
    assert_eq!(alpha_side, "a");
    assert_eq!(on_nodes(&c, "alpha").await, expected("a", 40));
    assert_eq!(on_nodes(&c, "beta").await, expected("b", 25));

    // One swap on the plain node too, then one more on both: same history.
    for http in [&plain, &miroir] {
        let t = swap(http, &json!([{"indexes": ["alpha", "beta"]}])).await;
        assert_eq!(t["status"], "succeeded", "{t}");
    }
    let mut plain_history = history(&plain, "types=documentAdditionOrUpdate").await;
    assert_eq!(history(&miroir, "types=documentAdditionOrUpdate").await, plain_history);
    assert_eq!(plain_history.len(), 2);
    plain_history.clear();
    let q = "indexUids=alpha&types=documentAdditionOrUpdate";
    assert_eq!(history(&miroir, q).await, history(&plain, q).await);

    // ---- rename: alpha (now the `b` dataset) becomes gamma
    for http in [&plain, &miroir] {
        let t = swap(http, &json!([{"indexes": ["alpha", "gamma"], "rename": true}])).await;
        assert_eq!(t["status"], "succeeded", "{t}");
        assert_eq!(t["details"], json!({"swaps": [{"indexes": ["alpha", "gamma"], "rename": true}]}), "{t}");
        let (s, b) = http.get("/indexes/alpha").await;
        assert_eq!((s, &b["code"]), (404, &json!("index_not_found")), "{b}");
        let (s, b) = http.get("/indexes/gamma").await;
        assert_eq!((s, &b["uid"], &b["primaryKey"]), (200, &json!("gamma"), &json!("id")), "{b}");
    }
    assert_eq!(side_of(&miroir, "gamma").await, ("b".to_string(), 25));
    assert_eq!(on_nodes(&c, "gamma").await, expected("b", 25));
    let q = "indexUids=gamma&types=documentAdditionOrUpdate";
    assert_eq!(history(&miroir, q).await, history(&plain, q).await);
    // The latest swaps as each wrote them (earlier ones differ: Miroir swapped more often).
    assert_eq!(history(&miroir, "types=indexSwap&limit=2").await, history(&plain, "types=indexSwap&limit=2").await);
    // The settings Miroir keeps for the index followed it (the client sees the defaults).
    let (s1, a) = plain.get("/indexes/gamma/settings/faceting").await;
    let (s2, b) = miroir.get("/indexes/gamma/settings/faceting").await;
    assert_eq!((s1, &a), (s2, &b));

    // ---- every error as a plain node answers it
    let sync_errors = [
        json!("doggo"),
        json!(["doggo"]),
        json!({"indexes": ["a", "b"]}),
        json!([{"indexes": "doggo"}]),
        json!([{"indexes": ["doggo"]}]),
        json!([{"indexes": ["doggo", "crabo", "croco"]}]),
        json!([{"indexes": []}]),
        json!([{"indexes": ["doggo", "doggo"]}]),
        json!([{"indexes": ["doggo", "catto"]}, {"indexes": ["girafo", "doggo"]}]),
        json!([{"indexes": ["a", "b"]}, {"indexes": ["b", "a"]}]),
        json!([{"indexes": ["kefir", "intel"], "rename": "hello"}]),
        json!([{}]),
        json!([{"indexes": ["a", "b"], "renam": true}]),
        json!([{"indexes": ["a b", "c"]}]),
        json!([{"indexes": [1, "c"]}]),
    ];
    for body in &sync_errors {
        let (s1, a) = plain.post("/swap-indexes", body).await;
        let (s2, b) = miroir.post("/swap-indexes", body).await;
        assert_eq!((s1, &a), (s2, &b), "{body}");
        assert_eq!(s1, 400, "{body}: {a}");
    }
    for (ct, raw) in [(Some("application/json"), b"[".to_vec()), (Some("text/plain"), b"[]".to_vec()), (None, b"[]".to_vec())] {
        let (s1, _, a) = plain.request(Method::POST, "/swap-indexes", ct, Some(raw.clone())).await;
        let (s2, _, b) = miroir.request(Method::POST, "/swap-indexes", ct, Some(raw)).await;
        assert_eq!((s1, &a), (s2, &b), "{ct:?}");
    }
    // A key that does not reach both indexes of a pair: Meilisearch's 403, nothing swapped.
    let (s, k) = miroir.post("/keys", &json!({"actions": ["indexes.swap"], "indexes": ["gamma"], "expiresAt": null})).await;
    assert_eq!(s, 201, "{k}");
    let restricted = miroir.with_key(k["key"].as_str().unwrap());
    let (s, b) = restricted.post("/swap-indexes", &json!([{"indexes": ["gamma", "beta"]}])).await;
    assert_eq!(
        (s, &b),
        (403, &json!({"message": "The provided API key is invalid.", "code": "invalid_api_key", "type": "auth", "link": "https://docs.meilisearch.com/errors#invalid_api_key"}))
    );
    // Errors of the task itself (the request is accepted, the task fails), and the empty swap.
    let task_errors = [
        json!([{"indexes": ["gamma", "nope"]}]),
        json!([{"indexes": ["nope1", "nope2"]}, {"indexes": ["gamma", "nope3"], "rename": true}]),
        json!([{"indexes": ["gamma", "beta"], "rename": true}]),
        json!([{"indexes": ["gamma", "beta"], "rename": true}, {"indexes": ["nope", "nope2"], "rename": true}]),
        json!([]),
    ];
    for body in &task_errors {
        let a = swap(&plain, body).await;
        let b = swap(&miroir, body).await;
        for k in ["indexUid", "status", "type", "details", "error", "canceledBy"] {
            assert_eq!(a[k], b[k], "{body}: `{k}`: {a} vs {b}");
        }
    }
    // Nothing moved.
    assert_eq!(on_nodes(&c, "gamma").await, expected("b", 25));
    assert_eq!(on_nodes(&c, "beta").await, expected("a", 40));

    // ---- a node killed in the middle of a swap: it comes back and is caught up (rebuilt
    // from its replicas) before it serves reads; every answer meanwhile is whole.
    let readers = spawn_readers(&miroir, &["gamma", "beta"], vec![("a", 40), ("b", 25)]);
    let m2 = miroir.clone();
    let sent = tokio::spawn(async move { swap(&m2, &json!([{"indexes": ["gamma", "beta"]}])).await });
    c.nodes[2].kill().await;
    let t = sent.await.unwrap();
    assert_eq!(t["status"], "succeeded", "{t}");
    // The killed node did not apply the swap with the others as far as Miroir can tell: it
    // is not read from until it is caught up.
    assert!(!c.proxy.serves_reads(&c.nodes[2].id), "{:?}", c.proxy.node_sync());
    assert_eq!(side_of(&miroir, "gamma").await, ("a".to_string(), 40));
    assert_eq!(side_of(&miroir, "beta").await, ("b".to_string(), 25));
    c.nodes[2].restart().await;
    c.wait_node_usable(2).await;
    // Once more with every node up.
    let t = swap(&miroir, &json!([{"indexes": ["gamma", "beta"]}])).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let (reads, problems) = readers.finish().await;
    assert!(reads > 0);
    assert!(problems.is_empty(), "{} of {reads} reads went wrong: {:?}", problems.len(), &problems[..problems.len().min(5)]);
    assert_eq!(on_nodes(&c, "gamma").await, expected("b", 25));
    assert_eq!(on_nodes(&c, "beta").await, expected("a", 40));
    // The node that was killed holds, for each shard it holds, the swapped documents.
    let (s, b) = c.node_http(2).post("/indexes/gamma/documents/fetch", &json!({"limit": 10000, "fields": ["side"]})).await;
    assert_eq!(s, 200, "{b}");
    assert!(b["results"].as_array().unwrap().iter().all(|d| d["side"] == "b"), "{b}");
    assert!(!b["results"].as_array().unwrap().is_empty());

    c.nodes[2].kill().await;
    single.kill().await;
}

/// Two Miroir processes on one Redis store: a swap through one holds the other's readers (it
/// reads the swap lease), so they never see the indexes mixed either, and the history each
/// shows follows the swap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_swap_through_one_miroir_holds_the_readers_of_another() {
    let c = Cluster::start(spec()).await;
    let cleanup = store_fixtures::RedisCleanup::new(store_fixtures::fresh_prefix());
    let (_ha, a) = c.miroir_on_redis(&store_fixtures::redis_url(), &cleanup.prefix).await;
    let (_hb, b) = c.miroir_on_redis(&store_fixtures::redis_url(), &cleanup.prefix).await;
    let left_task = write(&a, "left", &dataset("l", 30)).await;
    write(&a, "right", &dataset("r", 20)).await;

    let readers = spawn_readers(&b, &["left", "right"], vec![("l", 30), ("r", 20)]);
    let mut left_side = "l";
    for _ in 0..3 {
        let t = swap(&a, &json!([{"indexes": ["left", "right"]}])).await;
        assert_eq!(t["status"], "succeeded", "{t}");
        left_side = if left_side == "l" { "r" } else { "l" };
        assert_eq!(side_of(&b, "left").await.0, left_side);
        // The other process shows the task, ended, the same way.
        let (s, tb) = b.get(&format!("/tasks/{}", t["uid"])).await;
        assert_eq!((s, &tb), (200, &t));
    }
    let (reads, problems) = readers.finish().await;
    assert!(reads > 0);
    assert!(problems.is_empty(), "{} of {reads} reads through the other Miroir saw a half-swapped state: {:?}", problems.len(), &problems[..problems.len().min(5)]);
    // Three swaps: the first dataset's addition now names `right`, through either process.
    let (_, t) = b.get(&format!("/tasks/{left_task}")).await;
    assert_eq!(t["indexUid"], "right", "{t}");
    assert_eq!(on_nodes(&c, "right").await, expected("l", 30));
    assert_eq!(on_nodes(&c, "left").await, expected("r", 20));
}

//! Index-level routes through Miroir, compared with one plain node given the same requests:
//! `/experimental-features` (applied to every node, stored, given to a node that comes back
//! empty), `POST /indexes/{uid}/documents/edit` (one `documentEdition` task over every node,
//! the shard tag kept), `skipCreation` on document writes, the primary key Meilisearch infers
//! from the first documents, `/stats` and `/indexes/{uid}/stats` with `sizeFormat` and
//! `showInternalDatabaseSizes`, and `POST /indexes/{uid}/compact`. Every node is also checked
//! directly.

mod common;

use common::{Cluster, Http, Node, Spec, NODE_KEY};
use reqwest::Method;
use serde_json::{json, Value};

/// Miroir and the plain node, side by side.
struct Pair {
    single: Http,
    miroir: Http,
}

impl Pair {
    /// The same request to both: (single's answer, Miroir's answer).
    async fn both(&self, method: Method, path: &str, body: Option<&Value>) -> ((u16, Value), (u16, Value)) {
        let one = |h: &Http| {
            let h = h.clone();
            let body = body.cloned();
            let method = method.clone();
            let path = path.to_string();
            async move {
                let (s, _, b) = match &body {
                    Some(b) => h.send_json(method, &path, b).await,
                    None => h.request(method, &path, None, None).await,
                };
                (s, b)
            }
        };
        (one(&self.single).await, one(&self.miroir).await)
    }

    /// The same request to both; both must answer the same status and body.
    async fn same(&self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let (a, b) = self.both(method.clone(), path, body).await;
        assert_eq!(a.0, b.0, "{method} {path}: status differs: single {} / miroir {}", a.1, b.1);
        assert_eq!(
            serde_json::to_string(&a.1).unwrap(),
            serde_json::to_string(&b.1).unwrap(),
            "{method} {path}: body differs"
        );
        a
    }

    /// The same write to both, each task waited for: (single's task, Miroir's task).
    async fn task(&self, method: Method, path: &str, body: Option<&Value>) -> (Value, Value) {
        let ((s1, a), (s2, b)) = self.both(method.clone(), path, body).await;
        assert_eq!((s1, s2), (202, 202), "{method} {path}: single {a} / miroir {b}");
        assert_eq!(a["type"], b["type"], "{a} / {b}");
        let ta = self.single.wait_task(a["taskUid"].as_u64().unwrap()).await;
        let tb = self.miroir.wait_task(b["taskUid"].as_u64().unwrap()).await;
        (ta, tb)
    }

    /// A write whose task must end the same way on both (status, type, details, error).
    async fn same_task(&self, method: Method, path: &str, body: Option<&Value>) -> Value {
        let (a, b) = self.task(method.clone(), path, body).await;
        for k in ["status", "type", "details", "error"] {
            assert_eq!(
                serde_json::to_string(&a[k]).unwrap(),
                serde_json::to_string(&b[k]).unwrap(),
                "{method} {path}: task `{k}` differs:\nsingle {a}\nmiroir {b}"
            );
        }
        b
    }
}

fn nodes_http(cluster: &Cluster) -> Vec<Http> {
    (0..cluster.nodes.len()).map(|i| cluster.node_http(i)).collect()
}

/// All documents of an index, sorted by id, without Miroir's tag (as a client reads them).
async fn all_documents(h: &Http, uid: &str) -> Vec<Value> {
    let (s, b) = h.post(&format!("/indexes/{uid}/documents/fetch"), &json!({"limit": 1000})).await;
    assert_eq!(s, 200, "{b}");
    let mut docs: Vec<Value> = b["results"].as_array().unwrap().clone();
    for d in &mut docs {
        d.as_object_mut().unwrap().remove("_miroir_shard");
    }
    docs.sort_by_key(|d| d["id"].as_u64());
    docs
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_routes_answer_like_one_node() {
    let mut single_node = Node::start("single").await;
    let cluster = Cluster::start(Spec::rf1_3_nodes()).await;
    let p = Pair { single: Http { base: single_node.url.clone(), key: Some(NODE_KEY.to_string()) }, miroir: cluster.http() };
    let nodes = nodes_http(&cluster);

    // ---------------------------------------------------------------- experimental features
    let (_, features) = p.same(Method::GET, "/experimental-features", None).await;
    assert!(keys(&features).len() >= 15, "{features}");
    for bad in [json!({"NotAFeature": true}), json!({"containsFilter": "yes"}), json!({"containsFilter": 42}), json!([1])] {
        let (s, _) = p.same(Method::PATCH, "/experimental-features", Some(&bad)).await;
        assert_eq!(s, 400);
    }
    // Editing by function is gated by the feature on the node: refused alike before it is on.
    p.same_task(Method::POST, "/indexes/edit/documents", Some(&json!([{"id": 1, "title": "t"}]))).await;
    let (s, _) = p.same(Method::POST, "/indexes/edit/documents/edit", Some(&json!({"function": "doc.a = 1"}))).await;
    assert_eq!(s, 400);
    let (s, body) = p.same(Method::PATCH, "/experimental-features", Some(&json!({"editDocumentsByFunction": true, "containsFilter": true}))).await;
    assert_eq!(s, 200);
    assert_eq!((body["editDocumentsByFunction"].clone(), body["containsFilter"].clone()), (json!(true), json!(true)));
    // `null` keeps a value, an absent field too.
    p.same(Method::PATCH, "/experimental-features", Some(&json!({"containsFilter": null}))).await;
    p.same(Method::GET, "/experimental-features", None).await;
    for (i, n) in nodes.iter().enumerate() {
        let (s, f) = n.get("/experimental-features").await;
        assert_eq!(s, 200);
        assert_eq!(f, body, "node {i} did not get the features");
    }
    let stored = cluster.proxy.store().get_features().await.unwrap().expect("features stored");
    assert_eq!(stored, body);
    // A feature Miroir cannot honour over shards is refused, and nothing changes anywhere.
    let (s, b) = p.miroir.send_json(Method::PATCH, "/experimental-features", &json!({"containsFilter": false, "network": true})).await.into_status_body();
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["code"], "miroir_feature_unsupported", "{b}");
    assert_eq!(b["type"], "invalid_request");
    for n in &nodes {
        assert_eq!(n.get("/experimental-features").await.1, body);
    }
    // Disabling such a feature is fine.
    let (_, body) = p.same(Method::PATCH, "/experimental-features", Some(&json!({"network": false}))).await;
    // A node changed behind Miroir's back: Miroir answers the cluster's object and gives it
    // back to the node before the node serves again.
    let (s, _, b) = nodes[1].send_json(Method::PATCH, "/experimental-features", &json!({"containsFilter": false})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(p.miroir.get("/experimental-features").await.1, body);
    let mut fixed = false;
    for _ in 0..400 {
        if nodes[1].get("/experimental-features").await.1 == body {
            fixed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(fixed, "the node that diverged never got the cluster's features back");
    cluster.wait_node_usable(1).await;

    // ---------------------------------------------------------------- inferred primary key
    p.same_task(Method::POST, "/indexes", Some(&json!({"uid": "inferred"}))).await;
    // One document: one node gets it, the others still have no primary key.
    p.same_task(Method::POST, "/indexes/inferred/documents", Some(&json!([{"movie_id": 1, "title": "Nosferatu"}]))).await;
    let (_, single_index) = p.single.get("/indexes/inferred").await;
    let (s, miroir_index) = p.miroir.get("/indexes/inferred").await;
    assert_eq!(s, 200);
    assert_eq!(miroir_index["primaryKey"], json!("movie_id"));
    assert_eq!(miroir_index["primaryKey"], single_index["primaryKey"]);
    let (_, single_list) = p.single.get("/indexes?limit=100").await;
    let (_, miroir_list) = p.miroir.get("/indexes?limit=100").await;
    let pk_of = |list: &Value| list["results"].as_array().unwrap().iter().find(|i| i["uid"] == "inferred").map(|i| i["primaryKey"].clone());
    assert_eq!(pk_of(&miroir_list), Some(json!("movie_id")));
    assert_eq!(pk_of(&single_list), pk_of(&miroir_list));
    let holders: Vec<Value> = futures::future::join_all(nodes.iter().map(|n| n.get("/indexes/inferred"))).await.into_iter().map(|(_, b)| b["primaryKey"].clone()).collect();
    assert!(holders.contains(&json!("movie_id")), "{holders:?}");
    // (Miroir sent the document to one node: the others have no key, the case at stake.)
    assert!(holders.contains(&Value::Null), "{holders:?}");
    // The next batch has two `*id` fields: it uses the known key, never infers again.
    p.same_task(Method::POST, "/indexes/inferred/documents", Some(&json!([{"id": 7, "movie_id": 2, "title": "Metropolis"}, {"id": 8, "movie_id": 3}]))).await;
    assert_eq!(all_documents(&p.single, "inferred").await, all_documents(&p.miroir, "inferred").await);

    // ---------------------------------------------------------------- skipCreation
    let docs: Vec<Value> = (1..=12).map(|i| json!({"id": i, "title": format!("title {i}"), "n": i})).collect();
    p.same_task(Method::POST, "/indexes/skip/documents?primaryKey=id", Some(&Value::Array(docs))).await;
    p.same_task(Method::POST, "/indexes/skip/documents?skipCreation=true", Some(&json!([{"id": 2, "title": "replaced"}, {"id": 99, "title": "new"}]))).await;
    p.same_task(Method::PUT, "/indexes/skip/documents?skipCreation=TRUE", Some(&json!([{"id": 3, "extra": true}, {"id": 98, "title": "new"}]))).await;
    p.same_task(Method::PUT, "/indexes/skip/documents?skipCreation=false", Some(&json!([{"id": 4, "extra": false}]))).await;
    for bad in ["maybe", "1", ""] {
        let (s, _) = p.same(Method::POST, &format!("/indexes/skip/documents?skipCreation={bad}"), Some(&json!([{"id": 5}]))).await;
        assert_eq!(s, 400);
    }
    assert_eq!(all_documents(&p.single, "skip").await, all_documents(&p.miroir, "skip").await);
    p.same(Method::GET, "/indexes/skip/documents/99", None).await;
    p.same(Method::GET, "/indexes/skip/documents/2", None).await;
    for n in &nodes {
        for id in [98, 99] {
            let (s, b) = n.get(&format!("/indexes/skip/documents/{id}")).await;
            assert_eq!(s, 404, "a node created skipped document {id}: {b}");
        }
    }
    // A write with skipCreation to an index that does not exist: every node ends like the
    // plain node (the index is created as Meilisearch creates it, without documents).
    p.same_task(Method::POST, "/indexes/skipnew/documents?skipCreation=true", Some(&json!([{"id": 1, "title": "a"}]))).await;
    let (single_status, _) = p.single.get("/indexes/skipnew").await;
    p.same(Method::GET, "/indexes/skipnew/documents", None).await;
    for n in &nodes {
        assert_eq!(n.get("/indexes/skipnew").await.0, single_status);
    }

    // ---------------------------------------------------------------- edition by function
    let docs: Vec<Value> = (1..=20).map(|i| json!({"id": i, "title": format!("doc {i}"), "n": i})).collect();
    p.same_task(Method::POST, "/indexes/edit/documents", Some(&Value::Array(docs))).await;
    p.same_task(Method::PATCH, "/indexes/edit/settings", Some(&json!({"filterableAttributes": ["n"]}))).await;
    let t = p
        .same_task(
            Method::POST,
            "/indexes/edit/documents/edit",
            Some(&json!({"function": "doc.title = doc.title + context.suffix; doc.edited = true", "context": {"suffix": "!"}, "filter": "n > 14"})),
        )
        .await;
    assert_eq!(t["type"], "documentEdition");
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["details"]["editedDocuments"], json!(6), "{t}");
    assert_eq!(t["details"]["originalFilter"], json!("\"n > 14\""));
    assert_eq!(all_documents(&p.single, "edit").await, all_documents(&p.miroir, "edit").await);
    // Deleting by setting `doc` to `()`, and replacing whole documents: the tag stays.
    p.same_task(Method::POST, "/indexes/edit/documents/edit", Some(&json!({"function": "if doc.n < 3 { doc = () }"}))).await;
    p.same_task(Method::POST, "/indexes/edit/documents/edit", Some(&json!({"function": "doc = #{id: doc.id, title: \"replaced\", n: doc.n}", "filter": ["n >= 18"]}))).await;
    assert_eq!(all_documents(&p.single, "edit").await, all_documents(&p.miroir, "edit").await);
    for (i, n) in nodes.iter().enumerate() {
        let (s, b) = n.post("/indexes/edit/documents/fetch", &json!({"limit": 1000, "filter": "_miroir_shard NOT EXISTS"})).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["total"], json!(0), "node {i} holds documents without their shard: {b}");
    }
    let (_, total) = p.miroir.get("/indexes/edit/stats").await;
    assert_eq!(total["numberOfDocuments"], json!(18));
    // Refused alike: bad bodies, a function that does not compile, an empty filter, a context
    // that is not an object.
    for bad in [
        json!({"function": "doc.title = "}),
        json!({"function": 3}),
        json!({"filter": "n > 1"}),
        json!({"function": "doc.a = 1", "other": 1}),
        json!({"function": "doc.a = 1", "filter": ""}),
        json!({"function": "doc.a = 1", "context": [1]}),
    ] {
        let (s, _) = p.same(Method::POST, "/indexes/edit/documents/edit", Some(&bad)).await;
        assert_eq!(s, 400, "{bad}");
    }
    // Failing inside the task alike: changing the primary key, a runtime error on the first
    // line (its position as in the client's function), a document that is no object.
    for function in ["doc.id = 1000", "let x = 1 / 0;", "doc = 1"] {
        let t = p.same_task(Method::POST, "/indexes/edit/documents/edit", Some(&json!({"function": function}))).await;
        assert_eq!(t["status"], "failed", "{t}");
    }
    assert_eq!(all_documents(&p.single, "edit").await, all_documents(&p.miroir, "edit").await);

    // ---------------------------------------------------------------- stats
    for q in ["", "?sizeFormat=raw", "?sizeFormat=human", "?showInternalDatabaseSizes=true", "?showInternalDatabaseSizes=true&sizeFormat=human"] {
        let ((s1, a), (s2, b)) = p.both(Method::GET, &format!("/indexes/edit/stats{q}"), None).await;
        assert_eq!((s1, s2), (200, 200), "{q}: {a} / {b}");
        assert_eq!(keys(&a), keys(&b), "{q}: {a} / {b}");
        for k in ["numberOfDocuments", "fieldDistribution", "isIndexing"] {
            assert_eq!(a[k], b[k], "{q}: {a} / {b}");
        }
        for k in ["rawDocumentDbSize", "avgDocumentSize"] {
            assert_eq!(a[k].is_string(), b[k].is_string(), "{q}: {a} / {b}");
        }
        if let Some(dbs) = a.get("internalDatabaseSizes") {
            assert_eq!(keys(dbs), keys(&b["internalDatabaseSizes"]), "{q}");
        }
        let ((s1, a), (s2, b)) = p.both(Method::GET, &format!("/stats{q}"), None).await;
        assert_eq!((s1, s2), (200, 200), "{q}: {a} / {b}");
        assert_eq!(keys(&a), keys(&b));
        assert_eq!(a["databaseSize"].is_string(), b["databaseSize"].is_string(), "{q}: {a} / {b}");
        assert_eq!(keys(&a["indexes"]), keys(&b["indexes"]), "{q}");
        for (uid, s) in a["indexes"].as_object().unwrap() {
            assert_eq!(keys(s), keys(&b["indexes"][uid]), "{q} {uid}");
            assert_eq!(s["numberOfDocuments"], b["indexes"][uid]["numberOfDocuments"], "{q} {uid}");
        }
    }
    for q in ["?sizeFormat=bytes", "?showInternalDatabaseSizes=maybe", "?other=1"] {
        let (s, _) = p.same(Method::GET, &format!("/indexes/edit/stats{q}"), None).await;
        assert_eq!(s, 400, "{q}");
        let (s, _) = p.same(Method::GET, &format!("/stats{q}"), None).await;
        assert_eq!(s, 400, "{q}");
    }

    // ---------------------------------------------------------------- compaction
    let (a, b) = p.task(Method::POST, "/indexes/edit/compact", None).await;
    assert_eq!((a["type"].clone(), b["type"].clone()), (json!("indexCompaction"), json!("indexCompaction")));
    assert_eq!((a["status"].clone(), b["status"].clone()), (json!("succeeded"), json!("succeeded")), "{a} / {b}");
    assert_eq!(keys(&a["details"]), keys(&b["details"]), "{a} / {b}");
    assert!(b["details"]["preCompactionSize"].is_string(), "{b}");
    for (i, n) in nodes.iter().enumerate() {
        let (_, t) = n.get("/tasks?types=indexCompaction&indexUids=edit").await;
        assert_eq!(t["results"][0]["status"], json!("succeeded"), "node {i}: {t}");
    }
    let (a, b) = p.task(Method::POST, "/indexes/nope/compact", None).await;
    assert_eq!((a["status"].clone(), a["error"]["code"].clone()), (b["status"].clone(), b["error"]["code"].clone()), "{a} / {b}");

    single_node.stop().await;
}

/// A node that comes back without its data gets the cluster's experimental features before
/// it serves again (and then its indexes and documents).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn features_reach_a_node_that_comes_back_empty() {
    let filter = tracing_subscriber::EnvFilter::try_new(std::env::var("MIROIR_TEST_LOG").unwrap_or_else(|_| "warn".into()))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().with_target(false).try_init();
    let mut cluster = Cluster::start(Spec { shards: 16, replication_factor: 1, groups: vec![2, 2] }).await;
    let miroir = cluster.http();
    let (s, f) = miroir.send_json(Method::PATCH, "/experimental-features", &json!({"editDocumentsByFunction": true})).await.into_status_body();
    assert_eq!(s, 200, "{f}");
    let (s, b) = miroir.post("/indexes/movies/documents", &json!([{"id": 1, "title": "a"}, {"id": 2, "title": "b"}, {"id": 3, "title": "c"}])).await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(miroir.wait_task(b["taskUid"].as_u64().unwrap()).await["status"], "succeeded");

    // Down long enough for Miroir to see it failed, then back without its data.
    cluster.nodes[0].wipe().await;
    let failed = |p: &miroir::dataplane::Proxy| {
        p.node_health().iter().any(|(id, h)| id == "g0-n0" && h.state == miroir::dataplane::health::NodeState::Failed)
    };
    let mut seen_failed = false;
    for _ in 0..1200 {
        if failed(&cluster.proxy) {
            seen_failed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(seen_failed, "Miroir never saw the stopped node fail");
    cluster.nodes[0].restart().await;
    let node0 = cluster.node_http(0);
    // Miroir gives it the features before anything else, then rebuilds it.
    let mut got = Value::Null;
    for _ in 0..400 {
        let (_, b) = node0.get("/experimental-features").await;
        if b == f {
            got = b;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(got, f, "the wiped node never got the features back");
    cluster.wait_node_usable(0).await;
    // Once it serves, editing works over every node.
    let (s, b) = miroir.post("/indexes/movies/documents/edit", &json!({"function": "doc.seen = true"})).await;
    assert_eq!(s, 202, "{b}");
    let t = miroir.wait_task(b["taskUid"].as_u64().unwrap()).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["details"]["editedDocuments"], json!(3), "{t}");

    // After a restart of Miroir the stored object is still the cluster's.
    cluster.restart_miroir().await;
    assert_eq!(cluster.proxy.store().get_features().await.unwrap(), Some(f.clone()));
    assert_eq!(cluster.http().get("/experimental-features").await.1, f);

    // A node added later gets them before the migration copies anything to it.
    let fifth = Node::start("g1-n2").await;
    let admin = cluster.http().with_key(common::ADMIN_KEY);
    let (s, b) = admin.post("/_miroir/nodes", &json!({"id": "g1-n2", "address": fifth.url, "replicaGroup": 1})).await;
    assert_eq!(s, 202, "{b}");
    let mut done = false;
    for _ in 0..1200 {
        let (_, r) = admin.get("/_miroir/rebalance").await;
        if r["phase"] == "idle" && r["last"]["phase"] == "done" {
            done = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(done, "the migration did not end");
    let fifth_http = Http { base: fifth.url.clone(), key: Some(NODE_KEY.to_string()) };
    assert_eq!(fifth_http.get("/experimental-features").await.1, f, "the joining node did not get the features");
}

trait StatusBody {
    fn into_status_body(self) -> (u16, Value);
}

impl StatusBody for (u16, reqwest::header::HeaderMap, Value) {
    fn into_status_body(self) -> (u16, Value) {
        (self.0, self.2)
    }
}

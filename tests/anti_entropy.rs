//! Anti-entropy and rebuild, end to end: documents written through Miroir, then changed on
//! one node behind Miroir's back (a document deleted, one added without `_miroir_shard`, one
//! added with a plausible tag, a setting changed); the check finds and repairs each, and every
//! node is then compared directly with what it must hold. A wiped node is rebuilt from its
//! replicas and compared document by document.

mod common;
#[path = "common/store_fixtures.rs"]
mod store_fixtures;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{corpus, test_options, Cluster, Http, Spec, ADMIN_KEY};
use miroir::dataplane::hash::{canonical_pk, shard_of};
use miroir::dataplane::replica::RebuildScope;
use reqwest::Method;
use serde_json::{json, Value};

const INDEX: &str = "docs";

fn options(interval_ms: u64) -> miroir::dataplane::ProxyOptions {
    let mut o = test_options();
    o.replication.anti_entropy_interval_ms = interval_ms;
    o
}

/// Creates the index through Miroir, gives it the corpus settings, writes documents 0..n.
async fn load(cluster: &Cluster, n: u64) -> BTreeSet<String> {
    let http = cluster.http();
    let (s, b) = http.post("/indexes", &json!({"uid": INDEX, "primaryKey": "id"})).await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(cluster.wait_task(b["taskUid"].as_u64().unwrap()).await["status"], "succeeded");
    let (s, _, b) = http.send_json(Method::PATCH, &format!("/indexes/{INDEX}/settings"), &corpus::settings()).await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(cluster.wait_task(b["taskUid"].as_u64().unwrap()).await["status"], "succeeded");
    let (s, b) = http.post(&format!("/indexes/{INDEX}/documents"), &Value::Array(corpus::documents(n))).await;
    assert_eq!(s, 202, "{b}");
    let task = cluster.wait_task(b["taskUid"].as_u64().unwrap()).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    (0..n).map(|i| i.to_string()).collect()
}

/// Documents of a node matching a filter, straight from the node: id → document.
async fn node_docs(node: &Http, filter: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut offset = 0;
    loop {
        let (s, b) = node.post(&format!("/indexes/{INDEX}/documents/fetch"), &json!({"filter": filter, "limit": 1000, "offset": offset})).await;
        assert_eq!(s, 200, "{b}");
        let results = b["results"].as_array().unwrap();
        for d in results {
            out.insert(canonical_pk(&d["id"]).unwrap(), d.clone());
        }
        offset += results.len();
        if results.len() < 1000 {
            return out;
        }
    }
}

async fn node_total(node: &Http) -> u64 {
    let (s, b) = node.post(&format!("/indexes/{INDEX}/documents/fetch"), &json!({"limit": 1})).await;
    assert_eq!(s, 200, "{b}");
    b["total"].as_u64().unwrap()
}

/// Sends a write straight to a node and waits for its task.
async fn on_node(node: &Http, method: Method, path: &str, body: Option<&Value>) {
    let (s, _, b) = match body {
        Some(body) => node.send_json(method, path, body).await,
        None => node.request(method, path, None, None).await,
    };
    assert_eq!(s, 202, "{b}");
    let task = node.wait_task(b["taskUid"].as_u64().unwrap()).await;
    assert_eq!(task["status"], "succeeded", "{task}");
}

/// Differences between what every node holds and `expected` (ids of the whole index): per
/// node, each shard it holds must have exactly the expected ids of that shard, and nothing
/// else may be on it (no untagged document). Empty when all is right.
async fn placement_errors(cluster: &Cluster, expected: &BTreeSet<String>) -> Vec<String> {
    let shards = cluster.topology.shards;
    let by_node = cluster.topology.assignment().shards_by_node();
    let mut errors = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let http = cluster.node_http(i);
        let held: BTreeSet<u32> = by_node.get(&node.id).cloned().unwrap_or_default().into_iter().collect();
        let mut count = 0;
        for &s in &held {
            let want: BTreeSet<String> = expected.iter().filter(|id| shard_of(id, shards) == s).cloned().collect();
            let got: BTreeSet<String> = node_docs(&http, &format!("_miroir_shard = {s}")).await.into_keys().collect();
            if got != want {
                errors.push(format!(
                    "{} shard {s}: missing {:?}, extra {:?}",
                    node.id,
                    want.difference(&got).collect::<Vec<_>>(),
                    got.difference(&want).collect::<Vec<_>>()
                ));
            }
            count += got.len() as u64;
        }
        let total = node_total(&http).await;
        if total != count {
            errors.push(format!("{} holds {total} documents, {count} of them in its shards", node.id));
        }
    }
    errors
}

async fn node_settings(cluster: &Cluster) -> Vec<Value> {
    let mut out = Vec::new();
    for i in 0..cluster.nodes.len() {
        let (s, b) = cluster.node_http(i).get(&format!("/indexes/{INDEX}/settings")).await;
        assert_eq!(s, 200, "{b}");
        out.push(b);
    }
    out
}

async fn report(cluster: &Cluster) -> Value {
    let (s, b) = cluster.http().with_key(ADMIN_KEY).get("/_miroir/consistency").await;
    assert_eq!(s, 200, "{b}");
    b
}

/// The node (index in `cluster.nodes`) first holding `shard` in group `group`.
fn holder(cluster: &Cluster, group: u32, shard: u32) -> usize {
    let assignment = cluster.topology.assignment();
    let id = &assignment.holders(group, shard)[0];
    cluster.nodes.iter().position(|n| &n.id == id).unwrap()
}

/// The first id from `from` on whose shard `pred` holds.
fn id_in_shard(shards: u32, from: u64, pred: impl Fn(u32) -> bool) -> u64 {
    (from..).find(|i| pred(shard_of(&i.to_string(), shards))).unwrap()
}

/// Tampers with the nodes directly (one deleted document, one untagged, one with a copied tag,
/// one changed setting), then waits for the background check to put everything right.
async fn background_repair(spec: Spec) {
    let cluster = Cluster::start_with(spec, options(300)).await;
    let shards = cluster.topology.shards;
    let mut expected = load(&cluster, 300).await;

    // A document lost on one replica: it comes back.
    let lost = 7u64;
    let on = holder(&cluster, 0, shard_of(&lost.to_string(), shards));
    on_node(&cluster.node_http(on), Method::DELETE, &format!("/indexes/{INDEX}/documents/{lost}"), None).await;
    // A document Miroir never wrote (no `_miroir_shard`) on a holder of its shard: deleted.
    let untagged = 100_001u64;
    let on = holder(&cluster, 0, shard_of(&untagged.to_string(), shards));
    on_node(&cluster.node_http(on), Method::POST, &format!("/indexes/{INDEX}/documents"), Some(&json!([{"id": untagged, "title": "stray"}]))).await;
    // A document with a plausible tag on one replica: with two replicas per shard there is no
    // majority, the union wins, and it is copied to the other replica.
    let tagged = 100_002u64;
    let s = shard_of(&tagged.to_string(), shards);
    let on = holder(&cluster, 0, s);
    on_node(&cluster.node_http(on), Method::POST, &format!("/indexes/{INDEX}/documents"), Some(&json!([{"id": tagged, "title": "looks legit", "_miroir_shard": s}]))).await;
    expected.insert(tagged.to_string());
    // A setting changed on one node out of several: it gets the others' settings back.
    let changed = cluster.nodes.len() - 1;
    on_node(&cluster.node_http(changed), Method::PATCH, &format!("/indexes/{INDEX}/settings"), Some(&json!({"stopWords": ["the"]}))).await;

    let started = Instant::now();
    loop {
        let errors = placement_errors(&cluster, &expected).await;
        let settings = node_settings(&cluster).await;
        let settings_agree = settings.windows(2).all(|w| w[0] == w[1]);
        // The repairs are enqueued before the pass ends and stores its report: wait for both.
        let r = report(&cluster).await;
        let reported = r["totals"]["repairedDocuments"].as_u64().unwrap_or(0) >= 3 && r["totals"]["repairedSettings"].as_u64().unwrap_or(0) >= 1;
        if errors.is_empty() && settings_agree && reported {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "not repaired after 60 s: {errors:?}, settings agree: {settings_agree}; {}", report(&cluster).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(node_settings(&cluster).await[0]["stopWords"], json!([]), "the majority's settings win");
    // The document copied back is the one Miroir wrote, field for field.
    let lost_shard = shard_of(&lost.to_string(), shards);
    let mut want = corpus::document(lost);
    want["_miroir_shard"] = json!(lost_shard);
    for i in 0..cluster.nodes.len() {
        let (st, got) = cluster.node_http(i).get(&format!("/indexes/{INDEX}/documents/{lost}")).await;
        let holds = cluster.topology.assignment().shards_by_node()[&cluster.nodes[i].id].contains(&lost_shard);
        if holds {
            assert_eq!(st, 200, "{got}");
            assert_eq!(got, want, "document {lost} on {}", cluster.nodes[i].id);
        }
    }

    // The report says what was done: a copy back, an untagged deletion, a tagged copy, one node's settings.
    let r = report(&cluster).await;
    assert!(r["lastRun"]["startedAt"].is_string() && r["lastRun"]["finishedAt"].is_string(), "{r}");
    assert_eq!(r["intervalMs"], 300);
    assert!(r["totals"]["repairedDocuments"].as_u64().unwrap() >= 3, "{r}");
    assert!(r["totals"]["repairedSettings"].as_u64().unwrap() >= 1, "{r}");
    let ix = r["indexes"].as_array().unwrap().iter().find(|i| i["uid"] == INDEX).expect("index in the report").clone();
    assert_eq!(ix["shards"].as_array().unwrap().len(), shards as usize, "{ix}");
    for sh in ix["shards"].as_array().unwrap() {
        assert_eq!(sh["replicas"].as_array().unwrap().len(), 2, "two replicas per shard: {sh}");
    }

    // Once repaired, a pass finds nothing to do.
    let (st, r) = cluster.http().with_key(ADMIN_KEY).post("/_miroir/consistency/check", &json!({})).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["divergentShards"], 0, "{r}");
    assert_eq!(r["repairedDocuments"], 0, "{r}");
    let ix = r["indexes"].as_array().unwrap().iter().find(|i| i["uid"] == INDEX).unwrap();
    assert!(ix["shards"].as_array().unwrap().iter().all(|s| s["consistent"] == true && s["misplaced"] == 0), "{ix}");
    assert_eq!(ix["settings"]["consistent"], true, "{ix}");
    let docs: u64 = ix["shards"].as_array().unwrap().iter().map(|s| s["replicas"][0]["documents"].as_u64().unwrap()).sum();
    assert_eq!(docs, expected.len() as u64);

    // The metrics count the passes and repairs.
    let mut registry = prometheus_client::registry::Registry::default();
    cluster.proxy.metrics().register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains("miroir_anti_entropy_divergent_shards 0"), "{text}");
    let counter = |name: &str| -> u64 {
        text.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{name} in {text}"))
    };
    assert!(counter("miroir_anti_entropy_repaired_documents_total") >= 3);
    assert!(counter("miroir_anti_entropy_passes_total") >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_check_repairs_rg2_rf1_four_nodes() {
    background_repair(Spec { shards: 8, replication_factor: 1, groups: vec![2, 2] }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_check_repairs_rf2_one_group_of_three() {
    background_repair(Spec { shards: 8, replication_factor: 2, groups: vec![3] }).await;
}

/// Three replicas per shard: a document only one of them holds is deleted (the majority did
/// not take it), one that only one lacks is copied; a pass asked for at once reports both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_three_replicas_the_majority_decides() {
    let cluster = Cluster::start_with(Spec { shards: 4, replication_factor: 1, groups: vec![1, 1, 1] }, options(0)).await;
    let shards = cluster.topology.shards;
    let mut expected = load(&cluster, 200).await;
    let lost = 11u64;
    let lost_shard = shard_of(&lost.to_string(), shards);
    on_node(&cluster.node_http(1), Method::DELETE, &format!("/indexes/{INDEX}/documents/{lost}"), None).await;
    // Tagged for another shard than `lost`'s, so each shard's numbers below are its own.
    let stray = id_in_shard(shards, 100_000, |s| s != lost_shard);
    let stray_shard = shard_of(&stray.to_string(), shards);
    on_node(&cluster.node_http(2), Method::POST, &format!("/indexes/{INDEX}/documents"), Some(&json!([{"id": stray, "_miroir_shard": stray_shard}]))).await;
    assert!(!placement_errors(&cluster, &expected).await.is_empty(), "the nodes were changed");

    // No background pass (interval 0): the report is empty until asked.
    assert_eq!(report(&cluster).await["lastRun"], Value::Null);
    let (st, r) = cluster.http().with_key(ADMIN_KEY).post("/_miroir/consistency/check", &json!({})).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["divergentShards"], 2, "{r}");
    assert_eq!(r["repairedDocuments"], 2, "{r}");
    let ix = r["indexes"].as_array().unwrap().iter().find(|i| i["uid"] == INDEX).unwrap();
    let shard = |s: u32| ix["shards"].as_array().unwrap().iter().find(|x| x["shard"] == s).unwrap().clone();
    let l = shard(lost_shard);
    assert_eq!((l["consistent"].clone(), l["missing"].clone(), l["extra"].clone(), l["repaired"].clone()), (json!(false), json!(1), json!(0), json!(1)), "{l}");
    let x = shard(stray_shard);
    assert_eq!((x["consistent"].clone(), x["missing"].clone(), x["extra"].clone(), x["repaired"].clone()), (json!(false), json!(0), json!(1), json!(1)), "{x}");
    assert_eq!(x["replicas"].as_array().unwrap().len(), 3);

    expected.remove(&stray.to_string());
    assert_eq!(placement_errors(&cluster, &expected).await, Vec::<String>::new());
    let (_, r) = cluster.http().with_key(ADMIN_KEY).post("/_miroir/consistency/check", &json!({})).await;
    assert_eq!(r["divergentShards"], 0, "{r}");
    assert_eq!(report(&cluster).await["totals"]["passes"], 2);
}

/// Consistency routes are Miroir's admin routes: the admin (or master) key, nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistency_routes_need_the_admin_key() {
    let cluster = Cluster::start_with(Spec { shards: 2, replication_factor: 1, groups: vec![1] }, options(0)).await;
    let http = cluster.http();
    assert_eq!(http.without_key().get("/_miroir/consistency").await.0, 401);
    assert_eq!(http.with_key("nope").get("/_miroir/consistency").await.0, 403);
    assert_eq!(http.with_key("nope").post("/_miroir/consistency/check", &json!({})).await.0, 403);
    assert_eq!(http.with_key(ADMIN_KEY).get("/_miroir/consistency").await.0, 200);
}

/// A node that lost its data dir is rebuilt from its replicas: indexes, primary keys, settings
/// and every document of every shard it holds, equal to the replicas' afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_is_rebuilt_from_its_replicas() {
    let mut cluster = Cluster::start_with(Spec { shards: 8, replication_factor: 1, groups: vec![2, 2] }, options(0)).await;
    let n = 4000;
    load(&cluster, n).await;
    // An index without documents (no primary key yet) is rebuilt too.
    let (s, b) = cluster.http().post("/indexes", &json!({"uid": "empty"})).await;
    assert_eq!(s, 202, "{b}");
    cluster.wait_task(b["taskUid"].as_u64().unwrap()).await;

    let wiped = 0;
    let id = cluster.nodes[wiped].id.clone();
    cluster.nodes[wiped].wipe().await;
    cluster.nodes[wiped].restart().await;
    cluster.wait_node_usable(wiped).await;
    let node = cluster.node_http(wiped);
    assert_eq!(node.get(&format!("/indexes/{INDEX}")).await.0, 404, "the node lost its data");
    // Something Miroir does not know of, made on the empty node: a rebuild removes it.
    on_node(&node, Method::POST, "/indexes", Some(&json!({"uid": "leftover"}))).await;

    let routing = cluster.proxy.routing().unwrap();
    let stats = cluster.proxy.rebuild(&routing, &id, &RebuildScope { reason: "test: data dir lost".into(), ..RebuildScope::default() }).await.expect("rebuild");
    eprintln!(
        "rebuild of {id}: {} shards, {} documents in {} ms; per shard: {:?}",
        stats.shards.len(),
        stats.documents,
        stats.elapsed_ms,
        stats.shards.iter().map(|s| (s.index.as_str(), s.shard, s.stats.documents, s.stats.elapsed_ms)).collect::<Vec<_>>()
    );
    assert_eq!(stats.deleted_indexes, vec!["leftover".to_string()]);
    assert_eq!(stats.indexes, vec![INDEX.to_string(), "empty".to_string()]);
    let held = cluster.topology.assignment().shards_by_node()[&id].clone();
    assert_eq!(stats.shards.len(), held.len());
    assert!(stats.shards.iter().all(|s| s.stats.verify_rounds == 1 && s.stats.fixed == 0), "{stats:?}");

    // Indexes and primary keys as on a replica of the same group (every node has every index).
    let peer = cluster.nodes.iter().position(|n| n.id != id && n.id.starts_with("g0")).unwrap();
    let list = |h: Http| async move {
        let (s, b) = h.get("/indexes?limit=100").await;
        assert_eq!(s, 200, "{b}");
        b["results"].as_array().unwrap().iter().map(|i| (i["uid"].clone(), i["primaryKey"].clone())).collect::<Vec<_>>()
    };
    assert_eq!(list(node.clone()).await, list(cluster.node_http(peer)).await);
    for uid in [INDEX, "empty"] {
        assert_eq!(node.get(&format!("/indexes/{uid}/settings")).await, cluster.node_http(peer).get(&format!("/indexes/{uid}/settings")).await, "settings of {uid}");
    }
    // Every shard it holds, document for document, as on the shard's holder in the other group.
    for s in held {
        let other = holder(&cluster, 1, s);
        let filter = format!("_miroir_shard = {s}");
        let want = node_docs(&cluster.node_http(other), &filter).await;
        assert!(!want.is_empty());
        assert_eq!(node_docs(&node, &filter).await, want, "shard {s}");
    }
    let all: BTreeSet<String> = (0..n).map(|i| i.to_string()).collect();
    assert_eq!(placement_errors(&cluster, &all).await, Vec::<String>::new());
    // And reads through Miroir see the whole index again.
    let (s, b) = cluster.http().post(&format!("/indexes/{INDEX}/search"), &json!({"q": "", "limit": 0})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["estimatedTotalHits"], n);
}

/// A rebuild needs an up-to-date source: with the only other holder down it says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_without_an_up_to_date_replica_fails_naming_it() {
    let mut cluster = Cluster::start_with(Spec { shards: 2, replication_factor: 1, groups: vec![1, 1] }, options(0)).await;
    load(&cluster, 20).await;
    let routing = cluster.proxy.routing().unwrap();
    cluster.nodes[1].kill().await;
    let started = Instant::now();
    while cluster.proxy.serves_reads(&cluster.nodes[1].id) {
        assert!(started.elapsed() < Duration::from_secs(20), "a killed node keeps serving reads");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e = cluster.proxy.rebuild(&routing, &cluster.nodes[0].id, &RebuildScope::default()).await.unwrap_err();
    assert!(matches!(e, miroir::dataplane::repair::SyncError::NoSource { .. }), "{e}");
    assert!(e.to_string().contains("no up-to-date replica"), "{e}");
    let e = cluster.proxy.rebuild(&routing, "nope", &RebuildScope::default()).await.unwrap_err();
    assert!(e.to_string().contains("`nope` is not in the topology"), "{e}");
}

/// Several Miroir processes on one Redis store: only the holder of the `miroir/anti-entropy`
/// lease runs the periodic pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_of_several_runs_the_periodic_check() {
    let cluster = Cluster::start_with(Spec { shards: 2, replication_factor: 1, groups: vec![1, 1] }, options(0)).await;
    load(&cluster, 20).await;
    let cleanup = store_fixtures::RedisCleanup::new(store_fixtures::fresh_prefix());
    let (_a, a) = cluster.miroir_on_redis_with(&store_fixtures::redis_url(), &cleanup.prefix, options(100)).await;
    let (_b, b) = cluster.miroir_on_redis_with(&store_fixtures::redis_url(), &cleanup.prefix, options(100)).await;
    let passes = |h: Http| async move {
        let (s, r) = h.with_key(ADMIN_KEY).get("/_miroir/consistency").await;
        assert_eq!(s, 200, "{r}");
        r["totals"]["passes"].as_u64().unwrap()
    };
    let started = Instant::now();
    while passes(a.clone()).await + passes(b.clone()).await < 5 {
        assert!(started.elapsed() < Duration::from_secs(20), "no periodic pass ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (pa, pb) = (passes(a.clone()).await, passes(b.clone()).await);
    assert!(pa == 0 || pb == 0, "both processes ran the periodic pass: {pa} and {pb}");
}

/// Nodes that do not serve reads (catching up, failed) are the replay worker's: the check
/// neither compares nor repairs them, and decides among the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_out_of_reads_are_left_alone() {
    let mut cluster = Cluster::start_with(Spec { shards: 2, replication_factor: 1, groups: vec![1, 1, 1] }, options(0)).await;
    let shards = cluster.topology.shards;
    load(&cluster, 20).await;
    let x = 100_000u64;
    let s = shard_of(&x.to_string(), shards);
    on_node(&cluster.node_http(0), Method::POST, &format!("/indexes/{INDEX}/documents"), Some(&json!([{"id": x, "_miroir_shard": s}]))).await;
    cluster.nodes[1].kill().await;
    let started = Instant::now();
    while cluster.proxy.serves_reads(&cluster.nodes[1].id) {
        assert!(started.elapsed() < Duration::from_secs(20), "a killed node keeps serving reads");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (st, r) = cluster.http().with_key(ADMIN_KEY).post("/_miroir/consistency/check", &json!({})).await;
    assert_eq!(st, 200, "{r}");
    let ix = r["indexes"].as_array().unwrap().iter().find(|i| i["uid"] == INDEX).unwrap();
    let sh = ix["shards"].as_array().unwrap().iter().find(|x| x["shard"] == s).unwrap();
    let nodes: Vec<&str> = sh["replicas"].as_array().unwrap().iter().map(|r| r["node"].as_str().unwrap()).collect();
    assert_eq!(nodes, vec![cluster.nodes[0].id.as_str(), cluster.nodes[2].id.as_str()], "{sh}");
    // Two replicas compared: the union wins, so the document is copied to the other one...
    assert_eq!((sh["missing"].clone(), sh["repaired"].clone()), (json!(1), json!(1)), "{sh}");
    let path = format!("/indexes/{INDEX}/documents/{x}");
    assert_eq!(cluster.node_http(2).get(&path).await.0, 200);
    // ... and the node out of reads is not touched.
    cluster.nodes[1].restart().await;
    assert_eq!(cluster.node_http(1).get(&path).await.0, 404);
}

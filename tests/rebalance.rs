//! Issue 11: nodes added, drained and removed while reads and writes go on; nothing
//! acknowledged is lost, no read misses a shard, and afterwards each node holds exactly the
//! shards the final placement gives it (checked on the nodes directly).
//!
//! | | how the change comes in | Miroir | failure injected |
//! |---|---|---|---|
//! | A | admin API: add a 4th node, drain one, remove it | in process, SQLite | — (writer in batches of 500 and readers throughout) |
//! | B | config file: restart with a 4th node, then SIGHUP without one | `miroir serve` process, SQLite | `kill -9` of Miroir in the middle of the copy, twice |
//! | C | admin API on one of two Miroirs sharing a Redis store | in process, Redis | writes through both, readers on both |
//!
//! Sizes: `MIROIR_REBALANCE_DOCS` documents before the change (default 6,000, batches of 500).

mod common;
#[path = "common/consistency.rs"]
mod consistency;
#[path = "common/miroir_process.rs"]
mod miroir_process;
#[path = "common/store_fixtures.rs"]
mod store_fixtures;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Cluster, Node, Spec};
use consistency::{assert_exactly_acknowledged, env_u64, spawn_readers, start_nodes, stop_readers, wait_reads, Api, Fleet, ReadState, Writer};
use miroir::dataplane::topology::NodeSpec;
use miroir_process::{MiroirProcess, ProcessConfig};
use serde_json::{json, Value};

const INDEX: &str = "rebalance";
const SHARDS: u32 = 64;

fn docs() -> u64 {
    env_u64("MIROIR_REBALANCE_DOCS", 6_000)
}

/// Waits until `/_miroir/rebalance` says idle with `last` done and not `from_before`; returns
/// the phases seen meanwhile.
async fn wait_migrated(m: &Api, previous: Option<&str>) -> (Value, BTreeSet<String>) {
    let deadline = Instant::now() + Duration::from_secs(env_u64("MIROIR_REBALANCE_SECS", 300));
    let mut seen = BTreeSet::new();
    loop {
        let a = m.get("/_miroir/rebalance").await;
        if a.status == 200 {
            seen.insert(a.body["phase"].as_str().unwrap_or("?").to_string());
            let last = &a.body["last"];
            if a.body["phase"] == "idle" && last["phase"] == "done" && last["id"].as_str() != previous {
                return (a.body.clone(), seen);
            }
        }
        assert!(Instant::now() < deadline, "the migration did not end in time: {} {}", a.status, a.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes in the background until stopped: new documents in batches of 500, now and then an
/// update of older ones and a deletion; settles every few requests so that readers check
/// against a rising floor. Returns the writer once stopped and settled.
fn spawn_writer(mut w: Writer, from: u64, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Writer> {
    tokio::spawn(async move {
        let mut next = from;
        let mut round = 0u64;
        let mut deleted = 0u64;
        while !stop.load(Ordering::SeqCst) {
            w.upsert(next..next + 500, 1).await;
            next += 500;
            round += 1;
            if round % 3 == 0 {
                // an update of documents written before the change started
                let base = (round * 97) % 4_000;
                w.upsert(base..base + 50, 2 + round).await;
            }
            if round % 4 == 0 {
                // deletions of ids nobody writes again (from a range only this deletes)
                let ids: Vec<u64> = (0..10).map(|i| 1_000_000 + deleted + i).collect();
                w.upsert(ids[0]..ids[0] + 10, 1).await;
                w.delete(&ids).await;
                deleted += 10;
            }
            if round % 2 == 0 {
                w.settle().await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        w.settle().await;
        w
    })
}

/// Logs each phase change of `/_miroir/rebalance` on the tests' clock (failures name times too).
fn spawn_phase_log(m: Api) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = String::new();
        loop {
            let a = m.get("/_miroir/rebalance").await;
            let now = format!("{} {}", a.body["phase"], a.body["migration"]["id"]);
            if now != last {
                eprintln!("[t={:.3}s] rebalance phase {now}", consistency::test_clock());
                last = now;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

async fn post(m: &Api, path: &str, body: &Value) -> (u16, Value) {
    let a = m.post(path, body).await;
    (a.status, a.body)
}

/// A: the admin API, a writer and readers throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_add_drain_and_remove_through_the_admin_api_while_traffic_flows() {
    consistency::init_logs();
    let cluster = Cluster::start(Spec { shards: SHARDS, replication_factor: 1, groups: vec![3] }).await;
    let fourth = Node::start("g0-n3").await;
    let miroir = Api::miroir(cluster.url());
    let mut w = Writer::new(INDEX, vec![miroir.clone()]);
    w.create_index().await;
    let n = docs();
    w.upsert_batches(0..n, 500, 1).await;
    w.settle().await;
    let floor = w.acked().docs.len();

    // A node that holds data cannot be removed without a drain (or force).
    let a = miroir.send(reqwest::Method::DELETE, "/_miroir/nodes/g0-n0", None).await;
    assert_eq!(a.status, 409, "{}", a.body);
    assert_eq!(a.body["code"], "miroir_node_holds_data", "{}", a.body);
    assert!(a.body["message"].as_str().unwrap().contains("drain"), "{}", a.body);
    // Nor can a node be added twice, or a node that does not exist be drained.
    let (s, b) = post(&miroir, "/_miroir/nodes", &json!({"id": "g0-n1", "address": "http://127.0.0.1:1"})).await;
    assert_eq!((s, b["code"].as_str()), (409, Some("miroir_node_exists")), "{b}");
    let (s, b) = post(&miroir, "/_miroir/nodes/nope/drain", &json!({})).await;
    assert_eq!((s, b["code"].as_str()), (404, Some("miroir_node_not_found")), "{b}");
    let (s, b) = post(&miroir, "/_miroir/nodes", &json!({"id": "x", "address": "not a url"})).await;
    assert_eq!((s, b["code"].as_str()), (400, Some("miroir_invalid_topology")), "{b}");

    // A write acknowledged now (a settings change: its node tasks are on every node, the one
    // that will leave included), not read back until that node is gone: it must still reach
    // a terminal status.
    let a = miroir
        .send(reqwest::Method::PATCH, &format!("/indexes/{INDEX}/settings"), Some(&json!({"filterableAttributes": ["v", "bucket"]})))
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    let probe_task = a.body["taskUid"].as_u64().unwrap();

    let state = Arc::new(ReadState::default());
    let readers = spawn_readers(std::slice::from_ref(&miroir), INDEX, w.book.clone(), state.clone(), 2);
    let phases = spawn_phase_log(miroir.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(w, n, stop.clone());

    // 1. add a 4th node
    let (s, b) = post(&miroir, "/_miroir/nodes", &json!({"id": "g0-n3", "address": fourth.url})).await;
    assert_eq!(s, 202, "{b}");
    assert!(b["shardsTotal"].as_u64().unwrap() > 0, "{b}");
    // one change at a time
    let (s, b2) = post(&miroir, "/_miroir/nodes/g0-n2/drain", &json!({})).await;
    assert_eq!((s, b2["code"].as_str()), (409, Some("miroir_rebalance_in_progress")), "{b2}");
    let first_id = b["migration"].as_str().unwrap().to_string();
    let (status, seen) = wait_migrated(&miroir, None).await;
    assert_eq!(status["last"]["id"].as_str(), Some(first_id.as_str()));
    eprintln!("[A] add: phases seen {seen:?}; {}", status["last"]);
    assert!(status["last"]["documentsCopied"].as_u64().unwrap() > 0, "{}", status["last"]);
    let topo = miroir.get("/_miroir/topology").await.body;
    assert_eq!(topo["nodes"].as_array().unwrap().len(), 4, "{topo}");

    // 2. drain g0-n1, then remove it
    let (s, b) = post(&miroir, "/_miroir/nodes/g0-n1/drain", &json!({})).await;
    assert_eq!(s, 202, "{b}");
    let (status, seen) = wait_migrated(&miroir, Some(&first_id)).await;
    eprintln!("[A] drain: phases seen {seen:?}; {}", status["last"]);
    assert_eq!(status["drained"], json!(["g0-n1"]), "{status}");
    let a = miroir.send(reqwest::Method::DELETE, "/_miroir/nodes/g0-n1", None).await;
    assert_eq!(a.status, 200, "removing the drained node: {}", a.body);
    let topo = miroir.get("/_miroir/topology").await.body;
    let ids: Vec<&str> = topo["nodes"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["g0-n0", "g0-n2", "g0-n3"], "{topo}");
    let t = miroir.wait_task(probe_task, Duration::from_secs(60)).await;
    assert_eq!(t["status"], "succeeded", "a task whose node left must end: {t}");

    stop.store(true, Ordering::SeqCst);
    let w = writer.await.unwrap();
    let n_reads = state.reads.load(Ordering::SeqCst);
    wait_reads(&state, n_reads + 10).await;
    stop_readers(&state, readers).await;
    phases.abort();
    eprintln!("[A] readers: {}", state.report());
    let acked = w.acked();
    assert!(acked.docs.len() > floor);
    let mut nodes: Vec<&Node> = cluster.nodes.iter().collect();
    nodes.push(&fourth);
    let fleet = Fleet { miroirs: vec![miroir.clone()], nodes: nodes.iter().map(|n| (n.id.clone(), Api::node(n.url.clone()))).collect() };
    assert_exactly_acknowledged(&fleet, INDEX, &acked).await;
    state.assert_none_stale();
}

/// B: the config file is the way in; Miroir is killed with -9 in the middle of the copy and
/// restarted (it resumes from the stored plan); then a node leaves by SIGHUP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_config_change_with_miroir_killed_mid_migration_resumes() {
    consistency::init_logs();
    let (nodes3, topology) = start_nodes(&Spec { shards: SHARDS, replication_factor: 1, groups: vec![3] }).await;
    let fourth = Node::start("g0-n3").await;
    let mut cfg = ProcessConfig::new(topology.clone());
    // Slow enough to be caught in the middle of the copy on any engine.
    cfg.rebalance.max_documents_per_second = 1_500;
    cfg.rebalance.max_concurrent_moves = 1;
    let mut m = MiroirProcess::start(&cfg, common::MASTER_KEY, common::NODE_KEY, common::ADMIN_KEY).await;
    let miroir = Api::miroir(m.url());
    let mut w = Writer::new(INDEX, vec![miroir.clone()]);
    w.create_index().await;
    let n = docs();
    w.upsert_batches(0..n, 500, 1).await;
    w.settle().await;

    // The new config names a 4th node: a restart plans a migration, never routes to it at once.
    let mut grown = topology.clone();
    grown.nodes.push(NodeSpec { id: "g0-n3".into(), address: fourth.url.clone(), replica_group: 0 });
    cfg.topology = grown;
    m.write_config(&cfg);
    m.kill();
    m.restart().await;
    let a = miroir.get("/_miroir/rebalance").await;
    assert_eq!(a.body["phase"], "copying", "a restart with a new node plans a migration: {}", a.body);
    // Reads right away are complete (they use the old placement).
    let s = miroir.post(&format!("/indexes/{INDEX}/search"), &json!({"q": "", "limit": 0})).await;
    assert_eq!((s.status, s.body["estimatedTotalHits"].as_u64()), (200, Some(n)), "{}", s.body);

    // kill -9 once some shard is copied, twice
    for round in 0..2 {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let a = miroir.get("/_miroir/rebalance").await;
            let moved = a.body["migration"]["shardsMoved"].as_u64().unwrap_or(0);
            let total = a.body["migration"]["shardsTotal"].as_u64().unwrap_or(0);
            if a.body["phase"] != "copying" || moved > round {
                eprintln!("[B] kill -9 in phase {} with {moved}/{total} shards copied", a.body["phase"]);
                break;
            }
            assert!(Instant::now() < deadline, "no progress: {}", a.body);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // a write between the kills (queued for the new node if its shard is moving)
        w.upsert(n + round * 100..n + round * 100 + 100, 1).await;
        m.kill();
        m.restart().await;
    }
    let (status, seen) = wait_migrated(&miroir, None).await;
    eprintln!("[B] grown: phases seen after the restarts {seen:?}; {}", status["last"]);
    w.upsert(0..200, 5).await;
    w.settle().await;

    // SIGHUP with g0-n0 gone from the file: its shards move away, then it is forgotten.
    let before = status["last"]["id"].as_str().unwrap().to_string();
    let mut shrunk = cfg.topology.clone();
    shrunk.nodes.retain(|n| n.id != "g0-n0");
    cfg.topology = shrunk;
    m.write_config(&cfg);
    m.signal(libc::SIGHUP);
    let (status, _) = wait_migrated(&miroir, Some(&before)).await;
    assert_eq!(status["last"]["leaving"], json!(["g0-n0"]), "{status}");
    w.upsert(200..400, 6).await;
    w.settle().await;
    // A restart on the same file changes nothing more.
    m.kill();
    m.restart().await;
    let a = miroir.get("/_miroir/rebalance").await;
    assert_eq!(a.body["phase"], "idle", "{}", a.body);

    let acked = w.acked();
    let mut all: Vec<&Node> = nodes3.iter().collect();
    all.push(&fourth);
    let fleet = Fleet { miroirs: vec![miroir.clone()], nodes: all.iter().map(|n| (n.id.clone(), Api::node(n.url.clone()))).collect() };
    assert_exactly_acknowledged(&fleet, INDEX, &acked).await;
    drop(m);
}

/// C: two Miroirs on one Redis store; writes alternate between them and both are read
/// throughout; the node is added through one, the other follows the stored plan (it queues
/// its writes for the new node, holds them at the fence and switches on the same version).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_two_miroirs_on_redis_follow_one_plan() {
    consistency::init_logs();
    let cleanup = store_fixtures::RedisCleanup::new(store_fixtures::fresh_prefix());
    let (nodes3, topology) = start_nodes(&Spec { shards: SHARDS, replication_factor: 1, groups: vec![3] }).await;
    let fourth = Node::start("g0-n3").await;
    let mut miroirs = Vec::new();
    for _ in 0..2 {
        let store = miroir::store::redis::RedisStore::connect(&store_fixtures::redis_url(), &cleanup.prefix).await.expect("connect to redis (REDIS_URL)");
        miroirs.push(consistency::serve_in_process(Arc::new(store), &topology, common::test_options()).await);
    }
    let apis: Vec<Api> = miroirs.iter().map(|m| m.api.clone()).collect();
    for m in &miroirs {
        common::wait_serving(&m.proxy, &topology).await;
    }
    let mut w = Writer::new(INDEX, apis.clone());
    w.create_index().await;
    let n = docs() / 2;
    w.upsert_batches(0..n, 500, 1).await;
    w.settle().await;

    let state = Arc::new(ReadState::default());
    let readers = spawn_readers(&apis, INDEX, w.book.clone(), state.clone(), 1);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(w, n, stop.clone());
    let (s, b) = post(&apis[1], "/_miroir/nodes", &json!({"id": "g0-n3", "address": fourth.url})).await;
    assert_eq!(s, 202, "{b}");
    let (status, seen) = wait_migrated(&apis[0], None).await;
    eprintln!("[C] phases seen through the other Miroir {seen:?}; {}", status["last"]["documentsCopied"]);
    // Both route by the same placement afterwards.
    let a0 = apis[0].get("/_miroir/topology").await.body;
    let a1 = apis[1].get("/_miroir/topology").await.body;
    assert_eq!(a0["assignment"], a1["assignment"]);
    assert_eq!(a0["nodes"].as_array().unwrap().len(), 4);

    stop.store(true, Ordering::SeqCst);
    let w = writer.await.unwrap();
    let n_reads = state.reads.load(Ordering::SeqCst);
    wait_reads(&state, n_reads + 10).await;
    stop_readers(&state, readers).await;
    eprintln!("[C] readers: {}", state.report());
    let acked = w.acked();
    let mut all: Vec<&Node> = nodes3.iter().collect();
    all.push(&fourth);
    let fleet = Fleet { miroirs: apis.clone(), nodes: all.iter().map(|n| (n.id.clone(), Api::node(n.url.clone()))).collect() };
    assert_exactly_acknowledged(&fleet, INDEX, &acked).await;
    state.assert_none_stale();
}

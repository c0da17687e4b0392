//! Replica catch-up: `cargo bench --bench catchup`. Plain `fn main`; prints a table. Not run
//! in CI.
//!
//! Two nodes, one per replica group, RF=1, 16 shards (each node holds every shard), Miroir in
//! this process on a SQLite store in a temporary directory, the anti-entropy check off. The
//! nodes come from the tests' engine seam (`tests/common/engine.rs`): real Meilisearch with
//! `MEILI_BIN` (or `meilisearch` on PATH), else the in-repo test node.
//!
//! 1. Replay: node `g0-n0` is killed, N documents are written (batches of 1,000, each task
//!    waited for), the node is restarted; timed from its restart until `/_miroir/topology`
//!    shows every node caught up. Documents/s = N / that time.
//! 2. Rebuild: 30,000 documents written, node `g0-n0` killed and its data dir wiped, restarted
//!    empty; timed from its restart until caught up (its whole shard set copied from the
//!    other group).
//! 3. Store bytes per pending document, from row 1: the store's `missed_summary` bytes (the
//!    operations' bodies) and the growth of the SQLite files (`miroir.db` + `-wal`, which
//!    also holds the N/1,000 task records) between the kill and the restart, each divided by N.
//!
//! Env: `BENCH_CATCHUP_DOCS` (default `5000,20000`): the N of the replay rows;
//! `BENCH_REBUILD_DOCS` (default 30000); `BENCH_BATCH` (default 1000); `MEILI_BIN`.

#[path = "../tests/common/mod.rs"]
#[allow(dead_code)]
mod common;
#[path = "../tests/common/consistency.rs"]
#[allow(dead_code)]
mod consistency;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Node, Spec};
use consistency::{env_u64, node_views, serve_in_process, start_nodes, view_of, wait_all_caught_up, Api, InProcess, Writer};
use miroir::config::{ReplicationConfig, TaskStoreConfig};
use miroir::dataplane::topology::Topology;

const INDEX: &str = "catchup";
const BOUND: Duration = Duration::from_secs(1800);

struct Setup {
    nodes: Vec<Node>,
    miroir: InProcess,
    dir: tempfile::TempDir,
    _topology: Topology,
}

fn store_bytes(dir: &Path) -> u64 {
    ["miroir.db", "miroir.db-wal", "miroir.db-shm"]
        .iter()
        .filter(|f| !f.ends_with("-shm"))
        .map(|f| std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0))
        .sum()
}

async fn setup() -> Setup {
    let (nodes, topology) = start_nodes(&Spec { shards: 16, replication_factor: 1, groups: vec![1, 1] }).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = TaskStoreConfig { path: dir.path().join("miroir.db"), ..TaskStoreConfig::default() };
    let store = miroir::store::open(&cfg).await.expect("open sqlite store");
    let mut options = common::test_options();
    options.replication = ReplicationConfig { anti_entropy_interval_ms: 0, replay_interval_ms: 100, ..ReplicationConfig::default() };
    let miroir = serve_in_process(store, &topology, options).await;
    wait_all_caught_up(std::slice::from_ref(&miroir.api), BOUND, None).await;
    Setup { nodes, miroir, dir, _topology: topology }
}

struct Replay {
    docs: u64,
    pending_ops: u64,
    summary_bytes: u64,
    file_growth: u64,
    took: Duration,
}

async fn replay(n: u64, batch: u64) -> Replay {
    let mut s = setup().await;
    let api = s.miroir.api.clone();
    let mut w = Writer::new(INDEX, vec![api.clone()]);
    w.create_index().await;
    let victim = s.nodes[0].id.clone();
    s.nodes[0].kill().await;
    let before = store_bytes(s.dir.path());
    w.upsert_batches(0..n, batch, 1).await;
    w.settle().await;
    let summary = s.miroir.proxy.store().missed_summary(&victim).await.expect("missed summary");
    let file_growth = store_bytes(s.dir.path()).saturating_sub(before);
    let view = view_of(&node_views(&api).await, &victim).clone();
    assert_eq!(view.pending_operations, summary.pending, "{view:?}");
    s.nodes[0].restart().await;
    let start = Instant::now();
    wait_all_caught_up(std::slice::from_ref(&api), BOUND, None).await;
    let took = start.elapsed();
    check_count(&api, n).await;
    Replay { docs: n, pending_ops: summary.pending, summary_bytes: summary.bytes, file_growth, took }
}

async fn rebuild(n: u64, batch: u64) -> Duration {
    let mut s = setup().await;
    let api = s.miroir.api.clone();
    let mut w = Writer::new(INDEX, vec![api.clone()]);
    w.create_index().await;
    w.upsert_batches(0..n, batch, 1).await;
    w.settle().await;
    s.nodes[0].wipe().await;
    // Miroir notices it is gone before it comes back empty.
    let deadline = Instant::now() + Duration::from_secs(60);
    while view_of(&node_views(&api).await, &s.nodes[0].id).health == "healthy" {
        assert!(Instant::now() < deadline, "the wiped node was never seen down");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.nodes[0].restart().await;
    let start = Instant::now();
    wait_all_caught_up(std::slice::from_ref(&api), BOUND, None).await;
    let took = start.elapsed();
    // the rebuilt node alone must hold everything
    let node = Api::node(s.nodes[0].url.clone());
    let a = node.get(&format!("/indexes/{INDEX}/stats")).await;
    assert_eq!(a.body["numberOfDocuments"].as_u64(), Some(n), "rebuilt node: {}", a.body);
    took
}

async fn check_count(api: &Api, n: u64) {
    let a = api.get(&format!("/indexes/{INDEX}/stats")).await;
    assert_eq!(a.body["numberOfDocuments"].as_u64(), Some(n), "{}", a.body);
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let engine = common::engine().describe();
        let batch = env_u64("BENCH_BATCH", 1000);
        let ns: Vec<u64> = std::env::var("BENCH_CATCHUP_DOCS")
            .unwrap_or_else(|_| "5000,20000".into())
            .split(',')
            .map(|x| x.trim().parse().expect("BENCH_CATCHUP_DOCS: numbers separated by commas"))
            .collect();
        let rebuild_docs = env_u64("BENCH_REBUILD_DOCS", 30_000);
        println!("catch-up bench; nodes: {engine}; 2 nodes (1 per group, RF=1, 16 shards), SQLite store, batches of {batch}");
        let mut rows = Vec::new();
        for n in &ns {
            eprintln!("replay of {n} pending documents...");
            rows.push(replay(*n, batch).await);
        }
        eprintln!("rebuild of {rebuild_docs} documents...");
        let rebuilt = rebuild(rebuild_docs, batch).await;

        println!();
        println!("| measurement | documents | pending ops | time (s) | documents/s | store bytes/doc (summary) | store bytes/doc (SQLite files) |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for r in &rows {
            println!(
                "| replay: restart -> caught-up | {} | {} | {:.2} | {:.0} | {:.1} | {:.1} |",
                r.docs,
                r.pending_ops,
                r.took.as_secs_f64(),
                r.docs as f64 / r.took.as_secs_f64(),
                r.summary_bytes as f64 / r.docs as f64,
                r.file_growth as f64 / r.docs as f64
            );
        }
        println!(
            "| rebuild: wipe + restart -> caught-up | {} | - | {:.2} | {:.0} | - | - |",
            rebuild_docs,
            rebuilt.as_secs_f64(),
            rebuild_docs as f64 / rebuilt.as_secs_f64()
        );
    });
}

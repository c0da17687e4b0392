//! Data movement: `cargo bench --bench rebalance`. Plain `fn main`; prints a table. Not run in
//! CI.
//!
//! Three nodes (one group, RF=1, the default shard count unless `BENCH_SHARDS`), Miroir in this
//! process on a SQLite store, N documents written through Miroir (batches of 1,000). Then:
//! 1. a 4th node is added (`POST /_miroir/nodes`), timed from the request until
//!    `GET /_miroir/rebalance` says the migration is done;
//! 2. that node is drained again (`POST /_miroir/nodes/{id}/drain`), timed the same way.
//! Each row: shards moved, documents copied, seconds, documents/s (copied / seconds), and the
//! share of all documents that moved against the optimum (1/(N+1) when adding, 1/N when
//! draining one of N).
//!
//! Env: `BENCH_REBALANCE_DOCS` (default 60000), `BENCH_SHARDS`, `BENCH_BATCH` (1000),
//! `MEILI_BIN` (real Meilisearch; else the in-repo test node).

#[path = "../tests/common/mod.rs"]
#[allow(dead_code)]
mod common;
#[path = "../tests/common/consistency.rs"]
#[allow(dead_code)]
mod consistency;

use std::time::{Duration, Instant};

use common::{Node, Spec};
use consistency::{env_u64, serve_in_process, start_nodes, wait_all_caught_up, Api, Writer};
use miroir::config::{ReplicationConfig, TaskStoreConfig};
use serde_json::{json, Value};

const INDEX: &str = "rebalance";
const BOUND: Duration = Duration::from_secs(3600);

async fn wait_done(api: &Api, previous: Option<&str>) -> Value {
    let deadline = Instant::now() + BOUND;
    loop {
        let a = api.get("/_miroir/rebalance").await;
        let last = &a.body["last"];
        if a.body["phase"] == "idle" && last["phase"] == "done" && last["id"].as_str() != previous {
            return last.clone();
        }
        if let Some(e) = a.body["migration"]["error"].as_str() {
            eprintln!("  (executor retrying after: {e})");
        }
        assert!(Instant::now() < deadline, "migration did not end: {}", a.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Row {
    what: &'static str,
    shards: u64,
    copied: u64,
    took: Duration,
    optimum: f64,
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let docs = env_u64("BENCH_REBALANCE_DOCS", 60_000);
        let batch = env_u64("BENCH_BATCH", 1_000);
        let shards = env_u64("BENCH_SHARDS", miroir::dataplane::placement::DEFAULT_SHARDS as u64) as u32;
        let engine = common::engine().describe();
        let (nodes, topology) = start_nodes(&Spec { shards, replication_factor: 1, groups: vec![3] }).await;
        let fourth = Node::start("g0-n3").await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = TaskStoreConfig { path: dir.path().join("miroir.db"), ..TaskStoreConfig::default() };
        let store = miroir::store::open(&cfg).await.expect("open sqlite store");
        let mut options = common::test_options();
        options.replication = ReplicationConfig { anti_entropy_interval_ms: 0, ..ReplicationConfig::default() };
        let m = serve_in_process(store, &topology, options).await;
        let api = m.api.clone();
        wait_all_caught_up(std::slice::from_ref(&api), BOUND, None).await;
        let mut w = Writer::new(INDEX, vec![api.clone()]);
        w.create_index().await;
        eprintln!("writing {docs} documents...");
        w.upsert_batches(0..docs, batch, 1).await;
        w.settle().await;

        let mut rows = Vec::new();
        eprintln!("adding a 4th node...");
        let t = Instant::now();
        let a = api.post("/_miroir/nodes", &json!({"id": "g0-n3", "address": fourth.url})).await;
        assert_eq!(a.status, 202, "{}", a.body);
        let added = wait_done(&api, None).await;
        rows.push(Row {
            what: "add a 4th node to 3",
            shards: added["shardsTotal"].as_u64().unwrap_or(0),
            copied: added["documentsCopied"].as_u64().unwrap_or(0),
            took: t.elapsed(),
            optimum: 1.0 / 4.0,
        });
        eprintln!("draining it...");
        let t = Instant::now();
        let a = api.post("/_miroir/nodes/g0-n3/drain", &json!({})).await;
        assert_eq!(a.status, 202, "{}", a.body);
        let drained = wait_done(&api, added["id"].as_str()).await;
        rows.push(Row {
            what: "drain one node of 4",
            shards: drained["shardsTotal"].as_u64().unwrap_or(0),
            copied: drained["documentsCopied"].as_u64().unwrap_or(0),
            took: t.elapsed(),
            optimum: 1.0 / 4.0,
        });

        println!("rebalance bench; nodes: {engine}; {docs} documents, {shards} shards, RF=1, SQLite store, default throttling (none), 2 shard moves at a time");
        println!();
        println!("| change | shards moved | documents copied | share of documents moved | × optimum | time (s) | documents/s |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for r in rows {
            let share = r.copied as f64 / docs as f64;
            println!(
                "| {} | {} | {} | {:.1} % | {:.2} | {:.1} | {:.0} |",
                r.what,
                r.shards,
                r.copied,
                share * 100.0,
                share / r.optimum,
                r.took.as_secs_f64(),
                r.copied as f64 / r.took.as_secs_f64()
            );
        }
        drop(m);
        drop(nodes);
    });
}

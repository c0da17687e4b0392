//! Proxy overhead: the same searches straight to one node and through Miroir over that one
//! node, side by side: `cargo bench --bench proxy`. Plain `fn main`; prints a table. Not run
//! in CI.
//!
//! The node is the in-repo test node (in this process), or a real Meilisearch process when
//! `MEILI_BIN` names its executable. Miroir runs in this process over a topology of that one
//! node (16 shards, RF=1), with a SQLite task store in a temporary directory.
//!
//! Two indexes get the same corpus and settings: `bench_direct`, written straight to the
//! node, and `bench_miroir`, written through Miroir. Three paths are then timed with the
//! same fixed queries, run sequentially over keep-alive HTTP:
//! - `direct`: node, index `bench_direct`;
//! - `direct(miroir's index)`: node, index `bench_miroir` (control: the node's own cost on
//!   the index as Miroir laid it out, with its `_miroir_shard` field);
//! - `miroir(1 node)`: Miroir, index `bench_miroir`.
//!
//! Rounds are interleaved (round r runs every query on every path, in turn) so drift of a
//! shared machine hits each path alike. CPU time is this process's utime+stime from
//! `/proc/self/stat` (plus the Meilisearch process's with `MEILI_BIN`), summed over each
//! path's slices: it holds the client, the node and Miroir. The client's work is the same on
//! every path; the node's grows through Miroir (its sub-query asks for more), so the
//! difference is Miroir's whole CPU cost per search, own work plus extra node work. Its
//! resolution is one clock tick (10 ms), hence the many requests.
//!
//! Env: `BENCH_ROUNDS` (default 20) rounds of every query per path, `BENCH_DOCS` (default
//! 5000) documents, `MEILI_BIN` (optional) a Meilisearch executable, `BENCH_PER_QUERY`
//! (set to anything) also prints p50 per query and path.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use miroir::config::{HealthConfig, Keys, ScatterConfig, Secret, TaskStoreConfig};
use miroir::dataplane::server::{self, ServerHandle};
use miroir::dataplane::topology::{NodeSpec, Topology};
use miroir::dataplane::{Proxy, ProxyOptions};
use serde_json::Value;

const MASTER_KEY: &str = "miroir-bench-master-key";
const NODE_KEY: &str = "node-bench-master-key";
const DIRECT_INDEX: &str = "bench_direct";
const MIROIR_INDEX: &str = "bench_miroir";
const BATCH: usize = 1000;

// The corpus the end-to-end tests use too.
use miroir_testnode::corpus::document;

#[path = "support/queries.rs"]
mod queries;
use queries::queries;
#[path = "support/process.rs"]
mod process;
use process::{cpu_ticks, wait_healthy};
#[path = "support/endpoint.rs"]
mod endpoint;
use endpoint::Endpoint;

// ---------------------------------------------------------------------------------------
// CPU time.

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every usual Linux).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

// ---------------------------------------------------------------------------------------
// The node and Miroir.

enum NodeKind {
    TestNode(#[allow(dead_code)] miroir_testnode::TestNode),
    Process { child: tokio::process::Child, _dir: tempfile::TempDir },
}

struct Setup {
    node_url: String,
    node: NodeKind,
    miroir_url: String,
    _server: ServerHandle,
    _db_dir: tempfile::TempDir,
}

impl Setup {
    /// CPU ticks of everything on the measured paths: this process and, with `MEILI_BIN`,
    /// the Meilisearch process.
    fn cpu_ticks(&self) -> u64 {
        let node = match &self.node {
            NodeKind::Process { child, .. } => child.id().map(|p| cpu_ticks(&p.to_string())).unwrap_or(0),
            NodeKind::TestNode(_) => 0,
        };
        cpu_ticks("self") + node
    }
}

async fn start() -> Setup {
    let (node_url, node) = match std::env::var_os("MEILI_BIN") {
        Some(bin) => {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let dir = tempfile::tempdir().unwrap();
            let child = tokio::process::Command::new(PathBuf::from(bin))
                .arg("--http-addr")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--db-path")
                .arg(dir.path().join("data.ms"))
                .arg("--master-key")
                .arg(NODE_KEY)
                .arg("--no-analytics")
                .arg("--env")
                .arg("development")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("start meilisearch (MEILI_BIN)");
            let url = format!("http://127.0.0.1:{port}");
            wait_healthy(&url).await;
            (url, NodeKind::Process { child, _dir: dir })
        }
        None => {
            let n = miroir_testnode::TestNode::start(Some(NODE_KEY.into())).await.expect("start test node");
            (n.url(), NodeKind::TestNode(n))
        }
    };

    let options = ProxyOptions {
        keys: Keys {
            master_key: Secret(Some(MASTER_KEY.into())),
            node_master_key: Secret(Some(NODE_KEY.into())),
            admin_api_key: Secret(None),
        },
        health: HealthConfig::default(),
        scatter: ScatterConfig { node_timeout_ms: 30_000, ..ScatterConfig::default() },
        max_body_bytes: 100 * 1024 * 1024,
        replication: Default::default(),
        rebalance: Default::default(),
    };
    let db_dir = tempfile::tempdir().unwrap();
    let cfg = TaskStoreConfig { path: db_dir.path().join("miroir.db"), ..TaskStoreConfig::default() };
    let store = miroir::store::open(&cfg).await.expect("open sqlite store");
    let proxy = Proxy::new(options, store);
    proxy
        .apply_topology(Topology {
            shards: 16,
            replication_factor: 1,
            replica_groups: 1,
            nodes: vec![NodeSpec { id: "n0".into(), address: node_url.clone(), replica_group: 0 }],
        })
        .expect("valid topology");
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let server = server::spawn(proxy, listener);
    Setup { node_url, node, miroir_url: server.url(), _server: server, _db_dir: db_dir }
}

// ---------------------------------------------------------------------------------------
// HTTP.


struct Path {
    name: &'static str,
    endpoint: Endpoint,
    index: &'static str,
    latencies: Vec<Duration>,
    /// Latencies per query (same order as `queries()`).
    per_query: Vec<Vec<Duration>>,
    wall: Duration,
    cpu_ticks: u64,
}

/// Ids of the hits and the total of a search answer: what both paths must agree on.
fn summary(v: &Value) -> (Vec<Value>, Value) {
    let ids = v["hits"].as_array().map(|h| h.iter().map(|d| d["id"].clone()).collect()).unwrap_or_default();
    let total = v.get("estimatedTotalHits").or_else(|| v.get("totalHits")).cloned().unwrap_or(Value::Null);
    (ids, total)
}

fn pct_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64) * p).ceil().max(1.0) as usize - 1;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

struct Stats {
    requests: usize,
    p50: f64,
    p99: f64,
    mean: f64,
    rps: f64,
    cpu_ms: f64,
}

fn stats(p: &Path, tick_ms: f64) -> Stats {
    let mut l = p.latencies.clone();
    l.sort();
    let n = l.len().max(1);
    Stats {
        requests: l.len(),
        p50: pct_ms(&l, 0.50),
        p99: pct_ms(&l, 0.99),
        mean: l.iter().sum::<Duration>().as_secs_f64() * 1e3 / n as f64,
        rps: l.len() as f64 / p.wall.as_secs_f64().max(1e-9),
        cpu_ms: p.cpu_ticks as f64 * tick_ms / n as f64,
    }
}

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let ndocs: u64 = std::env::var("BENCH_DOCS").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    let per_query = std::env::var_os("BENCH_PER_QUERY").is_some();
    let tick_ms = 1000.0 / clock_ticks();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let setup = Arc::new(start().await);
        let node_kind = if matches!(setup.node, NodeKind::Process { .. }) { "Meilisearch (MEILI_BIN)" } else { "in-repo test node" };
        let node = Endpoint::new(&setup.node_url, NODE_KEY, 4);
        let miroir = Endpoint::new(&setup.miroir_url, MASTER_KEY, 4);

        let t0 = Instant::now();
        let docs: Vec<Value> = (0..ndocs).map(document).collect();
        node.load(DIRECT_INDEX, &docs, BATCH).await;
        miroir.load(MIROIR_INDEX, &docs, BATCH).await;
        eprintln!("loaded {ndocs} documents into {DIRECT_INDEX} (node) and {MIROIR_INDEX} (Miroir) in {:.1?}", t0.elapsed());

        let queries: Vec<(&str, Vec<u8>)> = queries().into_iter().map(|(n, q)| (n, serde_json::to_vec(&q).unwrap())).collect();
        let mut paths = vec![
            Path { name: "direct", endpoint: node.clone(), index: DIRECT_INDEX, latencies: vec![], per_query: vec![vec![]; queries.len()], wall: Duration::ZERO, cpu_ticks: 0 },
            Path {
                name: "direct(miroir's index)",
                endpoint: node.clone(),
                index: MIROIR_INDEX,
                latencies: vec![],
                per_query: vec![vec![]; queries.len()],
                wall: Duration::ZERO,
                cpu_ticks: 0,
            },
            Path { name: "miroir(1 node)", endpoint: miroir.clone(), index: MIROIR_INDEX, latencies: vec![], per_query: vec![vec![]; queries.len()], wall: Duration::ZERO, cpu_ticks: 0 },
        ];

        // Check (and warm up): every query answers 200 on every path, with the same hits.
        let mut mismatches = Vec::new();
        for (name, body) in &queries {
            let mut answers = Vec::new();
            for p in &paths {
                let (s, b) = p.endpoint.send(reqwest::Method::POST, &format!("/indexes/{}/search", p.index), "application/json", Some(body.clone())).await;
                assert_eq!(s, 200, "query `{name}` on {}: {}", p.name, String::from_utf8_lossy(&b));
                answers.push(summary(&serde_json::from_slice(&b).expect("search answer is JSON")));
            }
            if answers.iter().any(|a| *a != answers[0]) {
                mismatches.push(*name);
            }
        }

        for _ in 0..rounds {
            for p in paths.iter_mut() {
                let path = format!("/indexes/{}/search", p.index);
                let cpu0 = setup.cpu_ticks();
                let start = Instant::now();
                for (qi, (name, body)) in queries.iter().enumerate() {
                    let t = Instant::now();
                    let (s, b) = p.endpoint.send(reqwest::Method::POST, &path, "application/json", Some(body.clone())).await;
                    let l = t.elapsed();
                    p.latencies.push(l);
                    p.per_query[qi].push(l);
                    assert_eq!(s, 200, "query `{name}` on {}: {}", p.name, String::from_utf8_lossy(&b));
                }
                p.wall += start.elapsed();
                p.cpu_ticks += setup.cpu_ticks().saturating_sub(cpu0);
            }
        }

        if per_query {
            println!();
            println!("{:<22} | {:>12} | {:>12} | {:>12} | {:>9}", "query (p50 ms)", "direct", "control", "miroir", "miroir-direct");
            for (qi, (name, _)) in queries.iter().enumerate() {
                let p50 = |p: &Path| {
                    let mut l = p.per_query[qi].clone();
                    l.sort();
                    pct_ms(&l, 0.5)
                };
                let (d, c, m) = (p50(&paths[0]), p50(&paths[1]), p50(&paths[2]));
                println!("{name:<22} | {d:>12.3} | {c:>12.3} | {m:>12.3} | {:>+9.3}", m - d);
            }
        }

        println!();
        println!(
            "node: {node_kind}; {ndocs} documents; {} queries x {rounds} rounds per path; Miroir: 1 node, 16 shards, RF=1",
            queries.len()
        );
        println!("{:<24} | {:>8} | {:>7} | {:>7} | {:>7} | {:>7} | {:>10}", "path", "requests", "p50 ms", "p99 ms", "mean ms", "req/s", "CPU ms/req");
        println!("{}", "-".repeat(24 + 8 + 7 * 4 + 10 + 6 * 3));
        let all: Vec<Stats> = paths.iter().map(|p| stats(p, tick_ms)).collect();
        for (p, s) in paths.iter().zip(&all) {
            println!(
                "{:<24} | {:>8} | {:>7.3} | {:>7.3} | {:>7.3} | {:>7.0} | {:>10.3}",
                p.name, s.requests, s.p50, s.p99, s.mean, s.rps, s.cpu_ms
            );
        }
        let (d, c, m) = (&all[0], &all[1], &all[2]);
        println!(
            "overhead vs direct:                 p50 {:+.3} ms, p99 {:+.3} ms, mean {:+.3} ms, CPU {:+.3} ms/req",
            m.p50 - d.p50,
            m.p99 - d.p99,
            m.mean - d.mean,
            m.cpu_ms - d.cpu_ms
        );
        println!(
            "overhead vs direct(miroir's index): p50 {:+.3} ms, p99 {:+.3} ms, mean {:+.3} ms, CPU {:+.3} ms/req",
            m.p50 - c.p50,
            m.p99 - c.p99,
            m.mean - c.mean,
            m.cpu_ms - c.cpu_ms
        );
        println!("CPU: utime+stime of {}, resolution {tick_ms:.0} ms per slice of {} requests", if matches!(setup.node, NodeKind::Process { .. }) { "this process + Meilisearch" } else { "this process (client, node and Miroir)" }, queries.len());
        if mismatches.is_empty() {
            println!("answers: every query returned the same hit ids and total on every path");
        } else {
            println!("answers DIFFER between paths for: {}", mismatches.join(", "));
        }
    });
}

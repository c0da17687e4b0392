//! The search path against real Meilisearch, side by side in one run (issue 13):
//! `MEILI_BIN=/path/to/meilisearch cargo bench --bench search_path`. Plain `fn main`; prints
//! one table and the targets; not run in CI (it needs a Meilisearch executable).
//!
//! What runs, all on this machine, every process separate so its CPU and memory are its own:
//! - four Meilisearch processes (`--max-indexing-threads 1`): `d` holds the whole corpus on its
//!   own (index `direct`), `a`, `b`, `c` are a 3-node cluster;
//! - `miroir serve` over `d` alone (Miroir(1 node), index `bench`, on `d` beside `direct`), and
//!   `miroir serve` over `a`, `b`, `c` (Miroir(3 nodes), index `bench`, S shards, RF=1, one
//!   group: each node holds a third);
//! - Meilisearch's own network search over `a`, `b`, `c`: index `net` split by this client
//!   (document i on node i mod 3), the `network` experimental feature on, `PATCH /network`
//!   naming the three as remotes, searches to `a` with `useNetwork: true`.
//!
//! Measured per path, rounds interleaved so a shared machine's drift hits every path alike:
//! p50 and p99 of sequential searches (the fixed query mix, `BENCH_ROUNDS` rounds); req/s with
//! 8 concurrent connections for `BENCH_SECONDS`; Miroir's CPU per search (its process's
//! utime+stime over the concurrent phase, divided by the searches). Then Miroir(3 nodes)'s
//! RSS idle and its peak with 256 searches in flight; the peak RSS of one NDJSON upload of
//! `BENCH_UPLOAD_MB` MiB through it (0 skips); and ingest: the corpus loaded through Miroir(3
//! nodes) against the same batches split by the client itself over the same nodes.
//!
//! Env: `MEILI_BIN` (required), `BENCH_DOCS` (20000), `BENCH_ROUNDS` (10), `BENCH_SECONDS` (5),
//! `BENCH_SHARDS` (64), `BENCH_UPLOAD_MB` (100). docs/benchmarks.md keeps the latest table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "support/queries.rs"]
mod queries;
#[path = "support/process.rs"]
mod process;
#[path = "support/endpoint.rs"]
mod endpoint;
use endpoint::Endpoint;
use process::wait_healthy;
use miroir_testnode::corpus::document;

const MASTER_KEY: &str = "miroir-bench-master-key";
const NODE_KEY: &str = "node-bench-master-key";
const BATCH: usize = 1000;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

// ---------------------------------------------------------------------------------------
// Processes.

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Proc {
    child: tokio::process::Child,
    url: String,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// utime+stime in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        process::cpu_ticks(&self.pid().to_string())
    }

    /// A `VmRSS` / `VmHWM` line of /proc/PID/status, in MiB.
    fn mem_mib(&self, key: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(f64::NAN)
    }

    /// Resets the peak RSS (`VmHWM`) to the current RSS.
    fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5");
    }
}

async fn start_meilisearch(bin: &Path, dir: &Path, name: &str) -> Proc {
    let port = free_port();
    let child = tokio::process::Command::new(bin)
        .args(["--http-addr", &format!("127.0.0.1:{port}")])
        .arg("--db-path")
        .arg(dir.join(format!("{name}.ms")))
        .arg("--dump-dir")
        .arg(dir.join(format!("{name}.dumps")))
        .args(["--master-key", NODE_KEY, "--no-analytics", "--env", "development", "--max-indexing-threads", "1"])
        // Network search between nodes on loopback.
        .env("MEILI_EXPERIMENTAL_ALLOWED_IP_NETWORKS", "any")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start meilisearch (MEILI_BIN)");
    let url = format!("http://127.0.0.1:{port}");
    wait_healthy(&url).await;
    Proc { child, url }
}

async fn start_miroir(dir: &Path, name: &str, nodes: &[&Proc], shards: u64) -> Proc {
    let port = free_port();
    let list: Vec<String> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| format!("  - {{ id: {name}-n{i}, address: \"{}\", replica_group: 0 }}", n.url))
        .collect();
    let config = format!(
        "shards: {shards}\nreplication_factor: 1\nreplica_groups: 1\nnodes:\n{}\ntask_store:\n  backend: sqlite\n  path: {}\nserver:\n  bind: 127.0.0.1\n  port: {port}\n  max_body_bytes: 1073741824\nscatter:\n  node_timeout_ms: 60000\n",
        list.join("\n"),
        dir.join(format!("{name}.db")).display()
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, config).unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_miroir"))
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .env("MIROIR_MASTER_KEY", MASTER_KEY)
        .env("MIROIR_NODE_MASTER_KEY", NODE_KEY)
        .env("MIROIR_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start miroir");
    let url = format!("http://127.0.0.1:{port}");
    wait_healthy(&url).await;
    Proc { child, url }
}

// ---------------------------------------------------------------------------------------
// HTTP.


/// The same batches, each split by the client over `nodes` (document i to node i mod n),
/// the parts sent at once and all waited for: what a client splitting its data itself does.
async fn load_split(nodes: &[Endpoint], index: &str, docs: &[Value]) -> Duration {
    for n in nodes {
        n.create(index).await;
    }
    let t = Instant::now();
    for (b, chunk) in docs.chunks(BATCH).enumerate() {
        let parts = nodes.iter().enumerate().map(|(k, n)| {
            let part: Vec<Value> =
                chunk.iter().enumerate().filter(|(i, _)| (b * BATCH + i) % nodes.len() == k).map(|(_, d)| d.clone()).collect();
            async move { n.write(reqwest::Method::POST, &format!("/indexes/{index}/documents"), &Value::from(part)).await }
        });
        futures::future::join_all(parts).await;
    }
    t.elapsed()
}

// ---------------------------------------------------------------------------------------
// Measurement.

struct SearchPath {
    name: &'static str,
    endpoint: Endpoint,
    index: &'static str,
    /// Extra body fields (`useNetwork`).
    extra: Value,
    /// The Miroir process on this path, for its CPU.
    miroir: Option<usize>,
    latencies: Vec<Duration>,
    rps: f64,
    cpu_ms: Option<f64>,
}

impl SearchPath {
    fn path(&self) -> String {
        format!("/indexes/{}/search", self.index)
    }

    fn body(&self, q: &Value) -> Vec<u8> {
        let mut q = q.clone();
        if let (Some(m), Some(e)) = (q.as_object_mut(), self.extra.as_object()) {
            m.extend(e.clone());
        }
        serde_json::to_vec(&q).unwrap()
    }
}

fn pct_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64) * p).ceil().max(1.0) as usize - 1;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

/// Whether two answers agree modulo ties: the same ranking-score details in the same order,
/// and within each run of equal details the same ids (the last run, cut by the limit, only
/// needs its ids to come from the same run on both sides, which the first check covers).
fn agree_modulo_ties(a: &Value, b: &Value) -> bool {
    let hits = |v: &Value| -> Vec<(String, Value)> {
        v["hits"]
            .as_array()
            .map(|h| h.iter().map(|d| (d["id"].to_string(), d["_rankingScoreDetails"].clone())).collect())
            .unwrap_or_default()
    };
    let (x, y) = (hits(a), hits(b));
    if x.len() != y.len() || x.iter().zip(&y).any(|(p, q)| p.1 != q.1) {
        return false;
    }
    let mut i = 0;
    while i < x.len() {
        let mut j = i;
        while j < x.len() && x[j].1 == x[i].1 {
            j += 1;
        }
        if j < x.len() {
            let mut s: Vec<&String> = x[i..j].iter().map(|h| &h.0).collect();
            let mut t: Vec<&String> = y[i..j].iter().map(|h| &h.0).collect();
            s.sort();
            t.sort();
            if s != t {
                return false;
            }
        }
        i = j;
    }
    true
}

/// `concurrency` workers searching for `seconds`, cycling through the queries; returns req/s.
async fn throughput(p: &SearchPath, queries: &[Vec<u8>], concurrency: usize, seconds: u64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let path = p.path();
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let (e, done, stop, path) = (p.endpoint.clone(), done.clone(), stop.clone(), path.clone());
            let queries = queries.to_vec();
            tokio::spawn(async move {
                let mut i = w;
                while !stop.load(Ordering::Relaxed) {
                    let (s, b) = e.send(reqwest::Method::POST, &path, "application/json", Some(queries[i % queries.len()].clone())).await;
                    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64()
}

/// An NDJSON body of about `mib` MiB of corpus documents (ids after the loaded ones).
fn ndjson_upload(mib: u64, first_id: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity((mib as usize) << 20);
    let mut i = first_id;
    while (out.len() as u64) < mib << 20 {
        serde_json::to_writer(&mut out, &document(i)).unwrap();
        out.push(b'\n');
        i += 1;
    }
    out
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

fn main() {
    let Some(bin) = std::env::var_os("MEILI_BIN").map(PathBuf::from) else {
        eprintln!("search_path: set MEILI_BIN to a Meilisearch 1.50 executable (this benchmark compares Miroir with real Meilisearch, its network search included)");
        return;
    };
    let ndocs = env_num("BENCH_DOCS", 20_000);
    let rounds = env_num("BENCH_ROUNDS", 10) as usize;
    let seconds = env_num("BENCH_SECONDS", 5);
    let shards = env_num("BENCH_SHARDS", 64);
    let upload_mib = env_num("BENCH_UPLOAD_MB", 100);
    let tick_ms = 1000.0 / 100.0; // CLK_TCK is 100 on every usual Linux.
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let (d, a, b, c) = tokio::join!(
            start_meilisearch(&bin, dir.path(), "d"),
            start_meilisearch(&bin, dir.path(), "a"),
            start_meilisearch(&bin, dir.path(), "b"),
            start_meilisearch(&bin, dir.path(), "c"),
        );
        let m1 = start_miroir(dir.path(), "m1", &[&d], shards).await;
        let m3 = start_miroir(dir.path(), "m3", &[&a, &b, &c], shards).await;
        let node = |p: &Proc| Endpoint::new(&p.url, NODE_KEY, 300);
        let (ed, ea, eb, ec) = (node(&d), node(&a), node(&b), node(&c));
        let (em1, em3) = (Endpoint::new(&m1.url, MASTER_KEY, 300), Endpoint::new(&m3.url, MASTER_KEY, 300));

        // Network search: the feature on, every node knowing the three.
        let remotes: serde_json::Map<String, Value> = [("a", &a), ("b", &b), ("c", &c)]
            .iter()
            .map(|(n, p)| (n.to_string(), json!({"url": p.url, "searchApiKey": NODE_KEY})))
            .collect();
        for (name, e) in [("a", &ea), ("b", &eb), ("c", &ec)] {
            let (s, r) = e.json(reqwest::Method::PATCH, "/experimental-features", Some(&json!({"network": true}))).await;
            assert_eq!(s, 200, "enable network: {r}");
            let (s, r) = e.json(reqwest::Method::PATCH, "/network", Some(&json!({"self": name, "remotes": remotes}))).await;
            assert_eq!(s, 200, "PATCH /network: {r}");
        }

        let docs: Vec<Value> = (0..ndocs).map(document).collect();
        let t = Instant::now();
        ed.load("direct", &docs, BATCH).await;
        em1.load("bench", &docs, BATCH).await;
        eprintln!("loaded {ndocs} documents on d (direct, and through Miroir(1 node)) in {:.1?}", t.elapsed());
        let ingest_split = load_split(&[ea.clone(), eb.clone(), ec.clone()], "net", &docs).await;
        let ingest_miroir = em3.load("bench", &docs, BATCH).await;
        eprintln!("ingest: client split {ingest_split:.1?}, Miroir(3 nodes) {ingest_miroir:.1?}");

        let miroirs = [&m1, &m3];
        let mut paths = vec![
            SearchPath { name: "node direct", endpoint: ed.clone(), index: "direct", extra: json!({}), miroir: None, latencies: vec![], rps: 0.0, cpu_ms: None },
            SearchPath { name: "Miroir(1 node)", endpoint: em1.clone(), index: "bench", extra: json!({}), miroir: Some(0), latencies: vec![], rps: 0.0, cpu_ms: None },
            SearchPath { name: "Miroir(3 nodes)", endpoint: em3.clone(), index: "bench", extra: json!({}), miroir: Some(1), latencies: vec![], rps: 0.0, cpu_ms: None },
            SearchPath {
                name: "Meilisearch network(3 nodes)",
                endpoint: ea.clone(),
                index: "net",
                extra: json!({"useNetwork": true}),
                miroir: None,
                latencies: vec![],
                rps: 0.0,
                cpu_ms: None,
            },
        ];
        let mix: Vec<(&str, Value)> = queries::queries();

        // Fidelity (and warm-up): every path against the node holding everything, modulo ties.
        let mut agree: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for (name, q) in &mix {
            let mut q = q.clone();
            q["showRankingScoreDetails"] = json!(true);
            let answers: Vec<Value> = futures::future::join_all(paths.iter().map(|p| {
                let body = p.body(&q);
                async move {
                    let (s, b) = p.endpoint.send(reqwest::Method::POST, &p.path(), "application/json", Some(body)).await;
                    assert_eq!(s, 200, "query `{name}` on {}: {}", p.name, String::from_utf8_lossy(&b));
                    serde_json::from_slice(&b).unwrap()
                }
            }))
            .await;
            for (p, ans) in paths.iter().zip(&answers).skip(1) {
                let e = agree.entry(p.name).or_default();
                e.1 += 1;
                if agree_modulo_ties(&answers[0], ans) {
                    e.0 += 1;
                }
            }
        }

        // Sequential latency, rounds interleaved.
        let bodies: Vec<Vec<Vec<u8>>> = paths.iter().map(|p| mix.iter().map(|(_, q)| p.body(q)).collect()).collect();
        for _ in 0..rounds {
            for (p, bodies) in paths.iter_mut().zip(&bodies) {
                let path = p.path();
                for body in bodies {
                    let t = Instant::now();
                    let (s, b) = p.endpoint.send(reqwest::Method::POST, &path, "application/json", Some(body.clone())).await;
                    p.latencies.push(t.elapsed());
                    assert_eq!(s, 200, "{}: {}", p.name, String::from_utf8_lossy(&b));
                }
            }
        }
        // Throughput at 8 connections, and Miroir's CPU per search meanwhile.
        for (p, bodies) in paths.iter_mut().zip(&bodies) {
            let cpu0 = p.miroir.map(|i| miroirs[i].cpu_ticks());
            let started = Instant::now();
            p.rps = throughput(p, bodies, 8, seconds).await;
            let n = p.rps * started.elapsed().as_secs_f64();
            if let (Some(i), Some(c0)) = (p.miroir, cpu0) {
                p.cpu_ms = Some((miroirs[i].cpu_ticks() - c0) as f64 * tick_ms / n.max(1.0));
            }
        }

        // Memory of Miroir(3 nodes): idle, then 256 searches in flight.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_idle = m3.mem_mib("VmRSS:");
        m3.reset_peak();
        let _ = throughput(&paths[2], &bodies[2], 256, seconds.min(3)).await;
        let rss_256 = m3.mem_mib("VmHWM:");

        // One large NDJSON upload through Miroir(3 nodes): its peak RSS over idle.
        let upload = if upload_mib > 0 {
            let body = ndjson_upload(upload_mib, ndocs);
            let idle = m3.mem_mib("VmRSS:");
            m3.reset_peak();
            let t = Instant::now();
            let uid = em3.enqueue(reqwest::Method::POST, "/indexes/upload/documents?primaryKey=id", "application/x-ndjson", body).await;
            let took = t.elapsed();
            let peak = m3.mem_mib("VmHWM:");
            let _ = uid; // indexing goes on in the nodes; not waited for.
            Some((idle, peak, took))
        } else {
            None
        };

        // ---- the table.
        println!();
        println!(
            "Meilisearch {} (MEILI_BIN), {} documents, {} queries x {rounds} rounds sequential, {seconds} s at 8 connections per path; Miroir: {shards} shards, RF=1, release build",
            version(&ed).await,
            ndocs,
            mix.len()
        );
        println!("| path | p50 ms | p99 ms | req/s at 8 connections | Miroir CPU ms per search | answers as node direct (modulo ties) |");
        println!("|---|---:|---:|---:|---:|---:|");
        let mut p50 = Vec::new();
        for p in &mut paths {
            p.latencies.sort();
            let (a50, a99) = (pct_ms(&p.latencies, 0.5), pct_ms(&p.latencies, 0.99));
            p50.push(a50);
            let cpu = p.cpu_ms.map(|c| format!("{c:.3}")).unwrap_or_else(|| "—".into());
            let ag = agree.get(p.name).map(|(k, n)| format!("{k}/{n}")).unwrap_or_else(|| "—".into());
            println!("| {} | {a50:.2} | {a99:.2} | {:.0} | {cpu} | {ag} |", p.name, p.rps);
        }
        println!();
        println!("Miroir(3 nodes) RSS: idle {rss_idle:.1} MiB, peak with 256 searches in flight {rss_256:.1} MiB");
        if let Some((idle, peak, took)) = upload {
            println!("NDJSON upload of {upload_mib} MiB through Miroir(3 nodes): answered in {took:.1?}, peak RSS {peak:.1} MiB ({:+.1} MiB over idle)", peak - idle);
        }
        println!("ingest of {ndocs} documents in batches of {BATCH}: client split over the 3 nodes {ingest_split:.2?}, Miroir(3 nodes) {ingest_miroir:.2?}");
        println!();
        println!("targets:");
        let (dp, m1p, m3p, np) = (&paths[0], &paths[1], &paths[2], &paths[3]);
        let cpu = |p: &SearchPath| p.cpu_ms.unwrap_or(f64::NAN);
        println!("- Miroir(1 node) p50 <= direct + 0.3 ms: {:+.3} ms: {}", p50[1] - p50[0], mark(p50[1] - p50[0] <= 0.3));
        println!("- Miroir(1 node) req/s >= 0.9 x direct: {:.2}x: {}", m1p.rps / dp.rps, mark(m1p.rps >= 0.9 * dp.rps));
        println!("- Miroir(1 node) CPU <= 0.15 ms per search: {:.3}: {}", cpu(m1p), mark(cpu(m1p) <= 0.15));
        println!("- Miroir(3 nodes) req/s >= 1.25 x network: {:.2}x: {}", m3p.rps / np.rps, mark(m3p.rps >= 1.25 * np.rps));
        println!("- Miroir(3 nodes) p50 <= network p50: {:.2} vs {:.2} ms: {}", p50[2], p50[3], mark(p50[2] <= p50[3]));
        println!("- Miroir(3 nodes) CPU <= 0.3 ms per search: {:.3}: {}", cpu(m3p), mark(cpu(m3p) <= 0.3));
        println!("- RSS <= 64 MiB idle: {rss_idle:.1}: {}", mark(rss_idle <= 64.0));
        println!("- RSS <= 128 MiB with 256 in flight: {rss_256:.1}: {}", mark(rss_256 <= 128.0));
        if let Some((idle, peak, _)) = upload {
            println!("- upload peak <= idle + 64 MiB: {:+.1}: {}", peak - idle, mark(peak - idle <= 64.0));
        }
        println!("- ingest Miroir(3 nodes) <= client split: {:.2}x: {}", ingest_miroir.as_secs_f64() / ingest_split.as_secs_f64(), mark(ingest_miroir <= ingest_split));
        drop((d, a, b, c, m1, m3));
    });
}

async fn version(e: &Endpoint) -> String {
    let (_, v) = e.json(reqwest::Method::GET, "/version", None).await;
    v["pkgVersion"].as_str().unwrap_or("?").to_string()
}

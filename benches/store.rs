//! Task store throughput, SQLite vs Redis side by side: `cargo bench --bench store`.
//! Plain `std::time::Instant`; prints a table. Not run in CI.
//!
//! Env: `STORE_BENCH_OPS` (default 5000) operations per row, `REDIS_URL`
//! (default `redis://127.0.0.1:6379`). The Redis rows use a fresh random prefix that is
//! deleted afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use miroir::store::redis::RedisStore;
use miroir::store::sqlite::SqliteStore;
use miroir::store::{NewTask, NodeTask, TaskFilter, TaskPaging, TaskStatus, TaskStore};
use serde_json::json;
use time::OffsetDateTime;

const CONCURRENCY: usize = 16;

struct Row {
    backend: &'static str,
    op: String,
    ops: usize,
    elapsed: Duration,
    lat: Vec<Duration>,
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn task(i: usize) -> NewTask {
    NewTask {
        index_uid: Some(format!("index-{}", i % 8)),
        kind: "documentAdditionOrUpdate".into(),
        status: TaskStatus::Enqueued,
        enqueued_at: OffsetDateTime::now_utc(),
        details: json!({"receivedDocuments": 1000, "indexedDocuments": null}),
        error: None,
        node_tasks: (0..3).map(|n| NodeTask { node_id: format!("node-{n}"), task_uid: i as u64 }).collect(),
        custom_metadata: None,
        targets: vec![],
    }
}

async fn run(backend: &'static str, s: Arc<dyn TaskStore>, n: usize) -> Vec<Row> {
    let mut rows = Vec::new();

    // Sequential creates: one caller, latency per call.
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    let mut uids = Vec::with_capacity(n);
    for i in 0..n {
        let t0 = Instant::now();
        uids.push(s.create_task(task(i)).await.expect("create").uid);
        lat.push(t0.elapsed());
    }
    rows.push(Row { backend, op: "create (1 caller)".into(), ops: n, elapsed: start.elapsed(), lat });

    // Sequential gets of existing uids.
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let uid = uids[(i * 7919) % uids.len()];
        let t0 = Instant::now();
        assert!(s.get_task(uid).await.expect("get").is_some());
        lat.push(t0.elapsed());
    }
    rows.push(Row { backend, op: "get (1 caller)".into(), ops: n, elapsed: start.elapsed(), lat });

    // Concurrent creates.
    let start = Instant::now();
    let mut hs = Vec::new();
    for w in 0..CONCURRENCY {
        let s = s.clone();
        let per = n / CONCURRENCY;
        hs.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let t0 = Instant::now();
                s.create_task(task(w * per + i)).await.expect("create");
                lat.push(t0.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for h in hs {
        lat.extend(h.await.unwrap());
    }
    rows.push(Row {
        backend,
        op: format!("create ({CONCURRENCY} callers)"),
        ops: lat.len(),
        elapsed: start.elapsed(),
        lat,
    });

    // First page of GET /tasks (20 newest) and of a filtered listing.
    for (name, filter) in [
        ("list 20 newest", TaskFilter::default()),
        (
            "list 20, 2 indexUids",
            TaskFilter { index_uids: vec!["index-1".into(), "index-2".into()], ..Default::default() },
        ),
    ] {
        let reps = (n / 10).max(1);
        let mut lat = Vec::with_capacity(reps);
        let start = Instant::now();
        for _ in 0..reps {
            let t0 = Instant::now();
            s.list_tasks(&filter, &TaskPaging { limit: 20, from: None, reverse: false }).await.expect("list");
            lat.push(t0.elapsed());
        }
        rows.push(Row { backend, op: name.into(), ops: reps, elapsed: start.elapsed(), lat });
    }
    rows
}

fn main() {
    let n: usize = std::env::var("STORE_BENCH_OPS").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut rows = Vec::new();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(dir.path().join("bench.db")).await.expect("open sqlite");
        rows.extend(run("sqlite", Arc::new(sqlite), n).await);

        let prefix = format!("miroir-bench:{}:", uuid::Uuid::new_v4().simple());
        match RedisStore::connect(&redis_url, &prefix).await {
            Ok(redis) => {
                rows.extend(run("redis", Arc::new(redis), n).await);
                cleanup(&redis_url, &prefix).await;
            }
            Err(e) => eprintln!("redis skipped: {e}"),
        }
    });

    println!("{:<8} {:<22} {:>7} {:>10} {:>9} {:>9}", "backend", "operation", "ops", "ops/s", "p50 µs", "p99 µs");
    for mut r in rows {
        r.lat.sort();
        println!(
            "{:<8} {:<22} {:>7} {:>10.0} {:>9.0} {:>9.0}",
            r.backend,
            r.op,
            r.ops,
            r.ops as f64 / r.elapsed.as_secs_f64(),
            pct(&r.lat, 0.50),
            pct(&r.lat, 0.99)
        );
    }
}

/// Bench-only cleanup of the bench prefix (uses `KEYS`, never done by the store itself).
async fn cleanup(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut c).await.unwrap();
    for chunk in keys.chunks(500) {
        let _: () = redis::cmd("DEL").arg(chunk).query_async(&mut c).await.unwrap();
    }
}

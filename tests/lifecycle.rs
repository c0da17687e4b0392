//! `miroir serve` as a process a platform runs: `/ready` answers 503 in Meilisearch's error
//! shape, naming the reason, until the process can serve (task store open, topology applied,
//! every node probed once), then 200; SIGTERM stops accepting new connections while a
//! request already in flight completes, and the process exits cleanly.
//!
//! The real binary (`CARGO_BIN_EXE_miroir`) in front of a node from the engine seam, through
//! a gate that holds chosen node routes, so "in flight" and "not probed yet" last exactly as
//! long as the test needs (no timing).

mod common;
#[path = "common/gate.rs"]
mod gate;
#[path = "common/miroir_process.rs"]
mod miroir_process;

use std::time::Duration;

use common::{Node, ADMIN_KEY, MASTER_KEY, NODE_KEY};
use gate::Gate;
use miroir::dataplane::topology::{NodeSpec, Topology};
use miroir_process::{MiroirProcess, ProcessConfig};
use serde_json::{json, Value};

/// Upper bound for eventual conditions (they normally hold in milliseconds).
const PATIENCE: Duration = Duration::from_secs(60);

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn one_node(address: &str) -> Topology {
    Topology {
        shards: 8,
        replication_factor: 1,
        replica_groups: 1,
        nodes: vec![NodeSpec { id: "n0".into(), address: address.into(), replica_group: 0 }],
    }
}

/// A client that opens a new connection for every request (none kept idle).
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap()
}

async fn get_ready(base: &str) -> (u16, Value) {
    let r = fresh_client().get(format!("{base}/ready")).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn ready_is_503_with_the_reason_until_the_nodes_are_probed() {
    let node = Node::start("n0").await;
    let gate = Gate::start(&node.url).await;
    // The first probe waits at the gate (its timeout is longer than the test).
    gate.hold("/health");
    let mut cfg = ProcessConfig::new(one_node(&gate.url));
    cfg.health.timeout_ms = 600_000;
    let mut miroir = MiroirProcess::start(&cfg, MASTER_KEY, NODE_KEY, ADMIN_KEY).await;
    let base = miroir.url();

    eventually("the first probe reached the node", || async { gate.held("/health") > 0 }).await;
    let (code, body) = get_ready(&base).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["code"], "miroir_not_ready", "{body}");
    assert_eq!(body["type"], "system", "{body}");
    assert!(body["link"].as_str().is_some_and(|l| l.ends_with("#miroir_not_ready")), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("the nodes have not been probed yet")), "{body}");
    // Liveness is not readiness.
    assert_eq!(fresh_client().get(format!("{base}/health")).send().await.unwrap().status(), 200);

    gate.release("/health");
    eventually("/ready answers 200 once the node was probed", || async { get_ready(&base).await.0 == 200 }).await;
    let (_, body) = get_ready(&base).await;
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["nodes"], 1, "{body}");
    assert_eq!(body["healthyNodes"], 1, "{body}");
    // No key needed, as for /health.
    let r = fresh_client().get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    miroir.signal(libc::SIGTERM);
    let status = miroir.wait_exit(PATIENCE).await.expect("miroir serve exits after SIGTERM");
    assert!(status.success(), "{status}; log:\n{}", miroir.log());
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish_and_takes_no_new_one() {
    let node = Node::start("n0").await;
    let gate = Gate::start(&node.url).await;
    let cfg = ProcessConfig::new(one_node(&gate.url));
    let mut miroir = MiroirProcess::start(&cfg, MASTER_KEY, NODE_KEY, ADMIN_KEY).await;
    let base = miroir.url();
    let http = reqwest::Client::new();
    eventually("/ready", || async { get_ready(&base).await.0 == 200 }).await;

    let docs: Vec<Value> = (0..20).map(|i| json!({"id": i, "title": format!("book {i}")})).collect();
    let r = http.post(format!("{base}/indexes/books/documents?primaryKey=id")).bearer_auth(MASTER_KEY).json(&docs).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let uid = r.json::<Value>().await.unwrap()["taskUid"].as_u64().unwrap();
    eventually("the documents are indexed", || {
        let http = http.clone();
        let url = format!("{base}/tasks/{uid}");
        async move {
            let t: Value = http.get(url).bearer_auth(MASTER_KEY).send().await.unwrap().json().await.unwrap();
            assert_ne!(t["status"], "failed", "{t}");
            t["status"] == "succeeded"
        }
    })
    .await;

    // A search held at the node: in flight inside Miroir.
    gate.hold("/indexes/books/search");
    let in_flight = tokio::spawn({
        let http = http.clone();
        let url = format!("{base}/indexes/books/search");
        async move { http.post(url).bearer_auth(MASTER_KEY).json(&json!({"q": "book", "limit": 50})).send().await }
    });
    eventually("the search reached the node", || async { gate.held("/indexes/books/search") > 0 }).await;

    miroir.signal(libc::SIGTERM);
    // No new connection is taken (the listener is closed) ...
    eventually("new connections are refused", || async {
        fresh_client().get(format!("{base}/health")).timeout(Duration::from_secs(5)).send().await.is_err()
    })
    .await;
    // ... while the process waits for the request in flight.
    assert!(miroir.wait_exit(Duration::ZERO).await.is_none(), "miroir serve exited with a request in flight");

    gate.release("/indexes/books/search");
    let resp = in_flight.await.unwrap().expect("the request in flight gets its answer");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["hits"].as_array().map(Vec::len), Some(20), "{body}");
    assert_eq!(body["estimatedTotalHits"], 20, "{body}");

    let status = miroir.wait_exit(PATIENCE).await.expect("miroir serve exits once the request is answered");
    assert!(status.success(), "{status}; log:\n{}", miroir.log());
    drop(node);
}

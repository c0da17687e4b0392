//! Replica catch-up, small and focused: a node that missed writes while it was down is not
//! read from until they are replayed, writes that arrive meanwhile queue behind them, the
//! missed writes survive a Miroir restart, and afterwards each node holds exactly what was
//! acknowledged (checked on the nodes directly). The large scenarios of issue 10 are in
//! `tests/replica_consistency.rs`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{Cluster, Http, Spec};
use miroir::dataplane::hash::shard_of;
use reqwest::Method;
use serde_json::{json, Value};

fn docs(range: std::ops::Range<u64>, version: u64) -> Value {
    Value::Array(range.map(|i| json!({"id": i, "title": format!("doc {i} v{version}"), "version": version})).collect())
}

async fn write(http: &Http, body: &Value) -> u64 {
    let (s, _, b) = http.send_json(Method::POST, "/indexes/books/documents?primaryKey=id", body).await;
    assert_eq!(s, 202, "{b}");
    b["taskUid"].as_u64().unwrap()
}

async fn topology(c: &Cluster) -> Value {
    let (s, b) = c.http().with_key(common::ADMIN_KEY).get("/_miroir/topology").await;
    assert_eq!(s, 200, "{b}");
    b
}

async fn wait_all_caught_up(c: &Cluster) {
    for _ in 0..1200 {
        let t = topology(c).await;
        if t["nodes"].as_array().unwrap().iter().all(|n| n["sync"]["state"] == "caught-up" && n["health"] == "healthy") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nodes never caught up: {}", topology(c).await);
}

/// Every node holds, for each shard it holds, exactly the expected documents (id → version).
async fn assert_nodes_hold(c: &Cluster, expected: &BTreeMap<u64, u64>) {
    let routing = c.proxy.routing().unwrap();
    for (i, node) in c.nodes.iter().enumerate() {
        let held: BTreeSet<u32> = routing
            .assignment
            .groups
            .iter()
            .flat_map(|g| g.iter().enumerate().filter(|(_, h)| h.contains(&node.id)).map(|(s, _)| s as u32))
            .collect();
        let want: BTreeMap<u64, u64> =
            expected.iter().filter(|(id, _)| held.contains(&shard_of(&id.to_string(), c.topology.shards))).map(|(k, v)| (*k, *v)).collect();
        let mut got = BTreeMap::new();
        let mut offset = 0;
        loop {
            let (s, b) = c.node_http(i).post("/indexes/books/documents/fetch", &json!({"limit": 1000, "offset": offset, "fields": ["id", "version"]})).await;
            assert_eq!(s, 200, "{b}");
            let page = b["results"].as_array().unwrap();
            for d in page {
                got.insert(d["id"].as_u64().unwrap(), d["version"].as_u64().unwrap());
            }
            offset += page.len();
            if page.len() < 1000 {
                break;
            }
        }
        assert_eq!(got, want, "node {} does not hold exactly the acknowledged documents", node.id);
    }
}

#[tokio::test]
async fn a_node_that_missed_writes_is_not_read_until_they_are_replayed_in_order() {
    let mut c = Cluster::start(Spec { shards: 8, replication_factor: 1, groups: vec![2, 2] }).await;
    let http = c.http();
    let mut expected = BTreeMap::new();
    let t = write(&http, &docs(0..200, 1)).await;
    assert_eq!(c.wait_task(t).await["status"], "succeeded");
    expected.extend((0..200).map(|i| (i, 1)));

    c.nodes[0].kill().await;
    // While it is down: new documents and new versions of old ones (order matters on replay).
    for v in 2..5 {
        let (s, h, b) = http.send_json(Method::POST, "/indexes/books/documents?primaryKey=id", &docs(100..300, v)).await;
        assert_eq!(s, 202, "{b} {h:?} {}", topology(&c).await);
        assert!(h.get("x-miroir-degraded").is_some(), "a write that missed a node says so");
        assert_eq!(c.wait_task(b["taskUid"].as_u64().unwrap()).await["status"], "succeeded");
        expected.extend((100..300).map(|i| (i, v)));
    }
    let (s, _, b) = http.send_json(Method::POST, "/indexes/books/documents/delete-batch", &json!([0, 1, 2, 3])).await;
    assert_eq!(s, 202, "{b}");
    c.wait_task(b["taskUid"].as_u64().unwrap()).await;
    for i in 0..4 {
        expected.remove(&i);
    }
    let t = topology(&c).await;
    let n0 = &t["nodes"][0];
    assert_eq!(n0["sync"]["state"], "catching-up", "{t}");
    assert!(n0["sync"]["pendingOperations"].as_u64().unwrap() >= 4, "{t}");
    assert!(n0["sync"]["pendingBytes"].as_u64().unwrap() > 0, "{t}");
    assert_eq!(n0["servesReads"], false);

    // Miroir restarts while the node is still down: the missed writes are in the store.
    c.restart_miroir().await;
    let t = topology(&c).await;
    assert_eq!(t["nodes"][0]["sync"]["state"], "catching-up", "{t}");

    c.nodes[0].restart().await;
    // Reads while it catches up are never stale.
    let reader = {
        let http = http.clone();
        let expected = expected.clone();
        tokio::spawn(async move {
            for round in 0..40 {
                let (s, b) = http.post("/indexes/books/search", &json!({"q": "", "limit": 0})).await;
                assert_eq!(s, 200, "{b}");
                assert_eq!(b["estimatedTotalHits"], expected.len() as u64, "round {round}: {b}");
                for id in [4u64, 150, 299] {
                    let (s, d) = http.get(&format!("/indexes/books/documents/{id}")).await;
                    assert_eq!(s, 200, "round {round}: document {id}: {d}");
                    assert_eq!(d["version"], expected[&id], "round {round}: document {id}");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // A write while it catches up queues behind the missed ones.
    let t = write(&http, &docs(250..260, 9)).await;
    assert_eq!(c.wait_task(t).await["status"], "succeeded");
    expected.extend((250..260).map(|i| (i, 9)));
    reader.await.unwrap();
    wait_all_caught_up(&c).await;
    assert_nodes_hold(&c, &expected).await;
    for _ in 0..4 {
        let (_, b) = http.post("/indexes/books/search", &json!({"q": "", "limit": 0})).await;
        assert_eq!(b["estimatedTotalHits"], expected.len() as u64);
    }
}

#[tokio::test]
async fn a_write_no_node_accepted_is_not_recorded_and_fails() {
    let mut c = Cluster::start(Spec { shards: 4, replication_factor: 1, groups: vec![1] }).await;
    let t = write(&c.http(), &docs(0..10, 1)).await;
    c.wait_task(t).await;
    c.nodes[0].kill().await;
    let (s, _, b) = c.http().send_json(Method::POST, "/indexes/books/documents", &docs(0..10, 2)).await;
    assert_eq!(s, 503, "{b}");
    let t = topology(&c).await;
    assert_eq!(t["nodes"][0]["sync"]["pendingOperations"], 0, "nothing was applied anywhere, so nothing is queued: {t}");
    c.nodes[0].restart().await;
    wait_all_caught_up(&c).await;
    assert_nodes_hold(&c, &(0..10).map(|i| (i, 1)).collect()).await;
}

//! The in-repo test node against the recorded Meilisearch contract, plus its lifecycle
//! (stop / restart on the same port with the same state).

#[path = "common/contract.rs"]
mod contract;

use miroir::testnode::TestNode;
use serde_json::{json, Value};

const KEY: &str = "contract-master-key";

#[tokio::test]
async fn test_node_matches_the_recorded_contract() {
    let node = TestNode::start(Some(KEY.to_string())).await.unwrap();
    let mismatches = contract::replay(&node.url(), KEY).await;
    if !mismatches.is_empty() {
        let report: Vec<String> = mismatches.iter().map(ToString::to_string).collect();
        panic!("{} mismatches with the recorded contract:\n{}", report.len(), report.join("\n"));
    }
}

#[test]
fn comparison_is_strict_where_it_must_be() {
    let mut out = Vec::new();
    contract::compare("body", &json!({"a": 1, "b": "x"}), &json!({"b": "x", "a": 1}), &mut out);
    assert_eq!(out.len(), 1, "field order matters: {out:?}");
    out.clear();
    contract::compare("body", &json!({"score": 1.0}), &json!({"score": 1}), &mut out);
    assert_eq!(out.len(), 1, "floats stay floats: {out:?}");
    out.clear();
    contract::compare("body", &json!({"enqueuedAt": "2026-01-01T00:00:00Z", "uid": 3}), &json!({"enqueuedAt": "2027-05-05T00:00:00Z", "uid": 3}), &mut out);
    assert!(out.is_empty(), "volatile values compare by type: {out:?}");
    contract::compare("body", &json!({"startedAt": "x"}), &json!({"startedAt": null}), &mut out);
    assert_eq!(out.len(), 1, "volatile values keep their type: {out:?}");
    out.clear();
    contract::compare("body", &json!({"hits": [{"id": 1}, {"id": 2}]}), &json!({"hits": [{"id": 2}, {"id": 1}]}), &mut out);
    assert_eq!(out.len(), 2, "hit order matters: {out:?}");
}

async fn wait_task(client: &reqwest::Client, url: &str, uid: u64) -> Value {
    for _ in 0..1000 {
        let t: Value = client.get(format!("{url}/tasks/{uid}")).bearer_auth(KEY).send().await.unwrap().json().await.unwrap();
        if matches!(t["status"].as_str(), Some("succeeded" | "failed" | "canceled")) {
            return t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("task {uid} never finished");
}

#[tokio::test]
async fn stop_refuses_connections_and_restart_keeps_state_on_the_same_port() {
    let node = TestNode::start(Some(KEY.to_string())).await.unwrap();
    let url = node.url();
    let client = reqwest::Client::new();
    let docs: Vec<Value> = (0..10_000).map(|i| json!({"id": i, "genre": if i % 2 == 0 { "Drama" } else { "Comedy" }, "_miroir_shard": i % 8})).collect();
    let t: Value = client
        .post(format!("{url}/indexes/big/documents"))
        .bearer_auth(KEY)
        .json(&docs)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let t = wait_task(&client, &url, t["taskUid"].as_u64().unwrap()).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let t: Value = client
        .patch(format!("{url}/indexes/big/settings"))
        .bearer_auth(KEY)
        .json(&json!({"filterableAttributes": ["genre", "_miroir_shard"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    wait_task(&client, &url, t["taskUid"].as_u64().unwrap()).await;

    node.stop().await;
    assert!(reqwest::Client::new().get(format!("{url}/health")).send().await.is_err(), "a stopped node must refuse connections");
    // the client with a pooled keep-alive connection must fail too
    assert!(client.get(format!("{url}/health")).send().await.is_err(), "open connections must be closed");

    node.restart().await.unwrap();
    assert_eq!(node.url(), url);
    let fetched: Value = client
        .post(format!("{url}/indexes/big/documents/fetch"))
        .bearer_auth(KEY)
        .json(&json!({"filter": "_miroir_shard IN [1, 5] AND (genre = Comedy)", "limit": 3, "fields": ["id"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, json!({"results": [{"id": 1}, {"id": 5}, {"id": 9}], "offset": 0, "limit": 3, "total": 2500}));
}

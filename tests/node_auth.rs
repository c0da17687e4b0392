//! A node that refuses Miroir's node master key is Miroir's problem, not the client's: the
//! client with the right key gets a 5xx in Meilisearch's shape naming the node problem (never
//! the node's 401/403), the node is shown `unauthorized` in the topology and gets no traffic,
//! and the refusals are counted in the metrics.

mod common;

use common::{Cluster, Spec, ADMIN_KEY};
use miroir::config::Secret;
use serde_json::json;

async fn check_refused(node_key: Option<&str>) {
    let mut options = common::test_options();
    options.keys.node_master_key = Secret(node_key.map(str::to_string));
    let cluster = Cluster::start_with(Spec { shards: 4, replication_factor: 1, groups: vec![2] }, options).await;
    let http = cluster.http();

    let (s, b) = http.get("/indexes").await;
    assert_eq!(s, 502, "{b}");
    assert_eq!(b["code"], "miroir_node_auth", "{b}");
    assert_eq!(b["type"], "system");
    assert!(b["message"].as_str().unwrap().contains("MIROIR_NODE_MASTER_KEY"), "{b}");
    let (s, b) = http.post("/indexes/movies/documents", &json!([{"id": 1}])).await;
    assert!(s >= 500 && s != 501, "a write is refused with a server error: {s} {b}");
    assert!(b["code"] == "miroir_node_auth" || b["code"] == "miroir_node_unavailable", "{b}");
    let (s, b) = http.post("/indexes/movies/search", &json!({"q": "a"})).await;
    assert!(s >= 500, "{s} {b}");
    assert_ne!(b["code"], "invalid_api_key");
    assert_ne!(b["code"], "missing_authorization_header");

    // the topology names the problem
    let (s, topo) = http.with_key(ADMIN_KEY).get("/_miroir/topology").await;
    assert_eq!(s, 200);
    for n in topo["nodes"].as_array().unwrap() {
        assert_eq!(n["health"], "unauthorized", "{topo}");
    }
    // and the metrics count it
    let mut registry = prometheus_client::registry::Registry::default();
    cluster.proxy.metrics().register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains("miroir_node_auth_refusals_total{node=\"g0-n0\"}"), "{text}");
}

#[tokio::test]
async fn a_wrong_node_key_is_a_server_error_naming_the_node_problem() {
    check_refused(Some("not-the-node-key")).await;
}

#[tokio::test]
async fn an_unset_node_key_is_a_server_error_naming_the_node_problem() {
    check_refused(None).await;
}

//! Paths are normalised as Meilisearch normalises them before routing: repeated slashes merge
//! and a trailing slash goes. Each target is sent, byte for byte, through Miroir and to a node.

mod common;

use common::raw_http::send;
use common::{Cluster, Spec, MASTER_KEY, NODE_KEY};
use serde_json::json;

#[tokio::test]
async fn paths_are_normalised_as_on_meilisearch() {
    let cluster = Cluster::start(Spec { shards: 2, replication_factor: 1, groups: vec![1] }).await;
    let (s, t) = cluster.http().post("/indexes/movies/documents?primaryKey=id", &json!([{"id": 1, "title": "a"}])).await;
    assert_eq!(s, 202, "{t}");
    cluster.wait_task(t["taskUid"].as_u64().unwrap()).await;
    let node = cluster.nodes[0].url.clone();
    for target in ["/indexes/", "//indexes", "/indexes//", "/indexes/movies/", "//indexes//movies//", "/indexes/movies/search/?q=a", "/health/", "/version/", "/indexes/movies/documents/1/"] {
        let (ms, mb) = send(&cluster.url(), Some(MASTER_KEY), "GET", target, None).await;
        let (ns, nb) = send(&node, Some(NODE_KEY), "GET", target, None).await;
        assert_eq!(ms, ns, "GET {target}: Miroir {mb} / node {nb}");
        assert_eq!(ms, 200, "GET {target}: {mb}");
    }
}

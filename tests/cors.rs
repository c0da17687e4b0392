//! Browser front ends reach Miroir as they reach Meilisearch: a CORS preflight is answered
//! without a key, and answers carry `Access-Control-Allow-Origin: *`, as on a node.

mod common;

use common::{Cluster, Spec, MASTER_KEY, NODE_KEY};

async fn preflight(base: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{base}/indexes/movies/search"))
        .header("Origin", "https://shop.example")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "authorization, content-type")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_as_on_meilisearch() {
    let cluster = Cluster::start(Spec { shards: 2, replication_factor: 1, groups: vec![1] }).await;
    for base in [cluster.url(), cluster.nodes[0].url.clone()] {
        let r = preflight(&base).await;
        assert!(r.status().is_success(), "{base}: preflight {}", r.status());
        let h = r.headers();
        assert_eq!(h.get("access-control-allow-origin").map(|v| v.to_str().unwrap()), Some("*"), "{base}: {h:?}");
        assert!(h.get("access-control-allow-methods").is_some(), "{base}: {h:?}");
    }
    for (base, key) in [(cluster.url(), MASTER_KEY), (cluster.nodes[0].url.clone(), NODE_KEY)] {
        let r = reqwest::Client::new().get(format!("{base}/indexes")).header("Origin", "https://shop.example").bearer_auth(key).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap()), Some("*"), "{base}");
    }
}

//! Several Miroir processes on one Redis task store: shared task uids, and a Redis outage
//! answered with a clear 503 that heals by itself.

mod common;
#[path = "common/store_fixtures.rs"]
mod store_fixtures;
#[path = "common/store_proxy.rs"]
mod store_proxy;

use std::collections::BTreeSet;

use common::{Cluster, Spec};
use serde_json::json;
use store_fixtures::{redis_url, RedisCleanup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_miroirs_share_task_uids() {
    let cluster = Cluster::start(Spec::rf1_3_nodes()).await;
    let cleanup = RedisCleanup::new(store_fixtures::fresh_prefix());
    let (_a_handle, a) = cluster.miroir_on_redis(&redis_url(), &cleanup.prefix).await;
    let (_b_handle, b) = cluster.miroir_on_redis(&redis_url(), &cleanup.prefix).await;

    // A task created through one is visible, with the same uid, through the other.
    let (s, created) = a.post("/indexes", &json!({"uid": "shared", "primaryKey": "id"})).await;
    assert_eq!(s, 202, "{created}");
    let uid = created["taskUid"].as_u64().unwrap();
    let through_b = b.wait_task(uid).await;
    assert_eq!(through_b["uid"], uid);
    assert_eq!(through_b["type"], "indexCreation");
    assert_eq!(a.wait_task(uid).await, through_b);

    // Concurrent writes through both never produce duplicate uids.
    let writes = (0..40u64).map(|i| {
        let via = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move {
            let (s, t) = via.post("/indexes/shared/documents", &json!([{"id": i, "n": i}])).await;
            assert_eq!(s, 202, "{t}");
            t["taskUid"].as_u64().unwrap()
        }
    });
    let uids: Vec<u64> = futures::future::join_all(writes).await;
    let distinct: BTreeSet<u64> = uids.iter().copied().collect();
    assert_eq!(distinct.len(), uids.len(), "duplicate uids: {uids:?}");
    for u in &uids {
        assert_eq!(b.wait_task(*u).await["status"], "succeeded");
    }
    let (_, list_a) = a.get("/tasks?limit=100").await;
    let (_, list_b) = b.get("/tasks?limit=100").await;
    assert_eq!(list_a["total"], 41);
    assert_eq!(list_a["results"], list_b["results"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_is_a_clear_503_and_heals() {
    let cluster = Cluster::start(Spec::rf1_3_nodes()).await;
    let cleanup = RedisCleanup::new(store_fixtures::fresh_prefix());
    let target = url::Url::parse(&redis_url()).unwrap().socket_addrs(|| Some(6379)).unwrap()[0];
    let forwarder = store_proxy::Forwarder::start(target).await;
    let (_h, m) = cluster.miroir_on_redis(&format!("redis://{}", forwarder.addr()), &cleanup.prefix).await;

    let (s, t) = m.post("/indexes/o/documents?primaryKey=id", &json!([{"id": 1}])).await;
    assert_eq!(s, 202, "{t}");
    let before = m.wait_task(t["taskUid"].as_u64().unwrap()).await;

    forwarder.stop().await;
    let (s, e) = m.get(&format!("/tasks/{}", before["uid"])).await;
    assert_eq!(s, 503, "{e}");
    assert_eq!(e["code"], "miroir_store_unavailable");
    assert_eq!(e["type"], "system");
    assert_eq!(e.as_object().unwrap().keys().collect::<Vec<_>>(), ["message", "code", "type", "link"]);
    let (s, e) = m.post("/indexes/o/documents", &json!([{"id": 2}])).await;
    assert_eq!(s, 503, "{e}");
    assert_eq!(e["code"], "miroir_store_unavailable");

    forwarder.restart().await;
    // Recovers by itself; what was acknowledged before is still there.
    let mut healed = false;
    for _ in 0..100 {
        let (s, body) = m.get(&format!("/tasks/{}", before["uid"])).await;
        if s == 200 {
            assert_eq!(body, before);
            healed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(healed, "Miroir did not recover after Redis came back");
    let (s, t) = m.post("/indexes/o/documents", &json!([{"id": 3}])).await;
    assert_eq!(s, 202, "{t}");
    assert_eq!(m.wait_task(t["taskUid"].as_u64().unwrap()).await["status"], "succeeded");
}

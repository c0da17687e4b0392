//! `POST /dumps` and `POST /snapshots` through Miroir: one Miroir task per cluster-wide backup
//! (type, `details` and shape as a single Meilisearch answers them), every node's own
//! dump/snapshot behind it, the manifest naming each node's file, and a restore: fresh nodes
//! started from those dumps (`--import-dump`) behind a fresh Miroir hold every document.
//!
//! Passes on real Meilisearch (binary engine) and on the test node (its own dump format);
//! on the Docker engine the restore part is skipped (the dump files are inside containers).

mod common;

use std::collections::BTreeSet;

use common::{Cluster, Http, Node, Spec};
use miroir::dataplane::topology::{NodeSpec, Topology};
use reqwest::Method;
use serde_json::{json, Value};

const DOCS: u64 = 60;

fn is_dump_uid(v: &Value) -> bool {
    let s = v.as_str().unwrap_or_default();
    s.len() == 18 && s.as_bytes()[8] == b'-' && s.chars().enumerate().all(|(i, c)| i == 8 || c.is_ascii_digit())
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

async fn all_ids(http: &Http, index: &str) -> BTreeSet<u64> {
    let (s, b) = http.get(&format!("/indexes/{index}/documents?limit=1000&fields=id")).await;
    assert_eq!(s, 200, "{b}");
    b["results"].as_array().unwrap().iter().map(|d| d["id"].as_u64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_dump_restores_every_document() {
    let cluster = Cluster::start(Spec { shards: 8, replication_factor: 1, groups: vec![3] }).await;
    let http = cluster.http();
    let docs: Vec<Value> = (0..DOCS).map(|i| json!({"id": i, "title": format!("film {i}"), "genre": if i % 2 == 0 { "drama" } else { "comedy" }})).collect();
    let (s, t) = http.post("/indexes/movies/documents", &Value::Array(docs)).await;
    assert_eq!(s, 202, "{t}");
    http.wait_task(t["taskUid"].as_u64().unwrap()).await;
    let (s, _, t) = http.send_json(Method::PUT, "/indexes/movies/settings/filterable-attributes", &json!(["genre"])).await;
    assert_eq!(s, 202, "{t}");
    http.wait_task(t["taskUid"].as_u64().unwrap()).await;
    let (s, t) = http.post("/indexes/books/documents", &json!([{"id": 1, "name": "b1"}, {"id": 2, "name": "b2"}])).await;
    assert_eq!(s, 202, "{t}");
    http.wait_task(t["taskUid"].as_u64().unwrap()).await;

    // Task-store state a restored cluster needs: an API key and a webhook.
    let (s, key) = http.post("/keys", &json!({"actions": ["search", "documents.get"], "indexes": ["movies"], "expiresAt": null, "name": "reader"})).await;
    assert_eq!(s, 201, "{key}");
    let (s, hook) = http.post("/webhooks", &json!({"url": "http://127.0.0.1:9/hook", "headers": {"X-Team": "search"}})).await;
    assert_eq!(s, 201, "{hook}");

    // The dump: one Miroir task, answered as Meilisearch answers `POST /dumps`.
    let (s, summary) = http.post("/dumps", &json!(null)).await;
    assert_eq!(s, 202, "{summary}");
    assert_eq!(keys(&summary), ["taskUid", "indexUid", "status", "type", "enqueuedAt"]);
    assert_eq!((&summary["indexUid"], &summary["status"], &summary["type"]), (&json!(null), &json!("enqueued"), &json!("dumpCreation")));
    let task = http.wait_task(summary["taskUid"].as_u64().unwrap()).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(keys(&task["details"]), ["dumpUid"]);
    assert!(is_dump_uid(&task["details"]["dumpUid"]), "{task}");
    // The same shape as one node's own dump task.
    let node = cluster.node_http(0);
    let (s, own) = node.post("/dumps", &json!(null)).await;
    assert_eq!(s, 202, "{own}");
    let own = node.wait_task(own["taskUid"].as_u64().unwrap()).await;
    assert_eq!(keys(&task), keys(&own));
    assert_eq!(keys(&task["details"]), keys(&own["details"]));
    let (s, listed) = http.get(&format!("/tasks?types=dumpCreation")).await;
    assert_eq!(s, 200);
    assert_eq!(listed["results"][0]["uid"], task["uid"]);

    // The manifest: every node's dump, by node.
    let dump_uid = task["details"]["dumpUid"].as_str().unwrap().to_string();
    let admin = http.with_key(common::ADMIN_KEY);
    let (s, m) = admin.get(&format!("/_miroir/backups/{dump_uid}")).await;
    assert_eq!(s, 200, "{m}");
    assert_eq!((&m["uid"], &m["type"], &m["status"], &m["taskUid"]), (&json!(dump_uid), &json!("dumpCreation"), &json!("succeeded"), &task["uid"]));
    assert_eq!(m["topology"]["shards"], 8);
    assert_eq!(m["nodes"].as_array().unwrap().len(), 3);
    let (s, l) = admin.get("/_miroir/backups").await;
    assert_eq!((s, l), (200, json!({"results": [dump_uid]})));
    assert_eq!(admin.get("/_miroir/backups/nope").await.0, 404);
    assert_eq!(http.without_key().get(&format!("/_miroir/backups/{dump_uid}")).await.0, 401);

    // The snapshot: one Miroir task; Meilisearch's snapshot tasks have no `details`.
    let (s, summary) = http.post("/snapshots", &json!(null)).await;
    assert_eq!(s, 202, "{summary}");
    assert_eq!(summary["type"], "snapshotCreation");
    let snap = http.wait_task(summary["taskUid"].as_u64().unwrap()).await;
    assert_eq!(snap["status"], "succeeded", "{snap}");
    let (s, own) = node.post("/snapshots", &json!(null)).await;
    assert_eq!(s, 202, "{own}");
    let own = node.wait_task(own["taskUid"].as_u64().unwrap()).await;
    assert_eq!(keys(&snap), keys(&own), "{snap} vs {own}");
    assert!(snap.get("details").is_none());

    // Restore: each node's dump into a fresh node (same id, new address), a fresh Miroir.
    let mut restored = Vec::new();
    let mut specs = Vec::new();
    for n in m["nodes"].as_array().unwrap() {
        let id = n["nodeId"].as_str().unwrap();
        let node_dump = n["dumpUid"].as_str().unwrap_or_else(|| panic!("node {id} has no dump: {m}"));
        let old = cluster.nodes.iter().find(|x| x.id == id).unwrap();
        let Some(file) = old.dump_file(node_dump) else {
            eprintln!("restore skipped: the dump files are not reachable on this engine");
            return;
        };
        assert!(file.exists(), "{} is where the manifest says", file.display());
        let Some(fresh) = Node::start_from_dump(id, Some(common::NODE_KEY), &file).await else { return };
        specs.push(NodeSpec { id: id.to_string(), address: fresh.url.clone(), replica_group: n["replicaGroup"].as_u64().unwrap() as u32 });
        restored.push(fresh);
    }
    let topology = Topology { shards: 8, replication_factor: 1, replica_groups: 1, nodes: specs };
    let back = Cluster::start_on_nodes(restored, topology, common::test_options()).await;
    let bhttp = back.http();
    // The task-store part, from the manifest.
    let badmin = bhttp.with_key(common::ADMIN_KEY);
    assert_eq!(badmin.post("/_miroir/restore", &json!({"nope": 1})).await.0, 400);
    let (s, r) = badmin.post("/_miroir/restore", &m).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["restored"]["webhooks"], 1);
    let old_key = bhttp.with_key(key["key"].as_str().unwrap());
    let (s, b) = old_key.get("/indexes/movies/documents/7").await;
    assert_eq!((s, &b["title"]), (200, &json!("film 7")), "the old key works again: {b}");
    assert_eq!(old_key.get("/indexes/books/documents/1").await.0, 403, "with its old index scope");
    let (_, hooks) = bhttp.get("/webhooks").await;
    assert_eq!(hooks["results"][0]["uuid"], hook["uuid"]);
    assert_eq!(hooks["results"][0]["headers"], json!({"X-Team": "search"}));
    assert_eq!(all_ids(&bhttp, "movies").await, (0..DOCS).collect::<BTreeSet<_>>());
    assert_eq!(all_ids(&bhttp, "books").await, [1, 2].into_iter().collect::<BTreeSet<_>>());
    let (s, one) = bhttp.get("/indexes/movies/documents/42").await;
    assert_eq!((s, &one["title"]), (200, &json!("film 42")));
    // Settings came back too (filtering by genre works, routed by the same placement).
    let (s, r) = bhttp.post("/indexes/movies/search", &json!({"filter": "genre = drama", "limit": 0})).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["estimatedTotalHits"], DOCS / 2);
    let (s, f) = bhttp.get("/indexes/movies/settings/filterable-attributes").await;
    assert_eq!((s, f), (200, json!(["genre"])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_operations_answer_501_in_meilisearchs_shape() {
    let cluster = Cluster::start(Spec { shards: 2, replication_factor: 1, groups: vec![1] }).await;
    let http = cluster.http();
    for (method, path) in [
        (Method::POST, "/export"),
        (Method::GET, "/network"),
        (Method::PATCH, "/network"),
        (Method::POST, "/logs/stream"),
        (Method::DELETE, "/logs/stream"),
        (Method::POST, "/logs/stderr"),
        (Method::GET, "/chats"),
        (Method::GET, "/chats/w1"),
        (Method::PATCH, "/chats/w1/settings"),
        (Method::POST, "/chats/w1/chat/completions"),
    ] {
        let (s, _, b) = http.send_json(method.clone(), path, &json!({})).await;
        assert_eq!(s, 501, "{method} {path}: {b}");
        assert_eq!(keys(&b), ["message", "code", "type", "link"], "{b}");
        assert_eq!(b["code"], "miroir_not_implemented");
        let msg = b["message"].as_str().unwrap();
        assert!(msg.starts_with(&format!("`{method} {path}` is not supported by Miroir: ")), "{msg}");
    }
    // Auth still comes first, with Meilisearch's answers.
    assert_eq!(http.without_key().send_json(Method::POST, "/export", &json!({})).await.0, 401);
    assert_eq!(http.without_key().request(Method::POST, "/dumps", None, None).await.0, 401);
}

//! One node of the tests' engine seam (real Meilisearch with `MEILI_BIN`, else the in-repo test
//! node) against the recorded Meilisearch contract, the seam's kill / restart / wipe, and node
//! behaviour Miroir relies on. Everything here is real Meilisearch behaviour: it must pass on
//! either engine.

mod common;
#[path = "common/contract.rs"]
mod contract;

use common::Node;
use serde_json::{json, Value};

const KEY: &str = "contract-master-key";

#[tokio::test]
async fn node_matches_the_recorded_contract() {
    let node = Node::start_with_key("contract", Some(KEY)).await;
    let mismatches = contract::replay(&node.url, KEY).await;
    if !mismatches.is_empty() {
        let report: Vec<String> = mismatches.iter().map(ToString::to_string).collect();
        panic!("{} mismatches with the recorded contract:\n{}", report.len(), report.join("\n"));
    }
}

/// The repository's copy of the contract is the recording in the workspace's `shared/` folder,
/// byte for byte (recorded from a real Meilisearch 1.50.0; see its README). Outside that
/// workspace (a fresh clone) there is nothing to compare with, and the copy stands alone.
#[test]
fn fixture_is_the_shared_recording() {
    let ours = contract::cases_path();
    let dir = ours.parent().unwrap();
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/meilisearch-contract");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("recorded from a real Meilisearch 1.50.0"), "the fixture says where it came from");
    assert_eq!(contract::load_cases().len(), 105);
    if shared.exists() {
        for f in ["cases.json", "README.md"] {
            assert!(std::fs::read(dir.join(f)).unwrap() == std::fs::read(shared.join(f)).unwrap(), "{f} differs from {}", shared.display());
        }
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
    for _ in 0..12_000 {
        let t: Value = client.get(format!("{url}/tasks/{uid}")).bearer_auth(KEY).send().await.unwrap().json().await.unwrap();
        if matches!(t["status"].as_str(), Some("succeeded" | "failed" | "canceled")) {
            return t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("task {uid} never finished");
}

#[tokio::test]
async fn kill_refuses_connections_and_restart_keeps_state_on_the_same_port() {
    let mut node = Node::start_with_key("lifecycle", Some(KEY)).await;
    let url = node.url.clone();
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

    node.kill().await;
    assert!(reqwest::Client::new().get(format!("{url}/health")).send().await.is_err(), "a stopped node must refuse connections");
    // the client with a pooled keep-alive connection must fail too
    assert!(client.get(format!("{url}/health")).send().await.is_err(), "open connections must be closed");

    node.restart().await;
    assert_eq!(node.url, url);
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

    // a wiped node comes back empty on the same address
    node.wipe().await;
    assert!(reqwest::Client::new().get(format!("{url}/health")).send().await.is_err(), "a wiped node is down until restarted");
    node.restart().await;
    let r = client.get(format!("{url}/indexes/big")).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

struct Api {
    client: reqwest::Client,
    url: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut b = self.client.request(method, format!("{}{path}", self.url)).bearer_auth(KEY);
        if let Some(body) = body {
            b = b.json(&body);
        }
        let r = b.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }
    /// Sends a task-creating request and waits for the task; returns the finished task.
    async fn task(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, summary) = self.call(method, path, body).await;
        assert!(status == 202 || status == 200, "{path}: {status} {summary}");
        wait_task(&self.client, &self.url, summary["taskUid"].as_u64().unwrap()).await
    }
}

#[tokio::test]
async fn documents_settings_and_tasks_behave_like_meilisearch() {
    use reqwest::Method;
    let node = Node::start_with_key("behaviour", Some(KEY)).await;
    let api = Api { client: reqwest::Client::new(), url: node.url.clone() };

    let t = api
        .task(Method::POST, "/indexes/m/documents", Some(json!([
            {"id": 1, "g": "Drama", "y": 2001, "tags": ["a", "b"]},
            {"id": 2, "g": "comedy", "y": 1999},
            {"id": "3", "g": null, "y": 2010, "tags": []},
        ])))
        .await;
    assert_eq!(t["status"], "succeeded", "{t}");
    // filtering before filterableAttributes is set fails like Meilisearch
    let (s, e) = api.call(Method::POST, "/indexes/m/documents/fetch", Some(json!({"filter": "g = drama"}))).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("invalid_document_filter")));
    assert!(e["message"].as_str().unwrap().contains("This index does not have configured filterable attributes."));

    let t = api.task(Method::PUT, "/indexes/m/settings/filterable-attributes", Some(json!(["g", "y", "tags"]))).await;
    assert_eq!(t["details"], json!({"filterableAttributes": ["g", "y", "tags"]}));
    assert_eq!(api.get("/indexes/m/settings/filterable-attributes").await.1, json!(["g", "y", "tags"]));
    // a PATCH-only sub-route refuses PUT, and unknown sub-routes do not exist
    assert_eq!(api.call(Method::PUT, "/indexes/m/settings/pagination", Some(json!({"maxTotalHits": 3}))).await.0, 405);
    assert_eq!(api.get("/indexes/m/settings/nope").await.0, 404);

    let ids = |v: &Value| v["results"].as_array().unwrap().iter().map(|d| d["id"].clone()).collect::<Vec<_>>();
    for (filter, want) in [
        ("g = DRAMA", json!([1])),
        ("g != drama", json!([2, "3"])),
        ("g IS NULL", json!(["3"])),
        ("tags IS EMPTY", json!(["3"])),
        ("tags NOT EXISTS", json!([2])),
        ("y 2000 TO 2010 AND NOT tags = b", json!(["3"])),
        ("tags IN [b, z] OR y < 2000", json!([1, 2])),
    ] {
        let (s, r) = api.call(Method::POST, "/indexes/m/documents/fetch", Some(json!({"filter": filter}))).await;
        assert_eq!(s, 200, "{filter}: {r}");
        assert_eq!(json!(ids(&r)), want, "{filter}");
    }
    let (_, r) = api.get("/indexes/m/documents?ids=3,1&fields=id,y").await;
    assert_eq!(r["results"], json!([{"id": 1, "y": 2001}, {"id": "3", "y": 2010}]));

    // delete by filter, by ids; stats follow
    let t = api.task(Method::POST, "/indexes/m/documents/delete", Some(json!({"filter": ["y > 2000", ["g = drama", "g IS NULL"]]}))).await;
    assert_eq!(t["details"], json!({"providedIds": 0, "deletedDocuments": 2, "originalFilter": "[\"y > 2000\",[\"g = drama\",\"g IS NULL\"]]"}));
    let (_, stats) = api.get("/indexes/m/stats").await;
    assert_eq!(stats["numberOfDocuments"], 1);
    assert_eq!(stats["fieldDistribution"], json!({"g": 1, "id": 1, "y": 1}));
    let t = api.task(Method::POST, "/indexes/m/documents/delete-batch", Some(json!([2, "nope"]))).await;
    assert_eq!(t["details"], json!({"providedIds": 2, "deletedDocuments": 1, "originalFilter": null}));

    // task queries: validation, filters, reverse order, pagination
    let (s, e) = api.get("/tasks?uids=x").await;
    assert_eq!((s, e["code"].as_str()), (400, Some("invalid_task_uids")));
    let (s, e) = api.get("/tasks?foo=1").await;
    assert_eq!((s, e["code"].as_str()), (400, Some("bad_request")));
    let (_, r) = api.get("/tasks?types=documentDeletion&reverse=true").await;
    assert_eq!(r["results"].as_array().unwrap().iter().map(|t| t["uid"].as_u64().unwrap()).collect::<Vec<_>>(), vec![2, 3]);
    let (_, r) = api.get("/tasks?limit=1&indexUids=m").await;
    assert_eq!((r["from"].clone(), r["next"].clone(), r["total"].clone()), (json!(3), json!(2), json!(4)));
    let (s, e) = api.call(Method::DELETE, "/tasks", None).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("missing_task_filters")));
}

#[tokio::test]
async fn queued_tasks_can_be_canceled_and_without_a_master_key_everything_is_open() {
    let node = Node::start_with_key("open", None).await;
    let client = reqwest::Client::new();
    let url = node.url.clone();
    assert_eq!(client.get(format!("{url}/indexes")).send().await.unwrap().status().as_u16(), 200);
    // enqueue many tasks, then cancel whatever is still enqueued: however many that is, the
    // counts, `canceledBy` and the surviving indexes must agree
    let mut last = 0;
    for i in 0..50 {
        let r: Value = client.post(format!("{url}/indexes")).json(&json!({"uid": format!("i{i}")})).send().await.unwrap().json().await.unwrap();
        last = r["taskUid"].as_u64().unwrap();
    }
    let r = client.post(format!("{url}/tasks/cancel?statuses=enqueued,processing")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let summary: Value = r.json().await.unwrap();
    assert_eq!(summary["type"], "taskCancelation");
    let cancel = wait_task_open(&client, &url, summary["taskUid"].as_u64().unwrap()).await;
    let canceled = cancel["details"]["canceledTasks"].as_u64().unwrap();
    let matched = cancel["details"]["matchedTasks"].as_u64().unwrap();
    assert!(canceled <= matched && matched <= last + 1, "{cancel}");
    let listed: Value = client.get(format!("{url}/tasks?statuses=canceled&limit=100")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["total"].as_u64().unwrap(), canceled);
    for t in listed["results"].as_array().unwrap() {
        assert_eq!(t["canceledBy"], summary["taskUid"]);
    }
    let indexes: Value = client.get(format!("{url}/indexes?limit=100")).send().await.unwrap().json().await.unwrap();
    assert_eq!(indexes["total"].as_u64().unwrap() + canceled, 50);
}

async fn wait_task_open(client: &reqwest::Client, url: &str, uid: u64) -> Value {
    for _ in 0..12_000 {
        let t: Value = client.get(format!("{url}/tasks/{uid}")).send().await.unwrap().json().await.unwrap();
        if matches!(t["status"].as_str(), Some("succeeded" | "failed" | "canceled")) {
            return t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("task {uid} never finished");
}

//! `/webhooks`: Meilisearch 1.50's routes answered by Miroir (validation, limits, wording as
//! Meilisearch's own tests record them), and the notifications Miroir sends when its tasks
//! finish: gzip NDJSON of the task objects, the webhook's headers, without any client polling,
//! at least once across a `kill -9` of Miroir.
//!
//! Expected messages are Meilisearch's (crates/meilisearch/tests/tasks/webhook.rs of v1.50.0);
//! the nodes never see a webhook, so these tests pass whatever the engine.

mod common;
#[path = "common/miroir_process.rs"]
mod miroir_process;
#[path = "common/store_fixtures.rs"]
mod store_fixtures;

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use common::{Cluster, Http, Spec};
use miroir_process::{MiroirProcess, ProcessConfig};
use reqwest::Method;
use serde_json::{json, Value};

/// What the receiver got: headers, the decompressed body, and what it answered.
#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    tasks: Vec<Value>,
    accepted: bool,
}

/// A webhook receiver: answers 200 while `accept` is set, else 503; records every request.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    accept: Arc<AtomicBool>,
    _server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(accept: bool) -> Receiver {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let accept = Arc::new(AtomicBool::new(accept));
        let (g, a) = (got.clone(), accept.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (g, a) = (g.clone(), a.clone());
                async move {
                    let mut text = String::new();
                    let gz = headers.get("content-encoding").is_some_and(|v| v == "gzip");
                    if gz {
                        flate2::read::GzDecoder::new(&body[..]).read_to_string(&mut text).expect("a gzip body");
                    } else {
                        text = String::from_utf8_lossy(&body).into_owned();
                    }
                    let tasks = text.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
                    let accepted = a.load(Ordering::SeqCst);
                    g.lock().unwrap().push(Received { headers, tasks, accepted });
                    if accepted {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { url, got, accept, _server: server }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (bounded, generously) until a request matching `pred` arrived; returns it.
    async fn wait_for(&self, what: &str, pred: impl Fn(&Received) -> bool) -> Received {
        for _ in 0..2400 {
            if let Some(r) = self.received().into_iter().find(|r| pred(r)) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the receiver never got {what}; it got {:?}", self.received());
    }
}

fn carries(r: &Received, task_uid: u64) -> bool {
    r.tasks.iter().any(|t| t["uid"] == task_uid)
}

async fn err(http: &Http, method: Method, path: &str, body: Option<Value>) -> (u16, String, String) {
    let (status, _, b) = match body {
        Some(b) => http.send_json(method, path, &b).await,
        None => http.request(method, path, None, None).await,
    };
    (status, b["code"].as_str().unwrap_or_default().to_string(), b["message"].as_str().unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_routes_validate_as_meilisearch() {
    let cluster = Cluster::start(Spec { shards: 4, replication_factor: 1, groups: vec![2] }).await;
    let http = cluster.http();

    let (s, b) = http.get("/webhooks").await;
    assert_eq!((s, b), (200, json!({"results": []})));

    // Missing URL: the message names the uuid it would have had.
    let (s, code, msg) = err(&http, Method::POST, "/webhooks", Some(json!({"headers": {"authorization": "TOKEN"}}))).await;
    assert_eq!((s, code.as_str()), (400, "invalid_webhook_url"));
    assert!(msg.starts_with("The URL for the webhook `") && msg.ends_with("` is missing."), "{msg}");
    assert_eq!(
        err(&http, Method::POST, "/webhooks", Some(json!({"url": "not-a-valid-url"}))).await,
        (400, "invalid_webhook_url".into(), "Invalid URL `not-a-valid-url`: relative URL without a base".into())
    );
    assert_eq!(
        err(&http, Method::POST, "/webhooks", Some(json!({"url": "http://localhost:6666/hook", "headers": {"invalid header name": "value"}}))).await,
        (400, "invalid_webhook_headers".into(), "Invalid header name `invalid header name`: invalid HTTP header name".into())
    );
    assert_eq!(
        err(&http, Method::POST, "/webhooks", Some(json!({"url": "http://localhost:6666/hook", "headers": {"authorization": "token\nwith\nnewlines"}}))).await,
        (400, "invalid_webhook_headers".into(), "Invalid header value `authorization`: failed to parse header value".into())
    );
    assert_eq!(
        err(&http, Method::POST, "/webhooks", Some(json!({"url": "http://localhost:6666/hook", "uuid": uuid::Uuid::new_v4(), "headers": {}}))).await,
        (400, "immutable_webhook_uuid".into(), "Immutable field `uuid`: expected one of `url`, `headers`".into())
    );
    assert_eq!(
        err(&http, Method::POST, "/webhooks", Some(json!({"url": "http://localhost:6666/hook2", "isEditable": false}))).await,
        (400, "immutable_webhook_is_editable".into(), "Immutable field `isEditable`: expected one of `url`, `headers`".into())
    );
    // The body is read before the uuid.
    assert_eq!(
        err(&http, Method::PATCH, "/webhooks/uuid-whatever", Some(json!({"uuid": uuid::Uuid::new_v4(), "headers": {"new-header": "value"}}))).await,
        (400, "immutable_webhook_uuid".into(), "Immutable field `uuid`: expected one of `url`, `headers`".into())
    );
    let invalid_uuid = (400, "invalid_webhook_uuid".to_string(), "Invalid UUID: invalid character: found `i` at 0".to_string());
    assert_eq!(err(&http, Method::GET, "/webhooks/invalid-uuid", None).await, invalid_uuid);
    assert_eq!(err(&http, Method::PATCH, "/webhooks/invalid-uuid", Some(json!({"url": "http://localhost:6666/hook"}))).await, invalid_uuid);
    assert_eq!(err(&http, Method::DELETE, "/webhooks/invalid-uuid", None).await, invalid_uuid);
    let nil = "00000000-0000-0000-0000-000000000000";
    let immutable = (
        400,
        "immutable_webhook".to_string(),
        format!("Webhook `{nil}` is immutable. The webhook defined from the command line cannot be modified using the API."),
    );
    assert_eq!(err(&http, Method::PATCH, &format!("/webhooks/{nil}"), Some(json!({"url": "http://localhost:8080"}))).await, immutable);
    assert_eq!(err(&http, Method::DELETE, &format!("/webhooks/{nil}"), None).await, immutable);
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(
        err(&http, Method::GET, &format!("/webhooks/{unknown}"), None).await,
        (404, "webhook_not_found".into(), format!("Webhook `{unknown}` not found."))
    );

    // Create, read, patch (headers merged; `null` removes one), secrets redacted.
    let (s, _, created) = http.send_json(Method::POST, "/webhooks", &json!({"url": "http://localhost:6666/hook"})).await;
    assert_eq!(s, 201, "{created}");
    let uuid = created["uuid"].as_str().unwrap().to_string();
    assert_eq!(created, json!({"uuid": uuid, "isEditable": true, "url": "http://localhost:6666/hook", "headers": {}}));
    let keys: Vec<&String> = created.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["uuid", "isEditable", "url", "headers"]);
    let path = format!("/webhooks/{uuid}");
    let (s, _, b) = http.send_json(Method::PATCH, &path, &json!({"headers": {"authorization": "TOKEN"}})).await;
    assert_eq!((s, &b["headers"]), (200, &json!({"authorization": "XXX..."})));
    let (s, _, b) = http.send_json(Method::PATCH, &path, &json!({"headers": {"authorization2": "TOKEN"}})).await;
    assert_eq!((s, &b["headers"]), (200, &json!({"authorization": "XXX...", "authorization2": "TOKEN"})));
    let (s, _, b) = http.send_json(Method::PATCH, &path, &json!({"headers": {"authorization": null}})).await;
    assert_eq!((s, &b["headers"]), (200, &json!({"authorization2": "TOKEN"})));
    let (s, code, msg) = err(&http, Method::PATCH, &path, Some(json!({"url": null}))).await;
    assert_eq!((s, code.as_str(), msg), (400, "invalid_webhook_url", format!("The URL for the webhook `{uuid}` is missing.")));
    let (s, _, b) = http.send_json(Method::PATCH, &path, &json!({"headers": {"Authorization": "Bearer a-secret-token"}})).await;
    assert_eq!((s, &b["headers"]["Authorization"]), (200, &json!("Bearer a-XXXX...")));
    let (s, got) = http.get(&path).await;
    assert_eq!((s, got), (200, b));

    // 200 headers at most (counted after the patch; `null` removes).
    let many: serde_json::Map<String, Value> = (0..200).map(|i| (format!("header_{i}"), json!(""))).collect();
    let (s, code, msg) = err(&http, Method::PATCH, &path, Some(json!({"headers": many}))).await;
    assert_eq!((s, code.as_str()), (400, "invalid_webhook_headers"));
    assert_eq!(msg, format!("Too many headers for the webhook `{uuid}`. Please limit the number of headers to 200. Hint: To remove an already defined header set its value to `null`"));

    // 20 webhooks at most.
    for _ in 1..20 {
        let (s, _, b) = http.send_json(Method::POST, "/webhooks", &json!({"url": "http://localhost:8080"})).await;
        assert_eq!(s, 201, "{b}");
    }
    assert_eq!(
        err(&http, Method::POST, "/webhooks", Some(json!({"url": "http://localhost:8080"}))).await,
        (400, "invalid_webhooks".into(), "Defining too many webhooks would crush the server. Please limit the number of webhooks to 20. You may use a third-party proxy server to dispatch events to more than 20 endpoints.".into())
    );
    let (_, list) = http.get("/webhooks").await;
    let all = list["results"].as_array().unwrap();
    assert_eq!(all.len(), 20);
    let mut sorted: Vec<&str> = all.iter().map(|w| w["uuid"].as_str().unwrap()).collect();
    sorted.sort();
    assert_eq!(all.iter().map(|w| w["uuid"].as_str().unwrap()).collect::<Vec<_>>(), sorted, "listed by uuid");
    for w in all {
        let (s, _, b) = http.request(Method::DELETE, &format!("/webhooks/{}", w["uuid"].as_str().unwrap()), None, None).await;
        assert_eq!((s, b), (204, Value::Null));
    }
    assert_eq!(http.get(&path).await.0, 404);
    assert_eq!(err(&http, Method::DELETE, &path, None).await.0, 404);

    // Keys: `webhooks.get` reads, only `webhooks.create` creates.
    let (s, key) = http.post("/keys", &json!({"actions": ["webhooks.get"], "indexes": ["*"], "expiresAt": null})).await;
    assert_eq!(s, 201, "{key}");
    let reader = http.with_key(key["key"].as_str().unwrap());
    assert_eq!(reader.get("/webhooks").await.0, 200);
    assert_eq!(err(&reader, Method::POST, "/webhooks", Some(json!({"url": "http://localhost:8080"}))).await.1, "invalid_api_key");

    // The nodes never see a webhook.
    for i in 0..cluster.nodes.len() {
        let (s, b) = cluster.node_http(i).get("/webhooks").await;
        if s == 200 {
            assert_eq!(b["results"], json!([]), "node {i}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_tasks_are_notified_without_polling() {
    let cluster = Cluster::start(Spec { shards: 4, replication_factor: 1, groups: vec![2] }).await;
    let http = cluster.http();
    let receiver = Receiver::start(true).await;
    let (s, _, b) = http
        .send_json(Method::POST, "/webhooks", &json!({"url": receiver.url, "headers": {"Authorization": "Bearer a-secret-token", "X-Custom": "yes"}}))
        .await;
    assert_eq!(s, 201, "{b}");
    // The webhook of Miroir's own configuration (`MIROIR_TASK_WEBHOOK_URL`), as Meilisearch
    // lists its `--task-webhook-url` one: nil uuid, not editable, first.
    let from_config = Receiver::start(true).await;
    cluster.proxy.set_config_webhook(Some(from_config.url.clone()), Some("Bearer a-secret-token".into()));
    let (_, list) = http.get("/webhooks").await;
    assert_eq!(
        list["results"][0],
        json!({"uuid": "00000000-0000-0000-0000-000000000000", "isEditable": false, "url": from_config.url, "headers": {"Authorization": "Bearer a-XXXX..."}})
    );
    assert_eq!(list["results"].as_array().unwrap().len(), 2);

    // A write nobody polls: its end still reaches the receiver.
    let (s, task) = http.post("/indexes/movies/documents", &json!([{"id": 1, "title": "a"}, {"id": 2, "title": "b"}])).await;
    assert_eq!(s, 202, "{task}");
    let uid = task["taskUid"].as_u64().unwrap();
    let r = receiver.wait_for("the document addition", |r| carries(r, uid)).await;
    assert_eq!(r.headers["content-type"], "application/x-ndjson");
    assert_eq!(r.headers["content-encoding"], "gzip");
    assert_eq!(r.headers["authorization"], "Bearer a-secret-token", "the receiver gets the real header");
    assert_eq!(r.headers["x-custom"], "yes");
    assert_eq!(r.tasks.len(), 1, "each Miroir task is its own batch");
    let (s, view) = http.get(&format!("/tasks/{uid}")).await;
    assert_eq!(s, 200);
    assert_eq!(r.tasks[0], view, "the notification is the task object");
    assert_eq!(view["status"], "succeeded");
    let c = from_config.wait_for("the addition, on the config's webhook", |r| carries(r, uid)).await;
    assert_eq!(c.headers["authorization"], "Bearer a-secret-token");
    assert_eq!(c.tasks[0], view);

    // A failed task is notified too, with its error.
    let (s, task) = http.post("/indexes/movies/documents", &json!([{"id": "not valid!", "title": "c"}])).await;
    assert_eq!(s, 202, "{task}");
    let uid2 = task["taskUid"].as_u64().unwrap();
    let r = receiver.wait_for("the failed addition", |r| carries(r, uid2)).await;
    assert_eq!(r.tasks[0]["status"], "failed");
    assert_eq!(r.tasks[0]["error"]["code"], "invalid_document_id");
    assert_eq!(r.tasks[0], http.get(&format!("/tasks/{uid2}")).await.1);

    // Deleting the webhook stops notifications: a later task reaches nobody (checked once a
    // task after it has been notified to a second webhook).
    let (_, list) = http.get("/webhooks").await;
    let first = list["results"][1]["uuid"].as_str().unwrap().to_string();
    let second = Receiver::start(true).await;
    assert_eq!(http.post("/webhooks", &json!({"url": second.url})).await.0, 201);
    assert_eq!(http.request(Method::DELETE, &format!("/webhooks/{first}"), None, None).await.0, 204);
    let (_, t3) = http.post("/indexes/movies/documents", &json!([{"id": 3}])).await;
    let uid3 = t3["taskUid"].as_u64().unwrap();
    second.wait_for("the third task", |r| carries(r, uid3)).await;
    assert!(!receiver.received().iter().any(|r| carries(r, uid3)), "a deleted webhook is not called");
    // No task notified twice to a receiver that accepted it.
    let mut seen = std::collections::BTreeSet::new();
    for r in receiver.received() {
        for t in &r.tasks {
            assert!(seen.insert(t["uid"].as_u64().unwrap()), "task {} notified twice", t["uid"]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_survive_a_miroir_crash() {
    let spec = Spec { shards: 4, replication_factor: 1, groups: vec![2] };
    let (_nodes, topology) = common::start_nodes_addressed(&spec, |n| std::future::ready(n.url.clone())).await;
    let mut m = MiroirProcess::start(&ProcessConfig::new(topology), common::MASTER_KEY, common::NODE_KEY, common::ADMIN_KEY).await;
    let http = Http { base: m.url(), key: Some(common::MASTER_KEY.into()) };
    let receiver = Receiver::start(false).await;
    let (s, _, b) = http.send_json(Method::POST, "/webhooks", &json!({"url": receiver.url})).await;
    assert_eq!(s, 201, "{b}");

    // 1. The task ended and its notification is in the outbox (the receiver refused it once);
    //    Miroir dies before any delivery succeeded.
    let (s, task) = http.post("/indexes/crash/documents", &json!([{"id": 1}])).await;
    assert_eq!(s, 202, "{task}");
    let uid = task["taskUid"].as_u64().unwrap();
    receiver.wait_for("a first (refused) attempt", |r| carries(r, uid)).await;
    m.kill();
    // 2. A task enqueued just before a crash, which Miroir may not have seen end.
    receiver.accept.store(true, Ordering::SeqCst);
    m.restart().await;
    let (s, task) = http.post("/indexes/crash/documents", &json!([{"id": 2}])).await;
    assert_eq!(s, 202, "{task}");
    let uid2 = task["taskUid"].as_u64().unwrap();
    m.kill();
    m.restart().await;

    for u in [uid, uid2] {
        let r = receiver.wait_for("an accepted delivery after the restart", |r| r.accepted && carries(r, u)).await;
        assert_eq!(r.tasks[0]["status"], "succeeded", "{:?}", r.tasks);
    }
    // The webhook itself survived too.
    let (_, list) = http.get("/webhooks").await;
    assert_eq!(list["results"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_miroirs_on_one_redis_notify_each_task_once() {
    let cluster = Cluster::start(Spec { shards: 4, replication_factor: 1, groups: vec![2] }).await;
    let cleanup = store_fixtures::RedisCleanup::new(store_fixtures::fresh_prefix());
    let (_ha, a) = cluster.miroir_on_redis(&store_fixtures::redis_url(), &cleanup.prefix).await;
    let (_hb, b) = cluster.miroir_on_redis(&store_fixtures::redis_url(), &cleanup.prefix).await;
    let receiver = Receiver::start(true).await;
    assert_eq!(a.post("/webhooks", &json!({"url": receiver.url})).await.0, 201);
    let (_, list) = b.get("/webhooks").await;
    assert_eq!(list["results"].as_array().unwrap().len(), 1, "one set for every Miroir on the store");

    // Writes through both; clients poll through both (both see every task end).
    let mut uids = Vec::new();
    for i in 0..6u64 {
        let http = if i % 2 == 0 { &a } else { &b };
        let (s, t) = http.post("/indexes/shared/documents", &json!([{"id": i}])).await;
        assert_eq!(s, 202, "{t}");
        uids.push(t["taskUid"].as_u64().unwrap());
    }
    for u in &uids {
        a.wait_task(*u).await;
        b.wait_task(*u).await;
    }
    for u in &uids {
        receiver.wait_for("every task", |r| carries(r, *u)).await;
    }
    let (_, last) = a.post("/indexes/shared/documents", &json!([{"id": 100}])).await;
    let last = last["taskUid"].as_u64().unwrap();
    receiver.wait_for("the last task", |r| carries(r, last)).await;
    for u in uids.iter().chain([&last]) {
        let n = receiver.received().iter().filter(|r| carries(r, *u)).count();
        assert_eq!(n, 1, "task {u} notified {n} times by two processes (the receiver accepted each)");
    }
}

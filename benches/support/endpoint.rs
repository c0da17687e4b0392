//! An HTTP endpoint of the benches (a Meilisearch node or Miroir): requests with a key, writes
//! waited for, the corpus loaded in batches. Shared by `proxy` and `search_path`.

use std::time::{Duration, Instant};

use miroir_testnode::corpus::settings;
use serde_json::{json, Value};

#[derive(Clone)]
pub struct Endpoint {
    pub http: reqwest::Client,
    pub base: String,
    pub key: &'static str,
}

impl Endpoint {
    /// `pool`: idle keep-alive connections kept to the endpoint (at least the concurrency the
    /// bench runs at, so connections are reused, not reopened).
    pub fn new(base: &str, key: &'static str, pool: usize) -> Endpoint {
        Endpoint { http: reqwest::Client::builder().pool_max_idle_per_host(pool).build().unwrap(), base: base.into(), key }
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, content_type: &str, body: Option<Vec<u8>>) -> (u16, bytes::Bytes) {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(self.key);
        if let Some(b) = body {
            req = req.header("content-type", content_type).body(b);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{} {path}: {e}", self.base));
        let status = resp.status().as_u16();
        (status, resp.bytes().await.expect("response body"))
    }

    pub async fn json(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let (s, b) = self.send(method, path, "application/json", body.map(|v| serde_json::to_vec(v).unwrap())).await;
        (s, if b.is_empty() { Value::Null } else { serde_json::from_slice(&b).unwrap_or(Value::Null) })
    }

    /// Sends a write; returns its task uid (202 expected).
    pub async fn enqueue(&self, method: reqwest::Method, path: &str, content_type: &str, body: Vec<u8>) -> u64 {
        let (s, b) = self.send(method, path, content_type, Some(body)).await;
        let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
        assert_eq!(s, 202, "{} {path}: {v}", self.base);
        v["taskUid"].as_u64().expect("taskUid")
    }

    pub async fn wait(&self, uid: u64) {
        for _ in 0..60_000 {
            let (s, t) = self.json(reqwest::Method::GET, &format!("/tasks/{uid}"), None).await;
            assert_eq!(s, 200, "{t}");
            match t["status"].as_str() {
                Some("succeeded") => return,
                Some("failed" | "canceled") => panic!("{}: task {uid} did not succeed: {t}", self.base),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        panic!("{}: task {uid} never finished", self.base);
    }

    pub async fn write(&self, method: reqwest::Method, path: &str, body: &Value) {
        let uid = self.enqueue(method, path, "application/json", serde_json::to_vec(body).unwrap()).await;
        self.wait(uid).await;
    }

    pub async fn create(&self, index: &str) {
        self.write(reqwest::Method::POST, "/indexes", &json!({"uid": index, "primaryKey": "id"})).await;
        self.write(reqwest::Method::PATCH, &format!("/indexes/{index}/settings"), &settings()).await;
    }

    pub async fn load(&self, index: &str, docs: &[Value], batch: usize) -> Duration {
        self.create(index).await;
        let t = Instant::now();
        for chunk in docs.chunks(batch) {
            self.write(reqwest::Method::POST, &format!("/indexes/{index}/documents"), &Value::from(chunk.to_vec())).await;
        }
        t.elapsed()
    }
}

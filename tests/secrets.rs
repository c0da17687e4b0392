//! No secret ever appears in a log line or an error message: the master key, the node master
//! key, the admin key, API key values and tenant tokens. A full run (keys created, used,
//! refused, updated, deleted; tokens used and refused) is made with every log line of every
//! crate captured (TRACE), then the log and every error answer are searched for each secret.
//! (Its own test binary: it installs the process-wide subscriber.)

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{Cluster, Http, Spec, ADMIN_KEY, MASTER_KEY, NODE_KEY};
use reqwest::Method;
use serde_json::{json, Value};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

/// Every request's answer, kept to search the error messages.
#[derive(Default)]
struct Answers(Vec<(String, u16, Value)>);

impl Answers {
    async fn call(&mut self, http: &Http, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let (s, _, b) = match &body {
            Some(b) => http.send_json(method.clone(), path, b).await,
            None => http.request(method.clone(), path, None, None).await,
        };
        self.0.push((format!("{method} {path}"), s, b.clone()));
        (s, b)
    }
}

fn token(uid: &str, rules: Value, key: &str) -> String {
    let sdk = meilisearch_sdk::client::Client::new("http://unused", Some("unused")).unwrap();
    sdk.generate_tenant_token(uid.to_string(), rules, Some(key), None).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_logs_or_error_messages() {
    let capture = Capture::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .try_init()
        .expect("install the capturing subscriber");

    let cluster = Cluster::start(Spec { shards: 4, replication_factor: 1, groups: vec![2] }).await;
    let http = cluster.http();
    let mut a = Answers::default();
    let mut secrets: Vec<String> = vec![MASTER_KEY.into(), NODE_KEY.into(), ADMIN_KEY.into()];

    let (_, list) = a.call(&http, Method::GET, "/keys", None).await;
    for k in list["results"].as_array().unwrap() {
        secrets.push(k["key"].as_str().unwrap().into());
    }
    let (s, created) = a
        .call(&http, Method::POST, "/keys", Some(json!({"name": "app", "actions": ["search", "documents.add", "indexes.create"], "indexes": ["movies*"], "expiresAt": null})))
        .await;
    assert_eq!(s, 201, "{created}");
    let (uid, value) = (created["uid"].as_str().unwrap().to_string(), created["key"].as_str().unwrap().to_string());
    secrets.push(value.clone());
    let key = http.with_key(&value);

    // Used.
    let (s, t) = a.call(&key, Method::POST, "/indexes/movies/documents?primaryKey=id", Some(json!([{"id": 1, "g": "a"}, {"id": 2, "g": "b"}]))).await;
    assert_eq!(s, 202, "{t}");
    cluster.wait_task(t["taskUid"].as_u64().unwrap()).await;
    let (_, _, t) = http.send_json(Method::PUT, "/indexes/movies/settings/filterable-attributes", &json!(["g"])).await;
    cluster.wait_task(t["taskUid"].as_u64().unwrap()).await;
    assert_eq!(a.call(&key, Method::POST, "/indexes/movies/search", Some(json!({}))).await.0, 200);
    assert_eq!(a.call(&key, Method::POST, "/multi-search", Some(json!({"queries": [{"indexUid": "movies"}]}))).await.0, 200);
    let (_, got) = a.call(&http, Method::GET, &format!("/keys/{value}"), None).await;
    assert_eq!(got["uid"], uid);
    let (s, _) = a.call(&http, Method::PATCH, &format!("/keys/{value}"), Some(json!({"name": "renamed"}))).await;
    assert_eq!(s, 200);

    // Tokens used and refused.
    let good = token(&uid, json!({"movies": {"filter": "g = a"}}), &value);
    let forged = token(&uid, json!(["*"]), MASTER_KEY);
    let elsewhere = token(&uid, json!(["books"]), &value);
    secrets.extend([good.clone(), forged.clone(), elsewhere.clone()]);
    let (s, b) = a.call(&http.with_key(&good), Method::POST, "/indexes/movies/search", Some(json!({}))).await;
    assert_eq!((s, b["hits"].as_array().map(Vec::len)), (200, Some(1)), "{b}");
    assert_eq!(a.call(&http.with_key(&good), Method::POST, "/indexes/movies/facet-search", Some(json!({"facetName": "g"}))).await.0, 200);
    assert_eq!(a.call(&http.with_key(&forged), Method::POST, "/indexes/movies/search", Some(json!({}))).await.0, 403);
    assert_eq!(a.call(&http.with_key(&elsewhere), Method::POST, "/indexes/movies/search", Some(json!({}))).await.0, 403);
    assert_eq!(a.call(&http.with_key(&good), Method::GET, "/indexes/movies/documents", None).await.0, 403);
    assert_eq!(a.call(&http.with_key(&good), Method::POST, "/multi-search", Some(json!({"queries": [{"indexUid": "books"}]}))).await.0, 403);

    // Refused keys.
    let other_master = miroir::auth::derive_key("another-master-key", &uid.parse().unwrap());
    secrets.push(other_master.clone());
    assert_eq!(a.call(&http.with_key(&other_master), Method::GET, "/indexes", None).await.0, 403);
    assert_eq!(a.call(&key, Method::GET, "/indexes/books/documents", None).await.0, 403);
    assert_eq!(a.call(&key, Method::POST, "/indexes/books/search", Some(json!({}))).await.0, 403);
    assert_eq!(a.call(&key, Method::GET, "/keys", None).await.0, 403);
    assert_eq!(a.call(&key, Method::POST, "/indexes", Some(json!({"uid": "books"}))).await.0, 403);
    assert_eq!(a.call(&http.with_key(&value), Method::GET, "/_miroir/topology", None).await.0, 403);
    assert_eq!(a.call(&http.with_key(ADMIN_KEY), Method::GET, "/indexes", None).await.0, 403, "the admin key is not a client key");
    let client = reqwest::Client::new();
    let r = client.get(format!("{}/indexes", cluster.url())).header("authorization", format!("Basic {MASTER_KEY}")).send().await.unwrap();
    let (s, b) = (r.status().as_u16(), r.json::<Value>().await.unwrap());
    a.0.push(("GET /indexes (Basic)".into(), s, b));

    // Deleted, then refused.
    let (s, _) = a.call(&http, Method::DELETE, &format!("/keys/{value}"), None).await;
    assert_eq!(s, 204);
    assert_eq!(a.call(&key, Method::POST, "/indexes/movies/search", Some(json!({}))).await.0, 403);
    assert_eq!(a.call(&http.with_key(&good), Method::POST, "/indexes/movies/search", Some(json!({}))).await.0, 403);
    let (s, _) = a.call(&http, Method::GET, &format!("/keys/{uid}"), None).await;
    assert_eq!(s, 404);

    drop(cluster);
    let log = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    assert!(log.contains("created the four default API keys"), "the capture works: {} bytes", log.len());
    eprintln!("captured {} bytes of logs, {} answers, {} secrets", log.len(), a.0.len(), secrets.len());
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "a secret appears in the log");
        for (what, status, body) in &a.0 {
            if *status >= 400 {
                assert!(!body.to_string().contains(secret.as_str()), "a secret appears in the error answer of {what}: {body}");
            }
        }
    }
    // Only key objects (of `/keys`, to the master key) carry a key value.
    for (what, status, body) in &a.0 {
        if *status < 400 && !what.contains("/keys") {
            for secret in &secrets {
                assert!(!body.to_string().contains(secret.as_str()), "{what} answered a secret");
            }
        }
    }
}

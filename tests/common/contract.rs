//! Replays the recorded Meilisearch contract (`shared/meilisearch-contract/cases.json`)
//! against a server and reports every difference from the recording.
//!
//! Use from a test with `#[path = "common/contract.rs"] mod contract;`, then
//! `contract::replay(&base_url, master_key).await` and assert the returned list is empty.
//!
//! Comparison rules (see the contract's README):
//! * status codes exactly; `content-type` by prefix;
//! * bodies structurally: same keys in the same order, same array lengths, same strings
//!   (error messages included), same numbers (an integer stays an integer, a float a float);
//! * volatile fields (timestamps, durations, sizes, `requestUid`, `batchUid`, ...) by presence
//!   and JSON type only.
//!
//! After every request answered with an enqueued task summary, the replayer polls that task
//! until it is finished, so later cases see its effect (the recording was made that way).

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

/// Keys compared by presence and type only.
pub const VOLATILE: [&str; 14] = [
    "enqueuedAt",
    "startedAt",
    "finishedAt",
    "duration",
    "createdAt",
    "updatedAt",
    "lastUpdate",
    "processingTimeMs",
    "requestUid",
    "databaseSize",
    "usedDatabaseSize",
    "rawDocumentDbSize",
    "avgDocumentSize",
    "batchUid",
];

/// One difference between the recording and the server.
#[derive(Debug, Clone)]
pub struct Mismatch {
    pub case: String,
    pub detail: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}", self.case, self.detail)
    }
}

/// Path of `cases.json`: `../shared/...` or `../../shared/...` relative to the crate.
pub fn cases_path() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        root.join("../shared/meilisearch-contract/cases.json"),
        root.join("../../shared/meilisearch-contract/cases.json"),
    ];
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| panic!("meilisearch contract not found; looked at {candidates:?}"))
}

/// The recorded cases, in order.
pub fn load_cases() -> Vec<Value> {
    let text = std::fs::read_to_string(cases_path()).expect("read cases.json");
    let v: Value = serde_json::from_str(&text).expect("parse cases.json");
    v.as_array().expect("cases.json is an array").clone()
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 300 {
        format!("{}…", s.chars().take(300).collect::<String>())
    } else {
        s
    }
}

/// Compares `actual` with `expected` under the rules above; pushes one line per difference.
pub fn compare(path: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    let key = path.rsplit('.').next().unwrap_or("");
    if VOLATILE.contains(&key) {
        // presence is checked by the caller; the type must agree (integers and floats are
        // both numbers here: sizes and durations are volatile)
        let kind = |v: &Value| match json_type(v) {
            "float" | "integer" => "number",
            t => t,
        };
        if kind(expected) != kind(actual) {
            out.push(format!("{path}: expected a {}, got {}", kind(expected), short(actual)));
        }
        return;
    }
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let ek: Vec<&String> = e.keys().collect();
            let ak: Vec<&String> = a.keys().collect();
            if ek != ak {
                out.push(format!("{path}: keys {ek:?} expected, got {ak:?}"));
            }
            for (k, ev) in e {
                if let Some(av) = a.get(k) {
                    compare(&format!("{path}.{k}"), ev, av, out);
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                out.push(format!("{path}: {} items expected, got {}: {}", e.len(), a.len(), short(actual)));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                compare(&format!("{path}[{i}]"), ev, av, out);
            }
        }
        (Value::Number(e), Value::Number(a)) => {
            let same_kind = e.is_f64() == a.is_f64();
            let (ef, af) = (e.as_f64().unwrap_or(f64::NAN), a.as_f64().unwrap_or(f64::NAN));
            let close = (ef - af).abs() <= 1e-12 * ef.abs().max(1.0);
            if !same_kind || !close {
                out.push(format!("{path}: expected {e}, got {a}"));
            }
        }
        (e, a) => {
            if e != a {
                out.push(format!("{path}: expected {}, got {}", short(e), short(a)));
            }
        }
    }
}

fn is_terminal(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "canceled")
}

/// Polls `GET /tasks/{uid}` until the task is finished (at most ~20 s).
async fn wait_for_task(client: &reqwest::Client, base: &str, key: &str, uid: u64) -> Result<(), String> {
    for _ in 0..2000 {
        let resp = client
            .get(format!("{base}/tasks/{uid}"))
            .bearer_auth(key)
            .send()
            .await
            .map_err(|e| format!("polling task {uid}: {e}"))?;
        let body: Value = resp.json().await.map_err(|e| format!("polling task {uid}: {e}"))?;
        if body["status"].as_str().is_some_and(is_terminal) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("task {uid} did not finish"))
}

/// Replays every recorded case against `base_url` (no trailing slash), using `master_key`
/// wherever the recording used the right key. Returns all mismatches, in case order.
pub async fn replay(base_url: &str, master_key: &str) -> Vec<Mismatch> {
    let client = reqwest::Client::new();
    let mut mismatches = Vec::new();
    for case in load_cases() {
        let name = case["name"].as_str().unwrap_or("?").to_string();
        let mut push = |detail: String| mismatches.push(Mismatch { case: name.clone(), detail });
        let req = &case["request"];
        let want = &case["response"];
        let method = reqwest::Method::from_bytes(req["method"].as_str().unwrap_or("GET").as_bytes()).unwrap();
        let mut builder = client.request(method, format!("{base_url}{}", req["path"].as_str().unwrap_or("/")));
        for (k, v) in req["headers"].as_object().into_iter().flatten() {
            let v = v.as_str().unwrap_or_default().replace("<master key>", master_key);
            builder = builder.header(k.as_str(), v);
        }
        builder = match &req["body"] {
            Value::Null => builder,
            Value::String(raw) => builder.body(raw.clone()),
            other => builder.body(other.to_string()),
        };
        let resp = match builder.send().await {
            Ok(r) => r,
            Err(e) => {
                push(format!("request failed: {e}"));
                continue;
            }
        };
        let status = resp.status().as_u16();
        let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let text = resp.text().await.unwrap_or_default();
        let want_status = want["status"].as_u64().unwrap_or(0) as u16;
        if status != want_status {
            push(format!("status: expected {want_status}, got {status}: {}", text.chars().take(300).collect::<String>()));
        }
        if let Some(ct) = want["headers"]["content-type"].as_str() {
            if !content_type.starts_with(ct) {
                push(format!("content-type: expected {ct}, got {content_type:?}"));
            }
        }
        let body: Value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text.clone())) };
        let mut diffs = Vec::new();
        if status == want_status {
            compare("body", &want["body"], &body, &mut diffs);
        }
        for d in diffs {
            push(d);
        }
        // let an enqueued task finish before the next case, as when recording
        if let Some(uid) = body.get("taskUid").and_then(Value::as_u64) {
            if let Err(e) = wait_for_task(&client, base_url, master_key, uid).await {
                push(e);
            }
        }
    }
    mismatches
}

//! Replays the recorded Meilisearch contract (`tests/fixtures/meilisearch-contract/cases.json`)
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
//! [`Mode::Sharded`] (for Miroir) relaxes exactly two things a sharded deployment cannot
//! reproduce: the order of tied hits and the internal order of document listings.
//!
//! After every request answered with an enqueued task summary, the replayer polls that task
//! until it is finished, so later cases see its effect (the recording was made that way).

#![allow(dead_code)]

use std::collections::HashMap;
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

/// Path of the recorded contract: the repository's copy, `tests/fixtures/meilisearch-contract/`
/// (an identical copy of the workspace's `shared/meilisearch-contract/`, recorded from a real
/// Meilisearch 1.50.0; `fixture_is_the_shared_recording` checks they stay identical). Found
/// from the manifest dir of whichever crate includes this file (Miroir or the test node).
pub fn cases_path() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        let p = dir.join("tests/fixtures/meilisearch-contract/cases.json");
        if p.exists() {
            return p;
        }
        if !dir.pop() {
            panic!("tests/fixtures/meilisearch-contract/cases.json not found above {}", env!("CARGO_MANIFEST_DIR"));
        }
    }
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

/// How strictly answers are compared with the recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Everything exactly as recorded (one Meilisearch node, or the in-repo test node).
    #[default]
    Exact,
    /// A sharded deployment (Miroir): tied hits may come in another order and document
    /// listings may page through another internal order; everything else stays exact.
    ///
    /// * Search-like answers (`/indexes/{uid}/search` POST and GET, each result of a
    ///   non-federated `/multi-search`, federated `/multi-search` hits): the hits are grouped
    ///   into tie groups (consecutive hits with equal `_rankingScoreDetails`, `_rankingScore`
    ///   and `_federation`; when the request did not ask for details it is re-issued with
    ///   `showRankingScoreDetails` to learn them). Each group must hold the same set of hits as
    ///   the recording at the same positions, and each hit must equal its recorded counterpart
    ///   (by primary key) field for field. A group cut by the page's start (offset > 0) or end
    ///   (page full, or `maxTotalHits` reached) may hold other members of the same tie group:
    ///   those are checked for shape, ranking fields and against the documents seen in the
    ///   recording. Everything outside `hits` is exact.
    /// * Document listings (`GET /indexes/{uid}/documents`, `POST .../documents/fetch`):
    ///   `offset`, `limit`, `total`, the result count and each result's fields are exact; each
    ///   result must be a document seen in the recording (same values), no document twice, and
    ///   when the whole result fits in the page, the same set as recorded.
    Sharded,
}

/// Replays every recorded case against `base_url` (no trailing slash), using `master_key`
/// wherever the recording used the right key. Returns all mismatches, in case order.
pub async fn replay(base_url: &str, master_key: &str) -> Vec<Mismatch> {
    replay_with(base_url, master_key, Mode::Exact).await
}

/// The request part of a case, ready to send (optionally with another path or body).
fn build_request(client: &reqwest::Client, base_url: &str, master_key: &str, req: &Value, path: &str, body: &Value) -> reqwest::RequestBuilder {
    let method = reqwest::Method::from_bytes(req["method"].as_str().unwrap_or("GET").as_bytes()).unwrap();
    let mut builder = client.request(method, format!("{base_url}{path}"));
    for (k, v) in req["headers"].as_object().into_iter().flatten() {
        let v = v.as_str().unwrap_or_default().replace("<master key>", master_key);
        builder = builder.header(k.as_str(), v);
    }
    match body {
        Value::Null => builder,
        Value::String(raw) => builder.body(raw.clone()),
        other => builder.body(other.to_string()),
    }
}

/// Like [`replay`], with the given comparison mode.
pub async fn replay_with(base_url: &str, master_key: &str, mode: Mode) -> Vec<Mismatch> {
    let client = reqwest::Client::new();
    let cases = load_cases();
    let registry = DocRegistry::from_cases(&cases);
    // `pagination.maxTotalHits` per index, as set by the recorded (successful) requests
    let mut max_total_hits: HashMap<String, usize> = HashMap::new();
    let mut mismatches = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        let name = case["name"].as_str().unwrap_or("?").to_string();
        let mut push = |detail: String| mismatches.push(Mismatch { case: name.clone(), detail });
        let req = &case["request"];
        let want = &case["response"];
        let path = req["path"].as_str().unwrap_or("/");
        let resp = match build_request(&client, base_url, master_key, req, path, &req["body"]).send().await {
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
            let shape = classify(req);
            match (mode, shape) {
                (Mode::Sharded, Some(shape)) if status == 200 => {
                    let ctx = Ctx { client: &client, base_url, master_key, req, case: n, registry: &registry, max_total_hits: &max_total_hits };
                    compare_sharded(&ctx, &shape, &want["body"], &body, &mut diffs).await;
                }
                _ => compare("body", &want["body"], &body, &mut diffs),
            }
        }
        for d in diffs {
            push(d);
        }
        if want_status == 202 {
            track_max_total_hits(req, &mut max_total_hits);
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

/// Meilisearch's default `pagination.maxTotalHits`.
const DEFAULT_MAX_TOTAL_HITS: usize = 1000;

/// Follows the recorded settings requests that change `pagination.maxTotalHits`.
fn track_max_total_hits(req: &Value, limits: &mut HashMap<String, usize>) {
    let path = req["path"].as_str().unwrap_or("");
    let segs: Vec<&str> = path.split('?').next().unwrap_or("").trim_matches('/').split('/').collect();
    let method = req["method"].as_str().unwrap_or("");
    let pagination = match (method, segs.as_slice()) {
        ("PATCH", ["indexes", uid, "settings"]) => req["body"].get("pagination").map(|p| (uid.to_string(), p.clone())),
        ("PATCH", ["indexes", uid, "settings", "pagination"]) => Some((uid.to_string(), req["body"].clone())),
        ("DELETE", ["indexes", uid, "settings"]) | ("DELETE", ["indexes", uid, "settings", "pagination"]) | ("DELETE", ["indexes", uid]) => {
            Some((uid.to_string(), Value::Null))
        }
        _ => None,
    };
    match pagination {
        Some((uid, Value::Null)) => {
            limits.remove(&uid);
        }
        Some((uid, p)) => match p.get("maxTotalHits") {
            Some(Value::Null) => {
                limits.remove(&uid);
            }
            Some(v) => {
                if let Some(m) = v.as_u64() {
                    limits.insert(uid, m as usize);
                }
            }
            None => {}
        },
        None => {}
    }
}

/// Which answers [`Mode::Sharded`] compares specially.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    Search { index: String, get: bool },
    MultiSearch,
    Federated,
    Listing { index: String },
}

fn classify(req: &Value) -> Option<Shape> {
    let path = req["path"].as_str().unwrap_or("");
    let segs: Vec<&str> = path.split('?').next().unwrap_or("").trim_matches('/').split('/').collect();
    let method = req["method"].as_str().unwrap_or("GET");
    match (method, segs.as_slice()) {
        ("POST", ["indexes", uid, "search"]) => Some(Shape::Search { index: uid.to_string(), get: false }),
        ("GET", ["indexes", uid, "search"]) => Some(Shape::Search { index: uid.to_string(), get: true }),
        ("POST", ["multi-search"]) if req["body"].get("federation").is_some_and(|f| !f.is_null()) => Some(Shape::Federated),
        ("POST", ["multi-search"]) => Some(Shape::MultiSearch),
        ("GET", ["indexes", uid, "documents"]) | ("POST", ["indexes", uid, "documents", "fetch"]) => {
            Some(Shape::Listing { index: uid.to_string() })
        }
        _ => None,
    }
}

/// What the sharded comparison needs besides the two bodies.
struct Ctx<'a> {
    client: &'a reqwest::Client,
    base_url: &'a str,
    master_key: &'a str,
    req: &'a Value,
    case: usize,
    registry: &'a DocRegistry,
    max_total_hits: &'a HashMap<String, usize>,
}

/// `body` with `key` replaced by `null` (keeping its position), and the removed value.
fn take_key(body: &Value, key: &str) -> (Value, Value) {
    let mut rest = body.clone();
    let taken = match rest.get_mut(key) {
        Some(v) => std::mem::take(v),
        None => Value::Null,
    };
    (rest, taken)
}

/// Where a page of hits starts, how many it could hold, and whether it was cut at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cut {
    /// Hits before this page exist (offset > 0): the first tie group may be cut.
    pub start: bool,
    /// Hits after this page may exist (page full or `maxTotalHits` reached): the last tie
    /// group may be cut.
    pub end: bool,
}

/// The page cut of a search answer (`offset`/`limit` or `page`/`hitsPerPage`).
pub fn page_cut(body: &Value, hits: usize, max_total_hits: Option<usize>) -> Cut {
    let num = |k: &str| body.get(k).and_then(Value::as_u64).map(|v| v as usize);
    let (offset, limit) = match (num("offset"), num("limit"), num("page"), num("hitsPerPage")) {
        (Some(o), Some(l), _, _) => (o, l),
        (_, _, Some(p), Some(h)) => (p.saturating_sub(1) * h, h),
        _ => (0, usize::MAX),
    };
    let end_by_cap = max_total_hits.is_some_and(|m| offset + hits >= m);
    Cut { start: offset > 0, end: hits == limit || end_by_cap }
}

async fn compare_sharded(ctx: &Ctx<'_>, shape: &Shape, want: &Value, got: &Value, out: &mut Vec<String>) {
    match shape {
        Shape::Listing { index } => compare_listing(ctx, index, want, got, out),
        Shape::Search { index, get } => {
            let (want_rest, want_hits) = take_key(want, "hits");
            let (got_rest, got_hits) = take_key(got, "hits");
            compare("body", &want_rest, &got_rest, out);
            let (Value::Array(e), Value::Array(a)) = (&want_hits, &got_hits) else {
                return compare("body.hits", &want_hits, &got_hits, out);
            };
            let asked = if *get {
                ctx.req["path"].as_str().unwrap_or("").contains("showRankingScoreDetails=true")
            } else {
                ctx.req["body"]["showRankingScoreDetails"] == Value::Bool(true)
            };
            let max = ctx.max_total_hits.get(index).copied().unwrap_or(DEFAULT_MAX_TOTAL_HITS);
            let cut = page_cut(want, e.len(), Some(max));
            let keys = if asked {
                a.iter().map(tie_key).collect()
            } else {
                let (path, body) = if *get {
                    let p = ctx.req["path"].as_str().unwrap_or("");
                    let sep = if p.contains('?') { '&' } else { '?' };
                    (format!("{p}{sep}showRankingScoreDetails=true"), ctx.req["body"].clone())
                } else {
                    let mut b = ctx.req["body"].clone();
                    b["showRankingScoreDetails"] = Value::Bool(true);
                    (ctx.req["path"].as_str().unwrap_or("").to_string(), b)
                };
                let cap = max.min(WIDE_CAP);
                let wide = if *get {
                    (widen_path(&path, cap), body.clone())
                } else {
                    let mut w = body.clone();
                    widen(&mut w, cap);
                    (path.clone(), w)
                };
                learn_keys(ctx, &path, &body, Some(wide), &[("body.hits".to_string(), a.as_slice(), cut)], &|again, _| again["hits"].clone(), out)
                    .await
                    .remove(0)
            };
            let lookup = |_: &Value| Some((index.clone(), ctx.case));
            compare_hits("body.hits", e, a, &keys, cut, ctx.registry, &lookup, out);
        }
        Shape::MultiSearch => {
            let (want_rest, want_results) = take_key(want, "results");
            let (got_rest, got_results) = take_key(got, "results");
            compare("body", &want_rest, &got_rest, out);
            let (Value::Array(er), Value::Array(ar)) = (&want_results, &got_results) else {
                return compare("body.results", &want_results, &got_results, out);
            };
            if er.len() != ar.len() {
                out.push(format!("body.results: {} items expected, got {}: {}", er.len(), ar.len(), short(&got_results)));
            }
            let queries = ctx.req["body"]["queries"].as_array().cloned().unwrap_or_default();
            let asked = queries.iter().all(|q| q["showRankingScoreDetails"] == Value::Bool(true));
            let again = if asked {
                None
            } else {
                let mut b = ctx.req["body"].clone();
                for q in b["queries"].as_array_mut().into_iter().flatten() {
                    q["showRankingScoreDetails"] = Value::Bool(true);
                }
                let lists: Vec<(String, &[Value], Cut)> = ar
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let hits = r["hits"].as_array().map(Vec::as_slice).unwrap_or(&[]);
                        let want_r = er.get(i).unwrap_or(&Value::Null);
                        let index = want_r["indexUid"].as_str().unwrap_or("");
                        let max = ctx.max_total_hits.get(index).copied().unwrap_or(DEFAULT_MAX_TOTAL_HITS);
                        let n = want_r["hits"].as_array().map_or(0, Vec::len);
                        (format!("body.results[{i}].hits"), hits, page_cut(want_r, n, Some(max)))
                    })
                    .collect();
                let path = ctx.req["path"].as_str().unwrap_or("");
                let mut w = b.clone();
                for q in w["queries"].as_array_mut().into_iter().flatten() {
                    let index = q["indexUid"].as_str().unwrap_or("").to_string();
                    let max = ctx.max_total_hits.get(&index).copied().unwrap_or(DEFAULT_MAX_TOTAL_HITS);
                    widen(q, max.min(WIDE_CAP));
                }
                let wide = Some((path.to_string(), w));
                Some(learn_keys(ctx, path, &b, wide, &lists, &|again, i| again["results"][i]["hits"].clone(), out).await)
            };
            for (i, (ew, ag)) in er.iter().zip(ar).enumerate() {
                let path = format!("body.results[{i}]");
                let (want_rest, want_hits) = take_key(ew, "hits");
                let (got_rest, got_hits) = take_key(ag, "hits");
                compare(&path, &want_rest, &got_rest, out);
                let hits_path = format!("{path}.hits");
                let (Value::Array(e), Value::Array(a)) = (&want_hits, &got_hits) else {
                    compare(&hits_path, &want_hits, &got_hits, out);
                    continue;
                };
                let keys = match &again {
                    None => a.iter().map(tie_key).collect(),
                    Some(keys) => keys[i].clone(),
                };
                let index = ew["indexUid"].as_str().unwrap_or("").to_string();
                let max = ctx.max_total_hits.get(&index).copied().unwrap_or(DEFAULT_MAX_TOTAL_HITS);
                let cut = page_cut(ew, e.len(), Some(max));
                let lookup = |_: &Value| Some((index.clone(), ctx.case));
                compare_hits(&hits_path, e, a, &keys, cut, ctx.registry, &lookup, out);
            }
        }
        Shape::Federated => {
            let (want_rest, want_hits) = take_key(want, "hits");
            let (got_rest, got_hits) = take_key(got, "hits");
            compare("body", &want_rest, &got_rest, out);
            let (Value::Array(e), Value::Array(a)) = (&want_hits, &got_hits) else {
                return compare("body.hits", &want_hits, &got_hits, out);
            };
            let queries = ctx.req["body"]["queries"].as_array().cloned().unwrap_or_default();
            let asked = queries.iter().all(|q| q["showRankingScoreDetails"] == Value::Bool(true));
            // federated answers are not capped by an index's maxTotalHits
            let cut = page_cut(want, e.len(), None);
            let keys = if asked {
                a.iter().map(tie_key).collect()
            } else {
                let mut b = ctx.req["body"].clone();
                for q in b["queries"].as_array_mut().into_iter().flatten() {
                    q["showRankingScoreDetails"] = Value::Bool(true);
                }
                let path = ctx.req["path"].as_str().unwrap_or("");
                let mut w = b.clone();
                if w.get("federation").is_some_and(Value::is_object) {
                    widen(&mut w["federation"], WIDE_CAP);
                }
                let wide = Some((path.to_string(), w));
                learn_keys(ctx, path, &b, wide, &[("body.hits".to_string(), a.as_slice(), cut)], &|again, _| again["hits"].clone(), out)
                    .await
                    .remove(0)
            };
            let lookup = |hit: &Value| hit["_federation"]["indexUid"].as_str().map(|i| (i.to_string(), ctx.case));
            compare_hits("body.hits", e, a, &keys, cut, ctx.registry, &lookup, out);
        }
    }
}

/// Sends the case's request again with another path/body (to learn ranking details).
async fn reissue(ctx: &Ctx<'_>, path: &str, body: &Value, out: &mut Vec<String>) -> Option<Value> {
    let resp = match build_request(ctx.client, ctx.base_url, ctx.master_key, ctx.req, path, body).send().await {
        Ok(r) => r,
        Err(e) => {
            out.push(format!("re-issuing the request with showRankingScoreDetails failed: {e}"));
            return None;
        }
    };
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    if status != 200 {
        out.push(format!("re-issuing the request with showRankingScoreDetails: status {status}: {}", text.chars().take(300).collect::<String>()));
        return None;
    }
    match serde_json::from_str(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            out.push(format!("re-issuing the request with showRankingScoreDetails: bad JSON: {e}"));
            None
        }
    }
}

/// What decides ties between hits: `_rankingScore`, `_rankingScoreDetails`, `_federation`.
/// `None` when the hit has no details (it then ties with nothing).
pub fn tie_key(hit: &Value) -> Option<Value> {
    let details = hit.get("_rankingScoreDetails")?;
    let mut key = serde_json::Map::new();
    key.insert("_rankingScoreDetails".into(), details.clone());
    for k in ["_rankingScore", "_federation"] {
        if let Some(v) = hit.get(k) {
            key.insert(k.into(), v.clone());
        }
    }
    Some(Value::Object(key))
}

/// The identity of a hit: its index (federated) and primary key, or the whole hit without its
/// ranking details when it has no `id` (e.g. `attributesToRetrieve` left it out).
pub fn identity(hit: &Value) -> String {
    match hit.get("id") {
        Some(id) => format!("{}#{id}", hit["_federation"]["indexUid"].as_str().unwrap_or("")),
        None => {
            let mut h = hit.clone();
            if let Some(o) = h.as_object_mut() {
                o.remove("_rankingScoreDetails");
            }
            h.to_string()
        }
    }
}

/// How many times a request is re-issued to learn the ranking details of every hit: each
/// answer may come from another replica group (reads rotate over them), whose page of tied hits
/// can hold other members of a tie.
const REISSUES: usize = 4;

/// Tie keys for each list of hits (`lists[i]`: its path, hits and page cut), learnt by
/// re-issuing the request (`path`, `body`: with `showRankingScoreDetails`) until every hit has
/// been seen, then once more as `wide` (the same asking for the whole result) if some have not;
/// `hits_of(answer, i)` finds list `i` in a re-issued answer. A hit still unseen gets a key only
/// through [`key_in_cut_group`]; otherwise it is reported and ties with nothing.
async fn learn_keys(
    ctx: &Ctx<'_>,
    path: &str,
    body: &Value,
    wide: Option<(String, Value)>,
    lists: &[(String, &[Value], Cut)],
    hits_of: &dyn Fn(&Value, usize) -> Value,
    out: &mut Vec<String>,
) -> Vec<Vec<Option<Value>>> {
    let mut known: Vec<HashMap<String, Option<Value>>> = vec![HashMap::new(); lists.len()];
    // tie keys by position in the last re-issued answer, per list
    let mut last: Vec<Vec<Option<Value>>> = vec![Vec::new(); lists.len()];
    let all_known = |known: &[HashMap<String, Option<Value>>]| {
        lists.iter().enumerate().all(|(i, (_, hits, _))| hits.iter().all(|h| known[i].contains_key(&identity(h))))
    };
    for _ in 0..REISSUES {
        let Some(again) = reissue(ctx, path, body, out).await else { break };
        for i in 0..lists.len() {
            last[i] = hits_of(&again, i).as_array().into_iter().flatten().map(tie_key).collect();
        }
        absorb(&mut known, lists, &again, hits_of, out);
        if all_known(&known) {
            break;
        }
    }
    // the whole result (up to maxTotalHits) shows every hit that is not cut off by the cap
    if let Some((wide_path, wide_body)) = wide.filter(|_| !all_known(&known)) {
        if let Some(again) = reissue(ctx, &wide_path, &wide_body, out).await {
            absorb(&mut known, lists, &again, hits_of, out);
        }
    }
    lists
        .iter()
        .enumerate()
        .map(|(i, (list_path, hits, cut))| {
            hits.iter()
                .enumerate()
                .map(|(k, h)| {
                    let id = identity(h);
                    if let Some(key) = known[i].get(&id) {
                        return key.clone();
                    }
                    if let Some(key) = key_in_cut_group(hits, &known[i], &last[i], k, *cut) {
                        return Some(key);
                    }
                    {
                        out.push(format!(
                            "{list_path}[{k}]: hit {id} never appears when the request is re-issued with showRankingScoreDetails ({REISSUES} times), and not in a tie group cut by the page"
                        ));
                        None
                    }
                })
                .collect()
        })
        .collect()
}

/// Learns the tie key of every hit of a re-issued answer, by identity; the same hit must have
/// the same key in every answer.
fn absorb(
    known: &mut [HashMap<String, Option<Value>>],
    lists: &[(String, &[Value], Cut)],
    answer: &Value,
    hits_of: &dyn Fn(&Value, usize) -> Value,
    out: &mut Vec<String>,
) {
    for (i, (list_path, _, _)) in lists.iter().enumerate() {
        for g in hits_of(answer, i).as_array().into_iter().flatten() {
            let (id, key) = (identity(g), tie_key(g));
            match known[i].get(&id) {
                Some(prev) if !same(&json_opt(prev), &json_opt(&key)) => out.push(format!(
                    "{list_path}: hit {id} has ranking details {} in one answer and {} in another",
                    short(&json_opt(prev)),
                    short(&json_opt(&key))
                )),
                Some(_) => {}
                None => {
                    known[i].insert(id, key);
                }
            }
        }
    }
}

/// `query` (a search body, or a federation) asking for the first `cap` hits instead of its page.
pub fn widen(query: &mut Value, cap: usize) {
    if let Some(o) = query.as_object_mut() {
        o.remove("page");
        o.remove("hitsPerPage");
        o.insert("offset".into(), Value::from(0));
        o.insert("limit".into(), Value::from(cap));
    }
}

/// The same for a GET search path.
pub fn widen_path(path: &str, cap: usize) -> String {
    let (base, query) = path.split_once('?').unwrap_or((path, ""));
    let mut params: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty() && !["offset", "limit", "page", "hitsPerPage"].contains(&p.split('=').next().unwrap_or("")))
        .map(str::to_string)
        .collect();
    params.push("offset=0".into());
    params.push(format!("limit={cap}"));
    format!("{base}?{}", params.join("&"))
}

/// The largest page a wide re-issue asks for.
const WIDE_CAP: usize = 1000;

/// The tie key of `hits[k]`, a hit no re-issued answer showed, when that is legitimate: reads
/// rotate over replica groups, and each may fill a page's cut tie group with other members
/// of the tie. So when, in the last re-issued answer (`last`: tie keys by position), position
/// `k` lies inside a tie group cut by the page's start or end, and every hit whose key is known
/// sits at a position with that same key (the two answers rank alike), `hits[k]` takes the
/// key of its position. The caller still checks it is a real document with the right shape.
pub fn key_in_cut_group(hits: &[Value], known: &HashMap<String, Option<Value>>, last: &[Option<Value>], k: usize, cut: Cut) -> Option<Value> {
    if last.len() != hits.len() {
        return None;
    }
    let pk = last[k].clone()?;
    let tied = |j: &Option<Value>| j.as_ref().is_some_and(|j| same(j, &pk));
    let in_first = cut.start && last[..=k].iter().all(tied);
    let in_last = cut.end && last[k..].iter().all(tied);
    let alike = hits.iter().zip(last).all(|(h, at)| match known.get(&identity(h)) {
        Some(key) => same(&json_opt(key), &json_opt(at)),
        None => true,
    });
    ((in_first || in_last) && alike).then_some(pk)
}

fn json_opt(v: &Option<Value>) -> Value {
    v.clone().unwrap_or(Value::Null)
}

fn same(a: &Value, b: &Value) -> bool {
    let mut d = Vec::new();
    compare("", a, b, &mut d);
    d.is_empty()
}

fn keys_of(v: &Value) -> Vec<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

/// Tie-aware comparison of a page of hits (see [`Mode::Sharded`]). `keys[k]` is the tie key
/// of `actual[k]` (`None`: ties with nothing); `doc_of(hit)` names the index and case under
/// which a hit's document values are looked up in `registry`.
pub fn compare_hits(
    path: &str,
    expected: &[Value],
    actual: &[Value],
    keys: &[Option<Value>],
    cut: Cut,
    registry: &DocRegistry,
    doc_of: &dyn Fn(&Value) -> Option<(String, usize)>,
    out: &mut Vec<String>,
) {
    if expected.len() != actual.len() {
        out.push(format!("{path}: {} items expected, got {}", expected.len(), actual.len()));
    }
    let n = expected.len().min(actual.len());
    let ids: Vec<String> = actual.iter().map(identity).collect();
    let mut seen = std::collections::HashSet::new();
    for (k, h) in actual.iter().enumerate() {
        if h.get("id").is_some() && !seen.insert(&ids[k]) {
            out.push(format!("{path}[{k}]: hit {} appears twice", ids[k]));
        }
    }
    let mut s = 0;
    while s < n {
        let mut t = s + 1;
        if let Some(key) = &keys[s] {
            while t < n && keys[t].as_ref().is_some_and(|k| same(key, k)) {
                t += 1;
            }
        }
        let cut_group = (s == 0 && cut.start) || (t == n && n == actual.len() && cut.end);
        let want_ids: Vec<String> = expected[s..t].iter().map(identity).collect();
        if !cut_group {
            let (mut w, mut g) = (want_ids.clone(), ids[s..t].to_vec());
            w.sort();
            g.sort();
            if w != g {
                out.push(format!("{path}[{s}..{t}]: tie group holds {:?}, recorded {:?}", &ids[s..t], want_ids));
            }
        }
        for k in s..t {
            let a = &actual[k];
            if let Some(j) = want_ids.iter().position(|w| *w == ids[k]) {
                compare(&format!("{path}[{k}]"), &expected[s + j], a, out);
                continue;
            }
            if !cut_group {
                continue; // already reported as a different set
            }
            if let Some(m) = expected.iter().map(identity).position(|w| w == ids[k]) {
                out.push(format!("{path}[{k}]: hit {} is recorded at position {m}, outside its tie group {s}..{t}", ids[k]));
                continue;
            }
            // another member of a tie group cut by the page: same shape and ranking fields as
            // the recorded hit at this position, and a document the recording knows
            let e = &expected[k];
            let (ek, ak) = (keys_of(e), keys_of(a));
            if ek != ak {
                out.push(format!("{path}[{k}]: keys {ek:?} expected, got {ak:?}"));
            }
            for f in ["_rankingScore", "_rankingScoreDetails"] {
                if let (Some(ev), Some(av)) = (e.get(f), a.get(f)) {
                    compare(&format!("{path}[{k}].{f}"), ev, av, out);
                }
            }
            if let (Some(ef), Some(af)) = (e.get("_federation"), a.get("_federation")) {
                compare(&format!("{path}[{k}]._federation"), ef, af, out);
            }
            if let Some((index, case)) = doc_of(a) {
                registry.check(&format!("{path}[{k}]"), &index, case, a, out);
            }
        }
        s = t;
    }
}

/// A document listing under [`Mode::Sharded`].
fn compare_listing(ctx: &Ctx<'_>, index: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    let (want_rest, want_results) = take_key(want, "results");
    let (got_rest, got_results) = take_key(got, "results");
    compare("body", &want_rest, &got_rest, out);
    let (Value::Array(e), Value::Array(a)) = (&want_results, &got_results) else {
        return compare("body.results", &want_results, &got_results, out);
    };
    compare_listing_results("body.results", e, a, want, ctx.registry, index, ctx.case, out);
}

/// The `results` of a document listing: see [`Mode::Sharded`]. `page` is the recorded body
/// (for `offset`, `limit`, `total`).
pub fn compare_listing_results(path: &str, expected: &[Value], actual: &[Value], page: &Value, registry: &DocRegistry, index: &str, case: usize, out: &mut Vec<String>) {
    if expected.len() != actual.len() {
        out.push(format!("{path}: {} items expected, got {}", expected.len(), actual.len()));
    }
    let ids: Vec<String> = actual.iter().map(identity).collect();
    let want_ids: Vec<String> = expected.iter().map(identity).collect();
    let mut seen = std::collections::HashSet::new();
    for (k, d) in actual.iter().enumerate() {
        if d.get("id").is_some() && !seen.insert(&ids[k]) {
            out.push(format!("{path}[{k}]: document {} appears twice", ids[k]));
        }
    }
    let num = |k: &str| page.get(k).and_then(Value::as_u64);
    let whole = num("offset") == Some(0) && matches!((num("total"), num("limit")), (Some(t), Some(l)) if t <= l);
    if whole {
        let (mut w, mut g) = (want_ids.clone(), ids.clone());
        w.sort();
        g.sort();
        if w != g {
            out.push(format!("{path}: the whole result holds {ids:?}, recorded {want_ids:?}"));
        }
    }
    for (k, d) in actual.iter().enumerate() {
        if let Some(j) = want_ids.iter().position(|w| *w == ids[k]) {
            compare(&format!("{path}[{k}]"), &expected[j], d, out);
            continue;
        }
        if let Some(e) = expected.get(k) {
            let (ek, ak) = (keys_of(e), keys_of(d));
            if ek != ak {
                out.push(format!("{path}[{k}]: keys {ek:?} expected, got {ak:?}"));
            }
        }
        registry.check(&format!("{path}[{k}]"), index, case, d, out);
    }
}

/// Every document value the recording shows, by index and primary key, in case order: lets a
/// sharded answer prove that a hit the recording does not show at that position is still a
/// real document with the right values.
#[derive(Debug, Default)]
pub struct DocRegistry {
    docs: HashMap<(String, String), Vec<(usize, serde_json::Map<String, Value>)>>,
}

/// Whether a field is document data (not a search annotation such as `_formatted`).
fn is_doc_field(k: &str) -> bool {
    !k.starts_with('_') || k == "_geo"
}

impl DocRegistry {
    /// Records the document values of `doc` (a hit or listed document of `index`) seen in case `case`.
    pub fn observe(&mut self, index: &str, case: usize, doc: &Value) {
        let (Some(o), Some(id)) = (doc.as_object(), doc.get("id")) else { return };
        let fields = o.iter().filter(|(k, _)| is_doc_field(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
        self.docs.entry((index.to_string(), id.to_string())).or_default().push((case, fields));
    }

    /// All the documents shown by the recorded answers.
    pub fn from_cases(cases: &[Value]) -> Self {
        let mut r = Self::default();
        for (n, case) in cases.iter().enumerate() {
            if case["response"]["status"] != 200 {
                continue;
            }
            let body = &case["response"]["body"];
            let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
            let req = &case["request"];
            match classify(req) {
                Some(Shape::Search { index, .. }) => list(&body["hits"]).iter().for_each(|h| r.observe(&index, n, h)),
                Some(Shape::Listing { index }) => list(&body["results"]).iter().for_each(|h| r.observe(&index, n, h)),
                Some(Shape::MultiSearch) => {
                    for res in list(&body["results"]) {
                        let index = res["indexUid"].as_str().unwrap_or("").to_string();
                        list(&res["hits"]).iter().for_each(|h| r.observe(&index, n, h));
                    }
                }
                Some(Shape::Federated) => {
                    for h in list(&body["hits"]) {
                        if let Some(index) = h["_federation"]["indexUid"].as_str() {
                            r.observe(index, n, &h);
                        }
                    }
                }
                None => {
                    let path = req["path"].as_str().unwrap_or("");
                    let segs: Vec<&str> = path.split('?').next().unwrap_or("").trim_matches('/').split('/').collect();
                    if let ("GET", ["indexes", uid, "documents", _]) = (req["method"].as_str().unwrap_or(""), segs.as_slice()) {
                        r.observe(uid, n, body);
                    }
                }
            }
        }
        r
    }

    /// Checks every document field of `doc` against the recording, as of case `case` (the last
    /// value shown at or before it, else the first shown after it).
    pub fn check(&self, path: &str, index: &str, case: usize, doc: &Value, out: &mut Vec<String>) {
        let Some(o) = doc.as_object() else {
            return out.push(format!("{path}: expected a document, got {}", short(doc)));
        };
        let Some(id) = doc.get("id") else {
            return; // nothing to look it up by: the shape was checked by the caller
        };
        let Some(seen) = self.docs.get(&(index.to_string(), id.to_string())) else {
            return out.push(format!("{path}: document {id} of index `{index}` appears nowhere in the recording"));
        };
        for (k, v) in o.iter().filter(|(k, _)| is_doc_field(k)) {
            let before = seen.iter().rev().find(|(c, f)| *c <= case && f.contains_key(k));
            let after = seen.iter().find(|(c, f)| *c > case && f.contains_key(k));
            match before.or(after) {
                Some((_, f)) => compare(&format!("{path}.{k}"), &f[k], v, out),
                None => out.push(format!("{path}.{k}: document {id} of index `{index}` never shows this field in the recording")),
            }
        }
    }
}

//! `docs/compatibility.md` is the contract of which Meilisearch 1.50 routes Miroir serves: its
//! table must list every route and method of Meilisearch 1.50 CE (the list below is taken from
//! Meilisearch's route modules), and each row's status must be what Miroir does:
//!
//! * no route Meilisearch has answers Miroir's "route not found" (a `404 not_found`) or a 405;
//! * a row marked `supported` never answers `501`;
//! * a row marked `unsupported` answers `501 miroir_not_implemented` in Meilisearch's error shape.
//!
//! Each route is called once through Miroir with the master key and a minimal (often invalid)
//! request: what matters here is that the route exists and is routed, not the answer's content
//! (the tests named in the table check that).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Cluster, Spec, MASTER_KEY};
use serde_json::{json, Value};

/// Every route of Meilisearch 1.50 CE, as `METHOD path` (`{…}` are path parameters).
fn meilisearch_routes() -> Vec<String> {
    let mut r: Vec<String> = [
        "GET /health",
        "GET /version",
        "GET /stats",
        "GET /tasks",
        "DELETE /tasks",
        "POST /tasks/cancel",
        "POST /tasks/compact",
        "GET /tasks/{taskUid}",
        "GET /tasks/{taskUid}/documents",
        "GET /batches",
        "GET /batches/{batchUid}",
        "GET /indexes",
        "POST /indexes",
        "GET /indexes/{indexUid}",
        "PATCH /indexes/{indexUid}",
        "DELETE /indexes/{indexUid}",
        "GET /indexes/{indexUid}/documents",
        "POST /indexes/{indexUid}/documents",
        "PUT /indexes/{indexUid}/documents",
        "DELETE /indexes/{indexUid}/documents",
        "POST /indexes/{indexUid}/documents/delete-batch",
        "POST /indexes/{indexUid}/documents/delete",
        "POST /indexes/{indexUid}/documents/edit",
        "POST /indexes/{indexUid}/documents/fetch",
        "GET /indexes/{indexUid}/documents/{documentId}",
        "DELETE /indexes/{indexUid}/documents/{documentId}",
        "POST /indexes/{indexUid}/facet-search",
        "GET /indexes/{indexUid}/similar",
        "POST /indexes/{indexUid}/similar",
        "GET /indexes/{indexUid}/search",
        "POST /indexes/{indexUid}/search",
        "GET /indexes/{indexUid}/settings",
        "PATCH /indexes/{indexUid}/settings",
        "DELETE /indexes/{indexUid}/settings",
        "POST /indexes/{indexUid}/compact",
        "GET /indexes/{indexUid}/stats",
        "POST /indexes/{indexUid}/fields",
        "POST /snapshots",
        "POST /dumps",
        "GET /keys",
        "POST /keys",
        "GET /keys/{key}",
        "PATCH /keys/{key}",
        "DELETE /keys/{key}",
        "GET /metrics",
        "POST /logs/stream",
        "DELETE /logs/stream",
        "POST /logs/stderr",
        "POST /multi-search",
        "POST /swap-indexes",
        "GET /experimental-features",
        "PATCH /experimental-features",
        "POST /export",
        "GET /network",
        "PATCH /network",
        "POST /network/control",
        "GET /webhooks",
        "POST /webhooks",
        "GET /webhooks/{uuid}",
        "PATCH /webhooks/{uuid}",
        "DELETE /webhooks/{uuid}",
        "POST /dynamic-search-rules",
        "DELETE /dynamic-search-rules",
        "GET /dynamic-search-rules/{uid}",
        "PATCH /dynamic-search-rules/{uid}",
        "DELETE /dynamic-search-rules/{uid}",
        "POST /render-template",
        "GET /chats",
        "GET /chats/{workspaceUid}",
        "DELETE /chats/{workspaceUid}",
        "GET /chats/{workspaceUid}/settings",
        "PATCH /chats/{workspaceUid}/settings",
        "DELETE /chats/{workspaceUid}/settings",
        "POST /chats/{workspaceUid}/chat/completions",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Settings sub-routes: GET, the update verb, DELETE.
    for (name, verb) in [
        ("filterable-attributes", "PUT"),
        ("sortable-attributes", "PUT"),
        ("displayed-attributes", "PUT"),
        ("typo-tolerance", "PATCH"),
        ("searchable-attributes", "PUT"),
        ("stop-words", "PUT"),
        ("non-separator-tokens", "PUT"),
        ("separator-tokens", "PUT"),
        ("dictionary", "PUT"),
        ("synonyms", "PUT"),
        ("distinct-attribute", "PUT"),
        ("proximity-precision", "PUT"),
        ("localized-attributes", "PUT"),
        ("ranking-rules", "PUT"),
        ("faceting", "PATCH"),
        ("pagination", "PATCH"),
        ("embedders", "PATCH"),
        ("search-cutoff-ms", "PUT"),
        ("facet-search", "PUT"),
        ("prefix-search", "PUT"),
        ("chat", "PATCH"),
        ("foreign-keys", "PUT"),
    ] {
        for m in ["GET", verb, "DELETE"] {
            r.push(format!("{m} /indexes/{{indexUid}}/settings/{name}"));
        }
    }
    r
}

/// The rows of the table in docs/compatibility.md: `METHOD path` → status word.
fn documented() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/compatibility.md")).expect("docs/compatibility.md");
    let mut rows = Vec::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[1].starts_with('`') {
            continue;
        }
        let route = cells[1].trim_matches('`').to_string();
        if !route.contains(" /") {
            continue;
        }
        let status = cells[2].split_whitespace().next().unwrap_or("").trim_matches(|c| c == '*' || c == ':').to_lowercase();
        rows.push((route, status));
    }
    rows
}

#[test]
fn the_table_lists_every_meilisearch_route_once() {
    let rows = documented();
    let listed: Vec<&String> = rows.iter().map(|(r, _)| r).collect();
    let unique: BTreeSet<&String> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "a route is listed twice in docs/compatibility.md");
    let expected: BTreeSet<String> = meilisearch_routes().into_iter().collect();
    let got: BTreeSet<String> = rows.iter().map(|(r, _)| r.clone()).collect();
    let missing: Vec<&String> = expected.difference(&got).collect();
    let extra: Vec<&String> = got.difference(&expected).collect();
    assert!(missing.is_empty() && extra.is_empty(), "docs/compatibility.md: missing {missing:?}, not Meilisearch routes {extra:?}");
    for (route, status) in &rows {
        assert!(["supported", "unsupported"].contains(&status.as_str()), "{route}: status `{status}` is neither `supported` nor `unsupported`");
    }
}

fn concrete(route: &str) -> (reqwest::Method, String) {
    let (m, p) = route.split_once(' ').unwrap();
    let path = p
        .replace("{indexUid}", "movies")
        .replace("{documentId}", "1")
        .replace("{taskUid}", "0")
        .replace("{batchUid}", "0")
        .replace("{key}", "01b4bc42-eb33-4041-b481-254d00cce834")
        .replace("{uuid}", "627ea538-733d-4545-8d2d-03526eb381ce")
        .replace("{uid}", "rule")
        .replace("{workspaceUid}", "ws");
    (m.parse().unwrap(), path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_meilisearch_route_is_routed_as_documented() {
    let cluster = Cluster::start(Spec::rf1_3_nodes()).await;
    let http = cluster.http();
    let (s, b) = http.post("/indexes", &json!({"uid": "movies", "primaryKey": "id"})).await;
    assert_eq!(s, 202, "{b}");
    http.wait_task(b["taskUid"].as_u64().unwrap()).await;
    let (s, b) = http.post("/indexes/movies/documents", &json!([{"id": 1, "title": "one"}])).await;
    assert_eq!(s, 202, "{b}");
    http.wait_task(b["taskUid"].as_u64().unwrap()).await;

    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    // `miroir serve` adds Miroir's `/metrics` next to the API (src/commands/serve.rs); the
    // in-process server of the tests does not, so that route is checked on `miroir serve`'s
    // router below.
    let mut rows = documented();
    // Index and task deletions last, so that every other route sees the index.
    rows.sort_by_key(|(r, _)| r.starts_with("DELETE /indexes/{indexUid}") as u8 + r.starts_with("DELETE /tasks") as u8);
    let mut failures = Vec::new();
    for (route, status) in &rows {
        if route == "GET /metrics" {
            continue;
        }
        let (method, path) = concrete(route);
        let mut req = client.request(method.clone(), format!("{}{path}", cluster.url())).bearer_auth(MASTER_KEY);
        if ["POST", "PUT", "PATCH"].contains(&method.as_str()) {
            req = req.header("content-type", "application/json").body("{}");
        }
        let resp = match req.send().await {
            Ok(r) => r,
            // A streaming route that answered headers but keeps the body open, or a slow
            // answer: the route exists.
            Err(e) if e.is_timeout() => continue,
            Err(e) => {
                failures.push(format!("{route}: {e}"));
                continue;
            }
        };
        let code = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let err = body["code"].as_str().unwrap_or("");
        // Miroir's own "no such route" is a JSON `404 not_found`; an empty 404 is a node's
        // answer to a route Miroir did route (the in-repo test node has no `chat` and
        // `foreign-keys` settings routes; Meilisearch has them).
        if code == 404 && body.is_null() && !common::engine().is_real() {
            continue;
        }
        if code == 405 || (code == 404 && (err.is_empty() || err == "not_found")) {
            failures.push(format!("{route}: {code} {body} — Miroir does not route it"));
        } else if status == "supported" && code == 501 {
            failures.push(format!("{route}: documented as supported, answered {code} {body}"));
        } else if status == "unsupported" && (code != 501 || err != "miroir_not_implemented") {
            failures.push(format!("{route}: documented as unsupported, answered {code} {body}"));
        }
        if code >= 400 && !(body["message"].is_string() && body["type"].is_string() && body["link"].is_string()) {
            failures.push(format!("{route}: {code} not in Meilisearch's error shape: {body}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} routes:\n{}", failures.len(), rows.len(), failures.join("\n"));
}

/// `GET /metrics` on the router `miroir serve` serves (the API plus Miroir's metrics).
#[tokio::test]
async fn metrics_are_served_next_to_the_api() {
    use tower::ServiceExt;
    let dir = tempfile::tempdir().unwrap();
    let cfg = miroir::config::TaskStoreConfig { path: dir.path().join("m.db"), ..Default::default() };
    let store = miroir::store::open(&cfg).await.unwrap();
    let proxy = miroir::dataplane::Proxy::new(common::test_options(), store);
    let app = miroir::commands::serve::app(&proxy);
    let resp = app.oneshot(axum::http::Request::get("/metrics").body(axum::body::Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    assert!(String::from_utf8_lossy(&body).contains("miroir_"), "not Miroir's metrics");
}

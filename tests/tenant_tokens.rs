//! Tenant tokens made with the official Rust SDK's generator, checked by Miroir: the token's
//! filter restricts search, facet search and multi-search results (fused with the client's
//! filter before the fan-out), and every refusal reads as Meilisearch's (compared with a real
//! node's answer to the same kind of token when the engine is real Meilisearch).

mod common;

use std::time::Duration;

use common::{Cluster, Http, Spec, MASTER_KEY};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use meilisearch_sdk::client::Client;
use serde_json::{json, Value};
use time::OffsetDateTime;

const GENRES: [&str; 3] = ["horror", "comedy", "drama"];

fn docs() -> Vec<Value> {
    (0..60).map(|i| json!({"id": i, "title": format!("movie {i}"), "genre": GENRES[i % 3], "year": 1990 + i})).collect()
}

async fn setup() -> Cluster {
    let cluster = Cluster::start(Spec { shards: 8, replication_factor: 1, groups: vec![3] }).await;
    let http = cluster.http();
    for uid in ["movies", "books"] {
        let (_, t) = http.post(&format!("/indexes/{uid}/documents?primaryKey=id"), &json!(docs())).await;
        assert_eq!(cluster.wait_task(t["taskUid"].as_u64().unwrap()).await["status"], "succeeded");
        let (_, _, t) = http.send_json(reqwest::Method::PUT, &format!("/indexes/{uid}/settings/filterable-attributes"), &json!(["genre", "year"])).await;
        assert_eq!(cluster.wait_task(t["taskUid"].as_u64().unwrap()).await["status"], "succeeded");
    }
    cluster
}

async fn create_key(http: &Http, actions: &[&str], indexes: &[&str], expires_at: Option<&str>) -> (String, String) {
    let (s, b) = http.post("/keys", &json!({"actions": actions, "indexes": indexes, "expiresAt": expires_at})).await;
    assert_eq!(s, 201, "{b}");
    (b["uid"].as_str().unwrap().to_string(), b["key"].as_str().unwrap().to_string())
}

/// The SDK's generator (the client's own key is irrelevant: the parent key is passed).
fn token(uid: &str, rules: Value, key: &str, exp: Option<OffsetDateTime>) -> String {
    let sdk = Client::new("http://unused", Some("unused")).unwrap();
    sdk.generate_tenant_token(uid.to_string(), rules, Some(key), exp).unwrap()
}

fn genres_of(body: &Value) -> Vec<String> {
    body["hits"].as_array().unwrap_or_else(|| panic!("{body}")).iter().map(|h| h["genre"].as_str().unwrap().to_string()).collect()
}

fn scm(s: u16, b: &Value) -> (u16, String, String) {
    (s, b["code"].as_str().unwrap_or("").into(), b["message"].as_str().unwrap_or("").into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_filters_restrict_every_search_route() {
    let cluster = setup().await;
    let http = cluster.http();
    let (uid, key) = create_key(&http, &["search"], &["*"], None).await;
    let t = token(&uid, json!({"movies": {"filter": "genre = horror"}, "*": {"filter": "genre = comedy"}, "books": null}), &key, None);
    let c = http.with_key(&t);

    // search POST: only horror (20 of 60), with the client's filter ANDed.
    let (s, b) = c.post("/indexes/movies/search", &json!({"limit": 100})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["estimatedTotalHits"], 20);
    assert!(genres_of(&b).iter().all(|g| g == "horror"), "{b}");
    let (_, b) = c.post("/indexes/movies/search", &json!({"filter": "year >= 2030", "limit": 100})).await;
    assert_eq!(b["estimatedTotalHits"], 6, "{b}");
    assert!(genres_of(&b).iter().all(|g| g == "horror"));
    let (_, b) = c.post("/indexes/movies/search", &json!({"filter": ["genre = comedy"], "limit": 100})).await;
    assert_eq!(b["estimatedTotalHits"], 0, "comedy AND horror: {b}");
    // search GET.
    let (s, b) = c.get("/indexes/movies/search?filter=year%20%3C%202000&limit=100").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(genres_of(&b), ["horror"; 4]);
    // The `*` rule for another index; `null` means no filter.
    let (_, b) = c.post("/indexes/books/search", &json!({"limit": 100})).await;
    assert_eq!(b["estimatedTotalHits"], 60, "{b}");
    // facet search.
    let (s, b) = c.post("/indexes/movies/facet-search", &json!({"facetName": "genre"})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["facetHits"], json!([{"value": "horror", "count": 20}]));
    // facets of a search.
    let (_, b) = c.post("/indexes/movies/search", &json!({"facets": ["genre"], "limit": 0})).await;
    assert_eq!(b["facetDistribution"], json!({"genre": {"horror": 20}}));
    // multi-search, plain and federated: each query gets its index's rule.
    let (s, b) = c
        .post("/multi-search", &json!({"queries": [{"indexUid": "movies", "limit": 100}, {"indexUid": "books", "filter": "genre = drama", "limit": 100}]}))
        .await;
    assert_eq!(s, 200, "{b}");
    assert!(genres_of(&b["results"][0]).iter().all(|g| g == "horror") && b["results"][0]["estimatedTotalHits"] == 20, "{b}");
    assert_eq!(b["results"][1]["estimatedTotalHits"], 20);
    let (s, b) = c
        .post("/multi-search", &json!({"federation": {"limit": 200}, "queries": [{"indexUid": "movies"}, {"indexUid": "books", "filter": "genre = drama"}]}))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["estimatedTotalHits"], 40, "{b}");
    for h in b["hits"].as_array().unwrap() {
        let want = if h["_federation"]["indexUid"] == "movies" { "horror" } else { "drama" };
        assert_eq!(h["genre"], want, "{h}");
    }

    // Through the SDK itself, with the token as its key.
    let sdk = Client::new(cluster.url(), Some(t.clone())).unwrap();
    let res = sdk.index("movies").search().with_limit(100).execute::<Value>().await.unwrap();
    assert_eq!(res.hits.len(), 20);
    assert!(res.hits.iter().all(|h| h.result["genre"] == "horror"));

    // The array form restricts indexes, not documents.
    let t2 = token(&uid, json!(["mov*"]), &key, Some(OffsetDateTime::now_utc() + time::Duration::hours(1)));
    let (s, b) = http.with_key(&t2).post("/indexes/movies/search", &json!({"limit": 100})).await;
    assert_eq!((s, b["estimatedTotalHits"].clone()), (200, json!(60)), "{b}");
    // HS384 and HS512 are accepted too.
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let t = encode(&Header::new(alg), &json!({"apiKeyUid": uid, "searchRules": {"movies": {"filter": "genre = drama"}}}), &EncodingKey::from_secret(key.as_bytes())).unwrap();
        let (s, b) = http.with_key(&t).post("/indexes/movies/search", &json!({"limit": 100})).await;
        assert_eq!(s, 200, "{alg:?}: {b}");
        assert_eq!(genres_of(&b), ["drama"; 20]);
    }
}

/// One kind of refused token: how to build it from (parent uid, parent value), the request
/// and Meilisearch's answer (status, code, message or message prefix).
struct Refusal {
    what: &'static str,
    make: Box<dyn Fn(&Keys) -> String>,
    method: reqwest::Method,
    path: &'static str,
    body: Option<Value>,
    message: Box<dyn Fn(&Keys) -> String>,
    prefix_only: bool,
}

/// The parent keys of one Meilisearch (Miroir, or a node): (uid, value) of each.
struct Keys {
    all: (String, String),
    movies_only: (String, String),
    no_search: (String, String),
}

async fn parent_keys(http: &Http) -> Keys {
    Keys {
        all: create_key(http, &["search"], &["*"], None).await,
        movies_only: create_key(http, &["search"], &["movies"], None).await,
        no_search: create_key(http, &["documents.get"], &["*"], None).await,
    }
}

fn hs256(claims: Value, secret: &str) -> String {
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

fn refusals() -> Vec<Refusal> {
    let search = || (reqwest::Method::POST, "/indexes/books/search", Some(json!({})));
    let invalid = |_: &Keys| "The provided API key is invalid.".to_string();
    let mut v = Vec::new();
    let (m, p, b) = search();
    v.push(Refusal {
        what: "index not in the token's rules",
        make: Box::new(|k| token(&k.all.0, json!(["movies", "mov*"]), &k.all.1, None)),
        method: m,
        path: p,
        body: b,
        message: Box::new(|_| "The provided tenant token cannot acces the index `books`, allowed indexes are [\"mov*\", \"movies\"].".into()),
        prefix_only: false,
    });
    let (m, p, b) = search();
    v.push(Refusal {
        what: "index in the rules, not in the parent key's indexes",
        make: Box::new(|k| token(&k.movies_only.0, json!({"*": null}), &k.movies_only.1, None)),
        method: m,
        path: p,
        body: b,
        message: Box::new(|_| "The API key used to generate this tenant token cannot acces the index `books`.".into()),
        prefix_only: false,
    });
    let (m, p, b) = search();
    v.push(Refusal {
        what: "parent key without `search`",
        make: Box::new(|k| token(&k.no_search.0, json!(["*"]), &k.no_search.1, None)),
        method: m,
        path: p,
        body: b,
        message: Box::new(invalid),
        prefix_only: false,
    });
    let (m, p, b) = search();
    v.push(Refusal {
        what: "wrong signature",
        make: Box::new(|k| token(&k.all.0, json!(["*"]), "not-the-key-value", None)),
        method: m,
        path: p,
        body: b,
        message: Box::new(|_| "Could not decode tenant token, InvalidSignature.".into()),
        prefix_only: false,
    });
    let (m, p, b) = search();
    v.push(Refusal {
        what: "unknown apiKeyUid",
        make: Box::new(|k| token("6ca0cf5e-0a2b-4c2b-9a8e-3b0a7d0c1e2f", json!(["*"]), &k.all.1, None)),
        method: m,
        path: p,
        body: b,
        message: Box::new(|_| "Could not decode tenant token, InvalidSignature.".into()),
        prefix_only: false,
    });
    let (m, p, b) = search();
    v.push(Refusal {
        what: "expired",
        make: Box::new(|k| hs256(json!({"apiKeyUid": k.all.0, "searchRules": ["*"], "exp": 1_000_000}), &k.all.1)),
        method: m,
        path: p,
        body: b,
        message: Box::new(|_| "Tenant token expired. Was valid up to `1000000` and we're now `".into()),
        prefix_only: true,
    });
    let (m, p, b) = search();
    v.push(Refusal {
        what: "no searchRules",
        make: Box::new(|k| hs256(json!({"apiKeyUid": k.all.0}), &k.all.1)),
        method: m,
        path: p,
        body: b,
        message: Box::new(|_| "Could not decode tenant token, JSON error: missing field `searchRules` at line 1 column ".into()),
        prefix_only: true,
    });
    let (m, p, b) = search();
    v.push(Refusal {
        what: "searchRules of the wrong shape",
        make: Box::new(|k| hs256(json!({"searchRules": 12, "apiKeyUid": k.all.0}), &k.all.1)),
        method: m,
        path: p,
        body: b,
        message: Box::new(|_| "Could not decode tenant token, JSON error: data did not match any variant of untagged enum SearchRules at line 1 column 17.".into()),
        prefix_only: false,
    });
    v.push(Refusal {
        what: "a token on a route that is not a search",
        make: Box::new(|k| token(&k.all.0, json!(["*"]), &k.all.1, None)),
        method: reqwest::Method::GET,
        path: "/indexes/movies/documents",
        body: None,
        message: Box::new(invalid),
        prefix_only: false,
    });
    v.push(Refusal {
        what: "multi-search with a query outside the rules",
        make: Box::new(|k| token(&k.all.0, json!(["movies"]), &k.all.1, None)),
        method: reqwest::Method::POST,
        path: "/multi-search",
        body: Some(json!({"queries": [{"indexUid": "movies"}, {"indexUid": "books"}]})),
        message: Box::new(|_| "Inside `.queries[1]`: The provided API key is invalid.".into()),
        prefix_only: false,
    });
    v.push(Refusal {
        what: "facet search outside the rules",
        make: Box::new(|k| token(&k.all.0, json!({"movies": {"filter": "genre = horror"}}), &k.all.1, None)),
        method: reqwest::Method::POST,
        path: "/indexes/books/facet-search",
        body: Some(json!({"facetName": "genre"})),
        message: Box::new(|_| "The provided tenant token cannot acces the index `books`, allowed indexes are [\"movies\"].".into()),
        prefix_only: false,
    });
    v
}

async fn ask(http: &Http, r: &Refusal, token: &str) -> (u16, String, String) {
    let (s, _, b) = match &r.body {
        Some(body) => http.with_key(token).send_json(r.method.clone(), r.path, body).await,
        None => http.with_key(token).request(r.method.clone(), r.path, None, None).await,
    };
    scm(s, &b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_read_as_meilisearch() {
    let cluster = setup().await;
    let real = cluster.nodes[0].is_real();
    let miroir = cluster.http();
    let mine = parent_keys(&miroir).await;
    // The same parents on a node (its own master key, so other values), for the comparison.
    let node = cluster.node_http(0);
    let theirs = if real {
        for uid in ["movies", "books"] {
            let (_, t) = node.post("/indexes", &json!({"uid": uid})).await;
            node.wait_task(t["taskUid"].as_u64().unwrap()).await;
        }
        Some(parent_keys(&node).await)
    } else {
        None
    };
    for r in refusals() {
        let got = ask(&miroir, &r, &(r.make)(&mine)).await;
        let want = (r.message)(&mine);
        assert_eq!((got.0, got.1.as_str()), (403, "invalid_api_key"), "{}: {got:?}", r.what);
        if r.prefix_only {
            assert!(got.2.starts_with(&want), "{}: {got:?}", r.what);
        } else {
            assert_eq!(got.2, want, "{}", r.what);
        }
        if let Some(theirs) = &theirs {
            let node_got = ask(&node, &r, &(r.make)(theirs)).await;
            if r.what == "expired" {
                // Only the current time differs.
                assert_eq!((node_got.0, &node_got.1), (got.0, &got.1), "{} on the node", r.what);
                assert!(node_got.2.starts_with(&want), "{} on the node: {node_got:?}", r.what);
            } else {
                assert_eq!(node_got, got, "{}: Miroir vs node", r.what);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expire_and_follow_their_parent_key() {
    let cluster = setup().await;
    let http = cluster.http();
    let (uid, key) = create_key(&http, &["search"], &["*"], None).await;
    // A token valid for one more second (the SDK refuses to make an expired one).
    let t = token(&uid, json!(["*"]), &key, Some(OffsetDateTime::now_utc() + time::Duration::seconds(1)));
    assert_eq!(http.with_key(&t).post("/indexes/movies/search", &json!({})).await.0, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (s, b) = http.with_key(&t).post("/indexes/movies/search", &json!({})).await;
    assert_eq!(s, 403, "{b}");
    assert!(b["message"].as_str().unwrap().starts_with("Tenant token expired. Was valid up to `"), "{b}");

    // A parent key that expires takes its tokens with it.
    let expiry = (OffsetDateTime::now_utc() + time::Duration::seconds(2)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let (puid, pkey) = create_key(&http, &["search"], &["*"], Some(&expiry)).await;
    let t = token(&puid, json!(["*"]), &pkey, None);
    assert_eq!(http.with_key(&t).post("/indexes/movies/search", &json!({})).await.0, 200);
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let (s, b) = http.with_key(&t).post("/indexes/movies/search", &json!({})).await;
    assert_eq!(scm(s, &b), (403, "invalid_api_key".into(), "The provided API key is invalid.".into()));

    // A deleted parent key too (the signature, made with its value, is still right).
    let t = token(&uid, json!(["*"]), &key, None);
    let (s, _, _) = http.request(reqwest::Method::DELETE, &format!("/keys/{uid}"), None, None).await;
    assert_eq!(s, 204);
    let (s, b) = http.with_key(&t).post("/indexes/movies/search", &json!({})).await;
    assert_eq!(scm(s, &b), (403, "invalid_api_key".into(), "The provided API key is invalid.".into()));
    // The token is signed with the key's value, not the master key.
    let t = hs256(json!({"apiKeyUid": uid, "searchRules": ["*"]}), MASTER_KEY);
    assert_eq!(http.with_key(&t).post("/indexes/movies/search", &json!({})).await.0, 403);
}

// ---------------------------------------------------------------- what the nodes see

/// Every request Miroir sends a node: (method and path, Authorization header, body).
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, Option<String>, String)>>>;

/// A forwarder in front of a node that records what Miroir sends it.
async fn recording(node_url: String, seen: Seen) -> String {
    use axum::extract::{Request, State};
    async fn forward(State((node, seen)): State<(String, Seen)>, req: Request) -> axum::response::Response {
        let method = req.method().clone();
        let target = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
        let auth = req.headers().get("authorization").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let ct = req.headers().get("content-type").cloned();
        let body = axum::body::to_bytes(req.into_body(), usize::MAX).await.unwrap();
        seen.lock().unwrap().push((format!("{method} {target}"), auth.clone(), String::from_utf8_lossy(&body).into_owned()));
        let mut out = reqwest::Client::new().request(method, format!("{node}{target}")).body(body);
        if let Some(a) = auth {
            out = out.header("authorization", a);
        }
        if let Some(ct) = ct {
            out = out.header("content-type", ct);
        }
        let resp = out.send().await.unwrap();
        let status = resp.status();
        let ct = resp.headers().get("content-type").cloned();
        let mut r = axum::response::Response::new(axum::body::Body::from(resp.bytes().await.unwrap()));
        *r.status_mut() = status;
        if let Some(ct) = ct {
            r.headers_mut().insert("content-type", ct);
        }
        r
    }
    let app = axum::Router::new().fallback(forward).with_state((node_url, seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_only_ever_see_the_node_master_key() {
    let seen: Seen = Default::default();
    let cluster = Cluster::start_addressed(Spec { shards: 4, replication_factor: 1, groups: vec![2] }, common::test_options(), |n| {
        recording(n.url.clone(), seen.clone())
    })
    .await;
    let http = cluster.http();
    let (uid, key) = create_key(&http, &["search", "documents.add", "documents.get", "indexes.create", "settings.update"], &["*"], None).await;
    let k = http.with_key(&key);
    let (_, t) = k.post("/indexes/movies/documents?primaryKey=id", &json!(docs())).await;
    assert_eq!(cluster.wait_task(t["taskUid"].as_u64().unwrap()).await["status"], "succeeded");
    let (_, _, t) = k.send_json(reqwest::Method::PUT, "/indexes/movies/settings/filterable-attributes", &json!(["genre", "id"])).await;
    assert_eq!(cluster.wait_task(t["taskUid"].as_u64().unwrap()).await["status"], "succeeded");
    assert_eq!(k.post("/indexes/movies/search", &json!({"q": "movie"})).await.0, 200);
    assert_eq!(k.get("/indexes/movies/documents/3").await.0, 200);
    let tok = token(&uid, json!({"movies": {"filter": "genre = horror"}}), &key, None);
    let (s, b) = http.with_key(&tok).post("/indexes/movies/search", &json!({"filter": "id > 10", "limit": 100})).await;
    assert_eq!(s, 200, "{b}");
    assert!(genres_of(&b).iter().all(|g| g == "horror"));
    assert_eq!(http.with_key(&tok).post("/multi-search", &json!({"queries": [{"indexUid": "movies"}]})).await.0, 200);
    assert_eq!(http.with_key(&tok).post("/indexes/movies/facet-search", &json!({"facetName": "genre"})).await.0, 200);

    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() > 10, "{} node requests", seen.len());
    let node_auth = format!("Bearer {}", common::NODE_KEY);
    for (what, auth, body) in &seen {
        assert_eq!(auth.as_deref(), Some(node_auth.as_str()), "{what}: a node saw another credential");
        for secret in [key.as_str(), tok.as_str(), MASTER_KEY] {
            assert!(!what.contains(secret) && !body.contains(secret), "{what}: a client secret reached a node");
        }
    }
    // The token's rule reached the nodes fused with the client's filter, not the token.
    assert!(
        seen.iter().any(|(what, _, body)| what.contains("/search") && body.contains("genre = horror") && body.contains("id > 10")),
        "no node search carried the fused filter"
    );
}

//! API keys owned by Miroir: `/keys` CRUD answered and refused as Meilisearch 1.50 does
//! (where a real node can be asked, the same request is sent to it and the answers compared),
//! the default keys, the permission of every route by action, index patterns, expiry, and
//! keys shared across a Miroir restart and by two Miroirs on one Redis.

mod common;
#[path = "common/store_fixtures.rs"]
mod store_fixtures;

use std::time::Duration;

use common::{test_options, Cluster, Http, Spec, MASTER_KEY, NODE_KEY};
use reqwest::Method;
use serde_json::{json, Value};

fn small() -> Spec {
    Spec { shards: 4, replication_factor: 1, groups: vec![2] }
}

/// (status, code, message) of an answer.
fn scm(status: u16, body: &Value) -> (u16, String, String) {
    (status, body["code"].as_str().unwrap_or("").to_string(), body["message"].as_str().unwrap_or("").to_string())
}

async fn call(http: &Http, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    let (s, _, b) = match body {
        Some(b) => http.send_json(method, path, b).await,
        None => http.request(method, path, None, None).await,
    };
    (s, b)
}

/// Creates a key through `http` and returns (uid, value).
async fn create_key(http: &Http, actions: &[&str], indexes: &[&str], expires_at: Option<&str>) -> (String, String) {
    let (s, b) = http.post("/keys", &json!({"actions": actions, "indexes": indexes, "expiresAt": expires_at})).await;
    assert_eq!(s, 201, "{b}");
    (b["uid"].as_str().unwrap().to_string(), b["key"].as_str().unwrap().to_string())
}

fn is_rfc3339(v: &Value) -> bool {
    v.as_str().is_some_and(|s| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok())
}

const KEY_FIELDS: [&str; 9] = ["name", "description", "key", "uid", "actions", "indexes", "expiresAt", "createdAt", "updatedAt"];

fn assert_key_shape(k: &Value) {
    let fields: Vec<&str> = k.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(fields, KEY_FIELDS, "{k}");
    let key = k["key"].as_str().unwrap();
    assert_eq!(key.len(), 64);
    assert!(key.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{key}");
    assert!(is_rfc3339(&k["createdAt"]) && is_rfc3339(&k["updatedAt"]), "{k}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_keys_and_crud() {
    let cluster = Cluster::start(small()).await;
    let http = cluster.http();
    let (s, list) = http.get("/keys").await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list.as_object().unwrap().keys().collect::<Vec<_>>(), ["results", "offset", "limit", "total"]);
    assert_eq!((list["offset"].clone(), list["limit"].clone(), list["total"].clone()), (json!(0), json!(20), json!(4)));
    let names: Vec<&str> = list["results"].as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Default Search API Key", "Default Admin API Key", "Default Read-Only Admin API Key", "Default Chat API Key"]);
    let results = list["results"].as_array().unwrap();
    for k in results {
        assert_key_shape(k);
        assert_eq!(k["indexes"], json!(["*"]));
        assert_eq!(k["expiresAt"], Value::Null);
    }
    assert_eq!(results[0]["actions"], json!(["search"]));
    assert_eq!(results[0]["description"], "Use it to search from the frontend");
    assert_eq!(results[1]["actions"], json!(["*"]));
    assert_eq!(results[2]["actions"], json!(["*.get", "keys.get"]));
    assert_eq!(results[3]["actions"], json!(["chatCompletions", "search"]));
    // The value is Meilisearch's derivation: HMAC-SHA256(master key, uid).
    for k in results {
        let uid: uuid::Uuid = k["uid"].as_str().unwrap().parse().unwrap();
        assert_eq!(k["key"].as_str().unwrap(), miroir::auth::derive_key(MASTER_KEY, &uid));
    }
    // The default admin key works like a key, and the search key only searches.
    let admin = http.with_key(results[1]["key"].as_str().unwrap());
    assert_eq!(admin.get("/keys").await.0, 200);
    let search = http.with_key(results[0]["key"].as_str().unwrap());
    let (s, b) = search.get("/keys").await;
    assert_eq!(scm(s, &b), (403, "invalid_api_key".into(), "The provided API key is invalid.".into()));

    // Paging.
    let (_, page) = http.get("/keys?offset=1&limit=2").await;
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    assert_eq!((page["offset"].clone(), page["limit"].clone(), page["total"].clone()), (json!(1), json!(2), json!(4)));
    assert_eq!(page["results"][0]["uid"], results[1]["uid"]);
    let (_, past) = http.get("/keys?offset=10").await;
    assert_eq!(past["results"], json!([]));
    assert_eq!(past["total"], 4);

    // Create with every field; the answer is the key object in Meilisearch's field order.
    let uid = "01b4bc42-eb33-4041-b481-254d00cce834";
    let (s, created) = http
        .post(
            "/keys",
            &json!({"description": "Indexing", "name": "Products", "uid": uid, "actions": ["documents.add", "documents.add"],
                    "indexes": ["products", "prod*"], "expiresAt": "2050-01-01T00:00:00+02:00"}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    assert_key_shape(&created);
    assert_eq!(created["uid"], uid);
    assert_eq!(created["name"], "Products");
    assert_eq!(created["description"], "Indexing");
    assert_eq!(created["actions"], json!(["documents.add", "documents.add"]), "duplicates kept");
    assert_eq!(created["indexes"], json!(["products", "prod*"]));
    assert_eq!(created["expiresAt"], "2050-01-01T00:00:00+02:00", "the offset given is kept");
    assert_eq!(created["createdAt"], created["updatedAt"]);
    let value = created["key"].as_str().unwrap().to_string();

    // Newest first.
    let (_, list) = http.get("/keys").await;
    assert_eq!(list["total"], 5);
    assert_eq!(list["results"][0], created);

    // By uid (any uuid form), by value (any hex case).
    for p in [uid.to_string(), uid.to_uppercase(), uid.replace('-', ""), format!("urn:uuid:{uid}"), value.clone(), value.to_uppercase()] {
        let (s, got) = http.get(&format!("/keys/{p}")).await;
        assert_eq!((s, &got), (200, &created), "GET /keys/{p}");
    }

    // Date-only expiry is echoed at midnight UTC; null name/description are present.
    let (s, k2) = http.post("/keys", &json!({"actions": ["search"], "indexes": ["*"], "expiresAt": "2050-11-13"})).await;
    assert_eq!(s, 201, "{k2}");
    assert_eq!(k2["expiresAt"], "2050-11-13T00:00:00Z");
    assert_eq!((k2["name"].clone(), k2["description"].clone()), (Value::Null, Value::Null));

    // PATCH: name and description only; updatedAt moves on every PATCH, even `{}`.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (s, _, patched) = http.send_json(Method::PATCH, &format!("/keys/{uid}"), &json!({"name": "Renamed", "description": null})).await;
    assert_eq!(s, 200, "{patched}");
    assert_key_shape(&patched);
    assert_eq!(patched["name"], "Renamed");
    assert_eq!(patched["description"], Value::Null);
    assert_eq!((patched["key"].clone(), patched["createdAt"].clone()), (created["key"].clone(), created["createdAt"].clone()));
    assert_ne!(patched["updatedAt"], created["updatedAt"]);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (s, _, again) = http.send_json(Method::PATCH, &format!("/keys/{value}"), &json!({})).await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["name"], "Renamed");
    assert_ne!(again["updatedAt"], patched["updatedAt"]);

    // DELETE: 204 and an empty body; then not found, and the value no longer works.
    let (s, _, b) = http.request(Method::DELETE, &format!("/keys/{value}"), None, None).await;
    assert_eq!((s, b), (204, Value::Null));
    let (s, b) = http.get(&format!("/keys/{uid}")).await;
    assert_eq!(scm(s, &b), (404, "api_key_not_found".into(), format!("API key `{uid}` not found.")));
    let (s, b) = http.with_key(&value).post("/indexes/products/documents", &json!([{"id": 1}])).await;
    assert_eq!(scm(s, &b), (403, "invalid_api_key".into(), "The provided API key is invalid.".into()));
}

/// `/keys` requests whose answers are compared with a real node's (same request, the node's
/// own master key). Each case: method, path, body (raw bytes, with content type), and the
/// answer Meilisearch 1.50 gives (status, code, message) per the spec.
struct Case {
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Option<String>,
    want: (u16, &'static str, String),
}

fn case(method: Method, path: &'static str, body: Option<Value>, want: (u16, &'static str, &str)) -> Case {
    Case {
        method,
        path,
        content_type: body.as_ref().map(|_| "application/json"),
        body: body.map(|b| b.to_string()),
        want: (want.0, want.1, want.2.to_string()),
    }
}

fn validation_cases() -> Vec<Case> {
    let all_actions = miroir::auth::actions::names().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ");
    let pattern_msg = |at: &str, s: &str| {
        format!("Invalid value at `{at}`: `{s}` is not a valid index uid pattern. Index uid patterns can be an integer or a string containing only alphanumeric characters, hyphens (-), underscores (_), and optionally end with a star (*).")
    };
    let date_msg = |s: &str| {
        format!("Invalid value at `.expiresAt`: `{s}` is not a valid date. It should follow the RFC 3339 format to represents a date or datetime in the future or specified as a null value. e.g. 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS'.\n")
    };
    let missing = "00000000-0000-4000-8000-00000000abcd";
    let mut v = vec![
        case(Method::POST, "/keys", Some(json!({})), (400, "missing_api_key_actions", "Missing field `actions`")),
        case(Method::POST, "/keys", Some(json!({"actions": ["search"], "expiresAt": null})), (400, "missing_api_key_indexes", "Missing field `indexes`")),
        case(Method::POST, "/keys", Some(json!({"actions": ["search"], "indexes": ["*"]})), (400, "missing_api_key_expires_at", "Missing field `expiresAt`")),
        case(
            Method::POST,
            "/keys",
            Some(json!({"expires_at": null})),
            (400, "bad_request", "Unknown field `expires_at`: did you mean `expiresAt`? expected one of `description`, `name`, `uid`, `actions`, `indexes`, `expiresAt`"),
        ),
        case(
            Method::POST,
            "/keys",
            Some(json!({"actions": ["doc.add"], "indexes": ["*"], "expiresAt": null})),
            (400, "invalid_api_key_actions", &format!("Unknown value `doc.add` at `.actions[0]`: expected one of {all_actions}")),
        ),
        case(
            Method::POST,
            "/keys",
            Some(json!({"actions": ["serch"], "indexes": ["*"], "expiresAt": null})),
            (400, "invalid_api_key_actions", &format!("Unknown value `serch` at `.actions[0]`: did you mean `search`? expected one of {all_actions}")),
        ),
        case(
            Method::POST,
            "/keys",
            Some(json!({"actions": "search", "indexes": ["*"], "expiresAt": null})),
            (400, "invalid_api_key_actions", "Invalid value type at `.actions`: expected an array, but found a string: `\"search\"`"),
        ),
        case(
            Method::POST,
            "/keys",
            Some(json!({"actions": ["search", 1], "indexes": ["*"], "expiresAt": null})),
            (400, "invalid_api_key_actions", "Invalid value type at `.actions[1]`: expected a string, but found a positive integer: `1`"),
        ),
        case(Method::POST, "/keys", Some(json!({"actions": ["search"], "indexes": ["bad uid*"], "expiresAt": null})), (400, "invalid_api_key_indexes", &pattern_msg(".indexes[0]", "bad uid"))),
        case(Method::POST, "/keys", Some(json!({"actions": ["search"], "indexes": ["ok", "a*b"], "expiresAt": null})), (400, "invalid_api_key_indexes", &pattern_msg(".indexes[1]", "a*b"))),
        case(
            Method::POST,
            "/keys",
            Some(json!({"actions": ["search"], "indexes": "*", "expiresAt": null})),
            (400, "invalid_api_key_indexes", "Invalid value type at `.indexes`: expected an array, but found a string: `\"*\"`"),
        ),
        case(Method::POST, "/keys", Some(json!({"actions": ["search"], "indexes": ["*"], "expiresAt": "2000-01-01"})), (400, "invalid_api_key_expires_at", &date_msg("2000-01-01"))),
        case(Method::POST, "/keys", Some(json!({"actions": ["search"], "indexes": ["*"], "expiresAt": "doggo"})), (400, "invalid_api_key_expires_at", &date_msg("doggo"))),
        case(
            Method::POST,
            "/keys",
            Some(json!({"actions": ["search"], "indexes": ["*"], "expiresAt": {"name": "products"}})),
            (400, "invalid_api_key_expires_at", "Invalid value type at `.expiresAt`: expected a string, but found an object: `{\"name\":\"products\"}`"),
        ),
        case(
            Method::POST,
            "/keys",
            Some(json!({"actions": ["search", "version"], "indexes": ["movies"], "expiresAt": null})),
            (400, "index_scoped_api_key_with_global_action", "cannot create index-scoped API key with global action `\"version\"`\n  - Hint: remove action `\"version\"` from the action list, or remove `indexes` to make the key global"),
        ),
        case(Method::POST, "/keys", Some(json!({"uid": "0000000000000", "actions": ["search"], "indexes": ["*"], "expiresAt": null})), (400, "invalid_api_key_uid", "Invalid value at `.uid`: invalid length: found 13")),
        case(
            Method::POST,
            "/keys",
            Some(json!({"uid": ["doggo"], "actions": ["search"], "indexes": ["*"], "expiresAt": null})),
            (400, "invalid_api_key_uid", "Invalid value type at `.uid`: expected a string, but found an array: `[\"doggo\"]`"),
        ),
        case(
            Method::POST,
            "/keys",
            Some(json!({"name": 13, "actions": ["search"], "indexes": ["*"], "expiresAt": null})),
            (400, "invalid_api_key_name", "Invalid value type at `.name`: expected a string, but found a positive integer: `13`"),
        ),
        case(
            Method::POST,
            "/keys",
            Some(json!({"description": true, "actions": ["search"], "indexes": ["*"], "expiresAt": null})),
            (400, "invalid_api_key_description", "Invalid value type at `.description`: expected a string, but found a boolean: `true`"),
        ),
        case(Method::POST, "/keys", Some(json!([])), (400, "bad_request", "Invalid value type: expected an object, but found an array: `[]`")),
        case(Method::GET, "/keys?doggo=1", None, (400, "bad_request", "Unknown parameter `doggo`: expected one of `offset`, `limit`")),
        case(Method::GET, "/keys?limit=abc", None, (400, "invalid_api_key_limit", "Invalid value in parameter `limit`: could not parse `abc` as a positive integer")),
        case(Method::GET, "/keys?offset=-1", None, (400, "invalid_api_key_offset", "Invalid value in parameter `offset`: could not parse `-1` as a positive integer")),
        case(Method::GET, "/keys/00000000-0000-4000-8000-00000000ABCD", None, (404, "api_key_not_found", &format!("API key `{missing}` not found."))),
        case(Method::GET, "/keys/not-a-key", None, (404, "api_key_not_found", "API key `not-a-key` not found.")),
        case(Method::DELETE, "/keys/00000000-0000-4000-8000-00000000abcd", None, (404, "api_key_not_found", &format!("API key `{missing}` not found."))),
        case(Method::PATCH, "/keys/00000000-0000-4000-8000-00000000abcd", Some(json!({"name": "x"})), (404, "api_key_not_found", &format!("API key `{missing}` not found."))),
        // The body is read before the key is looked up.
        case(
            Method::PATCH,
            "/keys/00000000-0000-4000-8000-00000000abcd",
            Some(json!({"actions": []})),
            (400, "immutable_api_key_actions", "Immutable field `actions`: expected one of `description`, `name`"),
        ),
    ];
    for (field, code) in [
        ("uid", "immutable_api_key_uid"),
        ("indexes", "immutable_api_key_indexes"),
        ("expiresAt", "immutable_api_key_expires_at"),
        ("createdAt", "immutable_api_key_created_at"),
        ("updatedAt", "immutable_api_key_updated_at"),
    ] {
        let msg = format!("Immutable field `{field}`: expected one of `description`, `name`");
        v.push(case(Method::PATCH, "/keys/00000000-0000-4000-8000-00000000abcd", Some(json!({field: "x"})), (400, code, &msg)));
    }
    v.push(case(
        Method::PATCH,
        "/keys/00000000-0000-4000-8000-00000000abcd",
        Some(json!({"key": "x"})),
        (400, "bad_request", "Unknown field `key`: expected one of `description`, `name`"),
    ));
    v.push(case(
        Method::PATCH,
        "/keys/00000000-0000-4000-8000-00000000abcd",
        Some(json!({"name": 13})),
        (400, "invalid_api_key_name", "Invalid value type at `.name`: expected a string, but found a positive integer: `13`"),
    ));
    // Payload errors.
    v.push(Case {
        method: Method::POST,
        path: "/keys",
        content_type: None,
        body: Some("{}".into()),
        want: (415, "missing_content_type", "A Content-Type header is missing. Accepted values for the Content-Type header are: `application/json`".into()),
    });
    v.push(Case {
        method: Method::POST,
        path: "/keys",
        content_type: Some("text/plain"),
        body: Some("{}".into()),
        want: (415, "invalid_content_type", "The Content-Type `text/plain` is invalid. Accepted values for the Content-Type header are: `application/json`".into()),
    });
    v.push(Case { method: Method::POST, path: "/keys", content_type: Some("application/json"), body: Some(String::new()), want: (400, "missing_payload", "A json payload is missing.".into()) });
    v.push(Case {
        method: Method::POST,
        path: "/keys",
        content_type: Some("application/json"),
        body: Some("{\"actions\": [".into()),
        want: (400, "malformed_payload", "The json payload provided is malformed. `EOF while parsing a list at line 1 column 13`.".into()),
    });
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_validation_as_meilisearch() {
    let cluster = Cluster::start(small()).await;
    let real = cluster.nodes[0].is_real();
    let miroir = cluster.http();
    let node = cluster.node_http(0);
    for c in validation_cases() {
        let (s, _, b) = miroir.request(c.method.clone(), c.path, c.content_type, c.body.clone().map(String::into_bytes)).await;
        assert_eq!(scm(s, &b), (c.want.0, c.want.1.to_string(), c.want.2.clone()), "Miroir: {} {} {:?}", c.method, c.path, c.body);
        assert_eq!(b["type"], "invalid_request");
        assert_eq!(b["link"], format!("https://docs.meilisearch.com/errors#{}", c.want.1));
        if real {
            let (ns, _, nb) = node.request(c.method.clone(), c.path, c.content_type, c.body.clone().map(String::into_bytes)).await;
            assert_eq!(scm(s, &b), scm(ns, &nb), "Miroir vs node: {} {} {:?}", c.method, c.path, c.body);
        }
    }
    // An existing uid: 409 on both.
    let body = json!({"uid": "11111111-2222-4333-8444-555555555555", "actions": ["search"], "indexes": ["*"], "expiresAt": null});
    let (s, b) = miroir.post("/keys", &body).await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = miroir.post("/keys", &body).await;
    let want = (409, "api_key_already_exists".to_string(), "`uid` field value `11111111-2222-4333-8444-555555555555` is already an existing API key.".to_string());
    assert_eq!(scm(s, &b), want);
    if real {
        assert_eq!(node.post("/keys", &body).await.0, 201);
        let (ns, nb) = node.post("/keys", &body).await;
        assert_eq!(scm(ns, &nb), want);
        // The same request creates the same-shaped key on both (values differ: other master keys).
        let full = json!({"name": "n", "uid": "22222222-2222-4333-8444-555555555555", "actions": ["search", "*.get"], "indexes": ["a", "b*"], "expiresAt": "2050-01-01 10:00:00"});
        let (s1, mine) = miroir.post("/keys", &full).await;
        let (s2, theirs) = node.post("/keys", &full).await;
        assert_eq!((s1, s2), (201, 201));
        for f in ["name", "description", "uid", "actions", "indexes", "expiresAt"] {
            assert_eq!(mine[f], theirs[f], "{f}");
        }
        let keys_of = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys_of(&mine), keys_of(&theirs));
        assert_ne!(mine["key"], theirs["key"]);
        // The node's default keys are the same four.
        let (_, nk) = node.get("/keys").await;
        let (_, mk) = miroir.get("/keys").await;
        let names = |v: &Value| v["results"].as_array().unwrap().iter().map(|k| (k["name"].clone(), k["actions"].clone())).collect::<Vec<_>>();
        assert_eq!(names(&nk), names(&mk));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_master_key_keys_routes_are_refused_and_the_rest_is_open() {
    let mut options = test_options();
    options.keys.master_key = miroir::config::Secret(None);
    options.keys.admin_api_key = miroir::config::Secret(None);
    let cluster = Cluster::start_with(small(), options).await;
    let open = cluster.http().without_key();
    let want = (
        401,
        "missing_master_key".to_string(),
        "Meilisearch is running without a master key. To access this API endpoint, you must have set a master key at launch.".to_string(),
    );
    for (m, p) in [(Method::GET, "/keys"), (Method::POST, "/keys"), (Method::GET, "/keys/x"), (Method::PATCH, "/keys/x"), (Method::DELETE, "/keys/x")] {
        let (s, b) = call(&open, m.clone(), p, Some(&json!({}))).await;
        assert_eq!(scm(s, &b), want, "{m} {p}");
        assert_eq!(b["type"], "auth");
        let (s, b) = call(&open.with_key("anything"), m.clone(), p, Some(&json!({}))).await;
        assert_eq!(scm(s, &b), want, "{m} {p} with a key");
    }
    assert_eq!(open.get("/indexes").await.0, 200);
    assert_eq!(open.with_key("anything").get("/indexes").await.0, 200);
    // A header that is not `Bearer …` is refused even here, as on Meilisearch.
    let (s, _, b) = open.request(Method::GET, "/indexes", None, None).await;
    assert_eq!(s, 200, "{b}");
    let client = reqwest::Client::new();
    let r = client.get(format!("{}/indexes", cluster.url())).header("authorization", "Basic abc").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_header_errors() {
    let cluster = Cluster::start(small()).await;
    let client = reqwest::Client::new();
    let url = format!("{}/indexes", cluster.url());
    let missing = (401, "missing_authorization_header".to_string(), "The Authorization header is missing. It must use the bearer authorization method.".to_string());
    let invalid = (403, "invalid_api_key".to_string(), "The provided API key is invalid.".to_string());
    for (header, want) in [
        (None, &missing),
        (Some("Basic abc"), &missing),
        (Some("bearer abc"), &missing),
        (Some("Bearer"), &invalid),
        (Some("Bearer "), &invalid),
        (Some("Bearer nope"), &invalid),
        (Some("Bearer  miroir-test-master-key"), &invalid),
    ] {
        let mut r = client.get(&url);
        if let Some(h) = header {
            r = r.header("authorization", h);
        }
        let r = r.send().await.unwrap();
        let s = r.status().as_u16();
        let b: Value = r.json().await.unwrap();
        assert_eq!(&scm(s, &b), want, "{header:?}");
        assert_eq!(b["type"], "auth");
    }
    // /health stays open; /_miroir/* takes the admin key only (then the master key if none).
    assert_eq!(cluster.http().without_key().get("/health").await.0, 200);
    assert_eq!(cluster.http().with_key(common::ADMIN_KEY).get("/_miroir/topology").await.0, 200);
    let (_, list) = cluster.http().get("/keys").await;
    let admin_key = list["results"][1]["key"].as_str().unwrap().to_string();
    assert_eq!(cluster.http().with_key(&admin_key).get("/_miroir/topology").await.0, 403, "an API key never reaches /_miroir");
    assert_eq!(cluster.http().with_key(&admin_key).get("/indexes").await.0, 200);
}

// ---------------------------------------------------------------- the permission matrix

/// A route, the action it needs, and a request body.
struct Route {
    method: Method,
    path: &'static str,
    action: &'static str,
    body: Option<Value>,
}

fn r(method: Method, path: &'static str, action: &'static str, body: Option<Value>) -> Route {
    Route { method, path, action, body }
}

fn routes() -> Vec<Route> {
    let q = Some(json!({"q": "a"}));
    vec![
        r(Method::GET, "/version", "version", None),
        r(Method::GET, "/indexes", "indexes.get", None),
        r(Method::POST, "/indexes", "indexes.create", Some(json!({"uid": "matrix_created"}))),
        r(Method::GET, "/indexes/matrix", "indexes.get", None),
        r(Method::PATCH, "/indexes/matrix", "indexes.update", Some(json!({"primaryKey": "id"}))),
        r(Method::DELETE, "/indexes/matrix_doomed", "indexes.delete", None),
        r(Method::GET, "/indexes/matrix/settings", "settings.get", None),
        r(Method::PATCH, "/indexes/matrix/settings", "settings.update", Some(json!({}))),
        r(Method::GET, "/indexes/matrix/settings/filterable-attributes", "settings.get", None),
        r(Method::PUT, "/indexes/matrix/settings/filterable-attributes", "settings.update", Some(json!(["genre"]))),
        r(Method::DELETE, "/indexes/matrix/settings/stop-words", "settings.update", None),
        r(Method::GET, "/indexes/matrix/documents", "documents.get", None),
        r(Method::POST, "/indexes/matrix/documents", "documents.add", Some(json!([{"id": 100, "genre": "x"}]))),
        r(Method::PUT, "/indexes/matrix/documents", "documents.add", Some(json!([{"id": 101, "genre": "x"}]))),
        r(Method::POST, "/indexes/matrix/documents/fetch", "documents.get", Some(json!({}))),
        r(Method::GET, "/indexes/matrix/documents/1", "documents.get", None),
        r(Method::DELETE, "/indexes/matrix/documents/999", "documents.delete", None),
        r(Method::POST, "/indexes/matrix/documents/delete-batch", "documents.delete", Some(json!([998]))),
        r(Method::POST, "/indexes/matrix/documents/delete", "documents.delete", Some(json!({"filter": "id = 997"}))),
        r(Method::POST, "/indexes/matrix/documents/edit", "documents.*", Some(json!({}))),
        r(Method::GET, "/indexes/matrix/search?q=a", "search", None),
        r(Method::POST, "/indexes/matrix/search", "search", q.clone()),
        r(Method::POST, "/indexes/matrix/facet-search", "search", Some(json!({"facetName": "genre"}))),
        r(Method::POST, "/indexes/matrix/similar", "search", Some(json!({"id": 1}))),
        r(Method::POST, "/multi-search", "search", Some(json!({"queries": [{"indexUid": "matrix", "q": "a"}]}))),
        r(Method::GET, "/indexes/matrix/stats", "stats.get", None),
        r(Method::POST, "/indexes/matrix/fields", "fields.post", Some(json!({}))),
        r(Method::GET, "/stats", "stats.get", None),
        r(Method::GET, "/tasks", "tasks.get", None),
        r(Method::GET, "/tasks/0", "tasks.get", None),
        r(Method::POST, "/tasks/cancel?uids=999999", "tasks.cancel", None),
        r(Method::DELETE, "/tasks?uids=999999", "tasks.delete", None),
        r(Method::GET, "/batches", "tasks.get", None),
        r(Method::GET, "/batches/0", "tasks.get", None),
        r(Method::POST, "/tasks/compact", "tasks.compact", None),
        r(Method::GET, "/keys", "keys.get", None),
        r(Method::GET, "/keys/00000000-0000-4000-8000-000000000000", "keys.get", None),
        r(Method::POST, "/keys", "keys.create", Some(json!({"actions": ["search"], "indexes": ["*"], "expiresAt": null}))),
        r(Method::PATCH, "/keys/00000000-0000-4000-8000-000000000000", "keys.update", Some(json!({}))),
        r(Method::DELETE, "/keys/00000000-0000-4000-8000-000000000000", "keys.delete", None),
        r(Method::POST, "/swap-indexes", "indexes.swap", Some(json!([]))),
        r(Method::POST, "/dumps", "dumps.create", None),
        r(Method::POST, "/snapshots", "snapshots.create", None),
        r(Method::GET, "/experimental-features", "experimental.get", None),
        r(Method::PATCH, "/experimental-features", "experimental.update", Some(json!({}))),
        r(Method::POST, "/export", "export", Some(json!({}))),
        r(Method::GET, "/network", "network.get", None),
        r(Method::PATCH, "/network", "network.update", Some(json!({}))),
    ]
}

/// The `x.*` family an action belongs to, if any.
fn family(action: &str) -> Option<String> {
    let (prefix, _) = action.split_once('.')?;
    let fam = format!("{prefix}.*");
    miroir::auth::actions::is_action(&fam).then_some(fam)
}

fn is_read(action: &str) -> bool {
    miroir::auth::actions::ACTIONS.iter().any(|(n, _, read)| *n == action && *read)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_enforces_its_action() {
    let cluster = Cluster::start(small()).await;
    let http = cluster.http();
    for uid in ["matrix", "matrix_doomed"] {
        let (s, t) = http.post("/indexes", &json!({"uid": uid, "primaryKey": "id"})).await;
        assert_eq!(s, 202, "{t}");
        cluster.wait_task(t["taskUid"].as_u64().unwrap()).await;
    }
    let (_, t) = http.post("/indexes/matrix/documents", &json!([{"id": 1, "genre": "a"}])).await;
    cluster.wait_task(t["taskUid"].as_u64().unwrap()).await;
    let (_, _, t) = http.send_json(Method::PUT, "/indexes/matrix/settings/filterable-attributes", &json!(["genre"])).await;
    cluster.wait_task(t["taskUid"].as_u64().unwrap()).await;

    let expiry = (time::OffsetDateTime::now_utc() + time::Duration::seconds(3))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (_, expiring) = create_key(&http, &["*"], &["*"], Some(&expiry)).await;
    // One key per action a route needs, and the wildcards.
    let mut keys: std::collections::BTreeMap<String, String> = Default::default();
    let mut wanted: Vec<String> = routes().iter().map(|r| r.action.to_string()).collect();
    wanted.extend(["*", "*.get", "documents.*", "indexes.*", "settings.*", "tasks.*", "stats.*", "keys.get"].map(String::from));
    wanted.sort();
    wanted.dedup();
    for a in &wanted {
        keys.insert(a.clone(), create_key(&http, &[a], &["*"], None).await.1);
    }
    let invalid = (403, "invalid_api_key".to_string(), "The provided API key is invalid.".to_string());
    let refused = |s: u16, b: &Value| s == 401 || (s == 403 && b["code"] == "invalid_api_key");
    for route in routes() {
        for (held, value) in &keys {
            // Meilisearch's expansion: `*` is everything but `*.get`, `*.get` every read action,
            // `x.*` its members but not itself (so `documents.*` routes need `*`).
            let wildcard_route = route.action.ends_with(".*");
            let granted = held == "*"
                || (held == route.action && !wildcard_route)
                || (held == "*.get" && is_read(route.action))
                || (!wildcard_route && family(route.action).as_deref() == Some(held.as_str()));
            let (s, b) = call(&http.with_key(value), route.method.clone(), route.path, route.body.as_ref()).await;
            if granted {
                assert!(!refused(s, &b), "{} {} with a `{held}` key: refused {s} {b}", route.method, route.path);
            } else {
                assert_eq!(scm(s, &b), invalid, "{} {} with a `{held}` key", route.method, route.path);
            }
        }
        // No header at all: 401.
        let (s, b) = call(&http.without_key(), route.method.clone(), route.path, route.body.as_ref()).await;
        assert_eq!(s, 401, "{} {}: {b}", route.method, route.path);
        assert_eq!(b["code"], "missing_authorization_header");
    }
    // The `*` key that expired in the meantime is refused everywhere.
    let wait = time::OffsetDateTime::parse(&expiry, &time::format_description::well_known::Rfc3339).unwrap() - time::OffsetDateTime::now_utc();
    if wait.is_positive() {
        tokio::time::sleep(Duration::try_from(wait).unwrap() + Duration::from_millis(200)).await;
    }
    for route in routes() {
        let (s, b) = call(&http.with_key(&expiring), route.method.clone(), route.path, route.body.as_ref()).await;
        assert_eq!(scm(s, &b), invalid, "expired key on {} {}", route.method, route.path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_patterns_scope_a_key() {
    let cluster = Cluster::start(small()).await;
    let http = cluster.http();
    let mut task_of = std::collections::BTreeMap::new();
    for uid in ["movies", "products", "books"] {
        let (_, t) = http.post(&format!("/indexes/{uid}/documents?primaryKey=id"), &json!([{"id": 1, "title": "a"}])).await;
        assert_eq!(cluster.wait_task(t["taskUid"].as_u64().unwrap()).await["status"], "succeeded");
        task_of.insert(uid, t["taskUid"].as_u64().unwrap());
    }
    let (_, key) = create_key(&http, &["search", "documents.get", "indexes.get", "indexes.create", "stats.get", "version"], &[], None).await;
    // `indexes: []` reaches nothing, not even index-less routes of handler-checked actions.
    let none = http.with_key(&key);
    let (s, b) = none.post("/indexes/movies/search", &json!({})).await;
    assert_eq!(scm(s, &b).0, 403);
    assert_eq!(b["message"], "The API key cannot acces the index `movies`, authorized indexes are [].");
    assert_eq!(none.post("/multi-search", &json!({"queries": []})).await.0, 403);

    let (_, key) = create_key(&http, &["search", "documents.get", "indexes.get", "indexes.create", "stats.get"], &["movies", "prod*", "movies"], None).await;
    let k = http.with_key(&key);
    for ok in ["movies", "products"] {
        let (s, b) = k.post(&format!("/indexes/{ok}/search"), &json!({"q": "a"})).await;
        assert_eq!(s, 200, "{ok}: {b}");
        assert_eq!(k.get(&format!("/indexes/{ok}/documents/1")).await.0, 200);
    }
    let (s, b) = k.post("/indexes/books/search", &json!({})).await;
    assert_eq!(
        scm(s, &b),
        (403, "invalid_api_key".into(), "The API key cannot acces the index `books`, authorized indexes are [\"movies\", \"prod*\"].".into())
    );
    let (s, b) = k.get("/indexes/Movies").await;
    assert_eq!(s, 403, "patterns are case-sensitive: {b}");
    // Index-less routes of handler-checked actions: allowed, and they show only what the key
    // reaches.
    let (s, b) = k.get("/indexes").await;
    assert_eq!(s, 200, "{b}");
    let uids = |b: &Value| b["results"].as_array().unwrap().iter().map(|i| i["uid"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(uids(&b), ["movies", "products"]);
    assert_eq!((b["total"].clone(), b["offset"].clone(), b["limit"].clone()), (json!(2), json!(0), json!(20)));
    let (_, b) = k.get("/indexes?offset=1&limit=5").await;
    assert_eq!((uids(&b), b["total"].clone(), b["limit"].clone()), (vec!["products".to_string()], json!(2), json!(5)));
    let (s, b) = k.get("/indexes?limit=abc").await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_index_limit")), "the query is still validated: {b}");
    let (s, b) = k.get("/stats").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["indexes"].as_object().unwrap().keys().collect::<Vec<_>>(), ["movies", "products"]);
    let (_, tasks_key) = create_key(&http, &["tasks.get", "tasks.delete"], &["movies"], None).await;
    let t = http.with_key(&tasks_key);
    let (s, b) = t.get("/tasks").await;
    assert_eq!(s, 200, "{b}");
    let listed: Vec<&str> = b["results"].as_array().unwrap().iter().map(|t| t["indexUid"].as_str().unwrap()).collect();
    assert_eq!(listed, ["movies"], "{b}");
    assert_eq!(t.get(&format!("/tasks/{}", task_of["movies"])).await.0, 200);
    let (s, b) = t.get(&format!("/tasks/{}", task_of["books"])).await;
    assert_eq!(scm(s, &b), (404, "task_not_found".into(), format!("Task `{}` not found.", task_of["books"])));
    let (s, b) = call(&t, Method::DELETE, &format!("/tasks?uids={},{}", task_of["books"], task_of["movies"]), None).await;
    assert_eq!(s, 200, "{b}");
    let done = cluster.wait_task(b["taskUid"].as_u64().unwrap()).await;
    assert_eq!(done["details"]["matchedTasks"], 1, "only the movies task: {done}");
    assert_eq!(http.get(&format!("/tasks/{}", task_of["books"])).await.0, 200, "the books task is still there");
    // Multi-search: each query's index.
    let (s, b) = k.post("/multi-search", &json!({"queries": [{"indexUid": "movies"}, {"indexUid": "products"}]})).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = k.post("/multi-search", &json!({"queries": [{"indexUid": "movies"}, {"indexUid": "books"}]})).await;
    assert_eq!(scm(s, &b), (403, "invalid_api_key".into(), "Inside `.queries[1]`: The provided API key is invalid.".into()));
    let (s, b) = k.post("/multi-search", &json!({"federation": {}, "queries": [{"indexUid": "books"}, {"indexUid": "movies"}]})).await;
    assert_eq!(scm(s, &b), (403, "invalid_api_key".into(), "Inside `.queries[0]`: The provided API key is invalid.".into()));
    // Index creation only for uids the patterns reach.
    let (s, b) = k.post("/indexes", &json!({"uid": "prod_new"})).await;
    assert_eq!(s, 202, "{b}");
    let (s, b) = k.post("/indexes", &json!({"uid": "books2"})).await;
    assert_eq!(scm(s, &b), (403, "invalid_api_key".into(), "The provided API key is invalid.".into()));

    // A global action needs `indexes: ["*"]` on its index-less route.
    let (s, b) = http.post("/keys", &json!({"actions": ["version"], "indexes": [], "expiresAt": null})).await;
    assert_eq!(s, 201, "an empty `indexes` is not index-scoped: {b}");
    assert_eq!(http.with_key(b["key"].as_str().unwrap()).get("/version").await.0, 403);
}

// ---------------------------------------------------------------- keys shared

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_survive_a_miroir_restart() {
    let mut cluster = Cluster::start(small()).await;
    let (_, before) = cluster.http().get("/keys").await;
    let (uid, value) = create_key(&cluster.http(), &["indexes.get"], &["*"], None).await;
    cluster.restart_miroir().await;
    let (s, after) = cluster.http().get("/keys").await;
    assert_eq!(s, 200);
    assert_eq!(after["total"], 5, "no second set of default keys: {after}");
    assert_eq!(after["results"].as_array().unwrap()[1..], before["results"].as_array().unwrap()[..], "same uids, same values");
    assert_eq!(after["results"][0]["uid"], uid);
    assert_eq!(after["results"][0]["key"], value);
    assert_eq!(cluster.http().with_key(&value).get("/indexes").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_miroirs_on_one_redis_share_keys() {
    let cluster = Cluster::start(small()).await;
    let cleanup = store_fixtures::RedisCleanup::new(store_fixtures::fresh_prefix());
    // Both start at once: one set of default keys.
    let url = store_fixtures::redis_url();
    let ((_ha, a), (_hb, b)) = tokio::join!(cluster.miroir_on_redis(&url, &cleanup.prefix), cluster.miroir_on_redis(&url, &cleanup.prefix));
    let ((sa, la), (sb, lb)) = tokio::join!(a.get("/keys"), b.get("/keys"));
    assert_eq!((sa, sb), (200, 200));
    assert_eq!(la["total"], 4, "{la}");
    assert_eq!(la, lb);
    let (uid, value) = create_key(&a, &["indexes.get"], &["*"], None).await;
    assert_eq!(b.with_key(&value).get("/indexes").await.0, 200, "a key created on A works on B");
    let (s, got) = b.get(&format!("/keys/{uid}")).await;
    assert_eq!((s, got["key"].as_str()), (200, Some(value.as_str())));
    let (s, _, _) = a.request(Method::DELETE, &format!("/keys/{uid}"), None, None).await;
    assert_eq!(s, 204);
    assert_eq!(b.with_key(&value).get("/indexes").await.0, 403, "deleted on A, refused on B");
    // Nodes only ever see the node master key: a client key is not a node key.
    assert_ne!(value, NODE_KEY);
}

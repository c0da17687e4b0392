//! `POST /indexes/{uid}/fields` and `POST /render-template` through Miroir over 3 nodes,
//! compared with one plain node given the same requests, plus checks on the nodes.
//!
//! The documents' fields differ from one shard to another (each document brings a field no
//! other has), so no single node knows every field of the index, and only a holder of a
//! document's shard can render it: an answer from any one node would be wrong.

mod common;

use std::collections::BTreeSet;

use common::{Cluster, Http, Node, Spec, NODE_KEY};
use reqwest::Method;
use serde_json::{json, Value};

/// Miroir and the plain node, side by side.
struct Pair {
    single: Http,
    miroir: Http,
}

impl Pair {
    /// The same JSON request to both: (single's answer, Miroir's answer).
    async fn both(&self, method: Method, path: &str, body: &Value) -> ((u16, Value), (u16, Value)) {
        let (s1, _, a) = self.single.send_json(method.clone(), path, body).await;
        let (s2, _, b) = self.miroir.send_json(method, path, body).await;
        ((s1, a), (s2, b))
    }

    /// The same request to both; an explanation of the first difference, if any.
    async fn differs(&self, method: Method, path: &str, body: &Value) -> Option<String> {
        let ((s1, a), (s2, b)) = self.both(method.clone(), path, body).await;
        let (ta, tb) = (serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
        (s1 != s2 || ta != tb).then(|| format!("{method} {path} {body}:\n  single {s1} {ta}\n  miroir {s2} {tb}"))
    }

    /// The same write to both, each task waited for and checked.
    async fn task(&self, method: Method, path: &str, body: &Value) {
        let ((s1, a), (s2, b)) = self.both(method.clone(), path, body).await;
        assert_eq!((s1, s2), (202, 202), "{method} {path}: single {a} / miroir {b}");
        let ta = self.single.wait_task(a["taskUid"].as_u64().unwrap()).await;
        let tb = self.miroir.wait_task(b["taskUid"].as_u64().unwrap()).await;
        assert_eq!((ta["status"].as_str(), tb["status"].as_str()), (Some("succeeded"), Some("succeeded")), "{ta} / {tb}");
    }
}

/// Every document starts with `id, title` and brings one field no other document has
/// (`x_{i}`); some have `genre`, nested objects, arrays of objects. Fields keep one global
/// order in every document (Meilisearch orders a stored document's fields by field id).
fn documents() -> Vec<Value> {
    let mut docs = Vec::new();
    for i in 1..=12u32 {
        let mut d = serde_json::Map::new();
        d.insert("id".into(), json!(i));
        d.insert("title".into(), json!(format!("pet {i}")));
        if i % 3 == 0 {
            d.insert("genre".into(), json!(if i % 2 == 0 { "dog" } else { "cat" }));
        }
        if i == 4 {
            d.insert("cuisine".into(), json!({"type": "kibble", "region": "north"}));
        }
        if i == 5 {
            d.insert("ingredients".into(), json!([{"name": "fish"}, {"name": "rice", "grams": 30}]));
        }
        if i == 7 {
            d.insert("nutrition".into(), json!({"fat": 3, "protein": 20}));
        }
        if i % 4 == 1 {
            d.insert("rating".into(), json!(i));
        }
        d.insert(format!("x_{i:02}"), json!(i * 10));
        docs.push(Value::Object(d));
    }
    docs
}

fn settings() -> Value {
    json!({
        "displayedAttributes": ["id", "title", "genre", "cuisine", "rating", "x_01", "x_02"],
        "searchableAttributes": ["title", "genre", "cuisine.type", "ingredients.name"],
        "filterableAttributes": [
            "genre",
            {"attributePatterns": ["rating", "nutrition.*"], "features": {"facetSearch": false, "filter": {"equality": true, "comparison": true}}},
            {"attributePatterns": ["x_1*"], "features": {"facetSearch": true}}
        ],
        "sortableAttributes": ["rating", "title", "nutrition.fat"],
        "rankingRules": ["words", "typo", "proximity", "attribute", "sort", "exactness", "rating:desc", "x_03:asc"],
        "distinctAttribute": "genre",
        "faceting": {"sortFacetValuesBy": {"*": "alpha", "genre": "count"}},
        "localizedAttributes": [{"attributePatterns": ["title"], "locales": ["en", "fra"]}]
    })
}

async fn load(pair: &Pair) {
    pair.task(Method::POST, "/indexes", &json!({"uid": "pets", "primaryKey": "id"})).await;
    pair.task(Method::PATCH, "/indexes/pets/settings", &settings()).await;
    pair.task(Method::POST, "/indexes/pets/documents", &Value::Array(documents())).await;
    pair.task(Method::POST, "/indexes", &json!({"uid": "other", "primaryKey": "id"})).await;
}

fn names(body: &Value) -> BTreeSet<String> {
    body["results"].as_array().map(|r| r.iter().filter_map(|f| f["name"].as_str().map(str::to_string)).collect()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_are_the_union_of_every_shard() {
    let mut single = Node::start("single").await;
    let mut cluster = Cluster::start(Spec::rf1_3_nodes()).await;
    let pair = Pair { single: Http { base: single.url.clone(), key: Some(NODE_KEY.to_string()) }, miroir: cluster.http() };
    load(&pair).await;
    let mut failures = Vec::new();

    // Every field, paginated, filtered; and bad bodies: all as one node answers.
    let bodies = [
        json!({}),
        json!({"limit": 1000}),
        json!({"offset": 5, "limit": 7}),
        json!({"offset": 20, "limit": 20}),
        json!({"offset": 1000}),
        json!({"limit": 0}),
        json!({"offset": 3, "limit": 2, "filter": null}),
        json!({"limit": 100, "filter": {"attributePatterns": ["x_*", "cuisine"]}}),
        json!({"limit": 100, "filter": {"attributePatterns": ["*ion*"], "searchable": false}}),
        json!({"limit": 100, "filter": {"searchable": true}}),
        json!({"limit": 100, "filter": {"filterable": true, "sortable": false}}),
        json!({"limit": 100, "filter": {"displayed": false}}),
        json!({"limit": 100, "filter": {"rankingRule": true}}),
        json!({"limit": 100, "filter": {"distinct": true}}),
        json!({"limit": 100, "filter": {"sortable": true, "displayed": true}}),
        json!({"filter": {"attributePatterns": ["title.to*"]}}),
        json!({"filter": {"attributePatterns": []}}),
        // bad input
        json!({"offset": -1}),
        json!({"limit": "ten"}),
        json!({"limit": 1.5}),
        json!({"page": 2}),
        json!({"filter": []}),
        json!({"filter": "displayed"}),
        json!({"filter": {"displayed": "yes"}}),
        json!({"filter": {"searchable": 1}}),
        json!({"filter": {"sortable": null, "distinct": []}}),
        json!({"filter": {"rankingRule": {}}}),
        json!({"filter": {"filterable": "no"}}),
        json!({"filter": {"attributePatterns": "title"}}),
        json!({"filter": {"attributePatterns": [1]}}),
        json!({"filter": {"name": "title"}}),
        json!([]),
        json!(null),
        json!("fields"),
    ];
    for body in &bodies {
        if let Some(d) = pair.differs(Method::POST, "/indexes/pets/fields", body).await {
            failures.push(d);
        }
    }
    // Indexes that are not there: without documents, missing, not a valid uid (Meilisearch
    // looks the name up as given), and a bad body first.
    for (path, body) in [
        ("/indexes/other/fields", json!({})),
        ("/indexes/nope/fields", json!({})),
        ("/indexes/nope/fields", json!({"limit": -2})),
        ("/indexes/not%20a%20uid/fields", json!({})),
        ("/indexes/not%20a%20uid/fields", json!({"filter": 1})),
    ] {
        if let Some(d) = pair.differs(Method::POST, path, &body).await {
            failures.push(d);
        }
    }
    assert!(failures.is_empty(), "{} differences:\n{}", failures.len(), failures.join("\n"));

    // The nodes: each knows only some of the fields (so a node's own list would be wrong),
    // and lists Miroir's own field, which Miroir does not show.
    let (s, all) = pair.miroir.post("/indexes/pets/fields", &json!({"limit": 1000})).await;
    assert_eq!(s, 200, "{all}");
    let all = names(&all);
    assert_eq!(all.len(), 25, "{all:?}");
    for x in 1..=12 {
        assert!(all.contains(&format!("x_{x:02}")), "{all:?}");
    }
    let mut per_node: Vec<BTreeSet<String>> = Vec::new();
    for i in 0..cluster.nodes.len() {
        let (s, b) = cluster.node_http(i).post("/indexes/pets/fields", &json!({"limit": 1000})).await;
        assert_eq!(s, 200, "{b}");
        let mine = names(&b);
        assert!(mine.is_empty() || mine.contains("_miroir_shard"), "node {i}: {mine:?}");
        assert!(!all.contains("_miroir_shard"));
        let mine: BTreeSet<String> = mine.into_iter().filter(|n| n != "_miroir_shard").collect();
        assert!(mine.is_subset(&all) && mine.len() < all.len(), "node {i} lists {mine:?}");
        per_node.push(mine);
    }
    assert_eq!(per_node.iter().flatten().cloned().collect::<BTreeSet<String>>(), all);

    // The node knowing most fields down: with the default `partial` policy, exactly the
    // fields of the other nodes, and the missing shards named.
    let victim = (0..per_node.len()).max_by_key(|i| per_node[*i].len()).unwrap();
    let others: BTreeSet<String> = (0..per_node.len()).filter(|j| *j != victim).flat_map(|j| per_node[j].clone()).collect();
    assert!(others.len() < all.len(), "every field is on two nodes: {per_node:?}");
    let (_, h, before) = pair.miroir.send_json(Method::POST, "/indexes/pets/fields", &json!({"limit": 1000})).await;
    assert!(h.get("x-miroir-degraded").is_none());
    cluster.nodes[victim].stop().await;
    let (s, h, partial) = pair.miroir.send_json(Method::POST, "/indexes/pets/fields", &json!({"limit": 1000})).await;
    assert_eq!(s, 200, "{partial}");
    let degraded = h.get("x-miroir-degraded").expect("missing shards are named").to_str().unwrap().to_string();
    assert!(degraded.starts_with("shards="), "{degraded}");
    assert_eq!(names(&partial), others, "{partial}");
    assert_eq!(partial["total"].as_u64().unwrap() as usize, others.len());
    cluster.nodes[victim].restart().await;
    cluster.wait_node_usable(victim).await;
    let (s, h, again) = pair.miroir.send_json(Method::POST, "/indexes/pets/fields", &json!({"limit": 1000})).await;
    assert_eq!((s, h.get("x-miroir-degraded").is_none()), (200, true), "{again}");
    assert_eq!(again, before);

    // Auth: `fields.post` on the index.
    let (s, key) = pair.miroir.post("/keys", &json!({"actions": ["fields.post"], "indexes": ["pets"], "expiresAt": null})).await;
    assert_eq!(s, 201, "{key}");
    let scoped = pair.miroir.with_key(key["key"].as_str().unwrap());
    let (s, b) = scoped.post("/indexes/pets/fields", &json!({})).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = scoped.post("/indexes/other/fields", &json!({})).await;
    assert_eq!((s, b["code"].as_str()), (403, Some("invalid_api_key")), "{b}");
    let (s, key) = pair.miroir.post("/keys", &json!({"actions": ["search", "documents.get"], "indexes": ["*"], "expiresAt": null})).await;
    assert_eq!(s, 201, "{key}");
    let (s, b) = pair.miroir.with_key(key["key"].as_str().unwrap()).post("/indexes/pets/fields", &json!({})).await;
    assert_eq!((s, b["code"].as_str()), (403, Some("invalid_api_key")), "{b}");

    single.stop().await;
}

fn inline(template: &str, input: Value) -> Value {
    json!({"template": {"kind": "inlineDocumentTemplate", "inline": template}, "input": input})
}

fn stored(id: &str) -> Value {
    json!({"kind": "indexDocument", "indexUid": "pets", "id": id})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_render_where_the_document_is() {
    let mut single = Node::start("single").await;
    let cluster = Cluster::start(Spec::rf1_3_nodes()).await;
    let pair = Pair { single: Http { base: single.url.clone(), key: Some(NODE_KEY.to_string()) }, miroir: cluster.http() };
    load(&pair).await;
    let mut failures = Vec::new();
    let searchable = "{{ doc.title }}: {% for field in fields %}{% if field.is_searchable %}{{ field.name }}={{ field.value }};{% endif %}{% endfor %}";

    // Behind the `renderRoute` feature, as on Meilisearch.
    let simple = inline("{{ doc.title }}", json!({"kind": "inlineDocument", "inline": {"title": "Iko"}}));
    let ((s1, a), (s2, b)) = pair.both(Method::POST, "/render-template", &simple).await;
    assert_eq!((s1, s2), (400, 400), "{a} / {b}");
    assert_eq!(a, b);
    assert_eq!(b["code"], "feature_not_enabled");
    if let Some(d) = pair.differs(Method::POST, "/render-template", &inline("{{", json!(null))).await {
        failures.push(d);
    }
    // Enabling it is accepted by Miroir, applied to every node, and shown as on one node.
    if let Some(d) = pair.differs(Method::PATCH, "/experimental-features", &json!({"renderRoute": true})).await {
        failures.push(d);
    }
    for i in 0..cluster.nodes.len() {
        let (s, f) = cluster.node_http(i).get("/experimental-features").await;
        assert_eq!((s, &f["renderRoute"]), (200, &json!(true)), "node {i}: {f}");
    }
    let (_, a) = pair.single.get("/experimental-features").await;
    let (_, b) = pair.miroir.get("/experimental-features").await;
    assert_eq!(a, b);

    let mut requests = vec![
        simple.clone(),
        inline("{{ doc.title }} ({{ doc.year }})", json!({"kind": "inlineDocument", "inline": {"title": "Iko", "year": 2020}})),
        inline(searchable, json!({"kind": "inlineDocument", "inline": {"title": "Iko", "genre": "dog", "x": [1, 2]}})),
        inline("no input", json!(null)),
        json!({"template": {"kind": "inlineDocumentTemplate", "inline": "{{ doc.title }}", "documentTemplateMaxBytes": 3}}),
        // errors of the template
        inline("{{ doc.title", json!(null)),
        inline("{% for x in %}", json!({"kind": "inlineDocument", "inline": {"a": 1}})),
        json!({"template": {"kind": "inlineDocumentTemplate", "inline": 42}}),
        json!({"template": {"kind": "inlineDocumentTemplate"}}),
        json!({"template": {"kind": "inlineDocumentTemplate", "inline": "x", "indexUid": "pets"}}),
        json!({"template": {"kind": "inlineDocumentTemplate", "inline": "x", "embedder": "e"}}),
        json!({"template": {"kind": "documentTemplate", "indexUid": "pets", "embedder": "default"}}),
        json!({"template": {"kind": "documentTemplate", "indexUid": "pets"}}),
        json!({"template": {"kind": "documentTemplate", "embedder": "default"}}),
        json!({"template": {"kind": "documentTemplate", "indexUid": "nope", "embedder": "default"}}),
        json!({"template": {"kind": "documentTemplate", "indexUid": "pets", "embedder": "e", "inline": "x"}}),
        json!({"template": {"kind": "chatDocumentTemplate", "indexUid": "pets"}}),
        json!({"template": {"kind": "indexingFragment", "indexUid": "pets", "embedder": "e", "fragment": "f"}}),
        json!({"template": {"kind": "inlineFragment", "inline": {"text": "{{ doc.title }}"}}}),
        // errors of the input
        inline("{{ doc.title }}", json!({"kind": "indexDocument", "indexUid": "pets", "id": "999"})),
        inline("{{ doc.title }}", json!({"kind": "indexDocument", "indexUid": "pets", "id": "not a valid id!"})),
        inline("{{ doc.title }}", json!({"kind": "indexDocument", "indexUid": "nope", "id": "1"})),
        inline("{{ doc.title }}", json!({"kind": "indexDocument", "indexUid": "other", "id": "1"})),
        inline("{{ doc.title }}", json!({"kind": "indexDocument", "indexUid": "pets"})),
        inline("{{ doc.title }}", json!({"kind": "indexDocument", "id": "1"})),
        inline("{{ doc.title }}", json!({"kind": "indexDocument", "indexUid": "pets", "id": "1", "inline": {"a": 1}})),
        inline("{{ doc.title }}", json!({"kind": "inlineDocument", "indexUid": "pets", "inline": {"a": 1}})),
        inline("{{ doc.title }}", json!({"kind": "inlineDocument", "id": "1", "inline": {"a": 1}})),
        inline("{{ doc.title }}", json!({"kind": "inlineDocument"})),
        inline("{{ doc.title }}", json!({"kind": "inlineSearch", "inline": {"q": "dog"}})),
        // errors of the body
        json!({}),
        json!({"template": {}}),
        json!({"template": {"kind": "nope"}}),
        json!({"template": "inline"}),
        json!({"template": {"kind": "inlineDocumentTemplate", "inline": "x", "other": 1}}),
        json!({"template": {"kind": "inlineDocumentTemplate", "inline": "x", "documentTemplateMaxBytes": 0}}),
        json!({"template": {"kind": "inlineDocumentTemplate", "inline": "x", "indexUid": "not a uid"}}),
        json!({"template": {"kind": "inlineDocumentTemplate", "inline": "x"}, "other": true}),
        inline("x", json!({})),
        inline("x", json!({"kind": "document"})),
        inline("x", json!({"kind": "indexDocument", "indexUid": "pets", "id": 3})),
        inline("x", json!("pets/3")),
        json!([]),
    ];
    // Every stored document, rendered by a holder of its shard; nested values; and a
    // template reading a field the document lacks (the error lists the document's fields,
    // in field-id order: document 3's fields are first seen in its own order everywhere).
    for i in 1..=12 {
        requests.push(inline(searchable, stored(&i.to_string())));
    }
    // (Not `{{ doc.cuisine }}`: a whole object renders in liquid's hash-map order, random
    // per process on Meilisearch itself.)
    requests.push(inline("{{ doc.title }}: {{ doc.cuisine.type }} from the {{ doc.cuisine.region }}", stored("4")));
    requests.push(inline("{{ doc.ingredients[1].name }} {{ doc.ingredients.size }} {{ doc.ingredients | map: 'name' | join: ', ' }}", stored("5")));
    requests.push(inline("{{ doc.title }} {{ doc.missing }}", stored("3")));
    for body in &requests {
        if let Some(d) = pair.differs(Method::POST, "/render-template", body).await {
            failures.push(d);
        }
    }
    assert!(failures.is_empty(), "{} differences:\n{}", failures.len(), failures.join("\n"));

    // The nodes: each document is on one node, and only that node can render it.
    let (s, rendered) = pair.miroir.post("/render-template", &inline(searchable, stored("6"))).await;
    assert_eq!((s, &rendered["rendered"]), (200, &json!("pet 6: title=pet 6;genre=dog;")), "{rendered}");
    for id in ["1", "2", "3", "6", "12"] {
        let mut holders = 0;
        for i in 0..cluster.nodes.len() {
            let node = cluster.node_http(i);
            let (held, _) = node.get(&format!("/indexes/pets/documents/{id}")).await;
            let (s, b) = node.post("/render-template", &inline("{{ doc.title }}", stored(id))).await;
            if held == 200 {
                holders += 1;
                assert_eq!((s, &b["rendered"]), (200, &json!(format!("pet {id}"))), "node {i}: {b}");
            } else {
                assert_eq!((s, b["code"].as_str()), (404, Some("render_document_not_found")), "node {i}: {b}");
            }
        }
        assert_eq!(holders, 1, "document {id}");
    }

    // Auth: both `settings.get` and `documents.get`; indexes named in the body are checked
    // against the key after the feature (Meilisearch's 403 `invalid_api_key`).
    let key = |actions: Value, indexes: Value| {
        let m = pair.miroir.clone();
        async move {
            let (s, k) = m.post("/keys", &json!({"actions": actions, "indexes": indexes, "expiresAt": null})).await;
            assert_eq!(s, 201, "{k}");
            m.with_key(k["key"].as_str().unwrap())
        }
    };
    let invalid = |(s, b): (u16, Value)| assert_eq!((s, b["code"].as_str(), b["message"].as_str()), (403, Some("invalid_api_key"), Some("The provided API key is invalid.")), "{b}");
    let settings_only = key(json!(["settings.get"]), json!(["*"])).await;
    invalid(settings_only.post("/render-template", &simple).await);
    let documents_only = key(json!(["documents.get"]), json!(["*"])).await;
    invalid(documents_only.post("/render-template", &simple).await);
    let read_only = key(json!(["*.get"]), json!(["*"])).await;
    let (s, b) = read_only.post("/render-template", &inline("{{ doc.title }}", stored("2"))).await;
    assert_eq!((s, &b["rendered"]), (200, &json!("pet 2")), "{b}");
    let other_only = key(json!(["settings.get", "documents.get"]), json!(["other"])).await;
    let (s, b) = other_only.post("/render-template", &simple).await;
    assert_eq!((s, &b["rendered"]), (200, &json!("Iko")), "{b}");
    invalid(other_only.post("/render-template", &inline("{{ doc.title }}", stored("2"))).await);
    invalid(other_only.post("/render-template", &json!({"template": {"kind": "documentTemplate", "indexUid": "pets", "embedder": "e"}})).await);
    // A body error comes before the key's indexes.
    let (s, b) = other_only.post("/render-template", &json!({"template": {"kind": "documentTemplate", "indexUid": "pets"}, "input": 1})).await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_render_input")), "{b}");

    // Disabled again: refused again, the feature's refusal before the key's indexes.
    if let Some(d) = pair.differs(Method::PATCH, "/experimental-features", &json!({"renderRoute": false})).await {
        panic!("{d}");
    }
    if let Some(d) = pair.differs(Method::POST, "/render-template", &inline("{{ doc.title }}", stored("2"))).await {
        panic!("{d}");
    }
    let (s, b) = other_only.post("/render-template", &inline("{{ doc.title }}", stored("2"))).await;
    assert_eq!((s, b["code"].as_str()), (400, Some("feature_not_enabled")), "{b}");

    single.stop().await;
}

/// With `unavailable_shard_policy: error`, a shard without a healthy copy fails the field
/// list (as it fails a search), naming the shards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_follow_the_error_policy() {
    let mut options = common::test_options();
    options.scatter.unavailable_shard_policy = miroir::config::UnavailableShardPolicy::Error;
    let mut cluster = Cluster::start_with(Spec::rf1_3_nodes(), options).await;
    let http = cluster.http();
    let (s, t) = http.post("/indexes/pets/documents?primaryKey=id", &Value::Array(documents())).await;
    assert_eq!(s, 202, "{t}");
    assert_eq!(http.wait_task(t["taskUid"].as_u64().unwrap()).await["status"], "succeeded");
    let (s, b) = http.post("/indexes/pets/fields", &json!({})).await;
    assert_eq!((s, b["total"].as_u64()), (200, Some(25)), "{b}");
    cluster.nodes[1].stop().await;
    let (s, h, b) = http.send_json(Method::POST, "/indexes/pets/fields", &json!({})).await;
    assert_eq!((s, b["code"].as_str()), (503, Some("miroir_shard_unavailable")), "{b}");
    assert!(h.get("x-miroir-degraded").is_some_and(|v| v.to_str().unwrap().starts_with("shards=")));
    cluster.nodes[1].restart().await;
    cluster.wait_node_usable(1).await;
    let (s, b) = http.post("/indexes/pets/fields", &json!({})).await;
    assert_eq!((s, b["total"].as_u64()), (200, Some(25)), "{b}");
}

//! End-to-end write path through Miroir: index creation, documents in the three formats,
//! tasks waited on with the official SDK, read-back by id, placement on the nodes, quorum
//! under failures, and task durability across a Miroir restart.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Cluster, Spec};
use futures::StreamExt;
use meilisearch_sdk::tasks::Task;
use miroir::dataplane::hash::{canonical_pk, shard_of};
use serde_json::{json, Value};

const GENRES: &[&str] = &["Drama", "Comedy", "Horror", "Science Fiction", "Romance", "Action", "History"];

fn json_doc(i: u64) -> Value {
    json!({
        "id": i,
        "title": format!("Title number {i} of the corpus"),
        "genres": [GENRES[(i % 7) as usize], GENRES[((i / 7) % 7) as usize]],
        "year": 1900 + (i % 120),
        "rating": ((i * 37) % 100) as f64 / 10.0,
        "meta": {"pages": i % 500, "tags": ["a", "b"]},
    })
}

/// Documents 0..n split over the three formats. Returns the request bodies and, for each
/// document, what Meilisearch stores (CSV cells are strings unless typed).
fn corpus(n: u64) -> (Vec<Value>, String, String, BTreeMap<String, Value>) {
    let json_part = n * 4 / 10;
    let ndjson_part = n * 3 / 10;
    let mut expected = BTreeMap::new();
    let json_docs: Vec<Value> = (0..json_part).map(json_doc).collect();
    for d in &json_docs {
        expected.insert(canonical_pk(&d["id"]).unwrap(), d.clone());
    }
    let mut ndjson = String::new();
    for i in json_part..json_part + ndjson_part {
        let d = json_doc(i);
        ndjson.push_str(&d.to_string());
        ndjson.push('\n');
        expected.insert(i.to_string(), d);
    }
    let mut csv = String::from("id,title,year:number,rating:number,flag:boolean\n");
    for i in json_part + ndjson_part..n {
        let title = format!("Csv title {i}, with a comma");
        csv.push_str(&format!("{i},\"{title}\",{},{},{}\n", 1900 + i % 120, (i % 50) as f64 / 4.0, i % 2 == 0));
        let rating = (i % 50) as f64 / 4.0;
        let rating = if rating.fract() == 0.0 { json!(rating as i64) } else { json!(rating) };
        expected.insert(
            i.to_string(),
            json!({"id": i.to_string(), "title": title, "year": 1900 + i % 120, "rating": rating, "flag": i % 2 == 0}),
        );
    }
    (json_docs, ndjson, csv, expected)
}

fn assert_succeeded(task: &Task) {
    assert!(task.is_success(), "task did not succeed: {task:?}");
}

async fn load_and_read_back(cluster: &Cluster, n: u64) -> BTreeMap<String, Value> {
    let client = cluster.sdk();
    let task = client.create_index("corpus", Some("id")).await.unwrap();
    assert_succeeded(&task.wait_for_completion(&client, None, None).await.unwrap());
    let index = client.index("corpus");
    let (json_docs, ndjson, csv, expected) = corpus(n);

    let t = index.add_documents(&json_docs, None).await.unwrap();
    assert_succeeded(&t.wait_for_completion(&client, None, None).await.unwrap());
    let t = index.add_documents_ndjson(futures::io::Cursor::new(ndjson.into_bytes()), None).await.unwrap();
    assert_succeeded(&t.wait_for_completion(&client, None, None).await.unwrap());
    let t = index.add_documents_csv(futures::io::Cursor::new(csv.into_bytes()), None).await.unwrap();
    assert_succeeded(&t.wait_for_completion(&client, None, None).await.unwrap());

    // Every document reads back exactly as sent, with no `_miroir_` field.
    let index = &index;
    let mismatches: Vec<String> = futures::stream::iter(expected.iter())
        .map(|(id, want)| async move {
            let got: Value = index.get_document(id).await.unwrap_or_else(|e| panic!("document {id}: {e}"));
            (got != *want).then(|| format!("{id}: got {got}, want {want}"))
        })
        .buffer_unordered(32)
        .filter_map(|x| async move { x })
        .collect()
        .await;
    assert!(mismatches.is_empty(), "{} documents differ, e.g. {:?}", mismatches.len(), &mismatches[..mismatches.len().min(3)]);
    expected
}

/// Lists a node's documents directly: (id → shard field).
async fn node_documents(cluster: &Cluster, node: usize, index: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut offset = 0;
    loop {
        let (s, body) = cluster
            .node_http(node)
            .get(&format!("/indexes/{index}/documents?offset={offset}&limit=1000&fields=id,_miroir_shard"))
            .await;
        assert_eq!(s, 200, "{body}");
        let results = body["results"].as_array().unwrap();
        for d in results {
            out.insert(canonical_pk(&d["id"]).unwrap(), d["_miroir_shard"].as_u64().expect("shard field on node"));
        }
        offset += results.len();
        if results.is_empty() || offset as u64 >= body["total"].as_u64().unwrap() {
            return out;
        }
    }
}

/// Every node holds exactly the documents of the shards the router assigns it.
async fn assert_placement(cluster: &Cluster, index: &str, ids: &BTreeSet<String>) {
    let assignment = cluster.topology.assignment();
    let by_node = assignment.shards_by_node();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let held: BTreeSet<u32> = by_node.get(&node.id).cloned().unwrap_or_default().into_iter().collect();
        let docs = node_documents(cluster, i, index).await;
        let expected: BTreeSet<String> =
            ids.iter().filter(|id| held.contains(&shard_of(id, cluster.topology.shards))).cloned().collect();
        let got: BTreeSet<String> = docs.keys().cloned().collect();
        assert_eq!(got, expected, "node {} holds the wrong documents", node.id);
        for (id, shard) in docs {
            assert_eq!(shard, shard_of(&id, cluster.topology.shards) as u64, "document {id} on {}", node.id);
        }
    }
}

async fn write_and_place(spec: Spec) {
    let cluster = Cluster::start(spec).await;
    let expected = load_and_read_back(&cluster, 10_000).await;
    let ids: BTreeSet<String> = expected.keys().cloned().collect();
    assert_eq!(ids.len(), 10_000);
    assert_placement(&cluster, "corpus", &ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_documents_three_formats_rf1_three_nodes() {
    write_and_place(Spec::rf1_3_nodes()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_documents_three_formats_rg2_rf2_four_nodes() {
    write_and_place(Spec::rg2_rf2_4_nodes()).await;
}

/// enqueuedAt ≤ startedAt ≤ finishedAt, as on one Meilisearch.
fn assert_times_ordered(task: &Value) {
    let t = |k: &str| time::OffsetDateTime::parse(task[k].as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
    assert!(t("enqueuedAt") <= t("startedAt") && t("startedAt") <= t("finishedAt"), "{task}");
}

fn small_batch(from: u64, n: u64) -> Value {
    Value::Array((from..from + n).map(json_doc).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_under_node_failures_and_convergence_after_retry() {
    let mut cluster = Cluster::start(Spec::rg2_rf2_4_nodes()).await;
    let http = cluster.http();
    let (s, b) = http.post("/indexes", &json!({"uid": "q", "primaryKey": "id"})).await;
    assert_eq!(s, 202, "{b}");
    cluster.wait_task(b["taskUid"].as_u64().unwrap()).await;

    // One node of group 0 down: group 1 still reaches quorum everywhere.
    cluster.nodes[0].stop().await;
    let (s, headers, b) = http.send_json(reqwest::Method::POST, "/indexes/q/documents", &small_batch(0, 200)).await;
    assert_eq!(s, 202, "{b}");
    let degraded = headers.get("x-miroir-degraded").expect("degraded header").to_str().unwrap().to_string();
    assert!(degraded.starts_with("shards=0/"), "{degraded}");
    let task = cluster.wait_task(b["taskUid"].as_u64().unwrap()).await;
    assert_eq!(task["status"], "succeeded", "{task}");

    // One node down in every group: with RF=2 and two nodes per group, no shard has quorum.
    cluster.nodes[2].stop().await;
    let batch = small_batch(1000, 300);
    let (s, headers, b) = http.send_json(reqwest::Method::POST, "/indexes/q/documents", &batch).await;
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["code"], "miroir_no_quorum");
    assert_eq!(b["type"], "system");
    assert!(b["link"].as_str().unwrap().contains("miroir_no_quorum"));
    let touched: BTreeSet<u32> = (1000..1300u64).map(|i| shard_of(&i.to_string(), 16)).collect();
    let message = b["message"].as_str().unwrap();
    for s in &touched {
        assert!(message.contains(&s.to_string()), "{message} should name shard {s}");
    }
    assert!(headers.get("x-miroir-degraded").is_some());

    // The nodes come back; the same request, retried, converges everywhere.
    cluster.nodes[0].restart().await;
    cluster.nodes[2].restart().await;
    cluster.wait_node_usable(0).await;
    cluster.wait_node_usable(2).await;
    for batch in [small_batch(0, 200), batch] {
        let (s, headers, b) = http.send_json(reqwest::Method::POST, "/indexes/q/documents", &batch).await;
        assert_eq!(s, 202, "{b}");
        assert!(headers.get("x-miroir-degraded").is_none());
        let task = cluster.wait_task(b["taskUid"].as_u64().unwrap()).await;
        assert_eq!(task["status"], "succeeded", "{task}");
    }
    let ids: BTreeSet<String> = (0..200u64).chain(1000..1300).map(|i| i.to_string()).collect();
    assert_placement(&cluster, "q", &ids).await;
    for i in [0u64, 150, 1000, 1299] {
        let (s, doc) = http.get(&format!("/indexes/q/documents/{i}")).await;
        assert_eq!(s, 200);
        assert_eq!(doc, json_doc(i));
    }
    // The task list still answers after all this.
    let (s, _) = http.get("/tasks?limit=5").await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_survive_a_miroir_restart() {
    let mut cluster = Cluster::start(Spec::rf1_3_nodes()).await;
    let client = cluster.sdk();
    let t = client.index("r").add_documents(&[json_doc(1), json_doc(2)], Some("id")).await.unwrap();
    let uid = t.task_uid;
    let before = cluster.wait_task(uid as u64).await;
    assert_eq!(before["status"], "succeeded", "{before}");
    // One more task still in flight at restart time.
    let t2 = client.index("r").add_documents(&[json_doc(3)], None).await.unwrap();
    let t2_uid = t2.task_uid;
    cluster.restart_miroir().await;
    let client = cluster.sdk();
    let after = client.get_task(t).await.unwrap();
    assert_succeeded(&after);
    let (_, again) = cluster.http().get(&format!("/tasks/{uid}")).await;
    assert_eq!(again, before);
    assert_succeeded(&t2.wait_for_completion(&client, None, None).await.unwrap());
    // Uids keep growing after the restart.
    let t3 = client.index("r").add_documents(&[json_doc(4)], None).await.unwrap();
    assert!(t3.task_uid > t2_uid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filterable_attributes_round_trip_without_the_shard_field() {
    let cluster = Cluster::start(Spec::rf1_3_nodes()).await;
    let client = cluster.sdk();
    let t = client.create_index("s", Some("id")).await.unwrap();
    assert_succeeded(&t.wait_for_completion(&client, None, None).await.unwrap());
    let index = client.index("s");
    let t = index.set_filterable_attributes(["genre"]).await.unwrap();
    let done = t.wait_for_completion(&client, None, None).await.unwrap();
    assert_succeeded(&done);
    assert_eq!(index.get_filterable_attributes().await.unwrap(), vec!["genre".to_string()]);
    let (_, settings) = cluster.http().get("/indexes/s/settings").await;
    assert_eq!(settings["filterableAttributes"], json!(["genre"]));
    let (_, task) = cluster.http().get(&format!("/tasks/{}", done.get_uid())).await;
    assert_eq!(task["details"]["filterableAttributes"], json!(["genre"]), "{task}");
    // The nodes themselves can still filter on the shard.
    let (_, node_settings) = cluster.node_http(0).get("/indexes/s/settings/filterable-attributes").await;
    assert!(node_settings.as_array().unwrap().contains(&json!("_miroir_shard")), "{node_settings}");
    // Resetting keeps the shard filterable on the nodes and shows [] to the client.
    let (s, _, b) = cluster.http().request(reqwest::Method::DELETE, "/indexes/s/settings/filterable-attributes", None, None).await;
    assert_eq!(s, 202);
    cluster.wait_task(b["taskUid"].as_u64().unwrap()).await;
    let (_, fa) = cluster.http().get("/indexes/s/settings/filterable-attributes").await;
    assert_eq!(fa, json!([]));
    let (_, node_fa) = cluster.node_http(1).get("/indexes/s/settings/filterable-attributes").await;
    assert_eq!(node_fa, json!(["_miroir_shard"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_by_id_batch_filter_and_all() {
    let cluster = Cluster::start(Spec::rg2_rf2_4_nodes()).await;
    let http = cluster.http();
    let (_, b) = http.post("/indexes/d/documents?primaryKey=id", &small_batch(0, 100)).await;
    cluster.wait_task(b["taskUid"].as_u64().unwrap()).await;
    let (_, _, b) = http.send_json(reqwest::Method::PATCH, "/indexes/d/settings", &json!({"filterableAttributes": ["year"]})).await;
    cluster.wait_task(b["taskUid"].as_u64().unwrap()).await;

    let (s, _, b) = http.request(reqwest::Method::DELETE, "/indexes/d/documents/5", None, None).await;
    assert_eq!(s, 202);
    let t = cluster.wait_task(b["taskUid"].as_u64().unwrap()).await;
    assert_eq!(t["type"], "documentDeletion");
    assert_eq!(t["details"], json!({"providedIds": 1, "deletedDocuments": 1, "originalFilter": null}), "{t}");
    assert_eq!(http.get("/indexes/d/documents/5").await.0, 404);

    let (s, b) = http.post("/indexes/d/documents/delete-batch", &json!([6, "7", 8, 9999])).await;
    assert_eq!(s, 202);
    let t = cluster.wait_task(b["taskUid"].as_u64().unwrap()).await;
    assert_eq!(t["details"], json!({"providedIds": 4, "deletedDocuments": 3, "originalFilter": null}), "{t}");

    // year = 1900 + i % 120: ids 0..100 have years 1900..1999; `year < 1910` → ids 0..10,
    // of which 5, 6, 7 and 8 are gone already.
    let (s, b) = http.post("/indexes/d/documents/delete", &json!({"filter": "year < 1910"})).await;
    assert_eq!(s, 202, "{b}");
    let t = cluster.wait_task(b["taskUid"].as_u64().unwrap()).await;
    assert_times_ordered(&t);
    assert_eq!(t["details"], json!({"providedIds": 0, "deletedDocuments": 6, "originalFilter": "\"year < 1910\""}), "{t}");

    // A filter the nodes reject is passed through unchanged, nothing enqueued.
    let (s, b) = http.post("/indexes/d/documents/delete", &json!({"filter": "year >> 1"})).await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["code"], "invalid_document_filter");
    assert_eq!(b["type"], "invalid_request");

    let (s, _, b) = http.request(reqwest::Method::DELETE, "/indexes/d/documents", None, None).await;
    assert_eq!(s, 202);
    let t = cluster.wait_task(b["taskUid"].as_u64().unwrap()).await;
    assert_eq!(t["details"], json!({"deletedDocuments": 90}), "{t}");
    for node in 0..4 {
        assert!(node_documents(&cluster, node, "d").await.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_meilisearch_shape_and_status() {
    let mut options = common::test_options();
    options.max_body_bytes = 1024 * 1024;
    let cluster = Cluster::start_with(Spec::rf1_3_nodes(), options).await;
    let http = cluster.http();
    let check = |status: u16, body: &Value, want_status: u16, code: &str| {
        assert_eq!(status, want_status, "{body}");
        assert_eq!(body["code"], code, "{body}");
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["message", "code", "type", "link"], "{body}");
    };

    let (s, b) = http.without_key().get("/indexes").await;
    check(s, &b, 401, "missing_authorization_header");
    let (s, b) = http.with_key("nope").get("/indexes").await;
    check(s, &b, 403, "invalid_api_key");
    assert_eq!(http.without_key().get("/health").await, (200, json!({"status": "available"})));
    let (s, b) = http.get("/_miroir/topology").await;
    check(s, &b, 403, "invalid_api_key");
    let (s, topo) = http.with_key(common::ADMIN_KEY).get("/_miroir/topology").await;
    assert_eq!(s, 200);
    assert_eq!(topo["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(topo["assignment"][0]["shards"].as_array().unwrap().len(), 16);

    let (s, _, b) = http.request(reqwest::Method::POST, "/indexes/e/documents", Some("application/json"), Some(b"[{\"id\": 1,".to_vec())).await;
    check(s, &b, 400, "malformed_payload");
    let (s, _, b) = http.request(reqwest::Method::POST, "/indexes/e/documents", Some("application/xml"), Some(b"<x/>".to_vec())).await;
    check(s, &b, 415, "invalid_content_type");
    let (s, b) = http.post("/indexes/e/documents", &json!([{"id": 1, "_miroir_shard": 3}])).await;
    check(s, &b, 400, "miroir_reserved_field");
    let big = vec![b' '; 2 * 1024 * 1024];
    let (s, _, b) = http.request(reqwest::Method::POST, "/indexes/e/documents", Some("application/json"), Some(big)).await;
    check(s, &b, 413, "payload_too_large");

    // Primary-key inference fails inside the task, as on one Meilisearch: the index exists
    // afterwards (without a primary key) but no document reached any node.
    let (s, b) = http.post("/indexes/e/documents", &json!([{"id": 1, "movie_id": 2}])).await;
    assert_eq!(s, 202, "{b}");
    let t = cluster.wait_task(b["taskUid"].as_u64().unwrap()).await;
    assert_eq!(t["status"], "failed");
    assert_eq!(t["error"]["code"], "index_primary_key_multiple_candidates_found");
    assert_eq!(t["details"], json!({"receivedDocuments": 1, "indexedDocuments": 0}));
    for node in 0..3 {
        let (s, index) = cluster.node_http(node).get("/indexes/e").await;
        assert_eq!((s, &index["primaryKey"]), (200, &Value::Null), "node {node}: {index}");
        let (_, docs) = cluster.node_http(node).get("/indexes/e/documents").await;
        assert_eq!(docs["total"], 0, "node {node} received documents");
    }
    let (_, index) = http.get("/indexes/e").await;
    assert_eq!(index["primaryKey"], Value::Null);
    let (s, b) = http.post("/indexes/e/documents", &json!([{"title": "no id at all"}])).await;
    assert_eq!(s, 202);
    let t = cluster.wait_task(b["taskUid"].as_u64().unwrap()).await;
    assert_eq!(t["error"]["code"], "index_primary_key_no_candidate_found");

    // Node errors pass through unchanged.
    let (s, b) = http.get("/indexes/nope").await;
    check(s, &b, 404, "index_not_found");
    let (_, b) = http.post("/indexes/e/documents?primaryKey=id", &json!([{"id": 1}])).await;
    cluster.wait_task(b["taskUid"].as_u64().unwrap()).await;
    let (s, b) = http.get("/indexes/e/documents/999").await;
    check(s, &b, 404, "document_not_found");
    let (s, doc) = http.get("/indexes/e/documents/1?fields=id").await;
    assert_eq!((s, doc), (200, json!({"id": 1})));
    let (s, b) = http.get("/tasks/99999").await;
    check(s, &b, 404, "task_not_found");
    let (s, b) = http.get("/tasks?statuses=nope").await;
    check(s, &b, 400, "invalid_task_statuses");
    let (s, b) = http.post("/indexes", &json!({"uid": "bad uid!"})).await;
    check(s, &b, 400, "invalid_index_uid");
    let (s, _, b) = http.send_json(reqwest::Method::PATCH, "/indexes/e/settings", &json!({"notASetting": 1})).await;
    check(s, &b, 400, "bad_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_listing_filters_and_paging() {
    let cluster = Cluster::start(Spec::rf1_3_nodes()).await;
    let http = cluster.http();
    let mut uids = Vec::new();
    for i in 0..5u64 {
        let (_, b) = http.post(&format!("/indexes/t{}/documents?primaryKey=id", i % 2), &small_batch(i * 10, 3)).await;
        uids.push(b["taskUid"].as_u64().unwrap_or_else(|| panic!("{b} {:?} {:?}", cluster.proxy.node_health(), cluster.proxy.node_sync())));
    }
    for u in &uids {
        cluster.wait_task(*u).await;
    }
    let (s, page) = http.get("/tasks?limit=2").await;
    assert_eq!(s, 200);
    let got: Vec<u64> = page["results"].as_array().unwrap().iter().map(|t| t["uid"].as_u64().unwrap()).collect();
    assert_eq!(got, vec![uids[4], uids[3]]);
    assert_eq!(page["total"], 5);
    assert_eq!(page["limit"], 2);
    assert_eq!(page["from"], uids[4]);
    assert_eq!(page["next"], uids[2]);
    let (_, page) = http.get(&format!("/tasks?limit=2&from={}", uids[2])).await;
    let got: Vec<u64> = page["results"].as_array().unwrap().iter().map(|t| t["uid"].as_u64().unwrap()).collect();
    assert_eq!(got, vec![uids[2], uids[1]]);
    let (_, page) = http.get("/tasks?indexUids=t1&types=documentAdditionOrUpdate&statuses=succeeded").await;
    assert_eq!(page["total"], 2, "{page}");
    let (_, page) = http.get("/tasks?reverse=true&limit=1").await;
    assert_eq!(page["results"][0]["uid"], uids[0]);

    let (s, _, b) = http.request(reqwest::Method::DELETE, "/tasks?indexUids=t0", None, None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["type"], "taskDeletion");
    let t = cluster.wait_task(b["taskUid"].as_u64().unwrap()).await;
    assert_eq!(t["details"]["matchedTasks"], 3);
    assert_eq!(t["details"]["deletedTasks"], 3);
    assert_eq!(t["details"]["originalFilter"], "?indexUids=t0");
    assert_eq!(http.get(&format!("/tasks/{}", uids[0])).await.0, 404);
    let (s, _, b) = http.request(reqwest::Method::DELETE, "/tasks", None, None).await;
    assert_eq!(s, 400);
    assert_eq!(b["code"], "missing_task_filters");
}

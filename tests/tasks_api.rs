//! `/tasks` and `/batches` through Miroir, as one Meilisearch 1.50 answers them: every filter
//! (batchUids, canceledBy, the six dates, `*`), paging, errors compared with a plain node,
//! `customMetadata` on every document write, cancelations that finish and mark what they
//! canceled, Miroir's batches, and `POST /tasks/compact`.
//!
//! One cluster (3 nodes) and one plain node for the whole file: the checks run in sequence.

mod common;

use std::collections::BTreeSet;

use common::{Cluster, Http, Node, Spec, NODE_KEY};
use reqwest::Method;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().expect("an object").keys().map(String::as_str).collect()
}

fn uids(list: &Value) -> Vec<u64> {
    list["results"].as_array().expect("results").iter().map(|t| t["uid"].as_u64().unwrap()).collect()
}

fn time_of(v: &Value) -> Option<OffsetDateTime> {
    v.as_str().map(|s| OffsetDateTime::parse(s, &Rfc3339).expect("rfc3339"))
}

async fn accepted(http: &Http, method: Method, path: &str, body: &Value) -> Value {
    let (status, _, b) = http.send_json(method, path, body).await;
    assert_eq!(status, 202, "{path}: {b}");
    b
}

/// Every task Miroir has, newest first.
async fn all_tasks(http: &Http) -> Vec<Value> {
    let (s, b) = http.get("/tasks?limit=1000").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["next"], Value::Null);
    b["results"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_and_batches_like_one_meilisearch() {
    let cluster = Cluster::start(Spec::rf1_3_nodes()).await;
    let http = cluster.http();
    let single = Node::start("single").await;
    let plain = Http { base: single.url.clone(), key: Some(NODE_KEY.to_string()) };

    // ------------------------------------------------------------ customMetadata on writes
    let docs: Vec<Value> = (0..12).map(|i| json!({"id": i, "title": format!("movie {i}"), "year": 1990 + i})).collect();
    let add = accepted(&http, Method::POST, "/indexes/movies/documents?primaryKey=id&customMetadata=deploy-1", &json!(docs)).await;
    assert_eq!(keys(&add), ["taskUid", "indexUid", "status", "type", "enqueuedAt", "customMetadata"]);
    assert_eq!(add["customMetadata"], "deploy-1");
    let t = cluster.wait_task(add["taskUid"].as_u64().unwrap()).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(
        keys(&t),
        ["uid", "batchUid", "indexUid", "status", "type", "canceledBy", "details", "error", "duration", "enqueuedAt", "startedAt", "finishedAt", "customMetadata"]
    );
    assert_eq!(t["customMetadata"], "deploy-1");
    assert_eq!(t["batchUid"], t["uid"]);

    let writes: Vec<(Method, String, Value, &str)> = vec![
        (Method::PUT, "/indexes/movies/documents?customMetadata=upd%20%C3%BC".into(), json!([{"id": 1, "year": 1}]), "upd ü"),
        (Method::DELETE, "/indexes/movies/documents/2?customMetadata=del-one".into(), Value::Null, "del-one"),
        (Method::POST, "/indexes/movies/documents/delete-batch?customMetadata=del-batch".into(), json!([3, 4]), "del-batch"),
        // `id` is not filterable: the task fails, and still carries its metadata.
        (Method::POST, "/indexes/movies/documents/delete?customMetadata=del-filter".into(), json!({"filter": "id = 5"}), "del-filter"),
    ];
    let mut meta_tasks = Vec::new();
    for (method, path, body, meta) in &writes {
        let b = if body.is_null() {
            let (s, _, b) = http.request(method.clone(), path, None, None).await;
            assert_eq!(s, 202, "{path}: {b}");
            b
        } else {
            accepted(&http, method.clone(), path, body).await
        };
        assert_eq!(b["customMetadata"], *meta, "{path}");
        meta_tasks.push(b["taskUid"].as_u64().unwrap());
    }
    for (uid, (_, path, _, meta)) in meta_tasks.iter().zip(&writes) {
        let t = cluster.wait_task(*uid).await;
        assert_eq!(t["customMetadata"], *meta, "{path}: {t}");
    }
    let other = accepted(&http, Method::POST, "/indexes/other/documents?primaryKey=id", &json!([{"id": 1}, {"id": 2}])).await;
    assert!(other.get("customMetadata").is_none(), "absent without metadata: {other}");
    let t = cluster.wait_task(other["taskUid"].as_u64().unwrap()).await;
    assert!(t.get("customMetadata").is_none(), "{t}");
    let clear = accepted(&http, Method::DELETE, "/indexes/other/documents?customMetadata=clear", &Value::Null).await;
    assert_eq!(cluster.wait_task(clear["taskUid"].as_u64().unwrap()).await["customMetadata"], "clear");
    // The nodes never see it: their tasks carry none.
    for i in 0..cluster.nodes.len() {
        let (_, b) = cluster.node_http(i).get("/tasks?limit=1000").await;
        for t in b["results"].as_array().unwrap() {
            assert!(t.get("customMetadata").is_none(), "node {i}: {t}");
        }
    }

    // ------------------------------------------------------------ filters on progress
    let tasks = all_tasks(&http).await;
    assert_eq!(tasks.len(), 7, "the seven writes above");
    for t in &tasks {
        assert!(matches!(t["status"].as_str(), Some("succeeded" | "failed")), "{t}");
        assert_eq!(t["batchUid"], t["uid"], "a finished Miroir task is its own batch: {t}");
    }
    let all_uids: Vec<u64> = tasks.iter().map(|t| t["uid"].as_u64().unwrap()).collect();
    let pick = all_uids[2];
    let (_, b) = http.get(&format!("/tasks?batchUids={pick},999999")).await;
    assert_eq!(uids(&b), vec![pick]);
    // Exclusive date bounds, checked against the tasks' own dates.
    let mid = &tasks[tasks.len() / 2];
    for (field, param) in [("startedAt", "StartedAt"), ("finishedAt", "FinishedAt"), ("enqueuedAt", "EnqueuedAt")] {
        let bound = time_of(&mid[field]).unwrap();
        let raw = mid[field].as_str().unwrap();
        let enc: String = url::form_urlencoded::byte_serialize(raw.as_bytes()).collect();
        let (s, before) = http.get(&format!("/tasks?limit=1000&before{param}={enc}")).await;
        assert_eq!(s, 200, "{before}");
        let (_, after) = http.get(&format!("/tasks?limit=1000&after{param}={enc}")).await;
        let want_before: Vec<u64> =
            tasks.iter().filter(|t| time_of(&t[field]).is_some_and(|v| v < bound)).map(|t| t["uid"].as_u64().unwrap()).collect();
        let want_after: Vec<u64> =
            tasks.iter().filter(|t| time_of(&t[field]).is_some_and(|v| v > bound)).map(|t| t["uid"].as_u64().unwrap()).collect();
        assert_eq!(uids(&before), want_before, "before{param}");
        assert_eq!(uids(&after), want_after, "after{param}");
        assert_eq!(before["total"], json!(want_before.len()));
        assert!(!want_before.is_empty() && !want_after.is_empty(), "the bound splits the tasks ({field})");
        // A whole day: everything today is after yesterday and before tomorrow.
        let today = bound.date();
        let (_, b) = http.get(&format!("/tasks?limit=1000&after{param}={}&before{param}={}", today.previous_day().unwrap(), today.next_day().unwrap())).await;
        let want: Vec<u64> = tasks.iter().filter(|t| time_of(&t[field]).is_some_and(|v| v.date() == today)).map(|t| t["uid"].as_u64().unwrap()).collect();
        assert_eq!(uids(&b), want);
    }
    // `*` is no filter, for every filter.
    for k in ["uids", "batchUids", "canceledBy", "types", "statuses", "indexUids", "afterEnqueuedAt", "beforeEnqueuedAt", "afterStartedAt", "beforeStartedAt", "afterFinishedAt", "beforeFinishedAt"] {
        let (s, b) = http.get(&format!("/tasks?limit=1000&{k}=*")).await;
        assert_eq!(s, 200, "{k}: {b}");
        assert_eq!(uids(&b), all_uids, "{k}=*");
    }
    // Every task type of 1.50 is a valid filter value.
    let (s, b) = http.get("/tasks?types=dsrUpdate,dsrClear,export,upgradeDatabase,indexCompaction,networkTopologyChange,documentEdition").await;
    assert_eq!((s, b["total"].clone()), (200, json!(0)), "{b}");

    // ------------------------------------------------------------ paging
    for reverse in [false, true] {
        let mut want = all_uids.clone();
        if reverse {
            want.reverse();
        }
        let mut got = Vec::new();
        let mut from: Option<u64> = None;
        loop {
            let q = format!("/tasks?limit=3&reverse={reverse}{}", from.map(|f| format!("&from={f}")).unwrap_or_default());
            let (_, b) = http.get(&q).await;
            assert_eq!(b["total"], json!(all_uids.len()));
            assert_eq!(b["limit"], 3);
            let page = uids(&b);
            assert_eq!(b["from"], json!(page.first()), "`from` is the first result");
            got.extend(page);
            match b["next"].as_u64() {
                Some(n) => from = Some(n),
                None => break,
            }
        }
        assert_eq!(got, want, "reverse={reverse}");
    }
    // `from` past the newest task: the page starts at the newest, and says so.
    let (_, b) = http.get("/tasks?limit=1&from=4000000").await;
    assert_eq!((b["from"].clone(), uids(&b)), (json!(all_uids[0]), vec![all_uids[0]]));

    // ------------------------------------------------------------ errors, as a plain node answers
    let bad = [
        "batchUids=abc",
        "batchUids=1,x",
        "canceledBy=x",
        "uids=-3",
        "beforeStartedAt=yesterday",
        "afterStartedAt=2026-13-01",
        "beforeFinishedAt=nope",
        "afterFinishedAt=12:00",
        "beforeEnqueuedAt=x",
        "types=nope",
        "types=indexCreation,nope",
        "statuses=done",
        "indexUids=b@d",
    ];
    for q in bad {
        for (method, path) in [(Method::GET, "/tasks"), (Method::DELETE, "/tasks"), (Method::POST, "/tasks/cancel")] {
            let url = format!("{path}?{q}");
            let (ms, _, mb) = http.request(method.clone(), &url, None, None).await;
            let (ps, _, pb) = plain.request(method.clone(), &url, None, None).await;
            assert_eq!((ms, &mb), (ps, &pb), "{method} {url}");
            assert_eq!(ms, 400, "{method} {url}: {mb}");
        }
    }
    for (method, url) in [
        (Method::GET, "/tasks?limit=x"),
        (Method::GET, "/tasks?from=-1"),
        (Method::GET, "/tasks?reverse=maybe"),
        (Method::GET, "/tasks?nope=1"),
        (Method::DELETE, "/tasks"),
        (Method::DELETE, "/tasks?limit=1"),
        (Method::POST, "/tasks/cancel"),
        (Method::POST, "/tasks/cancel?from=1"),
        (Method::GET, "/tasks/abc"),
        (Method::GET, "/tasks/99999999"),
    ] {
        let (ms, _, mb) = http.request(method.clone(), url, None, None).await;
        let (ps, _, pb) = plain.request(method.clone(), url, None, None).await;
        assert_eq!((ms, &mb), (ps, &pb), "{method} {url}");
    }

    // ------------------------------------------------------------ cancelation
    // Nothing left to cancel: the cancelation still finishes.
    let (s, _, c) = http.request(Method::POST, "/tasks/cancel?statuses=succeeded,failed", None, None).await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(keys(&c), ["taskUid", "indexUid", "status", "type", "enqueuedAt"]);
    assert_eq!((c["type"].clone(), c["status"].clone(), c["indexUid"].clone()), (json!("taskCancelation"), json!("enqueued"), Value::Null));
    let cu = c["taskUid"].as_u64().unwrap();
    let done = cluster.wait_task(cu).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["details"], json!({"matchedTasks": all_uids.len(), "canceledTasks": 0, "originalFilter": "?statuses=succeeded,failed"}));
    assert_eq!(done["batchUid"], json!(cu));
    // The same on a plain node, for the shape.
    let (_, _, pc) = plain.request(Method::POST, "/tasks/cancel?statuses=succeeded,failed", None, None).await;
    let pdone = plain.wait_task(pc["taskUid"].as_u64().unwrap()).await;
    assert_eq!(keys(&done), keys(&pdone));
    assert_eq!(keys(&done["details"]), keys(&pdone["details"]));
    assert_eq!(pdone["details"]["canceledTasks"], 0);

    // Writes canceled right away: however far they got, the cancelation finishes, counts
    // exactly the tasks it canceled, and those (only those) say `canceledBy` = its uid.
    // (On real Meilisearch some of them are usually canceled; the test node holds one lock
    // while it processes a task, so there every write has finished by the time Miroir asks.
    // The bookkeeping itself is covered deterministically by the unit test
    // `cancelation_finishes_and_counts_what_it_canceled`.)
    let mut batch = Vec::new();
    for i in 0..6 {
        let docs: Vec<Value> = (0..2000).map(|j| json!({"id": 100_000 + i * 2000 + j, "title": format!("title {j} of batch {i}")})).collect();
        batch.push(accepted(&http, Method::POST, "/indexes/movies/documents", &json!(docs)).await["taskUid"].as_u64().unwrap());
    }
    let list = batch.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let (s, _, c) = http.request(Method::POST, &format!("/tasks/cancel?uids={list}"), None, None).await;
    assert_eq!(s, 200, "{c}");
    let cu2 = c["taskUid"].as_u64().unwrap();
    let done = cluster.wait_task(cu2).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["details"]["matchedTasks"], 6);
    let canceled_n = done["details"]["canceledTasks"].as_u64().unwrap();
    eprintln!("the cancelation canceled {canceled_n} of the 6 writes");
    let mut canceled = BTreeSet::new();
    for uid in &batch {
        let t = cluster.wait_task(*uid).await;
        match t["status"].as_str().unwrap() {
            "canceled" => {
                assert_eq!(t["canceledBy"], json!(cu2), "{t}");
                canceled.insert(*uid);
            }
            _ => assert_eq!(t["canceledBy"], Value::Null, "{t}"),
        }
    }
    assert_eq!(canceled.len() as u64, canceled_n);
    let (_, b) = http.get(&format!("/tasks?canceledBy={cu2}")).await;
    assert_eq!(uids(&b).into_iter().collect::<BTreeSet<_>>(), canceled);
    let (_, b) = http.get(&format!("/tasks?canceledBy={cu}")).await;
    assert_eq!(b["total"], 0, "a cancelation that canceled nothing matches nothing");

    // ------------------------------------------------------------ batches
    let tasks = all_tasks(&http).await;
    let (s, batches) = http.get("/batches?limit=1000").await;
    assert_eq!(s, 200, "{batches}");
    assert_eq!(keys(&batches), ["results", "total", "limit", "from", "next"]);
    assert_eq!(uids(&batches), tasks.iter().map(|t| t["uid"].as_u64().unwrap()).collect::<Vec<_>>(), "one batch per started task");
    for (b, t) in batches["results"].as_array().unwrap().iter().zip(&tasks) {
        assert_eq!(keys(b), ["uid", "progress", "details", "stats", "duration", "startedAt", "finishedAt", "batchStrategy"]);
        assert_eq!(b["stats"]["totalNbTasks"], 1);
        assert_eq!(b["stats"]["status"], json!({t["status"].as_str().unwrap(): 1}));
        assert_eq!(b["stats"]["types"], json!({t["type"].as_str().unwrap(): 1}));
        match t["indexUid"].as_str() {
            Some(i) => assert_eq!(b["stats"]["indexUids"], json!({i: 1})),
            None => assert_eq!(b["stats"]["indexUids"], json!({})),
        }
        assert_eq!((&b["startedAt"], &b["finishedAt"], &b["duration"]), (&t["startedAt"], &t["finishedAt"], &t["duration"]));
        assert_eq!(b["progress"], Value::Null);
        let (s, one) = http.get(&format!("/batches/{}", b["uid"])).await;
        assert_eq!((s, &one), (200, b));
    }
    // Filters and paging as for tasks.
    let (_, b) = http.get("/batches?statuses=failed").await;
    let failed: Vec<u64> = tasks.iter().filter(|t| t["status"] == "failed").map(|t| t["uid"].as_u64().unwrap()).collect();
    assert_eq!(uids(&b), failed);
    assert!(!failed.is_empty());
    let (_, b) = http.get("/batches?statuses=enqueued").await;
    assert_eq!((b["total"].clone(), uids(&b)), (json!(0), vec![]));
    let (_, b) = http.get("/batches?types=taskCancelation&limit=1&reverse=true").await;
    assert_eq!((uids(&b), b["next"].clone(), b["total"].clone()), (vec![cu], json!(cu2), json!(2)));
    let (_, b) = http.get(&format!("/batches?batchUids={cu2}")).await;
    assert_eq!(uids(&b), vec![cu2]);
    // Errors.
    let (s, b) = http.get("/batches/99999999").await;
    assert_eq!((s, b), (404, json!({"message": "Batch `99999999` not found.", "code": "batch_not_found", "type": "invalid_request", "link": "https://docs.meilisearch.com/errors#batch_not_found"})));
    let (s, b) = http.get("/batches/abc").await;
    assert_eq!((s, b), (400, json!({"message": "Batch uid `abc` is invalid. It should only contain numeric characters.", "code": "invalid_batch_uids", "type": "invalid_request", "link": "https://docs.meilisearch.com/errors#invalid_batch_uids"})));
    for q in bad {
        let (ms, mb) = http.get(&format!("/batches?{q}")).await;
        let (ts, tb) = http.get(&format!("/tasks?{q}")).await;
        assert_eq!((ms, mb), (ts, tb), "GET /batches?{q} reads its parameters as GET /tasks does");
    }

    // ------------------------------------------------------------ delete by the new filters
    let (s, _, d) = http.request(Method::DELETE, &format!("/tasks?canceledBy={cu2}"), None, None).await;
    assert_eq!(s, 200, "{d}");
    let dt = cluster.wait_task(d["taskUid"].as_u64().unwrap()).await;
    assert_eq!(dt["details"]["deletedTasks"], json!(canceled.len()));
    let (_, b) = http.get(&format!("/tasks?uids={list}")).await;
    assert_eq!(b["total"], json!(6 - canceled.len()));
    let (s, _, d) = http.request(Method::DELETE, &format!("/tasks?batchUids={pick}"), None, None).await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(cluster.wait_task(d["taskUid"].as_u64().unwrap()).await["details"]["deletedTasks"], 1);
    let (s, _) = http.get(&format!("/batches/{pick}")).await;
    assert_eq!(s, 404, "a deleted task's batch is gone too");

    // ------------------------------------------------------------ compaction
    let (s, _, b) = http.request(Method::POST, "/tasks/compact", None, None).await;
    assert_eq!((s, b["code"].clone()), (501, json!("miroir_not_implemented")), "{b}");
}

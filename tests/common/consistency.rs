#![allow(dead_code)]
//! Shared pieces of the replica-consistency scenarios (`tests/replica_consistency.rs`) and of
//! the catch-up benchmark (`benches/catchup.rs`): a keep-alive JSON client, the book of
//! acknowledged writes, readers that run while a node catches up and flag any stale answer,
//! polling `/_miroir/topology` until every node is caught up, and the one final check,
//! [`assert_exactly_acknowledged`].
//!
//! Used through `#[path = "common/consistency.rs"]` next to `mod common;` (it refers to
//! `crate::common`).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use miroir::dataplane::hash::{canonical_pk, shard_of};
use miroir::dataplane::server::{self, ServerHandle};
use miroir::dataplane::topology::Topology;
use miroir::dataplane::{Proxy, ProxyOptions};
use serde_json::{json, Value};

use crate::common::{Node, Spec, ADMIN_KEY, MASTER_KEY, NODE_KEY};

/// An environment variable as a number, else `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().unwrap_or_else(|_| panic!("{name}={v} is not a number")),
        _ => default,
    }
}

/// Miroir's own log (in-process Miroirs) into the test's captured output, shown when a test
/// fails: `MIROIR_TEST_LOG` (an env-filter, default `warn`).
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_new(std::env::var("MIROIR_TEST_LOG").unwrap_or_else(|_| "warn".into()))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().with_target(false).try_init();
}

// ---------------------------------------------------------------------------------------
// HTTP

/// JSON over one keep-alive client (the tests send thousands of requests).
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub key: Option<String>,
    /// The key for `/_miroir/*` (Miroir's admin API key), when it differs from `key`.
    pub admin_key: Option<String>,
    client: reqwest::Client,
}

/// One answer: status, whether Miroir said it was partial (`X-Miroir-Degraded`), body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub degraded: Option<String>,
    pub body: Value,
}

impl Api {
    pub fn new(base: impl Into<String>, key: Option<&str>) -> Api {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(16)
            .timeout(Duration::from_secs(120))
            .build()
            .expect("http client");
        Api { base: base.into(), key: key.map(str::to_string), admin_key: None, client }
    }

    /// Miroir at `base`, with the master key (and the admin key for `/_miroir/*`).
    pub fn miroir(base: impl Into<String>) -> Api {
        let mut a = Api::new(base, Some(MASTER_KEY));
        a.admin_key = Some(ADMIN_KEY.to_string());
        a
    }

    /// A node at `base`, with the node key.
    pub fn node(base: impl Into<String>) -> Api {
        Api::new(base, Some(NODE_KEY))
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Answer {
        let mut last = String::new();
        // Retried once only when the connection could not be made (nothing was sent): a
        // write must never reach a server twice behind the test's back.
        for _ in 0..2 {
            let mut req = self.client.request(method.clone(), format!("{}{}", self.base, path));
            let key = if path.starts_with("/_miroir/") { self.admin_key.as_ref().or(self.key.as_ref()) } else { self.key.as_ref() };
            if let Some(k) = key {
                req = req.bearer_auth(k);
            }
            if let Some(b) = body {
                req = req.header("content-type", "application/json").body(serde_json::to_vec(b).unwrap());
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let degraded = resp.headers().get("x-miroir-degraded").map(|v| v.to_str().unwrap_or("?").to_string());
                    let bytes = resp.bytes().await.unwrap_or_default();
                    let body = if bytes.is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
                    };
                    return Answer { status, degraded, body };
                }
                Err(e) => {
                    last = format!("{e:?}");
                    if !e.is_connect() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        Answer { status: 0, degraded: None, body: Value::String(format!("no answer from {}{path}: {last}", self.base)) }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// Polls `GET /tasks/{uid}` until terminal; panics after `within`.
    pub async fn wait_task(&self, uid: u64, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let a = self.get(&format!("/tasks/{uid}")).await;
            assert_eq!(a.status, 200, "GET /tasks/{uid} on {}: {}", self.base, a.body);
            if matches!(a.body["status"].as_str(), Some("succeeded" | "failed" | "canceled")) {
                return a.body;
            }
            assert!(Instant::now() < deadline, "task {uid} on {} not finished after {within:?}: {}", self.base, a.body);
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Nodes and in-process Miroirs without the `Cluster` (for scenarios that run their own).

/// Starts the nodes of `spec` (ids `g{g}-n{i}`, as `Cluster` names them) and their topology.
pub async fn start_nodes(spec: &Spec) -> (Vec<Node>, Topology) {
    crate::common::start_nodes_addressed(spec, |n| std::future::ready(n.url.clone())).await
}

/// A Miroir in this process on `store` (HTTP server + the background workers `server::spawn`
/// starts).
pub struct InProcess {
    pub proxy: Proxy,
    pub handle: ServerHandle,
    pub api: Api,
}

pub async fn serve_in_process(store: Arc<dyn miroir::store::TaskStore>, topology: &Topology, options: ProxyOptions) -> InProcess {
    let proxy = Proxy::new(options, store);
    proxy.apply_topology(topology.clone()).expect("valid topology");
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let handle = server::spawn(proxy.clone(), listener);
    let api = Api::miroir(handle.url());
    InProcess { proxy, handle, api }
}

// ---------------------------------------------------------------------------------------
// Documents and the book of acknowledged writes.

/// Document `id` at version `v`; `pad` bytes of filler text (to make bodies heavier).
pub fn doc(id: u64, v: u64, pad: usize) -> Value {
    let mut d = json!({"id": id, "title": format!("document {id} version {v}"), "v": v, "bucket": id % 10});
    if pad > 0 {
        let word = "lorem ipsum dolor sit amet ";
        d["text"] = Value::String(word.repeat(pad / word.len() + 1)[..pad].to_string());
    }
    d
}

/// What clients were told and what they may expect to read, shared with the readers.
#[derive(Default)]
pub struct Book {
    /// id → version of the newest write whose task has succeeded.
    pub settled: BTreeMap<String, u64>,
    /// Ids whose deletion has succeeded (never written again).
    pub deleted: BTreeSet<String>,
    /// The settled ids as a list, for sampling.
    settled_ids: Vec<String>,
    /// id → newest acknowledged (202) version, settled or not.
    acked: BTreeMap<String, u64>,
    /// Live ids sent, acknowledged or not yet (a node may index a batch before Miroir's 202
    /// reaches the client): the upper bound of any count.
    sent: BTreeSet<String>,
    /// Every acknowledged write has settled and no write is being sent.
    quiet: bool,
}

impl Book {
    pub fn live_count(&self) -> usize {
        self.settled.len()
    }
}

/// One write sent and acknowledged, not yet known to have succeeded.
struct Pending {
    via: usize,
    task_uid: u64,
    upserts: Vec<(String, u64)>,
    deletes: Vec<String>,
}

/// Sends the writes of a scenario through one or more Miroirs (round-robin per request,
/// one request at a time so that their order is the order clients sent them in), and keeps
/// the [`Book`].
pub struct Writer {
    pub index: String,
    pub vias: Vec<Api>,
    next: usize,
    pub book: Arc<Mutex<Book>>,
    pending: Vec<Pending>,
    /// Every acknowledged write request: (ids it touched, whether it is a deletion).
    pub requests: Vec<(Vec<String>, bool)>,
    pub task_timeout: Duration,
    /// Filler bytes per document.
    pub pad: usize,
}

impl Writer {
    pub fn new(index: &str, vias: Vec<Api>) -> Writer {
        Writer {
            index: index.to_string(),
            vias,
            next: 0,
            book: Arc::new(Mutex::new(Book::default())),
            pending: Vec::new(),
            requests: Vec::new(),
            task_timeout: Duration::from_secs(env_u64("MIROIR_CONSISTENCY_TASK_SECS", 300)),
            pad: 0,
        }
    }

    fn via(&mut self) -> usize {
        let i = self.next % self.vias.len();
        self.next += 1;
        i
    }

    /// Creates the index (primary key `id`) with `v` filterable, and waits for both.
    pub async fn create_index(&mut self) {
        let i = self.via();
        let api = self.vias[i].clone();
        let a = api.post("/indexes", &json!({"uid": self.index, "primaryKey": "id"})).await;
        assert_eq!(a.status, 202, "create index: {}", a.body);
        let t = api.wait_task(a.body["taskUid"].as_u64().unwrap(), self.task_timeout).await;
        assert_eq!(t["status"], "succeeded", "{t}");
        let a = api
            .send(reqwest::Method::PATCH, &format!("/indexes/{}/settings", self.index), Some(&json!({"filterableAttributes": ["v", "bucket"]})))
            .await;
        assert_eq!(a.status, 202, "settings: {}", a.body);
        let t = api.wait_task(a.body["taskUid"].as_u64().unwrap(), self.task_timeout).await;
        assert_eq!(t["status"], "succeeded", "{t}");
    }

    /// One request adding (or replacing) documents `ids` at version `v`; must be acknowledged.
    pub async fn upsert(&mut self, ids: Range<u64>, v: u64) {
        let docs: Vec<Value> = ids.clone().map(|i| doc(i, v, self.pad)).collect();
        {
            let mut b = self.book.lock().unwrap();
            b.quiet = false;
            b.sent.extend(ids.clone().map(|i| i.to_string()));
        }
        let i = self.via();
        let a = self.vias[i].post(&format!("/indexes/{}/documents", self.index), &Value::Array(docs)).await;
        if a.status != 202 {
            let views = self.vias[i].get("/_miroir/topology").await;
            panic!("write of ids {ids:?} (v{v}) through {} was not acknowledged: {} {}; its topology then: {}", self.vias[i].base, a.status, a.body, views.body["nodes"]);
        }
        let upserts: Vec<(String, u64)> = ids.map(|i| (i.to_string(), v)).collect();
        {
            let mut b = self.book.lock().unwrap();
            b.quiet = false;
            for (id, v) in &upserts {
                b.acked.insert(id.clone(), *v);
            }
        }
        self.requests.push((upserts.iter().map(|(id, _)| id.clone()).collect(), false));
        self.pending.push(Pending { via: i, task_uid: a.body["taskUid"].as_u64().unwrap(), upserts, deletes: vec![] });
    }

    /// `ids` in requests of `batch` documents at version `v`.
    pub async fn upsert_batches(&mut self, ids: Range<u64>, batch: u64, v: u64) {
        let mut from = ids.start;
        while from < ids.end {
            let to = (from + batch).min(ids.end);
            self.upsert(from..to, v).await;
            from = to;
        }
    }

    /// One `delete-batch` request; must be acknowledged. Deleted ids are never written again.
    pub async fn delete(&mut self, ids: &[u64]) {
        let i = self.via();
        let body = Value::Array(ids.iter().map(|i| json!(i)).collect());
        let a = self.vias[i].post(&format!("/indexes/{}/documents/delete-batch", self.index), &body).await;
        if a.status != 202 {
            let views = self.vias[i].get("/_miroir/topology").await;
            panic!("delete of {ids:?} through {} was not acknowledged: {} {}; its topology then: {}", self.vias[i].base, a.status, a.body, views.body["nodes"]);
        }
        let deletes: Vec<String> = ids.iter().map(u64::to_string).collect();
        {
            let mut b = self.book.lock().unwrap();
            b.quiet = false;
            // Still in `sent` until the deletion settles: until then a count may include it.
            for id in &deletes {
                b.acked.remove(id);
            }
        }
        self.requests.push((deletes.clone(), true));
        self.pending.push(Pending { via: i, task_uid: a.body["taskUid"].as_u64().unwrap(), upserts: vec![], deletes });
    }

    /// Waits for every acknowledged write: each task must succeed. What they wrote is then
    /// what every read must see.
    pub async fn settle(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        for p in &pending {
            let t = self.vias[p.via].wait_task(p.task_uid, self.task_timeout).await;
            assert_eq!(t["status"], "succeeded", "task {} did not succeed: {t}", p.task_uid);
        }
        let mut b = self.book.lock().unwrap();
        for p in pending {
            for (id, v) in p.upserts {
                if b.settled.insert(id.clone(), v).is_none() {
                    b.settled_ids.push(id);
                }
            }
            for id in p.deletes {
                if b.settled.remove(&id).is_some() {
                    b.settled_ids.retain(|x| *x != id);
                }
                b.sent.remove(&id);
                b.deleted.insert(id);
            }
        }
        b.quiet = true;
    }

    /// The settled state (call after [`Writer::settle`]).
    pub fn acked(&self) -> Acked {
        let b = self.book.lock().unwrap();
        assert!(b.quiet && self.pending.is_empty(), "settle() first");
        Acked { docs: b.settled.clone(), deleted: b.deleted.clone() }
    }

    /// How many acknowledged write requests touched a document of `shards` (the ones a node
    /// holding those shards had to apply).
    pub fn requests_touching(&self, shards: &BTreeSet<u32>, total_shards: u32) -> usize {
        self.requests.iter().filter(|(ids, _)| ids.iter().any(|id| shards.contains(&shard_of(id, total_shards)))).count()
    }
}

/// Every acknowledged document (id → version) and every acknowledged deletion.
#[derive(Clone, Debug, Default)]
pub struct Acked {
    pub docs: BTreeMap<String, u64>,
    pub deleted: BTreeSet<String>,
}

// ---------------------------------------------------------------------------------------
// `/_miroir/topology`

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub id: String,
    pub health: String,
    pub state: String,
    pub pending_operations: u64,
    pub pending_bytes: u64,
}

impl NodeView {
    pub fn caught_up(&self) -> bool {
        self.health == "healthy" && self.state == "caught-up"
    }
}

/// The `nodes[]` of `GET /_miroir/topology`, with their health and sync state.
pub async fn node_views(miroir: &Api) -> Vec<NodeView> {
    let a = miroir.get("/_miroir/topology").await;
    assert_eq!(a.status, 200, "GET /_miroir/topology on {}: {}", miroir.base, a.body);
    parse_views(&a.body)
}

pub fn parse_views(topology: &Value) -> Vec<NodeView> {
    topology["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no nodes[] in {topology}"))
        .iter()
        .map(|n| {
            let sync = &n["sync"];
            let field = |v: &Value, what: &str| -> Value {
                if v.is_null() {
                    panic!("`/_miroir/topology` nodes[] entry has no `{what}`: {n}");
                }
                v.clone()
            };
            NodeView {
                id: n["id"].as_str().unwrap().to_string(),
                health: field(&n["health"], "health").as_str().unwrap().to_string(),
                state: field(&sync["state"], "sync.state").as_str().unwrap().to_string(),
                pending_operations: field(&sync["pendingOperations"], "sync.pendingOperations").as_u64().unwrap(),
                pending_bytes: field(&sync["pendingBytes"], "sync.pendingBytes").as_u64().unwrap(),
            }
        })
        .collect()
}

pub fn view_of<'a>(views: &'a [NodeView], id: &str) -> &'a NodeView {
    views.iter().find(|v| v.id == id).unwrap_or_else(|| panic!("node {id} not in {views:?}"))
}

/// Shards per node as Miroir routes them (`assignment` of `/_miroir/topology`).
pub async fn assignment(miroir: &Api) -> BTreeMap<String, BTreeSet<u32>> {
    let a = miroir.get("/_miroir/topology").await;
    assert_eq!(a.status, 200, "{}", a.body);
    let mut out: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for n in a.body["nodes"].as_array().unwrap() {
        out.entry(n["id"].as_str().unwrap().to_string()).or_default();
    }
    for g in a.body["assignment"].as_array().expect("assignment[]") {
        for s in g["shards"].as_array().unwrap() {
            let shard = s["shard"].as_u64().unwrap() as u32;
            for n in s["nodes"].as_array().unwrap() {
                out.entry(n.as_str().unwrap().to_string()).or_default().insert(shard);
            }
        }
    }
    out
}

/// Polls `/_miroir/topology` on every Miroir until each shows every node healthy and
/// caught up; panics after `within`, naming what it last saw. Returns how long it took and
/// every distinct (node, health, state) seen on the way, in order.
pub async fn wait_all_caught_up(miroirs: &[Api], within: Duration, flag: Option<&ReadState>) -> (Duration, Vec<(String, String, String)>) {
    let start = Instant::now();
    let mut seen: Vec<(String, String, String)> = Vec::new();
    loop {
        let mut all = true;
        let mut last = Vec::new();
        for m in miroirs {
            let views = node_views(m).await;
            for v in &views {
                let key = (v.id.clone(), v.health.clone(), v.state.clone());
                if !seen.contains(&key) {
                    seen.push(key);
                }
            }
            all &= views.iter().all(NodeView::caught_up);
            last.push(views);
        }
        if all {
            if let Some(f) = flag {
                f.caught_up.store(true, Ordering::SeqCst);
            }
            return (start.elapsed(), seen);
        }
        assert!(start.elapsed() < within, "not every node caught up within {within:?}; last seen: {last:#?}; seen on the way: {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Readers running while a node catches up.

/// What the readers share with the scenario.
#[derive(Default)]
pub struct ReadState {
    pub stop: AtomicBool,
    /// Every node was seen caught up (set by [`wait_all_caught_up`]).
    pub caught_up: AtomicBool,
    /// Set when the node under test was restarted.
    pub restarted: AtomicBool,
    pub reads: AtomicU64,
    /// Reads started after the restart and before every node was seen caught up.
    pub reads_while_catching_up: AtomicU64,
    pub stale: Mutex<Vec<String>>,
    pub stale_count: AtomicU64,
}

/// Seconds since the test's first call of this (to line reads up with other events).
pub fn test_clock() -> f64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

impl ReadState {
    fn flag(&self, what: String) {
        self.stale_count.fetch_add(1, Ordering::SeqCst);
        let mut s = self.stale.lock().unwrap();
        if s.len() < 20 {
            s.push(format!("[t={:.3}s] {what}", test_clock()));
        }
    }

    pub fn report(&self) -> String {
        format!(
            "{} reads, {} of them after the restart and before caught-up, {} stale or failed",
            self.reads.load(Ordering::SeqCst),
            self.reads_while_catching_up.load(Ordering::SeqCst),
            self.stale_count.load(Ordering::SeqCst)
        )
    }

    /// Panics when any read was stale or failed.
    pub fn assert_none_stale(&self) {
        let n = self.stale_count.load(Ordering::SeqCst);
        assert_eq!(n, 0, "{} reads during catch-up were stale or failed ({}); first ones:\n{}", n, self.report(), self.stale.lock().unwrap().join("\n"));
    }
}

/// Starts `per_miroir` reader loops on each Miroir. Each loop cycles through: a document by
/// id, a batch of ids through `documents/fetch`, a placeholder search's total, the index
/// stats' count and the document listing's total. A read is stale when it misses a settled
/// document, shows an older version than the settled one, shows a settled deletion, or
/// counts a total outside [settled, sent] (exactly settled once writes are quiet);
/// any error status or `X-Miroir-Degraded` answer counts too.
pub fn spawn_readers(miroirs: &[Api], index: &str, book: Arc<Mutex<Book>>, state: Arc<ReadState>, per_miroir: usize) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = Vec::new();
    for (mi, m) in miroirs.iter().enumerate() {
        for r in 0..per_miroir {
            let m = m.clone();
            let index = index.to_string();
            let book = book.clone();
            let state = state.clone();
            handles.push(tokio::spawn(async move {
                let mut step: u64 = (mi * 7 + r * 3) as u64;
                let mut rng = (mi as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (r as u64 + 1);
                let mut next = move || {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng
                };
                while !state.stop.load(Ordering::SeqCst) {
                    let during = state.restarted.load(Ordering::SeqCst) && !state.caught_up.load(Ordering::SeqCst);
                    if let Some(problem) = read_once(&m, &index, &book, step, &mut next).await {
                        state.flag(format!("[{} step {step}] {problem}", m.base));
                    }
                    state.reads.fetch_add(1, Ordering::SeqCst);
                    if during {
                        state.reads_while_catching_up.fetch_add(1, Ordering::SeqCst);
                    }
                    step += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }));
        }
    }
    handles
}

fn bad(a: &Answer, what: &str) -> Option<String> {
    if a.status != 200 {
        return Some(format!("{what}: status {} {}", a.status, a.body));
    }
    if let Some(d) = &a.degraded {
        return Some(format!("{what}: partial answer (X-Miroir-Degraded: {d})"));
    }
    None
}

async fn read_once(m: &Api, index: &str, book: &Mutex<Book>, step: u64, next: &mut impl FnMut() -> u64) -> Option<String> {
    match step % 5 {
        0 => {
            // one document by id (now and then a deleted one)
            let (id, want) = {
                let b = book.lock().unwrap();
                if step % 4 == 0 && !b.deleted.is_empty() {
                    let d: Vec<&String> = b.deleted.iter().collect();
                    (d[(next() % d.len() as u64) as usize].clone(), None)
                } else if b.settled_ids.is_empty() {
                    return None;
                } else {
                    let id = b.settled_ids[(next() % b.settled_ids.len() as u64) as usize].clone();
                    let v = b.settled[&id];
                    (id, Some(v))
                }
            };
            let a = m.get(&format!("/indexes/{index}/documents/{id}?fields=id,v")).await;
            match want {
                None if a.status == 404 => None,
                None => Some(format!("deleted document {id}: status {} {}", a.status, a.body)),
                Some(v) => {
                    if let Some(p) = bad(&a, &format!("document {id}")) {
                        return Some(p);
                    }
                    let got = a.body["v"].as_u64().unwrap_or(0);
                    (got < v).then(|| format!("document {id}: version {got}, but version {v} was acknowledged and succeeded"))
                }
            }
        }
        1 => {
            // a batch of ids through documents/fetch
            let want: Vec<(String, u64)> = {
                let b = book.lock().unwrap();
                if b.settled_ids.is_empty() {
                    return None;
                }
                (0..25)
                    .map(|_| {
                        let id = b.settled_ids[(next() % b.settled_ids.len() as u64) as usize].clone();
                        let v = b.settled[&id];
                        (id, v)
                    })
                    .collect()
            };
            let ids: BTreeSet<&String> = want.iter().map(|(id, _)| id).collect();
            let a = m.post(&format!("/indexes/{index}/documents/fetch"), &json!({"ids": ids, "fields": ["id", "v"], "limit": 100})).await;
            if let Some(p) = bad(&a, "documents/fetch by ids") {
                return Some(p);
            }
            let got: BTreeMap<String, u64> = a.body["results"]
                .as_array()
                .map(|r| r.iter().map(|d| (canonical_pk(&d["id"]).unwrap_or_default(), d["v"].as_u64().unwrap_or(0))).collect())
                .unwrap_or_default();
            for (id, v) in &want {
                match got.get(id) {
                    None => return Some(format!("documents/fetch by ids: {id} missing (version {v} acknowledged and succeeded)")),
                    Some(g) if g < v => return Some(format!("documents/fetch by ids: {id} at version {g}, {v} acknowledged and succeeded")),
                    _ => {}
                }
            }
            None
        }
        k => {
            // a count: placeholder search, index stats, document listing
            let (lo, quiet_before) = {
                let b = book.lock().unwrap();
                (b.settled.len() as u64, b.quiet)
            };
            let (what, a, count) = match k {
                2 => {
                    let a = m.post(&format!("/indexes/{index}/search"), &json!({"q": "", "limit": 0})).await;
                    let c = a.body["estimatedTotalHits"].as_u64();
                    ("placeholder search estimatedTotalHits", a, c)
                }
                3 => {
                    let a = m.get(&format!("/indexes/{index}/stats")).await;
                    let c = a.body["numberOfDocuments"].as_u64();
                    ("stats numberOfDocuments", a, c)
                }
                _ => {
                    let a = m.get(&format!("/indexes/{index}/documents?limit=0")).await;
                    let c = a.body["total"].as_u64();
                    ("documents listing total", a, c)
                }
            };
            if let Some(p) = bad(&a, what) {
                return Some(p);
            }
            let Some(count) = count else { return Some(format!("{what}: no count in {}", a.body)) };
            let (hi, quiet_after) = {
                let b = book.lock().unwrap();
                (b.sent.len().max(b.settled.len()) as u64, b.quiet)
            };
            if quiet_before && quiet_after {
                (count != lo).then(|| format!("{what}: {count}, but exactly {lo} documents are acknowledged (writes stopped)"))
            } else {
                (count < lo || count > hi).then(|| format!("{what}: {count}, outside [{lo} settled, {hi} sent]"))
            }
        }
    }
}

/// Stops the readers and waits for them.
pub async fn stop_readers(state: &ReadState, handles: Vec<tokio::task::JoinHandle<()>>) {
    state.stop.store(true, Ordering::SeqCst);
    for h in handles {
        h.await.expect("reader task panicked");
    }
}

/// Waits until the readers have done at least `n` reads in all.
pub async fn wait_reads(state: &ReadState, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while state.reads.load(Ordering::SeqCst) < n {
        assert!(Instant::now() < deadline, "readers made no progress: {}", state.report());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------
// The final check.

/// Where the final check reads: Miroir(s) and the nodes behind them (id, direct client).
pub struct Fleet {
    pub miroirs: Vec<Api>,
    pub nodes: Vec<(String, Api)>,
}

impl Fleet {
    pub fn new(miroirs: Vec<Api>, nodes: &[Node]) -> Fleet {
        Fleet { miroirs, nodes: nodes.iter().map(|n| (n.id.clone(), Api::node(n.url.clone()))).collect() }
    }

    pub fn of_cluster(cluster: &crate::common::Cluster) -> Fleet {
        Fleet::new(vec![Api::miroir(cluster.url())], &cluster.nodes)
    }
}

fn sample_ids(acked: &Acked, n: usize) -> Vec<String> {
    let all: Vec<&String> = acked.docs.keys().collect();
    if all.len() <= n {
        return all.into_iter().cloned().collect();
    }
    let step = all.len() as f64 / n as f64;
    (0..n).map(|i| all[(i as f64 * step) as usize].clone()).collect()
}

fn sample<T: std::fmt::Debug>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<T> = items.into_iter().take(8).collect();
    format!("{v:?}")
}

/// Every acknowledged document is read back, at its acknowledged version, on every read path
/// of every Miroir (each id asked twice, so that both replica groups answer under
/// round-robin), counts are exact, and each node holds, for each shard Miroir assigns it,
/// exactly the acknowledged documents of that shard and nothing else.
pub async fn assert_exactly_acknowledged(fleet: &Fleet, index: &str, acked: &Acked) {
    let live = acked.docs.len() as u64;
    let mut failures: Vec<String> = Vec::new();

    for m in &fleet.miroirs {
        // 1. GET /documents/{id}: a sample of ≥ 1,000 ids (all when fewer), twice each, and
        // every deleted id.
        let ids = sample_ids(acked, 1000);
        let asks: Vec<(String, Option<u64>)> = ids
            .iter()
            .chain(ids.iter())
            .map(|id| (id.clone(), Some(acked.docs[id])))
            .chain(acked.deleted.iter().map(|id| (id.clone(), None)))
            .collect();
        let wrong: Vec<String> = futures::stream::iter(asks)
            .map(|(id, want)| async move {
                let a = m.get(&format!("/indexes/{index}/documents/{id}")).await;
                match want {
                    None => (a.status != 404).then(|| format!("deleted {id}: {} {}", a.status, a.body)),
                    Some(v) => {
                        if a.status != 200 || a.degraded.is_some() {
                            Some(format!("{id}: {} {} {:?}", a.status, a.body, a.degraded))
                        } else if a.body["v"].as_u64() != Some(v) || canonical_pk(&a.body["id"]).as_deref() != Some(id.as_str()) {
                            Some(format!("{id}: got {}, want version {v}", a.body))
                        } else if a.body.get("_miroir_shard").is_some() {
                            Some(format!("{id}: the shard field leaked: {}", a.body))
                        } else {
                            None
                        }
                    }
                }
            })
            .buffer_unordered(8)
            .filter_map(|x| async move { x })
            .collect()
            .await;
        if !wrong.is_empty() {
            failures.push(format!("{}: GET /documents/{{id}}: {} wrong answers, e.g. {}", m.base, wrong.len(), sample(&wrong)));
        }

        // 2. POST /documents/fetch with every id, in batches of 1,000, twice (deleted ids
        // asked too: they must not come back).
        let mut all: Vec<String> = acked.docs.keys().cloned().collect();
        all.extend(acked.deleted.iter().cloned());
        for round in 0..2 {
            let mut missing = Vec::new();
            let mut wrong_version = Vec::new();
            let mut unexpected = Vec::new();
            for chunk in all.chunks(1000) {
                let a = m.post(&format!("/indexes/{index}/documents/fetch"), &json!({"ids": chunk, "fields": ["id", "v"], "limit": chunk.len()})).await;
                if a.status != 200 || a.degraded.is_some() {
                    failures.push(format!("{}: documents/fetch by ids: {} {} {:?}", m.base, a.status, a.body, a.degraded));
                    continue;
                }
                let got: BTreeMap<String, u64> = a.body["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| (canonical_pk(&d["id"]).unwrap(), d["v"].as_u64().unwrap_or(0)))
                    .collect();
                for id in chunk {
                    match (acked.docs.get(id), got.get(id)) {
                        (Some(_), None) => missing.push(id.clone()),
                        (Some(w), Some(g)) if w != g => wrong_version.push(format!("{id}: v{g} want v{w}")),
                        (None, Some(_)) => unexpected.push(id.clone()),
                        _ => {}
                    }
                }
            }
            if !(missing.is_empty() && wrong_version.is_empty() && unexpected.is_empty()) {
                failures.push(format!(
                    "{}: documents/fetch by ids (round {round}): {} missing (e.g. {}), {} at a wrong version (e.g. {}), {} deleted ones returned (e.g. {})",
                    m.base,
                    missing.len(),
                    sample(&missing),
                    wrong_version.len(),
                    sample(&wrong_version),
                    unexpected.len(),
                    sample(&unexpected)
                ));
            }
        }

        // 3. Placeholder search: the same exact total on 12 consecutive searches; per
        // version, a filtered count.
        let mut totals = Vec::new();
        for _ in 0..12 {
            let a = m.post(&format!("/indexes/{index}/search"), &json!({"q": "", "limit": 1})).await;
            totals.push((a.status, a.body["estimatedTotalHits"].as_u64(), a.degraded.clone()));
        }
        if totals.iter().any(|t| *t != (200, Some(live), None)) {
            failures.push(format!("{}: placeholder search totals {totals:?}, want {live} every time", m.base));
        }
        let mut per_version: BTreeMap<u64, u64> = BTreeMap::new();
        for v in acked.docs.values() {
            *per_version.entry(*v).or_default() += 1;
        }
        for (v, n) in &per_version {
            let a = m.post(&format!("/indexes/{index}/search"), &json!({"q": "", "limit": 0, "filter": format!("v = {v}")})).await;
            if a.status != 200 || a.body["estimatedTotalHits"].as_u64() != Some(*n) {
                failures.push(format!("{}: search `v = {v}`: {} {}, want {n} hits", m.base, a.status, a.body["estimatedTotalHits"]));
            }
        }

        // 4. Index stats and the document listing.
        let a = m.get(&format!("/indexes/{index}/stats")).await;
        if a.status != 200 || a.body["numberOfDocuments"].as_u64() != Some(live) {
            failures.push(format!("{}: stats: {} {}, want numberOfDocuments {live}", m.base, a.status, a.body));
        }
        let a = m.get(&format!("/indexes/{index}/documents?limit=0")).await;
        if a.status != 200 || a.body["total"].as_u64() != Some(live) {
            failures.push(format!("{}: documents listing: {} {}, want total {live}", m.base, a.status, a.body));
        }
    }

    // 5. Straight on each node: per held shard, exactly the acknowledged ids (and versions);
    // nothing of any other shard; the same settings everywhere.
    let miroir = &fleet.miroirs[0];
    let routing = assignment(miroir).await;
    let shards = {
        let a = miroir.get("/_miroir/topology").await;
        a.body["shards"].as_u64().unwrap() as u32
    };
    let mut expected_by_shard: BTreeMap<u32, BTreeMap<String, u64>> = BTreeMap::new();
    for (id, v) in &acked.docs {
        expected_by_shard.entry(shard_of(id, shards)).or_default().insert(id.clone(), *v);
    }
    let mut settings: Vec<(String, Value)> = Vec::new();
    for (node_id, node) in &fleet.nodes {
        let held = routing.get(node_id).cloned().unwrap_or_default();
        let a = node.get(&format!("/indexes/{index}")).await;
        if a.status != 200 || a.body["primaryKey"] != "id" {
            failures.push(format!("node {node_id}: GET /indexes/{index}: {} {}", a.status, a.body));
            continue;
        }
        let s = node.get(&format!("/indexes/{index}/settings")).await;
        settings.push((node_id.clone(), s.body));
        let mut held_total = 0u64;
        for s in &held {
            let want = expected_by_shard.get(s).cloned().unwrap_or_default();
            held_total += want.len() as u64;
            let mut got: BTreeMap<String, u64> = BTreeMap::new();
            let mut offset = 0u64;
            loop {
                let a = node
                    .post(
                        &format!("/indexes/{index}/documents/fetch"),
                        &json!({"filter": format!("_miroir_shard = {s}"), "fields": ["id", "v"], "offset": offset, "limit": 1000}),
                    )
                    .await;
                if a.status != 200 {
                    failures.push(format!("node {node_id}: fetch of shard {s}: {} {}", a.status, a.body));
                    break;
                }
                let results = a.body["results"].as_array().unwrap();
                for d in results {
                    got.insert(canonical_pk(&d["id"]).unwrap(), d["v"].as_u64().unwrap_or(0));
                }
                offset += results.len() as u64;
                if results.is_empty() || offset >= a.body["total"].as_u64().unwrap_or(0) {
                    break;
                }
            }
            if got != want {
                let missing: Vec<&String> = want.keys().filter(|k| !got.contains_key(*k)).collect();
                let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
                let stale: Vec<String> = want
                    .iter()
                    .filter_map(|(k, v)| got.get(k).filter(|g| *g != v).map(|g| format!("{k}: v{g} want v{v}")))
                    .collect();
                failures.push(format!(
                    "node {node_id} shard {s}: holds {} documents, want {}: {} missing (e.g. {}), {} extra (e.g. {}), {} at a wrong version (e.g. {})",
                    got.len(),
                    want.len(),
                    missing.len(),
                    sample(&missing),
                    extra.len(),
                    sample(&extra),
                    stale.len(),
                    sample(&stale)
                ));
            }
        }
        let a = node.get(&format!("/indexes/{index}/stats")).await;
        let total = a.body["numberOfDocuments"].as_u64();
        if total != Some(held_total) {
            failures.push(format!("node {node_id}: {total:?} documents in all, want {held_total} (the acknowledged ones of its shards {held:?})"));
        }
        if held.len() < shards as usize {
            let list: Vec<String> = held.iter().map(u32::to_string).collect();
            let a = node
                .post(&format!("/indexes/{index}/documents/fetch"), &json!({"filter": format!("_miroir_shard NOT IN [{}]", list.join(", ")), "limit": 5}))
                .await;
            if a.status != 200 || a.body["total"].as_u64() != Some(0) {
                failures.push(format!("node {node_id}: documents of shards it does not hold: {} {}", a.status, a.body));
            }
        }
    }
    if let Some((first, s0)) = settings.first() {
        for (id, s) in &settings[1..] {
            if s != s0 {
                failures.push(format!("node {id} settings differ from node {first}'s: {s} vs {s0}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} acknowledged documents: {} problems:\n{}", index, live, failures.len(), failures.join("\n"));
}

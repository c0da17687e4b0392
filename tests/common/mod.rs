//! Test harness: a cluster of Meilisearch nodes plus Miroir, on ephemeral ports.
//!
//! Nodes come from one seam, [`Node::start`], real Meilisearch first (see [`engine`]):
//! `MEILI_BIN`, else `meilisearch` on `PATH`, else the official Docker image where a Docker
//! engine answers, else the in-repo test node. Every test written against this harness must
//! pass on real Meilisearch.
#![allow(dead_code)]

pub mod engine;
pub mod raw_http;
pub mod recorder;
pub mod ties;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use miroir::config::{HealthConfig, Keys, ScatterConfig, Secret, TaskStoreConfig};
use miroir::dataplane::server::{self, ServerHandle};
use miroir::dataplane::topology::{NodeSpec, Topology};
use miroir::dataplane::{Proxy, ProxyOptions};
use serde_json::Value;

#[allow(unused_imports)]
pub use miroir_testnode::corpus;

pub use engine::{engine, Engine};

pub const MASTER_KEY: &str = "miroir-test-master-key";
pub const NODE_KEY: &str = "node-test-master-key";
pub const ADMIN_KEY: &str = "miroir-test-admin-key";

enum NodeKind {
    TestNode(miroir_testnode::TestNode),
    Process { child: Option<tokio::process::Child>, bin: PathBuf, port: u16, dir: tempfile::TempDir, key: Option<String> },
    Docker { container: Option<testcontainers::ContainerAsync<testcontainers::GenericImage>>, port: u16, key: Option<String> },
}

/// One Meilisearch node.
pub struct Node {
    pub id: String,
    pub url: String,
    kind: NodeKind,
    /// The test node's dump and snapshot directories (`dumps/`, `snapshots/`).
    scratch: Option<tempfile::TempDir>,
}

pub async fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

async fn wait_healthy(url: &str) {
    let http = reqwest::Client::new();
    for _ in 0..1200 {
        if let Ok(r) = http.get(format!("{url}/health")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("node {url} did not become healthy");
}

fn spawn_meilisearch(bin: &PathBuf, port: u16, dir: &std::path::Path, key: Option<&str>) -> tokio::process::Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("meilisearch.log")).expect("node log file");
    tokio::process::Command::new(bin)
        .args(engine::meilisearch_args(port, &dir.join("data.ms"), key))
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start meilisearch `{}`: {e}", bin.display()))
}

async fn start_container(port: u16, key: Option<&str>) -> testcontainers::ContainerAsync<testcontainers::GenericImage> {
    use testcontainers::core::{ContainerPort, WaitFor};
    use testcontainers::runners::AsyncRunner;
    use testcontainers::{GenericImage, ImageExt};
    let (name, tag) = engine::MEILISEARCH_IMAGE;
    let mut image = GenericImage::new(name, tag)
        .with_exposed_port(ContainerPort::Tcp(7700))
        .with_wait_for(WaitFor::message_on_stderr("Server listening on"))
        .with_env_var("MEILI_NO_ANALYTICS", "true")
        .with_env_var("MEILI_ENV", "development")
        .with_env_var("MEILI_MAX_INDEXING_THREADS", "1")
        .with_mapped_port(port, ContainerPort::Tcp(7700));
    if let Some(k) = key {
        image = image.with_env_var("MEILI_MASTER_KEY", k);
    }
    image.start().await.expect("start the Meilisearch container")
}

impl Node {
    /// A node requiring [`NODE_KEY`].
    pub async fn start(id: &str) -> Node {
        Self::start_with_key(id, Some(NODE_KEY)).await
    }

    /// A node with the given master key (`None`: an open node, as Meilisearch without one).
    pub async fn start_with_key(id: &str, key: Option<&str>) -> Node {
        let key = key.map(str::to_string);
        match engine() {
            Engine::Binary { path, .. } => {
                let port = free_port().await;
                let dir = tempfile::tempdir().unwrap();
                let child = spawn_meilisearch(path, port, dir.path(), key.as_deref());
                let url = format!("http://127.0.0.1:{port}");
                wait_healthy(&url).await;
                Node { id: id.into(), url, kind: NodeKind::Process { child: Some(child), bin: path.clone(), port, dir, key }, scratch: None }
            }
            Engine::Docker => {
                let port = free_port().await;
                let container = start_container(port, key.as_deref()).await;
                let url = format!("http://127.0.0.1:{port}");
                wait_healthy(&url).await;
                Node { id: id.into(), url, kind: NodeKind::Docker { container: Some(container), port, key }, scratch: None }
            }
            Engine::TestNode => Self::start_test_node(id, key, None).await,
        }
    }

    async fn start_test_node(id: &str, key: Option<String>, import_dump: Option<&std::path::Path>) -> Node {
        let scratch = tempfile::tempdir().unwrap();
        let options = miroir_testnode::Options {
            master_key: key,
            dump_dir: Some(scratch.path().join("dumps")),
            snapshot_dir: Some(scratch.path().join("snapshots")),
            import_dump: import_dump.map(std::path::Path::to_path_buf),
        };
        let n = miroir_testnode::TestNode::start_with(0, options).await.expect("start test node");
        let url = n.url();
        Node { id: id.into(), url, kind: NodeKind::TestNode(n), scratch: Some(scratch) }
    }

    /// A node requiring `key`, started from a dump file another node wrote
    /// (`--import-dump`). `None` where the engine cannot (Docker: the file is in a container).
    pub async fn start_from_dump(id: &str, key: Option<&str>, dump: &std::path::Path) -> Option<Node> {
        let key = key.map(str::to_string);
        match engine() {
            Engine::Binary { path, .. } => {
                let port = free_port().await;
                let dir = tempfile::tempdir().unwrap();
                let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.path().join("meilisearch.log")).expect("node log file");
                let mut args = engine::meilisearch_args(port, &dir.path().join("data.ms"), key.as_deref());
                args.push("--import-dump".into());
                args.push(dump.into());
                let child = tokio::process::Command::new(path)
                    .args(args)
                    .current_dir(dir.path())
                    .stdout(std::process::Stdio::null())
                    .stderr(log)
                    .kill_on_drop(true)
                    .spawn()
                    .expect("start meilisearch --import-dump");
                let url = format!("http://127.0.0.1:{port}");
                wait_healthy(&url).await;
                Some(Node { id: id.into(), url, kind: NodeKind::Process { child: Some(child), bin: path.clone(), port, dir, key }, scratch: None })
            }
            Engine::Docker => None,
            Engine::TestNode => Some(Self::start_test_node(id, key, Some(dump)).await),
        }
    }

    /// Where this node wrote the dump `dump_uid` (its dump directory), if the file is reachable
    /// from the tests (not in a container).
    pub fn dump_file(&self, dump_uid: &str) -> Option<PathBuf> {
        let dumps = match (&self.kind, &self.scratch) {
            (NodeKind::TestNode(_), Some(s)) => s.path().join("dumps"),
            (NodeKind::Process { dir, .. }, _) => dir.path().join("dumps"),
            _ => return None,
        };
        Some(dumps.join(format!("{dump_uid}.dump")))
    }

    /// This node's snapshot directory, if reachable from the tests.
    pub fn snapshot_dir(&self) -> Option<PathBuf> {
        match (&self.kind, &self.scratch) {
            (NodeKind::TestNode(_), Some(s)) => Some(s.path().join("snapshots")),
            (NodeKind::Process { dir, .. }, _) => Some(dir.path().join("snapshots")),
            _ => None,
        }
    }

    /// Kills the node as `kill -9` would: connections are refused at once; what the node had
    /// written to its data dir is kept.
    pub async fn kill(&mut self) {
        match &mut self.kind {
            NodeKind::TestNode(n) => n.stop().await,
            NodeKind::Process { child, .. } => {
                if let Some(mut c) = child.take() {
                    let _ = c.kill().await; // SIGKILL
                }
            }
            NodeKind::Docker { container, .. } => {
                if let Some(c) = container.as_ref() {
                    c.stop().await.expect("stop the container");
                }
            }
        }
    }

    /// Same as [`Node::kill`].
    pub async fn stop(&mut self) {
        self.kill().await
    }

    /// Starts the node again on the same address with the data it had.
    pub async fn restart(&mut self) {
        match &mut self.kind {
            NodeKind::TestNode(n) => n.restart().await.expect("restart test node"),
            NodeKind::Process { child, bin, port, dir, key } => {
                *child = Some(spawn_meilisearch(bin, *port, dir.path(), key.as_deref()));
            }
            NodeKind::Docker { container, .. } => {
                if let Some(c) = container.as_ref() {
                    c.start().await.expect("start the container again");
                }
            }
        }
        wait_healthy(&self.url).await;
    }

    /// Kills the node and loses its data dir (a replaced node); [`Node::restart`] then brings
    /// up an empty node on the same address.
    pub async fn wipe(&mut self) {
        self.kill().await;
        match &mut self.kind {
            NodeKind::TestNode(n) => n.wipe(),
            NodeKind::Process { dir, .. } => {
                let data = dir.path().join("data.ms");
                if data.exists() {
                    std::fs::remove_dir_all(&data).expect("remove the data dir");
                }
            }
            NodeKind::Docker { container, port, key } => {
                // a fresh container on the same host port has an empty data dir
                if let Some(c) = container.take() {
                    let _ = c.rm().await;
                }
                *container = Some(start_container(*port, key.as_deref()).await);
                container.as_ref().unwrap().stop().await.expect("stop the fresh container");
            }
        }
    }

    /// Whether this node is a real Meilisearch.
    pub fn is_real(&self) -> bool {
        !matches!(self.kind, NodeKind::TestNode(_))
    }
}

/// Shape of a test cluster.
#[derive(Clone, Debug)]
pub struct Spec {
    pub shards: u32,
    pub replication_factor: u32,
    /// Number of nodes in each replica group.
    pub groups: Vec<usize>,
}

impl Spec {
    pub fn rf1_3_nodes() -> Spec {
        Spec { shards: 16, replication_factor: 1, groups: vec![3] }
    }
    pub fn rg2_rf2_4_nodes() -> Spec {
        Spec { shards: 16, replication_factor: 2, groups: vec![2, 2] }
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    pub topology: Topology,
    pub proxy: Proxy,
    server: Option<ServerHandle>,
    addr: SocketAddr,
    db_dir: tempfile::TempDir,
}

pub fn test_options() -> ProxyOptions {
    ProxyOptions {
        keys: Keys {
            master_key: Secret(Some(MASTER_KEY.into())),
            node_master_key: Secret(Some(NODE_KEY.into())),
            admin_api_key: Secret(Some(ADMIN_KEY.into())),
        },
        health: HealthConfig { interval_ms: 100, timeout_ms: 2000, unhealthy_threshold: 3, recovery_threshold: 1 },
        scatter: ScatterConfig { node_timeout_ms: 10_000, ..ScatterConfig::default() },
        max_body_bytes: 100 * 1024 * 1024,
        replication: Default::default(),
        rebalance: miroir::config::RebalanceConfig { poll_interval_ms: 100, cutover_grace_ms: 300, ..Default::default() },
    }
}

async fn open_store(dir: &std::path::Path) -> Arc<dyn miroir::store::TaskStore> {
    let cfg = TaskStoreConfig { path: dir.join("miroir.db"), ..TaskStoreConfig::default() };
    miroir::store::open(&cfg).await.expect("open sqlite store")
}

/// Waits until Miroir lets every node of the topology answer reads (healthy and caught up: a
/// process that just started checks each node first), panicking after 20 s. Nodes refusing
/// Miroir's node master key, and nodes that are down, are not waited for.
pub async fn wait_serving(proxy: &Proxy, topology: &Topology) {
    // A node refusing Miroir's node master key never will (tests of that case start such nodes).
    let refuses = |id: &str| {
        proxy.node_health().iter().any(|(n, h)| n == id && h.state == miroir::dataplane::health::NodeState::Unauthorized)
    };
    // Nor a node that is down (a test may restart Miroir while one is).
    let down = |address: String| async move {
        let http = reqwest::Client::builder().timeout(Duration::from_millis(500)).build().unwrap();
        // With the node key, as Miroir talks to nodes (tests record what nodes see).
        !http.get(format!("{address}/health")).bearer_auth(NODE_KEY).send().await.is_ok_and(|r| r.status().is_success())
    };
    let started = std::time::Instant::now();
    loop {
        let mut behind: Vec<&str> = Vec::new();
        for n in &topology.nodes {
            if !proxy.serves_reads(&n.id) && !refuses(&n.id) && !down(n.address.clone()).await {
                behind.push(&n.id);
            }
        }
        if behind.is_empty() {
            return;
        }
        if started.elapsed() > Duration::from_secs(20) {
            panic!("nodes {behind:?} do not serve reads 20 s after Miroir started: {:?}", proxy.node_sync());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the nodes of `spec` (ids `g{g}-n{i}`) and the topology reaching each at `address(node)`.
pub async fn start_nodes_addressed<F, Fut>(spec: &Spec, address: F) -> (Vec<Node>, Topology)
where
    F: Fn(&Node) -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let mut nodes = Vec::new();
    let mut specs = Vec::new();
    for (g, size) in spec.groups.iter().enumerate() {
        for i in 0..*size {
            let id = format!("g{g}-n{i}");
            let node = Node::start(&id).await;
            specs.push(NodeSpec { id: id.clone(), address: address(&node).await, replica_group: g as u32 });
            nodes.push(node);
        }
    }
    let topology =
        Topology { shards: spec.shards, replication_factor: spec.replication_factor, replica_groups: spec.groups.len() as u32, nodes: specs };
    (nodes, topology)
}

impl Cluster {
    pub async fn start(spec: Spec) -> Cluster {
        Self::start_with(spec, test_options()).await
    }

    pub async fn start_with(spec: Spec, options: ProxyOptions) -> Cluster {
        Self::start_addressed(spec, options, |n| std::future::ready(n.url.clone())).await
    }

    /// Like [`Cluster::start_with`], with Miroir reaching each node at `address(node)` (e.g. a
    /// recording proxy in front of it).
    pub async fn start_addressed<F, Fut>(spec: Spec, options: ProxyOptions, address: F) -> Cluster
    where
        F: Fn(&Node) -> Fut,
        Fut: std::future::Future<Output = String>,
    {
        let (nodes, topology) = start_nodes_addressed(&spec, address).await;
        let db_dir = tempfile::tempdir().unwrap();
        let store = open_store(db_dir.path()).await;
        let proxy = Proxy::new(options, store);
        proxy.apply_topology(topology.clone()).expect("valid topology");
        let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = server::spawn(proxy.clone(), listener);
        wait_serving(&proxy, &topology).await;
        Cluster { nodes, topology, proxy, server: Some(server), addr, db_dir }
    }

    /// Miroir (in process, fresh SQLite store) in front of nodes already started.
    pub async fn start_on_nodes(nodes: Vec<Node>, topology: Topology, options: ProxyOptions) -> Cluster {
        let db_dir = tempfile::tempdir().unwrap();
        let store = open_store(db_dir.path()).await;
        let proxy = Proxy::new(options, store);
        proxy.apply_topology(topology.clone()).expect("valid topology");
        let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = server::spawn(proxy.clone(), listener);
        wait_serving(&proxy, &topology).await;
        Cluster { nodes, topology, proxy, server: Some(server), addr, db_dir }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The official Meilisearch Rust SDK, pointed at Miroir.
    pub fn sdk(&self) -> meilisearch_sdk::client::Client {
        meilisearch_sdk::client::Client::new(self.url(), Some(MASTER_KEY)).unwrap()
    }

    /// Raw HTTP to Miroir with the master key.
    pub fn http(&self) -> Http {
        Http { base: self.url(), key: Some(MASTER_KEY.to_string()) }
    }

    /// Raw HTTP straight to node `i`, bypassing Miroir.
    pub fn node_http(&self, i: usize) -> Http {
        Http { base: self.nodes[i].url.clone(), key: Some(NODE_KEY.to_string()) }
    }

    /// Stops Miroir and starts a new process-equivalent on the same port and store file.
    pub async fn restart_miroir(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        let store = open_store(self.db_dir.path()).await;
        let proxy = Proxy::new(self.proxy.options(), store);
        proxy.apply_topology(self.topology.clone()).unwrap();
        let listener = server::bind(self.addr).await.unwrap();
        self.server = Some(server::spawn(proxy.clone(), listener));
        wait_serving(&proxy, &self.topology).await;
        self.proxy = proxy;
    }

    /// Waits until Miroir reads from node `i` again: healthy and caught up.
    pub async fn wait_node_usable(&self, i: usize) {
        for _ in 0..1200 {
            let h = self.proxy.node_health();
            if h.iter().any(|(id, _)| *id == self.nodes[i].id && self.proxy.serves_reads(id)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("node {} never became usable again", self.nodes[i].id);
    }

    /// Another Miroir process in front of this cluster's nodes, on the Redis store at
    /// `url` with key prefix `prefix` (several share tasks, keys and leases that way).
    pub async fn miroir_on_redis(&self, url: &str, prefix: &str) -> (ServerHandle, Http) {
        self.miroir_on_redis_with(url, prefix, test_options()).await
    }

    /// Like [`Cluster::miroir_on_redis`], with the given options.
    pub async fn miroir_on_redis_with(&self, url: &str, prefix: &str, options: ProxyOptions) -> (ServerHandle, Http) {
        let store = miroir::store::redis::RedisStore::connect(url, prefix).await.expect("connect to redis (REDIS_URL)");
        let proxy = Proxy::new(options, Arc::new(store));
        proxy.apply_topology(self.topology.clone()).unwrap();
        let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let handle = server::spawn(proxy.clone(), listener);
        wait_serving(&proxy, &self.topology).await;
        let http = Http { base: handle.url(), key: Some(MASTER_KEY.into()) };
        (handle, http)
    }

    /// Polls a Miroir task until it is terminal and returns it.
    pub async fn wait_task(&self, uid: u64) -> Value {
        self.http().wait_task(uid).await
    }
}

/// Minimal raw HTTP client returning (status, JSON body).
#[derive(Clone)]
pub struct Http {
    pub base: String,
    pub key: Option<String>,
}

impl Http {
    pub fn without_key(&self) -> Http {
        Http { base: self.base.clone(), key: None }
    }
    pub fn with_key(&self, key: &str) -> Http {
        Http { base: self.base.clone(), key: Some(key.into()) }
    }

    pub async fn request(&self, method: reqwest::Method, path: &str, content_type: Option<&str>, body: Option<Vec<u8>>) -> (u16, reqwest::header::HeaderMap, Value) {
        let client = reqwest::Client::new();
        let mut req = client.request(method, format!("{}{}", self.base, path));
        if let Some(k) = &self.key {
            req = req.bearer_auth(k);
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into())) };
        (status, headers, body)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (s, _, b) = self.request(reqwest::Method::GET, path, None, None).await;
        (s, b)
    }

    pub async fn send_json(&self, method: reqwest::Method, path: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
        self.request(method, path, Some("application/json"), Some(serde_json::to_vec(body).unwrap())).await
    }

    /// Polls `GET /tasks/{uid}` (on a node or on Miroir) until the task is terminal.
    pub async fn wait_task(&self, uid: u64) -> Value {
        for _ in 0..2400 {
            let (status, body) = self.get(&format!("/tasks/{uid}")).await;
            assert_eq!(status, 200, "{body}");
            if matches!(body["status"].as_str(), Some("succeeded" | "failed" | "canceled")) {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("task {uid} never finished on {}", self.base);
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let (s, _, b) = self.send_json(reqwest::Method::POST, path, body).await;
        (s, b)
    }
}

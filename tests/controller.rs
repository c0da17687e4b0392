//! The real controllers against the in-process fake API server and a real SQLite task
//! store: apply → Ready; edit nodes → a migration is planned (routing switches only at its
//! cut-over), and with real nodes the data moves while the status and events follow it;
//! invalid spec → Ready=False + Warning event; delete → finalizer clears the store; mirrored
//! kinds reach their tables; two operators → one leader, failover when it stops renewing.
//!
//! The same tests run unchanged against a real API server:
//!
//! ```sh
//! MIROIR_TEST_KUBECONFIG=~/.kube/config cargo test --test controller
//! ```
//!
//! With `MIROIR_TEST_KUBECONFIG` naming a kubeconfig, [`test_api`] connects to its current
//! context instead of starting the fake, applies the CRDs (`crd::all_crds()`, server-side
//! apply, waits until they are established) and gives each test a namespace of its own
//! (`miroir-test-…`, labelled `miroir.io/test=true`), so the tests run in parallel; the
//! namespace is deleted when the test ends, pass or fail (best effort: the finalizers of
//! Miroir's kinds left in it are cleared first). A real run needs only an API server and
//! RBAC to create CRDs and namespaces (and everything within them): no controller-manager
//! and no kubelet, since the tests play the StatefulSet controller and the kubelet
//! themselves (without a controller-manager the deleted namespaces stay `Terminating`;
//! `kubectl delete ns -l miroir.io/test=true` on a full cluster). Checks use Kubernetes API
//! calls only (objects, status, `events.k8s.io` Events); what only the fake can do —
//! forcing `410 Gone` by compacting its history, counting requests in its log — runs only
//! on the fake, and on a real server the CRDs' CEL rules refuse what the fake (which runs no
//! admission) lets through to the operator, so those steps check the refusal instead.
//! The `fake_api_server_semantics` tests use API calls only: on a real server they show that
//! Kubernetes does what the fake assumes (watch bookmarks excepted: a real server sends them
//! at its own pace). Fake-only as a whole: `api_failures_are_counted_by_category_reported_and_retried`
//! (it makes the API server answer `500` to chosen requests); on a real server it prints
//! `SKIPPED on a real API server …` and returns. A test that fails while its operator still
//! runs may leave a finalizer behind, and so its namespace `Terminating`.

mod common;
#[path = "common/fake_apiserver.rs"]
mod fake_apiserver;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use fake_apiserver::FakeApiServer;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use miroir::controlplane::controller::{ControllerTiming, StartedWith, FINALIZER};
use miroir::controlplane::desired::StoreChoice;
use miroir::controlplane::crd::*;
use miroir::controlplane::leader::{lease_name, Election, LeaseTiming};
use miroir::controlplane::metrics::{ControllerMetrics, ErrorCategory};
use miroir::controlplane::operator::{OperatorConfig, RunningOperator};
use miroir::dataplane::rebalance::Phase;
use miroir::dataplane::{Proxy, ProxyOptions};
use miroir::store::sqlite::SqliteStore;
use miroir::store::{MirrorTable, TaskStore};
use serde_json::json;

/// The namespace of every test on the fake API server (a real one gives each test its own).
const NS: &str = "search";

/// Where a test runs: the in-process fake API server, or — when `MIROIR_TEST_KUBECONFIG`
/// names a kubeconfig — a real API server (see the module docs).
struct TestApi {
    client: kube::Client,
    namespace: String,
    /// The fake, when the test runs on it (for what only the fake can do).
    fake: Option<FakeApiServer>,
    /// The real server's kubeconfig.
    kubeconfig: Option<std::path::PathBuf>,
}

async fn real_client(kubeconfig: &std::path::Path) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).expect("MIROIR_TEST_KUBECONFIG: a readable kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    kube::Client::try_from(config).unwrap()
}

async fn test_api() -> TestApi {
    let Some(path) = std::env::var_os("MIROIR_TEST_KUBECONFIG") else {
        let fake = FakeApiServer::new();
        return TestApi { client: fake.client(NS), namespace: NS.into(), fake: Some(fake), kubeconfig: None };
    };
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let path = std::path::PathBuf::from(path);
    let client = real_client(&path).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in miroir::controlplane::crd::all_crds() {
        let name = crd.metadata.name.clone().unwrap();
        crds.patch(&name, &PatchParams::apply("miroir-tests").force(), &Patch::Apply(&crd)).await.unwrap();
        let established = kube::runtime::wait::await_condition(crds.clone(), &name, kube::runtime::wait::conditions::is_crd_established());
        tokio::time::timeout(PATIENCE, established).await.expect("CRD established").unwrap();
    }
    let namespace = format!("miroir-test-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace, "labels": {"miroir.io/test": "true"}}})).unwrap();
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.unwrap();
    TestApi { client, namespace, fake: None, kubeconfig: Some(path) }
}

impl TestApi {
    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Every `events.k8s.io/v1` Event about the named object in the test's namespace, as
    /// JSON (`reason`, `type`, `note`, …), read through the API.
    async fn events_about(&self, name: &str) -> Vec<serde_json::Value> {
        let events: Api<K8sEvent> = self.api();
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| serde_json::to_value(e).unwrap())
            .collect()
    }

    /// A kubeconfig for a process of its own (`miroir operator`): the fake served over HTTP
    /// (written in `dir`), or the real server's.
    async fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        match (&self.fake, &self.kubeconfig) {
            (Some(fake), _) => fake.kubeconfig(dir, &self.namespace).await,
            (None, Some(path)) => path.clone(),
            (None, None) => unreachable!("a real API server has a kubeconfig"),
        }
    }

    /// For a test that cannot run on a real API server at all: true, after saying so on
    /// stderr, when it runs on one (the test then returns).
    fn skipped_on_a_real_server(&self, test: &str, why: &str) -> bool {
        if self.fake.is_some() {
            return false;
        }
        eprintln!("SKIPPED on a real API server (MIROIR_TEST_KUBECONFIG): {test}: {why}");
        true
    }
}

async fn clear_finalizers<K>(client: &kube::Client, namespace: &str)
where
    K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let Ok(list) = api.list(&ListParams::default()).await else { return };
    for object in list.items {
        if let Some(name) = object.meta().name.as_deref() {
            let _ = api.patch(name, &PatchParams::default(), &Patch::Merge(&json!({"metadata": {"finalizers": null}}))).await;
        }
    }
}

/// On a real API server, the test's namespace is deleted when the test ends, passed or
/// failed (best effort). A thread with a runtime and a client of its own: the test's
/// runtime may be the current thread, blocked here.
impl Drop for TestApi {
    fn drop(&mut self) {
        let (None, Some(path)) = (&self.fake, self.kubeconfig.clone()) else { return };
        let namespace = self.namespace.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                use k8s_openapi::api::core::v1::Namespace;
                let client = real_client(&path).await;
                // Nothing is left for the operator (stopped) to finalize.
                clear_finalizers::<MiroirCluster>(&client, &namespace).await;
                clear_finalizers::<Alias>(&client, &namespace).await;
                clear_finalizers::<Tenant>(&client, &namespace).await;
                clear_finalizers::<Canary>(&client, &namespace).await;
                clear_finalizers::<RolloverPolicy>(&client, &namespace).await;
                if let Err(e) = Api::<Namespace>::all(client).delete(&namespace, &DeleteParams::default()).await {
                    eprintln!("could not delete the test namespace {namespace}: {e}");
                }
            })
        });
        let _ = cleanup.join();
    }
}

/// Upper bound for eventual conditions (not a speed assertion: they normally hold in ms).
const PATIENCE: Duration = Duration::from_secs(20);

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Pod {
    op: RunningOperator,
    proxy: Proxy,
    metrics: ControllerMetrics,
}

fn start_pod(t: &TestApi, store: Arc<dyn TaskStore>, cluster: &str, instance: &str) -> Pod {
    let proxy = Proxy::new(ProxyOptions::default(), store.clone());
    start_pod_with(t, store, proxy, cluster, instance)
}

fn start_pod_with(t: &TestApi, store: Arc<dyn TaskStore>, proxy: Proxy, cluster: &str, instance: &str) -> Pod {
    let metrics = ControllerMetrics::default();
    let op = RunningOperator::start(
        t.client.clone(),
        store,
        proxy.clone(),
        metrics.clone(),
        OperatorConfig {
            namespace: t.namespace.clone(),
            cluster: cluster.into(),
            instance: instance.into(),
            lease: LeaseTiming { ttl: Duration::from_millis(1500), renew_every: Duration::from_millis(100) },
            timing: ControllerTiming { requeue: Duration::from_millis(200), error_requeue: Duration::from_millis(100) },
            // As `miroir operator` does: the default SQLite store, no key Secrets.
            started_with: Some(StartedWith {
                store: StoreChoice::Sqlite { path: "/var/lib/miroir/miroir.db".into() },
                keys: KeySecretRefs::default(),
            }),
        },
    );
    Pod { op, proxy, metrics }
}

async fn sqlite(dir: &tempfile::TempDir) -> Arc<dyn TaskStore> {
    Arc::new(SqliteStore::open(dir.path().join("miroir.db")).await.unwrap())
}

fn cluster(name: &str, rf: u32, nodes: &[&str]) -> MiroirCluster {
    let spec: MiroirClusterSpec = serde_json::from_value(json!({
        "shards": 8,
        "replicationFactor": rf,
        "nodes": nodes.iter().map(|n| json!({"id": n, "address": format!("http://{n}.meili:7700")})).collect::<Vec<_>>(),
    }))
    .unwrap();
    MiroirCluster::new(name, spec)
}

async fn get(api: &Api<MiroirCluster>, name: &str) -> Option<MiroirCluster> {
    api.get_opt(name).await.unwrap()
}

fn condition<'a>(mc: &'a MiroirCluster, type_: &str) -> Option<&'a Condition> {
    mc.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_)
}

async fn wait_phase(api: &Api<MiroirCluster>, name: &str, phase: ClusterPhase, generation: i64) -> MiroirCluster {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mc = get(api, name).await;
        if let Some(mc) = &mc {
            let st = mc.status.as_ref();
            if st.and_then(|s| s.phase) == Some(phase)
                && st.and_then(|s| s.observed_generation) == Some(generation)
                && mc.metadata.generation == Some(generation)
            {
                return mc.clone();
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {name} {phase:?} at generation {generation}; last seen: {mc:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn applied_cluster_becomes_ready_and_node_edits_plan_a_migration() {
    let t = test_api().await;
    let dir = tempfile::tempdir().unwrap();
    let pod = start_pod(&t, sqlite(&dir).await, "search", "pod-a");
    let api: Api<MiroirCluster> = t.api();
    api.create(&PostParams::default(), &cluster("search", 1, &["a", "b"])).await.unwrap();

    let mc = wait_phase(&api, "search", ClusterPhase::Ready, 1).await;
    let ready = condition(&mc, "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.observed_generation), ("True", Some(1)));
    assert!(mc.metadata.finalizers.as_ref().unwrap().contains(&FINALIZER.to_string()));
    let st = mc.status.as_ref().unwrap();
    assert_eq!(st.nodes_ready.as_deref(), Some("2/2"));
    assert_eq!(st.nodes.iter().map(|n| n.shards).sum::<u32>(), 8);
    let routing = pod.proxy.routing().expect("topology applied to the proxy");
    assert_eq!(routing.topology.group_nodes(0), vec!["a", "b"]);
    assert_eq!(routing.version, 1);

    // A status that did not change is not rewritten (several requeues happen meanwhile): the
    // resourceVersion stays, and the fake's request log shows no status write at all.
    let status_writes = || {
        t.fake.as_ref().map(|fake| fake.requests().iter().filter(|r| r.starts_with("PATCH") && r.contains("/miroirclusters/search/status")).count())
    };
    let writes = status_writes();
    let rv = mc.metadata.resource_version.clone();
    let before = pod.metrics.reconcile_count("MiroirCluster");
    eventually("a few more reconciles", || async { pod.metrics.reconcile_count("MiroirCluster") >= before + 3 }).await;
    assert_eq!(status_writes(), writes, "no status write without a change");
    assert_eq!(get(&api, "search").await.unwrap().metadata.resource_version, rv);

    // Edit nodes and RF: a migration is planned, routing is not switched at once (the nodes
    // here are not reachable and no executor runs: it stays in `copying`).
    let patch = json!({"spec": {"replicationFactor": 2, "nodes": [
        {"id": "a", "address": "http://a.meili:7700"},
        {"id": "b", "address": "http://b.meili:7700"},
        {"id": "c", "address": "http://c.meili:7700"}]}});
    api.patch("search", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let mc = wait_phase(&api, "search", ClusterPhase::Rebalancing, 2).await;
    let (_, placement) = pod.proxy.load_placement().await.unwrap().expect("placement stored");
    let migration = placement.migration.clone().expect("a migration is planned");
    assert_eq!(migration.phase, Phase::Copying);
    assert_eq!(migration.cause.source, "operator");
    assert_eq!((migration.target.replication_factor, migration.target.nodes.len()), (2, 3));
    assert_eq!(migration.joining, vec!["c"]);
    let routing = pod.proxy.routing().unwrap();
    assert_eq!(routing.topology.replication_factor, 1, "reads still use the old placement");
    assert!((0..8).all(|s| routing.assignment.holders(0, s).len() == 1));
    assert!(!routing.assignment.shards_by_node().contains_key("c"), "the new node serves no read before the cut-over");
    assert!(routing.migration.is_some());
    let progressing = condition(&mc, "Progressing").unwrap();
    assert_eq!((progressing.status.as_str(), progressing.reason.as_str()), ("True", "Rebalancing"));
    assert!(progressing.message.contains("added c"), "{}", progressing.message);
    let rebalance = mc.status.as_ref().unwrap().rebalance.clone().unwrap();
    assert_eq!((rebalance.phase.as_str(), rebalance.migration.as_deref()), ("copying", Some(migration.id.as_str())));
    assert_eq!(rebalance.shards_total as usize, migration.moves.len());
    let ready = condition(&mc, "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.observed_generation), ("True", Some(2)), "reads go on meanwhile");
    eventually("RebalanceStarted event", || async {
        t.events_about("search").await.iter().any(|e| e["reason"] == "RebalanceStarted" && e["note"].as_str().is_some_and(|n| n.contains(&migration.id)))
    })
    .await;

    // A status-only write does not bump the generation.
    assert_eq!(get(&api, "search").await.unwrap().metadata.generation, Some(2));

    // The API server compacts its history and drops watches: the controller relists and
    // keeps following edits. (Only the fake can be made to do that on demand; on a real
    // server the edits are followed all the same.)
    let lists = |fake: &FakeApiServer| {
        fake.requests().iter().filter(|r| r.starts_with("GET /apis/miroir.io/v1alpha1/namespaces/search/miroirclusters?") && !r.contains("watch=true")).count()
    };
    let lists_before = t.fake.as_ref().map(lists);
    if let Some(fake) = &t.fake {
        fake.compact_and_drop_watches();
    }
    let patch = json!({"spec": {"nodes": [
        {"id": "a", "address": "http://a.meili:7700"},
        {"id": "b", "address": "http://b.meili:7700"},
        {"id": "c", "address": "http://c.meili:7700"},
        {"id": "d", "address": "http://d.meili:7700"}]}});
    api.patch("search", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    wait_phase(&api, "search", ClusterPhase::Rebalancing, 3).await;
    // One migration at a time: the change waits for the running one to end.
    let (_, placement) = pod.proxy.load_placement().await.unwrap().unwrap();
    assert!(placement.declared_pending);
    assert_eq!(placement.declared.as_ref().unwrap().nodes.len(), 4);
    assert_eq!(placement.migration.as_ref().unwrap().id, migration.id);
    eventually("RebalanceQueued event", || async { t.events_about("search").await.iter().any(|e| e["reason"] == "RebalanceQueued") }).await;
    if let Some(fake) = &t.fake {
        assert!(Some(lists(fake)) > lists_before, "the watcher relisted after 410 Gone");
    }
    pod.op.stop().await;
}

/// A MiroirCluster on real nodes (the engine seam: Meilisearch, else the in-repo test node).
fn cluster_on(nodes: &[&common::Node]) -> MiroirCluster {
    serde_json::from_value(json!({
        "apiVersion": "miroir.io/v1alpha1", "kind": "MiroirCluster", "metadata": {"name": "search"},
        "spec": {"shards": 16, "replicationFactor": 1,
                 "nodes": nodes.iter().map(|n| json!({"id": n.id, "address": n.url})).collect::<Vec<_>>(),
                 "health": {"intervalMs": 100, "timeoutMs": 2000, "recoveryThreshold": 1}}
    }))
    .unwrap()
}

/// Polls the MiroirCluster until `check` holds at `generation` (a migration takes seconds).
async fn wait_status(api: &Api<MiroirCluster>, what: &str, generation: i64, check: impl Fn(&MiroirCluster) -> bool) -> MiroirCluster {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let mc = get(api, "search").await.unwrap();
        if mc.status.as_ref().and_then(|s| s.observed_generation) == Some(generation) && check(&mc) {
            return mc;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}; last seen: {:#?}", mc.status);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn progressing_is(mc: &MiroirCluster, status: &str, reason: &str) -> bool {
    condition(mc, "Progressing").is_some_and(|c| c.status == status && c.reason == reason)
}

/// Every document is readable through Miroir: fetched by id, and counted by a search.
async fn assert_all_readable(http: &common::Http, count: usize) {
    let ids: Vec<String> = (0..count).map(|i| format!("doc-{i}")).collect();
    let (status, body) = http.post("/indexes/movies/documents/fetch", &json!({"ids": ids, "limit": count + 100})).await;
    assert_eq!(status, 200, "{body}");
    let mut got: Vec<String> = body["results"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_string()).collect();
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want, "every document, exactly once");
    let (status, body) = http.post("/indexes/movies/search", &json!({"q": "", "page": 1, "hitsPerPage": 1})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalHits"], json!(count), "{body}");
}

async fn add_documents(http: &common::Http, range: std::ops::Range<usize>) {
    let docs: Vec<_> = range.map(|i| json!({"id": format!("doc-{i}"), "title": format!("movie {i}"), "n": i})).collect();
    let (status, body) = http.post("/indexes/movies/documents", &json!(docs)).await;
    assert_eq!(status, 202, "{body}");
    let task = http.wait_task(body["taskUid"].as_u64().unwrap()).await;
    assert_eq!(task["status"], "succeeded", "{task}");
}

/// Waits until the operator planned a migration other than `previous`; checks that routing was
/// not switched to its target at once; returns its id.
async fn planned_migration(proxy: &Proxy, previous: Option<&str>, mover: &str) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        // A snapshot of routing: the migration it routes by, and where reads go meanwhile.
        let routing = proxy.routing().unwrap();
        if let Some(r) = routing.migration.as_ref().filter(|r| Some(r.id.as_str()) != previous) {
            assert!(r.phase.is_some_and(|p| !p.switched()), "not switched at once: {:?}", r.phase);
            let readers = routing.assignment.shards_by_node();
            let (_, state) = proxy.load_placement().await.unwrap().unwrap();
            let m = state.migration.or(state.last).filter(|m| m.id == r.id).expect("the stored migration");
            assert_eq!(m.cause.source, "operator");
            assert!(m.cause.description.contains(mover), "{:?}", m.cause);
            if m.joining.iter().any(|n| n == mover) {
                assert!(!readers.contains_key(mover), "a joining node serves no read before the cut-over");
            } else {
                assert!(m.leaving.iter().any(|n| n == mover), "{m:?}");
                assert!(readers.contains_key(mover), "a leaving node serves its shards until the cut-over");
            }
            return m.id;
        }
        assert!(tokio::time::Instant::now() < deadline, "no migration planned");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Nodes added and removed through `spec.nodes`: the operator declares the change, the proxy
/// moves the data in the background (routing switches only at the cut-over), the status and
/// events follow it, and every document stays readable through Miroir.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_and_removing_nodes_moves_the_data_while_status_and_events_follow() {
    let mut nodes = Vec::new();
    for i in 0..4 {
        nodes.push(common::Node::start(&format!("n{i}")).await);
    }
    let t = test_api().await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir).await;
    let mut options = common::test_options();
    // Slow enough for the migration to be watched (each shard's first page goes at once).
    options.rebalance.max_documents_per_second = 150;
    options.rebalance.max_concurrent_moves = 1;
    let proxy = Proxy::new(options, store.clone());
    // As `miroir operator` does: the controllers, and the server (API, health checker,
    // migration executor).
    let pod = start_pod_with(&t, store, proxy.clone(), "search", "pod-a");
    let listener = miroir::dataplane::server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let handle = miroir::dataplane::server::spawn(proxy.clone(), listener);
    let http = common::Http { base: handle.url(), key: Some(common::MASTER_KEY.into()) };
    let admin = http.with_key(common::ADMIN_KEY);

    let api: Api<MiroirCluster> = t.api();
    api.create(&PostParams::default(), &cluster_on(&[&nodes[0], &nodes[1], &nodes[2]])).await.unwrap();
    let mc = wait_phase(&api, "search", ClusterPhase::Ready, 1).await;
    assert!(progressing_is(&mc, "False", "Idle"), "{:?}", mc.status);
    common::wait_serving(&proxy, &proxy.routing().unwrap().topology).await;

    let (status, body) = http.post("/indexes", &json!({"uid": "movies", "primaryKey": "id"})).await;
    assert_eq!(status, 202, "{body}");
    http.wait_task(body["taskUid"].as_u64().unwrap()).await;
    let mut count = 1200;
    add_documents(&http, 0..count).await;
    assert_all_readable(&http, count).await;

    // ---- add a 4th node
    let mut spec_nodes = vec![&nodes[0], &nodes[1], &nodes[2], &nodes[3]];
    let patch = json!({"spec": cluster_on(&spec_nodes).spec});
    api.patch("search", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let added = planned_migration(&proxy, None, "n3").await;
    let (status, body) = admin.get("/_miroir/rebalance").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["migration"]["id"], json!(added), "{body}");
    let mc = wait_status(&api, "Progressing=True/Rebalancing", 2, |mc| progressing_is(mc, "True", "Rebalancing")).await;
    assert_eq!(mc.status.as_ref().unwrap().phase, Some(ClusterPhase::Rebalancing));
    let message = &condition(&mc, "Progressing").unwrap().message;
    assert!(message.contains("added n3"), "{message}");
    // Writes go on during the migration (queued for the new holder).
    add_documents(&http, count..count + 60).await;
    count += 60;
    let mc = wait_status(&api, "Progressing=False after adding n3", 2, |mc| progressing_is(mc, "False", "Idle")).await;
    let r = mc.status.as_ref().unwrap().rebalance.clone().unwrap();
    assert_eq!((r.phase.as_str(), r.migration.as_deref()), ("idle", Some(added.as_str())));
    assert!(r.shards_total > 0 && r.shards_moved == r.shards_total, "{r:?}");
    assert!(r.documents_copied > 0, "{r:?}");
    assert!(condition(&mc, "Progressing").unwrap().message.contains(&format!("last migration {added} done")));
    let routing = proxy.routing().unwrap();
    assert_eq!(routing.topology.nodes.len(), 4);
    assert!(routing.assignment.shards_by_node().contains_key("n3"), "the new node serves its shards");
    let events = |reason: &'static str, id: String| {
        let t = &t;
        async move { t.events_about("search").await.iter().any(|e| e["reason"] == reason && e["note"].as_str().is_some_and(|n| n.contains(&id))) }
    };
    eventually("RebalanceStarted (add)", || events("RebalanceStarted", added.clone())).await;
    eventually("RebalanceFinished (add)", || events("RebalanceFinished", added.clone())).await;
    assert_all_readable(&http, count).await;

    // ---- remove a node: its shards move away first
    spec_nodes.remove(1);
    let patch = json!({"spec": cluster_on(&spec_nodes).spec});
    api.patch("search", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let removed = planned_migration(&proxy, Some(&added), "n1").await;
    wait_status(&api, "Progressing=True/Rebalancing (remove)", 3, |mc| {
        progressing_is(mc, "True", "Rebalancing") && mc.status.as_ref().unwrap().rebalance.as_ref().unwrap().migration.as_deref() == Some(removed.as_str())
    })
    .await;
    assert_all_readable(&http, count).await;
    let mc = wait_status(&api, "Progressing=False after removing n1", 3, |mc| progressing_is(mc, "False", "Idle")).await;
    let r = mc.status.as_ref().unwrap().rebalance.clone().unwrap();
    assert_eq!(r.migration.as_deref(), Some(removed.as_str()));
    assert!(r.shards_total > 0 && r.shards_moved == r.shards_total, "{r:?}");
    let st = mc.status.as_ref().unwrap();
    assert_eq!(st.nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["n0", "n2", "n3"]);
    assert_eq!(st.phase, Some(ClusterPhase::Ready));
    eventually("RebalanceStarted (remove)", || events("RebalanceStarted", removed.clone())).await;
    eventually("RebalanceFinished (remove)", || events("RebalanceFinished", removed.clone())).await;
    assert_all_readable(&http, count).await;
    // The node that left gave its documents up.
    let n1 = common::Http { base: nodes[1].url.clone(), key: Some(common::NODE_KEY.into()) };
    let (status, stats) = n1.get("/indexes/movies/stats").await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["numberOfDocuments"], json!(0), "{stats}");

    handle.shutdown().await;
    pod.op.stop().await;
}

#[tokio::test]
async fn invalid_spec_is_reported_and_the_controller_keeps_going() {
    let t = test_api().await;
    let dir = tempfile::tempdir().unwrap();
    let pod = start_pod(&t, sqlite(&dir).await, "search", "pod-a");
    let api: Api<MiroirCluster> = t.api();
    // Two replica groups, both nodes in group 0: group 1 is empty. The one rule the CRDs'
    // CEL cannot express, so the API server (real or fake) accepts it and the operator
    // refuses it.
    let mut invalid = cluster("search", 1, &["a", "b"]);
    invalid.spec.replica_groups = 2;
    api.create(&PostParams::default(), &invalid).await.unwrap();

    let mc = wait_phase(&api, "search", ClusterPhase::Stalled, 1).await;
    let ready = condition(&mc, "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "InvalidSpec"));
    assert!(ready.message.contains("spec.replicaGroups"), "{}", ready.message);
    eventually("a Warning event", || async {
        t.events_about("search").await.iter().any(|e| e["type"] == "Warning" && e["reason"] == "InvalidSpec")
    })
    .await;
    assert!(pod.proxy.routing().is_none(), "nothing applied");
    assert!(pod.metrics.failure_count("MiroirCluster", ErrorCategory::InvalidSpec) >= 1);

    // Fixing the spec is picked up: the watcher did not stall.
    api.patch("search", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"replicaGroups": 1, "replicationFactor": 2}})))
        .await
        .unwrap();
    let mc = wait_phase(&api, "search", ClusterPhase::Ready, 2).await;
    assert_eq!(condition(&mc, "Ready").unwrap().status, "True");
    assert_eq!(pod.proxy.routing().unwrap().topology.replication_factor, 2);

    // Changing what is read only at start is reported, not silently ignored.
    let keys = json!({"spec": {"keys": {"masterKey": {"name": "k", "key": "master"}}}});
    api.patch("search", &PatchParams::default(), &Patch::Merge(&keys)).await.unwrap();
    eventually("RestartRequired event", || async {
        t.events_about("search").await.iter().any(|e| {
            e["reason"] == "RestartRequired" && e["note"].as_str().is_some_and(|n| n.contains("spec.keys"))
        })
    })
    .await;

    // `shards` cannot change: the API server refuses it with CEL; the operator too, for an
    // API server that runs no CEL (an old one, or the fake).
    let shards = api.patch("search", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"shards": 16}}))).await;
    if t.fake.is_some() {
        shards.unwrap();
        let mc = wait_phase(&api, "search", ClusterPhase::Stalled, 4).await;
        let ready = condition(&mc, "Ready").unwrap();
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "InvalidSpec"));
        assert!(ready.message.contains("spec.shards"), "{}", ready.message);
        eventually("a Warning event naming shards", || async {
            t.events_about("search").await.iter().any(|e| {
                e["reason"] == "InvalidSpec" && e["note"].as_str().is_some_and(|n| n.contains("spec.shards"))
            })
        })
        .await;
    } else {
        let err = shards.unwrap_err();
        assert!(matches!(err, kube::Error::Api(ref s) if s.code == 422 && s.message.contains("shards is immutable")), "{err:?}");
    }
    assert_eq!(pod.proxy.routing().unwrap().topology.shards, 8, "still routed by 8 shards");

    // Another cluster's object in the namespace is not this pod's business.
    api.create(&PostParams::default(), &cluster("other", 1, &["x"])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(get(&api, "other").await.unwrap().status.is_none());
    pod.op.stop().await;
}

#[tokio::test]
async fn mirrored_kinds_reach_the_store_and_deletes_clear_it() {
    let t = test_api().await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir).await;
    let pod = start_pod(&t, store.clone(), "search", "pod-a");
    let clusters: Api<MiroirCluster> = t.api();
    clusters.create(&PostParams::default(), &cluster("search", 1, &["a", "b"])).await.unwrap();
    wait_phase(&clusters, "search", ClusterPhase::Ready, 1).await;

    let aliases: Api<Alias> = t.api();
    let tenants: Api<Tenant> = t.api();
    let canaries: Api<Canary> = t.api();
    let policies: Api<RolloverPolicy> = t.api();
    let pp = PostParams::default();
    aliases
        .create(&pp, &Alias::new("movies", AliasSpec { cluster: "search".into(), target: Some("movies-1".into()), targets: None }))
        .await
        .unwrap();
    tenants
        .create(&pp, &serde_json::from_value(json!({"apiVersion": "miroir.io/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "acme"}, "spec": {"cluster": "search", "tenantId": "acme", "replicaGroup": 0}})).unwrap())
        .await
        .unwrap();
    canaries
        .create(&pp, &serde_json::from_value(json!({"apiVersion": "miroir.io/v1alpha1", "kind": "Canary",
            "metadata": {"name": "batman"}, "spec": {"cluster": "search", "index": "movies", "query": {"q": "batman"},
            "assertions": {"minHits": 1}}})).unwrap())
        .await
        .unwrap();
    policies
        .create(&pp, &serde_json::from_value(json!({"apiVersion": "miroir.io/v1alpha1", "kind": "RolloverPolicy",
            "metadata": {"name": "logs"}, "spec": {"cluster": "search", "writeAlias": "logs-w", "readAlias": "logs",
            "pattern": "logs-{YYYY-MM-DD}", "triggers": {"maxAge": "1d"}}})).unwrap())
        .await
        .unwrap();
    // A tenant pinned to a group the cluster does not have: rejected, not stored.
    tenants
        .create(&pp, &serde_json::from_value(json!({"apiVersion": "miroir.io/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "lost"}, "spec": {"cluster": "search", "tenantId": "lost", "replicaGroup": 4}})).unwrap())
        .await
        .unwrap();

    for (table, name) in [
        (MirrorTable::Aliases, "movies"),
        (MirrorTable::TenantMap, "acme"),
        (MirrorTable::Canaries, "batman"),
        (MirrorTable::RolloverPolicies, "logs"),
    ] {
        eventually(&format!("{} row {name}", table.name()), || {
            let store = store.clone();
            async move { store.get_mirror(table, "search", name).await.unwrap().is_some() }
        })
        .await;
    }
    assert_eq!(store.get_mirror(MirrorTable::Aliases, "search", "movies").await.unwrap().unwrap()["targets"], json!(["movies-1"]));
    // Stored, but nothing acts on them yet: none of the four claims Ready.
    fn not_implemented(conditions: &[Condition]) -> bool {
        conditions.iter().any(|c| c.type_ == "Ready" && c.status == "False" && c.reason == "NotImplemented" && !c.message.is_empty())
            && conditions.iter().any(|c| c.type_ == "Mirrored" && c.status == "True")
    }
    eventually("Alias, Tenant, Canary, RolloverPolicy: Ready=False/NotImplemented", || async {
        aliases.get("movies").await.unwrap().status.is_some_and(|s| not_implemented(&s.conditions))
            && tenants.get("acme").await.unwrap().status.is_some_and(|s| not_implemented(&s.conditions))
            && canaries.get("batman").await.unwrap().status.is_some_and(|s| not_implemented(&s.conditions))
            && policies.get("logs").await.unwrap().status.is_some_and(|s| not_implemented(&s.conditions))
    })
    .await;
    eventually("alias status", || async {
        let a = aliases.get("movies").await.unwrap();
        a.status.as_ref().is_some_and(|s| s.version == 1 && s.resolved_targets == ["movies-1"])
    })
    .await;
    eventually("invalid tenant reported", || async {
        let t = tenants.get("lost").await.unwrap();
        t.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.status == "False" && c.reason == "InvalidSpec"))
    })
    .await;
    eventually("a Warning event about the invalid tenant", || async { t.events_about("lost").await.iter().any(|e| e["type"] == "Warning") }).await;
    assert!(store.get_mirror(MirrorTable::TenantMap, "search", "lost").await.unwrap().is_none());

    // Flip the alias: row and status follow.
    aliases.patch("movies", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"target": "movies-2"}}))).await.unwrap();
    eventually("alias flipped", || async {
        let a = aliases.get("movies").await.unwrap();
        let row = store.get_mirror(MirrorTable::Aliases, "search", "movies").await.unwrap().unwrap();
        a.status.as_ref().is_some_and(|s| s.version == 2 && s.last_flip_time.is_some()) && row["targets"] == json!(["movies-2"])
    })
    .await;

    // Deleting a mirrored resource deletes its row, then the object.
    aliases.delete("movies", &DeleteParams::default()).await.unwrap();
    eventually("alias row and object gone", || async {
        store.get_mirror(MirrorTable::Aliases, "search", "movies").await.unwrap().is_none()
            && aliases.get_opt("movies").await.unwrap().is_none()
    })
    .await;

    // Deleting the cluster: the finalizer removes all of its state, then releases the object.
    clusters.delete("search", &DeleteParams::default()).await.unwrap();
    eventually("cluster gone", || async { clusters.get_opt("search").await.unwrap().is_none() }).await;
    for table in MirrorTable::ALL {
        assert!(store.list_mirror(table, "search").await.unwrap().is_empty(), "{} emptied", table.name());
    }
    pod.op.stop().await;
}

#[tokio::test]
async fn api_failures_are_counted_by_category_reported_and_retried() {
    let t = test_api().await;
    if t.skipped_on_a_real_server(
        "api_failures_are_counted_by_category_reported_and_retried",
        "it makes the API server answer 500 to chosen requests, which only the fake can do",
    ) {
        return;
    }
    let server = t.fake.clone().expect("the fake");
    let dir = tempfile::tempdir().unwrap();
    let pod = start_pod(&t, sqlite(&dir).await, "search", "pod-a");
    let canaries: Api<Canary> = t.api();
    server.fail_requests("/canaries/batman/status", 500);
    canaries
        .create(&PostParams::default(), &serde_json::from_value(json!({"apiVersion": "miroir.io/v1alpha1", "kind": "Canary",
            "metadata": {"name": "batman"}, "spec": {"cluster": "search", "index": "movies", "query": {"q": "batman"},
            "assertions": {"topHitId": "1"}}})).unwrap())
        .await
        .unwrap();
    eventually("KubeApi failures counted", || async { pod.metrics.failure_count("Canary", ErrorCategory::KubeApi) >= 2 }).await;
    eventually("a Warning event named after the category", || async {
        t.events_about("batman").await.iter().any(|e| e["type"] == "Warning" && e["reason"] == "KubeApi")
    })
    .await;
    server.clear_failures();
    eventually("retried until the status is written", || async {
        let c = canaries.get("batman").await.unwrap();
        c.status.is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Mirrored" && c.status == "True"))
    })
    .await;
    pod.op.stop().await;
}

#[tokio::test]
async fn two_operators_elect_one_leader_and_fail_over() {
    let t = test_api().await;
    let dir = tempfile::tempdir().unwrap();
    let a = start_pod(&t, sqlite(&dir).await, "search", "pod-a");
    let b = start_pod(&t, sqlite(&dir).await, "search", "pod-b");
    let api: Api<MiroirCluster> = t.api();
    api.create(&PostParams::default(), &cluster("search", 1, &["a", "b"])).await.unwrap();
    wait_phase(&api, "search", ClusterPhase::Ready, 1).await;

    eventually("exactly one leader", || async { a.op.leadership().is_leader() != b.op.leadership().is_leader() }).await;
    // Both pods serve traffic: both proxies run the topology.
    eventually("both proxies routed", || async { a.proxy.routing().is_some() && b.proxy.routing().is_some() }).await;
    let (leader, follower) = if a.op.leadership().is_leader() { (a, b) } else { (b, a) };
    eventually("leader gauges", || async { leader.metrics.leader.get() == 1 && follower.metrics.leader.get() == 0 }).await;
    let store = sqlite(&dir).await;
    let lease = store.get_lease(&lease_name("search")).await.unwrap().unwrap();
    assert_eq!(lease.holder, leader.op.leadership().holder());

    // The leader dies without releasing the lease: the follower takes over once it expires.
    leader.op.crash();
    eventually("follower becomes leader", || async { follower.op.leadership().is_leader() }).await;
    // ...and does the singleton work: status follows a spec change.
    api.patch("search", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"nodes": [
        {"id": "a", "address": "http://a.meili:7700"}, {"id": "b", "address": "http://b.meili:7700"},
        {"id": "c", "address": "http://c.meili:7700"}]}})))
        .await
        .unwrap();
    let mc = wait_phase(&api, "search", ClusterPhase::Rebalancing, 2).await;
    // The joining node is known (it gets the queued writes), it serves no read yet.
    assert_eq!(mc.status.unwrap().nodes.len(), 3);
    assert_eq!(follower.proxy.routing().unwrap().topology.nodes.len(), 3);
    assert!(follower.proxy.load_placement().await.unwrap().unwrap().1.migration.is_some());
    follower.op.stop().await;
    assert!(store.get_lease(&lease_name("search")).await.unwrap().is_none(), "released on stop");
}

#[tokio::test]
async fn losing_the_lease_stops_leadership_within_one_renewal_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    lease_loss(sqlite(&dir).await).await;
}

/// The same election on Redis (`SET NX PX`), as several operator pods use it.
#[tokio::test]
async fn losing_the_lease_stops_leadership_within_one_renewal_redis() {
    let prefix = format!("miroir-test-controlplane-{}:", uuid::Uuid::new_v4());
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let store = miroir::store::redis::RedisStore::connect(&url, &prefix).await.unwrap();
    lease_loss(Arc::new(store)).await;
}

async fn lease_loss(store: Arc<dyn TaskStore>) {
    let timing = LeaseTiming { ttl: Duration::from_secs(30), renew_every: Duration::from_millis(50) };
    let a = Election::start(store.clone(), "c/operator-leader".into(), "a".into(), timing);
    eventually("a leads", || async { a.leadership.is_leader() }).await;
    let b = Election::start(store.clone(), "c/operator-leader".into(), "b".into(), timing);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!b.leadership.is_leader(), "the lease is held and not expired");
    // Someone else takes the lease (e.g. it expired while `a` was stalled).
    store.release_lease("c/operator-leader", "a").await.unwrap();
    assert!(store.try_acquire_lease("c/operator-leader", "b", Duration::from_secs(30)).await.unwrap());
    eventually("a steps down", || async { !a.leadership.is_leader() }).await;
    eventually("b leads", || async { b.leadership.is_leader() }).await;
    a.stop().await;
    b.stop().await;
}

/// The fake API server itself behaves like Kubernetes where the controllers depend on it.
/// API calls only: on a real API server the same checks show that Kubernetes does what the
/// fake assumes.
mod fake_api_server_semantics {
    use super::*;
    use futures::{StreamExt, TryStreamExt};
    use kube::api::{ListParams, WatchEvent, WatchParams};

    #[tokio::test]
    async fn generation_moves_on_spec_changes_only_and_status_is_a_subresource() {
        let t = test_api().await;
        let api: Api<MiroirCluster> = t.api();
        let mut mc = cluster("x", 1, &["a"]);
        mc.status = Some(MiroirClusterStatus { phase: Some(ClusterPhase::Ready), ..Default::default() });
        let created = api.create(&PostParams::default(), &mc).await.unwrap();
        assert_eq!(created.metadata.generation, Some(1));
        assert!(created.status.is_none(), "status is ignored on create");

        let st = json!({"status": {"phase": "Degraded"}});
        let after = api.patch_status("x", &PatchParams::default(), &Patch::Merge(&st)).await.unwrap();
        assert_eq!(after.metadata.generation, Some(1));
        assert_eq!(after.status.unwrap().phase, Some(ClusterPhase::Degraded));
        assert_ne!(after.metadata.resource_version, created.metadata.resource_version);

        // Status through the main resource is ignored; labels do not bump the generation.
        let p = json!({"metadata": {"labels": {"l": "v"}}, "status": {"phase": "Ready"}});
        let after = api.patch("x", &PatchParams::default(), &Patch::Merge(&p)).await.unwrap();
        assert_eq!((after.metadata.generation, after.status.unwrap().phase), (Some(1), Some(ClusterPhase::Degraded)));

        let after = api.patch("x", &PatchParams::default(), &Patch::Merge(&json!({"spec": cluster("x", 1, &["a", "b"]).spec}))).await.unwrap();
        assert_eq!(after.metadata.generation, Some(2));

        // A stale resourceVersion is a conflict.
        let stale = json!({"metadata": {"resourceVersion": created.metadata.resource_version}, "spec": {"replicationFactor": 2}});
        let err = api.patch("x", &PatchParams::default(), &Patch::Merge(&stale)).await.unwrap_err();
        assert!(matches!(err, kube::Error::Api(ref s) if s.code == 409), "{err:?}");
        // A JSON patch whose test op fails is refused.
        let jp: json_patch::Patch = serde_json::from_value(json!([{"op": "test", "path": "/spec/shards", "value": 1}])).unwrap();
        assert!(api.patch("x", &PatchParams::default(), &Patch::<()>::Json(jp)).await.is_err());
        let missing = api.get_opt("nope").await.unwrap();
        assert!(missing.is_none());
    }

    #[tokio::test]
    async fn delete_waits_for_finalizers_and_watch_replays_from_a_resource_version() {
        let t = test_api().await;
        let api: Api<MiroirCluster> = t.api();
        let mut mc = cluster("x", 1, &["a"]);
        mc.metadata.finalizers = Some(vec!["test/f".into()]);
        let created = api.create(&PostParams::default(), &mc).await.unwrap();
        let list = api.list(&ListParams::default()).await.unwrap();
        let rv = list.metadata.resource_version.clone().unwrap();
        assert_eq!(list.items.len(), 1);

        api.delete("x", &DeleteParams::default()).await.unwrap();
        let deleting = api.get("x").await.unwrap();
        assert!(deleting.metadata.deletion_timestamp.is_some(), "kept while a finalizer remains");
        api.patch("x", &PatchParams::default(), &Patch::Merge(&json!({"metadata": {"finalizers": null}}))).await.unwrap();
        assert!(api.get_opt("x").await.unwrap().is_none(), "gone once the finalizers are");

        // Watching from the list's resourceVersion replays what happened since (plus a bookmark).
        let events: Vec<_> = api
            .watch(&WatchParams::default().timeout(1), &rv)
            .await
            .unwrap()
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
        // A real API server sends bookmarks at its own pace; the fake always ends with one.
        let kinds: Vec<&str> = events
            .iter()
            .filter(|e| t.fake.is_some() || !matches!(e, WatchEvent::Bookmark(_)))
            .map(|e| match e {
                WatchEvent::Added(_) => "ADDED",
                WatchEvent::Modified(_) => "MODIFIED",
                WatchEvent::Deleted(_) => "DELETED",
                WatchEvent::Bookmark(_) => "BOOKMARK",
                WatchEvent::Error(_) => "ERROR",
            })
            .collect();
        let want: &[&str] = if t.fake.is_some() { &["MODIFIED", "DELETED", "BOOKMARK"] } else { &["MODIFIED", "DELETED"] };
        assert_eq!(kinds, want, "deletionTimestamp set, then gone with its finalizer");
        // From the start: ADDED first; a field selector filters other objects out.
        api.create(&PostParams::default(), &cluster("y", 1, &["a"])).await.unwrap();
        let first = api
            .watch(&WatchParams::default().fields("metadata.name=y").timeout(1), "0")
            .await
            .unwrap()
            .boxed()
            .next()
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(first, WatchEvent::Added(ref o) if o.metadata.name.as_deref() == Some("y")));
        assert_ne!(created.metadata.uid, None);
    }
}

/// `miroir operator` as a whole (minus the in-cluster client): waits for the MiroirCluster,
/// opens the task store it names, reads the key Secrets, serves probes/metrics/API, and
/// releases the lease on shutdown.
mod operator_process {
    use super::*;
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::ByteString;
    use miroir::controlplane::cli::{serve_operator, OperatorArgs};

    fn args(t: &TestApi) -> OperatorArgs {
        OperatorArgs {
            cluster: "search".into(),
            namespace: Some(t.namespace.clone()),
            instance: Some("pod-x".into()),
            bind: "127.0.0.1".into(),
            port: 0,
            max_body_bytes: 1 << 20,
            lease_ttl_secs: 3,
            lease_renew_secs: 1,
            requeue_secs: 1,
            secret_refresh_secs: 1,
            shutdown_delay_secs: 0,
        }
    }

    /// A stand-in Meilisearch node that answers what Miroir's probe asks (`/health`, then
    /// `/tasks?limit=1`).
    async fn healthy_node() -> String {
        let app = axum::Router::new()
            .route("/health", axum::routing::get(|| async { axum::Json(json!({"status": "available"})) }))
            .route("/tasks", axum::routing::get(|| async { axum::Json(json!({"results": [], "total": 0, "limit": 1, "from": null, "next": null})) }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    fn cluster_with(db: &std::path::Path, node: &str) -> MiroirCluster {
        serde_json::from_value(json!({
            "apiVersion": "miroir.io/v1alpha1", "kind": "MiroirCluster", "metadata": {"name": "search"},
            "spec": {"shards": 4, "replicationFactor": 1,
                     "nodes": [{"id": "a", "address": node}, {"id": "b", "address": node}],
                     "taskStore": {"sqlite": {"path": db.to_str().unwrap()}},
                     "keys": {"masterKey": {"name": "miroir-keys", "key": "master"}},
                     "health": {"intervalMs": 100, "timeoutMs": 5000}}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn serves_probes_and_metrics_and_releases_the_lease_on_shutdown() {
        let t = test_api().await;
        let client = t.client.clone();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let node = healthy_node().await;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // Started before the MiroirCluster exists: it waits for it.
        let running = tokio::spawn(serve_operator(client.clone(), args(&t), listener, async {
            let _ = stopped.await;
        }));

        let secrets: Api<Secret> = t.api();
        let mut secret = Secret::default();
        secret.metadata.name = Some("miroir-keys".into());
        secret.data = Some([("master".to_string(), ByteString(b"s3cret\n".to_vec()))].into());
        secrets.create(&PostParams::default(), &secret).await.unwrap();
        let api: Api<MiroirCluster> = t.api();
        api.create(&PostParams::default(), &cluster_with(&db, &node)).await.unwrap();

        let http = reqwest::Client::new();
        eventually("/ready answers 200", || {
            let http = http.clone();
            let url = format!("{base}/ready");
            async move { http.get(url).send().await.is_ok_and(|r| r.status() == 200) }
        })
        .await;
        let mc = wait_phase(&api, "search", ClusterPhase::Ready, 1).await;
        assert_eq!(mc.status.unwrap().nodes_ready.as_deref(), Some("2/2"), "probed healthy");
        let health: serde_json::Value = http.get(format!("{base}/health")).send().await.unwrap().json().await.unwrap();
        assert_eq!(health, json!({"status": "available"}));
        let metrics = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("miroir_controller_leader 1"), "{metrics}");
        assert!(metrics.contains(r#"miroir_controller_reconciles_total{kind="MiroirCluster"}"#), "{metrics}");

        // The proxy's API is served too, guarded by the master key read from the Secret.
        let topo = http.get(format!("{base}/_miroir/topology")).send().await.unwrap();
        assert_eq!(topo.status(), 401);
        let topo: serde_json::Value =
            http.get(format!("{base}/_miroir/topology")).bearer_auth("s3cret").send().await.unwrap().json().await.unwrap();
        assert_eq!(topo["nodes"].as_array().map(Vec::len), Some(2), "{topo}");

        // The task store is the file the spec names, and it holds this pod's lease.
        let store = SqliteStore::open(&db).await.unwrap();
        assert_eq!(store.get_lease(&lease_name("search")).await.unwrap().unwrap().holder, "pod-x");
        drop(http); // no idle keep-alive connection to wait for
        stop.send(()).unwrap();
        running.await.unwrap().unwrap();
        assert!(store.get_lease(&lease_name("search")).await.unwrap().is_none(), "lease released on shutdown");
    }

    async fn ready(http: &reqwest::Client, base: &str) -> (u16, serde_json::Value) {
        let r = http.get(format!("{base}/ready")).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or_default())
    }

    fn secret(name: &str, key: &str, value: &str) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some(name.into());
        s.data = Some([(key.to_string(), ByteString(value.as_bytes().to_vec()))].into());
        s
    }

    /// The MiroirCluster's `SecretsAvailable` condition, read through the API.
    async fn secrets_condition(t: &TestApi) -> Option<serde_json::Value> {
        let mc = t.api::<MiroirCluster>().get_opt("search").await.unwrap()?;
        let condition = condition(&mc, "SecretsAvailable")?;
        Some(serde_json::to_value(condition).unwrap())
    }

    #[tokio::test]
    async fn without_a_miroircluster_it_is_live_and_not_ready_with_the_reason() {
        let t = test_api().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(serve_operator(t.client.clone(), args(&t), listener, async {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::new();
        let health = http.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(health.status(), 200, "/health answers while the pod waits");
        assert_eq!(health.json::<serde_json::Value>().await.unwrap(), json!({"status": "available"}));
        let waiting = format!("waiting for MiroirCluster `search` in namespace `{}`", t.namespace);
        eventually("/ready names the missing MiroirCluster", || {
            let http = http.clone();
            let base = base.clone();
            let waiting = waiting.clone();
            async move {
                let (code, body) = ready(&http, &base).await;
                code == 503 && body["message"].as_str().is_some_and(|m| m.contains(&waiting))
            }
        })
        .await;
        let (_, body) = ready(&http, &base).await;
        assert_eq!(body["code"], "miroir_not_ready", "{body}");
        assert_eq!(body["type"], "system");
        assert!(body["link"].as_str().unwrap().ends_with("#miroir_not_ready"), "{body}");
        let r = http.get(format!("{base}/indexes")).send().await.unwrap();
        assert_eq!(r.status(), 503, "the API waits too, in Meilisearch's error shape");
        drop(http);
        stop.send(()).unwrap();
        running.await.unwrap().unwrap();
    }

    /// A missing key Secret: the pod waits (live, not ready, saying why), the MiroirCluster
    /// gets an event and `SecretsAvailable=False`; once the Secret exists the pod serves;
    /// a changed value is used without a restart (old key refused, new one accepted).
    #[tokio::test]
    async fn a_missing_secret_is_reported_then_picked_up_and_rotated_without_a_restart() {
        let t = test_api().await;
        let client = t.client.clone();
        let dir = tempfile::tempdir().unwrap();
        let node = healthy_node().await;
        let api: Api<MiroirCluster> = t.api();
        api.create(&PostParams::default(), &cluster_with(&dir.path().join("s.db"), &node)).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(serve_operator(client.clone(), args(&t), listener, async {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::new();

        eventually("/ready names the missing Secret", || {
            let http = http.clone();
            let base = base.clone();
            async move {
                let (code, body) = ready(&http, &base).await;
                code == 503 && body["message"].as_str().is_some_and(|m| m.contains("Secret `miroir-keys` not found"))
            }
        })
        .await;
        assert_eq!(http.get(format!("{base}/health")).send().await.unwrap().status(), 200);
        eventually("SecretsAvailable=False and a SecretMissing event", || async {
            {
                let c = secrets_condition(&t).await;
                let events = t.events_about("search").await;
                c.is_some_and(|c| c["status"] == "False" && c["reason"] == "SecretMissing")
                    && events.iter().any(|e| e["reason"] == "SecretMissing" && e["type"] == "Warning")
            }
        })
        .await;

        let secrets: Api<Secret> = t.api();
        secrets.create(&PostParams::default(), &secret("miroir-keys", "master", "first-key")).await.unwrap();
        eventually("/ready answers 200 once the Secret exists", || {
            let http = http.clone();
            let base = base.clone();
            async move { ready(&http, &base).await.0 == 200 }
        })
        .await;
        let topo = |key: &'static str| {
            let http = http.clone();
            let url = format!("{base}/_miroir/topology");
            async move { http.get(url).bearer_auth(key).send().await.unwrap().status().as_u16() }
        };
        assert_eq!(topo("first-key").await, 200);
        eventually("SecretsAvailable=True", || async { secrets_condition(&t).await.is_some_and(|c| c["status"] == "True") })
        .await;

        // Rotation: the same Secret, a new value.
        secrets.replace("miroir-keys", &PostParams::default(), &secret("miroir-keys", "master", "second-key")).await.unwrap();
        eventually("the new master key is accepted", || async { topo("second-key").await == 200 }).await;
        assert_eq!(topo("first-key").await, 403, "the old key is refused after the rotation");
        eventually("a KeysRotated event and condition", || async {
            secrets_condition(&t).await.is_some_and(|c| c["status"] == "True" && c["reason"] == "KeysRotated")
                && t.events_about("search").await.iter().any(|e| e["reason"] == "KeysRotated")
        })
        .await;
        for e in t.events_about("search").await {
            let note = e["note"].as_str().unwrap_or("");
            assert!(!note.contains("first-key") && !note.contains("second-key"), "an event shows a key: {note}");
        }
        // The controller's own status writes keep the condition.
        let mc = wait_phase(&api, "search", ClusterPhase::Ready, 1).await;
        assert!(mc.status.unwrap().conditions.iter().any(|c| c.type_ == "SecretsAvailable"), "the controller keeps SecretsAvailable");

        // Deleted: the last keys stay in use, reported as missing.
        secrets.delete("miroir-keys", &DeleteParams::default()).await.unwrap();
        eventually("SecretsAvailable=False after the delete", || async {
            secrets_condition(&t).await.is_some_and(|c| c["status"] == "False" && c["reason"] == "SecretMissing")
        })
        .await;
        assert_eq!(topo("second-key").await, 200, "the last keys read stay in use");
        drop(http);
        stop.send(()).unwrap();
        running.await.unwrap().unwrap();
    }

    /// The real `miroir operator` binary, given a kubeconfig naming the fake API server served
    /// over HTTP (or `MIROIR_TEST_KUBECONFIG`'s), with no MiroirCluster: `/health` 200,
    /// `/ready` 503 with the reason; SIGTERM stops it cleanly.
    #[tokio::test]
    async fn the_operator_binary_waits_live_and_not_ready() {
        let t = test_api().await;
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = t.kubeconfig(dir.path()).await;
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_miroir"));
        // The fake's kubeconfig names the test's namespace in its context (as a pod's
        // in-cluster config does); a real one does not know the test's namespace.
        command.env_remove("MIROIR_NAMESPACE");
        if t.fake.is_none() {
            command.env("MIROIR_NAMESPACE", &t.namespace);
        }
        let mut child = command
            .args(["operator", "--cluster", "search", "--bind", "127.0.0.1", "--port", &port.to_string()])
            .env("KUBECONFIG", &kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env("POD_NAME", "pod-bin")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("operator.log")).unwrap())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let log = || std::fs::read_to_string(dir.path().join("operator.log")).unwrap_or_default();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{base}/health")).send().await {
                assert_eq!(r.status(), 200);
                break;
            }
            assert!(child.try_wait().unwrap().is_none(), "miroir operator exited; its log:\n{}", log());
            assert!(tokio::time::Instant::now() < deadline, "no /health within 60 s; log:\n{}", log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eventually("/ready names the missing MiroirCluster", || {
            let http = http.clone();
            let base = base.clone();
            async move {
                let (code, body) = ready(&http, &base).await;
                code == 503 && body["code"] == "miroir_not_ready" && body["message"].as_str().is_some_and(|m| m.contains("MiroirCluster `search`"))
            }
        })
        .await;
        if let Some(fake) = &t.fake {
            assert!(fake.requests().iter().any(|r| r.contains("miroirclusters")), "it asked the API server for its MiroirCluster");
        }
        drop(http);
        // SAFETY: kill(2) on our own child, not reaped yet.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
        assert!(status.success(), "SIGTERM is a clean stop: {status}; log:\n{}", log());
    }
}

/// Meilisearch nodes run by the operator (`spec.meilisearch`). No kubelet runs pods here: the
/// test checks the objects the operator writes, stands in for the pods with nodes from the
/// engine seam (the operator's test-only address override maps the pods' node ids to them),
/// and drives readiness by writing the StatefulSet's status as the StatefulSet controller and
/// the kubelet would. Only Kubernetes API calls are used for checks (objects, Events), so the
/// scenario does not depend on the fake API server's internals.
mod managed_nodes {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use std::collections::BTreeMap;

    const STS: &str = "search-g0";

    fn managed_spec(nodes_per_group: u32, rf: u32) -> serde_json::Value {
        json!({"shards": 16, "replicationFactor": rf,
               "keys": {"nodeMasterKey": {"name": "meili-keys", "key": "master"}},
               "meilisearch": {"nodesPerGroup": nodes_per_group, "version": "v1.50.0",
                               "resources": {"limits": {"cpu": "2", "memory": "3Gi"}},
                               "storage": {"size": "5Gi"}},
               "health": {"intervalMs": 100, "timeoutMs": 2000, "recoveryThreshold": 1}})
    }

    async fn events(t: &TestApi, name: &str, reason: &str) -> Vec<K8sEvent> {
        let api: Api<K8sEvent> = Api::namespaced(t.client.clone(), &t.namespace);
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name) && e.reason.as_deref() == Some(reason))
            .collect()
    }

    async fn has_event(t: &TestApi, reason: &str, contains: &str) -> bool {
        events(t, "search", reason).await.iter().any(|e| e.note.as_deref().is_some_and(|n| n.contains(contains)))
    }

    async fn sts(api: &Api<StatefulSet>) -> StatefulSet {
        api.get(STS).await.unwrap()
    }

    fn replicas(s: &StatefulSet) -> i32 {
        s.spec.as_ref().unwrap().replicas.unwrap()
    }

    fn partition(s: &StatefulSet) -> i32 {
        s.spec.as_ref().unwrap().update_strategy.as_ref().unwrap().rolling_update.as_ref().unwrap().partition.unwrap()
    }

    /// As the StatefulSet controller and the kubelet would: `ready` pods ready, `updated` of
    /// them on the newest revision, for the StatefulSet's current generation.
    async fn kubelet(api: &Api<StatefulSet>, ready: i32, updated: i32) {
        let s = sts(api).await;
        let status = json!({"status": {"replicas": replicas(&s), "readyReplicas": ready, "availableReplicas": ready,
            "updatedReplicas": updated, "currentReplicas": ready, "observedGeneration": s.metadata.generation}});
        api.patch_status(STS, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn owned_statefulset_scales_through_rebalance_and_drain_stalls_rolls_and_finalizes() {
        let mut nodes = Vec::new();
        for i in 0..4 {
            nodes.push(common::Node::start(&format!("search-g0-{i}")).await);
        }
        let address_override: BTreeMap<String, String> = nodes.iter().map(|n| (n.id.clone(), n.url.clone())).collect();
        let t = test_api().await;
        let client = t.client.clone();
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite(&dir).await;
        let mut options = common::test_options();
        options.rebalance.max_documents_per_second = 500;
        let proxy = Proxy::new(options, store.clone());
        let metrics = ControllerMetrics::default();
        let op = RunningOperator::start_with_address_override(
            client.clone(),
            store.clone(),
            proxy.clone(),
            metrics,
            OperatorConfig {
                namespace: t.namespace.clone(),
                cluster: "search".into(),
                instance: "pod-a".into(),
                lease: LeaseTiming { ttl: Duration::from_millis(1500), renew_every: Duration::from_millis(100) },
                timing: ControllerTiming { requeue: Duration::from_millis(200), error_requeue: Duration::from_millis(100) },
                started_with: None,
            },
            address_override,
        );
        let listener = miroir::dataplane::server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let handle = miroir::dataplane::server::spawn(proxy.clone(), listener);
        let http = common::Http { base: handle.url(), key: Some(common::MASTER_KEY.into()) };

        let api: Api<MiroirCluster> = Api::namespaced(client.clone(), &t.namespace);
        let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &t.namespace);
        let mc: MiroirCluster = serde_json::from_value(json!({"apiVersion": "miroir.io/v1alpha1", "kind": "MiroirCluster",
            "metadata": {"name": "search"}, "spec": managed_spec(3, 2)}))
        .unwrap();
        let created = api.create(&PostParams::default(), &mc).await.unwrap();
        let uid = created.metadata.uid.clone().unwrap();

        // ---- the owned objects, written with server-side apply, owned by the MiroirCluster
        eventually("StatefulSet, Service and PodDisruptionBudget applied", || async {
            let svc: Api<Service> = Api::namespaced(client.clone(), &t.namespace);
            let pdb: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &t.namespace);
            statefulsets.get_opt(STS).await.unwrap().is_some()
                && svc.get_opt(STS).await.unwrap().is_some()
                && pdb.get_opt(STS).await.unwrap().is_some()
        })
        .await;
        let s = sts(&statefulsets).await;
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str(), owner.controller), ("MiroirCluster", "search", uid.as_str(), Some(true)));
        let sspec = s.spec.as_ref().unwrap();
        assert_eq!((replicas(&s), sspec.service_name.as_deref()), (3, Some(STS)));
        let container = &sspec.template.spec.as_ref().unwrap().containers[0];
        assert_eq!(container.image.as_deref(), Some("getmeili/meilisearch:v1.50.0"));
        assert_eq!(container.args.as_ref().unwrap(), &["/bin/meilisearch", "--max-indexing-threads", "1"]);
        assert!(container.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap().path.as_deref() == Some("/health"));
        let claim = &sspec.volume_claim_templates.as_ref().unwrap()[0];
        assert_eq!(claim.spec.as_ref().unwrap().resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0, "5Gi");
        let svc: Service = Api::namespaced(client.clone(), &t.namespace).get(STS).await.unwrap();
        assert_eq!(svc.spec.as_ref().unwrap().cluster_ip.as_deref(), Some("None"));
        assert_eq!(svc.metadata.owner_references.as_ref().unwrap()[0].uid, uid);
        let pdb: PodDisruptionBudget = Api::namespaced(client.clone(), &t.namespace).get(STS).await.unwrap();
        assert_eq!(pdb.metadata.owner_references.as_ref().unwrap()[0].uid, uid);
        // Server-side apply under the operator's field manager (the request log of the fake
        // API server; a real one records the manager in managedFields).
        match &t.fake {
            Some(server) => {
                let applied = |prefix: &str| server.requests().iter().any(|r| r.starts_with(prefix) && r.contains("fieldManager=miroir-operator"));
                assert!(applied("PATCH /apis/apps/v1/namespaces/search/statefulsets/search-g0?"));
                assert!(applied("PATCH /api/v1/namespaces/search/services/search-g0?"));
                assert!(applied("PATCH /apis/policy/v1/namespaces/search/poddisruptionbudgets/search-g0?"));
                assert!(applied("PATCH /apis/miroir.io/v1alpha1/namespaces/search/miroirclusters/search/status?"));
            }
            None => {
                let managers = s.metadata.managed_fields.iter().flatten().map(|m| (m.manager.clone(), m.operation.clone())).collect::<Vec<_>>();
                assert!(managers.contains(&(Some("miroir-operator".into()), Some("Apply".into()))), "{managers:?}");
            }
        }
        // The finalizer (kube-runtime's helper) is on.
        assert!(get(&api, "search").await.unwrap().metadata.finalizers.unwrap().contains(&FINALIZER.to_string()));

        // No pod is ready yet: nothing is declared, the status says what it waits for.
        let mc = wait_status(&api, "waiting for pods", 1, |mc| progressing_is(mc, "True", "WaitingForPods")).await;
        assert_eq!(mc.status.as_ref().unwrap().phase, Some(ClusterPhase::Pending));
        assert!(condition(&mc, "Progressing").unwrap().message.contains("search-g0 0/3"), "{:?}", mc.status);
        assert!(proxy.routing().is_none());

        // ---- pods ready: the nodes are their pods (ids and the test seam's addresses)
        kubelet(&statefulsets, 3, 3).await;
        let mc = wait_phase(&api, "search", ClusterPhase::Ready, 1).await;
        assert_eq!(mc.status.as_ref().unwrap().nodes_ready.as_deref(), Some("3/3"));
        let routing = proxy.routing().unwrap();
        assert_eq!(routing.topology.group_nodes(0), vec!["search-g0-0", "search-g0-1", "search-g0-2"]);
        assert_eq!(routing.topology.node("search-g0-1").unwrap().address, nodes[1].url);
        common::wait_serving(&proxy, &routing.topology).await;
        let (status, body) = http.post("/indexes", &json!({"uid": "movies", "primaryKey": "id"})).await;
        assert_eq!(status, 202, "{body}");
        http.wait_task(body["taskUid"].as_u64().unwrap()).await;
        let count = 600;
        add_documents(&http, 0..count).await;
        assert_all_readable(&http, count).await;

        // ---- scale up: the new pod becomes a node once ready, its data moves in
        api.patch("search", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"meilisearch": {"nodesPerGroup": 4}}}))).await.unwrap();
        eventually("StatefulSet scaled to 4", || async { replicas(&sts(&statefulsets).await) == 4 }).await;
        let mc = wait_status(&api, "waiting for the 4th pod", 2, |mc| progressing_is(mc, "True", "WaitingForPods")).await;
        assert!(condition(&mc, "Progressing").unwrap().message.contains("search-g0-3"), "{:?}", mc.status);
        assert_eq!(proxy.routing().unwrap().topology.nodes.len(), 3, "not a node before its pod is ready");
        eventually("ScaledUp event", || has_event(&t, "ScaledUp", "3 → 4")).await;
        kubelet(&statefulsets, 4, 4).await;
        let added = planned_migration(&proxy, None, "search-g0-3").await;
        let mc = wait_status(&api, "scale-up migration done", 2, |mc| {
            progressing_is(mc, "False", "Idle") && mc.status.as_ref().unwrap().rebalance.as_ref().is_some_and(|r| r.migration.as_deref() == Some(added.as_str()))
        })
        .await;
        assert_eq!(mc.status.as_ref().unwrap().phase, Some(ClusterPhase::Ready));
        assert!(proxy.routing().unwrap().assignment.shards_by_node().contains_key("search-g0-3"), "the new node serves its shards");
        eventually("RebalanceFinished (scale up)", || has_event(&t, "RebalanceFinished", &added)).await;
        assert_all_readable(&http, count).await;

        // ---- scale down: the highest ordinal is drained first, the StatefulSet shrinks after
        api.patch("search", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"meilisearch": {"nodesPerGroup": 3}}}))).await.unwrap();
        let drained = planned_migration(&proxy, Some(&added), "search-g0-3").await;
        // Whenever the StatefulSet is seen shrunk, the migration had ended before (the
        // StatefulSet is read first, the placement after).
        loop {
            let r = replicas(&sts(&statefulsets).await);
            let (_, placement) = proxy.load_placement().await.unwrap().unwrap();
            let running = placement.migration.as_ref().is_some_and(|m| m.id == drained && !m.phase.ended());
            if r == 3 {
                assert!(!running, "the StatefulSet shrank while its pod's data was still moving");
                break;
            }
            assert_eq!(r, 4);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mc = wait_status(&api, "scale-down migration done", 3, |mc| {
            progressing_is(mc, "False", "Idle") && mc.status.as_ref().unwrap().rebalance.as_ref().is_some_and(|r| r.migration.as_deref() == Some(drained.as_str()))
        })
        .await;
        assert_eq!(mc.status.as_ref().unwrap().nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["search-g0-0", "search-g0-1", "search-g0-2"]);
        eventually("ScaledDown event", || has_event(&t, "ScaledDown", "4 → 3")).await;
        assert_all_readable(&http, count).await;
        let n3 = common::Http { base: nodes[3].url.clone(), key: Some(common::NODE_KEY.into()) };
        let (status, stats) = n3.get("/indexes/movies/stats").await;
        assert_eq!(status, 200, "{stats}");
        assert_eq!(stats["numberOfDocuments"], json!(0), "the drained node gave its documents up: {stats}");
        kubelet(&statefulsets, 3, 3).await;

        // ---- a scale-down that cannot happen (RF 2 on 1 node): Stalled, Warning, nothing changes
        api.patch("search", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"meilisearch": {"nodesPerGroup": 1}}}))).await.unwrap();
        let mc = wait_phase(&api, "search", ClusterPhase::Stalled, 4).await;
        let ready = condition(&mc, "Ready").unwrap();
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "InvalidSpec"));
        assert!(ready.message.contains("spec.meilisearch.nodesPerGroup") && ready.message.contains("replicationFactor 2"), "{}", ready.message);
        eventually("Warning event naming nodesPerGroup", || async {
            events(&t, "search", "InvalidSpec").await.iter().any(|e| e.type_.as_deref() == Some("Warning") && e.note.as_deref().is_some_and(|n| n.contains("nodesPerGroup")))
        })
        .await;
        // The status for generation 4 is written after the apply stage of the same reconcile
        // (skipped: invalid), and a Stalled cluster waits for the next spec change.
        assert_eq!(replicas(&sts(&statefulsets).await), 3, "the StatefulSet is not scaled");
        assert_eq!(proxy.routing().unwrap().topology.nodes.len(), 3, "the topology is not changed");
        assert!(proxy.load_placement().await.unwrap().unwrap().1.migration.is_none_or(|m| m.phase.ended()));

        // ---- upgrade: one pod at a time, the next only once the updated one is ready and caught up
        api.patch("search", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"meilisearch": {"nodesPerGroup": 3, "version": "v1.51.0"}}}))).await.unwrap();
        eventually("new image, highest ordinal first", || async {
            let s = sts(&statefulsets).await;
            s.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("getmeili/meilisearch:v1.51.0") && partition(&s) == 2
        })
        .await;
        wait_phase(&api, "search", ClusterPhase::Ready, 5).await;
        // The StatefulSet controller has not updated pod 2 yet: the partition stays.
        kubelet(&statefulsets, 3, 0).await;
        let before = metrics_reconciles(&op);
        eventually("a few more reconciles", || async { metrics_reconciles(&op) >= before + 3 }).await;
        assert_eq!(partition(&sts(&statefulsets).await), 2);
        // Pod 2 runs the new revision, is ready, its node healthy and caught up: pod 1 next.
        kubelet(&statefulsets, 3, 1).await;
        eventually("partition 1", || async { partition(&sts(&statefulsets).await) == 1 }).await;
        // Pod 1 updated but not ready yet: wait.
        kubelet(&statefulsets, 2, 2).await;
        let before = metrics_reconciles(&op);
        eventually("a few more reconciles", || async { metrics_reconciles(&op) >= before + 3 }).await;
        assert_eq!(partition(&sts(&statefulsets).await), 1);
        kubelet(&statefulsets, 3, 2).await;
        eventually("partition 0", || async { partition(&sts(&statefulsets).await) == 0 }).await;
        eventually("RollingUpdate events", || has_event(&t, "RollingUpdate", "search-g0-1")).await;
        assert_all_readable(&http, count).await;

        // ---- delete: the finalizer clears the store, then the object goes (its owned objects
        // are garbage-collected by Kubernetes through their owner references)
        api.delete("search", &DeleteParams::default()).await.unwrap();
        // Gone only once the operator's cleanup ran and released the finalizer.
        eventually("cluster gone", || async { api.get_opt("search").await.unwrap().is_none() }).await;
        handle.shutdown().await;
        op.stop().await;
    }

    fn metrics_reconciles(op: &RunningOperator) -> u64 {
        op.context.metrics.reconcile_count("MiroirCluster")
    }
}

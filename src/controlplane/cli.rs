//! `miroir crd` and `miroir operator`.

use std::net::SocketAddr;

use anyhow::Context as _;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use k8s_openapi::api::core::v1::Secret as K8sSecret;
use kube::api::Api;
use kube::Client;
use prometheus_client::registry::Registry;

use super::controller::{ControllerTiming, StartedWith};
use super::crd::{KeySecretRefs, MiroirCluster, SecretKeyRef};
use super::desired::{build_desired, join_errors, DesiredCluster, StoreChoice};
use super::leader::{LeaseTiming, Leadership};
use super::metrics::ControllerMetrics;
use super::operator::{OperatorConfig, RunningOperator};
use crate::config::{Keys, Secret, StoreBackend, TaskStoreConfig};
use crate::dataplane::{server, Proxy, ProxyOptions};
use crate::store::TaskStore;

/// Every CRD as one multi-document YAML stream.
pub fn crd_yaml() -> String {
    super::crd::crd_yaml()
}

/// Options of `miroir operator`.
#[derive(clap::Args, Debug, Clone)]
pub struct OperatorArgs {
    /// Name of the MiroirCluster this pod serves.
    #[arg(long, env = "MIROIR_CLUSTER")]
    pub cluster: String,
    /// Namespace of the MiroirCluster (default: the client's namespace, i.e. the pod's).
    #[arg(long, env = "MIROIR_NAMESPACE")]
    pub namespace: Option<String>,
    /// Identity of this pod in the lease and in events (default: the host name).
    #[arg(long, env = "POD_NAME")]
    pub instance: Option<String>,
    /// Address the Meilisearch API, `/metrics`, `/health` and `/ready` listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: String,
    #[arg(long, default_value_t = 7700)]
    pub port: u16,
    /// Largest accepted request body.
    #[arg(long, default_value_t = 104_857_600)]
    pub max_body_bytes: usize,
    /// Lease lifetime: a stopped leader is replaced after at most this long.
    #[arg(long, default_value_t = 15)]
    pub lease_ttl_secs: u64,
    /// How often the lease is renewed (must be well below the TTL).
    #[arg(long, default_value_t = 5)]
    pub lease_renew_secs: u64,
    /// Periodic re-reconcile (refreshes node health in the status).
    #[arg(long, default_value_t = 30)]
    pub requeue_secs: u64,
}

async fn read_secret(client: &Client, ns: &str, r: &SecretKeyRef) -> anyhow::Result<String> {
    let api: Api<K8sSecret> = Api::namespaced(client.clone(), ns);
    let s = api
        .get_opt(&r.name)
        .await?
        .ok_or_else(|| anyhow::anyhow!("Secret `{}` not found in namespace `{ns}`", r.name))?;
    let bytes = s
        .data
        .as_ref()
        .and_then(|d| d.get(&r.key))
        .ok_or_else(|| anyhow::anyhow!("Secret `{}` has no key `{}`", r.name, r.key))?;
    Ok(String::from_utf8(bytes.0.clone())
        .map_err(|_| anyhow::anyhow!("key `{}` of Secret `{}` is not UTF-8", r.key, r.name))?
        .trim_end_matches('\n')
        .to_string())
}

async fn read_keys(client: &Client, ns: &str, refs: &KeySecretRefs) -> anyhow::Result<Keys> {
    let mut keys = Keys::default();
    if let Some(r) = &refs.master_key {
        keys.master_key = Secret(Some(read_secret(client, ns, r).await?));
    }
    if let Some(r) = &refs.node_master_key {
        keys.node_master_key = Secret(Some(read_secret(client, ns, r).await?));
    }
    if let Some(r) = &refs.admin_api_key {
        keys.admin_api_key = Secret(Some(read_secret(client, ns, r).await?));
    }
    Ok(keys)
}

/// Opens the task store a MiroirCluster names (the Redis URL is read from its Secret).
pub async fn open_store(client: &Client, ns: &str, choice: &StoreChoice) -> anyhow::Result<Arc<dyn TaskStore>> {
    let cfg = match choice {
        StoreChoice::Sqlite { path } => {
            TaskStoreConfig { backend: StoreBackend::Sqlite, path: path.into(), ..Default::default() }
        }
        StoreChoice::Redis { url_secret, prefix } => TaskStoreConfig {
            backend: StoreBackend::Redis,
            url: Some(read_secret(client, ns, url_secret).await?),
            prefix: prefix.clone(),
            ..Default::default()
        },
    };
    Ok(crate::store::open(&cfg).await?)
}

/// Waits (watching, not polling) until the MiroirCluster exists and is valid. The task
/// store and keys are taken from it once, at start: changing them needs a pod restart.
async fn wait_for_cluster(api: &Api<MiroirCluster>, name: &str) -> DesiredCluster {
    loop {
        match api.get_opt(name).await {
            Ok(Some(mc)) => match build_desired(&mc.spec, None) {
                Ok(d) => return d,
                Err(e) => tracing::warn!(cluster = name, errors = %join_errors(&e), "MiroirCluster is invalid; waiting for a fix"),
            },
            Ok(None) => tracing::info!(cluster = name, "waiting for the MiroirCluster to be created"),
            Err(e) => tracing::warn!(cluster = name, error = %e, "cannot read the MiroirCluster"),
        }
        let usable = |o: Option<&MiroirCluster>| o.is_some_and(|mc| build_desired(&mc.spec, None).is_ok());
        match kube::runtime::wait::await_condition(api.clone(), name, usable).await {
            Ok(Some(mc)) => {
                if let Ok(d) = build_desired(&mc.spec, None) {
                    return d;
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(cluster = name, error = %e, "cannot watch the MiroirCluster; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}

/// State of the probe and metrics routes.
#[derive(Clone)]
pub struct OpsState {
    pub registry: Arc<Registry>,
    pub proxy: Proxy,
    pub leadership: Leadership,
}

/// `/metrics` (OpenMetrics text) and `/ready` (a topology is applied and the task store
/// answers); merged next to the proxy's routes, whose `/health` is the liveness probe.
pub fn ops_router(state: OpsState) -> axum::Router {
    axum::Router::new().route("/metrics", get(metrics)).route("/ready", get(ready)).with_state(state)
}

async fn metrics(State(s): State<OpsState>) -> impl IntoResponse {
    crate::dataplane::metrics::encode(&s.registry)
}

async fn ready(State(s): State<OpsState>) -> impl IntoResponse {
    let topology = s.proxy.routing().is_some();
    let store = s.proxy.store().ping().await.is_ok();
    let body = serde_json::json!({
        "topologyApplied": topology,
        "storeReachable": store,
        "leader": s.leadership.is_leader(),
    });
    let code = if topology && store { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, axum::Json(body))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// `miroir operator`: serves the proxy and reconciles the custom resources into it, until
/// SIGTERM or Ctrl-C.
pub async fn run_operator(args: OperatorArgs) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let addr: SocketAddr = format!("{}:{}", args.bind, args.port)
        .parse()
        .with_context(|| format!("--bind/--port: {}:{} is not a socket address", args.bind, args.port))?;
    let listener = server::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    serve_operator(client, args, listener, shutdown_signal()).await
}

/// The operator on a given client and listener, until `shutdown` resolves (then the
/// controllers stop and the lease is released). `args.bind`/`args.port` are not used.
pub async fn serve_operator(
    client: Client,
    args: OperatorArgs,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let namespace = args.namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
    let instance = args.instance.clone().unwrap_or_else(|| {
        std::env::var("HOSTNAME").unwrap_or_else(|_| format!("miroir-{}", uuid::Uuid::new_v4()))
    });
    anyhow::ensure!(
        args.lease_renew_secs > 0 && args.lease_renew_secs < args.lease_ttl_secs,
        "--lease-renew-secs must be at least 1 and smaller than --lease-ttl-secs"
    );

    let api: Api<MiroirCluster> = Api::namespaced(client.clone(), &namespace);
    let desired = wait_for_cluster(&api, &args.cluster).await;
    let store = open_store(&client, &namespace, &desired.store).await?;
    let keys = read_keys(&client, &namespace, &desired.keys).await?;
    let proxy = Proxy::new(
        ProxyOptions { keys, health: desired.health.clone(), scatter: desired.scatter.clone(), max_body_bytes: args.max_body_bytes, replication: Default::default(), rebalance: Default::default() },
        store.clone(),
    );

    let metrics = ControllerMetrics::default();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    proxy.metrics().register(&mut registry);

    let operator = RunningOperator::start(
        client,
        store,
        proxy.clone(),
        metrics,
        OperatorConfig {
            namespace,
            cluster: args.cluster.clone(),
            instance,
            lease: LeaseTiming {
                ttl: Duration::from_secs(args.lease_ttl_secs),
                renew_every: Duration::from_secs(args.lease_renew_secs),
            },
            timing: ControllerTiming { requeue: Duration::from_secs(args.requeue_secs), ..Default::default() },
            started_with: Some(StartedWith { store: desired.store.clone(), keys: desired.keys.clone() }),
        },
    );
    let ops = ops_router(OpsState {
        registry: Arc::new(registry),
        proxy: proxy.clone(),
        leadership: operator.leadership().clone(),
    });
    // The Meilisearch API plus the operator's routes, served like `miroir serve` serves it
    // (the server also runs the node health checker).
    let app = proxy.router().merge(ops);
    let handle = server::spawn_router(proxy, app, listener);
    tracing::info!(addr = %handle.addr, cluster = %args.cluster, "miroir operator listening");
    shutdown.await;
    handle.shutdown().await;
    operator.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::topology::{NodeSpec, Topology};
    use tower::ServiceExt;

    async fn call(app: &axum::Router, path: &str) -> (StatusCode, String) {
        let req = axum::http::Request::get(path).body(axum::body::Body::empty()).unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn probes_and_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::sqlite::SqliteStore::open(dir.path().join("m.db")).await.unwrap();
        let proxy = Proxy::new(ProxyOptions::default(), Arc::new(store));
        let metrics = ControllerMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.observe("Alias", Duration::from_millis(1));
        let app = ops_router(OpsState { registry: Arc::new(registry), proxy: proxy.clone(), leadership: Leadership::always() });

        let (code, body) = call(&app, "/ready").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "no topology yet: {body}");
        proxy
            .apply_topology(Topology {
                shards: 2,
                replication_factor: 1,
                replica_groups: 1,
                nodes: vec![NodeSpec { id: "a".into(), address: "http://a:7700".into(), replica_group: 0 }],
            })
            .unwrap();
        let (code, body) = call(&app, "/ready").await;
        assert_eq!(code, StatusCode::OK, "{body}");
        let (code, body) = call(&app, "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains(r#"miroir_controller_reconciles_total{kind="Alias"} 1"#), "{body}");
    }
}

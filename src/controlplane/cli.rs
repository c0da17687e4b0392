//! `miroir crd` and `miroir operator`.

use std::net::SocketAddr;

use anyhow::Context as _;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
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
    /// How often the key Secrets are read again (key rotation without a restart), and how
    /// long a pod waiting for a missing Secret or task store waits between tries.
    #[arg(long, default_value_t = 10)]
    pub secret_refresh_secs: u64,
    /// After SIGTERM: how long `/ready` answers 503 while requests are still served (so that
    /// the Service stops sending new ones), before the listener closes and the requests in
    /// flight finish.
    #[arg(long, default_value_t = 0)]
    pub shutdown_delay_secs: u64,
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
async fn wait_for_cluster(api: &Api<MiroirCluster>, name: &str, startup: &Startup) -> DesiredCluster {
    loop {
        match api.get_opt(name).await {
            Ok(Some(mc)) => match build_desired(&mc.spec, None) {
                Ok(d) => return d,
                Err(e) => {
                    tracing::warn!(cluster = name, errors = %join_errors(&e), "MiroirCluster is invalid; waiting for a fix");
                    startup.set_phase(format!("MiroirCluster `{name}` is invalid: {}", join_errors(&e)));
                }
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

/// What an operator pod shows before its proxy runs (on `/ready` and in logs), and the
/// proxy's router once it does.
#[derive(Clone)]
pub struct Startup {
    phase: Arc<std::sync::RwLock<String>>,
    running: Arc<std::sync::OnceLock<(Proxy, axum::Router, Arc<Registry>)>>,
    early_registry: Arc<Registry>,
}

impl Startup {
    pub fn new(early_registry: Arc<Registry>) -> Startup {
        Startup {
            phase: Arc::new(std::sync::RwLock::new("starting".into())),
            running: Arc::default(),
            early_registry,
        }
    }

    /// What the pod waits for now (shown by `/ready` until the proxy runs). Logged on change.
    pub fn set_phase(&self, phase: impl Into<String>) {
        let phase = phase.into();
        let mut slot = self.phase.write().expect("phase lock");
        if *slot != phase {
            tracing::info!(waiting_for = %phase, "operator not ready yet");
            *slot = phase;
        }
    }

    pub fn phase(&self) -> String {
        self.phase.read().expect("phase lock").clone()
    }

    /// The proxy serves from now on (its routes, `/ready` and `/metrics` with its metrics).
    fn set_running(&self, proxy: Proxy, app: axum::Router, registry: Arc<Registry>) {
        let _ = self.running.set((proxy, app, registry));
    }

    pub fn proxy(&self) -> Option<Proxy> {
        self.running.get().map(|(p, _, _)| p.clone())
    }
}

/// What an operator pod answers from its first second: `/health` (always 200: the process
/// is alive), `/ready` (503 `miroir_not_ready` naming what it waits for: the MiroirCluster,
/// a Secret, the task store; then the proxy's own readiness), `/metrics`, and every other
/// route from the proxy once it runs (503 `miroir_not_ready` before).
pub fn operator_router(startup: Startup) -> axum::Router {
    axum::Router::new()
        .route("/health", get(|| async { axum::Json(serde_json::json!({"status": "available"})) }))
        .route("/ready", get(operator_ready))
        .route("/metrics", get(operator_metrics))
        .fallback(operator_fallback)
        .with_state(startup)
}

async fn operator_ready(State(s): State<Startup>) -> axum::response::Response {
    match s.proxy() {
        Some(proxy) => match proxy.readiness(crate::http::READY_STORE_TIMEOUT).await {
            Ok(body) => axum::Json(body).into_response(),
            Err(reasons) => crate::http::not_ready(&reasons).into_response(),
        },
        None => crate::http::not_ready(&[s.phase()]).into_response(),
    }
}

async fn operator_metrics(State(s): State<Startup>) -> axum::response::Response {
    match s.running.get() {
        Some((_, _, registry)) => crate::dataplane::metrics::encode(registry),
        None => crate::dataplane::metrics::encode(&s.early_registry),
    }
}

async fn operator_fallback(State(s): State<Startup>, req: axum::extract::Request) -> axum::response::Response {
    use tower::ServiceExt as _;
    match s.running.get() {
        Some((_, app, _)) => match app.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        },
        None => crate::http::not_ready(&[s.phase()]).into_response(),
    }
}

/// `miroir operator`: serves the proxy and reconciles the custom resources into it, until
/// SIGTERM or Ctrl-C.
pub async fn run_operator(args: OperatorArgs) -> anyhow::Result<()> {
    let mut signal = crate::commands::ShutdownSignal::listen();
    let client = Client::try_default().await?;
    let addr: SocketAddr = format!("{}:{}", args.bind, args.port)
        .parse()
        .with_context(|| format!("--bind/--port: {}:{} is not a socket address", args.bind, args.port))?;
    let listener = server::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    serve_operator(client, args, listener, async move {
        let s = signal.recv().await;
        tracing::info!(signal = s, "shutting down");
    })
    .await
}

/// The key Secrets a MiroirCluster names, read now: the keys, or why they cannot be.
async fn read_keys_or_reason(client: &Client, ns: &str, refs: &KeySecretRefs) -> Result<Keys, String> {
    read_keys(client, ns, refs).await.map_err(|e| e.to_string())
}

/// Which of the three keys differ (names only: values never leave the process).
fn changed_keys(old: &Keys, new: &Keys) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.master_key != new.master_key {
        out.push("spec.keys.masterKey");
    }
    if old.node_master_key != new.node_master_key {
        out.push("spec.keys.nodeMasterKey");
    }
    if old.admin_api_key != new.admin_api_key {
        out.push("spec.keys.adminApiKey");
    }
    out
}

/// Sets the `SecretsAvailable` condition of the MiroirCluster (only when it changes: the
/// controller keeps conditions it does not own) and publishes an event with the same
/// reason. Failures are logged: the condition is a report, never a reason to stop.
async fn report_secrets(client: &Client, ns: &str, cluster: &str, ok: bool, reason: &str, message: &str, instance: &str) {
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    use kube::Resource as _;
    let api: Api<MiroirCluster> = Api::namespaced(client.clone(), ns);
    let Ok(Some(mc)) = api.get_opt(cluster).await else { return };
    let status = if ok { "True" } else { "False" };
    let current = mc.status.as_ref().map(|s| serde_json::to_value(s).expect("status serializes"));
    let mut next = mc.status.clone().unwrap_or_default();
    let prev = next.conditions.iter().position(|c| c.type_ == "SecretsAvailable");
    if let Some(i) = prev {
        let c = &next.conditions[i];
        if c.status == status && c.reason == reason && c.message == message {
            return;
        }
    }
    let transition = match prev {
        Some(i) if next.conditions[i].status == status => next.conditions[i].last_transition_time.clone(),
        _ => super::desired::rfc3339(time::OffsetDateTime::now_utc()),
    };
    let condition = super::crd::Condition {
        type_: "SecretsAvailable".into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: transition,
        observed_generation: mc.metadata.generation,
    };
    match prev {
        Some(i) => next.conditions[i] = condition,
        None => next.conditions.push(condition),
    }
    let next = serde_json::to_value(&next).expect("status serializes");
    if let Err(e) = super::controller::write_status(&api, cluster, current, next).await {
        tracing::warn!(error = %e, "cannot write the SecretsAvailable condition");
    }
    let reporter = Reporter { controller: super::controller::MANAGER.into(), instance: Some(instance.into()) };
    let type_ = if ok { EventType::Normal } else { EventType::Warning };
    let ev = Event { type_, reason: reason.into(), note: Some(message.into()), action: "ReadSecrets".into(), secondary: None };
    if let Err(e) = Recorder::new(client.clone(), reporter).publish(&ev, &mc.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "cannot publish event");
    }
}

/// Everything the proxy needs, read from the MiroirCluster and its Secrets; retried until it
/// all works, with `/ready` saying what is missing and the MiroirCluster telling why
/// (`SecretsAvailable` condition, events).
async fn wait_until_startable(
    client: &Client,
    api: &Api<MiroirCluster>,
    args: &OperatorArgs,
    ns: &str,
    instance: &str,
    startup: &Startup,
) -> (DesiredCluster, Arc<dyn TaskStore>, Keys) {
    let retry = Duration::from_secs(args.secret_refresh_secs.max(1));
    loop {
        startup.set_phase(format!("waiting for MiroirCluster `{}` in namespace `{ns}` (and for it to be valid)", args.cluster));
        let desired = wait_for_cluster(api, &args.cluster, startup).await;
        let keys = match read_keys_or_reason(client, ns, &desired.keys).await {
            Ok(k) => k,
            Err(reason) => {
                startup.set_phase(format!("the key Secrets: {reason}"));
                report_secrets(client, ns, &args.cluster, false, "SecretMissing", &reason, instance).await;
                tokio::time::sleep(retry).await;
                continue;
            }
        };
        startup.set_phase("opening the task store");
        match open_store(client, ns, &desired.store).await {
            Ok(store) => return (desired, store, keys),
            Err(e) => {
                let reason = format!("the task store cannot be opened: {e:#}");
                startup.set_phase(reason.clone());
                if matches!(desired.store, StoreChoice::Redis { .. }) && e.to_string().contains("Secret `") {
                    report_secrets(client, ns, &args.cluster, false, "SecretMissing", &reason, instance).await;
                } else {
                    tracing::warn!("{reason}");
                }
                tokio::time::sleep(retry).await;
            }
        }
    }
}

/// Re-reads the key Secrets every `every`: a changed value is used from the next request on
/// (key rotation, no restart), a Secret that went missing keeps the last keys; both are an
/// event and the `SecretsAvailable` condition (written by the lease holder).
async fn follow_key_secrets(client: Client, ns: String, cluster: String, instance: String, refs: KeySecretRefs, proxy: Proxy, leadership: Leadership, every: Duration) {
    let mut last_error: Option<String> = None;
    let mut reported_ok = false;
    // A rotation seen while another pod led: reported once this one leads.
    let mut unreported: Option<String> = None;
    loop {
        tokio::time::sleep(every).await;
        match read_keys(&client, &ns, &refs).await {
            Ok(keys) => {
                let current = proxy.options().keys;
                let changed = changed_keys(&current, &keys);
                if !changed.is_empty() {
                    proxy.set_keys(keys);
                    let note = format!("{} changed in the Secret; in use from now on", changed.join(", "));
                    tracing::info!("key rotation: {note}");
                    unreported = Some(note);
                }
                if leadership.is_leader() {
                    if let Some(note) = unreported.take() {
                        report_secrets(&client, &ns, &cluster, true, "KeysRotated", &note, &instance).await;
                        reported_ok = true;
                    } else if last_error.is_some() || !reported_ok {
                        report_secrets(&client, &ns, &cluster, true, "SecretsRead", "every key Secret is readable", &instance).await;
                        reported_ok = true;
                    }
                }
                last_error = None;
            }
            Err(e) => {
                let reason = format!("{e}; the keys read before stay in use");
                if last_error.as_deref() != Some(reason.as_str()) {
                    tracing::warn!("{reason}");
                }
                if leadership.is_leader() {
                    report_secrets(&client, &ns, &cluster, false, "SecretMissing", &reason, &instance).await;
                }
                last_error = Some(reason);
                reported_ok = false;
            }
        }
    }
}

/// The operator on a given client and listener, until `shutdown` resolves (then the
/// controllers stop and the lease is released). `args.bind`/`args.port` are not used.
///
/// The listener serves from the start: `/health` answers 200 at once and `/ready` 503 with
/// the reason while the pod waits for its MiroirCluster, its key Secrets and its task store
/// (a missing Secret is retried every `--secret-refresh-secs`, with an event and the
/// MiroirCluster's `SecretsAvailable` condition).
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
    let addr = listener.local_addr()?;

    let metrics = ControllerMetrics::default();
    let mut early = Registry::default();
    metrics.register(&mut early);
    let startup = Startup::new(Arc::new(early));

    // Served from now on; the proxy's routes join once it runs.
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(server::serve(listener, operator_router(startup.clone()), async move {
        let _ = http_stopped.await;
    }));
    tracing::info!(addr = %addr, cluster = %args.cluster, "miroir operator listening");

    let mut shutdown = Box::pin(shutdown);
    let api: Api<MiroirCluster> = Api::namespaced(client.clone(), &namespace);
    let started = tokio::select! {
        s = wait_until_startable(&client, &api, &args, &namespace, &instance, &startup) => Some(s),
        _ = &mut shutdown => None,
    };
    let Some((desired, store, keys)) = started else {
        let _ = stop_http.send(());
        let _ = http.await;
        return Ok(());
    };
    report_secrets(&client, &namespace, &args.cluster, true, "SecretsRead", "every key Secret is readable", &instance).await;

    let proxy = Proxy::new(
        ProxyOptions { keys, health: desired.health.clone(), scatter: desired.scatter.clone(), max_body_bytes: args.max_body_bytes, replication: Default::default(), rebalance: Default::default() },
        store.clone(),
    );
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    proxy.metrics().register(&mut registry);

    let operator = RunningOperator::start(
        client.clone(),
        store,
        proxy.clone(),
        metrics,
        OperatorConfig {
            namespace: namespace.clone(),
            cluster: args.cluster.clone(),
            instance: instance.clone(),
            lease: LeaseTiming {
                ttl: Duration::from_secs(args.lease_ttl_secs),
                renew_every: Duration::from_secs(args.lease_renew_secs),
            },
            timing: ControllerTiming { requeue: Duration::from_secs(args.requeue_secs), ..Default::default() },
            started_with: Some(StartedWith { store: desired.store.clone(), keys: desired.keys.clone() }),
        },
    );
    let secrets = tokio::spawn(follow_key_secrets(
        client,
        namespace,
        args.cluster.clone(),
        instance,
        desired.keys.clone(),
        proxy.clone(),
        operator.leadership().clone(),
        Duration::from_secs(args.secret_refresh_secs.max(1)),
    ));
    // The node health checker and the other workers, as `miroir serve` runs them.
    let workers = server::spawn_workers(proxy.clone(), addr);
    startup.set_phase("checking the nodes");
    tokio::select! {
        _ = proxy.prepare_sync() => {}
        _ = &mut shutdown => {}
    }
    startup.set_running(proxy.clone(), proxy.router(), Arc::new(registry));

    shutdown.await;
    proxy.begin_drain();
    if args.shutdown_delay_secs > 0 {
        tracing::info!(delay_secs = args.shutdown_delay_secs, "shutting down: /ready answers 503; still serving until the delay ends");
        tokio::time::sleep(Duration::from_secs(args.shutdown_delay_secs)).await;
    }
    tracing::info!("shutting down: no new connections; finishing requests in flight");
    let _ = stop_http.send(());
    let _ = http.await;
    secrets.abort();
    workers.shutdown().await;
    operator.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::topology::{NodeSpec, Topology};
    use axum::http::StatusCode;
    use tower::ServiceExt;

    async fn call(app: &axum::Router, path: &str) -> (StatusCode, String) {
        let req = axum::http::Request::get(path).body(axum::body::Body::empty()).unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn probes_before_and_after_the_proxy_runs() {
        let metrics = ControllerMetrics::default();
        let mut early = Registry::default();
        metrics.register(&mut early);
        metrics.observe("Alias", Duration::from_millis(1));
        let startup = Startup::new(Arc::new(early));
        let app = operator_router(startup.clone());
        startup.set_phase("waiting for MiroirCluster `search`");

        let (code, body) = call(&app, "/health").await;
        assert_eq!((code, body.as_str()), (StatusCode::OK, r#"{"status":"available"}"#), "live while waiting");
        let (code, body) = call(&app, "/ready").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], "miroir_not_ready");
        assert_eq!(v["type"], "system");
        assert!(v["message"].as_str().unwrap().contains("waiting for MiroirCluster `search`"), "{body}");
        let (code, body) = call(&app, "/indexes").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "no proxy yet: {body}");
        let (code, body) = call(&app, "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains(r#"miroir_controller_reconciles_total{kind="Alias"} 1"#), "{body}");

        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::sqlite::SqliteStore::open(dir.path().join("m.db")).await.unwrap();
        let proxy = Proxy::new(ProxyOptions::default(), Arc::new(store));
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        proxy.metrics().register(&mut registry);
        startup.set_running(proxy.clone(), proxy.router(), Arc::new(registry));
        let (code, body) = call(&app, "/ready").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "no topology yet: {body}");
        assert!(body.contains("no topology is applied yet"), "{body}");
        proxy
            .apply_topology(Topology {
                shards: 2,
                replication_factor: 1,
                replica_groups: 1,
                nodes: vec![NodeSpec { id: "a".into(), address: "http://127.0.0.1:9".into(), replica_group: 0 }],
            })
            .unwrap();
        let (code, body) = call(&app, "/ready").await;
        assert!(code == StatusCode::SERVICE_UNAVAILABLE && body.contains("not been probed"), "{code} {body}");
        let (code, body) = call(&app, "/health").await;
        assert_eq!(code, StatusCode::OK, "{body}");
        let (code, body) = call(&app, "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("miroir_store_up 1"), "the /ready check updates the store gauge: {body}");
        proxy.begin_drain();
        let (_, body) = call(&app, "/ready").await;
        assert!(body.contains("shutting down"), "{body}");
    }

    #[test]
    fn changed_keys_names_only_what_changed() {
        let k = |m: &str, n: &str| Keys { master_key: Secret(Some(m.into())), node_master_key: Secret(Some(n.into())), admin_api_key: Secret(None) };
        assert_eq!(changed_keys(&k("a", "b"), &k("a", "b")), Vec::<&str>::new());
        assert_eq!(changed_keys(&k("a", "b"), &k("a2", "b")), ["spec.keys.masterKey"]);
        assert_eq!(changed_keys(&k("a", "b"), &k("a", "c")), ["spec.keys.nodeMasterKey"]);
    }
}

//! The MiroirCluster controller, built on `kube_runtime::Controller`, in stages:
//! read → validate → build desired state (pure, [`super::desired`]) → apply (into the
//! embedded proxy) → status (written by the lease holder only, only when it changed).
//!
//! Every operator pod declares the spec's topology to its own proxy (each pod serves
//! traffic; the declaration is idempotent and compare-and-set in the task store, and a
//! change of nodes becomes a migration the proxies execute in the background); only the
//! lease holder writes status, emits events, manages the finalizer and runs singleton work.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{finalizer, Error as FinalizerError, Event as FinalizerEvent};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::crd::{KeySecretRefs, MiroirCluster, MiroirClusterStatus, RebalanceStatus};
use super::desired::{self, build_desired_for, join_errors, RebalanceView, RunningView, StatusInput, StoreChoice};
use super::managed::{self, ManagedContext, ObservedGroup};
use super::leader::Leadership;
use super::metrics::{ControllerMetrics, ErrorCategory};
use crate::dataplane::health::NodeState;
use crate::dataplane::rebalance::ChangeError;
use crate::dataplane::replica::SyncState;
use crate::dataplane::topology::Topology;
use crate::dataplane::Proxy;
use crate::store::{StoreError, TaskStore};

/// Finalizer Miroir puts on its resources.
pub const FINALIZER: &str = "miroir.io/finalizer";
/// Field manager of every write.
pub const MANAGER: &str = "miroir-operator";

/// A reconcile failure; its category labels metrics and names event reasons.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the proxy refused the topology: {0}")]
    Apply(String),
    #[error("{0}")]
    Secret(String),
}

impl From<FinalizerError<ControllerError>> for ControllerError {
    fn from(e: FinalizerError<ControllerError>) -> Self {
        match e {
            FinalizerError::ApplyFailed(e) | FinalizerError::CleanupFailed(e) => e,
            FinalizerError::AddFinalizer(e) | FinalizerError::RemoveFinalizer(e) => ControllerError::Kube(e),
            other => ControllerError::Apply(other.to_string()),
        }
    }
}

impl ControllerError {
    pub fn category(&self) -> ErrorCategory {
        match self {
            ControllerError::Kube(_) => ErrorCategory::KubeApi,
            ControllerError::Store(_) => ErrorCategory::Store,
            ControllerError::Apply(_) => ErrorCategory::Apply,
            ControllerError::Secret(_) => ErrorCategory::Secret,
        }
    }
}

/// Timing of the controllers (short in tests).
#[derive(Debug, Clone, Copy)]
pub struct ControllerTiming {
    /// Periodic re-reconcile of healthy objects (refreshes node health in the status).
    pub requeue: Duration,
    /// Retry delay after an error.
    pub error_requeue: Duration,
}

impl Default for ControllerTiming {
    fn default() -> Self {
        ControllerTiming { requeue: Duration::from_secs(30), error_requeue: Duration::from_secs(5) }
    }
}

/// Re-reconcile period while a migration runs (so that the status follows its progress),
/// unless [`ControllerTiming::requeue`] is shorter.
pub const REBALANCE_REQUEUE: Duration = Duration::from_secs(2);

/// What every controller of one operator process shares.
pub struct Context {
    pub client: Client,
    pub namespace: String,
    /// Name of the MiroirCluster this process serves.
    pub cluster: String,
    pub proxy: Proxy,
    pub store: Arc<dyn TaskStore>,
    pub leadership: Leadership,
    pub recorder: Recorder,
    reporter: Reporter,
    pub metrics: ControllerMetrics,
    pub timing: ControllerTiming,
    /// `status.rebalance` as this process last computed it while leading (`None`: not known,
    /// read from the object's status), to emit each rebalance event once.
    rebalance_seen: Mutex<Option<Option<RebalanceStatus>>>,
    /// Task store and key Secrets the process started with (read once at start).
    started_with: Option<StartedWith>,
    /// The last spec settings a `RestartRequired` event was emitted for.
    restart_warned: Mutex<Option<StartedWith>>,
    /// **Tests only** (see [`ManagedContext::address_override`]): addresses of managed nodes
    /// by node id instead of their pods' DNS names. Empty in `miroir operator`.
    pub address_override: BTreeMap<String, String>,
}

/// Settings a running process cannot change: the task store and the key Secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedWith {
    pub store: StoreChoice,
    pub keys: KeySecretRefs,
}

impl Context {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        namespace: String,
        cluster: String,
        proxy: Proxy,
        store: Arc<dyn TaskStore>,
        leadership: Leadership,
        metrics: ControllerMetrics,
        timing: ControllerTiming,
        instance: String,
    ) -> Context {
        let reporter = Reporter { controller: MANAGER.to_string(), instance: Some(instance) };
        let recorder = Recorder::new(client.clone(), reporter.clone());
        Context {
            client,
            namespace,
            cluster,
            proxy,
            store,
            leadership,
            recorder,
            reporter,
            metrics,
            timing,
            rebalance_seen: Mutex::new(None),
            started_with: None,
            restart_warned: Mutex::new(None),
            address_override: BTreeMap::new(),
        }
    }

    /// **Tests only**: managed nodes reached at these addresses (by node id) instead of their
    /// pods' DNS names, so that nodes from the test seam stand in for pods no kubelet runs.
    pub fn with_address_override(mut self, address_override: BTreeMap<String, String>) -> Context {
        self.address_override = address_override;
        self
    }

    /// Records what the process started with, so that spec changes to it are reported
    /// (`RestartRequired` Warning event) instead of silently ignored.
    pub fn with_started_with(mut self, started_with: Option<StartedWith>) -> Context {
        self.started_with = started_with;
        self
    }

    /// The spec's store/keys differ from what this process runs with, and no event was
    /// emitted for this difference yet.
    fn restart_warning(&self, now: &StartedWith) -> Option<String> {
        let started = self.started_with.as_ref()?;
        let mut warned = self.restart_warned.lock().expect("restart lock");
        if started == now || warned.as_ref() == Some(now) {
            return None;
        }
        *warned = Some(now.clone());
        let mut what = Vec::new();
        if started.store != now.store {
            what.push("spec.taskStore");
        }
        if started.keys != now.keys {
            what.push("spec.keys");
        }
        Some(format!("{} changed; restart the operator pods to use the new value", what.join(" and ")))
    }

    /// `status.rebalance` as last known: what this process computed, else the object's.
    fn last_rebalance_status(&self, obj: &MiroirCluster) -> Option<RebalanceStatus> {
        match &*self.rebalance_seen.lock().expect("rebalance lock") {
            Some(seen) => seen.clone(),
            None => obj.status.as_ref().and_then(|s| s.rebalance.clone()),
        }
    }

    /// Publishes an event as an Event object of its own. [`Context::event`] folds an event
    /// into an earlier one with the same type, reason and action (a series, which keeps the
    /// first note): right for repeated failures, wrong for events whose note is the news (an
    /// invalid spec's message, which migration started or ended, a new error).
    pub async fn distinct_event<K: Resource<DynamicType = ()>>(&self, obj: &K, type_: EventType, reason: &str, action: &str, note: String) {
        let ev = Event { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: None };
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        if let Err(e) = recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "cannot publish event");
        }
    }

    /// Publishes an event; failures are logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(&self, obj: &K, type_: EventType, reason: &str, action: &str, note: String) {
        let ev = Event { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: None };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "cannot publish event");
        }
    }
}

/// A JSON merge patch turning `old` into `new` (keys missing from `new` become `null`).
pub fn merge_patch(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut out = serde_json::Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) if ov == nv => {}
                    Some(ov) => {
                        out.insert(k.clone(), merge_patch(ov, nv));
                    }
                    None => {
                        out.insert(k.clone(), nv.clone());
                    }
                }
            }
            for k in o.keys() {
                if !n.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            Value::Object(out)
        }
        _ => new.clone(),
    }
}

/// Writes `status` through the status subresource, with server-side apply under
/// [`MANAGER`] (fields left out of `next` that the operator set before are removed), if it
/// differs from `current`. Returns whether a write happened.
pub async fn write_status<K>(api: &Api<K>, name: &str, current: Option<Value>, next: Value) -> Result<bool, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let current = current.unwrap_or(Value::Object(Default::default()));
    if current == next {
        return Ok(false);
    }
    let patch = json!({ "apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": next });
    api.patch_status(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(true)
}

/// Applies an owned object with server-side apply under [`MANAGER`] (forced: the operator
/// owns every field it sets).
pub async fn apply_object<K>(client: &kube::Client, namespace: &str, obj: &K) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope> + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = obj.meta().name.clone().unwrap_or_default();
    api.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(obj)).await?;
    Ok(())
}

const KIND: &str = "MiroirCluster";

/// Reconciles the served MiroirCluster (entry point given to the `Controller`).
pub async fn reconcile(obj: Arc<MiroirCluster>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    let started = Instant::now();
    let res = reconcile_stages(obj, &ctx).await;
    ctx.metrics.observe(KIND, started.elapsed());
    res
}

/// On error: count it by category, log it, publish a Warning event whose reason is the
/// category (lease holder only), retry later. Never stops the controller.
pub fn error_policy(obj: Arc<MiroirCluster>, err: &ControllerError, ctx: Arc<Context>) -> Action {
    report_failure(KIND, obj, err, ctx)
}

/// Shared by every controller's error policy.
pub fn report_failure<K>(kind: &'static str, obj: Arc<K>, err: &ControllerError, ctx: Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()> + Send + Sync + 'static,
{
    let category = err.category();
    ctx.metrics.failure(kind, category);
    tracing::warn!(kind, name = %obj.meta().name.as_deref().unwrap_or(""), category = category.as_str(), error = %err, "reconcile failed");
    let retry = ctx.timing.error_requeue;
    if ctx.leadership.is_leader() {
        let note = err.to_string();
        tokio::spawn(async move {
            ctx.event(&*obj, EventType::Warning, category.as_str(), "Reconcile", note).await;
        });
    }
    Action::requeue(retry)
}

async fn reconcile_stages(obj: Arc<MiroirCluster>, ctx: &Context) -> Result<Action, ControllerError> {
    // ---- read
    let name = obj.name_any();
    if name != ctx.cluster {
        // Another operator serves it.
        return Ok(Action::await_change());
    }
    if !ctx.leadership.is_leader() {
        if obj.meta().deletion_timestamp.is_some() {
            // The lease holder runs the finalizer.
            return Ok(Action::requeue(ctx.timing.requeue));
        }
        return apply_and_status(&obj, ctx, false).await;
    }
    // The lease holder manages the finalizer (kube-runtime's helper: added before the first
    // apply, removed once the cleanup succeeded).
    let api: Api<MiroirCluster> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    finalizer(&api, FINALIZER, obj, |event| async move {
        match event {
            FinalizerEvent::Apply(obj) => apply_and_status(&obj, ctx, true).await,
            FinalizerEvent::Cleanup(obj) => {
                // Drop the cluster's durable state, then let Kubernetes delete it (the owned
                // StatefulSets, Services and PodDisruptionBudgets go with it: owner references).
                ctx.store.delete_cluster_state(&obj.name_any()).await?;
                tracing::info!(cluster = %obj.name_any(), "cluster state removed from the task store; finalizer released");
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(ControllerError::from)
}

/// Reads the StatefulSet of every replica group.
async fn observe_groups(ctx: &Context, cluster: &str, groups: u32) -> Result<Vec<ObservedGroup>, ControllerError> {
    let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let mut out = Vec::new();
    for g in 0..groups {
        out.push(ObservedGroup::of(api.get_opt(&managed::group_name(cluster, g)).await?.as_ref()));
    }
    Ok(out)
}

/// Applies the managed nodes' objects (after the declaration, so that a scale-down keeps the
/// pods the placement still uses) and reports scaling and rolling steps as events.
async fn apply_managed(
    obj: &MiroirCluster,
    ctx: &Context,
    mctx: &ManagedContext<'_>,
    (ms, master_key): (&super::crd::MeilisearchSpec, &super::crd::SecretKeyRef),
    observed: &[ObservedGroup],
) -> Result<bool, ControllerError> {
    let placement = ctx.proxy.load_placement().await?;
    let health = ctx.proxy.node_health();
    let sync = ctx.proxy.node_sync();
    let caught_up = |id: &str| {
        health.iter().find(|(n, _)| n == id).is_none_or(|(_, h)| h.state == NodeState::Healthy)
            && !sync.iter().find(|(n, _)| n == id).is_some_and(|(_, s)| matches!(s.state, SyncState::CatchingUp | SyncState::Rebuilding))
    };
    let objects = managed::managed_objects(&obj.spec, ms, master_key, mctx, observed, placement.as_ref().map(|(_, s)| s), &caught_up);
    let mut busy = false;
    for (g, sts) in objects.statefulsets.iter().enumerate() {
        let obs = observed.get(g).cloned().unwrap_or_default();
        let spec = sts.spec.as_ref().expect("built with a spec");
        let replicas = spec.replicas.unwrap_or(0);
        let partition = spec.update_strategy.as_ref().and_then(|u| u.rolling_update.as_ref()).and_then(|r| r.partition).unwrap_or(0);
        let sts_name = sts.metadata.name.clone().unwrap_or_default();
        apply_object(&ctx.client, &ctx.namespace, sts).await?;
        if obs.exists && obs.replicas != replicas {
            let (reason, note) = if replicas > obs.replicas {
                ("ScaledUp", format!("StatefulSet {sts_name}: {} → {replicas} pod(s); each new node joins once its pod is ready, its shards move in", obs.replicas))
            } else {
                ("ScaledDown", format!("StatefulSet {sts_name}: {} → {replicas} pod(s), after the leaving nodes' data moved away", obs.replicas))
            };
            ctx.distinct_event(obj, EventType::Normal, reason, "Scale", note).await;
        }
        if obs.exists && obs.partition != partition && partition < obs.replicas.min(replicas) {
            let note = format!(
                "StatefulSet {sts_name}: pod {}-{partition} is next to run the new pod template (partition {} → {partition}); pods above it are updated, ready and caught up",
                sts_name, obs.partition
            );
            ctx.distinct_event(obj, EventType::Normal, "RollingUpdate", "Upgrade", note).await;
        }
        busy |= partition > 0 || obs.ready_replicas < replicas;
    }
    for svc in &objects.services {
        apply_object::<Service>(&ctx.client, &ctx.namespace, svc).await?;
    }
    for pdb in &objects.disruption_budgets {
        apply_object::<PodDisruptionBudget>(&ctx.client, &ctx.namespace, pdb).await?;
    }
    Ok(busy)
}

/// Validate → desired (pure) → apply (declare the topology; with `spec.meilisearch`, the
/// owned objects) → status (lease holder only).
async fn apply_and_status(obj: &MiroirCluster, ctx: &Context, leader: bool) -> Result<Action, ControllerError> {
    let name = obj.name_any();
    let api: Api<MiroirCluster> = Api::namespaced(ctx.client.clone(), &ctx.namespace);

    // ---- validate + build desired state (pure)
    let running_before = ctx.proxy.routing();
    let desired = build_desired_for(&name, &ctx.namespace, &obj.spec, running_before.as_ref().map(|r| &r.topology), &ctx.address_override);
    let generation = obj.meta().generation;
    let mctx = ManagedContext {
        cluster: &name,
        namespace: &ctx.namespace,
        owner: obj.controller_owner_ref(&()).unwrap_or_default(),
        address_override: &ctx.address_override,
    };

    let mut declared_changed = false;
    // Managed nodes: what the operator still waits for (pods to be ready), and whether pods
    // are being scaled or rolled (followed more closely).
    let mut waiting: Option<String> = None;
    let mut managed_busy = false;
    let errors = match desired {
        Ok(desired) => {
            let now = StartedWith { store: desired.store.clone(), keys: desired.keys.clone() };
            if let Some(note) = ctx.restart_warning(&now) {
                tracing::warn!(cluster = %name, "{note}");
                if leader {
                    ctx.event(obj, EventType::Warning, "RestartRequired", "Apply", note).await;
                }
            }
            // What to declare: the spec's nodes; with managed nodes, those whose pods are
            // (or were) ready — decided by the lease holder only, the other pods follow the
            // stored placement.
            let mut observed = Vec::new();
            let to_declare: Option<Topology> = match &desired.meilisearch {
                None => Some(desired.topology.clone()),
                Some(_) if !leader => {
                    ctx.proxy.refresh_placement().await?;
                    None
                }
                Some(_) => {
                    observed = observe_groups(ctx, &name, obj.spec.replica_groups).await?;
                    let placement = ctx.proxy.load_placement().await?;
                    match managed::declared_topology(&obj.spec, &mctx, &observed, placement.as_ref().map(|(_, s)| s)) {
                        Ok(t) => {
                            waiting = managed::pods_awaited(&obj.spec, &mctx, &t);
                            Some(t)
                        }
                        Err(w) => {
                            waiting = Some(w);
                            None
                        }
                    }
                }
            };
            let mut errors = Vec::new();
            if let Some(topology) = to_declare {
                // ---- apply: the same declaration `miroir serve` makes for its config file. The
                // first one is routed by at once; a later change of nodes becomes a migration
                // (routing switches only at its cut-over, once the data has moved).
                if leader {
                    let before = ctx.proxy.load_placement().await?;
                    declared_changed = before.and_then(|(_, s)| s.declared).as_ref() != Some(&topology);
                }
                match ctx.proxy.declare_topology(topology, "operator").await {
                    Ok(started) => {
                        ctx.proxy.set_runtime(desired.health.clone(), desired.scatter.clone());
                        if let Some(m) = &started {
                            tracing::info!(cluster = %name, migration = %m.id, cause = %m.cause.description, shards = m.moves.len(), "topology change planned as a migration");
                        }
                    }
                    Err(ChangeError::Plan(e)) => errors.push(desired::plan_error(&e)),
                    Err(ChangeError::Store(e)) => return Err(e.into()),
                    Err(other) => return Err(ControllerError::Apply(other.to_string())),
                }
            }
            if errors.is_empty() && leader {
                if let Some((ms, key)) = &desired.meilisearch {
                    managed_busy = apply_managed(obj, ctx, &mctx, (ms, key), &observed).await?;
                }
            }
            errors
        }
        Err(errors) => errors,
    };
    if !errors.is_empty() {
        ctx.metrics.failure(KIND, ErrorCategory::InvalidSpec);
        tracing::warn!(cluster = %name, errors = %join_errors(&errors), "invalid MiroirCluster spec");
    }

    // ---- status (lease holder only)
    let mut migrating = false;
    if leader {
        // The stored placement (also installed into routing if newer): what the status shows.
        let placement = ctx.proxy.refresh_placement().await?;
        let view = placement.as_ref().map(|(_, s)| RebalanceView::from(s));
        migrating = view.as_ref().is_some_and(|v| v.running.is_some());
        let routing = ctx.proxy.routing();
        let health = ctx.proxy.node_health();
        let sync = ctx.proxy.node_sync();
        let input = StatusInput {
            generation,
            validation: if errors.is_empty() { Ok(()) } else { Err(&errors) },
            running: routing.as_ref().map(|r| RunningView { topology: &r.topology, assignment: &r.assignment, health: &health, sync: &sync }),
            rebalance: view.as_ref(),
            waiting: waiting.as_deref(),
            now: OffsetDateTime::now_utc(),
        };
        let next: MiroirClusterStatus = desired::cluster_status(obj.status.as_ref(), &input);
        let current = obj.status.as_ref().map(|s| serde_json::to_value(s).expect("status serializes"));
        let wrote = write_status(&api, &name, current, serde_json::to_value(&next).expect("status serializes")).await?;
        if wrote && !errors.is_empty() {
            ctx.distinct_event(obj, EventType::Warning, "InvalidSpec", "Validate", join_errors(&errors)).await;
        }
        if declared_changed && errors.is_empty() {
            if let (Some(v), Some(r)) = (&view, &routing) {
                match &v.running {
                    Some(m) if v.declared_pending => {
                        let note = format!("the spec changed while migration {} runs; the change is planned when it ends", m.id);
                        ctx.distinct_event(obj, EventType::Normal, "RebalanceQueued", "Apply", note).await;
                    }
                    Some(_) => {} // a new migration: RebalanceStarted below
                    None => {
                        let t = &r.topology;
                        let note = format!(
                            "topology version {} applied: {} node(s), {} shards, replication factor {}, {} replica group(s)",
                            r.version,
                            t.nodes.len(),
                            t.shards,
                            t.replication_factor,
                            t.replica_groups
                        );
                        ctx.distinct_event(obj, EventType::Normal, "TopologyApplied", "Apply", note).await;
                    }
                }
            }
        }
        if let Some(v) = &view {
            let before = ctx.last_rebalance_status(obj);
            for e in desired::rebalance_events(before.as_ref(), v) {
                let type_ = if e.warning { EventType::Warning } else { EventType::Normal };
                ctx.distinct_event(obj, type_, e.reason, "Rebalance", e.note).await;
            }
        }
        *ctx.rebalance_seen.lock().expect("rebalance lock") = Some(next.rebalance.clone());
    } else {
        // Leading again later: start from what the status says then.
        *ctx.rebalance_seen.lock().expect("rebalance lock") = None;
    }

    if migrating || waiting.is_some() || managed_busy {
        // Follow the migration's progress (or pods being scaled or rolled) in the status.
        Ok(Action::requeue(ctx.timing.requeue.min(REBALANCE_REQUEUE)))
    } else if errors.is_empty() {
        Ok(Action::requeue(ctx.timing.requeue))
    } else {
        // Nothing to retry until the spec changes.
        Ok(Action::await_change())
    }
}

/// Runs the MiroirCluster controller (until its task is aborted).
pub async fn run(ctx: Arc<Context>) {
    let api: Api<MiroirCluster> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let wc = watcher::Config::default().fields(&format!("metadata.name={}", ctx.cluster));
    // The StatefulSets of managed Meilisearch nodes: a pod becoming ready (or an upgraded pod
    // coming back) is seen at once, not at the next periodic requeue, so scale-ups, drains and
    // rolling upgrades move on as soon as Kubernetes does.
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let owned = watcher::Config::default()
        .labels(&format!("app.kubernetes.io/managed-by={MANAGER},app.kubernetes.io/instance={}", ctx.cluster));
    Controller::new(api, wc)
        .owns(statefulsets, owned)
        .reconcile_all_on(ctx.leadership.acquisitions())
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "MiroirCluster controller event");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_nulls_removed_keys_and_recurses() {
        let old = json!({"a": 1, "b": {"x": 1, "y": 2}, "c": [1], "d": "same"});
        let new = json!({"a": 2, "b": {"x": 1}, "c": [1, 2], "d": "same"});
        assert_eq!(merge_patch(&old, &new), json!({"a": 2, "b": {"y": null}, "c": [1, 2]}));
    }
}

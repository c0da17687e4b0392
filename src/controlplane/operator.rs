//! Assembles one operator process: leader election plus the five controllers, sharing one
//! [`Context`] (client, proxy, store, leadership, metrics).

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::Client;
use tokio::task::JoinHandle;

use super::controller::{self, Context, ControllerTiming, StartedWith};
use super::crd::{Alias, Canary, RolloverPolicy, Tenant};
use super::leader::{lease_name, Election, LeaseTiming, Leadership};
use super::metrics::ControllerMetrics;
use super::mirror;
use crate::dataplane::Proxy;
use crate::store::TaskStore;

/// What one operator process is about.
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    pub namespace: String,
    /// Name of the MiroirCluster this process serves.
    pub cluster: String,
    /// This process's identity in the lease and in events (the pod name).
    pub instance: String,
    pub lease: LeaseTiming,
    pub timing: ControllerTiming,
    /// Task store and keys the process was started with (`None`: not tracked).
    pub started_with: Option<StartedWith>,
}

/// A running operator. Stop it with [`RunningOperator::stop`] (releases the lease) or
/// [`RunningOperator::crash`] (as if the process died: the lease expires by itself).
pub struct RunningOperator {
    pub context: Arc<Context>,
    election: Election,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningOperator {
    /// Starts the election and the controllers on the current Tokio runtime.
    pub fn start(
        client: Client,
        store: Arc<dyn TaskStore>,
        proxy: Proxy,
        metrics: ControllerMetrics,
        config: OperatorConfig,
    ) -> RunningOperator {
        Self::start_with_address_override(client, store, proxy, metrics, config, BTreeMap::new())
    }

    /// [`RunningOperator::start`] for **tests only**: managed Meilisearch nodes (node id →
    /// base URL) are reached at these addresses instead of their pods' DNS names, so that
    /// nodes from the test seam stand in for pods no kubelet runs. `miroir operator` never
    /// sets it.
    pub fn start_with_address_override(
        client: Client,
        store: Arc<dyn TaskStore>,
        proxy: Proxy,
        metrics: ControllerMetrics,
        config: OperatorConfig,
        address_override: BTreeMap<String, String>,
    ) -> RunningOperator {
        let election =
            Election::start(store.clone(), lease_name(&config.cluster), config.instance.clone(), config.lease);
        let context = Arc::new(Context::new(
            client,
            config.namespace,
            config.cluster,
            proxy,
            store,
            election.leadership.clone(),
            metrics,
            config.timing,
            config.instance,
        )
        .with_started_with(config.started_with)
        .with_address_override(address_override));
        // The `leader` gauge follows the election.
        let gauge = {
            let mut leadership = election.leadership.clone();
            let metrics = context.metrics.clone();
            tokio::spawn(async move {
                metrics.leader.set(i64::from(leadership.is_leader()));
                loop {
                    let leader = leadership.changed().await;
                    metrics.leader.set(i64::from(leader));
                }
            })
        };
        let tasks = vec![
            gauge,
            tokio::spawn(controller::run(context.clone())),
            tokio::spawn(mirror::run::<Alias>(context.clone())),
            tokio::spawn(mirror::run::<Tenant>(context.clone())),
            tokio::spawn(mirror::run::<Canary>(context.clone())),
            tokio::spawn(mirror::run::<RolloverPolicy>(context.clone())),
        ];
        RunningOperator { context, election, tasks }
    }

    pub fn leadership(&self) -> &Leadership {
        &self.election.leadership
    }

    /// Stops the controllers and releases the lease.
    pub async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        self.election.stop().await;
    }

    /// Stops everything without releasing the lease.
    pub fn crash(self) {
        for t in &self.tasks {
            t.abort();
        }
        self.election.abandon();
    }
}

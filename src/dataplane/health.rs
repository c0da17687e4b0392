//! Node health: each node of the topology is probed (`GET /health`) every
//! `health.interval_ms`; `unhealthy_threshold` consecutive failures mark it `failed`,
//! then `recovery_threshold` consecutive successes bring it back (`recovering` meanwhile).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use super::topology::Topology;
use super::Proxy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    Healthy,
    Failed,
    Recovering,
    /// Up, but refusing Miroir's node master key: no traffic until it accepts it.
    Unauthorized,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeHealth {
    pub state: NodeState,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
}

impl Default for NodeHealth {
    fn default() -> Self {
        NodeHealth { state: NodeState::Healthy, consecutive_failures: 0, consecutive_successes: 0 }
    }
}

impl NodeHealth {
    /// Whether requests may be routed to the node.
    pub fn is_usable(&self) -> bool {
        self.state == NodeState::Healthy
    }

    /// The state machine, pure.
    pub fn observe(self, ok: bool, unhealthy_threshold: u32, recovery_threshold: u32) -> NodeHealth {
        let mut h = self;
        if ok {
            h.consecutive_failures = 0;
            h.consecutive_successes = h.consecutive_successes.saturating_add(1);
            h.state = match h.state {
                NodeState::Healthy => NodeState::Healthy,
                NodeState::Failed | NodeState::Recovering | NodeState::Unauthorized => {
                    if h.consecutive_successes >= recovery_threshold {
                        NodeState::Healthy
                    } else {
                        NodeState::Recovering
                    }
                }
            };
        } else {
            h.consecutive_successes = 0;
            h.consecutive_failures = h.consecutive_failures.saturating_add(1);
            h.state = match h.state {
                NodeState::Healthy if h.consecutive_failures < unhealthy_threshold => NodeState::Healthy,
                _ => NodeState::Failed,
            };
        }
        h
    }
}

/// Health of every node, by id. Nodes never probed are healthy.
#[derive(Debug, Default)]
pub struct HealthRegistry {
    nodes: Mutex<HashMap<String, NodeHealth>>,
    /// Probe rounds completed (every node of the topology probed once per round): `/ready`
    /// waits for the first, so a pod takes traffic only once it knows which nodes answer.
    rounds: std::sync::atomic::AtomicU64,
}

impl HealthRegistry {
    /// Probe rounds completed since the process started.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn round_done(&self) {
        self.rounds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn get(&self, id: &str) -> NodeHealth {
        self.nodes.lock().expect("health lock").get(id).copied().unwrap_or_default()
    }

    pub fn record(&self, id: &str, ok: bool, unhealthy_threshold: u32, recovery_threshold: u32) -> NodeHealth {
        let mut m = self.nodes.lock().expect("health lock");
        let h = m.get(id).copied().unwrap_or_default().observe(ok, unhealthy_threshold, recovery_threshold);
        m.insert(id.to_string(), h);
        h
    }

    /// Marks a node as refusing Miroir's node master key (a probe or a request said so).
    /// Returns whether this is news (the node was not already marked so).
    pub fn mark_unauthorized(&self, id: &str) -> bool {
        let mut m = self.nodes.lock().expect("health lock");
        let h = m.entry(id.to_string()).or_default();
        let news = h.state != NodeState::Unauthorized;
        h.state = NodeState::Unauthorized;
        h.consecutive_successes = 0;
        news
    }

    /// Marks a node failed at once (a request to it could not connect).
    pub fn mark_failed(&self, id: &str) {
        let mut m = self.nodes.lock().expect("health lock");
        let h = m.entry(id.to_string()).or_default();
        h.state = NodeState::Failed;
        h.consecutive_successes = 0;
    }

    /// Forgets nodes that left the topology.
    pub fn retain_nodes(&self, t: &Topology) {
        self.nodes.lock().expect("health lock").retain(|id, _| t.node(id).is_some());
    }
}

pub(crate) fn spawn(proxy: Proxy) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let opts = proxy.options().health;
            if let Some(routing) = proxy.routing() {
                let probes = routing.topology.nodes.iter().map(|n| {
                    let proxy = proxy.clone();
                    let addr = n.address.clone();
                    let id = n.id.clone();
                    let timeout = Duration::from_millis(opts.timeout_ms);
                    async move {
                        let probe = proxy.inner.nodes.probe_health(&addr, timeout).await;
                        let before = proxy.inner.health.get(&id).state;
                        if probe == crate::node::Probe::Unauthorized {
                            proxy.node_refuses_key(&id);
                            return;
                        }
                        if let crate::node::Probe::Healthy { newest_task } = probe {
                            if proxy.inner.sync.task_counter_went_back(&id, newest_task) {
                                tracing::warn!(node = %id, "the node's newest task is older than one seen before: it lost its data; rebuilding it from its replicas");
                                let scope = super::replica::RebuildScope { reason: "the node lost its data (its task counter went back)".into(), ..Default::default() };
                                if let Err(e) = proxy.queue_rebuild(&id, &scope).await {
                                    tracing::warn!(node = %id, error = %e, "cannot queue the rebuild");
                                }
                            }
                        }
                        let ok = matches!(probe, crate::node::Probe::Healthy { .. });
                        let after =
                            proxy.inner.health.record(&id, ok, opts.unhealthy_threshold, opts.recovery_threshold).state;
                        if before != after {
                            tracing::info!(node = %id, from = ?before, to = ?after, "node health changed");
                            if after == NodeState::Failed {
                                // It may come back without its data: check it before it serves again.
                                proxy.inner.sync.mark_unchecked(&id);
                            }
                        }
                    }
                });
                futures::future::join_all(probes).await;
                proxy.inner.health.round_done();
                proxy.inner.metrics.observe_nodes(&proxy);
                let timeout = Duration::from_millis(opts.timeout_ms.max(1000));
                let store_ok = matches!(tokio::time::timeout(timeout, proxy.inner.store.ping()).await, Ok(Ok(())));
                proxy.inner.metrics.observe_store(store_ok);
            }
            tokio::time::sleep(Duration::from_millis(opts.interval_ms)).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fails_after_threshold_and_recovers_through_recovering() {
        let mut h = NodeHealth::default();
        h = h.observe(false, 3, 2);
        h = h.observe(false, 3, 2);
        assert_eq!(h.state, NodeState::Healthy);
        h = h.observe(false, 3, 2);
        assert_eq!(h.state, NodeState::Failed);
        h = h.observe(true, 3, 2);
        assert_eq!(h.state, NodeState::Recovering);
        assert!(!h.is_usable());
        h = h.observe(false, 3, 2);
        assert_eq!(h.state, NodeState::Failed);
        h = h.observe(true, 3, 2).observe(true, 3, 2);
        assert_eq!(h.state, NodeState::Healthy);
    }
}

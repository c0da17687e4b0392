//! Controller metrics: reconciles, failures by category, reconcile duration, leadership.
//! Registered into the same registry the proxy serves on `/metrics`.

use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Why a reconcile failed; carried by every controller error and used as a label and an
/// event reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum ErrorCategory {
    /// The spec breaks a rule (the object is marked `Ready=False`; not retried until it changes).
    InvalidSpec,
    /// The Kubernetes API failed or refused a write.
    KubeApi,
    /// The task store failed.
    Store,
    /// The proxy refused the topology.
    Apply,
    /// A referenced Secret is missing or unusable.
    Secret,
}

impl ErrorCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCategory::InvalidSpec => "InvalidSpec",
            ErrorCategory::KubeApi => "KubeApi",
            ErrorCategory::Store => "Store",
            ErrorCategory::Apply => "Apply",
            ErrorCategory::Secret => "Secret",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct FailureLabels {
    pub kind: String,
    pub category: ErrorCategory,
}

/// Cloneable handle to the controller metrics.
#[derive(Clone)]
pub struct ControllerMetrics {
    pub reconciles: Family<KindLabels, Counter>,
    pub failures: Family<FailureLabels, Counter>,
    pub duration: Family<KindLabels, Histogram>,
    pub leader: Gauge,
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        ControllerMetrics {
            reconciles: Family::default(),
            failures: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 14))),
            leader: Gauge::default(),
        }
    }
}

impl ControllerMetrics {
    /// Registers every metric under the `miroir_controller_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("miroir_controller");
        sub.register("reconciles", "Reconciles run, by resource kind", self.reconciles.clone());
        sub.register("reconcile_failures", "Failed reconciles, by kind and error category", self.failures.clone());
        sub.register(
            "reconcile_duration_seconds",
            "Duration of reconciles, by kind",
            self.duration.clone(),
        );
        sub.register("leader", "1 when this process holds the operator lease", self.leader.clone());
    }

    pub fn observe(&self, kind: &str, took: Duration) {
        let l = KindLabels { kind: kind.to_string() };
        self.reconciles.get_or_create(&l).inc();
        self.duration.get_or_create(&l).observe(took.as_secs_f64());
    }

    pub fn failure(&self, kind: &str, category: ErrorCategory) {
        self.failures.get_or_create(&FailureLabels { kind: kind.to_string(), category }).inc();
    }

    /// Current count of failures of one kind and category (for tests and diagnostics).
    pub fn failure_count(&self, kind: &str, category: ErrorCategory) -> u64 {
        self.failures.get_or_create(&FailureLabels { kind: kind.to_string(), category }).get()
    }

    pub fn reconcile_count(&self, kind: &str) -> u64 {
        self.reconciles.get_or_create(&KindLabels { kind: kind.to_string() }).get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_exposed_with_labels() {
        let m = ControllerMetrics::default();
        let mut reg = Registry::default();
        m.register(&mut reg);
        m.observe("MiroirCluster", Duration::from_millis(3));
        m.failure("MiroirCluster", ErrorCategory::InvalidSpec);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
        assert!(out.contains(r#"miroir_controller_reconciles_total{kind="MiroirCluster"} 1"#), "{out}");
        assert!(out.contains(r#"miroir_controller_reconcile_failures_total{kind="MiroirCluster",category="InvalidSpec"} 1"#), "{out}");
        assert!(out.contains("miroir_controller_reconcile_duration_seconds_count"), "{out}");
    }
}

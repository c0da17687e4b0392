//! Prometheus metrics of the proxy (OpenMetrics text on `/metrics`): requests by method,
//! route and status, their latency, and failed node calls. `miroir serve` and
//! `miroir operator` register them in the registry their `/metrics` serves.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The route pattern (`/indexes/{uid}/search`), never the raw path.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabels {
    pub node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    /// Miroir's error code (`miroir_no_quorum`, `invalid_search_q`, …).
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: u16,
}

/// The error code of an answer Miroir produced itself, put on the response by
/// [`crate::error::ApiError`] for the metrics middleware.
#[derive(Clone, Debug)]
pub struct ErrorCode(pub &'static str);

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

#[derive(Clone)]
pub struct ProxyMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub node_failures: Family<NodeLabels, Counter>,
    pub node_auth_refusals: Family<NodeLabels, Counter>,
    /// Missed operations waiting for replay, per node.
    pub pending_operations: Family<NodeLabels, Gauge>,
    pub pending_bytes: Family<NodeLabels, Gauge>,
    /// 1 while the node holds every acknowledged write (it may answer reads), else 0.
    pub caught_up: Family<NodeLabels, Gauge>,
    pub replayed_operations: Family<NodeLabels, Counter>,
    pub rebuilds: Family<NodeLabels, Counter>,
    pub anti_entropy: super::antientropy::AntiEntropyMetrics,
    pub rebalance: super::rebalance::RebalanceMetrics,
    /// 1 while the node is healthy (routable), else 0; set after each probe round.
    pub node_healthy: Family<NodeLabels, Gauge>,
    /// Write answers naming (replica group, shard) pairs that missed quorum, by status
    /// (202: acknowledged through another group and queued; 503: refused).
    pub quorum_misses: Family<StatusLabels, Counter>,
    /// Error answers Miroir produced itself, by code.
    pub errors: Family<CodeLabels, Counter>,
    /// 1 when the task store answered the last check (each probe round and `/ready`), else 0.
    pub store_up: Gauge,
    /// Task store checks that failed.
    pub store_errors: Counter,
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        ProxyMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            node_failures: Family::default(),
            node_auth_refusals: Family::default(),
            pending_operations: Family::default(),
            pending_bytes: Family::default(),
            caught_up: Family::default(),
            replayed_operations: Family::default(),
            rebuilds: Family::default(),
            anti_entropy: Default::default(),
            rebalance: Default::default(),
            node_healthy: Family::default(),
            quorum_misses: Family::default(),
            errors: Family::default(),
            store_up: Gauge::default(),
            store_errors: Counter::default(),
        }
    }
}

impl ProxyMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("miroir");
        sub.register("http_requests", "HTTP requests answered, by method, route and status", self.requests.clone());
        sub.register("http_request_duration_seconds", "HTTP request latency, by method and route", self.duration.clone());
        sub.register("node_failures", "Node calls that got no answer (unreachable or timed out), by node", self.node_failures.clone());
        sub.register("node_auth_refusals", "Node calls and probes refused because the node does not accept Miroir's node master key, by node", self.node_auth_refusals.clone());
        sub.register("node_pending_operations", "Missed write operations waiting to be replayed to the node", self.pending_operations.clone());
        sub.register("node_pending_bytes", "Bytes of the missed write operations waiting to be replayed to the node", self.pending_bytes.clone());
        sub.register("node_caught_up", "1 when the node holds every acknowledged write and may answer reads, else 0", self.caught_up.clone());
        sub.register("node_replayed_operations", "Missed write operations replayed to the node", self.replayed_operations.clone());
        sub.register("node_rebuilds", "Rebuilds of the node's shards from an up-to-date replica", self.rebuilds.clone());
        sub.register("node_healthy", "1 while the node is healthy (Miroir routes requests to it), else 0; set after each probe round", self.node_healthy.clone());
        sub.register("quorum_misses", "Write answers with (replica group, shard) pairs that missed quorum, by status: 202 acknowledged through another group (queued for the nodes that missed it), 503 refused", self.quorum_misses.clone());
        sub.register("errors", "Error answers Miroir produced itself, by error code (node errors passed through are not counted)", self.errors.clone());
        sub.register("store_up", "1 when the task store answered its last check (every probe round and every /ready), else 0", self.store_up.clone());
        sub.register("store_errors", "Task store checks that failed", self.store_errors.clone());
        self.anti_entropy.register(sub);
        self.rebalance.register(sub);
    }

    /// Node health gauges from the proxy's current view (nodes that left are dropped).
    pub fn observe_nodes(&self, proxy: &super::Proxy) {
        let health = proxy.node_health();
        self.node_healthy.clear();
        for (id, h) in health {
            self.node_healthy.get_or_create(&NodeLabels { node: id }).set(i64::from(h.is_usable()));
        }
    }

    /// Records the outcome of one task store check.
    pub fn observe_store(&self, ok: bool) {
        self.store_up.set(i64::from(ok));
        if !ok {
            self.store_errors.inc();
        }
    }
}

/// Middleware recording every request.
pub async fn track(State(metrics): State<ProxyMetrics>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let resp = next.run(req).await;
    if let Some(ErrorCode(code)) = resp.extensions().get::<ErrorCode>() {
        metrics.errors.get_or_create(&CodeLabels { code: (*code).to_string() }).inc();
    }
    // Writes name missed (group/shard) pairs; reads name left-out shards (no `/`).
    let quorum_miss = resp
        .headers()
        .get(super::fanout::DEGRADED_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains('/'));
    if quorum_miss {
        metrics.quorum_misses.get_or_create(&StatusLabels { status: resp.status().as_u16() }).inc();
    }
    metrics.duration.get_or_create(&RouteLabels { method: method.clone(), route: route.clone() }).observe(started.elapsed().as_secs_f64());
    metrics.requests.get_or_create(&RequestLabels { method, route, status: resp.status().as_u16() }).inc();
    resp
}

/// `GET /metrics` for a registry.
pub fn metrics_router(registry: Arc<Registry>) -> axum::Router {
    axum::Router::new().route("/metrics", axum::routing::get(render)).with_state(registry)
}

pub fn encode(registry: &Registry) -> Response {
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, registry) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
            out,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn render(State(registry): State<Arc<Registry>>) -> Response {
    encode(&registry)
}

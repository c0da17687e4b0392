//! `miroir serve --config FILE`: the proxy over the nodes a config file names.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;

use crate::config::{Config, Keys};
use crate::dataplane::server::{self, ServerHandle};
use crate::dataplane::{Proxy, ProxyOptions};

/// A running proxy: the handle to stop it and the proxy itself.
pub struct Running {
    pub proxy: Proxy,
    pub server: ServerHandle,
}

/// Opens the task store, applies the topology and serves the Meilisearch API (plus
/// `/metrics`) on `server.bind:server.port`.
pub async fn start(cfg: &Config, keys: Keys) -> anyhow::Result<Running> {
    let store = crate::store::open(&cfg.task_store).await.context("opening the task store")?;
    let options = ProxyOptions {
        keys,
        health: cfg.health.clone(),
        scatter: cfg.scatter.clone(),
        max_body_bytes: cfg.server.max_body_bytes,
    };
    let proxy = Proxy::new(options, store);
    proxy.apply_topology(cfg.topology())?;
    let addr: SocketAddr = format!("{}:{}", cfg.server.bind, cfg.server.port)
        .parse()
        .with_context(|| format!("`server.bind`/`server.port`: {}:{} is not a socket address", cfg.server.bind, cfg.server.port))?;
    let listener = server::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    let mut registry = prometheus_client::registry::Registry::default();
    proxy.metrics().register(&mut registry);
    let router = proxy.router().merge(crate::dataplane::metrics::metrics_router(std::sync::Arc::new(registry)));
    let server = server::spawn_router(proxy.clone(), router, listener);
    Ok(Running { proxy, server })
}

/// `miroir serve`: runs until SIGINT or SIGTERM, then stops accepting and lets the requests
/// in flight finish.
pub async fn run(path: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    let keys = Keys::from_env(&cfg.keys);
    let running = start(&cfg, keys).await?;
    tracing::info!(addr = %running.server.addr, shards = cfg.shards, rf = cfg.replication_factor, groups = cfg.replica_groups, nodes = cfg.nodes.len(), store = ?cfg.task_store.backend, "miroir serving");
    let signal = super::shutdown_signal().await;
    tracing::info!(signal, "shutting down: finishing requests in flight");
    running.server.shutdown().await;
    Ok(())
}

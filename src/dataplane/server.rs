//! Running the HTTP server: shared by `miroir serve`, `miroir operator` and the tests.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::Proxy;

/// Binds with `SO_REUSEADDR`, so a restarted server can take its port back at once.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// A running server (HTTP + node health checker + anti-entropy check).
pub struct ServerHandle {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    join: Option<JoinHandle<()>>,
    health: JoinHandle<()>,
    /// Drops cached index contexts other processes changed (see `context_cache`).
    context_watch: JoinHandle<()>,
    sync: JoinHandle<()>,
    /// To release the replica-sync lease on a clean shutdown (another process takes over at once).
    proxy: Proxy,
    sync_holder: String,
    anti_entropy: JoinHandle<()>,
    rebalance: JoinHandle<()>,
    rebalance_holder: String,
    webhooks: JoinHandle<()>,
    webhooks_holder: String,
}

impl ServerHandle {
    /// The proxy this server serves.
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, finishes in-flight requests, stops the health checker.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(j) = self.join.take() {
            let _ = j.await;
        }
        self.health.abort();
        self.context_watch.abort();
        self.sync.abort();
        let _ = (&mut self.sync).await;
        if let Err(e) = self.proxy.store().release_lease(crate::dataplane::catchup::REPLAY_LEASE, &self.sync_holder).await {
            tracing::warn!(error = %e, "cannot release the replica-sync lease");
        }
        self.anti_entropy.abort();
        self.rebalance.abort();
        let _ = (&mut self.rebalance).await;
        if let Err(e) = self.proxy.store().release_lease(crate::dataplane::rebalance::REBALANCE_LEASE, &self.rebalance_holder).await {
            tracing::warn!(error = %e, "cannot release the rebalance lease");
        }
        self.webhooks.abort();
        let _ = (&mut self.webhooks).await;
        if let Err(e) = self.proxy.store().release_lease(crate::dataplane::webhooks::WEBHOOK_LEASE, &self.webhooks_holder).await {
            tracing::warn!(error = %e, "cannot release the webhooks lease");
        }
    }

    /// Waits until the server stops by itself (it does not, unless it fails).
    pub async fn wait(mut self) {
        if let Some(j) = self.join.take() {
            let _ = j.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.health.abort();
        self.context_watch.abort();
        self.sync.abort();
        self.anti_entropy.abort();
        self.rebalance.abort();
        self.webhooks.abort();
    }
}

/// Serves `proxy.router()` on `listener` and starts the health checker.
pub fn spawn(proxy: Proxy, listener: TcpListener) -> ServerHandle {
    spawn_router(proxy.clone(), proxy.router(), listener)
}

/// Serves a router that embeds the proxy's (e.g. with operator routes added).
pub fn spawn_router(proxy: Proxy, router: axum::Router, listener: TcpListener) -> ServerHandle {
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = oneshot::channel::<()>();
    let prepared = proxy.clone();
    let join = tokio::spawn(async move {
        // Connections wait in the listen backlog meanwhile (a few milliseconds).
        prepared.prepare_sync().await;
        serve(listener, router, async move {
            let _ = rx.await;
        })
        .await;
    });
    let mut handle = spawn_workers(proxy, addr);
    handle.shutdown = Some(tx);
    handle.join = Some(join);
    handle
}

/// Serves `router` (paths normalised as Meilisearch does) until `shutdown` resolves, then
/// stops accepting and returns once the requests in flight are answered.
pub async fn serve(listener: TcpListener, router: axum::Router, shutdown: impl std::future::Future<Output = ()> + Send + 'static) {
    let app = tower::Layer::layer(&tower::util::MapRequestLayer::new(normalize_path::<axum::body::Body>), router);
    let r = axum::serve(listener, axum::ServiceExt::<axum::extract::Request>::into_make_service(app))
        .with_graceful_shutdown(shutdown)
        .await;
    if let Err(e) = r {
        tracing::error!(error = %e, "server stopped");
    }
}

/// Starts the proxy's background work (node health checker, replica sync, anti-entropy,
/// rebalance, webhooks, default keys) without a listener of its own: for a process that
/// serves the proxy's router from a server it runs itself (`miroir operator`). `addr` is
/// what [`ServerHandle::url`] reports. [`ServerHandle::shutdown`] stops the work and
/// releases its leases.
pub fn spawn_workers(proxy: Proxy, addr: SocketAddr) -> ServerHandle {
    let health = proxy.spawn_health_checker();
    let context_watch = proxy.spawn_context_watch();
    let (sync, sync_holder) = proxy.spawn_replica_sync();
    let anti_entropy = proxy.spawn_anti_entropy();
    let (rebalance, rebalance_holder) = crate::dataplane::rebalance::spawn(proxy.clone());
    let (webhooks, webhooks_holder) = proxy.spawn_webhook_worker();
    // Meilisearch's default API keys, on the first start with a master key (the key routes
    // and the auth check create them too, should the store be unreachable now).
    let p = proxy.clone();
    tokio::spawn(async move {
        if let Err(e) = crate::http::ensure_default_keys(&p).await {
            tracing::warn!(error = %e, "cannot create the default API keys yet");
        }
    });
    ServerHandle {
        addr,
        shutdown: None,
        join: None,
        health,
        context_watch,
        sync,
        anti_entropy,
        rebalance,
        rebalance_holder,
        proxy,
        sync_holder,
        webhooks,
        webhooks_holder,
    }
}

/// Meilisearch normalises paths before routing (actix's `NormalizePath` with trailing slashes
/// trimmed): runs of `/` become one and a trailing `/` goes, so `/indexes/` is `/indexes` and
/// `//indexes//movies` is `/indexes/movies`. Percent-encoded slashes (`%2F`) are untouched.
pub fn normalize_path<B>(mut req: axum::http::Request<B>) -> axum::http::Request<B> {
    let uri = req.uri();
    let path = uri.path();
    let Some(normalized) = normalized(path) else { return req };
    let target = match uri.query() {
        Some(q) => format!("{normalized}?{q}"),
        None => normalized,
    };
    if let Ok(pq) = axum::http::uri::PathAndQuery::try_from(target) {
        let mut parts = uri.clone().into_parts();
        parts.path_and_query = Some(pq);
        if let Ok(new) = axum::http::Uri::from_parts(parts) {
            *req.uri_mut() = new;
        }
    }
    req
}

/// The normalised path, or `None` when it is already normal.
fn normalized(path: &str) -> Option<String> {
    if !path.contains("//") && (path.len() <= 1 || !path.ends_with('/')) {
        return None;
    }
    let mut out = String::with_capacity(path.len());
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() {
        out.push('/');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::normalized;

    #[test]
    fn paths_are_normalised_as_meilisearch_does() {
        assert_eq!(normalized("/indexes"), None);
        assert_eq!(normalized("/"), None);
        assert_eq!(normalized("/indexes/").as_deref(), Some("/indexes"));
        assert_eq!(normalized("//indexes//movies/").as_deref(), Some("/indexes/movies"));
        assert_eq!(normalized("//").as_deref(), Some("/"));
        assert_eq!(normalized("/indexes/a%2F/b"), None);
    }
}

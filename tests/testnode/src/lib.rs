//! A small in-process Meilisearch-compatible node used by the test harness when no real
//! `meilisearch` binary is given (`MEILI_BIN`). Every behaviour it has is Meilisearch's
//! (checked against the recorded contract in `tests/fixtures/meilisearch-contract`); it lacks much
//! that Meilisearch has and answers `501 not_implemented_by_test_node` there.
//!
//! Seam: [`TestNode::start`] binds an ephemeral port on 127.0.0.1 and serves until dropped;
//! [`TestNode::stop`] / [`TestNode::restart`] simulate a node going down and coming back on
//! the same port with the same state.
//!
//! Test-only: this crate is a dev-dependency of Miroir and is never part of the product
//! (`cargo build` of Miroir does not build it). Its binary, `miroir-testnode`, takes
//! Meilisearch's own command line (`--http-addr`, `--master-key`, ...), so tests that start
//! Meilisearch *processes* (`miroir dev`) can use it where no real Meilisearch is installed.
//!
//! Modules: [`http`] (routes, auth, validation), [`state`] (indexes, documents, task queue),
//! [`settings`], [`filter`] (filter language), [`engine`] (search engine), [`corpus`] (the
//! deterministic corpus of the tests and benchmarks). Document payload rules are Miroir's own
//! (`miroir::dataplane::payload`): one implementation for both.

pub mod corpus;
pub mod engine;
pub mod edition;
pub mod error;
pub mod features;
pub mod fields;
pub mod filter;
pub mod http;
pub mod render;
pub mod settings;
pub mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use http::Node;

/// How a node starts (Meilisearch's `--master-key`, `--dump-dir`, `--snapshot-dir`,
/// `--import-dump`).
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub master_key: Option<String>,
    pub dump_dir: Option<std::path::PathBuf>,
    pub snapshot_dir: Option<std::path::PathBuf>,
    pub import_dump: Option<std::path::PathBuf>,
}

/// One serving period of the node: the accept loop and its connections.
struct Serving {
    shutdown: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

/// An in-process Meilisearch-compatible node.
pub struct TestNode {
    node: Arc<Node>,
    port: u16,
    serving: Mutex<Option<Serving>>,
    processor: JoinHandle<()>,
}

impl TestNode {
    /// Starts a node on an ephemeral port of 127.0.0.1. With a master key, every route but
    /// `/health` requires `Authorization: Bearer <key>`.
    pub async fn start(master_key: Option<String>) -> std::io::Result<TestNode> {
        Self::start_on(0, master_key).await
    }

    /// Starts a node on `127.0.0.1:port` (`0`: an ephemeral port).
    pub async fn start_on(port: u16, master_key: Option<String>) -> std::io::Result<TestNode> {
        Self::start_with(port, Options { master_key, ..Options::default() }).await
    }

    /// Starts a node with Meilisearch's backup options: where dumps and snapshots go, and a
    /// dump to start from (`--import-dump`, a dump this test node wrote).
    pub async fn start_with(port: u16, options: Options) -> std::io::Result<TestNode> {
        let state = match &options.import_dump {
            None => state::State::default(),
            Some(path) => {
                let bytes = std::fs::read(path)?;
                let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
                state::State::from_dump(&v).map_err(std::io::Error::other)?
            }
        };
        let node = Arc::new(Node {
            master_key: options.master_key,
            dump_dir: options.dump_dir,
            snapshot_dir: options.snapshot_dir,
            state: Mutex::new(state),
            wake: tokio::sync::Notify::new(),
        });
        let listener = bind(port).await?;
        let port = listener.local_addr()?.port();
        let processor = tokio::spawn(process_tasks(node.clone()));
        let serving = serve(listener, node.clone());
        Ok(TestNode { node, port, serving: Mutex::new(Some(serving)), processor })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops answering: closes the listener and every open connection (clients get
    /// connection refused / reset). State and queued tasks are kept.
    pub async fn stop(&self) {
        let serving = self.serving.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(s) = serving {
            let _ = s.shutdown.send(true);
            let _ = s.accept.await;
        }
    }

    /// Loses every index, document and task, as a node whose data dir was removed (call it
    /// while stopped; [`TestNode::restart`] then serves an empty node).
    pub fn wipe(&self) {
        *self.node.lock() = state::State::default();
    }

    /// Serves again on the same port with the same state. A no-op when already serving.
    pub async fn restart(&self) -> std::io::Result<()> {
        if self.serving.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            return Ok(());
        }
        let listener = bind(self.port).await?;
        let serving = serve(listener, self.node.clone());
        *self.serving.lock().unwrap_or_else(|p| p.into_inner()) = Some(serving);
        Ok(())
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(s) = self.serving.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = s.shutdown.send(true);
            // dropping the accept task's JoinSet aborts every connection
            s.accept.abort();
        }
        self.processor.abort();
    }
}

async fn bind(port: u16) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    socket.listen(1024)
}

fn serve(listener: TcpListener, node: Arc<Node>) -> Serving {
    let (tx, rx) = watch::channel(false);
    // Paths normalised before routing, as Meilisearch does (Miroir's own rule, shared).
    let router = tower::Layer::layer(&tower::util::MapRequestLayer::new(miroir::dataplane::server::normalize_path::<hyper::body::Incoming>), http::router(node));
    let accept = tokio::spawn(async move {
        let mut shutdown = rx.clone();
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let service = TowerToHyperService::new(router.clone());
                    let mut conn_shutdown = rx.clone();
                    connections.spawn(async move {
                        let conn = hyper::server::conn::http1::Builder::new()
                            .timer(TokioTimer::new())
                            .serve_connection(TokioIo::new(stream), service);
                        tokio::select! {
                            _ = conn => {}
                            _ = conn_shutdown.changed() => {}
                        }
                    });
                    while connections.try_join_next().is_some() {}
                }
            }
        }
        drop(listener);
        connections.shutdown().await;
    });
    Serving { shutdown: tx, accept }
}

async fn process_tasks(node: Arc<Node>) {
    loop {
        loop {
            let processed = node.lock().process_next();
            if !processed {
                break;
            }
            tokio::task::yield_now().await;
        }
        node.wake.notified().await;
    }
}

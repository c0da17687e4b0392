use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};
use miroir::config::{Config, Keys};
use miroir::dataplane::{server, Proxy, ProxyOptions};

#[derive(Parser)]
#[command(name = "miroir", version, about = "One Meilisearch API in front of many Meilisearch nodes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Meilisearch API from a config file.
    Serve {
        /// The YAML config file (see config/example.yaml).
        #[arg(long, short)]
        config: std::path::PathBuf,
    },
    /// Run the in-repo Meilisearch-compatible test node (for development and tests; not a
    /// Meilisearch replacement: it keeps everything in memory).
    TestNode {
        #[arg(long, default_value_t = 7701)]
        port: u16,
        /// Master key the node requires (like Meilisearch's --master-key).
        #[arg(long, env = "MEILI_MASTER_KEY")]
        master_key: Option<String>,
    },
    /// Print every CustomResourceDefinition (YAML, one document per CRD).
    Crd,
    /// Run on Kubernetes: serve the proxy and reconcile Miroir's custom resources into it.
    Operator(miroir::controlplane::cli::OperatorArgs),
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MIROIR_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).init();
}

async fn serve(path: &std::path::Path) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    let keys = Keys::from_env(&cfg.keys);
    let store = miroir::store::open(&cfg.task_store).await.context("opening the task store")?;
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
    tracing::info!(%addr, shards = cfg.shards, rf = cfg.replication_factor, groups = cfg.replica_groups, nodes = cfg.nodes.len(), store = ?cfg.task_store.backend, "miroir serving");
    let mut registry = prometheus_client::registry::Registry::default();
    proxy.metrics().register(&mut registry);
    let router = proxy.router().merge(miroir::dataplane::metrics::metrics_router(std::sync::Arc::new(registry)));
    let handle = server::spawn_router(proxy, router, listener);
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("shutting down");
            handle.shutdown().await;
        }
    }
    Ok(())
}

fn main() {
    init_tracing();
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = rt.block_on(async {
        match cli.command {
            Command::Serve { config } => serve(&config).await,
            Command::TestNode { port, master_key } => {
                tracing::info!(port, "test node serving on 127.0.0.1");
                miroir::testnode::serve_forever(port, master_key).await.map_err(anyhow::Error::from)
            }
            Command::Crd => {
                print!("{}", miroir::controlplane::cli::crd_yaml());
                Ok(())
            }
            Command::Operator(args) => miroir::controlplane::cli::run_operator(args).await,
        }
    });
    if let Err(e) = result {
        // One clear line, naming the cause chain.
        eprintln!("miroir: {e:#}");
        std::process::exit(1);
    }
}

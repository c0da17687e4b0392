//! `miroir-testnode`: the in-repo test node behind Meilisearch's own command line, for tests
//! that start Meilisearch processes (`miroir dev`) where no real Meilisearch is installed.
//! Everything is kept in memory: `--db-path` is accepted and ignored.

use clap::Parser;

#[derive(Parser)]
#[command(name = "miroir-testnode", about = "Test-only in-memory Meilisearch-compatible node (not Meilisearch)")]
struct Args {
    /// `host:port` to listen on; only loopback hosts are served.
    #[arg(long, env = "MEILI_HTTP_ADDR", default_value = "127.0.0.1:7700")]
    http_addr: String,
    #[arg(long, env = "MEILI_MASTER_KEY")]
    master_key: Option<String>,
    /// Accepted for compatibility; the test node keeps nothing on disk.
    #[arg(long, env = "MEILI_DB_PATH")]
    db_path: Option<std::path::PathBuf>,
    /// Where `POST /dumps` writes (the test node's own dump format).
    #[arg(long, env = "MEILI_DUMP_DIR")]
    dump_dir: Option<std::path::PathBuf>,
    /// Where `POST /snapshots` writes.
    #[arg(long, env = "MEILI_SNAPSHOT_DIR")]
    snapshot_dir: Option<std::path::PathBuf>,
    /// A dump this test node wrote, to start from.
    #[arg(long, env = "MEILI_IMPORT_DUMP")]
    import_dump: Option<std::path::PathBuf>,
    /// Accepted for compatibility (`development` / `production`).
    #[arg(long, env = "MEILI_ENV")]
    env: Option<String>,
    /// Accepted for compatibility.
    #[arg(long, env = "MEILI_NO_ANALYTICS")]
    no_analytics: bool,
    /// Accepted for compatibility (the test node indexes on one task runner).
    #[arg(long, env = "MEILI_MAX_INDEXING_THREADS")]
    max_indexing_threads: Option<usize>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let port = match args.http_addr.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>())) {
        Some(("127.0.0.1" | "localhost", Ok(p))) => p,
        _ => {
            eprintln!("miroir-testnode: `--http-addr {}`: expected 127.0.0.1:PORT or localhost:PORT", args.http_addr);
            std::process::exit(2);
        }
    };
    let options = miroir_testnode::Options {
        master_key: args.master_key,
        // Meilisearch's defaults, relative to the working directory.
        dump_dir: Some(args.dump_dir.unwrap_or_else(|| "dumps".into())),
        snapshot_dir: Some(args.snapshot_dir.unwrap_or_else(|| "snapshots".into())),
        import_dump: args.import_dump,
    };
    let node = match miroir_testnode::TestNode::start_with(port, options).await {
        Ok(n) => n,
        Err(e) => {
            eprintln!("miroir-testnode: cannot listen on {}: {e}", args.http_addr);
            std::process::exit(1);
        }
    };
    eprintln!("miroir-testnode (test-only, in memory) listening on {}", node.url());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    drop(node);
}

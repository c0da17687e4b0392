//! `miroir dev`: a real local cluster in one command — N Meilisearch processes with their data
//! under `./.miroir-dev/` (kept between runs), Miroir in front of them with the embedded SQLite
//! task store. Ctrl-C or SIGTERM stops everything; no `meilisearch` process outlives Miroir:
//!
//! * each node runs in its own process group (a terminal's Ctrl-C reaches Miroir only, which
//!   stops the nodes in order: SIGTERM, then SIGKILL after a grace period);
//! * a guard kills the nodes when `miroir dev` returns early or panics;
//! * each node is started with the parent-death signal set to SIGKILL, so even a `kill -9` of
//!   Miroir takes the nodes down with it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::config::{Config, HealthConfig, Keys, NodeConfig, ScatterConfig, Secret, ServerConfig, StoreBackend, TaskStoreConfig};

/// Options of `miroir dev`.
#[derive(clap::Args, Debug, Clone)]
pub struct DevArgs {
    /// Number of Meilisearch nodes to start (spread over the replica groups in turn).
    #[arg(long, default_value_t = 3)]
    pub nodes: u32,
    /// Number of shards (fixed for the life of the data folder; docs/hashing.md says why 1260).
    #[arg(long, default_value_t = crate::dataplane::placement::DEFAULT_SHARDS)]
    pub shards: u32,
    /// Copies of each shard inside each replica group.
    #[arg(long, default_value_t = 1)]
    pub replication_factor: u32,
    /// Replica groups, each holding every shard.
    #[arg(long, default_value_t = 1)]
    pub replica_groups: u32,
    /// Port Miroir answers on (127.0.0.1); the nodes take the ports right after it.
    #[arg(long, default_value_t = 7700)]
    pub port: u16,
    /// Where the nodes' data, the task store and the generated keys live.
    #[arg(long, default_value = ".miroir-dev")]
    pub data_dir: PathBuf,
    /// The Meilisearch executable (default: `meilisearch` on PATH).
    #[arg(long, env = "MEILI_BIN")]
    pub meili_bin: Option<PathBuf>,
    /// `--max-indexing-threads` of each node (default: Meilisearch's own).
    #[arg(long)]
    pub max_indexing_threads: Option<u32>,
}

/// What a data folder was created with: the shape must stay the same between runs (moving
/// data between nodes is the rebalancer's job, not `miroir dev`'s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Layout {
    nodes: u32,
    shards: u32,
    replication_factor: u32,
    replica_groups: u32,
}

/// Keys generated on the first run and kept with the data.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DevKeys {
    master_key: String,
    node_master_key: String,
}

/// The one line printed when no Meilisearch executable can be found.
pub const NO_MEILISEARCH: &str = "miroir dev needs a Meilisearch executable: set MEILI_BIN=/path/to/meilisearch or put `meilisearch` on PATH (release binaries: https://github.com/meilisearch/meilisearch/releases, or `curl -L https://install.meilisearch.com | sh`; Docker users: `docker run getmeili/meilisearch:v1.50.0` and `miroir serve --config` with its address)";

fn find_meilisearch(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit.filter(|p| !p.as_os_str().is_empty()) {
        if !p.exists() {
            bail!("MEILI_BIN names `{}`, which does not exist. {NO_MEILISEARCH}", p.display());
        }
        return Ok(p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("meilisearch");
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    bail!("{NO_MEILISEARCH}")
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// Checks the shape before anything starts; messages name the flags.
fn check_shape(a: &DevArgs) -> anyhow::Result<()> {
    if a.nodes == 0 || a.shards == 0 || a.replication_factor == 0 || a.replica_groups == 0 {
        bail!("--nodes, --shards, --replication-factor and --replica-groups must all be at least 1");
    }
    if a.nodes < a.replica_groups {
        bail!("--replica-groups {} needs at least as many nodes (--nodes {})", a.replica_groups, a.nodes);
    }
    let smallest = a.nodes / a.replica_groups;
    if a.replication_factor > smallest {
        bail!(
            "--replication-factor {} needs at least {} nodes in every replica group; --nodes {} over --replica-groups {} gives {smallest}",
            a.replication_factor,
            a.replication_factor,
            a.nodes,
            a.replica_groups
        );
    }
    let last = u32::from(a.port) + a.nodes;
    if last > u32::from(u16::MAX) {
        bail!("--port {} leaves no room for {} node ports after it", a.port, a.nodes);
    }
    Ok(())
}

fn random_key() -> String {
    let bytes: [u8; 24] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Reads the folder's layout and keys, or records them on the first run.
fn prepare_data_dir(dir: &Path, layout: &Layout) -> anyhow::Result<DevKeys> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let layout_path = dir.join("layout.json");
    match std::fs::read_to_string(&layout_path) {
        Ok(text) => {
            let found: Layout = serde_json::from_str(&text).with_context(|| format!("reading {}", layout_path.display()))?;
            if &found != layout {
                bail!(
                    "{} holds a cluster of {} node(s), {} shards, replication factor {}, {} replica group(s); this run asks for {} node(s), {} shards, replication factor {}, {} replica group(s). Run with the same shape, or use another --data-dir (or delete this one) to start over",
                    dir.display(),
                    found.nodes,
                    found.shards,
                    found.replication_factor,
                    found.replica_groups,
                    layout.nodes,
                    layout.shards,
                    layout.replication_factor,
                    layout.replica_groups
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_private(&layout_path, &serde_json::to_string_pretty(layout)?)?;
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", layout_path.display())),
    }
    let keys_path = dir.join("keys.json");
    match std::fs::read_to_string(&keys_path) {
        Ok(text) => Ok(serde_json::from_str(&text).with_context(|| format!("reading {}", keys_path.display()))?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keys = DevKeys { master_key: random_key(), node_master_key: random_key() };
            write_private(&keys_path, &serde_json::to_string_pretty(&keys)?)?;
            Ok(keys)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", keys_path.display())),
    }
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// One started node.
struct NodeProc {
    id: String,
    url: String,
    log: PathBuf,
    child: tokio::process::Child,
}

/// Kills every node still running when dropped (early return, error, panic).
struct Nodes(Vec<NodeProc>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for n in &mut self.0 {
            if let Ok(None) = n.child.try_wait() {
                let _ = n.child.start_kill();
            }
        }
    }
}

impl Nodes {
    /// SIGTERM to every node, then SIGKILL to those still running after `grace`.
    async fn stop(mut self, grace: Duration) {
        for n in &self.0 {
            if let Some(pid) = n.child.id() {
                // SAFETY: plain kill(2) on a child we spawned and have not reaped.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGTERM);
                }
            }
        }
        let deadline = Instant::now() + grace;
        for n in &mut self.0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, n.child.wait()).await.is_err() {
                tracing::warn!(node = %n.id, "node did not stop within the grace period; killing it");
                let _ = n.child.kill().await;
            }
        }
        self.0.clear();
    }
}

fn spawn_node(bin: &Path, port: u16, data: &Path, key: &str, threads: Option<u32>) -> anyhow::Result<(tokio::process::Child, PathBuf)> {
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    let log_path = data.join("meilisearch.log");
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("--http-addr")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--db-path")
        .arg(data.join("data.ms"))
        .arg("--dump-dir")
        .arg(data.join("dumps"))
        .arg("--snapshot-dir")
        .arg(data.join("snapshots"))
        .arg("--no-analytics")
        .arg("--env")
        .arg("development")
        .env("MEILI_MASTER_KEY", key)
        .current_dir(data)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    if let Some(t) = threads {
        cmd.arg("--max-indexing-threads").arg(t.to_string());
    }
    let parent = std::process::id();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Own process group: a terminal's Ctrl-C goes to Miroir, which stops the nodes.
            libc::setpgid(0, 0);
            // Die with Miroir, even when it is killed with SIGKILL.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() as u32 != parent {
                // Miroir died before the signal was armed.
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let child = cmd.spawn().with_context(|| format!("starting {}", bin.display()))?;
    Ok((child, log_path))
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}

async fn wait_until_healthy(node: &mut NodeProc, within: Duration) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = node.child.try_wait()? {
            bail!("node {} exited during start-up ({status}); last lines of {}:\n{}", node.id, node.log.display(), log_tail(&node.log));
        }
        if let Ok(r) = http.get(format!("{}/health", node.url)).timeout(Duration::from_secs(1)).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("node {} did not answer /health within {}s; see {}", node.id, within.as_secs(), node.log.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the dev cluster until SIGINT/SIGTERM. Must be awaited on the thread that runs the
/// runtime's top-level future (not spawned): the nodes' parent-death signal fires when the
/// *thread* that started them ends.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    // Before anything starts: a Ctrl-C during start-up then stops what was started.
    let mut signal = super::ShutdownSignal::listen();
    check_shape(&args)?;
    let bin = find_meilisearch(args.meili_bin.as_deref())?;
    let layout = Layout {
        nodes: args.nodes,
        shards: args.shards,
        replication_factor: args.replication_factor,
        replica_groups: args.replica_groups,
    };
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize().with_context(|| format!("resolving {}", args.data_dir.display()))?;
    let keys = prepare_data_dir(&data_dir, &layout)?;
    let ports: Vec<u16> = (0..=args.nodes).map(|i| args.port + i as u16).collect();
    if let Some(p) = ports.iter().find(|p| !port_is_free(**p)) {
        bail!("port {p} on 127.0.0.1 is in use (is another `miroir dev` running?); choose another --port");
    }

    let mut nodes = Nodes(Vec::new());
    for i in 0..args.nodes {
        let id = format!("node-{i}");
        let port = ports[i as usize + 1];
        let (child, log) = spawn_node(&bin, port, &data_dir.join(&id), &keys.node_master_key, args.max_indexing_threads)?;
        nodes.0.push(NodeProc { id, url: format!("http://127.0.0.1:{port}"), log, child });
    }
    for n in &mut nodes.0 {
        wait_until_healthy(n, Duration::from_secs(120)).await?;
    }

    let cfg = Config {
        shards: args.shards,
        replication_factor: args.replication_factor,
        replica_groups: args.replica_groups,
        nodes: nodes
            .0
            .iter()
            .enumerate()
            .map(|(i, n)| NodeConfig { id: n.id.clone(), address: n.url.clone(), replica_group: i as u32 % args.replica_groups })
            .collect(),
        task_store: TaskStoreConfig { backend: StoreBackend::Sqlite, path: data_dir.join("miroir.db"), ..TaskStoreConfig::default() },
        health: HealthConfig::default(),
        scatter: ScatterConfig::default(),
        server: ServerConfig { bind: "127.0.0.1".into(), port: args.port, ..ServerConfig::default() },
        replication: Default::default(),
        rebalance: Default::default(),
        keys: Default::default(),
    };
    let secrets = Keys {
        master_key: Secret(Some(keys.master_key.clone())),
        node_master_key: Secret(Some(keys.node_master_key.clone())),
        admin_api_key: Secret(None),
    };
    let running = super::serve::start(&cfg, secrets).await?;

    println!("Miroir dev cluster: {} Meilisearch node(s) ({}), {} shards, replication factor {}, {} replica group(s)", args.nodes, bin.display(), args.shards, args.replication_factor, args.replica_groups);
    println!("  URL:         {}", running.server.url());
    println!("  Master key:  {}", keys.master_key);
    println!("  Data folder: {} (kept between runs; delete it to start over)", data_dir.display());
    for n in &nodes.0 {
        println!("  Node:        {} {} pid {} (log: {})", n.id, n.url, n.child.id().unwrap_or(0), n.log.display());
    }
    println!("Press Ctrl-C to stop.");

    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut exited: Vec<String> = Vec::new();
    let reason = loop {
        tokio::select! {
            s = signal.recv() => break s,
            _ = tick.tick() => {
                for n in &mut nodes.0 {
                    if exited.contains(&n.id) {
                        continue;
                    }
                    if let Ok(Some(status)) = n.child.try_wait() {
                        tracing::error!(node = %n.id, %status, log = %n.log.display(), "a Meilisearch node exited; Miroir goes on without it");
                        exited.push(n.id.clone());
                    }
                }
            }
        }
    };
    tracing::info!(signal = reason, "stopping Miroir and the nodes");
    running.server.shutdown().await;
    nodes.stop(Duration::from_secs(10)).await;
    println!("Stopped.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(nodes: u32, rf: u32, groups: u32) -> DevArgs {
        DevArgs {
            nodes,
            shards: 16,
            replication_factor: rf,
            replica_groups: groups,
            port: 7700,
            data_dir: ".miroir-dev".into(),
            meili_bin: None,
            max_indexing_threads: None,
        }
    }

    #[test]
    fn shapes_are_checked_with_the_flags_named() {
        assert!(check_shape(&args(3, 1, 1)).is_ok());
        assert!(check_shape(&args(4, 2, 2)).is_ok());
        let e = check_shape(&args(3, 2, 2)).unwrap_err().to_string();
        assert!(e.contains("--replication-factor 2") && e.contains("gives 1"), "{e}");
        let e = check_shape(&args(1, 1, 2)).unwrap_err().to_string();
        assert!(e.contains("--replica-groups 2"), "{e}");
    }

    #[test]
    fn a_data_folder_keeps_its_shape_and_keys() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout { nodes: 3, shards: 16, replication_factor: 1, replica_groups: 1 };
        let k1 = prepare_data_dir(dir.path(), &layout).unwrap();
        let k2 = prepare_data_dir(dir.path(), &layout).unwrap();
        assert_eq!(k1.master_key, k2.master_key);
        assert_ne!(k1.master_key, k1.node_master_key);
        let other = Layout { shards: 32, ..layout };
        let e = prepare_data_dir(dir.path(), &other).unwrap_err().to_string();
        assert!(e.contains("16 shards") && e.contains("32 shards"), "{e}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("keys.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "keys are private to the user");
    }

    #[test]
    fn no_meilisearch_is_one_clear_line() {
        let e = find_meilisearch(Some(Path::new("/nonexistent/meilisearch"))).unwrap_err().to_string();
        assert!(e.contains("MEILI_BIN") && !e.contains('\n'), "{e}");
    }
}

#![allow(dead_code)]
//! A real `miroir serve` process for tests that need to `kill -9` Miroir itself: the binary
//! Cargo built for this test (`CARGO_BIN_EXE_miroir`), a YAML config file written into a
//! temporary directory (with the SQLite store file next to it unless told otherwise), the
//! secrets in `MIROIR_MASTER_KEY` / `MIROIR_NODE_MASTER_KEY` / `MIROIR_ADMIN_API_KEY`, its log
//! in `miroir.log` there.
//!
//! [`MiroirProcess::kill`] is `kill -9`; [`MiroirProcess::restart`] starts the same binary
//! again on the same config, port and store. Dropping the handle kills the process, so a
//! failing test leaves nothing running.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use miroir::config::{Config, HealthConfig, NodeConfig, RebalanceConfig, ReplicationConfig, ScatterConfig, ServerConfig, TaskStoreConfig};
use miroir::dataplane::topology::Topology;

/// What a `miroir serve` config file says, minus the port (chosen at start).
#[derive(Clone, Debug)]
pub struct ProcessConfig {
    pub topology: Topology,
    /// `None`: SQLite at `<dir>/miroir.db`.
    pub task_store: Option<TaskStoreConfig>,
    pub health: HealthConfig,
    pub scatter: ScatterConfig,
    pub replication: ReplicationConfig,
    pub rebalance: RebalanceConfig,
    /// `server.shutdown_delay_ms`.
    pub shutdown_delay_ms: u64,
}

impl ProcessConfig {
    /// Short health intervals (failures seen within a few hundred ms), SQLite store.
    pub fn new(topology: Topology) -> ProcessConfig {
        ProcessConfig {
            topology,
            task_store: None,
            health: HealthConfig { interval_ms: 100, timeout_ms: 2000, unhealthy_threshold: 3, recovery_threshold: 1 },
            scatter: ScatterConfig { node_timeout_ms: 10_000, ..ScatterConfig::default() },
            replication: ReplicationConfig::default(),
            rebalance: RebalanceConfig { poll_interval_ms: 100, cutover_grace_ms: 300, ..RebalanceConfig::default() },
            shutdown_delay_ms: 0,
        }
    }
}

pub struct MiroirProcess {
    child: Option<Child>,
    dir: tempfile::TempDir,
    config_path: PathBuf,
    pub port: u16,
    master_key: String,
    node_key: String,
    admin_key: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl MiroirProcess {
    /// Writes the config file and starts `miroir serve`; returns once it answers
    /// `GET /_miroir/topology` (admin key).
    /// `MIROIR_MASTER_KEY`, `MIROIR_NODE_MASTER_KEY` and `MIROIR_ADMIN_API_KEY` are the three keys.
    pub async fn start(cfg: &ProcessConfig, master_key: &str, node_key: &str, admin_key: &str) -> MiroirProcess {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config_path = dir.path().join("miroir.yaml");
        let mut p = MiroirProcess {
            child: None,
            dir,
            config_path,
            port,
            master_key: master_key.to_string(),
            node_key: node_key.to_string(),
            admin_key: admin_key.to_string(),
        };
        p.write_config(cfg);
        p.spawn().await;
        p
    }

    /// Writes the config file (same port and store); a running process reads it on SIGHUP
    /// or its next start.
    pub fn write_config(&self, cfg: &ProcessConfig) {
        let task_store = cfg
            .task_store
            .clone()
            .unwrap_or_else(|| TaskStoreConfig { path: self.dir.path().join("miroir.db"), ..TaskStoreConfig::default() });
        let config = Config {
            shards: cfg.topology.shards,
            replication_factor: cfg.topology.replication_factor,
            replica_groups: cfg.topology.replica_groups,
            nodes: cfg
                .topology
                .nodes
                .iter()
                .map(|n| NodeConfig { id: n.id.clone(), address: n.address.clone(), replica_group: n.replica_group })
                .collect(),
            task_store,
            health: cfg.health.clone(),
            scatter: cfg.scatter.clone(),
            server: ServerConfig { bind: "127.0.0.1".into(), port: self.port, shutdown_delay_ms: cfg.shutdown_delay_ms, ..ServerConfig::default() },
            replication: cfg.replication.clone(),
            rebalance: cfg.rebalance.clone(),
            keys: Default::default(),
        };
        let yaml = serde_yaml_ng::to_string(&config).expect("config to YAML");
        // What the binary will read must be what we meant.
        let parsed = Config::parse(&yaml, "test config").expect("the written config is valid");
        assert_eq!(parsed, config);
        std::fs::write(&self.config_path, yaml).unwrap();
    }

    /// Sends a signal (e.g. `libc::SIGHUP`) to the running process.
    pub fn signal(&self, sig: i32) {
        if let Some(c) = self.child.as_ref() {
            // SAFETY: kill(2) on our own child, which has not been reaped yet.
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    async fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("miroir log file");
        let child = Command::new(env!("CARGO_BIN_EXE_miroir"))
            .arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .env("MIROIR_MASTER_KEY", &self.master_key)
            .env("MIROIR_NODE_MASTER_KEY", &self.node_key)
            .env("MIROIR_ADMIN_API_KEY", &self.admin_key)
            .env("MIROIR_LOG", std::env::var("MIROIR_TEST_PROCESS_LOG").unwrap_or_else(|_| "info".into()))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start miroir serve");
        self.child = Some(child);
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("miroir serve exited at start ({status}); its log:\n{}", self.log());
                }
            }
            let r = client
                .get(format!("{}/_miroir/topology", self.url()))
                .bearer_auth(&self.admin_key)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if matches!(&r, Ok(r) if r.status().is_success()) {
                return;
            }
            assert!(Instant::now() < deadline, "miroir serve did not answer within 60 s; its log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("miroir.log")
    }

    /// The process's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// `kill -9`: no shutdown code runs; returns once the process is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child, which has not been reaped yet.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGKILL);
            }
            let _ = c.wait();
        }
    }

    /// Waits (at most `within`) for the process to exit by itself, e.g. after SIGTERM;
    /// returns its exit status (`None`: still running then).
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            let c = self.child.as_mut()?;
            if let Ok(Some(status)) = c.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the binary again on the same config file, port and store.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }
}

impl Drop for MiroirProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

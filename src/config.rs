//! The `miroir serve` configuration file (YAML). Every key is documented in
//! `config/example.yaml`. Secrets never live in the file: they come from the environment
//! (`MIROIR_MASTER_KEY`, `MIROIR_NODE_MASTER_KEY`, `MIROIR_ADMIN_API_KEY`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataplane::topology::{NodeSpec, Topology};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub shards: u32,
    pub replication_factor: u32,
    #[serde(default = "one")]
    pub replica_groups: u32,
    pub nodes: Vec<NodeConfig>,
    #[serde(default)]
    pub task_store: TaskStoreConfig,
    #[serde(default)]
    pub health: HealthConfig,
    #[serde(default)]
    pub scatter: ScatterConfig,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub replication: ReplicationConfig,
    #[serde(default)]
    pub rebalance: RebalanceConfig,
    /// Names of the environment variables holding the secrets (defaults shown in example.yaml).
    #[serde(default)]
    pub keys: KeysConfig,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub id: String,
    pub address: String,
    #[serde(default)]
    pub replica_group: u32,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    #[default]
    Sqlite,
    Redis,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TaskStoreConfig {
    #[serde(default)]
    pub backend: StoreBackend,
    /// SQLite database file (backend `sqlite`).
    #[serde(default = "default_sqlite_path")]
    pub path: PathBuf,
    /// Redis URL (backend `redis`), e.g. `redis://127.0.0.1:6379`.
    #[serde(default)]
    pub url: Option<String>,
    /// Key prefix in Redis.
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

fn default_sqlite_path() -> PathBuf {
    PathBuf::from("miroir.db")
}
fn default_prefix() -> String {
    "miroir:".to_string()
}

impl Default for TaskStoreConfig {
    fn default() -> Self {
        TaskStoreConfig { backend: StoreBackend::Sqlite, path: default_sqlite_path(), url: None, prefix: default_prefix() }
    }
}

/// Node health checking. Same meaning in the config file and in a MiroirCluster spec.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// How often each node's `/health` is probed.
    #[serde(default = "d_interval")]
    pub interval_ms: u64,
    /// A probe slower than this counts as a failure.
    #[serde(default = "d_timeout")]
    pub timeout_ms: u64,
    /// Consecutive failures that mark a healthy node failed.
    #[serde(default = "d_unhealthy")]
    pub unhealthy_threshold: u32,
    /// Consecutive successes that bring a failed node back to healthy (it is `recovering` meanwhile).
    #[serde(default = "d_recovery")]
    pub recovery_threshold: u32,
}
fn d_interval() -> u64 {
    1000
}
fn d_timeout() -> u64 {
    500
}
fn d_unhealthy() -> u32 {
    3
}
fn d_recovery() -> u32 {
    2
}
impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval_ms: d_interval(),
            timeout_ms: d_timeout(),
            unhealthy_threshold: d_unhealthy(),
            recovery_threshold: d_recovery(),
        }
    }
}

/// Replica consistency: missed writes, replay, rebuilds and the anti-entropy check.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReplicationConfig {
    /// Per node: once the bodies of its pending missed operations add up to more than this,
    /// they are dropped and the node's shards are rebuilt from an up-to-date replica instead.
    #[serde(default = "d_missed_budget")]
    pub missed_budget_bytes: u64,
    /// How often the background check compares the replicas of every shard (0: never).
    #[serde(default = "d_anti_entropy_interval")]
    pub anti_entropy_interval_ms: u64,
    /// How often the replay worker looks for nodes to catch up (it is also woken by writes).
    #[serde(default = "d_replay_interval")]
    pub replay_interval_ms: u64,
    /// How long a write that misses quorum only because holders of its shards are replaying
    /// missed writes waits for the replay to apply it before it is refused (0: never waits).
    #[serde(default = "d_queued_write_wait")]
    pub queued_write_wait_ms: u64,
}
fn d_queued_write_wait() -> u64 {
    2_000
}
fn d_missed_budget() -> u64 {
    256 * 1024 * 1024
}
fn d_anti_entropy_interval() -> u64 {
    300_000
}
fn d_replay_interval() -> u64 {
    500
}
impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            missed_budget_bytes: d_missed_budget(),
            anti_entropy_interval_ms: d_anti_entropy_interval(),
            replay_interval_ms: d_replay_interval(),
            queued_write_wait_ms: d_queued_write_wait(),
        }
    }
}

/// Data movement when nodes are added, drained or removed (see `docs/rebalance.md`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RebalanceConfig {
    /// Shards copied at the same time.
    #[serde(default = "d_concurrent_moves")]
    pub max_concurrent_moves: usize,
    /// Documents copied per second over all moves (0: as fast as the nodes take them).
    #[serde(default)]
    pub max_documents_per_second: u64,
    /// How often every process reads the stored placement (a migration's phase changes reach
    /// the other processes within this).
    #[serde(default = "d_placement_poll")]
    pub poll_interval_ms: u64,
    /// How long the executor waits, once it asked every process to hold writes for the
    /// cut-over, for writes other processes already started (with a Redis store; a SQLite
    /// store has one process). Bounded by the node timeout of a write.
    #[serde(default = "d_cutover_grace")]
    pub cutover_grace_ms: u64,
}
fn d_concurrent_moves() -> usize {
    2
}
fn d_placement_poll() -> u64 {
    500
}
fn d_cutover_grace() -> u64 {
    2000
}
impl Default for RebalanceConfig {
    fn default() -> Self {
        RebalanceConfig {
            max_concurrent_moves: d_concurrent_moves(),
            max_documents_per_second: 0,
            poll_interval_ms: d_placement_poll(),
            cutover_grace_ms: d_cutover_grace(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum UnavailableShardPolicy {
    /// Answer with the shards that are available and name the missing ones in `X-Miroir-Degraded`.
    #[default]
    Partial,
    /// Answer 503 `miroir_shard_unavailable`.
    Error,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ScatterConfig {
    /// Per-node timeout of one scattered request.
    #[serde(default = "d_node_timeout")]
    pub node_timeout_ms: u64,
    #[serde(default)]
    pub unavailable_shard_policy: UnavailableShardPolicy,
    /// Longest time a search reuses an index's cached primary key and settings (a safety
    /// net: writes through Miroir drop the cache at once, see `dataplane::context_cache`);
    /// 0 turns the cache off.
    #[serde(default = "d_index_context_ttl")]
    pub index_context_ttl_ms: u64,
}
fn d_node_timeout() -> u64 {
    5000
}
fn d_index_context_ttl() -> u64 {
    5000
}
impl Default for ScatterConfig {
    fn default() -> Self {
        ScatterConfig {
            node_timeout_ms: d_node_timeout(),
            unavailable_shard_policy: UnavailableShardPolicy::Partial,
            index_context_ttl_ms: d_index_context_ttl(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "d_bind")]
    pub bind: String,
    #[serde(default = "d_port")]
    pub port: u16,
    /// Largest accepted request body (Meilisearch's default is 100 MB).
    #[serde(default = "d_max_body")]
    pub max_body_bytes: usize,
    /// `development` (default) or `production`, as Meilisearch's `--env`: production refuses to
    /// start without a master key of at least 16 bytes.
    #[serde(default)]
    pub env: ServerEnv,
    /// After SIGTERM: how long `/ready` answers 503 while every request is still served (so
    /// that load balancers stop sending new ones), before the listener closes and the
    /// requests in flight finish. 0 (default): close at once.
    #[serde(default)]
    pub shutdown_delay_ms: u64,
}

/// Meilisearch's `--env`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerEnv {
    #[default]
    Development,
    Production,
}
fn d_bind() -> String {
    "127.0.0.1".to_string()
}
fn d_port() -> u16 {
    7700
}
fn d_max_body() -> usize {
    104_857_600
}
impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig { bind: d_bind(), port: d_port(), max_body_bytes: d_max_body(), env: ServerEnv::default(), shutdown_delay_ms: 0 }
    }
}

/// Which environment variables hold the secrets. The values themselves never appear in
/// the file, in logs, or in `Debug` output.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    #[serde(default = "d_master_env")]
    pub master_key_env: String,
    #[serde(default = "d_node_env")]
    pub node_master_key_env: String,
    #[serde(default = "d_admin_env")]
    pub admin_api_key_env: String,
}
fn d_master_env() -> String {
    "MIROIR_MASTER_KEY".into()
}
fn d_node_env() -> String {
    "MIROIR_NODE_MASTER_KEY".into()
}
fn d_admin_env() -> String {
    "MIROIR_ADMIN_API_KEY".into()
}
impl Default for KeysConfig {
    fn default() -> Self {
        KeysConfig { master_key_env: d_master_env(), node_master_key_env: d_node_env(), admin_api_key_env: d_admin_env() }
    }
}

/// A secret string whose `Debug` never prints the value.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(pub Option<String>);

impl Secret {
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(_) => f.write_str("Secret(<redacted>)"),
            None => f.write_str("Secret(None)"),
        }
    }
}

/// The three secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    /// Key clients must present (Meilisearch's master key semantics). None: no auth.
    pub master_key: Secret,
    /// Key Miroir presents to the nodes.
    pub node_master_key: Secret,
    /// Key for `/_miroir/*` admin routes. Falls back to the master key when unset.
    pub admin_api_key: Secret,
}

impl Keys {
    pub fn from_env(cfg: &KeysConfig) -> Keys {
        let get = |name: &str| Secret(std::env::var(name).ok().filter(|v| !v.is_empty()));
        Keys {
            master_key: get(&cfg.master_key_env),
            node_master_key: get(&cfg.node_master_key_env),
            admin_api_key: get(&cfg.admin_api_key_env),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid config file {path}: {message}")]
    Invalid { path: String, message: String },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses and validates; `origin` names the source in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let cfg: Config = serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            // One line: serde_yaml_ng names the unknown/missing key and the position.
            message: e.to_string().replace('\n', " "),
        })?;
        cfg.validate().map_err(|message| ConfigError::Invalid { path: origin.to_string(), message })?;
        Ok(cfg)
    }

    pub fn topology(&self) -> Topology {
        Topology {
            shards: self.shards,
            replication_factor: self.replication_factor,
            replica_groups: self.replica_groups,
            nodes: self
                .nodes
                .iter()
                .map(|n| NodeSpec { id: n.id.clone(), address: n.address.clone(), replica_group: n.replica_group })
                .collect(),
        }
    }

    fn validate(&self) -> Result<(), String> {
        self.topology().validate().map_err(|e| e.to_string())?;
        match self.task_store.backend {
            StoreBackend::Redis if self.task_store.url.is_none() => {
                return Err("`task_store.url` is required when `task_store.backend` is `redis`".into())
            }
            _ => {}
        }
        if self.health.interval_ms == 0 {
            return Err("`health.interval_ms` must be at least 1".into());
        }
        if self.health.timeout_ms == 0 {
            return Err("`health.timeout_ms` must be at least 1".into());
        }
        if self.health.unhealthy_threshold == 0 {
            return Err("`health.unhealthy_threshold` must be at least 1".into());
        }
        if self.health.recovery_threshold == 0 {
            return Err("`health.recovery_threshold` must be at least 1".into());
        }
        if self.scatter.node_timeout_ms == 0 {
            return Err("`scatter.node_timeout_ms` must be at least 1".into());
        }
        if self.server.max_body_bytes == 0 {
            return Err("`server.max_body_bytes` must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "shards: 4\nreplication_factor: 1\nnodes:\n  - {id: a, address: 'http://127.0.0.1:7701'}\n";

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::parse(OK, "t").unwrap();
        assert_eq!(c.replica_groups, 1);
        assert_eq!(c.server.port, 7700);
        assert_eq!(c.task_store.backend, StoreBackend::Sqlite);
    }

    #[test]
    fn errors_name_the_key_on_one_line() {
        let cases = [
            (OK.replace("shards: 4", "shards: 0"), "`shards`"),
            (OK.replace("replication_factor: 1", "replication_factor: 2"), "`replication_factor`"),
            (format!("{OK}  - {{id: a, address: 'http://127.0.0.1:7702'}}\n"), "`a`"),
            (format!("{OK}bogus: 1\n"), "bogus"),
            (OK.replace("shards: 4", "shards: 4\nreplica_groups: 2"), "group 1 has no nodes"),
            (format!("{OK}task_store: {{backend: redis}}\n"), "`task_store.url`"),
        ];
        for (text, needle) in cases {
            let e = Config::parse(&text, "t").unwrap_err().to_string();
            assert!(e.contains(needle), "{e} should mention {needle}");
            assert!(!e.contains('\n'), "{e} is not one line");
        }
    }

    #[test]
    fn secrets_are_not_printed_by_debug() {
        let k = Keys { master_key: Secret(Some("s3cret".into())), ..Default::default() };
        assert!(!format!("{k:?}").contains("s3cret"));
    }
}

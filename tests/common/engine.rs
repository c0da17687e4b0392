//! The one seam every test gets its Meilisearch nodes from, real first:
//!
//! 1. `MEILI_BIN` — a `meilisearch` executable named by the environment;
//! 2. `meilisearch` on `PATH`;
//! 3. where a Docker engine answers, the official image `getmeili/meilisearch:v1.50.0`
//!    through `testcontainers`;
//! 4. else the in-repo test node (`tests/testnode`, in process).
//!
//! The choice is made once per test binary ([`engine`]) and printed once per `cargo test` run.
//! Whatever the engine, a node offers the same operations: start (with or without a master
//! key), `kill` (like `kill -9`: connections refused at once, data on disk kept), `restart`
//! on the same address with the same data, and `wipe` (the data dir lost, as when a node is
//! replaced).

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// The official image the Docker tier runs.
pub const MEILISEARCH_IMAGE: (&str, &str) = ("getmeili/meilisearch", "v1.50.0");

/// Where the tests' Meilisearch nodes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// A `meilisearch` executable; `source` says how it was found (`MEILI_BIN` or `PATH`).
    Binary { path: PathBuf, source: &'static str },
    /// `getmeili/meilisearch:v1.50.0` through testcontainers.
    Docker,
    /// The in-repo Meilisearch-compatible test node, in process.
    TestNode,
}

impl Engine {
    pub fn describe(&self) -> String {
        match self {
            Engine::Binary { path, source } => format!("real Meilisearch: {} (from {source})", path.display()),
            Engine::Docker => format!("real Meilisearch: Docker image {}:{} (testcontainers)", MEILISEARCH_IMAGE.0, MEILISEARCH_IMAGE.1),
            Engine::TestNode => "the in-repo test node (no MEILI_BIN, no meilisearch on PATH, no Docker engine)".to_string(),
        }
    }

    pub fn is_real(&self) -> bool {
        !matches!(self, Engine::TestNode)
    }
}

/// The resolution order, pure: each later source is only consulted when the earlier ones
/// gave nothing (so no Docker probe runs when `MEILI_BIN` is set).
pub fn resolve(meili_bin: Option<OsString>, on_path: impl FnOnce() -> Option<PathBuf>, docker_answers: impl FnOnce() -> bool) -> Engine {
    if let Some(bin) = meili_bin.filter(|b| !b.is_empty()) {
        return Engine::Binary { path: PathBuf::from(bin), source: "MEILI_BIN" };
    }
    if let Some(path) = on_path() {
        return Engine::Binary { path, source: "PATH" };
    }
    if docker_answers() {
        return Engine::Docker;
    }
    Engine::TestNode
}

/// `meilisearch` on `PATH`, if any.
pub fn meilisearch_on_path() -> Option<PathBuf> {
    which::which("meilisearch").ok()
}

/// Whether a Docker engine answers `GET /_ping` (at `DOCKER_HOST`, else the default socket).
pub fn docker_answers() -> bool {
    docker_answers_at(&std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string()))
}

/// Whether a Docker engine answers `GET /_ping` at `host` (`unix://PATH` or `tcp://HOST:PORT`).
pub fn docker_answers_at(host: &str) -> bool {
    let ping = |stream: &mut dyn ReadWrite| -> bool {
        if stream.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 512];
        let mut got = Vec::new();
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got);
        text.starts_with("HTTP/1.") && text.contains(" 200 ") && text.trim_end().ends_with("OK")
    };
    let timeout = Some(Duration::from_secs(2));
    if let Some(path) = host.strip_prefix("unix://") {
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(mut s) => {
                let _ = s.set_read_timeout(timeout);
                let _ = s.set_write_timeout(timeout);
                ping(&mut s)
            }
            Err(_) => false,
        }
    } else if let Some(addr) = host.strip_prefix("tcp://") {
        use std::net::ToSocketAddrs;
        let Some(addr) = addr.to_socket_addrs().ok().and_then(|mut a| a.next()) else { return false };
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(mut s) => {
                let _ = s.set_read_timeout(timeout);
                let _ = s.set_write_timeout(timeout);
                ping(&mut s)
            }
            Err(_) => false,
        }
    } else {
        false
    }
}

trait ReadWrite: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> ReadWrite for T {}

/// The engine of this test binary, resolved once; the first binary of a `cargo test` run
/// prints it (straight to stderr, past the test harness's capture).
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let e = resolve(std::env::var_os("MEILI_BIN"), meilisearch_on_path, docker_answers);
        announce_once(&e);
        e
    })
}

/// Prints the engine once per `cargo test` run: test binaries share their parent (cargo),
/// so a marker file named after the parent's pid says whether one already printed it.
fn announce_once(e: &Engine) {
    let ppid = std::os::unix::process::parent_id();
    let marker = std::env::temp_dir().join(format!("miroir-tests-engine-{ppid}"));
    let first = std::fs::OpenOptions::new().write(true).create_new(true).open(&marker).is_ok();
    if first {
        let _ = writeln!(std::io::stderr(), "\n=== Miroir tests: Meilisearch engine = {} ===\n", e.describe());
    }
}

/// Arguments of one `meilisearch` process, as the tests (and `miroir dev`) start it.
pub fn meilisearch_args(port: u16, db_path: &Path, master_key: Option<&str>) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "--http-addr".into(),
        format!("127.0.0.1:{port}").into(),
        "--db-path".into(),
        db_path.into(),
        "--no-analytics".into(),
        "--env".into(),
        "development".into(),
        // Several nodes share two cores here.
        "--max-indexing-threads".into(),
        "1".into(),
    ];
    if let Some(k) = master_key {
        args.push("--master-key".into());
        args.push(k.into());
    }
    args
}

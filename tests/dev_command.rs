//! `miroir dev`: one command starts a local cluster of Meilisearch processes with Miroir in
//! front, the official SDK works against it, and stopping it — Ctrl-C, SIGTERM, or even
//! `kill -9` of Miroir — leaves no `meilisearch` process behind.
//!
//! The Meilisearch executable comes from the engine seam: `MEILI_BIN` or `meilisearch` on PATH
//! (real Meilisearch); otherwise the test node's binary (`miroir-testnode`, built by
//! `cargo test --workspace`), which takes Meilisearch's command line.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Engine;
use serde_json::json;

/// The executable `miroir dev` is given as MEILI_BIN.
fn meilisearch_bin() -> PathBuf {
    match common::engine() {
        Engine::Binary { path, .. } => path.clone(),
        // No real executable: the test node's own binary, next to this test's deps folder.
        Engine::Docker | Engine::TestNode => {
            let exe = std::env::current_exe().unwrap();
            let bin = exe.parent().unwrap().parent().unwrap().join("miroir-testnode");
            assert!(bin.exists(), "{} not built: run the tests with `cargo test --workspace`", bin.display());
            bin
        }
    }
}

struct Dev {
    child: Child,
    url: String,
    master_key: String,
    node_pids: Vec<i32>,
}

/// Starts `miroir dev` and reads what it prints until the cluster is up.
fn start_dev(data_dir: &Path, nodes: u32, port: u16) -> Dev {
    let mut child = Command::new(env!("CARGO_BIN_EXE_miroir"))
        .args(["dev", "--nodes", &nodes.to_string(), "--shards", "8", "--port", &port.to_string(), "--max-indexing-threads", "1"])
        .arg("--data-dir")
        .arg(data_dir)
        .env("MEILI_BIN", meilisearch_bin())
        .env("MIROIR_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start miroir dev");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut url, mut key, mut pids) = (None, None, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("miroir dev printed its URL and key");
        let line = line.trim();
        if let Some(u) = line.strip_prefix("URL:") {
            url = Some(u.trim().to_string());
        } else if let Some(k) = line.strip_prefix("Master key:") {
            key = Some(k.trim().to_string());
        } else if let Some(n) = line.strip_prefix("Node:") {
            let pid = n.split_whitespace().skip_while(|w| *w != "pid").nth(1).unwrap();
            pids.push(pid.parse::<i32>().unwrap());
        } else if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    assert_eq!(pids.len(), nodes as usize);
    Dev { child, url: url.expect("URL line"), master_key: key.expect("master key line"), node_pids: pids }
}

/// Whether `pid` is a live process (a zombie counts as gone).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().chars().next().unwrap_or('?')).unwrap_or('?');
            state != 'Z' && state != 'X'
        }
        Err(_) => false,
    }
}

fn wait_all_gone(pids: &[i32], within: Duration) {
    let deadline = Instant::now() + within;
    while pids.iter().any(|p| alive(*p)) {
        assert!(Instant::now() < deadline, "node processes still running: {:?}", pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A port with the `n` ports after it free too (Miroir, then one per node).
fn free_port_range(n: u16) -> u16 {
    loop {
        let base = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if base.checked_add(n).is_some() && (0..=n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_cluster_serves_the_sdk_and_ctrl_c_leaves_no_node_behind() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port_range(3);
    let mut dev = start_dev(dir.path(), 3, port);
    assert!(dev.node_pids.iter().all(|p| alive(*p)));

    let client = meilisearch_sdk::client::Client::new(dev.url.clone(), Some(dev.master_key.clone())).unwrap();
    let task = client.create_index("movies", Some("id")).await.unwrap();
    task.wait_for_completion(&client, Some(Duration::from_millis(50)), Some(Duration::from_secs(60))).await.unwrap();
    let index = client.index("movies");
    let docs: Vec<serde_json::Value> =
        (0..200).map(|i| json!({"id": i, "title": format!("movie {i} {}", if i % 7 == 0 { "galaxy" } else { "river" })})).collect();
    let task = index.add_documents(&docs, None).await.unwrap();
    let done = task.wait_for_completion(&client, Some(Duration::from_millis(50)), Some(Duration::from_secs(60))).await.unwrap();
    assert!(done.is_success(), "{done:?}");
    let res = index.search().with_query("galaxy").with_limit(100).execute::<serde_json::Value>().await.unwrap();
    assert_eq!(res.hits.len(), 29, "every 7th of 200 documents matches");
    // the master key is required, as on Meilisearch
    let anonymous = meilisearch_sdk::client::Client::new(dev.url.clone(), None::<String>).unwrap();
    assert!(anonymous.get_indexes().await.is_err());

    // Ctrl-C (SIGINT to Miroir): everything stops, nothing is left behind
    signal(&dev.child, libc::SIGINT);
    let status = dev.child.wait().unwrap();
    assert!(status.success(), "miroir dev exits cleanly on Ctrl-C: {status}");
    wait_all_gone(&dev.node_pids, Duration::from_secs(20));

    // Started again on the same folder: same key, same shape. (A real Meilisearch also keeps
    // its documents there; the test node keeps nothing on disk, so that is checked only there.)
    let mut again = start_dev(dir.path(), 3, port);
    assert_eq!(again.master_key, dev.master_key, "keys are kept with the data");
    if common::engine().is_real() {
        let client = meilisearch_sdk::client::Client::new(again.url.clone(), Some(again.master_key.clone())).unwrap();
        let res = client.index("movies").search().with_query("galaxy").with_limit(100).execute::<serde_json::Value>().await.unwrap();
        assert_eq!(res.hits.len(), 29, "documents are kept between runs");
    }
    signal(&again.child, libc::SIGTERM);
    assert!(again.child.wait().unwrap().success(), "SIGTERM stops it cleanly too");
    wait_all_gone(&again.node_pids, Duration::from_secs(20));

    // a different shape on the same folder is refused, with nothing started
    let out = Command::new(env!("CARGO_BIN_EXE_miroir"))
        .args(["dev", "--nodes", "3", "--shards", "16", "--port", &port.to_string()])
        .arg("--data-dir")
        .arg(dir.path())
        .env("MEILI_BIN", meilisearch_bin())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("8 shards") && err.contains("16 shards"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_miroir_takes_the_nodes_down_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port_range(2);
    let mut dev = start_dev(dir.path(), 2, port);
    assert!(dev.node_pids.iter().all(|p| alive(*p)));
    signal(&dev.child, libc::SIGKILL);
    let _ = dev.child.wait();
    wait_all_gone(&dev.node_pids, Duration::from_secs(20));
}

#[test]
fn without_meilisearch_it_says_how_to_get_it_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_miroir"))
        .args(["dev", "--data-dir"])
        .arg(dir.path())
        .env_remove("MEILI_BIN")
        .env("PATH", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("MEILI_BIN") && err.contains("meilisearch"), "{err}");
    assert!(!dir.path().join("node-0").exists(), "nothing was started");
}

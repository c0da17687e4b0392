//! The tests' engine seam: its resolution order (`MEILI_BIN`, then `meilisearch` on `PATH`,
//! then a Docker engine, then the in-repo test node) and its Docker probe. No Docker engine runs
//! on this project's CI machine, so the order is tested on the pure function.

mod common;

use std::io::Write;

use common::engine::{docker_answers_at, resolve, Engine};


#[test]
fn meili_bin_wins_and_nothing_else_is_probed() {
    let e = resolve(Some("/opt/meili".into()), || panic!("PATH must not be searched"), || panic!("Docker must not be probed"));
    assert_eq!(e, Engine::Binary { path: "/opt/meili".into(), source: "MEILI_BIN" });
}

#[test]
fn path_comes_second_then_docker_then_the_test_node() {
    let e = resolve(None, || Some("/usr/bin/meilisearch".into()), || panic!("Docker must not be probed"));
    assert_eq!(e, Engine::Binary { path: "/usr/bin/meilisearch".into(), source: "PATH" });
    // an empty MEILI_BIN counts as unset
    let e = resolve(Some("".into()), || None, || true);
    assert_eq!(e, Engine::Docker);
    assert_eq!(resolve(None, || None, || false), Engine::TestNode);
    assert!(!Engine::TestNode.is_real() && Engine::Docker.is_real());
}

#[test]
fn a_closed_docker_socket_is_no_engine() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker.sock");
    // a socket nobody listens on
    let host = format!("unix://{}", sock.display());
    assert!(!docker_answers_at(&host));
    // a listener that answers like the Docker engine's `/_ping`
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let server = std::thread::spawn(move || {
        use std::io::Read;
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf);
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK").unwrap();
    });
    assert!(docker_answers_at(&host));
    server.join().unwrap();
    assert!(!docker_answers_at("tcp://127.0.0.1:1"), "nothing listens on port 1");
}

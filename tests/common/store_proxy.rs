#![allow(dead_code)]
//! A tiny TCP forwarder for store tests: sits between a store and Redis so a test can take
//! Redis "down" (connections refused), make new connections hang (accepted, never answered),
//! freeze the connections already open (bytes no longer forwarded, sockets kept open: a
//! half-dead connection), and bring everything back on the same port.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

pub struct Forwarder {
    addr: SocketAddr,
    target: SocketAddr,
    running: Mutex<Vec<JoinHandle<()>>>,
    conns: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
    next_id: Arc<AtomicU64>,
    /// Connections with an id below this value do not forward bytes.
    frozen_below: watch::Sender<u64>,
}

impl Forwarder {
    /// Starts forwarding a fresh local port to `target`.
    pub async fn start(target: SocketAddr) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind forwarder");
        let addr = listener.local_addr().unwrap();
        let f = Forwarder {
            addr,
            target,
            running: Mutex::new(Vec::new()),
            conns: Default::default(),
            next_id: Default::default(),
            frozen_below: watch::channel(0).0,
        };
        f.serve(listener, true).await;
        f
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    async fn serve(&self, listener: TcpListener, forward: bool) {
        let target = self.target;
        let conns = self.conns.clone();
        let next_id = self.next_id.clone();
        let frozen = self.frozen_below.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else { continue };
                let id = next_id.fetch_add(1, Ordering::SeqCst);
                let frozen = frozen.subscribe();
                let task = tokio::spawn(async move {
                    if forward {
                        if let Ok(outbound) = TcpStream::connect(target).await {
                            let (ir, iw) = inbound.into_split();
                            let (or, ow) = outbound.into_split();
                            tokio::join!(pump(id, ir, ow, frozen.clone()), pump(id, or, iw, frozen));
                        }
                    } else {
                        // Black hole: keep the socket open, never read or answer.
                        std::future::pending::<()>().await;
                        drop(inbound);
                    }
                });
                conns.lock().unwrap().push(task);
            }
        });
        self.running.lock().await.push(accept);
    }

    /// Closes the listener and every open connection: new connections are refused.
    pub async fn stop(&self) {
        let mut handles: Vec<JoinHandle<()>> = self.running.lock().await.drain(..).collect();
        handles.extend(self.conns.lock().unwrap().drain(..));
        for h in &handles {
            h.abort();
        }
        for h in handles {
            let _ = h.await; // returns once the task (and its sockets) are dropped
        }
    }

    /// Listens again on the same port, forwarding to the target.
    pub async fn restart(&self) {
        self.stop().await;
        self.thaw();
        let listener = bind_again(self.addr).await;
        self.serve(listener, true).await;
    }

    /// Listens on the same port but never answers: every new connection hangs.
    pub async fn black_hole(&self) {
        self.stop().await;
        let listener = bind_again(self.addr).await;
        self.serve(listener, false).await;
    }

    /// The connections open now stop forwarding (their sockets stay open); new ones work.
    pub fn freeze_existing(&self) {
        self.frozen_below.send_replace(self.next_id.load(Ordering::SeqCst));
    }

    /// Frozen connections forward again (including the bytes held meanwhile).
    pub fn thaw(&self) {
        self.frozen_below.send_replace(0);
    }
}

async fn pump(
    id: u64,
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen_below: watch::Receiver<u64>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen_below.wait_for(|below| id >= *below).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn bind_again(addr: SocketAddr) -> TcpListener {
    // SO_REUSEADDR (set by tokio on Unix) lets us rebind while old sockets are in TIME_WAIT.
    for _ in 0..100 {
        if let Ok(l) = TcpListener::bind(addr).await {
            return l;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("cannot bind {addr} again");
}

//! A tiny TCP forwarder for store tests: sits between a store and Redis so a test can take
//! Redis "down" (connections refused), make it hang (connections accepted, never answered),
//! and bring it back on the same port.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

pub struct Forwarder {
    addr: SocketAddr,
    target: SocketAddr,
    running: Mutex<Vec<JoinHandle<()>>>,
    conns: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
}

impl Forwarder {
    /// Starts forwarding a fresh local port to `target`.
    pub async fn start(target: SocketAddr) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind forwarder");
        let addr = listener.local_addr().unwrap();
        let f = Forwarder { addr, target, running: Mutex::new(Vec::new()), conns: Default::default() };
        f.serve(listener, true).await;
        f
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    async fn serve(&self, listener: TcpListener, forward: bool) {
        let target = self.target;
        let conns = self.conns.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                let task = tokio::spawn(async move {
                    if forward {
                        if let Ok(mut outbound) = TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
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
        let listener = bind_again(self.addr).await;
        self.serve(listener, true).await;
    }

    /// Listens on the same port but never answers: every request hangs.
    pub async fn black_hole(&self) {
        self.stop().await;
        let listener = bind_again(self.addr).await;
        self.serve(listener, false).await;
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

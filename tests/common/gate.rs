#![allow(dead_code)]
//! A forwarding HTTP proxy in front of one node that can hold requests: [`Gate::hold`] a
//! path and every request for it waits (counted by [`Gate::held`]) until [`Gate::release`].
//! Tests use it to keep a request in flight inside Miroir for as long as they need, without
//! timing anything.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

#[derive(Clone)]
pub struct Gate {
    pub url: String,
    inner: Arc<Inner>,
}

struct Inner {
    node: String,
    http: reqwest::Client,
    /// Held paths: the sender says whether the path is open again.
    holds: Mutex<HashMap<String, watch::Sender<bool>>>,
    held: Mutex<HashMap<String, usize>>,
}

async fn forward(State(g): State<Arc<Inner>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let wait = g.holds.lock().unwrap().get(&path).map(|tx| tx.subscribe());
    if let Some(mut open) = wait {
        *g.held.lock().unwrap().entry(path.clone()).or_default() += 1;
        let _ = open.wait_for(|o| *o).await;
    }
    let method = req.method().clone();
    let raw = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    let mut out = g.http.request(method, format!("{}{raw}", g.node));
    for name in ["authorization", "content-type"] {
        if let Some(v) = req.headers().get(name) {
            out = out.header(name, v.clone());
        }
    }
    let body = axum::body::to_bytes(req.into_body(), usize::MAX).await.unwrap();
    let resp = match out.body(body).send().await {
        Ok(r) => r,
        Err(_) => return (axum::http::StatusCode::BAD_GATEWAY, "node unreachable").into_response(),
    };
    let status = resp.status();
    let ct = resp.headers().get("content-type").cloned();
    let bytes = resp.bytes().await.unwrap_or_default();
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    if let Some(ct) = ct {
        r.headers_mut().insert("content-type", ct);
    }
    r
}

impl Gate {
    /// Starts a gate forwarding to `node_url`; nothing is held yet.
    pub async fn start(node_url: &str) -> Gate {
        let inner = Arc::new(Inner {
            node: node_url.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            holds: Mutex::default(),
            held: Mutex::default(),
        });
        let app = axum::Router::new().fallback(forward).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Gate { url: format!("http://{addr}"), inner }
    }

    /// Requests for exactly `path` (any method, any query) wait from now on.
    pub fn hold(&self, path: &str) {
        self.inner.holds.lock().unwrap().insert(path.to_string(), watch::channel(false).0);
    }

    /// How many requests for `path` arrived while it was held.
    pub fn held(&self, path: &str) -> usize {
        self.inner.held.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// Lets every waiting request for `path` through, and the next ones too.
    pub fn release(&self, path: &str) {
        if let Some(tx) = self.inner.holds.lock().unwrap().remove(path) {
            let _ = tx.send(true);
        }
    }
}

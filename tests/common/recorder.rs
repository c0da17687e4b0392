//! A recording HTTP proxy in front of one node: every request Miroir sends is recorded
//! (method and the raw path and query, exactly as received) and forwarded to the node
//! unchanged. Tests use it to prove what reached the node.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};

static REGISTRY: Mutex<Vec<Recorder>> = Mutex::new(Vec::new());

#[derive(Clone)]
pub struct Recorder {
    pub url: String,
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

#[derive(Clone)]
struct Target {
    node: String,
    seen: Arc<Mutex<Vec<(String, String)>>>,
    http: reqwest::Client,
}

async fn forward(State(t): State<Target>, req: Request) -> Response {
    let method = req.method().clone();
    let raw = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    t.seen.lock().unwrap().push((method.to_string(), raw.clone()));
    let mut out = t.http.request(method, format!("{}{raw}", t.node));
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

impl Recorder {
    /// Starts a recorder forwarding to `node_url`.
    pub async fn start(node_url: &str) -> Recorder {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let target = Target { node: node_url.trim_end_matches('/').to_string(), seen: seen.clone(), http: reqwest::Client::new() };
        let app = axum::Router::new().fallback(forward).with_state(target);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let r = Recorder { url: format!("http://{addr}"), seen };
        REGISTRY.lock().unwrap().push(r.clone());
        r
    }

    /// The recorder started at `url` in this test binary.
    pub fn registered(url: &str) -> Recorder {
        REGISTRY.lock().unwrap().iter().find(|r| r.url == url).cloned().expect("a recorder at that address")
    }

    /// Everything recorded so far, and clears the record.
    pub fn take(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

//! Client for one unmodified Meilisearch node (reqwest). Every call presents the node
//! master key. Responses keep the node's status and JSON body so that node errors can be
//! passed to the client unchanged.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::config::Secret;

pub mod path;
pub use path::NodePath;

/// A node's answer: HTTP status and JSON body (`Null` when the body was empty).
#[derive(Debug, Clone)]
pub struct NodeResponse {
    pub status: u16,
    pub body: Value,
}

impl NodeResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why a node could not answer at all.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("node {address} unreachable: {message}")]
    Unreachable { address: String, message: String },
    #[error("node {address} timed out")]
    Timeout { address: String },
    #[error("node {address} answered a body that is not JSON: {message}")]
    BadBody { address: String, message: String },
    /// The node answered but refused Miroir's node master key (401/403 with an auth code).
    #[error("node {address} refuses Miroir's node master key")]
    Unauthorized { address: String },
    /// A write was not sent: the node is down or behind, so the write was appended to its
    /// missed-operation log instead (it reaches the node by replay, in order).
    #[error("node {node} is not caught up; the write was queued for it")]
    Queued { node: String, seq: u64 },
}

/// What one health probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `/health` answered `available` and an authenticated call was accepted; the uid of the
    /// node's newest task (`None`: it has none).
    Healthy { newest_task: Option<u64> },
    /// No answer, or not `available`.
    Down,
    /// The node is up but refuses Miroir's node master key.
    Unauthorized,
}

/// Whether a node answer is its refusal of the key Miroir presented (Meilisearch's auth codes).
pub fn is_auth_refusal(r: &NodeResponse) -> bool {
    matches!(r.status, 401 | 403)
        && matches!(r.body.get("code").and_then(Value::as_str), Some("missing_authorization_header" | "invalid_api_key" | "missing_master_key"))
}

#[derive(Clone)]
pub struct NodeClient {
    http: reqwest::Client,
    /// Shared by every clone: a key rotation ([`NodeClient::set_key`]) reaches them all.
    key: std::sync::Arc<std::sync::RwLock<Secret>>,
}

impl NodeClient {
    pub fn new(key: Secret) -> NodeClient {
        let http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("reqwest client");
        NodeClient { http, key: std::sync::Arc::new(std::sync::RwLock::new(key)) }
    }

    /// Replaces the node master key presented from the next request on (key rotation).
    pub fn set_key(&self, key: Secret) {
        *self.key.write().expect("node key lock") = key;
    }

    /// Sends one request. `body` is sent as-is with `content_type`.
    pub async fn send_raw(
        &self,
        address: &str,
        method: Method,
        path: &NodePath,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<NodeResponse, NodeError> {
        let url = format!("{}{path}", address.trim_end_matches('/'));
        let mut req = self.http.request(method, &url).timeout(timeout);
        let key = self.key.read().expect("node key lock").clone();
        if let Some(k) = key.get() {
            req = req.bearer_auth(k);
        }
        if let Some(ct) = content_type {
            req = req.header(reqwest::header::CONTENT_TYPE, ct);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                NodeError::Timeout { address: address.to_string() }
            } else {
                NodeError::Unreachable { address: address.to_string(), message: e.to_string() }
            }
        })?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| {
            if e.is_timeout() {
                NodeError::Timeout { address: address.to_string() }
            } else {
                NodeError::Unreachable { address: address.to_string(), message: e.to_string() }
            }
        })?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| NodeError::BadBody { address: address.to_string(), message: e.to_string() })?
        };
        Ok(NodeResponse { status, body })
    }

    /// Sends a JSON body (or none).
    pub async fn send_json(
        &self,
        address: &str,
        method: Method,
        path: &NodePath,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<NodeResponse, NodeError> {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("serialize json"));
        let ct = bytes.as_ref().map(|_| "application/json");
        self.send_raw(address, method, path, ct, bytes, timeout).await
    }

    /// `GET /health` answered `{"status":"available"}` within `timeout`, and the node accepts
    /// Miroir's node master key (`GET /tasks?limit=1` is authenticated; `/health` is not). The
    /// latter also gives the uid of the node's newest task: Meilisearch never reuses task uids,
    /// so a node whose newest task uid went back has lost its data.
    pub async fn probe_health(&self, address: &str, timeout: Duration) -> Probe {
        match self.send_json(address, Method::GET, &NodePath::route("/health"), None, timeout).await {
            Ok(r) if r.is_success() && r.body.get("status").and_then(Value::as_str) == Some("available") => {}
            _ => return Probe::Down,
        }
        match self.send_json(address, Method::GET, &NodePath::route("/tasks").query("limit", "1"), None, timeout).await {
            Ok(r) if is_auth_refusal(&r) => Probe::Unauthorized,
            Ok(r) if r.is_success() => Probe::Healthy { newest_task: r.body.pointer("/results/0/uid").and_then(Value::as_u64) },
            _ => Probe::Down,
        }
    }
}

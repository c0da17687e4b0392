//! TEMPORARY (replaced by the repair branch): data movement between nodes.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use super::replica::RebuildScope;
use super::{Proxy, RoutingTable};
use crate::node::NodePath;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{0}")]
    Other(String),
}

impl Proxy {
    pub(crate) async fn wait_node_task(&self, address: &str, task_uid: u64) -> Result<String, SyncError> {
        loop {
            let r = self
                .inner
                .nodes
                .send_json(address, Method::GET, &NodePath::task(task_uid), None, self.node_timeout())
                .await
                .map_err(|e| SyncError::Other(e.to_string()))?;
            let status = r.body.get("status").and_then(Value::as_str).unwrap_or("").to_string();
            if matches!(status.as_str(), "succeeded" | "failed" | "canceled") {
                return Ok(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn rebuild(&self, _routing: &RoutingTable, _node: &str, _scope: &RebuildScope) -> Result<(), SyncError> {
        Err(SyncError::Other("rebuild is not merged yet".into()))
    }
}

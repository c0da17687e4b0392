//! Experimental features (`/experimental-features`): one setting of the whole cluster.
//!
//! `PATCH` goes to one node first (it validates the body and answers the whole new object,
//! as Meilisearch does), that object is stored in the task store, then sent as it is to every
//! other node. A node that could not take it is marked unchecked: before it serves again (as
//! a node that comes back, joins with a migration, or is rebuilt) it is given the stored
//! object ([`Proxy::ensure_features`]). `GET` is answered by one node that serves reads:
//! those all hold the stored object.
//!
//! Features that Miroir cannot honour over shards are refused when a client enables them
//! ([`UNSUPPORTED`]), so nothing half-works.

use reqwest::Method;
use serde_json::Value;

use super::fanout::NodeCall;
use super::tasks::store_error;
use super::Proxy;
use crate::error::{ApiError, ApiResult, Code};
use crate::node::NodePath;

/// The node route.
pub fn features_path() -> NodePath {
    NodePath::route("/experimental-features")
}

/// Features a client may not enable through Miroir, and why (also in docs/compat/indexes.md).
pub const UNSUPPORTED: &[(&str, &str)] = &[
    ("metrics", "each node's `/metrics` describes that node only and Miroir does not route `/metrics` to the nodes (Miroir exports its own metrics)"),
    ("logsRoute", "the `/logs` routes configure one node's logger and Miroir does not route them"),
    ("network", "Meilisearch's own sharding over a network of instances would shard again what Miroir already shards"),
    ("getTaskDocumentsRoute", "a Miroir task is not one node task: `/tasks/{uid}/documents` is not routed"),
    ("taskQueueCompactionRoute", "`/tasks/compact` compacts one node's queue and Miroir does not route it"),
    ("chatCompletions", "the `/chats` routes are not routed by Miroir"),
    ("foreignKeys", "hydrating a document from another index needs the documents of every shard on the node that answers"),
    ("dynamicSearchRules", "the `/dynamic-search-rules` routes are not routed by Miroir yet"),
];

/// The refusal of a body enabling an unsupported feature (the first one, in body order).
pub fn refuse_unsupported(body: &Value) -> ApiResult<()> {
    let Some(obj) = body.as_object() else { return Ok(()) };
    for (k, v) in obj {
        if v != &Value::Bool(true) {
            continue;
        }
        if let Some((_, why)) = UNSUPPORTED.iter().find(|(name, _)| name == k) {
            return Err(ApiError::new(
                Code::MiroirFeatureUnsupported,
                format!("The experimental feature `{k}` cannot be enabled through Miroir: {why}."),
            ));
        }
    }
    Ok(())
}

/// Meilisearch's refusal of `POST /render-template` while `renderRoute` is off.
pub fn render_route_disabled() -> ApiError {
    ApiError::new(
        Code::FeatureNotEnabled,
        "calling the /render-template route requires enabling the `render_route` experimental feature. See https://github.com/orgs/meilisearch/discussions/888",
    )
}

impl Proxy {
    /// Whether the cluster's stored features enable `renderRoute` (never set: no). The
    /// nodes hold the same object, so a node answering `/render-template` judges the same.
    pub async fn check_render_route(&self) -> ApiResult<()> {
        let stored = self.store().get_features().await.map_err(store_error)?;
        if stored.as_ref().and_then(|f| f.get("renderRoute")) == Some(&Value::Bool(true)) {
            Ok(())
        } else {
            Err(render_route_disabled())
        }
    }

    /// `GET /experimental-features`: the nodes that serve reads are asked. When they agree,
    /// that is the answer. When one differs from the stored object (changed behind Miroir's
    /// back), it is marked unchecked, so it gets the stored object again before it serves,
    /// and the stored object is the answer.
    pub async fn get_features(&self) -> ApiResult<crate::node::NodeResponse> {
        let routing = self.routing_or_error()?;
        let calls: Vec<NodeCall> = self
            .usable_nodes(&routing)
            .into_iter()
            .map(|id| NodeCall { node_id: id.to_string(), method: Method::GET, path: features_path(), content_type: None, body: None })
            .collect();
        let answers: Vec<(String, crate::node::NodeResponse)> =
            self.call_nodes(&routing, calls).await.into_iter().filter_map(|o| o.result.ok().map(|r| (o.node_id, r))).collect();
        let Some((_, first)) = answers.iter().find(|(_, r)| r.is_success()) else {
            // Nobody answered well: one node's error (or Miroir's), as for any read.
            return self.read_any(&routing, Method::GET, &features_path(), None).await;
        };
        if answers.iter().all(|(_, r)| r.is_success() && r.body == first.body) {
            return Ok(first.clone());
        }
        let Some(stored) = self.store().get_features().await.map_err(store_error)? else { return Ok(first.clone()) };
        for (node, r) in &answers {
            if !(r.is_success() && same_features(&r.body, &stored)) {
                tracing::warn!(node = %node, "the node's experimental features differ from the cluster's; it gets them again before it serves");
                self.inner.sync.mark_unchecked(node);
            }
        }
        let mut answer = first.clone();
        answer.body = match answers.iter().find(|(_, r)| r.is_success() && same_features(&r.body, &stored)) {
            Some((_, r)) => r.body.clone(),
            None => stored,
        };
        Ok(answer)
    }

    /// `PATCH /experimental-features`: validated and applied by one node, stored, then applied
    /// to every other node. Returns the node's answer (the whole object, or its error).
    pub async fn patch_features(&self, body: &Value) -> ApiResult<crate::node::NodeResponse> {
        refuse_unsupported(body)?;
        let routing = self.routing_or_error()?;
        let first = self.read_any(&routing, Method::PATCH, &features_path(), Some(body)).await?;
        if !first.is_success() {
            return Ok(first);
        }
        let state = first.body.clone();
        self.store().put_features(&state).await.map_err(store_error)?;
        let bytes = serde_json::to_vec(&state).expect("json");
        let calls: Vec<NodeCall> = routing
            .topology
            .nodes
            .iter()
            .map(|n| NodeCall {
                node_id: n.id.clone(),
                method: Method::PATCH,
                path: features_path(),
                content_type: Some("application/json"),
                body: Some(bytes.clone()),
            })
            .collect();
        for o in self.call_nodes(&routing, calls).await {
            let took = matches!(&o.result, Ok(r) if r.is_success());
            if !took {
                // It gets the stored object before it serves again.
                tracing::warn!(node = %o.node_id, "the node did not take the experimental features; it is given them before it serves again");
                self.inner.sync.mark_unchecked(&o.node_id);
            }
        }
        Ok(first)
    }

    /// Gives the node at `addr` the stored features, if any were set and it differs. Called
    /// before a node that comes back, joins or is rebuilt serves anything.
    pub(crate) async fn ensure_features(&self, addr: &str) -> Result<(), String> {
        let Some(wanted) = self.store().get_features().await.map_err(|e| e.to_string())? else { return Ok(()) };
        let timeout = self.node_timeout();
        let current = self.inner.nodes.send_json(addr, Method::GET, &features_path(), None, timeout).await.map_err(|e| e.to_string())?;
        if current.is_success() && same_features(&current.body, &wanted) {
            return Ok(());
        }
        let r = self.inner.nodes.send_json(addr, Method::PATCH, &features_path(), Some(&wanted), timeout).await.map_err(|e| e.to_string())?;
        if !r.is_success() {
            return Err(format!("the node refused the experimental features ({}): {}", r.status, r.body));
        }
        tracing::info!(node = %addr, "experimental features applied to the node");
        Ok(())
    }
}

/// Whether the node's object has every stored value.
fn same_features(node: &Value, wanted: &Value) -> bool {
    match wanted.as_object() {
        Some(w) => w.iter().all(|(k, v)| node.get(k) == Some(v)),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_enabling_an_unsupported_feature_is_refused() {
        assert!(refuse_unsupported(&json!({"containsFilter": true, "editDocumentsByFunction": true})).is_ok());
        assert!(refuse_unsupported(&json!({"network": false, "metrics": null})).is_ok());
        let e = refuse_unsupported(&json!({"containsFilter": true, "network": true, "metrics": true})).unwrap_err();
        assert_eq!(e.code_name(), "miroir_feature_unsupported");
        assert!(e.body()["message"].as_str().unwrap().starts_with("The experimental feature `network` cannot be enabled through Miroir"));
    }

    #[test]
    fn stored_values_decide_equality() {
        let wanted = json!({"containsFilter": true, "legacySearch": null});
        assert!(same_features(&json!({"metrics": false, "containsFilter": true, "legacySearch": null}), &wanted));
        assert!(!same_features(&json!({"containsFilter": false, "legacySearch": null}), &wanted));
    }
}

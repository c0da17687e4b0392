//! `POST /render-template` (Meilisearch 1.50, behind the `renderRoute` experimental feature):
//! a template (inline, or one of an index's settings) rendered with an input (an inline
//! document or search, or a stored document named by id). One node answers: every node
//! holds every index's settings and the cluster's features, but a stored document only its
//! shard's holders, so a request naming a document by id goes to a holder of that shard,
//! exactly as `GET /indexes/{uid}/documents/{id}` is routed; any other goes to any node.
//!
//! Meilisearch's order of checks is kept: the key's two actions (`settings.get` and
//! `documents.get`, at the edge), the body, the feature, the indexes the key reaches, then
//! the template and the input (the node's own checks, its errors passed through).

use axum::extract::State;
use axum::response::Response;
use reqwest::Method;

use super::{node_error_or, pass, JsonBody};
use crate::auth::{AuthContext, INVALID_API_KEY};
use crate::dataplane::fanout::DEGRADED_HEADER;
use crate::dataplane::Proxy;
use crate::error::{ApiError, ApiResult, Code};
use crate::model::deserr::parse;
use crate::model::render::RenderQuery;
use crate::model::DocumentId;
use crate::node::NodePath;

pub async fn render(State(proxy): State<Proxy>, auth: AuthContext, JsonBody(body): JsonBody) -> ApiResult<Response> {
    let path = NodePath::route("/render-template");
    let query: RenderQuery = match parse(body.clone()) {
        Ok(q) => q,
        Err(own) => return Err(node_error_or(&proxy, &path, &body, own).await),
    };
    // An index the key does not reach: the feature's refusal comes first, as on Meilisearch.
    if query.named_indexes().iter().any(|uid| !auth.index_authorized(uid)) {
        proxy.check_render_route().await?;
        return Err(ApiError::new(Code::InvalidApiKey, INVALID_API_KEY));
    }
    let routing = proxy.routing_or_error()?;
    let candidates: Vec<String> = match query.input_document().map(|(_, id)| DocumentId::parse(id)) {
        Some(Some(id)) => proxy.document_holders(&routing, &id).map_err(|shard| {
            ApiError::new(Code::MiroirShardUnavailable, format!("Shard {shard} has no healthy copy; the document cannot be read right now."))
                .with_header(DEGRADED_HEADER, format!("shards={shard}"))
        })?,
        // No stored document, or an id no document can have (every node answers it is not
        // found): any node.
        _ => proxy.usable_nodes(&routing).into_iter().map(str::to_string).collect(),
    };
    let r = proxy.read_from(&routing, candidates.iter().map(String::as_str).collect(), Method::POST, &path, Some(&body)).await?;
    pass(r)
}

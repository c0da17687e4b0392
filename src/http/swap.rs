//! `POST /swap-indexes` (swaps and renames, answered like one Meilisearch), and the gate every
//! request on an index passes through so that no request sees a swap half applied across the
//! nodes (see [`crate::dataplane::swap`]).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{accepted, JsonBody};
use crate::dataplane::swap::{self, scope_of};
use crate::dataplane::write::WriteAck;
use crate::dataplane::Proxy;
use crate::error::ApiResult;

pub async fn swap_indexes(State(proxy): State<Proxy>, auth: crate::auth::AuthContext, JsonBody(body): JsonBody) -> ApiResult<Response> {
    let swaps = swap::parse_request(body, |uid| auth.index_authorized(uid))?;
    swap::check_duplicates(&swaps)?;
    let task = proxy.swap_indexes(swaps).await?;
    Ok(accepted(WriteAck { task, report: None }))
}

/// Holds the gate of the index a request names (or the global one) while it runs.
pub async fn gate(State(proxy): State<Proxy>, req: Request, next: Next) -> Response {
    let Some(scope) = scope_of(req.method(), req.uri().path()) else { return next.run(req).await };
    match proxy.enter_gate(&scope).await {
        Ok(_pass) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

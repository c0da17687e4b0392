//! `/experimental-features`: one setting of the whole cluster (see
//! [`crate::dataplane::features`]); answered like one Meilisearch (synchronous, no task).

use axum::extract::State;
use axum::response::Response;

use super::{pass, JsonBody};
use crate::dataplane::Proxy;
use crate::error::ApiResult;

pub async fn get(State(proxy): State<Proxy>) -> ApiResult<Response> {
    pass(proxy.get_features().await?)
}

pub async fn patch(State(proxy): State<Proxy>, JsonBody(body): JsonBody) -> ApiResult<Response> {
    pass(proxy.patch_features(&body).await?)
}

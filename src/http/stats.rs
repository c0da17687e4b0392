//! `/indexes/{uid}/stats` and `/stats`: exact counts for any replication (each document
//! counted once).

use axum::extract::State;
use axum::response::Response;

use super::{read_response, RouteParams};
use crate::dataplane::Proxy;
use crate::error::ApiResult;

pub async fn index_stats(State(proxy): State<Proxy>, params: RouteParams) -> ApiResult<Response> {
    let uid = params.index_uid()?;
    Ok(read_response(proxy.index_stats(&uid).await?))
}

pub async fn global_stats(State(proxy): State<Proxy>) -> ApiResult<Response> {
    Ok(read_response(proxy.global_stats().await?))
}

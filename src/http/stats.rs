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

pub async fn global_stats(State(proxy): State<Proxy>, auth: crate::auth::AuthContext) -> ApiResult<Response> {
    let mut answer = proxy.global_stats().await?;
    // A key restricted to some indexes sees only theirs (the sizes stay the database's).
    if let Some(serde_json::Value::Object(indexes)) = answer.body.get_mut("indexes") {
        indexes.retain(|uid, _| auth.index_authorized(uid));
    }
    Ok(read_response(answer))
}

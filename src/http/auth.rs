//! Auth at the edge: the client's key is checked before any handler runs, and never reaches a
//! node (nodes only ever see the node master key).

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::dataplane::Proxy;
use crate::error::{ApiError, Code};

pub async fn auth(State(proxy): State<Proxy>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/health" {
        return next.run(req).await;
    }
    let keys = proxy.options().keys;
    let expected = if path.starts_with("/_miroir/") {
        keys.admin_api_key.get().or(keys.master_key.get()).map(str::to_string)
    } else {
        keys.master_key.get().map(str::to_string)
    };
    let Some(expected) = expected else { return next.run(req).await };
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match given {
        None => ApiError::new(
            Code::MissingAuthorizationHeader,
            "The Authorization header is missing. It must use the bearer authorization method.",
        )
        .into_response(),
        Some(v) => {
            let token = v.strip_prefix("Bearer ").unwrap_or("").trim();
            if constant_time_eq(token.as_bytes(), expected.as_bytes()) {
                next.run(req).await
            } else {
                ApiError::new(Code::InvalidApiKey, "The provided API key is invalid.").into_response()
            }
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

//! The HTTP API.
use super::Proxy;

pub fn router(_proxy: Proxy) -> axum::Router {
    axum::Router::new()
}

//! Auth at the edge: every request's credential (master key, API key or tenant token) is
//! checked against the action its route needs and the index it names, before any handler
//! runs, with Meilisearch's status, code and message for each refusal ([`crate::auth`]).
//! What was learned goes into the request extensions as an [`AuthContext`]. The client's
//! credential never reaches a node (nodes only ever see the node master key).

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;

use crate::auth::{self, AuthContext, Bearer};
use crate::dataplane::Proxy;
use crate::error::{ApiError, Code};

/// The action a Meilisearch route needs and its `{index_uid}`, if it has one. `None`: not a
/// Meilisearch route Miroir serves (such requests keep needing the master key, if one is set).
pub fn route_action(method: &Method, path: &str) -> Option<(&'static str, Option<String>)> {
    let segs: Vec<&str> = path.split('/').collect();
    let m = method.as_str();
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let action: &'static str = match (m, &segs[..]) {
        ("GET", ["", "version"]) => "version",
        ("GET", ["", "stats"]) => "stats.get",
        ("POST", ["", "multi-search"]) => "search",
        ("GET", ["", "tasks"]) => "tasks.get",
        ("DELETE", ["", "tasks"]) => "tasks.delete",
        ("POST", ["", "tasks", "cancel"]) => "tasks.cancel",
        ("POST", ["", "tasks", "compact"]) => "tasks.compact",
        ("GET", ["", "tasks", _]) => "tasks.get",
        ("GET", ["", "batches"] | ["", "batches", _]) => "tasks.get",
        ("GET", ["", "keys"] | ["", "keys", _]) => "keys.get",
        ("POST", ["", "keys"]) => "keys.create",
        ("PATCH", ["", "keys", _]) => "keys.update",
        ("DELETE", ["", "keys", _]) => "keys.delete",
        ("POST", ["", "swap-indexes"]) => "indexes.swap",
        ("POST", ["", "dumps"]) => "dumps.create",
        ("POST", ["", "snapshots"]) => "snapshots.create",
        ("POST", ["", "export"]) => "export",
        ("GET", ["", "experimental-features"]) => "experimental.get",
        ("PATCH", ["", "experimental-features"]) => "experimental.update",
        ("GET", ["", "network"]) => "network.get",
        ("PATCH", ["", "network"]) => "network.update",
        ("GET", ["", "webhooks"] | ["", "webhooks", _]) => "webhooks.get",
        ("POST", ["", "webhooks"]) => "webhooks.create",
        ("PATCH", ["", "webhooks", _]) => "webhooks.update",
        ("DELETE", ["", "webhooks", _]) => "webhooks.delete",
        ("POST" | "DELETE", ["", "logs", "stream"]) | ("POST", ["", "logs", "stderr"]) => "metrics.get",
        ("GET", ["", "chats"] | ["", "chats", _]) => "chats.get",
        ("DELETE", ["", "chats", _]) => "chats.delete",
        ("GET", ["", "chats", _, "settings"]) => "chatsSettings.get",
        ("PATCH" | "DELETE", ["", "chats", _, "settings"]) => "chatsSettings.update",
        ("POST", ["", "chats", _, "chat", "completions"]) => "chatCompletions",
        // Meilisearch's `DoubleActionPolicy`: `documents.get` too (see [`second_action`]).
        ("POST", ["", "render-template"]) => "settings.get",
        ("GET", ["", "indexes"]) => "indexes.get",
        ("POST", ["", "indexes"]) => "indexes.create",
        (_, ["", "indexes", uid, rest @ ..]) => {
            let action = match (m, rest) {
                ("GET", []) => "indexes.get",
                ("PATCH", []) => "indexes.update",
                ("DELETE", []) => "indexes.delete",
                ("GET", ["settings"] | ["settings", _]) => "settings.get",
                ("PATCH" | "PUT" | "DELETE", ["settings"] | ["settings", _]) => "settings.update",
                ("GET", ["documents"]) => "documents.get",
                ("POST" | "PUT", ["documents"]) => "documents.add",
                ("DELETE", ["documents"]) => "documents.delete",
                ("POST", ["documents", "fetch"]) => "documents.get",
                ("POST", ["documents", "delete-batch" | "delete"]) => "documents.delete",
                ("POST", ["documents", "edit"]) => "documents.*",
                ("GET", ["documents", _]) => "documents.get",
                ("DELETE", ["documents", _]) => "documents.delete",
                ("GET" | "POST", ["search"]) => "search",
                ("POST", ["facet-search"]) => "search",
                ("GET" | "POST", ["similar"]) => "search",
                ("GET", ["stats"]) => "stats.get",
                ("POST", ["compact"]) => "indexes.compact",
                ("POST", ["fields"]) => "fields.post",
                _ => return None,
            };
            return Some((action, Some(decode(uid))));
        }
        _ => return None,
    };
    Some((action, None))
}

/// The other action a route needs, for the few routes that need two (Meilisearch's
/// `DoubleActionPolicy`): checked after the first, with the same index.
pub fn second_action(method: &Method, path: &str) -> Option<&'static str> {
    (method == Method::POST && path == "/render-template").then_some("documents.get")
}

/// Handlers take the middleware's [`AuthContext`] as an argument.
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for AuthContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _state: &S) -> Result<Self, ApiError> {
        // Never defaults to anything: a handler reached without the middleware is a bug.
        parts.extensions.get::<AuthContext>().cloned().ok_or_else(|| ApiError::internal("request without an auth context"))
    }
}

fn refuse(e: ApiError) -> Response {
    e.into_response()
}

pub async fn auth(State(proxy): State<Proxy>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path == "/health" || path == "/ready" {
        return next.run(req).await;
    }
    let keys = proxy.options().keys;
    let bearer = match auth::parse_authorization(req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes())) {
        Ok(b) => b,
        Err(e) => return refuse(e),
    };
    let route = if path.starts_with("/_miroir/") { None } else { route_action(req.method(), &path) };
    let context = match route {
        Some((action, index)) => {
            let context = match auth::authenticate(proxy.store().as_ref(), keys.master_key.get(), &bearer, action, index.as_deref()).await {
                Ok(c) => c,
                Err(e) => return refuse(e),
            };
            if let Some(second) = second_action(req.method(), &path) {
                if let Err(e) = auth::authenticate(proxy.store().as_ref(), keys.master_key.get(), &bearer, second, index.as_deref()).await {
                    return refuse(e);
                }
            }
            context
        }
        // `/_miroir/*` (the admin key, falling back to the master key) and paths that are not
        // Meilisearch routes (the master key): one secret, or open when none is set.
        None => {
            let expected =
                if path.starts_with("/_miroir/") { keys.admin_api_key.get().or(keys.master_key.get()) } else { keys.master_key.get() };
            match (expected, &bearer) {
                (None, _) => AuthContext::Open,
                (Some(_), Bearer::Absent) => {
                    return refuse(ApiError::new(Code::MissingAuthorizationHeader, auth::MISSING_AUTHORIZATION_HEADER))
                }
                (Some(want), Bearer::Token(t)) if auth::constant_time_eq(t.as_bytes(), want.as_bytes()) => AuthContext::Master,
                (Some(_), Bearer::Token(_)) => return refuse(ApiError::new(Code::InvalidApiKey, auth::INVALID_API_KEY)),
            }
        }
    };
    req.extensions_mut().insert(context);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(m: Method, p: &str) -> Option<(&'static str, Option<String>)> {
        route_action(&m, p)
    }

    #[test]
    fn routes_need_meilisearchs_actions() {
        assert_eq!(act(Method::GET, "/indexes/movies/search"), Some(("search", Some("movies".into()))));
        assert_eq!(act(Method::POST, "/indexes/movies/documents"), Some(("documents.add", Some("movies".into()))));
        assert_eq!(act(Method::POST, "/indexes/movies/documents/edit"), Some(("documents.*", Some("movies".into()))));
        assert_eq!(act(Method::DELETE, "/indexes/movies/settings/filterable-attributes"), Some(("settings.update", Some("movies".into()))));
        assert_eq!(act(Method::POST, "/multi-search"), Some(("search", None)));
        assert_eq!(act(Method::GET, "/keys/abc"), Some(("keys.get", None)));
        assert_eq!(act(Method::GET, "/indexes/a%2Db"), Some(("indexes.get", Some("a-b".into()))));
        assert_eq!(act(Method::GET, "/nope"), None);
        assert_eq!(act(Method::PUT, "/indexes/movies"), None);
        assert_eq!(act(Method::POST, "/indexes/movies/fields"), Some(("fields.post", Some("movies".into()))));
        assert_eq!(act(Method::POST, "/render-template"), Some(("settings.get", None)));
        assert_eq!(second_action(&Method::POST, "/render-template"), Some("documents.get"));
        assert_eq!(second_action(&Method::POST, "/indexes/movies/search"), None);
    }
}

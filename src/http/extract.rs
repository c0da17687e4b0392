//! Typed path parameters. Route parameters are percent-decoded here (never rejected as
//! undecodable: an invalid byte sequence becomes U+FFFD and then fails validation with
//! Meilisearch's error), and reach handlers only through the typed accessors.

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use percent_encoding::percent_decode_str;

use crate::error::{ApiError, ApiResult, Code};
use crate::model::{DocumentId, IndexUid, SettingRoute};

/// The decoded parameters of the matched route (`{uid}`, `{id}`, `{setting}`).
#[derive(Debug, Clone, Default)]
pub struct RouteParams(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for RouteParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        // The matched template (`/indexes/{uid}/documents/{id}`) against the raw path, segment
        // by segment: each parameter is decoded exactly once, whatever its bytes.
        let template = parts
            .extensions
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_string())
            .ok_or_else(|| ApiError::internal("route parameters outside a matched route"))?;
        let params = template
            .split('/')
            .zip(parts.uri.path().split('/'))
            .filter_map(|(t, raw)| {
                let name = t.strip_prefix('{')?.strip_suffix('}')?;
                Some((name.to_string(), percent_decode_str(raw).decode_utf8_lossy().into_owned()))
            })
            .collect();
        Ok(RouteParams(params))
    }
}

impl RouteParams {
    fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }

    /// `{uid}`, validated as Meilisearch validates index uids (`invalid_index_uid`). Handlers
    /// call this where Meilisearch validates it: after the body or query parameters on routes
    /// whose body is parsed first.
    pub fn index_uid(&self) -> ApiResult<IndexUid> {
        IndexUid::parse(self.get("uid"))
    }

    /// `{uid}` as the client sent it (decoded), for routes that look an index up by the name
    /// as given (`POST /indexes/{uid}/fields`: not a valid uid, not an index).
    pub fn raw_index_uid(&self) -> &str {
        self.get("uid")
    }

    /// `{id}` of a document route: `Some` when it can name a document (see [`DocumentId`]).
    pub fn document_id(&self) -> Option<DocumentId> {
        DocumentId::parse(self.get("id"))
    }

    /// `{id}` as the client sent it (decoded), for error messages and deletion bodies.
    pub fn raw_document_id(&self) -> &str {
        self.get("id")
    }

    /// `{setting}`: one of Meilisearch's per-setting routes, else the route does not exist.
    pub fn setting(&self) -> ApiResult<SettingRoute> {
        SettingRoute::from_segment(self.get("setting")).ok_or_else(|| ApiError::new(Code::NotFound, "Not found."))
    }

    /// `{uid}` of `/tasks/{uid}` (a `u32`, as Meilisearch's task ids).
    pub fn task_uid(&self) -> ApiResult<u64> {
        let s = self.get("uid");
        s.parse::<u32>().map(u64::from).map_err(|_| {
            ApiError::new(Code::InvalidTaskUids, format!("Task uid `{s}` is invalid. It should only contain numeric characters."))
        })
    }

    /// `{uid}` of `/batches/{uid}`.
    pub fn batch_uid(&self) -> ApiResult<u64> {
        let s = self.get("uid");
        s.parse::<u32>().map(u64::from).map_err(|_| {
            ApiError::new(Code::InvalidBatchUids, format!("Batch uid `{s}` is invalid. It should only contain numeric characters."))
        })
    }
}

/// A JSON request body, read as Meilisearch reads one: the content type must be JSON (missing:
/// `missing_content_type`, another: `invalid_content_type`), the size within the limit, an
/// empty body is `missing_payload`, anything serde_json refuses is `malformed_payload`.
pub struct JsonBody(pub serde_json::Value);

impl axum::extract::FromRequest<crate::dataplane::Proxy> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, proxy: &crate::dataplane::Proxy) -> Result<Self, ApiError> {
        let JsonBytes(bytes) = JsonBytes::from_request(req, proxy).await?;
        Ok(JsonBody(super::parse_json(&bytes)?))
    }
}

/// The bytes of a JSON request body (content type and size checked), for routes that parse
/// them with their own rules.
pub struct JsonBytes(pub axum::body::Bytes);

impl axum::extract::FromRequest<crate::dataplane::Proxy> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, proxy: &crate::dataplane::Proxy) -> Result<Self, ApiError> {
        check_json_content_type(req.headers())?;
        Ok(JsonBytes(super::read_body(proxy, req.into_body()).await?))
    }
}

fn check_json_content_type(headers: &axum::http::HeaderMap) -> ApiResult<()> {
    crate::model::json::check_content_type(headers.get(axum::http::header::CONTENT_TYPE).map(|v| v.as_bytes()))
}

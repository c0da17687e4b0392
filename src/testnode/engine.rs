//! Search engine of the test node: query parsing, matching, ranking rules with
//! `_rankingScoreDetails`, facets, pagination, formatting. Owned by the engine work;
//! the test node's HTTP layer (`testnode/mod.rs`) calls only the functions below.
//!
//! Division of labour with the HTTP layer: the HTTP layer stores documents and settings,
//! parses the request with [`parse_search_query`], evaluates `filter` itself (it owns the
//! filter language), and passes the surviving documents, in internal-id (insertion) order,
//! in an [`IndexSnapshot`].

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

/// One index as the engine sees it.
pub struct IndexSnapshot<'a> {
    pub uid: &'a str,
    pub primary_key: Option<&'a str>,
    /// The full settings object, exactly as `GET /indexes/{uid}/settings` answers it.
    pub settings: &'a Value,
    /// Documents that passed the request's filter, in internal-id (insertion) order.
    pub documents: Vec<&'a Map<String, Value>>,
}

/// A parsed search request (`POST /indexes/{uid}/search` body, `GET` query parameters, or
/// one query of `/multi-search`).
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// The raw request object (after validation), for everything not broken out below.
    pub raw: Map<String, Value>,
    /// `filter`, string or array form, for the HTTP layer to evaluate.
    pub filter: Option<Value>,
    /// `indexUid` (multi-search only).
    pub index_uid: Option<String>,
    /// `federationOptions` (federated multi-search only).
    pub federation_options: Option<Value>,
}

/// Parses and validates a search body. `in_multi_search` allows `indexUid` and
/// `federationOptions`. Unknown fields → `bad_request` with Meilisearch's message.
pub fn parse_search_query(_body: &Value, _in_multi_search: bool) -> ApiResult<SearchQuery> {
    Err(ApiError::not_implemented("search in the test node"))
}

/// `GET /indexes/{uid}/search?...` parameters.
pub fn parse_search_params(_params: &[(String, String)]) -> ApiResult<SearchQuery> {
    Err(ApiError::not_implemented("search in the test node"))
}

/// Runs one search; returns the response body (without `requestUid`).
pub fn search(_index: &IndexSnapshot<'_>, _query: &SearchQuery) -> ApiResult<Value> {
    Err(ApiError::not_implemented("search in the test node"))
}

/// Federated multi-search over `(index, query)` pairs; `federation` is the request's
/// `federation` object.
pub fn federated_search(_inputs: &[(IndexSnapshot<'_>, SearchQuery)], _federation: &Value) -> ApiResult<Value> {
    Err(ApiError::not_implemented("federated search in the test node"))
}

/// Parses a facet-search body; the returned query's `filter` is for the HTTP layer.
pub fn parse_facet_search_query(_body: &Value) -> ApiResult<SearchQuery> {
    Err(ApiError::not_implemented("facet search in the test node"))
}

/// `POST /indexes/{uid}/facet-search`.
pub fn facet_search(_index: &IndexSnapshot<'_>, _query: &SearchQuery) -> ApiResult<Value> {
    Err(ApiError::not_implemented("facet search in the test node"))
}

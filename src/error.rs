//! One error-code enum carrying HTTP status, error type and documentation link,
//! in the shape Meilisearch answers with: `{message, code, type, link}`.
//!
//! Meilisearch's own codes are spelled exactly as Meilisearch spells them so that SDKs
//! that match on `code` keep working; Miroir's own codes are prefixed `miroir_`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// The `type` field of a Meilisearch error object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    InvalidRequest,
    Internal,
    Auth,
    System,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::InvalidRequest => "invalid_request",
            ErrorType::Internal => "internal",
            ErrorType::Auth => "auth",
            ErrorType::System => "system",
        }
    }
}

macro_rules! codes {
    ($( $variant:ident => ($name:literal, $status:expr, $ty:expr) ),* $(,)?) => {
        /// Every error code Miroir itself emits.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code { $( $variant ),* }

        impl Code {
            /// The `code` string, e.g. `index_not_found`.
            pub fn name(self) -> &'static str {
                match self { $( Code::$variant => $name ),* }
            }
            pub fn status(self) -> StatusCode {
                match self { $( Code::$variant => $status ),* }
            }
            pub fn error_type(self) -> ErrorType {
                match self { $( Code::$variant => $ty ),* }
            }
            /// Look a code up by its wire name.
            pub fn from_name(name: &str) -> Option<Code> {
                match name { $( $name => Some(Code::$variant), )* _ => None }
            }
        }
    };
}

use ErrorType::*;

codes! {
    // --- auth
    MissingAuthorizationHeader => ("missing_authorization_header", StatusCode::UNAUTHORIZED, Auth),
    InvalidApiKey => ("invalid_api_key", StatusCode::FORBIDDEN, Auth),
    MissingMasterKey => ("missing_master_key", StatusCode::UNAUTHORIZED, Auth),
    // --- API keys
    ApiKeyNotFound => ("api_key_not_found", StatusCode::NOT_FOUND, InvalidRequest),
    ApiKeyAlreadyExists => ("api_key_already_exists", StatusCode::CONFLICT, InvalidRequest),
    IndexScopedApiKeyWithGlobalAction => ("index_scoped_api_key_with_global_action", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidApiKeyActions => ("invalid_api_key_actions", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidApiKeyIndexes => ("invalid_api_key_indexes", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidApiKeyExpiresAt => ("invalid_api_key_expires_at", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidApiKeyDescription => ("invalid_api_key_description", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidApiKeyName => ("invalid_api_key_name", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidApiKeyUid => ("invalid_api_key_uid", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidApiKeyOffset => ("invalid_api_key_offset", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidApiKeyLimit => ("invalid_api_key_limit", StatusCode::BAD_REQUEST, InvalidRequest),
    MissingApiKeyActions => ("missing_api_key_actions", StatusCode::BAD_REQUEST, InvalidRequest),
    MissingApiKeyIndexes => ("missing_api_key_indexes", StatusCode::BAD_REQUEST, InvalidRequest),
    MissingApiKeyExpiresAt => ("missing_api_key_expires_at", StatusCode::BAD_REQUEST, InvalidRequest),
    ImmutableApiKeyUid => ("immutable_api_key_uid", StatusCode::BAD_REQUEST, InvalidRequest),
    ImmutableApiKeyActions => ("immutable_api_key_actions", StatusCode::BAD_REQUEST, InvalidRequest),
    ImmutableApiKeyIndexes => ("immutable_api_key_indexes", StatusCode::BAD_REQUEST, InvalidRequest),
    ImmutableApiKeyExpiresAt => ("immutable_api_key_expires_at", StatusCode::BAD_REQUEST, InvalidRequest),
    ImmutableApiKeyCreatedAt => ("immutable_api_key_created_at", StatusCode::BAD_REQUEST, InvalidRequest),
    ImmutableApiKeyUpdatedAt => ("immutable_api_key_updated_at", StatusCode::BAD_REQUEST, InvalidRequest),
    // --- request shape
    BadRequest => ("bad_request", StatusCode::BAD_REQUEST, InvalidRequest),
    MalformedPayload => ("malformed_payload", StatusCode::BAD_REQUEST, InvalidRequest),
    MissingPayload => ("missing_payload", StatusCode::BAD_REQUEST, InvalidRequest),
    PayloadTooLarge => ("payload_too_large", StatusCode::PAYLOAD_TOO_LARGE, InvalidRequest),
    InvalidContentType => ("invalid_content_type", StatusCode::UNSUPPORTED_MEDIA_TYPE, InvalidRequest),
    MissingContentType => ("missing_content_type", StatusCode::UNSUPPORTED_MEDIA_TYPE, InvalidRequest),
    NotFound => ("not_found", StatusCode::NOT_FOUND, InvalidRequest),
    // --- indexes
    InvalidIndexUid => ("invalid_index_uid", StatusCode::BAD_REQUEST, InvalidRequest),
    MissingIndexUid => ("missing_index_uid", StatusCode::BAD_REQUEST, InvalidRequest),
    IndexPrimaryKeyAlreadyExists => ("index_primary_key_already_exists", StatusCode::BAD_REQUEST, InvalidRequest),
    IndexPrimaryKeyNoCandidateFound => ("index_primary_key_no_candidate_found", StatusCode::BAD_REQUEST, InvalidRequest),
    IndexPrimaryKeyMultipleCandidatesFound => ("index_primary_key_multiple_candidates_found", StatusCode::BAD_REQUEST, InvalidRequest),
    // --- documents
    DocumentNotFound => ("document_not_found", StatusCode::NOT_FOUND, InvalidRequest),
    InvalidDocumentId => ("invalid_document_id", StatusCode::BAD_REQUEST, InvalidRequest),
    MissingDocumentId => ("missing_document_id", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidDocumentCsvDelimiter => ("invalid_document_csv_delimiter", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSkipCreation => ("invalid_skip_creation", StatusCode::BAD_REQUEST, InvalidRequest),
    // --- search (request validation)
    InvalidSearchQ => ("invalid_search_q", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchOffset => ("invalid_search_offset", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchLimit => ("invalid_search_limit", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchPage => ("invalid_search_page", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchHitsPerPage => ("invalid_search_hits_per_page", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchAttributesToRetrieve => ("invalid_search_attributes_to_retrieve", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchAttributesToCrop => ("invalid_search_attributes_to_crop", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchCropLength => ("invalid_search_crop_length", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchCropMarker => ("invalid_search_crop_marker", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchAttributesToHighlight => ("invalid_search_attributes_to_highlight", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchHighlightPreTag => ("invalid_search_highlight_pre_tag", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchHighlightPostTag => ("invalid_search_highlight_post_tag", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchShowMatchesPosition => ("invalid_search_show_matches_position", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchFilter => ("invalid_search_filter", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchSort => ("invalid_search_sort", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchDistinct => ("invalid_search_distinct", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchFacets => ("invalid_search_facets", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchMatchingStrategy => ("invalid_search_matching_strategy", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchAttributesToSearchOn => ("invalid_search_attributes_to_search_on", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchRankingScoreThreshold => ("invalid_search_ranking_score_threshold", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchLocales => ("invalid_search_locales", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchHybridQuery => ("invalid_search_hybrid_query", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchVector => ("invalid_search_vector", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchRetrieveVectors => ("invalid_search_retrieve_vectors", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchMedia => ("invalid_search_media", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchPersonalize => ("invalid_search_personalize", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchUseNetwork => ("invalid_search_use_network", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchShowRankingScore => ("invalid_search_show_ranking_score", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchShowRankingScoreDetails => ("invalid_search_show_ranking_score_details", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSearchShowPerformanceDetails => ("invalid_search_show_performance_details", StatusCode::BAD_REQUEST, InvalidRequest),
    // --- similar documents (request validation; `not_found_similar_id` is a 400, as Meilisearch answers it)
    InvalidSimilarId => ("invalid_similar_id", StatusCode::BAD_REQUEST, InvalidRequest),
    NotFoundSimilarId => ("not_found_similar_id", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSimilarOffset => ("invalid_similar_offset", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSimilarLimit => ("invalid_similar_limit", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSimilarFilter => ("invalid_similar_filter", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSimilarEmbedder => ("invalid_similar_embedder", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSimilarAttributesToRetrieve => ("invalid_similar_attributes_to_retrieve", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSimilarRetrieveVectors => ("invalid_similar_retrieve_vectors", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSimilarShowRankingScore => ("invalid_similar_show_ranking_score", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSimilarShowRankingScoreDetails => ("invalid_similar_show_ranking_score_details", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSimilarShowPerformanceDetails => ("invalid_similar_show_performance_details", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSimilarRankingScoreThreshold => ("invalid_similar_ranking_score_threshold", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidFacetSearchQuery => ("invalid_facet_search_query", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidFacetSearchFacetName => ("invalid_facet_search_facet_name", StatusCode::BAD_REQUEST, InvalidRequest),
    MissingFacetSearchFacetName => ("missing_facet_search_facet_name", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidFacetSearchExhaustiveFacetCount => ("invalid_facet_search_exhaustive_facet_count", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidMultiSearchFederationOptions => ("invalid_multi_search_federation_options", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidMultiSearchWeight => ("invalid_multi_search_weight", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidMultiSearchRemote => ("invalid_multi_search_remote", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidMultiSearchQueryPosition => ("invalid_multi_search_query_position", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidMultiSearchFacetsByIndex => ("invalid_multi_search_facets_by_index", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidMultiSearchMergeFacets => ("invalid_multi_search_merge_facets", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidMultiSearchMaxValuesPerFacet => ("invalid_multi_search_max_values_per_facet", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidMultiSearchQueryShowPerformanceDetails => ("invalid_multi_search_query_show_performance_details", StatusCode::BAD_REQUEST, InvalidRequest),
    // --- documents (request validation)
    InvalidDocumentOffset => ("invalid_document_offset", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidDocumentLimit => ("invalid_document_limit", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidDocumentFields => ("invalid_document_fields", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidDocumentRetrieveVectors => ("invalid_document_retrieve_vectors", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidDocumentIds => ("invalid_document_ids", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidDocumentFilter => ("invalid_document_filter", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidDocumentSort => ("invalid_document_sort", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidDocumentUseNetwork => ("invalid_document_use_network", StatusCode::BAD_REQUEST, InvalidRequest),
    // --- index fields (`POST /indexes/{uid}/fields`, request validation)
    InvalidIndexOffset => ("invalid_index_offset", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidIndexLimit => ("invalid_index_limit", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidIndexFieldsFilter => ("invalid_index_fields_filter", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidIndexFieldsFilterAttributePatterns => ("invalid_index_fields_filter_attribute_patterns", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidIndexFieldsFilterDisplayed => ("invalid_index_fields_filter_displayed", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidIndexFieldsFilterSearchable => ("invalid_index_fields_filter_searchable", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidIndexFieldsFilterSortable => ("invalid_index_fields_filter_sortable", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidIndexFieldsFilterDistinct => ("invalid_index_fields_filter_distinct", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidIndexFieldsFilterRankingRule => ("invalid_index_fields_filter_ranking_rule", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidIndexFieldsFilterFilterable => ("invalid_index_fields_filter_filterable", StatusCode::BAD_REQUEST, InvalidRequest),
    // --- `POST /render-template`
    InvalidRenderTemplate => ("invalid_render_template", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidRenderInput => ("invalid_render_input", StatusCode::BAD_REQUEST, InvalidRequest),
    FeatureNotEnabled => ("feature_not_enabled", StatusCode::BAD_REQUEST, InvalidRequest),
    // --- tasks
    TaskNotFound => ("task_not_found", StatusCode::NOT_FOUND, InvalidRequest),
    InvalidTaskUids => ("invalid_task_uids", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidTaskStatuses => ("invalid_task_statuses", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidTaskTypes => ("invalid_task_types", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidTaskLimit => ("invalid_task_limit", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidTaskFrom => ("invalid_task_from", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidTaskReverse => ("invalid_task_reverse", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidTaskBeforeEnqueuedAt => ("invalid_task_before_enqueued_at", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidTaskAfterEnqueuedAt => ("invalid_task_after_enqueued_at", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidTaskCanceledBy => ("invalid_task_canceled_by", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidBatchUids => ("invalid_batch_uids", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidTaskBeforeStartedAt => ("invalid_task_before_started_at", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidTaskAfterStartedAt => ("invalid_task_after_started_at", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidTaskBeforeFinishedAt => ("invalid_task_before_finished_at", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidTaskAfterFinishedAt => ("invalid_task_after_finished_at", StatusCode::BAD_REQUEST, InvalidRequest),
    MissingTaskFilters => ("missing_task_filters", StatusCode::BAD_REQUEST, InvalidRequest),
    BatchNotFound => ("batch_not_found", StatusCode::NOT_FOUND, InvalidRequest),
    // --- generic
    Internal => ("internal", StatusCode::INTERNAL_SERVER_ERROR, ErrorType::Internal),
    NotImplemented => ("miroir_not_implemented", StatusCode::NOT_IMPLEMENTED, InvalidRequest),
    // --- Miroir's own
    MiroirNoQuorum => ("miroir_no_quorum", StatusCode::SERVICE_UNAVAILABLE, System),
    MiroirShardUnavailable => ("miroir_shard_unavailable", StatusCode::SERVICE_UNAVAILABLE, System),
    MiroirReservedField => ("miroir_reserved_field", StatusCode::BAD_REQUEST, InvalidRequest),
    MiroirStoreUnavailable => ("miroir_store_unavailable", StatusCode::SERVICE_UNAVAILABLE, System),
    MiroirNotReady => ("miroir_not_ready", StatusCode::SERVICE_UNAVAILABLE, System),
    MiroirNodeUnavailable => ("miroir_node_unavailable", StatusCode::SERVICE_UNAVAILABLE, System),
    MiroirNodeError => ("miroir_node_error", StatusCode::BAD_GATEWAY, System),
    MiroirNodeAuth => ("miroir_node_auth", StatusCode::BAD_GATEWAY, System),
    MiroirRebalanceInProgress => ("miroir_rebalance_in_progress", StatusCode::CONFLICT, InvalidRequest),
    MiroirNodeHoldsData => ("miroir_node_holds_data", StatusCode::CONFLICT, InvalidRequest),
    MiroirNodeNotFound => ("miroir_node_not_found", StatusCode::NOT_FOUND, InvalidRequest),
    MiroirNodeExists => ("miroir_node_exists", StatusCode::CONFLICT, InvalidRequest),
    MiroirInvalidTopology => ("miroir_invalid_topology", StatusCode::BAD_REQUEST, InvalidRequest),
    MiroirWritesPaused => ("miroir_writes_paused", StatusCode::SERVICE_UNAVAILABLE, System),
    // --- webhooks
    InvalidWebhooks => ("invalid_webhooks", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidWebhookUrl => ("invalid_webhook_url", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidWebhookHeaders => ("invalid_webhook_headers", StatusCode::BAD_REQUEST, InvalidRequest),
    ImmutableWebhook => ("immutable_webhook", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidWebhookUuid => ("invalid_webhook_uuid", StatusCode::BAD_REQUEST, InvalidRequest),
    WebhookNotFound => ("webhook_not_found", StatusCode::NOT_FOUND, InvalidRequest),
    ImmutableWebhookUuid => ("immutable_webhook_uuid", StatusCode::BAD_REQUEST, InvalidRequest),
    ImmutableWebhookIsEditable => ("immutable_webhook_is_editable", StatusCode::BAD_REQUEST, InvalidRequest),
    MiroirFeatureUnsupported => ("miroir_feature_unsupported", StatusCode::BAD_REQUEST, InvalidRequest),
    // --- index swaps (`POST /swap-indexes`)
    IndexNotFound => ("index_not_found", StatusCode::NOT_FOUND, InvalidRequest),
    IndexAlreadyExists => ("index_already_exists", StatusCode::CONFLICT, InvalidRequest),
    InvalidSwapIndexes => ("invalid_swap_indexes", StatusCode::BAD_REQUEST, InvalidRequest),
    MissingSwapIndexes => ("missing_swap_indexes", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSwapRename => ("invalid_swap_rename", StatusCode::BAD_REQUEST, InvalidRequest),
    InvalidSwapDuplicateIndexFound => ("invalid_swap_duplicate_index_found", StatusCode::BAD_REQUEST, InvalidRequest),
    MiroirSwapInProgress => ("miroir_swap_in_progress", StatusCode::SERVICE_UNAVAILABLE, System),
}

impl Code {
    /// Documentation link, as Meilisearch builds it (`https://docs.meilisearch.com/errors#<code>`).
    /// Miroir's own codes link to Miroir's error reference.
    pub fn link(self) -> String {
        let name = self.name();
        if name.starts_with("miroir_") {
            format!("https://github.com/miroir-search/miroir/blob/main/docs/errors.md#{name}")
        } else {
            format!("https://docs.meilisearch.com/errors#{name}")
        }
    }
}

/// An error answered to a client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// An error Miroir produced itself.
    #[error("{message}")]
    Own {
        code: Code,
        message: String,
        /// Extra response headers (e.g. `X-Miroir-Degraded`).
        headers: Vec<(String, String)>,
    },
    /// An error a node answered with, passed through unchanged (status and body).
    #[error("node error {status}: {body}")]
    Passthrough { status: u16, body: Value },
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError::Own { code, message: message.into(), headers: Vec::new() }
    }
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        if let ApiError::Own { headers, .. } = &mut self {
            headers.push((name.to_string(), value.into()));
        }
        self
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Code::Internal, message)
    }
    pub fn not_implemented(what: &str) -> Self {
        Self::new(Code::NotImplemented, format!("{what} is not implemented by Miroir yet."))
    }
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Own { code, .. } => code.status(),
            ApiError::Passthrough { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
        }
    }
    /// The error object as sent on the wire.
    pub fn body(&self) -> Value {
        match self {
            ApiError::Own { code, message, .. } => error_object(*code, message),
            ApiError::Passthrough { body, .. } => body.clone(),
        }
    }
    /// The wire `code` of this error.
    pub fn code_name(&self) -> String {
        match self {
            ApiError::Own { code, .. } => code.name().to_string(),
            ApiError::Passthrough { body, .. } => {
                body.get("code").and_then(Value::as_str).unwrap_or("").to_string()
            }
        }
    }
}

/// `{message, code, type, link}` for one of our codes.
pub fn error_object(code: Code, message: &str) -> Value {
    json!({
        "message": message,
        "code": code.name(),
        "type": code.error_type().as_str(),
        "link": code.link(),
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = self.body();
        let mut resp = (status, axum::Json(body)).into_response();
        if let ApiError::Own { code, .. } = &self {
            resp.extensions_mut().insert(crate::dataplane::metrics::ErrorCode(code.name()));
        }
        if let ApiError::Own { headers, .. } = self {
            for (k, v) in headers {
                if let (Ok(k), Ok(v)) = (
                    axum::http::HeaderName::from_bytes(k.as_bytes()),
                    axum::http::HeaderValue::from_str(&v),
                ) {
                    resp.headers_mut().insert(k, v);
                }
            }
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// deserr's description of a JSON value's kind, as Meilisearch's validation errors word it
/// ("expected an array, but found a boolean").
pub fn describe_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_u64() => "a positive integer",
        Value::Number(n) if n.is_i64() => "a negative integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_object_has_meilisearch_shape() {
        let e = ApiError::new(Code::TaskNotFound, "Task `7` not found.");
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            e.body(),
            json!({"message": "Task `7` not found.", "code": "task_not_found",
                   "type": "invalid_request", "link": "https://docs.meilisearch.com/errors#task_not_found"})
        );
    }

    #[test]
    fn codes_round_trip_by_name() {
        for c in [Code::MiroirNoQuorum, Code::InvalidApiKey, Code::PayloadTooLarge] {
            assert_eq!(Code::from_name(c.name()), Some(c));
        }
    }
}

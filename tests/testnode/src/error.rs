//! The test node's errors, in Meilisearch's `{message, code, type, link}` shape.
//!
//! The codes are Meilisearch's (spelled as `meilisearch-types` spells them); only the ones this
//! node emits are listed. They live here, not in Miroir's `src/error.rs`: Miroir's own error
//! enum holds only the codes Miroir itself answers with.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// Declares the codes: `Variant = "wire_name" / status`. Every code is of type
/// `invalid_request` except the auth and internal ones (see [`Code::error_type`]).
macro_rules! meilisearch_codes {
    ($( $variant:ident = $name:literal / $status:literal ),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code { $( $variant ),* }
        impl Code {
            pub fn name(self) -> &'static str { match self { $( Code::$variant => $name ),* } }
            pub fn status(self) -> StatusCode {
                let s: u16 = match self { $( Code::$variant => $status ),* };
                StatusCode::from_u16(s).expect("valid status")
            }
        }
    };
}

meilisearch_codes! {
    MissingAuthorizationHeader = "missing_authorization_header" / 401,
    InvalidApiKey = "invalid_api_key" / 403,
    BadRequest = "bad_request" / 400,
    MalformedPayload = "malformed_payload" / 400,
    MissingPayload = "missing_payload" / 400,
    PayloadTooLarge = "payload_too_large" / 413,
    InvalidContentType = "invalid_content_type" / 415,
    MissingContentType = "missing_content_type" / 415,
    IndexNotFound = "index_not_found" / 404,
    IndexAlreadyExists = "index_already_exists" / 409,
    InvalidIndexUid = "invalid_index_uid" / 400,
    InvalidIndexPrimaryKey = "invalid_index_primary_key" / 400,
    InvalidIndexLimit = "invalid_index_limit" / 400,
    InvalidIndexOffset = "invalid_index_offset" / 400,
    MissingIndexUid = "missing_index_uid" / 400,
    IndexPrimaryKeyAlreadyExists = "index_primary_key_already_exists" / 400,
    DocumentNotFound = "document_not_found" / 404,
    InvalidDocumentFilter = "invalid_document_filter" / 400,
    MissingDocumentFilter = "missing_document_filter" / 400,
    InvalidDocumentFields = "invalid_document_fields" / 400,
    InvalidDocumentLimit = "invalid_document_limit" / 400,
    InvalidDocumentOffset = "invalid_document_offset" / 400,
    InvalidDocumentCsvDelimiter = "invalid_document_csv_delimiter" / 400,
    InvalidDocumentIds = "invalid_document_ids" / 400,
    InvalidDocumentRetrieveVectors = "invalid_document_retrieve_vectors" / 400,
    InvalidDocumentSort = "invalid_document_sort" / 400,
    InvalidSearchFilter = "invalid_search_filter" / 400,
    InvalidSearchSort = "invalid_search_sort" / 400,
    InvalidSearchFacets = "invalid_search_facets" / 400,
    InvalidSearchDistinct = "invalid_search_distinct" / 400,
    InvalidSearchLimit = "invalid_search_limit" / 400,
    InvalidSearchOffset = "invalid_search_offset" / 400,
    InvalidSearchPage = "invalid_search_page" / 400,
    InvalidSearchHitsPerPage = "invalid_search_hits_per_page" / 400,
    InvalidSearchQ = "invalid_search_q" / 400,
    InvalidSearchAttributesToRetrieve = "invalid_search_attributes_to_retrieve" / 400,
    InvalidSearchRankingScoreThreshold = "invalid_search_ranking_score_threshold" / 400,
    InvalidSearchAttributesToCrop = "invalid_search_attributes_to_crop" / 400,
    InvalidSearchCropLength = "invalid_search_crop_length" / 400,
    InvalidSearchCropMarker = "invalid_search_crop_marker" / 400,
    InvalidSearchAttributesToHighlight = "invalid_search_attributes_to_highlight" / 400,
    InvalidSearchHighlightPreTag = "invalid_search_highlight_pre_tag" / 400,
    InvalidSearchHighlightPostTag = "invalid_search_highlight_post_tag" / 400,
    InvalidSearchShowMatchesPosition = "invalid_search_show_matches_position" / 400,
    InvalidSearchMatchingStrategy = "invalid_search_matching_strategy" / 400,
    InvalidSearchAttributesToSearchOn = "invalid_search_attributes_to_search_on" / 400,
    InvalidSearchShowRankingScore = "invalid_search_show_ranking_score" / 400,
    InvalidSearchShowRankingScoreDetails = "invalid_search_show_ranking_score_details" / 400,
    InvalidSearchLocales = "invalid_search_locales" / 400,
    InvalidSearchRetrieveVectors = "invalid_search_retrieve_vectors" / 400,
    InvalidSearchHybridQuery = "invalid_search_hybrid_query" / 400,
    InvalidSearchShowPerformanceDetails = "invalid_search_show_performance_details" / 400,
    MissingSearchHybrid = "missing_search_hybrid" / 400,
    InvalidSearchEmbedder = "invalid_search_embedder" / 400,
    InvalidVectorDimensions = "invalid_vector_dimensions" / 400,
    VectorEmbeddingError = "vector_embedding_error" / 400,
    InvalidSimilarId = "invalid_similar_id" / 400,
    NotFoundSimilarId = "not_found_similar_id" / 400,
    InvalidSimilarOffset = "invalid_similar_offset" / 400,
    InvalidSimilarLimit = "invalid_similar_limit" / 400,
    InvalidSimilarFilter = "invalid_similar_filter" / 400,
    InvalidSimilarEmbedder = "invalid_similar_embedder" / 400,
    InvalidSimilarAttributesToRetrieve = "invalid_similar_attributes_to_retrieve" / 400,
    InvalidSimilarRetrieveVectors = "invalid_similar_retrieve_vectors" / 400,
    InvalidSimilarShowRankingScore = "invalid_similar_show_ranking_score" / 400,
    InvalidSimilarShowRankingScoreDetails = "invalid_similar_show_ranking_score_details" / 400,
    InvalidSimilarShowPerformanceDetails = "invalid_similar_show_performance_details" / 400,
    InvalidSimilarRankingScoreThreshold = "invalid_similar_ranking_score_threshold" / 400,
    InvalidFacetSearchFacetName = "invalid_facet_search_facet_name" / 400,
    InvalidFacetSearchFacetQuery = "invalid_facet_search_query" / 400,
    MissingFacetSearchFacetName = "missing_facet_search_facet_name" / 400,
    InvalidFacetSearchExhaustiveFacetCount = "invalid_facet_search_exhaustive_facet_count" / 400,
    InvalidMultiSearchWeight = "invalid_multi_search_weight" / 400,
    InvalidMultiSearchFederationOptions = "invalid_multi_search_federation_options" / 400,
    InvalidMultiSearchQueryPagination = "invalid_multi_search_query_pagination" / 400,
    InvalidMultiSearchQueryFacets = "invalid_multi_search_query_facets" / 400,
    InvalidMultiSearchQueryShowPerformanceDetails = "invalid_multi_search_query_show_performance_details" / 400,
    InvalidMultiSearchFacetsByIndex = "invalid_multi_search_facets_by_index" / 400,
    InvalidMultiSearchMergeFacets = "invalid_multi_search_merge_facets" / 400,
    InvalidSettingsFilterableAttributes = "invalid_settings_filterable_attributes" / 400,
    InvalidSettingsRankingRules = "invalid_settings_ranking_rules" / 400,
    InvalidSettingsDisplayedAttributes = "invalid_settings_displayed_attributes" / 400,
    InvalidSettingsSearchableAttributes = "invalid_settings_searchable_attributes" / 400,
    InvalidSettingsSortableAttributes = "invalid_settings_sortable_attributes" / 400,
    InvalidSettingsStopWords = "invalid_settings_stop_words" / 400,
    InvalidSettingsNonSeparatorTokens = "invalid_settings_non_separator_tokens" / 400,
    InvalidSettingsSeparatorTokens = "invalid_settings_separator_tokens" / 400,
    InvalidSettingsDictionary = "invalid_settings_dictionary" / 400,
    InvalidSettingsSynonyms = "invalid_settings_synonyms" / 400,
    InvalidSettingsDistinctAttribute = "invalid_settings_distinct_attribute" / 400,
    InvalidSettingsProximityPrecision = "invalid_settings_proximity_precision" / 400,
    InvalidSettingsTypoTolerance = "invalid_settings_typo_tolerance" / 400,
    InvalidSettingsFaceting = "invalid_settings_faceting" / 400,
    InvalidSettingsPagination = "invalid_settings_pagination" / 400,
    InvalidSettingsEmbedders = "invalid_settings_embedders" / 400,
    InvalidSettingsSearchCutoffMs = "invalid_settings_search_cutoff_ms" / 400,
    InvalidSettingsLocalizedAttributes = "invalid_settings_localized_attributes" / 400,
    InvalidSettingsFacetSearch = "invalid_settings_facet_search" / 400,
    InvalidSettingsPrefixSearch = "invalid_settings_prefix_search" / 400,
    TaskNotFound = "task_not_found" / 404,
    InvalidTaskUids = "invalid_task_uids" / 400,
    InvalidTaskStatuses = "invalid_task_statuses" / 400,
    InvalidTaskTypes = "invalid_task_types" / 400,
    InvalidTaskLimit = "invalid_task_limit" / 400,
    InvalidTaskFrom = "invalid_task_from" / 400,
    InvalidTaskReverse = "invalid_task_reverse" / 400,
    InvalidTaskBeforeEnqueuedAt = "invalid_task_before_enqueued_at" / 400,
    InvalidTaskAfterEnqueuedAt = "invalid_task_after_enqueued_at" / 400,
    InvalidTaskBeforeStartedAt = "invalid_task_before_started_at" / 400,
    InvalidTaskAfterStartedAt = "invalid_task_after_started_at" / 400,
    InvalidTaskBeforeFinishedAt = "invalid_task_before_finished_at" / 400,
    InvalidTaskAfterFinishedAt = "invalid_task_after_finished_at" / 400,
    InvalidTaskCanceledBy = "invalid_task_canceled_by" / 400,
    InvalidTaskBatchUids = "invalid_batch_uids" / 400,
    MissingTaskFilters = "missing_task_filters" / 400,
    InvalidSkipCreation = "invalid_skip_creation" / 400,
    FeatureNotEnabled = "feature_not_enabled" / 400,
    InvalidRenderTemplate = "invalid_render_template" / 400,
    InvalidRenderInput = "invalid_render_input" / 400,
    RenderDocumentNotFound = "render_document_not_found" / 404,
    TemplateParsingError = "template_parsing_error" / 400,
    TemplateRenderingError = "template_rendering_error" / 400,
    MissingDocumentEditionFunction = "missing_document_edition_function" / 400,
    InvalidDocumentEditionContext = "invalid_document_edition_context" / 400,
    InvalidDocumentEditionFunctionFilter = "invalid_document_edition_function_filter" / 400,
    EditDocumentsByFunctionError = "edit_documents_by_function_error" / 400,
    InvalidStatsShowInternalDatabaseSizes = "invalid_stats_show_internal_database_sizes" / 400,
    InvalidStatsSizeFormat = "invalid_stats_size_format" / 400,
    // What this node does not do says so (it is never a silent success).
    NotImplemented = "not_implemented_by_test_node" / 501,
    Internal = "internal" / 500,
}

impl Code {
    /// Meilisearch's `type` of the code.
    pub fn error_type(self) -> &'static str {
        match self {
            Code::MissingAuthorizationHeader | Code::InvalidApiKey => "auth",
            Code::NotImplemented => "system",
            Code::Internal => "internal",
            _ => "invalid_request",
        }
    }
}

/// `{message, code, type, link}` for one of the node's codes.
pub fn error_object(code: Code, message: &str) -> Value {
    json!({
        "message": message,
        "code": code.name(),
        "type": code.error_type(),
        "link": format!("https://docs.meilisearch.com/errors#{}", code.name()),
    })
}

/// An error the node answers with.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// One of the node's own codes.
    Own { code: Code, message: String },
    /// A finished error object with its status: what Miroir's shared payload rules answered,
    /// or an error whose status differs from its code's usual one.
    Passthrough { status: u16, body: Value },
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError::Own { code, message: message.into() }
    }
    pub fn not_implemented(what: &str) -> Self {
        Self::new(Code::NotImplemented, format!("{what} is not implemented by the test node."))
    }
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Own { code, .. } => code.status(),
            ApiError::Passthrough { status, .. } => StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
    pub fn body(&self) -> Value {
        match self {
            ApiError::Own { code, message } => error_object(*code, message),
            ApiError::Passthrough { body, .. } => body.clone(),
        }
    }
    pub fn code_name(&self) -> String {
        self.body().get("code").and_then(Value::as_str).unwrap_or("").to_string()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.body())
    }
}

impl std::error::Error for ApiError {}

/// The payload rules the node shares with Miroir (`miroir::dataplane::payload`) answer with
/// Miroir's error type; their objects are Meilisearch's and pass through as they are.
impl From<miroir::error::ApiError> for ApiError {
    fn from(e: miroir::error::ApiError) -> Self {
        ApiError::Passthrough { status: e.status().as_u16(), body: e.body() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), axum::Json(self.body())).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

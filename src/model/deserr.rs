//! Request deserialisation errors with Meilisearch's wording and codes.
//!
//! Meilisearch parses its requests with the `deserr` crate; the message a client sees is the
//! one deserr's JSON or query-parameter formatter writes, and the code is the one declared on
//! the field that failed (the innermost wins). [`JsonError<C>`] carries the same pair: `C` is
//! a marker naming the field's [`Code`], and only the first error is kept, as in Meilisearch.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::ops::ControlFlow;

use deserr::{take_cf_content, DeserializeError, ErrorKind, IntoValue, MergeWithError, ValuePointerRef};

use crate::error::{ApiError, Code};

/// A marker type naming an error code.
pub trait ErrorCode {
    fn code() -> Code;
}

macro_rules! code_markers {
    ($( $name:ident ),* $(,)?) => {
        /// Markers for the codes request fields are declared with.
        pub mod codes {
            $(
                #[derive(Debug, Default)]
                pub struct $name;
                impl super::ErrorCode for $name {
                    fn code() -> crate::error::Code { crate::error::Code::$name }
                }
            )*
        }
    };
}

code_markers! {
    BadRequest,
    InvalidIndexUid, MissingIndexUid,
    InvalidSearchQ, InvalidSearchOffset, InvalidSearchLimit, InvalidSearchPage, InvalidSearchHitsPerPage,
    InvalidSearchAttributesToRetrieve, InvalidSearchAttributesToCrop, InvalidSearchCropLength, InvalidSearchCropMarker,
    InvalidSearchAttributesToHighlight, InvalidSearchHighlightPreTag, InvalidSearchHighlightPostTag,
    InvalidSearchShowMatchesPosition, InvalidSearchFilter, InvalidSearchSort, InvalidSearchDistinct, InvalidSearchFacets,
    InvalidSearchMatchingStrategy, InvalidSearchAttributesToSearchOn, InvalidSearchRankingScoreThreshold, InvalidSearchLocales,
    InvalidSearchHybridQuery, InvalidSearchVector, InvalidSearchRetrieveVectors, InvalidSearchMedia, InvalidSearchPersonalize,
    InvalidSearchUseNetwork, InvalidSearchShowRankingScore, InvalidSearchShowRankingScoreDetails, InvalidSearchShowPerformanceDetails,
    InvalidFacetSearchQuery, InvalidFacetSearchFacetName, MissingFacetSearchFacetName, InvalidFacetSearchExhaustiveFacetCount,
    InvalidMultiSearchFederationOptions, InvalidMultiSearchWeight, InvalidMultiSearchRemote, InvalidMultiSearchQueryPosition,
    InvalidMultiSearchFacetsByIndex, InvalidMultiSearchMergeFacets, InvalidMultiSearchMaxValuesPerFacet,
    InvalidDocumentOffset, InvalidDocumentLimit, InvalidDocumentFields, InvalidDocumentRetrieveVectors, InvalidDocumentIds,
    InvalidDocumentFilter, InvalidDocumentSort, InvalidDocumentUseNetwork,
    InvalidSimilarId, InvalidSimilarOffset, InvalidSimilarLimit, InvalidSimilarFilter, InvalidSimilarEmbedder,
    InvalidSimilarAttributesToRetrieve, InvalidSimilarRetrieveVectors, InvalidSimilarShowRankingScore,
    InvalidSimilarShowRankingScoreDetails, InvalidSimilarShowPerformanceDetails, InvalidSimilarRankingScoreThreshold,
    InvalidIndexOffset, InvalidIndexLimit, InvalidIndexFieldsFilter, InvalidIndexFieldsFilterAttributePatterns,
    InvalidIndexFieldsFilterDisplayed, InvalidIndexFieldsFilterSearchable, InvalidIndexFieldsFilterSortable,
    InvalidIndexFieldsFilterDistinct, InvalidIndexFieldsFilterRankingRule, InvalidIndexFieldsFilterFilterable,
    InvalidRenderTemplate, InvalidRenderInput,
}

/// A JSON body error: deserr's message, the failing field's code.
#[derive(Debug)]
pub struct JsonError<C = codes::BadRequest> {
    pub message: String,
    pub code: Code,
    _code: PhantomData<C>,
}

impl<C> JsonError<C> {
    pub fn new(message: String, code: Code) -> Self {
        JsonError { message, code, _code: PhantomData }
    }
}

impl<C: ErrorCode> DeserializeError for JsonError<C> {
    fn error<V: IntoValue>(_: Option<Self>, error: ErrorKind<V>, location: ValuePointerRef) -> ControlFlow<Self, Self> {
        let text = take_cf_content(deserr::errors::JsonError::error(None, error, location)).to_string();
        ControlFlow::Break(JsonError::new(text, C::code()))
    }
}

/// Only the first error is reported, with the code of the field that failed.
impl<C1, C2> MergeWithError<JsonError<C2>> for JsonError<C1> {
    fn merge(_: Option<Self>, other: JsonError<C2>, _: ValuePointerRef) -> ControlFlow<Self, Self> {
        ControlFlow::Break(JsonError::new(other.message, other.code))
    }
}

impl<C> MergeWithError<Infallible> for JsonError<C> {
    fn merge(_: Option<Self>, other: Infallible, _: ValuePointerRef) -> ControlFlow<Self, Self> {
        match other {}
    }
}

/// A value that has the right type but breaks a rule (a range, a uid format): deserr words it
/// ``Invalid value at `.field`: {message}``.
#[derive(Debug)]
pub struct InvalidValue(pub String);

impl<C: ErrorCode> MergeWithError<InvalidValue> for JsonError<C> {
    fn merge(_: Option<Self>, other: InvalidValue, location: ValuePointerRef) -> ControlFlow<Self, Self> {
        <Self as DeserializeError>::error::<Infallible>(None, ErrorKind::Unexpected { msg: other.0 }, location)
    }
}

impl<C> From<JsonError<C>> for ApiError {
    fn from(e: JsonError<C>) -> ApiError {
        ApiError::new(e.code, e.message)
    }
}

/// Deserialises `value` into `T` as Meilisearch would, or answers its error.
pub fn parse<T: deserr::Deserr<JsonError>>(value: serde_json::Value) -> Result<T, ApiError> {
    deserr::deserialize::<T, _, JsonError>(value).map_err(ApiError::from)
}

/// ``Unknown parameter `{key}`: {did you mean}expected one of …`` exactly as deserr words it
/// for a query string (code `bad_request`).
pub fn unknown_param(key: &str, accepted: &[&str]) -> ApiError {
    let e = take_cf_content(deserr::errors::QueryParamError::error::<Infallible>(
        None,
        ErrorKind::UnknownKey { key, accepted },
        ValuePointerRef::Origin,
    ));
    ApiError::new(Code::BadRequest, e.to_string())
}

//! The search-family requests of Meilisearch 1.50, typed: search, facet search, multi-search
//! (plain and federated) and the documents `fetch` body. Each field carries Meilisearch's
//! error code; parsing a request gives exactly the first error one Meilisearch gives (type,
//! range, unknown field, missing field), before Miroir rewrites anything for the nodes.
//!
//! Parameters Miroir passes to the nodes untouched and that need an index to be judged
//! (`hybrid`, `media`, `personalize`, a filter's syntax, an attribute's settings) are kept as
//! JSON here and validated by the nodes, whose errors reach the client unchanged.

use std::collections::BTreeMap;

use deserr::Deserr;
use serde_json::Value;

use super::deserr::{codes, InvalidValue, JsonError};
use super::IndexUid;

/// `matchingStrategy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserr)]
#[deserr(rename_all = camelCase)]
pub enum MatchingStrategy {
    #[default]
    Last,
    All,
    Frequency,
}

/// `rankingScoreThreshold`: a number in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Deserr)]
#[deserr(try_from(f64) = RankingScoreThreshold::new -> InvalidValue)]
pub struct RankingScoreThreshold(pub f64);

impl RankingScoreThreshold {
    fn new(f: f64) -> Result<Self, InvalidValue> {
        if (0.0..=1.0).contains(&f) {
            Ok(RankingScoreThreshold(f))
        } else {
            Err(InvalidValue("the value of `rankingScoreThreshold` is invalid, expected a float between `0.0` and `1.0`.".into()))
        }
    }
}

/// `federationOptions.weight`: a number ≥ 0.
#[derive(Debug, Clone, Copy, PartialEq, Deserr)]
#[deserr(try_from(f64) = Weight::new -> InvalidValue)]
pub struct Weight(pub f64);

impl Weight {
    fn new(f: f64) -> Result<Self, InvalidValue> {
        if f >= 0.0 {
            Ok(Weight(f))
        } else {
            Err(InvalidValue("the value of `weight` is invalid, expected a positive float (>= 0.0).".into()))
        }
    }
}

/// An index uid inside a body (`indexUid`): Meilisearch's rule and message.
#[derive(Debug, Clone, PartialEq, Eq, Deserr)]
#[deserr(try_from(String) = BodyIndexUid::new -> InvalidValue)]
pub struct BodyIndexUid(pub IndexUid);

impl BodyIndexUid {
    fn new(s: String) -> Result<Self, InvalidValue> {
        IndexUid::parse(&s).map(BodyIndexUid).map_err(|e| InvalidValue(e.body()["message"].as_str().unwrap_or_default().to_string()))
    }
}

/// `POST /indexes/{uid}/search`.
#[derive(Debug, Deserr)]
#[deserr(error = JsonError, rename_all = camelCase, deny_unknown_fields)]
pub struct SearchQuery {
    #[deserr(default, error = JsonError<codes::InvalidSearchQ>)]
    pub q: Option<String>,
    #[deserr(default, error = JsonError<codes::InvalidSearchOffset>)]
    pub offset: usize,
    #[deserr(default = 20, error = JsonError<codes::InvalidSearchLimit>)]
    pub limit: usize,
    #[deserr(default, error = JsonError<codes::InvalidSearchPage>)]
    pub page: Option<usize>,
    #[deserr(default, error = JsonError<codes::InvalidSearchHitsPerPage>)]
    pub hits_per_page: Option<usize>,
    #[deserr(default, error = JsonError<codes::InvalidSearchAttributesToRetrieve>)]
    pub attributes_to_retrieve: Option<Vec<String>>,
    #[deserr(default, error = JsonError<codes::InvalidSearchAttributesToCrop>)]
    pub attributes_to_crop: Option<Vec<String>>,
    #[deserr(default = 10, error = JsonError<codes::InvalidSearchCropLength>)]
    pub crop_length: usize,
    #[deserr(default, error = JsonError<codes::InvalidSearchCropMarker>)]
    pub crop_marker: String,
    #[deserr(default, error = JsonError<codes::InvalidSearchAttributesToHighlight>)]
    pub attributes_to_highlight: Option<Vec<String>>,
    #[deserr(default, error = JsonError<codes::InvalidSearchHighlightPreTag>)]
    pub highlight_pre_tag: String,
    #[deserr(default, error = JsonError<codes::InvalidSearchHighlightPostTag>)]
    pub highlight_post_tag: String,
    #[deserr(default, error = JsonError<codes::InvalidSearchShowMatchesPosition>)]
    pub show_matches_position: bool,
    #[deserr(default, error = JsonError<codes::InvalidSearchFilter>)]
    pub filter: Option<Value>,
    #[deserr(default, error = JsonError<codes::InvalidSearchSort>)]
    pub sort: Option<Vec<String>>,
    #[deserr(default, error = JsonError<codes::InvalidSearchDistinct>)]
    pub distinct: Option<String>,
    #[deserr(default, error = JsonError<codes::InvalidSearchFacets>)]
    pub facets: Option<Vec<String>>,
    #[deserr(default, error = JsonError<codes::InvalidSearchMatchingStrategy>)]
    pub matching_strategy: MatchingStrategy,
    #[deserr(default, error = JsonError<codes::InvalidSearchAttributesToSearchOn>)]
    pub attributes_to_search_on: Option<Vec<String>>,
    #[deserr(default, error = JsonError<codes::InvalidSearchRankingScoreThreshold>)]
    pub ranking_score_threshold: Option<RankingScoreThreshold>,
    #[deserr(default, error = JsonError<codes::InvalidSearchLocales>)]
    pub locales: Option<Vec<String>>,
    #[deserr(default, error = JsonError<codes::InvalidSearchHybridQuery>)]
    pub hybrid: Option<Value>,
    #[deserr(default, error = JsonError<codes::InvalidSearchVector>)]
    pub vector: Option<Vec<f32>>,
    #[deserr(default, error = JsonError<codes::InvalidSearchRetrieveVectors>)]
    pub retrieve_vectors: bool,
    #[deserr(default, error = JsonError<codes::InvalidSearchMedia>)]
    pub media: Option<Value>,
    #[deserr(default, error = JsonError<codes::InvalidSearchPersonalize>)]
    pub personalize: Option<Value>,
    #[deserr(default, error = JsonError<codes::InvalidSearchUseNetwork>)]
    pub use_network: Option<bool>,
    #[deserr(default, error = JsonError<codes::InvalidSearchShowRankingScore>)]
    pub show_ranking_score: bool,
    #[deserr(default, error = JsonError<codes::InvalidSearchShowRankingScoreDetails>)]
    pub show_ranking_score_details: bool,
    #[deserr(default, error = JsonError<codes::InvalidSearchShowPerformanceDetails>)]
    pub show_performance_details: bool,
}

/// One query of `POST /multi-search`: a search with its index (first) and, for federated
/// searches, its `federationOptions` (last).
#[derive(Debug, Deserr)]
#[deserr(error = JsonError, rename_all = camelCase, deny_unknown_fields)]
pub struct SearchQueryWithIndex {
    #[deserr(error = JsonError<codes::InvalidIndexUid>, missing_field_error = missing_index_uid)]
    pub index_uid: BodyIndexUid,
    #[deserr(default, error = JsonError<codes::InvalidSearchQ>)]
    pub q: Option<String>,
    #[deserr(default, error = JsonError<codes::InvalidSearchOffset>)]
    pub offset: Option<usize>,
    #[deserr(default, error = JsonError<codes::InvalidSearchLimit>)]
    pub limit: Option<usize>,
    #[deserr(default, error = JsonError<codes::InvalidSearchPage>)]
    pub page: Option<usize>,
    #[deserr(default, error = JsonError<codes::InvalidSearchHitsPerPage>)]
    pub hits_per_page: Option<usize>,
    #[deserr(default, error = JsonError<codes::InvalidSearchAttributesToRetrieve>)]
    pub attributes_to_retrieve: Option<Vec<String>>,
    #[deserr(default, error = JsonError<codes::InvalidSearchAttributesToCrop>)]
    pub attributes_to_crop: Option<Vec<String>>,
    #[deserr(default = 10, error = JsonError<codes::InvalidSearchCropLength>)]
    pub crop_length: usize,
    #[deserr(default, error = JsonError<codes::InvalidSearchCropMarker>)]
    pub crop_marker: String,
    #[deserr(default, error = JsonError<codes::InvalidSearchAttributesToHighlight>)]
    pub attributes_to_highlight: Option<Vec<String>>,
    #[deserr(default, error = JsonError<codes::InvalidSearchHighlightPreTag>)]
    pub highlight_pre_tag: String,
    #[deserr(default, error = JsonError<codes::InvalidSearchHighlightPostTag>)]
    pub highlight_post_tag: String,
    #[deserr(default, error = JsonError<codes::InvalidSearchShowMatchesPosition>)]
    pub show_matches_position: bool,
    #[deserr(default, error = JsonError<codes::InvalidSearchFilter>)]
    pub filter: Option<Value>,
    #[deserr(default, error = JsonError<codes::InvalidSearchSort>)]
    pub sort: Option<Vec<String>>,
    #[deserr(default, error = JsonError<codes::InvalidSearchDistinct>)]
    pub distinct: Option<String>,
    #[deserr(default, error = JsonError<codes::InvalidSearchFacets>)]
    pub facets: Option<Vec<String>>,
    #[deserr(default, error = JsonError<codes::InvalidSearchMatchingStrategy>)]
    pub matching_strategy: MatchingStrategy,
    #[deserr(default, error = JsonError<codes::InvalidSearchAttributesToSearchOn>)]
    pub attributes_to_search_on: Option<Vec<String>>,
    #[deserr(default, error = JsonError<codes::InvalidSearchRankingScoreThreshold>)]
    pub ranking_score_threshold: Option<RankingScoreThreshold>,
    #[deserr(default, error = JsonError<codes::InvalidSearchLocales>)]
    pub locales: Option<Vec<String>>,
    #[deserr(default, error = JsonError<codes::InvalidSearchHybridQuery>)]
    pub hybrid: Option<Value>,
    #[deserr(default, error = JsonError<codes::InvalidSearchVector>)]
    pub vector: Option<Vec<f32>>,
    #[deserr(default, error = JsonError<codes::InvalidSearchRetrieveVectors>)]
    pub retrieve_vectors: bool,
    #[deserr(default, error = JsonError<codes::InvalidSearchMedia>)]
    pub media: Option<Value>,
    #[deserr(default, error = JsonError<codes::InvalidSearchPersonalize>)]
    pub personalize: Option<Value>,
    #[deserr(default, error = JsonError<codes::InvalidSearchUseNetwork>)]
    pub use_network: Option<bool>,
    #[deserr(default, error = JsonError<codes::InvalidSearchShowRankingScore>)]
    pub show_ranking_score: bool,
    #[deserr(default, error = JsonError<codes::InvalidSearchShowRankingScoreDetails>)]
    pub show_ranking_score_details: bool,
    #[deserr(default, error = JsonError<codes::InvalidSearchShowPerformanceDetails>)]
    pub show_performance_details: Option<bool>,
    #[deserr(default)]
    pub federation_options: Option<FederationOptions>,
}

fn missing_index_uid(field: &str, location: deserr::ValuePointerRef) -> JsonError<codes::MissingIndexUid> {
    missing(field, location)
}

fn missing<C: super::deserr::ErrorCode>(field: &str, location: deserr::ValuePointerRef) -> JsonError<C> {
    deserr::take_cf_content(<JsonError<C> as deserr::DeserializeError>::error::<std::convert::Infallible>(
        None,
        deserr::ErrorKind::MissingField { field },
        location,
    ))
}

/// `federationOptions` of one query.
#[derive(Debug, Deserr)]
#[deserr(error = JsonError, rename_all = camelCase, deny_unknown_fields)]
pub struct FederationOptions {
    #[deserr(default, error = JsonError<codes::InvalidMultiSearchWeight>)]
    pub weight: Option<Weight>,
    #[deserr(default, error = JsonError<codes::InvalidMultiSearchRemote>)]
    pub remote: Option<String>,
    #[deserr(default, error = JsonError<codes::InvalidMultiSearchQueryPosition>)]
    pub query_position: Option<usize>,
}

/// `federation.mergeFacets`.
#[derive(Debug, Deserr)]
#[deserr(error = JsonError<codes::InvalidMultiSearchMergeFacets>, rename_all = camelCase, deny_unknown_fields)]
pub struct MergeFacets {
    #[deserr(default, error = JsonError<codes::InvalidMultiSearchMaxValuesPerFacet>)]
    pub max_values_per_facet: Option<usize>,
}

/// `federation.facetsByIndex`: index uid → facets. Each key is checked before its value, as
/// Meilisearch reads the map (its keys are its own `IndexUid` type, named in the error).
#[derive(Debug, Default)]
pub struct FacetsByIndex(pub BTreeMap<String, Option<Vec<String>>>);

impl<E> Deserr<E> for FacetsByIndex
where
    E: deserr::DeserializeError + deserr::MergeWithError<InvalidValue>,
{
    fn deserialize_from_value<V: deserr::IntoValue>(value: deserr::Value<V>, location: deserr::ValuePointerRef) -> Result<Self, E> {
        use deserr::{Map, ValueKind};
        let deserr::Value::Map(map) = value else {
            return Err(deserr::take_cf_content(E::error(None, deserr::ErrorKind::IncorrectValueKind { actual: value, accepted: &[ValueKind::Map] }, location)));
        };
        let mut out = BTreeMap::new();
        for (key, v) in map.into_iter() {
            if !IndexUid::is_valid(&key) {
                let msg = format!("the key \"{key}\" could not be deserialized into the key type `meilisearch_types::index_uid::IndexUid`");
                return Err(deserr::take_cf_content(E::merge(None, InvalidValue(msg), location)));
            }
            let facets = Option::<Vec<String>>::deserialize_from_value(v.into_value(), location.push_key(&key))?;
            out.insert(key, facets);
        }
        Ok(FacetsByIndex(out))
    }
}

/// `federation` of a federated multi-search.
#[derive(Debug, Deserr)]
#[deserr(error = JsonError, rename_all = camelCase, deny_unknown_fields)]
pub struct Federation {
    #[deserr(default = 20, error = JsonError<codes::InvalidSearchLimit>)]
    pub limit: usize,
    #[deserr(default, error = JsonError<codes::InvalidSearchOffset>)]
    pub offset: usize,
    #[deserr(default, error = JsonError<codes::InvalidSearchPage>)]
    pub page: Option<usize>,
    #[deserr(default, error = JsonError<codes::InvalidSearchHitsPerPage>)]
    pub hits_per_page: Option<usize>,
    #[deserr(default, error = JsonError<codes::InvalidMultiSearchFacetsByIndex>)]
    pub facets_by_index: FacetsByIndex,
    #[deserr(default, error = JsonError<codes::InvalidMultiSearchMergeFacets>)]
    pub merge_facets: Option<MergeFacets>,
    #[deserr(default, error = JsonError<codes::InvalidSearchDistinct>)]
    pub distinct: Option<String>,
    #[deserr(default, error = JsonError<codes::InvalidSearchShowPerformanceDetails>)]
    pub show_performance_details: Option<bool>,
    #[deserr(default, error = JsonError<codes::InvalidSearchPersonalize>)]
    pub personalize: Option<Value>,
}

/// `POST /multi-search`.
#[derive(Debug, Deserr)]
#[deserr(error = JsonError, rename_all = camelCase, deny_unknown_fields)]
pub struct MultiSearch {
    pub queries: Vec<SearchQueryWithIndex>,
    #[deserr(default)]
    pub federation: Option<Federation>,
}

impl MultiSearch {
    /// Rules Meilisearch checks once the request is parsed: `federationOptions` only in a
    /// federated search.
    pub fn check(&self) -> Result<(), crate::error::ApiError> {
        if self.federation.is_some() {
            // Each query's `showPerformanceDetails` (even `false`): the federation has its own.
            if let Some(i) = self.queries.iter().position(|q| q.show_performance_details.is_some()) {
                return Err(crate::error::ApiError::new(
                    crate::error::Code::InvalidMultiSearchQueryShowPerformanceDetails,
                    format!("Inside `.queries[{i}]`: Using `.showPerformanceDetails` is not allowed in federated queries.\n - Hint: remove `showPerformanceDetails` from the query or remove `federation` from the request"),
                ));
            }
        }
        if self.federation.is_none() {
            if let Some(i) = self.queries.iter().position(|q| q.federation_options.is_some()) {
                return Err(crate::error::ApiError::new(
                    crate::error::Code::InvalidMultiSearchFederationOptions,
                    format!("Inside `.queries[{i}]`: Using `federationOptions` is not allowed in a non-federated search.\n - Hint: remove `federationOptions` from the query or add `federation` to the request."),
                ));
            }
        }
        Ok(())
    }
}

/// `POST /indexes/{uid}/facet-search` (unknown fields are ignored, as on Meilisearch).
#[derive(Debug, Deserr)]
#[deserr(error = JsonError, rename_all = camelCase)]
pub struct FacetSearchQuery {
    #[deserr(default, error = JsonError<codes::InvalidFacetSearchQuery>)]
    pub facet_query: Option<String>,
    #[deserr(error = JsonError<codes::InvalidFacetSearchFacetName>, missing_field_error = missing_facet_name)]
    pub facet_name: String,
    #[deserr(default, error = JsonError<codes::InvalidSearchQ>)]
    pub q: Option<String>,
    #[deserr(default, error = JsonError<codes::InvalidSearchVector>)]
    pub vector: Option<Vec<f32>>,
    #[deserr(default, error = JsonError<codes::InvalidSearchMedia>)]
    pub media: Option<Value>,
    #[deserr(default, error = JsonError<codes::InvalidSearchHybridQuery>)]
    pub hybrid: Option<Value>,
    #[deserr(default, error = JsonError<codes::InvalidSearchFilter>)]
    pub filter: Option<Value>,
    #[deserr(default, error = JsonError<codes::InvalidSearchMatchingStrategy>)]
    pub matching_strategy: MatchingStrategy,
    #[deserr(default, error = JsonError<codes::InvalidSearchAttributesToSearchOn>)]
    pub attributes_to_search_on: Option<Vec<String>>,
    #[deserr(default, error = JsonError<codes::InvalidSearchRankingScoreThreshold>)]
    pub ranking_score_threshold: Option<RankingScoreThreshold>,
    #[deserr(default, error = JsonError<codes::InvalidSearchLocales>)]
    pub locales: Option<Vec<String>>,
    #[deserr(default, error = JsonError<codes::InvalidFacetSearchExhaustiveFacetCount>)]
    pub exhaustive_facet_count: Option<bool>,
    #[deserr(default, error = JsonError<codes::InvalidSearchUseNetwork>)]
    pub use_network: Option<bool>,
}

fn missing_facet_name(field: &str, location: deserr::ValuePointerRef) -> JsonError<codes::MissingFacetSearchFacetName> {
    missing(field, location)
}

/// `POST /indexes/{uid}/documents/fetch`.
#[derive(Debug, Deserr)]
#[deserr(error = JsonError, rename_all = camelCase, deny_unknown_fields)]
pub struct BrowseQuery {
    #[deserr(default, error = JsonError<codes::InvalidDocumentOffset>)]
    pub offset: usize,
    #[deserr(default = 20, error = JsonError<codes::InvalidDocumentLimit>)]
    pub limit: usize,
    #[deserr(default, error = JsonError<codes::InvalidDocumentFields>)]
    pub fields: Option<Vec<String>>,
    #[deserr(default, error = JsonError<codes::InvalidDocumentRetrieveVectors>)]
    pub retrieve_vectors: bool,
    #[deserr(default, error = JsonError<codes::InvalidDocumentIds>)]
    pub ids: Option<Vec<Value>>,
    #[deserr(default, error = JsonError<codes::InvalidDocumentFilter>)]
    pub filter: Option<Value>,
    #[deserr(default, error = JsonError<codes::InvalidDocumentSort>)]
    pub sort: Option<Vec<String>>,
    #[deserr(default, error = JsonError<codes::InvalidDocumentUseNetwork>)]
    pub use_network: Option<bool>,
}

/// `POST /indexes/{uid}/similar` (Meilisearch 1.50's `SimilarQuery`, fields in its order).
/// `id` is any JSON value here: Meilisearch judges it (`invalid_similar_id`) only after the
/// embedder and the filter, so a node words that error. A missing `id` or `embedder` is a
/// `bad_request`, as on Meilisearch.
#[derive(Debug, Deserr)]
#[deserr(error = JsonError, rename_all = camelCase, deny_unknown_fields)]
pub struct SimilarQuery {
    #[deserr(error = JsonError<codes::InvalidSimilarId>)]
    pub id: Value,
    #[deserr(default, error = JsonError<codes::InvalidSimilarOffset>)]
    pub offset: usize,
    #[deserr(default = 20, error = JsonError<codes::InvalidSimilarLimit>)]
    pub limit: usize,
    #[deserr(default, error = JsonError<codes::InvalidSimilarFilter>)]
    pub filter: Option<Value>,
    #[deserr(error = JsonError<codes::InvalidSimilarEmbedder>)]
    pub embedder: String,
    #[deserr(default, error = JsonError<codes::InvalidSimilarAttributesToRetrieve>)]
    pub attributes_to_retrieve: Option<Vec<String>>,
    #[deserr(default, error = JsonError<codes::InvalidSimilarRetrieveVectors>)]
    pub retrieve_vectors: bool,
    #[deserr(default, error = JsonError<codes::InvalidSimilarShowRankingScore>)]
    pub show_ranking_score: bool,
    #[deserr(default, error = JsonError<codes::InvalidSimilarShowRankingScoreDetails>)]
    pub show_ranking_score_details: bool,
    #[deserr(default, error = JsonError<codes::InvalidSimilarShowPerformanceDetails>)]
    pub show_performance_details: bool,
    #[deserr(default, error = JsonError<codes::InvalidSimilarRankingScoreThreshold>)]
    pub ranking_score_threshold: Option<RankingScoreThreshold>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::deserr::parse;
    use serde_json::json;

    fn err<T: Deserr<JsonError> + std::fmt::Debug>(v: Value) -> (String, String) {
        let e = parse::<T>(v).unwrap_err();
        (e.code_name(), e.body()["message"].as_str().unwrap().to_string())
    }

    #[test]
    fn search_errors_are_meilisearch_s() {
        assert!(parse::<SearchQuery>(json!({"q": "a", "limit": 5, "filter": ["a = 1"], "matchingStrategy": "all"})).is_ok());
        assert_eq!(
            err::<SearchQuery>(json!({"limit": "abc"})),
            ("invalid_search_limit".into(), "Invalid value type at `.limit`: expected a positive integer, but found a string: `\"abc\"`".into())
        );
        assert_eq!(err::<SearchQuery>(json!({"offset": -1})).0, "invalid_search_offset");
        assert_eq!(
            err::<SearchQuery>(json!({"hitsPerPage": 1e308})).1,
            "Invalid value type at `.hitsPerPage`: expected a positive integer, but found a number: `1e+308`"
        );
        assert_eq!(
            err::<SearchQuery>(json!({"showRankingScoreDetails": "yes"})),
            ("invalid_search_show_ranking_score_details".into(), "Invalid value type at `.showRankingScoreDetails`: expected a boolean, but found a string: `\"yes\"`".into())
        );
        assert_eq!(
            err::<SearchQuery>(json!({"matchingStrategy": "doggo"})).1,
            "Unknown value `doggo` at `.matchingStrategy`: expected one of `last`, `all`, `frequency`"
        );
        assert_eq!(
            err::<SearchQuery>(json!({"rankingScoreThreshold": 1.5})).1,
            "Invalid value at `.rankingScoreThreshold`: the value of `rankingScoreThreshold` is invalid, expected a float between `0.0` and `1.0`."
        );
        let (code, msg) = err::<SearchQuery>(json!({"limitt": 1}));
        assert_eq!(code, "bad_request");
        assert!(msg.starts_with("Unknown field `limitt`: did you mean `limit`? expected one of `q`, `offset`, `limit`,"), "{msg}");
        assert_eq!(err::<SearchQuery>(json!("hello")).1, "Invalid value type: expected an object, but found a string: `\"hello\"`");
        assert_eq!(err::<SearchQuery>(json!({"cropMarker": null})).0, "invalid_search_crop_marker");
    }

    #[test]
    fn multi_search_errors_carry_the_full_path() {
        assert_eq!(
            err::<MultiSearch>(json!({"queries": [{"indexUid": "a"}, {"indexUid": "b", "limit": "x"}]})).1,
            "Invalid value type at `.queries[1].limit`: expected a positive integer, but found a string: `\"x\"`"
        );
        assert_eq!(
            err::<MultiSearch>(json!({"queries": [{"q": "a"}]})),
            ("missing_index_uid".into(), "Missing field `indexUid` inside `.queries[0]`".into())
        );
        assert_eq!(err::<MultiSearch>(json!({"queries": [{"indexUid": "../x"}]})).0, "invalid_index_uid");
        assert_eq!(
            err::<MultiSearch>(json!({"queries": [{"indexUid": "a", "federationOptions": {"weight": -1}}], "federation": {}})).1,
            "Invalid value at `.queries[0].federationOptions.weight`: the value of `weight` is invalid, expected a positive float (>= 0.0)."
        );
        assert_eq!(err::<MultiSearch>(json!({})), ("bad_request".into(), "Missing field `queries`".into()));
        assert_eq!(err::<MultiSearch>(json!({"queries": [], "federation": {"facetsByIndex": {"bad uid": []}}})).0, "invalid_multi_search_facets_by_index");
    }

    #[test]
    fn only_the_federation_may_ask_for_performance_details() {
        let check = |v: Value| parse::<MultiSearch>(v).unwrap().check();
        assert!(check(json!({"queries": [{"indexUid": "a", "showPerformanceDetails": true}]})).is_ok());
        assert!(check(json!({"federation": {"showPerformanceDetails": true}, "queries": [{"indexUid": "a"}]})).is_ok());
        for flag in [true, false] {
            let e = check(json!({"federation": {}, "queries": [{"indexUid": "a"}, {"indexUid": "a", "showPerformanceDetails": flag}]})).unwrap_err();
            assert_eq!(e.code_name(), "invalid_multi_search_query_show_performance_details");
            assert!(e.body()["message"].as_str().unwrap().starts_with("Inside `.queries[1]`: Using `.showPerformanceDetails` is not allowed"));
        }
    }

    #[test]
    fn similar_errors_are_meilisearch_s() {
        // Meilisearch 1.50's own tests (crates/meilisearch/tests/similar/errors.rs).
        assert!(parse::<SimilarQuery>(json!({"id": 143, "embedder": "manual", "filter": ["a = 1"]})).is_ok());
        assert!(parse::<SimilarQuery>(json!({"id": ["doggo"], "embedder": "manual"})).is_ok(), "the id is judged later");
        assert_eq!(
            err::<SimilarQuery>(json!({"id": 287947, "offset": "doggo", "embedder": "manual"})),
            ("invalid_similar_offset".into(), "Invalid value type at `.offset`: expected a positive integer, but found a string: `\"doggo\"`".into())
        );
        assert_eq!(err::<SimilarQuery>(json!({"id": 287947, "limit": "doggo", "embedder": "manual"})).0, "invalid_similar_limit");
        assert_eq!(
            err::<SimilarQuery>(json!({"rankingScoreThreshold": ["doggo"]})),
            ("invalid_similar_ranking_score_threshold".into(), "Invalid value type at `.rankingScoreThreshold`: expected a number, but found an array: `[\"doggo\"]`".into())
        );
        assert_eq!(
            err::<SimilarQuery>(json!({"rankingScoreThreshold": 42})),
            ("invalid_similar_ranking_score_threshold".into(), "Invalid value at `.rankingScoreThreshold`: the value of `rankingScoreThreshold` is invalid, expected a float between `0.0` and `1.0`.".into())
        );
        assert_eq!(
            err::<SimilarQuery>(json!({"retrieveVectors": "doggo", "embedder": "manual"})),
            ("invalid_similar_retrieve_vectors".into(), "Invalid value type at `.retrieveVectors`: expected a boolean, but found a string: `\"doggo\"`".into())
        );
        assert_eq!(
            err::<SimilarQuery>(json!({"id": 287947, "embedder": 42})),
            ("invalid_similar_embedder".into(), "Invalid value type at `.embedder`: expected a string, but found a positive integer: `42`".into())
        );
        assert_eq!(
            err::<SimilarQuery>(json!({"id": 287947, "embedder": null})),
            ("invalid_similar_embedder".into(), "Invalid value type at `.embedder`: expected a string, but found null".into())
        );
        assert_eq!(err::<SimilarQuery>(json!({"id": 287947})), ("bad_request".into(), "Missing field `embedder`".into()));
        assert_eq!(err::<SimilarQuery>(json!({"id": 287947, "marin": "hello"})).0, "bad_request");
    }

    #[test]
    fn facet_search_ignores_unknown_fields_and_requires_a_facet() {
        assert!(parse::<FacetSearchQuery>(json!({"facetName": "genre", "whatever": 1})).is_ok());
        assert_eq!(err::<FacetSearchQuery>(json!({"facetQuery": "a"})), ("missing_facet_search_facet_name".into(), "Missing field `facetName`".into()));
        assert_eq!(err::<FacetSearchQuery>(json!({"facetName": 1})).0, "invalid_facet_search_facet_name");
    }
}

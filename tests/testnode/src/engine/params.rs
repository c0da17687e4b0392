//! Search parameters: names, types and Meilisearch's validation errors (deserr's messages).

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult, Code};
pub use miroir::error::describe_kind as kind;

/// Fields of a search body, in the order Meilisearch lists them in its "unknown field" error.
pub const SEARCH_FIELDS: &[&str] = &[
    "q",
    "offset",
    "limit",
    "page",
    "hitsPerPage",
    "attributesToRetrieve",
    "attributesToCrop",
    "cropLength",
    "cropMarker",
    "attributesToHighlight",
    "highlightPreTag",
    "highlightPostTag",
    "showMatchesPosition",
    "filter",
    "sort",
    "distinct",
    "facets",
    "matchingStrategy",
    "attributesToSearchOn",
    "rankingScoreThreshold",
    "locales",
    "hybrid",
    "vector",
    "retrieveVectors",
    "media",
    "personalize",
    "useNetwork",
    "showRankingScore",
    "showRankingScoreDetails",
    "showPerformanceDetails",
];

/// Fields of a facet-search body.
pub const FACET_SEARCH_FIELDS: &[&str] = &[
    "facetQuery",
    "facetName",
    "q",
    "vector",
    "hybrid",
    "filter",
    "matchingStrategy",
    "attributesToSearchOn",
    "rankingScoreThreshold",
    "exhaustiveFacetCount",
    "locales",
];

/// `matchingStrategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Last,
    All,
    Frequency,
}

/// A validated search request.
#[derive(Debug, Clone)]
pub struct Params {
    pub q: Option<String>,
    pub offset: Option<usize>,
    pub limit: Option<usize>,
    pub page: Option<usize>,
    pub hits_per_page: Option<usize>,
    pub attributes_to_retrieve: Option<Vec<String>>,
    pub attributes_to_crop: Option<Vec<String>>,
    pub crop_length: usize,
    pub crop_marker: String,
    pub attributes_to_highlight: Option<Vec<String>>,
    pub highlight_pre_tag: String,
    pub highlight_post_tag: String,
    pub show_matches_position: bool,
    pub sort: Option<Vec<String>>,
    pub distinct: Option<String>,
    pub facets: Option<Vec<String>>,
    pub matching_strategy: Strategy,
    pub attributes_to_search_on: Option<Vec<String>>,
    pub ranking_score_threshold: Option<f64>,
    pub show_ranking_score: bool,
    pub show_ranking_score_details: bool,
    /// `hybrid`, `vector` or `media` given: semantic search, not implemented here.
    pub semantic: bool,
    /// `retrieveVectors`: without it, `_vectors` is left out of hits.
    pub retrieve_vectors: bool,
    /// `showPerformanceDetails`: the answer ends with the measured step durations.
    pub show_performance_details: bool,
    /// A parameter asking for something the engine lacks (`personalize`, `useNetwork`):
    /// searching answers 501.
    pub unsupported: Option<&'static str>,
}


fn type_error(code: Code, at: &str, expected: &str, found: &Value) -> ApiError {
    ApiError::new(
        code,
        format!(
            "Invalid value type at `{at}`: expected {expected}, but found {}: `{}`",
            kind(found),
            found
        ),
    )
}

/// Reads a typed field; `prefix` is the JSON path of the object (`""` or `.queries[0]`).
pub struct Reader<'a> {
    pub obj: &'a Map<String, Value>,
    pub prefix: String,
}

impl<'a> Reader<'a> {
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.obj.get(name).filter(|v| !v.is_null())
    }
    fn at(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }
    pub fn string(&self, name: &str, code: Code) -> ApiResult<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(type_error(code, &self.at(name), "a string", v)),
        }
    }
    pub fn usize(&self, name: &str, code: Code) -> ApiResult<Option<usize>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) if n.is_u64() => Ok(Some(n.as_u64().unwrap_or(0) as usize)),
            Some(v) => Err(type_error(code, &self.at(name), "a positive integer", v)),
        }
    }
    pub fn bool(&self, name: &str, code: Code) -> ApiResult<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(type_error(code, &self.at(name), "a boolean", v)),
        }
    }
    pub fn f64(&self, name: &str, code: Code) -> ApiResult<Option<f64>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(v) => Err(type_error(code, &self.at(name), "a number", v)),
        }
    }
    pub fn strings(&self, name: &str, code: Code) -> ApiResult<Option<Vec<String>>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        v => {
                            return Err(type_error(code, &format!("{}[{i}]", self.at(name)), "a string", v))
                        }
                    }
                }
                Ok(Some(out))
            }
            Some(v) => Err(type_error(code, &self.at(name), "an array", v)),
        }
    }
}

/// Rejects fields not in `allowed` with deserr's message.
pub fn check_unknown(obj: &Map<String, Value>, allowed: &[&str], prefix: &str) -> ApiResult<()> {
    for key in obj.keys() {
        if !allowed.contains(&key.as_str()) {
            let list = allowed.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ");
            let inside = if prefix.is_empty() { String::new() } else { format!(" inside `{prefix}`") };
            return Err(ApiError::new(
                Code::BadRequest,
                format!("Unknown field `{key}`{inside}: expected one of {list}"),
            ));
        }
    }
    Ok(())
}

impl Params {
    /// Validates a search object (already checked for unknown fields).
    pub fn from_object(obj: &Map<String, Value>, prefix: &str) -> ApiResult<Params> {
        let r = Reader { obj, prefix: prefix.to_string() };
        let matching_strategy = match r.get("matchingStrategy") {
            None => Strategy::Last,
            Some(Value::String(s)) => match s.as_str() {
                "last" => Strategy::Last,
                "all" => Strategy::All,
                "frequency" => Strategy::Frequency,
                other => {
                    return Err(ApiError::new(
                        Code::InvalidSearchMatchingStrategy,
                        format!(
                            "Unknown value `{other}` at `{}`: expected one of `last`, `all`, `frequency`",
                            r.at("matchingStrategy")
                        ),
                    ))
                }
            },
            Some(v) => {
                return Err(type_error(Code::InvalidSearchMatchingStrategy, &r.at("matchingStrategy"), "a string", v))
            }
        };
        let sort = match r.get("sort") {
            Some(Value::String(s)) => Some(vec![s.clone()]),
            _ => r.strings("sort", Code::InvalidSearchSort)?,
        };
        let ranking_score_threshold = r.f64("rankingScoreThreshold", Code::InvalidSearchRankingScoreThreshold)?;
        if let Some(t) = ranking_score_threshold {
            if !(0.0..=1.0).contains(&t) {
                return Err(ApiError::new(
                    Code::InvalidSearchRankingScoreThreshold,
                    format!(
                        "Invalid value at `{}`: the value of `rankingScoreThreshold` is invalid, expected a float between `0.0` and `1.0`.",
                        r.at("rankingScoreThreshold")
                    ),
                ));
            }
        }
        r.strings("locales", Code::InvalidSearchLocales)?;
        let semantic = ["hybrid", "vector", "media"].iter().any(|f| r.get(f).is_some());
        Ok(Params {
            q: r.string("q", Code::InvalidSearchQ)?,
            offset: r.usize("offset", Code::InvalidSearchOffset)?,
            limit: r.usize("limit", Code::InvalidSearchLimit)?,
            page: r.usize("page", Code::InvalidSearchPage)?,
            hits_per_page: r.usize("hitsPerPage", Code::InvalidSearchHitsPerPage)?,
            attributes_to_retrieve: r.strings("attributesToRetrieve", Code::InvalidSearchAttributesToRetrieve)?,
            attributes_to_crop: r.strings("attributesToCrop", Code::InvalidSearchAttributesToCrop)?,
            crop_length: r.usize("cropLength", Code::InvalidSearchCropLength)?.unwrap_or(10),
            crop_marker: r.string("cropMarker", Code::InvalidSearchCropMarker)?.unwrap_or_else(|| "…".into()),
            attributes_to_highlight: r
                .strings("attributesToHighlight", Code::InvalidSearchAttributesToHighlight)?,
            highlight_pre_tag: r
                .string("highlightPreTag", Code::InvalidSearchHighlightPreTag)?
                .unwrap_or_else(|| "<em>".into()),
            highlight_post_tag: r
                .string("highlightPostTag", Code::InvalidSearchHighlightPostTag)?
                .unwrap_or_else(|| "</em>".into()),
            show_matches_position: r
                .bool("showMatchesPosition", Code::InvalidSearchShowMatchesPosition)?
                .unwrap_or(false),
            sort,
            distinct: r.string("distinct", Code::InvalidSearchDistinct)?,
            facets: r.strings("facets", Code::InvalidSearchFacets)?,
            matching_strategy,
            attributes_to_search_on: r
                .strings("attributesToSearchOn", Code::InvalidSearchAttributesToSearchOn)?,
            ranking_score_threshold,
            show_ranking_score: r.bool("showRankingScore", Code::InvalidSearchShowRankingScore)?.unwrap_or(false),
            show_ranking_score_details: r
                .bool("showRankingScoreDetails", Code::InvalidSearchShowRankingScoreDetails)?
                .unwrap_or(false),
            semantic,
            retrieve_vectors: r.bool("retrieveVectors", Code::InvalidSearchRetrieveVectors)?.unwrap_or(false),
            show_performance_details: r.get("showPerformanceDetails") == Some(&Value::Bool(true)),
            unsupported: if r.get("personalize").is_some() {
                Some("`personalize` in the test node")
            } else if r.get("useNetwork").is_some_and(|v| v != &Value::Bool(false)) {
                Some("`useNetwork` in the test node")
            } else {
                None
            },
        })
    }
}

/// Converts `GET /search` query parameters into a search object.
pub fn params_to_object(params: &[(String, String)]) -> ApiResult<Map<String, Value>> {
    let mut obj = Map::new();
    for (name, raw) in params {
        let parse_err = |what: &str, code: Code| {
            ApiError::new(code, format!("Invalid value in parameter `{name}`: could not parse `{raw}` as {what}."))
        };
        // Meilisearch's comma lists: empty items dropped, items not trimmed.
        let list = || Value::Array(raw.split(',').filter(|s| !s.is_empty()).map(|s| Value::String(s.to_string())).collect());
        let value = match name.as_str() {
            "q" | "cropMarker" | "highlightPreTag" | "highlightPostTag" | "distinct" | "matchingStrategy" => Value::String(raw.clone()),
            // A filter that reads as JSON is that JSON, else a string.
            "filter" => serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.clone())),
            "offset" | "limit" | "page" | "hitsPerPage" | "cropLength" => {
                let code = match name.as_str() {
                    "offset" => Code::InvalidSearchOffset,
                    "limit" => Code::InvalidSearchLimit,
                    "page" => Code::InvalidSearchPage,
                    "hitsPerPage" => Code::InvalidSearchHitsPerPage,
                    _ => Code::InvalidSearchCropLength,
                };
                let n: u64 = raw.parse().map_err(|_| parse_err("a positive integer", code))?;
                Value::from(n)
            }
            "attributesToRetrieve" | "attributesToCrop" | "attributesToHighlight" | "facets"
            | "attributesToSearchOn" | "locales" => list(),
            // `_geoPoint(lat, lng):asc` holds a comma: split outside parentheses only.
            "sort" => {
                let mut items = Vec::new();
                let (mut depth, mut cur) = (0i32, String::new());
                for c in raw.chars() {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        ',' if depth == 0 => {
                            items.push(Value::String(cur.trim().to_string()));
                            cur.clear();
                            continue;
                        }
                        _ => {}
                    }
                    cur.push(c);
                }
                items.push(Value::String(cur.trim().to_string()));
                Value::Array(items)
            }
            "showMatchesPosition" | "showRankingScore" | "showRankingScoreDetails" | "retrieveVectors"
            | "showPerformanceDetails" => {
                let code = match name.as_str() {
                    "showMatchesPosition" => Code::InvalidSearchShowMatchesPosition,
                    "showRankingScore" => Code::InvalidSearchShowRankingScore,
                    "showRankingScoreDetails" => Code::InvalidSearchShowRankingScoreDetails,
                    "retrieveVectors" => Code::InvalidSearchRetrieveVectors,
                    _ => Code::BadRequest,
                };
                let b: bool = raw.parse().map_err(|_| parse_err("a boolean", code))?;
                Value::Bool(b)
            }
            "rankingScoreThreshold" => {
                let f: f64 = raw
                    .parse()
                    .map_err(|_| parse_err("a number", Code::InvalidSearchRankingScoreThreshold))?;
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| parse_err("a number", Code::InvalidSearchRankingScoreThreshold))?
            }
            "vector" | "hybrid" | "hybridEmbedder" | "hybridSemanticRatio" | "media" | "personalize"
            | "useNetwork" => Value::String(raw.clone()),
            _ => {
                let list = SEARCH_FIELDS.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ");
                return Err(ApiError::new(
                    Code::BadRequest,
                    format!("Unknown parameter `{name}`: expected one of {list}"),
                ));
            }
        };
        let key = match name.as_str() {
            "hybridEmbedder" | "hybridSemanticRatio" => "hybrid".to_string(),
            _ => name.clone(),
        };
        obj.insert(key, value);
    }
    // Meilisearch's `SearchQueryGet` → `SearchQuery` checks, once every parameter parsed.
    let given = |n: &str| params.iter().any(|(k, _)| k == n);
    if given("hybridSemanticRatio") && !given("hybridEmbedder") {
        return Err(ApiError::new(Code::InvalidSearchHybridQuery, "`hybridEmbedder` is mandatory when `hybridSemanticRatio` is present"));
    }
    if given("vector") && !given("hybridEmbedder") {
        return Err(ApiError::new(Code::MissingSearchHybrid, "`hybridEmbedder` is mandatory when `vector` is present"));
    }
    // `hybridEmbedder` + `hybridSemanticRatio` → `hybrid`, `vector` → a list of floats.
    let last = |n: &str| params.iter().rev().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    if let Some(embedder) = last("hybridEmbedder") {
        let mut hybrid = Map::new();
        hybrid.insert("embedder".into(), Value::String(embedder.to_string()));
        if let Some(r) = last("hybridSemanticRatio") {
            let r: f32 = r.parse().map_err(|_| ApiError::not_implemented("Validating `hybridSemanticRatio` in the test node"))?;
            hybrid.insert("semanticRatio".into(), Value::from(r as f64));
        }
        obj.insert("hybrid".into(), Value::Object(hybrid));
    }
    if let Some(v) = last("vector") {
        let floats: Option<Vec<Value>> = v.split(',').map(|x| x.trim().parse::<f32>().ok().map(|f| Value::from(f as f64))).collect();
        obj.insert("vector".into(), Value::Array(floats.ok_or_else(|| ApiError::not_implemented("Validating `vector` in the test node"))?));
    }
    Ok(obj)
}

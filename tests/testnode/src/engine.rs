//! Search engine of the test node: query parsing, matching, ranking rules with
//! `_rankingScoreDetails`, facets, pagination, formatting. Owned by the engine work;
//! the test node's HTTP layer (`testnode/mod.rs`) calls only the functions below.
//!
//! Division of labour with the HTTP layer: the HTTP layer stores documents and settings,
//! parses the request with [`parse_search_query`], evaluates `filter` itself (it owns the
//! filter language), and passes the surviving documents, in internal-id (insertion) order,
//! in an [`IndexSnapshot`].
//!
//! Ranking follows milli's bucket sort, evaluated document by document (see `rank`): every
//! rule's `Rank { rank, max_rank }` and the global `_rankingScore` are milli's; ties keep
//! insertion order, as in Meilisearch. Exact as long as no document matches through what is
//! not implemented: n-grams and split words (`sun flower` ↔ `sunflower`), multi-word
//! synonyms, non-Latin segmentation (CJK, …), custom separators and dictionary. Vector search
//! with `userProvided` embedders and `/similar` are exact (see `vector`); mixed hybrid search,
//! `personalize`, `useNetwork` answer 501; `showPerformanceDetails` reports measured steps.

mod cache;
mod facets;
mod format;
mod params;
mod rank;
mod settings;
mod text;
pub mod vector;

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult, Code};

pub use params::{FACET_SEARCH_FIELDS, SEARCH_FIELDS};

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

fn expect_object<'a>(body: &'a Value, prefix: &str) -> ApiResult<&'a Map<String, Value>> {
    body.as_object().ok_or_else(|| {
        let at = if prefix.is_empty() { String::new() } else { format!(" at `{prefix}`") };
        ApiError::new(
            Code::BadRequest,
            format!("Invalid value type{at}: expected an object, but found {}: `{body}`", params::kind(body)),
        )
    })
}

fn parse_at(body: &Value, in_multi_search: bool, prefix: &str) -> ApiResult<SearchQuery> {
    let obj = expect_object(body, prefix)?;
    let allowed: Vec<&str> = if in_multi_search {
        std::iter::once("indexUid")
            .chain(SEARCH_FIELDS.iter().copied())
            .chain(std::iter::once("federationOptions"))
            .collect()
    } else {
        SEARCH_FIELDS.to_vec()
    };
    params::check_unknown(obj, &allowed, prefix)?;
    let mut raw = obj.clone();
    let index_uid = match raw.remove("indexUid") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(v) => {
            return Err(ApiError::new(
                Code::InvalidIndexUid,
                format!(
                    "Invalid value type at `{prefix}.indexUid`: expected a string, but found {}: `{v}`",
                    params::kind(&v)
                ),
            ))
        }
    };
    let federation_options = match raw.remove("federationOptions") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_federation_options(v, prefix)?),
    };
    params::Params::from_object(&raw, prefix)?;
    let filter = raw.get("filter").filter(|f| !f.is_null()).cloned();
    Ok(SearchQuery { raw, filter, index_uid, federation_options })
}

fn parse_federation_options(v: Value, prefix: &str) -> ApiResult<Value> {
    let at = format!("{prefix}.federationOptions");
    let Value::Object(o) = &v else {
        return Err(ApiError::new(
            Code::InvalidMultiSearchFederationOptions,
            format!("Invalid value type at `{at}`: expected an object, but found {}: `{v}`", params::kind(&v)),
        ));
    };
    params::check_unknown(o, &["weight", "remote", "queryPosition"], &at)?;
    if let Some(w) = o.get("weight").filter(|w| !w.is_null()) {
        match w.as_f64() {
            Some(f) if f >= 0.0 => {}
            Some(_) => {
                return Err(ApiError::new(
                    Code::InvalidMultiSearchWeight,
                    format!("Invalid value at `{at}.weight`: the value of `weight` is invalid, expected a positive float (>= 0.0)."),
                ))
            }
            None => {
                return Err(ApiError::new(
                    Code::InvalidMultiSearchWeight,
                    format!("Invalid value type at `{at}.weight`: expected a number, but found {}: `{w}`", params::kind(w)),
                ))
            }
        }
    }
    Ok(v)
}

/// Parses and validates a search body. `in_multi_search` allows `indexUid` and
/// `federationOptions`. Unknown fields → `bad_request` with Meilisearch's message.
pub fn parse_search_query(body: &Value, in_multi_search: bool) -> ApiResult<SearchQuery> {
    parse_at(body, in_multi_search, "")
}

/// Parses query number `position` of a `/multi-search` body; error messages locate the
/// problem at `.queries[position]` as Meilisearch does.
pub fn parse_multi_search_query(body: &Value, position: usize) -> ApiResult<SearchQuery> {
    parse_at(body, true, &format!(".queries[{position}]"))
}

/// `GET /indexes/{uid}/search?...` parameters.
pub fn parse_search_params(params: &[(String, String)]) -> ApiResult<SearchQuery> {
    let obj = params::params_to_object(params)?;
    parse_at(&Value::Object(obj), false, "")
}

/// A search, ranked: every matching document in order, with its evaluation.
struct Ranked<'a> {
    params: params::Params,
    settings: settings::EngineSettings,
    /// The index's settings as stored (embedders, displayed attributes).
    index_settings: &'a Value,
    terms: Vec<rank::Term>,
    /// Matching documents after `rankingScoreThreshold` and `distinct`, best first.
    hits: Vec<(&'a Map<String, Value>, rank::Evaluated, f64)>,
    /// Top-level fields in the order the documents first show them.
    field_order: Vec<String>,
}

fn sort_error(uid: &str, msg: String) -> ApiError {
    ApiError::new(Code::InvalidSearchSort, format!("Index `{uid}`: {msg}"))
}

fn parse_sort(list: &[String], s: &settings::EngineSettings, uid: &str) -> ApiResult<Vec<rank::SortCrit>> {
    if list.is_empty() {
        return Ok(Vec::new());
    }
    if !s.ranking_rules.iter().any(|r| r == "sort") {
        return Err(ApiError::new(
            Code::InvalidSearchSort,
            "You must specify where `sort` is listed in the rankingRules setting to use the sort parameter at search time.",
        ));
    }
    let mut sortable = s.sortable.clone();
    sortable.sort();
    let not_sortable = |attr: &str| {
        if sortable.is_empty() {
            sort_error(uid, format!("Attribute `{attr}` is not sortable. This index does not have configured sortable attributes."))
        } else {
            sort_error(
                uid,
                format!("Attribute `{attr}` is not sortable. Available sortable attributes are: `{}`.", sortable.join(", ")),
            )
        }
    };
    let mut out = Vec::new();
    for expr in list {
        let (body, asc) = if let Some(b) = expr.strip_suffix(":asc") {
            (b, true)
        } else if let Some(b) = expr.strip_suffix(":desc") {
            (b, false)
        } else {
            return Err(ApiError::new(
                Code::InvalidSearchSort,
                format!("Invalid syntax for the sort parameter: expected expression ending by `:asc` or `:desc`, found `{expr}`."),
            ));
        };
        if let Some(args) = body.strip_prefix("_geoPoint(").and_then(|r| r.strip_suffix(')')) {
            let nums: Vec<Option<f64>> = args.split(',').map(|a| a.trim().parse().ok()).collect();
            let (Some(Some(lat)), Some(Some(lng)), 2) = (nums.first().copied(), nums.get(1).copied(), nums.len()) else {
                return Err(ApiError::new(
                    Code::InvalidSearchSort,
                    format!("Invalid syntax for the geo parameter: expected expression formated like `_geoPoint(latitude, longitude)` and ending by `:asc` or `:desc`, found `{expr}`."),
                ));
            };
            if !s.sortable.iter().any(|a| a == "_geo") {
                return Err(not_sortable("_geo"));
            }
            out.push(rank::SortCrit::Geo { point: [lat, lng], asc });
            continue;
        }
        for reserved in ["_geoRadius", "_geoBoundingBox", "_geoDistance", "_geo"] {
            if body.starts_with(reserved) && (body == reserved || body.starts_with(&format!("{reserved}("))) {
                return Err(ApiError::new(
                    Code::InvalidSearchSort,
                    format!("`{reserved}` is a reserved keyword and thus can't be used as a sort expression. Use the _geoPoint(latitude, longitude) built-in rule to sort on _geo field coordinates."),
                ));
            }
        }
        if !s.sortable.iter().any(|a| settings::path_matches(a, body)) {
            return Err(not_sortable(body));
        }
        out.push(rank::SortCrit::Field { field: body.to_string(), asc });
    }
    Ok(out)
}

/// The `sort` of `GET /documents` / `POST /documents/fetch` (milli's `recursive_sort`):
/// errors carry `invalid_document_sort` and no index prefix; no `sort` ranking rule needed.
pub fn parse_document_sort(list: &[String], settings_value: &Value) -> ApiResult<Vec<rank::SortCrit>> {
    let s = settings::EngineSettings::from_value(settings_value);
    let mut sortable = s.sortable.clone();
    sortable.sort();
    sortable.dedup();
    let not_sortable = |attr: &str| {
        let msg = if sortable.is_empty() {
            format!("Attribute `{attr}` is not sortable. This index does not have configured sortable attributes.")
        } else {
            format!("Attribute `{attr}` is not sortable. Available sortable attributes are: `{}`.", sortable.join(", "))
        };
        ApiError::new(Code::InvalidDocumentSort, msg)
    };
    let mut out = Vec::new();
    // Syntax first (milli parses every criterion before checking any attribute).
    let mut parsed = Vec::new();
    for expr in list {
        let (body, asc) = if let Some(b) = expr.strip_suffix(":asc") {
            (b, true)
        } else if let Some(b) = expr.strip_suffix(":desc") {
            (b, false)
        } else {
            return Err(ApiError::new(
                Code::InvalidDocumentSort,
                format!("Invalid syntax for the sort parameter: expected expression ending by `:asc` or `:desc`, found `{expr}`."),
            ));
        };
        if let Some(args) = body.strip_prefix("_geoPoint(").and_then(|r| r.strip_suffix(')')) {
            let nums: Vec<Option<f64>> = args.split(',').map(|a| a.trim().parse().ok()).collect();
            let (Some(Some(lat)), Some(Some(lng)), 2) = (nums.first().copied(), nums.get(1).copied(), nums.len()) else {
                return Err(ApiError::new(
                    Code::InvalidDocumentSort,
                    format!("Invalid syntax for the geo parameter: expected expression formated like `_geoPoint(latitude, longitude)` and ending by `:asc` or `:desc`, found `{expr}`."),
                ));
            };
            parsed.push(rank::SortCrit::Geo { point: [lat, lng], asc });
            continue;
        }
        for reserved in ["_geoRadius", "_geoBoundingBox", "_geoDistance", "_geo"] {
            if body.starts_with(reserved) && (body == reserved || body.starts_with(&format!("{reserved}("))) {
                return Err(ApiError::new(
                    Code::InvalidDocumentSort,
                    format!("`{reserved}` is a reserved keyword and thus can't be used as a sort expression. Use the _geoPoint(latitude, longitude) built-in rule to sort on _geo field coordinates."),
                ));
            }
        }
        parsed.push(rank::SortCrit::Field { field: body.to_string(), asc });
    }
    for c in parsed {
        match &c {
            rank::SortCrit::Field { field, .. } if !s.sortable.iter().any(|a| settings::path_matches(a, field)) => return Err(not_sortable(field)),
            rank::SortCrit::Geo { .. } if !s.sortable.iter().any(|a| a == "_geo") => return Err(not_sortable("_geo")),
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// Orders documents as milli's `recursive_sort`: per criterion, documents with number values
/// first, then string values, each in the criterion's direction, then those without a value;
/// `_geoPoint` by distance, documents without `_geo` last. Ties keep the internal order.
pub fn sort_documents(docs: &mut [(u32, &Map<String, Value>)], crits: &[rank::SortCrit]) {
    use std::cmp::Ordering;
    let key = |d: &Map<String, Value>| -> Vec<Value> {
        crits
            .iter()
            .map(|c| match c {
                rank::SortCrit::Field { field, asc } => rank::sort_value(d, field, *asc),
                rank::SortCrit::Geo { point, .. } => {
                    rank::geo_of(d).map(|g| json!(rank::geo_distance(*point, g))).unwrap_or(Value::Null)
                }
            })
            .collect()
    };
    let mut keyed: Vec<(Vec<Value>, (u32, &Map<String, Value>))> = docs.iter().map(|&(i, d)| (key(d), (i, d))).collect();
    keyed.sort_by(|(ka, (ia, _)), (kb, (ib, _))| {
        for (c, (a, b)) in crits.iter().zip(ka.iter().zip(kb.iter())) {
            let asc = match c {
                rank::SortCrit::Field { asc, .. } | rank::SortCrit::Geo { asc, .. } => *asc,
            };
            let o = match (a, b) {
                (Value::Null, Value::Null) => Ordering::Equal,
                (Value::Null, _) => Ordering::Greater,
                (_, Value::Null) => Ordering::Less,
                (Value::Number(_), Value::String(_)) => Ordering::Less,
                (Value::String(_), Value::Number(_)) => Ordering::Greater,
                _ => {
                    let o = rank::compare_values(a, b);
                    if asc {
                        o
                    } else {
                        o.reverse()
                    }
                }
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        ia.cmp(ib)
    });
    for (slot, (_, v)) in docs.iter_mut().zip(keyed) {
        *slot = v;
    }
}

fn facet_error(s: &settings::EngineSettings, attr: &str) -> ApiError {
    let msg = if s.filterable.is_empty() {
        format!("Invalid facet distribution: Pattern `{attr}` is not filterable. This index does not have configured filterable attributes.")
    } else {
        let mut list = s.filterable.clone();
        list.sort();
        let list = list.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ");
        format!("Invalid facet distribution: Pattern `{attr}` is not filterable. Available filterable attribute patterns are: {list}.")
    };
    ApiError::new(Code::InvalidSearchFacets, msg)
}

fn check_facets(s: &settings::EngineSettings, facets: &[String]) -> ApiResult<()> {
    for f in facets {
        if f != "*" && !s.is_filterable(f) {
            return Err(facet_error(s, f));
        }
    }
    Ok(())
}

/// Ranks the documents of `index` for `query`.
fn rank_query<'a>(index: &IndexSnapshot<'a>, query: &SearchQuery) -> ApiResult<Ranked<'a>> {
    let p = params::Params::from_object(&query.raw, "")?;
    if p.semantic {
        return Err(ApiError::not_implemented("Hybrid and vector search here (facet search, federated search) in the test node"));
    }
    if let Some(what) = p.unsupported {
        return Err(ApiError::not_implemented(what));
    }
    let s = settings::EngineSettings::from_value(index.settings);
    let sort = parse_sort(p.sort.as_deref().unwrap_or(&[]), &s, index.uid)?;
    if let Some(on) = &p.attributes_to_search_on {
        for a in on {
            if s.searchable_weight(a).is_none() {
                let list = s.searchable.clone().unwrap_or_else(|| vec!["*".into()]).join(", ");
                return Err(ApiError::new(
                    Code::InvalidSearchAttributesToSearchOn,
                    format!("Index `{}`: Attribute `{a}` is not searchable. Available searchable attributes are: `{list}`.", index.uid),
                ));
            }
        }
    }
    let distinct = p.distinct.clone().or_else(|| s.distinct.clone());
    if let Some(d) = &p.distinct {
        if !s.is_filterable(d) {
            let mut list = s.filterable.clone();
            list.sort();
            let detail = if list.is_empty() {
                "This index does not have configured filterable attributes.".to_string()
            } else {
                format!("Available filterable attributes patterns are: `{}`.", list.join(", "))
            };
            return Err(ApiError::new(
                Code::InvalidSearchDistinct,
                format!("Index `{}`: Attribute `{d}` is not filterable and thus, cannot be used as distinct attribute. {detail}", index.uid),
            ));
        }
    }

    let q_text = p.q.as_deref().unwrap_or("");
    let parsed = rank::parse_query(q_text, &s);
    let terms = parsed.terms;
    // A placeholder search without negations reads no text.
    let reads_text = !terms.is_empty() || !parsed.negative_words.is_empty() || !parsed.negative_phrases.is_empty();
    let search_on = p.attributes_to_search_on.as_deref();
    let settings_key = cache::settings_key(&s, search_on);
    let fields: Vec<std::sync::Arc<Vec<rank::FieldWords>>> = index
        .documents
        .iter()
        .map(|d| {
            if reads_text {
                cache::analyze(d, settings_key, || rank::analyze(d, &s, search_on))
            } else {
                Default::default()
            }
        })
        .collect();
    // Documents holding a negated word are out.
    let excluded: Vec<bool> = fields
        .iter()
        .map(|fs| {
            fs.iter().any(|f| {
                f.words.iter().any(|(w, _)| parsed.negative_words.contains(w))
                    || parsed.negative_phrases.iter().any(|p| !rank::phrase_positions(&f.words, p).is_empty())
            })
        })
        .collect();
    let rules = rank::rules(&s, &sort, p.matching_strategy);
    let mut q = rank::Query {
        terms: &terms,
        rules: &rules,
        removal_sets: &[],
        max_weight: s.max_weight(),
        displayed: s.displayed.as_deref(),
        proximity_by_attribute: s.proximity_by_attribute,
        memo: Default::default(),
    };
    // Term frequencies only matter to the `frequency` strategy.
    let frequency = p.matching_strategy == params::Strategy::Frequency;
    let term_doc_counts: Vec<usize> = (0..terms.len())
        .filter(|_| frequency)
        .map(|t| {
            fields
                .iter()
                .filter(|fs| fs.iter().any(|f| f.words.iter().any(|(w, _)| q.matches(t, w).is_some())))
                .count()
        })
        .collect();
    let removal_sets = rank::removal_sets(&terms, p.matching_strategy, &term_doc_counts);
    q.removal_sets = &removal_sets;
    let mut hits: Vec<(&'a Map<String, Value>, rank::Evaluated, f64)> = index
        .documents
        .iter()
        .zip(&fields)
        .zip(&excluded)
        .filter(|(_, out)| !**out)
        .filter_map(|((d, f), _)| rank::evaluate(&q, d, f).map(|e| (*d, e)))
        .map(|(d, e)| {
            let score = rank::score(&e.outcomes);
            (d, e, score)
        })
        .collect();
    // Stable: ties keep insertion order.
    hits.sort_by(|a, b| rank::compare(&a.1.outcomes, &b.1.outcomes));
    if let Some(t) = p.ranking_score_threshold {
        hits.retain(|h| h.2 >= t);
    }
    if let Some(attr) = distinct {
        let mut seen: Vec<String> = Vec::new();
        hits.retain(|(d, _, _)| {
            let mut vals = Vec::new();
            for (k, v) in d.iter() {
                let mut leaves = Vec::new();
                rank::leaves(v, k, &mut leaves);
                for (path, vs) in leaves {
                    if path == attr {
                        // Distinct values compare as facet values.
                        vals.extend(vs.iter().map(|v| match v {
                            Value::String(s) => format!("s{}", s.trim().to_lowercase()),
                            Value::Number(n) => format!("n{}", n.as_f64().unwrap_or(0.0)),
                            other => format!("o{other}"),
                        }));
                    }
                }
            }
            if vals.is_empty() {
                return true;
            }
            if vals.iter().any(|v| seen.contains(v)) {
                return false;
            }
            seen.extend(vals);
            true
        });
    }
    let mut field_order: Vec<String> = Vec::new();
    for d in &index.documents {
        for k in d.keys() {
            if !field_order.contains(k) {
                field_order.push(k.clone());
            }
        }
    }
    Ok(Ranked { params: p, settings: s, index_settings: index.settings, terms, hits, field_order })
}

/// Puts the top-level fields in the index's field order (Meilisearch stores documents by
/// field id, so every hit lists its fields in the order the index first saw them).
fn in_field_order(map: Map<String, Value>, order: &[String]) -> Map<String, Value> {
    let mut out = Map::new();
    for k in order {
        if let Some(v) = map.get(k) {
            out.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in map {
        if !out.contains_key(&k) {
            out.insert(k, v);
        }
    }
    out
}

/// Renders one hit as Meilisearch does (document, `_geoDistance`, extra fields, `_formatted`,
/// `_matchesPosition`, `_rankingScore`, `_rankingScoreDetails`).
fn render_hit(r: &Ranked<'_>, doc: &Map<String, Value>, eval: &rank::Evaluated, score: f64, extra: Option<(&str, Value)>) -> Value {
    let p = &r.params;
    let original = doc;
    let mut doc = in_field_order(doc.clone(), &r.field_order);
    doc.shift_remove("_vectors");
    let retrieve = p.attributes_to_retrieve.as_deref();
    let mut hit = format::select(&doc, &r.settings, retrieve);
    vector::render(&mut hit, original, r.index_settings, p.retrieve_vectors && vector::displayed(r.index_settings));
    // `_geoDistance` is computed from the retrieved `_geo` only.
    if let (Some(d), true) = (eval.geo_distance, hit.contains_key("_geo")) {
        hit.insert("_geoDistance".into(), json!(d.round() as u64));
    }
    let highlight = p.attributes_to_highlight.as_deref().filter(|l| !l.is_empty());
    let crop = p.attributes_to_crop.as_deref().filter(|l| !l.is_empty());
    let formatted = if highlight.is_some() || crop.is_some() {
        // `_formatted` holds the retrieved attributes plus those to highlight or crop.
        let mut keys: Vec<String> = retrieve.map(<[String]>::to_vec).unwrap_or_else(|| vec!["*".to_string()]);
        keys.extend(highlight.into_iter().flatten().cloned());
        keys.extend(crop.into_iter().flatten().map(|a| match a.rsplit_once(':') {
            Some((name, _)) => name.to_string(),
            None => a.clone(),
        }));
        let base = format::select(&doc, &r.settings, Some(&keys));
        let opts = format::FormatOptions {
            highlight,
            crop,
            crop_length: p.crop_length,
            crop_marker: &p.crop_marker,
            pre: &p.highlight_pre_tag,
            post: &p.highlight_post_tag,
        };
        Some(format::formatted(&base, &r.terms, &opts))
    } else {
        None
    };
    // Matches are looked for in every displayed attribute.
    let matches = p
        .show_matches_position
        .then(|| format::matches_position(&format::select(&doc, &r.settings, None), &r.terms));
    if let Some((k, v)) = extra {
        hit.insert(k.to_string(), v);
    }
    if let Some(f) = formatted.filter(|f| !f.is_empty()) {
        hit.insert("_formatted".into(), Value::Object(f));
    }
    if let Some(m) = matches {
        hit.insert("_matchesPosition".into(), Value::Object(m));
    }
    if p.show_ranking_score {
        hit.insert("_rankingScore".into(), json!(score));
    }
    if p.show_ranking_score_details {
        hit.insert("_rankingScoreDetails".into(), rank::details(&eval.outcomes));
    }
    Value::Object(hit)
}

/// Fields a `facets` list selects, sorted: `*` selects every filterable field, a name selects
/// the field and the fields nested below it (milli's legacy pattern match). A requested field
/// no document has is still listed (with no values).
fn facet_names(s: &settings::EngineSettings, facets: &[String], docs: &[&Map<String, Value>]) -> Vec<String> {
    let mut paths: Vec<String> = Vec::new();
    for d in docs {
        let mut all = Vec::new();
        for (k, v) in d.iter() {
            rank::leaves(v, k, &mut all);
        }
        for (path, _) in all {
            if !paths.contains(&path) && s.is_filterable(&path) && path != "_geo" && !path.starts_with("_geo.") {
                paths.push(path);
            }
        }
    }
    let mut names: Vec<String> = Vec::new();
    for f in facets {
        let selected: Vec<&String> = paths.iter().filter(|p| f == "*" || settings::path_matches(f, p)).collect();
        if selected.is_empty() && f != "*" && !names.contains(f) {
            names.push(f.clone());
        }
        for p in selected {
            if !names.contains(p) {
                names.push(p.clone());
            }
        }
    }
    names.sort();
    names
}

/// `facetDistribution` and `facetStats` over `docs`.
fn facet_objects(s: &settings::EngineSettings, facets: &[String], docs: &[&Map<String, Value>]) -> (Value, Value) {
    let mut dist = Map::new();
    let mut stats = Map::new();
    for name in facet_names(s, facets, docs) {
        let values = facets::order(facets::count_values(docs, &name), s.facet_sorted_by_count(&name), s.max_values_per_facet);
        dist.insert(name.clone(), facets::distribution_object(&values));
        if let Some((min, max)) = facets::stats(docs, &name) {
            stats.insert(name, json!({"min": min, "max": max}));
        }
    }
    (Value::Object(dist), Value::Object(stats))
}

/// A search the vector store answers (Meilisearch's `search_kind`, semantic case).
pub struct Semantic {
    pub embedder: String,
    pub vector: Vec<f32>,
}

/// What kind of search `query` is on an index with `settings`, with Meilisearch's errors
/// (checked before the filter): `None` for a keyword search (no `hybrid`, `semanticRatio:
/// 0`, or neither `q` nor `vector`), else the embedder and the query vector.
pub fn semantic_kind(query: &SearchQuery, settings: &Value) -> ApiResult<Option<Semantic>> {
    let given = |k: &str| query.raw.get(k).filter(|v| !v.is_null());
    if given("media").is_some() {
        return Err(ApiError::not_implemented("`media` in the test node"));
    }
    let vector = given("vector");
    let Some(hybrid) = given("hybrid") else {
        if vector.is_some() {
            return Err(ApiError::new(Code::MissingSearchHybrid, "Invalid request: missing `hybrid` parameter when `vector` or `media` are present."));
        }
        return Ok(None);
    };
    let parsed = hybrid.as_object().and_then(|h| {
        let embedder = h.get("embedder")?.as_str()?.to_string();
        let ratio = match h.get("semanticRatio") {
            None => 0.5f32,
            Some(r) => r.as_f64().filter(|r| (0.0..=1.0).contains(r))? as f32,
        };
        h.keys().all(|k| k == "embedder" || k == "semanticRatio").then_some((embedder, ratio))
    });
    let Some((embedder, ratio)) = parsed else {
        return Err(ApiError::not_implemented("Validating this `hybrid` value in the test node"));
    };
    let placeholder = query.raw.get("q").and_then(Value::as_str).is_none_or(|q| q.trim().is_empty());
    if ratio == 0.0 || (placeholder && vector.is_none()) {
        return Ok(None);
    }
    if ratio != 1.0 && !placeholder {
        return Err(ApiError::not_implemented("Hybrid search mixing keyword and semantic results in the test node"));
    }
    let Some(dimensions) = vector::embedders(settings).into_iter().find(|(n, _)| *n == embedder).map(|(_, d)| d) else {
        return Err(ApiError::new(Code::InvalidSearchEmbedder, format!("Cannot find embedder with name `{embedder}`.")));
    };
    let Some(vector) = vector.and_then(Value::as_array) else {
        return Err(ApiError::not_implemented("Embedding a query (userProvided embedders cannot) in the test node"));
    };
    let vector: Vec<f32> = vector.iter().filter_map(Value::as_f64).map(|f| f as f32).collect();
    if vector.len() != dimensions {
        return Err(ApiError::new(
            Code::InvalidVectorDimensions,
            format!("Invalid vector dimensions: expected: `{dimensions}`, found: `{}`.", vector.len()),
        ));
    }
    Ok(Some(Semantic { embedder, vector }))
}

/// Runs one search; returns the response body (without `requestUid`).
pub fn search(index: &IndexSnapshot<'_>, query: &SearchQuery) -> ApiResult<Value> {
    if let Some(semantic) = semantic_kind(query, index.settings)? {
        return semantic_search(index, query, semantic);
    }
    if query.raw.contains_key("hybrid") || query.raw.contains_key("vector") {
        // A keyword search after all: `hybrid` and `vector` play no part.
        let mut keyword = query.clone();
        keyword.raw.shift_remove("hybrid");
        keyword.raw.shift_remove("vector");
        return search(index, &keyword);
    }
    let started = Instant::now();
    let r = rank_query(index, query)?;
    let ranked = started.elapsed();
    let p = &r.params;
    if let Some(f) = &p.facets {
        check_facets(&r.settings, f).map_err(|e| prefix_error(&format!("Index `{}`: ", index.uid), e))?;
    }
    let total = r.hits.len();
    let capped = total.min(r.settings.max_total_hits);
    let finite = p.page.is_some() || p.hits_per_page.is_some();
    let (offset, limit) = if finite {
        let hpp = p.hits_per_page.unwrap_or(20);
        match p.page.unwrap_or(1) {
            0 => (0, 0),
            page => (hpp.saturating_mul(page - 1), hpp),
        }
    } else {
        (p.offset.unwrap_or(0), p.limit.unwrap_or(20))
    };
    let hits: Vec<Value> = r
        .hits
        .iter()
        .take(capped)
        .skip(offset)
        .take(limit)
        .map(|(d, e, s)| render_hit(&r, d, e, *s, None))
        .collect();
    let formatted = started.elapsed();

    let mut out = Map::new();
    out.insert("hits".into(), Value::Array(hits));
    out.insert("query".into(), json!(p.q.clone().unwrap_or_default()));
    out.insert("processingTimeMs".into(), json!(started.elapsed().as_millis() as u64));
    if finite {
        let hpp = p.hits_per_page.unwrap_or(20);
        let total_pages = if hpp == 0 { 0 } else { total.div_ceil(hpp) };
        out.insert("hitsPerPage".into(), json!(hpp));
        out.insert("page".into(), json!(p.page.unwrap_or(1)));
        out.insert("totalPages".into(), json!(total_pages));
        out.insert("totalHits".into(), json!(total));
    } else {
        out.insert("limit".into(), json!(p.limit.unwrap_or(20)));
        out.insert("offset".into(), json!(p.offset.unwrap_or(0)));
        out.insert("estimatedTotalHits".into(), json!(total));
    }
    if let Some(f) = &p.facets {
        let docs: Vec<&Map<String, Value>> = r.hits.iter().map(|h| h.0).collect();
        let (dist, stats) = facet_objects(&r.settings, f, &docs);
        out.insert("facetDistribution".into(), dist);
        out.insert("facetStats".into(), stats);
    }
    if p.show_performance_details {
        // Meilisearch's shape: step path → `{:.2?}` of its duration, the whole search last.
        let mut steps = Map::new();
        let ranking = if p.q.as_deref().unwrap_or_default().is_empty() { "search > placeholder ranking" } else { "search > keyword ranking" };
        steps.insert(ranking.into(), json!(format!("{ranked:.2?}")));
        steps.insert("search > format".into(), json!(format!("{:.2?}", formatted - ranked)));
        if p.facets.is_some() {
            steps.insert("search > facet distribution".into(), json!(format!("{:.2?}", started.elapsed() - formatted)));
        }
        steps.insert("search".into(), json!(format!("{:.2?}", started.elapsed())));
        out.insert("performanceDetails".into(), Value::Object(steps));
    }
    Ok(Value::Object(out))
}

/// `offset`/`limit` or `page`/`hitsPerPage` of a search: `(finite, offset, limit)`.
fn window(p: &params::Params) -> (bool, usize, usize) {
    let finite = p.page.is_some() || p.hits_per_page.is_some();
    if finite {
        let hpp = p.hits_per_page.unwrap_or(20);
        match p.page.unwrap_or(1) {
            0 => (true, 0, 0),
            page => (true, hpp.saturating_mul(page - 1), hpp),
        }
    } else {
        (false, p.offset.unwrap_or(0), p.limit.unwrap_or(20))
    }
}

/// Whether milli's vector search of an index with these rules is its vector rule alone: a
/// word rule (where milli puts the vector rule) and no custom `attr:asc`/`attr:desc` rule.
fn vector_rule_alone(rules: &[String]) -> bool {
    rules.iter().any(|r| matches!(r.as_str(), "words" | "typo" | "proximity" | "attribute" | "attributeRank" | "wordPosition" | "exactness"))
        && rules.iter().all(|r| !r.ends_with(":asc") && !r.ends_with(":desc"))
}

/// A vector search: the filtered documents by their best similarity to the query vector,
/// those without a vector for the embedder last (milli's `VectorSort` alone).
fn semantic_search(index: &IndexSnapshot<'_>, query: &SearchQuery, semantic: Semantic) -> ApiResult<Value> {
    let started = Instant::now();
    let p = params::Params::from_object(&query.raw, "")?;
    let s = settings::EngineSettings::from_value(index.settings);
    if let Some(what) = p.unsupported {
        return Err(ApiError::not_implemented(what));
    }
    let unsupported = p.sort.as_ref().is_some_and(|l| !l.is_empty())
        || p.distinct.is_some()
        || s.distinct.is_some()
        || p.attributes_to_highlight.is_some()
        || p.attributes_to_crop.is_some()
        || p.show_matches_position
        || !vector_rule_alone(&s.ranking_rules);
    if unsupported {
        return Err(ApiError::not_implemented(
            "Vector search with `sort`, `distinct`, custom ranking rules, highlighting, cropping or matches in the test node",
        ));
    }
    if let Some(f) = &p.facets {
        check_facets(&s, f).map_err(|e| prefix_error(&format!("Index `{}`: ", index.uid), e))?;
    }
    let mut ranked: Vec<(&Map<String, Value>, Option<f32>)> = index
        .documents
        .iter()
        .map(|d| (*d, vector::best_similarity(&vector::embeddings_of(d, &semantic.embedder), &semantic.vector)))
        .collect();
    // Stable: equal similarities keep the internal order, as a bucket of milli does.
    ranked.sort_by(|a, b| match (a.1, b.1) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    let score = |sim: Option<f32>| sim.map_or(0.0, |s| s as f64);
    if let Some(t) = p.ranking_score_threshold {
        ranked.retain(|(_, sim)| score(*sim) >= t);
    }
    let mut field_order: Vec<String> = Vec::new();
    for d in &index.documents {
        for k in d.keys() {
            if !field_order.contains(k) {
                field_order.push(k.clone());
            }
        }
    }
    let total = ranked.len();
    let (finite, offset, limit) = window(&p);
    let retrieve_vectors = p.retrieve_vectors && vector::displayed(index.settings);
    let hits: Vec<Value> = ranked
        .iter()
        .take(total.min(s.max_total_hits))
        .skip(offset)
        .take(limit)
        .map(|(d, sim)| {
            let mut doc = in_field_order((*d).clone(), &field_order);
            doc.shift_remove("_vectors");
            let mut hit = format::select(&doc, &s, p.attributes_to_retrieve.as_deref());
            vector::render(&mut hit, d, index.settings, retrieve_vectors);
            if p.show_ranking_score {
                hit.insert("_rankingScore".into(), json!(score(*sim)));
            }
            if p.show_ranking_score_details {
                hit.insert("_rankingScoreDetails".into(), vector::details(*sim));
            }
            Value::Object(hit)
        })
        .collect();
    let ranked_at = started.elapsed();
    let page_hits = hits.len();
    let mut out = Map::new();
    out.insert("hits".into(), Value::Array(hits));
    out.insert("query".into(), json!(p.q.clone().unwrap_or_default()));
    if p.retrieve_vectors {
        out.insert("queryVector".into(), Value::Array(semantic.vector.iter().map(|f| json!(*f as f64)).collect()));
    }
    out.insert("processingTimeMs".into(), json!(started.elapsed().as_millis() as u64));
    if finite {
        let hpp = p.hits_per_page.unwrap_or(20);
        out.insert("hitsPerPage".into(), json!(hpp));
        out.insert("page".into(), json!(p.page.unwrap_or(1)));
        out.insert("totalPages".into(), json!(if hpp == 0 { 0 } else { total.div_ceil(hpp) }));
        out.insert("totalHits".into(), json!(total));
    } else {
        out.insert("limit".into(), json!(limit));
        out.insert("offset".into(), json!(offset));
        out.insert("estimatedTotalHits".into(), json!(total.min(s.max_total_hits)));
    }
    if let Some(f) = &p.facets {
        let docs: Vec<&Map<String, Value>> = ranked.iter().map(|h| h.0).collect();
        let (dist, stats) = facet_objects(&s, f, &docs);
        out.insert("facetDistribution".into(), dist);
        out.insert("facetStats".into(), stats);
    }
    if p.show_performance_details {
        let mut steps = Map::new();
        steps.insert("search > semantic ranking".into(), json!(format!("{ranked_at:.2?}")));
        steps.insert("search".into(), json!(format!("{:.2?}", started.elapsed())));
        out.insert("performanceDetails".into(), Value::Object(steps));
    }
    // Every hit of a semantic search comes from the vector store.
    out.insert("semanticHitCount".into(), json!(page_hits));
    Ok(Value::Object(out))
}

/// The reference document and the documents it is compared with for `/similar`.
pub struct SimilarInput<'a> {
    pub settings: &'a Value,
    /// The reference document's external id, as the answer's `id`.
    pub id: String,
    pub reference: &'a Map<String, Value>,
    /// The filtered documents without the reference, in internal-id order.
    pub candidates: Vec<&'a Map<String, Value>>,
    /// Top-level fields in the order the index first saw them.
    pub field_order: Vec<String>,
}

/// `/similar` (milli's `Similar`, Meilisearch's `perform_similar`), the request already
/// validated: the `SimilarQuery` object.
pub fn similar(input: SimilarInput<'_>, q: &Map<String, Value>) -> Value {
    let started = Instant::now();
    let s = settings::EngineSettings::from_value(input.settings);
    let flag = |k: &str| q.get(k).and_then(Value::as_bool).unwrap_or(false);
    let offset = q.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
    let limit = q.get("limit").and_then(Value::as_u64).unwrap_or(20) as usize;
    let threshold = q.get("rankingScoreThreshold").and_then(Value::as_f64);
    let embedder = q.get("embedder").and_then(Value::as_str).unwrap_or_default();
    let retrieve: Option<Vec<String>> =
        q.get("attributesToRetrieve").and_then(Value::as_array).map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect());
    let retrieve_vectors = flag("retrieveVectors") && vector::displayed(input.settings);
    let reference = vector::embeddings_of(input.reference, embedder);
    let embeddings: Vec<Vec<Vec<f32>>> = input.candidates.iter().map(|d| vector::embeddings_of(d, embedder)).collect();
    let refs: Vec<&[Vec<f32>]> = embeddings.iter().map(Vec::as_slice).collect();
    let ranking = vector::similar_ranking(&reference, &refs, offset.saturating_add(limit).saturating_add(1));
    let mut total = input.candidates.len();
    let mut hits = Vec::new();
    for (i, (pos, sim)) in ranking.into_iter().enumerate().skip(offset).take(limit) {
        let score = sim as f64;
        if threshold.is_some_and(|t| score < t) {
            total = i;
            break;
        }
        let d = input.candidates[pos];
        let mut doc = in_field_order(d.clone(), &input.field_order);
        doc.shift_remove("_vectors");
        let mut hit = format::select(&doc, &s, retrieve.as_deref());
        vector::render(&mut hit, d, input.settings, retrieve_vectors);
        if flag("showRankingScore") {
            hit.insert("_rankingScore".into(), json!(score));
        }
        if flag("showRankingScoreDetails") {
            hit.insert("_rankingScoreDetails".into(), vector::details(Some(sim)));
        }
        hits.push(Value::Object(hit));
    }
    let mut out = Map::new();
    out.insert("hits".into(), Value::Array(hits));
    out.insert("id".into(), json!(input.id));
    out.insert("processingTimeMs".into(), json!(started.elapsed().as_millis() as u64));
    out.insert("limit".into(), json!(limit));
    out.insert("offset".into(), json!(offset));
    out.insert("estimatedTotalHits".into(), json!(total.min(s.max_total_hits)));
    if flag("showPerformanceDetails") {
        out.insert("performanceDetails".into(), json!({"search": format!("{:.2?}", started.elapsed())}));
    }
    Value::Object(out)
}

fn prefix_error(prefix: &str, e: ApiError) -> ApiError {
    match e {
        ApiError::Own { code, message } => ApiError::Own { code, message: format!("{prefix}{message}") },
        other => other,
    }
}

fn inside(position: usize, e: ApiError) -> ApiError {
    prefix_error(&format!("Inside `.queries[{position}]`: "), e)
}

/// Federated multi-search over `(index, query)` pairs; `federation` is the request's
/// `federation` object.
pub fn federated_search(inputs: &[(IndexSnapshot<'_>, SearchQuery)], federation: &Value) -> ApiResult<Value> {
    let started = Instant::now();
    let fed = expect_object(federation, ".federation")?;
    params::check_unknown(fed, &["limit", "offset", "page", "hitsPerPage", "facetsByIndex", "mergeFacets", "showPerformanceDetails"], ".federation")?;
    let reader = params::Reader { obj: fed, prefix: ".federation".into() };
    let limit = reader.usize("limit", Code::InvalidSearchLimit)?;
    let offset = reader.usize("offset", Code::InvalidSearchOffset)?;
    let page = reader.usize("page", Code::InvalidSearchPage)?;
    let hits_per_page = reader.usize("hitsPerPage", Code::InvalidSearchHitsPerPage)?;
    let facets_by_index: BTreeMap<String, Vec<String>> = match fed.get("facetsByIndex").filter(|v| !v.is_null()) {
        None => BTreeMap::new(),
        Some(Value::Object(m)) => {
            let mut out = BTreeMap::new();
            for (uid, v) in m {
                let list = match v {
                    Value::Null => Vec::new(),
                    Value::Array(items) => items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect(),
                    other => {
                        return Err(ApiError::new(
                            Code::InvalidMultiSearchFacetsByIndex,
                            format!("Invalid value type at `.federation.facetsByIndex.{uid}`: expected an array, but found {}: `{other}`", params::kind(other)),
                        ))
                    }
                };
                out.insert(uid.clone(), list);
            }
            out
        }
        Some(other) => {
            return Err(ApiError::new(
                Code::InvalidMultiSearchFacetsByIndex,
                format!("Invalid value type at `.federation.facetsByIndex`: expected an object, but found {}: `{other}`", params::kind(other)),
            ))
        }
    };
    let merge_facets = match fed.get("mergeFacets").filter(|v| !v.is_null()) {
        None => None,
        Some(Value::Object(m)) => Some(m.get("maxValuesPerFacet").and_then(Value::as_u64).unwrap_or(100) as usize),
        Some(other) => {
            return Err(ApiError::new(
                Code::InvalidMultiSearchMergeFacets,
                format!("Invalid value type at `.federation.mergeFacets`: expected an object, but found {}: `{other}`", params::kind(other)),
            ))
        }
    };

    // Rank each query.
    let mut ranked = Vec::with_capacity(inputs.len());
    for (i, (index, query)) in inputs.iter().enumerate() {
        for field in ["limit", "offset", "page", "hitsPerPage"] {
            if query.raw.get(field).is_some_and(|v| !v.is_null()) {
                return Err(ApiError::new(
                    Code::InvalidMultiSearchQueryPagination,
                    format!("Inside `.queries[{i}]`: Using pagination options is not allowed in federated queries.\n - Hint: remove `{field}` from query #{i} or remove `federation` from the request\n - Hint: pass `federation.limit` and `federation.offset` for pagination in federated search"),
                ));
            }
        }
        if let Some(f) = query.raw.get("facets").filter(|v| !v.is_null()) {
            return Err(ApiError::new(
                Code::InvalidMultiSearchQueryFacets,
                format!("Inside `.queries[{i}]`: Using facet options is not allowed in federated queries.\n - Hint: remove `facets` from query #{i} or remove `federation` from the request\n - Hint: pass `federation.facetsByIndex.{}: {f}` for facets in federated search", index.uid),
            ));
        }
        if query.raw.get("showPerformanceDetails").is_some_and(|v| !v.is_null()) {
            return Err(ApiError::new(
                Code::InvalidMultiSearchQueryShowPerformanceDetails,
                format!("Inside `.queries[{i}]`: Using `.showPerformanceDetails` is not allowed in federated queries.\n - Hint: remove `showPerformanceDetails` from the query or remove `federation` from the request"),
            ));
        }
        let r = rank_query(index, query).map_err(|e| inside(i, e))?;
        let weight = query
            .federation_options
            .as_ref()
            .and_then(|o| o.get("weight"))
            .and_then(Value::as_f64)
            .unwrap_or(1.0);
        ranked.push((r, weight));
    }
    // Facets by index, checked against the first query on that index.
    let mut facets_out: BTreeMap<String, (Value, Value)> = BTreeMap::new();
    for (uid, list) in &facets_by_index {
        // An index no query uses gives no distribution (Meilisearch only checks that it
        // exists and that its facets are valid; this node does not check those).
        let Some(pos) = inputs.iter().position(|(ix, _)| ix.uid == uid) else {
            continue;
        };
        let s = &ranked[pos].0.settings;
        check_facets(s, list).map_err(|e| {
            prefix_error(&format!("Inside `.queries[{pos}]`: Inside `.federation.facetsByIndex.{uid}`: "), e)
        })?;
        // Union of the documents matched by the queries on this index.
        let mut docs: Vec<&Map<String, Value>> = Vec::new();
        for ((ix, _), (r, _)) in inputs.iter().zip(&ranked) {
            if ix.uid != uid {
                continue;
            }
            for (d, _, _) in &r.hits {
                let same = |o: &&Map<String, Value>| match ix.primary_key {
                    Some(pk) => o.get(pk) == d.get(pk),
                    None => std::ptr::eq(*o, *d),
                };
                if !docs.iter().any(same) {
                    docs.push(d);
                }
            }
        }
        facets_out.insert(uid.clone(), facet_objects(s, list, &docs));
    }

    // Merge by weighted score values; ties keep query order, then each query's order.
    let mut merged: Vec<(f64, Vec<rank::Weighted>, usize, usize)> = Vec::new();
    for (qi, (r, weight)) in ranked.iter().enumerate() {
        for (hi, h) in r.hits.iter().enumerate() {
            merged.push((h.2 * weight, rank::weighted_values(&h.1.outcomes, *weight), qi, hi));
        }
    }
    merged.sort_by(|a, b| {
        rank::compare_weighted(&a.1, a.0, &b.1, b.0).then(a.2.cmp(&b.2)).then(a.3.cmp(&b.3))
    });
    // A document matched by several queries on one index appears once, at its best rank,
    // and counts once in the total (Meilisearch unions each index's candidates).
    let mut seen: std::collections::HashSet<(String, String)> = std::collections::HashSet::new();
    merged.retain(|&(_, _, qi, hi)| {
        let (index, _) = &inputs[qi];
        let doc = ranked[qi].0.hits[hi].0;
        let key = match index.primary_key.and_then(|pk| doc.get(pk)) {
            Some(v) => v.to_string(),
            None => format!("{:p}", doc as *const _),
        };
        seen.insert((index.uid.to_string(), key))
    });
    let total = merged.len();
    let finite = page.is_some() || hits_per_page.is_some();
    let (skip, take) = if finite {
        let hpp = hits_per_page.unwrap_or(20);
        match page.unwrap_or(1) {
            0 => (0, 0),
            p => (hpp.saturating_mul(p - 1), hpp),
        }
    } else {
        (offset.unwrap_or(0), limit.unwrap_or(20))
    };
    let hits: Vec<Value> = merged
        .iter()
        .skip(skip)
        .take(take)
        .map(|&(weighted, _, qi, hi)| {
            let (r, _) = &ranked[qi];
            let (d, e, s) = &r.hits[hi];
            let meta = json!({
                "indexUid": inputs[qi].0.uid,
                "queriesPosition": qi,
                "weightedRankingScore": weighted,
            });
            render_hit(r, d, e, *s, Some(("_federation", meta)))
        })
        .collect();

    let mut out = Map::new();
    out.insert("hits".into(), Value::Array(hits));
    out.insert("processingTimeMs".into(), json!(started.elapsed().as_millis() as u64));
    if finite {
        let hpp = hits_per_page.unwrap_or(20);
        out.insert("hitsPerPage".into(), json!(hpp));
        out.insert("page".into(), json!(page.unwrap_or(1)));
        out.insert("totalPages".into(), json!(if hpp == 0 { 0 } else { total.div_ceil(hpp) }));
        out.insert("totalHits".into(), json!(total));
    } else {
        out.insert("limit".into(), json!(limit.unwrap_or(20)));
        out.insert("offset".into(), json!(offset.unwrap_or(0)));
        out.insert("estimatedTotalHits".into(), json!(total));
    }
    if !facets_by_index.is_empty() {
        match merge_facets {
            None => {
                let by_index: Map<String, Value> = facets_out
                    .into_iter()
                    .map(|(uid, (dist, stats))| (uid, json!({"distribution": dist, "stats": stats})))
                    .collect();
                out.insert("facetsByIndex".into(), Value::Object(by_index));
            }
            Some(max) => {
                let (dist, stats) = merge_facet_objects(facets_out.into_values(), max);
                out.insert("facetDistribution".into(), dist);
                out.insert("facetStats".into(), stats);
            }
        }
    }
    if reader.bool("showPerformanceDetails", Code::InvalidSearchShowPerformanceDetails)? == Some(true) {
        let d = format!("{:.2?}", started.elapsed());
        out.insert("performanceDetails".into(), json!({"federating results > execute local search": d, "federating results": d}));
    }
    Ok(Value::Object(out))
}

/// `mergeFacets`: sums the counts of equal values, widens the stats.
fn merge_facet_objects(parts: impl Iterator<Item = (Value, Value)>, max: usize) -> (Value, Value) {
    let mut dist: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    let mut stats: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (d, s) in parts {
        for (attr, values) in d.as_object().into_iter().flatten() {
            let entry = dist.entry(attr.clone()).or_default();
            for (v, c) in values.as_object().into_iter().flatten() {
                let c = c.as_u64().unwrap_or(0);
                match entry.iter_mut().find(|(k, _)| k == v) {
                    Some((_, n)) => *n += c,
                    None => entry.push((v.clone(), c)),
                }
            }
        }
        for (attr, st) in s.as_object().into_iter().flatten() {
            let (lo, hi) = (st["min"].as_f64().unwrap_or(0.0), st["max"].as_f64().unwrap_or(0.0));
            stats
                .entry(attr.clone())
                .and_modify(|(a, b)| {
                    *a = a.min(lo);
                    *b = b.max(hi);
                })
                .or_insert((lo, hi));
        }
    }
    let dist: Map<String, Value> = dist
        .into_iter()
        .map(|(attr, mut values)| {
            values.sort_by_key(|v| text::normalize(&v.0));
            values.truncate(max);
            (attr, Value::Object(values.into_iter().map(|(k, c)| (k, json!(c))).collect()))
        })
        .collect();
    let stats: Map<String, Value> =
        stats.into_iter().map(|(a, (lo, hi))| (a, json!({"min": lo, "max": hi}))).collect();
    (Value::Object(dist), Value::Object(stats))
}

/// Parses a facet-search body; the returned query's `filter` is for the HTTP layer.
pub fn parse_facet_search_query(body: &Value) -> ApiResult<SearchQuery> {
    let obj = expect_object(body, "")?;
    params::check_unknown(obj, FACET_SEARCH_FIELDS, "")?;
    let r = params::Reader { obj, prefix: String::new() };
    if r.string("facetName", Code::InvalidFacetSearchFacetName)?.is_none() {
        return Err(ApiError::new(Code::MissingFacetSearchFacetName, "Missing field `facetName`"));
    }
    r.string("facetQuery", Code::InvalidFacetSearchFacetQuery)?;
    r.bool("exhaustiveFacetCount", Code::InvalidFacetSearchExhaustiveFacetCount)?;
    let mut search = obj.clone();
    for f in ["facetName", "facetQuery", "exhaustiveFacetCount"] {
        search.remove(f);
    }
    params::Params::from_object(&search, "")?;
    let filter = obj.get("filter").filter(|f| !f.is_null()).cloned();
    Ok(SearchQuery { raw: obj.clone(), filter, index_uid: None, federation_options: None })
}

/// `POST /indexes/{uid}/facet-search`.
pub fn facet_search(index: &IndexSnapshot<'_>, query: &SearchQuery) -> ApiResult<Value> {
    let started = Instant::now();
    let name = query.raw.get("facetName").and_then(Value::as_str).unwrap_or_default().to_string();
    let facet_query = query.raw.get("facetQuery").and_then(Value::as_str).map(str::to_string);
    let s = settings::EngineSettings::from_value(index.settings);
    if !s.is_filterable(&name) {
        let mut list = s.filterable.clone();
        list.sort();
        let detail = if list.is_empty() {
            "This index does not have configured facet-searchable attributes. To make it facet-searchable add it to the `filterableAttributes` index settings.".to_string()
        } else {
            format!("Available facet-searchable attributes patterns are: `{}`. To make it facet-searchable add it to the `filterableAttributes` index settings.", list.join(", "))
        };
        return Err(ApiError::new(
            Code::InvalidFacetSearchFacetName,
            format!("Index `{}`: Attribute `{name}` is not facet-searchable. {detail}", index.uid),
        ));
    }
    let mut search = query.clone();
    for f in ["facetName", "facetQuery", "exhaustiveFacetCount"] {
        search.raw.remove(f);
    }
    let r = rank_query(index, &search)?;
    let docs: Vec<&Map<String, Value>> = r.hits.iter().map(|h| h.0).collect();
    // Only string values are facet-searchable.
    let mut values: Vec<facets::FacetValue> =
        facets::count_values(&docs, &name).into_iter().filter(|v| v.number.is_none()).collect();
    if let Some(fq) = facet_query.as_deref() {
        // Prefix match on the normalized value, with the typo budget of the query's length.
        let query: Vec<char> = text::normalize(fq).chars().collect();
        let typos = if !s.typo_enabled {
            0
        } else if s.disable_on_words.iter().any(|w| text::normalize(w) == text::normalize(fq)) {
            usize::MAX
        } else if fq.len() < s.one_typo {
            0
        } else if fq.len() < s.two_typos {
            1
        } else {
            2
        };
        values.retain(|v| {
            let target: Vec<char> = text::normalize(&v.normalized).chars().collect();
            if typos == usize::MAX {
                return target == query;
            }
            text::distance(&query, &target, true).0 <= typos
        });
    }
    let max = s.max_values_per_facet;
    if s.facet_sorted_by_count(&name) {
        values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| b.display.cmp(&a.display)));
    }
    values.truncate(max);
    let hits: Vec<Value> = values.iter().map(|v| json!({"value": v.display, "count": v.count})).collect();
    Ok(json!({
        "facetHits": hits,
        "facetQuery": facet_query,
        "processingTimeMs": started.elapsed().as_millis() as u64,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs() -> Vec<Map<String, Value>> {
        [
            json!({"id": 1, "title": "Blue Moon", "genre": "Jazz", "year": 1934}),
            json!({"id": 2, "title": "Moon River", "genre": "Pop", "year": 1961}),
            json!({"id": 3, "title": "Fly Me to the Moon", "genre": "Jazz", "year": 1954}),
            json!({"id": 4, "title": "Blue Skies", "genre": "jazz ", "year": 1926}),
        ]
        .into_iter()
        .map(|d| d.as_object().unwrap().clone())
        .collect()
    }

    fn settings() -> Value {
        json!({"searchableAttributes": ["title", "genre"], "filterableAttributes": ["genre", "year"],
               "sortableAttributes": ["year"]})
    }

    fn run(body: Value) -> ApiResult<Value> {
        let docs = docs();
        let settings = settings();
        let index = IndexSnapshot { uid: "songs", primary_key: Some("id"), settings: &settings, documents: docs.iter().collect() };
        search(&index, &parse_search_query(&body, false)?)
    }

    fn ids(v: &Value) -> Vec<u64> {
        v["hits"].as_array().unwrap().iter().map(|h| h["id"].as_u64().unwrap()).collect()
    }

    #[test]
    fn ties_keep_insertion_order_and_sort_breaks_them() {
        let v = run(json!({"q": "moon"})).unwrap();
        // "Blue Moon" has "moon" at position 1, "Moon River" at 0: word position decides.
        assert_eq!(ids(&v), [2, 1, 3]);
        let v = run(json!({"q": "moon", "sort": ["year:asc"]})).unwrap();
        // Same attributeRank for all three: the sort (before wordPosition) decides.
        assert_eq!(ids(&v), [1, 3, 2]);
        let v = run(json!({"q": "", "sort": ["year:desc"]})).unwrap();
        assert_eq!(ids(&v), [2, 3, 1, 4]);
    }

    #[test]
    fn matching_strategies() {
        // `last`: documents need the first word; fewer matched words rank lower.
        let v = run(json!({"q": "blue moon", "showRankingScoreDetails": true})).unwrap();
        assert_eq!(ids(&v), [1, 4]);
        assert_eq!(v["hits"][1]["_rankingScoreDetails"]["words"], json!({"order": 0, "matchingWords": 1, "maxMatchingWords": 2, "score": 0.5}));
        // `all`: every word, and no `words` rule in the details.
        let v = run(json!({"q": "blue moon", "matchingStrategy": "all", "showRankingScoreDetails": true})).unwrap();
        assert_eq!(ids(&v), [1]);
        assert!(v["hits"][0]["_rankingScoreDetails"].get("words").is_none());
        // `frequency`: the most frequent word ("moon", in 3 documents) is dropped first.
        let v = run(json!({"q": "moon skies", "matchingStrategy": "frequency"})).unwrap();
        assert_eq!(ids(&v), [4]);
        let v = run(json!({"q": "moon skies", "matchingStrategy": "last"})).unwrap();
        assert_eq!(ids(&v), [2, 1, 3]);
    }

    #[test]
    fn phrases_match_words_in_sequence() {
        let v = run(json!({"q": "\"blue moon\"", "attributesToHighlight": ["title"]})).unwrap();
        assert_eq!(ids(&v), [1]);
        assert_eq!(v["hits"][0]["_formatted"]["title"], "<em>Blue Moon</em>");
        assert_eq!(ids(&run(json!({"q": "\"moon blue\""})).unwrap()), Vec::<u64>::new());
        // Negated phrase.
        assert_eq!(ids(&run(json!({"q": "moon -\"blue moon\""})).unwrap()), [2, 3]);
        // Phrase words count as matched words; phrases are never dropped.
        let v = run(json!({"q": "\"fly me\" moon", "showRankingScoreDetails": true})).unwrap();
        assert_eq!(ids(&v), [3]);
        assert_eq!(v["hits"][0]["_rankingScoreDetails"]["words"]["maxMatchingWords"], 3);
        assert_eq!(v["hits"][0]["_rankingScoreDetails"]["words"]["matchingWords"], 3);
    }

    #[test]
    fn single_word_synonyms_match_without_typos() {
        let docs = docs();
        let mut settings = settings();
        settings["synonyms"] = json!({"lune": ["moon"]});
        let index = IndexSnapshot { uid: "songs", primary_key: Some("id"), settings: &settings, documents: docs.iter().collect() };
        let q = parse_search_query(&json!({"q": "lune ", "showRankingScoreDetails": true}), false).unwrap();
        let v = search(&index, &q).unwrap();
        assert_eq!(ids(&v), [2, 1, 3]);
        // A synonym is no exact match of the query word.
        assert_eq!(v["hits"][0]["_rankingScoreDetails"]["exactness"]["matchType"], "noExactMatch");
    }

    /// milli's own `exactness_simple_ordered` case: the rule alone implies `words` before it.
    #[test]
    fn exactness_simple_ordered_as_milli() {
        let texts = [
            "", "the", "the quick", "the quick brown", "the quick brown fox", "the quick brown fox jumps",
            "the quick brown fox jumps over", "the quick brown fox jumps over the",
            "the quick brown fox jumps over the lazy", "the quick brown fox jumps over the lazy dog",
        ];
        let docs: Vec<Map<String, Value>> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| json!({"id": i, "text": t}).as_object().unwrap().clone())
            .collect();
        let settings = json!({"searchableAttributes": ["text"], "rankingRules": ["exactness"]});
        let index = IndexSnapshot { uid: "t", primary_key: Some("id"), settings: &settings, documents: docs.iter().collect() };
        let q = parse_search_query(&json!({"q": "the quick brown fox jumps over the lazy dog", "showRankingScoreDetails": true}), false).unwrap();
        let v = search(&index, &q).unwrap();
        assert_eq!(ids(&v), [9, 8, 7, 6, 5, 4, 3, 2, 1]);
        let details = |i: usize| v["hits"][i]["_rankingScoreDetails"].clone();
        assert_eq!(details(0)["words"], json!({"order": 0, "matchingWords": 9, "maxMatchingWords": 9, "score": 1.0}));
        assert_eq!(details(0)["exactness"]["matchType"], "exactMatch");
        // "…jumps over" holds the 7 first query words ("the" twice) but not in place.
        assert_eq!(details(3)["words"]["matchingWords"], 7);
        assert_eq!(
            details(3)["exactness"],
            json!({"order": 1, "matchType": "noExactMatch", "matchingWords": 7, "maxMatchingWords": 7, "score": 0.3333333333333333})
        );
        assert_eq!(details(2)["exactness"]["matchType"], "exactMatch");
    }

    #[test]
    fn odd_queries_do_not_break_the_engine() {
        let queries = [
            "", " ", "-", "\"", "\"\"", "- moon", "-\"blue", "moon\"", "b", "blue moon fly me to the sky river jazz pop x y z",
            "m", "moonriver", "bleu", "skiez", "Fly. Me! to?", "1934", "\"the moon\" \"blue\"", "é", "🌙 moon",
        ];
        for q in queries {
            for crop in [0, 1, 2, 5] {
                let body = json!({"q": q, "attributesToHighlight": ["*"], "attributesToCrop": ["title"], "cropLength": crop,
                                  "showMatchesPosition": true, "showRankingScore": true, "showRankingScoreDetails": true,
                                  "facets": ["*"], "sort": ["year:asc"], "matchingStrategy": "frequency"});
                let v = run(body).unwrap_or_else(|e| panic!("{q:?}: {e}"));
                for h in v["hits"].as_array().unwrap() {
                    let score = h["_rankingScore"].as_f64().unwrap();
                    assert!((0.0..=1.0).contains(&score), "{q:?}: score {score}");
                }
            }
        }
    }

    #[test]
    fn pagination_modes() {
        let v = run(json!({"q": "", "page": 2, "hitsPerPage": 3})).unwrap();
        assert_eq!(ids(&v), [4]);
        assert_eq!((v["totalPages"].as_u64(), v["totalHits"].as_u64()), (Some(2), Some(4)));
        let v = run(json!({"q": "", "offset": 3, "limit": 10})).unwrap();
        assert_eq!(ids(&v), [4]);
        assert_eq!(v["estimatedTotalHits"], 4);
    }

    #[test]
    fn validation_errors_carry_meilisearch_codes() {
        let e = run(json!({"limit": "x"})).unwrap_err();
        assert_eq!(e.code_name(), "invalid_search_limit");
        assert_eq!(e.body()["message"], "Invalid value type at `.limit`: expected a positive integer, but found a string: `\"x\"`");
        assert_eq!(run(json!({"sort": ["title:asc"]})).unwrap_err().code_name(), "invalid_search_sort");
        assert_eq!(run(json!({"facets": ["title"]})).unwrap_err().code_name(), "invalid_search_facets");
        // Without `q` nor `vector`, `hybrid` is a placeholder search (Meilisearch's `search_kind`).
        assert!(run(json!({"hybrid": {"embedder": "x"}})).is_ok());
        assert_eq!(run(json!({"hybrid": {"embedder": "x"}, "vector": [1.0]})).unwrap_err().code_name(), "invalid_search_embedder");
        assert_eq!(run(json!({"vector": [1.0]})).unwrap_err().code_name(), "missing_search_hybrid");
        assert_eq!(run(json!({"q": "a", "hybrid": {"embedder": "x", "semanticRatio": 0.5}})).unwrap_err().code_name(), "not_implemented_by_test_node");
        let e = parse_multi_search_query(&json!({"indexUid": "a", "nope": 1}), 2).unwrap_err();
        assert!(e.body()["message"].as_str().unwrap().starts_with("Unknown field `nope` inside `.queries[2]`: expected one of `indexUid`, `q`"));
        let e = parse_search_params(&[("limit".into(), "-1".into())]).unwrap_err();
        assert_eq!(e.code_name(), "invalid_search_limit");
        let q = parse_search_params(&[("sort".into(), "_geoPoint(1.5, 2):asc,year:desc".into())]).unwrap();
        assert_eq!(q.raw["sort"], json!(["_geoPoint(1.5, 2):asc", "year:desc"]));
    }

    #[test]
    fn facets_group_case_and_trim() {
        let v = run(json!({"q": "", "facets": ["genre", "year"]})).unwrap();
        assert_eq!(v["facetDistribution"]["genre"], json!({"Jazz": 3, "Pop": 1}));
        assert_eq!(v["facetStats"], json!({"year": {"min": 1926.0, "max": 1961.0}}));
        let docs = docs();
        let settings = settings();
        let index = IndexSnapshot { uid: "songs", primary_key: Some("id"), settings: &settings, documents: docs.iter().collect() };
        let q = parse_facet_search_query(&json!({"facetName": "genre", "facetQuery": "ja"})).unwrap();
        assert_eq!(facet_search(&index, &q).unwrap()["facetHits"], json!([{"value": "Jazz", "count": 3}]));
    }

    #[test]
    fn federated_weights_reorder_hits() {
        let docs = docs();
        let settings = settings();
        let a = IndexSnapshot { uid: "a", primary_key: Some("id"), settings: &settings, documents: docs.iter().take(2).collect() };
        let b = IndexSnapshot { uid: "b", primary_key: Some("id"), settings: &settings, documents: docs.iter().skip(2).collect() };
        let qa = parse_multi_search_query(&json!({"indexUid": "a", "q": "blue", "federationOptions": {"weight": 0.5}}), 0).unwrap();
        let qb = parse_multi_search_query(&json!({"indexUid": "b", "q": "blue"}), 1).unwrap();
        let v = federated_search(&[(a, qa), (b, qb)], &json!({})).unwrap();
        let hits = v["hits"].as_array().unwrap();
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0]["_federation"]["indexUid"], "b");
        assert_eq!(hits[1]["_federation"]["weightedRankingScore"].as_f64().unwrap() * 2.0, hits[0]["_federation"]["weightedRankingScore"].as_f64().unwrap());
        assert_eq!(v["estimatedTotalHits"], 2);
    }
}

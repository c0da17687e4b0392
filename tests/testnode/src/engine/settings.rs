//! The parts of an index's settings the engine reads, with Meilisearch's defaults.

use serde_json::Value;

#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// `None` for `["*"]`.
    pub searchable: Option<Vec<String>>,
    /// `None` for `["*"]`.
    pub displayed: Option<Vec<String>>,
    pub ranking_rules: Vec<String>,
    pub sortable: Vec<String>,
    /// Filterable attribute patterns.
    pub filterable: Vec<String>,
    pub distinct: Option<String>,
    pub typo_enabled: bool,
    pub one_typo: usize,
    pub two_typos: usize,
    pub disable_on_words: Vec<String>,
    pub disable_on_attributes: Vec<String>,
    pub disable_on_numbers: bool,
    pub max_values_per_facet: usize,
    pub sort_facet_values_by: serde_json::Map<String, Value>,
    pub max_total_hits: usize,
    /// Normalized stop words.
    pub stop_words: Vec<String>,
    /// `prefixSearch` is not `disabled`.
    pub prefix_search: bool,
    /// `proximityPrecision` is `byAttribute`: two words are close when in the same attribute.
    pub proximity_by_attribute: bool,
    /// Single-word synonyms, normalized: word → its synonyms.
    pub synonyms: Vec<(String, Vec<String>)>,
}

pub const DEFAULT_RANKING_RULES: &[&str] =
    &["words", "typo", "proximity", "attributeRank", "sort", "wordPosition", "exactness"];

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
}

fn star_or_list(v: Option<&Value>) -> Option<Vec<String>> {
    match strings(v) {
        Some(list) if !list.iter().any(|s| s == "*") => Some(list),
        _ => None,
    }
}

impl EngineSettings {
    pub fn from_value(s: &Value) -> EngineSettings {
        let typo = s.get("typoTolerance");
        let min = typo.and_then(|t| t.get("minWordSizeForTypos"));
        let faceting = s.get("faceting");
        // filterableAttributes: strings, or objects with `attributePatterns`.
        let mut filterable = Vec::new();
        if let Some(items) = s.get("filterableAttributes").and_then(Value::as_array) {
            for item in items {
                match item {
                    Value::String(p) => filterable.push(p.clone()),
                    Value::Object(o) => {
                        if let Some(ps) = strings(o.get("attributePatterns")) {
                            filterable.extend(ps);
                        }
                    }
                    _ => {}
                }
            }
        }
        EngineSettings {
            searchable: star_or_list(s.get("searchableAttributes")),
            displayed: star_or_list(s.get("displayedAttributes")),
            ranking_rules: strings(s.get("rankingRules"))
                .unwrap_or_else(|| DEFAULT_RANKING_RULES.iter().map(|r| r.to_string()).collect()),
            sortable: strings(s.get("sortableAttributes")).unwrap_or_default(),
            filterable,
            distinct: s.get("distinctAttribute").and_then(Value::as_str).map(str::to_string),
            typo_enabled: typo.and_then(|t| t.get("enabled")).and_then(Value::as_bool).unwrap_or(true),
            one_typo: min.and_then(|m| m.get("oneTypo")).and_then(Value::as_u64).unwrap_or(5) as usize,
            two_typos: min.and_then(|m| m.get("twoTypos")).and_then(Value::as_u64).unwrap_or(9) as usize,
            disable_on_words: strings(typo.and_then(|t| t.get("disableOnWords"))).unwrap_or_default(),
            disable_on_attributes: strings(typo.and_then(|t| t.get("disableOnAttributes"))).unwrap_or_default(),
            disable_on_numbers: typo
                .and_then(|t| t.get("disableOnNumbers"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            max_values_per_facet: faceting
                .and_then(|f| f.get("maxValuesPerFacet"))
                .and_then(Value::as_u64)
                .unwrap_or(100) as usize,
            sort_facet_values_by: faceting
                .and_then(|f| f.get("sortFacetValuesBy"))
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            max_total_hits: s
                .get("pagination")
                .and_then(|p| p.get("maxTotalHits"))
                .and_then(Value::as_u64)
                .unwrap_or(1000) as usize,
            stop_words: strings(s.get("stopWords"))
                .unwrap_or_default()
                .iter()
                .map(|w| super::text::normalize(w))
                .collect(),
            prefix_search: s.get("prefixSearch").and_then(Value::as_str) != Some("disabled"),
            proximity_by_attribute: s.get("proximityPrecision").and_then(Value::as_str) == Some("byAttribute"),
            synonyms: s
                .get("synonyms")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            let syns = strings(Some(v)).unwrap_or_default();
                            (super::text::normalize(k), syns.iter().map(|w| super::text::normalize(w)).collect())
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Weight of a field (its searchable attribute's rank), `None` if not searchable.
    pub fn searchable_weight(&self, path: &str) -> Option<u16> {
        match &self.searchable {
            None => Some(0),
            Some(list) => list
                .iter()
                .position(|a| path_matches(a, path))
                .map(|i| i as u16),
        }
    }

    /// Largest weight of a searchable field.
    pub fn max_weight(&self) -> u16 {
        match &self.searchable {
            None => 0,
            Some(list) => list.len().saturating_sub(1) as u16,
        }
    }

    /// Whether `attr` matches a filterable pattern.
    pub fn is_filterable(&self, attr: &str) -> bool {
        self.filterable.iter().any(|p| pattern_matches(p, attr))
    }

    /// Facet ordering of one attribute: `true` for count, `false` for alpha.
    pub fn facet_sorted_by_count(&self, attr: &str) -> bool {
        let v = self.sort_facet_values_by.get(attr).or_else(|| self.sort_facet_values_by.get("*"));
        v.and_then(Value::as_str) == Some("count")
    }
}

/// `attr` selects `path` when they are equal or `path` is nested below `attr`.
pub fn path_matches(attr: &str, path: &str) -> bool {
    attr == "*" || attr == path || (path.starts_with(attr) && path.as_bytes().get(attr.len()) == Some(&b'.'))
}

/// A filterable pattern (`*` wildcards at either end) matches an attribute, or the attribute
/// is nested below it.
pub fn pattern_matches(pattern: &str, attr: &str) -> bool {
    if pattern == "*" || path_matches(pattern, attr) {
        return true;
    }
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(rest), _) if rest.ends_with('*') => attr.contains(rest.trim_end_matches('*')),
        (Some(rest), _) => attr.ends_with(rest),
        (_, Some(rest)) => attr.starts_with(rest),
        _ => false,
    }
}

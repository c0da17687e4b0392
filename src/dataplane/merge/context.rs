//! What the merge needs to know about an index: its primary key and the settings that shape
//! search answers.

use std::collections::BTreeMap;

use serde_json::Value;

/// How the values of one facet are ordered (`faceting.sortFacetValuesBy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FacetOrder {
    /// `alpha`: numbers first (ascending), then strings in normalized (lowercase) order.
    #[default]
    Alpha,
    /// `count`: most frequent first.
    Count,
}

impl FacetOrder {
    pub fn parse(s: &str) -> Option<FacetOrder> {
        match s {
            "alpha" => Some(FacetOrder::Alpha),
            "count" => Some(FacetOrder::Count),
            _ => None,
        }
    }
}

/// The index as the merge sees it: the client-visible settings.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexContext {
    pub primary_key: Option<String>,
    /// `rankingRules` (informational; the merge orders hits by the rules listed in each hit's
    /// `_rankingScoreDetails`, which already reflect the rules and the query's `sort`).
    pub ranking_rules: Vec<String>,
    /// `faceting.maxValuesPerFacet`.
    pub max_values_per_facet: usize,
    /// `faceting.sortFacetValuesBy`: facet name (or `*`) → order.
    pub sort_facet_values_by: BTreeMap<String, FacetOrder>,
    /// `pagination.maxTotalHits`.
    pub max_total_hits: u64,
    /// `distinctAttribute`.
    pub distinct_attribute: Option<String>,
}

/// The least `faceting.maxValuesPerFacet` Miroir should configure on the nodes (see
/// [`IndexContext::node_max_values_per_facet`]).
pub const NODE_MAX_VALUES_PER_FACET_FLOOR: usize = 1000;

/// Meilisearch's default ranking rules.
pub const DEFAULT_RANKING_RULES: [&str; 7] =
    ["words", "typo", "proximity", "attributeRank", "sort", "wordPosition", "exactness"];

impl Default for IndexContext {
    /// A fresh Meilisearch index's settings.
    fn default() -> Self {
        IndexContext {
            primary_key: None,
            ranking_rules: DEFAULT_RANKING_RULES.iter().map(|s| s.to_string()).collect(),
            max_values_per_facet: 100,
            sort_facet_values_by: BTreeMap::from([("*".to_string(), FacetOrder::Alpha)]),
            max_total_hits: 1000,
            distinct_attribute: None,
        }
    }
}

impl IndexContext {
    /// Builds the context from the primary key and a settings object shaped like
    /// `GET /indexes/{uid}/settings`. Missing or null settings take Meilisearch's defaults.
    pub fn from_settings(primary_key: Option<&str>, settings: &Value) -> IndexContext {
        let mut ctx = IndexContext { primary_key: primary_key.map(str::to_string), ..Default::default() };
        if let Some(rules) = settings.get("rankingRules").and_then(Value::as_array) {
            ctx.ranking_rules = rules.iter().filter_map(Value::as_str).map(str::to_string).collect();
        }
        if let Some(faceting) = settings.get("faceting") {
            if let Some(n) = faceting.get("maxValuesPerFacet").and_then(Value::as_u64) {
                ctx.max_values_per_facet = n as usize;
            }
            if let Some(by) = faceting.get("sortFacetValuesBy").and_then(Value::as_object) {
                for (k, v) in by {
                    if let Some(order) = v.as_str().and_then(FacetOrder::parse) {
                        ctx.sort_facet_values_by.insert(k.clone(), order);
                    }
                }
            }
        }
        if let Some(n) = settings.pointer("/pagination/maxTotalHits").and_then(Value::as_u64) {
            ctx.max_total_hits = n;
        }
        ctx.distinct_attribute =
            settings.get("distinctAttribute").and_then(Value::as_str).map(str::to_string);
        ctx
    }

    /// The `faceting.maxValuesPerFacet` to configure on the nodes (clients keep seeing
    /// [`Self::max_values_per_facet`]): nodes truncate each facet before Miroir sums them, so
    /// with `count` order a value can only be counted exactly if no node truncated it. A
    /// node-side limit above the client's (at least
    /// [`NODE_MAX_VALUES_PER_FACET_FLOOR`]) makes facet counts exact whenever a facet has at
    /// most that many distinct values per node. `alpha` order is exact either way.
    pub fn node_max_values_per_facet(&self) -> usize {
        self.max_values_per_facet.max(NODE_MAX_VALUES_PER_FACET_FLOOR)
    }

    /// The order of one facet's values: its own entry, else `*`, else alpha.
    pub fn facet_order(&self, facet: &str) -> FacetOrder {
        self.sort_facet_values_by
            .get(facet)
            .or_else(|| self.sort_facet_values_by.get("*"))
            .copied()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_recorded_settings_shape() {
        let settings = json!({
            "rankingRules": ["words", "sort"],
            "distinctAttribute": "director",
            "faceting": {"maxValuesPerFacet": 2, "sortFacetValuesBy": {"*": "count", "genres": "alpha"}},
            "pagination": {"maxTotalHits": 5}
        });
        let ctx = IndexContext::from_settings(Some("id"), &settings);
        assert_eq!(ctx.primary_key.as_deref(), Some("id"));
        assert_eq!(ctx.ranking_rules, vec!["words", "sort"]);
        assert_eq!(ctx.max_values_per_facet, 2);
        assert_eq!(ctx.max_total_hits, 5);
        assert_eq!(ctx.distinct_attribute.as_deref(), Some("director"));
        assert_eq!(ctx.facet_order("genres"), FacetOrder::Alpha);
        assert_eq!(ctx.facet_order("director"), FacetOrder::Count);
    }

    #[test]
    fn defaults_match_a_fresh_index() {
        let ctx = IndexContext::from_settings(None, &json!({"distinctAttribute": null, "faceting": null}));
        assert_eq!(ctx, IndexContext::default());
        assert_eq!(ctx.facet_order("anything"), FacetOrder::Alpha);
    }
}

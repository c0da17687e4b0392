//! The per-setting routes of Meilisearch 1.50 (`/indexes/{uid}/settings/{setting}`).

use reqwest::Method;

macro_rules! setting_routes {
    ($( $variant:ident = $segment:literal, $camel:literal, $verb:ident );* $(;)?) => {
        /// One `/indexes/{uid}/settings/{setting}` route: only these exist.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum SettingRoute { $( $variant ),* }

        impl SettingRoute {
            pub const ALL: &'static [SettingRoute] = &[ $( SettingRoute::$variant ),* ];

            /// The URL segment, e.g. `filterable-attributes`.
            pub fn segment(self) -> &'static str {
                match self { $( SettingRoute::$variant => $segment ),* }
            }
            /// The field of the settings object, e.g. `filterableAttributes`.
            pub fn field(self) -> &'static str {
                match self { $( SettingRoute::$variant => $camel ),* }
            }
            /// The method that updates it (`PUT` or `PATCH`, as Meilisearch routes it).
            pub fn update_method(self) -> Method {
                match self { $( SettingRoute::$variant => Method::$verb ),* }
            }
        }
    };
}

setting_routes! {
    FilterableAttributes = "filterable-attributes", "filterableAttributes", PUT;
    SortableAttributes = "sortable-attributes", "sortableAttributes", PUT;
    DisplayedAttributes = "displayed-attributes", "displayedAttributes", PUT;
    TypoTolerance = "typo-tolerance", "typoTolerance", PATCH;
    SearchableAttributes = "searchable-attributes", "searchableAttributes", PUT;
    StopWords = "stop-words", "stopWords", PUT;
    NonSeparatorTokens = "non-separator-tokens", "nonSeparatorTokens", PUT;
    SeparatorTokens = "separator-tokens", "separatorTokens", PUT;
    Dictionary = "dictionary", "dictionary", PUT;
    Synonyms = "synonyms", "synonyms", PUT;
    DistinctAttribute = "distinct-attribute", "distinctAttribute", PUT;
    ProximityPrecision = "proximity-precision", "proximityPrecision", PUT;
    LocalizedAttributes = "localized-attributes", "localizedAttributes", PUT;
    RankingRules = "ranking-rules", "rankingRules", PUT;
    Faceting = "faceting", "faceting", PATCH;
    Pagination = "pagination", "pagination", PATCH;
    Embedders = "embedders", "embedders", PATCH;
    SearchCutoffMs = "search-cutoff-ms", "searchCutoffMs", PUT;
    FacetSearch = "facet-search", "facetSearch", PUT;
    PrefixSearch = "prefix-search", "prefixSearch", PUT;
    Chat = "chat", "chat", PATCH;
    ForeignKeys = "foreign-keys", "foreignKeys", PUT;
}

impl SettingRoute {
    /// The route named by a URL segment; `None` for any other segment (no such route).
    pub fn from_segment(s: &str) -> Option<SettingRoute> {
        Self::ALL.iter().copied().find(|r| r.segment() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_meilisearch_routes_exist() {
        assert_eq!(SettingRoute::from_segment("faceting"), Some(SettingRoute::Faceting));
        assert_eq!(SettingRoute::Faceting.update_method(), Method::PATCH);
        assert_eq!(SettingRoute::StopWords.update_method(), Method::PUT);
        for bad in ["", "..", "../../keys", "Faceting", "faceting/", "faceting?x=1"] {
            assert_eq!(SettingRoute::from_segment(bad), None, "{bad}");
        }
        for r in SettingRoute::ALL {
            assert_eq!(SettingRoute::from_segment(r.segment()), Some(*r));
        }
    }
}

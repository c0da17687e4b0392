//! `POST /indexes/{uid}/fields` (Meilisearch 1.50, `routes/indexes/fields.rs`): the body,
//! typed with Meilisearch's error codes, so a bad body gets exactly the first error one
//! Meilisearch gives before any node is asked.

use deserr::Deserr;
use serde_json::{Map, Value};

use super::deserr::{codes, JsonError};

/// The body: which page of the index's fields, and which fields.
#[derive(Debug, Clone, PartialEq, Deserr)]
#[deserr(error = JsonError, rename_all = camelCase, deny_unknown_fields)]
pub struct ListFields {
    #[deserr(default, error = JsonError<codes::InvalidIndexOffset>)]
    pub offset: usize,
    #[deserr(default = 20, error = JsonError<codes::InvalidIndexLimit>)]
    pub limit: usize,
    #[deserr(default, error = JsonError<codes::InvalidIndexFieldsFilter>)]
    pub filter: Option<ListFieldsFilter>,
}

/// `filter`: every given criterion must hold (AND).
#[derive(Debug, Clone, Default, PartialEq, Deserr)]
#[deserr(error = JsonError<codes::InvalidIndexFieldsFilter>, rename_all = camelCase, deny_unknown_fields)]
pub struct ListFieldsFilter {
    #[deserr(default, error = JsonError<codes::InvalidIndexFieldsFilterAttributePatterns>)]
    pub attribute_patterns: Option<Vec<String>>,
    #[deserr(default, error = JsonError<codes::InvalidIndexFieldsFilterDisplayed>)]
    pub displayed: Option<bool>,
    #[deserr(default, error = JsonError<codes::InvalidIndexFieldsFilterSearchable>)]
    pub searchable: Option<bool>,
    #[deserr(default, error = JsonError<codes::InvalidIndexFieldsFilterSortable>)]
    pub sortable: Option<bool>,
    #[deserr(default, error = JsonError<codes::InvalidIndexFieldsFilterDistinct>)]
    pub distinct: Option<bool>,
    #[deserr(default, error = JsonError<codes::InvalidIndexFieldsFilterRankingRule>)]
    pub ranking_rule: Option<bool>,
    #[deserr(default, error = JsonError<codes::InvalidIndexFieldsFilterFilterable>)]
    pub filterable: Option<bool>,
}

impl ListFieldsFilter {
    /// The filter as JSON, for a node (only the criteria given).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if let Some(p) = &self.attribute_patterns {
            m.insert("attributePatterns".into(), Value::from(p.clone()));
        }
        for (k, v) in [
            ("displayed", self.displayed),
            ("searchable", self.searchable),
            ("sortable", self.sortable),
            ("distinct", self.distinct),
            ("rankingRule", self.ranking_rule),
            ("filterable", self.filterable),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), Value::Bool(v));
            }
        }
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::deserr::parse;
    use serde_json::json;

    fn err(v: Value) -> (String, String) {
        let e = parse::<ListFields>(v).unwrap_err();
        (e.code_name(), e.body()["message"].as_str().unwrap().to_string())
    }

    #[test]
    fn defaults_and_filter() {
        let l: ListFields = parse(json!({})).unwrap();
        assert_eq!((l.offset, l.limit, l.filter), (0, 20, None));
        let l: ListFields = parse(json!({"offset": 3, "limit": 0, "filter": {"attributePatterns": ["ti*"], "rankingRule": false}})).unwrap();
        assert_eq!((l.offset, l.limit), (3, 0));
        assert_eq!(l.filter.unwrap().to_json(), json!({"attributePatterns": ["ti*"], "rankingRule": false}));
        let l: ListFields = parse(json!({"filter": null})).unwrap();
        assert_eq!(l.filter, None);
    }

    #[test]
    fn errors_carry_meilisearchs_codes() {
        assert_eq!(err(json!({"offset": -1})).0, "invalid_index_offset");
        assert_eq!(err(json!({"limit": "ten"})).0, "invalid_index_limit");
        assert_eq!(err(json!({"filter": []})).0, "invalid_index_fields_filter");
        assert_eq!(err(json!({"filter": {"nope": true}})).0, "invalid_index_fields_filter");
        assert_eq!(err(json!({"filter": {"attributePatterns": "title"}})).0, "invalid_index_fields_filter_attribute_patterns");
        assert_eq!(err(json!({"filter": {"displayed": 1}})).0, "invalid_index_fields_filter_displayed");
        assert_eq!(err(json!({"filter": {"rankingRule": "yes"}})).0, "invalid_index_fields_filter_ranking_rule");
        assert_eq!(err(json!({"filter": {"filterable": null, "sortable": []}})).0, "invalid_index_fields_filter_sortable");
        let (code, message) = err(json!({"page": 1}));
        assert_eq!(code, "bad_request");
        assert!(message.starts_with("Unknown field `page`: expected one of `offset`, `limit`, `filter`"), "{message}");
        assert_eq!(err(json!({"offset": -1})).1, "Invalid value type at `.offset`: expected a positive integer, but found a negative integer: `-1`");
        assert_eq!(err(json!([])).0, "bad_request");
    }
}

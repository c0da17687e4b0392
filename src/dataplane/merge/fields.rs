//! `POST /indexes/{uid}/fields`: one Meilisearch lists every field of its fields-ids map (every
//! field any document of the index ever had, nested paths included), each with metadata that
//! depends only on the field's name and the index's settings, sorted by name and paginated.
//! A node knows only the fields of the documents it holds, so the index's list is the union
//! of the lists of one covering set of nodes (each asked for all of its fields, with the
//! client's filter, which judges each field alone). Miroir's own fields (`_miroir_*`) are not
//! the client's and are dropped.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{bad_node_answer, is_reserved_field};
use crate::error::ApiError;

/// The client's page of the union of the nodes' field lists: names compared as bytes (as
/// Meilisearch sorts `&str`), the first node's object kept for a name several nodes list
/// (every node holds the same settings, so they agree), `total` the size of the union.
pub fn merge_fields(offset: usize, limit: usize, answers: Vec<Value>) -> Result<Value, ApiError> {
    let mut union: BTreeMap<String, Value> = BTreeMap::new();
    for answer in answers {
        let results = answer.get("results").and_then(Value::as_array).ok_or_else(|| bad_node_answer("field list"))?;
        // Each node was asked for all of its fields: a shorter page would lose some.
        if answer.get("total").and_then(Value::as_u64).is_some_and(|t| t as usize > results.len()) {
            return Err(bad_node_answer("field list (a node did not list all of its fields)"));
        }
        for field in results {
            let name = field.get("name").and_then(Value::as_str).ok_or_else(|| bad_node_answer("field"))?;
            if is_reserved_field(name) {
                continue;
            }
            union.entry(name.to_string()).or_insert_with(|| field.clone());
        }
    }
    let total = union.len();
    let results: Vec<Value> = union.into_values().skip(offset).take(limit).collect();
    Ok(json!({"results": results, "offset": offset, "limit": limit, "total": total}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, searchable: bool) -> Value {
        json!({"name": name, "displayed": {"enabled": true}, "searchable": {"enabled": searchable}})
    }

    fn node(fields: &[Value]) -> Value {
        json!({"results": fields, "offset": 0, "limit": 65536, "total": fields.len()})
    }

    #[test]
    fn union_sorted_by_name_without_miroirs_fields() {
        let a = node(&[field("_miroir_shard", true), field("id", true), field("title", true), field("color", true)]);
        let b = node(&[field("genre", true), field("_miroir_shard", true), field("id", true), field("title", true)]);
        let c = node(&[]);
        let out = merge_fields(0, 20, vec![a, b, c]).unwrap();
        let names: Vec<&str> = out["results"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["color", "genre", "id", "title"]);
        assert_eq!(out["total"], 4);
        // Meilisearch's order of the pagination fields.
        assert_eq!(out.as_object().unwrap().keys().collect::<Vec<_>>(), ["results", "offset", "limit", "total"]);
    }

    #[test]
    fn names_sort_as_bytes_and_fields_not_miroirs_stay() {
        // Upper case before lower case, `_` between them, nested paths after their parent.
        let a = node(&[field("b", true), field("_miroirish", true), field("a.b", true), field("B", true), field("a", true), field("_x", true)]);
        let out = merge_fields(0, 20, vec![a]).unwrap();
        let names: Vec<&str> = out["results"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["B", "_miroirish", "_x", "a", "a.b", "b"]);
    }

    #[test]
    fn pagination_over_the_union() {
        let a = node(&[field("a", true), field("c", true), field("e", true)]);
        let b = node(&[field("b", true), field("c", true), field("d", true)]);
        let page = |offset, limit| {
            let out = merge_fields(offset, limit, vec![a.clone(), b.clone()]).unwrap();
            assert_eq!(out["total"], 5);
            assert_eq!((out["offset"].as_u64().unwrap() as usize, out["limit"].as_u64().unwrap() as usize), (offset, limit));
            out["results"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_string()).collect::<Vec<_>>()
        };
        assert_eq!(page(0, 2), ["a", "b"]);
        assert_eq!(page(2, 2), ["c", "d"]);
        assert_eq!(page(4, 2), ["e"]);
        assert!(page(5, 2).is_empty());
        assert!(page(usize::MAX, usize::MAX).is_empty());
        assert!(page(1, 0).is_empty());
        assert_eq!(page(3, usize::MAX), ["d", "e"]);
    }

    #[test]
    fn the_first_nodes_object_is_kept() {
        let a = node(&[field("title", true)]);
        let b = node(&[field("title", false)]);
        let out = merge_fields(0, 20, vec![a, b]).unwrap();
        assert_eq!(out["results"][0]["searchable"]["enabled"], true);
    }

    #[test]
    fn a_partial_node_list_is_refused() {
        let partial = json!({"results": [field("a", true)], "offset": 0, "limit": 1, "total": 2});
        assert!(merge_fields(0, 20, vec![partial]).is_err());
        assert!(merge_fields(0, 20, vec![json!({"hits": []})]).is_err());
        assert!(merge_fields(0, 20, vec![json!({"results": [{"displayed": {}}]})]).is_err());
    }
}

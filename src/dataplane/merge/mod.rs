//! Merging the answers of a covering set of nodes into the answer one Meilisearch would
//! give (search hits by per-rule ranking details, facets, pagination, distinct, stats).
//! Pure functions over `serde_json::Value`, tested without a network.
//!
//! How the read path uses this module:
//!
//! * **Search** — [`plan_node_search`] turns the client's search body into the body sent to
//!   every node of the covering set (the caller then adds the `_miroir_shard IN [...]`
//!   filter); [`merge_search`] turns the node answers into the client's answer.
//! * **Facet search** — send the client's body unchanged (plus the shard filter) and merge
//!   with [`merge_facet_search`].
//! * **Federated multi-search** — [`plan_federated_node_search`] per query and node,
//!   [`merge_federated`] over every query's node answers.
//! * **Document listing** — [`plan_document_pages`] then [`merge_document_pages`].
//! * **Index stats** — [`merge_index_stats`].
//! * **Similar documents** — [`similar_holder_body`] for the node holding the reference
//!   document, [`similar_vector_search_body`] for the others, [`merge_similar`] (see `similar`).
//! * **Index fields** — [`merge_fields`] (the union of the nodes' field lists, paginated).
//!
//! Every merged answer has `_miroir_shard` (and any other `_miroir_*` field) removed. None of
//! the merged answers carries `requestUid`: the caller appends its own (it is the last field
//! of every Meilisearch search answer).
//!
//! Node settings the merge relies on: every node holds the index with the same settings as
//! the client sees them (ranking rules, `faceting`, `pagination.maxTotalHits`, distinct
//! attribute, filterable attributes including `_miroir_shard`). A node
//! `faceting.maxValuesPerFacet` larger than the client's is fine (and makes count-sorted
//! facets exact more often).

mod context;
mod documents;
mod facets;
mod fields;
mod federated;
mod rank;
mod search;
mod similar;
mod stats;

pub use context::{FacetOrder, IndexContext, NODE_MAX_VALUES_PER_FACET_FLOOR};
pub use documents::{compare_documents, merge_document_pages, merge_sorted_document_pages, plan_document_pages, sort_widened_fields, DocumentSort};
pub use facets::{merge_facet_distributions, merge_facet_search, merge_facet_stats};
pub use fields::merge_fields;
pub use federated::{merge_federated, plan_federated_node_search, FederatedQuery};
pub use rank::compare_hits;
pub use search::{finish_search_answer, merge_performance_details, merge_search, multi_search_result, plan_node_search};
pub use similar::{holder_body as similar_holder_body, merge_similar, vector_rule_leads, vector_search_body as similar_vector_search_body};
pub use stats::{human_size, humanize_index_stats, merge_index_stats, merge_index_stats_with, NodeIndexStats};

use serde_json::{Map, Value};

use crate::error::{ApiError, Code};

/// The field every document carries on the nodes: the shard it belongs to.
pub const SHARD_FIELD: &str = "_miroir_shard";
/// Prefix of every field Miroir adds to documents; never shown to clients.
pub const RESERVED_PREFIX: &str = "_miroir_";

/// True for fields Miroir adds to documents (`_miroir_*`).
pub fn is_reserved_field(name: &str) -> bool {
    name.starts_with(RESERVED_PREFIX)
}

/// Removes every `_miroir_*` key from a document-like object.
pub(crate) fn strip_reserved(doc: &mut Map<String, Value>) {
    doc.retain(|k, _| !is_reserved_field(k));
}

/// An error for a node answer that does not have the shape Meilisearch gives it.
pub(crate) fn bad_node_answer(what: &str) -> ApiError {
    ApiError::new(Code::MiroirNodeError, format!("A node answered with an unexpected {what}."))
}

/// `a.b.c` lookup in a document, descending through objects (Meilisearch's dotted paths; a
/// key containing dots written flat, e.g. `{"a.b": 1}`, is also found).
pub(crate) fn get_path<'a>(doc: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = doc.get(path) {
        return Some(v);
    }
    let mut rest = path;
    let mut cur = doc;
    while let Some(dot) = rest.find('.') {
        let (head, tail) = (&rest[..dot], &rest[dot + 1..]);
        match cur.get(head) {
            Some(Value::Object(inner)) => {
                if let Some(v) = inner.get(tail) {
                    return Some(v);
                }
                cur = inner;
                rest = tail;
            }
            _ => return None,
        }
    }
    None
}

/// Reads a non-negative integer parameter (absent or null → `None`).
pub(crate) fn get_u64(map: &Map<String, Value>, key: &str) -> Option<u64> {
    map.get(key).and_then(Value::as_u64)
}

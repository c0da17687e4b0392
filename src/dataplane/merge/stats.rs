//! `GET /indexes/{uid}/stats` over a covering set.
//!
//! A node's stats describe every document it holds, including shards it is not chosen for in
//! this covering set (RF > 1), and the stats API cannot be restricted by shard. So the caller
//! passes, per node of the covering set, the node's stats and the exact number of documents
//! of the shards that node covers, obtained with `POST /indexes/{uid}/documents/fetch`
//! `{"filter": "_miroir_shard IN [..]", "limit": 0}` (its `total` is exact, unlike a search's
//! `estimatedTotalHits`).
//!
//! `numberOfDocuments` is the sum of those exact counts. Per-document quantities the node
//! only reports for all of its documents (`fieldDistribution` counts, raw size, embeddings)
//! are taken in proportion `covered / numberOfDocuments of the node`: exact when the node
//! covers all its documents, and exact for a field present in every (or no) document of the
//! node; an estimate otherwise.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::is_reserved_field;

/// One node of the covering set.
#[derive(Debug, Clone)]
pub struct NodeIndexStats {
    /// The node's `GET /indexes/{uid}/stats` answer.
    pub stats: Value,
    /// Exact number of documents of the shards this node covers.
    pub covered_documents: u64,
}

fn scale(value: u64, covered: u64, node_docs: u64) -> u64 {
    if node_docs == 0 || covered >= node_docs {
        return value;
    }
    ((value as u128 * covered as u128 + node_docs as u128 / 2) / node_docs as u128) as u64
}

/// Merges per-node index stats; field order as Meilisearch's; `_miroir_*` fields removed from
/// `fieldDistribution`; `isIndexing` if any node is indexing.
pub fn merge_index_stats(nodes: Vec<NodeIndexStats>) -> Value {
    merge_index_stats_with(nodes, false)
}

/// [`merge_index_stats`], with `internalDatabaseSizes` (`?showInternalDatabaseSizes=true`,
/// the nodes asked with it): per database, the sizes of the nodes summed, each in proportion
/// of the documents it covers (one copy of the data, like `rawDocumentDbSize`).
pub fn merge_index_stats_with(nodes: Vec<NodeIndexStats>, internal_sizes: bool) -> Value {
    // In the nodes' own order of databases (Meilisearch lists them in milli's order).
    let mut internal: Map<String, Value> = Map::new();
    if internal_sizes {
        for n in &nodes {
            let node_docs = n.stats.get("numberOfDocuments").and_then(Value::as_u64).unwrap_or(0);
            if let Some(dbs) = n.stats.get("internalDatabaseSizes").and_then(Value::as_object) {
                for (db, size) in dbs {
                    let add = scale(size.as_u64().unwrap_or(0), n.covered_documents, node_docs);
                    let sum = internal.get(db).and_then(Value::as_u64).unwrap_or(0) + add;
                    internal.insert(db.clone(), json!(sum));
                }
            }
        }
    }
    let mut merged = merge_counts(nodes);
    if !internal.is_empty() {
        // Meilisearch's place for it: after `isIndexing` (an empty map is not shown).
        let Value::Object(m) = merged else { unreachable!("an object") };
        let mut out = Map::new();
        for (k, v) in m {
            let after = k == "isIndexing";
            out.insert(k, v);
            if after {
                out.insert("internalDatabaseSizes".into(), Value::Object(internal.clone()));
            }
        }
        merged = Value::Object(out);
    }
    merged
}

/// A size as Meilisearch writes it with `?sizeFormat=human` (binary units, two decimals at
/// most).
pub fn human_size(bytes: u64) -> String {
    let adjusted = byte_unit::Byte::from_u64(bytes).get_appropriate_unit(byte_unit::UnitType::Binary);
    format!("{adjusted:#.2}")
}

/// Rewrites the sizes of merged index stats as `?sizeFormat=human` shows them.
pub fn humanize_index_stats(stats: &mut Value) {
    let Some(o) = stats.as_object_mut() else { return };
    for k in ["rawDocumentDbSize", "avgDocumentSize"] {
        if let Some(n) = o.get(k).and_then(Value::as_u64) {
            o.insert(k.into(), json!(human_size(n)));
        }
    }
    if let Some(Value::Object(dbs)) = o.get_mut("internalDatabaseSizes") {
        for v in dbs.values_mut() {
            if let Some(n) = v.as_u64() {
                *v = json!(human_size(n));
            }
        }
    }
}

fn merge_counts(nodes: Vec<NodeIndexStats>) -> Value {
    let mut documents = 0u64;
    let mut raw = 0u64;
    let mut embeddings = 0u64;
    let mut embedded_docs = 0u64;
    let mut indexing = false;
    let mut fields: BTreeMap<String, u64> = BTreeMap::new();
    for n in &nodes {
        let s = &n.stats;
        let get = |k: &str| s.get(k).and_then(Value::as_u64).unwrap_or(0);
        let node_docs = get("numberOfDocuments");
        let covered = n.covered_documents;
        documents += covered;
        raw += scale(get("rawDocumentDbSize"), covered, node_docs);
        embeddings += scale(get("numberOfEmbeddings"), covered, node_docs);
        embedded_docs += scale(get("numberOfEmbeddedDocuments"), covered, node_docs);
        indexing |= s.get("isIndexing").and_then(Value::as_bool).unwrap_or(false);
        if let Some(dist) = s.get("fieldDistribution").and_then(Value::as_object) {
            for (field, count) in dist {
                if is_reserved_field(field) {
                    continue;
                }
                let c = scale(count.as_u64().unwrap_or(0), covered, node_docs).min(covered);
                *fields.entry(field.clone()).or_default() += c;
            }
        }
    }
    let avg = raw.checked_div(documents).unwrap_or(0);
    let field_distribution: Map<String, Value> = fields.into_iter().map(|(k, v)| (k, json!(v))).collect();
    json!({
        "numberOfDocuments": documents,
        "rawDocumentDbSize": raw,
        "avgDocumentSize": avg,
        "isIndexing": indexing,
        "numberOfEmbeddings": embeddings,
        "numberOfEmbeddedDocuments": embedded_docs,
        "fieldDistribution": field_distribution,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(docs: u64, covered: u64, fields: Value, indexing: bool) -> NodeIndexStats {
        NodeIndexStats {
            stats: json!({"numberOfDocuments": docs, "rawDocumentDbSize": docs * 512, "avgDocumentSize": 512,
                "isIndexing": indexing, "numberOfEmbeddings": 0, "numberOfEmbeddedDocuments": 0, "fieldDistribution": fields}),
            covered_documents: covered,
        }
    }

    #[test]
    fn recorded_stats_over_two_nodes() {
        // "index stats": 8 movies, every field in every document.
        let all = |n: u64| json!({"_geo": n, "_miroir_shard": n, "director": n, "genres": n, "id": n, "rating": n, "title": n, "year": n});
        let merged = merge_index_stats(vec![node(5, 5, all(5), false), node(3, 3, all(3), false)]);
        let (_, recorded) = crate::dataplane::merge::search::tests::case("index stats");
        let mut expected = recorded.clone();
        expected["rawDocumentDbSize"] = json!(4096);
        expected["avgDocumentSize"] = json!(512);
        assert_eq!(serde_json::to_string(&merged).unwrap(), serde_json::to_string(&expected).unwrap());
    }

    #[test]
    fn replicas_count_covered_shards_only() {
        // node A holds 10 docs but covers 4 of them; node B covers its 6.
        let a = node(10, 4, json!({"id": 10, "title": 10, "sequel": 0, "note": 5}), true);
        let b = node(6, 6, json!({"id": 6, "title": 6, "note": 1}), false);
        let merged = merge_index_stats(vec![a, b]);
        assert_eq!(merged["numberOfDocuments"], json!(10));
        assert_eq!(merged["isIndexing"], json!(true));
        // fields in every document stay exact; partial fields are estimated in proportion
        assert_eq!(merged["fieldDistribution"], json!({"id": 10, "note": 3, "sequel": 0, "title": 10}));
        assert_eq!(merged["rawDocumentDbSize"], json!(10 * 512));
    }

    #[test]
    fn internal_sizes_and_human_format() {
        let mut a = node(10, 4, json!({"id": 10}), false);
        a.stats["internalDatabaseSizes"] = json!({"documents": 1000, "wordDocids": 100});
        let mut b = node(6, 6, json!({"id": 6}), false);
        b.stats["internalDatabaseSizes"] = json!({"documents": 600});
        let merged = merge_index_stats_with(vec![a.clone(), b.clone()], true);
        let keys: Vec<&str> = merged.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["numberOfDocuments", "rawDocumentDbSize", "avgDocumentSize", "isIndexing", "internalDatabaseSizes", "numberOfEmbeddings", "numberOfEmbeddedDocuments", "fieldDistribution"]);
        assert_eq!(merged["internalDatabaseSizes"], json!({"documents": 400 + 600, "wordDocids": 40}));
        // not asked: not shown
        assert!(merge_index_stats_with(vec![a, b], false).get("internalDatabaseSizes").is_none());
        let mut h = merged.clone();
        humanize_index_stats(&mut h);
        assert_eq!(h["rawDocumentDbSize"], json!("5 KiB"));
        assert_eq!(h["internalDatabaseSizes"]["documents"], json!("1000 B"));
        assert_eq!(human_size(10_000), "9.77 KiB");
    }

    #[test]
    fn empty() {
        let merged = merge_index_stats(vec![]);
        assert_eq!(merged["numberOfDocuments"], json!(0));
        assert_eq!(merged["avgDocumentSize"], json!(0));
        assert_eq!(merged["fieldDistribution"], json!({}));
    }
}

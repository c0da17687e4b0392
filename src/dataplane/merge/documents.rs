//! `GET /indexes/{uid}/documents` and `POST /indexes/{uid}/documents/fetch` over a covering
//! set: the index is read as the concatenation of every node's documents (nodes in a fixed
//! order, each node's documents restricted to the shards it covers, in the node's own order),
//! so any page size pages through every document exactly once.
//!
//! The caller first learns each node's `total` for its shards (a fetch with the client's
//! filter AND `_miroir_shard IN [...]` and `limit: 0` answers the exact count), then fetches
//! the ranges [`plan_document_pages`] names, with the same filter and fields, then calls
//! [`merge_document_pages`].

use serde_json::{json, Map, Value};

use super::{bad_node_answer, strip_reserved};
use crate::error::ApiError;

/// Which `(node index, offset, limit)` ranges make up the window `offset..offset+limit` of
/// the concatenated listing. Empty ranges are left out.
pub fn plan_document_pages(node_totals: &[u64], offset: u64, limit: u64) -> Vec<(usize, u64, u64)> {
    let end = offset.saturating_add(limit);
    let mut start_of_node = 0u64;
    let mut out = Vec::new();
    for (i, &total) in node_totals.iter().enumerate() {
        let node_end = start_of_node.saturating_add(total);
        let from = offset.max(start_of_node);
        let to = end.min(node_end);
        if from < to {
            out.push((i, from - start_of_node, to - from));
        }
        start_of_node = node_end;
        if start_of_node >= end {
            break;
        }
    }
    out
}

/// Merges the node answers to the ranges of [`plan_document_pages`] (in plan order) into
/// `{results, offset, limit, total}`; `total` is the sum of the node totals the plan was made
/// from. `_miroir_*` fields are removed from every document.
pub fn merge_document_pages(
    offset: u64,
    limit: u64,
    node_totals: &[u64],
    pages: Vec<Value>,
) -> Result<Value, ApiError> {
    let mut results = Vec::new();
    for page in pages {
        let list = page
            .get("results")
            .and_then(Value::as_array)
            .ok_or_else(|| bad_node_answer("document listing"))?;
        for d in list {
            let mut d: Map<String, Value> = d.as_object().cloned().ok_or_else(|| bad_node_answer("document"))?;
            strip_reserved(&mut d);
            results.push(Value::Object(d));
        }
    }
    results.truncate(limit as usize);
    Ok(json!({
        "results": results,
        "offset": offset,
        "limit": limit,
        "total": node_totals.iter().sum::<u64>(),
    }))
}

// ---------------------------------------------------------------- sorted listing

/// One criterion of a document listing's `sort` (`attribute:asc|desc` or
/// `_geoPoint(lat, lng):asc|desc`).
#[derive(Debug, Clone, PartialEq)]
pub enum DocumentSort {
    Field { field: String, asc: bool },
    Geo { point: [f64; 2], asc: bool },
}

impl DocumentSort {
    /// Parses criteria the nodes accepted; `None` for anything else (the caller then lets a
    /// node word the error).
    pub fn parse(list: &[Value]) -> Option<Vec<DocumentSort>> {
        list.iter()
            .map(|v| {
                let expr = v.as_str()?;
                let (body, asc) = match (expr.strip_suffix(":asc"), expr.strip_suffix(":desc")) {
                    (Some(b), _) => (b, true),
                    (_, Some(b)) => (b, false),
                    _ => return None,
                };
                if let Some(args) = body.strip_prefix("_geoPoint(").and_then(|r| r.strip_suffix(')')) {
                    let mut it = args.split(',').map(|a| a.trim().parse::<f64>().ok());
                    let (Some(Some(lat)), Some(Some(lng)), None) = (it.next(), it.next(), it.next()) else { return None };
                    return Some(DocumentSort::Geo { point: [lat, lng], asc });
                }
                Some(DocumentSort::Field { field: body.to_string(), asc })
            })
            .collect()
    }

    /// The document field the criterion reads.
    pub fn field(&self) -> &str {
        match self {
            DocumentSort::Field { field, .. } => field,
            DocumentSort::Geo { .. } => "_geo",
        }
    }
}

/// A criterion's value for one document, as milli's `recursive_sort` buckets it: the first
/// number value in the criterion's direction, else the first string value (normalized), else
/// none; for `_geoPoint` the distance.
#[derive(Debug, Clone, PartialEq)]
enum SortValue {
    Number(f64),
    Text(String),
    Missing,
}

fn lookup_all<'a>(v: &'a Value, path: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| lookup_all(i, path, out)),
        Value::Object(m) => lookup_in(m, path, out),
        _ => {}
    }
}

fn lookup_in<'a>(m: &'a Map<String, Value>, path: &str, out: &mut Vec<&'a Value>) {
    if let Some(x) = m.get(path) {
        out.push(x);
    }
    for (i, _) in path.match_indices('.') {
        if let Some(inner) = m.get(&path[..i]) {
            lookup_all(inner, &path[i + 1..], out);
        }
    }
}

fn remove_path(doc: &mut Map<String, Value>, path: &str) {
    if doc.shift_remove(path).is_some() {
        return;
    }
    if let Some((head, tail)) = path.split_once('.') {
        if let Some(Value::Object(inner)) = doc.get_mut(head) {
            remove_path(inner, tail);
            if inner.is_empty() {
                doc.shift_remove(head);
            }
        }
    }
}

fn collect_values(v: &Value, numbers: &mut Vec<f64>, texts: &mut Vec<String>) {
    match v {
        Value::Number(n) => numbers.extend(n.as_f64()),
        Value::String(s) => texts.push(super::rank::normalize(s)),
        Value::Bool(b) => texts.push(b.to_string()),
        Value::Array(a) => a.iter().for_each(|x| collect_values(x, numbers, texts)),
        _ => {}
    }
}

fn geo_distance(a: [f64; 2], b: [f64; 2]) -> f64 {
    const EARTH_RADIUS: f64 = 6_371_000.0;
    let (la1, lo1, la2, lo2) = (a[0].to_radians(), a[1].to_radians(), b[0].to_radians(), b[1].to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2) + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS * h.sqrt().asin()
}

fn sort_value(doc: &Map<String, Value>, crit: &DocumentSort) -> SortValue {
    match crit {
        DocumentSort::Geo { point, .. } => {
            let num = |v: Option<&Value>| -> Option<f64> {
                match v? {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                }
            };
            let Some(g) = doc.get("_geo") else { return SortValue::Missing };
            match (num(g.get("lat")), num(g.get("lng"))) {
                (Some(lat), Some(lng)) => SortValue::Number(geo_distance(*point, [lat, lng])),
                _ => SortValue::Missing,
            }
        }
        DocumentSort::Field { field, asc } => {
            let mut found = Vec::new();
            lookup_in(doc, field, &mut found);
            let (mut numbers, mut texts) = (Vec::new(), Vec::new());
            for v in found {
                collect_values(v, &mut numbers, &mut texts);
            }
            let pick_num = |a: f64, b: f64| if (a < b) == *asc { a } else { b };
            if let Some(n) = numbers.into_iter().reduce(pick_num) {
                return SortValue::Number(n);
            }
            let best = if *asc { texts.into_iter().min() } else { texts.into_iter().max() };
            best.map(SortValue::Text).unwrap_or(SortValue::Missing)
        }
    }
}

fn compare_sort_values(a: &SortValue, b: &SortValue, asc: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    use SortValue::*;
    let directed = |o: std::cmp::Ordering| if asc { o } else { o.reverse() };
    match (a, b) {
        (Missing, Missing) => Equal,
        (Missing, _) => Greater,
        (_, Missing) => Less,
        (Number(_), Text(_)) => Less,
        (Text(_), Number(_)) => Greater,
        (Number(x), Number(y)) => directed(x.partial_cmp(y).unwrap_or(Equal)),
        (Text(x), Text(y)) => directed(x.cmp(y)),
    }
}

/// Order of two documents of a sorted listing (`Less`: `a` first; `Equal`: a tie one
/// Meilisearch breaks by its internal document ids).
pub fn compare_documents(a: &Map<String, Value>, b: &Map<String, Value>, sort: &[DocumentSort]) -> std::cmp::Ordering {
    for c in sort {
        let asc = match c {
            DocumentSort::Field { asc, .. } | DocumentSort::Geo { asc, .. } => *asc,
        };
        let o = compare_sort_values(&sort_value(a, c), &sort_value(b, c), asc);
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    std::cmp::Ordering::Equal
}

/// Whether `fields` (a listing's `fields`) returns `field`.
fn fields_cover(fields: &[Value], field: &str) -> bool {
    fields.iter().filter_map(Value::as_str).any(|f| {
        f == "*" || f == field || field.strip_prefix(f).is_some_and(|rest| rest.starts_with('.')) || f.strip_prefix(field).is_some_and(|r| r.starts_with('.'))
    })
}

/// The fields a sorted listing must add to the client's `fields` so the merge can read every
/// criterion (removed again from the merged documents).
pub fn sort_widened_fields(request: &Map<String, Value>, sort: &[DocumentSort]) -> Vec<String> {
    let Some(Value::Array(fields)) = request.get("fields") else { return Vec::new() };
    let mut out: Vec<String> = Vec::new();
    for c in sort {
        let f = c.field();
        if !fields_cover(fields, f) && !out.iter().any(|o| o == f) {
            out.push(f.to_string());
        }
    }
    out
}

/// Merges the first `offset + limit` documents of every node (each in the listing's sort
/// order) into the window `offset..offset+limit` of one sorted listing; `total` is the sum
/// of the node totals. Ties keep the node order, then each node's order.
pub fn merge_sorted_document_pages(
    offset: u64,
    limit: u64,
    sort: &[DocumentSort],
    widened: &[String],
    pages: Vec<Value>,
) -> Result<Value, ApiError> {
    let mut all: Vec<Map<String, Value>> = Vec::new();
    let mut total = 0u64;
    for page in pages {
        total += page.get("total").and_then(Value::as_u64).unwrap_or(0);
        let list = page.get("results").and_then(Value::as_array).ok_or_else(|| bad_node_answer("document listing"))?;
        for d in list {
            all.push(d.as_object().cloned().ok_or_else(|| bad_node_answer("document"))?);
        }
    }
    // Each node's list is sorted: a stable sort of their concatenation is their k-way merge.
    all.sort_by(|a, b| compare_documents(a, b, sort));
    let results: Vec<Value> = all
        .into_iter()
        .skip(offset.min(usize::MAX as u64) as usize)
        .take(limit.min(usize::MAX as u64) as usize)
        .map(|mut d| {
            strip_reserved(&mut d);
            for w in widened {
                remove_path(&mut d, w);
            }
            Value::Object(d)
        })
        .collect();
    Ok(json!({"results": results, "offset": offset, "limit": limit, "total": total}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn recorded_listing_over_three_nodes() {
        // "documents list": limit=3, offset=2, fields=id,title over 12 movies.
        let docs: Vec<Value> = (1..=12).map(|i| json!({"id": i, "title": format!("t{i}"), "_miroir_shard": i % 3})).collect();
        let totals = [4u64, 5, 3];
        let plan = plan_document_pages(&totals, 2, 3);
        assert_eq!(plan, vec![(0, 2, 2), (1, 0, 1)]);
        let starts = [0usize, 4, 9];
        let pages = plan
            .iter()
            .map(|&(n, off, lim)| {
                let s = starts[n] + off as usize;
                json!({"results": docs[s..s + lim as usize], "offset": off, "limit": lim, "total": totals[n]})
            })
            .collect();
        let merged = merge_document_pages(2, 3, &totals, pages).unwrap();
        assert_eq!(
            serde_json::to_string(&merged).unwrap(),
            serde_json::to_string(&json!({"results": [{"id": 3, "title": "t3"}, {"id": 4, "title": "t4"}, {"id": 5, "title": "t5"}], "offset": 2, "limit": 3, "total": 12})).unwrap()
        );
    }

    #[test]
    fn edges() {
        assert_eq!(plan_document_pages(&[], 0, 20), vec![]);
        assert_eq!(plan_document_pages(&[0, 0, 5], 0, 20), vec![(2, 0, 5)]);
        assert_eq!(plan_document_pages(&[3, 3], 10, 20), vec![]);
        assert_eq!(plan_document_pages(&[3, 3], 0, 0), vec![]);
        assert_eq!(plan_document_pages(&[3, 3], u64::MAX, u64::MAX), vec![]);
        assert!(merge_document_pages(0, 1, &[1], vec![json!({"oops": 1})]).is_err());
    }

    #[test]
    fn sorted_listing_merges_like_recursive_sort() {
        let sort = DocumentSort::parse(&[json!("price:asc"), json!("year:desc")]).unwrap();
        assert_eq!(sort[1], DocumentSort::Field { field: "year".into(), asc: false });
        assert!(DocumentSort::parse(&[json!("price")]).is_none());
        assert_eq!(DocumentSort::parse(&[json!("_geoPoint(1.5, -2):desc")]).unwrap()[0], DocumentSort::Geo { point: [1.5, -2.0], asc: false });
        // numbers, then strings (case-insensitive), then documents without the field
        let node_a = json!({"results": [{"id": 1, "price": 2, "year": 2000}, {"id": 3, "price": "Ask", "year": 1}, {"id": 5, "_miroir_shard": 3}], "total": 3});
        let node_b = json!({"results": [{"id": 2, "price": [9, 1], "year": 1999}, {"id": 4, "price": 2, "year": 2010}, {"id": 6, "price": "call"}], "total": 7});
        let merged = merge_sorted_document_pages(0, 10, &sort, &[], vec![node_a.clone(), node_b.clone()]).unwrap();
        let ids: Vec<u64> = merged["results"].as_array().unwrap().iter().map(|d| d["id"].as_u64().unwrap()).collect();
        assert_eq!(ids, [2, 4, 1, 3, 6, 5]);
        assert_eq!(merged["total"], 10);
        assert_eq!(merged["results"][5], json!({"id": 5}));
        // a window, with the fields the merge added removed
        let merged = merge_sorted_document_pages(1, 2, &sort, &["year".to_string()], vec![node_a, node_b]).unwrap();
        assert_eq!(merged["results"], json!([{"id": 4, "price": 2}, {"id": 1, "price": 2}]));
        assert_eq!((merged["offset"].as_u64(), merged["limit"].as_u64()), (Some(1), Some(2)));
        // descending: numbers still first
        let desc = DocumentSort::parse(&[json!("price:desc")]).unwrap();
        let a = json!({"id": 1, "price": "zzz"}).as_object().unwrap().clone();
        let b = json!({"id": 2, "price": 1}).as_object().unwrap().clone();
        assert_eq!(compare_documents(&b, &a, &desc), std::cmp::Ordering::Less);
        // nested fields and widening
        let nested = DocumentSort::parse(&[json!("dims.w:asc")]).unwrap();
        let a = json!({"dims": {"w": 3}}).as_object().unwrap().clone();
        let b = json!({"dims": {"w": 1}}).as_object().unwrap().clone();
        assert_eq!(compare_documents(&b, &a, &nested), std::cmp::Ordering::Less);
        let req = json!({"fields": ["id", "dims"]}).as_object().unwrap().clone();
        assert!(sort_widened_fields(&req, &nested).is_empty());
        let req = json!({"fields": ["id"]}).as_object().unwrap().clone();
        assert_eq!(sort_widened_fields(&req, &nested), ["dims.w"]);
        assert!(sort_widened_fields(&Map::new(), &nested).is_empty());
    }

    proptest! {
        /// Paging with any page size visits every document exactly once, in order.
        #[test]
        fn pages_cover_everything_once(totals in prop::collection::vec(0u64..20, 0..6), page in 1u64..25) {
            let sum: u64 = totals.iter().sum();
            let mut seen = Vec::new();
            let mut offset = 0;
            while offset < sum + page {
                for (n, off, lim) in plan_document_pages(&totals, offset, page) {
                    prop_assert!(lim > 0 && off + lim <= totals[n]);
                    for j in off..off + lim {
                        seen.push((n, j));
                    }
                }
                offset += page;
            }
            let expected: Vec<(usize, u64)> =
                totals.iter().enumerate().flat_map(|(n, &t)| (0..t).map(move |j| (n, j))).collect();
            prop_assert_eq!(seen, expected);
        }
    }
}

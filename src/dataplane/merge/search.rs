//! `POST /indexes/{uid}/search`: what to ask each node, and how to merge the answers.

use std::cmp::Ordering;
use std::collections::HashSet;

use serde_json::{json, Map, Value};

use super::facets::{merge_facet_distributions, merge_facet_stats};
use super::rank::{normalize, RankKey};
use super::{bad_node_answer, get_path, get_u64, strip_reserved, IndexContext};
use crate::error::ApiError;

const DEFAULT_LIMIT: u64 = 20;
const DEFAULT_HITS_PER_PAGE: u64 = 20;

/// The client's pagination: `offset`/`limit`, or `page`/`hitsPerPage` as soon as either of
/// those is given (then `offset`/`limit` are ignored, as in Meilisearch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pagination {
    OffsetLimit { offset: u64, limit: u64 },
    Page { page: u64, hits_per_page: u64 },
}

impl Pagination {
    pub(crate) fn of(params: &Map<String, Value>) -> Pagination {
        let given = |k: &str| params.get(k).is_some_and(|v| !v.is_null());
        if given("page") || given("hitsPerPage") {
            Pagination::Page {
                page: get_u64(params, "page").unwrap_or(1),
                hits_per_page: get_u64(params, "hitsPerPage").unwrap_or(DEFAULT_HITS_PER_PAGE),
            }
        } else {
            Pagination::OffsetLimit {
                offset: get_u64(params, "offset").unwrap_or(0),
                limit: get_u64(params, "limit").unwrap_or(DEFAULT_LIMIT),
            }
        }
    }

    /// `(offset, limit)` into the merged ranking; `page: 0` selects nothing.
    pub(crate) fn window(self) -> (u64, u64) {
        match self {
            Pagination::OffsetLimit { offset, limit } => (offset, limit),
            Pagination::Page { page: 0, .. } => (0, 0),
            Pagination::Page { page, hits_per_page } => ((page - 1).saturating_mul(hits_per_page), hits_per_page),
        }
    }

    /// How many of its best hits every node must return.
    pub(crate) fn fetch(self) -> u64 {
        let (offset, limit) = self.window();
        offset.saturating_add(limit)
    }

    /// Writes the node-side pagination into `body` (any client pagination removed): the
    /// first `fetch` hits, in the same mode as the client so the node's total is of the
    /// same kind (`page` mode totals are exact, `offset`/`limit` ones estimated).
    pub(crate) fn write_node_pagination(self, body: &mut Map<String, Value>, fetch: u64) {
        for k in ["offset", "limit", "page", "hitsPerPage"] {
            body.shift_remove(k);
        }
        match self {
            Pagination::OffsetLimit { .. } => {
                body.insert("offset".into(), json!(0));
                body.insert("limit".into(), json!(fetch));
            }
            Pagination::Page { .. } => {
                body.insert("page".into(), json!(1));
                body.insert("hitsPerPage".into(), json!(fetch));
            }
        }
    }

    /// The node's total in this mode (`estimatedTotalHits` or `totalHits`).
    pub(crate) fn node_total(self, resp: &Map<String, Value>) -> u64 {
        let key = match self {
            Pagination::OffsetLimit { .. } => "estimatedTotalHits",
            Pagination::Page { .. } => "totalHits",
        };
        get_u64(resp, key).unwrap_or(0)
    }

    /// The pagination fields of the answer, in Meilisearch's order.
    pub(crate) fn answer_fields(self, total: u64) -> Vec<(&'static str, Value)> {
        match self {
            Pagination::OffsetLimit { offset, limit } => vec![
                ("limit", json!(limit)),
                ("offset", json!(offset)),
                ("estimatedTotalHits", json!(total)),
            ],
            Pagination::Page { page, hits_per_page } => {
                let pages = if hits_per_page == 0 { 0 } else { total.div_ceil(hits_per_page) };
                vec![
                    ("hitsPerPage", json!(hits_per_page)),
                    ("page", json!(page)),
                    ("totalPages", json!(pages)),
                    ("totalHits", json!(total)),
                ]
            }
        }
    }
}

const PAGINATION_ANSWER_FIELDS: [&str; 7] =
    ["limit", "offset", "estimatedTotalHits", "hitsPerPage", "page", "totalPages", "totalHits"];

/// The distinct attribute of a search: the query's `distinct`, else the index setting.
pub(crate) fn effective_distinct(client: &Map<String, Value>, ctx: &IndexContext) -> Option<String> {
    client
        .get("distinct")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| ctx.distinct_attribute.clone())
}

fn string_list(v: Option<&Value>) -> Option<Vec<String>> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
}

/// Whether a list of attribute patterns selects `field`: `*`, the field itself, a parent
/// object (`a` selects `a.b`), or a `prefix*` pattern.
fn covers(requested: &[String], field: &str) -> bool {
    requested.iter().any(|r| {
        r == field
            || r.strip_suffix('*').is_some_and(|prefix| field.starts_with(prefix))
            || field.strip_prefix(r.as_str()).is_some_and(|rest| rest.starts_with('.'))
    })
}

/// Fields the merge needs that the client's `attributesToRetrieve` leaves out: they are
/// added to the node query and removed from the merged hits.
pub(crate) fn widened_fields(client: &Map<String, Value>, ctx: &IndexContext) -> Vec<String> {
    let Some(requested) = string_list(client.get("attributesToRetrieve")) else { return Vec::new() };
    let mut out: Vec<String> = Vec::new();
    for f in [ctx.primary_key.clone(), effective_distinct(client, ctx)].into_iter().flatten() {
        if !covers(&requested, &f) && !out.contains(&f) {
            out.push(f);
        }
    }
    out
}

/// The sub-query sent to every node of the covering set (the caller adds the shard filter).
///
/// * pagination: the best `offset + limit` hits (page mode: `page × hitsPerPage`, `page: 0` →
///   none), capped by `maxTotalHits`, in the client's mode (page mode makes node totals
///   exact);
/// * `showRankingScore` and `showRankingScoreDetails` always on (the merge orders by them);
/// * `attributesToRetrieve` widened with the primary key and the distinct attribute when the
///   client restricted it (sort values come from the ranking details, not the documents);
/// * everything else (`q`, `filter`, `sort`, `facets`, `distinct`, highlighting, …) as the
///   client sent it. Node-side facet truncation is discussed in [`super::facets`].
pub fn plan_node_search(client: &Map<String, Value>, ctx: &IndexContext) -> Map<String, Value> {
    let mut body = client.clone();
    let pagination = Pagination::of(client);
    let fetch = pagination.fetch().min(ctx.max_total_hits);
    pagination.write_node_pagination(&mut body, fetch);
    body.insert("showRankingScore".into(), json!(true));
    body.insert("showRankingScoreDetails".into(), json!(true));
    let widened = widened_fields(client, ctx);
    if !widened.is_empty() {
        if let Some(Value::Array(list)) = body.get_mut("attributesToRetrieve") {
            list.extend(widened.into_iter().map(Value::String));
        }
    }
    body
}

/// The values a document is deduplicated on by `distinct` (milli: every facet value of the
/// field; a document without any is never a duplicate).
pub(crate) fn distinct_keys(hit: &Map<String, Value>, attr: &str) -> Vec<String> {
    fn push(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(format!("s:{}", normalize(s))),
            Value::Bool(b) => out.push(format!("s:{b}")),
            Value::Number(n) => out.push(format!("n:{}", n.as_f64().unwrap_or(0.0))),
            Value::Array(a) => a.iter().for_each(|x| push(x, out)),
            Value::Null | Value::Object(_) => {}
        }
    }
    let mut out = Vec::new();
    if let Some(v) = get_path(hit, attr) {
        push(v, &mut out);
    }
    out
}

/// Merges ranked per-node hit lists into one ranking (k-way merge by
/// [`super::compare_hits`]; ties go to the lower node index, then node order), then applies
/// `distinct` across nodes (the best hit per value survives). Returns the ranking and the
/// number of hits dropped as cross-node duplicates.
pub(crate) fn rank_and_distinct(
    node_hits: Vec<Vec<Map<String, Value>>>,
    distinct: Option<&str>,
) -> (Vec<Map<String, Value>>, u64) {
    let total: usize = node_hits.iter().map(Vec::len).sum();
    let mut lists: Vec<std::vec::IntoIter<Map<String, Value>>> = node_hits.into_iter().map(Vec::into_iter).collect();
    let keyed = |h: Option<Map<String, Value>>| h.map(|h| (RankKey::of(&h), h));
    let mut heads: Vec<Option<(RankKey, Map<String, Value>)>> = lists.iter_mut().map(|l| keyed(l.next())).collect();
    let mut merged = Vec::with_capacity(total);
    loop {
        let mut best: Option<usize> = None;
        for (i, head) in heads.iter().enumerate() {
            let Some((key, _)) = head else { continue };
            best = match best {
                Some(b) if key.order(&heads[b].as_ref().expect("best head").0) != Ordering::Less => Some(b),
                _ => Some(i),
            };
        }
        let Some(b) = best else { break };
        let (_, hit) = heads[b].take().expect("best head");
        heads[b] = keyed(lists[b].next());
        merged.push(hit);
    }
    let Some(attr) = distinct else { return (merged, 0) };
    let mut seen: HashSet<String> = HashSet::new();
    let mut dropped = 0u64;
    let mut out = Vec::with_capacity(merged.len());
    for hit in merged {
        let keys = distinct_keys(&hit, attr);
        if keys.iter().any(|k| seen.contains(k)) {
            dropped += 1;
            continue;
        }
        seen.extend(keys);
        out.push(hit);
    }
    (out, dropped)
}

/// How merged hits are trimmed back to what the client asked for.
pub(crate) struct HitShape {
    show_score: bool,
    show_details: bool,
    widened: Vec<String>,
    /// Fields that stay in `_formatted` even if widened (highlighted/cropped ones).
    formatted_requested: Vec<String>,
}

impl HitShape {
    pub(crate) fn of(client: &Map<String, Value>, ctx: &IndexContext) -> HitShape {
        let flag = |k: &str| client.get(k).and_then(Value::as_bool).unwrap_or(false);
        let mut formatted_requested = string_list(client.get("attributesToHighlight")).unwrap_or_default();
        formatted_requested.extend(string_list(client.get("attributesToCrop")).unwrap_or_default().into_iter().map(|a| {
            // `attributesToCrop` entries may carry a length: `title:10`
            a.split_once(':').map(|(n, _)| n.to_string()).unwrap_or(a)
        }));
        HitShape {
            show_score: flag("showRankingScore"),
            show_details: flag("showRankingScoreDetails"),
            widened: widened_fields(client, ctx),
            formatted_requested,
        }
    }

    pub(crate) fn apply(&self, hit: &mut Map<String, Value>) {
        strip_reserved(hit);
        if !self.show_score {
            hit.shift_remove("_rankingScore");
        }
        if !self.show_details {
            hit.shift_remove("_rankingScoreDetails");
        }
        for f in &self.widened {
            remove_path(hit, f);
        }
        if let Some(Value::Object(formatted)) = hit.get_mut("_formatted") {
            strip_reserved(formatted);
            for f in &self.widened {
                if !covers(&self.formatted_requested, f) {
                    remove_path(formatted, f);
                }
            }
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
        }
    }
}

fn parse_node_answers(node_responses: &[Value]) -> Result<Vec<&Map<String, Value>>, ApiError> {
    node_responses
        .iter()
        .map(|r| {
            r.as_object()
                .filter(|o| o.get("hits").is_some_and(Value::is_array))
                .ok_or_else(|| bad_node_answer("search answer"))
        })
        .collect()
}

fn hits_of(resp: &Map<String, Value>) -> Result<Vec<Map<String, Value>>, ApiError> {
    resp.get("hits")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_node_answer("search answer"))?
        .iter()
        .map(|h| h.as_object().cloned().ok_or_else(|| bad_node_answer("search hit")))
        .collect()
}

/// The merged hits of one query over its covering set, before pagination: ranking, cross-node
/// distinct, and the total (sum of node totals minus cross-node duplicates seen).
pub(crate) struct MergedQuery {
    pub hits: Vec<Map<String, Value>>,
    pub total: u64,
    pub processing_time: u64,
}

pub(crate) fn merge_query_hits(
    client: &Map<String, Value>,
    ctx: &IndexContext,
    pagination: Pagination,
    answers: &[&Map<String, Value>],
) -> Result<MergedQuery, ApiError> {
    let node_hits = answers.iter().map(|a| hits_of(a)).collect::<Result<Vec<_>, _>>()?;
    let distinct = effective_distinct(client, ctx);
    let (hits, duplicates) = rank_and_distinct(node_hits, distinct.as_deref());
    let total = answers.iter().map(|a| pagination.node_total(a)).sum::<u64>().saturating_sub(duplicates);
    let processing_time = answers.iter().filter_map(|a| get_u64(a, "processingTimeMs")).max().unwrap_or(0);
    Ok(MergedQuery { hits, total, processing_time })
}

/// Merges the node answers to the sub-query of [`plan_node_search`] into the answer one
/// Meilisearch would give: hits ranked by their details, distinct across nodes, paginated
/// (capped by `maxTotalHits`), trimmed to what the client asked for; totals summed (minus
/// cross-node distinct duplicates seen, which is exact whenever every node returned all its
/// hits); facets merged; `processingTimeMs` the slowest node's; field order as Meilisearch's.
/// No `requestUid` (the caller appends its own).
pub fn merge_search(
    client: &Map<String, Value>,
    ctx: &IndexContext,
    node_responses: Vec<Value>,
) -> Result<Value, ApiError> {
    let answers = parse_node_answers(&node_responses)?;
    let pagination = Pagination::of(client);
    let merged = merge_query_hits(client, ctx, pagination, &answers)?;
    let shape = HitShape::of(client, ctx);

    let (offset, limit) = pagination.window();
    let end = offset.saturating_add(limit).min(ctx.max_total_hits).min(merged.hits.len() as u64) as usize;
    let start = (offset.min(end as u64)) as usize;
    // Meilisearch's `semanticHitCount` counts the hits of the page that come from the vector
    // search (every hit of a semantic search; in a hybrid one those ranked by `vectorSort`).
    let semantic_hits = merged.hits[start..end]
        .iter()
        .filter(|h| h.get("_rankingScoreDetails").is_some_and(|d| d.get("vectorSort").is_some()))
        .count();
    let hits: Vec<Value> = merged.hits[start..end]
        .iter()
        .cloned()
        .map(|mut h| {
            shape.apply(&mut h);
            Value::Object(h)
        })
        .collect();

    let first = answers.first().copied();
    let mut out = Map::new();
    out.insert("hits".into(), Value::Array(hits));
    let query = client
        .get("q")
        .filter(|q| q.is_string())
        .cloned()
        .or_else(|| first.and_then(|f| f.get("query")).cloned())
        .unwrap_or_else(|| json!(""));
    out.insert("query".into(), query);
    if let Some(v) = first.and_then(|f| f.get("queryVector")) {
        out.insert("queryVector".into(), v.clone());
    }
    out.insert("processingTimeMs".into(), json!(merged.processing_time));
    for (k, v) in pagination.answer_fields(merged.total) {
        out.insert(k.into(), v);
    }
    let dists: Vec<&Map<String, Value>> =
        answers.iter().filter_map(|a| a.get("facetDistribution").and_then(Value::as_object)).collect();
    if !dists.is_empty() {
        out.insert("facetDistribution".into(), Value::Object(merge_facet_distributions(ctx, &dists, merged.total)));
    }
    let stats: Vec<&Map<String, Value>> =
        answers.iter().filter_map(|a| a.get("facetStats").and_then(Value::as_object)).collect();
    if !stats.is_empty() {
        out.insert("facetStats".into(), Value::Object(merge_facet_stats(&stats)));
    }
    if answers.iter().any(|a| a.contains_key("semanticHitCount")) {
        out.insert("semanticHitCount".into(), json!(semantic_hits));
    }
    if let Some(first) = first {
        for (k, v) in first {
            if !out.contains_key(k) && !AFTER_REQUEST_UID.contains(&k.as_str()) && !PAGINATION_ANSWER_FIELDS.contains(&k.as_str()) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(Value::Object(out))
}

/// Fields of a search answer that Meilisearch writes after `requestUid` (the caller appends
/// them after its own `requestUid`).
const AFTER_REQUEST_UID: [&str; 4] = ["requestUid", "metadata", "performanceDetails", "semanticHitCount"];

/// A duration as Meilisearch prints it (`{:.2?}` of a `Duration`: `812.00ns`, `15.43µs`,
/// `1.20ms`, `2.00s`), in nanoseconds.
pub(crate) fn parse_duration(s: &str) -> Option<f64> {
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().ok()?;
    let scale = match unit {
        "ns" => 1.0,
        "µs" | "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => return None,
    };
    Some(n * scale)
}

/// `performanceDetails` of one merged read: every step any node reported, in the order the
/// nodes first list them, each with the slowest node's duration (the nodes run in
/// parallel, so the slowest one is what the client waited for). `None` when no node sent
/// any (the client did not ask).
pub fn merge_performance_details<'a>(answers: impl IntoIterator<Item = &'a Value>) -> Option<Value> {
    let mut out: Map<String, Value> = Map::new();
    let mut any = false;
    for a in answers {
        let Some(details) = a.get("performanceDetails").and_then(Value::as_object) else { continue };
        any = true;
        for (step, d) in details {
            let slower = match (out.get(step).and_then(Value::as_str).and_then(parse_duration), d.as_str().and_then(parse_duration)) {
                (None, _) => true,
                (Some(cur), Some(new)) => new > cur,
                (Some(_), None) => false,
            };
            if slower {
                out.insert(step.clone(), d.clone());
            }
        }
    }
    any.then_some(Value::Object(out))
}

/// Appends `requestUid` and, after it as Meilisearch orders them, the merged
/// `performanceDetails` of the node answers, then `semanticHitCount` (the last field of
/// Meilisearch's search answer).
pub fn finish_search_answer(body: &mut Value, request_uid: &str, performance: Option<Value>) {
    let Some(o) = body.as_object_mut() else { return };
    let semantic = o.shift_remove("semanticHitCount");
    o.insert("requestUid".into(), json!(request_uid));
    if let Some(p) = performance {
        o.insert("performanceDetails".into(), p);
    }
    if let Some(s) = semantic {
        o.insert("semanticHitCount".into(), s);
    }
}

/// One result of a non-federated `POST /multi-search`: the merged answer with `indexUid`
/// first, as Meilisearch lists it.
pub fn multi_search_result(index_uid: &str, merged: Value) -> Value {
    let mut out = Map::new();
    out.insert("indexUid".into(), json!(index_uid));
    if let Value::Object(m) = merged {
        out.extend(m);
    }
    Value::Object(out)
}

#[cfg(test)]
#[path = "search_tests.rs"]
pub(crate) mod tests;

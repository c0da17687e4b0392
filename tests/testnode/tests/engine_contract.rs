//! Replays the recorded Meilisearch 1.50 contract against the test node's search engine
//! directly (no HTTP): documents and settings are rebuilt from the recorded writes, then
//! every recorded search, facet-search and multi-search answer must be reproduced exactly
//! (field order included), except the volatile `processingTimeMs` and `requestUid`.
//!
//! Filter evaluation belongs to the HTTP layer; this file has a tiny evaluator for the two
//! recorded filter expressions only. Cases answered by the HTTP layer alone (missing index,
//! filter syntax errors) are not replayed here.

use std::collections::BTreeMap;

use miroir_testnode::engine::{
    facet_search, federated_search, parse_facet_search_query, parse_multi_search_query, parse_search_params,
    parse_search_query, search, IndexSnapshot, SearchQuery,
};
use serde_json::{json, Map, Value};

/// The repository's copy of the recorded contract (`tests/fixtures/meilisearch-contract`).
fn cases() -> Vec<Value> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/meilisearch-contract/cases.json");
    serde_json::from_str(&std::fs::read_to_string(&p).expect("read the recorded contract")).expect("cases.json is JSON")
}

fn default_settings() -> Value {
    json!({
        "displayedAttributes": ["*"], "searchableAttributes": ["*"], "filterableAttributes": [],
        "sortableAttributes": [],
        "rankingRules": ["words", "typo", "proximity", "attributeRank", "sort", "wordPosition", "exactness"],
        "stopWords": [], "nonSeparatorTokens": [], "separatorTokens": [], "dictionary": [], "synonyms": {},
        "distinctAttribute": null, "proximityPrecision": "byWord",
        "typoTolerance": {"enabled": true, "minWordSizeForTypos": {"oneTypo": 5, "twoTypos": 9},
                          "disableOnWords": [], "disableOnAttributes": [], "disableOnNumbers": false},
        "faceting": {"maxValuesPerFacet": 100, "sortFacetValuesBy": {"*": "alpha"}},
        "pagination": {"maxTotalHits": 1000}, "embedders": {}, "searchCutoffMs": null,
        "localizedAttributes": null, "facetSearch": true, "prefixSearch": "indexingTime"
    })
}

struct Index {
    primary_key: Option<String>,
    settings: Value,
    docs: Vec<Map<String, Value>>,
}

#[derive(Default)]
struct State {
    indexes: BTreeMap<String, Index>,
}

impl State {
    fn index(&mut self, uid: &str) -> &mut Index {
        self.indexes
            .entry(uid.to_string())
            .or_insert_with(|| Index { primary_key: None, settings: default_settings(), docs: Vec::new() })
    }

    fn patch_settings(&mut self, uid: &str, body: &Value) {
        let defaults = default_settings();
        let idx = self.index(uid);
        for (k, v) in body.as_object().unwrap() {
            let new = match (v, &defaults[k]) {
                (Value::Null, d) => d.clone(),
                (Value::Object(patch), Value::Object(_)) => {
                    let mut merged = idx.settings[k].clone();
                    for (pk, pv) in patch {
                        merged[pk] = if pv.is_null() { defaults[k][pk].clone() } else { pv.clone() };
                    }
                    merged
                }
                (Value::Array(items), _) if k == "sortableAttributes" || k == "filterableAttributes" => {
                    let mut items = items.clone();
                    items.sort_by_key(|a| a.to_string());
                    Value::Array(items)
                }
                _ => v.clone(),
            };
            idx.settings[k] = new;
        }
    }

    /// Adds (`replace`) or updates documents; a batch with an invalid document fails whole.
    fn write_documents(&mut self, uid: &str, docs: Vec<Map<String, Value>>, replace: bool, pk_param: Option<&str>) {
        let idx = self.index(uid);
        if idx.primary_key.is_none() {
            idx.primary_key = pk_param.map(str::to_string).or_else(|| {
                let first = docs.first()?;
                let cands: Vec<&String> = first.keys().filter(|k| k.to_lowercase().ends_with("id")).collect();
                (cands.len() == 1).then(|| cands[0].clone())
            });
        }
        let Some(pk) = idx.primary_key.clone() else { return };
        let valid = |v: Option<&Value>| match v {
            Some(Value::Number(n)) => n.is_u64(),
            Some(Value::String(s)) => !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            _ => false,
        };
        if !docs.iter().all(|d| valid(d.get(&pk))) {
            return;
        }
        for d in docs {
            match idx.docs.iter_mut().find(|e| e.get(&pk) == d.get(&pk)) {
                Some(existing) if replace => *existing = d,
                Some(existing) => {
                    for (k, v) in d {
                        existing.insert(k, v);
                    }
                }
                None => idx.docs.push(d),
            }
        }
    }
}

fn parse_body_documents(req: &Value) -> Vec<Map<String, Value>> {
    let ct = req["headers"]["Content-Type"].as_str().unwrap_or("application/json");
    let body = &req["body"];
    match (ct, body) {
        (_, Value::Array(items)) => items.iter().filter_map(|d| d.as_object().cloned()).collect(),
        ("application/x-ndjson", Value::String(s)) => s
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| serde_json::from_str::<Value>(l).ok()?.as_object().cloned())
            .collect(),
        ("text/csv", Value::String(s)) => {
            let mut rdr = csv::Reader::from_reader(s.as_bytes());
            let headers: Vec<(String, bool)> = rdr
                .headers()
                .unwrap()
                .iter()
                .map(|h| match h.split_once(':') {
                    Some((name, "number")) => (name.to_string(), true),
                    Some((name, _)) => (name.to_string(), false),
                    None => (h.to_string(), false),
                })
                .collect();
            rdr.records()
                .map(|r| {
                    let r = r.unwrap();
                    headers
                        .iter()
                        .zip(r.iter())
                        .map(|((name, number), v)| {
                            let value = if *number {
                                v.parse::<i64>().map(Value::from).unwrap_or_else(|_| json!(v.parse::<f64>().unwrap()))
                            } else {
                                Value::String(v.to_string())
                            };
                            (name.clone(), value)
                        })
                        .collect()
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

/// The two filter shapes the recording uses: `a = v`, `a >= n`, `a < n`, `AND`, and the
/// array form (outer AND, inner OR).
fn passes(doc: &Map<String, Value>, filter: &Value) -> bool {
    fn cond(doc: &Map<String, Value>, expr: &str) -> bool {
        if let Some((l, r)) = expr.split_once(" AND ") {
            return cond(doc, l) && cond(doc, r);
        }
        for op in [">=", "<=", "=", "<", ">"] {
            if let Some((attr, value)) = expr.split_once(op) {
                let (attr, value) = (attr.trim(), value.trim());
                let vals: Vec<&Value> = match doc.get(attr) {
                    Some(Value::Array(items)) => items.iter().collect(),
                    Some(v) => vec![v],
                    None => vec![],
                };
                return vals.iter().any(|v| match (v, value.parse::<f64>()) {
                    (Value::Number(n), Ok(x)) => {
                        let n = n.as_f64().unwrap();
                        match op {
                            ">=" => n >= x,
                            "<=" => n <= x,
                            "<" => n < x,
                            ">" => n > x,
                            _ => n == x,
                        }
                    }
                    (Value::String(s), _) => op == "=" && s.eq_ignore_ascii_case(value),
                    _ => false,
                });
            }
        }
        panic!("filter {expr} not supported by the test")
    }
    match filter {
        Value::String(s) => cond(doc, s),
        Value::Array(items) => items.iter().all(|i| match i {
            Value::Array(any) => any.iter().any(|a| passes(doc, a)),
            other => passes(doc, other),
        }),
        _ => true,
    }
}

fn snapshot<'a>(state: &'a State, uid: &'a str, query: &SearchQuery) -> IndexSnapshot<'a> {
    let idx = &state.indexes[uid];
    IndexSnapshot {
        uid,
        primary_key: idx.primary_key.as_deref(),
        settings: &idx.settings,
        documents: idx.docs.iter().filter(|d| query.filter.as_ref().is_none_or(|f| passes(d, f))).collect(),
    }
}

fn strip_volatile(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.shift_remove("processingTimeMs");
            m.shift_remove("requestUid");
            m.values_mut().for_each(strip_volatile);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_volatile),
        _ => {}
    }
}

fn body_of(r: Result<Value, miroir_testnode::error::ApiError>) -> (u16, Value) {
    match r {
        Ok(v) => (200, v),
        Err(e) => (e.status().as_u16(), e.body()),
    }
}

fn run_case(state: &State, case: &Value) -> Option<(u16, Value)> {
    let req = &case["request"];
    let path = req["path"].as_str().unwrap();
    let body = &req["body"];
    let (path, qs) = path.split_once('?').unwrap_or((path, ""));
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["indexes", uid, "search"] if state.indexes.contains_key(*uid) => {
            let parsed = if req["method"] == "GET" {
                let params: Vec<(String, String)> = url::form_urlencoded::parse(qs.as_bytes()).into_owned().collect();
                parse_search_params(&params)
            } else {
                parse_search_query(body, false)
            };
            Some(body_of(parsed.and_then(|q| search(&snapshot(state, uid, &q), &q))))
        }
        ["indexes", uid, "facet-search"] => {
            let q = parse_facet_search_query(body).unwrap();
            Some(body_of(facet_search(&snapshot(state, uid, &q), &q)))
        }
        ["multi-search"] => {
            let queries: Vec<SearchQuery> = body["queries"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
                .map(|(i, q)| parse_multi_search_query(q, i).unwrap())
                .collect();
            if queries.iter().any(|q| !state.indexes.contains_key(q.index_uid.as_deref().unwrap())) {
                return None; // index_not_found is the HTTP layer's answer
            }
            match body.get("federation").filter(|f| !f.is_null()) {
                Some(fed) => {
                    let inputs: Vec<(IndexSnapshot<'_>, SearchQuery)> = queries
                        .iter()
                        .map(|q| (snapshot(state, q.index_uid.as_deref().unwrap(), q), q.clone()))
                        .collect();
                    Some(body_of(federated_search(&inputs, fed)))
                }
                None => {
                    let mut results = Vec::new();
                    for q in &queries {
                        let uid = q.index_uid.as_deref().unwrap();
                        let mut r = Map::new();
                        r.insert("indexUid".into(), json!(uid));
                        let out = search(&snapshot(state, uid, q), q).unwrap();
                        r.extend(out.as_object().unwrap().clone());
                        results.push(Value::Object(r));
                    }
                    Some((200, json!({ "results": results })))
                }
            }
        }
        _ => None,
    }
}

#[test]
fn recorded_searches_are_reproduced_exactly() {
    let mut state = State::default();
    let mut replayed = Vec::new();
    for case in cases() {
        let name = case["name"].as_str().unwrap().to_string();
        let req = &case["request"];
        let method = req["method"].as_str().unwrap();
        let full_path = req["path"].as_str().unwrap();
        let (path, qs) = full_path.split_once('?').unwrap_or((full_path, ""));
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let status = case["response"]["status"].as_u64().unwrap() as u16;
        // Writes: rebuild the corpus.
        match (method, segments.as_slice()) {
            ("POST", ["indexes"]) if status == 202 => {
                let uid = req["body"]["uid"].as_str().unwrap();
                let pk = req["body"]["primaryKey"].as_str().map(str::to_string);
                let idx = state.index(uid);
                idx.primary_key = idx.primary_key.clone().or(pk);
                continue;
            }
            ("PATCH", ["indexes", uid, "settings"]) if status == 202 => {
                state.patch_settings(uid, &req["body"]);
                continue;
            }
            ("POST" | "PUT", ["indexes", uid, "documents"]) if status == 202 => {
                let pk = url::form_urlencoded::parse(qs.as_bytes())
                    .find(|(k, _)| k == "primaryKey")
                    .map(|(_, v)| v.into_owned());
                let docs = parse_body_documents(req);
                state.write_documents(uid, docs, method == "POST", pk.as_deref());
                continue;
            }
            ("DELETE", ["indexes", _, "documents", ..]) | ("POST", ["indexes", _, "documents", "delete-batch" | "delete"]) => {
                // Deletions come after the last search of the recording.
                break;
            }
            _ => {}
        }
        if name.contains("invalid filter") || name.contains("non-filterable") {
            continue; // the filter language is the HTTP layer's
        }
        let Some((got_status, mut got)) = run_case(&state, &case) else { continue };
        let mut want = case["response"]["body"].clone();
        strip_volatile(&mut want);
        strip_volatile(&mut got);
        assert_eq!(got_status, status, "{name}: status");
        assert_eq!(
            serde_json::to_string_pretty(&got).unwrap(),
            serde_json::to_string_pretty(&want).unwrap(),
            "{name}: body differs from the recording"
        );
        replayed.push(name);
    }
    // Every recorded search, facet-search and multi-search case this file can answer (all of
    // cases 47-81 but the filter errors and the missing-index ones) was replayed.
    assert_eq!(replayed.len(), 29, "replayed: {replayed:?}");
}

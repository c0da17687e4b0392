//! The read path: search, facet search, multi-search (plain and federated), document
//! listing, index fields and stats. Each read goes to one covering set (see `scatter`), each node's
//! sub-query restricted to the shards it answers for, and the answers are merged by
//! `merge` into what one Meilisearch holding every document would answer.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Map, Value};

use super::fanout::{NodeCall, DEGRADED_HEADER};
use super::merge::{self, IndexContext, RESERVED_PREFIX};
use super::scatter::{covering_set, shard_filter, CoveringSet};
use super::{Proxy, RoutingTable};
use super::context_cache::CONTEXT_TASK_TYPES;
use crate::store::{TaskFilter, TaskRecord, TaskStatus};
use crate::config::UnavailableShardPolicy;
use crate::model::fields::ListFields;
use crate::model::{DocumentId, IndexUid};
use super::hash::shard_of;
use crate::node::NodePath;
use crate::error::{ApiError, ApiResult, Code};

static NEXT_GROUP: AtomicU32 = AtomicU32::new(0);

/// A limit that lists all of a node's fields: milli's field ids are `u16`, so no index has
/// more than 65,536 fields.
const ALL_FIELDS: usize = 65_536;

/// A merged answer and the shards it had to leave out.
pub struct ReadAnswer {
    pub body: Value,
    pub missing_shards: Vec<u32>,
}

impl ReadAnswer {
    pub fn degraded_header(&self) -> Option<(&'static str, String)> {
        if self.missing_shards.is_empty() {
            return None;
        }
        let list: Vec<String> = self.missing_shards.iter().map(u32::to_string).collect();
        Some((DEGRADED_HEADER, format!("shards={}", list.join(","))))
    }
}

pub fn request_uid() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Hides Miroir's attributes (`_miroir_*`) in a node's error message, so that it reads as one
/// Meilisearch holding the client's settings would word it.
pub fn sanitize_node_error(mut body: Value) -> Value {
    if let Some(Value::String(m)) = body.get_mut("message") {
        *m = sanitize_message(m);
    }
    body
}

/// The lists of attributes Meilisearch (milli) appends to its errors, and what it says instead
/// when the list is empty. Two list forms exist: each name in backticks (`` `a`, `b` ``, filter
/// errors) and one backticked list (`` `a, b` ``, facet, distinct and facet-search errors).
const ATTRIBUTE_LISTS: &[(&str, &str)] = &[
    ("Available filterable attribute patterns are: ", "This index does not have configured filterable attributes."),
    ("Available filterable attributes patterns are: ", "This index does not have configured filterable attributes."),
    ("Available facet-searchable attributes patterns are: ", "This index does not have configured facet-searchable attributes."),
    ("Available sortable attributes are: ", "This index does not have configured sortable attributes."),
];

/// Removes reserved names from every attribute list in `m` (see [`ATTRIBUTE_LISTS`]); a list
/// left empty becomes Meilisearch's sentence for an index without such attributes.
pub fn sanitize_message(m: &str) -> String {
    if !m.contains(RESERVED_PREFIX) {
        return m.to_string();
    }
    let mut out = String::with_capacity(m.len());
    let mut rest = m;
    'scan: while !rest.is_empty() {
        for (intro, empty) in ATTRIBUTE_LISTS {
            if let Some(after) = rest.strip_prefix(intro) {
                if let Some((names, joined, len)) = parse_attribute_list(after) {
                    let kept: Vec<&str> = names.iter().copied().filter(|n| !n.starts_with(RESERVED_PREFIX)).collect();
                    if kept.is_empty() {
                        out.push_str(empty);
                    } else {
                        out.push_str(intro);
                        if joined {
                            out.push_str(&format!("`{}`", kept.join(", ")));
                        } else {
                            out.push_str(&kept.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "));
                        }
                        out.push('.');
                    }
                    rest = &after[len..];
                    continue 'scan;
                }
            }
        }
        let c = rest.chars().next().expect("not empty");
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    without_reserved_liquid_keys(&out)
}

/// A template error of `/render-template` (liquid's "Unknown index") lists the keys of the
/// object a template read (`    available indexes=id, title, _miroir_shard`); a document a
/// node renders holds Miroir's fields, which one Meilisearch's documents do not.
fn without_reserved_liquid_keys(m: &str) -> String {
    const KEYS: &str = "available indexes=";
    m.split_inclusive('\n')
        .map(|line| {
            let Some(at) = line.find(KEYS) else { return line.to_string() };
            let (head, rest) = line.split_at(at + KEYS.len());
            let (list, end) = match rest.strip_suffix('\n') {
                Some(list) => (list, "\n"),
                None => (rest, ""),
            };
            let kept: Vec<&str> = list.split(", ").filter(|k| !k.starts_with(RESERVED_PREFIX)).collect();
            format!("{head}{}{end}", kept.join(", "))
        })
        .collect()
}

/// Parses `` `a`, `b`. `` or `` `a, b`. `` at the start of `s`: the names, whether they were
/// one backticked list, and the length consumed (through the final `.`).
fn parse_attribute_list(s: &str) -> Option<(Vec<&str>, bool, usize)> {
    let mut tokens = Vec::new();
    let mut pos = 0;
    loop {
        let t = s[pos..].strip_prefix('`')?;
        let end = t.find('`')?;
        tokens.push(&t[..end]);
        pos += 1 + end + 1;
        if s[pos..].starts_with(", `") {
            pos += 2;
            continue;
        }
        break;
    }
    if !s[pos..].starts_with('.') {
        return None;
    }
    pos += 1;
    if tokens.len() == 1 && tokens[0].contains(", ") {
        Some((tokens[0].split(", ").collect(), true, pos))
    } else {
        Some((tokens, false, pos))
    }
}

fn passthrough(status: u16, body: &Value) -> ApiError {
    ApiError::Passthrough { status, body: sanitize_node_error(body.clone()) }
}

/// Client-visible context of an index: primary key and settings, from the cache when an entry
/// is there, otherwise from one node (cached when that is safe; see `context_cache`).
pub async fn index_context(proxy: &Proxy, routing: &RoutingTable, uid: &IndexUid) -> ApiResult<Arc<IndexContext>> {
    let ttl = Duration::from_millis(proxy.options().scatter.index_context_ttl_ms);
    let cache = &proxy.inner.contexts;
    if let Some(ctx) = cache.get(uid.as_str(), ttl) {
        return Ok(ctx);
    }
    // Steps 1 and 2 of `context_cache` come before the fetch (step 3).
    let generation = cache.generation();
    let pending = if ttl.is_zero() { None } else { pending_context_tasks(proxy, uid).await };
    let ctx = Arc::new(fetch_index_context(proxy, routing, uid).await?);
    if let Some(pending) = pending {
        let blocking: Vec<TaskRecord> = pending
            .into_iter()
            .filter(|t| t.kind != "documentAdditionOrUpdate" || ctx.primary_key.is_none())
            .collect();
        if blocking.is_empty() {
            cache.insert_if_unchanged(uid.as_str(), ctx.clone(), generation);
        } else if cache.begin_refresh() {
            // Tasks nobody polls would keep the index uncacheable: learn whether they ended.
            let p = proxy.clone();
            tokio::spawn(async move {
                for t in blocking.into_iter().take(16) {
                    if let Err(e) = p.refreshed_task(t).await {
                        tracing::debug!(error = ?e, "cannot refresh a settings task");
                    }
                }
                p.inner.contexts.end_refresh();
            });
        }
    }
    Ok(ctx)
}

/// The unfinished Miroir tasks that may change `uid`'s context (`None`: the store cannot say).
async fn pending_context_tasks(proxy: &Proxy, uid: &IndexUid) -> Option<Vec<TaskRecord>> {
    let unfinished = vec![TaskStatus::Enqueued, TaskStatus::Processing];
    let own = TaskFilter {
        statuses: unfinished.clone(),
        index_uids: vec![uid.as_str().to_string()],
        types: CONTEXT_TASK_TYPES.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    };
    let swaps = TaskFilter { statuses: unfinished, types: vec!["indexSwap".into()], ..Default::default() };
    let store = proxy.store();
    let (own, swaps) = tokio::join!(store.find_tasks(&own), store.find_tasks(&swaps));
    match (own, swaps) {
        (Ok(mut own), Ok(swaps)) => {
            own.extend(swaps);
            Some(own)
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::debug!(error = %e, "task store unavailable; the index context is not cached");
            None
        }
    }
}

/// Client-visible context of an index: primary key and settings, from one node.
async fn fetch_index_context(proxy: &Proxy, routing: &RoutingTable, uid: &IndexUid) -> ApiResult<IndexContext> {
    // Both reads at once: they are independent, and this is on every search's path.
    let (index_path, settings_path) = (NodePath::index(uid), NodePath::index(uid).then("settings"));
    let (index, settings) = tokio::join!(
        proxy.read_any(routing, Method::GET, &index_path, None),
        proxy.read_any(routing, Method::GET, &settings_path, None),
    );
    let (index, settings) = (index?, settings?);
    if !index.is_success() {
        return Err(passthrough(index.status, &index.body));
    }
    if !settings.is_success() {
        return Err(passthrough(settings.status, &settings.body));
    }
    let mut pk = index.body.get("primaryKey").and_then(Value::as_str).map(str::to_string);
    if pk.is_none() {
        // An inferred key is only on the nodes that got documents (see `index_meta`).
        pk = proxy.cluster_primary_key(routing, uid).await.and_then(|p| p.as_str().map(str::to_string));
    }
    let mut ctx = IndexContext::from_settings(pk.as_deref(), &settings.body);
    // The nodes hold a larger facet limit than the client set (see `settings`).
    match proxy.store().get_index_settings(uid.as_str()).await {
        Ok(Some(overlay)) => {
            if let Some(max) = super::settings::overlay_max(&overlay) {
                ctx.max_values_per_facet = max as usize;
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(index = uid.as_str(), error = %e, "task store unavailable; using the nodes' facet limit"),
    }
    Ok(ctx)
}

impl Proxy {
    /// A covering set for one read: starting group round-robin unless `stable` (document
    /// listing must see the same nodes in the same order on every page).
    fn choose_cover(&self, routing: &RoutingTable, stable: bool, exclude: &[String]) -> CoveringSet {
        let groups = routing.topology.replica_groups;
        let first = if stable { 0 } else { NEXT_GROUP.fetch_add(1, Ordering::Relaxed) % groups };
        covering_set(&routing.assignment, first, |n| {
            !exclude.iter().any(|e| e == n) && self.serves_reads(n)
        })
    }

    fn check_missing(&self, missing: &[u32]) -> ApiResult<()> {
        if missing.is_empty() || self.options().scatter.unavailable_shard_policy == UnavailableShardPolicy::Partial {
            return Ok(());
        }
        let list: Vec<String> = missing.iter().map(u32::to_string).collect();
        Err(ApiError::new(
            Code::MiroirShardUnavailable,
            format!("Shard(s) {} have no healthy copy in any replica group.", list.join(", ")),
        )
        .with_header(DEGRADED_HEADER, format!("shards={}", list.join(","))))
    }

    /// Sends `body_for(node, shards)` to every node of a covering set; a node that cannot
    /// answer is replaced by another holder of its shards (one retry round). Returns the
    /// successful answers in covering-set order, and the shards no node answered for.
    async fn scatter(
        &self,
        routing: &RoutingTable,
        path: &NodePath,
        stable: bool,
        body_for: &(dyn Fn(&str, &[u32], bool) -> Value + Sync),
    ) -> ApiResult<(Vec<(String, Vec<u32>, Value)>, Vec<u32>)> {
        let mut exclude: Vec<String> = Vec::new();
        for attempt in 0..2 {
            let cover = self.choose_cover(routing, stable, &exclude);
            let calls: Vec<NodeCall> = cover
                .per_node
                .iter()
                .map(|(node, shards)| {
                    let only = routing.holds_only(node, shards);
                    NodeCall {
                        node_id: node.clone(),
                        method: Method::POST,
                        path: path.clone(),
                        content_type: Some("application/json"),
                        body: Some(serde_json::to_vec(&body_for(node, shards, only)).expect("json")),
                    }
                })
                .collect();
            let outcomes = self.call_nodes(routing, calls).await;
            let mut answers = Vec::new();
            let mut failed = Vec::new();
            for (o, (node, shards)) in outcomes.into_iter().zip(cover.per_node.iter()) {
                match o.result {
                    Ok(r) if r.is_success() => answers.push((node.clone(), shards.clone(), r.body)),
                    Ok(r) if (400..500).contains(&r.status) => return Err(passthrough(r.status, &r.body)),
                    _ => failed.push(node.clone()),
                }
            }
            if failed.is_empty() || attempt == 1 {
                let mut missing = cover.missing.clone();
                for f in &failed {
                    missing.extend(cover.per_node.get(f).cloned().unwrap_or_default());
                }
                missing.sort_unstable();
                return Ok((answers, missing));
            }
            exclude.extend(failed);
        }
        unreachable!("two attempts")
    }

    /// When a node rejects a sub-query, the error may quote Miroir's shard restriction:
    /// ask one node the client's own query so the client sees the error it would get
    /// from one Meilisearch.
    async fn client_view_of_error(&self, routing: &RoutingTable, path: &NodePath, client: &Value, err: ApiError) -> ApiError {
        if let ApiError::Passthrough { .. } = err {
            if let Ok(r) = self.read_any(routing, Method::POST, path, Some(client)).await {
                if !r.is_success() {
                    return passthrough(r.status, &r.body);
                }
            }
        }
        err
    }

    /// Scatters `body` (the client's `filter` restricted to each node's shards) over one
    /// covering set; a node's rejection is answered as the client's own request would be.
    /// Returns the node answers (missing shards already checked against the policy).
    async fn scatter_restricted(
        &self,
        routing: &RoutingTable,
        path: &NodePath,
        client: &Map<String, Value>,
        body: &Map<String, Value>,
    ) -> ApiResult<(Vec<Value>, Vec<u32>)> {
        let body_for = |_: &str, shards: &[u32], only: bool| {
            let mut b = body.clone();
            set_filter(&mut b, shard_filter(client.get("filter"), shards, only));
            Value::Object(b)
        };
        let (answers, missing) = match self.scatter(routing, path, false, &body_for).await {
            Ok(x) => x,
            Err(e) => return Err(self.client_view_of_error(routing, path, &Value::Object(client.clone()), e).await),
        };
        self.check_missing(&missing)?;
        Ok((answers.into_iter().map(|(_, _, b)| b).collect(), missing))
    }

    pub async fn search(&self, uid: &IndexUid, client: &Map<String, Value>) -> ApiResult<ReadAnswer> {
        let routing = self.routing().ok_or_else(no_topology)?;
        let ctx = index_context(self, &routing, uid).await?;
        let plan = merge::plan_node_search(client, &ctx);
        let (answers, missing) = self.scatter_restricted(&routing, &NodePath::index(uid).then("search"), client, &plan).await?;
        let performance = merge::merge_performance_details(&answers);
        let mut body = merge::merge_search(client, &ctx, answers)?;
        merge::finish_search_answer(&mut body, &request_uid(), performance);
        Ok(ReadAnswer { body, missing_shards: missing })
    }

    pub async fn facet_search(&self, uid: &IndexUid, client: &Map<String, Value>) -> ApiResult<ReadAnswer> {
        let routing = self.routing().ok_or_else(no_topology)?;
        let ctx = index_context(self, &routing, uid).await?;
        let (answers, missing) =
            self.scatter_restricted(&routing, &NodePath::index(uid).then("facet-search"), client, client).await?;
        let facet = client.get("facetName").and_then(Value::as_str).unwrap_or_default();
        let body = merge::merge_facet_search(&ctx, facet, answers)?;
        Ok(ReadAnswer { body, missing_shards: missing })
    }

    pub async fn multi_search(&self, body: &Value) -> ApiResult<ReadAnswer> {
        let queries = body.get("queries").and_then(Value::as_array).ok_or_else(|| {
            ApiError::new(Code::BadRequest, "Missing field `queries`")
        })?;
        let mut queries_maps = Vec::with_capacity(queries.len());
        for (i, q) in queries.iter().enumerate() {
            let m = q.as_object().cloned().ok_or_else(|| {
                ApiError::new(Code::BadRequest, format!("Invalid value type at `.queries[{i}]`: expected an object, but found {q}"))
            })?;
            queries_maps.push(m);
        }
        let inside = |i: usize, e: ApiError| -> ApiError {
            let mut status = e.status().as_u16();
            // Inside a multi-search Meilisearch answers a missing index with 400, not 404.
            if e.code_name() == "index_not_found" {
                status = 400;
            }
            let mut b = e.body();
            if let Some(Value::String(m)) = b.get_mut("message") {
                *m = format!("Inside `.queries[{i}]`: {m}");
            }
            ApiError::Passthrough { status, body: b }
        };
        let index_of = |i: usize, q: &Map<String, Value>| -> ApiResult<IndexUid> {
            let uid = q.get("indexUid").and_then(Value::as_str).ok_or_else(|| {
                inside(i, ApiError::new(Code::MissingIndexUid, "Missing field `indexUid`"))
            })?;
            IndexUid::parse(uid).map_err(|e| {
                ApiError::new(Code::InvalidIndexUid, format!("Invalid value at `.queries[{i}].indexUid`: {}", e.body()["message"].as_str().unwrap_or_default()))
            })
        };
        match body.get("federation") {
            None | Some(Value::Null) => {
                let mut results = Vec::new();
                let mut missing = Vec::new();
                let uid_req = request_uid();
                for (i, q) in queries_maps.iter().enumerate() {
                    let uid = index_of(i, q)?;
                    let mut query = q.clone();
                    query.remove("indexUid");
                    let ans = self.search(&uid, &query).await.map_err(|e| inside(i, e))?;
                    missing.extend(ans.missing_shards);
                    let mut merged = ans.body;
                    merged.as_object_mut().expect("object").insert("requestUid".into(), json!(uid_req));
                    results.push(merge::multi_search_result(uid.as_str(), merged));
                }
                missing.sort_unstable();
                missing.dedup();
                Ok(ReadAnswer { body: json!({"results": results}), missing_shards: missing })
            }
            Some(fed) => {
                let federation = fed.as_object().cloned().ok_or_else(|| {
                    ApiError::new(Code::BadRequest, "Invalid value type at `.federation`: expected an object")
                })?;
                let routing = self.routing().ok_or_else(no_topology)?;
                let mut fq = Vec::with_capacity(queries_maps.len());
                let mut missing = Vec::new();
                // `federation.showPerformanceDetails`: each node's sub-search reports its steps.
                let show_performance = federation.get("showPerformanceDetails") == Some(&Value::Bool(true));
                let mut performance: Vec<Value> = Vec::new();
                for (i, q) in queries_maps.iter().enumerate() {
                    let uid = index_of(i, q)?;
                    let ctx = index_context(self, &routing, &uid).await.map_err(|e| inside(i, e))?;
                    let mut plan = merge::plan_federated_node_search(&federation, &queries_maps, i, &ctx);
                    if show_performance {
                        plan.insert("showPerformanceDetails".into(), json!(true));
                    }
                    let path = NodePath::index(&uid).then("search");
                    let body_for = |_: &str, shards: &[u32], only: bool| {
                        let mut b = plan.clone();
                        set_filter(&mut b, shard_filter(q.get("filter"), shards, only));
                        Value::Object(b)
                    };
                    let (answers, miss) = match self.scatter(&routing, &path, false, &body_for).await {
                        Ok(x) => x,
                        Err(e) => {
                            let mut own = plan.clone();
                            if let Some(f) = q.get("filter") {
                                own.insert("filter".into(), f.clone());
                            } else {
                                own.remove("filter");
                            }
                            let e = self.client_view_of_error(&routing, &path, &Value::Object(own), e).await;
                            return Err(inside(i, federation_facets_error(uid.as_str(), &federation, e)));
                        }
                    };
                    self.check_missing(&miss)?;
                    missing.extend(miss);
                    let mut node_responses: Vec<Value> = answers.into_iter().map(|(_, _, b)| b).collect();
                    for r in node_responses.iter_mut() {
                        if let Some(p) = r.as_object_mut().and_then(|o| o.shift_remove("performanceDetails")) {
                            performance.push(json!({"performanceDetails": p}));
                        }
                    }
                    fq.push(merge::FederatedQuery { query: q.clone(), ctx: (*ctx).clone(), node_responses });
                }
                let mut body = merge::merge_federated(&federation, fq)?;
                let mut uids: Vec<&str> = queries_maps.iter().filter_map(|q| q.get("indexUid").and_then(Value::as_str)).collect();
                let n = uids.len();
                uids.sort_unstable();
                uids.dedup();
                if uids.len() < n {
                    // Several queries on one index: its total is the union of their matches,
                    // which only the nodes can count. Ask each node of a covering set for the
                    // union over its shards (a federated count); shards are disjoint, so the
                    // sum is exact.
                    let total = self.federated_union_count(&routing, &queries_maps).await?;
                    set_total(&mut body, total);
                }
                let performance = if show_performance { merge::merge_performance_details(&performance).or_else(|| Some(json!({}))) } else { None };
                merge::finish_search_answer(&mut body, &request_uid(), performance);
                missing.sort_unstable();
                missing.dedup();
                Ok(ReadAnswer { body, missing_shards: missing })
            }
        }
    }

    /// Exact number of distinct documents matched by a federated search's queries.
    async fn federated_union_count(&self, routing: &RoutingTable, queries: &[Map<String, Value>]) -> ApiResult<u64> {
        let body_for = |_: &str, shards: &[u32], only: bool| {
            let qs: Vec<Value> = queries
                .iter()
                .map(|q| {
                    let mut q = q.clone();
                    let f = shard_filter(q.get("filter"), shards, only);
                    set_filter(&mut q, f);
                    Value::Object(q)
                })
                .collect();
            json!({"federation": {"limit": 0, "offset": 0}, "queries": qs})
        };
        let (answers, missing) = self.scatter(routing, &NodePath::route("/multi-search"), false, &body_for).await?;
        self.check_missing(&missing)?;
        Ok(answers.iter().map(|(_, _, b)| b.get("estimatedTotalHits").and_then(Value::as_u64).unwrap_or(0)).sum())
    }

    /// `POST /indexes/{uid}/similar` (and its GET twin), planned and merged as
    /// `merge::similar` describes: the node of a covering set answering for the reference
    /// document's shard runs `/similar` on its shards and gives the reference's vector (its
    /// `documents/fetch` with `retrieveVectors`); every other node of the set runs a vector
    /// search with that vector on its shards. `client` is the client's request with a tenant
    /// token's rule fused into its filter; `reference_rule` is that rule alone (Meilisearch
    /// answers `not_found_similar_id` for a reference the token cannot see).
    pub async fn similar(&self, uid: &IndexUid, client: &Map<String, Value>, reference_rule: Option<&Value>) -> ApiResult<ReadAnswer> {
        let routing = self.routing().ok_or_else(no_topology)?;
        let path = NodePath::index(uid).then("similar");
        let client_value = Value::Object(client.clone());
        let Some(id) = client.get("id").and_then(DocumentId::from_value) else {
            // No document has such an id. Meilisearch judges the embedder and the filter
            // before the id, so one node words the error for the client's own request.
            let r = self.read_any(&routing, Method::POST, &path, Some(&client_value)).await?;
            return Err(if r.is_success() {
                ApiError::internal("A node found similar documents for a document id no document can have.")
            } else {
                passthrough(r.status, &r.body)
            });
        };
        let ctx = index_context(self, &routing, uid).await?;
        let shard = shard_of(id.as_str(), routing.topology.shards);
        let unavailable = || {
            ApiError::new(Code::MiroirShardUnavailable, format!("Shard {shard} has no healthy copy; the reference document cannot be read right now."))
                .with_header(DEGRADED_HEADER, format!("shards={shard}"))
        };
        let fetch_path = NodePath::index(uid).then("documents").then("fetch");
        let search_path = NodePath::index(uid).then("search");
        let call = |node: &str, path: &NodePath, body: Value| NodeCall {
            node_id: node.to_string(),
            method: Method::POST,
            path: path.clone(),
            content_type: Some("application/json"),
            body: Some(serde_json::to_vec(&body).expect("json")),
        };
        let mut exclude: Vec<String> = Vec::new();
        for attempt in 0..2 {
            let cover = self.choose_cover(&routing, false, &exclude);
            let Some((holder, holder_shards)) = cover.per_node.iter().find(|(_, s)| s.contains(&shard)) else {
                return Err(unavailable());
            };
            // 1. The holder: `/similar` on its shards, and the reference's vectors.
            let mut similar = merge::similar_holder_body(client);
            set_filter(&mut similar, shard_filter(client.get("filter"), holder_shards, routing.holds_only(holder, holder_shards)));
            let mut fetch = json!({"ids": [id.as_str()], "fields": [], "retrieveVectors": true, "limit": 1});
            if let Some(rule) = reference_rule {
                fetch["filter"] = rule.clone();
            }
            let calls = vec![call(holder, &path, Value::Object(similar)), call(holder, &fetch_path, fetch)];
            let mut outcomes = self.call_nodes(&routing, calls).await.into_iter();
            let (similar, fetched) = (outcomes.next().expect("two outcomes"), outcomes.next().expect("two outcomes"));
            let similar = match similar.result {
                Ok(r) if r.is_success() => r.body,
                Ok(r) if (400..500).contains(&r.status) => {
                    // The error may quote the shard restriction: the holder words it for the
                    // client's own request (only the holder can judge the reference's id).
                    let err = passthrough(r.status, &r.body);
                    return Err(match self.read_from(&routing, vec![holder.as_str()], Method::POST, &path, Some(&client_value)).await {
                        Ok(r) if !r.is_success() => passthrough(r.status, &r.body),
                        _ => err,
                    });
                }
                _ => {
                    exclude.push(holder.clone());
                    if attempt == 1 {
                        return Err(unavailable());
                    }
                    continue;
                }
            };
            let fetched = match fetched.result {
                Ok(r) if r.is_success() => r.body,
                Ok(r) if (400..500).contains(&r.status) => return Err(passthrough(r.status, &r.body)),
                _ => {
                    exclude.push(holder.clone());
                    if attempt == 1 {
                        return Err(unavailable());
                    }
                    continue;
                }
            };
            let Some(reference) = fetched.get("results").and_then(Value::as_array).and_then(|a| a.first()) else {
                // The holder found the reference, but the token's rule does not match it.
                return Err(ApiError::new(Code::NotFoundSimilarId, format!("Document `{id}` not found.")));
            };
            let others: Vec<(&String, &Vec<u32>)> = cover.per_node.iter().filter(|(n, _)| *n != holder).collect();
            if others.is_empty() {
                self.check_missing(&cover.missing)?;
                let body = merge::merge_similar(client, ctx.max_total_hits, &similar, &[])?;
                return Ok(ReadAnswer { body, missing_shards: cover.missing.clone() });
            }
            let embedder = client.get("embedder").and_then(Value::as_str).unwrap_or_default();
            let embeddings = reference
                .get("_vectors")
                .and_then(|v| v.get(embedder))
                .and_then(|e| e.get("embeddings"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if ctx.distinct_attribute.is_some() {
                return Err(ApiError::not_implemented(
                    "`/similar` on an index with a `distinctAttribute` (the nodes' vector searches would apply it, Meilisearch's `/similar` does not)",
                ));
            }
            if embeddings.len() > 1 {
                return Err(ApiError::not_implemented(
                    "`/similar` for a reference document with several embeddings for the embedder (Meilisearch compares each of them only with the other documents' embedding of the same rank)",
                ));
            }
            if !embeddings.is_empty() && !merge::vector_rule_leads(&ctx.ranking_rules) {
                return Err(ApiError::not_implemented(
                    "`/similar` on an index whose ranking rules put a custom `attribute:asc`/`attribute:desc` rule before every word rule (the nodes' vector searches would sort by it first)",
                ));
            }
            // 2. Every other node: a vector search with the reference's vector on its shards
            // (only a count when the reference has no vector: Meilisearch then finds nothing).
            let base = merge::similar_vector_search_body(client, embeddings.first());
            let calls: Vec<NodeCall> = others
                .iter()
                .map(|(node, shards)| {
                    let mut b = base.clone();
                    set_filter(&mut b, shard_filter(client.get("filter"), shards, routing.holds_only(node, shards)));
                    call(node, &search_path, Value::Object(b))
                })
                .collect();
            let outcomes = self.call_nodes(&routing, calls).await;
            let mut answers = Vec::new();
            let mut failed = Vec::new();
            for (o, (node, _)) in outcomes.into_iter().zip(others.iter()) {
                match o.result {
                    Ok(r) if r.is_success() => answers.push(r.body),
                    Ok(r) if (400..500).contains(&r.status) => return Err(passthrough(r.status, &r.body)),
                    _ => failed.push((*node).clone()),
                }
            }
            if !failed.is_empty() && attempt == 0 {
                exclude.extend(failed);
                continue;
            }
            let mut missing = cover.missing.clone();
            for f in &failed {
                missing.extend(cover.per_node.get(f).cloned().unwrap_or_default());
            }
            missing.sort_unstable();
            self.check_missing(&missing)?;
            let body = merge::merge_similar(client, ctx.max_total_hits, &similar, &answers)?;
            return Ok(ReadAnswer { body, missing_shards: missing });
        }
        unreachable!("two attempts")
    }

    /// `GET /documents` and `POST /documents/fetch`: `request` holds `offset, limit,
    /// fields, filter, ids` as the fetch route takes them.
    pub async fn list_documents(&self, uid: &IndexUid, request: &Map<String, Value>) -> ApiResult<ReadAnswer> {
        let routing = self.routing().ok_or_else(no_topology)?;
        let offset = request.get("offset").and_then(Value::as_u64).unwrap_or(0);
        let limit = request.get("limit").and_then(Value::as_u64).unwrap_or(20);
        let path = NodePath::index(uid).then("documents").then("fetch");
        if let Some(Value::Array(sort)) = request.get("sort").filter(|s| s.as_array().is_some_and(|a| !a.is_empty())) {
            return self.list_sorted_documents(&routing, &path, request, sort, offset, limit).await;
        }
        // 1. exact per-node totals of the covered shards (stable cover: same order every page)
        let count_for = |_: &str, shards: &[u32], only: bool| {
            let mut b = request.clone();
            b.insert("offset".into(), json!(0));
            b.insert("limit".into(), json!(0));
            b.remove("fields");
            set_filter(&mut b, shard_filter(request.get("filter"), shards, only));
            Value::Object(b)
        };
        let (counts, missing) = match self.scatter(&routing, &path, true, &count_for).await {
            Ok(x) => x,
            Err(e) => return Err(self.client_view_of_error(&routing, &path, &Value::Object(request.clone()), e).await),
        };
        self.check_missing(&missing)?;
        let totals: Vec<u64> = counts.iter().map(|(_, _, b)| b.get("total").and_then(Value::as_u64).unwrap_or(0)).collect();
        // 2. the window's ranges, each from its node
        let plan = merge::plan_document_pages(&totals, offset, limit);
        let mut calls = Vec::new();
        for (i, node_offset, node_limit) in &plan {
            let (node, shards, _) = &counts[*i];
            let only = routing.holds_only(node, shards);
            let mut b = request.clone();
            b.insert("offset".into(), json!(node_offset));
            b.insert("limit".into(), json!(node_limit));
            set_filter(&mut b, shard_filter(request.get("filter"), shards, only));
            calls.push(NodeCall {
                node_id: node.clone(),
                method: Method::POST,
                path: path.clone(),
                content_type: Some("application/json"),
                body: Some(serde_json::to_vec(&b).expect("json")),
            });
        }
        let outcomes = self.call_nodes(&routing, calls).await;
        let mut pages = Vec::new();
        for o in outcomes {
            match o.result {
                Ok(r) if r.is_success() => pages.push(r.body),
                Ok(r) => return Err(passthrough(r.status, &r.body)),
                Err(e) => {
                    return Err(ApiError::new(Code::MiroirNodeUnavailable, format!("A node stopped answering while documents were listed: {e}. Retry the request.")))
                }
            }
        }
        let body = merge::merge_document_pages(offset, limit, &totals, pages)?;
        Ok(ReadAnswer { body, missing_shards: missing })
    }

    /// A listing with `sort`: every node of a covering set returns its first `offset + limit`
    /// documents in the sort order (the fields the criteria read added to `fields`), merged
    /// by the same criteria.
    async fn list_sorted_documents(
        &self,
        routing: &RoutingTable,
        path: &NodePath,
        request: &Map<String, Value>,
        sort: &[Value],
        offset: u64,
        limit: u64,
    ) -> ApiResult<ReadAnswer> {
        let criteria = merge::DocumentSort::parse(sort);
        let widened = criteria.as_deref().map(|c| merge::sort_widened_fields(request, c)).unwrap_or_default();
        let body_for = |_: &str, shards: &[u32], only: bool| {
            let mut b = request.clone();
            b.insert("offset".into(), json!(0));
            b.insert("limit".into(), json!(offset.saturating_add(limit)));
            if let Some(Value::Array(fields)) = b.get_mut("fields") {
                fields.extend(widened.iter().cloned().map(Value::String));
            }
            set_filter(&mut b, shard_filter(request.get("filter"), shards, only));
            Value::Object(b)
        };
        let (answers, missing) = match self.scatter(routing, path, false, &body_for).await {
            Ok(x) => x,
            Err(e) => return Err(self.client_view_of_error(routing, path, &Value::Object(request.clone()), e).await),
        };
        self.check_missing(&missing)?;
        // Every node accepted the criteria, so they parse; if not, a node words the error.
        let Some(criteria) = criteria else {
            let r = self.read_any(routing, Method::POST, path, Some(&Value::Object(request.clone()))).await?;
            return Err(if r.is_success() { ApiError::internal("Miroir could not read a `sort` that the nodes accepted.") } else { passthrough(r.status, &r.body) });
        };
        let pages = answers.into_iter().map(|(_, _, b)| b).collect();
        let body = merge::merge_sorted_document_pages(offset, limit, &criteria, &widened, pages)?;
        Ok(ReadAnswer { body, missing_shards: missing })
    }

    /// `POST /indexes/{uid}/fields`: every node of one covering set lists all of its fields
    /// (the client's filter applied: it judges each field by its name and the index's
    /// settings, which every node holds); the union, without Miroir's fields, sorted and
    /// paginated as the client asked (see [`merge::merge_fields`]).
    pub async fn list_fields(&self, uid: &IndexUid, request: &ListFields) -> ApiResult<ReadAnswer> {
        let routing = self.routing().ok_or_else(no_topology)?;
        let path = NodePath::index(uid).then("fields");
        let mut body = json!({"offset": 0, "limit": ALL_FIELDS});
        if let Some(filter) = &request.filter {
            body["filter"] = filter.to_json();
        }
        let body_for = |_: &str, _: &[u32], _: bool| body.clone();
        let (answers, missing) = self.scatter(&routing, &path, false, &body_for).await?;
        self.check_missing(&missing)?;
        let body = merge::merge_fields(request.offset, request.limit, answers.into_iter().map(|(_, _, b)| b).collect())?;
        Ok(ReadAnswer { body, missing_shards: missing })
    }

    /// `GET /indexes/{uid}/stats`.
    pub async fn index_stats(&self, uid: &IndexUid) -> ApiResult<ReadAnswer> {
        self.index_stats_with(uid, false).await
    }

    /// `GET /indexes/{uid}/stats`, with `internalDatabaseSizes` when `internal_sizes`.
    pub async fn index_stats_with(&self, uid: &IndexUid, internal_sizes: bool) -> ApiResult<ReadAnswer> {
        let routing = self.routing().ok_or_else(no_topology)?;
        let cover = self.choose_cover(&routing, true, &[]);
        self.check_missing(&cover.missing)?;
        // Every node of the cover at once; each answers its stats and, when it holds shards
        // outside the cover, the count of the covered ones.
        let per_node = cover.per_node.iter().map(|(node, shards)| {
            let routing = &routing;
            let only = routing.holds_only(node, shards);
            async move {
                let mut path = NodePath::index(uid).then("stats");
                if internal_sizes {
                    path = path.query("showInternalDatabaseSizes", "true");
                }
                let stats = self.read_from(routing, vec![node.as_str()], Method::GET, &path, None).await?;
                if !stats.is_success() {
                    return Err(passthrough(stats.status, &stats.body));
                }
                let covered = if only {
                    stats.body.get("numberOfDocuments").and_then(Value::as_u64).unwrap_or(0)
                } else {
                    let q = json!({"limit": 0, "filter": shard_filter(None, shards, false)});
                    let path = NodePath::index(uid).then("documents").then("fetch");
                    let r = self.read_from(routing, vec![node.as_str()], Method::POST, &path, Some(&q)).await?;
                    if !r.is_success() {
                        return Err(passthrough(r.status, &r.body));
                    }
                    r.body.get("total").and_then(Value::as_u64).unwrap_or(0)
                };
                Ok(merge::NodeIndexStats { stats: stats.body, covered_documents: covered })
            }
        });
        let nodes = futures::future::try_join_all(per_node).await?;
        Ok(ReadAnswer { body: merge::merge_index_stats_with(nodes, internal_sizes), missing_shards: cover.missing })
    }

    /// `GET /stats`: every index's merged stats, database sizes summed over all nodes.
    pub async fn global_stats(&self) -> ApiResult<ReadAnswer> {
        self.global_stats_with(false).await
    }

    /// `GET /stats`, with each index's `internalDatabaseSizes` when `internal_sizes`.
    pub async fn global_stats_with(&self, internal_sizes: bool) -> ApiResult<ReadAnswer> {
        let routing = self.routing().ok_or_else(no_topology)?;
        let calls: Vec<NodeCall> = routing
            .topology
            .nodes
            .iter()
            .map(|n| NodeCall { node_id: n.id.clone(), method: Method::GET, path: NodePath::route("/stats"), content_type: None, body: None })
            .collect();
        let outcomes = self.call_nodes(&routing, calls).await;
        let mut database_size = 0u64;
        let mut used = 0u64;
        let mut last_update: Option<String> = None;
        let mut uids: BTreeMap<String, ()> = BTreeMap::new();
        for o in &outcomes {
            let Ok(r) = &o.result else { continue };
            if !r.is_success() {
                continue;
            }
            database_size += r.body.get("databaseSize").and_then(Value::as_u64).unwrap_or(0);
            used += r.body.get("usedDatabaseSize").and_then(Value::as_u64).unwrap_or(0);
            if let Some(lu) = r.body.get("lastUpdate").and_then(Value::as_str) {
                if last_update.as_deref().is_none_or(|cur| lu > cur) {
                    last_update = Some(lu.to_string());
                }
            }
            if let Some(ix) = r.body.get("indexes").and_then(Value::as_object) {
                for k in ix.keys() {
                    uids.insert(k.clone(), ());
                }
            }
        }
        let mut indexes = Map::new();
        let mut missing = Vec::new();
        // Names the nodes listed themselves; one that is not a valid uid names no index.
        let valid: Vec<IndexUid> = uids.keys().filter_map(|u| IndexUid::parse(u).ok()).collect();
        let all = futures::future::try_join_all(valid.iter().map(|uid| self.index_stats_with(uid, internal_sizes))).await?;
        for (uid, s) in valid.iter().zip(all) {
            missing.extend(s.missing_shards);
            indexes.insert(uid.to_string(), s.body);
        }
        missing.sort_unstable();
        missing.dedup();
        Ok(ReadAnswer {
            body: json!({"databaseSize": database_size, "usedDatabaseSize": used, "lastUpdate": last_update, "indexes": indexes}),
            missing_shards: missing,
        })
    }
}

/// A node reports a bad facet of `facetsByIndex` (sent to it as the query's `facets`) as an
/// error of the index; Meilisearch locates it in the federation.
fn federation_facets_error(uid: &str, federation: &Map<String, Value>, e: ApiError) -> ApiError {
    if e.code_name() != "invalid_search_facets" || federation.get("facetsByIndex").and_then(|f| f.get(uid)).is_none() {
        return e;
    }
    let status = e.status().as_u16();
    let mut body = e.body();
    if let Some(Value::String(m)) = body.get_mut("message") {
        // A node may or may not name the index first ("Index `x`: ...").
        let rest = m.strip_prefix(&format!("Index `{uid}`: ")).unwrap_or(m.as_str());
        *m = format!("Inside `.federation.facetsByIndex.{uid}`: {rest}");
    }
    ApiError::Passthrough { status, body }
}

/// Replaces the total of a search answer in either pagination mode.
fn set_total(body: &mut Value, total: u64) {
    let Some(o) = body.as_object_mut() else { return };
    if o.contains_key("estimatedTotalHits") {
        o.insert("estimatedTotalHits".into(), json!(total));
    }
    if o.contains_key("totalHits") {
        o.insert("totalHits".into(), json!(total));
        let hpp = o.get("hitsPerPage").and_then(Value::as_u64).unwrap_or(0);
        o.insert("totalPages".into(), json!(if hpp == 0 { 0 } else { total.div_ceil(hpp) }));
    }
}

fn set_filter(body: &mut Map<String, Value>, filter: Option<Value>) {
    match filter {
        Some(f) => {
            body.insert("filter".into(), f);
        }
        None => {
            body.remove("filter");
        }
    }
}

fn no_topology() -> ApiError {
    ApiError::new(Code::MiroirNodeUnavailable, "Miroir has no topology yet: no Meilisearch node is configured.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_errors_do_not_mention_the_shard_field() {
        let e = sanitize_node_error(json!({"message": "Attribute `rating` is not filterable. Available filterable attribute patterns are: `_geo`, `_miroir_shard`, `director`.\n1:7 rating > 8"}));
        assert_eq!(e["message"], "Attribute `rating` is not filterable. Available filterable attribute patterns are: `_geo`, `director`.\n1:7 rating > 8");
        let e = sanitize_node_error(json!({"message": "Attribute `x` is not filterable. Available filterable attribute patterns are: `_miroir_shard`.\n1:2 x = 1"}));
        assert_eq!(e["message"], "Attribute `x` is not filterable. This index does not have configured filterable attributes.\n1:2 x = 1");
    }

    #[test]
    fn template_errors_do_not_list_the_shard_field() {
        let m = "error while rendering template: user error: missing field in document: liquid: Unknown index\n  with:\n    variable=doc\n    requested index=price\n    available indexes=id, title, _miroir_shard\n";
        assert_eq!(
            sanitize_message(m),
            "error while rendering template: user error: missing field in document: liquid: Unknown index\n  with:\n    variable=doc\n    requested index=price\n    available indexes=id, title\n"
        );
        let m = "liquid: Unknown index\n  with:\n    available indexes=_miroir_shard, a";
        assert_eq!(sanitize_message(m), "liquid: Unknown index\n  with:\n    available indexes=a");
    }

    #[test]
    fn every_list_form_meilisearch_uses_is_cleaned() {
        // facet distribution (one backticked list), as in a federated `facetsByIndex` error
        let m = "Inside `.queries[1]`: Invalid facet distribution: Pattern `director` is not filterable. Available filterable attributes patterns are: `_miroir_shard`.";
        assert_eq!(sanitize_message(m), "Inside `.queries[1]`: Invalid facet distribution: Pattern `director` is not filterable. This index does not have configured filterable attributes.");
        let m = "Pattern `x` is not filterable. Available filterable attributes patterns are: `_geo, _miroir_shard, genres`.";
        assert_eq!(sanitize_message(m), "Pattern `x` is not filterable. Available filterable attributes patterns are: `_geo, genres`.");
        // hidden attributes stay hidden
        let m = "Attribute `x` is not filterable and thus, cannot be used as distinct attribute. Available filterable attributes patterns are: `_miroir_shard, <..hidden-attributes>`.";
        assert_eq!(sanitize_message(m), "Attribute `x` is not filterable and thus, cannot be used as distinct attribute. Available filterable attributes patterns are: `<..hidden-attributes>`.");
        // facet search
        let m = "Attribute `x` is not facet-searchable. Available facet-searchable attributes patterns are: `_miroir_shard`. To make it facet-searchable add it to the `filterableAttributes` index settings.";
        assert_eq!(sanitize_message(m), "Attribute `x` is not facet-searchable. This index does not have configured facet-searchable attributes. To make it facet-searchable add it to the `filterableAttributes` index settings.");
        // messages without Miroir's names are left alone, lists of others too
        let m = "Attribute `a` is not sortable. Available sortable attributes are: `b, c`.";
        assert_eq!(sanitize_message(m), m);
    }
}

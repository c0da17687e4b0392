//! An in-process fake Kubernetes API server: a `tower::Service` behind a real
//! `kube::Client`, so the real controllers run against it in tests.
//!
//! Implements, for any resource path (`/api/v1/...`, `/apis/{group}/{version}/...`):
//! get, list (with `fieldSelector=metadata.name=...`), watch (from a `resourceVersion`,
//! with bookmarks, ending after `timeoutSeconds`; [`FakeApiServer::compact_and_drop_watches`]
//! forces clients through the `410 Gone` → relist path), create, replace, merge / JSON / apply /
//! strategic patches (strategic is treated as a merge patch; server-side apply as a merge
//! patch that also removes the fields the same field manager applied last time and left out
//! now — field ownership between managers is not modelled; a JSON patch `test` of a missing
//! path against `null` passes, as on Kubernetes), delete with
//! finalizers and `deletionTimestamp`, the `status` subresource (for `miroir.io` kinds: the
//! main resource ignores status changes, `/status` ignores everything else),
//! `metadata.generation` bumped on spec changes only, `resourceVersion` bumped on every
//! change and checked when a write carries one (409 on mismatch).
//! Not implemented: label selectors, pagination (`limit` is ignored; everything is
//! returned at once), server-side apply field ownership, admission (schema/CEL) checks.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use http_body::Frame;
use serde_json::{json, Value};
use tokio::sync::broadcast;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Identifies a collection: `miroir.io/v1alpha1/miroirclusters`, `core/v1/secrets`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Collection {
    group: String,
    version: String,
    plural: String,
}

impl Collection {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    fn has_status_subresource(&self) -> bool {
        self.group == "miroir.io"
    }
    fn kind(&self) -> String {
        match self.plural.as_str() {
            "miroirclusters" => "MiroirCluster".into(),
            "aliases" => "Alias".into(),
            "tenants" => "Tenant".into(),
            "canaries" => "Canary".into(),
            "rolloverpolicies" => "RolloverPolicy".into(),
            "secrets" => "Secret".into(),
            "events" => "Event".into(),
            other => {
                let mut c = other.trim_end_matches('s').chars();
                c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
            }
        }
    }
}

type Key = (Collection, String, String);

#[derive(Debug, Clone)]
struct Change {
    rv: u64,
    collection: Collection,
    namespace: String,
    type_: &'static str,
    object: Value,
}

struct State {
    rv: u64,
    uid: u64,
    objects: BTreeMap<Key, Value>,
    history: Vec<Change>,
    /// Watches from a resourceVersion older than this get `410 Gone`.
    compacted_before: u64,
    requests: Vec<String>,
    /// Requests whose `METHOD uri` contains the string are answered with the status code.
    failures: Vec<(String, u16)>,
    /// Last server-side apply body per (object, field manager, status subresource).
    applied: BTreeMap<(Key, String, bool), Value>,
}

/// The fake API server. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct FakeApiServer {
    state: Arc<Mutex<State>>,
    tx: broadcast::Sender<Change>,
    /// Bumped to end every open watch stream.
    watch_epoch: Arc<tokio::sync::watch::Sender<u64>>,
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn status_error(code: StatusCode, reason: &str, message: String) -> Response<Body> {
    json_response(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code.as_u16()}),
    )
}

fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(v).unwrap())).boxed_unsync())
        .unwrap()
}

/// The parts of an object that make up its "spec" for `generation` purposes.
fn spec_part(obj: &Value) -> Value {
    let mut o = obj.as_object().cloned().unwrap_or_default();
    for k in ["metadata", "status", "apiVersion", "kind"] {
        o.remove(k);
    }
    Value::Object(o)
}

struct Parsed {
    collection: Collection,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
    query: BTreeMap<String, String>,
}

fn parse(req: &Request<kube::client::Body>) -> Option<Parsed> {
    let path = req.uri().path();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        rest => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [p] => (p.to_string(), None, None),
        [p, n] => (p.to_string(), Some(n.to_string()), None),
        [p, n, s] => (p.to_string(), Some(n.to_string()), Some(s.to_string())),
        _ => return None,
    };
    let query = req
        .uri()
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    Some(Parsed { collection: Collection { group, version, plural }, namespace, name, subresource: sub, query })
}

fn matches_field_selector(obj: &Value, selector: Option<&String>) -> bool {
    let Some(sel) = selector else { return true };
    sel.split(',').filter(|s| !s.is_empty()).all(|term| match term.split_once('=') {
        Some(("metadata.name", v)) => obj["metadata"]["name"] == v,
        Some(("metadata.namespace", v)) => obj["metadata"]["namespace"] == v,
        _ => true,
    })
}

impl FakeApiServer {
    pub fn new() -> FakeApiServer {
        let (tx, _) = broadcast::channel(4096);
        FakeApiServer {
            state: Arc::new(Mutex::new(State {
                rv: 1,
                uid: 0,
                objects: BTreeMap::new(),
                history: Vec::new(),
                compacted_before: 0,
                requests: Vec::new(),
                failures: Vec::new(),
                applied: BTreeMap::new(),
            })),
            tx,
            watch_epoch: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }

    /// A real `kube::Client` talking to this server.
    pub fn client(&self, default_namespace: &str) -> kube::Client {
        kube::Client::new(self.clone(), default_namespace)
    }

    /// Current JSON of an object (`api_version` like `miroir.io/v1alpha1`, `v1`).
    pub fn object(&self, api_version: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.to_string()),
        };
        let key = (Collection { group, version, plural: plural.into() }, ns.to_string(), name.to_string());
        self.state.lock().unwrap().objects.get(&key).cloned()
    }

    /// Every `events.k8s.io/v1` Event about the named object.
    pub fn events_about(&self, name: &str) -> Vec<Value> {
        let st = self.state.lock().unwrap();
        st.objects
            .iter()
            .filter(|((c, _, _), v)| c.plural == "events" && v["regarding"]["name"] == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Forgets the change history (as etcd compaction does) and ends every open watch:
    /// clients re-watch from their last resourceVersion, get `410 Gone`, and must relist.
    pub fn compact_and_drop_watches(&self) {
        {
            let mut st = self.state.lock().unwrap();
            st.compacted_before = st.rv + 1;
            st.history.clear();
        }
        self.watch_epoch.send_modify(|e| *e += 1);
    }

    /// Answers every request whose `METHOD uri` contains `matching` with `code` (an
    /// injected API failure) until [`FakeApiServer::clear_failures`].
    pub fn fail_requests(&self, matching: &str, code: u16) {
        self.state.lock().unwrap().failures.push((matching.to_string(), code));
    }

    pub fn clear_failures(&self) {
        self.state.lock().unwrap().failures.clear();
    }

    /// Method and path of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    fn record(&self, st: &mut State, collection: &Collection, ns: &str, type_: &'static str, object: Value) {
        let change = Change { rv: st.rv, collection: collection.clone(), namespace: ns.to_string(), type_, object };
        st.history.push(change.clone());
        let _ = self.tx.send(change);
    }

    async fn handle(self, req: Request<kube::client::Body>) -> Response<Body> {
        let method = req.method().clone();
        let line = format!("{method} {}", req.uri());
        let injected = {
            let mut st = self.state.lock().unwrap();
            st.requests.push(line.clone());
            st.failures.iter().find(|(m, _)| line.contains(m.as_str())).map(|(_, c)| *c)
        };
        if let Some(code) = injected {
            let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return status_error(code, "InternalError", format!("injected failure for {line}"));
        }
        let Some(p) = parse(&req) else {
            return status_error(StatusCode::NOT_FOUND, "NotFound", format!("no route for {}", req.uri().path()));
        };
        let content_type =
            req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("application/json").to_string();
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return status_error(StatusCode::BAD_REQUEST, "BadRequest", e.to_string()),
        };
        match (&method, &p.name) {
            (&Method::GET, None) if p.query.get("watch").is_some_and(|w| w == "true" || w == "1") => self.watch(p),
            (&Method::GET, None) => self.list(&p),
            (&Method::GET, Some(name)) => self.get(&p, name),
            (&Method::POST, None) => self.create(&p, &body),
            (&Method::PUT, Some(name)) => self.replace(&p, name, &body),
            (&Method::PATCH, Some(name)) => self.patch(&p, name, &content_type, &body),
            (&Method::DELETE, Some(name)) => self.delete(&p, name),
            _ => status_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", format!("{method} not supported")),
        }
    }

    fn key(p: &Parsed, name: &str) -> Key {
        (p.collection.clone(), p.namespace.clone().unwrap_or_default(), name.to_string())
    }

    fn get(&self, p: &Parsed, name: &str) -> Response<Body> {
        let st = self.state.lock().unwrap();
        match st.objects.get(&Self::key(p, name)) {
            Some(o) => json_response(StatusCode::OK, o),
            None => not_found(p, name),
        }
    }

    fn list(&self, p: &Parsed) -> Response<Body> {
        let st = self.state.lock().unwrap();
        let items: Vec<Value> = st
            .objects
            .iter()
            .filter(|((c, ns, _), v)| {
                *c == p.collection
                    && p.namespace.as_ref().is_none_or(|want| want == ns)
                    && matches_field_selector(v, p.query.get("fieldSelector"))
            })
            .map(|(_, v)| v.clone())
            .collect();
        json_response(
            StatusCode::OK,
            &json!({"kind": format!("{}List", p.collection.kind()), "apiVersion": p.collection.api_version(),
                    "metadata": {"resourceVersion": st.rv.to_string()}, "items": items}),
        )
    }

    fn watch(&self, p: Parsed) -> Response<Body> {
        let since: u64 = p.query.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
        let timeout = Duration::from_secs(p.query.get("timeoutSeconds").and_then(|v| v.parse().ok()).unwrap_or(290));
        let bookmarks = p.query.get("allowWatchBookmarks").is_some_and(|v| v == "true");
        let selector = p.query.get("fieldSelector").cloned();
        let (collection, namespace) = (p.collection.clone(), p.namespace.clone());
        let wanted = move |c: &Change| {
            c.collection == collection
                && namespace.as_ref().is_none_or(|ns| *ns == c.namespace)
                && matches_field_selector(&c.object, selector.as_ref())
        };
        // Subscribe before reading history so nothing falls in between.
        let (rx, backlog, current_rv) = {
            let st = self.state.lock().unwrap();
            if since != 0 && since < st.compacted_before {
                let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Failure", "reason": "Expired", "code": 410,
                    "message": format!("too old resource version: {since} ({})", st.compacted_before)}});
                let mut b = serde_json::to_vec(&gone).unwrap();
                b.push(b'\n');
                return Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(b)).boxed_unsync())
                    .unwrap();
            }
            let rx = self.tx.subscribe();
            let backlog: Vec<Change> = st.history.iter().filter(|c| c.rv > since && wanted(c)).cloned().collect();
            (rx, backlog, st.rv)
        };
        let last_sent = backlog.last().map(|c| c.rv).unwrap_or(since);
        let line = |v: Value| -> Result<Frame<Bytes>, Infallible> {
            let mut b = serde_json::to_vec(&v).unwrap();
            b.push(b'\n');
            Ok(Frame::data(Bytes::from(b)))
        };
        let mut initial: Vec<Result<Frame<Bytes>, Infallible>> =
            backlog.into_iter().map(|c| line(json!({"type": c.type_, "object": c.object}))).collect();
        if bookmarks {
            initial.push(line(json!({"type": "BOOKMARK", "object": {
                "kind": p.collection.kind(), "apiVersion": p.collection.api_version(),
                "metadata": {"resourceVersion": current_rv.to_string()}}})));
        }
        let live = tokio_stream_from(rx)
            .filter(move |c| futures::future::ready(c.rv > last_sent && wanted(c)))
            .map(move |c| line(json!({"type": c.type_, "object": c.object})));
        let mut epoch = self.watch_epoch.subscribe();
        let dropped = async move {
            let _ = epoch.changed().await;
        };
        let stream = futures::stream::iter(initial)
            .chain(live)
            .take_until(tokio::time::sleep(timeout))
            .take_until(dropped);
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(StreamBody::new(stream).boxed_unsync())
            .unwrap()
    }

    fn create(&self, p: &Parsed, body: &[u8]) -> Response<Body> {
        let mut obj: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return status_error(StatusCode::BAD_REQUEST, "BadRequest", e.to_string()),
        };
        let mut st = self.state.lock().unwrap();
        let name = match obj["metadata"]["name"].as_str() {
            Some(n) => n.to_string(),
            None => match obj["metadata"]["generateName"].as_str() {
                Some(g) => format!("{g}{}", st.uid + 1),
                None => return status_error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", "metadata.name is required".into()),
            },
        };
        let ns = p.namespace.clone().unwrap_or_default();
        let key = (p.collection.clone(), ns.clone(), name.clone());
        if st.objects.contains_key(&key) {
            return status_error(StatusCode::CONFLICT, "AlreadyExists", format!("{} \"{name}\" already exists", p.collection.plural));
        }
        st.rv += 1;
        st.uid += 1;
        let meta = obj["metadata"].as_object_mut().unwrap();
        meta.insert("name".into(), json!(name));
        meta.insert("namespace".into(), json!(ns));
        meta.insert("uid".into(), json!(format!("00000000-0000-0000-0000-{:012}", st.uid)));
        meta.insert("creationTimestamp".into(), json!(now()));
        meta.insert("resourceVersion".into(), json!(st.rv.to_string()));
        meta.insert("generation".into(), json!(1));
        if p.collection.has_status_subresource() {
            obj.as_object_mut().unwrap().remove("status");
        }
        st.objects.insert(key, obj.clone());
        self.record(&mut st, &p.collection, &ns, "ADDED", obj.clone());
        json_response(StatusCode::CREATED, &obj)
    }

    /// Stores `next` as the new version of `key` (whose current value is `old`), applying
    /// the subresource and metadata rules. Returns the response.
    fn commit(&self, st: &mut State, p: &Parsed, old: &Value, mut next: Value) -> Response<Body> {
        let name = old["metadata"]["name"].as_str().unwrap().to_string();
        let ns = p.namespace.clone().unwrap_or_default();
        // Optimistic concurrency: a write carrying a resourceVersion must carry the current one.
        if let Some(rv) = next["metadata"]["resourceVersion"].as_str() {
            if rv != old["metadata"]["resourceVersion"] {
                return status_error(
                    StatusCode::CONFLICT,
                    "Conflict",
                    format!("Operation cannot be fulfilled on {} \"{name}\": the object has been modified", p.collection.plural),
                );
            }
        }
        let status_only = p.subresource.as_deref() == Some("status");
        if p.collection.has_status_subresource() {
            if status_only {
                let status = next.get("status").cloned();
                next = old.clone();
                match status {
                    Some(s) => next["status"] = s,
                    None => {
                        next.as_object_mut().unwrap().remove("status");
                    }
                }
            } else {
                match old.get("status") {
                    Some(s) => next["status"] = s.clone(),
                    None => {
                        next.as_object_mut().unwrap().remove("status");
                    }
                }
            }
        }
        // Immutable metadata.
        for k in ["name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "generation", "resourceVersion"] {
            match old["metadata"].get(k) {
                Some(v) => next["metadata"][k] = v.clone(),
                None => {
                    if let Some(m) = next["metadata"].as_object_mut() {
                        m.remove(k);
                    }
                }
            }
        }
        if next == *old {
            return json_response(StatusCode::OK, old);
        }
        st.rv += 1;
        if spec_part(&next) != spec_part(old) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            next["metadata"]["generation"] = json!(g);
        }
        next["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        let key = (p.collection.clone(), ns.clone(), name);
        let deleting = next["metadata"].get("deletionTimestamp").is_some();
        let no_finalizers = next["metadata"]["finalizers"].as_array().is_none_or(|f| f.is_empty());
        if deleting && no_finalizers {
            st.objects.remove(&key);
            self.record(st, &p.collection, &ns, "DELETED", next.clone());
        } else {
            st.objects.insert(key, next.clone());
            self.record(st, &p.collection, &ns, "MODIFIED", next.clone());
        }
        json_response(StatusCode::OK, &next)
    }

    fn replace(&self, p: &Parsed, name: &str, body: &[u8]) -> Response<Body> {
        let next: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return status_error(StatusCode::BAD_REQUEST, "BadRequest", e.to_string()),
        };
        let mut st = self.state.lock().unwrap();
        let Some(old) = st.objects.get(&Self::key(p, name)).cloned() else { return not_found(p, name) };
        self.commit(&mut st, p, &old, next)
    }

    fn patch(&self, p: &Parsed, name: &str, content_type: &str, body: &[u8]) -> Response<Body> {
        let mut st = self.state.lock().unwrap();
        let existing = st.objects.get(&Self::key(p, name)).cloned();
        let is_apply = content_type.starts_with("application/apply-patch");
        let applied_key = (Self::key(p, name), p.query.get("fieldManager").cloned().unwrap_or_default(), p.subresource.is_some());
        let old = match existing {
            Some(o) => o,
            None if is_apply => {
                // Server-side apply creates missing objects.
                let v: Value = match serde_yaml_ng::from_slice(body) {
                    Ok(v) => v,
                    Err(e) => return status_error(StatusCode::BAD_REQUEST, "BadRequest", e.to_string()),
                };
                st.applied.insert(applied_key, v.clone());
                drop(st);
                return self.create(p, &serde_json::to_vec(&v).unwrap());
            }
            None => return not_found(p, name),
        };
        let mut next = old.clone();
        if content_type.starts_with("application/json-patch+json") {
            let mut raw: Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return status_error(StatusCode::BAD_REQUEST, "BadRequest", e.to_string()),
            };
            // Kubernetes' JSON patch treats a missing path as null for `test`.
            if let Some(ops) = raw.as_array_mut() {
                ops.retain(|op| {
                    !(op["op"] == "test" && op["value"].is_null() && op["path"].as_str().is_some_and(|p| next.pointer(p).is_none()))
                });
            }
            let ops: json_patch::Patch = match serde_json::from_value(raw) {
                Ok(v) => v,
                Err(e) => return status_error(StatusCode::BAD_REQUEST, "BadRequest", e.to_string()),
            };
            if let Err(e) = json_patch::patch(&mut next, &ops) {
                return status_error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", format!("the JSON patch failed: {e}"));
            }
            // A JSON patch's resourceVersion check is its `test` op, not a precondition.
            if next["metadata"]["resourceVersion"] == old["metadata"]["resourceVersion"] {
                if let Some(m) = next["metadata"].as_object_mut() {
                    m.remove("resourceVersion");
                }
            }
        } else {
            // merge, strategic-merge and apply: merge semantics.
            let patch: Value = if is_apply {
                serde_yaml_ng::from_slice(body).unwrap_or(Value::Null)
            } else {
                serde_json::from_slice(body).unwrap_or(Value::Null)
            };
            if !patch.is_object() {
                return status_error(StatusCode::BAD_REQUEST, "BadRequest", "the patch is not a JSON object".into());
            }
            // A resourceVersion in a merge patch is a precondition, checked by commit().
            if patch["metadata"].get("resourceVersion").is_none() {
                if let Some(m) = next["metadata"].as_object_mut() {
                    m.remove("resourceVersion");
                }
            }
            if is_apply {
                // Fields this manager applied before and leaves out now are removed.
                if let Some(before) = st.applied.insert(applied_key, patch.clone()) {
                    remove_dropped(&mut next, &before, &patch);
                }
            }
            json_patch::merge(&mut next, &patch);
        }
        self.commit(&mut st, p, &old, next)
    }

    fn delete(&self, p: &Parsed, name: &str) -> Response<Body> {
        let mut st = self.state.lock().unwrap();
        let key = Self::key(p, name);
        let Some(old) = st.objects.get(&key).cloned() else { return not_found(p, name) };
        let ns = p.namespace.clone().unwrap_or_default();
        let has_finalizers = old["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if old["metadata"].get("deletionTimestamp").is_some() {
                return json_response(StatusCode::ACCEPTED, &old);
            }
            let mut next = old.clone();
            st.rv += 1;
            next["metadata"]["deletionTimestamp"] = json!(now());
            next["metadata"]["resourceVersion"] = json!(st.rv.to_string());
            st.objects.insert(key, next.clone());
            self.record(&mut st, &p.collection, &ns, "MODIFIED", next.clone());
            json_response(StatusCode::ACCEPTED, &next)
        } else {
            st.rv += 1;
            st.objects.remove(&key);
            let mut gone = old.clone();
            gone["metadata"]["resourceVersion"] = json!(st.rv.to_string());
            self.record(&mut st, &p.collection, &ns, "DELETED", gone.clone());
            json_response(StatusCode::OK, &gone)
        }
    }
}

/// Removes from `target` the fields present in `before` and absent from `now` (server-side
/// apply by one manager; lists are atomic).
fn remove_dropped(target: &mut Value, before: &Value, now: &Value) {
    let (Some(b), Some(t)) = (before.as_object(), target.as_object_mut()) else { return };
    for (k, bv) in b {
        match now.get(k) {
            None => {
                t.remove(k);
            }
            Some(nv) if bv.is_object() && nv.is_object() => {
                if let Some(tv) = t.get_mut(k) {
                    remove_dropped(tv, bv, nv);
                }
            }
            Some(_) => {}
        }
    }
}

fn not_found(p: &Parsed, name: &str) -> Response<Body> {
    status_error(StatusCode::NOT_FOUND, "NotFound", format!("{} \"{name}\" not found", p.collection.plural))
}

fn tokio_stream_from(rx: broadcast::Receiver<Change>) -> impl futures::Stream<Item = Change> + Send {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(c) => return Some((c, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

impl tower::Service<Request<kube::client::Body>> for FakeApiServer {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<kube::client::Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

impl FakeApiServer {
    /// Serves this fake over plain HTTP on 127.0.0.1 (for a process of its own, e.g. the
    /// `miroir` binary given a kubeconfig naming this address). Returns the base URL.
    pub async fn serve_http(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let this = self.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let this = this.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
                let req = Request::from_parts(parts, kube::client::Body::from(bytes.to_vec()));
                let (parts, body) = this.handle(req).await.into_parts();
                axum::response::Response::from_parts(parts, axum::body::Body::new(body))
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    /// A kubeconfig file (in `dir`) whose current context is this fake served over HTTP,
    /// with `namespace` as its default namespace.
    pub async fn kubeconfig(&self, dir: &std::path::Path, namespace: &str) -> std::path::PathBuf {
        let url = self.serve_http().await;
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {namespace}\ncurrent-context: fake\nusers:\n- name: fake\n  user:\n    token: fake-token\n"
        );
        let path = dir.join("kubeconfig");
        std::fs::write(&path, text).unwrap();
        path
    }
}

//! `/indexes/{uid}/settings` and its per-setting routes: broadcast to every node, with
//! Miroir's node settings (`_miroir_shard` filterable, the node-side facet limit) kept and
//! never shown.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::{accepted, pass, JsonBody, RouteParams};
use crate::dataplane::settings as node_settings;
use crate::dataplane::tasks::store_error;
use crate::dataplane::Proxy;
use crate::error::ApiResult;
use crate::model::{IndexUid, SettingRoute};
use crate::node::NodePath;

/// The client-visible `maxValuesPerFacet` of an index, when Miroir keeps it apart from the
/// nodes' value.
async fn client_max_values_per_facet(proxy: &Proxy, uid: &IndexUid) -> ApiResult<Option<u64>> {
    let overlay = proxy.store().get_index_settings(uid.as_str()).await.map_err(store_error)?;
    Ok(overlay.as_ref().and_then(node_settings::overlay_max))
}

/// Records the client-visible facet limit after a successful `faceting` update.
async fn record_faceting(proxy: &Proxy, uid: &IndexUid, client_faceting: &Value) -> ApiResult<()> {
    let previous = client_max_values_per_facet(proxy, uid).await?.unwrap_or(node_settings::DEFAULT_MAX_VALUES_PER_FACET);
    let next = node_settings::client_max_after(previous, client_faceting);
    proxy.store().put_index_settings(uid.as_str(), &node_settings::overlay(next)).await.map_err(store_error)
}

pub async fn get_all(State(proxy): State<Proxy>, params: RouteParams) -> ApiResult<Response> {
    let uid = params.index_uid()?;
    let routing = proxy.routing_or_error()?;
    let mut r = proxy.read_any(&routing, Method::GET, &NodePath::index(&uid).then("settings"), None).await?;
    if r.is_success() {
        node_settings::to_client_settings(&mut r.body, client_max_values_per_facet(&proxy, &uid).await?);
    }
    pass(r)
}

/// Broadcasts a settings change; `client_faceting` is the client's `faceting` value when the
/// change touches it (recorded in the task details and the overlay).
async fn settings_write(proxy: &Proxy, uid: &IndexUid, method: Method, path: NodePath, node_body: Option<&Value>, client_faceting: Option<Value>) -> ApiResult<Response> {
    let details = match &client_faceting {
        Some(f) => json!({"faceting": f}),
        None => json!({}),
    };
    let ack = proxy.broadcast_write(method, &path, node_body, Some(uid), details).await?;
    if let Some(f) = client_faceting {
        record_faceting(proxy, uid, &f).await?;
        // The overlay is part of the context too (`broadcast_write` bumped before it changed).
        proxy.index_context_changed(Some(uid.as_str())).await;
    }
    Ok(accepted(ack))
}

pub async fn update_all(State(proxy): State<Proxy>, params: RouteParams, method: Method, JsonBody(mut body): JsonBody) -> ApiResult<Response> {
    let uid = params.index_uid()?;
    let mut client_faceting = None;
    if let Some(obj) = body.as_object_mut() {
        client_faceting = obj.get("faceting").cloned();
        node_settings::to_node_settings(obj);
    }
    settings_write(&proxy, &uid, method, NodePath::index(&uid).then("settings"), Some(&body), client_faceting).await
}

pub async fn reset_all(State(proxy): State<Proxy>, params: RouteParams) -> ApiResult<Response> {
    let uid = params.index_uid()?;
    // A reset must keep Miroir's node settings: reset everything with one PATCH that also
    // re-sets them, so every node's queue applies it as one task.
    let mut body = Map::new();
    for k in RESETTABLE_SETTINGS {
        body.insert(k.to_string(), Value::Null);
    }
    body.insert("filterableAttributes".into(), Value::Null);
    node_settings::to_node_settings(&mut body);
    settings_write(&proxy, &uid, Method::PATCH, NodePath::index(&uid).then("settings"), Some(&Value::Object(body)), Some(Value::Null)).await
}

const RESETTABLE_SETTINGS: &[&str] = &[
    "displayedAttributes",
    "searchableAttributes",
    "sortableAttributes",
    "rankingRules",
    "stopWords",
    "nonSeparatorTokens",
    "separatorTokens",
    "dictionary",
    "synonyms",
    "distinctAttribute",
    "proximityPrecision",
    "typoTolerance",
    "faceting",
    "pagination",
    "searchCutoffMs",
    "localizedAttributes",
    "facetSearch",
    "prefixSearch",
];

pub async fn get_one(State(proxy): State<Proxy>, params: RouteParams) -> ApiResult<Response> {
    let setting = params.setting()?;
    let uid = params.index_uid()?;
    let routing = proxy.routing_or_error()?;
    let mut r = proxy.read_any(&routing, Method::GET, &NodePath::index(&uid).setting(setting), None).await?;
    if r.is_success() {
        match setting {
            SettingRoute::FilterableAttributes => node_settings::hide_filterable_list(&mut r.body),
            SettingRoute::Faceting => node_settings::to_client_faceting(&mut r.body, client_max_values_per_facet(&proxy, &uid).await?),
            _ => {}
        }
    }
    pass(r)
}

pub async fn update_one(State(proxy): State<Proxy>, params: RouteParams, method: Method, JsonBody(body): JsonBody) -> ApiResult<Response> {
    let setting = params.setting()?;
    if method != setting.update_method() {
        // Each setting has one update verb on Meilisearch; the other is not routed there.
        return Ok(axum::http::StatusCode::METHOD_NOT_ALLOWED.into_response());
    }
    let uid = params.index_uid()?;
    let path = NodePath::index(&uid).setting(setting);
    match setting {
        SettingRoute::FilterableAttributes => {
            let node_body = node_settings::node_filterable(Some(&body));
            settings_write(&proxy, &uid, method, path, Some(&node_body), None).await
        }
        SettingRoute::Faceting => {
            let node_body = node_settings::node_faceting(&body);
            settings_write(&proxy, &uid, method, path, Some(&node_body), Some(body)).await
        }
        _ => settings_write(&proxy, &uid, method, path, Some(&body), None).await,
    }
}

pub async fn reset_one(State(proxy): State<Proxy>, params: RouteParams) -> ApiResult<Response> {
    let setting = params.setting()?;
    let uid = params.index_uid()?;
    let path = NodePath::index(&uid).setting(setting);
    match setting {
        // Resets that must keep Miroir's node settings are sent as updates.
        SettingRoute::FilterableAttributes => {
            let body = node_settings::node_filterable(None);
            settings_write(&proxy, &uid, Method::PUT, path, Some(&body), None).await
        }
        SettingRoute::Faceting => {
            let body = node_settings::node_faceting(&Value::Null);
            settings_write(&proxy, &uid, Method::PATCH, path, Some(&body), Some(Value::Null)).await
        }
        _ => settings_write(&proxy, &uid, Method::DELETE, path, None, None).await,
    }
}

//! Index settings as the client sees them vs. as the nodes hold them. Nodes get two changes:
//! `_miroir_shard` is always filterable (covering-set sub-queries filter on it), and
//! `faceting.maxValuesPerFacet` is at least [`NODE_MAX_VALUES_PER_FACET`] (a node truncates
//! each facet before Miroir sums the nodes' counts, so a small node-side limit would make
//! count-sorted facets wrong). The client-visible `maxValuesPerFacet` is kept in the task
//! store's index-settings overlay; clients never see either change.

use serde_json::{json, Map, Value};

use super::merge::{NODE_MAX_VALUES_PER_FACET_FLOOR, SHARD_FIELD, RESERVED_PREFIX};

/// Meilisearch's default `faceting.maxValuesPerFacet`.
pub const DEFAULT_MAX_VALUES_PER_FACET: u64 = 100;
/// The least `faceting.maxValuesPerFacet` Miroir configures on the nodes.
pub const NODE_MAX_VALUES_PER_FACET: u64 = NODE_MAX_VALUES_PER_FACET_FLOOR as u64;

/// Adds Miroir's attribute to a client-given `filterableAttributes` value (`null` = reset).
pub fn node_filterable(v: Option<&Value>) -> Value {
    let mut list = match v {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    if !list.iter().any(|x| x.as_str() == Some(SHARD_FIELD)) {
        list.push(json!(SHARD_FIELD));
    }
    Value::Array(list)
}

fn is_internal_filterable(v: &Value) -> bool {
    match v {
        Value::String(s) => s.starts_with(RESERVED_PREFIX),
        Value::Object(o) => o
            .get("attributePatterns")
            .and_then(Value::as_array)
            .map(|p| p.iter().all(|x| x.as_str().is_some_and(|s| s.starts_with(RESERVED_PREFIX))))
            .unwrap_or(false),
        _ => false,
    }
}

/// Hides Miroir's attribute from a `filterableAttributes` list.
pub fn hide_filterable_list(v: &mut Value) {
    if let Value::Array(a) = v {
        a.retain(|x| !is_internal_filterable(x));
    }
}

/// The node-side `faceting` value for a client-given one (`null` = reset). Values the node
/// would reject are passed unchanged so the node's own error reaches the client.
pub fn node_faceting(client: &Value) -> Value {
    match client {
        Value::Null => json!({"maxValuesPerFacet": NODE_MAX_VALUES_PER_FACET, "sortFacetValuesBy": {"*": "alpha"}}),
        Value::Object(o) => {
            let mut o = o.clone();
            match o.get("maxValuesPerFacet") {
                Some(Value::Null) => {
                    o.insert("maxValuesPerFacet".into(), json!(NODE_MAX_VALUES_PER_FACET));
                }
                Some(Value::Number(n)) => {
                    if let Some(n) = n.as_u64() {
                        o.insert("maxValuesPerFacet".into(), json!(n.max(NODE_MAX_VALUES_PER_FACET)));
                    }
                }
                _ => {}
            }
            Value::Object(o)
        }
        other => other.clone(),
    }
}

/// The client-visible `maxValuesPerFacet` after a client's `faceting` update.
pub fn client_max_after(previous: u64, client: &Value) -> u64 {
    match client {
        Value::Null => DEFAULT_MAX_VALUES_PER_FACET,
        Value::Object(o) => match o.get("maxValuesPerFacet") {
            Some(Value::Null) => DEFAULT_MAX_VALUES_PER_FACET,
            Some(v) => v.as_u64().unwrap_or(previous),
            None => previous,
        },
        _ => previous,
    }
}

/// A client's whole-settings body, rewritten for the nodes.
pub fn to_node_settings(body: &mut Map<String, Value>) {
    if body.contains_key("filterableAttributes") {
        let v = node_filterable(body.get("filterableAttributes"));
        body.insert("filterableAttributes".into(), v);
    }
    if let Some(f) = body.get("faceting") {
        let v = node_faceting(f);
        body.insert("faceting".into(), v);
    }
}

/// A node's settings object (or `faceting` value), rewritten for the client.
pub fn to_client_faceting(faceting: &mut Value, client_max: Option<u64>) {
    if let (Some(max), Some(o)) = (client_max, faceting.as_object_mut()) {
        o.insert("maxValuesPerFacet".into(), json!(max));
    }
}

pub fn to_client_settings(settings: &mut Value, client_max: Option<u64>) {
    if let Some(fa) = settings.get_mut("filterableAttributes") {
        hide_filterable_list(fa);
    }
    if let Some(f) = settings.get_mut("faceting") {
        to_client_faceting(f, client_max);
    }
}

/// The settings a brand-new index gets on the nodes.
pub fn initial_node_settings() -> Value {
    json!({"filterableAttributes": [SHARD_FIELD], "faceting": {"maxValuesPerFacet": NODE_MAX_VALUES_PER_FACET}})
}

/// The overlay stored for an index whose client-visible `maxValuesPerFacet` is `max`.
pub fn overlay(max: u64) -> Value {
    json!({"faceting": {"maxValuesPerFacet": max}})
}

pub fn overlay_max(overlay: &Value) -> Option<u64> {
    overlay.pointer("/faceting/maxValuesPerFacet").and_then(Value::as_u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_get_at_least_the_floor_clients_keep_their_value() {
        assert_eq!(node_faceting(&json!({"maxValuesPerFacet": 2, "sortFacetValuesBy": {"*": "count"}})),
                   json!({"maxValuesPerFacet": 1000, "sortFacetValuesBy": {"*": "count"}}));
        assert_eq!(node_faceting(&json!({"maxValuesPerFacet": 5000})), json!({"maxValuesPerFacet": 5000}));
        assert_eq!(node_faceting(&json!({"maxValuesPerFacet": "x"})), json!({"maxValuesPerFacet": "x"}));
        assert_eq!(node_faceting(&Value::Null)["maxValuesPerFacet"], 1000);
        assert_eq!(client_max_after(7, &json!({"maxValuesPerFacet": 2})), 2);
        assert_eq!(client_max_after(7, &json!({"sortFacetValuesBy": {"*": "count"}})), 7);
        assert_eq!(client_max_after(7, &Value::Null), 100);
        assert_eq!(client_max_after(7, &json!({"maxValuesPerFacet": null})), 100);
        let mut s = json!({"filterableAttributes": ["genre", SHARD_FIELD], "faceting": {"maxValuesPerFacet": 1000, "sortFacetValuesBy": {"*": "alpha"}}});
        to_client_settings(&mut s, Some(2));
        assert_eq!(s, json!({"filterableAttributes": ["genre"], "faceting": {"maxValuesPerFacet": 2, "sortFacetValuesBy": {"*": "alpha"}}}));
    }

    #[test]
    fn filterable_is_added_once_and_hidden() {
        assert_eq!(node_filterable(Some(&json!(["genre"]))), json!(["genre", SHARD_FIELD]));
        assert_eq!(node_filterable(Some(&json!(["genre", SHARD_FIELD]))), json!(["genre", SHARD_FIELD]));
        assert_eq!(node_filterable(None), json!([SHARD_FIELD]));
        let mut a = json!(["genre", SHARD_FIELD, {"attributePatterns": [SHARD_FIELD]}]);
        hide_filterable_list(&mut a);
        assert_eq!(a, json!(["genre"]));
    }
}

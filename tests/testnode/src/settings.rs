//! Index settings: defaults (as a fresh Meilisearch index answers `GET /settings`), partial
//! updates with Meilisearch's validation, and the `settingsUpdate` task details.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::error::{ApiError, Code};
use miroir::error::describe_kind as describe;

/// Every field a settings PATCH accepts, in Meilisearch's order (also the order of the
/// `Unknown field` error and of task details).
pub const ACCEPTED_FIELDS: [&str; 22] = [
    "displayedAttributes",
    "searchableAttributes",
    "filterableAttributes",
    "sortableAttributes",
    "foreignKeys",
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
    "embedders",
    "searchCutoffMs",
    "localizedAttributes",
    "facetSearch",
    "prefixSearch",
    "chat",
];

/// `(route name, field, uses PATCH rather than PUT)` for `/indexes/{uid}/settings/{route}`.
pub const SUB_ROUTES: [(&str, &str, bool); 20] = [
    ("displayed-attributes", "displayedAttributes", false),
    ("searchable-attributes", "searchableAttributes", false),
    ("filterable-attributes", "filterableAttributes", false),
    ("sortable-attributes", "sortableAttributes", false),
    ("ranking-rules", "rankingRules", false),
    ("stop-words", "stopWords", false),
    ("non-separator-tokens", "nonSeparatorTokens", false),
    ("separator-tokens", "separatorTokens", false),
    ("dictionary", "dictionary", false),
    ("synonyms", "synonyms", false),
    ("distinct-attribute", "distinctAttribute", false),
    ("proximity-precision", "proximityPrecision", false),
    ("typo-tolerance", "typoTolerance", true),
    ("faceting", "faceting", true),
    ("pagination", "pagination", true),
    ("embedders", "embedders", true),
    ("search-cutoff-ms", "searchCutoffMs", false),
    ("localized-attributes", "localizedAttributes", false),
    ("facet-search", "facetSearch", false),
    ("prefix-search", "prefixSearch", false),
];

/// The settings of a fresh index, exactly as `GET /indexes/{uid}/settings` answers.
pub fn defaults() -> Value {
    json!({
        "displayedAttributes": ["*"],
        "searchableAttributes": ["*"],
        "filterableAttributes": [],
        "sortableAttributes": [],
        "rankingRules": ["words", "typo", "proximity", "attributeRank", "sort", "wordPosition", "exactness"],
        "stopWords": [],
        "nonSeparatorTokens": [],
        "separatorTokens": [],
        "dictionary": [],
        "synonyms": {},
        "distinctAttribute": null,
        "proximityPrecision": "byWord",
        "typoTolerance": default_of("typoTolerance"),
        "faceting": default_of("faceting"),
        "pagination": default_of("pagination"),
        "embedders": {},
        "searchCutoffMs": null,
        "localizedAttributes": null,
        "facetSearch": true,
        "prefixSearch": "indexingTime"
    })
}

fn default_of(field: &str) -> Value {
    match field {
        "typoTolerance" => json!({
            "enabled": true,
            "minWordSizeForTypos": {"oneTypo": 5, "twoTypos": 9},
            "disableOnWords": [],
            "disableOnAttributes": [],
            "disableOnNumbers": false
        }),
        "faceting" => json!({"maxValuesPerFacet": 100, "sortFacetValuesBy": {"*": "alpha"}}),
        "pagination" => json!({"maxTotalHits": 1000}),
        "rankingRules" => json!(["words", "typo", "proximity", "attributeRank", "sort", "wordPosition", "exactness"]),
        "displayedAttributes" | "searchableAttributes" => json!(["*"]),
        "filterableAttributes" | "sortableAttributes" | "stopWords" | "nonSeparatorTokens" | "separatorTokens"
        | "dictionary" => json!([]),
        "synonyms" | "embedders" => json!({}),
        "proximityPrecision" => json!("byWord"),
        "facetSearch" => json!(true),
        "prefixSearch" => json!("indexingTime"),
        _ => Value::Null,
    }
}

fn code_for(field: &str) -> Code {
    match field {
        "displayedAttributes" => Code::InvalidSettingsDisplayedAttributes,
        "searchableAttributes" => Code::InvalidSettingsSearchableAttributes,
        "filterableAttributes" => Code::InvalidSettingsFilterableAttributes,
        "sortableAttributes" => Code::InvalidSettingsSortableAttributes,
        "rankingRules" => Code::InvalidSettingsRankingRules,
        "stopWords" => Code::InvalidSettingsStopWords,
        "nonSeparatorTokens" => Code::InvalidSettingsNonSeparatorTokens,
        "separatorTokens" => Code::InvalidSettingsSeparatorTokens,
        "dictionary" => Code::InvalidSettingsDictionary,
        "synonyms" => Code::InvalidSettingsSynonyms,
        "distinctAttribute" => Code::InvalidSettingsDistinctAttribute,
        "proximityPrecision" => Code::InvalidSettingsProximityPrecision,
        "typoTolerance" => Code::InvalidSettingsTypoTolerance,
        "faceting" => Code::InvalidSettingsFaceting,
        "pagination" => Code::InvalidSettingsPagination,
        "embedders" => Code::InvalidSettingsEmbedders,
        "searchCutoffMs" => Code::InvalidSettingsSearchCutoffMs,
        "localizedAttributes" => Code::InvalidSettingsLocalizedAttributes,
        "facetSearch" => Code::InvalidSettingsFacetSearch,
        "prefixSearch" => Code::InvalidSettingsPrefixSearch,
        _ => Code::BadRequest,
    }
}


fn type_error(field: &str, path: &str, expected: &str, found: &Value) -> ApiError {
    ApiError::new(
        code_for(field),
        format!("Invalid value type at `{path}`: expected {expected}, but found {}: `{found}`", describe(found)),
    )
}

fn string_list(field: &str, v: &Value) -> Result<Vec<String>, ApiError> {
    let path = format!(".{field}");
    let arr = v.as_array().ok_or_else(|| type_error(field, &path, "an array", v))?;
    arr.iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_str().map(str::to_string).ok_or_else(|| type_error(field, &format!("{path}[{i}]"), "a string", x))
        })
        .collect()
}

fn sorted_set(list: Vec<String>) -> Value {
    Value::Array(list.into_iter().collect::<BTreeSet<_>>().into_iter().map(Value::String).collect())
}

fn star_or_list(list: Vec<String>) -> Value {
    if list.iter().any(|s| s == "*") {
        json!(["*"])
    } else {
        json!(list)
    }
}

fn valid_ranking_rule(r: &str) -> bool {
    matches!(r, "words" | "typo" | "proximity" | "attribute" | "attributeRank" | "wordPosition" | "sort" | "exactness")
        || r.strip_suffix(":asc").or_else(|| r.strip_suffix(":desc")).is_some_and(|f| !f.is_empty())
}

fn unknown_field_inside(field: &str, key: &str, expected: &[&str]) -> ApiError {
    ApiError::new(
        code_for(field),
        format!(
            "Unknown field `{key}` inside `.{field}`: expected one of {}",
            expected.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ")
        ),
    )
}

/// Validates and normalises one setting's new value (non-null); returns the value to store.
/// For nested objects (`typoTolerance`, `faceting`, `pagination`) the stored value is the
/// merge of `current` and the given sub-fields.
fn normalize(field: &str, v: &Value, current: &Value) -> Result<Value, ApiError> {
    let path = format!(".{field}");
    Ok(match field {
        "displayedAttributes" | "searchableAttributes" => star_or_list(string_list(field, v)?),
        "sortableAttributes" | "stopWords" | "nonSeparatorTokens" | "separatorTokens" | "dictionary" => {
            sorted_set(string_list(field, v)?)
        }
        "filterableAttributes" => {
            let arr = v.as_array().ok_or_else(|| type_error(field, &path, "an array", v))?;
            for (i, x) in arr.iter().enumerate() {
                match x {
                    Value::String(_) => {}
                    Value::Object(o) => {
                        if !o.get("attributePatterns").is_some_and(Value::is_array) {
                            return Err(ApiError::new(
                                code_for(field),
                                format!("Missing field `attributePatterns` inside `.filterableAttributes[{i}]`"),
                            ));
                        }
                    }
                    other => return Err(type_error(field, &format!("{path}[{i}]"), "a string or an object", other)),
                }
            }
            v.clone()
        }
        "rankingRules" => {
            let list = string_list(field, v)?;
            for (i, r) in list.iter().enumerate() {
                if !valid_ranking_rule(r) {
                    return Err(ApiError::new(
                        code_for(field),
                        format!("Invalid value at `.rankingRules[{i}]`: `{r}` ranking rule is invalid. Valid ranking rules are words, typo, sort, proximity, attribute, exactness and custom ranking rules."),
                    ));
                }
            }
            json!(list)
        }
        "synonyms" => {
            let obj = v.as_object().ok_or_else(|| type_error(field, &path, "an object", v))?;
            let mut keys: Vec<&String> = obj.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                let list = string_list(field, &obj[k.as_str()]).map_err(|_| {
                    type_error(field, &format!("{path}.{k}"), "an array", &obj[k.as_str()])
                })?;
                out.insert(k.clone(), sorted_set(list));
            }
            Value::Object(out)
        }
        "distinctAttribute" => {
            v.as_str().ok_or_else(|| type_error(field, &path, "a string", v))?;
            v.clone()
        }
        "proximityPrecision" => match v.as_str() {
            Some("byWord") | Some("byAttribute") => v.clone(),
            Some(other) => {
                return Err(ApiError::new(
                    code_for(field),
                    format!("Unknown value `{other}` at `.proximityPrecision`: expected one of `byWord`, `byAttribute`"),
                ))
            }
            None => return Err(type_error(field, &path, "a string", v)),
        },
        "prefixSearch" => match v.as_str() {
            Some("indexingTime") | Some("disabled") => v.clone(),
            Some(other) => {
                return Err(ApiError::new(
                    code_for(field),
                    format!("Unknown value `{other}` at `.prefixSearch`: expected one of `indexingTime`, `disabled`"),
                ))
            }
            None => return Err(type_error(field, &path, "a string", v)),
        },
        "facetSearch" => {
            v.as_bool().ok_or_else(|| type_error(field, &path, "a boolean", v))?;
            v.clone()
        }
        "searchCutoffMs" => {
            v.as_u64().ok_or_else(|| type_error(field, &path, "a positive integer", v))?;
            v.clone()
        }
        "localizedAttributes" => {
            v.as_array().ok_or_else(|| type_error(field, &path, "an array", v))?;
            v.clone()
        }
        "embedders" => embedders(v, current)?,
        "typoTolerance" | "faceting" | "pagination" => merge_nested(field, v, current)?,
        _ => return Err(ApiError::not_implemented(&format!("the `{field}` setting in the test node"))),
    })
}

/// `embedders`: a PATCH of embedders by name (`null` removes one), each embedder's fields
/// merged into what it had. Only `userProvided` embedders (`source`, `dimensions`) are
/// implemented; Meilisearch shows them as `{"source": "userProvided", "dimensions": n}`, in
/// name order.
fn embedders(v: &Value, current: &Value) -> Result<Value, ApiError> {
    const FIELD: &str = "embedders";
    let obj = v.as_object().ok_or_else(|| type_error(FIELD, ".embedders", "an object", v))?;
    let mut out = current.as_object().cloned().unwrap_or_default();
    for (name, conf) in obj {
        if conf.is_null() {
            out.shift_remove(name);
            continue;
        }
        let path = format!(".embedders.{name}");
        let given = conf.as_object().ok_or_else(|| type_error(FIELD, &path, "an object", conf))?;
        let mut merged = out.get(name).and_then(Value::as_object).cloned().unwrap_or_default();
        for (k, val) in given {
            match (k.as_str(), val) {
                ("source", Value::String(src)) if src == "userProvided" => {}
                ("source", _) => return Err(ApiError::not_implemented("Embedder sources other than `userProvided` in the test node")),
                ("dimensions", _) => {
                    let n = val.as_u64().ok_or_else(|| type_error(FIELD, &format!("{path}.dimensions"), "a positive integer", val))?;
                    if n == 0 {
                        return Err(ApiError::new(Code::InvalidSettingsEmbedders, format!("`.embedders.{name}.dimensions`: `dimensions` cannot be zero")));
                    }
                }
                (other, _) => return Err(ApiError::not_implemented(&format!("The `{other}` embedder setting in the test node"))),
            }
            merged.insert(k.clone(), val.clone());
        }
        let dimensions = merged.get("dimensions").cloned();
        if merged.get("source") != Some(&json!("userProvided")) || dimensions.is_none() {
            return Err(ApiError::not_implemented("An embedder without `source: userProvided` and `dimensions` in the test node"));
        }
        out.insert(name.clone(), json!({"source": "userProvided", "dimensions": dimensions}));
    }
    out.sort_keys();
    Ok(Value::Object(out))
}

fn merge_nested(field: &str, v: &Value, current: &Value) -> Result<Value, ApiError> {
    let path = format!(".{field}");
    let given = v.as_object().ok_or_else(|| type_error(field, &path, "an object", v))?;
    let mut out = current.as_object().cloned().unwrap_or_default();
    let defaults = default_of(field);
    let expected: &[&str] = match field {
        "typoTolerance" => &["enabled", "minWordSizeForTypos", "disableOnWords", "disableOnAttributes", "disableOnNumbers"],
        "faceting" => &["maxValuesPerFacet", "sortFacetValuesBy"],
        _ => &["maxTotalHits"],
    };
    for (k, sub) in given {
        if !expected.contains(&k.as_str()) {
            return Err(unknown_field_inside(field, k, expected));
        }
        let sub_path = format!("{path}.{k}");
        let value = if sub.is_null() {
            defaults[k.as_str()].clone()
        } else {
            match k.as_str() {
                "enabled" | "disableOnNumbers" => {
                    sub.as_bool().ok_or_else(|| type_error(field, &sub_path, "a boolean", sub))?;
                    sub.clone()
                }
                "maxValuesPerFacet" | "maxTotalHits" => {
                    sub.as_u64().ok_or_else(|| type_error(field, &sub_path, "a positive integer", sub))?;
                    sub.clone()
                }
                "disableOnWords" | "disableOnAttributes" => {
                    let list = sub
                        .as_array()
                        .filter(|a| a.iter().all(Value::is_string))
                        .ok_or_else(|| type_error(field, &sub_path, "an array", sub))?;
                    sorted_set(list.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                }
                "minWordSizeForTypos" => {
                    let o = sub.as_object().ok_or_else(|| type_error(field, &sub_path, "an object", sub))?;
                    let mut m = out.get(k).and_then(Value::as_object).cloned().unwrap_or_default();
                    for (kk, vv) in o {
                        if kk != "oneTypo" && kk != "twoTypos" {
                            return Err(unknown_field_inside(field, kk, &["oneTypo", "twoTypos"]));
                        }
                        let n = if vv.is_null() { defaults[k.as_str()][kk.as_str()].clone() } else { vv.clone() };
                        n.as_u64().ok_or_else(|| type_error(field, &format!("{sub_path}.{kk}"), "a positive integer", vv))?;
                        m.insert(kk.clone(), n);
                    }
                    let one = m.get("oneTypo").and_then(Value::as_u64).unwrap_or(5);
                    let two = m.get("twoTypos").and_then(Value::as_u64).unwrap_or(9);
                    if one > two {
                        return Err(ApiError::new(
                            code_for(field),
                            format!("`minWordSizeForTypos` setting is invalid. `oneTypo` and `twoTypos` fields should be between `0` and `255`, and `twoTypos` should be greater or equals to `oneTypo` but found `oneTypo: {one}` and twoTypos: {two}`."),
                        ));
                    }
                    Value::Object(m)
                }
                "sortFacetValuesBy" => {
                    let o = sub.as_object().ok_or_else(|| type_error(field, &sub_path, "an object", sub))?;
                    let mut m = Map::new();
                    m.insert("*".to_string(), json!("alpha"));
                    let mut keys: Vec<&String> = o.keys().collect();
                    keys.sort();
                    for kk in keys {
                        match o[kk.as_str()].as_str() {
                            Some("alpha") | Some("count") => {
                                m.insert(kk.clone(), o[kk.as_str()].clone());
                            }
                            _ => {
                                return Err(ApiError::new(
                                    code_for(field),
                                    format!("Unknown value `{}` at `{sub_path}.{kk}`: expected one of `alpha`, `count`", o[kk.as_str()].as_str().unwrap_or("")),
                                ))
                            }
                        }
                    }
                    Value::Object(m)
                }
                _ => sub.clone(),
            }
        };
        out.insert(k.clone(), value);
    }
    // keep the canonical key order
    let mut ordered = Map::new();
    for k in expected {
        if let Some(v) = out.remove(*k) {
            ordered.insert(k.to_string(), v);
        }
    }
    Ok(Value::Object(ordered))
}

/// A validated settings update: what to store and what the task details show.
#[derive(Debug, Clone)]
pub struct SettingsUpdate {
    /// `(field, new value or None for reset)` in canonical order.
    pub changes: Vec<(String, Option<Value>)>,
    /// The `details` of the `settingsUpdate` task.
    pub details: Value,
}

/// Validates a settings PATCH body against the current settings (defaults for a new index).
pub fn validate_update(body: &Value, current: &Value) -> Result<SettingsUpdate, ApiError> {
    let obj = body.as_object().ok_or_else(|| {
        ApiError::new(Code::BadRequest, format!("Invalid value type: expected an object, but found {}: `{body}`", describe(body)))
    })?;
    for k in obj.keys() {
        if !ACCEPTED_FIELDS.contains(&k.as_str()) {
            return Err(ApiError::new(
                Code::BadRequest,
                format!(
                    "Unknown field `{k}`: expected one of {}",
                    ACCEPTED_FIELDS.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    let mut changes = Vec::new();
    let mut details = Map::new();
    for field in ACCEPTED_FIELDS {
        let Some(v) = obj.get(field) else { continue };
        if matches!(field, "foreignKeys" | "chat") {
            if v.is_null() {
                continue;
            }
            return Err(ApiError::not_implemented(&format!("the `{field}` setting in the test node")));
        }
        if v.is_null() {
            changes.push((field.to_string(), None));
            details.insert(field.to_string(), Value::Null);
            continue;
        }
        let stored = normalize(field, v, &current[field])?;
        let shown = match field {
            // nested settings show only what was sent
            "typoTolerance" | "faceting" | "pagination" => {
                merge_nested(field, v, &Value::Object(Map::new()))?
            }
            // embedders show what was sent
            "embedders" => v.clone(),
            _ => stored.clone(),
        };
        details.insert(field.to_string(), shown);
        changes.push((field.to_string(), Some(stored)));
    }
    Ok(SettingsUpdate { changes, details: Value::Object(details) })
}

/// The update `DELETE /settings` stands for: every setting reset.
pub fn reset_all() -> SettingsUpdate {
    let defaults = defaults();
    let fields: Vec<&str> = defaults.as_object().unwrap().keys().map(String::as_str).collect();
    SettingsUpdate {
        changes: fields.iter().map(|f| (f.to_string(), None)).collect(),
        details: Value::Object(fields.iter().map(|f| (f.to_string(), Value::Null)).collect()),
    }
}

/// Applies a validated update to stored settings.
pub fn apply(settings: &mut Value, update: &SettingsUpdate) {
    for (field, value) in &update.changes {
        settings[field.as_str()] = value.clone().unwrap_or_else(|| default_of(field));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_follow_canonical_order_and_sortable_is_sorted() {
        let body = json!({"filterableAttributes": ["genres", "year", "director", "_geo"], "sortableAttributes": ["year", "rating", "title", "_geo"], "searchableAttributes": ["title", "director", "genres"]});
        let u = validate_update(&body, &defaults()).unwrap();
        assert_eq!(
            serde_json::to_string(&u.details).unwrap(),
            r#"{"searchableAttributes":["title","director","genres"],"filterableAttributes":["genres","year","director","_geo"],"sortableAttributes":["_geo","rating","title","year"]}"#
        );
        let mut s = defaults();
        apply(&mut s, &u);
        assert_eq!(s["sortableAttributes"], json!(["_geo", "rating", "title", "year"]));
    }

    #[test]
    fn unknown_field_message() {
        let e = validate_update(&json!({"notASetting": 1}), &defaults()).unwrap_err();
        assert_eq!(e.body()["message"], "Unknown field `notASetting`: expected one of `displayedAttributes`, `searchableAttributes`, `filterableAttributes`, `sortableAttributes`, `foreignKeys`, `rankingRules`, `stopWords`, `nonSeparatorTokens`, `separatorTokens`, `dictionary`, `synonyms`, `distinctAttribute`, `proximityPrecision`, `typoTolerance`, `faceting`, `pagination`, `embedders`, `searchCutoffMs`, `localizedAttributes`, `facetSearch`, `prefixSearch`, `chat`");
    }

    #[test]
    fn nested_merge_and_reset() {
        let mut s = defaults();
        let u = validate_update(&json!({"pagination": {"maxTotalHits": 5}, "faceting": {"maxValuesPerFacet": 2, "sortFacetValuesBy": {"*": "count"}}}), &s).unwrap();
        apply(&mut s, &u);
        assert_eq!(s["pagination"], json!({"maxTotalHits": 5}));
        assert_eq!(s["faceting"], json!({"maxValuesPerFacet": 2, "sortFacetValuesBy": {"*": "count"}}));
        assert_eq!(u.details, json!({"faceting": {"maxValuesPerFacet": 2, "sortFacetValuesBy": {"*": "count"}}, "pagination": {"maxTotalHits": 5}}));
        let u = validate_update(&json!({"pagination": null, "faceting": null}), &s).unwrap();
        apply(&mut s, &u);
        assert_eq!(s, defaults());
        let u = validate_update(&json!({"typoTolerance": {"minWordSizeForTypos": {"oneTypo": 4}}}), &s).unwrap();
        apply(&mut s, &u);
        assert_eq!(s["typoTolerance"]["minWordSizeForTypos"], json!({"oneTypo": 4, "twoTypos": 9}));
        assert_eq!(s["typoTolerance"]["enabled"], json!(true));
    }

    #[test]
    fn type_errors() {
        let e = validate_update(&json!({"filterableAttributes": "x"}), &defaults()).unwrap_err();
        assert_eq!(e.code_name(), "invalid_settings_filterable_attributes");
        let e = validate_update(&json!({"rankingRules": ["nope"]}), &defaults()).unwrap_err();
        assert_eq!(e.code_name(), "invalid_settings_ranking_rules");
        assert!(validate_update(&json!({"rankingRules": ["year:desc", "words"]}), &defaults()).is_ok());
    }
}

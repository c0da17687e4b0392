//! `POST /indexes/{uid}/fields` of the test node: the index's fields-ids map (every field any
//! document ever had, nested object paths included, through arrays; it never shrinks, as
//! milli's does not) with each field's metadata, computed as milli's `MetadataBuilder` does
//! from the index's settings (`crates/milli/src/fields_ids_map/metadata.rs` in 1.50), and
//! serialized as Meilisearch's `Field` (`routes/indexes/fields.rs`).
//!
//! Also the pattern rules of milli's `attribute_patterns.rs`, which `is_searchable` of the
//! render route's `fields` uses too.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

/// milli's `is_faceted_by`: `field` is `facet` or nested under it.
pub fn is_faceted_by(field: &str, facet: &str) -> bool {
    field.starts_with(facet) && field[facet.len()..].chars().next().is_none_or(|c| c == '.')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternMatch {
    Parent,
    Match,
    NoMatch,
}

/// milli's `match_pattern` (`*`, `pre*`, `*suf`, `*mid*`, exact; a parent of the pattern).
pub fn match_pattern(pattern: &str, s: &str) -> PatternMatch {
    if pattern == "*" {
        return PatternMatch::Match;
    } else if pattern.len() >= 2 && pattern.starts_with('*') && pattern.ends_with('*') {
        if s.contains(&pattern[1..pattern.len() - 1]) {
            return PatternMatch::Match;
        }
    } else if let Some(p) = pattern.strip_prefix('*') {
        if s.ends_with(p) {
            return PatternMatch::Match;
        }
    } else if let Some(p) = pattern.strip_suffix('*') {
        if s.starts_with(p) {
            return PatternMatch::Match;
        }
    } else if pattern == s {
        return PatternMatch::Match;
    }
    if is_faceted_by(pattern, s) {
        PatternMatch::Parent
    } else {
        PatternMatch::NoMatch
    }
}

/// milli's `AttributePatterns::match_str`.
pub fn match_patterns(patterns: &[String], s: &str) -> PatternMatch {
    let mut out = PatternMatch::NoMatch;
    for p in patterns {
        match match_pattern(p, s) {
            PatternMatch::Match => return PatternMatch::Match,
            PatternMatch::Parent => out = PatternMatch::Parent,
            PatternMatch::NoMatch => {}
        }
    }
    out
}

/// milli's `match_field_legacy`: the field is the pattern or nested under it.
pub fn match_field_legacy(pattern: &str, field: &str) -> PatternMatch {
    if is_faceted_by(field, pattern) {
        PatternMatch::Match
    } else if is_faceted_by(pattern, field) {
        PatternMatch::Parent
    } else {
        PatternMatch::NoMatch
    }
}

/// milli's `field_match_any_patterns_legacy`.
pub fn match_any_legacy<'a>(patterns: impl IntoIterator<Item = &'a str>, field: &str) -> PatternMatch {
    let mut out = PatternMatch::NoMatch;
    for p in patterns {
        match match_field_legacy(p, field) {
            PatternMatch::Match => return PatternMatch::Match,
            PatternMatch::Parent => out = PatternMatch::Parent,
            PatternMatch::NoMatch => {}
        }
    }
    out
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string)).collect()
}

/// A settings list that is `["*"]` (or holds `*`) selects every field: `None`.
fn list_or_all(v: &Value) -> Option<Vec<String>> {
    let list = strings(v);
    (!list.iter().any(|s| s == "*")).then_some(list)
}

/// The field names a document brings into the fields-ids map: its top-level keys and, as
/// milli's extraction walks every value, each nested object key's dotted path (through
/// arrays of objects too).
pub fn field_paths(doc: &Map<String, Value>) -> Vec<String> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    let path = format!("{prefix}.{k}");
                    out.push(path.clone());
                    walk(&path, x, out);
                }
            }
            Value::Array(a) => {
                for x in a {
                    walk(prefix, x, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (k, v) in doc {
        out.push(k.clone());
        walk(k, v, &mut out);
    }
    out
}

/// milli's `Metadata::is_searchable` for `field` under the index's settings.
pub fn is_searchable(settings: &Value, field: &str) -> bool {
    if is_reserved(field) {
        return false;
    }
    match list_or_all(&settings["searchableAttributes"]) {
        None => true,
        Some(list) => list.iter().any(|p| match_field_legacy(p, field) == PatternMatch::Match),
    }
}

/// `_vectors…`, `_geo`/`_geo.…` and `_geojson`: milli's reserved-field metadata (never
/// searchable, distinct or a ranking rule; `_vectors` neither sortable nor filterable).
fn is_reserved(field: &str) -> bool {
    is_faceted_by(field, "_vectors") || is_faceted_by(field, "_geo") || is_faceted_by(field, "_geojson")
}

/// `localizedAttributes` locales as charabia's `Language` serializes them (`Eng`, `Fra`).
fn language(locale: &str) -> String {
    const ISO_639_1: &[(&str, &str)] = &[
        ("af", "afr"), ("ak", "aka"), ("am", "amh"), ("ar", "ara"), ("az", "aze"), ("be", "bel"), ("bn", "ben"),
        ("bg", "bul"), ("ca", "cat"), ("cs", "ces"), ("da", "dan"), ("de", "deu"), ("el", "ell"), ("en", "eng"),
        ("eo", "epo"), ("et", "est"), ("fi", "fin"), ("fr", "fra"), ("gu", "guj"), ("he", "heb"), ("hi", "hin"),
        ("hr", "hrv"), ("hu", "hun"), ("hy", "hye"), ("id", "ind"), ("it", "ita"), ("jv", "jav"), ("ja", "jpn"),
        ("kn", "kan"), ("ka", "kat"), ("km", "khm"), ("ko", "kor"), ("la", "lat"), ("lv", "lav"), ("lt", "lit"),
        ("ml", "mal"), ("mr", "mar"), ("mk", "mkd"), ("my", "mya"), ("ne", "nep"), ("nl", "nld"), ("nb", "nob"),
        ("or", "ori"), ("pa", "pan"), ("fa", "pes"), ("pl", "pol"), ("pt", "por"), ("ro", "ron"), ("ru", "rus"),
        ("si", "sin"), ("sk", "slk"), ("sl", "slv"), ("sn", "sna"), ("es", "spa"), ("sr", "srp"), ("sv", "swe"),
        ("ta", "tam"), ("te", "tel"), ("tl", "tgl"), ("th", "tha"), ("tk", "tuk"), ("tr", "tur"), ("uk", "ukr"),
        ("ur", "urd"), ("uz", "uzb"), ("vi", "vie"), ("yi", "yid"), ("zh", "zho"), ("zu", "zul"),
    ];
    let iso3 = ISO_639_1.iter().find(|(two, _)| *two == locale).map(|(_, three)| *three).unwrap_or(locale);
    let mut c = iso3.chars();
    c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
}

/// Meilisearch's `Field` object for `name` under the index's settings.
pub fn field_object(settings: &Value, name: &str) -> Value {
    let reserved = is_reserved(name);
    let vectors = is_faceted_by(name, "_vectors");
    let displayed = match list_or_all(&settings["displayedAttributes"]) {
        None => true,
        Some(list) => match_any_legacy(list.iter().map(String::as_str), name) == PatternMatch::Match,
    };
    let searchable = is_searchable(settings, name);
    let sortable = !vectors
        && !is_faceted_by(name, "_geojson")
        && match_any_legacy(strings(&settings["sortableAttributes"]).iter().map(String::as_str), name) == PatternMatch::Match;
    let distinct = !reserved && settings["distinctAttribute"].as_str() == Some(name);
    // `field:asc` / `field:desc` ranking rules name exactly one field.
    let order = if reserved {
        None
    } else {
        strings(&settings["rankingRules"]).iter().find_map(|r| {
            if r.strip_suffix(":asc") == Some(name) {
                Some("asc")
            } else if r.strip_suffix(":desc") == Some(name) {
                Some("desc")
            } else {
                None
            }
        })
    };
    // The first filterable rule the field matches decides its features.
    let (mut facet_search, mut equality, mut comparison) = (false, false, false);
    if !vectors {
        for rule in settings["filterableAttributes"].as_array().into_iter().flatten() {
            let (matched, features) = match rule {
                Value::String(p) => (match_field_legacy(p, name), (true, true, true)),
                Value::Object(o) => {
                    let patterns = strings(o.get("attributePatterns").unwrap_or(&Value::Null));
                    let f = o.get("features");
                    let facet = f.and_then(|f| f.get("facetSearch")).and_then(Value::as_bool).unwrap_or(false);
                    let filter = f.and_then(|f| f.get("filter"));
                    let eq = filter.and_then(|f| f.get("equality")).and_then(Value::as_bool).unwrap_or(true);
                    let cmp = filter.and_then(|f| f.get("comparison")).and_then(Value::as_bool).unwrap_or(false);
                    (match_patterns(&patterns, name), (facet, eq, cmp))
                }
                _ => continue,
            };
            if matched == PatternMatch::Match {
                (facet_search, equality, comparison) = features;
                break;
            }
        }
    }
    let sort_by = if vectors {
        "alpha".to_string()
    } else {
        let by = &settings["faceting"]["sortFacetValuesBy"];
        by.get(name).or_else(|| by.get("*")).and_then(Value::as_str).unwrap_or("alpha").to_string()
    };
    let locales: Vec<String> = if reserved {
        Vec::new()
    } else {
        settings["localizedAttributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|rule| match_patterns(&strings(&rule["attributePatterns"]), name) == PatternMatch::Match)
            .map(|rule| strings(&rule["locales"]).iter().map(|l| language(l)).collect())
            .unwrap_or_default()
    };
    let mut ranking_rule = json!({"enabled": order.is_some()});
    if let Some(order) = order {
        ranking_rule["order"] = json!(order);
    }
    json!({
        "name": name,
        "displayed": {"enabled": displayed},
        "searchable": {"enabled": searchable},
        "sortable": {"enabled": sortable},
        "distinct": {"enabled": distinct},
        "rankingRule": ranking_rule,
        "filterable": {
            "enabled": equality || comparison || facet_search,
            "sortBy": sort_by,
            "facetSearch": facet_search,
            "equality": equality,
            "comparison": comparison,
        },
        "localized": {"locales": locales},
    })
}

/// `ListFields::apply_filter`: every criterion given must hold; `attributePatterns` keeps
/// the fields that match a pattern (not their parents).
fn keep(filter: &miroir::model::fields::ListFieldsFilter, field: &Value) -> bool {
    if let Some(p) = &filter.attribute_patterns {
        if match_patterns(p, field["name"].as_str().unwrap_or("")) != PatternMatch::Match {
            return false;
        }
    }
    let enabled = |k: &str| field[k]["enabled"].as_bool().unwrap_or(false);
    [
        (filter.displayed, "displayed"),
        (filter.searchable, "searchable"),
        (filter.sortable, "sortable"),
        (filter.distinct, "distinct"),
        (filter.ranking_rule, "rankingRule"),
        (filter.filterable, "filterable"),
    ]
    .into_iter()
    .all(|(want, k)| want.is_none_or(|w| w == enabled(k)))
}

/// The answer of `POST /indexes/{uid}/fields` for an index's fields and settings.
pub fn list(fields: &BTreeSet<String>, settings: &Value, request: &miroir::model::fields::ListFields) -> Value {
    // A `BTreeSet` iterates in byte order, Meilisearch's sort of the names.
    let all: Vec<Value> = fields
        .iter()
        .map(|name| field_object(settings, name))
        .filter(|f| request.filter.as_ref().is_none_or(|filter| keep(filter, f)))
        .collect();
    let total = all.len();
    let results: Vec<Value> = all.into_iter().skip(request.offset).take(request.limit).collect();
    json!({"results": results, "offset": request.offset, "limit": request.limit, "total": total})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_as_milli() {
        assert_eq!(match_pattern("*", "a"), PatternMatch::Match);
        assert_eq!(match_pattern("ti*", "title"), PatternMatch::Match);
        assert_eq!(match_pattern("*tle", "title"), PatternMatch::Match);
        assert_eq!(match_pattern("*tl*", "title"), PatternMatch::Match);
        assert_eq!(match_pattern("title.to*", "title"), PatternMatch::Parent);
        assert_eq!(match_pattern("test*test", "test"), PatternMatch::NoMatch);
        assert_eq!(match_field_legacy("cuisine", "cuisine.type"), PatternMatch::Match);
        assert_eq!(match_field_legacy("cuisine.type", "cuisine"), PatternMatch::Parent);
        assert_eq!(match_field_legacy("cuisine", "cuisines"), PatternMatch::NoMatch);
    }

    #[test]
    fn nested_paths_through_arrays() {
        let doc = json!({"id": 1, "cuisine": {"type": "x", "region": {"city": "y"}}, "ingredients": [{"name": "a"}, {"qty": 2}], "tags": ["a"]});
        let paths = field_paths(doc.as_object().unwrap());
        assert_eq!(paths, ["id", "cuisine", "cuisine.type", "cuisine.region", "cuisine.region.city", "ingredients", "ingredients.name", "ingredients.qty", "tags"]);
    }

    #[test]
    fn metadata_of_meilisearchs_recipe_test() {
        // From Meilisearch's `fields_after_uploading_recipe_and_settings` snapshot.
        let s = json!({
            "displayedAttributes": ["id", "title", "cuisine", "nutrition", "cooking_time_minutes"],
            "searchableAttributes": ["title", "ingredients.name", "cuisine.type"],
            "filterableAttributes": [{"attributePatterns": ["nutrition.*", "*_time_minutes"], "features": {"facetSearch": false, "filter": {"equality": true, "comparison": true}}}],
            "sortableAttributes": ["cooking_time_minutes", "nutrition.fat"],
            "rankingRules": ["words", "title:desc"],
            "distinctAttribute": null,
            "faceting": {"maxValuesPerFacet": 100, "sortFacetValuesBy": {"*": "alpha"}},
            "localizedAttributes": null,
        });
        let f = field_object(&s, "nutrition.fat");
        assert_eq!(f["displayed"]["enabled"], true);
        assert_eq!(f["sortable"]["enabled"], true);
        assert_eq!(f["filterable"], json!({"enabled": true, "sortBy": "alpha", "facetSearch": false, "equality": true, "comparison": true}));
        let f = field_object(&s, "cuisine.region");
        assert_eq!((f["displayed"]["enabled"].clone(), f["searchable"]["enabled"].clone()), (json!(true), json!(false)));
        let f = field_object(&s, "ingredients");
        assert_eq!((f["displayed"]["enabled"].clone(), f["searchable"]["enabled"].clone()), (json!(false), json!(false)));
        assert_eq!(field_object(&s, "title")["rankingRule"], json!({"enabled": true, "order": "desc"}));
        assert_eq!(field_object(&s, "id")["rankingRule"], json!({"enabled": false}));
        let keys: Vec<String> = field_object(&s, "id").as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["name", "displayed", "searchable", "sortable", "distinct", "rankingRule", "filterable", "localized"]);
    }

    #[test]
    fn legacy_filterable_locales_and_facet_order() {
        let s = json!({
            "displayedAttributes": ["*"], "searchableAttributes": ["*"],
            "filterableAttributes": ["genre", {"attributePatterns": ["g*"], "features": {"facetSearch": true}}],
            "sortableAttributes": [], "rankingRules": [], "distinctAttribute": "genre",
            "faceting": {"sortFacetValuesBy": {"*": "alpha", "genre": "count"}},
            "localizedAttributes": [{"attributePatterns": ["title*"], "locales": ["fr", "eng"]}],
        });
        assert_eq!(field_object(&s, "genre")["filterable"], json!({"enabled": true, "sortBy": "count", "facetSearch": true, "equality": true, "comparison": true}));
        assert_eq!(field_object(&s, "gold")["filterable"], json!({"enabled": true, "sortBy": "alpha", "facetSearch": true, "equality": true, "comparison": false}));
        assert_eq!(field_object(&s, "genre")["distinct"]["enabled"], true);
        assert_eq!(field_object(&s, "title_fr")["localized"]["locales"], json!(["Fra", "Eng"]));
        assert_eq!(field_object(&s, "_geo")["searchable"]["enabled"], false);
    }
}

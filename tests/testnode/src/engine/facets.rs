//! `facetDistribution`, `facetStats` and facet-search values.

use std::cmp::Ordering;

use serde_json::{json, Map, Value};

use super::rank::leaves;

/// One facet value with the number of documents holding it.
#[derive(Debug, Clone)]
pub struct FacetValue {
    /// Numbers sort before strings.
    pub number: Option<f64>,
    /// Strings: trimmed and lowercased (milli's facet key). Numbers: their display.
    pub normalized: String,
    /// The value as shown: the original spelling of the first document holding it; numbers
    /// as milli prints an `f64` (`8.0` → `8`).
    pub display: String,
    pub count: u64,
}

/// Leaf values of `attr` (or below it) in a document.
fn values_of<'a>(doc: &'a Map<String, Value>, attr: &str) -> Vec<&'a Value> {
    let mut all = Vec::new();
    for (k, v) in doc {
        leaves(v, k, &mut all);
    }
    all.into_iter().filter(|(p, _)| p == attr).flat_map(|(_, v)| v).collect()
}

/// Counts the values of `attr` over `docs`: numbers first, by their display string, then
/// strings by their facet key (milli's linear scan order for small candidate sets).
pub fn count_values(docs: &[&Map<String, Value>], attr: &str) -> Vec<FacetValue> {
    let mut out: Vec<FacetValue> = Vec::new();
    for doc in docs {
        let mut seen: Vec<(bool, String)> = Vec::new();
        for v in values_of(doc, attr) {
            let (number, normalized, display) = match v {
                Value::Number(n) => {
                    let f = n.as_f64().unwrap_or(0.0);
                    (Some(f), f.to_string(), f.to_string())
                }
                Value::String(s) => (None, s.trim().to_lowercase(), s.to_string()),
                Value::Bool(b) => (None, b.to_string(), b.to_string()),
                _ => continue,
            };
            if normalized.is_empty() && number.is_none() {
                continue;
            }
            let key = (number.is_some(), normalized.clone());
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            match out.iter_mut().find(|f| f.number.is_some() == number.is_some() && f.normalized == normalized) {
                Some(f) => f.count += 1,
                None => out.push(FacetValue { number, normalized, display, count: 1 }),
            }
        }
    }
    out.sort_by(alpha);
    out
}

fn alpha(a: &FacetValue, b: &FacetValue) -> Ordering {
    match (a.number.is_some(), b.number.is_some()) {
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => a.normalized.cmp(&b.normalized),
    }
}

/// Orders by count when asked (numbers first, then strings; each by count, then by
/// descending value like milli's count heap), and keeps `max` values.
pub fn order(mut values: Vec<FacetValue>, by_count: bool, max: usize) -> Vec<FacetValue> {
    if by_count {
        values.sort_by(|a, b| {
            b.number.is_some().cmp(&a.number.is_some()).then(b.count.cmp(&a.count)).then_with(|| match (a.number, b.number) {
                (Some(x), Some(y)) => y.partial_cmp(&x).unwrap_or(Ordering::Equal),
                _ => b.normalized.cmp(&a.normalized),
            })
        });
    }
    values.truncate(max);
    values
}

/// The distribution object of one attribute.
pub fn distribution_object(values: &[FacetValue]) -> Value {
    Value::Object(values.iter().map(|v| (v.display.clone(), json!(v.count))).collect())
}

/// `{min, max}` of the numeric values of `attr`, if any.
pub fn stats(docs: &[&Map<String, Value>], attr: &str) -> Option<(f64, f64)> {
    let mut range: Option<(f64, f64)> = None;
    for doc in docs {
        for v in values_of(doc, attr) {
            if let Some(f) = v.as_f64() {
                range = Some(match range {
                    None => (f, f),
                    Some((lo, hi)) => (lo.min(f), hi.max(f)),
                });
            }
        }
    }
    range
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_value_once_per_document() {
        let a = json!({"g": ["Drama", "drama", "Comedy"], "y": 1925});
        let b = json!({"g": "Drama", "y": 1920});
        let docs = vec![a.as_object().unwrap(), b.as_object().unwrap()];
        let v = count_values(&docs, "g");
        assert_eq!(distribution_object(&v), json!({"Comedy": 1, "Drama": 2}));
        assert_eq!(distribution_object(&order(v, true, 1)), json!({"Drama": 2}));
        // Numbers show as milli prints an f64 and sort as strings.
        let c = json!({"r": [8.0, 10, 9.5]});
        let v = count_values(&[c.as_object().unwrap()], "r");
        assert_eq!(v.iter().map(|v| v.display.as_str()).collect::<Vec<_>>(), ["10", "8", "9.5"]);
        assert_eq!(stats(&docs, "y"), Some((1920.0, 1925.0)));
        assert_eq!(stats(&docs, "g"), None);
    }
}

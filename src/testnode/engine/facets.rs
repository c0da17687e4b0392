//! `facetDistribution`, `facetStats` and facet-search values.

use std::cmp::Ordering;

use serde_json::{json, Map, Value};

use super::rank::leaves;
use super::text::normalize;

/// One facet value with the number of documents holding it.
#[derive(Debug, Clone)]
pub struct FacetValue {
    /// Numbers sort before strings, numerically; strings by their normalized form.
    pub number: Option<f64>,
    pub normalized: String,
    /// The value as shown (the first original spelling seen).
    pub display: String,
    pub count: u64,
}

/// Leaf values of `attr` in a document.
fn values_of<'a>(doc: &'a Map<String, Value>, attr: &str) -> Vec<&'a Value> {
    let mut all = Vec::new();
    for (k, v) in doc {
        leaves(v, k, &mut all);
    }
    all.into_iter().filter(|(p, _)| p == attr).flat_map(|(_, v)| v).collect()
}

/// Counts the values of `attr` over `docs`, in alphabetical (numbers first) order.
pub fn count_values(docs: &[&Map<String, Value>], attr: &str) -> Vec<FacetValue> {
    let mut out: Vec<FacetValue> = Vec::new();
    for doc in docs {
        let mut seen: Vec<(Option<u64>, String)> = Vec::new();
        for v in values_of(doc, attr) {
            let (number, normalized, display) = match v {
                Value::Number(n) => {
                    let f = n.as_f64().unwrap_or(0.0);
                    (Some(f), String::new(), n.to_string())
                }
                Value::String(s) => (None, normalize(s.trim()), s.trim().to_string()),
                Value::Bool(b) => (None, b.to_string(), b.to_string()),
                _ => continue,
            };
            let key = (number.map(f64::to_bits), normalized.clone());
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            match out.iter_mut().find(|f| f.number.map(f64::to_bits) == number.map(f64::to_bits) && f.normalized == normalized) {
                Some(f) => f.count += 1,
                None => out.push(FacetValue { number, normalized, display, count: 1 }),
            }
        }
    }
    out.sort_by(alpha);
    out
}

fn alpha(a: &FacetValue, b: &FacetValue) -> Ordering {
    match (a.number, b.number) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.normalized.cmp(&b.normalized),
    }
}

/// Orders by count (descending, then alphabetically) when asked, and truncates.
pub fn order(mut values: Vec<FacetValue>, by_count: bool, max: usize) -> Vec<FacetValue> {
    if by_count {
        values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| alpha(a, b)));
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
        assert_eq!(stats(&docs, "y"), Some((1920.0, 1925.0)));
        assert_eq!(stats(&docs, "g"), None);
    }
}

//! `/experimental-features` of the test node: Meilisearch 1.50's `RuntimeTogglableFeatures`
//! (every field, in its order), synchronous, validated as Meilisearch does. Only
//! `editDocumentsByFunction` changes what the test node does (it gates
//! `/indexes/{uid}/documents/edit`); the others are stored and answered.

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult, Code};
use miroir::error::describe_kind as describe;

/// The fields of Meilisearch 1.50's features object, in its order.
pub const FEATURES: &[&str] = &[
    "metrics",
    "logsRoute",
    "editDocumentsByFunction",
    "containsFilter",
    "dynamicSearchRules",
    "network",
    "getTaskDocumentsRoute",
    "taskQueueCompactionRoute",
    "compositeEmbedders",
    "chatCompletions",
    "multimodal",
    "foreignKeys",
    "disableDocumentsFetchQueue",
    "legacySearch",
    "renderRoute",
];

/// A fresh node's features: all disabled.
pub fn defaults() -> Map<String, Value> {
    FEATURES.iter().map(|f| (f.to_string(), Value::Bool(false))).collect()
}

/// Applies a PATCH body: given booleans replace, `null` and absent fields keep the value.
pub fn patch(current: &Map<String, Value>, body: &Value) -> ApiResult<Map<String, Value>> {
    let obj = body.as_object().ok_or_else(|| {
        ApiError::new(Code::BadRequest, format!("Invalid value type: expected an object, but found {}: `{body}`", describe(body)))
    })?;
    let mut next = current.clone();
    for (k, v) in obj {
        if !FEATURES.contains(&k.as_str()) {
            return Err(ApiError::new(
                Code::BadRequest,
                format!("Unknown field `{k}`: expected one of {}", FEATURES.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")),
            ));
        }
        match v {
            Value::Null => {}
            Value::Bool(_) => {
                next.insert(k.clone(), v.clone());
            }
            other => {
                return Err(ApiError::new(
                    Code::BadRequest,
                    format!("Invalid value type at `.{k}`: expected a boolean, but found {}: `{other}`", describe(other)),
                ))
            }
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patch_like_meilisearch() {
        let d = defaults();
        let n = patch(&d, &json!({"metrics": true, "network": null})).unwrap();
        assert_eq!(n["metrics"], json!(true));
        assert_eq!(n["network"], json!(false));
        assert_eq!(n.keys().map(String::as_str).collect::<Vec<_>>(), FEATURES);
        let e = patch(&d, &json!({"metrics": 42})).unwrap_err();
        assert_eq!(e.body()["message"], "Invalid value type at `.metrics`: expected a boolean, but found a positive integer: `42`");
        let e = patch(&d, &json!({"NotAFeature": true})).unwrap_err();
        assert!(e.body()["message"].as_str().unwrap().starts_with("Unknown field `NotAFeature`: expected one of `metrics`, `logsRoute`"));
    }
}

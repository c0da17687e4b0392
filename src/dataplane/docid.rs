//! Primary keys: inference from a batch and document-id validation, with Meilisearch's
//! rules and messages, so Miroir can route (and reject) a batch before any node sees it.

use serde_json::Value;

use super::payload::Document;
use crate::error::{ApiError, Code};

/// Infers the primary key from a batch as Meilisearch does: among all fields of the batch
/// (in order of first appearance), those whose name ends with `id`, case-insensitively.
pub fn infer_primary_key(docs: &[Document]) -> Result<String, ApiError> {
    let mut candidates: Vec<&str> = Vec::new();
    for d in docs {
        for k in d.keys() {
            if k.to_lowercase().ends_with("id") && !candidates.contains(&k.as_str()) {
                candidates.push(k);
            }
        }
    }
    match candidates.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(ApiError::new(
            Code::IndexPrimaryKeyNoCandidateFound,
            "The primary key inference failed as the engine did not find any field ending with `id` in its name. Please specify the primary key manually using the `primaryKey` query parameter.",
        )),
        [a, b, ..] => Err(ApiError::new(
            Code::IndexPrimaryKeyMultipleCandidatesFound,
            format!(
                "The primary key inference failed as the engine found {} fields ending with `id` in their names: '{a}' and '{b}'. Please specify the primary key manually using the `primaryKey` query parameter.",
                candidates.len()
            ),
        )),
    }
}

/// Validates a document id value and returns its canonical string form (integers in
/// decimal, strings as they are), with Meilisearch's `invalid_document_id` error.
pub fn validate_document_id(v: &Value) -> Result<String, ApiError> {
    let ok = match v {
        Value::String(s) => {
            !s.is_empty() && s.len() <= 511 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        }
        Value::Number(n) => n.is_i64() || n.is_u64(),
        _ => false,
    };
    if ok {
        Ok(super::hash::canonical_pk(v).expect("validated id"))
    } else {
        Err(ApiError::new(
            Code::InvalidDocumentId,
            format!(
                "Document identifier `{v}` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes."
            ),
        ))
    }
}

/// The canonical id of `doc` under primary key `pk`, or Meilisearch's `missing_document_id`
/// / `invalid_document_id` error.
pub fn document_id(doc: &Document, pk: &str) -> Result<String, ApiError> {
    match doc.get(pk) {
        Some(v) => validate_document_id(v),
        None => Err(ApiError::new(
            Code::MissingDocumentId,
            format!(
                "Document doesn't have a `{pk}` attribute: `{}`.",
                serde_json::to_string(doc).unwrap_or_default()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn docs(v: Value) -> Vec<Document> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn inference_matches_the_recording() {
        assert_eq!(infer_primary_key(&docs(json!([{"movie_id": "a1", "title": "x"}]))).unwrap(), "movie_id");
        let e = infer_primary_key(&docs(json!([{"id": 1, "movie_id": 2}]))).unwrap_err();
        assert_eq!(e.code_name(), "index_primary_key_multiple_candidates_found");
        assert_eq!(e.body()["message"], "The primary key inference failed as the engine found 2 fields ending with `id` in their names: 'id' and 'movie_id'. Please specify the primary key manually using the `primaryKey` query parameter.");
        let e = infer_primary_key(&docs(json!([{"title": "x"}]))).unwrap_err();
        assert_eq!(e.code_name(), "index_primary_key_no_candidate_found");
    }

    #[test]
    fn ids_as_recorded() {
        let d = docs(json!([{"id": "bad id!", "title": "x"}, {"title": "no id"}, {"id": 7}]));
        let e = document_id(&d[0], "id").unwrap_err();
        assert_eq!(e.body()["message"], "Document identifier `\"bad id!\"` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes.");
        let e = document_id(&d[1], "id").unwrap_err();
        assert_eq!(e.body()["message"], "Document doesn't have a `id` attribute: `{\"title\":\"no id\"}`.");
        assert_eq!(document_id(&d[2], "id").unwrap(), "7");
        assert!(validate_document_id(&json!(1.5)).is_err());
    }
}

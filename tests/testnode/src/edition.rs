//! Editing documents by function (`POST /indexes/{uid}/documents/edit`) as Meilisearch 1.50
//! runs it (milli's `UpdateByFunction`): the Rhai function runs once per selected document
//! with `doc` (the document as a map) and, when given, the constant `context` in scope; `doc`
//! set to `()` deletes the document, a changed map replaces it (its primary key must not
//! change), anything else fails the task. One failure fails the whole task, nothing applied.
//! Also the human-readable sizes of compaction details.

use serde_json::{Map, Value};

use super::filter::{self, ErrorForm, EvalError};
use super::state::Index;
use crate::error::{ApiError, Code};
use miroir::dataplane::payload;

/// Meilisearch's engine limits for edition functions.
fn engine() -> rhai::Engine {
    let mut engine = rhai::Engine::new();
    engine.set_optimization_level(rhai::OptimizationLevel::Full);
    engine.set_max_call_levels(1000);
    engine.set_max_operations(1_000_000);
    engine.set_max_variables(1000);
    engine.set_max_functions(30);
    engine.set_max_expr_depths(100, 1000);
    engine.set_max_string_size(1024 * 1024 * 1024);
    engine.set_max_array_size(10_000);
    engine.set_max_map_size(10_000);
    engine
}

/// The route's check before the task is enqueued: the function must compile (`bad_request`
/// with the parser's message, as Meilisearch answers).
pub fn check_compiles(function: &str) -> Result<(), ApiError> {
    rhai::Engine::new().compile(function).map(|_| ()).map_err(|e| ApiError::new(Code::BadRequest, e.to_string()))
}

fn edition_error(message: String) -> ApiError {
    ApiError::new(Code::EditDocumentsByFunctionError, message)
}

/// Runs the edition on the index. Returns `(editedDocuments, deletedDocuments)` as
/// Meilisearch 1.50 reports them (both the number of selected documents).
pub fn apply(ix: &mut Index, filter_expr: Option<&Value>, context: Option<&Value>, function: &str) -> Result<(usize, usize), ApiError> {
    let compiled = match filter_expr.map(filter::parse_filter_value).transpose() {
        Ok(Some(Some(expr))) => filter::compile(&expr, &ix.filterable(), ErrorForm::Original).map_err(|e| match e {
            EvalError::Invalid(fe) => ApiError::new(Code::InvalidDocumentFilter, fe.to_string()),
            EvalError::NotImplemented(what) => ApiError::not_implemented(what),
        })?,
        Ok(_) => filter::Compiled::all(),
        Err(e) => return Err(ApiError::new(Code::InvalidDocumentFilter, e.to_string())),
    };
    let candidates: Vec<u32> = ix.docs.iter().filter(|(_, d)| compiled.matches(d)).map(|(i, _)| *i).collect();
    if candidates.is_empty() {
        return Ok((0, 0));
    }
    let pk = ix.primary_key.clone().unwrap_or_default();
    let engine = engine();
    let ast = engine
        .compile(function)
        .map_err(|e| edition_error(format!("Document edition runtime error encountered while compiling the function: {e}")))?;
    let context: Option<rhai::Dynamic> = context
        .map(|c| rhai::serde::to_dynamic(c).map_err(|e| ApiError::new(Code::InvalidDocumentEditionContext, e.to_string())))
        .transpose()?;
    // Every change is computed first: one failure fails the task with nothing applied.
    let mut changes: Vec<(u32, Option<Map<String, Value>>)> = Vec::new();
    for internal in &candidates {
        let doc = &ix.docs[internal];
        let old_id = payload::document_id(doc, &pk)?;
        let mut scope = rhai::Scope::new();
        if let Some(c) = &context {
            scope.push_constant_dynamic("context", c.clone());
        }
        let as_dynamic = rhai::serde::to_dynamic(Value::Object(doc.clone())).map_err(|e| ApiError::new(Code::BadRequest, e.to_string()))?;
        scope.push_dynamic("doc", as_dynamic);
        let _ = engine
            .eval_ast_with_scope::<rhai::Dynamic>(&mut scope, &ast)
            .map_err(|e| edition_error(format!("Document edition runtime error encountered while running the function: {e}")))?;
        let new_doc = scope.remove::<rhai::Dynamic>("doc").expect("doc stays in scope");
        if new_doc.is_unit() {
            changes.push((*internal, None));
            continue;
        }
        if !new_doc.is_map() {
            return Err(edition_error("Document editions must keep documents as objects".into()));
        }
        let value: Value = rhai::serde::from_dynamic(&new_doc).map_err(|e| ApiError::new(Code::BadRequest, e.to_string()))?;
        let Value::Object(new_map) = value else {
            return Err(edition_error("Document editions must keep documents as objects".into()));
        };
        if &new_map == doc {
            continue;
        }
        let new_id = payload::document_id(&new_map, &pk).map_err(|_| edition_error("Document editions cannot modify a document's primary key".into()))?;
        if new_id != old_id {
            return Err(edition_error("Document editions cannot modify a document's primary key".into()));
        }
        // Fields keep their place (Meilisearch orders fields by their id), new ones come last.
        let mut ordered = Map::new();
        for k in doc.keys() {
            if let Some(v) = new_map.get(k) {
                ordered.insert(k.clone(), v.clone());
            }
        }
        for (k, v) in new_map {
            if !ordered.contains_key(&k) {
                ordered.insert(k, v);
            }
        }
        changes.push((*internal, Some(ordered)));
    }
    for (internal, change) in changes {
        match change {
            Some(d) => {
                ix.note_fields(&d);
                ix.docs.insert(internal, d);
            }
            None => {
                let ext = payload::document_id(&ix.docs[&internal], &pk)?;
                ix.delete_external(&ext);
            }
        }
    }
    Ok((candidates.len(), candidates.len()))
}

/// A size as Meilisearch writes it in task details (`get_appropriate_unit(Both)`).
pub fn human_size(bytes: u64) -> String {
    byte_unit::Byte::from_u64(bytes).get_appropriate_unit(byte_unit::UnitType::Both).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn index(docs: Value) -> Index {
        let mut s = super::super::state::State::default();
        let docs: Vec<payload::Document> = docs.as_array().unwrap().iter().map(|d| d.as_object().unwrap().clone()).collect();
        s.register(
            Some("m".into()),
            super::super::state::TaskKind::DocumentAdditionOrUpdate { documents: docs, primary_key: Some("id".into()), replace: true, skip_creation: false },
            None,
        );
        while s.process_next() {}
        s.indexes.remove("m").unwrap()
    }

    #[test]
    fn edits_deletes_and_refuses_like_milli() {
        let mut ix = index(json!([{"id": 1, "title": "a"}, {"id": 2, "title": "b"}, {"id": 3, "title": "c"}]));
        let r = apply(&mut ix, None, Some(&json!({"suffix": "!"})), "if doc.id == 2 { doc = () } else { doc.title += context.suffix; doc.n = 1 }").unwrap();
        assert_eq!(r, (3, 3));
        assert_eq!(Value::Object(ix.get("1").unwrap().clone()), json!({"id": 1, "title": "a!", "n": 1}));
        assert!(ix.get("2").is_none());
        let e = apply(&mut ix, None, None, "doc.id = 99").unwrap_err();
        assert_eq!(e.body()["code"], "edit_documents_by_function_error");
        assert_eq!(e.body()["message"], "Document editions cannot modify a document's primary key");
        // nothing applied on failure
        assert_eq!(ix.get("1").unwrap()["title"], json!("a!"));
        let e = apply(&mut ix, None, None, "doc = 1").unwrap_err();
        assert_eq!(e.body()["message"], "Document editions must keep documents as objects");
        assert!(check_compiles("doc.title = ").is_err());
    }

    #[test]
    fn sizes_like_meilisearch() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1024), "1 KiB");
    }
}

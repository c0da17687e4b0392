//! `POST /render-template` (Meilisearch 1.50, `routes/render.rs`): the body, typed with
//! Meilisearch's error codes. Miroir reads it to route the request (a document named by id is
//! rendered by a holder of its shard) and to check the indexes it names against the caller's
//! key; the node that answers validates and renders it again, as Meilisearch would.

use std::num::NonZeroUsize;

use deserr::Deserr;
use serde_json::Value;

use super::deserr::{codes, JsonError};
use super::search::BodyIndexUid;

/// The body.
#[derive(Debug, Clone, PartialEq, Deserr)]
#[deserr(error = JsonError, rename_all = camelCase, deny_unknown_fields)]
pub struct RenderQuery {
    #[deserr(error = JsonError<codes::InvalidRenderTemplate>)]
    pub template: RenderQueryTemplate,
    #[deserr(default, error = JsonError<codes::InvalidRenderInput>)]
    pub input: Option<RenderQueryInput>,
}

/// Which template: one of an index's settings or an inline one.
#[derive(Debug, Clone, PartialEq, Deserr)]
#[deserr(error = JsonError<codes::InvalidRenderTemplate>, rename_all = camelCase, deny_unknown_fields)]
pub struct RenderQueryTemplate {
    #[deserr(error = JsonError<codes::InvalidRenderTemplate>)]
    pub kind: RenderQueryTemplateKind,
    #[deserr(default, error = JsonError<codes::InvalidRenderTemplate>)]
    pub index_uid: Option<BodyIndexUid>,
    #[deserr(default, error = JsonError<codes::InvalidRenderTemplate>)]
    pub embedder: Option<String>,
    #[deserr(default, error = JsonError<codes::InvalidRenderTemplate>)]
    pub fragment: Option<String>,
    #[deserr(default, error = JsonError<codes::InvalidRenderTemplate>)]
    pub inline: Option<Value>,
    #[deserr(default, error = JsonError<codes::InvalidRenderTemplate>)]
    pub document_template_max_bytes: Option<NonZeroUsize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserr)]
#[deserr(error = JsonError<codes::InvalidRenderTemplate>, rename_all = camelCase)]
pub enum RenderQueryTemplateKind {
    DocumentTemplate,
    ChatDocumentTemplate,
    IndexingFragment,
    SearchFragment,
    InlineDocumentTemplate,
    InlineFragment,
}

impl RenderQueryTemplateKind {
    /// The name Meilisearch's messages use.
    pub fn name(self) -> &'static str {
        match self {
            Self::DocumentTemplate => "documentTemplate",
            Self::ChatDocumentTemplate => "chatDocumentTemplate",
            Self::IndexingFragment => "indexingFragment",
            Self::SearchFragment => "searchFragment",
            Self::InlineDocumentTemplate => "inlineDocumentTemplate",
            Self::InlineFragment => "inlineFragment",
        }
    }
}

/// What the template is rendered with.
#[derive(Debug, Clone, PartialEq, Deserr)]
#[deserr(error = JsonError<codes::InvalidRenderInput>, rename_all = camelCase, deny_unknown_fields)]
pub struct RenderQueryInput {
    #[deserr(error = JsonError<codes::InvalidRenderInput>)]
    pub kind: RenderQueryInputKind,
    #[deserr(default, error = JsonError<codes::InvalidRenderInput>)]
    pub index_uid: Option<BodyIndexUid>,
    #[deserr(default, error = JsonError<codes::InvalidRenderInput>)]
    pub id: Option<String>,
    #[deserr(default, error = JsonError<codes::InvalidRenderInput>)]
    pub inline: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserr)]
#[deserr(error = JsonError<codes::InvalidRenderInput>, rename_all = camelCase)]
pub enum RenderQueryInputKind {
    IndexDocument,
    InlineDocument,
    InlineSearch,
}

impl RenderQueryInputKind {
    /// The name Meilisearch's messages use.
    pub fn name(self) -> &'static str {
        match self {
            Self::IndexDocument => "indexDocument",
            Self::InlineDocument => "inlineDocument",
            Self::InlineSearch => "inlineSearch",
        }
    }
}

impl RenderQuery {
    /// The indexes the request names (template's, then input's), for the key check.
    pub fn named_indexes(&self) -> Vec<&str> {
        let mut out = Vec::new();
        if let Some(u) = &self.template.index_uid {
            out.push(u.0.as_str());
        }
        if let Some(u) = self.input.as_ref().and_then(|i| i.index_uid.as_ref()) {
            if !out.contains(&u.0.as_str()) {
                out.push(u.0.as_str());
            }
        }
        out
    }

    /// The document the input names by id (`indexDocument` with `indexUid` and `id`).
    pub fn input_document(&self) -> Option<(&str, &str)> {
        let input = self.input.as_ref()?;
        if input.kind != RenderQueryInputKind::IndexDocument {
            return None;
        }
        Some((input.index_uid.as_ref()?.0.as_str(), input.id.as_deref()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::deserr::parse;
    use serde_json::json;

    fn err(v: Value) -> (String, String) {
        let e = parse::<RenderQuery>(v).unwrap_err();
        (e.code_name(), e.body()["message"].as_str().unwrap().to_string())
    }

    #[test]
    fn a_document_of_an_index_is_named_by_id() {
        let q: RenderQuery = parse(json!({
            "template": {"kind": "inlineDocumentTemplate", "inline": "{{ doc.title }}"},
            "input": {"kind": "indexDocument", "indexUid": "movies", "id": "7"}
        }))
        .unwrap();
        assert_eq!(q.input_document(), Some(("movies", "7")));
        assert_eq!(q.named_indexes(), vec!["movies"]);
        let q: RenderQuery = parse(json!({"template": {"kind": "documentTemplate", "indexUid": "a", "embedder": "e"}, "input": null})).unwrap();
        assert_eq!(q.input_document(), None);
        assert_eq!(q.named_indexes(), vec!["a"]);
        let q: RenderQuery = parse(json!({"template": {"kind": "inlineDocumentTemplate", "inline": 1}, "input": {"kind": "inlineDocument", "indexUid": "b", "id": "1"}})).unwrap();
        assert_eq!(q.input_document(), None);
        assert_eq!(q.named_indexes(), vec!["b"]);
    }

    #[test]
    fn errors_carry_meilisearchs_codes() {
        // A missing field takes the code of the object it is missing from (deserr's derive).
        assert_eq!(err(json!({})), ("bad_request".into(), "Missing field `template`".into()));
        assert_eq!(err(json!({"template": {}})), ("invalid_render_template".into(), "Missing field `kind` inside `.template`".into()));
        let (code, m) = err(json!({"template": {"kind": "nope"}}));
        assert_eq!(code, "invalid_render_template");
        assert!(m.starts_with("Unknown value `nope` at `.template.kind`: expected one of `documentTemplate`, `chatDocumentTemplate`"), "{m}");
        assert_eq!(err(json!({"template": {"kind": "inlineFragment", "documentTemplateMaxBytes": 0}})).0, "invalid_render_template");
        let (code, m) = err(json!({"template": {"kind": "inlineFragment", "indexUid": "bad uid"}}));
        assert_eq!(code, "invalid_render_template");
        assert!(m.starts_with("Invalid value at `.template.indexUid`: `bad uid` is not a valid index uid."), "{m}");
        assert_eq!(err(json!({"template": {"kind": "inlineFragment"}, "input": {}})).0, "invalid_render_input");
        assert_eq!(err(json!({"template": {"kind": "inlineFragment"}, "input": {"kind": "indexDocument", "id": 7}})).0, "invalid_render_input");
        assert_eq!(err(json!({"template": {"kind": "inlineFragment"}, "input": {"kind": "x"}})).0, "invalid_render_input");
        let (code, m) = err(json!({"template": {"kind": "inlineFragment"}, "other": 1}));
        assert_eq!(code, "bad_request");
        assert!(m.starts_with("Unknown field `other`: expected one of `template`, `input`"), "{m}");
    }
}

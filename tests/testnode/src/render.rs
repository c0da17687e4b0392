//! `POST /render-template` of the test node (Meilisearch 1.50 `routes/render.rs`, behind the
//! `renderRoute` feature): Meilisearch's order of checks and error wording for every kind;
//! rendering of document templates with the `liquid` crate milli uses (same version), over a
//! context holding `doc` (the document's top-level fields but `_vectors`, `_geo`, `_geojson`,
//! in the document's order) and `fields` (`{name, value, is_searchable}` per top-level
//! field, `is_searchable` from the index's settings, or always true for an inline document).
//!
//! Not in the test node (answered `501`): embedders (so every `documentTemplate` names a
//! missing embedder), chat settings, fragments, inline inputs that are not JSON objects.
//! A template printing a whole object (`{{ doc }}`, `{{ doc.cuisine }}`, `{{ fields }}`) goes
//! through liquid's hash-map `Object`, whose order is random per process, on Meilisearch too.
//! The test node's documents keep the order they were written in; milli orders a stored
//! document's fields by field id (the order the index first saw them), the same when every
//! document lists its fields in one order.

use std::fmt;

use liquid::model::{ArrayView, DisplayCow, KStringCow, ObjectRender, ObjectSource, State as LiquidState, Value as LiquidValue};
use liquid::{ObjectView, ValueView};
use miroir::model::render::{RenderQuery, RenderQueryInputKind as InputKind, RenderQueryTemplateKind as TemplateKind};
use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult, Code};
use crate::state::{Index, State};

fn feature(features: &Map<String, Value>, name: &str) -> bool {
    features.get(name) == Some(&Value::Bool(true))
}

fn feature_error(action: &str, feature: &str, link: &str) -> String {
    format!("{action} requires enabling the `{feature}` experimental feature. See {link}")
}

fn template_error(code: Code, message: impl fmt::Display) -> ApiError {
    ApiError::new(code, format!("error while fetching template: {message}"))
}

fn input_error(code: Code, message: impl fmt::Display) -> ApiError {
    ApiError::new(code, format!("error while fetching input: {message}"))
}

fn disallowed(kind: &str, param: &str) -> String {
    format!("parameter `{param}` disallowed for kind `{kind}`")
}

fn missing(kind: &str, param: &str) -> String {
    format!("parameter `{param}` missing for kind `{kind}`")
}

/// The answer to a valid body (`{template, rendered}`), or Meilisearch's error.
pub fn render(st: &State, q: &RenderQuery) -> ApiResult<Value> {
    let features = st.features();
    if !feature(&features, "renderRoute") {
        return Err(ApiError::new(
            Code::FeatureNotEnabled,
            feature_error("calling the /render-template route", "render_route", "https://github.com/orgs/meilisearch/discussions/888"),
        ));
    }
    let multimodal = |action: &str| -> Result<(), String> {
        if feature(&features, "multimodal") {
            Ok(())
        } else {
            Err(feature_error(action, "multimodal", "https://github.com/orgs/meilisearch/discussions/846"))
        }
    };
    let t = &q.template;
    let kind = t.kind.name();
    let bad_template = |m: String| template_error(Code::InvalidRenderTemplate, m);
    let open = |uid: &str| -> ApiResult<()> {
        if st.indexes.contains_key(uid) {
            Ok(())
        } else {
            Err(template_error(Code::IndexNotFound, format!("cannot open index `{uid}`: Index `{uid}` not found.")))
        }
    };
    let uid_of = |u: &Option<miroir::model::search::BodyIndexUid>| u.as_ref().map(|u| u.0.as_str().to_string());
    let template_uid = uid_of(&t.index_uid);
    // Only inline document templates get past this (the test node has no embedders and no
    // chat settings), so the template never comes from an index.
    let template: String = match t.kind {
        TemplateKind::DocumentTemplate => {
            if t.fragment.is_some() {
                return Err(bad_template(disallowed(kind, "fragment")));
            }
            if t.inline.is_some() {
                return Err(bad_template(disallowed(kind, "inline")));
            }
            let uid = template_uid.as_deref().ok_or_else(|| bad_template(missing(kind, "index_uid")))?;
            let embedder = t.embedder.as_deref().ok_or_else(|| bad_template(missing(kind, "embedder")))?;
            open(uid)?;
            // The test node has no embedders.
            return Err(bad_template(format!("cannot find embedder `{embedder}` in index `{uid}`")));
        }
        TemplateKind::ChatDocumentTemplate => {
            if !feature(&features, "chatCompletions") {
                return Err(template_error(
                    Code::FeatureNotEnabled,
                    feature_error("accessing chat settings", "chat completions", "https://github.com/orgs/meilisearch/discussions/835"),
                ));
            }
            return Err(ApiError::not_implemented("chat document templates in the test node"));
        }
        TemplateKind::IndexingFragment | TemplateKind::SearchFragment => {
            multimodal("accessing fragments").map_err(|m| template_error(Code::FeatureNotEnabled, m))?;
            let uid = template_uid.as_deref().ok_or_else(|| bad_template(missing(kind, "index_uid")))?;
            let embedder = t.embedder.as_deref().ok_or_else(|| bad_template(missing(kind, "embedder")))?;
            let fragment = t.fragment.as_deref().ok_or_else(|| bad_template(missing(kind, "fragment")))?;
            if t.inline.is_some() {
                return Err(bad_template(disallowed(kind, "inline")));
            }
            if t.document_template_max_bytes.is_some() {
                return Err(bad_template(disallowed(kind, "document_template_max_bytes")));
            }
            open(uid)?;
            // No embedders in the test node; Meilisearch words a search fragment's missing
            // embedder as a missing *indexing* fragment.
            return Err(bad_template(if t.kind == TemplateKind::IndexingFragment {
                format!("cannot find embedder `{embedder}` in index `{uid}`")
            } else {
                format!("cannot find indexing fragment `{fragment}` for embedder `{embedder}` in index `{uid}`")
            }));
        }
        TemplateKind::InlineDocumentTemplate => {
            for (given, param) in [(t.index_uid.is_some(), "index_uid"), (t.embedder.is_some(), "embedder"), (t.fragment.is_some(), "fragment")] {
                if given {
                    return Err(bad_template(disallowed(kind, param)));
                }
            }
            let inline = t.inline.as_ref().ok_or_else(|| bad_template(missing(kind, "inline")))?;
            let text = inline.as_str().ok_or_else(|| bad_template("inline document templates must be strings".into()))?;
            text.to_string()
        }
        TemplateKind::InlineFragment => {
            multimodal("rendering an inline fragment").map_err(|m| template_error(Code::FeatureNotEnabled, m))?;
            for (given, param) in [(t.index_uid.is_some(), "index_uid"), (t.embedder.is_some(), "embedder"), (t.fragment.is_some(), "fragment")] {
                if given {
                    return Err(bad_template(disallowed(kind, param)));
                }
            }
            t.inline.as_ref().ok_or_else(|| bad_template(missing(kind, "inline")))?;
            if t.document_template_max_bytes.is_some() {
                return Err(bad_template(disallowed(kind, "document_template_max_bytes")));
            }
            return Err(ApiError::not_implemented("fragments in the test node"));
        }
    };
    let parsed = liquid::ParserBuilder::with_stdlib()
        .build()
        .expect("the standard library parser")
        .parse(&template)
        .map_err(|e| template_error(Code::TemplateParsingError, format!("user error: cannot parse template: {e}")))?;
    let Some(input) = &q.input else {
        return Ok(json!({"template": template, "rendered": null}));
    };
    // The input's index is opened before the input is read.
    let input_uid = uid_of(&input.index_uid);
    let input_index: Option<&Index> = match &input_uid {
        None => None,
        Some(i) => Some(st.indexes.get(i).ok_or_else(|| ApiError::new(Code::IndexNotFound, format!("Cannot open index `{i}`: Index `{i}` not found.")))?),
    };
    let ikind = input.kind.name();
    let bad_input = |m: String| input_error(Code::InvalidRenderInput, m);
    let (doc, settings): (Map<String, Value>, Value) = match input.kind {
        InputKind::IndexDocument => {
            let uid = input_uid.as_deref().ok_or_else(|| bad_input(missing(ikind, "indexUid")))?;
            let id = input.id.as_deref().ok_or_else(|| bad_input(missing(ikind, "id")))?;
            if input.inline.is_some() {
                return Err(bad_input(disallowed(ikind, "inline")));
            }
            let ix = input_index.expect("opened above");
            let doc = ix
                .get(id)
                .ok_or_else(|| input_error(Code::RenderDocumentNotFound, format!("document `{id}` not found in `{uid}`")))?;
            (doc.clone(), ix.settings.clone())
        }
        InputKind::InlineDocument | InputKind::InlineSearch => {
            if input.kind == InputKind::InlineSearch {
                multimodal("rendering search").map_err(|m| input_error(Code::FeatureNotEnabled, m))?;
            }
            if input.index_uid.is_some() {
                return Err(bad_input(disallowed(ikind, "index_uid")));
            }
            if input.id.is_some() {
                return Err(bad_input(disallowed(ikind, "id")));
            }
            let inline = input.inline.as_ref().ok_or_else(|| bad_input(missing(ikind, "inline")))?;
            let Value::Object(map) = inline else {
                return Err(ApiError::not_implemented("an inline input that is not a JSON object in the test node"));
            };
            if input.kind == InputKind::InlineSearch {
                if map.get("q").is_some_and(|q| !q.is_string()) {
                    return Err(bad_input("`q` is not a string".into()));
                }
                return Err(ApiError::new(Code::TemplateRenderingError, "error while rendering template: cannot render a document template with a search query"));
            }
            // No index: an empty fields-ids map, where every field is searchable.
            (map.clone(), json!({"searchableAttributes": ["*"]}))
        }
    };
    let context = context(&doc, &settings);
    let rendered = parsed.render(&context).map_err(|e| {
        ApiError::new(Code::TemplateRenderingError, format!("error while rendering template: user error: missing field in document: {e}"))
    })?;
    Ok(json!({"template": template, "rendered": rendered}))
}

// ---------------------------------------------------------------------------------------
// the liquid context: ordered JSON objects, as milli's views of a document are

/// A JSON value seen by liquid with its objects' order kept (liquid's own `Object` is a hash
/// map).
#[derive(Debug, Clone)]
enum Json {
    Scalar(LiquidValue),
    Array(JsonArray),
    Object(JsonObject),
}

#[derive(Debug, Clone)]
struct JsonArray(Vec<Json>);

#[derive(Debug, Clone)]
struct JsonObject {
    entries: Vec<(String, Json)>,
    /// milli's field objects answer `size` 2 for their three keys.
    size: Option<i64>,
}

impl Json {
    fn from(v: &Value) -> Json {
        match v {
            Value::Array(a) => Json::Array(JsonArray(a.iter().map(Json::from).collect())),
            Value::Object(o) => Json::Object(JsonObject { entries: o.iter().map(|(k, v)| (k.clone(), Json::from(v))).collect(), size: None }),
            scalar => Json::Scalar(liquid::model::to_value(scalar).unwrap_or(LiquidValue::Nil)),
        }
    }

    fn view(&self) -> &dyn ValueView {
        match self {
            Json::Scalar(v) => v,
            Json::Array(a) => a,
            Json::Object(o) => o,
        }
    }
}

/// `{doc, fields}` for a document.
fn context(doc: &Map<String, Value>, settings: &Value) -> JsonObject {
    let top: Vec<(&String, &Value)> = doc.iter().filter(|(k, _)| !matches!(k.as_str(), "_vectors" | "_geo" | "_geojson")).collect();
    let doc_view = JsonObject { entries: top.iter().map(|(k, v)| ((*k).clone(), Json::from(v))).collect(), size: None };
    let fields = top
        .iter()
        .map(|(k, v)| {
            Json::Object(JsonObject {
                entries: vec![
                    ("name".into(), Json::Scalar(LiquidValue::scalar((*k).clone()))),
                    ("value".into(), Json::from(v)),
                    ("is_searchable".into(), Json::Scalar(LiquidValue::scalar(crate::fields::is_searchable(settings, k)))),
                ],
                size: Some(2),
            })
        })
        .collect();
    JsonObject { entries: vec![("doc".into(), Json::Object(doc_view)), ("fields".into(), Json::Array(JsonArray(fields)))], size: None }
}

impl ValueView for JsonObject {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }
    fn render(&self) -> DisplayCow<'_> {
        DisplayCow::Owned(Box::new(ObjectRender::new(self)))
    }
    fn source(&self) -> DisplayCow<'_> {
        DisplayCow::Owned(Box::new(ObjectSource::new(self)))
    }
    fn type_name(&self) -> &'static str {
        "object"
    }
    fn query_state(&self, state: LiquidState) -> bool {
        match state {
            LiquidState::Truthy => true,
            LiquidState::DefaultValue | LiquidState::Empty | LiquidState::Blank => self.entries.is_empty(),
        }
    }
    fn to_kstr(&self) -> KStringCow<'_> {
        KStringCow::from_string(ObjectRender::new(self).to_string())
    }
    fn to_value(&self) -> LiquidValue {
        LiquidValue::Object(self.entries.iter().map(|(k, v)| (k.clone().into(), v.view().to_value())).collect())
    }
    fn as_object(&self) -> Option<&dyn ObjectView> {
        Some(self)
    }
    fn is_object(&self) -> bool {
        true
    }
}

impl ObjectView for JsonObject {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        self.size.unwrap_or(self.entries.len() as i64)
    }
    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = KStringCow<'k>> + 'k> {
        Box::new(self.entries.iter().map(|(k, _)| KStringCow::from_ref(k.as_str())))
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        Box::new(self.entries.iter().map(|(_, v)| v.view()))
    }
    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        Box::new(self.entries.iter().map(|(k, v)| (KStringCow::from_ref(k.as_str()), v.view())))
    }
    fn contains_key(&self, index: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == index)
    }
    fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
        self.entries.iter().find(|(k, _)| k == index).map(|(_, v)| v.view())
    }
}

/// milli's array render: the items' renders one after the other.
struct ArrayRender<'a>(&'a JsonArray);

impl fmt::Display for ArrayRender<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for item in &self.0 .0 {
            write!(f, "{}", item.view().render())?;
        }
        Ok(())
    }
}

/// milli's array source: `[a, b, ]`.
struct ArraySource<'a>(&'a JsonArray);

impl fmt::Display for ArraySource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for item in &self.0 .0 {
            write!(f, "{}, ", item.view().render())?;
        }
        write!(f, "]")
    }
}

impl ValueView for JsonArray {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }
    fn render(&self) -> DisplayCow<'_> {
        DisplayCow::Owned(Box::new(ArrayRender(self)))
    }
    fn source(&self) -> DisplayCow<'_> {
        DisplayCow::Owned(Box::new(ArraySource(self)))
    }
    fn type_name(&self) -> &'static str {
        "array"
    }
    fn query_state(&self, state: LiquidState) -> bool {
        match state {
            LiquidState::Truthy => true,
            LiquidState::DefaultValue | LiquidState::Empty | LiquidState::Blank => self.0.is_empty(),
        }
    }
    fn to_kstr(&self) -> KStringCow<'_> {
        KStringCow::from_string(ArrayRender(self).to_string())
    }
    fn to_value(&self) -> LiquidValue {
        LiquidValue::Array(self.0.iter().map(|v| v.view().to_value()).collect())
    }
    fn as_array(&self) -> Option<&dyn ArrayView> {
        Some(self)
    }
    fn is_array(&self) -> bool {
        true
    }
}

impl ArrayView for JsonArray {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        self.0.len() as i64
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        Box::new(self.0.iter().map(Json::view))
    }
    fn contains_key(&self, index: i64) -> bool {
        let index = if index >= 0 { index } else { self.size() + index };
        index >= 0 && index < self.size()
    }
    fn get(&self, index: i64) -> Option<&dyn ValueView> {
        let index = if index >= 0 { index } else { self.size() + index };
        usize::try_from(index).ok().and_then(|i| self.0.get(i)).map(Json::view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_doc(template: &str, doc: Value, settings: Value) -> Result<String, String> {
        let t = liquid::ParserBuilder::with_stdlib().build().unwrap().parse(template).map_err(|e| e.to_string())?;
        t.render(&context(doc.as_object().unwrap(), &settings)).map_err(|e| e.to_string())
    }

    #[test]
    fn doc_and_fields_in_document_order() {
        let doc = json!({"id": 1, "title": "Iko", "breed": "Jack Russell", "_geo": {"lat": 1, "lng": 2}, "tags": ["a", "b"]});
        let s = json!({"searchableAttributes": ["title", "breed"]});
        assert_eq!(render_doc("A {{ doc.breed }} called {{ doc.title }}", doc.clone(), s.clone()).unwrap(), "A Jack Russell called Iko");
        let t = "{% for field in fields %}{% if field.is_searchable %}{{ field.name }}={{ field.value }};{% endif %}{% endfor %}";
        assert_eq!(render_doc(t, doc.clone(), s.clone()).unwrap(), "title=Iko;breed=Jack Russell;");
        assert_eq!(render_doc("{% for field in fields %}{{ field.name }} {% endfor %}", doc.clone(), s.clone()).unwrap(), "id title breed tags ");
        assert_eq!(render_doc("{{ doc.tags }}|{{ fields.size }}|{{ fields[0].size }}", doc.clone(), s.clone()).unwrap(), "ab|4|2");
        let e = render_doc("{{ doc.missing }}", doc, s).unwrap_err();
        assert!(e.contains("Unknown index") && e.contains("available indexes=id, title, breed, tags"), "{e}");
    }
}

//! Document payloads (`application/json`, `application/x-ndjson`, `text/csv`), primary-key
//! inference and document-id validation, as Meilisearch does them. Miroir uses this to route
//! (and reject) a batch before any node sees it; the test node uses it to be Meilisearch.

use serde_json::{Map, Number, Value};

use crate::error::{ApiError, Code};

pub type Document = Map<String, Value>;

/// The accepted payload formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    NdJson,
    Csv,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::NdJson => "ndjson",
            Format::Csv => "csv",
        }
    }
}

/// Picks the payload format from a `Content-Type` header value.
pub fn format_from_content_type(content_type: Option<&str>) -> Result<Format, ApiError> {
    const ACCEPTED: &str = "`application/json`, `application/x-ndjson`, `text/csv`";
    let Some(ct) = content_type else {
        return Err(ApiError::new(
            Code::MissingContentType,
            format!("A Content-Type header is missing. Accepted values for the Content-Type header are: {ACCEPTED}"),
        ));
    };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(Format::Json),
        "application/x-ndjson" => Ok(Format::NdJson),
        "text/csv" => Ok(Format::Csv),
        _ => Err(ApiError::new(
            Code::InvalidContentType,
            format!("The Content-Type `{ct}` is invalid. Accepted values for the Content-Type header are: {ACCEPTED}"),
        )),
    }
}

fn malformed(format: Format, detail: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        Code::MalformedPayload,
        format!("The `{}` payload provided is malformed. `{detail}`.", format.name()),
    )
}

fn missing(format: Format) -> ApiError {
    ApiError::new(Code::MissingPayload, format!("A {} payload is missing.", format.name()))
}

/// A JSON payload: one document or an array of documents, deserialized the way Meilisearch
/// does (so that errors carry serde_json's wording for maps and sequences).
struct Documents(Vec<Document>);

impl<'de> serde::Deserialize<'de> for Documents {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Documents;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Documents, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(doc) = seq.next_element::<Document>()? {
                    out.push(doc);
                }
                Ok(Documents(out))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Documents, A::Error> {
                let doc = <Document as serde::Deserialize>::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(Documents(vec![doc]))
            }
        }
        d.deserialize_any(V)
    }
}

struct SyntaxCheck;

impl<'de> serde::Deserialize<'de> for SyntaxCheck {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::IgnoredAny;
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SyntaxCheck;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<SyntaxCheck, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(SyntaxCheck)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<SyntaxCheck, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(SyntaxCheck)
            }
        }
        d.deserialize_any(V)
    }
}

fn type_name(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) => {
            if n.is_f64() {
                format!("floating point `{n}`")
            } else {
                format!("integer `{n}`")
            }
        }
        Value::String(s) => format!("string {:?}", s),
        Value::Array(_) => "sequence".into(),
        Value::Object(_) => "map".into(),
    }
}

/// Parses a document payload. `csv_delimiter` only applies to CSV.
pub fn parse_documents(body: &[u8], format: Format, csv_delimiter: u8) -> Result<Vec<Document>, ApiError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(missing(format));
    }
    match format {
        Format::Json => {
            // first a syntax pass that skips values, as Meilisearch's raw-value reader does
            // (its errors say "while parsing an object"), then the typed pass
            serde_json::from_slice::<SyntaxCheck>(body)
                .map_err(|e| malformed(format, format!("Couldn't serialize document value: {e}")))?;
            let Documents(docs) = serde_json::from_slice(body)
                .map_err(|e| malformed(format, format!("Couldn't serialize document value: {e}")))?;
            Ok(docs)
        }
        Format::NdJson => {
            let mut docs = Vec::new();
            for v in serde_json::Deserializer::from_slice(body).into_iter::<Value>() {
                let v = v.map_err(|e| malformed(format, format!("Couldn't serialize document value: {e}")))?;
                match v {
                    Value::Object(m) => docs.push(m),
                    other => {
                        return Err(malformed(
                            format,
                            format!("Couldn't serialize document value: invalid type: {}, expected a map", type_name(&other)),
                        ))
                    }
                }
            }
            Ok(docs)
        }
        Format::Csv => parse_csv(body, csv_delimiter),
    }
}

#[derive(Clone, Copy)]
enum CsvType {
    String,
    Number,
    Boolean,
}

fn parse_csv(body: &[u8], delimiter: u8) -> Result<Vec<Document>, ApiError> {
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).has_headers(true).from_reader(body);
    let headers = reader.headers().map_err(|e| malformed(Format::Csv, e))?.clone();
    let mut columns = Vec::with_capacity(headers.len());
    for h in headers.iter() {
        let (name, ty) = match h.rsplit_once(':') {
            Some((name, "number")) => (name, CsvType::Number),
            Some((name, "boolean")) => (name, CsvType::Boolean),
            Some((name, "string")) => (name, CsvType::String),
            _ => (h, CsvType::String),
        };
        columns.push((name.to_string(), ty));
    }
    let mut docs = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| malformed(Format::Csv, e))?;
        let mut doc = Map::new();
        for ((name, ty), cell) in columns.iter().zip(record.iter()) {
            let value = match ty {
                CsvType::String => {
                    if cell.is_empty() {
                        Value::Null
                    } else {
                        Value::String(cell.to_string())
                    }
                }
                CsvType::Number => {
                    let t = cell.trim();
                    if t.is_empty() {
                        Value::Null
                    } else if let Ok(i) = t.parse::<i64>() {
                        Value::Number(i.into())
                    } else {
                        match t.parse::<f64>().ok().and_then(Number::from_f64) {
                            Some(n) => Value::Number(n),
                            None => {
                                return Err(malformed(
                                    Format::Csv,
                                    format!("Error parsing number {t:?} at line {}: invalid float literal", line + 2),
                                ))
                            }
                        }
                    }
                }
                CsvType::Boolean => match cell.trim() {
                    "" => Value::Null,
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    other => {
                        return Err(malformed(
                            Format::Csv,
                            format!("Error parsing boolean {other:?} at line {}: provided string was not `true` or `false`", line + 2),
                        ))
                    }
                },
            };
            doc.insert(name.clone(), value);
        }
        docs.push(doc);
    }
    Ok(docs)
}

/// A document-level error that makes a document task fail.
pub fn task_error(code: Code, message: String) -> ApiError {
    ApiError::new(code, message)
}

/// Infers the primary key from the first document, as milli does: the single field whose
/// name ends with `id` (case-insensitively).
pub fn infer_primary_key(first: Option<&Document>) -> Result<String, ApiError> {
    let mut guesses: Vec<&String> = first
        .map(|d| d.keys().filter(|k| k.to_lowercase().ends_with("id")).collect())
        .unwrap_or_default();
    guesses.sort_unstable();
    match guesses.as_slice() {
        [] => Err(task_error(
            Code::IndexPrimaryKeyNoCandidateFound,
            "The primary key inference failed as the engine did not find any field ending with `id` in its name. Please specify the primary key manually using the `primaryKey` query parameter.".to_string(),
        )),
        [one] => Ok((*one).clone()),
        many => Err(task_error(
            Code::IndexPrimaryKeyMultipleCandidatesFound,
            format!(
                "The primary key inference failed as the engine found {} fields ending with `id` in their names: '{}' and '{}'. Please specify the primary key manually using the `primaryKey` query parameter.",
                many.len(), many[0], many[1]
            ),
        )),
    }
}

/// Is `s` a valid string document id?
pub fn valid_id_str(s: &str) -> bool {
    !s.is_empty() && s.len() <= 511 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn invalid_id(v: &Value) -> ApiError {
    task_error(
        Code::InvalidDocumentId,
        format!(
            "Document identifier `{v}` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes."
        ),
    )
}

/// The external id of `doc` under primary key `pk` (which may be a dotted path).
pub fn document_id(doc: &Document, pk: &str) -> Result<String, ApiError> {
    let value = lookup(doc, pk);
    match value {
        None => Err(task_error(
            Code::MissingDocumentId,
            format!("Document doesn't have a `{pk}` attribute: `{}`.", Value::Object(doc.clone())),
        )),
        Some(Value::String(s)) => {
            if valid_id_str(s) {
                Ok(s.clone())
            } else {
                Err(invalid_id(&Value::String(s.clone())))
            }
        }
        Some(Value::Number(n)) if !n.is_f64() => Ok(n.to_string()),
        Some(other) => Err(invalid_id(other)),
    }
}

fn lookup<'d>(doc: &'d Document, path: &str) -> Option<&'d Value> {
    if let Some(v) = doc.get(path) {
        return Some(v);
    }
    let (head, tail) = path.split_once('.')?;
    lookup(doc.get(head)?.as_object()?, tail)
}

/// A document id given in a URL or a delete-batch payload, as milli's external id.
pub fn external_id_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if !n.is_f64() => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_ndjson_and_csv() {
        let d = parse_documents(br#"[{"id":1},{"id":2}]"#, Format::Json, b',').unwrap();
        assert_eq!(d.len(), 2);
        let d = parse_documents(br#"{"id":1}"#, Format::Json, b',').unwrap();
        assert_eq!(d.len(), 1);
        let d = parse_documents(b"{\"id\":1}\n{\"id\":2}\n", Format::NdJson, b',').unwrap();
        assert_eq!(d.len(), 2);
        let csv = "id,title,year:number,rating:number,director\n11,\"Steamboat Bill, Jr.\",1928,7.9,Buster Keaton\n";
        let d = parse_documents(csv.as_bytes(), Format::Csv, b',').unwrap();
        assert_eq!(
            Value::Object(d[0].clone()),
            json!({"id": "11", "title": "Steamboat Bill, Jr.", "year": 1928, "rating": 7.9, "director": "Buster Keaton"})
        );
        let d = parse_documents(b"id;ok:boolean\n1;true\n", Format::Csv, b';').unwrap();
        assert_eq!(Value::Object(d[0].clone()), json!({"id": "1", "ok": true}));
    }

    #[test]
    fn malformed_and_missing() {
        let e = parse_documents(b"[{\"id\": 1,", Format::Json, b',').unwrap_err();
        assert_eq!(
            e.body()["message"],
            "The `json` payload provided is malformed. `Couldn't serialize document value: EOF while parsing an object at line 1 column 10`."
        );
        assert_eq!(e.code_name(), "malformed_payload");
        assert_eq!(parse_documents(b"", Format::Json, b',').unwrap_err().code_name(), "missing_payload");
        assert_eq!(parse_documents(b"[1]", Format::Json, b',').unwrap_err().code_name(), "malformed_payload");
        assert_eq!(parse_documents(b"n\nabc\n", Format::Csv, b',').map(|d| d.len()).unwrap(), 1);
        assert!(parse_documents(b"n:number\nabc\n", Format::Csv, b',').is_err());
    }

    #[test]
    fn content_types() {
        assert_eq!(format_from_content_type(Some("application/json; charset=utf-8")).unwrap(), Format::Json);
        let e = format_from_content_type(Some("application/xml")).unwrap_err();
        assert_eq!(e.status().as_u16(), 415);
        assert_eq!(
            e.body()["message"],
            "The Content-Type `application/xml` is invalid. Accepted values for the Content-Type header are: `application/json`, `application/x-ndjson`, `text/csv`"
        );
    }

    #[test]
    fn primary_key_inference_and_ids() {
        let d = json!({"movie_id": "a1", "title": "x"}).as_object().unwrap().clone();
        assert_eq!(infer_primary_key(Some(&d)).unwrap(), "movie_id");
        let d = json!({"id": 1, "movie_id": 2}).as_object().unwrap().clone();
        let e = infer_primary_key(Some(&d)).unwrap_err();
        assert_eq!(e.body()["message"], "The primary key inference failed as the engine found 2 fields ending with `id` in their names: 'id' and 'movie_id'. Please specify the primary key manually using the `primaryKey` query parameter.");
        let d = json!({"title": "x"}).as_object().unwrap().clone();
        assert_eq!(infer_primary_key(Some(&d)).unwrap_err().code_name(), "index_primary_key_no_candidate_found");
        let d = json!({"id": "bad id!"}).as_object().unwrap().clone();
        assert_eq!(document_id(&d, "id").unwrap_err().body()["message"], "Document identifier `\"bad id!\"` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes.");
        let d = json!({"title": "no id"}).as_object().unwrap().clone();
        assert_eq!(document_id(&d, "id").unwrap_err().body()["message"], "Document doesn't have a `id` attribute: `{\"title\":\"no id\"}`.");
        let d = json!({"id": 7}).as_object().unwrap().clone();
        assert_eq!(document_id(&d, "id").unwrap(), "7");
        let d = json!({"id": 1.5}).as_object().unwrap().clone();
        assert!(document_id(&d, "id").is_err());
    }
}

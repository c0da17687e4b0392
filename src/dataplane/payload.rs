//! Parsing document payloads exactly as Meilisearch accepts them: `application/json`
//! (an array of objects, or one object), `application/x-ndjson` (one object per line) and
//! `text/csv` (header row; `name:type` headers with type `string`, `number` or `boolean`;
//! untyped columns are strings; empty cells are `null`).

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult, Code};

pub type Document = Map<String, Value>;

/// The three payload formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    Json,
    Ndjson,
    Csv,
}

impl PayloadFormat {
    fn name(self) -> &'static str {
        match self {
            PayloadFormat::Json => "json",
            PayloadFormat::Ndjson => "ndjson",
            PayloadFormat::Csv => "csv",
        }
    }
}

const ACCEPTED: &str = "Accepted values for the Content-Type header are: `application/json`, `application/x-ndjson`, `text/csv`";

/// Picks the format from a `Content-Type` header value (parameters such as `charset` ignored).
pub fn format_of(content_type: Option<&str>) -> ApiResult<PayloadFormat> {
    let Some(ct) = content_type else {
        return Err(ApiError::new(
            Code::MissingContentType,
            format!("A Content-Type header is missing. {ACCEPTED}"),
        ));
    };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(PayloadFormat::Json),
        "application/x-ndjson" => Ok(PayloadFormat::Ndjson),
        "text/csv" => Ok(PayloadFormat::Csv),
        _ => Err(ApiError::new(
            Code::InvalidContentType,
            format!("The Content-Type `{ct}` is invalid. {ACCEPTED}"),
        )),
    }
}

fn malformed(format: PayloadFormat, detail: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        Code::MalformedPayload,
        format!("The `{}` payload provided is malformed. `{detail}`.", format.name()),
    )
}

/// Parses a payload into documents. `csv_delimiter` defaults to `,`.
pub fn parse_documents(format: PayloadFormat, body: &[u8], csv_delimiter: Option<u8>) -> ApiResult<Vec<Document>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(Code::MissingPayload, format!("A {} payload is missing.", format.name())));
    }
    match format {
        PayloadFormat::Json => parse_json(body),
        PayloadFormat::Ndjson => parse_ndjson(body),
        PayloadFormat::Csv => parse_csv(body, csv_delimiter.unwrap_or(b',')),
    }
}

fn parse_json(body: &[u8]) -> ApiResult<Vec<Document>> {
    let err = |e: serde_json::Error| malformed(PayloadFormat::Json, format!("Couldn't serialize document value: {e}"));
    // Syntax first (as a generic value, which gives the messages Meilisearch gives), then shape.
    serde_json::from_slice::<Box<serde_json::value::RawValue>>(body).map_err(err)?;
    let value: Value = serde_json::from_slice(body).map_err(err)?;
    match value {
        Value::Object(d) => Ok(vec![d]),
        v @ Value::Array(_) => serde_json::from_value::<Vec<Document>>(v).map_err(err),
        other => serde_json::from_value::<Vec<Document>>(other).map_err(err),
    }
}

fn parse_ndjson(body: &[u8]) -> ApiResult<Vec<Document>> {
    let mut out = Vec::new();
    for doc in serde_json::Deserializer::from_slice(body).into_iter::<Document>() {
        out.push(doc.map_err(|e| malformed(PayloadFormat::Ndjson, format!("Couldn't serialize document value: {e}")))?);
    }
    Ok(out)
}

#[derive(Clone, Copy)]
enum CsvType {
    String,
    Number,
    Boolean,
}

fn parse_csv(body: &[u8], delimiter: u8) -> ApiResult<Vec<Document>> {
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).has_headers(true).from_reader(body);
    let headers = reader.headers().map_err(|e| malformed(PayloadFormat::Csv, e))?.clone();
    let mut columns = Vec::with_capacity(headers.len());
    for h in headers.iter() {
        let (name, ty) = match h.rsplit_once(':') {
            Some((name, "string")) => (name, CsvType::String),
            Some((name, "number")) => (name, CsvType::Number),
            Some((name, "boolean")) => (name, CsvType::Boolean),
            _ => (h, CsvType::String),
        };
        columns.push((name.to_string(), ty));
    }
    let mut out = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| malformed(PayloadFormat::Csv, e))?;
        let mut doc = Document::new();
        for ((name, ty), cell) in columns.iter().zip(record.iter()) {
            let value = if cell.is_empty() {
                Value::Null
            } else {
                match ty {
                    CsvType::String => Value::String(cell.to_string()),
                    CsvType::Number => parse_csv_number(cell.trim()).ok_or_else(|| {
                        malformed(
                            PayloadFormat::Csv,
                            format!("Error parsing number {cell:?} at line {}: invalid float literal", line + 1),
                        )
                    })?,
                    CsvType::Boolean => match cell.trim() {
                        "true" => Value::Bool(true),
                        "false" => Value::Bool(false),
                        _ => {
                            return Err(malformed(
                                PayloadFormat::Csv,
                                format!("Error parsing boolean {cell:?} at line {}: provided string was not `true` or `false`", line + 1),
                            ))
                        }
                    },
                }
            };
            doc.insert(name.clone(), value);
        }
        out.push(doc);
    }
    Ok(out)
}

fn parse_csv_number(s: &str) -> Option<Value> {
    if let Ok(i) = s.parse::<i64>() {
        return Some(Value::from(i));
    }
    let f: f64 = s.parse().ok()?;
    serde_json::Number::from_f64(f).map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_array_object_and_errors() {
        let d = parse_documents(PayloadFormat::Json, br#"[{"id":1},{"id":"a"}]"#, None).unwrap();
        assert_eq!(d.len(), 2);
        let d = parse_documents(PayloadFormat::Json, br#"{"id":1}"#, None).unwrap();
        assert_eq!(d.len(), 1);
        let e = parse_documents(PayloadFormat::Json, br#"[{"id": 1,"#, None).unwrap_err();
        // Recorded from Meilisearch 1.50.
        assert_eq!(
            e.body()["message"],
            "The `json` payload provided is malformed. `Couldn't serialize document value: EOF while parsing an object at line 1 column 10`."
        );
        assert_eq!(e.code_name(), "malformed_payload");
        assert_eq!(parse_documents(PayloadFormat::Json, b"  ", None).unwrap_err().code_name(), "missing_payload");
    }

    #[test]
    fn ndjson_lines() {
        let d = parse_documents(PayloadFormat::Ndjson, b"{\"id\":1}\n{\"id\":2}\n", None).unwrap();
        assert_eq!(d.len(), 2);
        assert!(parse_documents(PayloadFormat::Ndjson, b"{\"id\":1}\n{\"id\":", None).is_err());
    }

    #[test]
    fn csv_typed_headers_as_recorded() {
        let body = b"id,title,year:number,rating:number,director\n11,\"Steamboat Bill, Jr.\",1928,7.9,Buster Keaton\n";
        let d = parse_documents(PayloadFormat::Csv, body, None).unwrap();
        assert_eq!(
            Value::Object(d[0].clone()),
            json!({"id": "11", "title": "Steamboat Bill, Jr.", "year": 1928, "rating": 7.9, "director": "Buster Keaton"})
        );
        let keys: Vec<_> = d[0].keys().cloned().collect();
        assert_eq!(keys, ["id", "title", "year", "rating", "director"]);
    }

    #[test]
    fn content_types() {
        assert_eq!(format_of(Some("application/json; charset=utf-8")).unwrap(), PayloadFormat::Json);
        let e = format_of(Some("application/xml")).unwrap_err();
        assert_eq!(e.status().as_u16(), 415);
        assert_eq!(
            e.body()["message"],
            "The Content-Type `application/xml` is invalid. Accepted values for the Content-Type header are: `application/json`, `application/x-ndjson`, `text/csv`"
        );
    }
}

//! JSON request bodies as Meilisearch reads them (actix-web's JSON extractor, then serde_json):
//! the content-type rule, and the wording of empty and malformed payloads.

use serde_json::Value;

use crate::error::{ApiError, ApiResult, Code};

const ACCEPTED: &str = "Accepted values for the Content-Type header are: `application/json`";

/// actix-web's rule: the media type's subtype is `json` or ends with `+json` (parameters such
/// as `charset` allowed). No header: `missing_content_type`; another type: `invalid_content_type`.
pub fn check_content_type(header: Option<&[u8]>) -> ApiResult<()> {
    let Some(raw) = header else {
        return Err(ApiError::new(Code::MissingContentType, format!("A Content-Type header is missing. {ACCEPTED}")));
    };
    let text = String::from_utf8_lossy(raw);
    let essence = text.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let json = essence
        .split_once('/')
        .map(|(ty, sub)| !ty.is_empty() && (sub == "json" || sub.ends_with("+json")))
        .unwrap_or(false);
    if json {
        Ok(())
    } else {
        Err(ApiError::new(Code::InvalidContentType, format!("The Content-Type `{text}` is invalid. {ACCEPTED}")))
    }
}

/// Parses a JSON body. Only an empty body is "missing" (serde_json's EOF at line 1, column
/// 0); whitespace, syntax errors and invalid UTF-8 are `malformed_payload` with serde_json's
/// message.
pub fn parse(bytes: &[u8]) -> ApiResult<Value> {
    if bytes.is_empty() {
        return Err(ApiError::new(Code::MissingPayload, "A json payload is missing."));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let e = match utf8_error_at_string_end(bytes, &e) {
            Some((line, column)) => format!("invalid unicode code point at line {line} column {column}"),
            None => e.to_string(),
        };
        ApiError::new(Code::MalformedPayload, format!("The json payload provided is malformed. `{e}`."))
    })
}

/// Meilisearch's JSON parser checks a string's UTF-8 once the whole string is read, so it
/// places the error at the string's closing quote; ours places it at the bad byte. Returns
/// the position Meilisearch reports (line, 1-based column of the closing quote).
fn utf8_error_at_string_end(bytes: &[u8], e: &serde_json::Error) -> Option<(usize, usize)> {
    if !e.to_string().starts_with("invalid unicode code point") {
        return None;
    }
    let line_start = bytes.split_inclusive(|b| *b == b'\n').take(e.line() - 1).map(<[u8]>::len).sum::<usize>();
    let mut i = line_start + e.column().checked_sub(1)?;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some((e.line(), i - line_start + 1)),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meilisearch_wording() {
        assert_eq!(parse(b"").unwrap_err().code_name(), "missing_payload");
        assert_eq!(parse(b"  ").unwrap_err().body()["message"], "The json payload provided is malformed. `EOF while parsing a value at line 1 column 2`.");
        let e = parse(b"{\"l\xFFimit\":1}").unwrap_err();
        assert_eq!(e.body()["message"], "The json payload provided is malformed. `invalid unicode code point at line 1 column 9`.");
        assert!(check_content_type(Some(b"application/json; charset=utf-8")).is_ok());
        assert!(check_content_type(Some(b"application/vnd.api+json")).is_ok());
        assert_eq!(check_content_type(Some(b"text/plain")).unwrap_err().code_name(), "invalid_content_type");
        assert_eq!(check_content_type(None).unwrap_err().code_name(), "missing_content_type");
    }
}

//! Document ids, validated as milli validates primary-key values.

use std::fmt;

use serde_json::Value;

/// A document id as a node stores it (its external id): a string of 1 to 511 bytes of ASCII
/// letters, digits, `-` and `_`, or an integer (written in decimal). No other document can
/// exist, so an id outside these rules names no document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DocumentId(String);

impl DocumentId {
    /// A document id given as text (a URL path segment).
    pub fn parse(s: &str) -> Option<DocumentId> {
        valid_str(s).then(|| DocumentId(s.to_string()))
    }

    /// A primary-key value from a document or a JSON list of ids.
    pub fn from_value(v: &Value) -> Option<DocumentId> {
        match v {
            Value::String(s) => Self::parse(s),
            Value::Number(n) if !n.is_f64() => Some(DocumentId(n.to_string())),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// milli's rule for string ids.
pub fn valid_str(s: &str) -> bool {
    !s.is_empty() && s.len() <= 511 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn milli_rules() {
        assert_eq!(DocumentId::parse("abc-_9").unwrap().as_str(), "abc-_9");
        assert_eq!(DocumentId::from_value(&json!(-12)).unwrap().as_str(), "-12");
        assert!(DocumentId::parse(&"a".repeat(511)).is_some());
        for bad in ["", "..", ".", "../keys", "a/b", "a%2Fb", "a?b", "a#b", "a\0b", "é", &"a".repeat(512)] {
            assert!(DocumentId::parse(bad).is_none(), "{bad}");
        }
        assert!(DocumentId::from_value(&json!(1.5)).is_none());
        assert!(DocumentId::from_value(&json!(null)).is_none());
    }
}

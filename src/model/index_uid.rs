//! Index uids, validated as Meilisearch validates them.

use std::fmt;

use crate::error::{ApiError, Code};

/// An index uid: 1 to 400 bytes of ASCII letters, digits, `-` and `_` (Meilisearch's rule;
/// its error message says 512 bytes, and is kept word for word). Nothing else can reach a
/// node URL, so a uid never needs escaping.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IndexUid(String);

/// Meilisearch's longest accepted uid, in bytes.
pub const MAX_LEN: usize = 400;

impl IndexUid {
    /// Validates `uid`; the error is Meilisearch's `invalid_index_uid` (400).
    pub fn parse(uid: &str) -> Result<IndexUid, ApiError> {
        if Self::is_valid(uid) {
            Ok(IndexUid(uid.to_string()))
        } else {
            Err(Self::error(uid))
        }
    }

    pub fn is_valid(uid: &str) -> bool {
        !uid.is_empty() && uid.len() <= MAX_LEN && uid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }

    /// Meilisearch's error for an invalid uid, naming it as given.
    pub fn error(uid: &str) -> ApiError {
        ApiError::new(
            Code::InvalidIndexUid,
            format!(
                "`{uid}` is not a valid index uid. Index uid can be an integer or a string containing only alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes."
            ),
        )
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IndexUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for IndexUid {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for IndexUid {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meilisearch_rules() {
        for ok in ["movies", "a", "A-b_9", "123", &"x".repeat(400)] {
            assert!(IndexUid::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../keys", "..", ".", "a/b", "a?b", "a#b", "a\0b", "a b", "é", "%2e", &"x".repeat(401)] {
            let e = IndexUid::parse(bad).unwrap_err();
            assert_eq!(e.code_name(), "invalid_index_uid", "{bad}");
            assert_eq!(e.status().as_u16(), 400);
        }
        let e = IndexUid::parse("../keys").unwrap_err();
        assert_eq!(
            e.body()["message"],
            "`../keys` is not a valid index uid. Index uid can be an integer or a string containing only alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes."
        );
    }
}

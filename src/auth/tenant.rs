//! Tenant tokens: JWTs (HS256, HS384 or HS512) signed with an API key's value, carrying
//! `apiKeyUid`, `searchRules` and an optional `exp`, decoded and refused as Meilisearch does.

use std::collections::{HashMap, HashSet};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::pattern_matches;

/// A token's rules for one index pattern.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IndexSearchRules {
    pub filter: Option<Value>,
}

/// The `searchRules` claim: a list of index patterns, or a map of pattern to rules (`null`
/// or `{"filter": ...}`). Patterns in tokens are not validated (as in Meilisearch).
/// The name is Meilisearch's: it appears in its decoding error messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SearchRules {
    Set(HashSet<String>),
    Map(HashMap<String, Option<IndexSearchRules>>),
}

impl SearchRules {
    fn patterns(&self) -> Vec<&String> {
        match self {
            SearchRules::Set(s) => s.iter().collect(),
            SearchRules::Map(m) => m.keys().collect(),
        }
    }

    pub fn index_authorized(&self, index: &str) -> bool {
        self.patterns().into_iter().any(|p| pattern_matches(p, index))
    }

    /// Whether the rules hold the `*` pattern.
    pub fn index_authorized_all(&self) -> bool {
        self.patterns().iter().any(|p| p.as_str() == "*")
    }

    /// The rule's filter for `index`: of the patterns matching it, the one with the greatest
    /// (exact, length) decides; `null`, `{}` and `{"filter": null}` mean none.
    pub fn filter_for(&self, index: &str) -> Option<Value> {
        match self {
            SearchRules::Set(_) => None,
            SearchRules::Map(m) => m
                .iter()
                .filter(|(p, _)| pattern_matches(p, index))
                .max_by_key(|(p, _)| (!p.ends_with('*'), p.len()))
                .and_then(|(_, rule)| rule.as_ref())
                .and_then(|r| r.filter.clone())
                .filter(|f| !f.is_null()),
        }
    }

    /// The patterns, sorted, in Rust's debug list form (Meilisearch's refusal message).
    pub fn sorted_patterns(&self) -> String {
        let mut v = self.patterns();
        v.sort_unstable();
        format!("{v:?}")
    }
}

/// The claims Meilisearch reads (unknown claims are ignored). Field names and types are
/// Meilisearch's, so that decoding errors read the same.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    pub search_rules: SearchRules,
    pub exp: Option<i64>,
    pub api_key_uid: Uuid,
}

fn validation() -> Validation {
    let mut v = Validation::default();
    v.validate_exp = false;
    v.required_spec_claims.remove("exp");
    v.algorithms = vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
    v
}

/// Decodes `token` as a tenant token. `Ok(None)`: it is not a JWT (then it is looked up as an
/// API key). `Err(message)`: a refusal with Meilisearch's message (403 `invalid_api_key`).
/// The parent key's existence and rights are checked by the caller.
pub fn decode(token: &str, master_key: &str) -> Result<Option<Claims>, String> {
    let could_not = |e: jsonwebtoken::errors::Error| format!("Could not decode tenant token, {e}.");
    let uid = match jsonwebtoken::dangerous::insecure_decode::<Claims>(token) {
        Ok(data) => data.claims.api_key_uid,
        Err(e) if matches!(e.kind(), ErrorKind::InvalidToken) => return Ok(None),
        Err(e) => return Err(could_not(e)),
    };
    let secret = super::derive_key(master_key, &uid);
    let data = match jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret.as_bytes()), &validation()) {
        Ok(d) => d,
        Err(e) if matches!(e.kind(), ErrorKind::InvalidToken) => return Ok(None),
        Err(e) => return Err(could_not(e)),
    };
    if let Some(exp) = data.claims.exp {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        if now > exp {
            return Err(format!("Tenant token expired. Was valid up to `{exp}` and we're now `{now}`."));
        }
    }
    Ok(Some(data.claims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    fn sign(claims: &Value, secret: &str, alg: Algorithm) -> String {
        encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    }

    #[test]
    fn decodes_and_refuses_as_meilisearch() {
        let uid = Uuid::new_v4();
        let value = super::super::derive_key("m", &uid);
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let t = sign(&json!({"apiKeyUid": uid, "searchRules": ["*"]}), &value, alg);
            assert!(decode(&t, "m").unwrap().is_some());
        }
        let wrong = sign(&json!({"apiKeyUid": uid, "searchRules": ["*"]}), "other", Algorithm::HS256);
        assert_eq!(decode(&wrong, "m").unwrap_err(), "Could not decode tenant token, InvalidSignature.");
        let no_rules = sign(&json!({"apiKeyUid": uid}), &value, Algorithm::HS256);
        assert!(decode(&no_rules, "m").unwrap_err().starts_with("Could not decode tenant token, JSON error: missing field `searchRules`"));
        let bad_rules = sign(&json!({"apiKeyUid": uid, "searchRules": 3}), &value, Algorithm::HS256);
        assert!(decode(&bad_rules, "m")
            .unwrap_err()
            .contains("data did not match any variant of untagged enum SearchRules"));
        let expired = sign(&json!({"apiKeyUid": uid, "searchRules": ["*"], "exp": 1}), &value, Algorithm::HS256);
        assert!(decode(&expired, "m").unwrap_err().starts_with("Tenant token expired. Was valid up to `1` and we're now `"));
        let aud = sign(&json!({"apiKeyUid": uid, "searchRules": ["*"], "aud": "x"}), &value, Algorithm::HS256);
        assert_eq!(decode(&aud, "m").unwrap_err(), "Could not decode tenant token, InvalidAudience.");
        assert!(decode(&value, "m").unwrap().is_none(), "an API key is not a JWT");
    }
}

//! Miroir's own authentication, as Meilisearch 1.50 does it: API keys (owned by Miroir, kept
//! in the task store, values derived from the master key), tenant tokens (JWTs signed with a
//! key's value), the action each route needs and the indexes a credential reaches.
//!
//! The HTTP middleware (`crate::http::auth`) runs [`authenticate`] before any handler and puts
//! the resulting [`AuthContext`] into the request's extensions; handlers use it for what only
//! they can check (the index of each multi-search query, the filter of a tenant token, the
//! uid of an index being created). Nodes never see a client key or a token: Miroir talks to
//! them with the node master key only.
//!
//! Secrets (the master key, key values, tokens) never go into a log line or an error message.

pub mod actions;
pub mod tenant;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, Code};
use crate::store::{ApiKeyRecord, TaskStore};

pub use tenant::SearchRules;

type HmacSha256 = Hmac<Sha256>;

pub const MISSING_AUTHORIZATION_HEADER: &str =
    "The Authorization header is missing. It must use the bearer authorization method.";
pub const INVALID_API_KEY: &str = "The provided API key is invalid.";
pub const MISSING_MASTER_KEY: &str =
    "Meilisearch is running without a master key. To access this API endpoint, you must have set a master key at launch.";

/// The value of the key `uid` under `master_key`: lowercase hex of
/// HMAC-SHA256(master key, uid lowercase-hyphenated), as Meilisearch derives it. Stable across
/// restarts and Miroir pods; never stored.
pub fn derive_key(master_key: &str, uid: &Uuid) -> String {
    let mut mac = HmacSha256::new_from_slice(master_key.as_bytes()).expect("HMAC takes any key length");
    mac.update(uid.hyphenated().to_string().as_bytes());
    let bytes = mac.finalize().into_bytes();
    let mut out = String::with_capacity(64);
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    s.as_bytes().chunks(2).map(|p| Some(digit(p[0])? << 4 | digit(p[1])?)).collect()
}

/// Whether `presented` is the value of key `uid` (hex, any case; compared in constant time).
pub fn key_matches(master_key: &str, uid: &Uuid, presented: &str) -> bool {
    let Some(bytes) = hex_decode(presented) else { return false };
    let mut mac = HmacSha256::new_from_slice(master_key.as_bytes()).expect("HMAC takes any key length");
    mac.update(uid.hyphenated().to_string().as_bytes());
    mac.verify_slice(&bytes).is_ok()
}

/// The first stored key whose value is `presented`.
pub fn find_by_value<'a>(master_key: &str, keys: &'a [ApiKeyRecord], presented: &str) -> Option<&'a ApiKeyRecord> {
    keys.iter().find(|k| key_matches(master_key, &k.uid, presented))
}

/// Constant-time equality (the master key and the admin key).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// ---------------------------------------------------------------- index patterns

/// Whether an index uid pattern (`*`, `movies`, `movies_*`) matches `index`.
pub fn pattern_matches(pattern: &str, index: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => index.starts_with(prefix),
        None => pattern == index,
    }
}

/// Validates a pattern of a key's `indexes`; the error is the part Meilisearch names (the
/// prefix only, for `prefix*`).
pub fn validate_pattern(pattern: &str) -> Result<(), &str> {
    let checked = match pattern.strip_suffix('*') {
        Some("") => return Ok(()),
        Some(prefix) => prefix,
        None => pattern,
    };
    if crate::model::IndexUid::is_valid(checked) {
        Ok(())
    } else {
        Err(checked)
    }
}

/// Rust's debug form of a sorted, de-duplicated list (`["a", "b*"]`), as Meilisearch's
/// messages print the authorized indexes.
fn sorted_list<'a>(items: impl Iterator<Item = &'a String>) -> String {
    let mut v: Vec<&String> = items.collect();
    v.sort_unstable();
    v.dedup();
    format!("{v:?}")
}

// ---------------------------------------------------------------- what the middleware learned

/// The key a request was authenticated with (directly or as a tenant token's parent).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyGrant {
    pub uid: Uuid,
    /// As stored (unexpanded).
    pub actions: Vec<String>,
    pub indexes: Vec<String>,
    pub expires_at: Option<OffsetDateTime>,
}

impl KeyGrant {
    fn from_record(k: &ApiKeyRecord) -> KeyGrant {
        KeyGrant { uid: k.uid, actions: k.actions.clone(), indexes: k.indexes.clone(), expires_at: k.expires_at }
    }

    pub fn index_authorized(&self, index: &str) -> bool {
        self.indexes.iter().any(|p| pattern_matches(p, index))
    }

    fn all_indexes(&self) -> bool {
        self.indexes.iter().any(|p| p == "*")
    }

    /// Meilisearch's `is_key_authorized`: holds `action` (after expansion) for `index` (or,
    /// on index-less routes, for all indexes, or any when the handler checks indexes), and
    /// is not expired (`now < expiresAt`).
    pub fn authorizes(&self, action: &str, index: Option<&str>, now: OffsetDateTime) -> bool {
        if !actions::expand(&self.actions).contains(action) {
            return false;
        }
        let scoped = self.all_indexes()
            || match index {
                Some(i) => self.index_authorized(i),
                None => actions::scope(action) == Some(actions::Scope::HandlerChecksIndex) && !self.indexes.is_empty(),
            };
        scoped && self.expires_at.is_none_or(|e| now < e)
    }
}

/// What the auth middleware learned about a request, for handlers (request extensions).
/// Holds no secret: neither the key value nor the token.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthContext {
    /// No master key is configured: everything but `/keys` is open.
    Open,
    /// The master key (or, on `/_miroir/*`, the admin key).
    Master,
    /// An API key.
    ApiKey(KeyGrant),
    /// A tenant token, with its parent key.
    TenantToken { key: KeyGrant, rules: SearchRules },
}

impl AuthContext {
    /// Whether the credential reaches `index` (the key's `indexes` and the token's rules).
    pub fn index_authorized(&self, index: &str) -> bool {
        match self {
            AuthContext::Open | AuthContext::Master => true,
            AuthContext::ApiKey(k) => k.index_authorized(index),
            AuthContext::TenantToken { key, rules } => key.index_authorized(index) && rules.index_authorized(index),
        }
    }

    /// Whether the credential reaches every index (the key's `indexes` hold `*`, and so do the
    /// token's rules). When not, index-less listings show only what it reaches.
    pub fn all_indexes_authorized(&self) -> bool {
        match self {
            AuthContext::Open | AuthContext::Master => true,
            AuthContext::ApiKey(k) => k.all_indexes(),
            AuthContext::TenantToken { key, rules } => key.all_indexes() && rules.index_authorized_all(),
        }
    }

    /// Whether a task shows up for this credential (`GET /tasks`, `GET /tasks/{uid}`, and
    /// the tasks `DELETE /tasks` and `POST /tasks/cancel` act on): with a restricted one,
    /// only tasks of one reachable index, as Meilisearch filters them.
    pub fn task_visible(&self, index_uid: Option<&str>, kind: &str) -> bool {
        if self.all_indexes_authorized() {
            return true;
        }
        const NOT_OF_ONE_INDEX: &[&str] =
            &["indexSwap", "taskCancelation", "taskDeletion", "dumpCreation", "snapshotCreation", "upgradeDatabase", "export"];
        index_uid.is_some_and(|i| self.index_authorized(i)) && !NOT_OF_ONE_INDEX.contains(&kind)
    }

    /// The filter a search of `index` runs with: the client's filter fused with the tenant
    /// token's rule for that index (Meilisearch's `fuse_filters`: the client's conditions,
    /// then the rule's, as one flat AND array). Without a token rule it is the client's.
    pub fn fused_filter(&self, index: &str, client_filter: Option<&Value>) -> Option<Value> {
        let client = client_filter.filter(|v| !v.is_null()).cloned();
        let rule = match self {
            AuthContext::TenantToken { rules, .. } => rules.filter_for(index),
            _ => None,
        };
        match (client, rule) {
            (None, rule) => rule,
            (client, None) => client,
            (Some(c), Some(r)) => {
                let mut all = match c {
                    Value::Array(a) => a,
                    other => vec![other],
                };
                match r {
                    Value::Array(a) => all.extend(a),
                    other => all.push(other),
                }
                Some(Value::Array(all))
            }
        }
    }

    /// The tenant token's filter for `index` alone (`None` without a token or a rule).
    /// `/similar` also requires the reference document to match it, as Meilisearch does.
    pub fn tenant_filter(&self, index: &str) -> Option<Value> {
        match self {
            AuthContext::TenantToken { rules, .. } => rules.filter_for(index),
            _ => None,
        }
    }

    /// Applies [`AuthContext::fused_filter`] to a search body (`filter` replaced, or set).
    pub fn fuse_into(&self, index: &str, body: &mut serde_json::Map<String, Value>) {
        if !matches!(self, AuthContext::TenantToken { .. }) {
            return;
        }
        if let Some(f) = self.fused_filter(index, body.get("filter")) {
            body.insert("filter".into(), f);
        }
    }

    /// Multi-search: every query's index must be reachable by the key and the token
    /// (otherwise ``Inside `.queries[i]`: The provided API key is invalid.``), and each
    /// query gets its fused filter. Queries whose `indexUid` is missing or not a string are
    /// left for the request validation to refuse.
    pub fn authorize_multi_search(&self, body: &mut Value) -> ApiResult<()> {
        if matches!(self, AuthContext::Open | AuthContext::Master) {
            return Ok(());
        }
        let Some(queries) = body.get_mut("queries").and_then(Value::as_array_mut) else { return Ok(()) };
        for (i, q) in queries.iter_mut().enumerate() {
            let Some(q) = q.as_object_mut() else { continue };
            let Some(index) = q.get("indexUid").and_then(Value::as_str).map(str::to_string) else { continue };
            if !self.index_authorized(&index) {
                return Err(ApiError::new(Code::InvalidApiKey, format!("Inside `.queries[{i}]`: {INVALID_API_KEY}")));
            }
            self.fuse_into(&index, q);
        }
        Ok(())
    }

    /// `POST /indexes`: whether the credential may create an index named `uid`.
    pub fn may_create_index(&self, uid: &str) -> bool {
        match self {
            AuthContext::Open | AuthContext::Master => true,
            AuthContext::ApiKey(k) => {
                k.authorizes("indexes.create", None, OffsetDateTime::now_utc()) && k.index_authorized(uid)
            }
            AuthContext::TenantToken { .. } => false,
        }
    }
}

// ---------------------------------------------------------------- the algorithm

/// The `Authorization` header as Meilisearch reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bearer {
    /// No header.
    Absent,
    /// `Bearer <token>` (the token may be empty).
    Token(String),
}

/// Parses the header: split once on the first space, the scheme must be exactly `Bearer`
/// (else 401 `missing_authorization_header`, even without a master key; a non-UTF-8 value
/// counts as an empty one); `Bearer` alone is 403 `invalid_api_key`.
pub fn parse_authorization(header: Option<&[u8]>) -> ApiResult<Bearer> {
    let Some(raw) = header else { return Ok(Bearer::Absent) };
    let text = std::str::from_utf8(raw).unwrap_or("");
    let mut parts = text.splitn(2, ' ');
    match parts.next() {
        Some("Bearer") => match parts.next() {
            Some(token) => Ok(Bearer::Token(token.to_string())),
            None => Err(ApiError::new(Code::InvalidApiKey, INVALID_API_KEY)),
        },
        _ => Err(ApiError::new(Code::MissingAuthorizationHeader, MISSING_AUTHORIZATION_HEADER)),
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(Code::InvalidApiKey, message)
}

fn is_keys_action(action: &str) -> bool {
    matches!(action, "keys.get" | "keys.create" | "keys.update" | "keys.delete")
}

/// Decides whether a request needing `action` (on `index`, the route's `{index_uid}`, if
/// any) may run, as Meilisearch's `ActionPolicy` does, and what it may reach.
pub async fn authenticate(
    store: &dyn TaskStore,
    master_key: Option<&str>,
    bearer: &Bearer,
    action: &'static str,
    index: Option<&str>,
) -> ApiResult<AuthContext> {
    let Some(master) = master_key else {
        return if is_keys_action(action) {
            Err(ApiError::new(Code::MissingMasterKey, MISSING_MASTER_KEY))
        } else {
            Ok(AuthContext::Open)
        };
    };
    let Bearer::Token(token) = bearer else {
        return Err(ApiError::new(Code::MissingAuthorizationHeader, MISSING_AUTHORIZATION_HEADER));
    };
    if constant_time_eq(token.as_bytes(), master.as_bytes()) {
        return Ok(AuthContext::Master);
    }
    let store_err = crate::dataplane::tasks::store_error;
    // Only search routes take tenant tokens; anywhere else a JWT is looked up as a key.
    let token_claims = if action == "search" { tenant::decode(token, master).map_err(invalid)? } else { None };
    let (record, rules) = match token_claims {
        Some(claims) => {
            let key = store.get_api_key(claims.api_key_uid).await.map_err(store_err)?;
            (key.ok_or_else(|| invalid(INVALID_API_KEY))?, Some(claims.search_rules))
        }
        None => {
            let keys = store.list_api_keys().await.map_err(store_err)?;
            (find_by_value(master, &keys, token).cloned().ok_or_else(|| invalid(INVALID_API_KEY))?, None)
        }
    };
    let key = KeyGrant::from_record(&record);
    if let Some(index) = index {
        if let Some(rules) = &rules {
            if !rules.index_authorized(index) {
                return Err(invalid(format!(
                    "The provided tenant token cannot acces the index `{index}`, allowed indexes are {}.",
                    rules.sorted_patterns()
                )));
            }
        }
        if !key.index_authorized(index) {
            return Err(invalid(if rules.is_some() {
                format!("The API key used to generate this tenant token cannot acces the index `{index}`.")
            } else {
                format!(
                    "The API key cannot acces the index `{index}`, authorized indexes are {}.",
                    sorted_list(key.indexes.iter())
                )
            }));
        }
    }
    if !key.authorizes(action, index, OffsetDateTime::now_utc()) {
        return Err(invalid(INVALID_API_KEY));
    }
    Ok(match rules {
        Some(rules) => AuthContext::TenantToken { key, rules },
        None => AuthContext::ApiKey(key),
    })
}

// ---------------------------------------------------------------- default keys

/// Meilisearch's four default keys (random uids, all indexes, no expiry), in the order it
/// inserts them (chat, read-only admin, admin, search), each a little newer than the one
/// before, so `GET /keys` lists search, admin, read-only admin, chat.
pub fn default_keys(now: OffsetDateTime) -> Vec<ApiKeyRecord> {
    let defs: [(&str, &str, &[&str]); 4] = [
        ("Default Chat API Key", "Use it to chat and search from the frontend", &["chatCompletions", "search"]),
        (
            "Default Read-Only Admin API Key",
            "Use it to read information across the whole database. Caution! Do not expose this key on a public frontend",
            &["*.get", "keys.get"],
        ),
        (
            "Default Admin API Key",
            "Use it for anything that is not a search operation. Caution! Do not expose it on a public frontend",
            &["*"],
        ),
        ("Default Search API Key", "Use it to search from the frontend", &["search"]),
    ];
    defs.iter()
        .enumerate()
        .map(|(i, (name, description, actions))| {
            let at = now + time::Duration::microseconds(i as i64);
            ApiKeyRecord {
                uid: Uuid::new_v4(),
                name: Some(name.to_string()),
                description: Some(description.to_string()),
                actions: actions.iter().map(|s| s.to_string()).collect(),
                indexes: vec!["*".into()],
                expires_at: None,
                created_at: at,
                updated_at: at,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_value_is_meilisearchs_hmac() {
        let uid = Uuid::nil();
        let v = derive_key("MASTER_KEY", &uid);
        assert_eq!(v, "aeb94973e0b6e912d94165430bbe87dee91a7c4f891ce19050c3910ec96977e9");
        assert!(key_matches("MASTER_KEY", &uid, &v));
        assert!(key_matches("MASTER_KEY", &uid, &v.to_uppercase()));
        assert!(!key_matches("OTHER", &uid, &v));
        assert!(!key_matches("MASTER_KEY", &uid, &v[..62]));
        assert!(!key_matches("MASTER_KEY", &uid, "zz"));
    }

    #[test]
    fn patterns() {
        assert!(pattern_matches("*", "x"));
        assert!(pattern_matches("mov*", "movies"));
        assert!(!pattern_matches("movies", "Movies"));
        assert!(pattern_matches("movies", "movies"));
        assert_eq!(validate_pattern("bad uid*"), Err("bad uid"));
        assert_eq!(validate_pattern("a*b"), Err("a*b"));
        assert_eq!(validate_pattern("ok_1-*"), Ok(()));
    }

    #[test]
    fn header_parsing() {
        assert_eq!(parse_authorization(None).unwrap(), Bearer::Absent);
        assert_eq!(parse_authorization(Some(b"Bearer abc")).unwrap(), Bearer::Token("abc".into()));
        assert_eq!(parse_authorization(Some(b"Bearer ")).unwrap(), Bearer::Token("".into()));
        assert_eq!(parse_authorization(Some(b"Bearer")).unwrap_err().code_name(), "invalid_api_key");
        assert_eq!(parse_authorization(Some(b"bearer abc")).unwrap_err().code_name(), "missing_authorization_header");
        assert_eq!(parse_authorization(Some(b"Basic abc")).unwrap_err().code_name(), "missing_authorization_header");
        assert_eq!(parse_authorization(Some(b"\xff\xfe")).unwrap_err().code_name(), "missing_authorization_header");
    }

    fn grant(actions: &[&str], indexes: &[&str]) -> KeyGrant {
        KeyGrant {
            uid: Uuid::nil(),
            actions: actions.iter().map(|s| s.to_string()).collect(),
            indexes: indexes.iter().map(|s| s.to_string()).collect(),
            expires_at: None,
        }
    }

    #[test]
    fn key_authorization() {
        let now = OffsetDateTime::now_utc();
        let k = grant(&["search", "version"], &["mov*"]);
        assert!(k.authorizes("search", Some("movies"), now));
        assert!(!k.authorizes("search", Some("books"), now));
        assert!(k.authorizes("search", None, now), "multi-search: the handler checks each index");
        assert!(!k.authorizes("version", None, now), "global action needs indexes [*]");
        assert!(grant(&["version"], &["*"]).authorizes("version", None, now));
        assert!(!grant(&["search"], &[]).authorizes("search", None, now));
        let mut expired = grant(&["*"], &["*"]);
        expired.expires_at = Some(now - time::Duration::seconds(1));
        assert!(!expired.authorizes("search", Some("x"), now));
        assert!(grant(&["documents.*"], &["*"]).authorizes("documents.add", Some("x"), now));
        assert!(!grant(&["documents.*"], &["*"]).authorizes("documents.*", Some("x"), now));
        assert!(grant(&["*"], &["*"]).authorizes("documents.*", Some("x"), now));
    }

    #[test]
    fn filters_fuse_as_meilisearch() {
        let rules: SearchRules = serde_json::from_value(json!({"*": {"filter": "b = 2"}, "mov*": {"filter": [["r1", "r2"]]}, "movies": null})).unwrap();
        let ctx = AuthContext::TenantToken { key: grant(&["search"], &["*"]), rules };
        assert_eq!(ctx.fused_filter("books", Some(&json!("a = 1"))), Some(json!(["a = 1", "b = 2"])));
        assert_eq!(ctx.fused_filter("books", None), Some(json!("b = 2")));
        assert_eq!(ctx.fused_filter("books", Some(&Value::Null)), Some(json!("b = 2")));
        assert_eq!(ctx.fused_filter("movies", Some(&json!("a = 1"))), Some(json!("a = 1")), "exact pattern wins, null = no rule");
        assert_eq!(ctx.fused_filter("movie", Some(&json!("x"))), Some(json!(["x", ["r1", "r2"]])));
        assert_eq!(
            ctx.fused_filter("books", Some(&json!([["a = 1", "a = 2"], "c = 3"]))),
            Some(json!([["a = 1", "a = 2"], "c = 3", "b = 2"]))
        );
        let plain = AuthContext::ApiKey(grant(&["search"], &["*"]));
        assert_eq!(plain.fused_filter("books", Some(&json!("a"))), Some(json!("a")));
        assert_eq!(plain.fused_filter("books", None), None);
    }

    #[test]
    fn defaults_list_in_meilisearchs_order() {
        let mut keys = default_keys(OffsetDateTime::now_utc());
        keys.sort_by_key(|k| std::cmp::Reverse(k.created_at));
        let names: Vec<_> = keys.iter().map(|k| k.name.clone().unwrap()).collect();
        assert_eq!(
            names,
            ["Default Search API Key", "Default Admin API Key", "Default Read-Only Admin API Key", "Default Chat API Key"]
        );
    }
}

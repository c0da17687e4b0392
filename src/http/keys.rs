//! `/keys` and `/keys/{uidOrKey}`: API keys owned by Miroir (kept in the task store, so every
//! Miroir pod sees the same keys), answered, validated and refused as Meilisearch 1.50 does.
//! A key's value is derived from the master key and its uid ([`crate::auth::derive_key`]):
//! it is shown in the key object and never stored. Nodes never see any of this.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::macros::{format_description, time};
use time::{Date, OffsetDateTime, PrimitiveDateTime};
use uuid::Uuid;

use super::{json_response, query_pairs, read_body};
use crate::auth::{self, actions};
use crate::dataplane::tasks::store_error;
use crate::dataplane::Proxy;
use crate::error::{describe_kind, ApiError, ApiResult, Code};
use crate::store::ApiKeyRecord;

const CREATE_FIELDS: &[&str] = &["description", "name", "uid", "actions", "indexes", "expiresAt"];
const PATCH_FIELDS: &[&str] = &["description", "name"];

// ---------------------------------------------------------------- deserr-style wording

/// deserr's "did you mean" (Damerau-Levenshtein; the allowance grows with the length).
pub(crate) fn did_you_mean(received: &str, accepted: &[&str]) -> String {
    let allowed = match received.len() {
        0..=3 => return String::new(),
        4..=7 => 1,
        8..=12 => 2,
        13..=17 => 3,
        18..=24 => 4,
        _ => 5,
    };
    accepted
        .iter()
        .map(|a| (a, strsim::damerau_levenshtein(received, a)))
        .filter(|(_, d)| *d <= allowed)
        .min_by_key(|(_, d)| *d)
        .map(|(a, _)| format!("did you mean `{a}`? "))
        .unwrap_or_default()
}

fn one_of(accepted: &[&str]) -> String {
    accepted.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
}

/// deserr's `found` part: `null`, or ``a string: `"x"` ``.
fn found(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        other => format!("{}: `{}`", describe_kind(other), serde_json::to_string(other).unwrap_or_default()),
    }
}

fn wrong_type(code: Code, at: &str, expected: &str, v: &Value) -> ApiError {
    ApiError::new(code, format!("Invalid value type at `{at}`: expected {expected}, but found {}", found(v)))
}

fn unknown_field(key: &str, accepted: &[&str]) -> ApiError {
    ApiError::new(
        Code::BadRequest,
        format!("Unknown field `{key}`: {}expected one of {}", did_you_mean(key, accepted), one_of(accepted)),
    )
}

/// The body of a JSON route, with actix's content-type rule and Meilisearch's payload errors.
async fn json_object(proxy: &Proxy, headers: &HeaderMap, body: Body) -> ApiResult<Map<String, Value>> {
    const ACCEPTED: &str = "Accepted values for the Content-Type header are: `application/json`";
    match headers.get(axum::http::header::CONTENT_TYPE) {
        None => {
            return Err(ApiError::new(Code::MissingContentType, format!("A Content-Type header is missing. {ACCEPTED}")))
        }
        Some(ct) => {
            let raw = String::from_utf8_lossy(ct.as_bytes()).into_owned();
            let essence = raw.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            let json = match essence.split_once('/') {
                Some((ty, sub)) => !ty.is_empty() && !ty.contains(' ') && (sub == "json" || sub.ends_with("+json")),
                None => false,
            };
            if !json {
                return Err(ApiError::new(Code::InvalidContentType, format!("The Content-Type `{raw}` is invalid. {ACCEPTED}")));
            }
        }
    }
    let bytes = read_body(proxy, body).await?;
    if bytes.is_empty() {
        return Err(ApiError::new(Code::MissingPayload, "A json payload is missing."));
    }
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(Code::MalformedPayload, format!("The json payload provided is malformed. `{e}`.")))?;
    match value {
        Value::Object(m) => Ok(m),
        other => Err(ApiError::new(Code::BadRequest, format!("Invalid value type: expected an object, but found {}", found(&other)))),
    }
}

// ---------------------------------------------------------------- the key object

fn rfc3339(t: OffsetDateTime) -> Value {
    t.format(&Rfc3339).map(Value::String).unwrap_or(Value::Null)
}

/// Meilisearch's `KeyView`, fields in its order. The value is derived, never stored.
fn key_view(master_key: &str, k: &ApiKeyRecord) -> Value {
    json!({
        "name": k.name,
        "description": k.description,
        "key": auth::derive_key(master_key, &k.uid),
        "uid": k.uid.hyphenated().to_string(),
        "actions": k.actions,
        "indexes": k.indexes,
        "expiresAt": k.expires_at.map(rfc3339).unwrap_or(Value::Null),
        "createdAt": rfc3339(k.created_at),
        "updatedAt": rfc3339(k.updated_at),
    })
}

/// `/keys` needs a master key (the middleware refuses the routes without one).
fn master(proxy: &Proxy) -> ApiResult<String> {
    proxy
        .options()
        .keys
        .master_key
        .get()
        .map(str::to_string)
        .ok_or_else(|| ApiError::new(Code::MissingMasterKey, auth::MISSING_MASTER_KEY))
}

fn not_found(what: &str) -> ApiError {
    ApiError::new(Code::ApiKeyNotFound, format!("API key `{what}` not found."))
}

/// The `{uidOrKey}` segment of `/keys/{uidOrKey}`, percent-decoded.
fn key_param(uri: &axum::http::Uri) -> String {
    let raw = uri.path().strip_prefix("/keys/").unwrap_or("");
    percent_encoding::percent_decode_str(raw).decode_utf8_lossy().into_owned()
}

/// `{uidOrKey}`: a uuid in any form, else a key value; the stored key it names.
async fn resolve(proxy: &Proxy, master_key: &str, param: &str) -> ApiResult<ApiKeyRecord> {
    let store = proxy.store();
    if let Ok(uid) = Uuid::parse_str(param) {
        return store
            .get_api_key(uid)
            .await
            .map_err(store_error)?
            .ok_or_else(|| not_found(&uid.hyphenated().to_string()));
    }
    let keys = store.list_api_keys().await.map_err(store_error)?;
    auth::find_by_value(master_key, &keys, param).cloned().ok_or_else(|| not_found(param))
}

// ---------------------------------------------------------------- default keys

/// Creates Meilisearch's four default keys if the key store is empty (first start). Safe
/// with several Miroirs on one store: the store inserts them only into an empty store,
/// atomically. Without a master key nothing is created (there is no key to derive from).
pub async fn ensure_default_keys(proxy: &Proxy) -> ApiResult<()> {
    if proxy.options().keys.master_key.get().is_none() {
        return Ok(());
    }
    let created = proxy
        .store()
        .insert_api_keys_if_empty(&auth::default_keys(OffsetDateTime::now_utc()))
        .await
        .map_err(store_error)?;
    if created {
        tracing::info!("created the four default API keys");
    }
    Ok(())
}

// ---------------------------------------------------------------- routes

pub async fn list(State(proxy): State<Proxy>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let (mut offset, mut limit) = (0usize, 20usize);
    for (k, v) in query_pairs(&q) {
        let slot = match k.as_str() {
            "offset" => (&mut offset, Code::InvalidApiKeyOffset),
            "limit" => (&mut limit, Code::InvalidApiKeyLimit),
            other => {
                let accepted = ["offset", "limit"];
                return Err(ApiError::new(
                    Code::BadRequest,
                    format!("Unknown parameter `{other}`: {}expected one of {}", did_you_mean(other, &accepted), one_of(&accepted)),
                ));
            }
        };
        *slot.0 = v.parse::<usize>().map_err(|_| {
            ApiError::new(slot.1, format!("Invalid value in parameter `{k}`: could not parse `{v}` as a positive integer"))
        })?;
    }
    let master_key = master(&proxy)?;
    ensure_default_keys(&proxy).await?;
    let keys = proxy.store().list_api_keys().await.map_err(store_error)?;
    let total = keys.len();
    let results: Vec<Value> = keys.iter().skip(offset).take(limit).map(|k| key_view(&master_key, k)).collect();
    Ok(json_response(StatusCode::OK, json!({"results": results, "offset": offset, "limit": limit, "total": total})))
}

pub async fn get(State(proxy): State<Proxy>, uri: axum::http::Uri) -> ApiResult<Response> {
    let master_key = master(&proxy)?;
    ensure_default_keys(&proxy).await?;
    let key = resolve(&proxy, &master_key, &key_param(&uri)).await?;
    Ok(json_response(StatusCode::OK, key_view(&master_key, &key)))
}

pub async fn delete(State(proxy): State<Proxy>, uri: axum::http::Uri) -> ApiResult<Response> {
    let master_key = master(&proxy)?;
    ensure_default_keys(&proxy).await?;
    let key = resolve(&proxy, &master_key, &key_param(&uri)).await?;
    if !proxy.store().delete_api_key(key.uid).await.map_err(store_error)? {
        return Err(not_found(&key.uid.hyphenated().to_string()));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn create(State(proxy): State<Proxy>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let body = json_object(&proxy, &headers, body).await?;
    let key = validate_create(&body, OffsetDateTime::now_utc())?;
    let master_key = master(&proxy)?;
    ensure_default_keys(&proxy).await?;
    let all_indexes = key.indexes.is_empty() || key.indexes.iter().any(|p| p == "*");
    if !all_indexes {
        if let Some(global) = key.actions.iter().find(|a| actions::is_global_only(a)) {
            let quoted = serde_json::to_string(global).unwrap_or_default();
            return Err(ApiError::new(
                Code::IndexScopedApiKeyWithGlobalAction,
                format!("cannot create index-scoped API key with global action `{quoted}`\n  - Hint: remove action `{quoted}` from the action list, or remove `indexes` to make the key global"),
            ));
        }
    }
    if !proxy.store().insert_api_key(&key).await.map_err(store_error)? {
        return Err(ApiError::new(
            Code::ApiKeyAlreadyExists,
            format!("`uid` field value `{}` is already an existing API key.", key.uid.hyphenated()),
        ));
    }
    Ok(json_response(StatusCode::CREATED, key_view(&master_key, &key)))
}

pub async fn update(State(proxy): State<Proxy>, uri: axum::http::Uri, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    // Meilisearch reads the body before it looks the key up.
    let body = json_object(&proxy, &headers, body).await?;
    let patch = validate_patch(&body)?;
    let master_key = master(&proxy)?;
    ensure_default_keys(&proxy).await?;
    let mut key = resolve(&proxy, &master_key, &key_param(&uri)).await?;
    if let Some(name) = patch.name {
        key.name = name;
    }
    if let Some(description) = patch.description {
        key.description = description;
    }
    key.updated_at = OffsetDateTime::now_utc();
    if !proxy.store().update_api_key(&key).await.map_err(store_error)? {
        return Err(not_found(&key.uid.hyphenated().to_string()));
    }
    Ok(json_response(StatusCode::OK, key_view(&master_key, &key)))
}

// ---------------------------------------------------------------- validation

fn optional_string(v: &Value, code: Code, at: &str) -> ApiResult<Option<String>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(wrong_type(code, at, "a string", other)),
    }
}

/// `expiresAt`: RFC 3339, `YYYY-MM-DDTHH:MM:SS`, `YYYY-MM-DD HH:MM:SS` (UTC) or `YYYY-MM-DD`
/// (midnight UTC), strictly in the future.
pub(crate) fn parse_expiration(s: &str, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .or_else(|| {
            PrimitiveDateTime::parse(s, format_description!("[year repr:full base:calendar]-[month repr:numerical]-[day]T[hour]:[minute]:[second]"))
                .ok()
                .map(PrimitiveDateTime::assume_utc)
        })
        .or_else(|| {
            PrimitiveDateTime::parse(s, format_description!("[year repr:full base:calendar]-[month repr:numerical]-[day] [hour]:[minute]:[second]"))
                .ok()
                .map(PrimitiveDateTime::assume_utc)
        })
        .or_else(|| {
            Date::parse(s, format_description!("[year repr:full base:calendar]-[month repr:numerical]-[day]"))
                .ok()
                .map(|d| PrimitiveDateTime::new(d, time!(00:00)).assume_utc())
        })?;
    (t > now).then_some(t)
}

/// `POST /keys`: Meilisearch's `CreateApiKey`, its first error only (fields visited in the
/// body's order, then the missing required ones in declaration order).
fn validate_create(body: &Map<String, Value>, now: OffsetDateTime) -> ApiResult<ApiKeyRecord> {
    let mut key = ApiKeyRecord {
        uid: Uuid::new_v4(),
        name: None,
        description: None,
        actions: Vec::new(),
        indexes: Vec::new(),
        expires_at: None,
        created_at: now,
        updated_at: now,
    };
    let (mut has_actions, mut has_indexes, mut has_expiry) = (false, false, false);
    for (field, v) in body {
        match field.as_str() {
            "description" => key.description = optional_string(v, Code::InvalidApiKeyDescription, ".description")?,
            "name" => key.name = optional_string(v, Code::InvalidApiKeyName, ".name")?,
            "uid" => {
                let Value::String(s) = v else { return Err(wrong_type(Code::InvalidApiKeyUid, ".uid", "a string", v)) };
                key.uid = Uuid::parse_str(s)
                    .map_err(|e| ApiError::new(Code::InvalidApiKeyUid, format!("Invalid value at `.uid`: {e}")))?;
            }
            "actions" => {
                let Value::Array(items) = v else {
                    return Err(wrong_type(Code::InvalidApiKeyActions, ".actions", "an array", v));
                };
                let mut out = Vec::with_capacity(items.len());
                for (i, a) in items.iter().enumerate() {
                    let at = format!(".actions[{i}]");
                    let Value::String(s) = a else { return Err(wrong_type(Code::InvalidApiKeyActions, &at, "a string", a)) };
                    if !actions::is_action(s) {
                        let all: Vec<&str> = actions::names().collect();
                        return Err(ApiError::new(
                            Code::InvalidApiKeyActions,
                            format!("Unknown value `{s}` at `{at}`: {}expected one of {}", did_you_mean(s, &all), one_of(&all)),
                        ));
                    }
                    out.push(s.clone());
                }
                key.actions = out;
                has_actions = true;
            }
            "indexes" => {
                let Value::Array(items) = v else {
                    return Err(wrong_type(Code::InvalidApiKeyIndexes, ".indexes", "an array", v));
                };
                let mut out = Vec::with_capacity(items.len());
                for (i, p) in items.iter().enumerate() {
                    let at = format!(".indexes[{i}]");
                    let Value::String(s) = p else { return Err(wrong_type(Code::InvalidApiKeyIndexes, &at, "a string", p)) };
                    auth::validate_pattern(s).map_err(|bad| {
                        ApiError::new(
                            Code::InvalidApiKeyIndexes,
                            format!("Invalid value at `{at}`: `{bad}` is not a valid index uid pattern. Index uid patterns can be an integer or a string containing only alphanumeric characters, hyphens (-), underscores (_), and optionally end with a star (*)."),
                        )
                    })?;
                    out.push(s.clone());
                }
                key.indexes = out;
                has_indexes = true;
            }
            "expiresAt" => {
                key.expires_at = match v {
                    Value::Null => None,
                    Value::String(s) => Some(parse_expiration(s, now).ok_or_else(|| {
                        ApiError::new(
                            Code::InvalidApiKeyExpiresAt,
                            format!("Invalid value at `.expiresAt`: `{s}` is not a valid date. It should follow the RFC 3339 format to represents a date or datetime in the future or specified as a null value. e.g. 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS'.\n"),
                        )
                    })?),
                    other => return Err(wrong_type(Code::InvalidApiKeyExpiresAt, ".expiresAt", "a string", other)),
                };
                has_expiry = true;
            }
            other => return Err(unknown_field(other, CREATE_FIELDS)),
        }
    }
    for (present, field, code) in [
        (has_actions, "actions", Code::MissingApiKeyActions),
        (has_indexes, "indexes", Code::MissingApiKeyIndexes),
        (has_expiry, "expiresAt", Code::MissingApiKeyExpiresAt),
    ] {
        if !present {
            return Err(ApiError::new(code, format!("Missing field `{field}`")));
        }
    }
    Ok(key)
}

/// `Some(None)`: set to null; `None`: unchanged.
struct Patch {
    name: Option<Option<String>>,
    description: Option<Option<String>>,
}

/// `PATCH /keys/{k}`: only `name` and `description` change; the other key fields are
/// immutable (each with its own code), anything else unknown.
fn validate_patch(body: &Map<String, Value>) -> ApiResult<Patch> {
    let mut patch = Patch { name: None, description: None };
    for (field, v) in body {
        match field.as_str() {
            "description" => patch.description = Some(optional_string(v, Code::InvalidApiKeyDescription, ".description")?),
            "name" => patch.name = Some(optional_string(v, Code::InvalidApiKeyName, ".name")?),
            f @ ("uid" | "actions" | "indexes" | "expiresAt" | "createdAt" | "updatedAt") => {
                let code = match f {
                    "uid" => Code::ImmutableApiKeyUid,
                    "actions" => Code::ImmutableApiKeyActions,
                    "indexes" => Code::ImmutableApiKeyIndexes,
                    "expiresAt" => Code::ImmutableApiKeyExpiresAt,
                    "createdAt" => Code::ImmutableApiKeyCreatedAt,
                    _ => Code::ImmutableApiKeyUpdatedAt,
                };
                return Err(ApiError::new(code, format!("Immutable field `{f}`: expected one of {}", one_of(PATCH_FIELDS))));
            }
            other => return Err(unknown_field(other, PATCH_FIELDS)),
        }
    }
    Ok(patch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: Value) -> (String, String) {
        let e = validate_create(body.as_object().unwrap(), OffsetDateTime::now_utc()).unwrap_err();
        (e.code_name(), e.body()["message"].as_str().unwrap().to_string())
    }

    #[test]
    fn create_errors_read_as_meilisearch() {
        assert_eq!(
            err(json!({"expires_at": null})),
            ("bad_request".into(), "Unknown field `expires_at`: did you mean `expiresAt`? expected one of `description`, `name`, `uid`, `actions`, `indexes`, `expiresAt`".into())
        );
        assert_eq!(err(json!({"indexes": ["*"], "expiresAt": null})), ("missing_api_key_actions".into(), "Missing field `actions`".into()));
        assert_eq!(err(json!({"actions": [], "expiresAt": null})), ("missing_api_key_indexes".into(), "Missing field `indexes`".into()));
        assert_eq!(err(json!({"actions": [], "indexes": []})), ("missing_api_key_expires_at".into(), "Missing field `expiresAt`".into()));
        assert_eq!(err(json!({"uid": "0000000000000"})), ("invalid_api_key_uid".into(), "Invalid value at `.uid`: invalid length: found 13".into()));
        assert_eq!(
            err(json!({"uid": ["doggo"]})),
            ("invalid_api_key_uid".into(), "Invalid value type at `.uid`: expected a string, but found an array: `[\"doggo\"]`".into())
        );
        let (code, m) = err(json!({"actions": ["doc.add"]}));
        assert_eq!(code, "invalid_api_key_actions");
        assert!(m.starts_with("Unknown value `doc.add` at `.actions[0]`: expected one of `*`, `search`, `documents.*`"), "{m}");
        assert!(m.ends_with("`dynamicSearchRules.delete`, `dynamicSearchRules.*`"), "{m}");
        assert_eq!(
            err(json!({"indexes": ["bad uid*"]})).1,
            "Invalid value at `.indexes[0]`: `bad uid` is not a valid index uid pattern. Index uid patterns can be an integer or a string containing only alphanumeric characters, hyphens (-), underscores (_), and optionally end with a star (*)."
        );
        assert_eq!(
            err(json!({"expiresAt": {"name": "products"}})).1,
            "Invalid value type at `.expiresAt`: expected a string, but found an object: `{\"name\":\"products\"}`"
        );
        assert!(err(json!({"expiresAt": "2000-01-01"})).1.ends_with("'YYYY-MM-DD HH:MM:SS'.\n"));
        assert_eq!(err(json!({"name": 13})).1, "Invalid value type at `.name`: expected a string, but found a positive integer: `13`");
    }

    #[test]
    fn expiry_formats() {
        let now = OffsetDateTime::now_utc();
        assert!(parse_expiration("2050-11-13", now).is_some());
        assert!(parse_expiration("2050-11-13T00:00:00", now).is_some());
        assert!(parse_expiration("2050-11-13 00:00:00", now).is_some());
        let t = parse_expiration("2050-01-01T00:00:00+02:00", now).unwrap();
        assert_eq!(rfc3339(t), json!("2050-01-01T00:00:00+02:00"));
        assert_eq!(rfc3339(parse_expiration("2050-11-13", now).unwrap()), json!("2050-11-13T00:00:00Z"));
        assert!(parse_expiration("2000-01-01", now).is_none());
        assert!(parse_expiration("doggo", now).is_none());
    }

    #[test]
    fn patch_errors() {
        let e = validate_patch(json!({"uid": "x"}).as_object().unwrap()).err().unwrap();
        assert_eq!(e.code_name(), "immutable_api_key_uid");
        assert_eq!(e.body()["message"], "Immutable field `uid`: expected one of `description`, `name`");
        let e = validate_patch(json!({"key": "x"}).as_object().unwrap()).err().unwrap();
        assert_eq!(e.code_name(), "bad_request");
        assert_eq!(e.body()["message"], "Unknown field `key`: expected one of `description`, `name`");
    }
}

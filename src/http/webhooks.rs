//! `/webhooks`: Meilisearch 1.50's webhook routes, answered by Miroir itself (the set lives in
//! the task store; notifications are sent by [`crate::dataplane::webhooks`] when Miroir tasks
//! finish). Validation order, limits and wording are Meilisearch's.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::{json_response, JsonBody};
use crate::dataplane::webhooks::{webhook_view, Webhook, MAX_HEADERS, MAX_WEBHOOKS};
use crate::dataplane::Proxy;
use crate::error::{describe_kind, ApiError, ApiResult, Code};

const FIELDS: &[&str] = &["url", "headers"];

/// A field of the body: absent, `null` (reset) or a value.
enum Setting<T> {
    NotSet,
    Reset,
    Set(T),
}

struct WebhookSettings {
    url: Setting<String>,
    headers: Setting<BTreeMap<String, Setting<String>>>,
}

fn found(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        other => format!("{}: `{}`", describe_kind(other), serde_json::to_string(other).unwrap_or_default()),
    }
}

fn one_of(accepted: &[&str]) -> String {
    accepted.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
}

/// Reads the body as deserr reads Meilisearch's `WebhookSettings`.
fn parse_settings(body: &Value) -> ApiResult<WebhookSettings> {
    let Value::Object(map) = body else {
        return Err(ApiError::new(Code::BadRequest, format!("Invalid value type: expected an object, but found {}", found(body))));
    };
    let mut out = WebhookSettings { url: Setting::NotSet, headers: Setting::NotSet };
    for (field, v) in map {
        match field.as_str() {
            "url" => {
                out.url = match v {
                    Value::Null => Setting::Reset,
                    Value::String(s) => Setting::Set(s.clone()),
                    other => {
                        return Err(ApiError::new(
                            Code::InvalidWebhookUrl,
                            format!("Invalid value type at `.url`: expected a string, but found {}", found(other)),
                        ))
                    }
                }
            }
            "headers" => out.headers = parse_headers(v)?,
            "uuid" => return Err(immutable("uuid", Code::ImmutableWebhookUuid)),
            "isEditable" => return Err(immutable("isEditable", Code::ImmutableWebhookIsEditable)),
            other => {
                return Err(ApiError::new(
                    Code::BadRequest,
                    format!("Unknown field `{other}`: {}expected one of {}", super::keys::did_you_mean(other, FIELDS), one_of(FIELDS)),
                ))
            }
        }
    }
    Ok(out)
}

fn parse_headers(v: &Value) -> ApiResult<Setting<BTreeMap<String, Setting<String>>>> {
    let map: &Map<String, Value> = match v {
        Value::Null => return Ok(Setting::Reset),
        Value::Object(m) => m,
        other => {
            return Err(ApiError::new(
                Code::InvalidWebhookHeaders,
                format!("Invalid value type at `.headers`: expected an object, but found {}", found(other)),
            ))
        }
    };
    let mut out = BTreeMap::new();
    for (name, value) in map {
        let s = match value {
            Value::Null => Setting::Reset,
            Value::String(s) => Setting::Set(s.clone()),
            other => {
                return Err(ApiError::new(
                    Code::InvalidWebhookHeaders,
                    format!("Invalid value type at `.headers.{name}`: expected a string, but found {}", found(other)),
                ))
            }
        };
        out.insert(name.clone(), s);
    }
    Ok(Setting::Set(out))
}

fn immutable(field: &str, code: Code) -> ApiError {
    ApiError::new(code, format!("Immutable field `{field}`: expected one of {}", one_of(FIELDS)))
}

fn missing_url(uuid: &Uuid) -> ApiError {
    ApiError::new(Code::InvalidWebhookUrl, format!("The URL for the webhook `{uuid}` is missing."))
}

fn too_many_headers(uuid: &Uuid) -> ApiError {
    ApiError::new(
        Code::InvalidWebhookHeaders,
        format!("Too many headers for the webhook `{uuid}`. Please limit the number of headers to {MAX_HEADERS}. Hint: To remove an already defined header set its value to `null`"),
    )
}

fn immutable_webhook(uuid: &Uuid) -> ApiError {
    ApiError::new(
        Code::ImmutableWebhook,
        format!("Webhook `{uuid}` is immutable. The webhook defined from the command line cannot be modified using the API."),
    )
}

fn not_found(uuid: &Uuid) -> ApiError {
    ApiError::new(Code::WebhookNotFound, format!("Webhook `{uuid}` not found."))
}

/// `{uuid}` of `/webhooks/{uuid}` (the last path segment, percent-decoded).
fn parse_uuid(uri: &Uri) -> ApiResult<Uuid> {
    let raw = uri.path().rsplit('/').next().unwrap_or("");
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    Uuid::parse_str(&decoded).map_err(|e| ApiError::new(Code::InvalidWebhookUuid, format!("Invalid UUID: {e}")))
}

/// Meilisearch's `check_changed`: url present, header count, header names and values, URL.
fn check(uuid: &Uuid, w: &Webhook) -> ApiResult<()> {
    if uuid.is_nil() {
        return Err(immutable_webhook(uuid));
    }
    if w.url.is_empty() {
        return Err(missing_url(uuid));
    }
    if w.headers.len() > MAX_HEADERS {
        return Err(too_many_headers(uuid));
    }
    for (name, value) in &w.headers {
        if let Err(e) = axum::http::HeaderName::from_bytes(name.as_bytes()) {
            return Err(ApiError::new(Code::InvalidWebhookHeaders, format!("Invalid header name `{name}`: {e}")));
        }
        if let Err(e) = axum::http::HeaderValue::from_str(value) {
            return Err(ApiError::new(Code::InvalidWebhookHeaders, format!("Invalid header value `{name}`: {e}")));
        }
    }
    if let Err(e) = url::Url::parse(&w.url) {
        return Err(ApiError::new(Code::InvalidWebhookUrl, format!("Invalid URL `{}`: {e}", w.url)));
    }
    Ok(())
}

/// Meilisearch's `patch_webhook_inner`: a `null` header removes it, `headers: null` removes all.
fn patch(uuid: &Uuid, old: Webhook, new: WebhookSettings) -> ApiResult<Webhook> {
    let Webhook { url: old_url, mut headers } = old;
    let url = match new.url {
        Setting::Set(u) => u,
        Setting::NotSet => old_url,
        Setting::Reset => return Err(missing_url(uuid)),
    };
    match new.headers {
        Setting::Set(changes) => {
            for (name, value) in changes {
                match value {
                    Setting::Set(v) => {
                        headers.insert(name, v);
                    }
                    Setting::Reset => {
                        headers.remove(&name);
                    }
                    Setting::NotSet => {}
                }
            }
        }
        Setting::Reset => headers.clear(),
        Setting::NotSet => {}
    }
    if headers.len() > MAX_HEADERS {
        return Err(too_many_headers(uuid));
    }
    Ok(Webhook { url, headers })
}

pub async fn list(State(proxy): State<Proxy>) -> ApiResult<Json<Value>> {
    let all = proxy.all_webhooks().await?;
    let results: Vec<Value> = all.iter().map(|(u, w)| webhook_view(u, w)).collect();
    Ok(Json(json!({ "results": results })))
}

pub async fn get(State(proxy): State<Proxy>, uri: Uri) -> ApiResult<Json<Value>> {
    let uuid = parse_uuid(&uri)?;
    let all = proxy.all_webhooks().await?;
    let w = all.get(&uuid).ok_or_else(|| not_found(&uuid))?;
    Ok(Json(webhook_view(&uuid, w)))
}

pub async fn create(State(proxy): State<Proxy>, JsonBody(body): JsonBody) -> ApiResult<Response> {
    let settings = parse_settings(&body)?;
    let uuid = Uuid::new_v4();
    if let Setting::Set(h) = &settings.headers {
        if h.len() > MAX_HEADERS {
            return Err(too_many_headers(&uuid));
        }
    }
    let webhook = Webhook {
        url: match settings.url {
            Setting::Set(u) => u,
            _ => String::new(),
        },
        headers: match settings.headers {
            Setting::Set(h) => h
                .into_iter()
                .map(|(k, v)| (k, if let Setting::Set(v) = v { v } else { String::new() }))
                .collect(),
            _ => BTreeMap::new(),
        },
    };
    // Compare-and-set: of several Miroirs creating at once, none goes past the limit.
    loop {
        let (version, mut hooks) = proxy.runtime_webhooks().await?;
        if hooks.len() >= MAX_WEBHOOKS {
            return Err(ApiError::new(
                Code::InvalidWebhooks,
                format!("Defining too many webhooks would crush the server. Please limit the number of webhooks to {MAX_WEBHOOKS}. You may use a third-party proxy server to dispatch events to more than {MAX_WEBHOOKS} endpoints."),
            ));
        }
        if webhook.url.is_empty() {
            return Err(missing_url(&uuid));
        }
        check(&uuid, &webhook)?;
        hooks.insert(uuid, webhook.clone());
        if proxy.put_runtime_webhooks(version, &hooks).await? {
            return Ok(json_response(StatusCode::CREATED, webhook_view(&uuid, &webhook)));
        }
    }
}

pub async fn update(State(proxy): State<Proxy>, uri: Uri, JsonBody(body): JsonBody) -> ApiResult<Response> {
    // Meilisearch reads the body before the uuid.
    let settings = parse_settings(&body)?;
    let uuid = parse_uuid(&uri)?;
    if uuid.is_nil() {
        return Err(immutable_webhook(&uuid));
    }
    let mut settings = Some(settings);
    loop {
        let (version, mut hooks) = proxy.runtime_webhooks().await?;
        let old = hooks.remove(&uuid).ok_or_else(|| not_found(&uuid))?;
        // The settings are applied once; a lost race re-reads and re-applies a copy.
        let s = settings.take().expect("settings");
        let keep = clone_settings(&s);
        let webhook = patch(&uuid, old, s)?;
        check(&uuid, &webhook)?;
        hooks.insert(uuid, webhook.clone());
        if proxy.put_runtime_webhooks(version, &hooks).await? {
            return Ok(json_response(StatusCode::OK, webhook_view(&uuid, &webhook)));
        }
        settings = Some(keep);
    }
}

fn clone_settings(s: &WebhookSettings) -> WebhookSettings {
    fn c(s: &Setting<String>) -> Setting<String> {
        match s {
            Setting::NotSet => Setting::NotSet,
            Setting::Reset => Setting::Reset,
            Setting::Set(v) => Setting::Set(v.clone()),
        }
    }
    WebhookSettings {
        url: c(&s.url),
        headers: match &s.headers {
            Setting::NotSet => Setting::NotSet,
            Setting::Reset => Setting::Reset,
            Setting::Set(m) => Setting::Set(m.iter().map(|(k, v)| (k.clone(), c(v))).collect()),
        },
    }
}

pub async fn delete(State(proxy): State<Proxy>, uri: Uri) -> ApiResult<Response> {
    let uuid = parse_uuid(&uri)?;
    if uuid.is_nil() {
        return Err(immutable_webhook(&uuid));
    }
    loop {
        let (version, mut hooks) = proxy.runtime_webhooks().await?;
        hooks.remove(&uuid).ok_or_else(|| not_found(&uuid))?;
        if proxy.put_runtime_webhooks(version, &hooks).await? {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: Value) -> (String, String) {
        let e = match parse_settings(&body) {
            Err(e) => e,
            Ok(_) => panic!("accepted {body}"),
        };
        (e.code_name(), e.body()["message"].as_str().unwrap().to_string())
    }

    #[test]
    fn body_errors_read_as_meilisearch() {
        assert_eq!(
            err(json!({"url": "http://x", "uuid": "a"})),
            ("immutable_webhook_uuid".into(), "Immutable field `uuid`: expected one of `url`, `headers`".into())
        );
        assert_eq!(
            err(json!({"isEditable": false})),
            ("immutable_webhook_is_editable".into(), "Immutable field `isEditable`: expected one of `url`, `headers`".into())
        );
        assert_eq!(err(json!({"url": 1})), ("invalid_webhook_url".into(), "Invalid value type at `.url`: expected a string, but found a positive integer: `1`".into()));
        assert_eq!(err(json!({"urll": 1})).1, "Unknown field `urll`: did you mean `url`? expected one of `url`, `headers`");
    }

    #[test]
    fn header_and_url_checks_word_errors_as_meilisearch() {
        let u = Uuid::new_v4();
        let w = |url: &str, h: &[(&str, &str)]| Webhook { url: url.into(), headers: h.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() };
        let m = |r: ApiResult<()>| r.unwrap_err().body()["message"].as_str().unwrap().to_string();
        assert_eq!(m(check(&u, &w("not-a-valid-url", &[]))), "Invalid URL `not-a-valid-url`: relative URL without a base");
        assert_eq!(m(check(&u, &w("http://l/h", &[("invalid header name", "v")]))), "Invalid header name `invalid header name`: invalid HTTP header name");
        assert_eq!(m(check(&u, &w("http://l/h", &[("authorization", "token\nwith\nnewlines")]))), "Invalid header value `authorization`: failed to parse header value");
        assert_eq!(Uuid::parse_str("invalid-uuid").unwrap_err().to_string(), "invalid character: found `i` at 0");
    }
}

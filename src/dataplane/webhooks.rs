//! Webhooks: Meilisearch's `/webhooks` set, kept in the task store, and their notifications.
//!
//! When a Miroir task finishes, every webhook configured at that moment receives one `POST`
//! with the task object (as `GET /tasks/{uid}` shows it), as Meilisearch sends it: NDJSON
//! (`Content-Type: application/x-ndjson`), gzip-compressed (`Content-Encoding: gzip`), with the
//! webhook's own headers. Each Miroir task is its own batch, so a notification carries one task.
//!
//! Delivery is at least once and survives restarts:
//! - a background worker (one per cluster: it runs in the process holding the
//!   `miroir/webhooks` lease) scans the task store from a durable cursor, refreshes unfinished
//!   tasks from the nodes (so a task ends even when no client polls it), and records each
//!   finished task once, together with its deliveries, in one atomic store step (the outbox);
//! - the same worker sends due deliveries and removes each once its receiver answered 2xx;
//!   a failure is retried with exponential backoff (1 s doubling up to 5 min, 15 attempts),
//!   then given up (logged). A process killed between "finished" and "delivered" leaves the
//!   delivery in the outbox; the next lease holder sends it (possibly a second time if the
//!   receiver got it but the removal was not written: at least once).
//!
//! Miroir never configures the client's webhooks on the nodes; the nodes' own task webhooks
//! are not used.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::RwLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::tasks::{store_error, task_view};
use super::Proxy;
use crate::error::{ApiError, ApiResult};
use crate::store::{NewWebhookDelivery, TaskFilter, TaskPaging, WebhookDelivery};

/// Meilisearch's limits.
pub const MAX_WEBHOOKS: usize = 20;
pub const MAX_HEADERS: usize = 200;

/// The lease of the notification worker.
pub const WEBHOOK_LEASE: &str = "miroir/webhooks";
/// The scan cursor (first task uid not yet observed finished), kept as a CDC cursor.
const CURSOR: (&str, &str) = ("_miroir", "webhook-scan");
const POLL: Duration = Duration::from_millis(200);
const LEASE_TTL: Duration = Duration::from_secs(5);
const PAGE: usize = 100;
const MAX_PAGES: usize = 20;
const MAX_ATTEMPTS: u32 = 15;
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// With no webhook, how often the cursor is moved to the newest task.
const IDLE_JUMP: Duration = Duration::from_secs(5);

/// One webhook: its URL and the headers sent with every notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Webhook {
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// The webhooks created through the API, by uuid (Meilisearch's "runtime" webhooks).
pub type Webhooks = BTreeMap<Uuid, Webhook>;

/// Process-local webhook state: the webhook from Miroir's config (uuid nil, not editable)
/// and the worker's wake-up.
#[derive(Default)]
pub struct WebhookState {
    config: RwLock<Option<Webhook>>,
    pub(crate) wake: tokio::sync::Notify,
}

fn decode(v: &Value) -> ApiResult<Webhooks> {
    serde_json::from_value(v.get("webhooks").cloned().unwrap_or(json!({})))
        .map_err(|e| ApiError::internal(format!("stored webhooks cannot be read: {e}")))
}

fn encode(w: &Webhooks) -> Value {
    json!({ "webhooks": w })
}

/// Meilisearch's redaction of a secret (`hide_secret`): a prefix kept according to length.
pub fn hide_secret(secret: &mut String, offset: usize) {
    let boundary = |s: &str, i: usize| (i..=s.len()).find(|j| s.is_char_boundary(*j)).unwrap_or(s.len());
    let (keep, mask) = match secret.len().checked_sub(offset) {
        None => return,
        Some(x) if x < 10 => (offset, "XXX..."),
        Some(x) if x < 20 => (offset + 2, "XXXX..."),
        Some(x) if x < 30 => (offset + 3, "XXXXX..."),
        Some(_) => (offset + 5, "XXXXXX..."),
    };
    let at = boundary(secret, keep);
    secret.replace_range(at.., mask);
}

impl Webhook {
    /// Authorization headers (any case) redacted, as Meilisearch shows them.
    pub fn redacted(&self) -> Webhook {
        let mut w = self.clone();
        for (name, value) in w.headers.iter_mut() {
            if name.eq_ignore_ascii_case("authorization") {
                let offset = if value.starts_with("Bearer ") { "Bearer ".len() } else { 0 };
                hide_secret(value, offset);
            }
        }
        w
    }
}

/// The webhook object as Meilisearch answers it: `uuid`, `isEditable`, `url`, `headers`.
pub fn webhook_view(uuid: &Uuid, w: &Webhook) -> Value {
    let w = w.redacted();
    json!({
        "uuid": uuid.hyphenated().to_string(),
        "isEditable": !uuid.is_nil(),
        "url": w.url,
        "headers": w.headers,
    })
}

/// A notification body: one NDJSON line per task object.
pub fn ndjson(tasks: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in tasks {
        serde_json::to_writer(&mut out, t).expect("a JSON value serializes");
        out.push(b'\n');
    }
    out
}

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(body)?;
    enc.finish()
}

/// Wait before attempt `attempts + 1`: 1 s doubling, at most 5 min.
fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.saturating_sub(1).min(8)).min(Duration::from_secs(300))
}

impl Proxy {
    /// Sets (or clears) the webhook of Miroir's own configuration (Meilisearch's
    /// `--task-webhook-url` / `--task-webhook-authorization-header`): listed with the nil uuid,
    /// not editable through the API, never stored.
    pub fn set_config_webhook(&self, url: Option<String>, authorization: Option<String>) {
        let hook = url.map(|url| Webhook {
            url,
            headers: authorization.map(|a| BTreeMap::from([("Authorization".to_string(), a)])).unwrap_or_default(),
        });
        *self.inner.webhooks.config.write().expect("webhook lock") = hook;
    }

    fn config_webhook(&self) -> Option<Webhook> {
        self.inner.webhooks.config.read().expect("webhook lock").clone()
    }

    /// The stored webhooks and the version to compare-and-set against.
    pub(crate) async fn runtime_webhooks(&self) -> ApiResult<(u64, Webhooks)> {
        match self.inner.store.get_webhooks().await.map_err(store_error)? {
            None => Ok((0, Webhooks::new())),
            Some((version, v)) => Ok((version, decode(&v)?)),
        }
    }

    /// Stores the webhooks if nobody changed them since `version` was read.
    pub(crate) async fn put_runtime_webhooks(&self, version: u64, w: &Webhooks) -> ApiResult<bool> {
        Ok(self.inner.store.put_webhooks(version, &encode(w)).await.map_err(store_error)?.is_some())
    }

    /// Every webhook: the config's (nil uuid) first, then the stored ones by uuid.
    pub(crate) async fn all_webhooks(&self) -> ApiResult<Webhooks> {
        let (_, mut all) = self.runtime_webhooks().await?;
        if let Some(c) = self.config_webhook() {
            all.insert(Uuid::nil(), c);
        }
        Ok(all)
    }

    /// Starts the notification worker; stops when the handle is aborted. Returns the holder
    /// id of its lease (to release it on a clean shutdown).
    pub fn spawn_webhook_worker(&self) -> (tokio::task::JoinHandle<()>, String) {
        let holder = format!("miroir-{}", Uuid::new_v4());
        let proxy = self.clone();
        let h = holder.clone();
        let join = tokio::spawn(async move {
            let client = reqwest::Client::builder().timeout(SEND_TIMEOUT).build().expect("http client");
            let mut idle_jump: Option<std::time::Instant> = None;
            loop {
                match proxy.inner.store.try_acquire_lease(WEBHOOK_LEASE, &h, LEASE_TTL).await {
                    Ok(true) => {
                        if let Err(e) = proxy.observe_finished_tasks(&mut idle_jump).await {
                            tracing::warn!(error = %e, "webhooks: cannot scan the finished tasks");
                        }
                        if let Err(e) = proxy.deliver_due(&client).await {
                            tracing::warn!(error = %e, "webhooks: cannot read the delivery outbox");
                        }
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "webhooks: cannot renew the lease"),
                }
                tokio::select! {
                    _ = proxy.inner.webhooks.wake.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        });
        (join, holder)
    }

    /// Records every task that finished since the cursor, once, with a delivery per webhook
    /// configured now. Unfinished tasks are refreshed from the nodes (a few at a time) when
    /// someone listens; with no webhook at all, nobody is told anything and the cursor jumps
    /// to the newest task.
    async fn observe_finished_tasks(&self, idle_jump: &mut Option<std::time::Instant>) -> ApiResult<()> {
        use futures::StreamExt;
        let store = self.inner.store.clone();
        let hooks = self.all_webhooks().await?;
        if hooks.is_empty() {
            // Nobody listens: only keep the cursor near the newest task, now and then (a
            // listing counts the tasks).
            if idle_jump.is_some_and(|t| t.elapsed() < IDLE_JUMP) {
                return Ok(());
            }
            *idle_jump = Some(std::time::Instant::now());
        } else {
            *idle_jump = None;
        }
        let cursor = store.get_cdc_cursor(CURSOR.0, CURSOR.1).await.map_err(store_error)?.unwrap_or(0);
        if hooks.is_empty() {
            let newest = store
                .list_tasks(&TaskFilter::default(), &TaskPaging { limit: 1, from: None, reverse: false })
                .await
                .map_err(store_error)?;
            if let Some(t) = newest.results.first() {
                if t.uid + 1 > cursor {
                    store.advance_cdc_cursor(CURSOR.0, CURSOR.1, t.uid + 1).await.map_err(store_error)?;
                    store.prune_webhook_events(t.uid + 1).await.map_err(store_error)?;
                }
            }
            return Ok(());
        }
        let mut from = cursor;
        let mut next_cursor = cursor;
        let mut contiguous = true;
        for _ in 0..MAX_PAGES {
            let page = store
                .list_tasks(&TaskFilter::default(), &TaskPaging { limit: PAGE, from: Some(from), reverse: true })
                .await
                .map_err(store_error)?;
            let Some(last) = page.results.last() else { break };
            from = last.uid + 1;
            let tasks: Vec<_> = futures::stream::iter(page.results)
                .map(|t| async move {
                    if t.status.is_terminal() {
                        t
                    } else {
                        self.refreshed_task(t.clone()).await.unwrap_or(t)
                    }
                })
                .buffered(8)
                .collect()
                .await;
            for t in tasks {
                if !t.status.is_terminal() {
                    contiguous = false;
                    continue;
                }
                let body = ndjson(&[task_view(&t)]);
                let deliveries: Vec<NewWebhookDelivery> =
                    hooks.keys().map(|u| NewWebhookDelivery { webhook: u.hyphenated().to_string(), body: body.clone() }).collect();
                store.enqueue_webhook_event(t.uid, &deliveries).await.map_err(store_error)?;
                if contiguous {
                    next_cursor = t.uid + 1;
                }
            }
            if page.next.is_none() {
                break;
            }
        }
        if next_cursor > cursor {
            store.advance_cdc_cursor(CURSOR.0, CURSOR.1, next_cursor).await.map_err(store_error)?;
            store.prune_webhook_events(next_cursor).await.map_err(store_error)?;
        }
        Ok(())
    }

    /// Sends the due deliveries (concurrently), removing the sent ones and rescheduling the
    /// failed ones.
    async fn deliver_due(&self, client: &reqwest::Client) -> ApiResult<()> {
        let store = self.inner.store.clone();
        let due = store.due_webhook_deliveries(OffsetDateTime::now_utc(), 32).await.map_err(store_error)?;
        if due.is_empty() {
            return Ok(());
        }
        let hooks = self.all_webhooks().await?;
        let sends = due.into_iter().map(|d| {
            let hook = Uuid::parse_str(&d.webhook).ok().and_then(|u| hooks.get(&u).cloned());
            let store = store.clone();
            async move {
                let Some(hook) = hook else {
                    // The webhook was deleted meanwhile: nobody to tell any more.
                    let _ = store.finish_webhook_delivery(d.id).await;
                    return;
                };
                match send(client, &hook, &d).await {
                    Ok(()) => {
                        if let Err(e) = store.finish_webhook_delivery(d.id).await {
                            tracing::warn!(error = %e, webhook = %d.webhook, task = d.task_uid, "webhooks: sent, but cannot remove the delivery (it will be sent again)");
                        }
                    }
                    Err(why) => {
                        let attempts = d.attempts + 1;
                        if attempts >= MAX_ATTEMPTS {
                            tracing::error!(webhook = %d.webhook, task = d.task_uid, attempts, reason = %why, "webhooks: giving up a notification");
                            let _ = store.finish_webhook_delivery(d.id).await;
                        } else {
                            tracing::warn!(webhook = %d.webhook, task = d.task_uid, attempts, reason = %why, "webhooks: notification failed; will retry");
                            let next = OffsetDateTime::now_utc() + backoff(attempts);
                            let _ = store.retry_webhook_delivery(d.id, attempts, next).await;
                        }
                    }
                }
            }
        });
        futures::future::join_all(sends).await;
        Ok(())
    }
}

/// One `POST` of a notification. The error says why, without the URL or the headers (they
/// may hold secrets).
async fn send(client: &reqwest::Client, hook: &Webhook, d: &WebhookDelivery) -> Result<(), String> {
    let body = gzip(&d.body).map_err(|e| format!("cannot compress: {e}"))?;
    let mut req = client
        .post(&hook.url)
        .header("Content-Encoding", "gzip")
        .header("Content-Type", "application/x-ndjson")
        .header("Accept-Encoding", "gzip");
    for (k, v) in &hook.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    match req.body(body).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("the receiver answered {}", r.status().as_u16())),
        Err(e) if e.is_timeout() => Err("the receiver did not answer in time".into()),
        Err(e) if e.is_connect() => Err("cannot connect to the receiver".into()),
        Err(_) => Err("the request failed".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hidden_as_meilisearch_hides_them() {
        let w = Webhook {
            url: "u".into(),
            headers: BTreeMap::from([
                ("authorization".to_string(), "TOKEN".to_string()),
                ("Authorization".to_string(), "Bearer a-secret-token".to_string()),
                ("x-other".to_string(), "TOKEN".to_string()),
            ]),
        };
        let r = w.redacted();
        assert_eq!(r.headers["authorization"], "XXX...");
        assert_eq!(r.headers["Authorization"], "Bearer a-XXXX...");
        assert_eq!(r.headers["x-other"], "TOKEN");
    }

    #[test]
    fn view_fields_in_meilisearch_order() {
        let v = webhook_view(&Uuid::nil(), &Webhook { url: "https://example-cli.com/".into(), headers: BTreeMap::new() });
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["uuid", "isEditable", "url", "headers"]);
        assert_eq!(v["isEditable"], false);
        assert_eq!(v["uuid"], "00000000-0000-0000-0000-000000000000");
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(14), Duration::from_secs(256));
    }
}

//! Serialization shared by the backends: a task is stored as the JSON of everything but its
//! uid (the uid is the row's key), and times are compared as unix nanoseconds.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::{NodeTask, StoreError, TaskRecord, TaskStatus};

#[derive(Serialize)]
struct TaskBodyRef<'a> {
    index_uid: &'a Option<String>,
    kind: &'a str,
    status: TaskStatus,
    #[serde(with = "time::serde::rfc3339")]
    enqueued_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    finished_at: Option<OffsetDateTime>,
    details: &'a Value,
    error: &'a Option<Value>,
    canceled_by: Option<u64>,
    node_tasks: &'a [NodeTask],
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_metadata: &'a Option<String>,
    #[serde(skip_serializing_if = "<[u64]>::is_empty")]
    targets: &'a [u64],
}

#[derive(Deserialize)]
struct TaskBody {
    index_uid: Option<String>,
    kind: String,
    status: TaskStatus,
    #[serde(with = "time::serde::rfc3339")]
    enqueued_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    finished_at: Option<OffsetDateTime>,
    details: Value,
    error: Option<Value>,
    canceled_by: Option<u64>,
    node_tasks: Vec<NodeTask>,
    /// Absent in records written before Miroir kept it.
    #[serde(default)]
    custom_metadata: Option<String>,
    #[serde(default)]
    targets: Vec<u64>,
}

/// JSON of the record without its uid.
pub(crate) fn encode_task(t: &TaskRecord) -> Result<String, StoreError> {
    let body = TaskBodyRef {
        index_uid: &t.index_uid,
        kind: &t.kind,
        status: t.status,
        enqueued_at: t.enqueued_at,
        started_at: t.started_at,
        finished_at: t.finished_at,
        details: &t.details,
        error: &t.error,
        canceled_by: t.canceled_by,
        node_tasks: &t.node_tasks,
        custom_metadata: &t.custom_metadata,
        targets: &t.targets,
    };
    serde_json::to_string(&body).map_err(|e| StoreError::Other(format!("cannot encode task {}: {e}", t.uid)))
}

pub(crate) fn decode_task(uid: u64, json: &str) -> Result<TaskRecord, StoreError> {
    let b: TaskBody =
        serde_json::from_str(json).map_err(|e| StoreError::Other(format!("stored task {uid} is not readable: {e}")))?;
    Ok(TaskRecord {
        uid,
        index_uid: b.index_uid,
        kind: b.kind,
        status: b.status,
        enqueued_at: b.enqueued_at,
        started_at: b.started_at,
        finished_at: b.finished_at,
        details: b.details,
        error: b.error,
        canceled_by: b.canceled_by,
        node_tasks: b.node_tasks,
        custom_metadata: b.custom_metadata,
        targets: b.targets,
    })
}

pub(crate) fn encode_json(v: &Value) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Other(format!("cannot encode value: {e}")))
}

pub(crate) fn decode_json(s: &str) -> Result<Value, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Other(format!("stored value is not JSON: {e}")))
}

/// Unix nanoseconds, clamped to `0..=MAX_NS` so that both backends compare the same values
/// (times before 1970 count as 1970; times after the year 5138 as that year).
pub(crate) fn unix_ns(t: OffsetDateTime) -> i64 {
    t.unix_timestamp_nanos().clamp(0, MAX_NS as i128) as i64
}

/// Largest stored time: fits i64 and a fixed-width 19-digit decimal.
pub(crate) const MAX_NS: i64 = i64::MAX;

/// Fixed-width decimal of [`unix_ns`], ordered lexicographically like the number.
pub(crate) fn unix_ns_key(t: OffsetDateTime) -> String {
    format!("{:019}", unix_ns(t))
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A TTL in whole milliseconds, at least 1 (a zero TTL would mean "forever" to Redis).
pub(crate) fn ttl_ms(ttl: std::time::Duration) -> i64 {
    ttl.as_millis().clamp(1, i64::MAX as u128) as i64
}

pub(crate) fn ms_to_datetime(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// JSON of a stored API key.
pub(crate) fn encode_api_key(k: &super::ApiKeyRecord) -> Result<String, StoreError> {
    serde_json::to_string(k).map_err(|e| StoreError::Other(format!("cannot encode an API key: {e}")))
}

pub(crate) fn decode_api_key(body: &str) -> Result<super::ApiKeyRecord, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Other(format!("corrupt API key row: {e}")))
}

/// Orders keys as `GET /keys` lists them: newest `createdAt` first, then uid ascending.
pub(crate) fn sort_api_keys(keys: &mut [super::ApiKeyRecord]) {
    keys.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.uid.cmp(&b.uid)));
}

/// Shards of a missed operation as stored: a JSON array (`[]` = the whole index).
pub(crate) fn encode_shards(shards: &[u32]) -> String {
    serde_json::to_string(shards).unwrap_or_else(|_| "[]".to_string())
}

pub(crate) fn decode_shards(s: &str) -> Result<Vec<u32>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Other(format!("corrupt missed-operation shards {s:?}: {e}")))
}

/// A missed operation's time as stored: RFC 3339 with the offset it was given, nanoseconds kept.
pub(crate) fn encode_time(t: OffsetDateTime) -> Result<String, StoreError> {
    t.format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| StoreError::Other(format!("cannot encode time {t}: {e}")))
}

pub(crate) fn decode_time(s: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| StoreError::Other(format!("corrupt stored time {s:?}: {e}")))
}

/// Everything of a missed operation but its node, seq and body (Redis keeps it in front of
/// the body in one binary string, see `docs/redis-keyspace.md`).
#[derive(Serialize, Deserialize)]
pub(crate) struct MissedMeta {
    #[serde(rename = "i")]
    pub index_uid: Option<String>,
    #[serde(rename = "s")]
    pub shards: Vec<u32>,
    #[serde(rename = "m")]
    pub method: String,
    #[serde(rename = "p")]
    pub path: String,
    #[serde(rename = "c")]
    pub content_type: Option<String>,
    #[serde(rename = "t")]
    pub task_uid: Option<u64>,
    #[serde(rename = "a", with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn task_round_trips_without_uid() {
        let t = TaskRecord {
            uid: 42,
            index_uid: Some("movies".into()),
            kind: "documentAdditionOrUpdate".into(),
            status: TaskStatus::Failed,
            enqueued_at: datetime!(2026-11-26 00:59:23.194877805 UTC),
            started_at: Some(datetime!(2026-11-26 00:59:24 UTC)),
            finished_at: None,
            details: serde_json::json!({"receivedDocuments": 3}),
            error: Some(serde_json::json!({"code": "x"})),
            canceled_by: Some(u64::MAX),
            node_tasks: vec![NodeTask { node_id: "a".into(), task_uid: u64::MAX }],
            custom_metadata: Some("ünï \"meta\"".into()),
            targets: vec![1, 5],
        };
        let json = encode_task(&t).unwrap();
        assert!(!json.contains("\"uid\""));
        assert_eq!(decode_task(42, &json).unwrap(), t);
        // Records written before `customMetadata`/`targets` existed still read.
        let old = r#"{"index_uid":null,"kind":"taskDeletion","status":"succeeded","enqueued_at":"2026-11-26T00:59:23Z","started_at":null,"finished_at":null,"details":null,"error":null,"canceled_by":null,"node_tasks":[]}"#;
        let o = decode_task(1, old).unwrap();
        assert_eq!((o.custom_metadata, o.targets), (None, vec![]));
    }

    #[test]
    fn time_keys_order_like_times() {
        let a = unix_ns_key(datetime!(1999-01-01 0:00 UTC));
        let b = unix_ns_key(datetime!(2026-01-01 0:00 UTC));
        assert_eq!(a.len(), b.len());
        assert!(a < b);
        assert_eq!(unix_ns(datetime!(1960-01-01 0:00 UTC)), 0);
    }
}

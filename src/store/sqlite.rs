//! SQLite backend of the task store (rusqlite, WAL). Schema from `migrations/`.
//!
//! One connection behind a mutex; every call runs on tokio's blocking pool so the async
//! runtime never waits on disk. Writes that read-then-write run in `BEGIN IMMEDIATE`
//! transactions, so several processes may share the file (the busy timeout makes them
//! queue instead of failing).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, TransactionBehavior};
use serde_json::Value;
use time::OffsetDateTime;

use super::codec::{decode_api_key, encode_api_key, sort_api_keys};
use super::codec::{decode_shards, decode_time, encode_shards, encode_time};
use super::codec::{decode_json, decode_task, encode_json, encode_task, ms_to_datetime, now_ms, ttl_ms, unix_ns};
use super::{
    ApiKeyRecord, Lease, MirrorTable, MissedOp, MissedSummary, NewMissedOp, NewTask, StoreError, StoreResult, TaskFilter, TaskPage, TaskPaging, TaskRecord, TaskStore,
    TtlKind,
};
use super::{NewWebhookDelivery, WebhookDelivery};

/// Schema migrations, applied in order; migration `i` (0-based) brings the schema to
/// version `i + 1`, recorded in `PRAGMA user_version`.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_initial.sql"),
    include_str!("../../migrations/0002_index_settings.sql"),
    include_str!("../../migrations/0003_api_keys.sql"),
    include_str!("../../migrations/0004_missed_ops.sql"),
    include_str!("../../migrations/0005_placement.sql"),
    include_str!("../../migrations/0006_features.sql"),
    include_str!("../../migrations/0007_webhooks.sql"),
];

/// Schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long a writer waits for another process's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    /// The index context version: kept in memory, since one process uses a SQLite store
    /// (its cache is the only one to invalidate).
    context_version: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish()
    }
}

fn sql_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        // Another process held the lock for longer than the busy timeout: retryable.
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Other(format!("sqlite: {e}")),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    /// A database written by a newer schema is refused with [`StoreError::SchemaTooNew`].
    pub async fn open(path: impl AsRef<Path>) -> StoreResult<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        let conn = tokio::task::spawn_blocking(move || open_sync(&p))
            .await
            .map_err(|e| StoreError::Other(format!("sqlite open task failed: {e}")))??;
        tracing::info!(path = %path.display(), version = SCHEMA_VERSION, "sqlite task store opened");
        Ok(SqliteStore { conn: Arc::new(Mutex::new(conn)), path, context_version: Default::default() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave SQLite inconsistent (an open
            // transaction is rolled back when dropped), so a poisoned lock is still usable.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Other(format!("sqlite task failed: {e}")))?
    }
}

fn open_sync(path: &Path) -> StoreResult<Connection> {
    let mut conn =
        Connection::open(path).map_err(|e| StoreError::Other(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_err)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).map_err(sql_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Other(format!("{}: cannot switch to WAL journal mode (got {mode})", path.display())));
    }
    // FULL: a commit is on disk before it is acknowledged, even across power loss.
    conn.pragma_update(None, "synchronous", "FULL").map_err(sql_err)?;
    conn.pragma_update(None, "foreign_keys", true).map_err(sql_err)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Applies the pending migrations, each in its own transaction together with the version bump.
fn migrate(conn: &mut Connection) -> StoreResult<()> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_err)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(sql_err)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew { found: version, supported: SCHEMA_VERSION });
        }
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        let next = version + 1;
        tx.execute_batch(MIGRATIONS[version as usize])
            .map_err(|e| StoreError::Other(format!("migration to schema version {next} failed: {e}")))?;
        tx.pragma_update(None, "user_version", next).map_err(sql_err)?;
        tx.commit().map_err(sql_err)?;
        tracing::info!(version = next, "sqlite task store schema migrated");
    }
}

fn to_i64(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Other(format!("{v} is too large for the sqlite task store")))
}

/// `WHERE` clause (without the keyword) and its parameters for a task filter.
fn filter_sql(f: &TaskFilter) -> (String, Vec<SqlValue>) {
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<SqlValue> = Vec::new();
    fn in_list(col: &str, n: usize) -> String {
        format!("{col} IN ({})", vec!["?"; n].join(","))
    }
    if !f.uids.is_empty() {
        // A uid beyond i64 cannot exist in the table.
        let uids: Vec<i64> = f.uids.iter().filter_map(|u| i64::try_from(*u).ok()).collect();
        if uids.is_empty() {
            clauses.push("0".into());
        } else {
            clauses.push(in_list("uid", uids.len()));
            args.extend(uids.into_iter().map(SqlValue::Integer));
        }
    }
    if !f.statuses.is_empty() {
        clauses.push(in_list("status", f.statuses.len()));
        args.extend(f.statuses.iter().map(|s| SqlValue::Text(s.as_str().to_string())));
    }
    if !f.types.is_empty() {
        clauses.push(in_list("kind", f.types.len()));
        args.extend(f.types.iter().cloned().map(SqlValue::Text));
    }
    if !f.index_uids.is_empty() {
        clauses.push(in_list("index_uid", f.index_uids.len()));
        args.extend(f.index_uids.iter().cloned().map(SqlValue::Text));
    }
    if let Some(t) = f.before_enqueued_at {
        clauses.push("enqueued_at_ns < ?".into());
        args.push(SqlValue::Integer(unix_ns(t)));
    }
    if let Some(t) = f.after_enqueued_at {
        clauses.push("enqueued_at_ns > ?".into());
        args.push(SqlValue::Integer(unix_ns(t)));
    }
    if clauses.is_empty() {
        ("1".into(), args)
    } else {
        (clauses.join(" AND "), args)
    }
}

fn read_tasks(conn: &Connection, sql: &str, args: Vec<SqlValue>) -> StoreResult<Vec<TaskRecord>> {
    let mut stmt = conn.prepare_cached(sql).map_err(sql_err)?;
    let rows = stmt
        .query_map(params_from_iter(args), |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .map_err(sql_err)?;
    let mut out = Vec::new();
    for row in rows {
        let (uid, body) = row.map_err(sql_err)?;
        out.push(decode_task(uid as u64, &body)?);
    }
    Ok(out)
}

fn mirror_table(t: MirrorTable) -> &'static str {
    // Table names come from this closed set only, never from input.
    t.name()
}

fn ttl_table(k: TtlKind) -> &'static str {
    k.name()
}

/// Columns of `missed_ops` read by [`read_missed`], in order.
const MISSED_COLS: &str = "seq, index_uid, shards, method, path, content_type, task_uid, created_at, body";

fn read_missed(conn: &Connection, node_id: &str, sql: &str, args: Vec<SqlValue>) -> StoreResult<Vec<MissedOp>> {
    let mut stmt = conn.prepare_cached(sql).map_err(sql_err)?;
    let rows = stmt
        .query_map(params_from_iter(args), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<i64>>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, Vec<u8>>(8)?,
            ))
        })
        .map_err(sql_err)?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, index_uid, shards, method, path, content_type, task_uid, created_at, body) = row.map_err(sql_err)?;
        let op = NewMissedOp {
            index_uid,
            shards: decode_shards(&shards)?,
            method,
            path,
            content_type,
            body,
            // Stored bit-cast to i64.
            task_uid: task_uid.map(|u| u as u64),
            created_at: decode_time(&created_at)?,
        };
        out.push(op.into_op(node_id, seq as u64));
    }
    Ok(out)
}

/// Deletes the node's pending operations with `seq <= up_to` (all when `None`) and updates its
/// counters, inside one `BEGIN IMMEDIATE` transaction. Returns how many were deleted.
fn remove_missed(c: &mut Connection, node_id: &str, up_to: Option<u64>) -> StoreResult<u64> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_err)?;
    let up_to = up_to.map(|u| i64::try_from(u).unwrap_or(i64::MAX)).unwrap_or(i64::MAX);
    let (n, bytes): (i64, i64) = tx
        .query_row(
            // length() of a BLOB comes from the record header: the bodies are not read.
            "SELECT COUNT(*), COALESCE(SUM(length(body)), 0) FROM missed_ops WHERE node_id = ? AND seq <= ?",
            params![node_id, up_to],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(sql_err)?;
    if n == 0 {
        return Ok(0);
    }
    tx.execute("DELETE FROM missed_ops WHERE node_id = ? AND seq <= ?", params![node_id, up_to]).map_err(sql_err)?;
    // Pending seqs are one run first_seq..last_seq: the new front follows the last deleted one.
    tx.execute(
        "UPDATE missed_nodes SET pending = pending - ?1, bytes = bytes - ?2,
             first_seq = CASE WHEN pending - ?1 > 0 THEN first_seq + ?1 ELSE last_seq + 1 END
         WHERE node_id = ?3",
        params![n, bytes, node_id],
    )
    .map_err(sql_err)?;
    tx.commit().map_err(sql_err)?;
    Ok(n as u64)
}

#[async_trait]
impl TaskStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.with(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(sql_err)).await
    }

    async fn create_task(&self, task: NewTask) -> StoreResult<TaskRecord> {
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_err)?;
            let uid: i64 = tx
                .query_row(
                    "UPDATE task_uid_seq SET next_uid = next_uid + 1 WHERE id = 0 RETURNING next_uid - 1",
                    [],
                    |r| r.get(0),
                )
                .map_err(sql_err)?;
            let record = task.into_record(uid as u64);
            tx.execute(
                "INSERT INTO tasks (uid, index_uid, kind, status, enqueued_at_ns, body) VALUES (?, ?, ?, ?, ?, ?)",
                params![
                    uid,
                    record.index_uid,
                    record.kind,
                    record.status.as_str(),
                    unix_ns(record.enqueued_at),
                    encode_task(&record)?
                ],
            )
            .map_err(sql_err)?;
            tx.commit().map_err(sql_err)?;
            Ok(record)
        })
        .await
    }

    async fn get_task(&self, uid: u64) -> StoreResult<Option<TaskRecord>> {
        let Ok(uid) = i64::try_from(uid) else { return Ok(None) };
        self.with(move |c| {
            let mut tasks = read_tasks(c, "SELECT uid, body FROM tasks WHERE uid = ?", vec![SqlValue::Integer(uid)])?;
            Ok(tasks.pop())
        })
        .await
    }

    async fn update_task(&self, task: &TaskRecord) -> StoreResult<()> {
        let uid = to_i64(task.uid)?;
        let body = encode_task(task)?;
        let (index_uid, kind, status, ns) =
            (task.index_uid.clone(), task.kind.clone(), task.status, unix_ns(task.enqueued_at));
        self.with(move |c| {
            // Updating a deleted (or never allocated) uid is a no-op: it must not come back.
            c.execute(
                "UPDATE tasks SET index_uid = ?, kind = ?, status = ?, enqueued_at_ns = ?, body = ? WHERE uid = ?",
                params![index_uid, kind, status.as_str(), ns, body, uid],
            )
            .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn list_tasks(&self, filter: &TaskFilter, paging: &TaskPaging) -> StoreResult<TaskPage> {
        if filter.has_unindexed() {
            // Conditions on fields of the record's JSON: filter the decoded records.
            return Ok(super::page_of(self.find_tasks(filter).await?, paging));
        }
        let (where_sql, args) = filter_sql(filter);
        let paging = paging.clone();
        self.with(move |c| {
            let total: i64 = c
                .prepare_cached(&format!("SELECT COUNT(*) FROM tasks WHERE {where_sql}"))
                .and_then(|mut s| s.query_row(params_from_iter(args.iter()), |r| r.get(0)))
                .map_err(sql_err)?;
            let mut page_args = args;
            let mut sql = format!("SELECT uid, body FROM tasks WHERE {where_sql}");
            if let Some(from) = paging.from {
                let from = i64::try_from(from).unwrap_or(i64::MAX);
                sql.push_str(if paging.reverse { " AND uid >= ?" } else { " AND uid <= ?" });
                page_args.push(SqlValue::Integer(from));
            }
            sql.push_str(if paging.reverse { " ORDER BY uid ASC" } else { " ORDER BY uid DESC" });
            sql.push_str(" LIMIT ?");
            page_args.push(SqlValue::Integer(paging.limit.saturating_add(1).min(i64::MAX as usize) as i64));
            let mut results = read_tasks(c, &sql, page_args)?;
            let next = if results.len() > paging.limit { results.pop().map(|t| t.uid) } else { None };
            Ok(TaskPage { results, total: total as u64, next })
        })
        .await
    }

    async fn find_tasks(&self, filter: &TaskFilter) -> StoreResult<Vec<TaskRecord>> {
        let (where_sql, args) = filter_sql(filter);
        let mut found = self
            .with(move |c| {
                read_tasks(c, &format!("SELECT uid, body FROM tasks WHERE {where_sql} ORDER BY uid DESC"), args)
            })
            .await?;
        found.retain(|t| filter.matches_unindexed(t));
        Ok(found)
    }

    async fn delete_tasks(&self, uids: &[u64]) -> StoreResult<u64> {
        let uids: Vec<i64> = uids.iter().filter_map(|u| i64::try_from(*u).ok()).collect();
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_err)?;
            let mut deleted = 0u64;
            {
                let mut stmt = tx.prepare_cached("DELETE FROM tasks WHERE uid = ?").map_err(sql_err)?;
                for uid in uids {
                    deleted += stmt.execute([uid]).map_err(sql_err)? as u64;
                }
            }
            tx.commit().map_err(sql_err)?;
            Ok(deleted)
        })
        .await
    }

    async fn try_acquire_lease(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<bool> {
        let (name, holder, ttl) = (name.to_string(), holder.to_string(), ttl_ms(ttl));
        self.with(move |c| {
            let now = now_ms();
            // Insert, or take over when free/expired, or renew when already ours.
            let changed = c
                .execute(
                    "INSERT INTO leader_lease (name, holder, expires_at_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at_ms = excluded.expires_at_ms
                     WHERE leader_lease.holder = excluded.holder OR leader_lease.expires_at_ms <= ?4",
                    params![name, holder, now.saturating_add(ttl), now],
                )
                .map_err(sql_err)?;
            Ok(changed > 0)
        })
        .await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.with(move |c| {
            c.execute("DELETE FROM leader_lease WHERE name = ? AND holder = ?", params![name, holder])
                .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn get_lease(&self, name: &str) -> StoreResult<Option<Lease>> {
        let name = name.to_string();
        self.with(move |c| {
            c.query_row(
                "SELECT holder, expires_at_ms FROM leader_lease WHERE name = ? AND expires_at_ms > ?",
                params![name, now_ms()],
                |r| Ok(Lease { name: name.clone(), holder: r.get(0)?, expires_at: ms_to_datetime(r.get(1)?) }),
            )
            .optional()
            .map_err(sql_err)
        })
        .await
    }

    async fn upsert_mirror(&self, table: MirrorTable, cluster: &str, name: &str, spec: &Value) -> StoreResult<()> {
        let (cluster, name, spec) = (cluster.to_string(), name.to_string(), encode_json(spec)?);
        self.with(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO {} (cluster, name, spec) VALUES (?, ?, ?)
                     ON CONFLICT (cluster, name) DO UPDATE SET spec = excluded.spec",
                    mirror_table(table)
                ),
                params![cluster, name, spec],
            )
            .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn get_mirror(&self, table: MirrorTable, cluster: &str, name: &str) -> StoreResult<Option<Value>> {
        let (cluster, name) = (cluster.to_string(), name.to_string());
        self.with(move |c| {
            let spec: Option<String> = c
                .query_row(
                    &format!("SELECT spec FROM {} WHERE cluster = ? AND name = ?", mirror_table(table)),
                    params![cluster, name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_err)?;
            spec.as_deref().map(decode_json).transpose()
        })
        .await
    }

    async fn list_mirror(&self, table: MirrorTable, cluster: &str) -> StoreResult<Vec<(String, Value)>> {
        let cluster = cluster.to_string();
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT name, spec FROM {} WHERE cluster = ? ORDER BY name",
                    mirror_table(table)
                ))
                .map_err(sql_err)?;
            let rows =
                stmt.query_map([cluster], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(sql_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (name, spec) = row.map_err(sql_err)?;
                out.push((name, decode_json(&spec)?));
            }
            Ok(out)
        })
        .await
    }

    async fn delete_mirror(&self, table: MirrorTable, cluster: &str, name: &str) -> StoreResult<()> {
        let (cluster, name) = (cluster.to_string(), name.to_string());
        self.with(move |c| {
            c.execute(
                &format!("DELETE FROM {} WHERE cluster = ? AND name = ?", mirror_table(table)),
                params![cluster, name],
            )
            .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn delete_cluster_state(&self, cluster: &str) -> StoreResult<()> {
        let cluster = cluster.to_string();
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_err)?;
            for table in MirrorTable::ALL {
                tx.execute(&format!("DELETE FROM {} WHERE cluster = ?", mirror_table(table)), [&cluster])
                    .map_err(sql_err)?;
            }
            // Leases named `<cluster>/...`; compared as a prefix, not LIKE (no wildcards).
            let lease_prefix = format!("{cluster}/");
            tx.execute("DELETE FROM leader_lease WHERE substr(name, 1, length(?1)) = ?1", [&lease_prefix])
                .map_err(sql_err)?;
            tx.execute("DELETE FROM cdc_cursors WHERE cluster = ?", [&cluster]).map_err(sql_err)?;
            tx.commit().map_err(sql_err)
        })
        .await
    }

    async fn put_ttl(&self, kind: TtlKind, key: &str, value: &Value, ttl: Duration) -> StoreResult<()> {
        let (key, value, ttl) = (key.to_string(), encode_json(value)?, ttl_ms(ttl));
        self.with(move |c| {
            let now = now_ms();
            let table = ttl_table(kind);
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_err)?;
            // Lazy purge: expired rows go away on the next write (indexed on the expiry).
            tx.execute(&format!("DELETE FROM {table} WHERE expires_at_ms <= ?"), [now]).map_err(sql_err)?;
            tx.execute(
                &format!(
                    "INSERT INTO {table} (key, value, expires_at_ms) VALUES (?, ?, ?)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at_ms = excluded.expires_at_ms"
                ),
                params![key, value, now.saturating_add(ttl)],
            )
            .map_err(sql_err)?;
            tx.commit().map_err(sql_err)
        })
        .await
    }

    async fn get_ttl(&self, kind: TtlKind, key: &str) -> StoreResult<Option<Value>> {
        let key = key.to_string();
        self.with(move |c| {
            let value: Option<String> = c
                .query_row(
                    &format!("SELECT value FROM {} WHERE key = ? AND expires_at_ms > ?", ttl_table(kind)),
                    params![key, now_ms()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_err)?;
            value.as_deref().map(decode_json).transpose()
        })
        .await
    }

    async fn advance_cdc_cursor(&self, cluster: &str, name: &str, position: u64) -> StoreResult<u64> {
        let (cluster, name) = (cluster.to_string(), name.to_string());
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_err)?;
            let current: Option<i64> = tx
                .query_row(
                    "SELECT position FROM cdc_cursors WHERE cluster = ? AND name = ?",
                    params![cluster, name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_err)?;
            // Stored bit-cast to i64; compared as u64 here.
            let current = current.map(|p| p as u64);
            let stored = match current {
                Some(cur) if cur >= position => cur,
                _ => {
                    tx.execute(
                        "INSERT INTO cdc_cursors (cluster, name, position) VALUES (?, ?, ?)
                         ON CONFLICT (cluster, name) DO UPDATE SET position = excluded.position",
                        params![cluster, name, position as i64],
                    )
                    .map_err(sql_err)?;
                    position
                }
            };
            tx.commit().map_err(sql_err)?;
            Ok(stored)
        })
        .await
    }

    async fn get_cdc_cursor(&self, cluster: &str, name: &str) -> StoreResult<Option<u64>> {
        let (cluster, name) = (cluster.to_string(), name.to_string());
        self.with(move |c| {
            let p: Option<i64> = c
                .query_row(
                    "SELECT position FROM cdc_cursors WHERE cluster = ? AND name = ?",
                    params![cluster, name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_err)?;
            Ok(p.map(|p| p as u64))
        })
        .await
    }

    async fn put_index_settings(&self, index_uid: &str, settings: &Value) -> StoreResult<()> {
        let (uid, text) = (index_uid.to_string(), settings.to_string());
        self.with(move |c| {
            c.execute(
                "INSERT INTO index_settings (index_uid, settings) VALUES (?, ?)
                 ON CONFLICT (index_uid) DO UPDATE SET settings = excluded.settings",
                params![uid, text],
            )
            .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn get_index_settings(&self, index_uid: &str) -> StoreResult<Option<Value>> {
        let uid = index_uid.to_string();
        self.with(move |c| {
            let text: Option<String> = c
                .query_row("SELECT settings FROM index_settings WHERE index_uid = ?", params![uid], |r| r.get(0))
                .optional()
                .map_err(sql_err)?;
            text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Other(format!("corrupt index settings row: {e}"))))
                .transpose()
        })
        .await
    }

    async fn delete_index_settings(&self, index_uid: &str) -> StoreResult<()> {
        let uid = index_uid.to_string();
        self.with(move |c| {
            c.execute("DELETE FROM index_settings WHERE index_uid = ?", params![uid]).map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn bump_index_context(&self, _index_uid: Option<&str>) -> StoreResult<u64> {
        Ok(self.context_version.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1)
    }

    async fn index_context_version(&self) -> StoreResult<u64> {
        Ok(self.context_version.load(std::sync::atomic::Ordering::SeqCst))
    }

    fn watch_index_context(&self) -> Option<tokio::sync::mpsc::Receiver<super::ContextEvent>> {
        None
    }

    async fn put_features(&self, features: &Value) -> StoreResult<()> {
        let text = features.to_string();
        self.with(move |c| {
            c.execute(
                "INSERT INTO features (id, features) VALUES (1, ?)
                 ON CONFLICT (id) DO UPDATE SET features = excluded.features",
                params![text],
            )
            .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn get_features(&self) -> StoreResult<Option<Value>> {
        self.with(move |c| {
            let text: Option<String> =
                c.query_row("SELECT features FROM features WHERE id = 1", [], |r| r.get(0)).optional().map_err(sql_err)?;
            text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Other(format!("corrupt features row: {e}")))).transpose()
        })
        .await
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<bool> {
        let (uid, ns, body) = (key.uid.hyphenated().to_string(), unix_ns(key.created_at), encode_api_key(key)?);
        self.with(move |c| {
            let n = c
                .execute(
                    "INSERT INTO api_keys (uid, created_at_ns, body) VALUES (?, ?, ?) ON CONFLICT (uid) DO NOTHING",
                    params![uid, ns, body],
                )
                .map_err(sql_err)?;
            Ok(n == 1)
        })
        .await
    }

    async fn get_api_key(&self, uid: uuid::Uuid) -> StoreResult<Option<ApiKeyRecord>> {
        let uid = uid.hyphenated().to_string();
        self.with(move |c| {
            let body: Option<String> = c
                .query_row("SELECT body FROM api_keys WHERE uid = ?", [uid], |r| r.get(0))
                .optional()
                .map_err(sql_err)?;
            body.as_deref().map(decode_api_key).transpose()
        })
        .await
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        self.with(move |c| {
            let mut stmt = c.prepare_cached("SELECT body FROM api_keys").map_err(sql_err)?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(sql_err)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(decode_api_key(&row.map_err(sql_err)?)?);
            }
            sort_api_keys(&mut out);
            Ok(out)
        })
        .await
    }

    async fn update_api_key(&self, key: &ApiKeyRecord) -> StoreResult<bool> {
        let (uid, ns, body) = (key.uid.hyphenated().to_string(), unix_ns(key.created_at), encode_api_key(key)?);
        self.with(move |c| {
            let n = c
                .execute("UPDATE api_keys SET created_at_ns = ?, body = ? WHERE uid = ?", params![ns, body, uid])
                .map_err(sql_err)?;
            Ok(n == 1)
        })
        .await
    }

    async fn delete_api_key(&self, uid: uuid::Uuid) -> StoreResult<bool> {
        let uid = uid.hyphenated().to_string();
        self.with(move |c| Ok(c.execute("DELETE FROM api_keys WHERE uid = ?", [uid]).map_err(sql_err)? == 1)).await
    }

    async fn insert_api_keys_if_empty(&self, keys: &[ApiKeyRecord]) -> StoreResult<bool> {
        let rows = keys
            .iter()
            .map(|k| Ok((k.uid.hyphenated().to_string(), unix_ns(k.created_at), encode_api_key(k)?)))
            .collect::<StoreResult<Vec<_>>>()?;
        self.with(move |c| {
            // IMMEDIATE: two processes on one file cannot both see an empty table.
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_err)?;
            let any: Option<i64> =
                tx.query_row("SELECT 1 FROM api_keys LIMIT 1", [], |r| r.get(0)).optional().map_err(sql_err)?;
            if any.is_some() {
                return Ok(false);
            }
            for (uid, ns, body) in rows {
                tx.execute("INSERT INTO api_keys (uid, created_at_ns, body) VALUES (?, ?, ?)", params![uid, ns, body])
                    .map_err(sql_err)?;
            }
            tx.commit().map_err(sql_err)?;
            Ok(true)
        })
        .await
    }

    async fn append_missed(&self, node_id: &str, op: NewMissedOp) -> StoreResult<MissedOp> {
        let node = node_id.to_string();
        let (shards, created_at) = (encode_shards(&op.shards), encode_time(op.created_at)?);
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_err)?;
            let len = op.body.len() as i64;
            let seq: i64 = tx
                .query_row(
                    "INSERT INTO missed_nodes (node_id, last_seq, first_seq, pending, bytes) VALUES (?1, 1, 1, 1, ?2)
                     ON CONFLICT (node_id) DO UPDATE SET last_seq = last_seq + 1,
                         first_seq = CASE WHEN pending = 0 THEN last_seq + 1 ELSE first_seq END,
                         pending = pending + 1, bytes = bytes + ?2
                     RETURNING last_seq",
                    params![node, len],
                    |r| r.get(0),
                )
                .map_err(sql_err)?;
            tx.execute(
                "INSERT INTO missed_ops (node_id, seq, index_uid, shards, method, path, content_type, task_uid, created_at, body)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params![
                    node,
                    seq,
                    op.index_uid,
                    shards,
                    op.method,
                    op.path,
                    op.content_type,
                    op.task_uid.map(|u| u as i64),
                    created_at,
                    op.body
                ],
            )
            .map_err(sql_err)?;
            tx.commit().map_err(sql_err)?;
            Ok(op.into_op(&node, seq as u64))
        })
        .await
    }

    async fn list_missed(&self, node_id: &str, after_seq: Option<u64>, limit: usize) -> StoreResult<Vec<MissedOp>> {
        let node = node_id.to_string();
        // Seqs are positive: "after 0" is everything; after i64::MAX nothing can follow.
        let Ok(after) = i64::try_from(after_seq.unwrap_or(0)) else { return Ok(Vec::new()) };
        let limit = limit.min(i64::MAX as usize) as i64;
        self.with(move |c| {
            read_missed(
                c,
                &node,
                &format!("SELECT {MISSED_COLS} FROM missed_ops WHERE node_id = ? AND seq > ? ORDER BY seq LIMIT ?"),
                vec![SqlValue::Text(node.clone()), SqlValue::Integer(after), SqlValue::Integer(limit)],
            )
        })
        .await
    }

    async fn ack_missed(&self, node_id: &str, up_to_seq: u64) -> StoreResult<u64> {
        let node = node_id.to_string();
        self.with(move |c| remove_missed(c, &node, Some(up_to_seq))).await
    }

    async fn missed_summary(&self, node_id: &str) -> StoreResult<MissedSummary> {
        let node = node_id.to_string();
        self.with(move |c| {
            let row: Option<(i64, i64, i64, i64)> = c
                .query_row(
                    "SELECT pending, bytes, first_seq, last_seq FROM missed_nodes WHERE node_id = ?",
                    [node],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(sql_err)?;
            Ok(match row {
                Some((pending, bytes, first, last)) if pending > 0 => MissedSummary {
                    pending: pending as u64,
                    bytes: bytes as u64,
                    oldest_seq: Some(first as u64),
                    newest_seq: Some(last as u64),
                },
                _ => MissedSummary::default(),
            })
        })
        .await
    }

    async fn drop_missed(&self, node_id: &str) -> StoreResult<u64> {
        let node = node_id.to_string();
        self.with(move |c| remove_missed(c, &node, None)).await
    }

    async fn nodes_with_missed(&self) -> StoreResult<Vec<String>> {
        self.with(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT node_id FROM missed_nodes WHERE pending > 0 ORDER BY node_id").map_err(sql_err)?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(sql_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(sql_err)
        })
        .await
    }

    async fn get_placement(&self) -> StoreResult<Option<(u64, Value)>> {
        self.with(move |c| {
            // One statement: version and state come from the same committed row.
            let row: Option<(i64, String)> = c
                .query_row("SELECT version, state FROM placement WHERE id = 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(sql_err)?;
            row.map(|(version, state)| Ok((version as u64, decode_json(&state)?))).transpose()
        })
        .await
    }

    async fn put_placement(&self, expected: u64, state: &Value) -> StoreResult<Option<u64>> {
        // Versions are SQLite integers (i64): an `expected` beyond i64 matches no stored
        // version, and at i64::MAX the space is exhausted (not reachable in practice): nothing
        // is written either way.
        let Some(next) = i64::try_from(expected).ok().and_then(|e| e.checked_add(1)) else { return Ok(None) };
        let state = encode_json(state)?;
        self.with(move |c| {
            // Each branch is one statement, hence atomic on its own (SQLite takes the write
            // lock for it; other processes queue on the busy timeout). The version check and
            // the write cannot be separated by another writer.
            let changed = if expected == 0 {
                c.execute(
                    "INSERT INTO placement (id, version, state) VALUES (1, 1, ?) ON CONFLICT (id) DO NOTHING",
                    params![state],
                )
            } else {
                c.execute(
                    "UPDATE placement SET version = ?1, state = ?2 WHERE id = 1 AND version = ?3",
                    params![next, state, next - 1],
                )
            }
            .map_err(sql_err)?;
            Ok((changed == 1).then_some(next as u64))
        })
        .await
    }

    async fn get_webhooks(&self) -> StoreResult<Option<(u64, Value)>> {
        self.with(move |c| {
            let row: Option<(i64, String)> = c
                .query_row("SELECT version, state FROM webhooks WHERE id = 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(sql_err)?;
            row.map(|(version, state)| Ok((version as u64, decode_json(&state)?))).transpose()
        })
        .await
    }

    async fn put_webhooks(&self, expected: u64, webhooks: &Value) -> StoreResult<Option<u64>> {
        let Some(next) = i64::try_from(expected).ok().and_then(|e| e.checked_add(1)) else { return Ok(None) };
        let state = encode_json(webhooks)?;
        self.with(move |c| {
            // One statement per branch: the version check and the write are one atomic step.
            let changed = if expected == 0 {
                c.execute("INSERT INTO webhooks (id, version, state) VALUES (1, 1, ?) ON CONFLICT (id) DO NOTHING", params![state])
            } else {
                c.execute("UPDATE webhooks SET version = ?1, state = ?2 WHERE id = 1 AND version = ?3", params![next, state, next - 1])
            }
            .map_err(sql_err)?;
            Ok((changed == 1).then_some(next as u64))
        })
        .await
    }

    async fn enqueue_webhook_event(&self, task_uid: u64, deliveries: &[NewWebhookDelivery]) -> StoreResult<bool> {
        let uid = to_i64(task_uid)?;
        let deliveries = deliveries.to_vec();
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_err)?;
            let new = tx
                .execute("INSERT INTO webhook_events (task_uid) VALUES (?) ON CONFLICT (task_uid) DO NOTHING", params![uid])
                .map_err(sql_err)?;
            if new == 0 {
                return Ok(false);
            }
            let now = now_ms();
            for d in &deliveries {
                tx.execute(
                    "INSERT INTO webhook_deliveries (task_uid, webhook, body, attempts, next_attempt_at) VALUES (?, ?, ?, 0, ?)",
                    params![uid, d.webhook, d.body, now],
                )
                .map_err(sql_err)?;
            }
            tx.commit().map_err(sql_err)?;
            Ok(true)
        })
        .await
    }

    async fn due_webhook_deliveries(&self, now: OffsetDateTime, limit: usize) -> StoreResult<Vec<WebhookDelivery>> {
        let now = unix_ms(now);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT id, task_uid, webhook, body, attempts, next_attempt_at FROM webhook_deliveries \
                     WHERE next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
                )
                .map_err(sql_err)?;
            let rows = stmt
                .query_map(params![now, limit], |r| {
                    Ok(WebhookDelivery {
                        id: r.get::<_, i64>(0)? as u64,
                        task_uid: r.get::<_, i64>(1)? as u64,
                        webhook: r.get(2)?,
                        body: r.get(3)?,
                        attempts: r.get::<_, i64>(4)?.clamp(0, u32::MAX as i64) as u32,
                        next_attempt_at: ms_to_datetime(r.get(5)?),
                    })
                })
                .map_err(sql_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(sql_err)
        })
        .await
    }

    async fn retry_webhook_delivery(&self, id: u64, attempts: u32, next_attempt_at: OffsetDateTime) -> StoreResult<bool> {
        let id = to_i64(id)?;
        let next = unix_ms(next_attempt_at);
        self.with(move |c| {
            let n = c
                .execute(
                    "UPDATE webhook_deliveries SET attempts = ?, next_attempt_at = ? WHERE id = ?",
                    params![attempts as i64, next, id],
                )
                .map_err(sql_err)?;
            Ok(n == 1)
        })
        .await
    }

    async fn finish_webhook_delivery(&self, id: u64) -> StoreResult<bool> {
        let id = to_i64(id)?;
        self.with(move |c| Ok(c.execute("DELETE FROM webhook_deliveries WHERE id = ?", params![id]).map_err(sql_err)? == 1)).await
    }

    async fn prune_webhook_events(&self, below: u64) -> StoreResult<u64> {
        let below = i64::try_from(below).unwrap_or(i64::MAX);
        self.with(move |c| Ok(c.execute("DELETE FROM webhook_events WHERE task_uid < ?", params![below]).map_err(sql_err)? as u64))
            .await
    }

    async fn put_backup(&self, uid: &str, manifest: &Value) -> StoreResult<()> {
        let uid = uid.to_string();
        let manifest = encode_json(manifest)?;
        self.with(move |c| {
            c.execute(
                "INSERT INTO backups (uid, manifest) VALUES (?1, ?2) ON CONFLICT (uid) DO UPDATE SET manifest = excluded.manifest",
                params![uid, manifest],
            )
            .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn get_backup(&self, uid: &str) -> StoreResult<Option<Value>> {
        let uid = uid.to_string();
        self.with(move |c| {
            let row: Option<String> =
                c.query_row("SELECT manifest FROM backups WHERE uid = ?", params![uid], |r| r.get(0)).optional().map_err(sql_err)?;
            row.map(|m| decode_json(&m)).transpose()
        })
        .await
    }

    async fn list_backups(&self) -> StoreResult<Vec<String>> {
        self.with(move |c| {
            let mut stmt = c.prepare("SELECT uid FROM backups ORDER BY uid").map_err(sql_err)?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(sql_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(sql_err)
        })
        .await
    }
}

/// Unix milliseconds of a time (the outbox's clock).
fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

//! Redis backend of the task store. Keyspace documented in `docs/redis-keyspace.md`.
//!
//! One key per row plus `_index:*` sorted sets/sets for list-wide reads: no request ever
//! uses `SCAN`/`KEYS`. Every multi-key change is one Lua script or one `MULTI`, so a crash
//! or a concurrent writer never sees a row without its index entries. Every call is
//! bounded in time; when Redis cannot be reached it fails with [`StoreError::Unavailable`]
//! and the connection manager reconnects by itself once Redis is back.
//!
//! Scripts build key names from the prefix, so this backend targets a single Redis primary
//! (optionally with replicas/Sentinel), not Redis Cluster.

use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, RedisError, Script};
use serde_json::Value;
use time::OffsetDateTime;

use super::codec::{decode_api_key, encode_api_key, sort_api_keys, MissedMeta};
use super::codec::{decode_json, decode_task, encode_json, encode_task, ms_to_datetime, now_ms, ttl_ms, unix_ns_key};
use super::{
    ApiKeyRecord, Lease, MirrorTable, MissedOp, MissedSummary, NewMissedOp, NewTask, StoreError, StoreResult, TaskFilter, TaskPage, TaskPaging, TaskRecord, TaskStore,
    TtlKind,
};
use super::{NewWebhookDelivery, WebhookDelivery};

/// Keyspace version this build writes and understands (`<prefix>schema_version`).
pub const SCHEMA_VERSION: i64 = 1;

/// Bound on establishing one TCP connection to Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Bound on one command's reply.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on a whole store call (connect + command), whatever the client library does.
const CALL_TIMEOUT: Duration = Duration::from_millis(2500);
/// Largest page the list script is asked for (keeps `limit + 1` an exact Lua number).
const MAX_LIMIT: usize = 1 << 40;

pub struct RedisStore {
    client: redis::Client,
    /// Replaced by a fresh manager if a failure is one the manager does not recover from
    /// by itself (see [`RedisStore::bounded`]).
    conn: std::sync::RwLock<ConnectionManager>,
    prefix: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never printed.
        f.debug_struct("RedisStore").field("prefix", &self.prefix).finish()
    }
}

fn is_unavailable(e: &RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        // Out of memory under `noeviction`: writes are refused until memory is freed.
        || e.code() == Some("OOM")
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
            )
        )
}

fn redis_err(e: RedisError) -> StoreError {
    if is_unavailable(&e) {
        StoreError::Unavailable(format!("redis: {e}"))
    } else {
        StoreError::Other(format!("redis: {e}"))
    }
}

/// Escapes a key component that is followed by more components (`%` and `:`), so that
/// `("a:b", "c")` and `("a", "b:c")` never share a key.
fn enc(s: &str) -> String {
    s.replace('%', "%25").replace(':', "%3A")
}

// ---- Lua scripts. ARGV[1] is always the key prefix.

/// Shared helpers: add/remove a task's index entries.
const TASK_INDEX_LUA: &str = r#"
local function idx_add(p, uid, status, typ, iu, enq)
  redis.call('ZADD', p .. '_index:tasks', uid, uid)
  redis.call('ZADD', p .. '_index:tasks:status:' .. status, uid, uid)
  redis.call('ZADD', p .. '_index:tasks:type:' .. typ, uid, uid)
  if iu then redis.call('ZADD', p .. '_index:tasks:index_uid:' .. iu, uid, uid) end
  redis.call('ZADD', p .. '_index:tasks:enqueued_at', 0, enq .. ':' .. uid)
end
local function idx_rem(p, uid, status, typ, iu, enq)
  redis.call('ZREM', p .. '_index:tasks', uid)
  redis.call('ZREM', p .. '_index:tasks:status:' .. status, uid)
  redis.call('ZREM', p .. '_index:tasks:type:' .. typ, uid)
  if iu then redis.call('ZREM', p .. '_index:tasks:index_uid:' .. iu, uid) end
  redis.call('ZREM', p .. '_index:tasks:enqueued_at', enq .. ':' .. uid)
end
local function write_task(p, uid, row, status, typ, iu, enq)
  redis.call('SET', p .. 'task:' .. uid, row)
  idx_add(p, uid, status, typ, iu, enq)
end
-- Header of a task row (see `encode_row`): status, type, index uid (false if none), enq.
local function parse_row(row)
  local pos = 20
  local function field()
    local l = string.sub(row, pos, pos + 3)
    pos = pos + 4
    if l == '----' then return false end
    local n = tonumber(l)
    local v = string.sub(row, pos, pos + n - 1)
    pos = pos + n
    return v
  end
  local status = field()
  local typ = field()
  local iu = field()
  return status, typ, iu, string.sub(row, 1, 19)
end
"#;

/// ARGV: prefix, body, status, type, has_index_uid, index_uid, enq. Returns the new uid.
static CREATE_TASK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{TASK_INDEX_LUA}
local p = ARGV[1]
local uid = string.format('%d', redis.call('INCR', p .. 'task_uid_seq') - 1)
local iu = false
if ARGV[5] == '1' then iu = ARGV[6] end
write_task(p, uid, ARGV[2], ARGV[3], ARGV[4], iu, ARGV[7])
return uid
"#
    ))
});

/// ARGV: prefix, uid, body, status, type, has_index_uid, index_uid, enq. Returns 1 if the task existed.
static UPDATE_TASK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{TASK_INDEX_LUA}
local p, uid = ARGV[1], ARGV[2]
local old = redis.call('GET', p .. 'task:' .. uid)
if not old then return 0 end
idx_rem(p, uid, parse_row(old))
local iu = false
if ARGV[6] == '1' then iu = ARGV[7] end
write_task(p, uid, ARGV[3], ARGV[4], ARGV[5], iu, ARGV[8])
return 1
"#
    ))
});

/// ARGV: prefix, uid... Returns how many existed.
static DELETE_TASKS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{TASK_INDEX_LUA}
local p = ARGV[1]
local n = 0
for i = 2, #ARGV do
  local uid = ARGV[i]
  local key = p .. 'task:' .. uid
  local old = redis.call('GET', key)
  if old then
    idx_rem(p, uid, parse_row(old))
    redis.call('DEL', key)
    n = n + 1
  end
end
return n
"#
    ))
});

/// Filtered, paged task listing, atomically.
/// ARGV: prefix, limit, from ('' = none), reverse ('1'/'0'), before ('' = none), after ('' = none),
/// then four counted lists: uids, statuses, types, index_uids (each `n, v1..vn`).
/// Returns {total, next ('' = none), uid1, body1, uid2, body2, ...}.
const LIST_TASKS_LUA: &str = r#"
local p = ARGV[1]
local limit = tonumber(ARGV[2])
local from = ARGV[3]
local reverse = ARGV[4] == '1'
local before, after = ARGV[5], ARGV[6]
local i = 7
local function list()
  local n = tonumber(ARGV[i]); local out, set = {}, {}
  for j = 1, n do
    local v = ARGV[i + j]
    if not set[v] then set[v] = true; out[#out + 1] = v end
  end
  i = i + n + 1
  return out, set
end
local uids = list()
local dims = {}
for _, d in ipairs({{'status', 'status'}, {'type', 'type'}, {'index_uid', 'index_uid'}}) do
  local vals, set = list()
  if #vals > 0 then
    local keys = {}
    for _, v in ipairs(vals) do keys[#keys + 1] = p .. '_index:tasks:' .. d[2] .. ':' .. v end
    dims[#dims + 1] = {field = d[1], set = set, keys = keys}
  end
end

local total, page = 0, {}
local srcs = nil
if #uids == 0 and before == '' and after == '' then
  if #dims == 0 then srcs = {p .. '_index:tasks'}
  elseif #dims == 1 then srcs = dims[1].keys end
end

if srcs then
  -- Sorted sets of one field's values are disjoint (a task has one value per field): the
  -- total is the sum of their sizes and a page is a merge of each one's first limit+1.
  local merged = {}
  for _, src in ipairs(srcs) do
    total = total + redis.call('ZCARD', src)
    local part
    if reverse then
      local lo = '-inf'; if from ~= '' then lo = from end
      part = redis.call('ZRANGEBYSCORE', src, lo, '+inf', 'LIMIT', 0, limit + 1)
    else
      local hi = '+inf'; if from ~= '' then hi = from end
      part = redis.call('ZREVRANGEBYSCORE', src, hi, '-inf', 'LIMIT', 0, limit + 1)
    end
    for _, u in ipairs(part) do merged[#merged + 1] = tonumber(u) end
  end
  if #srcs > 1 then
    if reverse then table.sort(merged) else table.sort(merged, function(a, b) return a > b end) end
  end
  for j = 1, math.min(#merged, limit + 1) do page[j] = string.format('%d', merged[j]) end
else
  -- Candidates from the most selective source, then every filter checked on the row.
  local cands = {}
  if #uids > 0 then
    cands = uids
  elseif #dims > 0 then
    local best, best_n = nil, -1
    for _, d in ipairs(dims) do
      local n = 0
      for _, k in ipairs(d.keys) do n = n + redis.call('ZCARD', k) end
      if best_n < 0 or n < best_n then best, best_n = d, n end
    end
    for _, k in ipairs(best.keys) do
      for _, u in ipairs(redis.call('ZRANGE', k, 0, -1)) do cands[#cands + 1] = u end
    end
  else
    local lo, hi = '-', '+'
    if after ~= '' then lo = '(' .. after .. ':~' end
    if before ~= '' then hi = '(' .. before end
    for _, m in ipairs(redis.call('ZRANGEBYLEX', p .. '_index:tasks:enqueued_at', lo, hi)) do
      cands[#cands + 1] = string.sub(m, string.find(m, ':', 1, true) + 1)
    end
  end
  local matched, seen = {}, {}
  for _, u in ipairs(cands) do
    if not seen[u] then
      seen[u] = true
      local row = redis.call('GET', p .. 'task:' .. u)
      local ok = row ~= false
      local f, vals = {}, {}
      if ok then
        f[1], f[2], f[3], f[4] = parse_row(row)
        vals = {status = f[1], type = f[2], index_uid = f[3]}
        for _, d in ipairs(dims) do
          local v = vals[d.field]
          if not v or not d.set[v] then ok = false; break end
        end
      end
      if ok and before ~= '' and not (f[4] < before) then ok = false end
      if ok and after ~= '' and not (f[4] > after) then ok = false end
      if ok then matched[#matched + 1] = tonumber(u) end
    end
  end
  if reverse then table.sort(matched) else table.sort(matched, function(a, b) return a > b end) end
  total = #matched
  local f = tonumber(from)
  for _, u in ipairs(matched) do
    if #page > limit then break end
    if not f or (reverse and u >= f) or (not reverse and u <= f) then
      page[#page + 1] = string.format('%d', u)
    end
  end
end

local out = {string.format('%d', total), ''}
for j, u in ipairs(page) do
  if j > limit then out[2] = u; break end
  local body = redis.call('GET', p .. 'task:' .. u)
  if body then out[#out + 1] = u; out[#out + 1] = body end
end
return out
"#;
static LIST_TASKS: LazyLock<Script> = LazyLock::new(|| Script::new(&[TASK_INDEX_LUA, LIST_TASKS_LUA].concat()));

/// KEYS: lease, lease index. ARGV: holder, ttl ms, name.
static ACQUIRE_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('SADD', KEYS[2], ARGV[3])
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"#,
    )
});

/// KEYS: lease, lease index. ARGV: holder, name.
static RELEASE_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[2])
end
return 0
"#,
    )
});

/// KEYS: lease. Returns {holder, pttl} or {}.
static GET_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local h = redis.call('GET', KEYS[1])
if not h then return {} end
return {h, tostring(redis.call('PTTL', KEYS[1]))}
"#,
    )
});

/// KEYS: mirror index. ARGV: row key prefix. Returns {name1, spec1, ...} ordered by name.
static LIST_MIRROR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local out = {}
for _, name in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local v = redis.call('GET', ARGV[1] .. name)
  if v then out[#out + 1] = name; out[#out + 1] = v end
end
return out
"#,
    )
});

/// ARGV: lease key prefix, lease index, lease-name prefix of the cluster, cdc row prefix,
/// cdc index, then pairs (mirror row prefix, mirror index) for every mirror table.
static DELETE_CLUSTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local lease_prefix, lease_index, cluster_leases = ARGV[1], ARGV[2], ARGV[3]
for _, name in ipairs(redis.call('SMEMBERS', lease_index)) do
  if string.sub(name, 1, #cluster_leases) == cluster_leases then
    redis.call('DEL', lease_prefix .. name)
    redis.call('SREM', lease_index, name)
  end
end
for _, name in ipairs(redis.call('SMEMBERS', ARGV[5])) do redis.call('DEL', ARGV[4] .. name) end
redis.call('DEL', ARGV[5])
for i = 6, #ARGV, 2 do
  for _, name in ipairs(redis.call('ZRANGE', ARGV[i + 1], 0, -1)) do redis.call('DEL', ARGV[i] .. name) end
  redis.call('DEL', ARGV[i + 1])
end
return 0
"#,
    )
});

/// KEYS: cursor, cdc index. ARGV: position (decimal u64), name. Returns the stored position.
static ADVANCE_CDC: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local cur = redis.call('GET', KEYS[1])
local function gt(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
if cur and not gt(ARGV[1], cur) then return cur end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return ARGV[1]
"#,
    )
});

/// KEYS: the API key hash. ARGV: uid, JSON. Replaces the field only if it exists.
static UPDATE_API_KEY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"#,
    )
});

/// KEYS: the API key hash. ARGV: uid1, JSON1, uid2, JSON2, ... Stores them only if the hash
/// is empty (one script: two Miroirs starting at once cannot both do it).
static INSERT_API_KEYS_IF_EMPTY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('HLEN', KEYS[1]) > 0 then return 0 end
for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"#,
    )
});

/// KEYS: schema version key. ARGV: this build's version. Returns the stored version.
static CHECK_SCHEMA: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
"#,
    )
});

// ---- missed operations. Per node: a hash `missed_node:<node>` {last, first, bytes} and one
// string `missed_op:<node>:<seq>` per pending op; the pending seqs are exactly first..last
// (appends add at the end, acks remove from the front), so no per-op index is needed.

/// ARGV: node hash, op key prefix, node set, node id, row, body length. Returns the seq.
static APPEND_MISSED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local seq = string.format('%d', redis.call('HINCRBY', ARGV[1], 'last', 1))
redis.call('SET', ARGV[2] .. seq, ARGV[5])
redis.call('HSETNX', ARGV[1], 'first', seq)
redis.call('HINCRBY', ARGV[1], 'bytes', ARGV[6])
redis.call('SADD', ARGV[3], ARGV[4])
return seq
"#,
    )
});

/// ARGV: node hash, op key prefix, after ('' = from the start), limit.
/// Returns {seq1, row1, seq2, row2, ...}.
static LIST_MISSED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local first = tonumber(redis.call('HGET', ARGV[1], 'first'))
if not first then return {} end
local last = tonumber(redis.call('HGET', ARGV[1], 'last'))
local start = first
if ARGV[3] ~= '' then start = math.max(first, tonumber(ARGV[3]) + 1) end
local stop = math.min(last, start + tonumber(ARGV[4]) - 1)
local out = {}
for s = start, stop do
  local seq = string.format('%d', s)
  local row = redis.call('GET', ARGV[2] .. seq)
  if row then out[#out + 1] = seq; out[#out + 1] = row end
end
return out
"#,
    )
});

/// ARGV: node hash, op key prefix, node set, node id, up_to ('' = everything).
/// Deletes the pending ops with seq <= up_to; returns how many.
static REMOVE_MISSED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local first = tonumber(redis.call('HGET', ARGV[1], 'first'))
if not first then return 0 end
local last = tonumber(redis.call('HGET', ARGV[1], 'last'))
local stop = last
if ARGV[5] ~= '' then stop = math.min(last, tonumber(ARGV[5])) end
if stop < first then return 0 end
local freed = 0
for s = first, stop do
  local k = ARGV[2] .. string.format('%d', s)
  -- Body length = row length - 8 - metadata length (the row's first 8 bytes).
  local ml = tonumber(redis.call('GETRANGE', k, 0, 7))
  if ml then freed = freed + redis.call('STRLEN', k) - 8 - ml end
  redis.call('UNLINK', k)
end
if stop == last then
  redis.call('HDEL', ARGV[1], 'first', 'bytes')
  redis.call('SREM', ARGV[3], ARGV[4])
else
  redis.call('HSET', ARGV[1], 'first', string.format('%d', stop + 1))
  redis.call('HINCRBY', ARGV[1], 'bytes', -freed)
end
return stop - first + 1
"#,
    )
});

// ---- placement state: one hash `placement` {version, state}.

/// KEYS: the placement hash. ARGV: expected version, new version (both decimal), state JSON.
/// Writes both fields only if the stored version (`0` when the hash does not exist) is the
/// expected one, compared as exact decimal strings. Returns 1 if it wrote, 0 otherwise.
static PUT_PLACEMENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local cur = redis.call('HGET', KEYS[1], 'version')
if not cur then cur = '0' end
if cur ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'state', ARGV[3])
return 1
"#,
    )
});

// ---- webhooks: a hash `webhooks` {version, state} written by PUT_PLACEMENT's script (the same
// compare-and-set); the outbox: a sorted set `_index:webhook_events` (member and score: the
// task uid), a counter `webhook_delivery_seq`, one hash `webhook_delivery:<id>` {task, webhook,
// body, attempts, next} per pending delivery and a sorted set `_index:webhook_due` (score: next
// attempt, unix ms; member: id).

/// ARGV: events zset, seq key, delivery key prefix, due zset, task uid, now ms, then pairs
/// (webhook, body). Returns 1 if the event was new (and the deliveries enqueued), else 0.
static ENQUEUE_WEBHOOK_EVENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('ZADD', ARGV[1], 'NX', ARGV[5], ARGV[5]) == 0 then return 0 end
local i = 7
while i < #ARGV do
  local id = string.format('%d', redis.call('INCR', ARGV[2]))
  redis.call('HSET', ARGV[3] .. id, 'task', ARGV[5], 'webhook', ARGV[i], 'body', ARGV[i + 1], 'attempts', '0', 'next', ARGV[6])
  redis.call('ZADD', ARGV[4], ARGV[6], id)
  i = i + 2
end
return 1
"#,
    )
});

/// ARGV: due zset, delivery key prefix, now ms, limit. Returns {id, task, webhook, body,
/// attempts, next, ...} of the due deliveries, earliest first.
static DUE_WEBHOOK_DELIVERIES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local ids = redis.call('ZRANGE', ARGV[1], '-inf', ARGV[3], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[4]))
local out = {}
for _, id in ipairs(ids) do
  local row = redis.call('HMGET', ARGV[2] .. id, 'task', 'webhook', 'body', 'attempts', 'next')
  if row[1] then
    out[#out + 1] = id
    for j = 1, 5 do out[#out + 1] = row[j] end
  end
end
return out
"#,
    )
});

/// ARGV: due zset, delivery key, id, attempts, next ms. Returns 1 if the delivery exists.
static RETRY_WEBHOOK_DELIVERY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', ARGV[2]) == 0 then return 0 end
redis.call('HSET', ARGV[2], 'attempts', ARGV[4], 'next', ARGV[5])
redis.call('ZADD', ARGV[1], ARGV[5], ARGV[3])
return 1
"#,
    )
});

/// ARGV: due zset, delivery key, id. Returns 1 if the delivery existed.
static FINISH_WEBHOOK_DELIVERY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
redis.call('ZREM', ARGV[1], ARGV[3])
return redis.call('DEL', ARGV[2])
"#,
    )
});

/// A lazily connecting manager with the store's time bounds.
fn new_manager(client: &redis::Client) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        // One attempt per (re)connection: a call must fail fast when Redis is down; the
        // next call triggers the next attempt.
        .set_number_of_retries(0);
    ConnectionManager::new_lazy_with_config(client.clone(), config)
}

fn parse_u64(s: &str) -> StoreResult<u64> {
    s.parse().map_err(|_| StoreError::Other(format!("redis returned a non-integer: {s:?}")))
}

impl RedisStore {
    /// A versioned record (the placement, the webhook set): `version` and `state` of one hash,
    /// read with one `HMGET` so both come from the same write.
    async fn get_versioned(&self, key: String, what: &str) -> StoreResult<Option<(u64, Value)>> {
        let mut c = self.conn();
        let (version, state): (Option<String>, Option<String>) =
            self.bounded(async move { redis::cmd("HMGET").arg(key).arg("version").arg("state").query_async(&mut c).await })
                .await?;
        match (version, state) {
            (None, None) => Ok(None),
            (Some(v), Some(state)) => Ok(Some((parse_u64(&v)?, decode_json(&state)?))),
            _ => Err(StoreError::Other(format!("stored {what} is incomplete (version or state missing)"))),
        }
    }

    /// Compare-and-set of a versioned record. Same bound as the SQLite backend (versions fit
    /// i64): an `expected` beyond it, or i64::MAX itself (not reachable in practice), writes nothing.
    async fn put_versioned(&self, key: String, expected: u64, state: &Value) -> StoreResult<Option<u64>> {
        let Some(next) = i64::try_from(expected).ok().and_then(|e| e.checked_add(1)) else { return Ok(None) };
        let mut inv = PUT_PLACEMENT.prepare_invoke();
        inv.key(key).arg(expected.to_string()).arg(next.to_string()).arg(encode_json(state)?);
        let mut c = self.conn();
        let wrote: i64 = self.bounded(async move { inv.invoke_async(&mut c).await }).await?;
        Ok((wrote == 1).then_some(next as u64))
    }

    /// Connects to `url` with all keys under `prefix` (e.g. `miroir:`) and checks the keyspace
    /// version. Fails with [`StoreError::Unavailable`] if Redis cannot be reached now; once
    /// built, the store reconnects by itself.
    pub async fn connect(url: &str, prefix: &str) -> StoreResult<RedisStore> {
        let client = redis::Client::open(url).map_err(|e| StoreError::Other(format!("invalid redis url: {e}")))?;
        let conn = new_manager(&client).map_err(redis_err)?;
        let store = RedisStore { client, conn: std::sync::RwLock::new(conn), prefix: prefix.to_string() };
        let mut c = store.conn();
        let key = store.key("schema_version");
        let found: String =
            store.bounded(async move { CHECK_SCHEMA.key(key).arg(SCHEMA_VERSION).invoke_async(&mut c).await }).await?;
        let found: i64 = found.parse().map_err(|_| StoreError::Other(format!("invalid schema version {found:?}")))?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew { found, supported: SCHEMA_VERSION });
        }
        tracing::info!(prefix, version = found, "redis task store connected");
        Ok(store)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// The pub/sub channel of index context bumps.
    fn context_channel(&self) -> String {
        self.key("ctx")
    }

    fn lease_index(&self) -> String {
        self.key("_index:leases")
    }
    fn lease_key(&self, name: &str) -> String {
        self.key(&format!("lease:{name}"))
    }
    fn mirror_row_prefix(&self, table: MirrorTable, cluster: &str) -> String {
        self.key(&format!("mirror:{}:{}:", table.name(), enc(cluster)))
    }
    fn mirror_index(&self, table: MirrorTable, cluster: &str) -> String {
        self.key(&format!("_index:mirror:{}:{}", table.name(), enc(cluster)))
    }
    fn index_settings_key(&self, index_uid: &str) -> String {
        self.key(&format!("index_settings:{}", enc(index_uid)))
    }
    fn features_key(&self) -> String {
        self.key("features")
    }
    fn api_keys_key(&self) -> String {
        self.key("api_keys")
    }
    fn cdc_row_prefix(&self, cluster: &str) -> String {
        self.key(&format!("cdc:{}:", enc(cluster)))
    }
    fn cdc_index(&self, cluster: &str) -> String {
        self.key(&format!("_index:cdc:{}", enc(cluster)))
    }
    fn ttl_key(&self, kind: TtlKind, key: &str) -> String {
        self.key(&format!("ttl:{}:{key}", kind.name()))
    }
    fn missed_node_key(&self, node_id: &str) -> String {
        self.key(&format!("missed_node:{}", enc(node_id)))
    }
    fn missed_op_prefix(&self, node_id: &str) -> String {
        self.key(&format!("missed_op:{}:", enc(node_id)))
    }
    fn missed_nodes_index(&self) -> String {
        self.key("_index:missed_nodes")
    }
    fn placement_key(&self) -> String {
        self.key("placement")
    }
    fn webhooks_key(&self) -> String {
        self.key("webhooks")
    }
    fn webhook_events_index(&self) -> String {
        self.key("_index:webhook_events")
    }
    fn webhook_due_index(&self) -> String {
        self.key("_index:webhook_due")
    }
    fn webhook_delivery_prefix(&self) -> String {
        self.key("webhook_delivery:")
    }
    fn backups_key(&self) -> String {
        self.key("backups")
    }

    /// Deletes the node's pending ops with seq <= `up_to` (all when `None`).
    async fn remove_missed(&self, node_id: &str, up_to: Option<u64>) -> StoreResult<u64> {
        let mut inv = REMOVE_MISSED.prepare_invoke();
        inv.arg(self.missed_node_key(node_id))
            .arg(self.missed_op_prefix(node_id))
            .arg(self.missed_nodes_index())
            .arg(node_id)
            .arg(up_to.map(|u| u.to_string()).unwrap_or_default());
        let mut c = self.conn();
        self.bounded(async move { inv.invoke_async(&mut c).await }).await
    }

    /// Runs one Redis round trip with the overall time bound.
    ///
    /// The connection manager reconnects by itself only when the connection is known to be
    /// dead (refused, reset, closed). A reply timeout leaves it on the same connection, which
    /// may be half-dead (peer gone without a reset) for many minutes; other "unavailable"
    /// failures (e.g. `LOADING` while connecting) can leave it holding a failed connection.
    /// In those cases the manager is replaced, so the next call connects afresh.
    async fn bounded<T>(&self, fut: impl Future<Output = redis::RedisResult<T>>) -> StoreResult<T> {
        match tokio::time::timeout(CALL_TIMEOUT, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if is_unavailable(&e) && !e.is_unrecoverable_error() {
                    self.reset();
                }
                Err(redis_err(e))
            }
            Err(_) => {
                self.reset();
                Err(StoreError::Unavailable(format!("redis did not answer within {CALL_TIMEOUT:?}")))
            }
        }
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn reset(&self) {
        match new_manager(&self.client) {
            Ok(m) => {
                *self.conn.write().unwrap_or_else(|p| p.into_inner()) = m;
                tracing::debug!("redis connection manager rebuilt");
            }
            Err(e) => tracing::warn!(error = %e, "cannot rebuild the redis connection manager"),
        }
    }

    async fn list(&self, filter: &TaskFilter, limit: usize, from: Option<u64>, reverse: bool) -> StoreResult<TaskPage> {
        let mut inv = LIST_TASKS.prepare_invoke();
        inv.arg(&self.prefix)
            .arg(limit.min(MAX_LIMIT))
            .arg(from.map(|f| f.to_string()).unwrap_or_default())
            .arg(if reverse { "1" } else { "0" })
            .arg(filter.before_enqueued_at.map(unix_ns_key).unwrap_or_default())
            .arg(filter.after_enqueued_at.map(unix_ns_key).unwrap_or_default());
        inv.arg(filter.uids.len());
        for u in &filter.uids {
            inv.arg(u.to_string());
        }
        inv.arg(filter.statuses.len());
        for s in &filter.statuses {
            inv.arg(s.as_str());
        }
        inv.arg(filter.types.len());
        for t in &filter.types {
            inv.arg(t);
        }
        inv.arg(filter.index_uids.len());
        for i in &filter.index_uids {
            inv.arg(i);
        }
        let mut c = self.conn();
        let out: Vec<String> = self.bounded(async move { inv.invoke_async(&mut c).await }).await?;
        let mut it = out.into_iter();
        let total = parse_u64(&it.next().unwrap_or_default())?;
        let next = match it.next() {
            Some(n) if !n.is_empty() => Some(parse_u64(&n)?),
            _ => None,
        };
        let mut results = Vec::new();
        while let (Some(uid), Some(body)) = (it.next(), it.next()) {
            results.push(decode_task(parse_u64(&uid)?, row_json(&body)?)?);
        }
        Ok(TaskPage { results, total, next })
    }
}

/// A task row is one string: a fixed-layout header with the indexed fields, then the JSON
/// of the record (see `docs/redis-keyspace.md`):
/// `<enqueued_at: 19-digit unix ns><len:4><status><len:4><type><len:4 or ----><index uid><json>`.
/// A string (rather than a hash) keeps a row in one compact allocation.
fn encode_row(t: &TaskRecord) -> StoreResult<String> {
    fn field(out: &mut String, v: Option<&str>) -> StoreResult<()> {
        match v {
            None => out.push_str("----"),
            Some(v) if v.len() <= 9999 => {
                out.push_str(&format!("{:04}", v.len()));
                out.push_str(v);
            }
            Some(v) => return Err(StoreError::Other(format!("task field too long for the store ({} bytes)", v.len()))),
        }
        Ok(())
    }
    let mut row = unix_ns_key(t.enqueued_at);
    field(&mut row, Some(t.status.as_str()))?;
    field(&mut row, Some(&t.kind))?;
    field(&mut row, t.index_uid.as_deref())?;
    row.push_str(&encode_task(t)?);
    Ok(row)
}

/// The JSON part of a row written by [`encode_row`].
fn row_json(row: &str) -> StoreResult<&str> {
    let bad = || StoreError::Other("stored task row has an invalid header".to_string());
    let mut pos = 19;
    for _ in 0..3 {
        let len = row.get(pos..pos + 4).ok_or_else(bad)?;
        pos += 4;
        if len != "----" {
            pos += len.parse::<usize>().map_err(|_| bad())?;
        }
    }
    row.get(pos..).ok_or_else(bad)
}

/// A missed operation is one binary string: `<metadata length: 8 decimal digits><metadata
/// JSON><body bytes>` (see `docs/redis-keyspace.md`); the body is kept byte for byte.
fn encode_missed(op: &NewMissedOp) -> StoreResult<Vec<u8>> {
    let meta = MissedMeta {
        index_uid: op.index_uid.clone(),
        shards: op.shards.clone(),
        method: op.method.clone(),
        path: op.path.clone(),
        content_type: op.content_type.clone(),
        task_uid: op.task_uid,
        created_at: op.created_at,
    };
    let meta = serde_json::to_vec(&meta).map_err(|e| StoreError::Other(format!("cannot encode a missed operation: {e}")))?;
    if meta.len() > 99_999_999 {
        return Err(StoreError::Other("missed operation metadata too long for the store".into()));
    }
    let mut row = Vec::with_capacity(8 + meta.len() + op.body.len());
    row.extend_from_slice(format!("{:08}", meta.len()).as_bytes());
    row.extend_from_slice(&meta);
    row.extend_from_slice(&op.body);
    Ok(row)
}

fn decode_missed(node_id: &str, seq: u64, row: &[u8]) -> StoreResult<MissedOp> {
    let bad = |why: &str| StoreError::Other(format!("stored missed operation {node_id}/{seq} is not readable: {why}"));
    let len: usize = std::str::from_utf8(row.get(..8).ok_or_else(|| bad("short row"))?)
        .ok()
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| bad("invalid header"))?;
    let meta = row.get(8..8 + len).ok_or_else(|| bad("short row"))?;
    let m: MissedMeta = serde_json::from_slice(meta).map_err(|e| bad(&e.to_string()))?;
    let op = NewMissedOp {
        index_uid: m.index_uid,
        shards: m.shards,
        method: m.method,
        path: m.path,
        content_type: m.content_type,
        body: row[8 + len..].to_vec(),
        task_uid: m.task_uid,
        created_at: m.created_at,
    };
    Ok(op.into_op(node_id, seq))
}

/// Script arguments describing a task row: row, status, type, has_index_uid, index_uid, enq.
fn task_args(inv: &mut redis::ScriptInvocation<'_>, t: &TaskRecord) -> StoreResult<()> {
    inv.arg(encode_row(t)?)
        .arg(t.status.as_str())
        .arg(&t.kind)
        .arg(if t.index_uid.is_some() { "1" } else { "0" })
        .arg(t.index_uid.as_deref().unwrap_or(""))
        .arg(unix_ns_key(t.enqueued_at));
    Ok(())
}

#[async_trait]
impl TaskStore for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> StoreResult<()> {
        let mut c = self.conn();
        let _: String = self.bounded(async move { redis::cmd("PING").query_async(&mut c).await }).await?;
        Ok(())
    }

    async fn create_task(&self, task: NewTask) -> StoreResult<TaskRecord> {
        let mut record = task.into_record(0);
        let mut inv = CREATE_TASK.prepare_invoke();
        inv.arg(&self.prefix);
        task_args(&mut inv, &record)?;
        let mut c = self.conn();
        let uid: String = self.bounded(async move { inv.invoke_async(&mut c).await }).await?;
        record.uid = parse_u64(&uid)?;
        Ok(record)
    }

    async fn get_task(&self, uid: u64) -> StoreResult<Option<TaskRecord>> {
        let key = self.key(&format!("task:{uid}"));
        let mut c = self.conn();
        let row: Option<String> = self.bounded(async move { c.get(key).await }).await?;
        row.map(|r| decode_task(uid, row_json(&r)?)).transpose()
    }

    async fn update_task(&self, task: &TaskRecord) -> StoreResult<()> {
        let mut inv = UPDATE_TASK.prepare_invoke();
        inv.arg(&self.prefix).arg(task.uid.to_string());
        task_args(&mut inv, task)?;
        let mut c = self.conn();
        // 0 when the task does not exist: a deleted task is not brought back.
        let _: i64 = self.bounded(async move { inv.invoke_async(&mut c).await }).await?;
        Ok(())
    }

    async fn list_tasks(&self, filter: &TaskFilter, paging: &TaskPaging) -> StoreResult<TaskPage> {
        if filter.has_unindexed() {
            // Conditions on fields of the record's JSON: filter the decoded records.
            return Ok(super::page_of(self.find_tasks(filter).await?, paging));
        }
        self.list(filter, paging.limit, paging.from, paging.reverse).await
    }

    async fn find_tasks(&self, filter: &TaskFilter) -> StoreResult<Vec<TaskRecord>> {
        let mut found = self.list(&filter.indexed_part(), MAX_LIMIT, None, false).await?.results;
        found.retain(|t| filter.matches_unindexed(t));
        Ok(found)
    }

    async fn delete_tasks(&self, uids: &[u64]) -> StoreResult<u64> {
        if uids.is_empty() {
            return Ok(0);
        }
        let mut inv = DELETE_TASKS.prepare_invoke();
        inv.arg(&self.prefix);
        for u in uids {
            inv.arg(u.to_string());
        }
        let mut c = self.conn();
        let n: u64 = self.bounded(async move { inv.invoke_async(&mut c).await }).await?;
        Ok(n)
    }

    async fn try_acquire_lease(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<bool> {
        let mut inv = ACQUIRE_LEASE.prepare_invoke();
        inv.key(self.lease_key(name)).key(self.lease_index()).arg(holder).arg(ttl_ms(ttl)).arg(name);
        let mut c = self.conn();
        let got: i64 = self.bounded(async move { inv.invoke_async(&mut c).await }).await?;
        Ok(got == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        let mut inv = RELEASE_LEASE.prepare_invoke();
        inv.key(self.lease_key(name)).key(self.lease_index()).arg(holder).arg(name);
        let mut c = self.conn();
        let _: i64 = self.bounded(async move { inv.invoke_async(&mut c).await }).await?;
        Ok(())
    }

    async fn get_lease(&self, name: &str) -> StoreResult<Option<Lease>> {
        let mut inv = GET_LEASE.prepare_invoke();
        inv.key(self.lease_key(name));
        let mut c = self.conn();
        let out: Vec<String> = self.bounded(async move { inv.invoke_async(&mut c).await }).await?;
        let mut it = out.into_iter();
        Ok(match (it.next(), it.next()) {
            // PTTL -2: expired between GET and PTTL (cannot happen inside a script; defensive).
            (Some(holder), Some(pttl)) if pttl != "-2" => {
                let pttl: i64 = pttl.parse().unwrap_or(0);
                Some(Lease { name: name.to_string(), holder, expires_at: ms_to_datetime(now_ms() + pttl.max(0)) })
            }
            _ => None,
        })
    }

    async fn upsert_mirror(&self, table: MirrorTable, cluster: &str, name: &str, spec: &Value) -> StoreResult<()> {
        let row = format!("{}{name}", self.mirror_row_prefix(table, cluster));
        let index = self.mirror_index(table, cluster);
        let mut pipe = redis::pipe();
        pipe.atomic().set(row, encode_json(spec)?).ignore().zadd(index, name, 0).ignore();
        let mut c = self.conn();
        self.bounded(async move { pipe.exec_async(&mut c).await }).await
    }

    async fn get_mirror(&self, table: MirrorTable, cluster: &str, name: &str) -> StoreResult<Option<Value>> {
        let row = format!("{}{name}", self.mirror_row_prefix(table, cluster));
        let mut c = self.conn();
        let v: Option<String> = self.bounded(async move { c.get(row).await }).await?;
        v.as_deref().map(decode_json).transpose()
    }

    async fn list_mirror(&self, table: MirrorTable, cluster: &str) -> StoreResult<Vec<(String, Value)>> {
        let mut inv = LIST_MIRROR.prepare_invoke();
        inv.key(self.mirror_index(table, cluster)).arg(self.mirror_row_prefix(table, cluster));
        let mut c = self.conn();
        let out: Vec<String> = self.bounded(async move { inv.invoke_async(&mut c).await }).await?;
        let mut rows = Vec::with_capacity(out.len() / 2);
        let mut it = out.into_iter();
        while let (Some(name), Some(spec)) = (it.next(), it.next()) {
            rows.push((name, decode_json(&spec)?));
        }
        Ok(rows)
    }

    async fn delete_mirror(&self, table: MirrorTable, cluster: &str, name: &str) -> StoreResult<()> {
        let row = format!("{}{name}", self.mirror_row_prefix(table, cluster));
        let index = self.mirror_index(table, cluster);
        let mut pipe = redis::pipe();
        pipe.atomic().del(row).ignore().zrem(index, name).ignore();
        let mut c = self.conn();
        self.bounded(async move { pipe.exec_async(&mut c).await }).await
    }

    async fn delete_cluster_state(&self, cluster: &str) -> StoreResult<()> {
        let mut inv = DELETE_CLUSTER.prepare_invoke();
        inv.arg(self.key("lease:"))
            .arg(self.lease_index())
            .arg(format!("{cluster}/"))
            .arg(self.cdc_row_prefix(cluster))
            .arg(self.cdc_index(cluster));
        for table in MirrorTable::ALL {
            inv.arg(self.mirror_row_prefix(table, cluster)).arg(self.mirror_index(table, cluster));
        }
        let mut c = self.conn();
        let _: i64 = self.bounded(async move { inv.invoke_async(&mut c).await }).await?;
        Ok(())
    }

    async fn put_ttl(&self, kind: TtlKind, key: &str, value: &Value, ttl: Duration) -> StoreResult<()> {
        let key = self.ttl_key(kind, key);
        let value = encode_json(value)?;
        let ms = ttl_ms(ttl) as u64;
        let mut c = self.conn();
        self.bounded(async move { redis::cmd("SET").arg(key).arg(value).arg("PX").arg(ms).exec_async(&mut c).await })
            .await
    }

    async fn get_ttl(&self, kind: TtlKind, key: &str) -> StoreResult<Option<Value>> {
        let key = self.ttl_key(kind, key);
        let mut c = self.conn();
        let v: Option<String> = self.bounded(async move { c.get(key).await }).await?;
        v.as_deref().map(decode_json).transpose()
    }

    async fn advance_cdc_cursor(&self, cluster: &str, name: &str, position: u64) -> StoreResult<u64> {
        let mut inv = ADVANCE_CDC.prepare_invoke();
        inv.key(format!("{}{name}", self.cdc_row_prefix(cluster)))
            .key(self.cdc_index(cluster))
            .arg(position.to_string())
            .arg(name);
        let mut c = self.conn();
        let stored: String = self.bounded(async move { inv.invoke_async(&mut c).await }).await?;
        parse_u64(&stored)
    }

    async fn get_cdc_cursor(&self, cluster: &str, name: &str) -> StoreResult<Option<u64>> {
        let key = format!("{}{name}", self.cdc_row_prefix(cluster));
        let mut c = self.conn();
        let v: Option<String> = self.bounded(async move { c.get(key).await }).await?;
        v.as_deref().map(parse_u64).transpose()
    }

    async fn put_index_settings(&self, index_uid: &str, settings: &Value) -> StoreResult<()> {
        let (key, text) = (self.index_settings_key(index_uid), settings.to_string());
        let mut c = self.conn();
        self.bounded(async move { c.set::<_, _, ()>(key, text).await }).await
    }

    async fn get_index_settings(&self, index_uid: &str) -> StoreResult<Option<Value>> {
        let key = self.index_settings_key(index_uid);
        let mut c = self.conn();
        let v: Option<String> = self.bounded(async move { c.get(key).await }).await?;
        v.as_deref().map(decode_json).transpose()
    }

    async fn delete_index_settings(&self, index_uid: &str) -> StoreResult<()> {
        let key = self.index_settings_key(index_uid);
        let mut c = self.conn();
        self.bounded(async move { c.del::<_, ()>(key).await }).await
    }

    async fn bump_index_context(&self, index_uid: Option<&str>) -> StoreResult<u64> {
        let (key, channel) = (self.key("index_context_version"), self.context_channel());
        // An index uid is never empty: the empty payload means every index.
        let payload = index_uid.unwrap_or_default().to_string();
        let mut c = self.conn();
        let (v, _): (u64, i64) = self
            .bounded(async move { redis::pipe().atomic().incr(key, 1).publish(channel, payload).query_async(&mut c).await })
            .await?;
        Ok(v)
    }

    async fn index_context_version(&self) -> StoreResult<u64> {
        let key = self.key("index_context_version");
        let mut c = self.conn();
        let v: Option<u64> = self.bounded(async move { c.get(key).await }).await?;
        Ok(v.unwrap_or(0))
    }

    fn watch_index_context(&self) -> Option<tokio::sync::mpsc::Receiver<super::ContextEvent>> {
        use futures::StreamExt;
        use super::ContextEvent;
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let (client, channel) = (self.client.clone(), self.context_channel());
        tokio::spawn(async move {
            loop {
                let subscribed = tokio::time::timeout(CALL_TIMEOUT, async {
                    let mut ps = client.get_async_pubsub().await?;
                    ps.subscribe(&channel).await?;
                    Ok::<_, RedisError>(ps)
                })
                .await;
                if let Ok(Ok(mut ps)) = subscribed {
                    if tx.send(ContextEvent::Connected).await.is_err() {
                        return;
                    }
                    let mut messages = ps.on_message();
                    loop {
                        tokio::select! {
                            m = messages.next() => match m {
                                Some(m) => {
                                    let uid: String = m.get_payload().unwrap_or_default();
                                    let ev = ContextEvent::Changed((!uid.is_empty()).then_some(uid));
                                    if tx.send(ev).await.is_err() {
                                        return;
                                    }
                                }
                                None => break,
                            },
                            _ = tx.closed() => return,
                        }
                    }
                }
                tracing::warn!("index context subscription lost; the settings cache is off until it is back");
                if tx.send(ContextEvent::Disconnected).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        Some(rx)
    }

    async fn put_features(&self, features: &Value) -> StoreResult<()> {
        let (key, text) = (self.features_key(), features.to_string());
        let mut c = self.conn();
        self.bounded(async move { c.set::<_, _, ()>(key, text).await }).await
    }

    async fn get_features(&self) -> StoreResult<Option<Value>> {
        let key = self.features_key();
        let mut c = self.conn();
        let v: Option<String> = self.bounded(async move { c.get(key).await }).await?;
        v.as_deref().map(decode_json).transpose()
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<bool> {
        let (hash, uid, json) = (self.api_keys_key(), key.uid.hyphenated().to_string(), encode_api_key(key)?);
        let mut c = self.conn();
        self.bounded(async move { c.hset_nx::<_, _, _, bool>(hash, uid, json).await }).await
    }

    async fn get_api_key(&self, uid: uuid::Uuid) -> StoreResult<Option<ApiKeyRecord>> {
        let (hash, uid) = (self.api_keys_key(), uid.hyphenated().to_string());
        let mut c = self.conn();
        let v: Option<String> = self.bounded(async move { c.hget(hash, uid).await }).await?;
        v.as_deref().map(decode_api_key).transpose()
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        let hash = self.api_keys_key();
        let mut c = self.conn();
        let all: Vec<(String, String)> = self.bounded(async move { c.hgetall(hash).await }).await?;
        let mut out = all.iter().map(|(_, json)| decode_api_key(json)).collect::<StoreResult<Vec<_>>>()?;
        sort_api_keys(&mut out);
        Ok(out)
    }

    async fn update_api_key(&self, key: &ApiKeyRecord) -> StoreResult<bool> {
        let mut inv = UPDATE_API_KEY.prepare_invoke();
        inv.key(self.api_keys_key()).arg(key.uid.hyphenated().to_string()).arg(encode_api_key(key)?);
        let mut c = self.conn();
        let n: i64 = self.bounded(async move { inv.invoke_async(&mut c).await }).await?;
        Ok(n == 1)
    }

    async fn delete_api_key(&self, uid: uuid::Uuid) -> StoreResult<bool> {
        let (hash, uid) = (self.api_keys_key(), uid.hyphenated().to_string());
        let mut c = self.conn();
        let n: i64 = self.bounded(async move { c.hdel(hash, uid).await }).await?;
        Ok(n == 1)
    }

    async fn insert_api_keys_if_empty(&self, keys: &[ApiKeyRecord]) -> StoreResult<bool> {
        let mut inv = INSERT_API_KEYS_IF_EMPTY.prepare_invoke();
        inv.key(self.api_keys_key());
        for k in keys {
            inv.arg(k.uid.hyphenated().to_string()).arg(encode_api_key(k)?);
        }
        let mut c = self.conn();
        let n: i64 = self.bounded(async move { inv.invoke_async(&mut c).await }).await?;
        Ok(n == 1)
    }

    async fn append_missed(&self, node_id: &str, op: NewMissedOp) -> StoreResult<MissedOp> {
        let row = encode_missed(&op)?;
        let mut inv = APPEND_MISSED.prepare_invoke();
        inv.arg(self.missed_node_key(node_id))
            .arg(self.missed_op_prefix(node_id))
            .arg(self.missed_nodes_index())
            .arg(node_id)
            .arg(row)
            .arg(op.body.len());
        let mut c = self.conn();
        let seq: String = self.bounded(async move { inv.invoke_async(&mut c).await }).await?;
        Ok(op.into_op(node_id, parse_u64(&seq)?))
    }

    async fn list_missed(&self, node_id: &str, after_seq: Option<u64>, limit: usize) -> StoreResult<Vec<MissedOp>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut inv = LIST_MISSED.prepare_invoke();
        inv.arg(self.missed_node_key(node_id))
            .arg(self.missed_op_prefix(node_id))
            .arg(after_seq.map(|a| a.to_string()).unwrap_or_default())
            .arg(limit.min(MAX_LIMIT));
        let mut c = self.conn();
        let out: Vec<Vec<u8>> = self.bounded(async move { inv.invoke_async(&mut c).await }).await?;
        let mut ops = Vec::with_capacity(out.len() / 2);
        let mut it = out.into_iter();
        while let (Some(seq), Some(row)) = (it.next(), it.next()) {
            let seq = parse_u64(&String::from_utf8_lossy(&seq))?;
            ops.push(decode_missed(node_id, seq, &row)?);
        }
        Ok(ops)
    }

    async fn ack_missed(&self, node_id: &str, up_to_seq: u64) -> StoreResult<u64> {
        self.remove_missed(node_id, Some(up_to_seq)).await
    }

    async fn missed_summary(&self, node_id: &str) -> StoreResult<MissedSummary> {
        let key = self.missed_node_key(node_id);
        let mut c = self.conn();
        let (first, last, bytes): (Option<u64>, Option<u64>, Option<u64>) =
            self.bounded(async move { redis::cmd("HMGET").arg(key).arg("first").arg("last").arg("bytes").query_async(&mut c).await })
                .await?;
        Ok(match (first, last) {
            (Some(first), Some(last)) if last >= first => MissedSummary {
                pending: last - first + 1,
                bytes: bytes.unwrap_or(0),
                oldest_seq: Some(first),
                newest_seq: Some(last),
            },
            _ => MissedSummary::default(),
        })
    }

    async fn drop_missed(&self, node_id: &str) -> StoreResult<u64> {
        self.remove_missed(node_id, None).await
    }

    async fn nodes_with_missed(&self) -> StoreResult<Vec<String>> {
        let key = self.missed_nodes_index();
        let mut c = self.conn();
        let mut nodes: Vec<String> = self.bounded(async move { c.smembers(key).await }).await?;
        nodes.sort();
        Ok(nodes)
    }

    async fn get_placement(&self) -> StoreResult<Option<(u64, Value)>> {
        self.get_versioned(self.placement_key(), "placement state").await
    }

    async fn put_placement(&self, expected: u64, state: &Value) -> StoreResult<Option<u64>> {
        self.put_versioned(self.placement_key(), expected, state).await
    }

    async fn get_webhooks(&self) -> StoreResult<Option<(u64, Value)>> {
        self.get_versioned(self.webhooks_key(), "webhooks").await
    }

    async fn put_webhooks(&self, expected: u64, webhooks: &Value) -> StoreResult<Option<u64>> {
        self.put_versioned(self.webhooks_key(), expected, webhooks).await
    }

    async fn enqueue_webhook_event(&self, task_uid: u64, deliveries: &[NewWebhookDelivery]) -> StoreResult<bool> {
        let mut inv = ENQUEUE_WEBHOOK_EVENT.prepare_invoke();
        inv.arg(self.webhook_events_index())
            .arg(self.key("webhook_delivery_seq"))
            .arg(self.webhook_delivery_prefix())
            .arg(self.webhook_due_index())
            .arg(task_uid.to_string())
            .arg(now_ms().to_string());
        for d in deliveries {
            inv.arg(&d.webhook).arg(&d.body[..]);
        }
        let mut c = self.conn();
        let new: i64 = self.bounded(async move { inv.invoke_async(&mut c).await }).await?;
        Ok(new == 1)
    }

    async fn due_webhook_deliveries(&self, now: OffsetDateTime, limit: usize) -> StoreResult<Vec<WebhookDelivery>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut inv = DUE_WEBHOOK_DELIVERIES.prepare_invoke();
        inv.arg(self.webhook_due_index())
            .arg(self.webhook_delivery_prefix())
            .arg(unix_ms(now).to_string())
            .arg(limit.min(MAX_LIMIT));
        let mut c = self.conn();
        let out: Vec<Vec<u8>> = self.bounded(async move { inv.invoke_async(&mut c).await }).await?;
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut rows = Vec::with_capacity(out.len() / 6);
        for r in out.chunks_exact(6) {
            rows.push(WebhookDelivery {
                id: parse_u64(&text(&r[0]))?,
                task_uid: parse_u64(&text(&r[1]))?,
                webhook: text(&r[2]),
                body: r[3].clone(),
                attempts: parse_u64(&text(&r[4]))?.min(u32::MAX as u64) as u32,
                next_attempt_at: ms_to_datetime(
                    text(&r[5]).parse().map_err(|_| StoreError::Other("redis returned a non-integer attempt time".into()))?,
                ),
            });
        }
        Ok(rows)
    }

    async fn retry_webhook_delivery(&self, id: u64, attempts: u32, next_attempt_at: OffsetDateTime) -> StoreResult<bool> {
        let mut inv = RETRY_WEBHOOK_DELIVERY.prepare_invoke();
        inv.arg(self.webhook_due_index())
            .arg(format!("{}{id}", self.webhook_delivery_prefix()))
            .arg(id.to_string())
            .arg(attempts.to_string())
            .arg(unix_ms(next_attempt_at).to_string());
        let mut c = self.conn();
        let n: i64 = self.bounded(async move { inv.invoke_async(&mut c).await }).await?;
        Ok(n == 1)
    }

    async fn finish_webhook_delivery(&self, id: u64) -> StoreResult<bool> {
        let mut inv = FINISH_WEBHOOK_DELIVERY.prepare_invoke();
        inv.arg(self.webhook_due_index()).arg(format!("{}{id}", self.webhook_delivery_prefix())).arg(id.to_string());
        let mut c = self.conn();
        let n: i64 = self.bounded(async move { inv.invoke_async(&mut c).await }).await?;
        Ok(n == 1)
    }

    async fn prune_webhook_events(&self, below: u64) -> StoreResult<u64> {
        if below == 0 {
            return Ok(0);
        }
        let key = self.webhook_events_index();
        let mut c = self.conn();
        let max = format!("({below}");
        let n: u64 = self.bounded(async move { redis::cmd("ZREMRANGEBYSCORE").arg(key).arg("-inf").arg(max).query_async(&mut c).await }).await?;
        Ok(n)
    }

    async fn put_backup(&self, uid: &str, manifest: &Value) -> StoreResult<()> {
        let key = self.backups_key();
        let (uid, manifest) = (uid.to_string(), encode_json(manifest)?);
        let mut c = self.conn();
        let _: i64 = self.bounded(async move { c.hset(key, uid, manifest).await }).await?;
        Ok(())
    }

    async fn get_backup(&self, uid: &str) -> StoreResult<Option<Value>> {
        let key = self.backups_key();
        let uid = uid.to_string();
        let mut c = self.conn();
        let m: Option<String> = self.bounded(async move { c.hget(key, uid).await }).await?;
        m.map(|m| decode_json(&m)).transpose()
    }

    async fn list_backups(&self) -> StoreResult<Vec<String>> {
        let key = self.backups_key();
        let mut c = self.conn();
        let mut uids: Vec<String> = self.bounded(async move { c.hkeys(key).await }).await?;
        uids.sort();
        Ok(uids)
    }
}

/// Unix milliseconds of a time (the outbox's clock).
fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn record(index_uid: Option<&str>) -> TaskRecord {
        TaskRecord {
            uid: 3,
            index_uid: index_uid.map(str::to_string),
            kind: "indexCreation".into(),
            status: super::super::TaskStatus::Enqueued,
            enqueued_at: datetime!(2026-01-01 0:00 UTC),
            started_at: None,
            finished_at: None,
            details: serde_json::json!({"a": "----0004x"}),
            error: None,
            canceled_by: None,
            node_tasks: vec![],
            custom_metadata: None,
            targets: vec![],
        }
    }

    #[test]
    fn rows_carry_a_parsable_header() {
        for iu in [None, Some(""), Some("movies"), Some("ünï:----\t0004")] {
            let t = record(iu);
            let row = encode_row(&t).unwrap();
            assert!(row.starts_with(&unix_ns_key(t.enqueued_at)));
            assert_eq!(decode_task(3, row_json(&row).unwrap()).unwrap(), t);
        }
        assert!(row_json("123").is_err());
        assert!(encode_row(&record(Some(&"x".repeat(10_000)))).is_err());
    }

    #[test]
    fn key_components_do_not_collide() {
        assert_ne!(format!("{}:{}", enc("a:b"), "c"), format!("{}:{}", enc("a"), "b:c"));
        assert_eq!(enc("a%3Ab"), "a%253Ab");
    }
}

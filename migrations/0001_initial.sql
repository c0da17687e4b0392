-- Miroir task store, schema version 1.
-- Applied by src/store/sqlite.rs in one transaction; the version lives in PRAGMA user_version.
-- Times are integers: task times in unix nanoseconds, lease/TTL expiries in unix milliseconds.

-- Next task uid to hand out. A counter (not MAX(uid)+1) so that uids are never reused,
-- even after the newest tasks are deleted. Meilisearch's first task uid is 0.
CREATE TABLE task_uid_seq (
    id       INTEGER PRIMARY KEY CHECK (id = 0),
    next_uid INTEGER NOT NULL
);
INSERT INTO task_uid_seq (id, next_uid) VALUES (0, 0);

-- One row per Miroir task. Filterable fields are columns; the full record (minus uid)
-- is the JSON in `body`.
CREATE TABLE tasks (
    uid            INTEGER PRIMARY KEY,
    index_uid      TEXT,
    kind           TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    enqueued_at_ns INTEGER NOT NULL,
    body           TEXT    NOT NULL
);
CREATE INDEX tasks_status      ON tasks (status, uid);
CREATE INDEX tasks_kind        ON tasks (kind, uid);
CREATE INDEX tasks_index_uid   ON tasks (index_uid, uid);
CREATE INDEX tasks_enqueued_at ON tasks (enqueued_at_ns);

CREATE TABLE leader_lease (
    name          TEXT PRIMARY KEY,
    holder        TEXT    NOT NULL,
    expires_at_ms INTEGER NOT NULL
);

-- Mirrored custom-resource specs, keyed by (cluster, name); `spec` is JSON.
CREATE TABLE aliases (
    cluster TEXT NOT NULL,
    name    TEXT NOT NULL,
    spec    TEXT NOT NULL,
    PRIMARY KEY (cluster, name)
);
CREATE TABLE tenant_map (
    cluster TEXT NOT NULL,
    name    TEXT NOT NULL,
    spec    TEXT NOT NULL,
    PRIMARY KEY (cluster, name)
);
CREATE TABLE canaries (
    cluster TEXT NOT NULL,
    name    TEXT NOT NULL,
    spec    TEXT NOT NULL,
    PRIMARY KEY (cluster, name)
);
CREATE TABLE rollover_policies (
    cluster TEXT NOT NULL,
    name    TEXT NOT NULL,
    spec    TEXT NOT NULL,
    PRIMARY KEY (cluster, name)
);

-- Rows that expire: never returned once expires_at_ms has passed, purged lazily on write.
CREATE TABLE sessions (
    key           TEXT PRIMARY KEY,
    value         TEXT    NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at_ms);
CREATE TABLE idempotency_keys (
    key           TEXT PRIMARY KEY,
    value         TEXT    NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at_ms);

-- CDC cursors, keyed by (cluster, name). `position` is a u64 stored as a signed integer
-- (bit-cast), compared through the application, never by SQL.
CREATE TABLE cdc_cursors (
    cluster  TEXT    NOT NULL,
    name     TEXT    NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (cluster, name)
);

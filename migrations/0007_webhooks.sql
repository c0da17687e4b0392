-- Webhooks (Meilisearch's `/webhooks`), their delivery outbox, and backup manifests.
--
-- `webhooks`: the whole set as one JSON document with a compare-and-set version, exactly as
-- `placement` (one row, or none before the first write).
CREATE TABLE webhooks (
    id      INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    version INTEGER NOT NULL CHECK (version >= 1),
    state   TEXT    NOT NULL
);

-- One row per finished Miroir task whose end was observed (and its deliveries enqueued in the
-- same transaction): a task's end is enqueued once, whichever process sees it. Rows below the
-- scan cursor are pruned.
CREATE TABLE webhook_events (
    task_uid INTEGER PRIMARY KEY NOT NULL
);

-- The outbox: one row per (finished task, webhook) until the receiver answered 2xx (or the
-- delivery was given up). `next_attempt_at` is unix milliseconds.
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    task_uid        INTEGER NOT NULL,
    webhook         TEXT    NOT NULL,
    body            BLOB    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, id);

-- Manifests of cluster-wide dumps and snapshots (`POST /dumps`, `POST /snapshots`).
CREATE TABLE backups (
    uid      TEXT PRIMARY KEY NOT NULL,
    manifest TEXT NOT NULL
);

-- Write operations a node missed (it was down when Miroir sent them), replayed to it in
-- `seq` order before it answers reads again (replica catch-up).
-- `seq` is per node, 1, 2, 3...: allocated from missed_nodes.last_seq in the appending
-- transaction (BEGIN IMMEDIATE), so it is gap-free and unique across processes; never reused.
-- `shards` is a JSON array of shard numbers ('[]' = the whole index); `created_at` is
-- RFC 3339 as given; `task_uid` is a u64 bit-cast to a signed integer; `body` the raw bytes.
CREATE TABLE missed_ops (
    node_id      TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    index_uid    TEXT,
    shards       TEXT    NOT NULL,
    method       TEXT    NOT NULL,
    path         TEXT    NOT NULL,
    content_type TEXT,
    task_uid     INTEGER,
    created_at   TEXT    NOT NULL,
    body         BLOB    NOT NULL,
    PRIMARY KEY (node_id, seq)
);

-- One row per node that ever had a missed operation: the last seq handed out (kept after
-- acks and drops, so seqs are never reused) and counters of what is pending, maintained by
-- every append/ack/drop in the same transaction (summary without a scan). The pending
-- operations are exactly seqs first_seq..last_seq when pending > 0.
CREATE TABLE missed_nodes (
    node_id   TEXT PRIMARY KEY NOT NULL,
    last_seq  INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    pending   INTEGER NOT NULL,
    bytes     INTEGER NOT NULL
);

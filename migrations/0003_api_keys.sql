-- API keys owned by Miroir (Meilisearch's `/keys`). A key's value is never stored: it is
-- HMAC-SHA256(master key, uid), recomputed when needed, so rotating the master key changes
-- every value while the uids (and these rows) stay.
-- `body` is the JSON of the whole key (name, description, actions, indexes, expiresAt,
-- createdAt, updatedAt); `created_at_ns` orders `GET /keys` (newest first, then uid).
CREATE TABLE api_keys (
    uid           TEXT PRIMARY KEY NOT NULL,
    created_at_ns INTEGER NOT NULL,
    body          TEXT NOT NULL
);
CREATE INDEX api_keys_created_at ON api_keys (created_at_ns DESC, uid);

//! Redis backend of the task store. Keyspace documented in `docs/redis-keyspace.md`.

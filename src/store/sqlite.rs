//! SQLite backend of the task store (rusqlite, WAL). Schema from `migrations/`.

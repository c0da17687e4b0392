#![allow(dead_code)]
//! Store fixtures for tests: a SQLite store on a temp file and a Redis store under a fresh
//! random prefix whose keys are removed when the fixture is dropped (even on panic).

use std::sync::Arc;

use miroir::store::redis::RedisStore;
use miroir::store::sqlite::SqliteStore;
use miroir::store::TaskStore;

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

pub fn fresh_prefix() -> String {
    format!("miroir-test:{}:", uuid::Uuid::new_v4().simple())
}

pub struct Fixture {
    pub store: Arc<dyn TaskStore>,
    _guard: Guard,
}

enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Redis(RedisCleanup),
}

impl Fixture {
    pub async fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("miroir.db")).await.expect("open sqlite store");
        Fixture { store: Arc::new(store), _guard: Guard::Sqlite(dir) }
    }

    pub async fn redis() -> Fixture {
        let cleanup = RedisCleanup::new(fresh_prefix());
        let store = RedisStore::connect(&redis_url(), &cleanup.prefix).await.expect("connect to redis (REDIS_URL)");
        Fixture { store: Arc::new(store), _guard: Guard::Redis(cleanup) }
    }

    #[allow(dead_code)]
    pub fn redis_prefix(&self) -> Option<&str> {
        match &self._guard {
            Guard::Redis(c) => Some(&c.prefix),
            Guard::Sqlite(_) => None,
        }
    }
}

/// Deletes every key under `prefix` when dropped. Test-only use of `KEYS`.
pub struct RedisCleanup {
    pub prefix: String,
}

impl RedisCleanup {
    pub fn new(prefix: String) -> RedisCleanup {
        RedisCleanup { prefix }
    }
}

/// Every key under `prefix` (test-only use of `KEYS`).
#[allow(dead_code)]
pub fn redis_keys(prefix: &str) -> Vec<String> {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut c = client.get_connection().unwrap();
    redis::cmd("KEYS").arg(format!("{prefix}*")).query(&mut c).unwrap()
}

impl Drop for RedisCleanup {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(redis_url()) else { return };
        let Ok(mut c) = client.get_connection() else { return };
        let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{}*", self.prefix)).query(&mut c).unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut c);
        }
    }
}

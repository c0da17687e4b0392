//! The per-process cache of [`IndexContext`]s (primary key and client-visible settings), so a
//! search does not read them from a node every time.
//!
//! # Why a cached context is never staler than what a client can have observed
//!
//! An entry of index `X` may be served until it is dropped. It is dropped when:
//!
//! * **a Miroir write may change `X`'s context** (settings of any route, index creation,
//!   update, deletion, swap, a document write while `X`'s primary key is unknown, a store
//!   restore): the writer calls [`Proxy::index_context_changed`] *after* the write's task is
//!   in the task store. That drops the local entry and bumps the store's index-context version;
//!   the Redis backend publishes the bump, and every other Miroir process drops its entry when
//!   the message arrives (and its whole cache whenever its subscription (re)connects or fails,
//!   since messages may have been missed);
//! * **such a task is seen terminal** (`save_task`, `finish_swap`): bumped again;
//! * **it is older than `scatter.index_context_ttl_ms`**: a safety net (clock-free: `Instant`).
//!
//! Nodes apply a write later than Miroir accepts it, so dropping at write time is not enough:
//! a context fetched while the nodes still work on the write would be cached stale. So an
//! entry is only inserted by [`crate::dataplane::read::index_context`] when, in this order:
//!
//! 1. it reads the cache [generation](ContextCache::generation) `g`;
//! 2. the task store holds no unfinished context-changing task of `X` (nor an unfinished swap;
//!    document writes count only while the fetched primary key is unknown: once an index has
//!    one, only `indexUpdate`, deletion and swaps change it);
//! 3. it fetches the context from a node;
//! 4. the generation is still `g` ([`ContextCache::insert_if_unchanged`], atomic with the
//!    insert).
//!
//! A write accepted before step 2 has its task stored before step 2 (tasks are stored before
//! the writer bumps, and a stored task stays unfinished until every node's task is terminal):
//! step 2 sees it, nothing is cached. A write whose bump comes after step 1 changes the
//! generation: either step 4 sees it and does not insert, or the insert came first and the
//! bump drops the entry. Tasks nobody polls would keep an index uncacheable for ever, so a
//! cache miss that finds unfinished tasks refreshes them from the nodes (as `GET /tasks/{uid}`
//! does), and the index becomes cacheable once they have ended.
//!
//! Not covered: changes made on the nodes without Miroir (seen after the TTL), and the node
//! settings Miroir itself sets on a new index (`init_index_settings`, no task of their own):
//! they leave the client-visible context as it was (Miroir's attribute is hidden, the
//! client's facet limit is the store's overlay), so a context fetched before they apply
//! equals one fetched after.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::merge::IndexContext;

/// Task types that change an index's context (document additions only while its primary key
/// is unknown, see the module docs).
pub const CONTEXT_TASK_TYPES: &[&str] = &["settingsUpdate", "indexCreation", "indexUpdate", "indexDeletion", "documentAdditionOrUpdate"];

/// Whether a terminal task of this type may have changed an index's context.
pub fn changes_context(kind: &str) -> bool {
    CONTEXT_TASK_TYPES.contains(&kind) || kind == "indexSwap"
}

struct Entry {
    ctx: Arc<IndexContext>,
    at: Instant,
}

struct State {
    generation: u64,
    entries: HashMap<String, Entry>,
    /// Off while cross-process invalidation is down (nothing served, nothing inserted).
    enabled: bool,
}

/// Index uid → context; see the module docs for when entries are inserted and dropped.
pub struct ContextCache {
    state: Mutex<State>,
    /// Set while a background refresh of unfinished context-changing tasks runs (one at a time).
    refreshing: AtomicBool,
}

impl Default for ContextCache {
    fn default() -> Self {
        ContextCache {
            state: Mutex::new(State { generation: 0, entries: HashMap::new(), enabled: true }),
            refreshing: AtomicBool::new(false),
        }
    }
}

impl ContextCache {
    /// The entry of `uid` if it is younger than `ttl`.
    pub fn get(&self, uid: &str, ttl: Duration) -> Option<Arc<IndexContext>> {
        let s = self.state.lock().expect("context cache lock");
        s.entries.get(uid).filter(|e| e.at.elapsed() < ttl).map(|e| e.ctx.clone())
    }

    /// Bumped by every invalidation: an insert is refused if it changed since the fetch began.
    pub fn generation(&self) -> u64 {
        self.state.lock().expect("context cache lock").generation
    }

    /// Inserts `ctx` (fetched after reading `generation`) unless something was invalidated
    /// since. Returns whether it was inserted.
    pub fn insert_if_unchanged(&self, uid: &str, ctx: Arc<IndexContext>, generation: u64) -> bool {
        let mut s = self.state.lock().expect("context cache lock");
        if s.generation != generation || !s.enabled {
            return false;
        }
        s.entries.insert(uid.to_string(), Entry { ctx, at: Instant::now() });
        true
    }

    /// Drops the entry of `uid` (`None`: every entry).
    pub fn invalidate(&self, uid: Option<&str>) {
        let mut s = self.state.lock().expect("context cache lock");
        s.generation += 1;
        match uid {
            Some(u) => {
                s.entries.remove(u);
            }
            None => s.entries.clear(),
        }
    }

    /// Turns the cache on or off; either way every entry is dropped (turned on after a
    /// subscription came back: changes may have been missed meanwhile).
    pub fn set_enabled(&self, on: bool) {
        let mut s = self.state.lock().expect("context cache lock");
        s.generation += 1;
        s.entries.clear();
        s.enabled = on;
    }

    /// Whether the caller may start a refresh of unfinished tasks (then it must call
    /// [`ContextCache::end_refresh`]).
    pub fn begin_refresh(&self) -> bool {
        !self.refreshing.swap(true, Ordering::SeqCst)
    }

    pub fn end_refresh(&self) {
        self.refreshing.store(false, Ordering::SeqCst);
    }

    pub fn len(&self) -> usize {
        self.state.lock().expect("context cache lock").entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(pk: &str) -> Arc<IndexContext> {
        Arc::new(IndexContext::from_settings(Some(pk), &json!({})))
    }

    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn insert_then_hit() {
        let c = ContextCache::default();
        assert!(c.get("a", LONG).is_none());
        let g = c.generation();
        assert!(c.insert_if_unchanged("a", ctx("id"), g));
        assert_eq!(c.get("a", LONG).unwrap().primary_key.as_deref(), Some("id"));
        assert!(c.get("b", LONG).is_none());
    }

    #[test]
    fn invalidation_during_fetch_refuses_the_insert() {
        let c = ContextCache::default();
        let g = c.generation();
        c.invalidate(Some("other"));
        assert!(!c.insert_if_unchanged("a", ctx("id"), g));
        assert!(c.get("a", LONG).is_none());
        let g = c.generation();
        assert!(c.insert_if_unchanged("a", ctx("id"), g));
    }

    #[test]
    fn invalidation_drops_one_or_all() {
        let c = ContextCache::default();
        let g = c.generation();
        c.insert_if_unchanged("a", ctx("id"), g);
        c.insert_if_unchanged("b", ctx("id"), g);
        c.invalidate(Some("a"));
        assert!(c.get("a", LONG).is_none());
        assert!(c.get("b", LONG).is_some());
        c.invalidate(None);
        assert!(c.is_empty());
    }

    #[test]
    fn disabled_cache_holds_nothing() {
        let c = ContextCache::default();
        let g = c.generation();
        c.insert_if_unchanged("a", ctx("id"), g);
        c.set_enabled(false);
        assert!(c.is_empty());
        let g = c.generation();
        assert!(!c.insert_if_unchanged("a", ctx("id"), g));
        c.set_enabled(true);
        let g = c.generation();
        assert!(c.insert_if_unchanged("a", ctx("id"), g));
    }

    #[test]
    fn entries_expire() {
        let c = ContextCache::default();
        let g = c.generation();
        c.insert_if_unchanged("a", ctx("id"), g);
        assert!(c.get("a", Duration::ZERO).is_none());
        std::thread::sleep(Duration::from_millis(20));
        assert!(c.get("a", Duration::from_millis(10)).is_none());
        assert!(c.get("a", LONG).is_some());
    }

    #[test]
    fn context_changing_types() {
        assert!(changes_context("settingsUpdate"));
        assert!(changes_context("indexSwap"));
        assert!(!changes_context("documentDeletion"));
        assert!(!changes_context("dumpCreation"));
    }
}

//! Meilisearch's API-key actions: their names (in Meilisearch's "expected one of" order),
//! which are read-only (`*.get`), which are global-only, and how wildcards expand.

use std::collections::BTreeSet;

/// How an action relates to a key's `indexes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Global only: a key with index-scoped `indexes` may not hold it, and on its
    /// (index-less) routes it needs `indexes: ["*"]`.
    Global,
    /// Checked against the route's index; on index-less routes the handler checks indexes,
    /// so any index pattern suffices there (search, `GET /indexes`, tasks, stats...).
    HandlerChecksIndex,
    /// Checked against the route's index.
    Index,
}

use Scope::*;

/// (name, scope, part of `*.get`), in Meilisearch's declaration order.
pub const ACTIONS: &[(&str, Scope, bool)] = &[
    ("*", Index, false),
    ("search", HandlerChecksIndex, true),
    ("documents.*", Index, false),
    ("documents.add", Index, false),
    ("documents.get", HandlerChecksIndex, true),
    ("documents.delete", Index, false),
    ("indexes.*", Index, false),
    ("indexes.create", HandlerChecksIndex, false),
    ("indexes.get", HandlerChecksIndex, true),
    ("indexes.update", Index, false),
    ("indexes.delete", Index, false),
    ("indexes.swap", HandlerChecksIndex, false),
    ("tasks.*", Index, false),
    ("tasks.cancel", HandlerChecksIndex, false),
    ("tasks.delete", HandlerChecksIndex, false),
    ("tasks.get", HandlerChecksIndex, true),
    ("settings.*", Index, false),
    ("settings.get", HandlerChecksIndex, true),
    ("settings.update", Index, false),
    ("stats.*", HandlerChecksIndex, false),
    ("stats.get", HandlerChecksIndex, true),
    ("metrics.*", Global, false),
    ("metrics.get", Global, true),
    ("dumps.*", Global, false),
    ("dumps.create", Global, false),
    ("snapshots.*", Global, false),
    ("snapshots.create", Global, false),
    ("version", Global, true),
    ("keys.create", Global, false),
    ("keys.get", Global, false),
    ("keys.update", Global, false),
    ("keys.delete", Global, false),
    ("experimental.get", Global, true),
    ("experimental.update", Global, false),
    ("export", Global, true),
    ("network.get", Global, true),
    ("network.update", Global, false),
    ("chatCompletions", HandlerChecksIndex, false),
    ("chats.*", Global, false),
    ("chats.get", Global, true),
    ("chats.delete", Global, false),
    ("chatsSettings.*", Global, false),
    ("chatsSettings.get", Global, true),
    ("chatsSettings.update", Global, false),
    ("*.get", Index, false),
    ("webhooks.get", Global, true),
    ("webhooks.update", Global, false),
    ("webhooks.delete", Global, false),
    ("webhooks.create", Global, false),
    ("webhooks.*", Global, false),
    ("indexes.compact", Index, false),
    ("fields.post", Index, true),
    ("tasks.compact", Global, false),
    ("dynamicSearchRules.get", Global, true),
    ("dynamicSearchRules.create", Global, false),
    ("dynamicSearchRules.update", Global, false),
    ("dynamicSearchRules.delete", Global, false),
    ("dynamicSearchRules.*", Global, false),
];

/// Every action name, in order.
pub fn names() -> impl Iterator<Item = &'static str> {
    ACTIONS.iter().map(|(n, _, _)| *n)
}

fn info(name: &str) -> Option<(&'static str, Scope, bool)> {
    ACTIONS.iter().find(|(n, _, _)| *n == name).copied()
}

pub fn is_action(name: &str) -> bool {
    info(name).is_some()
}

pub fn scope(name: &str) -> Option<Scope> {
    info(name).map(|(_, s, _)| s)
}

/// Whether a key with index-scoped `indexes` may not hold `name`.
pub fn is_global_only(name: &str) -> bool {
    scope(name) == Some(Global)
}

/// The actions a key holding `name` is granted. `*` gives every action but `*.get` (the
/// `x.*` names themselves included), `*.get` every read action, `x.*` its members only (not
/// the `x.*` name itself).
fn expand_one(name: &str, out: &mut BTreeSet<&'static str>) {
    let members: &[&'static str] = match name {
        "*" => {
            out.extend(names().filter(|n| *n != "*.get"));
            return;
        }
        "*.get" => {
            out.extend(ACTIONS.iter().filter(|(_, _, read)| *read).map(|(n, _, _)| *n));
            return;
        }
        "documents.*" => &["documents.get", "documents.delete", "documents.add"],
        "indexes.*" => &["indexes.create", "indexes.delete", "indexes.get", "indexes.update", "indexes.swap", "indexes.compact"],
        "settings.*" => &["settings.get", "settings.update"],
        "tasks.*" => &["tasks.get", "tasks.delete", "tasks.cancel", "tasks.compact"],
        "stats.*" => &["stats.get"],
        "metrics.*" => &["metrics.get"],
        "dumps.*" => &["dumps.create"],
        "snapshots.*" => &["snapshots.create"],
        "chats.*" => &["chats.get", "chats.delete"],
        "chatsSettings.*" => &["chatsSettings.get", "chatsSettings.update"],
        "webhooks.*" => &["webhooks.get", "webhooks.update", "webhooks.delete", "webhooks.create"],
        "dynamicSearchRules.*" => &[
            "dynamicSearchRules.get",
            "dynamicSearchRules.create",
            "dynamicSearchRules.update",
            "dynamicSearchRules.delete",
        ],
        other => {
            if let Some((n, _, _)) = info(other) {
                out.insert(n);
            }
            return;
        }
    };
    out.extend(members.iter().copied());
}

/// The granted set of a key's stored `actions`.
pub fn expand(actions: &[String]) -> BTreeSet<&'static str> {
    let mut out = BTreeSet::new();
    for a in actions {
        expand_one(a, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(a: &[&str]) -> BTreeSet<&'static str> {
        expand(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn wildcards_expand_as_meilisearch_stores_them() {
        let all = ex(&["*"]);
        assert!(all.contains("documents.*") && all.contains("keys.get") && all.contains("search"));
        assert!(!all.contains("*.get"));
        assert_eq!(all.len(), ACTIONS.len() - 1);
        let get = ex(&["*.get"]);
        assert!(get.contains("search") && get.contains("fields.post") && get.contains("version"));
        assert!(!get.contains("keys.get") && !get.contains("chatCompletions") && !get.contains("documents.add"));
        let docs = ex(&["documents.*"]);
        assert_eq!(docs, ["documents.add", "documents.delete", "documents.get"].into_iter().collect());
        assert!(ex(&["doc.add"]).is_empty());
    }

    #[test]
    fn order_and_count_match_meilisearch() {
        let n: Vec<_> = names().collect();
        assert_eq!(n.len(), 58);
        assert_eq!(&n[..4], ["*", "search", "documents.*", "documents.add"]);
        assert_eq!(n.last(), Some(&"dynamicSearchRules.*"));
    }
}

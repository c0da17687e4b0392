//! Node routes, built only from typed parts: Miroir never pastes a client string into a node
//! URL. A [`NodePath`] starts from a fixed route or an [`IndexUid`], grows by fixed segments,
//! [`SettingRoute`]s and percent-encoded [`DocumentId`]s, and carries a query string whose
//! keys are fixed and whose values are encoded.

use std::fmt;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::model::{DocumentId, IndexUid, SettingRoute};

/// Everything but `A-Z a-z 0-9 - _` is encoded in a path segment (so `.`, `/`, `?`, `#`, `%`
/// never reach a node unescaped; ids and uids are validated to need none of it anyway).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// A path (and query) on a node, e.g. `/indexes/movies/documents/42?fields=title`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePath {
    path: String,
    query: Vec<(String, String)>,
}

impl NodePath {
    /// A fixed route, e.g. `/version`, `/multi-search`.
    pub fn route(route: &'static str) -> NodePath {
        debug_assert!(route.starts_with('/') && !route.contains(['?', '#', '%']), "{route}");
        NodePath { path: route.to_string(), query: Vec::new() }
    }

    /// `/indexes/{uid}`.
    pub fn index(uid: &IndexUid) -> NodePath {
        NodePath { path: format!("/indexes/{}", encode(uid.as_str())), query: Vec::new() }
    }

    /// `/tasks/{uid}` of a node task.
    pub fn task(uid: u64) -> NodePath {
        NodePath { path: format!("/tasks/{uid}"), query: Vec::new() }
    }

    /// Appends a fixed segment, e.g. `.then("documents")`.
    pub fn then(mut self, segment: &'static str) -> NodePath {
        debug_assert!(!segment.is_empty() && segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'), "{segment}");
        self.path.push('/');
        self.path.push_str(segment);
        self
    }

    /// Appends `/settings/{setting}`.
    pub fn setting(self, route: SettingRoute) -> NodePath {
        self.then("settings").then(route.segment())
    }

    /// Appends a document id as one encoded segment.
    pub fn document(mut self, id: &DocumentId) -> NodePath {
        self.path.push('/');
        self.path.push_str(&encode(id.as_str()));
        self
    }

    /// Adds `key=value` to the query (the value encoded).
    pub fn query(mut self, key: &'static str, value: impl Into<String>) -> NodePath {
        self.query.push((key.to_string(), value.into()));
        self
    }

    /// Adds the client's own query parameters (decoded pairs; keys and values encoded again),
    /// so that a node validates them and words its error for the client's request. A query
    /// string cannot change the route it is sent to.
    pub fn client_query(mut self, pairs: impl IntoIterator<Item = (String, String)>) -> NodePath {
        self.query.extend(pairs);
        self
    }

    /// A path Miroir built earlier and stored in a node's missed-operation log, as its wire
    /// form (`Display`). Only for replaying Miroir's own stored operations; `None` if the text
    /// is not a path (a damaged row).
    pub fn stored(wire: &str) -> Option<NodePath> {
        let (path, query) = wire.split_once('?').unwrap_or((wire, ""));
        if !path.starts_with('/') || path.contains(['#', ' ']) {
            return None;
        }
        let query = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        Some(NodePath { path: path.to_string(), query })
    }

    /// The path without its query.
    pub fn path(&self) -> &str {
        &self.path
    }
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// Path and query as sent on the wire.
impl fmt::Display for NodePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)?;
        if !self.query.is_empty() {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &self.query {
                q.append_pair(k, v);
            }
            write!(f, "?{}", q.finish())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_from_typed_parts_only() {
        let uid = IndexUid::parse("movies").unwrap();
        let id = DocumentId::parse("a-1_b").unwrap();
        assert_eq!(NodePath::index(&uid).then("documents").document(&id).to_string(), "/indexes/movies/documents/a-1_b");
        assert_eq!(NodePath::index(&uid).setting(SettingRoute::StopWords).to_string(), "/indexes/movies/settings/stop-words");
        assert_eq!(
            NodePath::index(&uid).then("documents").query("primaryKey", "id&x=1#y").query("fields", "a, b").to_string(),
            "/indexes/movies/documents?primaryKey=id%26x%3D1%23y&fields=a%2C+b"
        );
        assert_eq!(NodePath::task(7).to_string(), "/tasks/7");
        let p = NodePath::route("/indexes").client_query([("limit".to_string(), "1&x=/../keys#".to_string()), ("a b".into(), "?".into())]);
        assert_eq!(p.to_string(), "/indexes?limit=1%26x%3D%2F..%2Fkeys%23&a+b=%3F");
        assert_eq!(p.path(), "/indexes");
        assert_eq!(encode("../k%2F?#\0é"), "%2E%2E%2Fk%252F%3F%23%00%C3%A9");
    }

    #[test]
    fn a_stored_path_reads_back_as_it_was_sent() {
        let uid = IndexUid::parse("movies").unwrap();
        let p = NodePath::index(&uid).then("documents").query("primaryKey", "id&x=1#y");
        let back = NodePath::stored(&p.to_string()).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.to_string(), p.to_string());
        assert_eq!(NodePath::stored("/indexes").unwrap(), NodePath::route("/indexes"));
        assert!(NodePath::stored("indexes").is_none());
    }
}

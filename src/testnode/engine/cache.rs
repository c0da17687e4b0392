//! Word analysis of documents, cached across searches: a node answers many searches over
//! the same documents, and reading their text is most of a search's work. Entries are keyed
//! by a 128-bit hash of the document's content and of the settings that shape the analysis,
//! so an updated document or changed settings simply miss.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Map, Value};
use xxhash_rust::xxh3::{Xxh3Default, Xxh3DefaultBuilder};

use super::rank::FieldWords;
use super::settings::EngineSettings;

/// Entries kept before the cache starts over.
const MAX_ENTRIES: usize = 100_000;

type Cache = HashMap<u128, Arc<Vec<FieldWords>>, Xxh3DefaultBuilder>;

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::with_hasher(Xxh3DefaultBuilder::new())))
}

fn hash_str(h: &mut Xxh3Default, s: &str) {
    h.update(&(s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

fn hash_value(h: &mut Xxh3Default, v: &Value) {
    match v {
        Value::Null => h.update(b"n"),
        Value::Bool(b) => h.update(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            // Integers and floats read differently (`1` and `1.0`).
            if let Some(u) = n.as_u64() {
                h.update(b"u");
                h.update(&u.to_le_bytes());
            } else if let Some(i) = n.as_i64() {
                h.update(b"i");
                h.update(&i.to_le_bytes());
            } else {
                h.update(b"f");
                h.update(&n.as_f64().unwrap_or(0.0).to_bits().to_le_bytes());
            }
        }
        Value::String(s) => {
            h.update(b"s");
            hash_str(h, s);
        }
        Value::Array(items) => {
            h.update(b"[");
            h.update(&(items.len() as u64).to_le_bytes());
            items.iter().for_each(|i| hash_value(h, i));
        }
        Value::Object(m) => hash_object(h, m),
    }
}

fn hash_object(h: &mut Xxh3Default, m: &Map<String, Value>) {
    h.update(b"{");
    h.update(&(m.len() as u64).to_le_bytes());
    for (k, v) in m {
        hash_str(h, k);
        hash_value(h, v);
    }
}

/// Hash of what the analysis depends on besides the document.
pub fn settings_key(s: &EngineSettings, search_on: Option<&[String]>) -> u128 {
    let mut h = Xxh3Default::new();
    let list = |h: &mut Xxh3Default, tag: &[u8], l: Option<&[String]>| {
        h.update(tag);
        match l {
            None => h.update(b"*"),
            Some(l) => {
                h.update(&(l.len() as u64).to_le_bytes());
                l.iter().for_each(|x| hash_str(h, x));
            }
        }
    };
    list(&mut h, b"searchable", s.searchable.as_deref());
    list(&mut h, b"searchOn", search_on);
    list(&mut h, b"stopWords", Some(&s.stop_words));
    list(&mut h, b"exactAttributes", Some(&s.disable_on_attributes));
    h.digest128()
}

/// The analysis of `doc`, computed by `compute` unless cached.
pub fn analyze(doc: &Map<String, Value>, settings_key: u128, compute: impl FnOnce() -> Vec<FieldWords>) -> Arc<Vec<FieldWords>> {
    let mut h = Xxh3Default::new();
    h.update(&settings_key.to_le_bytes());
    hash_object(&mut h, doc);
    let key = h.digest128();
    if let Some(hit) = cache().lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return hit.clone();
    }
    let fields = Arc::new(compute());
    let mut c = cache().lock().unwrap_or_else(|e| e.into_inner());
    if c.len() >= MAX_ENTRIES {
        c.clear();
    }
    c.insert(key, fields.clone());
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_and_settings_change_the_key() {
        let s = EngineSettings::from_value(&json!({}));
        let k = settings_key(&s, None);
        let a = json!({"id": 1, "t": "x"});
        let b = json!({"id": 1.0, "t": "x"});
        let first = analyze(a.as_object().unwrap(), k, || vec![]);
        let hit = analyze(a.as_object().unwrap(), k, || panic!("cached"));
        assert!(Arc::ptr_eq(&first, &hit));
        let mut computed = false;
        analyze(b.as_object().unwrap(), k, || {
            computed = true;
            vec![]
        });
        assert!(computed, "1 and 1.0 are different documents");
        let s2 = EngineSettings::from_value(&json!({"searchableAttributes": ["t"]}));
        assert_ne!(settings_key(&s2, None), k);
        assert_ne!(settings_key(&s, Some(&["t".to_string()])), k);
    }
}

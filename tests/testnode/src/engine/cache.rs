//! Word analysis of documents, cached across searches: a node answers many searches over
//! the same documents, and reading their text is most of a search's work. Entries are keyed
//! by a 128-bit hash of the document's content and of the settings that shape the analysis,
//! so an updated document or changed settings simply miss.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Map, Value};

use super::rank::FieldWords;
use super::settings::EngineSettings;

/// Entries kept before the cache starts over.
const MAX_ENTRIES: usize = 100_000;

type Cache = HashMap<u128, Arc<Vec<FieldWords>>>;

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// 128 bits out of one SipHash pass: the state finished twice, with different suffixes.
fn digest128(h: DefaultHasher) -> u128 {
    let mut other = h.clone();
    other.write_u8(0xa5);
    ((h.finish() as u128) << 64) | other.finish() as u128
}

fn hash_str(h: &mut DefaultHasher, s: &str) {
    h.write(&(s.len() as u64).to_le_bytes());
    h.write(s.as_bytes());
}

fn hash_value(h: &mut DefaultHasher, v: &Value) {
    match v {
        Value::Null => h.write(b"n"),
        Value::Bool(b) => h.write(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            // Integers and floats read differently (`1` and `1.0`).
            if let Some(u) = n.as_u64() {
                h.write(b"u");
                h.write(&u.to_le_bytes());
            } else if let Some(i) = n.as_i64() {
                h.write(b"i");
                h.write(&i.to_le_bytes());
            } else {
                h.write(b"f");
                h.write(&n.as_f64().unwrap_or(0.0).to_bits().to_le_bytes());
            }
        }
        Value::String(s) => {
            h.write(b"s");
            hash_str(h, s);
        }
        Value::Array(items) => {
            h.write(b"[");
            h.write(&(items.len() as u64).to_le_bytes());
            items.iter().for_each(|i| hash_value(h, i));
        }
        Value::Object(m) => hash_object(h, m),
    }
}

fn hash_object(h: &mut DefaultHasher, m: &Map<String, Value>) {
    h.write(b"{");
    h.write(&(m.len() as u64).to_le_bytes());
    for (k, v) in m {
        hash_str(h, k);
        hash_value(h, v);
    }
}

/// Hash of what the analysis depends on besides the document.
pub fn settings_key(s: &EngineSettings, search_on: Option<&[String]>) -> u128 {
    let mut h = DefaultHasher::new();
    let list = |h: &mut DefaultHasher, tag: &[u8], l: Option<&[String]>| {
        h.write(tag);
        match l {
            None => h.write(b"*"),
            Some(l) => {
                h.write(&(l.len() as u64).to_le_bytes());
                l.iter().for_each(|x| hash_str(h, x));
            }
        }
    };
    list(&mut h, b"searchable", s.searchable.as_deref());
    list(&mut h, b"searchOn", search_on);
    list(&mut h, b"stopWords", Some(&s.stop_words));
    list(&mut h, b"exactAttributes", Some(&s.disable_on_attributes));
    digest128(h)
}

/// The analysis of `doc`, computed by `compute` unless cached.
pub fn analyze(doc: &Map<String, Value>, settings_key: u128, compute: impl FnOnce() -> Vec<FieldWords>) -> Arc<Vec<FieldWords>> {
    let mut h = DefaultHasher::new();
    h.write(&settings_key.to_le_bytes());
    hash_object(&mut h, doc);
    let key = digest128(h);
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
        let first = analyze(a.as_object().unwrap(), k, Vec::new);
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

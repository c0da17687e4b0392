//! Vectors of the test node: `userProvided` embedders, `_vectors` in documents, exact vector
//! search and `/similar`, as Meilisearch 1.50 answers them.
//!
//! * A document gives its vectors for an embedder in `_vectors.{name}`: an array of floats (one
//!   embedding), an array of arrays (several), or `{"embeddings": …, "regenerate": bool}`.
//!   Meilisearch stores them in its vector store, not in the document: with `retrieveVectors`
//!   a hit or document ends with `_vectors`, holding the entries of names that are not
//!   embedders, then one `{"embeddings": [[…]], "regenerate": bool}` per embedder in name
//!   order (`regenerate` is `true` for a document that gave no vector for it); the floats are
//!   `f32`s written as `f64`s (`0.1` reads back as `0.10000000149011612`). A document must
//!   give an entry for every `userProvided` embedder: `null` opts out (no vector), no entry
//!   fails the task.
//! * Similarity is hannoy's cosine in `f32`, computed exactly (Meilisearch's index is
//!   approximate, exact on small corpora): `distance = (1 - cos) / 2`, `score = 1 - distance`,
//!   dot products summed in order (hannoy's non-SIMD path, used below 16 dimensions).
//! * A vector search (`vector` + `hybrid` with `semanticRatio: 1.0`, or without `q`) ranks the
//!   filtered documents by their best similarity (`vectorSort`), documents without a vector
//!   last (`similarity: null`). `/similar` (milli's `Similar`) ranks the others by the
//!   similarity of their vector of each rank to the reference's vector of the same rank.
//!
//! Not here (501): distribution shifts, binary quantization, other sources, mixed hybrid
//! (`0 < semanticRatio < 1` with `q`), vector search with `sort`, `distinct`, custom ranking
//! rules, highlighting or cropping.

use serde_json::{json, Map, Value};

/// The index's embedders: name → dimensions, in name order.
pub fn embedders(settings: &Value) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = settings
        .get("embedders")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.get("dimensions").and_then(Value::as_u64).unwrap_or(0) as usize)).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// A list of numbers as `f32`s.
fn floats(v: &[Value]) -> Option<Vec<f32>> {
    v.iter().map(|x| x.as_f64().map(|f| f as f32)).collect()
}

/// What a document gave for one embedder: its embeddings and whether Meilisearch would
/// regenerate them. `Err` for a value of another shape.
pub fn parse_entry(entry: Option<&Value>) -> Result<(Vec<Vec<f32>>, bool), String> {
    let embeddings = |v: &Value| -> Result<Vec<Vec<f32>>, String> {
        match v {
            Value::Null => Ok(Vec::new()),
            Value::Array(items) if items.iter().all(Value::is_number) && !items.is_empty() => {
                Ok(vec![floats(items).ok_or("not floats")?])
            }
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_array().and_then(|a| floats(a)).ok_or_else(|| "not an array of floats".to_string()))
                .collect(),
            _ => Err("not an array".into()),
        }
    };
    match entry {
        // No vector given: a user-provided embedder would have to regenerate it.
        None => Ok((Vec::new(), true)),
        Some(Value::Object(o)) => {
            let regenerate = o.get("regenerate").and_then(Value::as_bool).ok_or("no `regenerate`")?;
            if o.keys().any(|k| k != "regenerate" && k != "embeddings") {
                return Err("unknown field".into());
            }
            Ok((embeddings(o.get("embeddings").unwrap_or(&Value::Null))?, regenerate))
        }
        Some(v) => Ok((embeddings(v)?, false)),
    }
}

/// A document's embeddings for `name` (none when it gave none or they do not parse).
pub fn embeddings_of(doc: &Map<String, Value>, name: &str) -> Vec<Vec<f32>> {
    parse_entry(doc.get("_vectors").and_then(|v| v.get(name))).map(|(e, _)| e).unwrap_or_default()
}

/// The first embedder a document gives no `_vectors` entry for (not even `null`, the
/// opt-out): Meilisearch fails the documents of a `userProvided` embedder without one.
pub fn missing_entry(doc: &Map<String, Value>, settings: &Value) -> Option<String> {
    embedders(settings).into_iter().map(|(n, _)| n).find(|n| doc.get("_vectors").and_then(|v| v.get(n)).is_none())
}

/// Meilisearch's error for documents without vectors for `embedder` (`ids` non-empty).
pub fn missing_message(embedder: &str, ids: &[String]) -> String {
    let others = if ids.len() > 1 { format!(" and at least {} other document(s)", ids.len() - 1) } else { String::new() };
    format!(
        "While embedding documents for embedder `{embedder}`: no vectors provided for document `{}`{others}\n- Note: `{embedder}` has `source: userProvided`, so documents must provide embeddings as an array in `_vectors.{embedder}`.\n- Hint: opt-out for a document with `_vectors.{embedder}: null`",
        ids[0]
    )
}

/// Checks the `_vectors` of a document being indexed against the embedders: Meilisearch's
/// error for wrong dimensions; other malformed values are not handled by this node.
pub fn check_document(doc: &Map<String, Value>, id: &str, settings: &Value) -> Result<(), (bool, String)> {
    for (name, dims) in embedders(settings) {
        let entry = doc.get("_vectors").and_then(|v| v.get(&name));
        let (embeddings, _) = parse_entry(entry).map_err(|e| (false, format!("`._vectors.{name}` of document `{id}`: {e}")))?;
        for (i, e) in embeddings.iter().enumerate() {
            if e.len() != dims {
                return Err((
                    true,
                    format!(
                        "Invalid vector dimensions in document with id `{id}` in `._vectors.{name}`.\n  - note: embedding #{i} has dimensions {}\n  - note: embedder `{name}` requires {dims}",
                        e.len()
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn widen(v: &[f32]) -> Value {
    Value::Array(v.iter().map(|f| json!(*f as f64)).collect())
}

/// Replaces a document's `_vectors` as Meilisearch shows it: removed, then (with `retrieve`)
/// appended as the stored entries that are not embedders plus one entry per embedder.
pub fn render(doc: &mut Map<String, Value>, original: &Map<String, Value>, settings: &Value, retrieve: bool) {
    doc.shift_remove("_vectors");
    if !retrieve {
        return;
    }
    let embedders = embedders(settings);
    let mut out = Map::new();
    if let Some(Value::Object(given)) = original.get("_vectors") {
        for (k, v) in given {
            if !embedders.iter().any(|(n, _)| n == k) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    for (name, _) in &embedders {
        let (embeddings, regenerate) = parse_entry(original.get("_vectors").and_then(|v| v.get(name))).unwrap_or((Vec::new(), true));
        out.insert(
            name.clone(),
            json!({"embeddings": Value::Array(embeddings.iter().map(|e| widen(e)).collect()), "regenerate": regenerate}),
        );
    }
    doc.insert("_vectors".into(), Value::Object(out));
}

/// Whether `_vectors` may be shown: `displayedAttributes` is `*` or lists it.
pub fn displayed(settings: &Value) -> bool {
    settings
        .get("displayedAttributes")
        .and_then(Value::as_array)
        .is_none_or(|a| a.iter().any(|x| x == "*" || x == "_vectors"))
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// hannoy's cosine distance between a stored vector `item` and `query`.
fn distance(item: &[f32], query: &[f32]) -> f32 {
    let pn = dot(item, item).sqrt();
    let qn = dot(query, query).sqrt();
    let pq = dot(item, query);
    let pnqn = pn * qn;
    if pnqn > f32::EPSILON {
        let cos = (pq / pnqn).clamp(-1.0, 1.0);
        (1.0 - cos) / 2.0
    } else {
        0.0
    }
}

/// milli's score for a stored vector `item` and `query`: `1 - distance`.
pub fn similarity(item: &[f32], query: &[f32]) -> f32 {
    1.0 - distance(item, query)
}

/// A document's best similarity to `query` among its embeddings.
pub fn best_similarity(embeddings: &[Vec<f32>], query: &[f32]) -> Option<f32> {
    embeddings.iter().map(|e| similarity(e, query)).fold(None, |best, s| Some(best.map_or(s, |b: f32| b.max(s))))
}

/// `_rankingScoreDetails` of a vector rule outcome.
pub fn details(similarity: Option<f32>) -> Value {
    json!({"vectorSort": {"order": 0, "similarity": similarity.map(|s| s as f64)}})
}

/// milli's `Similar::execute` over `candidates` (internal id, embeddings), the reference
/// left out by the caller: the documents ranked by distance to the reference's embedding of
/// the same rank (one nearest-neighbour search per rank, `offset + limit + 1` each, merged,
/// each document at its best), as `(position in candidates, score)`.
pub fn similar_ranking(reference: &[Vec<f32>], candidates: &[&[Vec<f32>]], want: usize) -> Vec<(usize, f32)> {
    let mut results: Vec<(usize, f32)> = Vec::new();
    for (rank, target) in reference.iter().enumerate() {
        let mut found: Vec<(usize, f32)> = candidates
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.get(rank).map(|v| (i, distance(v, target))))
            .collect();
        found.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        found.truncate(want);
        results.extend(found);
    }
    results.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    let mut seen = std::collections::HashSet::new();
    results.into_iter().filter(|(i, _)| seen.insert(*i)).map(|(i, d)| (i, 1.0 - d)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Meilisearch 1.50's own `/similar` test (crates/meilisearch/tests/similar/mod.rs):
    /// reference `143` and the scores it shows, to the bit.
    #[test]
    fn scores_are_meilisearch_s_to_the_bit() {
        let reference = [-0.5f32, 0.3, 0.85];
        let score = |v: [f32; 3]| json!(similarity(&v, &reference) as f64);
        assert_eq!(score([0.1, 0.6, 0.8]), json!(0.890957772731781));
        assert_eq!(score([0.6, 0.8, -0.2]), json!(0.39060014486312866));
        assert_eq!(score([0.7, 0.7, -0.4]), json!(0.2819308042526245));
        assert_eq!(score([0.8, 0.4, -0.5]), json!(0.1662663221359253));
        assert_eq!(widen(&[0.1, 0.6, -0.2]), json!([0.10000000149011612, 0.6000000238418579, -0.20000000298023224]));
    }

    #[test]
    fn entries_and_rendering() {
        assert_eq!(parse_entry(Some(&json!([1.0, 2.0]))).unwrap(), (vec![vec![1.0, 2.0]], false));
        assert_eq!(parse_entry(Some(&json!([[1.0], [2.0]]))).unwrap().0.len(), 2);
        assert_eq!(parse_entry(Some(&json!({"embeddings": [1.0], "regenerate": false}))).unwrap(), (vec![vec![1.0]], false));
        assert_eq!(parse_entry(None).unwrap(), (vec![], true));
        assert!(parse_entry(Some(&json!("x"))).is_err());
        let settings = json!({"embedders": {"b": {"source": "userProvided", "dimensions": 1}, "a": {"source": "userProvided", "dimensions": 1}}});
        let original = json!({"id": 1, "_vectors": {"other": [3], "b": [0.5]}, "t": "x"});
        let original = original.as_object().unwrap();
        let mut doc = original.clone();
        render(&mut doc, original, &settings, true);
        assert_eq!(
            Value::Object(doc),
            json!({"id": 1, "t": "x", "_vectors": {"other": [3], "a": {"embeddings": [], "regenerate": true}, "b": {"embeddings": [[0.5]], "regenerate": false}}})
        );
        let mut doc = original.clone();
        render(&mut doc, original, &settings, false);
        assert_eq!(Value::Object(doc), json!({"id": 1, "t": "x"}));
    }

    #[test]
    fn similar_ranks_by_rank_and_keeps_each_document_once() {
        let reference = vec![vec![1.0f32, 0.0], vec![0.0, 1.0]];
        let a = vec![vec![1.0f32, 0.0]];
        let b = vec![vec![0.0f32, 1.0], vec![0.0, 1.0]];
        let c = vec![vec![-1.0f32, 0.0]];
        let ranking = similar_ranking(&reference, &[&a, &b, &c], 10);
        // a matches rank 0 exactly; b's rank-1 vector matches rank 1 exactly, its rank-0 one is orthogonal.
        assert_eq!(ranking.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(ranking[1].1, 1.0);
    }
}

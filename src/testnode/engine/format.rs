//! Hit formatting: attribute selection, `_formatted` (highlight and crop) and
//! `_matchesPosition`.

use serde_json::{json, Map, Value};

use super::rank::Term;
use super::settings::{path_matches, EngineSettings};
use super::text::tokenize;

/// Keeps the fields of `doc` that are displayed and selected by `attributes_to_retrieve`.
pub fn select(doc: &Map<String, Value>, settings: &EngineSettings, retrieve: Option<&[String]>) -> Map<String, Value> {
    fn keep(map: &Map<String, Value>, prefix: &str, pred: &dyn Fn(&str) -> Option<bool>) -> Map<String, Value> {
        let mut out = Map::new();
        for (k, v) in map {
            let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            match pred(&path) {
                Some(true) => {
                    out.insert(k.clone(), v.clone());
                }
                // A nested attribute is selected: keep the parts of the object that are.
                None => {
                    if let Value::Object(inner) = v {
                        let sub = keep(inner, &path, pred);
                        if !sub.is_empty() {
                            out.insert(k.clone(), Value::Object(sub));
                        }
                    }
                }
                Some(false) => {}
            }
        }
        out
    }
    let selected = |list: Option<&[String]>, path: &str| -> Option<bool> {
        match list {
            None => Some(true),
            Some(list) => {
                if list.iter().any(|a| path_matches(a, path)) {
                    Some(true)
                } else if list.iter().any(|a| path_matches(path, a)) {
                    None
                } else {
                    Some(false)
                }
            }
        }
    };
    let displayed = settings.displayed.as_deref();
    keep(doc, "", &|path| match (selected(displayed, path), selected(retrieve, path)) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    })
}

/// A match of a query term in a string: byte range and highlighted byte length.
#[derive(Debug, Clone, Copy)]
struct Match {
    token: usize,
    start: usize,
    len: usize,
    term: usize,
}

fn matches_in(text: &str, terms: &[Term]) -> (Vec<super::text::Token>, Vec<Match>) {
    let tokens = tokenize(text);
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        // Longest match over the terms (a full word beats a prefix).
        let mut best: Option<Match> = None;
        for (ti, term) in terms.iter().enumerate() {
            if let Some((_, chars)) = term.matches(&t.word) {
                let original = &text[t.start..t.end];
                let word_chars = t.word.chars().count();
                let len = if chars >= word_chars {
                    original.len()
                } else {
                    original.char_indices().nth(chars).map(|(b, _)| b).unwrap_or(original.len())
                };
                if best.is_none_or(|b| len > b.len) {
                    best = Some(Match { token: i, start: t.start, len, term: ti });
                }
            }
        }
        out.extend(best);
    }
    (tokens, out)
}

/// Options of `_formatted`.
pub struct FormatOptions<'a> {
    pub highlight: Option<&'a [String]>,
    pub crop: Option<&'a [String]>,
    pub crop_length: usize,
    pub crop_marker: &'a str,
    pub pre: &'a str,
    pub post: &'a str,
}

fn listed(list: Option<&[String]>, path: &str) -> Option<Option<usize>> {
    let list = list?;
    for a in list {
        let (name, len) = match a.rsplit_once(':') {
            Some((n, l)) if l.parse::<usize>().is_ok() => (n, l.parse().ok()),
            _ => (a.as_str(), None),
        };
        if path_matches(name, path) {
            return Some(len);
        }
    }
    None
}

/// Builds `_formatted` for a selected hit.
pub fn formatted(hit: &Map<String, Value>, terms: &[Term], opts: &FormatOptions<'_>) -> Map<String, Value> {
    fn walk(v: &Value, path: &str, terms: &[Term], opts: &FormatOptions<'_>) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), walk(v, &format!("{path}.{k}"), terms, opts)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|i| walk(i, path, terms, opts)).collect()),
            Value::Number(n) => Value::String(n.to_string()),
            Value::String(s) => {
                let hl = listed(opts.highlight, path).is_some();
                let crop = listed(opts.crop, path).map(|l| l.unwrap_or(opts.crop_length));
                Value::String(format_text(s, terms, hl, crop, opts))
            }
            other => other.clone(),
        }
    }
    hit.iter().map(|(k, v)| (k.clone(), walk(v, k, terms, opts))).collect()
}

fn format_text(s: &str, terms: &[Term], highlight: bool, crop: Option<usize>, opts: &FormatOptions<'_>) -> String {
    if !highlight && crop.is_none() {
        return s.to_string();
    }
    let (tokens, matches) = matches_in(s, terms);
    // Byte range of the text to keep and whether words were cut on each side.
    let (from, to, cut_before, cut_after) = match crop {
        None => (0, s.len(), false, false),
        Some(_) if tokens.is_empty() => (0, s.len(), false, false),
        Some(0) => (0, 0, false, !tokens.is_empty()),
        Some(len) => {
            let (first, last) = crop_window(&tokens, &matches, len);
            let from = if first == 0 { 0 } else { tokens[first].start };
            let to = if last + 1 == tokens.len() { s.len() } else { tokens[last].end };
            (from, to, first > 0, last + 1 < tokens.len())
        }
    };
    let mut out = String::new();
    if cut_before {
        out.push_str(opts.crop_marker);
    }
    let mut cursor = from;
    if highlight {
        for m in matches.iter().filter(|m| m.start >= from && m.start + m.len <= to) {
            out.push_str(&s[cursor..m.start]);
            out.push_str(opts.pre);
            out.push_str(&s[m.start..m.start + m.len]);
            out.push_str(opts.post);
            cursor = m.start + m.len;
        }
    }
    out.push_str(&s[cursor..to]);
    if cut_after {
        out.push_str(opts.crop_marker);
    }
    out
}

/// First and last token of the crop window of `len` words: the interval with the most
/// distinct matched terms (then the tightest, then the first), widened evenly around it.
fn crop_window(tokens: &[super::text::Token], matches: &[Match], len: usize) -> (usize, usize) {
    let n = tokens.len();
    if matches.is_empty() {
        return (0, len.min(n) - 1);
    }
    let mut best: Option<(usize, usize, usize)> = None; // (distinct, first, last)
    for (i, a) in matches.iter().enumerate() {
        for b in &matches[i..] {
            if b.token - a.token + 1 > len {
                break;
            }
            let mut distinct: Vec<usize> = matches
                .iter()
                .filter(|m| m.token >= a.token && m.token <= b.token)
                .map(|m| m.term)
                .collect();
            distinct.sort_unstable();
            distinct.dedup();
            let cand = (distinct.len(), a.token, b.token);
            let better = match best {
                None => true,
                Some((d, f, l)) => cand.0 > d || (cand.0 == d && cand.2 - cand.1 < l - f),
            };
            if better {
                best = Some(cand);
            }
        }
    }
    let (_, mut first, mut last) = best.unwrap_or((0, matches[0].token, matches[0].token));
    let mut remaining = len.saturating_sub(last - first + 1);
    let mut before = remaining / 2;
    let mut after = remaining - before;
    if first < before {
        after += before - first;
        before = first;
    }
    if n - 1 - last < after {
        let extra = after - (n - 1 - last);
        after = n - 1 - last;
        before = (before + extra).min(first);
    }
    first -= before;
    last += after;
    remaining = 0;
    let _ = remaining;
    (first, last)
}

/// `_matchesPosition` of a selected hit.
pub fn matches_position(hit: &Map<String, Value>, terms: &[Term]) -> Map<String, Value> {
    fn walk(v: &Value, path: &str, terms: &[Term], index: Option<usize>, out: &mut Map<String, Value>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    walk(v, &format!("{path}.{k}"), terms, index, out);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, path, terms, Some(i), out);
                }
            }
            Value::String(_) | Value::Number(_) => {
                let s = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let (_, ms) = matches_in(&s, terms);
                if ms.is_empty() {
                    return;
                }
                let list = out.entry(path.to_string()).or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(list) = list {
                    for m in ms {
                        let mut entry = json!({"start": m.start, "length": m.len});
                        if let Some(i) = index {
                            entry["indices"] = json!([i]);
                        }
                        list.push(entry);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Map::new();
    for (k, v) in hit {
        walk(v, k, terms, None, &mut out);
    }
    out
}

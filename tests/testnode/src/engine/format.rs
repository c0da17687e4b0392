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

/// A match of a query term in a string: its first and last word, its byte start and its
/// highlighted byte length.
#[derive(Debug, Clone, Copy)]
struct Match {
    token: usize,
    last: usize,
    start: usize,
    len: usize,
    term: usize,
}

fn matches_in(text: &str, terms: &[Term]) -> (Vec<super::text::Token>, Vec<Match>) {
    let tokens = tokenize(text);
    let mut out = Vec::new();
    let mut i = 0;
    'tokens: while i < tokens.len() {
        // A phrase matches its words in sequence and is highlighted as a whole.
        for (ti, term) in terms.iter().enumerate() {
            let Some(phrase) = &term.phrase else { continue };
            let fits = i + phrase.len() <= tokens.len()
                && phrase.iter().enumerate().all(|(j, w)| w.as_ref().is_none_or(|w| *w == tokens[i + j].word));
            if fits && !phrase.is_empty() {
                let last = i + phrase.len() - 1;
                out.push(Match { token: i, last, start: tokens[i].start, len: tokens[last].end - tokens[i].start, term: ti });
                i = last + 1;
                continue 'tokens;
            }
        }
        let t = &tokens[i];
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
                    best = Some(Match { token: i, last: i, start: t.start, len, term: ti });
                }
            }
        }
        out.extend(best);
        i += 1;
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

/// Whether `path` is listed (`attr` or `attr:cropLength`); the crop length if one is given.
fn listed(list: Option<&[String]>, path: &str) -> Option<Option<usize>> {
    let list = list?;
    let mut found = None;
    for a in list {
        let (name, len) = match a.rsplit_once(':') {
            Some((n, l)) => (n, l.parse().ok()),
            None => (a.as_str(), None),
        };
        if path_matches(name, path) || path_matches(path, name) {
            found = Some(len.or(found.flatten()));
        }
    }
    found
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

/// A token of a text for cropping: a word, or a run of separators.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Word,
    Separator { hard: bool },
}

#[derive(Debug, Clone, Copy)]
struct Piece {
    start: usize,
    end: usize,
    kind: Kind,
}

/// Words and separator runs covering the whole text.
fn pieces(s: &str, words: &[super::text::Token]) -> Vec<Piece> {
    let mut out = Vec::with_capacity(words.len() * 2 + 1);
    let mut cursor = 0;
    for w in words {
        if w.start > cursor {
            let sep = &s[cursor..w.start];
            out.push(Piece { start: cursor, end: w.start, kind: Kind::Separator { hard: sep.chars().any(super::text::is_hard_separator) } });
        }
        out.push(Piece { start: w.start, end: w.end, kind: Kind::Word });
        cursor = w.end;
    }
    if cursor < s.len() {
        let sep = &s[cursor..];
        out.push(Piece { start: cursor, end: s.len(), kind: Kind::Separator { hard: sep.chars().any(super::text::is_hard_separator) } });
    }
    out
}

fn format_text(s: &str, terms: &[Term], highlight: bool, crop: Option<usize>, opts: &FormatOptions<'_>) -> String {
    if !highlight && crop.is_none() {
        return s.to_string();
    }
    let (tokens, matches) = matches_in(s, terms);
    let (from, to) = match crop {
        Some(len) if len > 0 => crop_bounds(s, &tokens, &matches, len),
        _ => (0, s.len()),
    };
    let mut out = String::new();
    if from > 0 {
        out.push_str(opts.crop_marker);
    }
    let mut cursor = from;
    if highlight {
        for m in &matches {
            let (m_start, m_end) = (tokens[m.token].start, tokens[m.last].end);
            if m_end < from || m_start > to {
                continue;
            }
            let (m_start, m_end) = (m_start.max(from), m_end.min(to));
            if cursor < m_start {
                out.push_str(&s[cursor..m_start]);
            }
            let hl_end = (m.start + m.len).clamp(m_start, m_end);
            out.push_str(opts.pre);
            out.push_str(&s[m_start..hl_end]);
            out.push_str(opts.post);
            if hl_end < m_end {
                out.push_str(&s[hl_end..m_end]);
            }
            cursor = m_end;
        }
    }
    if cursor < to {
        out.push_str(&s[cursor..to]);
    }
    if to < s.len() {
        out.push_str(opts.crop_marker);
    }
    out
}

/// Meilisearch's best match interval: the run of matches fitting in `crop_size` words with
/// the most distinct query words, then the closest together, then the most in query order.
fn best_interval(matches: &[Match], crop_size: usize) -> (usize, usize) {
    let score = |ms: &[Match]| -> (i32, i32, i32) {
        let mut ids: Vec<usize> = ms.iter().map(|m| m.term).collect();
        let (mut order, mut dist) = (0, 0);
        for w in ms.windows(2) {
            if w[1].term > w[0].term {
                order += 1;
            }
            dist -= (w[1].token - w[0].last).min(7) as i32;
            // A phrase counts as its words, in order and next to each other.
            order += (w[0].last - w[0].token) as i32;
            dist -= (w[0].last - w[0].token) as i32;
        }
        ids.sort_unstable();
        ids.dedup();
        (ids.len() as i32, dist, order)
    };
    type Scored = ((i32, i32, i32), (usize, usize));
    let mut best: Option<Scored> = None;
    let mut consider = |first: usize, last: usize| {
        let sc = score(&matches[first..=last]);
        if best.as_ref().is_none_or(|(b, _)| sc > *b) {
            best = Some((sc, (first, last)));
        }
    };
    let mut first = 0;
    for (i, m) in matches.iter().enumerate() {
        if m.last.saturating_sub(matches[first].token) >= crop_size {
            if i != 0 {
                consider(first, i - 1);
            }
            loop {
                first += 1;
                if first == matches.len() {
                    first -= 1;
                    break;
                }
                if matches[first].token > m.last || m.last - matches[first].token < crop_size {
                    break;
                }
            }
        }
    }
    consider(first, matches.len() - 1);
    best.map_or((0, 0), |(_, i)| i)
}

/// Byte bounds of the crop window (Meilisearch's `crop_bounds`): start from the best match
/// interval and grow it word by word, to the left first, up to `crop_size` words.
fn crop_bounds(s: &str, words: &[super::text::Token], matches: &[Match], crop_size: usize) -> (usize, usize) {
    let ps = pieces(s, words);
    // Index of each word in `ps`.
    let word_piece: Vec<usize> =
        ps.iter().enumerate().filter(|(_, p)| p.kind == Kind::Word).map(|(i, _)| i).collect();
    let (mut remaining, before_start, after_start) = if matches.is_empty() {
        (crop_size, 0, 0)
    } else {
        let (f, l) = best_interval(matches, crop_size);
        let (first, last) = (matches[f].token, matches[l].last);
        let size = last - first + 1;
        (crop_size.saturating_sub(size), word_piece[first], word_piece[last] + 1)
    };
    let mut before = ps[..before_start].iter().rev().peekable();
    let mut after = ps[after_start.min(ps.len())..].iter().peekable();
    while remaining > 0 {
        match (before.peek().map(|p| p.kind), after.peek().map(|p| p.kind)) {
            (Some(b), Some(a)) => match (b, a) {
                (Kind::Separator { hard: bh }, Kind::Separator { hard: ah }) => {
                    if bh == ah {
                        before.next();
                        if remaining > 1 {
                            after.next();
                        }
                    } else if bh {
                        after.next();
                    } else {
                        before.next();
                    }
                }
                (Kind::Word, Kind::Separator { .. }) => {
                    before.next();
                    remaining -= 1;
                }
                (Kind::Separator { .. }, Kind::Word) => {
                    after.next();
                    remaining -= 1;
                }
                (Kind::Word, Kind::Word) => {
                    before.next();
                    remaining -= 1;
                    if remaining > 0 {
                        after.next();
                        remaining -= 1;
                    }
                }
            },
            (Some(b), None) => {
                before.next();
                if b == Kind::Word {
                    remaining -= 1;
                }
            }
            (None, Some(a)) => {
                after.next();
                if a == Kind::Word {
                    remaining -= 1;
                }
            }
            (None, None) => break,
        }
    }
    let from = before.next().map_or(0, |p| p.end);
    let to = after.next().map_or(s.len(), |p| p.start);
    (from, to)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rank::query_terms;
    use crate::engine::settings::EngineSettings;

    fn crop(q: &str, text: &str, len: usize, highlight: bool) -> String {
        let terms = query_terms(q, &EngineSettings::from_value(&serde_json::json!({})));
        let opts = FormatOptions { highlight: None, crop: None, crop_length: len, crop_marker: "…", pre: "<em>", post: "</em>" };
        format_text(text, &terms, highlight, Some(len), &opts)
    }

    #[test]
    fn crop_without_match_keeps_the_first_words() {
        let text = "A quick brown fox can not jump 32 feet, right? Brr, it is cold!";
        assert_eq!(crop("split the world", text, 10, false), "A quick brown fox can not jump 32 feet, right…");
        let text = "(A quick brown fox can not jump 32 feet, right? Brr, it is cold!)";
        assert_eq!(crop("split the world", text, 10, false), "(A quick brown fox can not jump 32 feet, right…");
    }

    #[test]
    fn crop_grows_around_the_best_interval_left_first() {
        let text = "Natalie risk her future to build a world with the boy she loves.";
        assert_eq!(crop("split the world", text, 10, false), "…future to build a world with the boy she loves…");
        let text = "Natalie risk her future to build a world with the boy she loves. Emily Henry: The Love That Split The World.";
        assert_eq!(crop("split the world", text, 10, false), "…she loves. Emily Henry: The Love That Split The World.");
    }

    #[test]
    fn highlight_marks_only_the_matched_prefix() {
        assert_eq!(crop("com", "Romantic Comedy", 10, true), "Romantic <em>Com</em>edy");
        assert_eq!(crop("gold rush", "The Gold Rush", 2, true), "…<em>Gold</em> <em>Rush</em>");
    }
}

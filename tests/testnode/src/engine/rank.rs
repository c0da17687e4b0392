//! Matching and ranking, as milli's bucket sort does it on small corpora.
//!
//! Each document is evaluated against every ranking rule in the index's order; a graph-based
//! rule (words, typo, proximity, attributeRank, wordPosition, exactness) yields a
//! `Rank { rank, max_rank }` where `max_rank` is one more than the most expensive path of the
//! rule's graph and `rank = max_rank - cost` of the cheapest path the document satisfies — the
//! bucket it lands in. Later rules only see the query terms (and the typo derivations) the
//! earlier buckets kept. `_rankingScore` merges the ranks like milli's `Rank::global_score`.

use std::cmp::Ordering;

use serde_json::{json, Map, Value};

use super::params::Strategy;
use super::settings::EngineSettings;
use super::text::{self, bucketed_position, distance, tokenize};

/// Maximum number of query words milli considers.
const MAX_QUERY_WORDS: usize = 10;
/// Field word counts are only recorded up to this many words (milli's `MAX_COUNTED_WORDS`).
const MAX_COUNTED_WORDS: usize = 30;
/// Highest proximity milli records between two words.
const MAX_PROXIMITY: u32 = 7;

/// One query word.
#[derive(Debug, Clone)]
pub struct Term {
    pub word: String,
    pub chars: Vec<char>,
    pub prefix: bool,
    /// Maximum typos allowed (0, 1 or 2).
    pub max_typos: u8,
    /// Position in the query (a hard separator counts as 8 positions, like in documents).
    pub pos: u16,
    /// Last position (a phrase spans several).
    pub end: u16,
    /// A quoted phrase: its words, `None` for stop words. Phrases match exactly, in order.
    pub phrase: Option<Vec<Option<String>>>,
    /// Single-word synonyms: they match like the word itself, without typos.
    pub synonyms: Vec<String>,
}

impl Term {
    /// Number of typos with which `word` matches this term and the matched length in chars
    /// (a prefix match covers only the term's length).
    pub fn matches(&self, word: &str) -> Option<(u8, usize)> {
        if self.phrase.is_some() {
            return None;
        }
        if word == self.word {
            return Some((0, self.chars.len()));
        }
        if self.synonyms.iter().any(|s| s == word) {
            return Some((0, word.chars().count()));
        }
        if self.prefix && word.starts_with(&self.word) {
            return Some((0, self.chars.len()));
        }
        if self.max_typos == 0 {
            return None;
        }
        let wchars: Vec<char> = word.chars().collect();
        let same_first = wchars.first() == self.chars.first();
        let (d, len) = distance(&self.chars, &wchars, self.prefix);
        let len = if self.prefix { len } else { wchars.len() };
        match self.max_typos {
            1 => (same_first && d == 1).then_some((1, len)),
            // Words not starting with the term's first letter are one edit away at most and
            // count as two typos.
            _ if !same_first => (d == 1).then_some((2, len)),
            _ => (1..=2).contains(&d).then_some((d as u8, len)),
        }
    }

    /// milli's `max_typo_cost`: a term without typos can still be split in two words,
    /// which costs one typo.
    fn max_typo_cost(&self) -> u32 {
        if self.phrase.is_some() {
            0
        } else {
            (self.max_typos as u32).max(1)
        }
    }

    /// Words of a phrase in it (stop words excepted).
    pub fn phrase_words(&self) -> impl Iterator<Item = &str> {
        self.phrase.iter().flatten().flatten().map(String::as_str)
    }
}

/// Whether the word at byte `start` of `q` is negated: directly preceded by a `-` that
/// starts the query or follows whitespace.
fn negated(q: &str, start: usize) -> bool {
    let before = &q[..start];
    match before.strip_suffix('-') {
        Some(rest) => rest.chars().last().is_none_or(char::is_whitespace),
        None => false,
    }
}

/// A parsed `q`.
#[derive(Debug, Clone, Default)]
pub struct ParsedQuery {
    pub terms: Vec<Term>,
    /// `-word`: documents holding the word are excluded.
    pub negative_words: Vec<String>,
    /// `-"a phrase"`: documents holding the phrase are excluded.
    pub negative_phrases: Vec<Vec<Option<String>>>,
}

/// Parses `q` as milli does: at most 10 terms; `"quoted words"` make a phrase (an unclosed
/// quote runs to the end); `-word` and `-"phrase"` after whitespace are negations; stop
/// words are dropped unless last (positions still count them); the last word is a prefix
/// unless something follows it.
pub fn parse_query(q: &str, settings: &EngineSettings) -> ParsedQuery {
    let tokens = tokenize(q);
    let positions = text::positions(&tokens, 0);
    let ends_with_word = q.chars().last().is_some_and(|c| c.is_alphanumeric());
    let count = tokens.len();
    let mut out = ParsedQuery::default();
    // An open phrase: words, start, end, negated.
    let mut phrase: Option<(Vec<Option<String>>, u16, u16, bool)> = None;
    let close = |phrase: (Vec<Option<String>>, u16, u16, bool), out: &mut ParsedQuery| {
        let (words, start, end, negative) = phrase;
        if words.iter().all(Option::is_none) {
            return;
        }
        if negative {
            out.negative_phrases.push(words);
        } else if out.terms.len() < MAX_QUERY_WORDS {
            out.terms.push(Term {
                word: words.iter().flatten().cloned().collect::<Vec<_>>().join(" "),
                chars: Vec::new(),
                prefix: false,
                max_typos: 0,
                pos: start,
                end,
                phrase: Some(words),
                synonyms: Vec::new(),
            });
        }
    };
    // Quotes in the separators before a word (or at the end) close and open phrases.
    let separators = |phrase: &mut Option<(Vec<Option<String>>, u16, u16, bool)>, out: &mut ParsedQuery, sep: &str| {
        let mut quotes = sep.matches('"').count();
        if quotes == 0 {
            return;
        }
        if let Some(p) = phrase.take() {
            close(p, out);
            quotes -= 1;
        }
        if quotes % 2 == 1 {
            // `-"` after whitespace negates the phrase.
            let before_quote = &sep[..sep.rfind('"').unwrap_or(0)];
            let negative = before_quote.ends_with('-') && {
                let rest = &before_quote[..before_quote.len() - 1];
                rest.chars().last().is_none_or(char::is_whitespace)
            };
            *phrase = Some((Vec::new(), u16::MAX, u16::MAX, negative));
        }
    };
    let mut prev_end = 0;
    for (i, (t, pos)) in tokens.into_iter().zip(positions).enumerate() {
        separators(&mut phrase, &mut out, &q[prev_end..t.start]);
        prev_end = t.end;
        let last = i + 1 == count;
        if let Some((words, start, end, _)) = &mut phrase {
            if *start == u16::MAX {
                *start = pos;
            }
            *end = pos;
            words.push((!settings.stop_words.contains(&t.word)).then_some(t.word));
            continue;
        }
        if out.terms.len() >= MAX_QUERY_WORDS {
            continue;
        }
        if negated(q, t.start) {
            out.negative_words.push(t.word);
            continue;
        }
        if !last && settings.stop_words.contains(&t.word) {
            continue;
        }
        let chars: Vec<char> = t.word.chars().collect();
        let len = chars.len();
        let disabled = !settings.typo_enabled
            || settings.disable_on_words.iter().any(|w| text::normalize(w) == t.word)
            || (settings.disable_on_numbers && chars.iter().all(|c| c.is_ascii_digit()));
        let max_typos = if disabled || len < settings.one_typo {
            0
        } else if len < settings.two_typos {
            1
        } else {
            2
        };
        let prefix = last && ends_with_word && settings.prefix_search;
        // Synonyms of single words (multi-word synonyms are not supported).
        let synonyms = settings
            .synonyms
            .iter()
            .filter(|(k, _)| *k == t.word)
            .flat_map(|(_, v)| v.iter().filter(|s| !s.contains(' ')).cloned())
            .collect();
        out.terms.push(Term { word: t.word, chars, prefix, max_typos, pos, end: pos, phrase: None, synonyms });
    }
    separators(&mut phrase, &mut out, &q[prev_end..]);
    if let Some(p) = phrase.take() {
        close(p, &mut out);
    }
    out
}

/// The query terms of `q` (see [`parse_query`]).
#[cfg(test)]
pub fn query_terms(q: &str, settings: &EngineSettings) -> Vec<Term> {
    parse_query(q, settings).terms
}

/// Start positions of `phrase` in a field's words.
pub fn phrase_positions(words: &[(String, u16)], phrase: &[Option<String>]) -> Vec<u16> {
    let Some((offset, first)) = phrase.iter().enumerate().find_map(|(i, w)| w.as_ref().map(|w| (i, w))) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (w, p) in words {
        if w != first || (*p as usize) < offset {
            continue;
        }
        let start = p - offset as u16;
        let all = phrase.iter().enumerate().all(|(i, pw)| match pw {
            None => true,
            Some(pw) => words.iter().any(|(w2, p2)| w2 == pw && *p2 as usize == start as usize + i),
        });
        if all && !out.contains(&start) {
            out.push(start);
        }
    }
    out
}

/// One searchable field of a document: its weight and its words with their positions.
#[derive(Debug, Clone)]
pub struct FieldWords {
    pub weight: u16,
    pub typos_allowed: bool,
    pub words: Vec<(String, u16)>,
}

/// Visits the leaf values of a document, by dotted path, in document order.
pub fn leaves<'a>(value: &'a Value, path: &str, out: &mut Vec<(String, Vec<&'a Value>)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                leaves(v, &p, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                leaves(item, path, out);
            }
        }
        Value::Null => {}
        leaf => match out.iter_mut().find(|(p, _)| p == path) {
            Some((_, vals)) => vals.push(leaf),
            None => out.push((path.to_string(), vec![leaf])),
        },
    }
}

/// The searchable fields of a document.
pub fn analyze(doc: &Map<String, Value>, settings: &EngineSettings, search_on: Option<&[String]>) -> Vec<FieldWords> {
    let mut all = Vec::new();
    for (k, v) in doc {
        leaves(v, k, &mut all);
    }
    let mut fields = Vec::new();
    for (path, values) in all {
        if path == "_vectors" || path.starts_with("_vectors.") {
            continue;
        }
        let Some(weight) = settings.searchable_weight(&path) else { continue };
        if let Some(on) = search_on {
            if !on.iter().any(|a| super::settings::path_matches(a, &path)) {
                continue;
            }
        }
        let mut words = Vec::new();
        let mut next_start: u16 = 0;
        for (i, v) in values.iter().enumerate() {
            let base = if i == 0 { 0 } else { next_start };
            match v {
                Value::String(s) => {
                    let toks = tokenize(s);
                    let pos = text::positions(&toks, base);
                    if let Some(&last) = pos.last() {
                        next_start = last.saturating_add(text::MAX_DISTANCE);
                    } else {
                        next_start = base.saturating_add(text::MAX_DISTANCE);
                    }
                    words.extend(
                        toks.into_iter()
                            .map(|t| t.word)
                            .zip(pos)
                            .filter(|(w, _)| !settings.stop_words.contains(w)),
                    );
                }
                Value::Number(n) => {
                    words.push((n.to_string(), base));
                    next_start = base.saturating_add(text::MAX_DISTANCE);
                }
                _ => {
                    next_start = base.saturating_add(text::MAX_DISTANCE);
                }
            }
        }
        let typos_allowed = !settings.disable_on_attributes.iter().any(|a| super::settings::path_matches(a, &path));
        fields.push(FieldWords { weight, typos_allowed, words });
    }
    fields
}

/// One occurrence of a query term in a document.
#[derive(Debug, Clone, Copy)]
struct Occ {
    field: usize,
    pos: u16,
    /// Last position (of a phrase).
    end: u16,
    typos: u8,
    exact: bool,
}

/// A ranking rule's outcome for one document.
#[derive(Debug, Clone)]
pub enum Outcome {
    Words { rank: u32, max: u32 },
    Typo { rank: u32, max: u32 },
    Proximity { rank: u32, max: u32 },
    Fid { rank: u32, max: u32 },
    Position { rank: u32, max: u32 },
    /// `attribute` (the unified rule of older versions): fid then position.
    Attribute { fid: (u32, u32), position: (u32, u32) },
    Exactness { attribute: u32, words: (u32, u32) },
    /// `redacted` when the field is not displayed.
    Sort { field: String, asc: bool, value: Value, redacted: bool },
    Geo { point: [f64; 2], asc: bool, value: Option<[f64; 2]> },
}

/// A ranking rule, resolved from the settings and the `sort` parameter.
#[derive(Debug, Clone)]
pub enum Rule {
    Words,
    Typo,
    Proximity,
    Fid,
    Position,
    Attribute,
    Exactness,
    Sort { field: String, asc: bool },
    Geo { point: [f64; 2], asc: bool },
}

/// A sort criterion of the `sort` parameter.
#[derive(Debug, Clone)]
pub enum SortCrit {
    Field { field: String, asc: bool },
    Geo { point: [f64; 2], asc: bool },
}

/// Resolves the rules of the index as milli does: `sort` criteria go where the `sort` rule
/// is, a rule (or a sorted field) listed twice counts once, and `words` is implied before the
/// first rule that needs it — except with the `all` strategy, which has no `words` rule.
pub fn rules(settings: &EngineSettings, sort: &[SortCrit], strategy: Strategy) -> Vec<Rule> {
    let mut out: Vec<Rule> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    let mut sorted_fields: Vec<String> = Vec::new();
    let mut geo_sorted = false;
    let mut words = strategy == Strategy::All;
    let mut push_sort = |out: &mut Vec<Rule>, field: &str, asc: bool| {
        if !sorted_fields.iter().any(|f| f == field) {
            sorted_fields.push(field.to_string());
            out.push(Rule::Sort { field: field.to_string(), asc });
        }
    };
    for r in &settings.ranking_rules {
        let name = r.as_str();
        let needs_words = matches!(name, "typo" | "proximity" | "attributeRank" | "wordPosition" | "attribute" | "exactness");
        if needs_words && !words {
            out.push(Rule::Words);
            words = true;
        }
        let builtin = matches!(name, "words" | "typo" | "proximity" | "attributeRank" | "wordPosition" | "attribute" | "exactness" | "sort");
        if builtin {
            if seen.contains(&name) {
                continue;
            }
            seen.push(name);
        }
        match name {
            "words" => {
                if !words {
                    out.push(Rule::Words);
                    words = true;
                }
            }
            "typo" => out.push(Rule::Typo),
            "proximity" => out.push(Rule::Proximity),
            "attributeRank" => out.push(Rule::Fid),
            "wordPosition" => out.push(Rule::Position),
            "attribute" => out.push(Rule::Attribute),
            "exactness" => out.push(Rule::Exactness),
            "sort" => {
                for s in sort {
                    match s {
                        SortCrit::Field { field, asc } => push_sort(&mut out, field, *asc),
                        SortCrit::Geo { point, asc } => {
                            if !geo_sorted {
                                geo_sorted = true;
                                out.push(Rule::Geo { point: *point, asc: *asc });
                            }
                        }
                    }
                }
            }
            other => {
                if let Some(f) = other.strip_suffix(":asc") {
                    push_sort(&mut out, f, true);
                } else if let Some(f) = other.strip_suffix(":desc") {
                    push_sort(&mut out, f, false);
                }
            }
        }
    }
    out
}

/// The words rule's buckets: the terms that must match and the cost of the terms removed
/// to get there, cheapest first (milli's `removal_order_for_terms_matching_strategy`).
/// Terms are identified by their index. The group removed last is never removed.
pub fn removal_sets(terms: &[Term], strategy: Strategy, term_doc_counts: &[usize]) -> Vec<(Vec<usize>, u32)> {
    let n = terms.len();
    let all: Vec<usize> = (0..n).collect();
    // Removal groups, in removal order.
    // Phrases are never removed; the group removed last is kept unless a phrase is.
    let removable: Vec<usize> = all.iter().copied().filter(|&t| terms[t].phrase.is_none()).collect();
    let mandatory = removable.len() < n;
    let mut groups: Vec<Vec<usize>> = match strategy {
        Strategy::All => Vec::new(),
        Strategy::Last => removable.iter().rev().map(|&t| vec![t]).collect(),
        Strategy::Frequency => {
            // The most frequent terms go first (a term in no document counts as the most
            // frequent); terms of equal frequency go together.
            let freq = |t: usize| match term_doc_counts.get(t).copied().unwrap_or(0) {
                0 => usize::MAX,
                f => f,
            };
            let mut order = removable.clone();
            order.sort_by_key(|&t| std::cmp::Reverse(freq(t)));
            let mut groups: Vec<Vec<usize>> = Vec::new();
            for t in order {
                match groups.last_mut() {
                    Some(g) if freq(g[0]) == freq(t) => g.push(t),
                    _ => groups.push(vec![t]),
                }
            }
            groups
        }
    };
    if !mandatory {
        groups.pop();
    }
    let mut sets = vec![(all.clone(), 0)];
    let mut kept = all;
    let mut cost = 0;
    for g in groups {
        kept.retain(|t| !g.contains(t));
        cost += g.len() as u32;
        sets.push((kept.clone(), cost));
    }
    sets
}

/// Everything the ranking knows about one matching document.
#[derive(Debug, Clone)]
pub struct Evaluated {
    pub outcomes: Vec<Outcome>,
    pub geo_distance: Option<f64>,
}

fn cost_from_distance(distance: u32) -> u32 {
    match distance {
        0 => 0,
        1 => 1,
        2..=4 => 2,
        5..=7 => 3,
        8..=11 => 4,
        12..=16 => 5,
        17..=24 => 6,
        25..=64 => 7,
        65..=256 => 8,
        257..=1024 => 9,
        _ => 10,
    }
}

/// Looks a dotted path up in a document (first value found).
pub fn lookup<'a>(doc: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = doc.get(path) {
        return Some(v);
    }
    let (head, rest) = path.split_once('.')?;
    match doc.get(head)? {
        Value::Object(inner) => lookup(inner, rest),
        _ => None,
    }
}

/// The bucket a document falls in for a sort rule: milli walks the number values, then the
/// string values (by their facet key), in the rule's direction; a document with several
/// values lands in the first bucket that holds one of them.
pub fn sort_value(doc: &Map<String, Value>, field: &str, asc: bool) -> Value {
    fn collect(v: &Value, out: &mut Vec<Value>) {
        match v {
            Value::Number(n) => out.push(json!(n.as_f64().unwrap_or(0.0))),
            Value::String(s) => out.push(Value::String(s.trim().to_lowercase())),
            Value::Bool(b) => out.push(Value::String(b.to_string())),
            Value::Array(items) => items.iter().for_each(|i| collect(i, out)),
            _ => {}
        }
    }
    let mut values = Vec::new();
    if let Some(v) = lookup(doc, field) {
        collect(v, &mut values);
    }
    let numbers_first = |a: &Value, b: &Value| u8::from(!a.is_number()).cmp(&u8::from(!b.is_number()));
    values
        .into_iter()
        .min_by(|a, b| {
            numbers_first(a, b).then_with(|| {
                let o = compare_values(a, b);
                if asc {
                    o
                } else {
                    o.reverse()
                }
            })
        })
        .unwrap_or(Value::Null)
}

/// Numbers before strings; numbers by value, strings lexicographically.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x.as_f64().unwrap_or(0.0).partial_cmp(&y.as_f64().unwrap_or(0.0)).unwrap_or(Ordering::Equal)
        }
        (Value::Number(_), _) => Ordering::Less,
        (_, Value::Number(_)) => Ordering::Greater,
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

/// `_geo` of a document.
pub fn geo_of(doc: &Map<String, Value>) -> Option<[f64; 2]> {
    let g = doc.get("_geo")?;
    let num = |v: Option<&Value>| -> Option<f64> {
        match v? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    };
    Some([num(g.get("lat"))?, num(g.get("lng"))?])
}

/// Haversine distance in meters, as milli computes it.
pub fn geo_distance(a: [f64; 2], b: [f64; 2]) -> f64 {
    const EARTH_RADIUS: f64 = 6_371_000.0;
    let (la1, lo1, la2, lo2) = (a[0].to_radians(), a[1].to_radians(), b[0].to_radians(), b[1].to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2) + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS * h.sqrt().asin()
}

/// Matches already computed: word → per term.
pub type Memo = std::collections::HashMap<String, std::rc::Rc<[Option<(u8, usize)>]>>;

/// Context of one search shared by all documents.
pub struct Query<'a> {
    pub terms: &'a [Term],
    pub rules: &'a [Rule],
    pub removal_sets: &'a [(Vec<usize>, u32)],
    pub max_weight: u16,
    /// `displayedAttributes` unless `*`: sort details of hidden fields are redacted.
    pub displayed: Option<&'a [String]>,
    /// `proximityPrecision: byAttribute`.
    pub proximity_by_attribute: bool,
    /// Memo of [`Term::matches`] by (term, word): documents share most of their words.
    pub memo: std::cell::RefCell<Memo>,
}

impl Query<'_> {
    /// [`Term::matches`] for term `t`, memoized.
    pub fn matches(&self, t: usize, word: &str) -> Option<(u8, usize)> {
        self.matches_all(word)[t]
    }

    /// [`Term::matches`] of every term, memoized.
    pub fn matches_all(&self, word: &str) -> std::rc::Rc<[Option<(u8, usize)>]> {
        if let Some(ms) = self.memo.borrow().get(word) {
            return ms.clone();
        }
        let ms: std::rc::Rc<[Option<(u8, usize)>]> = self.terms.iter().map(|term| term.matches(word)).collect();
        self.memo.borrow_mut().insert(word.to_string(), ms.clone());
        ms
    }
}

/// Evaluates one document; `None` if it does not match the query.
pub fn evaluate(q: &Query<'_>, doc: &Map<String, Value>, fields: &[FieldWords]) -> Option<Evaluated> {
    let placeholder = q.terms.is_empty();
    // Occurrences of each term.
    let mut occs: Vec<Vec<Occ>> = vec![Vec::new(); q.terms.len()];
    if !placeholder {
        for (fi, f) in fields.iter().enumerate() {
            for (ti, t) in q.terms.iter().enumerate() {
                if let Some(phrase) = &t.phrase {
                    let len = phrase.len().saturating_sub(1) as u16;
                    for start in phrase_positions(&f.words, phrase) {
                        occs[ti].push(Occ { field: fi, pos: start, end: start + len, typos: 0, exact: true });
                    }
                }
            }
            for (w, pos) in &f.words {
                let matched = q.matches_all(w);
                for (ti, t) in q.terms.iter().enumerate() {
                    if t.phrase.is_some() {
                        continue;
                    }
                    let m = if f.typos_allowed {
                        matched[ti]
                    } else if w == &t.word || (t.prefix && w.starts_with(&t.word)) {
                        Some((0, 0))
                    } else {
                        None
                    };
                    if let Some((typos, _)) = m {
                        occs[ti].push(Occ { field: fi, pos: *pos, end: *pos, typos, exact: w == &t.word });
                    }
                }
            }
        }
    }
    // Words rule / universe: the first removal set fully matched.
    let (kept, removed): (Vec<usize>, u32) = if placeholder {
        (Vec::new(), 0)
    } else {
        let (set, cost) = q
            .removal_sets
            .iter()
            .find(|(set, _)| !set.is_empty() && set.iter().all(|&t| !occs[t].is_empty()))?;
        (set.clone(), *cost)
    };
    // The typo bucket restricts each kept term to its cheapest derivations.
    let typos: Vec<u8> = kept.iter().map(|&t| occs[t].iter().map(|o| o.typos).min().unwrap_or(0)).collect();
    let subset = |k: usize| -> Vec<Occ> {
        let t = kept[k];
        occs[t].iter().copied().filter(|o| o.typos == typos[k]).collect()
    };
    let fid = || -> (u32, u32) {
        let max = 1 + kept.len() as u32 * q.max_weight as u32;
        let cost: u32 =
            (0..kept.len()).map(|k| subset(k).iter().map(|o| fields[o.field].weight as u32).min().unwrap_or(0)).sum();
        (max - cost, max)
    };
    let position = || -> (u32, u32) {
        let max = 1 + 10 * kept.len() as u32;
        let cost: u32 = (0..kept.len())
            .map(|k| {
                let qpos = q.terms[kept[k]].pos as u32;
                subset(k)
                    .iter()
                    .map(|o| cost_from_distance((bucketed_position(o.pos) as u32).abs_diff(qpos)))
                    .min()
                    .unwrap_or(10)
            })
            .sum();
        (max - cost, max)
    };

    let mut outcomes = Vec::new();
    let mut geo_distance = None;
    for rule in q.rules {
        match rule {
            Rule::Sort { field, asc } => {
                outcomes.push(Outcome::Sort {
                    field: field.clone(),
                    asc: *asc,
                    value: sort_value(doc, field, *asc),
                    redacted: q.displayed.is_some_and(|d| !d.iter().any(|a| a == field)),
                })
            }
            Rule::Geo { point, asc } => {
                let value = geo_of(doc);
                if let Some(v) = value {
                    geo_distance = Some(geo_distance_of(*point, v));
                }
                outcomes.push(Outcome::Geo { point: *point, asc: *asc, value })
            }
            _ if placeholder => {}
            Rule::Words => {
                // Words of phrases count as matched words.
                let phrase_words = q.terms.iter().map(|t| t.phrase_words().count() as u32).sum::<u32>();
                let max = 1 + phrase_words.saturating_sub(1) + q.removal_sets.last().map_or(0, |s| s.1);
                outcomes.push(Outcome::Words { rank: max - removed, max });
            }
            Rule::Typo => {
                let max = 1 + kept.iter().map(|&t| q.terms[t].max_typo_cost()).sum::<u32>();
                let cost: u32 = typos.iter().map(|&t| t as u32).sum();
                outcomes.push(Outcome::Typo { rank: max - cost, max });
            }
            Rule::Proximity => {
                let mut max = 1;
                let mut cost = 0;
                for k in 1..kept.len() {
                    // Only terms adjacent in the query have a proximity condition.
                    if kept[k - 1] + 1 != kept[k] || q.terms[kept[k - 1]].end + 1 != q.terms[kept[k]].pos {
                        continue;
                    }
                    max += MAX_PROXIMITY;
                    let left = subset(k - 1);
                    let right = subset(k);
                    let mut best = MAX_PROXIMITY;
                    for a in &left {
                        for b in &right {
                            // A phrase is near by its last word on the left, its first on the right.
                            if a.field != b.field || a.end == b.pos {
                                continue;
                            }
                            let prox = if q.proximity_by_attribute {
                                1
                            } else if a.end < b.pos {
                                (b.pos - a.end) as u32
                            } else {
                                (a.end - b.pos) as u32 + 1
                            };
                            if prox <= MAX_PROXIMITY {
                                best = best.min(prox - 1);
                            }
                        }
                    }
                    cost += best;
                }
                outcomes.push(Outcome::Proximity { rank: max - cost, max });
            }
            Rule::Fid => {
                let (rank, max) = fid();
                outcomes.push(Outcome::Fid { rank, max });
            }
            Rule::Position => {
                let (rank, max) = position();
                outcomes.push(Outcome::Position { rank, max });
            }
            Rule::Attribute => outcomes.push(Outcome::Attribute { fid: fid(), position: position() }),
            Rule::Exactness => {
                let attribute = exact_attribute(q.terms, &kept, &typos, &occs, fields);
                let max = 1 + kept.len() as u32;
                let cost = kept
                    .iter()
                    .zip(&typos)
                    .filter(|(&t, &ty)| !(ty == 0 && occs[t].iter().any(|o| o.exact)))
                    .count() as u32;
                outcomes.push(Outcome::Exactness { attribute, words: (max - cost, max) });
            }
        }
    }
    Some(Evaluated { outcomes, geo_distance })
}

fn geo_distance_of(point: [f64; 2], value: [f64; 2]) -> f64 {
    geo_distance(point, value)
}

/// milli's `ExactAttribute` rule: 3 for an exact match, 2 for "matches start", 1 otherwise.
fn exact_attribute(terms: &[Term], kept: &[usize], typos: &[u8], occs: &[Vec<Occ>], fields: &[FieldWords]) -> u32 {
    // Terms that still have their exact original word, in order, without holes from term 0.
    let exact_terms: Vec<usize> = kept.iter().zip(typos).filter(|(_, &ty)| ty == 0).map(|(&t, _)| t).collect();
    if exact_terms.first() != Some(&0) || exact_terms.windows(2).any(|w| w[1] != w[0] + 1) {
        return 1;
    }
    // Each term's exact word sits at the term's position in some field.
    for &t in &exact_terms {
        let wanted = bucketed_position(terms[t].pos);
        if !occs[t].iter().any(|o| o.exact && bucketed_position(o.pos) == wanted) {
            return 1;
        }
    }
    let count: usize = exact_terms.iter().map(|&t| (terms[t].end - terms[t].pos) as usize + 1).sum();
    let mut best = 1;
    for (fi, f) in fields.iter().enumerate() {
        let all_in_field = exact_terms.iter().all(|&t| match &terms[t].phrase {
            Some(_) => terms[t].phrase_words().all(|pw| f.words.iter().any(|(w, _)| w == pw)),
            None => occs[t].iter().any(|o| o.exact && o.field == fi),
        });
        if !all_in_field {
            continue;
        }
        let word_count = f.words.len();
        if word_count == count && word_count <= MAX_COUNTED_WORDS {
            return 3;
        }
        best = 2;
    }
    best
}

/// Ranks of the scored rules, in order (sort rules carry no rank).
fn ranks(outcomes: &[Outcome]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for o in outcomes {
        match o {
            Outcome::Words { rank, max }
            | Outcome::Typo { rank, max }
            | Outcome::Proximity { rank, max }
            | Outcome::Fid { rank, max }
            | Outcome::Position { rank, max } => out.push((*rank, *max)),
            Outcome::Attribute { fid, position } => {
                out.push(*fid);
                out.push(*position);
            }
            Outcome::Exactness { attribute, words } => {
                out.push((*attribute, 3));
                out.push(*words);
            }
            Outcome::Sort { .. } | Outcome::Geo { .. } => {}
        }
    }
    out
}

/// milli's `Rank::merge`: the inner rank subdivides the outer one.
fn merge(outer: (u64, u64), inner: (u32, u32)) -> (u64, u64) {
    (outer.0.saturating_sub(1) * inner.1 as u64 + inner.0 as u64, outer.1 * inner.1 as u64)
}

/// milli's `Rank::global_score`.
fn global(ranks: &[(u32, u32)]) -> f64 {
    let rank = ranks.iter().fold((1u64, 1u64), |acc, &r| merge(acc, r));
    rank.0 as f64 / rank.1 as f64
}

/// `_rankingScore`.
pub fn score(outcomes: &[Outcome]) -> f64 {
    global(&ranks(outcomes))
}

/// Orders two documents' outcomes (better first).
pub fn compare(a: &[Outcome], b: &[Outcome]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let ord = match (x, y) {
            (Outcome::Words { rank: r1, max: m1 }, Outcome::Words { rank: r2, max: m2 })
            | (Outcome::Typo { rank: r1, max: m1 }, Outcome::Typo { rank: r2, max: m2 })
            | (Outcome::Proximity { rank: r1, max: m1 }, Outcome::Proximity { rank: r2, max: m2 })
            | (Outcome::Fid { rank: r1, max: m1 }, Outcome::Fid { rank: r2, max: m2 })
            | (Outcome::Position { rank: r1, max: m1 }, Outcome::Position { rank: r2, max: m2 }) => {
                (m1 - r1).cmp(&(m2 - r2))
            }
            (Outcome::Attribute { fid: f1, position: p1 }, Outcome::Attribute { fid: f2, position: p2 }) => {
                (f1.1 - f1.0).cmp(&(f2.1 - f2.0)).then((p1.1 - p1.0).cmp(&(p2.1 - p2.0)))
            }
            (Outcome::Exactness { attribute: a1, words: w1 }, Outcome::Exactness { attribute: a2, words: w2 }) => {
                a2.cmp(a1).then((w1.1 - w1.0).cmp(&(w2.1 - w2.0)))
            }
            (Outcome::Sort { asc, value: v1, .. }, Outcome::Sort { value: v2, .. }) => {
                match (v1.is_null(), v2.is_null()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => Ordering::Greater,
                    (false, true) => Ordering::Less,
                    _ => {
                        let kind = |v: &Value| u8::from(!v.is_number());
                        kind(v1).cmp(&kind(v2)).then_with(|| {
                            let o = compare_values(v1, v2);
                            if *asc {
                                o
                            } else {
                                o.reverse()
                            }
                        })
                    }
                }
            }
            (Outcome::Geo { point, asc, value: v1 }, Outcome::Geo { value: v2, .. }) => match (v1, v2) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(p1), Some(p2)) => {
                    let o = geo_distance(*point, *p1)
                        .partial_cmp(&geo_distance(*point, *p2))
                        .unwrap_or(Ordering::Equal);
                    if *asc {
                        o
                    } else {
                        o.reverse()
                    }
                }
            },
            _ => Ordering::Equal,
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

/// One element of milli's `weighted_score_values`: consecutive ranks merged into one score
/// multiplied by the query's weight, or a sort value.
#[derive(Debug, Clone)]
pub enum Weighted {
    Score(f64),
    Sort { asc: bool, value: Value },
    Geo { asc: bool, distance: Option<f64> },
}

/// `weighted_score_values` of one hit.
pub fn weighted_values(outcomes: &[Outcome], weight: f64) -> Vec<Weighted> {
    let mut out = Vec::new();
    let mut pending: Vec<(u32, u32)> = Vec::new();
    let flush = |pending: &mut Vec<(u32, u32)>, out: &mut Vec<Weighted>| {
        if !pending.is_empty() {
            out.push(Weighted::Score(global(pending) * weight));
            pending.clear();
        }
    };
    for o in outcomes {
        match o {
            Outcome::Sort { asc, value, .. } => {
                flush(&mut pending, &mut out);
                out.push(Weighted::Sort { asc: *asc, value: value.clone() });
            }
            Outcome::Geo { point, asc, value } => {
                flush(&mut pending, &mut out);
                out.push(Weighted::Geo { asc: *asc, distance: value.map(|v| geo_distance(*point, v)) });
            }
            other => pending.extend(ranks(std::slice::from_ref(other))),
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Orders two federated hits (better first), as Meilisearch's federated merge compares their
/// weighted score values, falling back on the weighted global scores.
pub fn compare_weighted(a: &[Weighted], a_global: f64, b: &[Weighted], b_global: f64) -> Ordering {
    let fallback = || b_global.partial_cmp(&a_global).unwrap_or(Ordering::Equal);
    for (x, y) in a.iter().zip(b) {
        // `better` is Greater when x ranks before y.
        let better = match (x, y) {
            (Weighted::Score(l), Weighted::Score(r)) => l.partial_cmp(r).unwrap_or(Ordering::Equal),
            (Weighted::Sort { asc: la, value: l }, Weighted::Sort { asc: ra, value: r }) if la == ra => {
                match (l.is_null(), r.is_null()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    _ => match (l.is_number(), r.is_number()) {
                        (true, false) => Ordering::Greater,
                        (false, true) => Ordering::Less,
                        _ => {
                            let o = compare_values(l, r);
                            if *la {
                                o.reverse()
                            } else {
                                o
                            }
                        }
                    },
                }
            }
            (Weighted::Geo { asc: la, distance: l }, Weighted::Geo { asc: ra, distance: r }) if la == ra => {
                match (l, r) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (Some(l), Some(r)) => {
                        let o = l.partial_cmp(r).unwrap_or(Ordering::Equal);
                        if *la {
                            o.reverse()
                        } else {
                            o
                        }
                    }
                }
            }
            _ => return fallback(),
        };
        if better != Ordering::Equal {
            return better.reverse();
        }
    }
    match a.len().cmp(&b.len()) {
        Ordering::Equal => Ordering::Equal,
        other => other.reverse(),
    }
}

fn local(rank: u32, max: u32) -> f64 {
    rank as f64 / max as f64
}

/// `_rankingScoreDetails`.
pub fn details(outcomes: &[Outcome]) -> Value {
    let mut map = Map::new();
    for (order, o) in outcomes.iter().enumerate() {
        match o {
            Outcome::Words { rank, max } => {
                map.insert(
                    "words".into(),
                    json!({"order": order, "matchingWords": rank, "maxMatchingWords": max, "score": local(*rank, *max)}),
                );
            }
            Outcome::Typo { rank, max } => {
                map.insert(
                    "typo".into(),
                    json!({"order": order, "typoCount": max - rank, "maxTypoCount": max - 1, "score": local(*rank, *max)}),
                );
            }
            Outcome::Proximity { rank, max } => {
                map.insert("proximity".into(), json!({"order": order, "score": local(*rank, *max)}));
            }
            Outcome::Fid { rank, max } => {
                map.insert("attributeRank".into(), json!({"order": order, "score": local(*rank, *max)}));
            }
            Outcome::Position { rank, max } => {
                map.insert("wordPosition".into(), json!({"order": order, "score": local(*rank, *max)}));
            }
            Outcome::Attribute { fid, position } => {
                map.insert(
                    "attribute".into(),
                    json!({
                        "order": order,
                        "attributeRankingOrderScore": local(fid.0, fid.1),
                        "queryWordDistanceScore": local(position.0, position.1),
                        "score": global(&[*fid, *position]),
                    }),
                );
            }
            Outcome::Exactness { attribute, words } => {
                let match_type = match attribute {
                    3 => "exactMatch",
                    2 => "matchesStart",
                    _ => "noExactMatch",
                };
                let v = if *attribute == 1 {
                    json!({
                        "order": order,
                        "matchType": match_type,
                        "matchingWords": words.0 - 1,
                        "maxMatchingWords": words.1 - 1,
                        "score": global(&[(1, 3), *words]),
                    })
                } else {
                    json!({"order": order, "matchType": match_type, "score": local(*attribute, 3)})
                };
                map.insert("exactness".into(), v);
            }
            Outcome::Sort { field, asc, value, redacted } => {
                if *redacted {
                    map.insert(format!("<hidden-rule-{order}>"), json!({"order": order, "value": "<hidden>"}));
                } else {
                    let key = format!("{field}:{}", if *asc { "asc" } else { "desc" });
                    map.insert(key, json!({"order": order, "value": value}));
                }
            }
            Outcome::Geo { point, asc, value } => {
                let key = format!("_geoPoint({}, {}):{}", point[0], point[1], if *asc { "asc" } else { "desc" });
                let (v, d) = match value {
                    Some(p) => (
                        json!({"lat": p[0], "lng": p[1]}),
                        json!((geo_distance(*point, *p) * 1000.0).round() / 1000.0),
                    ),
                    None => (Value::Null, Value::Null),
                };
                map.insert(key, json!({"order": order, "value": v, "distance": d}));
            }
        }
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> EngineSettings {
        EngineSettings::from_value(&json!({"searchableAttributes": ["title", "director", "genres"]}))
    }

    fn term(word: &str, prefix: bool) -> Term {
        let s = settings();
        let mut t = query_terms(word, &s).remove(0);
        t.prefix = prefix;
        t
    }

    #[test]
    fn typo_budget_follows_word_length_and_first_letter() {
        // 3 letters: no typo; prefix only.
        assert_eq!(term("kid", true).matches("kids"), Some((0, 3)));
        assert_eq!(term("kid", false).matches("kit"), None);
        // 5..8 letters: one typo, same first letter.
        assert_eq!(term("comedi", false).matches("comedy"), Some((1, 6)));
        assert_eq!(term("xomedy", false).matches("comedy"), None);
        // 9+ letters: two typos; a different first letter costs both.
        assert_eq!(term("metropolsi", false).matches("metropolis"), Some((1, 10)));
        assert_eq!(term("netropolis", false).matches("metropolis"), Some((2, 10)));
        assert_eq!(term("netropolsi", false).matches("metropolis"), None);
        assert_eq!(term("etropolis", false).matches("metropolis"), Some((2, 10)));
        assert_eq!(term("metropolxx", false).matches("metropolis"), Some((2, 10)));
    }

    #[test]
    fn last_word_is_a_prefix_unless_followed_by_a_separator() {
        let s = settings();
        let t = query_terms("the gen", &s);
        assert!(!t[0].prefix && t[1].prefix);
        assert!(!query_terms("the gen ", &s)[1].prefix);
        // Negated words are no terms; positions still count them.
        let t = query_terms("-blue moon", &s);
        assert_eq!((t.len(), t[0].word.as_str(), t[0].pos), (1, "moon", 1));
        assert_eq!(parse_query("x-ray -blue", &s).negative_words, ["blue"]);
    }

    #[test]
    fn global_score_matches_milli() {
        // "the" on "The General": words 1/1, typo 2/2, proximity 1/1, attributeRank 3/3,
        // wordPosition 11/11, exactness matchesStart 2/3 then exact words 2/2.
        let s = global(&[(1, 1), (2, 2), (1, 1), (3, 3), (11, 11), (2, 3), (2, 2)]);
        assert_eq!(s, 0.9949494949494949);
    }

    #[test]
    fn proximity_and_position_costs() {
        let s = settings();
        let terms = query_terms("gold rush", &s);
        let rules = rules(&s, &[], Strategy::Last);
        let sets = removal_sets(&terms, Strategy::Last, &[]);
        let q = Query { terms: &terms, rules: &rules, removal_sets: &sets, max_weight: s.max_weight(), displayed: None, proximity_by_attribute: false, memo: Default::default() };
        let near = json!({"title": "The Gold Rush"});
        let far = json!({"title": "Rush of the Gold"});
        let eval = |d: &Value| {
            let m = d.as_object().unwrap();
            evaluate(&q, m, &analyze(m, &s, None)).unwrap()
        };
        let a = eval(&near);
        let b = eval(&far);
        // "gold" then "rush" adjacent: proximity cost 0; reversed and 3 apart: 3 + 1 = 4 → cost 3.
        assert!(matches!(a.outcomes[2], Outcome::Proximity { rank: 8, max: 8 }));
        assert!(matches!(b.outcomes[2], Outcome::Proximity { rank: 5, max: 8 }));
        assert_eq!(compare(&a.outcomes, &b.outcomes), Ordering::Less);
    }

    #[test]
    fn exactness_distinguishes_exact_start_and_none() {
        let s = settings();
        let terms = query_terms("the kid", &s);
        let rules = rules(&s, &[], Strategy::Last);
        let sets = removal_sets(&terms, Strategy::Last, &[]);
        let q = Query { terms: &terms, rules: &rules, removal_sets: &sets, max_weight: s.max_weight(), displayed: None, proximity_by_attribute: false, memo: Default::default() };
        let exact = |title: &str| {
            let d = json!({ "title": title });
            let m = d.as_object().unwrap();
            let e = evaluate(&q, m, &analyze(m, &s, None)).unwrap();
            match e.outcomes.last().unwrap() {
                Outcome::Exactness { attribute, .. } => *attribute,
                _ => unreachable!(),
            }
        };
        assert_eq!(exact("The Kid"), 3);
        assert_eq!(exact("The Kid Returns"), 2);
        assert_eq!(exact("A Kid The"), 1);
    }
}

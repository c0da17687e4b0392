//! Ordering hits of different nodes by their `_rankingScoreDetails`.
//!
//! Within one index and one query every node reports the same ranking rules in the same
//! `order`, with the same maximum ranks (they depend on the query and the settings only), so
//! comparing the details rule by rule reproduces the bucket order of a single Meilisearch:
//! score rules compare `score` (higher first), sort rules compare `value` in the rule's
//! direction (numbers before strings, null last — milli's `compare_sort_values`), geo sort
//! compares `distance`. Across queries of a federated search the rules differ; there the
//! comparison follows Meilisearch's federated search ([`federated_order`]).

use std::cmp::Ordering;

use serde_json::{Map, Value};

/// One ranking rule's contribution, in a hit's `_rankingScoreDetails`.
#[derive(Debug, Clone, PartialEq)]
enum Rule {
    Score(f64),
    Sort { asc: bool, value: Value },
    Geo { asc: bool, distance: Option<f64> },
}

/// The details of a hit as `(rule name, entry)`, sorted by `order`.
fn sorted_details(hit: &Map<String, Value>) -> Option<Vec<(&str, &Map<String, Value>)>> {
    let details = hit.get("_rankingScoreDetails")?.as_object()?;
    let mut entries: Vec<(u64, &str, &Map<String, Value>)> = details
        .iter()
        .filter_map(|(k, v)| {
            let obj = v.as_object()?;
            Some((obj.get("order").and_then(Value::as_u64).unwrap_or(u64::MAX), k.as_str(), obj))
        })
        .collect();
    entries.sort_by_key(|(order, _, _)| *order);
    Some(entries.into_iter().map(|(_, k, o)| (k, o)).collect())
}

fn is_sort_rule(name: &str) -> bool {
    name.ends_with(":asc") || name.ends_with(":desc")
}

fn rule_of(name: &str, entry: &Map<String, Value>) -> Rule {
    if name.starts_with("_geoPoint(") {
        return Rule::Geo {
            asc: name.ends_with(":asc"),
            distance: entry.get("distance").and_then(Value::as_f64),
        };
    }
    if (is_sort_rule(name) || name.starts_with("<hidden-rule-")) && entry.contains_key("value") {
        return Rule::Sort {
            asc: name.ends_with(":asc"),
            value: entry.get("value").cloned().unwrap_or(Value::Null),
        };
    }
    if let Some(s) = entry.get("score").and_then(Value::as_f64) {
        return Rule::Score(s);
    }
    if entry.contains_key("similarity") {
        return Rule::Score(entry.get("similarity").and_then(Value::as_f64).unwrap_or(0.0));
    }
    // `skipped`: the rule ran out of time; milli ranks it 0.
    Rule::Score(0.0)
}

/// How good `left` is compared to `right` for a sort rule (Greater = better), as milli's
/// `compare_sort_values`, except that strings compare case-insensitively, as the sort rule of
/// a single node orders them (on normalized facet values).
pub(crate) fn compare_sort_values(asc: bool, left: &Value, right: &Value) -> Ordering {
    use Value::*;
    let order = match (left, right) {
        (Null, Null) => return Ordering::Equal,
        (Null, _) => return Ordering::Less,
        (_, Null) => return Ordering::Greater,
        (Number(_), String(_)) => return Ordering::Greater,
        (String(_), Number(_)) => return Ordering::Less,
        (Number(l), Number(r)) => l
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&r.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal),
        (String(l), String(r)) => normalize(l).cmp(&normalize(r)),
        _ => return Ordering::Equal,
    };
    if asc {
        order.reverse()
    } else {
        order
    }
}

/// Facet normalization as far as ordering goes: trimmed, lowercase.
pub(crate) fn normalize(s: &str) -> String {
    s.trim().to_lowercase()
}

fn compare_geo(asc: bool, left: Option<f64>, right: Option<f64>) -> Ordering {
    match (left, right) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(l), Some(r)) => {
            let o = l.partial_cmp(&r).unwrap_or(Ordering::Equal);
            if asc {
                o.reverse()
            } else {
                o
            }
        }
    }
}

/// Greater = `l` better.
fn compare_rule(l: &Rule, r: &Rule) -> Ordering {
    match (l, r) {
        (Rule::Score(a), Rule::Score(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
        (Rule::Sort { asc, value: a }, Rule::Sort { asc: asc2, value: b }) if asc == asc2 => {
            compare_sort_values(*asc, a, b)
        }
        (Rule::Geo { asc, distance: a }, Rule::Geo { asc: asc2, distance: b }) if asc == asc2 => {
            compare_geo(*asc, *a, *b)
        }
        _ => Ordering::Equal,
    }
}

fn ranking_score(hit: &Map<String, Value>) -> Option<f64> {
    hit.get("_rankingScore").and_then(Value::as_f64)
}

/// What a hit is ranked by, parsed once: its rules in `order`, or its `_rankingScore` when
/// the node sent no details.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RankKey {
    rules: Option<Vec<Rule>>,
    score: Option<f64>,
}

impl RankKey {
    pub(crate) fn of(hit: &Map<String, Value>) -> RankKey {
        RankKey {
            rules: sorted_details(hit).map(|d| d.into_iter().map(|(n, e)| rule_of(n, e)).collect()),
            score: ranking_score(hit),
        }
    }

    /// `Less` when `self` ranks first.
    pub(crate) fn order(&self, other: &RankKey) -> Ordering {
        match (&self.rules, &other.rules) {
            (Some(a), Some(b)) => {
                for (ra, rb) in a.iter().zip(b.iter()) {
                    let o = compare_rule(ra, rb);
                    if o != Ordering::Equal {
                        return o.reverse();
                    }
                }
                Ordering::Equal
            }
            _ => match (self.score, other.score) {
                (Some(x), Some(y)) => y.partial_cmp(&x).unwrap_or(Ordering::Equal),
                _ => Ordering::Equal,
            },
        }
    }
}

/// Order of two hits of the same query on the same index: `Less` when `a` ranks before `b`,
/// `Equal` when a single Meilisearch could put either first (equal details).
///
/// Hits without `_rankingScoreDetails` fall back to `_rankingScore`.
pub fn compare_hits(a: &Map<String, Value>, b: &Map<String, Value>) -> Ordering {
    RankKey::of(a).order(&RankKey::of(b))
}

// ---------------------------------------------------------------- federated ordering

/// milli's `Rank`: `rank` out of `max_rank`, higher better.
#[derive(Debug, Clone, Copy)]
struct Rank {
    rank: u64,
    max: u64,
}

impl Rank {
    fn merge(outer: Rank, inner: Rank) -> Rank {
        Rank {
            rank: outer.rank.saturating_sub(1).saturating_mul(inner.max).saturating_add(inner.rank),
            max: outer.max.saturating_mul(inner.max),
        }
    }
    fn score(self) -> f64 {
        if self.max == 0 {
            0.0
        } else {
            self.rank as f64 / self.max as f64
        }
    }
}

/// The closest fraction `p/q` (q ≤ 1000) to a score in [0, 1], by continued fractions: ranks
/// are small integers, but the details only show their ratio.
fn rank_from_score(score: f64) -> Rank {
    let x = score.clamp(0.0, 1.0);
    let (mut p0, mut q0, mut p1, mut q1) = (0u64, 1u64, 1u64, 0u64);
    let mut r = x;
    for _ in 0..32 {
        let a = r.floor();
        let ai = a as u64;
        let (p2, q2) = (ai.saturating_mul(p1).saturating_add(p0), ai.saturating_mul(q1).saturating_add(q0));
        if q2 > 1000 {
            break;
        }
        (p0, q0, p1, q1) = (p1, q1, p2, q2);
        let frac = r - a;
        if frac.abs() < 1e-12 || (p1 as f64 / q1 as f64 - x).abs() < 1e-12 {
            break;
        }
        r = 1.0 / frac;
    }
    if q1 == 0 {
        Rank { rank: 0, max: 1 }
    } else {
        Rank { rank: p1, max: q1 }
    }
}

/// The ranks of one score rule, as milli computed them (exact where the details carry the
/// integers, reconstructed from the score otherwise).
fn ranks_of(name: &str, entry: &Map<String, Value>) -> Vec<Rank> {
    let int = |k: &str| entry.get(k).and_then(Value::as_u64);
    match name {
        "words" => match (int("matchingWords"), int("maxMatchingWords")) {
            (Some(m), Some(max)) => vec![Rank { rank: m, max }],
            _ => vec![],
        },
        "typo" => match (int("typoCount"), int("maxTypoCount")) {
            (Some(t), Some(max)) => vec![Rank { rank: (max + 1).saturating_sub(t), max: max + 1 }],
            _ => vec![],
        },
        "exactness" => {
            let first = match entry.get("matchType").and_then(Value::as_str) {
                Some("exactMatch") => 3,
                Some("matchesStart") => 2,
                _ => 1,
            };
            let mut v = vec![Rank { rank: first, max: 3 }];
            if let (Some(m), Some(max)) = (int("matchingWords"), int("maxMatchingWords")) {
                v.push(Rank { rank: m + 1, max: max + 1 });
            }
            v
        }
        "attribute" => {
            let f = |k: &str| entry.get(k).and_then(Value::as_f64).map(rank_from_score);
            [f("attributeRankingOrderScore"), f("queryWordDistanceScore")].into_iter().flatten().collect()
        }
        "skipped" => vec![Rank { rank: 0, max: 1 }],
        _ => entry.get("score").and_then(Value::as_f64).map(rank_from_score).into_iter().collect(),
    }
}

/// milli's `WeightedScoreValue`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Weighted {
    Score(f64),
    Vector(f64),
    Sort { asc: bool, value: Value },
    Geo { asc: bool, distance: Option<f64> },
}

/// The weighted score values of a hit (consecutive score rules merged into one, as
/// `ScoreDetails::weighted_score_values` does). Exact when the score rules form one group
/// (no sort rule between them); when a sort rule splits them, a group's score is rebuilt from
/// the per-rule details, exact for `words`/`typo`/`exactness` and approximate for rules that
/// only show a score (their maximum rank is not reported).
pub(crate) fn weighted_values(hit: &Map<String, Value>, weight: f64) -> Vec<Weighted> {
    let mut out = Vec::new();
    let mut group: Option<Rank> = None;
    let flush = |group: &mut Option<Rank>, out: &mut Vec<Weighted>| {
        if let Some(r) = group.take() {
            out.push(Weighted::Score(r.score() * weight));
        }
    };
    for (name, entry) in sorted_details(hit).unwrap_or_default() {
        match rule_of(name, entry) {
            Rule::Sort { asc, value } => {
                flush(&mut group, &mut out);
                out.push(Weighted::Sort { asc, value });
            }
            Rule::Geo { asc, distance } => {
                flush(&mut group, &mut out);
                out.push(Weighted::Geo { asc, distance });
            }
            Rule::Score(s) if entry.contains_key("similarity") => {
                flush(&mut group, &mut out);
                out.push(Weighted::Vector(s * weight));
            }
            Rule::Score(_) => {
                for r in ranks_of(name, entry) {
                    group = Some(Rank::merge(group.unwrap_or(Rank { rank: 1, max: 1 }), r));
                }
            }
        }
    }
    flush(&mut group, &mut out);
    // With a single group of score rules, that group's score is the global ranking score,
    // which the node reports exactly; use it rather than the reconstruction.
    let groups = out.iter().filter(|w| matches!(w, Weighted::Score(_))).count();
    if groups == 1 {
        if let Some(global) = ranking_score(hit) {
            for w in out.iter_mut() {
                if let Weighted::Score(s) = w {
                    *s = global * weight;
                }
            }
        }
    }
    out
}

/// Meilisearch's `WeightedScoreValue::compare_partial`: `None` when the two sequences stop
/// being comparable (different kinds of rules at the same position). Greater = `l` better.
fn compare_partial(l: &[Weighted], r: &[Weighted]) -> Option<Ordering> {
    for (a, b) in l.iter().zip(r.iter()) {
        let o = match (a, b) {
            (Weighted::Score(x), Weighted::Score(y)) | (Weighted::Vector(x), Weighted::Vector(y)) => {
                x.partial_cmp(y)?
            }
            (Weighted::Sort { asc, value: x }, Weighted::Sort { asc: asc2, value: y }) if asc == asc2 => {
                compare_sort_values(*asc, x, y)
            }
            (Weighted::Geo { asc, distance: x }, Weighted::Geo { asc: asc2, distance: y }) if asc == asc2 => {
                compare_geo(*asc, *x, *y)
            }
            _ => return None,
        };
        if o != Ordering::Equal {
            return Some(o);
        }
    }
    Some(Ordering::Equal)
}

/// Order of two hits of different queries of a federated search: `Less` when `a` ranks
/// first. `a`/`b` are `(weighted values, weighted global score)`.
pub(crate) fn federated_order(a: (&[Weighted], f64), b: (&[Weighted], f64)) -> Ordering {
    compare_partial(a.0, b.0)
        .unwrap_or_else(|| a.1.partial_cmp(&b.1).unwrap_or(Ordering::Equal))
        .reverse()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hit(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn score_rules_compare_in_order() {
        let a = hit(json!({"_rankingScoreDetails": {
            "words": {"order": 0, "matchingWords": 1, "maxMatchingWords": 1, "score": 1.0},
            "attributeRank": {"order": 1, "score": 0.5}}}));
        let b = hit(json!({"_rankingScoreDetails": {
            "attributeRank": {"order": 1, "score": 1.0},
            "words": {"order": 0, "matchingWords": 0, "maxMatchingWords": 1, "score": 0.0}}}));
        assert_eq!(compare_hits(&a, &b), Ordering::Less);
        assert_eq!(compare_hits(&b, &a), Ordering::Greater);
        assert_eq!(compare_hits(&a, &a), Ordering::Equal);
    }

    #[test]
    fn sort_values_follow_milli() {
        let h = |v: Value| hit(json!({"_rankingScoreDetails": {"year:desc": {"order": 0, "value": v}}}));
        assert_eq!(compare_hits(&h(json!(1928.0)), &h(json!(1926.0))), Ordering::Less);
        // numbers before strings, null last, whatever the direction
        assert_eq!(compare_hits(&h(json!(1.0)), &h(json!("a"))), Ordering::Less);
        assert_eq!(compare_hits(&h(json!("a")), &h(json!(null))), Ordering::Less);
        let asc = |v: Value| hit(json!({"_rankingScoreDetails": {"title:asc": {"order": 0, "value": v}}}));
        assert_eq!(compare_hits(&asc(json!("apple")), &asc(json!("Banana"))), Ordering::Less);
        assert_eq!(compare_hits(&asc(json!(2)), &asc(json!("a"))), Ordering::Less);
        assert_eq!(compare_hits(&asc(json!(null)), &asc(json!("a"))), Ordering::Greater);
    }

    #[test]
    fn geo_sort_uses_distance() {
        let g = |d: Value| {
            hit(json!({"_rankingScoreDetails": {"_geoPoint(48.85, 2.35):asc": {"order": 0, "value": null, "distance": d}}}))
        };
        assert_eq!(compare_hits(&g(json!(2662.03)), &g(json!(112117.457))), Ordering::Less);
        assert_eq!(compare_hits(&g(json!(null)), &g(json!(1.0))), Ordering::Greater);
    }

    #[test]
    fn rational_reconstruction() {
        let r = rank_from_score(2.0 / 3.0);
        assert_eq!((r.rank, r.max), (2, 3));
        let r = rank_from_score(1.0);
        assert_eq!((r.rank, r.max), (1, 1));
        let r = rank_from_score(0.0);
        assert_eq!(r.rank, 0);
    }

    #[test]
    fn weighted_values_without_sort_equal_the_ranking_score() {
        // The recorded details of case "search ranking score + details": _rankingScore 0.99494...
        let h = hit(json!({"_rankingScore": 0.9949494949494949, "_rankingScoreDetails": {
            "words": {"order": 0, "matchingWords": 1, "maxMatchingWords": 1, "score": 1.0},
            "typo": {"order": 1, "typoCount": 0, "maxTypoCount": 1, "score": 1.0},
            "proximity": {"order": 2, "score": 1.0},
            "attributeRank": {"order": 3, "score": 1.0},
            "wordPosition": {"order": 4, "score": 1.0},
            "exactness": {"order": 5, "matchType": "matchesStart", "score": 0.6666666666666666}}}));
        let w = weighted_values(&h, 1.0);
        assert_eq!(w.len(), 1);
        let Weighted::Score(s) = w[0] else { panic!("{w:?}") };
        assert_eq!(s, 0.9949494949494949);
        let w = weighted_values(&h, 0.5);
        assert_eq!(w, vec![Weighted::Score(0.9949494949494949 * 0.5)]);
    }

    #[test]
    fn federated_falls_back_to_global_score_when_incomparable() {
        let a = vec![Weighted::Sort { asc: true, value: json!(1) }];
        let b = vec![Weighted::Score(0.5)];
        assert_eq!(federated_order((&a, 0.9), (&b, 0.5)), Ordering::Less);
        assert_eq!(federated_order((&a, 0.1), (&b, 0.5)), Ordering::Greater);
        let c = vec![Weighted::Score(0.7)];
        assert_eq!(federated_order((&c, 0.0), (&b, 1.0)), Ordering::Less);
    }
}

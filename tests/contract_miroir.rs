//! The recorded Meilisearch contract replayed against Miroir in front of test nodes (or real
//! Meilisearch nodes with `MEILI_BIN`): Miroir must answer like one Meilisearch, except for what
//! sharding cannot reproduce (order of tied hits, internal order of document listings; see
//! `contract::Mode::Sharded`). The unit tests below keep that tie-aware comparison honest.

mod common;
#[path = "common/contract.rs"]
mod contract;

use common::{Cluster, Spec, MASTER_KEY};
use contract::{compare_hits, compare_listing_results, page_cut, Cut, DocRegistry, Mode};
use serde_json::{json, Value};

async fn replay_against(spec: Spec) {
    let cluster = Cluster::start(spec).await;
    let mismatches = contract::replay_with(&cluster.url(), MASTER_KEY, Mode::Sharded).await;
    if !mismatches.is_empty() {
        let report: Vec<String> = mismatches.iter().map(ToString::to_string).collect();
        panic!("{} mismatches with the recorded contract:\n{}", report.len(), report.join("\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miroir_rf1_three_nodes_matches_the_recorded_contract() {
    replay_against(Spec::rf1_3_nodes()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miroir_rg2_rf2_four_nodes_matches_the_recorded_contract() {
    replay_against(Spec::rg2_rf2_4_nodes()).await;
}

// --- the tie-aware comparison itself ---

fn doc(id: u64) -> Value {
    json!({"id": id, "title": format!("t{id}"), "year": 1900 + id})
}

fn details(score: f64) -> Value {
    json!({"words": {"order": 0, "matchingWords": 1, "maxMatchingWords": 1, "score": score}})
}

/// Tie keys as the replayer builds them from hits with details.
fn keys(scores: &[f64]) -> Vec<Option<Value>> {
    scores.iter().map(|s| contract::tie_key(&json!({"_rankingScoreDetails": details(*s)}))).collect()
}

fn registry_of(docs: &[Value]) -> DocRegistry {
    let mut r = DocRegistry::default();
    for d in docs {
        r.observe("movies", 0, d);
    }
    r
}

fn check(expected: &[Value], actual: &[Value], keys: &[Option<Value>], cut: Cut, registry: &DocRegistry) -> Vec<String> {
    let mut out = Vec::new();
    compare_hits("body.hits", expected, actual, keys, cut, registry, &|_| Some(("movies".to_string(), 1)), &mut out);
    out
}

#[test]
fn a_tie_group_permuted_passes() {
    let r = DocRegistry::default();
    let expected = [doc(1), doc(2), doc(3), doc(4)];
    let actual = [doc(2), doc(1), doc(3), doc(4)];
    assert_eq!(check(&expected, &actual, &keys(&[1.0, 1.0, 0.5, 0.2]), Cut::default(), &r), Vec::<String>::new());
    // the identical order passes too, and so does a permutation inside the second group
    let actual = [doc(1), doc(2), doc(4), doc(3)];
    assert_eq!(check(&expected, &actual, &keys(&[1.0, 1.0, 0.5, 0.5]), Cut::default(), &r), Vec::<String>::new());
}

#[test]
fn a_permutation_across_tie_groups_fails() {
    let r = DocRegistry::default();
    let expected = [doc(1), doc(2), doc(3)];
    // 1 and 2 tie, 3 ranks lower: 3 may not move up
    let out = check(&expected, &[doc(1), doc(3), doc(2)], &keys(&[1.0, 0.5, 1.0]), Cut::default(), &r);
    assert!(!out.is_empty());
    let out = check(&expected, &[doc(3), doc(1), doc(2)], &keys(&[0.5, 1.0, 1.0]), Cut::default(), &r);
    assert!(!out.is_empty());
    // two groups of equal size swapped wholesale
    let out = check(&[doc(1), doc(2), doc(3), doc(4)], &[doc(3), doc(4), doc(1), doc(2)], &keys(&[1.0, 1.0, 0.5, 0.5]), Cut::default(), &r);
    assert!(out.iter().any(|d| d.contains("tie group")), "{out:?}");
}

#[test]
fn a_changed_field_fails_even_inside_a_tie_group() {
    let r = DocRegistry::default();
    let mut changed = doc(1);
    changed["year"] = json!(1999);
    let out = check(&[doc(1), doc(2)], &[doc(2), changed], &keys(&[1.0, 1.0]), Cut::default(), &r);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].contains("body.hits[1].year"), "{out:?}");
    // field order counts as well
    let reordered = json!({"title": "t1", "id": 1, "year": 1901});
    assert_eq!(check(&[doc(1)], &[reordered], &keys(&[1.0]), Cut::default(), &r).len(), 1);
}

#[test]
fn hits_without_details_tie_with_nothing() {
    let r = DocRegistry::default();
    let out = check(&[doc(1), doc(2)], &[doc(2), doc(1)], &[None, None], Cut::default(), &r);
    assert!(!out.is_empty());
    // a ranking score alone differing splits a group
    let k = |s: f64| contract::tie_key(&json!({"_rankingScore": s, "_rankingScoreDetails": details(1.0)}));
    let out = check(&[doc(1), doc(2)], &[doc(2), doc(1)], &[k(0.9), k(0.8)], Cut::default(), &r);
    assert!(!out.is_empty());
}

#[test]
fn a_group_cut_by_the_page_may_hold_other_members_of_the_tie_but_only_real_ones() {
    // recorded page [1, 2] of the tie {1, 2, 3}; the sharded page holds [3, 1]
    let r = registry_of(&[doc(1), doc(2), doc(3)]);
    let end = Cut { start: false, end: true };
    assert_eq!(check(&[doc(1), doc(2)], &[doc(3), doc(1)], &keys(&[1.0, 1.0]), end, &r), Vec::<String>::new());
    // not cut: the same answer is a different set
    assert!(!check(&[doc(1), doc(2)], &[doc(3), doc(1)], &keys(&[1.0, 1.0]), Cut::default(), &r).is_empty());
    // the outside member must have its recorded values
    let mut wrong = doc(3);
    wrong["title"] = json!("nope");
    let out = check(&[doc(1), doc(2)], &[wrong, doc(1)], &keys(&[1.0, 1.0]), end, &r);
    assert_eq!(out.len(), 1, "{out:?}");
    // a document the recording never shows is not a real one
    let out = check(&[doc(1), doc(2)], &[doc(9), doc(1)], &keys(&[1.0, 1.0]), end, &registry_of(&[doc(1), doc(2)]));
    assert_eq!(out.len(), 1, "{out:?}");
    // nor may a hit appear twice
    let out = check(&[doc(1), doc(2)], &[doc(1), doc(1)], &keys(&[1.0, 1.0]), end, &r);
    assert!(out.iter().any(|d| d.contains("twice")), "{out:?}");
    // the cut only frees the group touching the cut: an earlier group stays exact
    let out = check(&[doc(4), doc(1), doc(2)], &[doc(1), doc(4), doc(2)], &keys(&[0.9, 1.0, 1.0]), end, &registry_of(&[doc(1), doc(2), doc(4)]));
    assert!(!out.is_empty());
    // a hit recorded outside its group is out of place even in a cut group
    let start = Cut { start: true, end: false };
    let out = check(&[doc(1), doc(2), doc(3)], &[doc(3), doc(2), doc(1)], &keys(&[1.0, 0.5, 0.2]), start, &r);
    assert!(out.iter().any(|d| d.contains("outside its tie group")), "{out:?}");
}

#[test]
fn page_cuts_follow_offset_limit_page_mode_and_max_total_hits() {
    assert_eq!(page_cut(&json!({"offset": 0, "limit": 20}), 3, Some(1000)), Cut { start: false, end: false });
    assert_eq!(page_cut(&json!({"offset": 0, "limit": 3}), 3, Some(1000)), Cut { start: false, end: true });
    assert_eq!(page_cut(&json!({"offset": 10, "limit": 5}), 2, Some(1000)), Cut { start: true, end: false });
    assert_eq!(page_cut(&json!({"offset": 0, "limit": 20}), 5, Some(5)), Cut { start: false, end: true });
    assert_eq!(page_cut(&json!({"hitsPerPage": 5, "page": 2, "totalHits": 12}), 5, Some(1000)), Cut { start: true, end: true });
    assert_eq!(page_cut(&json!({"hitsPerPage": 5, "page": 1}), 4, None), Cut { start: false, end: false });
}

#[test]
fn document_listings_must_hold_real_documents_with_the_requested_fields() {
    let r = registry_of(&[doc(1), doc(2), doc(3), doc(4)]);
    let page = json!({"offset": 1, "limit": 2, "total": 4});
    let listing = |expected: &[Value], actual: &[Value], page: &Value| {
        let mut out = Vec::new();
        compare_listing_results("body.results", expected, actual, page, &r, "movies", 1, &mut out);
        out
    };
    let ty = |d: Value| json!({"id": d["id"], "title": d["title"]});
    // another slice of the same index: fine
    assert_eq!(listing(&[ty(doc(2)), ty(doc(3))], &[ty(doc(4)), ty(doc(1))], &page), Vec::<String>::new());
    // a wrong value, missing field, unknown document or a duplicate: not fine
    assert_eq!(listing(&[ty(doc(2)), ty(doc(3))], &[json!({"id": 4, "title": "x"}), ty(doc(1))], &page).len(), 1);
    assert_eq!(listing(&[ty(doc(2)), ty(doc(3))], &[json!({"id": 4}), ty(doc(1))], &page).len(), 1);
    assert_eq!(listing(&[ty(doc(2)), ty(doc(3))], &[ty(doc(7)), ty(doc(1))], &page).len(), 1);
    assert!(!listing(&[ty(doc(2)), ty(doc(3))], &[ty(doc(1)), ty(doc(1))], &page).is_empty());
    assert!(!listing(&[ty(doc(2)), ty(doc(3))], &[ty(doc(1))], &page).is_empty());
    // when the whole result fits on the page, it is the recorded set
    let whole = json!({"offset": 0, "limit": 5, "total": 2});
    assert_eq!(listing(&[ty(doc(2)), ty(doc(3))], &[ty(doc(3)), ty(doc(2))], &whole), Vec::<String>::new());
    assert!(!listing(&[ty(doc(2)), ty(doc(3))], &[ty(doc(3)), ty(doc(1))], &whole).is_empty());
}

#[test]
fn a_hit_no_reissue_shows_borrows_a_key_only_inside_a_cut_tie_group() {
    use std::collections::HashMap;
    let a = contract::tie_key(&json!({"_rankingScoreDetails": details(1.0)}));
    let b = contract::tie_key(&json!({"_rankingScoreDetails": details(0.5)}));
    let hits = [doc(1), doc(2), doc(3)];
    let known: HashMap<String, Option<Value>> = [(contract::identity(&doc(1)), a.clone()), (contract::identity(&doc(2)), a.clone())].into();
    let end = Cut { start: false, end: true };
    // the re-issued page ends with a tie group of `a`: doc 3 at its end belongs to it
    assert_eq!(contract::key_in_cut_group(&hits, &known, &[a.clone(), a.clone(), a.clone()], 2, end), a.clone());
    // not when the page is not cut there
    assert_eq!(contract::key_in_cut_group(&hits, &known, &[a.clone(), a.clone(), a.clone()], 2, Cut::default()), None);
    // not when its position is not in the cut group
    assert_eq!(contract::key_in_cut_group(&hits, &known, &[a.clone(), a.clone(), b.clone()], 1, end), None);
    // not when the known hits rank otherwise in the re-issued answer
    let known_b: HashMap<String, Option<Value>> = [(contract::identity(&doc(1)), b.clone())].into();
    assert_eq!(contract::key_in_cut_group(&hits, &known_b, &[a.clone(), a.clone(), a.clone()], 2, end), None);
}

#[test]
fn wide_reissues_ask_for_the_whole_result_instead_of_the_page() {
    assert_eq!(contract::widen_path("/indexes/movies/search?q=comedy&limit=2&page=3", 1000), "/indexes/movies/search?q=comedy&offset=0&limit=1000");
    assert_eq!(contract::widen_path("/indexes/movies/search", 5), "/indexes/movies/search?offset=0&limit=5");
    let mut q = json!({"q": "", "page": 2, "hitsPerPage": 5, "showRankingScoreDetails": true});
    contract::widen(&mut q, 12);
    assert_eq!(q, json!({"q": "", "showRankingScoreDetails": true, "offset": 0, "limit": 12}));
}

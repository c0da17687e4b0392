//! The read path's cache of index contexts (primary key, settings; see
//! `src/dataplane/context_cache.rs`): a repeated search asks no node for them, and a change
//! made through Miroir — through this process or another one sharing a Redis store — is used
//! by the next search once its task has ended.

mod common;
#[path = "common/store_fixtures.rs"]
mod store_fixtures;

use common::recorder::Recorder;
use common::{test_options, Cluster, Http, Spec};
use miroir::dataplane::ProxyOptions;
use serde_json::{json, Value};
use store_fixtures::{redis_url, RedisCleanup};

/// Options whose cache never expires by age, so only invalidation can refresh it.
fn long_ttl() -> ProxyOptions {
    let mut o = test_options();
    o.scatter.index_context_ttl_ms = 3_600_000;
    o
}

async fn accepted(http: &Http, method: reqwest::Method, path: &str, body: &Value) -> u64 {
    let (s, _, b) = http.send_json(method, path, body).await;
    assert_eq!(s, 202, "{path}: {b}");
    b["taskUid"].as_u64().unwrap()
}

async fn done(http: &Http, uid: u64) {
    let t = http.wait_task(uid).await;
    assert_eq!(t["status"], "succeeded", "{t}");
}

/// An index `movies` with three genres, `genre` filterable.
async fn movies(http: &Http) {
    let docs = json!([{"id": 1, "genre": "a", "year": 3}, {"id": 2, "genre": "b", "year": 1}, {"id": 3, "genre": "c", "year": 2}]);
    done(http, accepted(http, reqwest::Method::POST, "/indexes/movies/documents", &docs).await).await;
    let f = json!({"filterableAttributes": ["genre"]});
    done(http, accepted(http, reqwest::Method::PATCH, "/indexes/movies/settings", &f).await).await;
}

async fn genres(http: &Http) -> usize {
    let (s, b) = http.post("/indexes/movies/search", &json!({"q": "", "facets": ["genre"]})).await;
    assert_eq!(s, 200, "{b}");
    b["facetDistribution"]["genre"].as_object().map_or(0, |m| m.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_changes_reach_the_next_search() {
    let cluster = Cluster::start_with(Spec::rf1_3_nodes(), long_ttl()).await;
    let http = cluster.http();
    movies(&http).await;
    assert_eq!(genres(&http).await, 3);
    assert!(cluster.proxy.cached_index_context("movies").is_some(), "the context is cached");

    // faceting.maxValuesPerFacet (Miroir's overlay and the nodes).
    let f = json!({"maxValuesPerFacet": 1});
    done(&http, accepted(&http, reqwest::Method::PATCH, "/indexes/movies/settings/faceting", &f).await).await;
    assert_eq!(genres(&http).await, 1);

    // sortableAttributes and rankingRules, through the whole settings route.
    let s = json!({"sortableAttributes": ["year"], "rankingRules": ["sort", "words", "typo", "proximity", "attribute", "exactness"]});
    done(&http, accepted(&http, reqwest::Method::PATCH, "/indexes/movies/settings", &s).await).await;
    let (st, b) = http.post("/indexes/movies/search", &json!({"q": "", "sort": ["year:asc"]})).await;
    assert_eq!(st, 200, "{b}");
    let ids: Vec<u64> = b["hits"].as_array().unwrap().iter().map(|h| h["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, vec![2, 3, 1]);
    let ctx = cluster.proxy.cached_index_context("movies").expect("cached again");
    assert_eq!(ctx.ranking_rules.first().map(String::as_str), Some("sort"), "{ctx:?}");

    // A reset goes back to the default limit.
    let (st, _, b) = http.request(reqwest::Method::DELETE, "/indexes/movies/settings/faceting", None, None).await;
    assert_eq!(st, 202, "{b}");
    done(&http, b["taskUid"].as_u64().unwrap()).await;
    assert_eq!(genres(&http).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inferred_primary_key_reaches_the_cache() {
    let cluster = Cluster::start_with(Spec::rf1_3_nodes(), long_ttl()).await;
    let http = cluster.http();
    done(&http, accepted(&http, reqwest::Method::POST, "/indexes", &json!({"uid": "movies"})).await).await;
    let (s, b) = http.post("/indexes/movies/search", &json!({"q": ""})).await;
    assert_eq!(s, 200, "{b}");
    let ctx = cluster.proxy.cached_index_context("movies").expect("cached");
    assert_eq!(ctx.primary_key, None);

    let docs = json!([{"movie_id": 1, "genre": "a"}]);
    done(&http, accepted(&http, reqwest::Method::POST, "/indexes/movies/documents", &docs).await).await;
    let (s, b) = http.post("/indexes/movies/search", &json!({"q": ""})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["hits"].as_array().unwrap().len(), 1);
    let ctx = cluster.proxy.cached_index_context("movies").expect("cached");
    assert_eq!(ctx.primary_key.as_deref(), Some("movie_id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_search_asks_no_node_for_the_index_or_its_settings() {
    let cluster = Cluster::start_addressed(Spec::rf1_3_nodes(), long_ttl(), |n| {
        let url = n.url.clone();
        async move { Recorder::start(&url).await.url }
    })
    .await;
    let recorders: Vec<Recorder> = cluster.topology.nodes.iter().map(|n| Recorder::registered(&n.address)).collect();
    let http = cluster.http();
    movies(&http).await;
    assert_eq!(genres(&http).await, 3);
    let (s, b) = http.post("/indexes/movies/facet-search", &json!({"facetName": "genre", "facetQuery": ""})).await;
    assert_eq!(s, 200, "{b}");
    for r in &recorders {
        r.take();
    }
    for _ in 0..3 {
        assert_eq!(genres(&http).await, 3);
        let (s, b) = http.post("/multi-search", &json!({"queries": [{"indexUid": "movies", "q": ""}]})).await;
        assert_eq!(s, 200, "{b}");
        let (s, b) = http.post("/indexes/movies/facet-search", &json!({"facetName": "genre", "facetQuery": ""})).await;
        assert_eq!(s, 200, "{b}");
    }
    let mut searches = 0;
    for r in &recorders {
        for (method, path) in r.take() {
            let path = path.split('?').next().unwrap().to_string();
            assert!(
                !(method == "GET" && (path == "/indexes/movies" || path == "/indexes/movies/settings")),
                "a cached context was read again: {method} {path}"
            );
            searches += usize::from(path.ends_with("/search"));
        }
    }
    assert!(searches >= 6, "the searches reached the nodes ({searches})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_process_reaches_searches_through_another() {
    let cluster = Cluster::start(Spec::rf1_3_nodes()).await;
    let cleanup = RedisCleanup::new(store_fixtures::fresh_prefix());
    let (_a_handle, a) = cluster.miroir_on_redis_with(&redis_url(), &cleanup.prefix, long_ttl()).await;
    let (b_handle, b) = cluster.miroir_on_redis_with(&redis_url(), &cleanup.prefix, long_ttl()).await;
    movies(&a).await;
    // B caches the context (once its subscription to the store's changes is up).
    let mut cached = false;
    for _ in 0..100 {
        assert_eq!(genres(&b).await, 3);
        if b_handle.proxy().cached_index_context("movies").is_some() {
            cached = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(cached, "B never cached the context");
    assert_eq!(genres(&b).await, 3);

    // Changed through A and waited for through A: B hears of it through the store alone.
    let f = json!({"maxValuesPerFacet": 1});
    done(&a, accepted(&a, reqwest::Method::PATCH, "/indexes/movies/settings/faceting", &f).await).await;
    assert_eq!(genres(&b).await, 1);
    assert_eq!(genres(&b).await, 1);

    let s = json!({"faceting": {"maxValuesPerFacet": 2}});
    done(&a, accepted(&a, reqwest::Method::PATCH, "/indexes/movies/settings", &s).await).await;
    assert_eq!(genres(&b).await, 2);
}

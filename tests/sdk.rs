//! The official Rust SDK (`meilisearch-sdk`) through Miroir, call for call against one plain
//! node: the same script of SDK calls runs against a single node and against Miroir over
//! three nodes; every HTTP exchange the SDK makes is recorded (through a recording
//! `HttpClient`) and the two recordings must agree — same calls, same outcome (success or the
//! same error code), the same JSON modulo volatile values (dates, durations, sizes, key
//! secrets) and modulo the order of tied hits. Each SDK call must also succeed or fail the
//! same way at the SDK level (a shape the SDK cannot parse shows up as a parse error).
//!
//! `docs/compatibility.md` lists which SDK methods (and so which routes) this covers.

mod common;
#[path = "common/contract.rs"]
#[allow(dead_code)]
mod contract;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{Cluster, Node, Spec, MASTER_KEY, NODE_KEY};
use meilisearch_sdk::client::Client;
use meilisearch_sdk::documents::{DocumentDeletionQuery, DocumentQuery, DocumentsQuery};
use meilisearch_sdk::errors::Error;
use meilisearch_sdk::indexes::{Index, IndexesQuery};
use meilisearch_sdk::key::{Action, KeyBuilder, KeyUpdater, KeysQuery};
use meilisearch_sdk::request::{HttpClient, Method};
use meilisearch_sdk::reqwest::ReqwestClient;
use meilisearch_sdk::search::{MatchingStrategies, SearchQuery, Selectors};
use meilisearch_sdk::settings::{FacetingSettings, PaginationSetting, Settings, TypoToleranceSettings};
use meilisearch_sdk::task_info::TaskInfo;
use meilisearch_sdk::tasks::{TasksCancelQuery, TasksDeleteQuery, TasksSearchQuery};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

// ---------------------------------------------------------------- the recording client

#[derive(Default)]
struct Log {
    /// While set, exchanges are not recorded (task polling: its count depends on timing).
    paused: bool,
    step: String,
    exchanges: Vec<Exchange>,
}

#[derive(Debug, Clone)]
struct Exchange {
    step: String,
    call: String,
    outcome: Value,
}

#[derive(Clone)]
struct Rec {
    inner: ReqwestClient,
    host: String,
    log: Arc<Mutex<Log>>,
}

fn verb<Q, B>(m: &Method<Q, B>) -> &'static str {
    match m {
        Method::Get { .. } => "GET",
        Method::Post { .. } => "POST",
        Method::Patch { .. } => "PATCH",
        Method::Put { .. } => "PUT",
        Method::Delete { .. } => "DELETE",
    }
}

fn error_outcome(e: &Error) -> Value {
    match e {
        Error::Meilisearch(m) => json!({"error": {"message": m.error_message, "code": m.error_code.to_string(), "type": format!("{:?}", m.error_type), "link": m.error_link}}),
        Error::MeilisearchCommunication(c) => json!({"communicationError": c.status_code}),
        other => json!({"sdkError": other.to_string()}),
    }
}

#[async_trait]
impl HttpClient for Rec {
    async fn stream_request<Q: Serialize + Send + Sync, B: futures::io::AsyncRead + Send + Sync + 'static, O: serde::de::DeserializeOwned + 'static>(
        &self,
        url: &str,
        method: Method<Q, B>,
        content_type: &str,
        expected_status_code: u16,
    ) -> Result<O, Error> {
        let call = format!("{} {}", verb(&method), url.strip_prefix(&self.host).unwrap_or(url));
        let r: Result<Value, Error> = self.inner.stream_request(url, method, content_type, expected_status_code).await;
        {
            let mut log = self.log.lock().unwrap();
            if !log.paused {
                let outcome = match &r {
                    Ok(v) => json!({"ok": v}),
                    Err(e) => error_outcome(e),
                };
                let step = log.step.clone();
                log.exchanges.push(Exchange { step, call, outcome });
            }
        }
        r.and_then(|v| serde_json::from_value(v).map_err(Error::ParseError))
    }

    fn is_tokio(&self) -> bool {
        true
    }
}

/// One target of the script: a client and what it recorded.
struct Target {
    client: Client<Rec>,
    log: Arc<Mutex<Log>>,
    /// Outcome of each step at the SDK level: `ok`, or the error.
    steps: Vec<(String, Value)>,
}

impl Target {
    fn new(url: &str, key: &str) -> Target {
        let log = Arc::new(Mutex::new(Log::default()));
        let rec = Rec { inner: ReqwestClient::new(Some(key)).unwrap(), host: url.to_string(), log: log.clone() };
        Target { client: Client::new_with_client(url, Some(key), rec), log, steps: Vec::new() }
    }

    fn begin(&self, step: &str) {
        self.log.lock().unwrap().step = step.to_string();
    }

    fn done<T>(&mut self, step: &str, r: &Result<T, Error>) {
        let v = match r {
            Ok(_) => json!("ok"),
            Err(e) => error_outcome(e),
        };
        self.steps.push((step.to_string(), v));
    }

    /// Waits for a task without recording the polling, then records one `GET /tasks/{uid}`.
    async fn settle(&mut self, step: &str, info: Result<TaskInfo, Error>) {
        self.done(step, &info);
        let Ok(info) = info else { return };
        self.log.lock().unwrap().paused = true;
        let waited = self.client.wait_for_task(&info, Some(Duration::from_millis(20)), Some(Duration::from_secs(60))).await;
        self.log.lock().unwrap().paused = false;
        if let Err(e) = waited {
            self.steps.push((format!("{step} (wait)"), error_outcome(&e)));
            return;
        }
        self.begin(&format!("{step} (task)"));
        let t = self.client.get_task(Uid(info.task_uid)).await;
        self.done(&format!("{step} (task)"), &t);
    }
}

macro_rules! call {
    ($t:expr, $name:expr, $e:expr) => {{
        $t.begin($name);
        let r = $e.await;
        $t.done($name, &r);
        r
    }};
}

macro_rules! write {
    ($t:expr, $name:expr, $e:expr) => {{
        $t.begin($name);
        let r = $e.await;
        $t.settle($name, r).await;
    }};
}

/// A task uid as the SDK's `get_task` takes it.
struct Uid(u32);

impl AsRef<u32> for Uid {
    fn as_ref(&self) -> &u32 {
        &self.0
    }
}

// ---------------------------------------------------------------- the data

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Movie {
    id: u32,
    title: String,
    overview: String,
    genres: Vec<String>,
    year: u32,
    rating: f64,
}

const WORDS: [&str; 24] = [
    "space", "journey", "love", "war", "robot", "ocean", "city", "night", "dream", "ghost", "king", "river", "storm", "secret", "garden",
    "machine", "winter", "island", "shadow", "fire", "mountain", "train", "letter", "mirror",
];
const GENRES: [&str; 5] = ["drama", "comedy", "action", "horror", "documentary"];

fn movies(from: u32, n: u32) -> Vec<Movie> {
    (from..from + n)
        .map(|i| {
            let w = |k: u32| WORDS[((i * 7 + k * 11 + i / 3) % WORDS.len() as u32) as usize];
            Movie {
                id: i,
                title: format!("The {} {}", w(1), w(2)),
                overview: format!("A {} about {} and {} in the {} {}", w(3), w(4), w(5), w(6), i),
                genres: vec![GENRES[(i % 5) as usize].to_string(), GENRES[((i / 5) % 5) as usize].to_string()],
                year: 1950 + (i * 13) % 70,
                rating: ((i * 37) % 100) as f64 / 10.0,
            }
        })
        .collect()
}

// ---------------------------------------------------------------- the script

#[allow(unused_must_use)]
async fn script(t: &mut Target, own: bool) {
    let c = t.client.clone();
    call!(t, "health", c.health());
    call!(t, "is_healthy", async { Ok::<bool, Error>(c.is_healthy().await) });
    call!(t, "get_version", c.get_version());

    // Indexes.
    write!(t, "create_index", c.create_index("movies", Some("id")));
    write!(t, "create_index (exists)", c.create_index("movies", Some("id")));
    write!(t, "create_index (no key)", c.create_index("books", None));
    write!(t, "create_index (invalid uid)", c.create_index("bad uid!", None));
    call!(t, "get_index", c.get_index("movies"));
    call!(t, "get_index (missing)", c.get_index("nope"));
    call!(t, "get_raw_index", c.get_raw_index("movies"));
    call!(t, "list_all_indexes", c.list_all_indexes());
    call!(t, "list_all_indexes_raw", c.list_all_indexes_raw());
    call!(t, "get_indexes_with", c.get_indexes_with(IndexesQuery::new(&c).with_offset(1).with_limit(1)));
    call!(t, "IndexesQuery::execute", IndexesQuery::new(&c).with_limit(5).execute());
    let movies_index = c.index("movies");
    let mut books = c.index("books");
    // Batches: asked while every task has been its own batch on the node too (the script
    // waits for each task; a node may batch tasks enqueued together later on).
    // (Batches, keys and webhooks are Miroir's own: the in-repo test node has none of them.)
    if own {
        call!(t, "own: get_batch", c.get_batch(0));
        call!(t, "own: get_batch (missing)", c.get_batch(999_999));
        call!(t, "own: get_batches_with", c.get_batches_with(&meilisearch_sdk::batches::BatchesQuery::new(&c).with_limit(2).with_from(2)));
    }

    // Documents.
    write!(t, "add_documents", movies_index.add_documents(&movies(0, 60), None));
    write!(t, "add_or_replace", movies_index.add_or_replace(&movies(60, 20), Some("id")));
    write!(t, "add_or_update", movies_index.add_or_update(&[json!({"id": 3, "rating": 9.9})], None));
    let nd = movies(80, 10).iter().map(|m| serde_json::to_string(m).unwrap()).collect::<Vec<_>>().join("\n");
    write!(t, "add_documents_ndjson", movies_index.add_documents_ndjson(futures::io::Cursor::new(nd.into_bytes()), None));
    let nd = json!({"id": 81, "year": 2001}).to_string();
    write!(t, "update_documents_ndjson", movies_index.update_documents_ndjson(futures::io::Cursor::new(nd.into_bytes()), None));
    let csv = "id,title,overview,year\n90,The csv one,A csv about rivers,1990\n91,The csv two,A csv about garden,1991\n";
    write!(t, "add_documents_csv", movies_index.add_documents_csv(futures::io::Cursor::new(csv.as_bytes().to_vec()), None));
    let csv = "id,year\n91,1999\n";
    write!(t, "update_documents_csv", movies_index.update_documents_csv(futures::io::Cursor::new(csv.as_bytes().to_vec()), None));
    t.begin("add_documents_in_batches");
    let r = movies_index.add_documents_in_batches(&movies(100, 30), Some(10), None).await;
    t.done("add_documents_in_batches", &r);
    if let Ok(infos) = r {
        for (i, info) in infos.into_iter().enumerate() {
            t.settle(&format!("add_documents_in_batches #{i}"), Ok(info)).await;
        }
    }
    t.begin("update_documents_in_batches");
    let r = movies_index.update_documents_in_batches(&[json!({"id": 100, "year": 1900}), json!({"id": 101, "year": 1901})], Some(1), None).await;
    t.done("update_documents_in_batches", &r);
    if let Ok(infos) = r {
        for (i, info) in infos.into_iter().enumerate() {
            t.settle(&format!("update_documents_in_batches #{i}"), Ok(info)).await;
        }
    }
    write!(t, "add_documents (books, inferred key)", books.add_documents(&[json!({"isbn": "a1", "name": "One"}), json!({"isbn": "b2", "name": "Two"})], None));
    call!(t, "get_document", movies_index.get_document::<Value>("3"));
    call!(t, "get_document (missing)", movies_index.get_document::<Value>("99999"));
    call!(t, "get_document_with", movies_index.get_document_with::<Value>("4", DocumentQuery::new(&movies_index).with_fields(["title", "year"])));
    call!(t, "get_documents", movies_index.get_documents::<Value>());
    call!(t, "get_documents_with (all)", movies_index.get_documents_with::<Value>(DocumentsQuery::new(&movies_index).with_limit(1000)));
    call!(t, "get_documents_with (fields)", movies_index.get_documents_with::<Value>(DocumentsQuery::new(&movies_index).with_limit(1000).with_fields(["id", "year"])));
    call!(t, "get_documents_with (ids)", movies_index.get_documents_with::<Value>(DocumentsQuery::new(&movies_index).with_ids(["1", "2", "77", "12345"])));
    call!(t, "get_documents_with (filter, not filterable)", movies_index.get_documents_with::<Value>(DocumentsQuery::new(&movies_index).with_filter("year > 2000")));

    // Settings: the whole object, then every setting on its own.
    let settings = Settings::new()
        .with_filterable_attributes(["year", "genres", "rating"])
        .with_sortable_attributes(["id", "year", "rating", "title"])
        .with_searchable_attributes(["title", "overview"])
        .with_synonyms(std::collections::HashMap::from([("robot".to_string(), vec!["machine".to_string()])]));
    write!(t, "set_settings", movies_index.set_settings(&settings));
    call!(t, "get_settings", movies_index.get_settings());
    call!(t, "get_documents_with (filter)", movies_index.get_documents_with::<Value>(DocumentsQuery::new(&movies_index).with_limit(1000).with_filter("year > 2000")));
    call!(t, "get_synonyms", movies_index.get_synonyms());
    write!(t, "set_synonyms", movies_index.set_synonyms(&std::collections::HashMap::from([("love".to_string(), vec!["romance".to_string()])])));
    write!(t, "reset_synonyms", movies_index.reset_synonyms());
    call!(t, "get_pagination", movies_index.get_pagination());
    write!(t, "set_pagination", movies_index.set_pagination(PaginationSetting { max_total_hits: 500 }));
    write!(t, "reset_pagination", movies_index.reset_pagination());
    call!(t, "get_stop_words", movies_index.get_stop_words());
    write!(t, "set_stop_words", movies_index.set_stop_words(["the", "a"]));
    write!(t, "reset_stop_words", movies_index.reset_stop_words());
    call!(t, "get_ranking_rules", movies_index.get_ranking_rules());
    write!(t, "set_ranking_rules", movies_index.set_ranking_rules(["words", "typo", "proximity", "attribute", "sort", "exactness", "rating:desc"]));
    write!(t, "reset_ranking_rules", movies_index.reset_ranking_rules());
    call!(t, "get_filterable_attributes", movies_index.get_filterable_attributes());
    call!(t, "get_filterable_attributes_advanced", movies_index.get_filterable_attributes_advanced());
    write!(t, "set_filterable_attributes", movies_index.set_filterable_attributes(["year", "genres", "rating"]));
    call!(t, "get_sortable_attributes", movies_index.get_sortable_attributes());
    write!(t, "set_sortable_attributes", movies_index.set_sortable_attributes(["id", "year", "rating", "title"]));
    call!(t, "get_distinct_attribute", movies_index.get_distinct_attribute());
    write!(t, "set_distinct_attribute", movies_index.set_distinct_attribute("year"));
    write!(t, "reset_distinct_attribute", movies_index.reset_distinct_attribute());
    call!(t, "get_searchable_attributes", movies_index.get_searchable_attributes());
    call!(t, "get_displayed_attributes", movies_index.get_displayed_attributes());
    write!(t, "set_displayed_attributes", movies_index.set_displayed_attributes(["id", "title", "overview", "genres", "year", "rating"]));
    write!(t, "reset_displayed_attributes", movies_index.reset_displayed_attributes());
    call!(t, "get_faceting", movies_index.get_faceting());
    write!(t, "set_faceting", movies_index.set_faceting(&FacetingSettings { max_values_per_facet: 50, sort_facet_values_by: None }));
    write!(t, "reset_faceting", movies_index.reset_faceting());
    call!(t, "get_dictionary", movies_index.get_dictionary());
    write!(t, "set_dictionary", movies_index.set_dictionary(["J. R. R."]));
    write!(t, "reset_dictionary", movies_index.reset_dictionary());
    call!(t, "get_proximity_precision", movies_index.get_proximity_precision());
    write!(t, "set_proximity_precision", movies_index.set_proximity_precision("byAttribute".to_string()));
    write!(t, "reset_proximity_precision", movies_index.reset_proximity_precision());
    call!(t, "get_facet_search", movies_index.get_facet_search());
    write!(t, "set_facet_search", movies_index.set_facet_search(true));
    call!(t, "get_prefix_search", movies_index.get_prefix_search());
    write!(t, "reset_prefix_search", movies_index.reset_prefix_search());
    call!(t, "get_typo_tolerance", movies_index.get_typo_tolerance());
    write!(
        t,
        "set_typo_tolerance",
        movies_index.set_typo_tolerance(&TypoToleranceSettings { enabled: Some(true), disable_on_attributes: None, disable_on_words: Some(vec!["ocean".into()]), min_word_size_for_typos: None, disable_on_numbers: None })
    );
    write!(t, "reset_typo_tolerance", movies_index.reset_typo_tolerance());
    call!(t, "get_search_cutoff_ms", movies_index.get_search_cutoff_ms());
    write!(t, "set_search_cutoff_ms", movies_index.set_search_cutoff_ms(Some(1000)));
    write!(t, "reset_search_cutoff_ms", movies_index.reset_search_cutoff_ms());
    call!(t, "get_separator_tokens", movies_index.get_separator_tokens());
    write!(t, "set_separator_tokens", movies_index.set_separator_tokens(&vec!["|".to_string()]));
    write!(t, "reset_separator_tokens", movies_index.reset_separator_tokens());
    call!(t, "get_non_separator_tokens", movies_index.get_non_separator_tokens());
    write!(t, "set_non_separator_tokens", movies_index.set_non_separator_tokens(&vec!["@".to_string()]));
    write!(t, "reset_non_separator_tokens", movies_index.reset_non_separator_tokens());
    call!(t, "get_localized_attributes", movies_index.get_localized_attributes());
    call!(t, "get_embedders", movies_index.get_embedders());
    write!(t, "reset_embedders", movies_index.reset_embedders());
    write!(t, "set_settings (invalid)", movies_index.set_settings(&Settings::new().with_ranking_rules(["nonsense:up"])));

    // Search.
    let base = |q: &mut SearchQuery<'_, Rec>| {
        q.with_show_ranking_score(true);
    };
    let mut q = SearchQuery::new(&movies_index);
    q.with_query("robot journey").with_limit(10);
    base(&mut q);
    call!(t, "search (q)", q.execute::<Value>());
    let mut q = SearchQuery::new(&movies_index);
    q.with_query("ocean").with_filter("year > 1980").with_sort(&["rating:desc"]).with_facets(Selectors::Some(&["genres"])).with_limit(20);
    base(&mut q);
    call!(t, "search (filter, sort, facets)", q.execute::<Value>());
    let mut q = SearchQuery::new(&movies_index);
    q.with_query("garden").with_sort(&["id:desc"]).with_page(2).with_hits_per_page(5);
    base(&mut q);
    call!(t, "search (pages)", q.execute::<Value>());
    let mut q = SearchQuery::new(&movies_index);
    q.with_query("river storm").with_matching_strategy(MatchingStrategies::ALL).with_attributes_to_highlight(Selectors::Some(&["title"])).with_attributes_to_crop(Selectors::Some(&[("overview", Some(4))]));
    base(&mut q);
    call!(t, "search (matching all, highlight, crop)", q.execute::<Value>());
    let mut q = SearchQuery::new(&movies_index);
    q.with_query("").with_sort(&["year:asc", "id:asc"]).with_offset(7).with_limit(9);
    call!(t, "search (placeholder, sort, offset)", q.execute::<Value>());
    let mut q = SearchQuery::new(&movies_index);
    q.with_filter("unknown = 3");
    call!(t, "search (bad filter)", q.execute::<Value>());
    call!(t, "execute_query", movies_index.execute_query::<Value>(SearchQuery::new(&movies_index).with_query("love").with_show_ranking_score(true)));
    call!(t, "search builder", movies_index.search().with_query("king").with_limit(200).with_show_ranking_score(true).execute::<Value>());
    let mut q1 = SearchQuery::new(&movies_index);
    q1.with_query("night").with_limit(200).with_show_ranking_score(true).with_index_uid();
    let mut q2 = SearchQuery::new(&movies_index);
    q2.with_query("winter").with_limit(200).with_show_ranking_score(true).with_index_uid();
    call!(t, "multi_search", c.multi_search().with_search_query(q1.clone()).with_search_query(q2.clone()).execute::<Value>());
    let mut f = SearchQuery::new(&movies_index);
    f.with_query("mirror shadow").with_index_uid();
    call!(t, "facet search", movies_index.facet_search("genres").with_facet_query("dr").execute());

    // Stats and tasks.
    call!(t, "get_stats", c.get_stats());
    call!(t, "index get_stats", movies_index.get_stats());
    call!(t, "get_tasks", c.get_tasks());
    call!(t, "get_tasks_with (index, status)", c.get_tasks_with(TasksSearchQuery::new(&c).with_index_uids(["movies"]).with_statuses(["succeeded"]).with_limit(5)));
    call!(t, "get_tasks_with (types, from, reverse)", c.get_tasks_with(TasksSearchQuery::new(&c).with_types(["documentAdditionOrUpdate"]).with_from(8).with_reverse(true).with_limit(3)));
    call!(t, "get_tasks_with (uids)", c.get_tasks_with(TasksSearchQuery::new(&c).with_uids([&0, &2, &4])));
    call!(t, "index get_tasks", movies_index.get_tasks());
    call!(t, "index get_tasks_with", movies_index.get_tasks_with(TasksSearchQuery::new(&c).with_statuses(["failed"])));
    call!(t, "get_task (missing)", c.get_task(Uid(9_999_999)));
    write!(t, "delete_tasks_with", c.delete_tasks_with(TasksDeleteQuery::new(&c).with_uids([&1])));
    call!(t, "get_task (deleted)", c.get_task(Uid(1)));

    // Deletions.
    write!(t, "delete_document", movies_index.delete_document(5));
    write!(t, "delete_documents", movies_index.delete_documents(&[6, 7, 8, 12345]));
    write!(t, "delete_documents_with (filter)", movies_index.delete_documents_with(DocumentDeletionQuery::new(&movies_index).with_filter("year < 1960")));
    call!(t, "get_documents_with (after deletions)", movies_index.get_documents_with::<Value>(DocumentsQuery::new(&movies_index).with_limit(1000)));
    write!(t, "delete_all_documents (books)", books.delete_all_documents());
    call!(t, "books get_stats", books.get_stats());

    // Index updates.
    write!(t, "set_primary_key (books, empty)", books.set_primary_key("name"));
    call!(t, "books get_index", c.get_index("books"));
    let mut b = c.index("books");
    call!(t, "fetch_info", b.fetch_info());
    call!(t, "get_primary_key", async { b.get_primary_key().await.map(|k| k.map(str::to_string)) });

    // Keys (with a fixed uid so that both sides name the same key).
    // (The test node has no `/keys`: Miroir answers them itself; see the test.)
    if own {
        let mut kb = KeyBuilder::new();
        kb.with_uid("01b4bc42-eb33-4041-b481-254d00cce834").with_name("sdk").with_description("sdk test").with_action(Action::Search).with_index("movies");
        call!(t, "own: create_key", c.create_key(&kb));
        call!(t, "own: get_key", c.get_key("01b4bc42-eb33-4041-b481-254d00cce834"));
        call!(t, "own: get_keys_with", c.get_keys_with(KeysQuery::new().with_offset(0).with_limit(50)));
        let mut ku = KeyUpdater::new("01b4bc42-eb33-4041-b481-254d00cce834");
        ku.with_description("changed");
        call!(t, "own: update_key", c.update_key(&ku));
        call!(t, "own: delete_key", c.delete_key("01b4bc42-eb33-4041-b481-254d00cce834"));
        call!(t, "own: get_key (deleted)", c.get_key("01b4bc42-eb33-4041-b481-254d00cce834"));
    }

    // Experimental features.
    call!(t, "features get", meilisearch_sdk::features::ExperimentalFeatures::new(&c).get());
    call!(t, "features update", meilisearch_sdk::features::ExperimentalFeatures::new(&c).set_edit_documents_by_function(true).set_contains_filter(true).update());
    call!(t, "features get (after)", meilisearch_sdk::features::ExperimentalFeatures::new(&c).get());
    let mut q = SearchQuery::new(&movies_index);
    q.with_query("").with_filter("title CONTAINS ver").with_sort(&["id:asc"]).with_limit(100);
    call!(t, "search (contains filter)", q.execute::<Value>());

    // Index swap and rename.
    write!(t, "create_index (movies2)", c.create_index("movies2", Some("id")));
    write!(t, "add_documents (movies2)", c.index("movies2").add_documents(&movies(500, 5), None));
    let swap = meilisearch_sdk::client::SwapIndexes { indexes: ("movies".to_string(), "movies2".to_string()), rename: None };
    write!(t, "swap_indexes", c.swap_indexes([&swap]));
    call!(t, "get_documents_with (swapped)", c.index("movies").get_documents_with::<Value>(DocumentsQuery::new(&movies_index).with_limit(1000)));
    write!(t, "swap_indexes (back)", c.swap_indexes([&swap]));
    let missing = meilisearch_sdk::client::SwapIndexes { indexes: ("movies".to_string(), "nope".to_string()), rename: None };
    write!(t, "swap_indexes (missing)", c.swap_indexes([&missing]));
    let rename = meilisearch_sdk::client::SwapIndexes { indexes: ("movies2".to_string(), "movies3".to_string()), rename: Some(true) };
    write!(t, "swap_indexes (rename)", c.swap_indexes([&rename]));
    call!(t, "get_index (renamed)", c.get_raw_index("movies3"));
    call!(t, "compact", c.index("movies3").compact());

    // Webhooks (the URL is never reached: nothing listens there).
    if own {
        let hook = meilisearch_sdk::webhooks::WebhookCreate::new("http://127.0.0.1:9/hook").with_header("x-token", "secret-value");
        let created = call!(t, "own: create_webhook", c.create_webhook(&hook));
        call!(t, "own: get_webhooks", c.get_webhooks());
        if let Ok(w) = created {
            let uuid = w.uuid.to_string();
            call!(t, "own: get_webhook", c.get_webhook(&uuid));
            let mut up = meilisearch_sdk::webhooks::WebhookUpdate::new();
            up.with_url("http://127.0.0.1:9/other");
            call!(t, "own: update_webhook", c.update_webhook(&uuid, &up));
            call!(t, "own: delete_webhook", c.delete_webhook(&uuid));
        }
        call!(t, "own: get_webhook (missing)", c.get_webhook("627ea538-733d-4545-8d2d-03526eb381ce"));
    }

    // Backups.
    write!(t, "create_dump", c.create_dump());
    write!(t, "create_snapshot", c.create_snapshot());

    // Cancelation of finished tasks (nothing to cancel) and index deletion.
    write!(t, "cancel_tasks_with", c.cancel_tasks_with(TasksCancelQuery::new(&c).with_index_uids(["books"])));
    write!(t, "delete_index", c.delete_index("books"));
    write!(t, "Index::delete", Index::new("movies", c.clone()).delete());
    call!(t, "list_all_indexes (end)", c.list_all_indexes_raw());
}

// ---------------------------------------------------------------- comparison

/// Keys whose values differ between two servers by nature (dates, durations, sizes, the key
/// secret derived from each server's master key).
const VOLATILE: &[&str] = &[
    "enqueuedAt", "startedAt", "finishedAt", "duration", "createdAt", "updatedAt", "lastUpdate", "processingTimeMs", "requestUid",
    "databaseSize", "usedDatabaseSize", "rawDocumentDbSize", "avgDocumentSize", "commitSha", "commitDate", "key", "batchUid", "uuid", "dumpUid",
];

fn normalize(v: &mut Value) {
    match v {
        Value::Object(m) => {
            // Meilisearch's default keys get a random uid on each server.
            let default_key = m.contains_key("actions") && m.get("name").and_then(Value::as_str).is_some_and(|n| n.starts_with("Default "));
            if default_key {
                m.insert("uid".into(), json!("<volatile>"));
            }
            for (k, x) in m.iter_mut() {
                if VOLATILE.contains(&k.as_str()) && !x.is_null() {
                    *x = json!("<volatile>");
                } else {
                    normalize(x);
                }
            }
            // A batch's `stats.progressTrace` (and the other timing maps) are the node's own
            // processing steps; Miroir's batches have none (docs/compat/tasks.md).
            if m.contains_key("totalNbTasks") {
                for k in ["progressTrace", "writeChannelCongestion", "internalDatabaseSizes"] {
                    m.shift_remove(k);
                }
            }
            // Tied hits: a node orders equal-score hits by internal id, which a sharded
            // deployment cannot reproduce; sort each run of equal `_rankingScore` by id.
            if let Some(Value::Array(hits)) = m.get_mut("hits") {
                sort_ties(hits);
            }
            // A document listing that holds every document: the set is the contract.
            let whole = matches!((m.get("total"), m.get("results")), (Some(Value::Number(n)), Some(Value::Array(r))) if n.as_u64() == Some(r.len() as u64));
            let listing = m.contains_key("offset") && m.contains_key("total") && !m.contains_key("from");
            if listing && !whole {
                // A page of a listing: which documents a page holds follows each server's
                // internal order (a node: insertion order; Miroir: its shard order), so only
                // its size is the contract here (full listings are compared as sets).
                if let Some(Value::Array(r)) = m.get_mut("results") {
                    let n = r.len();
                    *r = vec![json!({"pageOf": n})];
                }
            }
            if whole && listing {
                if let Some(Value::Array(r)) = m.get_mut("results") {
                    if r.iter().all(|d| d.get("id").is_some()) {
                        r.sort_by_key(|d| d["id"].to_string());
                    }
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalize),
        _ => {}
    }
}

fn sort_ties(hits: &mut [Value]) {
    let score = |h: &Value| h.get("_rankingScore").map(|s| s.to_string());
    let mut i = 0;
    while i < hits.len() {
        let s = score(&hits[i]);
        let mut j = i + 1;
        while s.is_some() && j < hits.len() && score(&hits[j]) == s {
            j += 1;
        }
        hits[i..j].sort_by_key(|h| h.get("id").map(|x| x.to_string()).unwrap_or_default());
        i = j;
    }
}

fn compare_runs(single: &Target, miroir: &Target) -> Vec<String> {
    let mut out = Vec::new();
    if single.steps.len() != miroir.steps.len() {
        out.push(format!("{} SDK steps on the node, {} through Miroir", single.steps.len(), miroir.steps.len()));
    }
    for ((s1, o1), (s2, o2)) in single.steps.iter().zip(&miroir.steps) {
        if s1 != s2 || o1 != o2 {
            out.push(format!("SDK step {s1}: node {o1} / Miroir ({s2}) {o2}"));
        }
    }
    let a = single.log.lock().unwrap().exchanges.clone();
    let b = miroir.log.lock().unwrap().exchanges.clone();
    if a.len() != b.len() {
        out.push(format!("{} exchanges with the node, {} with Miroir", a.len(), b.len()));
    }
    for (x, y) in a.iter().zip(&b) {
        // Webhook uuids are random on each server.
        let uuidless = |c: &str| c.split('/').map(|p| if p.len() == 36 && p.matches('-').count() == 4 { "<uuid>" } else { p }).collect::<Vec<_>>().join("/");
        if uuidless(&x.call) != uuidless(&y.call) {
            out.push(format!("[{}] call {} on the node, {} through Miroir", x.step, x.call, y.call));
            continue;
        }
        let (mut ex, mut ac) = (x.outcome.clone(), y.outcome.clone());
        normalize(&mut ex);
        normalize(&mut ac);
        let mut diffs = Vec::new();
        contract::compare("", &ex, &ac, &mut diffs);
        for d in diffs {
            out.push(format!("[{}] {}: {d}", x.step, x.call));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sdk_call_answers_as_one_node() {
    let mut single_node = Node::start("single").await;
    let cluster = Cluster::start(Spec::rf1_3_nodes()).await;
    let mut single = Target::new(&single_node.url, NODE_KEY);
    let mut miroir = Target::new(&cluster.url(), MASTER_KEY);
    // The in-repo test node has no `/keys`, `/batches` or `/webhooks` (Miroir answers them
    // itself, never from a node): against it, those calls are checked on Miroir alone below.
    let node_has_keys = single_node.is_real();
    script(&mut single, node_has_keys).await;
    script(&mut miroir, true).await;
    // The script itself must have worked on the plain node (else it tests nothing).
    let ok = single.steps.iter().filter(|(_, o)| o == "ok").count();
    assert!(ok > 150, "only {ok} SDK steps succeeded on the plain node: {:?}", single.steps);
    if !node_has_keys {
        let own_steps: Vec<(String, Value)> = miroir.steps.iter().filter(|(s, _)| s.starts_with("own: ")).cloned().collect();
        assert_eq!(own_steps.len(), 15, "{own_steps:?}");
        for (step, outcome) in &own_steps {
            let expected = match step.as_str() {
                "own: get_key (deleted)" => Some("api_key_not_found"),
                "own: get_batch (missing)" => Some("batch_not_found"),
                "own: get_webhook (missing)" => Some("webhook_not_found"),
                _ => None,
            };
            match expected {
                Some(code) => assert!(outcome["error"]["link"].as_str().is_some_and(|l| l.ends_with(&format!("#{code}"))), "{step}: {outcome}"),
                None => assert_eq!(outcome, "ok", "{step}: {outcome}"),
            }
        }
        miroir.steps.retain(|(s, _)| !s.starts_with("own: "));
        miroir.log.lock().unwrap().exchanges.retain(|x| !x.step.starts_with("own: "));
    }
    let diffs = compare_runs(&single, &miroir);
    let n = single.log.lock().unwrap().exchanges.len();
    assert!(diffs.is_empty(), "{} differences over {n} exchanges:\n{}", diffs.len(), diffs.join("\n"));
    single_node.stop().await;
}

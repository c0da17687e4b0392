//! One contract suite for the task store, run against both backends (SQLite on a temp file,
//! Redis under a fresh prefix), plus backend-specific tests: SQLite reopen and schema
//! refusal; Redis outage/recovery through a TCP forwarder and two "processes" on one prefix.

#[path = "common/store_fixtures.rs"]
mod store_fixtures;
#[path = "common/store_proxy.rs"]
mod store_proxy;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use miroir::store::{NewWebhookDelivery, WebhookDelivery};
use miroir::store::{
    ApiKeyRecord, MirrorTable, MissedOp, MissedSummary, NewMissedOp, NewTask, NodeTask, StoreError, TaskFilter, TaskPaging, TaskRecord, TaskStatus, TaskStore, TtlKind,
};
use serde_json::json;
use store_fixtures::Fixture;
use time::macros::datetime;
use time::OffsetDateTime;

type Store = Arc<dyn TaskStore>;

const BASE: OffsetDateTime = datetime!(2026-11-26 00:00:00.123456789 UTC);

fn at(secs: i64) -> OffsetDateTime {
    BASE + time::Duration::seconds(secs)
}

fn new_task(index: Option<&str>, kind: &str, status: TaskStatus, enqueued_at: OffsetDateTime) -> NewTask {
    NewTask {
        index_uid: index.map(str::to_string),
        kind: kind.to_string(),
        status,
        enqueued_at,
        details: json!({"kind": kind}),
        error: None,
        node_tasks: vec![NodeTask { node_id: "n1".into(), task_uid: 7 }],
        custom_metadata: None,
        targets: vec![],
    }
}

fn uids(tasks: &[TaskRecord]) -> Vec<u64> {
    tasks.iter().map(|t| t.uid).collect()
}

fn paging(limit: usize, from: Option<u64>, reverse: bool) -> TaskPaging {
    TaskPaging { limit, from, reverse }
}

/// Runs every listed case against both backends, each test with its own fresh store.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let f = super::Fixture::sqlite().await;
                    super::$case(f.store.clone()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let f = super::Fixture::redis().await;
                    super::$case(f.store.clone()).await;
                }
            )*
        }
    };
}

contract!(
    task_create_get_roundtrip,
    uids_start_at_zero_and_are_never_reused,
    uids_unique_under_concurrency,
    update_replaces_the_record,
    delete_counts_existing_tasks,
    filters_match_a_reference_model,
    filters_by_hand,
    paging_walks_every_page,
    mirror_rows_per_table_and_cluster,
    delete_cluster_state_removes_only_that_cluster,
    ttl_rows_expire,
    leases_exclusive_renewable_and_expiring,
    cdc_cursor_never_goes_backwards,
    index_settings_overlay_rows,
    features_record_round_trips_and_is_replaced,
    index_context_version_bumps_and_is_published,
    api_keys_crud_and_order,
    default_api_keys_only_into_an_empty_store,
    missed_ops_append_in_order_per_node,
    missed_bodies_round_trip_byte_for_byte,
    missed_list_pages_by_after_seq_and_limit,
    missed_ack_removes_up_to_seq_idempotently,
    missed_summary_before_and_after_ack_and_drop,
    nodes_with_missed_lists_pending_nodes,
    missed_seqs_gap_free_under_concurrency,
    placement_compare_and_set_versions,
    placement_state_round_trips_byte_exact,
    placement_no_lost_update_under_concurrency,
    custom_metadata_and_targets_round_trip,
    progress_filters_on_record_fields,
    webhooks_compare_and_set_versions,
    webhook_events_enqueue_once,
    webhook_deliveries_due_retry_finish,
    webhook_outbox_under_concurrency,
    backup_manifests_round_trip,
);

// ---------------------------------------------------------------- contract cases

async fn task_create_get_roundtrip(s: Store) {
    assert!(matches!(s.backend(), "sqlite" | "redis"));
    s.ping().await.unwrap();
    let mut nt = new_task(Some("movies"), "documentAdditionOrUpdate", TaskStatus::Enqueued, BASE);
    nt.details = json!({"receivedDocuments": 3, "indexedDocuments": null, "nested": {"a": [1, 2.5, "x"]}});
    nt.error = Some(json!({"message": "m", "code": "c", "type": "t", "link": "l"}));
    nt.node_tasks =
        vec![NodeTask { node_id: "a".into(), task_uid: 0 }, NodeTask { node_id: "b".into(), task_uid: u64::MAX }];
    let t = s.create_task(nt.clone()).await.unwrap();
    assert_eq!(t.index_uid, nt.index_uid);
    assert_eq!(t.kind, nt.kind);
    assert_eq!(t.status, TaskStatus::Enqueued);
    assert_eq!(t.enqueued_at, BASE);
    assert_eq!((t.started_at, t.finished_at, t.canceled_by), (None, None, None));
    assert_eq!(t.details, nt.details);
    assert_eq!(t.error, nt.error);
    assert_eq!(t.node_tasks, nt.node_tasks);
    assert_eq!(s.get_task(t.uid).await.unwrap().as_ref(), Some(&t));
    // Sub-second precision and the nanoseconds survive.
    assert_eq!(s.get_task(t.uid).await.unwrap().unwrap().enqueued_at.nanosecond(), 123_456_789);

    let dump = s.create_task(new_task(None, "dumpCreation", TaskStatus::Enqueued, at(1))).await.unwrap();
    assert_eq!(s.get_task(dump.uid).await.unwrap().unwrap().index_uid, None);
    assert_eq!(s.get_task(dump.uid + 1).await.unwrap(), None);
    assert_eq!(s.get_task(u64::MAX).await.unwrap(), None);
}

async fn uids_start_at_zero_and_are_never_reused(s: Store) {
    let mut got = Vec::new();
    for i in 0..4 {
        got.push(s.create_task(new_task(Some("i"), "indexCreation", TaskStatus::Enqueued, at(i))).await.unwrap().uid);
    }
    assert_eq!(got, vec![0, 1, 2, 3], "Meilisearch's first task uid is 0, then +1");
    assert_eq!(s.delete_tasks(&[2, 3]).await.unwrap(), 2);
    let next = s.create_task(new_task(Some("i"), "indexCreation", TaskStatus::Enqueued, at(9))).await.unwrap();
    assert_eq!(next.uid, 4, "deleted uids are not handed out again");
}

async fn uids_unique_under_concurrency(s: Store) {
    let mut handles = Vec::new();
    for w in 0..16 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..12 {
                let t = s
                    .create_task(new_task(
                        Some(&format!("w{w}")),
                        "documentAdditionOrUpdate",
                        TaskStatus::Enqueued,
                        at(i),
                    ))
                    .await
                    .unwrap();
                mine.push(t.uid);
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        let mine = h.await.unwrap();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "uids seen by one caller increase: {mine:?}");
        all.extend(mine);
    }
    let set: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(set.len(), all.len(), "duplicate uids");
    assert_eq!(set, (0..all.len() as u64).collect::<BTreeSet<_>>());
    let listed = s.find_tasks(&TaskFilter::default()).await.unwrap();
    assert_eq!(uids(&listed), set.iter().rev().copied().collect::<Vec<_>>());
}

async fn update_replaces_the_record(s: Store) {
    let t = s.create_task(new_task(Some("movies"), "indexCreation", TaskStatus::Enqueued, at(0))).await.unwrap();
    let other = s.create_task(new_task(Some("books"), "indexCreation", TaskStatus::Enqueued, at(1))).await.unwrap();
    let mut u = t.clone();
    u.status = TaskStatus::Failed;
    u.started_at = Some(at(2));
    u.finished_at = Some(at(3));
    u.details = json!({"primaryKey": "id"});
    u.error = Some(json!({"code": "index_already_exists"}));
    u.canceled_by = Some(99);
    u.node_tasks.push(NodeTask { node_id: "n2".into(), task_uid: 8 });
    u.index_uid = Some("fïlms:----0".into());
    s.update_task(&u).await.unwrap();
    assert_eq!(s.get_task(t.uid).await.unwrap(), Some(u.clone()));
    assert_eq!(s.get_task(other.uid).await.unwrap(), Some(other.clone()), "other rows untouched");

    // Indexed fields follow the update.
    let by = |f: TaskFilter| {
        let s = s.clone();
        async move { uids(&s.find_tasks(&f).await.unwrap()) }
    };
    assert_eq!(by(TaskFilter { statuses: vec![TaskStatus::Failed], ..Default::default() }).await, vec![t.uid]);
    assert_eq!(by(TaskFilter { statuses: vec![TaskStatus::Enqueued], ..Default::default() }).await, vec![other.uid]);
    assert_eq!(by(TaskFilter { index_uids: vec!["movies".into()], ..Default::default() }).await, Vec::<u64>::new());
    assert_eq!(by(TaskFilter { index_uids: vec!["fïlms:----0".into()], ..Default::default() }).await, vec![t.uid]);

    // Back to no index uid, then replace again: idempotent.
    u.index_uid = None;
    s.update_task(&u).await.unwrap();
    s.update_task(&u).await.unwrap();
    assert_eq!(s.get_task(t.uid).await.unwrap(), Some(u.clone()));
    assert_eq!(
        by(TaskFilter { index_uids: vec!["fïlms:----0".into()], ..Default::default() }).await,
        Vec::<u64>::new()
    );

    // Updating a task that does not exist (deleted) does not bring it back.
    s.delete_tasks(&[t.uid]).await.unwrap();
    s.update_task(&u).await.unwrap();
    assert_eq!(s.get_task(t.uid).await.unwrap(), None);
    assert_eq!(uids(&s.find_tasks(&TaskFilter::default()).await.unwrap()), vec![other.uid]);
}

async fn delete_counts_existing_tasks(s: Store) {
    for i in 0..5 {
        s.create_task(new_task(Some("i"), "indexCreation", TaskStatus::Succeeded, at(i))).await.unwrap();
    }
    assert_eq!(s.delete_tasks(&[]).await.unwrap(), 0);
    assert_eq!(s.delete_tasks(&[1, 3, 3, 42, u64::MAX]).await.unwrap(), 2);
    assert_eq!(s.delete_tasks(&[1]).await.unwrap(), 0);
    assert_eq!(s.get_task(1).await.unwrap(), None);
    assert_eq!(uids(&s.find_tasks(&TaskFilter::default()).await.unwrap()), vec![4, 2, 0]);
    let all = s.list_tasks(&TaskFilter::default(), &paging(10, None, false)).await.unwrap();
    assert_eq!((all.total, all.next), (3, None));
    let by_status = TaskFilter { statuses: vec![TaskStatus::Succeeded], ..Default::default() };
    assert_eq!(s.list_tasks(&by_status, &paging(10, None, false)).await.unwrap().total, 3, "indexes follow deletes");
}

/// The data set of the filter/paging cases. Returns the stored records.
async fn seed(s: &Store) -> Vec<TaskRecord> {
    use TaskStatus::*;
    let rows: &[(Option<&str>, &str, TaskStatus, i64)] = &[
        (Some("movies"), "indexCreation", Succeeded, 0),
        (Some("movies"), "documentAdditionOrUpdate", Succeeded, 1),
        (Some("books"), "indexCreation", Succeeded, 2),
        (Some("books"), "documentAdditionOrUpdate", Failed, 3),
        (None, "dumpCreation", Succeeded, 4),
        (Some("movies"), "settingsUpdate", Enqueued, 5),
        (Some("movies"), "documentAdditionOrUpdate", Processing, 5), // same enqueued_at as the previous
        (Some("books"), "documentDeletion", Canceled, 6),
        (Some("songs"), "indexCreation", Enqueued, 7),
        (Some("movies"), "documentAdditionOrUpdate", Enqueued, 8),
        (None, "taskCancelation", Succeeded, 9),
        (Some("books"), "settingsUpdate", Enqueued, 10),
    ];
    let mut out = Vec::new();
    for (index, kind, status, secs) in rows {
        out.push(s.create_task(new_task(*index, kind, *status, at(*secs))).await.unwrap());
    }
    // A hole in the uids (4 deleted) so that `from` may name a missing uid.
    s.delete_tasks(&[4]).await.unwrap();
    out.retain(|t| t.uid != 4);
    out
}

fn model_matches(t: &TaskRecord, f: &TaskFilter) -> bool {
    (f.uids.is_empty() || f.uids.contains(&t.uid))
        && (f.statuses.is_empty() || f.statuses.contains(&t.status))
        && (f.types.is_empty() || f.types.contains(&t.kind))
        && (f.index_uids.is_empty() || t.index_uid.as_ref().is_some_and(|i| f.index_uids.contains(i)))
        && f.before_enqueued_at.is_none_or(|b| t.enqueued_at < b)
        && f.after_enqueued_at.is_none_or(|a| t.enqueued_at > a)
}

fn filter_grid() -> Vec<TaskFilter> {
    use TaskStatus::*;
    let uid_sets: Vec<Vec<u64>> = vec![vec![], vec![1, 3, 4, 5, 999], vec![9, 9]];
    let status_sets = vec![vec![], vec![Succeeded], vec![Failed, Enqueued, Enqueued]];
    let type_sets: Vec<Vec<String>> =
        vec![vec![], vec!["indexCreation".into()], vec!["documentAdditionOrUpdate".into(), "settingsUpdate".into()]];
    let index_sets: Vec<Vec<String>> =
        vec![vec![], vec!["movies".into()], vec!["movies".into(), "books".into(), "none".into()]];
    let times: Vec<(Option<OffsetDateTime>, Option<OffsetDateTime>)> = vec![
        (None, None),
        (Some(at(5)), None), // strictly before: the two at 5s are out
        (None, Some(at(5))), // strictly after: the two at 5s are out
        (Some(at(8)), Some(at(2))),
        (Some(at(5) + time::Duration::nanoseconds(1)), None), // 1 ns later: the two at 5s are in
    ];
    let mut out = Vec::new();
    for u in &uid_sets {
        for st in &status_sets {
            for ty in &type_sets {
                for ix in &index_sets {
                    for (before, after) in &times {
                        out.push(TaskFilter {
                            uids: u.clone(),
                            statuses: st.clone(),
                            types: ty.clone(),
                            index_uids: ix.clone(),
                            before_enqueued_at: *before,
                            after_enqueued_at: *after,
                            ..Default::default()
                        });
                    }
                }
            }
        }
    }
    out
}

async fn filters_match_a_reference_model(s: Store) {
    let tasks = seed(&s).await;
    let mut nonempty = 0;
    for f in filter_grid() {
        let mut want: Vec<u64> = tasks.iter().filter(|t| model_matches(t, &f)).map(|t| t.uid).collect();
        want.reverse();
        let found = s.find_tasks(&f).await.unwrap();
        assert_eq!(uids(&found), want, "find_tasks {f:?}");
        for t in &found {
            assert_eq!(Some(t), tasks.iter().find(|x| x.uid == t.uid), "full records returned");
        }
        let page = s.list_tasks(&f, &paging(100, None, false)).await.unwrap();
        assert_eq!(uids(&page.results), want, "list_tasks {f:?}");
        assert_eq!((page.total, page.next), (want.len() as u64, None));
        nonempty += usize::from(!want.is_empty());
    }
    assert!(nonempty > 50, "the grid must exercise non-empty results ({nonempty})");
}

async fn filters_by_hand(s: Store) {
    use TaskStatus::*;
    seed(&s).await;
    let find = |f: TaskFilter| {
        let s = s.clone();
        async move { uids(&s.find_tasks(&f).await.unwrap()) }
    };
    let none = Vec::<u64>::new();
    assert_eq!(find(TaskFilter::default()).await, vec![11, 10, 9, 8, 7, 6, 5, 3, 2, 1, 0]);
    assert_eq!(find(TaskFilter { uids: vec![4, 3, 100], ..Default::default() }).await, vec![3]);
    assert_eq!(find(TaskFilter { statuses: vec![Enqueued], ..Default::default() }).await, vec![11, 9, 8, 5]);
    assert_eq!(find(TaskFilter { statuses: vec![Failed, Canceled], ..Default::default() }).await, vec![7, 3]);
    assert_eq!(find(TaskFilter { types: vec!["indexCreation".into()], ..Default::default() }).await, vec![8, 2, 0]);
    assert_eq!(find(TaskFilter { index_uids: vec!["books".into()], ..Default::default() }).await, vec![11, 7, 3, 2]);
    assert_eq!(find(TaskFilter { index_uids: vec!["nope".into()], ..Default::default() }).await, none);
    assert_eq!(find(TaskFilter { before_enqueued_at: Some(at(2)), ..Default::default() }).await, vec![1, 0]);
    assert_eq!(find(TaskFilter { after_enqueued_at: Some(at(8)), ..Default::default() }).await, vec![11, 10]);
    assert_eq!(
        find(TaskFilter { after_enqueued_at: Some(at(4)), before_enqueued_at: Some(at(6)), ..Default::default() })
            .await,
        vec![6, 5]
    );
    assert_eq!(
        find(TaskFilter {
            statuses: vec![Enqueued, Processing],
            types: vec!["documentAdditionOrUpdate".into()],
            index_uids: vec!["movies".into()],
            ..Default::default()
        })
        .await,
        vec![9, 6]
    );
    assert_eq!(
        find(TaskFilter {
            uids: vec![0, 1, 2],
            statuses: vec![Succeeded],
            types: vec!["indexCreation".into()],
            ..Default::default()
        })
        .await,
        vec![2, 0]
    );
    assert_eq!(find(TaskFilter { uids: vec![u64::MAX], ..Default::default() }).await, none);
}

/// Walks all pages through `next` and checks them against the model.
async fn walk(s: &Store, f: &TaskFilter, limit: usize, start: Option<u64>, reverse: bool, want: &[u64]) {
    let mut got = Vec::new();
    let mut from = start;
    let mut pages = 0;
    loop {
        let p = s.list_tasks(f, &paging(limit, from, reverse)).await.unwrap();
        assert!(p.results.len() <= limit);
        assert_eq!(p.total, want_total(s, f).await, "total ignores paging");
        got.extend(uids(&p.results));
        pages += 1;
        assert!(pages < 100, "paging does not terminate");
        match p.next {
            Some(n) => {
                assert_eq!(p.results.len(), limit, "a page with a next page is full");
                from = Some(n);
            }
            None => break,
        }
    }
    assert_eq!(got, want, "pages of {f:?} limit {limit} from {start:?} reverse {reverse}");
}

async fn want_total(s: &Store, f: &TaskFilter) -> u64 {
    s.find_tasks(f).await.unwrap().len() as u64
}

async fn paging_walks_every_page(s: Store) {
    let tasks = seed(&s).await;
    // By hand first.
    let all = TaskFilter::default();
    let p = s.list_tasks(&all, &paging(3, None, false)).await.unwrap();
    assert_eq!((uids(&p.results), p.total, p.next), (vec![11, 10, 9], 11, Some(8)));
    let p = s.list_tasks(&all, &paging(3, Some(5), false)).await.unwrap();
    assert_eq!((uids(&p.results), p.total, p.next), (vec![5, 3, 2], 11, Some(1)));
    let p = s.list_tasks(&all, &paging(3, Some(4), false)).await.unwrap(); // 4 is deleted
    assert_eq!((uids(&p.results), p.next), (vec![3, 2, 1], Some(0)));
    let p = s.list_tasks(&all, &paging(3, None, true)).await.unwrap();
    assert_eq!((uids(&p.results), p.next), (vec![0, 1, 2], Some(3)));
    let p = s.list_tasks(&all, &paging(3, Some(9), true)).await.unwrap();
    assert_eq!((uids(&p.results), p.total, p.next), (vec![9, 10, 11], 11, None));
    let p = s.list_tasks(&all, &paging(5, Some(1000), true)).await.unwrap();
    assert_eq!((uids(&p.results), p.total, p.next), (vec![], 11, None));
    let p = s.list_tasks(&all, &paging(0, None, false)).await.unwrap();
    assert_eq!((uids(&p.results), p.total), (vec![], 11));
    let p = s.list_tasks(&all, &paging(usize::MAX, None, false)).await.unwrap();
    assert_eq!((p.results.len(), p.next), (11, None));
    let enq = TaskFilter { statuses: vec![TaskStatus::Enqueued], ..Default::default() };
    let p = s.list_tasks(&enq, &paging(2, Some(10), false)).await.unwrap();
    assert_eq!((uids(&p.results), p.total, p.next), (vec![9, 8], 4, Some(5)));

    // Then every filter of a smaller grid, several page sizes, both directions, with/without `from`.
    for f in filter_grid().into_iter().step_by(7) {
        let mut want: Vec<u64> = tasks.iter().filter(|t| model_matches(t, &f)).map(|t| t.uid).collect();
        for limit in [1, 2, 5] {
            for start in [None, Some(6), Some(4)] {
                let fwd: Vec<u64> = want.iter().rev().copied().filter(|u| start.is_none_or(|s| *u <= s)).collect();
                walk(&s, &f, limit, start, false, &fwd).await;
                let rev: Vec<u64> = want.iter().copied().filter(|u| start.is_none_or(|s| *u >= s)).collect();
                walk(&s, &f, limit, start, true, &rev).await;
            }
        }
        want.clear();
    }
}

async fn mirror_rows_per_table_and_cluster(s: Store) {
    let spec = |v: i64| json!({"indexes": ["a", "b"], "version": v});
    assert_eq!(s.get_mirror(MirrorTable::Aliases, "c1", "x").await.unwrap(), None);
    assert_eq!(s.list_mirror(MirrorTable::Aliases, "c1").await.unwrap(), vec![]);
    s.upsert_mirror(MirrorTable::Aliases, "c1", "b", &spec(1)).await.unwrap();
    s.upsert_mirror(MirrorTable::Aliases, "c1", "b", &spec(1)).await.unwrap(); // idempotent
    s.upsert_mirror(MirrorTable::Aliases, "c1", "a-1", &spec(2)).await.unwrap();
    s.upsert_mirror(MirrorTable::Aliases, "c1", "B", &spec(3)).await.unwrap();
    s.upsert_mirror(MirrorTable::Aliases, "c1", "a", &spec(4)).await.unwrap();
    s.upsert_mirror(MirrorTable::Aliases, "c2", "a", &spec(5)).await.unwrap();
    s.upsert_mirror(MirrorTable::Canaries, "c1", "a", &spec(6)).await.unwrap();
    // Separators in names never collide.
    s.upsert_mirror(MirrorTable::TenantMap, "c:1", "x", &spec(7)).await.unwrap();
    s.upsert_mirror(MirrorTable::TenantMap, "c", "1:x", &spec(8)).await.unwrap();

    let list = s.list_mirror(MirrorTable::Aliases, "c1").await.unwrap();
    let names: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, vec!["B", "a", "a-1", "b"], "ordered by name (bytewise)");
    assert_eq!(list[3].1, spec(1));
    assert_eq!(s.get_mirror(MirrorTable::Aliases, "c2", "a").await.unwrap(), Some(spec(5)));
    assert_eq!(s.get_mirror(MirrorTable::Canaries, "c1", "a").await.unwrap(), Some(spec(6)));
    assert_eq!(s.get_mirror(MirrorTable::RolloverPolicies, "c1", "a").await.unwrap(), None);
    assert_eq!(s.list_mirror(MirrorTable::TenantMap, "c:1").await.unwrap(), vec![("x".to_string(), spec(7))]);
    assert_eq!(s.list_mirror(MirrorTable::TenantMap, "c").await.unwrap(), vec![("1:x".to_string(), spec(8))]);

    // Replace.
    s.upsert_mirror(MirrorTable::Aliases, "c1", "a", &spec(40)).await.unwrap();
    assert_eq!(s.get_mirror(MirrorTable::Aliases, "c1", "a").await.unwrap(), Some(spec(40)));
    assert_eq!(s.list_mirror(MirrorTable::Aliases, "c1").await.unwrap().len(), 4);

    // Delete (twice: idempotent).
    s.delete_mirror(MirrorTable::Aliases, "c1", "a").await.unwrap();
    s.delete_mirror(MirrorTable::Aliases, "c1", "a").await.unwrap();
    assert_eq!(s.get_mirror(MirrorTable::Aliases, "c1", "a").await.unwrap(), None);
    let names: Vec<String> =
        s.list_mirror(MirrorTable::Aliases, "c1").await.unwrap().into_iter().map(|r| r.0).collect();
    assert_eq!(names, vec!["B", "a-1", "b"]);
    assert_eq!(s.get_mirror(MirrorTable::Aliases, "c2", "a").await.unwrap(), Some(spec(5)));
    assert_eq!(s.get_mirror(MirrorTable::Canaries, "c1", "a").await.unwrap(), Some(spec(6)));
}

async fn delete_cluster_state_removes_only_that_cluster(s: Store) {
    let v = json!({"k": 1});
    for table in MirrorTable::ALL {
        for cluster in ["a", "ab", "b"] {
            s.upsert_mirror(table, cluster, "r1", &v).await.unwrap();
            s.upsert_mirror(table, cluster, "r2", &v).await.unwrap();
        }
    }
    let ttl = Duration::from_secs(60);
    for lease in ["a/leader", "a/rollover/x", "ab/leader", "b/leader", "a", "global"] {
        assert!(s.try_acquire_lease(lease, "pod-1", ttl).await.unwrap());
    }
    for cluster in ["a", "ab", "b"] {
        s.advance_cdc_cursor(cluster, "movies", 10).await.unwrap();
    }
    s.put_ttl(TtlKind::Session, "a", &v, ttl).await.unwrap();

    s.delete_cluster_state("a").await.unwrap();
    s.delete_cluster_state("a").await.unwrap(); // idempotent

    for table in MirrorTable::ALL {
        assert_eq!(s.list_mirror(table, "a").await.unwrap(), vec![], "{table:?}");
        assert_eq!(s.get_mirror(table, "a", "r1").await.unwrap(), None);
        assert_eq!(s.list_mirror(table, "ab").await.unwrap().len(), 2, "{table:?}");
        assert_eq!(s.list_mirror(table, "b").await.unwrap().len(), 2, "{table:?}");
    }
    assert_eq!(s.get_lease("a/leader").await.unwrap(), None);
    assert_eq!(s.get_lease("a/rollover/x").await.unwrap(), None);
    for kept in ["ab/leader", "b/leader", "a", "global"] {
        assert_eq!(s.get_lease(kept).await.unwrap().map(|l| l.holder), Some("pod-1".to_string()), "{kept}");
    }
    assert_eq!(s.get_cdc_cursor("a", "movies").await.unwrap(), None);
    assert_eq!(s.get_cdc_cursor("ab", "movies").await.unwrap(), Some(10));
    assert_eq!(s.get_cdc_cursor("b", "movies").await.unwrap(), Some(10));
    assert_eq!(s.get_ttl(TtlKind::Session, "a").await.unwrap(), Some(v.clone()), "TTL rows are not per cluster");

    // The cluster can be recreated from scratch.
    s.upsert_mirror(MirrorTable::Aliases, "a", "r9", &v).await.unwrap();
    assert_eq!(s.list_mirror(MirrorTable::Aliases, "a").await.unwrap().len(), 1);
    assert!(s.try_acquire_lease("a/leader", "pod-2", ttl).await.unwrap());
    assert_eq!(s.advance_cdc_cursor("a", "movies", 1).await.unwrap(), 1);
}

async fn ttl_rows_expire(s: Store) {
    let short = Duration::from_millis(200);
    let long = Duration::from_secs(60);
    // Reads before expiry use long TTLs only: nothing depends on how fast the machine is.
    s.put_ttl(TtlKind::IdempotencyKey, "k1", &json!({"taskUid": 1}), short).await.unwrap();
    s.put_ttl(TtlKind::IdempotencyKey, "k2", &json!({"taskUid": 2}), long).await.unwrap();
    s.put_ttl(TtlKind::Session, "k1", &json!("session"), long).await.unwrap();
    assert_eq!(s.get_ttl(TtlKind::IdempotencyKey, "k2").await.unwrap(), Some(json!({"taskUid": 2})));
    assert_eq!(s.get_ttl(TtlKind::IdempotencyKey, "nope").await.unwrap(), None);

    // Overwrite: new value, new TTL.
    s.put_ttl(TtlKind::IdempotencyKey, "k3", &json!(1), long).await.unwrap();
    s.put_ttl(TtlKind::IdempotencyKey, "k3", &json!(3), short).await.unwrap();
    s.put_ttl(TtlKind::IdempotencyKey, "k4", &json!(1), short).await.unwrap();
    s.put_ttl(TtlKind::IdempotencyKey, "k4", &json!(4), long).await.unwrap();

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.get_ttl(TtlKind::IdempotencyKey, "k1").await.unwrap(), None, "expired row is never returned");
    assert_eq!(s.get_ttl(TtlKind::IdempotencyKey, "k3").await.unwrap(), None);
    assert_eq!(s.get_ttl(TtlKind::IdempotencyKey, "k2").await.unwrap(), Some(json!({"taskUid": 2})));
    assert_eq!(s.get_ttl(TtlKind::IdempotencyKey, "k4").await.unwrap(), Some(json!(4)));
    assert_eq!(s.get_ttl(TtlKind::Session, "k1").await.unwrap(), Some(json!("session")), "kinds are separate");

    // A write after expiry (which purges lazily on SQLite) and a re-put of an expired key.
    s.put_ttl(TtlKind::IdempotencyKey, "k1", &json!("again"), long).await.unwrap();
    assert_eq!(s.get_ttl(TtlKind::IdempotencyKey, "k1").await.unwrap(), Some(json!("again")));
    assert_eq!(s.get_ttl(TtlKind::IdempotencyKey, "k3").await.unwrap(), None);
}

async fn leases_exclusive_renewable_and_expiring(s: Store) {
    let long = Duration::from_secs(30);
    assert_eq!(s.get_lease("c/leader").await.unwrap(), None);
    let before = OffsetDateTime::now_utc();
    assert!(s.try_acquire_lease("c/leader", "A", long).await.unwrap());
    let l = s.get_lease("c/leader").await.unwrap().unwrap();
    assert_eq!((l.name.as_str(), l.holder.as_str()), ("c/leader", "A"));
    assert!(
        l.expires_at > before + time::Duration::seconds(20)
            && l.expires_at <= OffsetDateTime::now_utc() + time::Duration::seconds(31)
    );

    assert!(!s.try_acquire_lease("c/leader", "B", long).await.unwrap(), "B cannot take A's live lease");
    assert_eq!(s.get_lease("c/leader").await.unwrap().unwrap().holder, "A");
    assert!(s.try_acquire_lease("c/leader", "A", long).await.unwrap(), "A renews");
    assert!(s.try_acquire_lease("other", "B", long).await.unwrap(), "leases are independent");

    s.release_lease("c/leader", "B").await.unwrap(); // not B's: no effect
    assert_eq!(s.get_lease("c/leader").await.unwrap().unwrap().holder, "A");
    s.release_lease("c/leader", "A").await.unwrap();
    assert_eq!(s.get_lease("c/leader").await.unwrap(), None);
    assert!(s.try_acquire_lease("c/leader", "B", long).await.unwrap(), "free lease is taken");
    assert!(!s.try_acquire_lease("c/leader", "A", long).await.unwrap());
    // B renews with a short TTL (a renewal sets the expiry to now + ttl)...
    assert!(s.try_acquire_lease("c/leader", "B", Duration::from_millis(200)).await.unwrap());

    // B stops renewing: after expiry nobody holds it and A may steal it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.get_lease("c/leader").await.unwrap(), None);
    assert!(s.try_acquire_lease("c/leader", "A", long).await.unwrap(), "expired lease is stolen");
    assert_eq!(s.get_lease("c/leader").await.unwrap().unwrap().holder, "A");
    s.release_lease("c/leader", "B").await.unwrap();
    assert_eq!(s.get_lease("c/leader").await.unwrap().unwrap().holder, "A", "B's late release does not free A's lease");

    // Renewing extends: a short lease renewed with a long TTL outlives the short one.
    assert!(s.try_acquire_lease("r", "A", Duration::from_millis(200)).await.unwrap());
    assert!(s.try_acquire_lease("r", "A", long).await.unwrap());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.get_lease("r").await.unwrap().unwrap().holder, "A");

    // Concurrent contenders on a free lease: exactly one wins.
    let mut hs = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        hs.push(tokio::spawn(async move { s.try_acquire_lease("race", &format!("p{i}"), long).await.unwrap() }));
    }
    let mut winners = 0;
    for h in hs {
        winners += usize::from(h.await.unwrap());
    }
    assert_eq!(winners, 1);
}

async fn features_record_round_trips_and_is_replaced(s: Store) {
    assert_eq!(s.get_features().await.unwrap(), None);
    // Key order and values come back as stored (the object is answered to clients).
    let v = json!({"metrics": false, "editDocumentsByFunction": true, "containsFilter": false, "legacySearch": null});
    s.put_features(&v).await.unwrap();
    let back = s.get_features().await.unwrap().unwrap();
    assert_eq!(serde_json::to_string(&back).unwrap(), serde_json::to_string(&v).unwrap());
    let w = json!({"metrics": false, "editDocumentsByFunction": false, "containsFilter": true, "legacySearch": null});
    s.put_features(&w).await.unwrap();
    s.put_features(&w).await.unwrap();
    assert_eq!(s.get_features().await.unwrap(), Some(w));
    // Nothing else of the store is touched by it.
    assert_eq!(s.get_index_settings("features").await.unwrap(), None);
}

async fn index_context_version_bumps_and_is_published(s: Store) {
    use miroir::store::ContextEvent;
    async fn next(w: &mut tokio::sync::mpsc::Receiver<ContextEvent>) -> ContextEvent {
        tokio::time::timeout(Duration::from_secs(10), w.recv()).await.expect("an event in time").expect("watch open")
    }
    assert_eq!(s.index_context_version().await.unwrap(), 0);
    let mut watch = s.watch_index_context();
    match (&mut watch, s.backend()) {
        (Some(w), "redis") => assert_eq!(next(w).await, ContextEvent::Connected),
        (None, "sqlite") => {}
        (w, b) => panic!("backend {b} watch: {}", w.is_some()),
    }
    let a = s.bump_index_context(Some("movies")).await.unwrap();
    let b = s.bump_index_context(None).await.unwrap();
    assert!(a >= 1 && b > a, "{a} {b}");
    assert_eq!(s.index_context_version().await.unwrap(), b);
    if let Some(w) = &mut watch {
        assert_eq!(next(w).await, ContextEvent::Changed(Some("movies".into())));
        assert_eq!(next(w).await, ContextEvent::Changed(None));
    }
}

async fn index_settings_overlay_rows(s: Store) {
    assert_eq!(s.get_index_settings("movies").await.unwrap(), None);
    let v = json!({"faceting": {"maxValuesPerFacet": 2}});
    s.put_index_settings("movies", &v).await.unwrap();
    s.put_index_settings("movies", &v).await.unwrap();
    assert_eq!(s.get_index_settings("movies").await.unwrap(), Some(v));
    let w = json!({"faceting": {"maxValuesPerFacet": 7}});
    s.put_index_settings("movies", &w).await.unwrap();
    s.put_index_settings("with:colon", &json!({})).await.unwrap();
    assert_eq!(s.get_index_settings("movies").await.unwrap(), Some(w));
    assert_eq!(s.get_index_settings("other").await.unwrap(), None);
    s.delete_index_settings("movies").await.unwrap();
    s.delete_index_settings("movies").await.unwrap();
    assert_eq!(s.get_index_settings("movies").await.unwrap(), None);
    assert_eq!(s.get_index_settings("with:colon").await.unwrap(), Some(json!({})));
}

async fn cdc_cursor_never_goes_backwards(s: Store) {
    assert_eq!(s.get_cdc_cursor("c", "movies").await.unwrap(), None);
    assert_eq!(s.advance_cdc_cursor("c", "movies", 5).await.unwrap(), 5);
    assert_eq!(s.advance_cdc_cursor("c", "movies", 3).await.unwrap(), 5);
    assert_eq!(s.get_cdc_cursor("c", "movies").await.unwrap(), Some(5));
    assert_eq!(s.advance_cdc_cursor("c", "movies", 5).await.unwrap(), 5);
    assert_eq!(s.advance_cdc_cursor("c", "movies", 10).await.unwrap(), 10);
    assert_eq!(s.advance_cdc_cursor("c", "movies", 9).await.unwrap(), 10, "9 < 10 even though '9' > '10' as text");
    assert_eq!(s.advance_cdc_cursor("c", "movies", 1 << 60).await.unwrap(), 1 << 60);
    assert_eq!(s.advance_cdc_cursor("c", "movies", (1 << 60) + 1).await.unwrap(), (1 << 60) + 1, "exact beyond 2^53");
    assert_eq!(s.advance_cdc_cursor("c", "movies", 1 << 60).await.unwrap(), (1 << 60) + 1);
    assert_eq!(s.get_cdc_cursor("c", "books").await.unwrap(), None);
    assert_eq!(s.get_cdc_cursor("d", "movies").await.unwrap(), None);
    assert_eq!(s.advance_cdc_cursor("d", "movies", 0).await.unwrap(), 0);
    assert_eq!(s.get_cdc_cursor("d", "movies").await.unwrap(), Some(0));

    // Concurrent advances: the cursor ends at the maximum.
    let mut hs = Vec::new();
    for p in (0..40u64).rev() {
        let s = s.clone();
        hs.push(tokio::spawn(async move { s.advance_cdc_cursor("e", "x", p * 3).await.unwrap() }));
    }
    for h in hs {
        h.await.unwrap();
    }
    assert_eq!(s.get_cdc_cursor("e", "x").await.unwrap(), Some(39 * 3));
}

fn api_key(secs: i64, name: &str) -> ApiKeyRecord {
    ApiKeyRecord {
        uid: uuid::Uuid::new_v4(),
        name: Some(name.to_string()),
        description: None,
        actions: vec!["search".into(), "search".into(), "documents.*".into()],
        indexes: vec!["movies".into(), "prod*".into()],
        expires_at: Some(time::macros::datetime!(2050-01-01 00:00:00 +02:00)),
        created_at: at(secs),
        updated_at: at(secs),
    }
}

async fn api_keys_crud_and_order(s: Store) {
    assert_eq!(s.list_api_keys().await.unwrap(), vec![]);
    let old = api_key(0, "old");
    let new = api_key(10, "new");
    assert!(s.insert_api_key(&old).await.unwrap());
    assert!(s.insert_api_key(&new).await.unwrap());
    // The same uid again: refused, nothing changed.
    let mut clash = api_key(20, "clash");
    clash.uid = old.uid;
    assert!(!s.insert_api_key(&clash).await.unwrap());
    let got = s.get_api_key(old.uid).await.unwrap().unwrap();
    assert_eq!(got, old, "every field survives, the expiry's offset included");
    assert_eq!(got.expires_at.unwrap().offset().whole_hours(), 2);
    assert_eq!(s.get_api_key(uuid::Uuid::new_v4()).await.unwrap(), None);
    // Newest first; equal creation times by uid.
    let mut tie_a = api_key(5, "tie");
    let mut tie_b = api_key(5, "tie");
    if tie_a.uid > tie_b.uid {
        std::mem::swap(&mut tie_a, &mut tie_b);
    }
    s.insert_api_key(&tie_b).await.unwrap();
    s.insert_api_key(&tie_a).await.unwrap();
    let uids: Vec<_> = s.list_api_keys().await.unwrap().into_iter().map(|k| k.uid).collect();
    assert_eq!(uids, vec![new.uid, tie_a.uid, tie_b.uid, old.uid]);

    let mut renamed = old.clone();
    renamed.name = None;
    renamed.description = Some("d".into());
    renamed.updated_at = at(30);
    assert!(s.update_api_key(&renamed).await.unwrap());
    assert_eq!(s.get_api_key(old.uid).await.unwrap(), Some(renamed.clone()));
    let ghost = api_key(1, "ghost");
    assert!(!s.update_api_key(&ghost).await.unwrap(), "update never creates");
    assert_eq!(s.get_api_key(ghost.uid).await.unwrap(), None);

    assert!(s.delete_api_key(old.uid).await.unwrap());
    assert!(!s.delete_api_key(old.uid).await.unwrap());
    assert_eq!(s.list_api_keys().await.unwrap().len(), 3);
}

async fn default_api_keys_only_into_an_empty_store(s: Store) {
    let defaults: Vec<_> = (0..4).map(|i| api_key(i, &format!("default {i}"))).collect();
    // Many concurrent first starts: exactly one stores the defaults.
    let mut hs = Vec::new();
    for _ in 0..8 {
        let (s, mut mine) = (s.clone(), defaults.clone());
        for k in &mut mine {
            k.uid = uuid::Uuid::new_v4();
        }
        hs.push(tokio::spawn(async move { s.insert_api_keys_if_empty(&mine).await.unwrap() }));
    }
    let mut stored = 0;
    for h in hs {
        stored += h.await.unwrap() as usize;
    }
    assert_eq!(stored, 1);
    assert_eq!(s.list_api_keys().await.unwrap().len(), 4);
    // Not again, even after all but one are deleted.
    let keys = s.list_api_keys().await.unwrap();
    for k in &keys[1..] {
        s.delete_api_key(k.uid).await.unwrap();
    }
    assert!(!s.insert_api_keys_if_empty(&defaults).await.unwrap());
    assert_eq!(s.list_api_keys().await.unwrap(), keys[..1].to_vec());
    // Into an emptied store they go again (Meilisearch: "when the key store is empty").
    s.delete_api_key(keys[0].uid).await.unwrap();
    assert!(s.insert_api_keys_if_empty(&defaults).await.unwrap());
    assert_eq!(s.list_api_keys().await.unwrap().len(), 4);
}

// ---------------------------------------------------------------- missed operations

fn missed_op(i: u64, body: &[u8]) -> NewMissedOp {
    NewMissedOp {
        index_uid: Some("movies".into()),
        shards: vec![i as u32 % 4, 7],
        method: "POST".into(),
        path: format!("/indexes/movies/documents?primaryKey=id&i={i}"),
        content_type: Some("application/json".into()),
        body: body.to_vec(),
        task_uid: Some(i),
        created_at: at(i as i64),
    }
}

fn seqs(ops: &[MissedOp]) -> Vec<u64> {
    ops.iter().map(|o| o.seq).collect()
}

async fn missed_ops_append_in_order_per_node(s: Store) {
    assert_eq!(s.list_missed("a", None, 10).await.unwrap(), vec![]);
    let mut want = Vec::new();
    for i in 0..5 {
        let op = missed_op(i, format!("{{\"id\":{i}}}").as_bytes());
        let got = s.append_missed("a", op.clone()).await.unwrap();
        assert_eq!(got, op.clone().into_op("a", i + 1), "seqs start at 1, +1 per append");
        want.push(got);
        // Another node's log is independent: its own seqs, interleaved appends.
        assert_eq!(s.append_missed("b:x%", missed_op(100 + i, b"b")).await.unwrap().seq, i + 1);
    }
    // Every field round-trips, including the odd ones.
    let odd = NewMissedOp {
        index_uid: None,
        shards: vec![],
        method: "DELETE".into(),
        path: "/indexes/fïlms:----/documents/%C3%A9?x=1".into(),
        content_type: None,
        body: vec![],
        task_uid: None,
        created_at: time::macros::datetime!(2026-11-26 01:02:03.000000001 +05:30),
    };
    want.push(s.append_missed("a", odd.clone()).await.unwrap());
    assert_eq!(want[5], odd.into_op("a", 6));
    let max = s.append_missed("a", NewMissedOp { task_uid: Some(u64::MAX), ..missed_op(0, b"") }).await.unwrap();
    assert_eq!(max.op.task_uid, Some(u64::MAX));
    want.push(max);
    assert_eq!(s.list_missed("a", None, 100).await.unwrap(), want);
    assert_eq!(seqs(&s.list_missed("b:x%", None, 100).await.unwrap()), vec![1, 2, 3, 4, 5]);
    assert!(s.list_missed("b:x%", None, 100).await.unwrap().iter().all(|o| o.node_id == "b:x%" && o.op.body == b"b"));
    assert_eq!(s.list_missed("b", None, 100).await.unwrap(), vec![], "node ids are not prefixes of each other");
}

async fn missed_bodies_round_trip_byte_for_byte(s: Store) {
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let mut big = Vec::with_capacity(1 << 20);
    let mut x: u32 = 0x1234_5678;
    for _ in 0..(1 << 20) {
        // xorshift: every byte value, no structure a text encoding could hide.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        big.push(x as u8);
    }
    let bodies = [all_bytes.clone(), all_bytes.iter().rev().copied().collect(), big.clone(), b"\0".to_vec(), vec![]];
    for (i, b) in bodies.iter().enumerate() {
        s.append_missed("n", missed_op(i as u64, b)).await.unwrap();
    }
    let got = s.list_missed("n", None, 10).await.unwrap();
    assert_eq!(got.len(), bodies.len());
    for (op, b) in got.iter().zip(&bodies) {
        assert!(op.op.body == *b, "body of seq {} differs ({} vs {} bytes)", op.seq, op.op.body.len(), b.len());
    }
    let sum = s.missed_summary("n").await.unwrap();
    assert_eq!(sum.bytes, bodies.iter().map(|b| b.len() as u64).sum::<u64>());
}

async fn missed_list_pages_by_after_seq_and_limit(s: Store) {
    for i in 0..10 {
        s.append_missed("n", missed_op(i, b"x")).await.unwrap();
    }
    for limit in [1, 3, 4, 10, 11] {
        let mut walked = Vec::new();
        let mut after = None;
        loop {
            let page = s.list_missed("n", after, limit).await.unwrap();
            assert!(page.len() <= limit);
            if page.is_empty() {
                break;
            }
            after = page.last().map(|o| o.seq);
            walked.extend(seqs(&page));
        }
        assert_eq!(walked, (1..=10).collect::<Vec<_>>(), "limit {limit}");
    }
    assert_eq!(seqs(&s.list_missed("n", Some(0), 2).await.unwrap()), vec![1, 2]);
    assert_eq!(seqs(&s.list_missed("n", Some(7), 100).await.unwrap()), vec![8, 9, 10]);
    assert_eq!(s.list_missed("n", Some(10), 100).await.unwrap(), vec![]);
    assert_eq!(s.list_missed("n", Some(u64::MAX), 100).await.unwrap(), vec![]);
    assert_eq!(s.list_missed("n", None, 0).await.unwrap(), vec![]);
    // After an ack the page starts at the oldest pending op, whatever after_seq says.
    s.ack_missed("n", 4).await.unwrap();
    assert_eq!(seqs(&s.list_missed("n", None, 2).await.unwrap()), vec![5, 6]);
    assert_eq!(seqs(&s.list_missed("n", Some(2), 2).await.unwrap()), vec![5, 6]);
}

async fn missed_ack_removes_up_to_seq_idempotently(s: Store) {
    assert_eq!(s.ack_missed("n", 5).await.unwrap(), 0, "nothing to ack");
    for i in 0..6 {
        s.append_missed("n", missed_op(i, b"x")).await.unwrap();
        s.append_missed("m", missed_op(i, b"y")).await.unwrap();
    }
    assert_eq!(s.ack_missed("n", 0).await.unwrap(), 0);
    assert_eq!(s.ack_missed("n", 3).await.unwrap(), 3);
    assert_eq!(seqs(&s.list_missed("n", None, 100).await.unwrap()), vec![4, 5, 6]);
    assert_eq!(s.ack_missed("n", 3).await.unwrap(), 0, "idempotent");
    assert_eq!(s.ack_missed("n", 2).await.unwrap(), 0, "acking less deletes nothing");
    assert_eq!(seqs(&s.list_missed("m", None, 100).await.unwrap()), vec![1, 2, 3, 4, 5, 6], "other node untouched");
    // New appends continue the sequence; acking past the newest removes all pending.
    assert_eq!(s.append_missed("n", missed_op(9, b"z")).await.unwrap().seq, 7);
    assert_eq!(s.ack_missed("n", u64::MAX).await.unwrap(), 4);
    assert_eq!(s.list_missed("n", None, 100).await.unwrap(), vec![]);
    assert_eq!(s.ack_missed("n", u64::MAX).await.unwrap(), 0);
    assert_eq!(s.append_missed("n", missed_op(9, b"z")).await.unwrap().seq, 8, "seqs are never reused");
    assert_eq!(seqs(&s.list_missed("n", None, 100).await.unwrap()), vec![8]);
}

async fn missed_summary_before_and_after_ack_and_drop(s: Store) {
    assert_eq!(s.missed_summary("n").await.unwrap(), MissedSummary::default());
    let mut total = 0u64;
    for i in 0..5u64 {
        let body = vec![b'a'; 100 * (i as usize + 1)];
        total += body.len() as u64;
        s.append_missed("n", missed_op(i, &body)).await.unwrap();
    }
    s.append_missed("other", missed_op(0, &[1; 1000])).await.unwrap();
    let sum = |pending, bytes, oldest, newest| MissedSummary { pending, bytes, oldest_seq: oldest, newest_seq: newest };
    assert_eq!(s.missed_summary("n").await.unwrap(), sum(5, total, Some(1), Some(5)));
    assert_eq!(s.ack_missed("n", 2).await.unwrap(), 2);
    assert_eq!(s.missed_summary("n").await.unwrap(), sum(3, total - 300, Some(3), Some(5)));
    assert_eq!(s.drop_missed("n").await.unwrap(), 3);
    assert_eq!(s.missed_summary("n").await.unwrap(), MissedSummary::default());
    assert_eq!(s.list_missed("n", None, 100).await.unwrap(), vec![]);
    assert_eq!(s.drop_missed("n").await.unwrap(), 0, "idempotent");
    assert_eq!(s.drop_missed("never-seen").await.unwrap(), 0);
    assert_eq!(s.missed_summary("other").await.unwrap(), sum(1, 1000, Some(1), Some(1)), "other node untouched");
    // After a drop, seqs continue and the counters restart from the new ops only.
    assert_eq!(s.append_missed("n", missed_op(0, b"abc")).await.unwrap().seq, 6);
    assert_eq!(s.missed_summary("n").await.unwrap(), sum(1, 3, Some(6), Some(6)));
    assert_eq!(s.ack_missed("n", 6).await.unwrap(), 1);
    assert_eq!(s.missed_summary("n").await.unwrap(), MissedSummary::default());
}

async fn nodes_with_missed_lists_pending_nodes(s: Store) {
    assert_eq!(s.nodes_with_missed().await.unwrap(), Vec::<String>::new());
    for n in ["c", "a", "b:1"] {
        s.append_missed(n, missed_op(0, b"x")).await.unwrap();
        s.append_missed(n, missed_op(1, b"x")).await.unwrap();
    }
    assert_eq!(s.nodes_with_missed().await.unwrap(), vec!["a", "b:1", "c"]);
    s.ack_missed("a", 1).await.unwrap();
    assert_eq!(s.nodes_with_missed().await.unwrap(), vec!["a", "b:1", "c"], "a still has seq 2");
    s.ack_missed("a", 2).await.unwrap();
    s.drop_missed("c").await.unwrap();
    assert_eq!(s.nodes_with_missed().await.unwrap(), vec!["b:1"]);
    s.append_missed("a", missed_op(2, b"x")).await.unwrap();
    assert_eq!(s.nodes_with_missed().await.unwrap(), vec!["a", "b:1"]);
}

async fn missed_seqs_gap_free_under_concurrency(s: Store) {
    concurrent_missed_appends(&[s.clone(), s]).await;
}

/// Appends from several tasks on each handle (handles on one backend = Miroir processes):
/// every node's seqs are 1..=n without gaps or duplicates, increasing for each caller, and
/// the listed log holds exactly the appended ops.
async fn concurrent_missed_appends(stores: &[Store]) {
    let mut hs = Vec::new();
    for (h, s) in stores.iter().enumerate() {
        for w in 0..4 {
            let s = s.clone();
            hs.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                for i in 0..15u64 {
                    let node = if i % 3 == 0 { "n2" } else { "n1" };
                    let body = format!("{h}/{w}/{i}").into_bytes();
                    let op = s.append_missed(node, missed_op(i, &body)).await.unwrap();
                    mine.push((node, op.seq, body));
                }
                mine
            }));
        }
    }
    let mut by_node: std::collections::BTreeMap<&str, Vec<(u64, Vec<u8>)>> = Default::default();
    for h in hs {
        let mine = h.await.unwrap();
        for node in ["n1", "n2"] {
            let s: Vec<u64> = mine.iter().filter(|m| m.0 == node).map(|m| m.1).collect();
            assert!(s.windows(2).all(|w| w[0] < w[1]), "seqs seen by one caller increase: {s:?}");
        }
        for (node, seq, body) in mine {
            by_node.entry(node).or_default().push((seq, body));
        }
    }
    for (node, mut got) in by_node {
        got.sort();
        let n = got.len() as u64;
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>(), "{node}: gap-free, unique");
        for s in stores {
            let listed = s.list_missed(node, None, 1000).await.unwrap();
            assert_eq!(listed.iter().map(|o| (o.seq, o.op.body.clone())).collect::<Vec<_>>(), got, "{node}: log = appends");
            let sum = s.missed_summary(node).await.unwrap();
            assert_eq!((sum.pending, sum.oldest_seq, sum.newest_seq), (n, Some(1), Some(n)));
            assert_eq!(sum.bytes, got.iter().map(|g| g.1.len() as u64).sum::<u64>());
        }
    }
}

/// Ops appended through one handle are all there through a fresh one (reopened file, new
/// Redis connection), and seqs continue.
async fn missed_ops_survive(before: Store, open_again: impl std::future::Future<Output = Store>) {
    let mut kept = Vec::new();
    for i in 0..4 {
        kept.push(before.append_missed("n", missed_op(i, &[i as u8, 0, 255])).await.unwrap());
    }
    before.append_missed("gone", missed_op(0, b"x")).await.unwrap();
    before.ack_missed("n", 1).await.unwrap();
    before.drop_missed("gone").await.unwrap();
    let summary = before.missed_summary("n").await.unwrap();
    drop(before);
    let s = open_again.await;
    assert_eq!(s.list_missed("n", None, 100).await.unwrap(), kept[1..].to_vec());
    assert_eq!(s.missed_summary("n").await.unwrap(), summary);
    assert_eq!(s.nodes_with_missed().await.unwrap(), vec!["n"]);
    assert_eq!(s.append_missed("n", missed_op(9, b"")).await.unwrap().seq, 5);
    assert_eq!(s.append_missed("gone", missed_op(9, b"")).await.unwrap().seq, 2);
}

async fn placement_compare_and_set_versions(s: Store) {
    let (a, b, c) = (json!({"plan": "a"}), json!({"plan": "b"}), json!({"plan": "c"}));
    assert_eq!(s.get_placement().await.unwrap(), None, "never stored");
    // A version that was never stored does not match "nothing stored".
    assert_eq!(s.put_placement(1, &a).await.unwrap(), None);
    assert_eq!(s.put_placement(u64::MAX, &a).await.unwrap(), None);
    assert_eq!(s.get_placement().await.unwrap(), None, "a failed put writes nothing");

    assert_eq!(s.put_placement(0, &a).await.unwrap(), Some(1), "first put: version 1");
    assert_eq!(s.get_placement().await.unwrap(), Some((1, a.clone())));
    // Stale or future versions: refused, nothing written.
    for stale in [0, 2, 7, u64::MAX] {
        assert_eq!(s.put_placement(stale, &b).await.unwrap(), None, "expected {stale}");
        assert_eq!(s.get_placement().await.unwrap(), Some((1, a.clone())), "unchanged after expected {stale}");
    }
    assert_eq!(s.put_placement(1, &b).await.unwrap(), Some(2));
    assert_eq!(s.put_placement(1, &c).await.unwrap(), None, "the version it read is gone");
    assert_eq!(s.get_placement().await.unwrap(), Some((2, b.clone())));

    // Versions go up by exactly one per successful put, whatever the state (even unchanged).
    let mut v = 2;
    for i in 0..5 {
        let state = if i % 2 == 0 { b.clone() } else { json!({"plan": "x", "i": i}) };
        assert_eq!(s.put_placement(v, &state).await.unwrap(), Some(v + 1));
        v += 1;
        assert_eq!(s.get_placement().await.unwrap(), Some((v, state)));
    }
    assert_eq!(v, 7);
    // Any JSON value, not only objects.
    assert_eq!(s.put_placement(7, &json!(null)).await.unwrap(), Some(8));
    assert_eq!(s.get_placement().await.unwrap(), Some((8, json!(null))));
    assert_eq!(s.put_placement(8, &json!([1, "two"])).await.unwrap(), Some(9));
    assert_eq!(s.get_placement().await.unwrap(), Some((9, json!([1, "two"]))));

    // Placement is not per cluster: a cluster's deletion leaves it alone.
    s.delete_cluster_state("c").await.unwrap();
    s.delete_cluster_state("").await.unwrap();
    assert_eq!(s.get_placement().await.unwrap(), Some((9, json!([1, "two"]))));
}

/// A placement-shaped state of roughly `bytes` bytes: nested objects with keys out of
/// alphabetical order (their order is part of the bytes), unicode and escapes, numbers at the
/// edges of their types.
fn big_placement(bytes: usize) -> serde_json::Value {
    let mut moves = Vec::new();
    let mut i = 0u64;
    let mut len = 0;
    while len < bytes {
        let m = json!({
            "shard": i,
            "from": format!("node-{}", i % 7),
            "to": format!("nöde-{}\"\\\n\t\u{1F600}", (i + 3) % 7),
            "state": if i % 3 == 0 { "copying" } else { "done" },
            "progress": {"docs": i * 1_000_003, "ratio": (i as f64) / 7.0, "tiny": 1e-300, "neg": -(i as i64)},
            "bounds": [u64::MAX, i64::MIN, 0.1, -0.0, 1.7976931348623157e308],
            "empty": {"o": {}, "a": [], "s": "", "n": null, "t": true, "f": false}
        });
        len += m.to_string().len() + 1;
        moves.push(m);
        i += 1;
    }
    json!({
        "version": 3,
        "zeta": "keys are not sorted",
        "alpha": {"nodes": {"n2": {"weight": 2}, "n10": {"weight": 10}, "n1": {"weight": 1}}},
        "plan": {"id": "rebalance-7", "moves": moves}
    })
}

async fn placement_state_round_trips_byte_exact(s: Store) {
    let small = json!({"z": 1, "a": {"y": [1, 2.5, "x", null, {"b": false, "a": true}], "x": "é\u{0}\""}, "m": 18446744073709551615u64});
    assert_eq!(s.put_placement(0, &small).await.unwrap(), Some(1));
    let (v, got) = s.get_placement().await.unwrap().unwrap();
    assert_eq!((v, &got), (1, &small));
    assert_eq!(serde_json::to_string(&got).unwrap(), serde_json::to_string(&small).unwrap(), "same bytes");

    let big = big_placement(1 << 20);
    let big_text = serde_json::to_string(&big).unwrap();
    assert!(big_text.len() >= 1 << 20, "{}", big_text.len());
    assert_eq!(s.put_placement(1, &big).await.unwrap(), Some(2));
    let (v, got) = s.get_placement().await.unwrap().unwrap();
    assert_eq!(v, 2);
    assert!(serde_json::to_string(&got).unwrap() == big_text, "1 MB state comes back byte for byte");
    assert!(got == big);
    // Pretty-printing is a different byte string of the same value: compare the canonical one.
    assert_eq!(serde_json::to_string_pretty(&got).unwrap(), serde_json::to_string_pretty(&big).unwrap());

    // Shrinking replaces it entirely.
    assert_eq!(s.put_placement(2, &json!({})).await.unwrap(), Some(3));
    assert_eq!(s.get_placement().await.unwrap(), Some((3, json!({}))));
}

async fn placement_no_lost_update_under_concurrency(s: Store) {
    concurrent_placement_writers(&[s.clone(), s], 8, 20).await;
}

/// `writers` tasks on each handle (handles on one backend = Miroir processes), each adding 1
/// to a counter inside the placement state `increments` times by read-modify-write, retrying
/// on a CAS failure. No update is lost: the counter, each writer's tally and the version all
/// end at the exact sums, and the versions one writer wins increase.
async fn concurrent_placement_writers(stores: &[Store], writers: usize, increments: u64) {
    let mut hs = Vec::new();
    for (h, s) in stores.iter().enumerate() {
        for w in 0..writers {
            let s = s.clone();
            hs.push(tokio::spawn(async move {
                let me = format!("{h}/{w}");
                let (mut won, mut conflicts) = (Vec::new(), 0u64);
                for _ in 0..increments {
                    loop {
                        let (version, mut state) =
                            s.get_placement().await.unwrap().unwrap_or((0, json!({"counter": 0, "by": {}})));
                        let counter = state["counter"].as_u64().unwrap();
                        state["counter"] = json!(counter + 1);
                        let mine = state["by"][&me].as_u64().unwrap_or(0);
                        state["by"][&me] = json!(mine + 1);
                        match s.put_placement(version, &state).await.unwrap() {
                            Some(v) => {
                                assert_eq!(v, version + 1);
                                won.push(v);
                                break;
                            }
                            None => {
                                conflicts += 1;
                                assert!(conflicts < 100_000, "{me}: livelock");
                            }
                        }
                    }
                }
                (me, won, conflicts)
            }));
        }
    }
    let total = (stores.len() * writers) as u64 * increments;
    let mut versions = Vec::new();
    let mut conflicts = 0;
    for h in hs {
        let (me, won, c) = h.await.unwrap();
        assert!(won.windows(2).all(|w| w[0] < w[1]), "{me}: versions it wins increase: {won:?}");
        versions.extend(won);
        conflicts += c;
    }
    versions.sort();
    assert_eq!(versions, (1..=total).collect::<Vec<_>>(), "each version won exactly once");
    for s in stores {
        let (v, state) = s.get_placement().await.unwrap().unwrap();
        assert_eq!(v, total);
        assert_eq!(state["counter"], json!(total), "no lost update ({conflicts} CAS conflicts retried)");
        let by = state["by"].as_object().unwrap();
        assert_eq!(by.len(), stores.len() * writers);
        assert!(by.values().all(|n| n.as_u64() == Some(increments)), "{by:?}");
    }
}

/// The placement state written through one handle is there through a fresh one (reopened
/// file, new Redis connection), and its version continues.
async fn placement_survives(before: Store, open_again: impl std::future::Future<Output = Store>) {
    let state = big_placement(64 << 10);
    assert_eq!(before.put_placement(0, &json!({"first": true})).await.unwrap(), Some(1));
    assert_eq!(before.put_placement(1, &state).await.unwrap(), Some(2));
    drop(before);
    let s = open_again.await;
    let (v, got) = s.get_placement().await.unwrap().unwrap();
    assert_eq!(v, 2);
    assert_eq!(serde_json::to_string(&got).unwrap(), serde_json::to_string(&state).unwrap());
    assert_eq!(s.put_placement(1, &json!(1)).await.unwrap(), None);
    assert_eq!(s.put_placement(2, &json!(2)).await.unwrap(), Some(3));
    assert_eq!(s.get_placement().await.unwrap(), Some((3, json!(2))));
}

// ---------------------------------------------------------------- webhooks and backups

async fn webhooks_compare_and_set_versions(s: Store) {
    let a = json!({"webhooks": {"6b1f0c33-1b8f-4d6e-9a43-2d0c8f3b9a10": {"url": "http://a/", "headers": {"z": "1", "a": "2"}}}});
    let b = json!({"webhooks": {}});
    assert_eq!(s.get_webhooks().await.unwrap(), None);
    assert_eq!(s.put_webhooks(1, &a).await.unwrap(), None, "nothing stored: only version 0 matches");
    assert_eq!(s.put_webhooks(0, &a).await.unwrap(), Some(1));
    assert_eq!(s.put_webhooks(0, &b).await.unwrap(), None, "stale");
    let (v, got) = s.get_webhooks().await.unwrap().unwrap();
    assert_eq!(v, 1);
    assert_eq!(serde_json::to_string(&got).unwrap(), serde_json::to_string(&a).unwrap(), "key order kept");
    assert_eq!(s.put_webhooks(1, &b).await.unwrap(), Some(2));
    assert_eq!(s.get_webhooks().await.unwrap(), Some((2, b)));
    // Independent of the placement record.
    assert_eq!(s.get_placement().await.unwrap(), None);
}

fn delivery(hook: &str, body: &[u8]) -> NewWebhookDelivery {
    NewWebhookDelivery { webhook: hook.to_string(), body: body.to_vec() }
}

fn by_id(mut d: Vec<WebhookDelivery>) -> Vec<WebhookDelivery> {
    d.sort_by_key(|d| d.id);
    d
}

async fn webhook_events_enqueue_once(s: Store) {
    let now = OffsetDateTime::now_utc() + time::Duration::seconds(1);
    // Binary-safe bodies (gzip would be; NDJSON is not, but nothing may assume it).
    let body = [0u8, 255, b'\n', 1, 2];
    assert!(s.enqueue_webhook_event(7, &[delivery("h1", &body), delivery("h2", b"{}\n")]).await.unwrap());
    assert!(!s.enqueue_webhook_event(7, &[delivery("h1", b"again")]).await.unwrap(), "a task's end is enqueued once");
    // An event with no webhook is still recorded (nobody listened when the task ended).
    assert!(s.enqueue_webhook_event(8, &[]).await.unwrap());
    assert!(!s.enqueue_webhook_event(8, &[delivery("h1", b"late")]).await.unwrap());
    let due = by_id(s.due_webhook_deliveries(now, 100).await.unwrap());
    assert_eq!(due.len(), 2);
    assert_eq!((due[0].task_uid, due[0].webhook.as_str(), &due[0].body[..], due[0].attempts), (7, "h1", &body[..], 0));
    assert_eq!((due[1].task_uid, due[1].webhook.as_str(), &due[1].body[..]), (7, "h2", &b"{}\n"[..]));
    assert!(due[0].id < due[1].id);
    // Pruning forgets events below the cursor: they could be enqueued again (the caller never
    // looks there again); those at or above stay.
    assert_eq!(s.prune_webhook_events(8).await.unwrap(), 1);
    assert!(!s.enqueue_webhook_event(8, &[]).await.unwrap());
    assert!(s.enqueue_webhook_event(7, &[]).await.unwrap());
    // Pruning leaves pending deliveries alone.
    assert_eq!(s.due_webhook_deliveries(now, 100).await.unwrap().len(), 2);
}

async fn webhook_deliveries_due_retry_finish(s: Store) {
    let now = OffsetDateTime::now_utc() + time::Duration::seconds(1);
    for uid in 0..5u64 {
        assert!(s.enqueue_webhook_event(uid, &[delivery("h", format!("{uid}").as_bytes())]).await.unwrap());
    }
    let due = s.due_webhook_deliveries(now, 3).await.unwrap();
    assert_eq!(due.iter().map(|d| d.task_uid).collect::<Vec<_>>(), [0, 1, 2], "earliest first, at most the limit");
    assert!(s.due_webhook_deliveries(now, 0).await.unwrap().is_empty());
    // A failed attempt: due again later, attempts counted.
    let later = now + time::Duration::minutes(5);
    assert!(s.retry_webhook_delivery(due[0].id, 1, later).await.unwrap());
    let again = s.due_webhook_deliveries(now, 100).await.unwrap();
    assert_eq!(again.iter().map(|d| d.task_uid).collect::<Vec<_>>(), [1, 2, 3, 4]);
    let all = s.due_webhook_deliveries(later, 100).await.unwrap();
    assert_eq!(all.len(), 5);
    let retried = all.iter().find(|d| d.task_uid == 0).unwrap();
    assert_eq!(retried.attempts, 1);
    assert_eq!(retried.next_attempt_at.unix_timestamp_nanos() / 1_000_000, later.unix_timestamp_nanos() / 1_000_000);
    assert_eq!(all.last().unwrap().task_uid, 0, "the retried one is due last");
    // Sent: gone; a second finish (another process sent it too) finds nothing.
    assert!(s.finish_webhook_delivery(due[1].id).await.unwrap());
    assert!(!s.finish_webhook_delivery(due[1].id).await.unwrap());
    assert!(!s.retry_webhook_delivery(due[1].id, 2, now).await.unwrap(), "a finished delivery is not brought back");
    let left = s.due_webhook_deliveries(later, 100).await.unwrap();
    assert_eq!(left.iter().map(|d| d.task_uid).collect::<BTreeSet<_>>(), [0, 2, 3, 4].into_iter().collect());
}

async fn webhook_outbox_under_concurrency(s: Store) {
    // Many observers of the same finished tasks: each task's deliveries enqueued exactly once.
    let mut handles = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let mut won = 0;
            for uid in 0..20u64 {
                if s.enqueue_webhook_event(uid, &[delivery("a", b"x"), delivery("b", b"y")]).await.unwrap() {
                    won += 1;
                }
            }
            won
        }));
    }
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap();
    }
    assert_eq!(total, 20);
    let due = s.due_webhook_deliveries(OffsetDateTime::now_utc() + time::Duration::seconds(1), 1000).await.unwrap();
    assert_eq!(due.len(), 40);
    assert_eq!(due.iter().map(|d| d.id).collect::<BTreeSet<_>>().len(), 40, "ids unique");
}

async fn backup_manifests_round_trip(s: Store) {
    assert_eq!(s.get_backup("20261203-113805123").await.unwrap(), None);
    assert!(s.list_backups().await.unwrap().is_empty());
    let m = json!({"uid": "20261203-113805123", "nodes": [{"nodeId": "n1", "dumpUid": null}], "z": 1, "a": 2});
    s.put_backup("20261203-113805123", &m).await.unwrap();
    s.put_backup("20261101-000000000", &json!({"older": true})).await.unwrap();
    let got = s.get_backup("20261203-113805123").await.unwrap().unwrap();
    assert_eq!(serde_json::to_string(&got).unwrap(), serde_json::to_string(&m).unwrap());
    let m2 = json!({"uid": "20261203-113805123", "nodes": [{"nodeId": "n1", "dumpUid": "x"}]});
    s.put_backup("20261203-113805123", &m2).await.unwrap();
    assert_eq!(s.get_backup("20261203-113805123").await.unwrap(), Some(m2));
    assert_eq!(s.list_backups().await.unwrap(), ["20261101-000000000", "20261203-113805123"]);
}

// ---------------------------------------------------------------- SQLite only

mod sqlite_only {
    use super::*;
    use miroir::store::sqlite::{SqliteStore, SCHEMA_VERSION};

    #[tokio::test]
    async fn reopened_file_keeps_tasks_and_uids_continue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let kept = {
            let s = SqliteStore::open(&path).await.unwrap();
            let mut kept = Vec::new();
            for i in 0..5 {
                kept.push(
                    s.create_task(new_task(Some("i"), "indexCreation", TaskStatus::Enqueued, at(i))).await.unwrap(),
                );
            }
            s.delete_tasks(&[3, 4]).await.unwrap(); // the newest: their uids must still not come back
            kept.truncate(3);
            s.upsert_mirror(MirrorTable::Aliases, "c", "a", &json!(1)).await.unwrap();
            s.advance_cdc_cursor("c", "x", 7).await.unwrap();
            kept
        }; // the first store (and its connection) is dropped here
        let s = SqliteStore::open(&path).await.unwrap();
        assert_eq!(s.find_tasks(&TaskFilter::default()).await.unwrap(), kept.into_iter().rev().collect::<Vec<_>>());
        assert_eq!(s.create_task(new_task(None, "dumpCreation", TaskStatus::Enqueued, at(9))).await.unwrap().uid, 5);
        assert_eq!(s.get_mirror(MirrorTable::Aliases, "c", "a").await.unwrap(), Some(json!(1)));
        assert_eq!(s.get_cdc_cursor("c", "x").await.unwrap(), Some(7));

        let conn = rusqlite::Connection::open(&path).unwrap();
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }

    #[tokio::test]
    async fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        drop(SqliteStore::open(&path).await.unwrap());
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        }
        let err = SqliteStore::open(&path).await.unwrap_err();
        match &err {
            StoreError::SchemaTooNew { found, supported } => {
                assert_eq!((*found, *supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION))
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
        assert!(err.to_string().contains("newer than this Miroir supports"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_stores_on_one_file_share_uids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let a: Store = Arc::new(SqliteStore::open(&path).await.unwrap());
        let b: Store = Arc::new(SqliteStore::open(&path).await.unwrap());
        two_processes(a, b).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_stores_on_one_file_append_missed_gap_free() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let a: Store = Arc::new(SqliteStore::open(&path).await.unwrap());
        let b: Store = Arc::new(SqliteStore::open(&path).await.unwrap());
        concurrent_missed_appends(&[a, b]).await;
    }

    #[tokio::test]
    async fn reopened_file_keeps_missed_ops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let first: Store = Arc::new(SqliteStore::open(&path).await.unwrap());
        let p = path.clone();
        missed_ops_survive(first, async move { Arc::new(SqliteStore::open(&p).await.unwrap()) as Store }).await;
    }

    #[tokio::test]
    async fn reopened_file_keeps_placement() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let first: Store = Arc::new(SqliteStore::open(&path).await.unwrap());
        let p = path.clone();
        placement_survives(first, async move { Arc::new(SqliteStore::open(&p).await.unwrap()) as Store }).await;
    }

    /// A database of schema 5 (no features table) is migrated on open, keeps its rows, and
    /// then has no features stored yet.
    #[tokio::test]
    async fn schema_5_database_gets_the_features_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        {
            let s = SqliteStore::open(&path).await.unwrap();
            s.put_placement(0, &json!({"x": 1})).await.unwrap();
            s.put_features(&json!({"metrics": true})).await.unwrap();
        }
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            // Back to schema 5 (0006 only adds this table; later migrations must be undone here too).
            conn.execute_batch(
                "DROP TABLE features; DROP TABLE webhooks; DROP TABLE webhook_events; DROP TABLE webhook_deliveries; DROP TABLE backups; PRAGMA user_version = 5;",
            )
            .unwrap();
        }
        let s = SqliteStore::open(&path).await.unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        assert_eq!(s.get_features().await.unwrap(), None);
        assert_eq!(s.get_placement().await.unwrap(), Some((1, json!({"x": 1}))), "older rows kept");
        s.put_features(&json!({"metrics": false})).await.unwrap();
        assert_eq!(s.get_features().await.unwrap(), Some(json!({"metrics": false})));
    }

    /// A database of the previous schema (no placement table) is migrated on open and then
    /// has no placement state yet.
    #[tokio::test]
    async fn schema_4_database_gets_the_placement_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        {
            let s = SqliteStore::open(&path).await.unwrap();
            s.create_task(new_task(Some("i"), "indexCreation", TaskStatus::Enqueued, at(0))).await.unwrap();
            s.put_placement(0, &json!({"x": 1})).await.unwrap();
        }
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            // Back to schema 4 (0005 only adds this table; later migrations must be undone here too).
            conn.execute_batch(
                "DROP TABLE placement; DROP TABLE features; DROP TABLE webhooks; DROP TABLE webhook_events; DROP TABLE webhook_deliveries; DROP TABLE backups; PRAGMA user_version = 4;",
            )
            .unwrap();
        }
        let s = SqliteStore::open(&path).await.unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        assert_eq!(s.get_placement().await.unwrap(), None);
        assert_eq!(s.get_task(0).await.unwrap().map(|t| t.uid), Some(0), "older rows kept");
        assert_eq!(s.put_placement(0, &json!({"x": 2})).await.unwrap(), Some(1));
        // One row at most, by construction.
        assert!(conn.execute("INSERT INTO placement (id, version, state) VALUES (2, 1, '{}')", []).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_stores_on_one_file_lose_no_placement_update() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let a: Store = Arc::new(SqliteStore::open(&path).await.unwrap());
        let b: Store = Arc::new(SqliteStore::open(&path).await.unwrap());
        concurrent_placement_writers(&[a, b], 4, 20).await;
    }

    /// Store bytes per pending op for a typical 1-document JSON body (~300 bytes): the file's
    /// page count × page size before and after 10,000 appends (checkpointed). Run with
    /// `cargo test --test store_contract -- --ignored --nocapture missed_op_footprint`.
    #[tokio::test]
    #[ignore = "measurement"]
    async fn missed_op_footprint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let s = SqliteStore::open(&path).await.unwrap();
        let size = || {
            let c = rusqlite::Connection::open(&path).unwrap();
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
            let page: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
            (pages * page, page)
        };
        let (before, page) = size();
        let n = 10_000u64;
        for i in 0..n {
            s.append_missed("node-1", typical_missed_op(i)).await.unwrap();
        }
        let (after, _) = size();
        println!(
            "sqlite: body {} B, {} appends, page size {page}: {} -> {} bytes = {:.1} bytes per pending op",
            typical_missed_op(0).body.len(),
            n,
            before,
            after,
            (after - before) as f64 / n as f64
        );
    }

    #[tokio::test]
    async fn open_from_config() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = miroir::config::TaskStoreConfig { path: dir.path().join("c.db"), ..Default::default() };
        let s = miroir::store::open(&cfg).await.unwrap();
        assert_eq!(s.backend(), "sqlite");
        s.ping().await.unwrap();
    }
}

/// A typical missed document addition: one ~300-byte JSON document.
fn typical_missed_op(i: u64) -> NewMissedOp {
    let doc = format!(
        concat!(
            r#"[{{"id":{:08},"title":"The Shawshank Redemption","genres":["Drama","Crime"],"#,
            r#""overview":"Framed in the 1940s for the double murder of his wife and her lover, upstanding banker "#,
            r#"Andy Dufresne begins a new life at the Shawshank prison.","release_date":780278400,"#,
            r#""poster":"https://image.tmdb.org/t/p/w500/q6y0Go1tsGEsmtFryDOJo3dEmqu.jpg"}}]"#
        ),
        i
    );
    NewMissedOp {
        index_uid: Some("movies".into()),
        shards: vec![(i % 16) as u32],
        method: "POST".into(),
        path: "/indexes/movies/documents?primaryKey=id".into(),
        content_type: Some("application/json".into()),
        body: doc.into_bytes(),
        task_uid: Some(1_000_000 + i),
        created_at: OffsetDateTime::now_utc(),
    }
}

/// Two independent store objects on one backend behave like two Miroir processes.
async fn two_processes(a: Store, b: Store) {
    let t = a.create_task(new_task(Some("i"), "indexCreation", TaskStatus::Enqueued, at(0))).await.unwrap();
    assert_eq!(b.get_task(t.uid).await.unwrap(), Some(t.clone()), "B sees A's task under the same uid");
    let mut hs = Vec::new();
    for (who, s) in [("a", a.clone()), ("b", b.clone())] {
        for w in 0..4 {
            let s = s.clone();
            hs.push(tokio::spawn(async move {
                let mut v = Vec::new();
                for i in 0..15 {
                    v.push(
                        s.create_task(new_task(
                            Some(&format!("{who}{w}")),
                            "indexCreation",
                            TaskStatus::Enqueued,
                            at(i),
                        ))
                        .await
                        .unwrap()
                        .uid,
                    );
                }
                v
            }));
        }
    }
    let mut all = vec![t.uid];
    for h in hs {
        all.extend(h.await.unwrap());
    }
    let set: HashSet<u64> = all.iter().copied().collect();
    assert_eq!(set.len(), all.len(), "duplicate uids across processes");
    let pa = a.list_tasks(&TaskFilter::default(), &paging(1000, None, false)).await.unwrap();
    let pb = b.list_tasks(&TaskFilter::default(), &paging(1000, None, false)).await.unwrap();
    assert_eq!(pa.total, all.len() as u64);
    assert_eq!(pa, pb);
    assert!(a.try_acquire_lease("c/leader", "pod-a", Duration::from_secs(30)).await.unwrap());
    assert!(!b.try_acquire_lease("c/leader", "pod-b", Duration::from_secs(30)).await.unwrap());
    // Two first starts at once: one set of default keys, seen by both.
    let (da, db): (Vec<_>, Vec<_>) = ((0..4).map(|i| api_key(i, "a")).collect(), (0..4).map(|i| api_key(i, "b")).collect());
    let (ra, rb) = tokio::join!(a.insert_api_keys_if_empty(&da), b.insert_api_keys_if_empty(&db));
    assert!(ra.unwrap() ^ rb.unwrap(), "exactly one process stores the defaults");
    assert_eq!(a.list_api_keys().await.unwrap(), b.list_api_keys().await.unwrap());
    assert_eq!(a.list_api_keys().await.unwrap().len(), 4);
}

// ---------------------------------------------------------------- Redis only

mod redis_only {
    use super::*;
    use miroir::store::redis::{RedisStore, SCHEMA_VERSION};
    use store_fixtures::{fresh_prefix, redis_keys, redis_url, RedisCleanup};
    use store_proxy::Forwarder;

    fn redis_addr() -> std::net::SocketAddr {
        let url = url::Url::parse(&redis_url()).unwrap();
        let host = url.host_str().unwrap_or("127.0.0.1");
        let port = url.port().unwrap_or(6379);
        use std::net::ToSocketAddrs;
        (host, port).to_socket_addrs().unwrap().next().unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_stores_on_one_prefix_share_uids() {
        let cleanup = RedisCleanup::new(fresh_prefix());
        let a: Store = Arc::new(RedisStore::connect(&redis_url(), &cleanup.prefix).await.unwrap());
        let b: Store = Arc::new(RedisStore::connect(&redis_url(), &cleanup.prefix).await.unwrap());
        two_processes(a, b).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_stores_on_one_prefix_append_missed_gap_free() {
        let cleanup = RedisCleanup::new(fresh_prefix());
        let a: Store = Arc::new(RedisStore::connect(&redis_url(), &cleanup.prefix).await.unwrap());
        let b: Store = Arc::new(RedisStore::connect(&redis_url(), &cleanup.prefix).await.unwrap());
        concurrent_missed_appends(&[a, b]).await;
    }

    #[tokio::test]
    async fn new_handle_keeps_missed_ops() {
        let cleanup = RedisCleanup::new(fresh_prefix());
        let first: Store = Arc::new(RedisStore::connect(&redis_url(), &cleanup.prefix).await.unwrap());
        let p = cleanup.prefix.clone();
        missed_ops_survive(first, async move { Arc::new(RedisStore::connect(&redis_url(), &p).await.unwrap()) as Store })
            .await;
    }

    #[tokio::test]
    async fn new_handle_keeps_placement() {
        let cleanup = RedisCleanup::new(fresh_prefix());
        let first: Store = Arc::new(RedisStore::connect(&redis_url(), &cleanup.prefix).await.unwrap());
        let p = cleanup.prefix.clone();
        placement_survives(first, async move { Arc::new(RedisStore::connect(&redis_url(), &p).await.unwrap()) as Store })
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_stores_on_one_prefix_lose_no_placement_update() {
        let cleanup = RedisCleanup::new(fresh_prefix());
        let a: Store = Arc::new(RedisStore::connect(&redis_url(), &cleanup.prefix).await.unwrap());
        let b: Store = Arc::new(RedisStore::connect(&redis_url(), &cleanup.prefix).await.unwrap());
        concurrent_placement_writers(&[a, b], 4, 20).await;
    }

    /// Redis bytes per pending op for a typical 1-document JSON body (~300 bytes):
    /// `MEMORY USAGE … SAMPLES 0` of every key the log uses, after 10,000 appends. Run with
    /// `cargo test --test store_contract -- --ignored --nocapture missed_op_footprint`.
    #[tokio::test]
    #[ignore = "measurement"]
    async fn missed_op_footprint() {
        let cleanup = RedisCleanup::new(fresh_prefix());
        let s = RedisStore::connect(&redis_url(), &cleanup.prefix).await.unwrap();
        let n = 10_000u64;
        for i in 0..n {
            s.append_missed("node-1", typical_missed_op(i)).await.unwrap();
        }
        let client = ::redis::Client::open(redis_url()).unwrap();
        let c = client.get_multiplexed_async_connection().await.unwrap();
        let usage = |key: String| {
            let mut c = c.clone();
            async move {
                let v: Option<u64> =
                    ::redis::cmd("MEMORY").arg("USAGE").arg(&key).arg("SAMPLES").arg(0).query_async(&mut c).await.unwrap();
                v.unwrap_or(0)
            }
        };
        let p = &cleanup.prefix;
        let mut ops = 0u64;
        for seq in 1..=n {
            ops += usage(format!("{p}missed_op:node-1:{seq}")).await;
        }
        let node = usage(format!("{p}missed_node:node-1")).await;
        let set = usage(format!("{p}_index:missed_nodes")).await;
        println!(
            "redis: body {} B, {} appends: op keys {} bytes ({:.1}/op), node hash {node}, node set {set} => {:.1} bytes per pending op",
            typical_missed_op(0).body.len(),
            n,
            ops,
            ops as f64 / n as f64,
            (ops + node + set) as f64 / n as f64
        );
    }

    #[tokio::test]
    async fn newer_keyspace_is_refused() {
        let cleanup = RedisCleanup::new(fresh_prefix());
        drop(RedisStore::connect(&redis_url(), &cleanup.prefix).await.unwrap());
        let client = ::redis::Client::open(redis_url()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let _: () = ::redis::cmd("SET")
            .arg(format!("{}schema_version", cleanup.prefix))
            .arg(SCHEMA_VERSION + 1)
            .query_async(&mut c)
            .await
            .unwrap();
        match RedisStore::connect(&redis_url(), &cleanup.prefix).await {
            Err(StoreError::SchemaTooNew { found, supported }) => {
                assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION))
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn keyspace_is_confined_to_the_prefix_and_indexed() {
        let f = Fixture::redis().await;
        let s = &f.store;
        let prefix = f.redis_prefix().unwrap().to_string();
        let t = s.create_task(new_task(Some("movies"), "indexCreation", TaskStatus::Enqueued, at(0))).await.unwrap();
        s.upsert_mirror(MirrorTable::Aliases, "c", "a", &json!(1)).await.unwrap();
        s.try_acquire_lease("c/leader", "A", Duration::from_secs(30)).await.unwrap();
        s.put_ttl(TtlKind::Session, "s", &json!(1), Duration::from_secs(30)).await.unwrap();
        s.advance_cdc_cursor("c", "x", 1).await.unwrap();
        s.put_index_settings("movies", &json!({"faceting": {"maxValuesPerFacet": 2}})).await.unwrap();
        s.insert_api_key(&api_key(0, "k")).await.unwrap();
        s.append_missed("node:1", missed_op(0, b"x")).await.unwrap();
        s.put_placement(0, &json!({"nodes": []})).await.unwrap();
        s.put_features(&json!({"metrics": false})).await.unwrap();
        let keys: BTreeSet<String> =
            redis_keys(&prefix).into_iter().map(|k| k.strip_prefix(&prefix).unwrap().to_string()).collect();
        let want: BTreeSet<String> = [
            "schema_version",
            "task_uid_seq",
            &format!("task:{}", t.uid),
            "_index:tasks",
            "_index:tasks:status:enqueued",
            "_index:tasks:type:indexCreation",
            "_index:tasks:index_uid:movies",
            "_index:tasks:enqueued_at",
            "mirror:aliases:c:a",
            "_index:mirror:aliases:c",
            "lease:c/leader",
            "_index:leases",
            "ttl:sessions:s",
            "cdc:c:x",
            "_index:cdc:c",
            "index_settings:movies",
            "api_keys",
            "missed_node:node%3A1",
            "missed_op:node%3A1:1",
            "_index:missed_nodes",
            "placement",
            "features",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(keys, want, "documented keyspace (docs/redis-keyspace.md)");
        // Deleting the task leaves no empty index behind.
        s.delete_tasks(&[t.uid]).await.unwrap();
        let keys = redis_keys(&prefix);
        assert!(!keys.iter().any(|k| k.contains("_index:tasks") || k.contains("task:")), "{keys:?}");
        // Acking the op leaves only the node's seq counter.
        s.ack_missed("node:1", 1).await.unwrap();
        let keys = redis_keys(&prefix);
        assert!(keys.iter().all(|k| !k.contains("missed") || k.ends_with("missed_node:node%3A1")), "{keys:?}");
    }

    async fn expect_unavailable<T: std::fmt::Debug>(
        what: &str,
        fut: impl std::future::Future<Output = Result<T, StoreError>>,
    ) {
        // A generous hang detector, not a speed assertion: the store bounds each call itself.
        match tokio::time::timeout(Duration::from_secs(15), fut).await {
            Ok(Err(StoreError::Unavailable(_))) => {}
            Ok(other) => panic!("{what}: expected Unavailable, got {other:?}"),
            Err(_) => panic!("{what}: hung while Redis was unreachable"),
        }
    }

    async fn wait_until_back(s: &Store) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match s.ping().await {
                Ok(()) => return,
                Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("store did not recover: {e}"),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unavailable_while_redis_is_down_then_recovers() {
        let cleanup = RedisCleanup::new(fresh_prefix());
        let fwd = Forwarder::start(redis_addr()).await;
        let url = format!("redis://{}", fwd.addr());
        let s: Store = Arc::new(RedisStore::connect(&url, &cleanup.prefix).await.unwrap());
        let mut before = Vec::new();
        for i in 0..3 {
            before
                .push(s.create_task(new_task(Some("m"), "indexCreation", TaskStatus::Enqueued, at(i))).await.unwrap());
        }
        s.upsert_mirror(MirrorTable::Canaries, "c", "a", &json!({"w": 1})).await.unwrap();
        s.advance_cdc_cursor("c", "x", 4).await.unwrap();

        // Down: connections refused and the open one closed.
        fwd.stop().await;
        expect_unavailable("ping", s.ping()).await;
        expect_unavailable("create_task", s.create_task(new_task(None, "dumpCreation", TaskStatus::Enqueued, at(5))))
            .await;
        expect_unavailable("get_task", s.get_task(0)).await;
        expect_unavailable("list_tasks", s.list_tasks(&TaskFilter::default(), &paging(5, None, false))).await;
        expect_unavailable("delete_tasks", s.delete_tasks(&[0])).await;
        expect_unavailable("try_acquire_lease", s.try_acquire_lease("c/l", "A", Duration::from_secs(5))).await;
        expect_unavailable("get_mirror", s.get_mirror(MirrorTable::Canaries, "c", "a")).await;
        expect_unavailable("put_ttl", s.put_ttl(TtlKind::Session, "k", &json!(1), Duration::from_secs(5))).await;
        expect_unavailable("advance_cdc_cursor", s.advance_cdc_cursor("c", "x", 9)).await;
        expect_unavailable("delete_cluster_state", s.delete_cluster_state("c")).await;
        expect_unavailable("update_task", s.update_task(&before[0])).await;
        expect_unavailable("find_tasks", s.find_tasks(&TaskFilter::default())).await;
        expect_unavailable("release_lease", s.release_lease("c/l", "A")).await;
        expect_unavailable("get_lease", s.get_lease("c/l")).await;
        expect_unavailable("upsert_mirror", s.upsert_mirror(MirrorTable::Canaries, "c", "b", &json!(1))).await;
        expect_unavailable("list_mirror", s.list_mirror(MirrorTable::Canaries, "c")).await;
        expect_unavailable("delete_mirror", s.delete_mirror(MirrorTable::Canaries, "c", "a")).await;
        expect_unavailable("get_ttl", s.get_ttl(TtlKind::Session, "k")).await;
        expect_unavailable("get_cdc_cursor", s.get_cdc_cursor("c", "x")).await;
        expect_unavailable("get_placement", s.get_placement()).await;
        expect_unavailable("put_placement", s.put_placement(0, &json!({}))).await;

        // Hanging: connections accepted, never answered.
        fwd.black_hole().await;
        expect_unavailable("ping (hang)", s.ping()).await;
        expect_unavailable("get_task (hang)", s.get_task(0)).await;

        // Back: the same store object works again, nothing acknowledged was lost.
        fwd.restart().await;
        wait_until_back(&s).await;
        for t in &before {
            assert_eq!(s.get_task(t.uid).await.unwrap().as_ref(), Some(t));
        }
        assert_eq!(s.get_mirror(MirrorTable::Canaries, "c", "a").await.unwrap(), Some(json!({"w": 1})));
        assert_eq!(s.get_cdc_cursor("c", "x").await.unwrap(), Some(4));
        let next = s.create_task(new_task(None, "dumpCreation", TaskStatus::Enqueued, at(6))).await.unwrap();
        assert!(next.uid >= 3, "uids continue after the outage");
        let all = s.find_tasks(&TaskFilter::default()).await.unwrap();
        assert!(uids(&all).starts_with(&[next.uid]) && uids(&all).ends_with(&[2, 1, 0]), "{:?}", uids(&all));

        // A half-dead connection (open, but nothing comes back) while Redis itself is reachable:
        // the call times out, and the store moves to a new connection instead of waiting for the
        // kernel to notice (minutes). The frozen connection stays frozen throughout.
        fwd.freeze_existing();
        expect_unavailable("get_task (frozen connection)", s.get_task(0)).await;
        wait_until_back(&s).await;
        assert_eq!(s.get_task(1).await.unwrap().as_ref(), Some(&before[1]));
        fwd.thaw();
        assert_eq!(s.get_task(2).await.unwrap().as_ref(), Some(&before[2]));

        // A second outage/recovery cycle.
        fwd.stop().await;
        expect_unavailable("ping (2nd outage)", s.ping()).await;
        fwd.restart().await;
        wait_until_back(&s).await;
        assert_eq!(s.get_task(0).await.unwrap().as_ref(), Some(&before[0]));
        fwd.stop().await;
    }

    #[tokio::test]
    async fn connect_to_unreachable_redis_is_unavailable() {
        // A port with nothing listening: bind then drop to get one.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let r = tokio::time::timeout(
            Duration::from_secs(15),
            RedisStore::connect(&format!("redis://127.0.0.1:{port}"), "x:"),
        )
        .await;
        assert!(matches!(r, Ok(Err(StoreError::Unavailable(_)))), "{r:?}");
    }
}

// ---------------------------------------------------------------- tasks: customMetadata, progress filters

async fn custom_metadata_and_targets_round_trip(s: Store) {
    let mut nt = new_task(Some("movies"), "documentAdditionOrUpdate", TaskStatus::Enqueued, BASE);
    nt.custom_metadata = Some("release: \"v2\" ünï,*".into());
    let t = s.create_task(nt.clone()).await.unwrap();
    assert_eq!(t.custom_metadata, nt.custom_metadata);
    assert_eq!(s.get_task(t.uid).await.unwrap().unwrap().custom_metadata, nt.custom_metadata);
    let mut c = new_task(None, "taskCancelation", TaskStatus::Enqueued, at(1));
    c.targets = vec![t.uid, 99];
    let c = s.create_task(c).await.unwrap();
    let mut got = s.get_task(c.uid).await.unwrap().unwrap();
    assert_eq!(got.targets, vec![t.uid, 99]);
    assert_eq!(got.custom_metadata, None);
    got.targets.clear();
    s.update_task(&got).await.unwrap();
    assert_eq!(s.get_task(c.uid).await.unwrap().unwrap(), got);
    let listed = s.list_tasks(&TaskFilter::default(), &paging(10, None, false)).await.unwrap();
    assert_eq!(listed.results.iter().find(|x| x.uid == t.uid).unwrap().custom_metadata, nt.custom_metadata);
}

/// `batchUids`, `canceledBy` and the started/finished bounds live in the record, not in the
/// backends' indexes: both backends must filter and page them like the indexed ones.
async fn progress_filters_on_record_fields(s: Store) {
    use TaskStatus::*;
    // (status, started (s), finished (s), canceled_by)
    type Row = (TaskStatus, Option<i64>, Option<i64>, Option<u64>);
    let rows: &[Row] = &[
        (Succeeded, Some(1), Some(2), None),  // 0
        (Canceled, Some(3), Some(4), Some(5)), // 1
        (Enqueued, None, None, Some(5)),       // 2: marked by a cancelation, not canceled (yet)
        (Processing, Some(5), None, None),     // 3
        (Failed, Some(6), Some(8), None),      // 4
        (Canceled, None, Some(7), Some(9)),    // 5: canceled before it started
        (Canceled, Some(7), Some(9), Some(5)), // 6
    ];
    let mut all = Vec::new();
    for (i, (status, started, finished, by)) in rows.iter().enumerate() {
        let t = s.create_task(new_task(Some(if i % 2 == 0 { "movies" } else { "books" }), "documentAdditionOrUpdate", Enqueued, at(i as i64))).await.unwrap();
        let mut u = t.clone();
        u.status = *status;
        u.started_at = started.map(at);
        u.finished_at = finished.map(at);
        u.canceled_by = *by;
        s.update_task(&u).await.unwrap();
        all.push(u);
    }
    let find = |f: TaskFilter| {
        let s = s.clone();
        async move { uids(&s.find_tasks(&f).await.unwrap()) }
    };
    let none = Vec::<u64>::new();
    // A task is its own batch once started: enqueued tasks are in no batch.
    assert_eq!(find(TaskFilter { batch_uids: vec![0, 2, 3, 77], ..Default::default() }).await, vec![3, 0]);
    // Only canceled tasks match `canceledBy`.
    assert_eq!(find(TaskFilter { canceled_by: vec![5], ..Default::default() }).await, vec![6, 1]);
    assert_eq!(find(TaskFilter { canceled_by: vec![9, 5], ..Default::default() }).await, vec![6, 5, 1]);
    assert_eq!(find(TaskFilter { canceled_by: vec![1234], ..Default::default() }).await, none);
    // Exclusive bounds; a task without the date never matches a bound on it.
    assert_eq!(find(TaskFilter { after_started_at: Some(at(3)), ..Default::default() }).await, vec![6, 4, 3]);
    assert_eq!(find(TaskFilter { before_started_at: Some(at(3)), ..Default::default() }).await, vec![0]);
    assert_eq!(
        find(TaskFilter { after_started_at: Some(at(1)), before_started_at: Some(at(7)), ..Default::default() }).await,
        vec![4, 3, 1]
    );
    assert_eq!(find(TaskFilter { before_finished_at: Some(at(8)), ..Default::default() }).await, vec![5, 1, 0]);
    assert_eq!(find(TaskFilter { after_finished_at: Some(at(7)), ..Default::default() }).await, vec![6, 4]);
    // Combined with indexed conditions.
    assert_eq!(
        find(TaskFilter { index_uids: vec!["books".into()], after_finished_at: Some(at(3)), ..Default::default() }).await,
        vec![5, 1]
    );
    assert_eq!(
        find(TaskFilter { statuses: vec![Canceled], canceled_by: vec![5], uids: vec![6], ..Default::default() }).await,
        vec![6]
    );
    // Paging over the filtered set: `total`, `next`, `from` and `reverse` as for indexed filters.
    let f = TaskFilter { after_started_at: Some(at(0)), ..Default::default() }; // 6, 4, 3, 1, 0
    let p = s.list_tasks(&f, &paging(2, None, false)).await.unwrap();
    assert_eq!((uids(&p.results), p.total, p.next), (vec![6, 4], 5, Some(3)));
    let p = s.list_tasks(&f, &paging(2, Some(3), false)).await.unwrap();
    assert_eq!((uids(&p.results), p.total, p.next), (vec![3, 1], 5, Some(0)));
    let p = s.list_tasks(&f, &paging(2, Some(0), false)).await.unwrap();
    assert_eq!((uids(&p.results), p.total, p.next), (vec![0], 5, None));
    let p = s.list_tasks(&f, &paging(3, None, true)).await.unwrap();
    assert_eq!((uids(&p.results), p.total, p.next), (vec![0, 1, 3], 5, Some(4)));
    let p = s.list_tasks(&f, &paging(3, Some(2), true)).await.unwrap();
    assert_eq!((uids(&p.results), p.total, p.next), (vec![3, 4, 6], 5, None));
    // Records come back whole.
    for t in s.find_tasks(&f).await.unwrap() {
        assert_eq!(Some(&t), all.iter().find(|x| x.uid == t.uid));
    }
}

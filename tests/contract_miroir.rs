//! The recorded Meilisearch contract replayed against Miroir in front of test nodes (or real
//! Meilisearch nodes with `MEILI_BIN`): Miroir must answer like one Meilisearch.

mod common;
#[path = "common/contract.rs"]
mod contract;

use common::{Cluster, Spec, MASTER_KEY};

async fn replay_against(spec: Spec) {
    let cluster = Cluster::start(spec).await;
    let mismatches = contract::replay(&cluster.url(), MASTER_KEY).await;
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

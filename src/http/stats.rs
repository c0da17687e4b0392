//! `/indexes/{uid}/stats` and `/stats`: exact counts for any replication (each document
//! counted once), with Meilisearch's `showInternalDatabaseSizes` and `sizeFormat` parameters
//! (the nodes are always asked for bytes; Miroir formats the merged sizes).

use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde_json::{json, Value};

use super::{node_answers_get, query_pairs, read_response, RouteParams};
use crate::dataplane::merge::{human_size, humanize_index_stats};
use crate::dataplane::Proxy;
use crate::error::ApiResult;
use crate::node::NodePath;

/// The stats parameters; `None` when one is unknown or malformed (a node then answers the
/// client's request with Meilisearch's error).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct StatsParams {
    internal_sizes: bool,
    human: bool,
}

fn stats_params(pairs: &[(String, String)]) -> Option<StatsParams> {
    let mut p = StatsParams::default();
    for (k, v) in pairs {
        match k.as_str() {
            "showInternalDatabaseSizes" => p.internal_sizes = v.parse::<bool>().ok()?,
            "sizeFormat" => {
                p.human = match v.as_str() {
                    "human" => true,
                    "raw" => false,
                    _ => return None,
                }
            }
            _ => return None,
        }
    }
    Some(p)
}

pub async fn index_stats(State(proxy): State<Proxy>, params: RouteParams, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let pairs = query_pairs(&q);
    let uid = params.index_uid()?;
    let Some(p) = stats_params(&pairs) else {
        return node_answers_get(&proxy, NodePath::index(&uid).then("stats").client_query(pairs)).await;
    };
    let mut answer = proxy.index_stats_with(&uid, p.internal_sizes).await?;
    if p.human {
        humanize_index_stats(&mut answer.body);
    }
    Ok(read_response(answer))
}

pub async fn global_stats(State(proxy): State<Proxy>, auth: crate::auth::AuthContext, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let pairs = query_pairs(&q);
    let Some(p) = stats_params(&pairs) else {
        return node_answers_get(&proxy, NodePath::route("/stats").client_query(pairs)).await;
    };
    let mut answer = proxy.global_stats_with(p.internal_sizes).await?;
    // A key restricted to some indexes sees only theirs (the sizes stay the database's).
    if let Some(Value::Object(indexes)) = answer.body.get_mut("indexes") {
        indexes.retain(|uid, _| auth.index_authorized(uid));
        if p.human {
            indexes.values_mut().for_each(humanize_index_stats);
        }
    }
    if p.human {
        for k in ["databaseSize", "usedDatabaseSize"] {
            if let Some(n) = answer.body.get(k).and_then(Value::as_u64) {
                answer.body[k] = json!(human_size(n));
            }
        }
    }
    Ok(read_response(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_as_meilisearch_reads_them() {
        let p = |q: &str| stats_params(&url::form_urlencoded::parse(q.as_bytes()).into_owned().collect::<Vec<_>>());
        assert_eq!(p(""), Some(StatsParams::default()));
        assert_eq!(p("sizeFormat=human&showInternalDatabaseSizes=true"), Some(StatsParams { internal_sizes: true, human: true }));
        assert_eq!(p("sizeFormat=raw&showInternalDatabaseSizes=false"), Some(StatsParams::default()));
        assert_eq!(p("sizeFormat=bytes"), None);
        assert_eq!(p("showInternalDatabaseSizes=yes"), None);
        assert_eq!(p("other=1"), None);
    }
}

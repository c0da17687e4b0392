//! `/indexes/{uid}/search` (GET and POST), `/indexes/{uid}/facet-search`, `/multi-search`:
//! scattered over one covering set by the read service, merged as one node would answer.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use reqwest::Method;

use super::{node_answers_get, object_body, params_to_body, parse_json, query_pairs, read_body, read_response, RouteParams};
use crate::auth::AuthContext;
use crate::dataplane::Proxy;
use crate::error::ApiResult;
use crate::node::NodePath;

const SEARCH_LISTS: &[&str] = &["attributesToRetrieve", "attributesToCrop", "attributesToHighlight", "sort", "facets", "attributesToSearchOn", "locales"];
const SEARCH_INTS: &[&str] = &["offset", "limit", "page", "hitsPerPage", "cropLength"];
const SEARCH_FLOATS: &[&str] = &["rankingScoreThreshold"];
const SEARCH_BOOLS: &[&str] = &["showMatchesPosition", "showRankingScore", "showRankingScoreDetails", "retrieveVectors", "showPerformanceDetails"];
const SEARCH_STRINGS: &[&str] = &["q", "filter", "distinct", "cropMarker", "highlightPreTag", "highlightPostTag", "matchingStrategy"];

pub async fn search(State(proxy): State<Proxy>, auth: AuthContext, params: RouteParams, method: Method, RawQuery(q): RawQuery, body: Body) -> ApiResult<Response> {
    let client = if method == Method::GET {
        let query = query_pairs(&q);
        match params_to_body(&query, SEARCH_LISTS, SEARCH_INTS, SEARCH_FLOATS, SEARCH_BOOLS, SEARCH_STRINGS) {
            Some(b) => b,
            None => {
                let uid = params.index_uid()?;
                return node_answers_get(&proxy, NodePath::index(&uid).then("search").client_query(query)).await;
            }
        }
    } else {
        object_body(&proxy, body).await?
    };
    let uid = params.index_uid()?;
    let mut client = client;
    auth.fuse_into(&uid, &mut client);
    Ok(read_response(proxy.search(&uid, &client).await?))
}

pub async fn facet_search(State(proxy): State<Proxy>, auth: AuthContext, params: RouteParams, body: Body) -> ApiResult<Response> {
    let mut client = object_body(&proxy, body).await?;
    let uid = params.index_uid()?;
    auth.fuse_into(&uid, &mut client);
    Ok(read_response(proxy.facet_search(&uid, &client).await?))
}

pub async fn multi_search(State(proxy): State<Proxy>, auth: AuthContext, body: Body) -> ApiResult<Response> {
    let mut body = parse_json(&read_body(&proxy, body).await?)?;
    auth.authorize_multi_search(&mut body)?;
    Ok(read_response(proxy.multi_search(&body).await?))
}

//! `/indexes/{uid}/search` (GET and POST), `/indexes/{uid}/facet-search`, `/multi-search`:
//! scattered over one covering set by the read service, merged as one node would answer.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde_json::{Map, Value};

use super::{node_answers_get, params_to_body, query_pairs, read_response, JsonBody, RouteParams};
use crate::auth::AuthContext;
use crate::model::deserr::parse;
use crate::model::search::{FacetSearchQuery, MultiSearch, SearchQuery};
use crate::dataplane::Proxy;
use crate::error::ApiResult;
use crate::node::NodePath;

const SEARCH_LISTS: &[&str] = &["attributesToRetrieve", "attributesToCrop", "attributesToHighlight", "sort", "facets", "attributesToSearchOn", "locales"];
const SEARCH_INTS: &[&str] = &["offset", "limit", "page", "hitsPerPage", "cropLength"];
const SEARCH_FLOATS: &[&str] = &["rankingScoreThreshold"];
const SEARCH_BOOLS: &[&str] = &["showMatchesPosition", "showRankingScore", "showRankingScoreDetails", "retrieveVectors", "showPerformanceDetails"];
const SEARCH_STRINGS: &[&str] = &["q", "filter", "distinct", "cropMarker", "highlightPreTag", "highlightPostTag", "matchingStrategy"];

/// `GET /indexes/{uid}/search`: the query parameters become the POST body. Whatever Miroir
/// cannot read as one valid search (an unknown or malformed parameter) is answered by a node
/// for the client's own GET, so the client gets Meilisearch's query-parameter wording.
pub async fn search_get(State(proxy): State<Proxy>, auth: AuthContext, params: RouteParams, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let query = query_pairs(&q);
    let body = params_to_body(&query, SEARCH_LISTS, SEARCH_INTS, SEARCH_FLOATS, SEARCH_BOOLS, SEARCH_STRINGS)
        .filter(|b| parse::<SearchQuery>(Value::Object(b.clone())).is_ok());
    let uid = params.index_uid()?;
    match body {
        Some(mut b) => {
            auth.fuse_into(&uid, &mut b);
            Ok(read_response(proxy.search(&uid, &b).await?))
        }
        None => node_answers_get(&proxy, NodePath::index(&uid).then("search").client_query(query)).await,
    }
}

pub async fn search_post(State(proxy): State<Proxy>, auth: AuthContext, params: RouteParams, JsonBody(body): JsonBody) -> ApiResult<Response> {
    let _: SearchQuery = parse(body.clone())?;
    let uid = params.index_uid()?;
    let mut client = object(body);
    auth.fuse_into(&uid, &mut client);
    Ok(read_response(proxy.search(&uid, &client).await?))
}

pub async fn facet_search(State(proxy): State<Proxy>, auth: AuthContext, params: RouteParams, JsonBody(body): JsonBody) -> ApiResult<Response> {
    let _: FacetSearchQuery = parse(body.clone())?;
    let uid = params.index_uid()?;
    let mut client = object(body);
    auth.fuse_into(&uid, &mut client);
    Ok(read_response(proxy.facet_search(&uid, &client).await?))
}

pub async fn multi_search(State(proxy): State<Proxy>, auth: AuthContext, JsonBody(mut body): JsonBody) -> ApiResult<Response> {
    // Meilisearch's order: the whole request is validated, then each query's index checked.
    parse::<MultiSearch>(body.clone())?.check()?;
    auth.authorize_multi_search(&mut body)?;
    Ok(read_response(proxy.multi_search(&body).await?))
}

/// A body the typed parse accepted is an object.
fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

//! `/indexes/{uid}/search` (GET and POST), `/indexes/{uid}/facet-search`, `/multi-search`,
//! `/indexes/{uid}/similar` (GET and POST): scattered over one covering set by the read
//! service, merged as one node would answer.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde_json::{Map, Value};

use super::{node_answers_get, params_to_body, query_pairs, read_response, JsonBody, RouteParams};
use crate::auth::AuthContext;
use crate::model::deserr::parse;
use crate::model::search::{FacetSearchQuery, MultiSearch, SearchQuery, SimilarQuery};
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
    let body = search_params_to_body(&query).filter(|b| parse::<SearchQuery>(Value::Object(b.clone())).is_ok());
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

const SIMILAR_LISTS: &[&str] = &["attributesToRetrieve"];
const SIMILAR_INTS: &[&str] = &["offset", "limit"];
const SIMILAR_FLOATS: &[&str] = &["rankingScoreThreshold"];
const SIMILAR_BOOLS: &[&str] = &["retrieveVectors", "showRankingScore", "showRankingScoreDetails", "showPerformanceDetails"];
const SIMILAR_STRINGS: &[&str] = &["id", "embedder", "filter"];

/// `GET /indexes/{uid}/similar`: the query parameters become the POST body (1.50's
/// `SimilarQueryGet` → `SimilarQuery`: `id` a string, `filter` JSON when it reads as JSON).
/// What Miroir cannot read as one valid request is answered by a node for the client's own
/// GET, so the client gets Meilisearch's query-parameter wording.
pub async fn similar_get(State(proxy): State<Proxy>, auth: AuthContext, params: RouteParams, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let query = query_pairs(&q);
    let body = params_to_body(&query, SIMILAR_LISTS, SIMILAR_INTS, SIMILAR_FLOATS, SIMILAR_BOOLS, SIMILAR_STRINGS)
        .filter(|b| parse::<SimilarQuery>(Value::Object(b.clone())).is_ok());
    let uid = params.index_uid()?;
    match body {
        Some(b) => similar(&proxy, &auth, &uid, b).await,
        None => node_answers_get(&proxy, NodePath::index(&uid).then("similar").client_query(query)).await,
    }
}

pub async fn similar_post(State(proxy): State<Proxy>, auth: AuthContext, params: RouteParams, JsonBody(body): JsonBody) -> ApiResult<Response> {
    let _: SimilarQuery = parse(body.clone())?;
    let uid = params.index_uid()?;
    similar(&proxy, &auth, &uid, object(body)).await
}

async fn similar(proxy: &Proxy, auth: &AuthContext, uid: &crate::model::IndexUid, mut client: Map<String, Value>) -> ApiResult<Response> {
    let rule = auth.tenant_filter(uid);
    auth.fuse_into(uid, &mut client);
    Ok(read_response(proxy.similar(uid, &client, rule.as_ref()).await?))
}

/// GET parameters whose POST form is not one field of the same name (1.50's `SearchQueryGet`
/// → `SearchQuery` conversion): `hybridEmbedder` + `hybridSemanticRatio` → `hybrid`,
/// `vector` (comma list of floats), `personalizeUserContext` → `personalize.userContext`.
const SEARCH_GET_SPECIAL: &[&str] = &["hybridEmbedder", "hybridSemanticRatio", "vector", "personalizeUserContext", "useNetwork"];

/// The POST body of a GET search, or `None` when a parameter is unknown, malformed or
/// inconsistent (a node then answers the client's GET with Meilisearch's own error).
pub(crate) fn search_params_to_body(query: &[(String, String)]) -> Option<Map<String, Value>> {
    let (special, plain): (Vec<(String, String)>, Vec<(String, String)>) =
        query.iter().cloned().partition(|(k, _)| SEARCH_GET_SPECIAL.contains(&k.as_str()));
    let mut body = params_to_body(&plain, SEARCH_LISTS, SEARCH_INTS, SEARCH_FLOATS, SEARCH_BOOLS, SEARCH_STRINGS)?;
    // Like serde's query parsing, a repeated parameter is an error: let the node say so.
    let get = |name: &str| -> Option<Option<&str>> {
        let mut it = special.iter().filter(|(k, _)| k == name);
        let first = it.next().map(|(_, v)| v.as_str());
        if it.next().is_some() {
            return None;
        }
        Some(first)
    };
    let embedder = get("hybridEmbedder")?;
    let ratio = get("hybridSemanticRatio")?;
    let vector = get("vector")?;
    match (embedder, ratio) {
        (None, None) => {}
        (None, Some(_)) => return None,
        (Some(e), r) => {
            let mut hybrid = Map::new();
            if let Some(r) = r {
                let f: f32 = r.parse().ok()?;
                if !(0.0..=1.0).contains(&f) {
                    return None;
                }
                hybrid.insert("semanticRatio".into(), serde_json::json!(f));
            }
            hybrid.insert("embedder".into(), Value::String(e.to_string()));
            body.insert("hybrid".into(), Value::Object(hybrid));
        }
    }
    if let Some(v) = vector {
        if embedder.is_none() {
            return None;
        }
        let floats: Option<Vec<Value>> =
            v.split(',').filter(|s| !s.is_empty()).map(|s| s.trim().parse::<f32>().ok().map(|f| serde_json::json!(f))).collect();
        body.insert("vector".into(), Value::Array(floats?));
    }
    if let Some(u) = get("personalizeUserContext")? {
        body.insert("personalize".into(), serde_json::json!({"userContext": u}));
    }
    if let Some(u) = get("useNetwork")? {
        body.insert("useNetwork".into(), Value::Bool(u.parse().ok()?));
    }
    Some(body)
}

/// A body the typed parse accepted is an object.
fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(q: &str) -> Option<Value> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes()).into_owned().collect();
        search_params_to_body(&pairs).map(Value::Object)
    }

    #[test]
    fn get_search_parameters_become_the_post_body() {
        assert_eq!(
            body("q=a&hybridEmbedder=default&hybridSemanticRatio=0.5&vector=1,2.5&retrieveVectors=true").unwrap(),
            json!({"q": "a", "retrieveVectors": true, "hybrid": {"semanticRatio": 0.5, "embedder": "default"}, "vector": [1.0, 2.5]})
        );
        assert_eq!(body("hybridEmbedder=e").unwrap(), json!({"hybrid": {"embedder": "e"}}));
        assert_eq!(body("personalizeUserContext=likes%20cats").unwrap(), json!({"personalize": {"userContext": "likes cats"}}));
        assert_eq!(body("useNetwork=false&showPerformanceDetails=true").unwrap(), json!({"showPerformanceDetails": true, "useNetwork": false}));
        // Meilisearch's own errors are the node's to word.
        assert!(body("hybridSemanticRatio=0.5").is_none());
        assert!(body("vector=1,2").is_none());
        assert!(body("hybridEmbedder=e&hybridSemanticRatio=1.5").is_none());
        assert!(body("hybridEmbedder=e&vector=1,x").is_none());
        assert!(body("useNetwork=maybe").is_none());
        assert!(body("nope=1").is_none());
    }
}

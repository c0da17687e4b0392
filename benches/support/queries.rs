//! The benchmarks' fixed query mix (shared by `proxy` and `search_path`).

use serde_json::{json, Value};

/// The fixed queries: keyword, typo, prefix, filter, sort, geo, facets, pagination, formatting.
pub fn queries() -> Vec<(&'static str, Value)> {
    vec![
        ("keyword 1 word", json!({"q": "meadow"})),
        ("keyword 2 words", json!({"q": "river summit"})),
        ("keyword 3 words", json!({"q": "golden canyon falcon"})),
        ("keyword brand", json!({"q": "Acme"})),
        ("placeholder", json!({"q": ""})),
        ("typo 1", json!({"q": "medow"})),
        ("typo 2", json!({"q": "glaicer"})),
        ("typo 2 words", json!({"q": "thundr valey"})),
        ("typo lantrn", json!({"q": "lantrn"})),
        ("prefix", json!({"q": "orch"})),
        ("filter category", json!({"q": "ocean", "filter": "category = Books"})),
        ("filter range+bool", json!({"q": "", "filter": "price < 50 AND in_stock = true"})),
        ("filter 2 ranges", json!({"q": "forest", "filter": "year >= 2010 AND rating > 5"})),
        ("filter IN + tag", json!({"q": "", "filter": "brand IN [Acme, Globex, Hooli] AND tags = red"})),
        ("filter OR array", json!({"q": "summer", "filter": [["category = Toys", "category = Music"]]})),
        ("filter geoRadius", json!({"q": "", "filter": "_geoRadius(45.0, 0.0, 200000)"})),
        ("sort price asc", json!({"q": "", "sort": ["price:asc"]})),
        ("sort year desc", json!({"q": "winter", "sort": ["year:desc"]})),
        ("sort 2 keys+filter", json!({"q": "", "sort": ["rating:desc", "price:asc"], "filter": "in_stock = true"})),
        ("sort title", json!({"q": "", "sort": ["title:asc"]})),
        ("sort geoPoint", json!({"q": "", "sort": ["_geoPoint(48.85, 2.35):asc"]})),
        ("facets 2", json!({"q": "", "facets": ["category", "brand"]})),
        ("facets 3 + q", json!({"q": "city", "facets": ["category", "tags", "in_stock"]})),
        ("facet stats", json!({"q": "", "facets": ["price", "year", "rating"]})),
        ("facets+filter", json!({"q": "garden", "filter": "price > 100", "facets": ["brand"]})),
        ("offset 100 limit 50", json!({"q": "", "limit": 50, "offset": 100})),
        ("offset 20 + q", json!({"q": "morning", "offset": 20, "limit": 20})),
        ("page 3", json!({"q": "", "hitsPerPage": 20, "page": 3})),
        ("page 2 + q", json!({"q": "silver", "hitsPerPage": 10, "page": 2})),
        (
            "highlight+crop",
            json!({"q": "crimson midnight", "attributesToHighlight": ["title"], "attributesToCrop": ["description"], "cropLength": 10}),
        ),
        ("retrieve+score", json!({"q": "desert", "attributesToRetrieve": ["id", "title", "price"], "showRankingScore": true})),
        ("matching all", json!({"q": "jungle nebula", "matchingStrategy": "all"})),
    ]
}


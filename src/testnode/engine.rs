//! Search engine of the test node: query matching, ranking rules with
//! `_rankingScoreDetails`, facets, pagination, formatting.

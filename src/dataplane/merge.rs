//! Merging the answers of a covering set of nodes into the answer one Meilisearch would
//! give (search hits by per-rule ranking details, facets, pagination, distinct, stats).
//! Pure functions, tested without a network.

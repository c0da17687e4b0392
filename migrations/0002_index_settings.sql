-- Client-visible index settings that Miroir keeps different on the nodes (e.g.
-- faceting.maxValuesPerFacet: nodes are given a larger value so merged facet counts are
-- exact). One JSON object per index.
CREATE TABLE index_settings (
    index_uid TEXT PRIMARY KEY NOT NULL,
    settings  TEXT NOT NULL
);

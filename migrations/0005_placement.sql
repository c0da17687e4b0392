-- The cluster's placement state (the topology routing uses and the rebalance plan in
-- progress): one row for the whole database, or none before the first write. `state` is
-- opaque JSON owned by the rebalance module, stored as given; `version` is 1 for the first
-- write and +1 for each later one. Every write is a compare-and-set on `version` in one
-- statement (INSERT ... ON CONFLICT DO NOTHING for the first, UPDATE ... WHERE version = ?
-- afterwards), so of several processes racing from the same version exactly one wins.
CREATE TABLE placement (
    id      INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    version INTEGER NOT NULL CHECK (version >= 1),
    state   TEXT    NOT NULL
);

-- The experimental features the client set through `PATCH /experimental-features` (the
-- whole object as the nodes answered it), so that a node that joins later or comes back
-- without its data gets the same features before it serves anything. One row.
CREATE TABLE features (
    id       INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    features TEXT NOT NULL
);

-- Lets a node apply only what changed since the revision it has: written records are found by
-- their revision, deleted ones by a tombstone.
CREATE INDEX entities_by_revision ON entities (revision);
CREATE TABLE deletions (
    revision BIGINT PRIMARY KEY,
    kind TEXT NOT NULL,
    id_key TEXT NOT NULL
);

CREATE TABLE entities (
    kind TEXT NOT NULL,
    id_key TEXT NOT NULL,
    id TEXT NOT NULL,
    revision BIGINT NOT NULL,
    body TEXT NOT NULL,
    secret BYTEA,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (kind, id_key)
);
CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO counters (name, value) VALUES ('revision', 0);
CREATE TABLE meta (name TEXT PRIMARY KEY, value BYTEA NOT NULL);

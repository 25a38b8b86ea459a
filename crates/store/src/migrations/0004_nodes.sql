-- The nodes sharing the store, each with its last heartbeat: not entities, so writing them
-- raises no revision and announces nothing.
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    admin_address TEXT,
    served_revision BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

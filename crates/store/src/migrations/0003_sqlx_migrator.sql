-- Versions are recorded by sqlx's Migrator in _sqlx_migrations from here on; databases made
-- before it had theirs marked applied from this table, which is no longer read.
DROP TABLE IF EXISTS schema_migrations;

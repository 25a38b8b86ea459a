-- The paths of the APIs stored before unique values existed (those within the 400 characters
-- the API now allows: a longer one stays unclaimed, as before).
-- SQLite's lower() folds ASCII only, as the gateway does.
INSERT OR IGNORE INTO unique_values (kind, field, value, id_key)
    SELECT kind, 'path', lower(json_extract(body, '$.path')), id_key FROM entities
    WHERE kind = 'apis' AND length(json_extract(body, '$.path')) <= 400;

-- The paths of the APIs stored before unique values existed (those within the 400 characters
-- the API now allows: a longer one stays unclaimed, as before).
-- translate(), not lower(): PostgreSQL's lower() folds beyond ASCII, the gateway does not.
INSERT INTO unique_values (kind, field, value, id_key)
    SELECT kind, 'path', translate(body::json->>'path', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), id_key
    FROM entities WHERE kind = 'apis' AND length(body::json->>'path') <= 400
    ON CONFLICT DO NOTHING;

-- The paths of the APIs stored before unique values existed.
-- translate(), not lower(): PostgreSQL's lower() folds beyond ASCII, the gateway does not.
INSERT INTO unique_values (kind, field, value, id_key)
    SELECT kind, 'path', translate(body::json->>'path', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), id_key
    FROM entities WHERE kind = 'apis'
    ON CONFLICT DO NOTHING;

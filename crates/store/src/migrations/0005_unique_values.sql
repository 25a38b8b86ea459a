-- Values a record holds alone among the records of its kind (an API's path), claimed in the
-- write's own transaction: the primary key keeps two records from holding one value, and a
-- write finds the holder by one keyed read instead of reading every record of the kind.
-- `value` is folded to ASCII lower case, as the gateway compares API paths.
CREATE TABLE unique_values (
    kind TEXT NOT NULL,
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    id_key TEXT NOT NULL,
    PRIMARY KEY (kind, field, value)
);
CREATE INDEX unique_values_by_record ON unique_values (kind, id_key);
-- A write checked against concurrent changes of a kind counts that kind's records written
-- after a revision: by (kind, revision), not every record of the kind.
CREATE INDEX entities_by_kind_revision ON entities (kind, revision);

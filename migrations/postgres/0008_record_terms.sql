-- The index GitHub's events look records up by (`Record::index_terms`): the pull requests a
-- change links, a release's repository, tag and commits. Kept by every record write.
CREATE TABLE record_terms (
    kind  TEXT   NOT NULL,
    term  TEXT   NOT NULL,
    num   BIGINT NOT NULL,
    key   TEXT   NOT NULL,
    PRIMARY KEY (kind, term, num, key)
);
-- A record's terms are replaced when it is written.
CREATE INDEX record_terms_by_record ON record_terms (kind, key);

-- Databases that already hold changes or releases get their terms built once, from the stored
-- records, by the first `migrate()` after this migration (the terms are computed in Rust).
CREATE TABLE record_terms_backfill (
    id BIGINT PRIMARY KEY
);
INSERT INTO record_terms_backfill (id)
SELECT 1 WHERE EXISTS (SELECT 1 FROM records WHERE kind IN ('change', 'release'));

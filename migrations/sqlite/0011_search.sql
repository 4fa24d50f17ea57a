-- Full-text search over the titles of numbered records (the dashboard's search box): an FTS5
-- index kept by triggers on `records`, so every write path keeps it without code of its own.
-- Its rowid is the record's kind code times 2^40 plus its number (`store::sql::search_rowid`
-- says the same), so a record's row is found without a scan and a search stays in one kind by
-- a rowid range. (Not an external-content table over `records.rowid`: VACUUM, and so a backup
-- by VACUUM INTO, may renumber the rowids of a table without an INTEGER PRIMARY KEY.)
-- Accents are kept, as PostgreSQL's `simple` configuration keeps them, so both backends find
-- the same records for the same words.
CREATE VIRTUAL TABLE records_fts USING fts5 (title, tokenize = 'unicode61 remove_diacritics 0');

CREATE TRIGGER records_fts_insert AFTER INSERT ON records
WHEN new.num > 0 AND new.kind IN ('incident', 'request', 'problem', 'change', 'release', 'nonconformity')
BEGIN
    INSERT INTO records_fts (rowid, title) VALUES (
        (CASE new.kind WHEN 'incident' THEN 1 WHEN 'request' THEN 2 WHEN 'problem' THEN 3
                       WHEN 'change' THEN 4 WHEN 'release' THEN 5 ELSE 6 END) * 1099511627776 + new.num,
        new.title);
END;

-- Only when the title changed: most writes change a record's status, not its title.
CREATE TRIGGER records_fts_update AFTER UPDATE OF title ON records
WHEN old.title IS NOT new.title AND new.num > 0
     AND new.kind IN ('incident', 'request', 'problem', 'change', 'release', 'nonconformity')
BEGIN
    DELETE FROM records_fts WHERE rowid =
        (CASE old.kind WHEN 'incident' THEN 1 WHEN 'request' THEN 2 WHEN 'problem' THEN 3
                       WHEN 'change' THEN 4 WHEN 'release' THEN 5 ELSE 6 END) * 1099511627776 + old.num;
    INSERT INTO records_fts (rowid, title) VALUES (
        (CASE new.kind WHEN 'incident' THEN 1 WHEN 'request' THEN 2 WHEN 'problem' THEN 3
                       WHEN 'change' THEN 4 WHEN 'release' THEN 5 ELSE 6 END) * 1099511627776 + new.num,
        new.title);
END;

INSERT INTO records_fts (rowid, title)
SELECT (CASE kind WHEN 'incident' THEN 1 WHEN 'request' THEN 2 WHEN 'problem' THEN 3
                  WHEN 'change' THEN 4 WHEN 'release' THEN 5 ELSE 6 END) * 1099511627776 + num,
       title
FROM records
WHERE num > 0 AND kind IN ('incident', 'request', 'problem', 'change', 'release', 'nonconformity');

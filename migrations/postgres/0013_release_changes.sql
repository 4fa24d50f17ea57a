-- Releases are also found by the changes they ship (the term `change:CHG-n`), so a change's
-- page lists its releases without a scan. The terms of releases already stored are built again,
-- once, by the next `migrate()` (as migration 0008 arranged for the first build).
INSERT INTO record_terms_backfill (id)
SELECT 1 WHERE EXISTS (SELECT 1 FROM records WHERE kind = 'release')
    AND NOT EXISTS (SELECT 1 FROM record_terms_backfill);

-- Full-text search over record titles (the dashboard's search box): the title's words as a
-- generated column, so every write path keeps them, with a GIN index. Everything but letters
-- and digits becomes a space first, so words split as SQLite's `unicode61` tokenizer splits
-- them (PostgreSQL's parser alone reads `db-01` as `db` and `-01`, an e-mail address as one
-- word), and the `simple` configuration lowercases without stemming: both backends find the
-- same records for the same words.
ALTER TABLE records ADD COLUMN title_words tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', regexp_replace(title, '[^[:alnum:]]+', ' ', 'g'))) STORED;
CREATE INDEX records_by_title_words ON records USING GIN (title_words);

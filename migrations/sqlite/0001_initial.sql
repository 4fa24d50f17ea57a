-- The records, their per-kind counters, the audit trail and the head of its hash chain.
CREATE TABLE records (
    kind        TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    num         BIGINT  NOT NULL,
    title       TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    service     TEXT,
    priority    TEXT,
    assignee    TEXT,
    reporter    TEXT,
    breached    BIGINT  NOT NULL DEFAULT 0,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    data        TEXT    NOT NULL,
    PRIMARY KEY (kind, key)
);

-- The last number handed out per kind: numbers are never reused.
CREATE TABLE counters (
    kind  TEXT   PRIMARY KEY,
    last  BIGINT NOT NULL
);

CREATE TABLE audit (
    seq          BIGINT PRIMARY KEY,
    at           TEXT   NOT NULL,
    actor        TEXT   NOT NULL,
    record       TEXT,
    action       TEXT   NOT NULL,
    before_json  TEXT,
    after_json   TEXT,
    outcome      TEXT   NOT NULL,
    prev_hash    TEXT   NOT NULL,
    hash         TEXT   NOT NULL
);

-- One row: the last entry of the chain. Every write batch locks it first, which serialises
-- writers across processes.
CREATE TABLE chain_head (
    id       BIGINT PRIMARY KEY,
    seq      BIGINT NOT NULL,
    hash     TEXT   NOT NULL,
    batches  BIGINT NOT NULL
);
INSERT INTO chain_head (id, seq, hash, batches)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000', 0);

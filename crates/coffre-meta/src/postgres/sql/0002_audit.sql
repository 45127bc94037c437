-- Coffre metadata, schema 2: one audit log for every gateway.
-- Appends are numbered by one counter row: a gateway's append transaction
-- holds its lock until commit, so numbers are handed out, and become visible,
-- in one order for everyone, with no gap a reader could see.

CREATE TABLE audit_counter (
    id       BOOLEAN PRIMARY KEY CHECK (id),
    next_seq INT8    NOT NULL
);
INSERT INTO audit_counter (id, next_seq) VALUES (true, 0);

-- Each event's canonical line (what its leaf hash covers) and that hash.
CREATE TABLE audit_events (
    seq  INT8  PRIMARY KEY,
    line BYTEA NOT NULL,
    leaf BYTEA NOT NULL
);

-- Signed tree heads, written by the holder of the `audit-signer` lease only.
CREATE TABLE audit_heads (
    head  INT8 PRIMARY KEY,
    size  INT8 NOT NULL,
    line  TEXT NOT NULL,
    epoch INT8 NOT NULL
);

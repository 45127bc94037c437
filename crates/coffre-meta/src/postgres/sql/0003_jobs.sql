-- Coffre metadata, schema 3: background jobs any gateway may claim (repair
-- now, more kinds later). A claim is `FOR UPDATE SKIP LOCKED` on a due row
-- that pushes run_after forward (a visibility timeout): one claimer at a
-- time, and the claim of a gateway that dies lapses by itself. `generation`
-- grows each time the job is queued again, so a job queued again while
-- claimed is run once more after the claim ends, never lost.
CREATE TABLE jobs (
    kind       TEXT        NOT NULL,
    key        BYTEA       NOT NULL,
    generation INT8        NOT NULL DEFAULT 1,
    run_after  TIMESTAMPTZ NOT NULL DEFAULT now(),
    claimed_by BYTEA,
    attempts   INT4        NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (kind, key)
);
CREATE INDEX jobs_due ON jobs (kind, run_after);

-- Coffre metadata, schema 1. Kept to the SQL that PostgreSQL, CockroachDB and
-- YugabyteDB share: no triggers, sequences, advisory locks or collations.
-- Keys are BYTEA so that every ordered scan is in byte order whatever the
-- database's collation; TEXT columns are only ever compared for equality.
-- Records are the engine-independent shapes of coffre-core (postcard bytes);
-- the columns beside them are what SQL filters, orders or sums on.

CREATE TABLE buckets (
    name   TEXT  PRIMARY KEY,
    record BYTEA NOT NULL
);

-- The current version of every key that has one (delete markers included).
-- This row is the per-key lock every write takes first.
CREATE TABLE objects (
    bucket        TEXT    NOT NULL,
    key           BYTEA   NOT NULL,
    seq           INT8    NOT NULL,
    version_id    TEXT    NOT NULL,
    delete_marker BOOLEAN NOT NULL,
    size          INT8    NOT NULL,
    meta          BYTEA   NOT NULL,
    data          BYTEA   NOT NULL,
    PRIMARY KEY (bucket, key)
);

-- Noncurrent versions; rev = 9223372036854775807 - seq, so ascending rev is
-- newest first and no dialect needs a DESC index.
CREATE TABLE object_versions (
    bucket        TEXT    NOT NULL,
    key           BYTEA   NOT NULL,
    rev           INT8    NOT NULL,
    seq           INT8    NOT NULL,
    version_id    TEXT    NOT NULL,
    delete_marker BOOLEAN NOT NULL,
    size          INT8    NOT NULL,
    meta          BYTEA   NOT NULL,
    data          BYTEA   NOT NULL,
    PRIMARY KEY (bucket, key, rev)
);

CREATE TABLE multipart_uploads (
    bucket    TEXT  NOT NULL,
    key       BYTEA NOT NULL,
    upload_id BYTEA NOT NULL,
    record    BYTEA NOT NULL,
    PRIMARY KEY (bucket, key, upload_id)
);

CREATE TABLE multipart_parts (
    upload_id BYTEA NOT NULL,
    part_no   INT4  NOT NULL,
    record    BYTEA NOT NULL,
    PRIMARY KEY (upload_id, part_no)
);

-- Blobs being written, by the gateway writing them: collected when that
-- gateway stops heartbeating, never while it may still commit them.
CREATE TABLE pending_blobs (
    blob          BYTEA       PRIMARY KEY,
    gateway       BYTEA       NOT NULL,
    registered_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX pending_blobs_by_gateway ON pending_blobs (gateway);

-- Blobs nothing refers to any more: a job queue. Collectors claim rows with
-- FOR UPDATE SKIP LOCKED and push run_after forward (a visibility timeout),
-- so two gateways never delete the same blob at once and a collector that
-- dies lets its claim lapse.
CREATE TABLE gc_queue (
    blob        BYTEA       PRIMARY KEY,
    enqueued_at INT8        NOT NULL,
    run_after   TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts    INT4        NOT NULL DEFAULT 0
);
CREATE INDEX gc_queue_by_age ON gc_queue (enqueued_at);

CREATE TABLE access_keys (
    id     TEXT  PRIMARY KEY,
    record BYTEA NOT NULL
);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Membership: every gateway heartbeats its row on the database's clock.
CREATE TABLE gateways (
    gateway      BYTEA       PRIMARY KEY,
    name         TEXT        NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One-writer tasks: a lease per task, its epoch a fencing token that grows
-- each time the lease changes hands.
CREATE TABLE leases (
    name       TEXT        PRIMARY KEY,
    holder     BYTEA       NOT NULL,
    epoch      INT8        NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

-- Where each blob's replicas are (coffre-node's Replicas record), keyed by
-- the blob id's 16 big-endian bytes so that id order is byte order.
CREATE TABLE placement (
    blob   BYTEA PRIMARY KEY,
    record BYTEA NOT NULL
);

CREATE TABLE lost_targets (
    target TEXT        PRIMARY KEY,
    since  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Coffre metadata, schema 4: KEK destructions owed to the key custodian,
-- recorded before they are tried (with an erasure, in its transaction) and
-- deleted once the custodian confirms; every gateway retries what is left.
CREATE TABLE kek_destroys (
    kek    TEXT  PRIMARY KEY,
    record BYTEA NOT NULL
);

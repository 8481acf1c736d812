-- Several servers sharing one queue (PostgreSQL; SQLite keeps the same columns, unused
-- but harmless). Kept in step with migrations/sqlite/0003_lease.sql.

-- The fencing token: incremented at each claim; an attempt carries the value of its claim
-- and its outcome is recorded only while the request still has that value.
ALTER TABLE requests ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
-- Who holds a live attempt (instance id) and until when (Unix ms), renewed while it runs.
ALTER TABLE attempts ADD COLUMN owner TEXT;
ALTER TABLE attempts ADD COLUMN lease_until BIGINT;
ALTER TABLE attempts ADD COLUMN fence BIGINT;

-- Live attempts per service, counted when claiming (capacity across all servers).
CREATE INDEX requests_dialing ON requests (service) WHERE state = 'dialing';

-- The shared call rate: one row per trunk (the PBX address), locked by every claim.
CREATE TABLE claim_gate (
    trunk       TEXT    PRIMARY KEY,
    next_start  BIGINT  NOT NULL
);

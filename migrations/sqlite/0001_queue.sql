-- The durable callback queue. Instants are Unix milliseconds (UTC); flags are 0/1.
-- Kept in step with migrations/postgres/0001_queue.sql: same tables, columns, indexes.

CREATE TABLE requests (
    id               INTEGER PRIMARY KEY,
    service          TEXT    NOT NULL,
    number           TEXT,              -- E.164; NULL once erased after retention
    state            TEXT    NOT NULL CHECK (state IN
                       ('pending','dialing','retry_wait','connected','unreachable','expired','cancelled')),
    channel          TEXT    NOT NULL,
    lang             TEXT    NOT NULL,
    window_start     INTEGER,           -- minutes after local midnight
    window_end       INTEGER,
    sms_consent      INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    due_at           INTEGER,           -- NULL once final
    deadline_at      INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    attempts_counted INTEGER NOT NULL DEFAULT 0,
    deadline_missed  INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    final_at         INTEGER,
    end_reason       TEXT
);

-- One live request per number and service: the intake dedup, held by the database.
CREATE UNIQUE INDEX requests_live_number ON requests (service, number)
    WHERE state IN ('pending','dialing','retry_wait');
-- The scheduler's order: deadline first, then age, among waiting requests.
CREATE INDEX requests_waiting_order ON requests (service, deadline_at, created_at, id)
    WHERE state IN ('pending','retry_wait');
-- The scheduler's next wake-up and "is anything due?", per service.
CREATE INDEX requests_waiting_due ON requests (service, due_at) WHERE state IN ('pending','retry_wait');
-- Queue depth per service and state without reading the rows.
CREATE INDEX requests_live_state ON requests (service, state) WHERE state IN ('pending','dialing','retry_wait');
-- The recent service rate (connected callbacks per service).
CREATE INDEX requests_connected ON requests (service, final_at) WHERE state = 'connected';
-- Expiry of requests that were never dialled in time.
CREATE INDEX requests_waiting_expiry ON requests (expires_at) WHERE state IN ('pending','retry_wait');
-- Deadline supervision.
CREATE INDEX requests_open_deadline ON requests (deadline_at)
    WHERE deadline_missed = 0 AND state IN ('pending','dialing','retry_wait');
-- Retention: erase numbers of finished requests.
CREATE INDEX requests_final ON requests (final_at) WHERE number IS NOT NULL AND final_at IS NOT NULL;

CREATE TABLE attempts (
    id          INTEGER PRIMARY KEY,
    request_id  INTEGER NOT NULL REFERENCES requests (id),
    seq         INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    outcome     TEXT,                   -- NULL while the call is live
    sip_code    INTEGER,
    counted     INTEGER,
    UNIQUE (request_id, seq)
);
-- At most one live attempt per request, held by the database.
CREATE UNIQUE INDEX attempts_one_live ON attempts (request_id) WHERE outcome IS NULL;

CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY,
    request_id  INTEGER NOT NULL REFERENCES requests (id),
    kind        TEXT    NOT NULL,       -- notice | unreachable | feedback
    dedup_key   TEXT    NOT NULL UNIQUE,
    lang        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    not_before  INTEGER NOT NULL,
    state       TEXT    NOT NULL DEFAULT 'queued',
    tries       INTEGER NOT NULL DEFAULT 0,
    sent_at     INTEGER
);
CREATE INDEX outbox_queued ON outbox (not_before) WHERE state = 'queued';

CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    request_id  INTEGER NOT NULL REFERENCES requests (id),
    at          INTEGER NOT NULL,
    from_state  TEXT,
    to_state    TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    detail      TEXT
);
CREATE INDEX audit_request ON audit (request_id, id);

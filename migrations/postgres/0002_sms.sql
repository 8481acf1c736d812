-- SMS to patients: why a message was skipped or failed, and the opt-out list.
-- Kept in step with migrations/sqlite/0002_sms.sql: same tables, columns, indexes.

-- outbox.state: queued | sent | failed | skipped; reason says why for failed and skipped
-- (fixed line, opted out, gateway answer class …), never the number or the text.
ALTER TABLE outbox ADD COLUMN reason TEXT;

-- Feedback: at most one survey per number per period.
CREATE INDEX outbox_request_kind ON outbox (request_id, kind);

-- Numbers (E.164) that asked for no more surveys.
CREATE TABLE sms_optout (
    number      TEXT    PRIMARY KEY,
    created_at  BIGINT  NOT NULL,
    channel     TEXT    NOT NULL
);

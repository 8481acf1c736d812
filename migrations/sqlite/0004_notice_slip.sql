-- The window a notice told the patient (its end), to send a new notice when it slips.
-- Kept in step with migrations/postgres/0004_notice_slip.sql.
ALTER TABLE outbox ADD COLUMN told_to INTEGER;
CREATE INDEX outbox_told ON outbox (told_to) WHERE told_to IS NOT NULL;

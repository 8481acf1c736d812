-- When the far end of an attempt answered, written before any prompt or hand-over: an
-- attempt left live with this mark reached the patient and is never dialled again.
-- Kept in step with migrations/sqlite/0005_answered.sql.
ALTER TABLE attempts ADD COLUMN answered_at BIGINT;

-- The window the patient was last told (by the intake answer, a notice SMS, the IVR or the
-- patient page), and when: the report's punctuality compares the first call's start with
-- it, and a request told it cannot be served the same day is marked told_same_day = 0.
-- Written only through crate::eta, the one place an ETA is computed.
-- Kept in step with migrations/postgres/0006_told_window.sql.
ALTER TABLE requests ADD COLUMN told_from INTEGER;
ALTER TABLE requests ADD COLUMN told_to INTEGER;
ALTER TABLE requests ADD COLUMN told_at INTEGER;
ALTER TABLE requests ADD COLUMN told_same_day INTEGER;

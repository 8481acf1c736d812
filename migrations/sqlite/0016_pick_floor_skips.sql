-- The pick floor's skipping rows (PostgreSQL; SQLite keeps the table unused, see
-- migrations/sqlite/0015_pick_floors.sql). See migrations/postgres/0016_pick_floor_skips.sql.
-- Kept in step with migrations/postgres/0016_pick_floor_skips.sql.
ALTER TABLE pick_floors ADD COLUMN skip_until INTEGER;

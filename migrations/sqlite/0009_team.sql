-- The care team a request is routed to (the dialplan's [teams]; NULL: the service's own
-- [connect] target). Given at intake (the API's "team") and checked against the dialplan.
-- Kept in step with migrations/postgres/0009_team.sql.
ALTER TABLE requests ADD COLUMN team TEXT;

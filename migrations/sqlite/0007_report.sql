-- Reports read the requests made in a period (`callbackd report`): by creation instant.
-- Kept in step with migrations/postgres/0007_report.sql.
CREATE INDEX requests_created ON requests (created_at, service);
-- The supervisor page's last hour of outcomes (`GET /v1/live`).
CREATE INDEX attempts_ended ON attempts (ended_at) WHERE ended_at IS NOT NULL;

-- Reports count the sent SMS of the requests made in a period (`callbackd report`): the
-- outbox by request, so the join is an index lookup per request, not a scan of the outbox.
-- Kept in step with migrations/postgres/0012_report_outbox.sql.
CREATE INDEX outbox_request ON outbox (request_id);

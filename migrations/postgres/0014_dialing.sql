-- The live calls, one row per request being dialled, kept by triggers in the transaction
-- that changes a request. Every claim counts them under the trunk's gate (capacity and
-- max_calls across servers). Counted in `requests` through a partial index, each count
-- also passed over the index entry of every request claimed since the oldest open
-- transaction began, and visited that request's row wherever it lay in the table: a
-- session left idle in a transaction made every claim slower, with the gate held. Here a
-- finished call leaves at most a dead row in the same few pages, and the count reads those
-- pages only.
-- Kept in step with migrations/sqlite/0014_dialing.sql.
CREATE TABLE dialing (
    request_id  BIGINT  PRIMARY KEY,
    service     TEXT    NOT NULL
);

INSERT INTO dialing (request_id, service) SELECT id, service FROM requests WHERE state = 'dialing';

-- requests_dialing stays: servers not yet upgraded count through it while a rolling
-- upgrade runs (README, "Shutdown and upgrade").

CREATE FUNCTION dialing_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.state = 'dialing' THEN
        DELETE FROM dialing WHERE request_id = OLD.id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.state = 'dialing' THEN
        INSERT INTO dialing (request_id, service) VALUES (NEW.id, NEW.service);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER dialing_insert AFTER INSERT ON requests
    FOR EACH ROW WHEN (NEW.state = 'dialing')
    EXECUTE FUNCTION dialing_track();
CREATE TRIGGER dialing_update AFTER UPDATE OF state, service ON requests
    FOR EACH ROW
    WHEN ((OLD.state = 'dialing' OR NEW.state = 'dialing')
          AND (OLD.state IS DISTINCT FROM NEW.state OR OLD.service IS DISTINCT FROM NEW.service))
    EXECUTE FUNCTION dialing_track();
CREATE TRIGGER dialing_delete AFTER DELETE ON requests
    FOR EACH ROW WHEN (OLD.state = 'dialing')
    EXECUTE FUNCTION dialing_track();

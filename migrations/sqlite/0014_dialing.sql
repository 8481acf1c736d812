-- The live calls, one row per request being dialled, kept by triggers in the transaction
-- that changes a request (PostgreSQL counts them at every claim; SQLite keeps the same
-- table and triggers, so both describe one schema and either can be read the same way).
-- See migrations/postgres/0014_dialing.sql for why the count left `requests`.
-- Kept in step with migrations/postgres/0014_dialing.sql.
CREATE TABLE dialing (
    request_id  INTEGER PRIMARY KEY,
    service     TEXT    NOT NULL
);

INSERT INTO dialing (request_id, service) SELECT id, service FROM requests WHERE state = 'dialing';

-- requests_dialing stays: servers not yet upgraded count through it while a rolling
-- upgrade runs (README, "Shutdown and upgrade").

CREATE TRIGGER dialing_insert AFTER INSERT ON requests
WHEN NEW.state = 'dialing'
BEGIN
    INSERT INTO dialing (request_id, service) VALUES (NEW.id, NEW.service);
END;

CREATE TRIGGER dialing_update AFTER UPDATE OF state, service ON requests
WHEN (OLD.state = 'dialing' OR NEW.state = 'dialing')
    AND (OLD.state IS NOT NEW.state OR OLD.service IS NOT NEW.service)
BEGIN
    DELETE FROM dialing WHERE request_id = OLD.id AND OLD.state = 'dialing';
    INSERT INTO dialing (request_id, service)
        SELECT NEW.id, NEW.service WHERE NEW.state = 'dialing';
END;

CREATE TRIGGER dialing_delete AFTER DELETE ON requests
WHEN OLD.state = 'dialing'
BEGIN
    DELETE FROM dialing WHERE request_id = OLD.id;
END;

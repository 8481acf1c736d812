-- The live queue depth per service and state, kept by triggers in the transaction that
-- changes a request, so that /metrics, /v1/services and intake's estimate read a few rows
-- instead of counting every live request. Each change appends a +1/-1 row (appending never
-- waits on another writer's row, also with several PostgreSQL servers); Store::depth sums
-- the rows and, when there are many, folds them into one row per service and state.
-- Kept in step with migrations/postgres/0011_queue_depth.sql.
CREATE TABLE queue_depth (
    id       INTEGER PRIMARY KEY,
    service  TEXT    NOT NULL,
    state    TEXT    NOT NULL,
    n        INTEGER NOT NULL
);

INSERT INTO queue_depth (service, state, n)
    SELECT service, state, COUNT(*) FROM requests
    WHERE state IN ('pending', 'dialing', 'retry_wait')
    GROUP BY service, state;

CREATE TRIGGER queue_depth_insert AFTER INSERT ON requests
WHEN NEW.state IN ('pending', 'dialing', 'retry_wait')
BEGIN
    INSERT INTO queue_depth (service, state, n) VALUES (NEW.service, NEW.state, 1);
END;

CREATE TRIGGER queue_depth_update AFTER UPDATE OF state, service ON requests
WHEN OLD.state IS NOT NEW.state OR OLD.service IS NOT NEW.service
BEGIN
    INSERT INTO queue_depth (service, state, n)
        SELECT OLD.service, OLD.state, -1
        WHERE OLD.state IN ('pending', 'dialing', 'retry_wait');
    INSERT INTO queue_depth (service, state, n)
        SELECT NEW.service, NEW.state, 1
        WHERE NEW.state IN ('pending', 'dialing', 'retry_wait');
END;

CREATE TRIGGER queue_depth_delete AFTER DELETE ON requests
WHEN OLD.state IN ('pending', 'dialing', 'retry_wait')
BEGIN
    INSERT INTO queue_depth (service, state, n) VALUES (OLD.service, OLD.state, -1);
END;

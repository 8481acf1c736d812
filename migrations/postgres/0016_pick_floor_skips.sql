-- A waiting request not yet due at the front of the serving order (a retry's pause) used
-- to hold its service's floor where it was until it was claimed: every pick meanwhile
-- passed over the index entries of every request claimed behind it since the oldest open
-- transaction began. A raise now looks past such requests, up to the first one due, and
-- writes two rows: the first waiting request's key with skip_until = the earliest due time
-- among the requests it looked past, and the first due request's key (skip_until NULL). A
-- pick made before skip_until starts at the second key: every request between the two is
-- not due before skip_until, so none it could take lies below. Rows with skip_until NULL
-- (raises, and every lowering by the trigger) always count.
--
-- pick_floor(svc) keeps its meaning (the smallest key of the newest generation, every row
-- counted): servers of migration 0015 still read it, and it is at or below every waiting
-- request. pick_floor(svc, now) is the pick's floor at `now` (Unix ms).
-- Kept in step with migrations/sqlite/0016_pick_floor_skips.sql.
ALTER TABLE pick_floors ADD COLUMN skip_until BIGINT;

CREATE FUNCTION pick_floor(svc TEXT, now BIGINT, OUT generation BIGINT, OUT deadline_at BIGINT,
                           OUT created_at BIGINT, OUT id BIGINT)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    SELECT f.generation, f.deadline_at, f.created_at, f.id
        INTO generation, deadline_at, created_at, id
        FROM pick_floors f
        WHERE f.service = svc AND f.generation = (SELECT g.generation FROM pick_floors g
            WHERE g.service = svc ORDER BY g.generation DESC LIMIT 1)
          AND (f.skip_until IS NULL OR f.skip_until <= now)
        ORDER BY f.deadline_at, f.created_at, f.id LIMIT 1;
    IF NOT FOUND THEN
        -- No generation, or only skipping rows whose time has not come (a raise always
        -- writes a row that always counts, so only the former): the lowest key there is.
        generation := NULL;
        deadline_at := -9223372036854775808;
        created_at := deadline_at;
        id := deadline_at;
    END IF;
END;
$$;

-- As in 0015, but NEW's key is compared with the floor of rows that always count (a pick
-- before skip_until starts there), and a waiting request whose due time moved (it may now
-- fall due before skip_until) lowers the floor too.
CREATE OR REPLACE FUNCTION pick_floor_lower() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    floor RECORD;
    gen BIGINT;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'a waiting request (id %) was written in a % transaction',
            NEW.id, current_setting('transaction_isolation')
            USING HINT = 'Write requests in READ COMMITTED transactions (PostgreSQL''s '
                'default): the pick floor (migration 0015) is kept by a trigger that must '
                'see floors raised by other servers after this transaction began.';
    END IF;
    PERFORM pg_advisory_xact_lock_shared(1668178276, hashtext(NEW.service));
    SELECT g.generation INTO gen FROM pick_floors g
        WHERE g.service = NEW.service ORDER BY g.generation DESC LIMIT 1;
    IF gen IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT * INTO floor FROM pick_floor(NEW.service, '-9223372036854775808'::BIGINT);
    IF floor.generation IS NULL
       OR (NEW.deadline_at, NEW.created_at, NEW.id) < (floor.deadline_at, floor.created_at, floor.id) THEN
        -- The key may be there already as a skipping row (the request was looked past,
        -- and its due time moved): it counts always from now on.
        INSERT INTO pick_floors (service, generation, deadline_at, created_at, id)
            VALUES (NEW.service, gen, NEW.deadline_at, NEW.created_at, NEW.id)
            ON CONFLICT (service, generation, deadline_at, created_at, id)
            DO UPDATE SET skip_until = NULL;
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER pick_floor_update ON requests;
CREATE TRIGGER pick_floor_update AFTER UPDATE OF state, service, deadline_at, created_at, id, due_at ON requests
    FOR EACH ROW
    WHEN (NEW.state IN ('pending','retry_wait')
          AND (OLD.state, OLD.service, OLD.deadline_at, OLD.created_at, OLD.id, OLD.due_at)
              IS DISTINCT FROM (NEW.state, NEW.service, NEW.deadline_at, NEW.created_at, NEW.id, NEW.due_at))
    EXECUTE FUNCTION pick_floor_lower();

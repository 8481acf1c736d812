-- Where a claim's pick starts in the serving order. The pick walks the index
-- requests_waiting_order from the front; every request claimed since the oldest open
-- transaction began (a forgotten psql session, a stuck report) leaves an index entry there
-- that no vacuum may remove, and each pick passed over all of them, so claims slowed down
-- the longer such a session stayed. The floor is a key (deadline_at, created_at, id) at or
-- below every waiting request of a service: the pick starts there.
--
-- A service's floor is the smallest key of its newest generation. A claimer raises it now
-- and then (store::lease::raise_floor): under an exclusive advisory lock it reads the first
-- waiting request at or above the floor, removes the generation and writes the next one
-- with that key. Every change that makes a request waiting, or moves a waiting request in
-- the order, lowers the floor to that request's key first (pick_floor_lower, under the
-- same lock shared), so the floor is never above a waiting request that a committed
-- transaction left. Nothing is rewritten and old generations sit below the newest in the
-- key, so reading the floor never passes over a removed row.
--
-- The floor is only a starting point: deleting every row of this table is always safe (the
-- pick then starts at the front until the next raise). Restore into requests with triggers
-- disabled (session_replication_role = replica) must be followed by that delete.
-- Kept in step with migrations/sqlite/0015_pick_floors.sql.
CREATE TABLE pick_floors (
    service     TEXT    NOT NULL,
    generation  BIGINT  NOT NULL,
    deadline_at BIGINT  NOT NULL,
    created_at  BIGINT  NOT NULL,
    id          BIGINT  NOT NULL,
    PRIMARY KEY (service, generation, deadline_at, created_at, id)
);

-- The floor of a service: the generation and smallest key of its newest generation, or no
-- generation and the lowest key there is. PL/pgSQL, so that its query's plan is kept per
-- session, and the pick (planned at each claim for its LIMIT) plans only a function call.
CREATE FUNCTION pick_floor(svc TEXT, OUT generation BIGINT, OUT deadline_at BIGINT,
                           OUT created_at BIGINT, OUT id BIGINT)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    SELECT f.generation, f.deadline_at, f.created_at, f.id
        INTO generation, deadline_at, created_at, id
        FROM pick_floors f
        WHERE f.service = svc AND f.generation = (SELECT g.generation FROM pick_floors g
            WHERE g.service = svc ORDER BY g.generation DESC LIMIT 1)
        ORDER BY f.deadline_at, f.created_at, f.id LIMIT 1;
    IF NOT FOUND THEN
        deadline_at := -9223372036854775808;
        created_at := deadline_at;
        id := deadline_at;
    END IF;
END;
$$;

-- Lowers the floor of NEW.service to NEW's key if it lies below. Runs after the row is
-- written; the shared lock is held to the end of the transaction, so a raise (exclusive)
-- either saw this transaction's commit or runs after it and reads this lowering. The
-- floor is read in a snapshot of its own, taken after the lock, which only READ COMMITTED
-- gives a trigger: a transaction with an older snapshot could miss a raise that committed
-- meanwhile.
CREATE FUNCTION pick_floor_lower() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    floor RECORD;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'a waiting request (id %) was written in a % transaction',
            NEW.id, current_setting('transaction_isolation')
            USING HINT = 'Write requests in READ COMMITTED transactions (PostgreSQL''s '
                'default): the pick floor (migration 0015) is kept by a trigger that must '
                'see floors raised by other servers after this transaction began.';
    END IF;
    PERFORM pg_advisory_xact_lock_shared(1668178276, hashtext(NEW.service));
    SELECT * INTO floor FROM pick_floor(NEW.service);
    IF floor.generation IS NOT NULL
       AND (NEW.deadline_at, NEW.created_at, NEW.id) < (floor.deadline_at, floor.created_at, floor.id) THEN
        INSERT INTO pick_floors (service, generation, deadline_at, created_at, id)
            VALUES (NEW.service, floor.generation, NEW.deadline_at, NEW.created_at, NEW.id)
            ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER pick_floor_insert AFTER INSERT ON requests
    FOR EACH ROW WHEN (NEW.state IN ('pending','retry_wait'))
    EXECUTE FUNCTION pick_floor_lower();
CREATE TRIGGER pick_floor_update AFTER UPDATE OF state, service, deadline_at, created_at, id ON requests
    FOR EACH ROW
    WHEN (NEW.state IN ('pending','retry_wait')
          AND (OLD.state, OLD.service, OLD.deadline_at, OLD.created_at, OLD.id)
              IS DISTINCT FROM (NEW.state, NEW.service, NEW.deadline_at, NEW.created_at, NEW.id))
    EXECUTE FUNCTION pick_floor_lower();

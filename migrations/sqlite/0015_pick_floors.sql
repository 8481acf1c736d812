-- Where a claim's pick starts in the serving order (PostgreSQL; SQLite keeps the same
-- table, unused but harmless: one server claims, and its index holds no entries that a
-- long transaction keeps from being removed). See migrations/postgres/0015_pick_floors.sql.
-- Kept in step with migrations/postgres/0015_pick_floors.sql.
CREATE TABLE pick_floors (
    service     TEXT    NOT NULL,
    generation  INTEGER NOT NULL,
    deadline_at INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    id          INTEGER NOT NULL,
    PRIMARY KEY (service, generation, deadline_at, created_at, id)
);

-- The shared call rate without rewriting a row (PostgreSQL; SQLite keeps the same table,
-- unused but harmless). A long transaction elsewhere (a forgotten psql session) keeps
-- every version of a row rewritten since it began, and every read of that row walks them
-- all: claim_gate's next_start, rewritten by every claim, made each claim slower the
-- longer such a session stayed. Now a claim under a call rate appends the trunk's next
-- start here and removes the one it read (by its key), and reads the newest with a
-- backward index scan that stops at the first row; claim_gate's row is still locked by
-- every claim's reserve step, but no longer updated.
-- Kept in step with migrations/postgres/0013_claim_starts.sql.
CREATE TABLE claim_starts (
    trunk       TEXT    NOT NULL,
    next_us     INTEGER NOT NULL,     -- Unix µs: above 1,000 calls/s starts are < 1 ms apart
    PRIMARY KEY (trunk, next_us)
);

INSERT INTO claim_starts (trunk, next_us) SELECT trunk, next_start * 1000 FROM claim_gate;

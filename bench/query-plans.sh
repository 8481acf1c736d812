#!/bin/sh
# Prints SQLite's query plans for the queue's hot queries (the SQL of src/store/mod.rs,
# literal values in place of parameters) on an empty database built from the migration.
# Usage: bench/query-plans.sh        (needs the sqlite3 command-line tool)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
db=$(mktemp -d)/plans.db
trap 'rm -rf "$(dirname "$db")"' EXIT
sqlite3 "$db" < "$here/migrations/sqlite/0001_queue.sql"
plan() {
    printf '\n-- %s\n' "$1"
    sqlite3 "$db" "EXPLAIN QUERY PLAN $2"
}
plan "Store::mark_missed (SELECT inside BEGIN IMMEDIATE; every scheduler turn)" \
    "SELECT service, COUNT(*) AS n FROM requests WHERE deadline_missed = 0 AND state IN ('pending','dialing','retry_wait') AND deadline_at <= 5 GROUP BY service"
plan "Store::depth (start-up, /metrics, /v1/services)" \
    "SELECT service, state, COUNT(*) AS n FROM requests WHERE state IN ('pending','dialing','retry_wait') GROUP BY service, state ORDER BY service, state"
plan "Store::connected_since (POST when fewer than 5000 ahead, GET /v1/services, GET /v1/callbacks/ID)" \
    "SELECT COUNT(*) AS n FROM requests WHERE service = 'a' AND state = 'connected' AND final_at >= 5"
plan "Store::next_due (per service, every scheduler turn with a dialer)" \
    "SELECT MIN(due_at) AS due FROM requests WHERE service = 'a' AND state IN ('pending','retry_wait')"
plan "Store::due (per service, every scheduler turn with a dialer)" \
    "SELECT * FROM requests WHERE service = 'a' AND state IN ('pending','retry_wait') AND due_at <= 5 ORDER BY deadline_at, created_at, id LIMIT 1"
plan "Store::ahead_of (every POST)" \
    "SELECT COUNT(*) AS n FROM (SELECT 1 FROM requests WHERE service = 'a' AND state IN ('pending','retry_wait') AND (deadline_at < 1 OR (deadline_at = 1 AND (created_at < 2 OR (created_at = 2 AND id < 3)))) LIMIT 5000) AS ahead"
plan "Store::live_for (every POST)" \
    "SELECT * FROM requests WHERE service = 'a' AND number = 'x' AND state IN ('pending','dialing','retry_wait')"
plan "Store::next_deadline" \
    "SELECT MIN(deadline_at) AS d FROM requests WHERE deadline_missed = 0 AND state IN ('pending','dialing','retry_wait')"
plan "Store::expired_waiting" \
    "SELECT * FROM requests WHERE state IN ('pending','retry_wait') AND expires_at <= 5 ORDER BY expires_at LIMIT 500"

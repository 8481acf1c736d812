// graphile-worker beside callbackd's claims (benches/claims.rs): on the same database, queue
// JOBS no-op jobs, then run WORKERS runners (concurrency 1 each, like callbackd's claimers
// that claim one request at a time) until every job is claimed and completed.
// Prints one JSON line: {"jobs":…, "workers":…, "secs":…, "per_sec":…}.
//
// Usage: node bench.mjs CONNECTION_STRING JOBS WORKERS
import { Logger, run, runMigrations } from "graphile-worker";
import pg from "pg";

const [url, jobsArg, workersArg] = process.argv.slice(2);
const jobs = Number(jobsArg);
const workers = Number(workersArg);
if (!url || !(jobs > 0) || !(workers > 0)) {
  console.error("usage: node bench.mjs CONNECTION_STRING JOBS WORKERS");
  process.exit(2);
}
// No log line per job: the peer is measured doing only its queue work.
const quiet = { logger: new Logger(() => () => {}) };
await runMigrations({ connectionString: url, ...quiet });
const client = new pg.Client({ connectionString: url });
await client.connect();
await client.query(
  "SELECT graphile_worker.add_job('noop', json_build_object('i', i)) FROM generate_series(1, $1) i",
  [jobs],
);
await client.query("VACUUM ANALYZE graphile_worker._private_jobs");
let done = 0;
let finish;
const allDone = new Promise((resolve) => (finish = resolve));
const start = process.hrtime.bigint();
const runners = [];
for (let w = 0; w < workers; w++) {
  const runner = await run({
    connectionString: url,
    concurrency: 1,
    noHandleSignals: true,
    pollInterval: 1000,
    taskList: { noop: async () => {} },
    ...quiet,
  });
  runner.events.on("job:complete", () => {
    done += 1;
    if (done === jobs) finish();
  });
  runners.push(runner);
}
await allDone;
const secs = Number(process.hrtime.bigint() - start) / 1e9;
await Promise.all(runners.map((r) => r.stop()));
const left = await client.query("SELECT COUNT(*)::int AS n FROM graphile_worker._private_jobs");
await client.end();
console.log(JSON.stringify({ jobs, workers, secs, per_sec: jobs / secs, left: left.rows[0].n }));

#!/usr/bin/env node
// Initial copy of 10 databases of ≈100 MB each by the agent (start until
// every table is synchronised), beside a plain COPY … TO STDOUT →
// COPY … FROM STDIN of the same tables by this script, 10 pipes at once.
// Target: ratio ≤ 1.5. Needs the rig (make rig-up).
import { pipeline } from 'node:stream/promises';
import copyStreams from 'pg-copy-streams';
import { recreateDatabases, dropDatabases, migration, runAgent, waitSynchronised, teardown, sql, admin, rig, fmt } from './lib.mjs';

const N = Number(process.env.DATABASES ?? 10);
const ROWS = Number(process.env.ROWS ?? 800_000);
const r = rig();
const dbs = Array.from({ length: N }, (_, i) => `bench_copy_${String(i).padStart(2, '0')}`);
const baseDbs = dbs.map((d) => `${d}_plain`);
const TABLE = 'CREATE TABLE payload (id bigint PRIMARY KEY, body text NOT NULL, created timestamptz NOT NULL DEFAULT now())';

const m = migration('bench-copy', dbs);
await teardown(m); // what an interrupted earlier run left
await recreateDatabases(r.servers.pg17, dbs);
await recreateDatabases(r.servers.pg18, [...dbs, ...baseDbs]);
for (const db of dbs) await sql(r.servers.pg18, db, TABLE);
for (const db of baseDbs) await sql(r.servers.pg18, db, TABLE);
console.log(`loading ${N} source databases with ${ROWS} rows each...`);
await Promise.all(
  dbs.map(async (db) => {
    await sql(r.servers.pg17, db, TABLE);
    await sql(r.servers.pg17, db, `INSERT INTO payload (id, body) SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, ${ROWS}) g`);
    await sql(r.servers.pg17, db, 'VACUUM ANALYZE payload');
  }),
);
const size = await sql(r.servers.pg17, dbs[0], "SELECT pg_total_relation_size('payload') AS b, pg_table_size('payload') AS t");
console.log(`each database: table ${(size[0].t / 1048576).toFixed(0)} MiB, with index ${(size[0].b / 1048576).toFixed(0)} MiB; ${N} databases`);

// The plain copy: 10 pipes at once, source COPY TO STDOUT into target COPY FROM STDIN.
const t0 = Date.now();
await Promise.all(
  dbs.map(async (db, i) => {
    const from = await admin(r.servers.pg17, db);
    const to = await admin(r.servers.pg18, baseDbs[i]);
    try {
      await pipeline(from.query(copyStreams.to('COPY payload TO STDOUT')), to.query(copyStreams.from('COPY payload FROM STDIN')));
    } finally {
      await from.end();
      await to.end();
    }
  }),
);
const plain = Date.now() - t0;

try {
  const t1 = Date.now();
  const start = await runAgent(m, ['start']);
  if (start.code !== 0) throw new Error(`start failed: ${start.stderr}`);
  await waitSynchronised(r.servers.pg18, dbs);
  const agent = Date.now() - t1;
  const counted = await sql(r.servers.pg18, dbs[N - 1], 'SELECT count(*)::int AS n FROM payload');
  if (counted[0].n !== ROWS) throw new Error(`copied ${counted[0].n} rows, expected ${ROWS}`);
  console.log(`plain COPY TO STDOUT -> COPY FROM STDIN, ${N} pipes: ${fmt(plain)}`);
  console.log(`pgtwin-migrate start until every table is synchronised: ${fmt(agent)} (start itself ${fmt(start.ms)})`);
  console.log(`ratio agent / plain copy: ${(agent / plain).toFixed(2)} (target <= 1.5)`);
} finally {
  await teardown(m);
  await dropDatabases(r.servers.pg17, dbs);
  await dropDatabases(r.servers.pg18, [...dbs, ...baseDbs]);
}

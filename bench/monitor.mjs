#!/usr/bin/env node
// Wall time (process start to exit) of one monitor action with 10 and with
// 100 databases, as Pacemaker runs it: every INTERVAL seconds (default 10,
// as configured), for RUNS monitors (default 15, past the minute after which
// each database's details are read again, a sixth of them per monitor).
// Targets (issue 11): median ≤ 0.3 s (10) and ≤ 1 s (100); the first monitor
// after start of 100 ≤ 2 s. Also prints the first monitor after the start
// that set the migration up (its memory of each database says "copying", so
// it reads every database), and the first monitor after a restart (stop,
// start: the resource restarted or moved; start read each target itself).
// Needs the rig (make rig-up); creates and removes its own databases.
import { recreateDatabases, dropDatabases, migration, runAgent, waitSynchronised, teardown, sql, rig, stats, fmt, onClusterRig } from './lib.mjs';

// --cluster: the same measurement on the cluster rig (bench/cluster.ts).
if (process.argv.includes('--cluster')) process.exit(onClusterRig('monitor'));

const RUNS = Number(process.env.RUNS ?? 15);
const INTERVAL = Number(process.env.INTERVAL ?? 10) * 1000;
const sizes = (process.env.SIZES ?? '10,100').split(',').map(Number);
const r = rig();

for (const n of sizes) {
  const dbs = Array.from({ length: n }, (_, i) => `bench_mon_${String(i).padStart(3, '0')}`);
  const m = migration(`bench-monitor-${n}`, dbs);
  await teardown(m); // what an interrupted earlier run left
  await recreateDatabases(r.servers.pg17, dbs);
  await recreateDatabases(r.servers.pg18, dbs);
  for (const db of dbs) {
    for (const s of [r.servers.pg17, r.servers.pg18]) await sql(s, db, 'CREATE TABLE items (id bigserial PRIMARY KEY, v text)');
    await sql(r.servers.pg17, db, "INSERT INTO items (v) SELECT 'x' FROM generate_series(1, 100)");
  }
  try {
    const start = await runAgent(m, ['start']);
    if (start.code !== 0) throw new Error(`start failed: ${start.stderr}`);
    await waitSynchronised(r.servers.pg18, dbs);
    const env = { OCF_RESKEY_CRM_meta_interval: '10000', OCF_RESKEY_CRM_meta_timeout: '30000' };
    const first = await runAgent(m, ['monitor'], env);
    const times = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = Date.now();
      const res = await runAgent(m, ['monitor'], env);
      if (res.code !== 0) throw new Error(`monitor exited ${res.code}: ${res.stderr}`);
      times.push(res.ms);
      await new Promise((r) => setTimeout(r, Math.max(0, INTERVAL - (Date.now() - t0))));
    }
    // The resource restarted (or moved to another node): start adopts every database and reads its target side itself.
    for (const action of ['stop', 'start']) {
      const res = await runAgent(m, [action]);
      if (res.code !== 0) throw new Error(`${action} failed: ${res.stderr}`);
    }
    const restarted = await runAgent(m, ['monitor'], env);
    if (restarted.code !== 0) throw new Error(`monitor after the restart exited ${restarted.code}: ${restarted.stderr}`);
    const s = stats(times);
    console.log(
      `monitor, ${String(n).padStart(3)} databases, every ${INTERVAL / 1000} s: median ${fmt(s.median)}  p10 ${fmt(s.p10)}  p90 ${fmt(s.p90)}  max ${fmt(Math.max(...times))}` +
        `  (${s.n} runs; first after the start that set it up and copied: ${fmt(first.ms)}; first after a restart: ${fmt(restarted.ms)})`,
    );
  } finally {
    await teardown(m);
    await dropDatabases(r.servers.pg17, dbs);
    await dropDatabases(r.servers.pg18, dbs);
  }
}

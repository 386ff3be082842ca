#!/usr/bin/env node
// The cutover of 1, 10 and 50 databases under steady writes: the read-only
// window (first write refused by the source → VIPs swapped and the source
// read-write again), the whole cutover, and each step. Targets for the
// window: ≤ 1 s, ≤ 2 s and ≤ 5 s median. Needs the rig (make rig-up).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { recreateDatabases, dropDatabases, migration, runAgent, waitSynchronised, teardown, sql, rig, stats, cibRecord, registerResource, unregisterResource } from './lib.mjs';

const RUNS = Number(process.env.RUNS ?? 3);
const sizes = (process.env.SIZES ?? '1,10,50').split(',').map(Number);
const WRITES_PER_SECOND = Number(process.env.WRITES ?? 100);
const r = rig();

/**
 * The server that answers on the production address: the one whose VIP
 * resource actually holds it now (the stand-in's state file, written when
 * Pacemaker starts it), not the one the CIB already names.
 */
function productionHolder(productionIp) {
  const holds = (rsc) => {
    try {
      return readFileSync(`/run/resource-agents/VipDummy-${rsc}.state`, 'utf8').trim() === productionIp;
    } catch {
      return false;
    }
  };
  return holds('postgres-vip-18') ? r.servers.pg18 : holds('postgres-vip') ? r.servers.pg17 : undefined;
}

function startWriters(dbs) {
  const productionIp = (() => {
    const xml = execFileSync('crm_resource', ['--resource', 'postgres-vip', '--get-parameter', 'ip'], { encoding: 'utf8' });
    return xml.trim();
  })();
  let server = r.servers.pg17;
  let running = true;
  const events = [];
  const router = (async () => {
    while (running) {
      server = productionHolder(productionIp);
      await new Promise((res) => setTimeout(res, 50));
    }
  })();
  const gap = (1000 * dbs.length) / WRITES_PER_SECOND;
  const loops = dbs.map(async (db) => {
    let target;
    let client;
    while (running) {
      const t0 = Date.now();
      try {
        if (!server) throw Object.assign(new Error('no server holds the production address'), { code: 'no-address' });
        if (target !== server || !client) {
          await client?.end().catch(() => {});
          target = server;
          client = new pg.Client({ host: target.socket, port: target.port, user: 'postgres', database: db });
          client.on('error', () => {});
          await client.connect();
        }
        await client.query('INSERT INTO orders (token) VALUES ($1)', [randomUUID()]);
        events.push({ ok: true, sentAt: t0, doneAt: Date.now() });
      } catch (err) {
        events.push({ ok: false, sentAt: t0, doneAt: Date.now(), code: err.code });
        if (err.code !== '25006') {
          await client?.end().catch(() => {});
          client = undefined;
        }
      }
      const wait = gap - (Date.now() - t0);
      if (wait > 0) await new Promise((res) => setTimeout(res, wait));
    }
    await client?.end().catch(() => {});
  });
  return {
    events,
    async stop() {
      running = false;
      await Promise.all([router, ...loops]);
    },
  };
}

async function oneCutover(n, run) {
  const dbs = Array.from({ length: n }, (_, i) => `bench_co_${n}_${String(i).padStart(2, '0')}`);
  const m = migration(`bench-cutover-${n}-${run}`, dbs, { production_vip_resource: 'postgres-vip', target_vip_resource: 'postgres-vip-18' });
  await teardown(m); // what an interrupted earlier run left
  unregisterResource(m);
  registerResource(m);
  await recreateDatabases(r.servers.pg17, dbs);
  await recreateDatabases(r.servers.pg18, dbs);
  for (const db of dbs) {
    for (const s of [r.servers.pg17, r.servers.pg18]) await sql(s, db, 'CREATE TABLE orders (id bigserial PRIMARY KEY, token uuid NOT NULL)');
    await sql(r.servers.pg17, db, 'INSERT INTO orders (token) SELECT gen_random_uuid() FROM generate_series(1, 100)');
  }
  try {
    const start = await runAgent(m, ['start']);
    if (start.code !== 0) throw new Error(`start failed: ${start.stderr}`);
    await waitSynchronised(r.servers.pg18, dbs);
    const writers = startWriters(dbs);
    await new Promise((res) => setTimeout(res, 3000));
    const t0 = Date.now();
    await runAgent(m, ['reload-agent'], { OCF_RESKEY_cutover_ready: 'true' });
    let rec;
    for (;;) {
      rec = cibRecord(m.instance);
      if (rec['cutover-state'] === 'complete' || rec['cutover-state'] === 'failed') break;
      if (Date.now() - t0 > 600_000) throw new Error('cutover did not end');
      await new Promise((res) => setTimeout(res, 100));
    }
    await new Promise((res) => setTimeout(res, 1000));
    await writers.stop();
    if (rec['cutover-state'] !== 'complete') throw new Error(`cutover failed: ${rec['cutover-error']}`);
    const firstRefused = writers.events.filter((e) => !e.ok).sort((a, b) => a.sentAt - b.sentAt)[0];
    const nextOk = firstRefused && writers.events.filter((e) => e.ok && e.sentAt > firstRefused.sentAt).sort((a, b) => a.doneAt - b.doneAt)[0];
    return {
      window: Number(rec['cutover-window-ms']),
      total: Number(rec['cutover-total-ms']),
      steps: JSON.parse(rec['cutover-timings'] ?? '{}'),
      clientWindow: firstRefused && nextOk ? nextOk.doneAt - firstRefused.sentAt : NaN,
      writes: writers.events.length,
    };
  } finally {
    await teardown(m);
    unregisterResource(m);
    await dropDatabases(r.servers.pg17, dbs);
    await dropDatabases(r.servers.pg18, dbs);
  }
}

const ms = (v) => `${Math.round(v)} ms`;
for (const n of sizes) {
  const results = [];
  for (let run = 0; run < RUNS; run++) results.push(await oneCutover(n, run));
  const w = stats(results.map((x) => x.window));
  const c = stats(results.map((x) => x.clientWindow));
  const t = stats(results.map((x) => x.total));
  const stepNames = Object.keys(results[0].steps);
  const steps = stepNames.map((s) => `${s} ${ms(stats(results.map((x) => x.steps[s] ?? 0)).median)}`).join(', ');
  console.log(
    `cutover, ${String(n).padStart(2)} database(s), ${WRITES_PER_SECOND} writes/s: read-only window median ${ms(w.median)} (max ${ms(Math.max(...results.map((x) => x.window)))}), ` +
      `seen by the writers ${ms(c.median)}; whole cutover ${ms(t.median)}; ${results.length} runs`,
  );
  console.log(`   steps (median): ${steps}`);
}

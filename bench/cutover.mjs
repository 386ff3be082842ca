#!/usr/bin/env node
// The cutover of 1, 10 and 50 databases under WRITES writes/s PER DATABASE
// (default 100), measured as the application sees it: every database has its
// own writer following the production address (to the server whose VIP
// resource actually holds it now), and its outage is the time from its first
// refused write to its next accepted one. Reported: the worst database (and
// the median of the databases), per run; the agent's own read-only window
// and the whole cutover beside it.
//
// The floor, measured in the same run: Pacemaker applying the same swap of
// the two addresses (one CIB update, the same order constraint) with no
// migration involved, until both VIP resources run with their new address,
// plus one write round trip. The outage is also reported as a ratio to it,
// which travels between machines better than milliseconds do.
//
// Targets (issue 10): worst outage ≤ 0.8 s (1 database), ≤ 1.2 s (10), ≤ 3 s (50).
// Needs the rig (make rig-up, or make bench-cutover which brings it up and down).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { recreateDatabases, dropDatabases, migration, runAgent, waitSynchronised, teardown, sql, rig, stats, cibRecord, registerResource, unregisterResource, onClusterRig } from './lib.mjs';

// --cluster: the same measurement on the cluster rig (bench/cluster.ts).
if (process.argv.includes('--cluster')) process.exit(onClusterRig('cutover'));

const RUNS = Number(process.env.RUNS ?? 3);
const sizes = (process.env.SIZES ?? '1,10,50').split(',').map(Number);
const WRITES_PER_DB = Number(process.env.WRITES ?? 100);
const FLOOR_RUNS = Number(process.env.FLOOR_RUNS ?? 5);
const r = rig();

const vipIp = (rsc) => execFileSync('crm_resource', ['--resource', rsc, '--get-parameter', 'ip'], { encoding: 'utf8' }).trim();

/** What the stand-in VIP resource holds now (its state file, written when Pacemaker starts it). */
function held(rsc) {
  try {
    return readFileSync(`/run/resource-agents/VipDummy-${rsc}.state`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** The server the production address leads to now: the one whose VIP resource holds it. */
function productionHolder(productionIp) {
  return held('postgres-vip-18') === productionIp ? r.servers.pg18 : held('postgres-vip') === productionIp ? r.servers.pg17 : undefined;
}

/** One writer per database, each WRITES_PER_DB writes/s, following the production address. */
function startWriters(dbs) {
  const productionIp = vipIp('postgres-vip');
  let server = r.servers.pg17;
  let running = true;
  const events = new Map(dbs.map((db) => [db, []]));
  const router = (async () => {
    while (running) {
      server = productionHolder(productionIp);
      await new Promise((res) => setTimeout(res, 10));
    }
  })();
  const gap = 1000 / WRITES_PER_DB;
  const loops = dbs.map(async (db) => {
    const log = events.get(db);
    let target;
    let client;
    let next = Date.now();
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
        log.push({ ok: true, sentAt: t0, doneAt: Date.now() });
      } catch (err) {
        log.push({ ok: false, sentAt: t0, doneAt: Date.now(), code: err.code });
        if (err.code !== '25006') {
          await client?.end().catch(() => {});
          client = undefined;
        }
      }
      next += gap;
      const wait = next - Date.now();
      if (wait > 0) await new Promise((res) => setTimeout(res, wait));
      else next = Date.now();
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

/** A database's outage: its first refused write to its next accepted one (NaN when none was refused). */
function outage(log) {
  const refused = log.find((e) => !e.ok);
  if (!refused) return NaN;
  const next = log.filter((e) => e.ok && e.sentAt > refused.sentAt).sort((a, b) => a.doneAt - b.doneAt)[0];
  return next ? next.doneAt - refused.sentAt : NaN;
}

/**
 * The floor: the two addresses swapped in one CIB update as the agent does
 * it (with the same order constraint), until both VIP resources hold their
 * new address, plus one write round trip; then swapped back.
 */
async function floorOnce() {
  const a = vipIp('postgres-vip');
  const b = vipIp('postgres-vip-18');
  const swap = (x, y) => {
    const frag =
      '<configuration><resources>' +
      `<primitive id="postgres-vip"><instance_attributes id="postgres-vip-params"><nvpair id="postgres-vip-ip" name="ip" value="${x}"/></instance_attributes></primitive>` +
      `<primitive id="postgres-vip-18"><instance_attributes id="postgres-vip-18-params"><nvpair id="postgres-vip-18-ip" name="ip" value="${y}"/></instance_attributes></primitive>` +
      '</resources><constraints><rsc_order id="bench-floor-vip-order" first="postgres-vip" first-action="stop" then="postgres-vip-18" then-action="start" kind="Optional" symmetrical="true"/></constraints></configuration>';
    execFileSync('cibadmin', ['--modify', '--allow-create', '--xpath', '/cib/configuration', '--xml-text', frag]);
  };
  const until = async (pred) => {
    for (const end = Date.now() + 60_000; Date.now() < end; ) {
      if (pred()) return;
      await new Promise((res) => setTimeout(res, 5));
    }
    throw new Error('the VIP resources did not take their new addresses within 60 s');
  };
  const c = new pg.Client({ host: r.servers.pg18.socket, port: r.servers.pg18.port, user: 'postgres', database: 'postgres' });
  await c.connect();
  try {
    await c.query('CREATE TABLE IF NOT EXISTS bench_floor (t uuid)');
    const t0 = Date.now();
    swap(b, a);
    await until(() => held('postgres-vip') === b && held('postgres-vip-18') === a);
    await c.query('INSERT INTO bench_floor VALUES ($1)', [randomUUID()]);
    const ms = Date.now() - t0;
    swap(a, b);
    await until(() => held('postgres-vip') === a && held('postgres-vip-18') === b);
    await c.query('DROP TABLE bench_floor');
    return ms;
  } finally {
    await c.end();
    execFileSync('cibadmin', ['--delete', '--xml-text', '<rsc_order id="bench-floor-vip-order"/>']);
  }
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
      if (['complete', 'failed', 'blocked'].includes(rec['cutover-state'])) break;
      if (Date.now() - t0 > 600_000) throw new Error('cutover did not end');
      await new Promise((res) => setTimeout(res, 100));
    }
    await new Promise((res) => setTimeout(res, 1000));
    await writers.stop();
    if (rec['cutover-state'] !== 'complete') throw new Error(`cutover ${rec['cutover-state']}: ${rec['cutover-error']}`);
    const outages = dbs.map((db) => outage(writers.events.get(db)));
    const rate = (dbs.reduce((a, db) => a + writers.events.get(db).length, 0) / n / ((Date.now() - t0 + 3000) / 1000));
    return {
      worst: Math.max(...outages),
      median: stats(outages).median,
      window: Number(rec['cutover-window-ms']),
      total: Number(rec['cutover-total-ms']),
      steps: JSON.parse(rec['cutover-timings'] ?? '{}'),
      rate,
    };
  } finally {
    await teardown(m);
    unregisterResource(m);
    await dropDatabases(r.servers.pg17, dbs);
    await dropDatabases(r.servers.pg18, dbs);
  }
}

const ms = (v) => `${Math.round(v)} ms`;
const floors = [];
for (let i = 0; i < FLOOR_RUNS; i++) floors.push(await floorOnce());
const floor = stats(floors).median;
console.log(`floor: Pacemaker swapping the two addresses (one CIB update, no migration) until both VIP resources run with them, plus one write: median ${ms(floor)} (${floors.map(ms).join(', ')})`);
for (const n of sizes) {
  const results = [];
  for (let run = 0; run < RUNS; run++) results.push(await oneCutover(n, run));
  const worst = stats(results.map((x) => x.worst));
  const stepNames = Object.keys(results[0].steps);
  const steps = stepNames.map((s) => `${s} ${ms(stats(results.map((x) => x.steps[s] ?? 0)).median)}`).join(', ');
  console.log(
    `cutover, ${String(n).padStart(2)} database(s), ${WRITES_PER_DB} writes/s per database (measured ${Math.round(stats(results.map((x) => x.rate)).median)}): ` +
      `worst database's outage median ${ms(worst.median)} (runs: ${results.map((x) => ms(x.worst)).join(', ')}) = ${(worst.median / floor).toFixed(1)} × floor; ` +
      `median database ${ms(stats(results.map((x) => x.median)).median)}; agent's read-only window ${ms(stats(results.map((x) => x.window)).median)}; whole cutover ${ms(stats(results.map((x) => x.total)).median)}`,
  );
  console.log(`   steps (median): ${steps}`);
}

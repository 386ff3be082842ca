#!/usr/bin/env node
// The demo's application: ~20 writes/s into each database, through whichever
// server holds the production address (postgres-vip's original ip), and a
// summary on SIGINT: acknowledged, refused, and every outage the writers saw.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import pg from 'pg';

const [rigDir, ...dbs] = process.argv.slice(2);
const rig = JSON.parse(readFileSync(`${rigDir}/rig.json`, 'utf8'));
const ipOf = (id) => execFileSync('crm_resource', ['--resource', id, '--get-parameter', 'ip'], { encoding: 'utf8' }).trim();
const production = ipOf('postgres-vip');
let server = rig.servers.pg17;
let running = true;
const events = [];

/** Where the production address leads: to the server whose VIP resource holds it now (its state file). */
function holds(rsc) {
  try {
    return readFileSync(`/run/resource-agents/VipDummy-${rsc}.state`, 'utf8').trim() === production;
  } catch {
    return false;
  }
}

async function route() {
  while (running) {
    server = holds('postgres-vip-18') ? rig.servers.pg18 : holds('postgres-vip') ? rig.servers.pg17 : undefined;
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function write(db) {
  let client;
  let at;
  while (running) {
    const t0 = Date.now();
    try {
      if (!server) throw Object.assign(new Error('no server holds the production address'), { code: 'no-address' });
      if (!client || at !== server) {
        await client?.end().catch(() => {});
        at = server;
        client = new pg.Client({ host: at.socket, port: at.port, user: 'postgres', database: db });
        client.on('error', () => {});
        await client.connect();
      }
      await client.query("INSERT INTO orders (customer, amount, note) VALUES (1, 1.00, 'demo write')");
      events.push({ ok: true, t: t0, target: at === rig.servers.pg18 });
    } catch (err) {
      events.push({ ok: false, t: t0, code: err.code });
      if (err.code !== '25006') {
        await client?.end().catch(() => {});
        client = undefined;
      }
    }
    await new Promise((r) => setTimeout(r, Math.max(0, 50 - (Date.now() - t0))));
  }
  await client?.end().catch(() => {});
}

const loops = [route(), ...dbs.map(write)];
process.on('SIGINT', async () => {
  running = false;
  await Promise.all(loops);
  const refused = events.filter((e) => !e.ok);
  // Every outage the writers saw: from a refused write to the next accepted one (one per switch).
  const sorted = [...events].sort((a, b) => a.t - b.t);
  const gaps = [];
  let from;
  for (const e of sorted) {
    if (!e.ok && from === undefined) from = e.t;
    if (e.ok && from !== undefined) {
      gaps.push(e.t - from);
      from = undefined;
    }
  }
  console.log(
    JSON.stringify({
      ok: events.filter((e) => e.ok).length,
      okSource: events.filter((e) => e.ok && !e.target).length,
      okTarget: events.filter((e) => e.ok && e.target).length,
      refused: refused.length,
      gapsMs: gaps,
    }),
  );
  process.exit(0);
});

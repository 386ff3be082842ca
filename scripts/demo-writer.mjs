#!/usr/bin/env node
// The demo's application: ~20 writes/s into each database, through whichever
// server holds the production address (postgres-vip's original ip), and a
// summary on SIGINT: acknowledged, refused, and the gap the writers saw.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import pg from 'pg';
import { XMLParser } from 'fast-xml-parser';

const [rigDir, ...dbs] = process.argv.slice(2);
const rig = JSON.parse(readFileSync(`${rigDir}/rig.json`, 'utf8'));
const ipOf = (id) => execFileSync('crm_resource', ['--resource', id, '--get-parameter', 'ip'], { encoding: 'utf8' }).trim();
const production = ipOf('postgres-vip');
const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', isArray: (n) => ['primitive', 'nvpair', 'instance_attributes'].includes(n) });
let server = rig.servers.pg17;
let running = true;
const events = [];

async function route() {
  while (running) {
    const doc = parser.parse(execFileSync('cibadmin', ['--query', '--scope', 'resources'], { encoding: 'utf8' }));
    const vip18 = doc.resources.primitive.find((p) => p.id === 'postgres-vip-18');
    const ip = vip18?.instance_attributes?.[0]?.nvpair?.find((n) => n.name === 'ip')?.value;
    server = ip === production ? rig.servers.pg18 : rig.servers.pg17;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function write(db) {
  let client;
  let at;
  while (running) {
    const t0 = Date.now();
    try {
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
  const first = refused[0];
  const next = first && events.find((e) => e.ok && e.t > first.t);
  console.log(
    JSON.stringify({
      ok: events.filter((e) => e.ok).length,
      okSource: events.filter((e) => e.ok && !e.target).length,
      okTarget: events.filter((e) => e.ok && e.target).length,
      refused: refused.length,
      gapMs: first && next ? next.t - first.t : 0,
    }),
  );
  process.exit(0);
});

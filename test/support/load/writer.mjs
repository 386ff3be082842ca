#!/usr/bin/env node
/**
 * A write load, run as its own process (on the cluster rig: inside the client
 * namespace, through the production address). Per database, `workers`
 * connections each run INSERT, UPDATE and DELETE statements and
 * multi-statement transactions over several tables, and record every attempt
 * as a JSON line: what was written, when it was sent and answered, whether it
 * was acknowledged, refused (SQLSTATE) or left in doubt (the connection was
 * lost before the answer), and which server answered (its cluster's
 * system_identifier and cluster_name, read once per connection: a TCP
 * connection never changes server).
 *
 *   node writer.mjs CONFIG_JSON      (password in PGPASSWORD)
 *
 * CONFIG_JSON: { host, port, user, databases, workers, ratePerWorker, out,
 * connectTimeoutMs?, queryTimeoutMs?, workerBase? } (workerBase numbers this
 * writer's workers apart from another writer's on the same tables). SIGTERM or SIGINT ends it: every
 * worker finishes its current write, the file is complete when it exits.
 * The schema it writes to is WRITER_SCHEMA in clients.mjs.
 */
import pg from 'pg';
import { randomUUID } from 'node:crypto';
import { openSync, writeSync, closeSync } from 'node:fs';

const cfg = JSON.parse(process.argv[2] ?? '{}');
const out = openSync(cfg.out, 'a');
const record = (r) => writeSync(out, `${JSON.stringify(r)}\n`);
let running = true;
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => (running = false));

const COUNTER_KEYS = 16;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A server's answer (it has a SQLSTATE) means the write was not done; anything else leaves it in doubt. */
function classify(err) {
  if (err instanceof pg.DatabaseError && err.code) return { sqlstate: err.code, ambiguous: false };
  return { sqlstate: 'connection-lost', ambiguous: true, message: String(err?.message ?? err).slice(0, 200) };
}

async function connect(database) {
  const c = new pg.Client({
    host: cfg.host,
    port: cfg.port,
    user: cfg.user,
    password: process.env.PGPASSWORD,
    database,
    application_name: 'cluster-writer',
    connectionTimeoutMillis: cfg.connectTimeoutMs ?? 1000,
    query_timeout: cfg.queryTimeoutMs ?? 3000,
    keepAlive: true,
  });
  c.on('error', () => undefined);
  await c.connect();
  const id = await c.query("SELECT system_identifier::text AS sysid, current_setting('cluster_name') AS name FROM pg_control_system()");
  return { client: c, server: { sysid: id.rows[0].sysid, name: id.rows[0].name } };
}

async function worker(database, w) {
  const gap = 1000 / cfg.ratePerWorker;
  /** Items this worker inserted and may still update or delete (acknowledged, not deleted). */
  const live = [];
  let conn;
  let seq = 0;
  while (running) {
    const t0 = Date.now();
    if (!conn) {
      try {
        conn = await connect(database);
      } catch (err) {
        record({ db: database, worker: w, op: 'connect', sentAt: t0, doneAt: Date.now(), ok: false, ambiguous: false, sqlstate: err?.code ?? 'connect-failed', server: null });
        await sleep(Math.max(50, gap - (Date.now() - t0)));
        continue;
      }
    }
    const roll = Math.random();
    const op = live.length === 0 || roll < 0.4 ? 'insert' : roll < 0.6 ? 'update' : roll < 0.7 ? 'delete' : 'tx';
    const token = randomUUID();
    const base = { db: database, worker: w, op, seq: seq++, server: conn.server };
    const c = conn.client;
    let r;
    try {
      if (op === 'insert') {
        r = { ...base, token, payload: `i:${token}` };
        await c.query('INSERT INTO w_items (token, worker, payload) VALUES ($1, $2, $3)', [token, w, r.payload]);
        live.push(token);
      } else if (op === 'update') {
        const item = live[Math.floor(Math.random() * live.length)];
        r = { ...base, token: item, payload: `u:${token}` };
        const res = await c.query('UPDATE w_items SET payload = $2 WHERE token = $1', [item, r.payload]);
        r.rowCount = res.rowCount;
      } else if (op === 'delete') {
        const item = live[Math.floor(Math.random() * live.length)];
        r = { ...base, token: item };
        const res = await c.query('DELETE FROM w_items WHERE token = $1', [item]);
        r.rowCount = res.rowCount;
        live.splice(live.indexOf(item), 1);
      } else {
        const key = Math.floor(Math.random() * COUNTER_KEYS);
        r = { ...base, token, key };
        try {
          await c.query('BEGIN');
          await c.query('INSERT INTO w_events (token, counter) VALUES ($1, $2)', [token, key]);
          await c.query("INSERT INTO w_log (token, note) VALUES ($1, 'tx')", [token]);
          await c.query('UPDATE w_counters SET n = n + 1 WHERE key = $1', [key]);
        } catch (err) {
          // Refused before COMMIT: nothing of it can commit.
          await c.query('ROLLBACK').catch(() => undefined);
          throw Object.assign(err, { beforeCommit: true });
        }
        await c.query('COMMIT');
      }
      record({ ...r, sentAt: t0, doneAt: Date.now(), ok: true, ambiguous: false });
    } catch (err) {
      const k = classify(err);
      // Lost before COMMIT was sent: the server rolls the transaction back, nothing of it commits.
      const ambiguous = k.ambiguous && !err.beforeCommit;
      const what = r ?? { ...base, token, payload: `i:${token}` };
      // A delete in doubt may have happened: that item is no longer a safe target.
      if (op === 'delete' && ambiguous) live.splice(live.indexOf(what.token), 1);
      record({ ...what, sentAt: t0, doneAt: Date.now(), ok: false, ambiguous, sqlstate: k.sqlstate, message: k.message });
      if (k.ambiguous || ['57P01', '57P02', '57P03'].includes(k.sqlstate)) {
        await c.end().catch(() => undefined);
        conn = undefined;
      }
    }
    const wait = gap - (Date.now() - t0);
    if (wait > 0) await sleep(wait);
  }
  await conn?.client.end().catch(() => undefined);
}

await Promise.all(cfg.databases.flatMap((db) => Array.from({ length: cfg.workers ?? 1 }, (_, w) => worker(db, (cfg.workerBase ?? 0) + w))));
closeSync(out);

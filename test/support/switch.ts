/**
 * Driving a switch (cutover or failback) the way the fault tests need: a
 * small migration started and copied, the worker launched through
 * reload-agent and killed after a given step, the next monitor taking over,
 * and whether a server takes a plain client's write.
 */
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { expect } from 'vitest';
import { Migration, waitFor, waitTablesSynchronised } from './migration';
import { sql, type RigServer } from './rig';
import { cibQuery, migrationRecord } from './pacemaker';

export const SCHEMA = 'CREATE TABLE orders (id bigserial PRIMARY KEY, note text)';
export const SEED = "INSERT INTO orders (note) SELECT 'seed' FROM generate_series(1, 300)";

export async function count(server: RigServer, db: string): Promise<number> {
  return Number((await sql<{ n: string }>(server, db, 'SELECT count(*)::text AS n FROM orders'))[0]!.n);
}

export async function record(instance: string): Promise<Record<string, string>> {
  return migrationRecord(await cibQuery(), instance);
}

export async function newMigration(instance: string, dbs: string[], extra: Record<string, string> = {}, source?: RigServer): Promise<Migration> {
  const m = new Migration({
    instance,
    databases: dbs,
    schema: SCHEMA,
    sourceData: SEED,
    source,
    params: { production_vip_resource: 'postgres-vip', target_vip_resource: 'postgres-vip-18', ...extra },
  });
  await m.setUp();
  const start = await m.run('start');
  expect(start.code, start.stderr).toBe(0);
  for (const db of dbs) {
    await waitFor(`${db} copied`, async () => (await count(m.target, db)) === 300);
    // A test that locks a table must not catch its table sync.
    await waitTablesSynchronised(m.target, db);
  }
  return m;
}

/** Launches the cutover through reload-agent with the worker told to stop after `step`; kills it there. */
export async function killWorkerAfter(m: Migration, step: string): Promise<void> {
  const r = await m.run('reload-agent', { cutover_ready: 'true' }, { env: { PGTWIN_MIGRATE_TEST_PAUSE_AT: step } });
  expect(r.code).toBe(0);
  const log = join(m.stateDir, '.pgtwin_migrate_cutover.log');
  await waitFor(`worker paused after ${step}`, async () => existsSync(log) && readFileSync(log, 'utf8').includes(`paused after step ${step}`), 60_000);
  const lease = (await record(m.opts.instance))['cutover-lease']!;
  const pid = (JSON.parse(lease) as { pid: number }).pid;
  expect(pid).toBeGreaterThan(0);
  process.kill(pid, 'SIGKILL');
  await waitFor('worker gone', async () => !existsSync(`/proc/${pid}`), 10_000);
}

/** The next monitor takes over; returns when the cutover has ended. */
export async function recoverByMonitor(m: Migration): Promise<Record<string, string>> {
  const mon = await m.run('monitor', { cutover_ready: 'true' }, { interval: 10_000 });
  expect(mon.code).toBe(0);
  expect(mon.stderr).toMatch(/is gone at step .*; taking over/);
  return waitFor('cutover ended', async () => {
    const r = await record(m.opts.instance);
    return r['cutover-state'] !== 'running' ? r : undefined;
  }, 120_000, 200);
}

/** Does a plain client write on this server succeed (true), or is it refused as read-only (false)? */
export async function takesWrites(server: RigServer, db: string): Promise<boolean> {
  const c = new pg.Client({ host: server.socket, port: server.port, user: 'postgres', database: db });
  await c.connect();
  try {
    await c.query('BEGIN READ WRITE');
    await c.query("INSERT INTO orders (note) VALUES ('probe')");
    await c.query('ROLLBACK');
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === '25006') return false;
    throw err;
  } finally {
    await c.end();
  }
}


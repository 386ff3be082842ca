/**
 * Checks shared by the fault, name and schema-copy tests: what a migration
 * left behind (objects in the databases, its CIB record, state files,
 * marker), and the shape of an agent's failure report.
 */
import { existsSync, readdirSync } from 'node:fs';
import { expect } from 'vitest';
import pg from 'pg';
import { crm, sql, type RigServer } from './rig';
import { leftovers, type Migration } from './migration';
import type { AgentResult } from './agent';

/** Whether the migration's cluster-wide record (a property set in crm_config) exists. */
export function cibRecordExists(instance: string): boolean {
  return crm(['cibadmin', '--query', '--scope', 'crm_config']).includes(`id="pgtwin-migrate-${instance}"`);
}

export async function databaseExists(server: RigServer, database: string): Promise<boolean> {
  return (await sql(server, 'postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [database])).length > 0;
}

/**
 * Every object of a migration found in the given databases on both sides,
 * as "source <db>: <object>" lines; a database missing on a side holds
 * nothing and is skipped.
 */
export async function leftoversOnBothSides(m: Migration, databases: readonly string[] = m.opts.databases): Promise<string[]> {
  const out: string[] = [];
  for (const [side, server] of [['source', m.source], ['target', m.target]] as const) {
    for (const db of databases) {
      if (!(await databaseExists(server, db))) continue;
      out.push(...(await leftovers(server, db)).map((l) => `${side} ${JSON.stringify(db)}: ${l}`));
    }
  }
  return out;
}

/** Files the migration keeps on this node: state files, baseline, running marker. */
export function localFiles(m: Migration): string[] {
  const list = (dir: string) => (existsSync(dir) ? readdirSync(dir).map((f) => `${dir}/${f}`) : []);
  return [...list(m.stateDir), ...list(m.rscTmp)];
}

/** Nothing of the migration anywhere: objects on both sides, CIB record, state files, marker. */
export async function expectNothingLeft(m: Migration, databases: readonly string[] = m.opts.databases): Promise<void> {
  expect(await leftoversOnBothSides(m, databases)).toEqual([]);
  expect(cibRecordExists(m.opts.instance)).toBe(false);
  expect(localFiles(m)).toEqual([]);
}

/** The `ocf-exit-reason:` lines of one run. */
export function exitReasonLines(r: Pick<AgentResult, 'stderr'>): string[] {
  return r.stderr.split('\n').filter((l) => l.startsWith('ocf-exit-reason:'));
}

/**
 * A failed action: this exit code and exactly one exit reason line of at
 * most 128 bytes. A string `reason` is the whole one-line finding: the exit
 * reason is it, or (when longer than Pacemaker keeps) its first 125 bytes and
 * "...", and the log carries it whole. A RegExp is matched against the exit reason.
 */
export function expectFailure(r: AgentResult, code: number, reason: RegExp | string): void {
  const context = `stderr was:\n${r.stderr}`;
  expect(r.code, context).toBe(code);
  expect(exitReasonLines(r), context).toHaveLength(1);
  const got = r.exitReason ?? '';
  expect(Buffer.byteLength(got, 'utf8')).toBeLessThanOrEqual(128);
  if (typeof reason !== 'string') {
    expect(got, context).toMatch(reason);
    return;
  }
  if (Buffer.byteLength(reason, 'utf8') <= 128) {
    expect(got, context).toBe(reason);
  } else {
    expect(got.endsWith('...'), context).toBe(true);
    expect(reason.startsWith(got.slice(0, -3)), `exit reason ${JSON.stringify(got)} is not the start of ${JSON.stringify(reason)}`).toBe(true);
    expect(Buffer.byteLength(got, 'utf8')).toBeGreaterThanOrEqual(125);
  }
  expect(r.stderr, context).toContain(reason);
}

/** The findings an action logged as ERROR, without the action's own closing line and the log prefix. */
export function errorFindings(stderr: string): string[] {
  return stderr
    .split('\n')
    .map((l) => /\bERROR: (.*)$/.exec(l)?.[1])
    .filter((l): l is string => l !== undefined && !/^(start|validate-all|monitor|stop|teardown|preflight): /.test(l));
}

/** A regular expression matching `text` literally. */
export const literally = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Removes, by name and without the agent, whatever a migration may have
 * left in its databases when its own teardown could not run (e.g. the
 * command refused): subscriptions, publications, DDL triggers, the agent's
 * schema, slots, the databases it created and its CIB record. For afterAll
 * hooks, after Migration.cleanup(); never throws.
 */
/**
 * Like rig's sql(), in a session that is read-write even while a server
 * default says read-only (a cutover test fences the whole shared source):
 * clean-up must not fail because another test holds a fence.
 */
export async function sqlRw<T extends pg.QueryResultRow = Record<string, unknown>>(server: RigServer, database: string, text: string, values: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ host: server.socket, port: server.port, user: 'postgres', database, options: '-c default_transaction_read_only=off' });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return (await c.query<T>(text, values)).rows;
  } finally {
    await c.end();
  }
}

export async function sweep(m: Migration): Promise<void> {
  const quote = (s: string) => `"${s.replace(/"/g, '""')}"`;
  const mine = new Set(m.opts.databases);
  const tryIt = async (fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch {
      /* best effort */
    }
  };
  for (const db of m.opts.databases) {
    await tryIt(async () => {
      if (!(await databaseExists(m.target, db))) return;
      const subs = await sqlRw<{ s: string }>(m.target, db, "SELECT subname AS s FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND subname LIKE 'pgtwin\\_migrate%'");
      for (const { s } of subs) {
        await tryIt(() => sqlRw(m.target, db, `DROP SUBSCRIPTION ${quote(s)}`));
        await tryIt(async () => {
          // Publisher gone: detach the slot and drop it anyway.
          await sqlRw(m.target, db, `ALTER SUBSCRIPTION ${quote(s)} DISABLE`);
          await sqlRw(m.target, db, `ALTER SUBSCRIPTION ${quote(s)} SET (slot_name = NONE)`);
          await sqlRw(m.target, db, `DROP SUBSCRIPTION ${quote(s)}`);
        });
      }
    });
    for (const server of [m.source, m.target]) {
      await tryIt(async () => {
        if (!(await databaseExists(server, db))) return;
        for (const { p } of await sqlRw<{ p: string }>(server, db, "SELECT pubname AS p FROM pg_publication WHERE pubname LIKE 'pgtwin\\_migrate%'")) {
          await tryIt(() => sqlRw(server, db, `DROP PUBLICATION ${quote(p)}`));
        }
        for (const { e } of await sqlRw<{ e: string }>(server, db, "SELECT evtname AS e FROM pg_event_trigger WHERE evtname LIKE 'replicate\\_ddl\\_%'")) {
          await tryIt(() => sqlRw(server, db, `DROP EVENT TRIGGER ${quote(e)}`));
        }
        await tryIt(() => sqlRw(server, db, 'DROP SCHEMA IF EXISTS pgtwin_migrate CASCADE'));
      });
    }
  }
  for (const server of [m.source, m.target]) {
    await tryIt(async () => {
      // A walsender may hold a slot for a moment after its subscription went away.
      for (let i = 0; i < 50; i++) {
        const slots = await sqlRw<{ s: string; d: string; active: boolean }>(server, 'postgres', "SELECT slot_name AS s, database AS d, active FROM pg_replication_slots WHERE slot_name LIKE 'pgtwin\\_migrate%'");
        const left = slots.filter((x) => mine.has(x.d));
        if (left.length === 0) break;
        for (const { s } of left.filter((x) => !x.active)) await tryIt(() => sqlRw(server, 'postgres', 'SELECT pg_drop_replication_slot($1)', [s]));
        await new Promise((r) => setTimeout(r, 100));
      }
    });
    for (const db of m.created) await tryIt(() => sqlRw(server, 'postgres', `DROP DATABASE IF EXISTS ${quote(db)} WITH (FORCE)`));
  }
  await tryIt(async () => {
    if (cibRecordExists(m.opts.instance)) crm(['cibadmin', '--delete', '--xml-text', `<cluster_property_set id="pgtwin-migrate-${m.opts.instance}"/>`]);
  });
}

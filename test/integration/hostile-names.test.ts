/**
 * Database names PostgreSQL allows but shells, conninfo strings, SQL text
 * and slot names do not take as they are — a hyphen, a dot, a space, a
 * single and a double quote, non-ASCII characters — migrated together with
 * `postgres`, end to end: start, copy, streaming, monitor, status, state
 * files, teardown.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Migration, waitFor, leftovers } from '../support/migration';
import { sql } from '../support/rig';
import { cibRecordExists, localFiles, sqlRw, sweep } from '../support/checks';

const DBS = ['hn_my-app', 'hn_Tenant.1', 'hn_with space', "hn_o'brien", 'hn_"quoted"', 'hn_ünïcødé_数据', 'postgres'];
const ROWS = 200;

describe('hostile database names, alongside postgres (PostgreSQL 17 → 18)', () => {
  const m = new Migration({
    instance: 'migration-hn',
    databases: DBS,
    existingDatabases: ['postgres'],
    // hn_items: a name of this test's own, also in the shared postgres database.
    schema: 'DROP TABLE IF EXISTS hn_items; CREATE TABLE hn_items (id bigint PRIMARY KEY, label text NOT NULL)',
    sourceData: `INSERT INTO hn_items SELECT g, current_database() || ' ' || g FROM generate_series(1, ${ROWS}) g`,
  });

  beforeAll(() => m.setUp());
  afterAll(async () => {
    await m.cleanup();
    await sweep(m);
    for (const s of [m.source, m.target]) await sqlRw(s, 'postgres', 'DROP TABLE IF EXISTS hn_items').catch(() => undefined);
  });

  const targetCount = async (db: string) => Number((await sql<{ n: string }>(m.target, db, 'SELECT count(*)::text AS n FROM hn_items'))[0]!.n);

  /** token → database, from the state files' own `database=` lines. */
  function stateFiles(): Map<string, Record<string, string>> {
    const out = new Map<string, Record<string, string>>();
    for (const f of localFiles(m).filter((p) => p.includes('/.migration_state_'))) {
      const fields: Record<string, string> = {};
      for (const line of readFileSync(f, 'utf8').split('\n')) {
        const hit = /^([a-z_]+)=(.*)$/.exec(line);
        if (hit) fields[hit[1]!] = hit[2]!.startsWith('"') ? (JSON.parse(hit[2]!) as string) : hit[2]!;
      }
      out.set(f.slice(f.lastIndexOf('/.migration_state_') + '/.migration_state_'.length), fields);
    }
    return out;
  }

  it('validate-all at depth 10 finds every database ready', async () => {
    const r = await m.run('validate-all', {}, { env: { OCF_CHECK_LEVEL: '10' } });
    expect(r.stderr).not.toContain('ocf-exit-reason');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/pre-flight: 7 database\(s\) ready/);
  });

  it('starts and copies every database into the database of the same name', async () => {
    const start = await m.run('start');
    expect(start.stderr).not.toContain('ocf-exit-reason');
    expect(start.code).toBe(0);
    expect(start.stderr).toMatch(/started: 7 database\(s\), 7 set up now, 0 adopted/);
    for (const db of DBS) await waitFor(`${db} copied`, async () => (await targetCount(db)) === ROWS);
    // No cross-wiring: each target database holds the rows of the source database of the same name.
    for (const db of DBS) {
      expect((await sql<{ label: string }>(m.target, db, 'SELECT label FROM hn_items WHERE id = 1'))[0]!.label).toBe(`${db} 1`);
    }
  });

  it('streams a new row in each database', async () => {
    for (const db of DBS) await sql(m.source, db, "INSERT INTO hn_items VALUES (1000, 'live ' || current_database())");
    for (const db of DBS) {
      await waitFor(`${db} streamed`, async () => (await sql<{ label: string }>(m.target, db, 'SELECT label FROM hn_items WHERE id = 1000'))[0]?.label === `live ${db}`);
    }
  });

  it('monitor is healthy (0) throughout, and soon counts 7 streaming databases (every table synchronised)', async () => {
    const mon = await waitFor(
      'all 7 streaming',
      async () => {
        const r = await m.run('monitor', {}, { interval: 10_000 });
        // Any failure ends the wait at once; copying is healthy too.
        return r.code !== 0 || /monitor: 7 database\(s\): 7 streaming/.test(r.stderr) ? r : undefined;
      },
      60_000,
      500,
    );
    expect(mon.stderr).not.toContain('ocf-exit-reason');
    expect(mon.code).toBe(0);
    expect(mon.stderr).toMatch(/monitor: 7 database\(s\): 7 streaming/);
  });

  it('status --json lists every name exactly, in order; status text shows each', async () => {
    const json = await m.cli(['status', '--json']);
    expect(json.code, json.stderr).toBe(0);
    const report = JSON.parse(json.stdout) as { databases: Array<{ database: string; token: string; state: string; problem?: string }> };
    expect(report.databases.map((d) => d.database)).toEqual(DBS);
    expect(report.databases.map((d) => [d.database, d.state, d.problem ?? null])).toEqual(DBS.map((d) => [d, 'streaming', null]));
    const text = await m.cli(['status']);
    expect(text.code, text.stderr).toBe(0);
    const lines = text.stdout.split('\n');
    for (const db of DBS) expect(lines.some((l) => l.startsWith(`${db}  `) && /\bstreaming\b/.test(l)), `${db} in\n${text.stdout}`).toBe(true);
  });

  it('writes one state file per database, under distinct slot-safe tokens, naming its database exactly', async () => {
    const files = stateFiles();
    expect(files.size).toBe(DBS.length);
    expect([...files.values()].map((f) => f.database).sort()).toEqual([...DBS].sort());
    for (const [token, fields] of files) {
      expect(token).toMatch(/^[a-z0-9_]+$/);
      expect(Buffer.byteLength(`pgtwin_migrate_forward_slot_${token}`)).toBeLessThanOrEqual(63);
      expect(fields.subscription_state ?? fields.phase).toBeDefined();
      // The token is the one the objects in that very database carry.
      const subs = await sql<{ subname: string }>(m.target, fields.database!, 'SELECT subname FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())');
      expect(subs.map((s) => s.subname)).toEqual([`pgtwin_migrate_forward_sub_${token}`]);
      const slots = await sql<{ slot_name: string }>(m.source, 'postgres', "SELECT slot_name FROM pg_replication_slots WHERE database = $1 AND slot_name LIKE 'pgtwin\\_migrate%'", [fields.database]);
      expect(slots.map((s) => s.slot_name)).toEqual([`pgtwin_migrate_forward_slot_${token}`]);
    }
    expect(files.get('postgres')?.database).toBe('postgres');
    const baseline = JSON.parse(readFileSync(join(m.stateDir, '.pgtwin_migrate_databases_migration-hn'), 'utf8')) as { databases: string[] };
    expect(baseline.databases).toEqual(DBS);
  });

  it('teardown --yes removes everything from every database on both sides', async () => {
    expect((await m.run('stop')).code).toBe(0);
    const r = await m.cli(['teardown', '--yes']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/NOT REMOVED/);
    expect(r.stdout).toMatch(/^teardown complete: \d+ object\(s\) removed$/m);
    for (const db of DBS) {
      expect(await leftovers(m.source, db), `source ${db}`).toEqual([]);
      expect(await leftovers(m.target, db), `target ${db}`).toEqual([]);
    }
    expect(localFiles(m)).toEqual([]);
    expect(cibRecordExists('migration-hn')).toBe(false);
    // The data stays where it was copied.
    for (const db of DBS) expect(await targetCount(db)).toBe(ROWS + 1);
  });
});

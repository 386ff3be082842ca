/**
 * Forward replication 17 → 18 driven through the executable: start,
 * monitor, rows in every database, restart without recopy, DDL in order
 * with the data, refresh of new tables, reload-agent, stop, status.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Migration, waitFor, waitTablesSynchronised } from '../support/migration';
import { sql } from '../support/rig';

const DBS = ['fwd_app', 'fwd_analytics', 'fwd_reporting'];

describe('forward replication (PostgreSQL 17 → 18)', () => {
  const m = new Migration({
    instance: 'migration-fwd',
    databases: DBS,
    schema: 'CREATE TABLE orders (id bigserial PRIMARY KEY, customer int NOT NULL, note text)',
    sourceData: "INSERT INTO orders (customer, note) SELECT g % 97, repeat('x', 50) FROM generate_series(1, 5000) g",
  });
  beforeAll(() => m.setUp());
  afterAll(() => m.cleanup());

  const targetCount = async (db: string, table = 'orders') => Number((await sql<{ n: string }>(m.target, db, `SELECT count(*)::text AS n FROM ${table}`))[0]!.n);
  /** Physical identity of the target rows: a copy made again would give them new xmin values. */
  const rowIdentity = async (db: string) =>
    (await sql<{ x: string }>(m.target, db, 'SELECT string_agg(xmin::text, \',\' ORDER BY id) AS x FROM orders'))[0]!.x;

  it('monitor says "not running" (7) before start, also as a probe', async () => {
    expect((await m.run('monitor', {}, { interval: 10_000 })).code).toBe(7);
    expect((await m.run('monitor', {}, { interval: 0 })).code).toBe(7);
  });

  it('starts, copies every database and monitors healthy', async () => {
    const start = await m.run('start');
    expect(start.stderr).not.toContain('ocf-exit-reason');
    expect(start.code).toBe(0);
    for (const db of DBS) await waitFor(`${db} copied`, async () => (await targetCount(db)) === 5000);
    const mon = await m.untilStreaming();
    expect(mon.code).toBe(0);
    expect(mon.stderr).toMatch(/monitor: 3 database\(s\): 3 streaming/);
  });

  it('streams new rows in every database', async () => {
    for (const db of DBS) await sql(m.source, db, "INSERT INTO orders (customer, note) VALUES (1, 'live')");
    for (const db of DBS) await waitFor(`${db} streamed`, async () => (await targetCount(db)) === 5001);
  });

  it('writes the seed state files and the baseline', async () => {
    const state = readFileSync(join(m.stateDir, '.migration_state_fwd_app'), 'utf8');
    expect(state).toMatch(/^database=fwd_app$/m);
    expect(state).toMatch(/^lag=\d+$/m);
    expect(state).toMatch(/^quiesced=false$/m);
    expect(state).toMatch(/^reverse_prepared=false$/m);
    expect(state).toMatch(/^subscription_state=streaming$/m);
    expect(state).toMatch(/^tables_synced=2$/m);
    expect(state).not.toMatch(/password/i);
    expect(JSON.parse(readFileSync(join(m.stateDir, '.pgtwin_migrate_databases_migration-fwd'), 'utf8')).databases).toEqual(DBS);
  });

  it('stop keeps replication; start again adopts it without copying again', async () => {
    const before = await Promise.all(DBS.map(rowIdentity));
    expect((await m.run('stop')).code).toBe(0);
    expect((await m.run('stop')).code).toBe(0);
    expect((await m.run('monitor', {}, { interval: 10_000 })).code).toBe(7);
    // Replication keeps flowing while the resource is stopped.
    await sql(m.source, 'fwd_app', "INSERT INTO orders (customer, note) VALUES (2, 'while stopped')");
    await waitFor('row while stopped', async () => (await targetCount('fwd_app')) === 5002);
    const again = await m.run('start');
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/0 set up now, 3 adopted/);
    expect((await m.run('start')).code).toBe(0);
    const after = await Promise.all(DBS.map(rowIdentity));
    // Rows copied once keep their identity; only the new row is new.
    after.forEach((a, i) => expect(a.startsWith(before[i]!)).toBe(true));
    expect((await m.run('monitor', {}, { interval: 10_000 })).code).toBe(0);
  });

  it('replicates DDL in order with the data, in a database other than postgres', async () => {
    await sql(
      m.source,
      'fwd_analytics',
      `BEGIN;
       ALTER TABLE orders ADD COLUMN region text;
       INSERT INTO orders (customer, note, region) VALUES (3, 'with region', 'emea');
       CREATE TABLE events (id bigint PRIMARY KEY, kind text);
       INSERT INTO events VALUES (1, 'created'), (2, 'paid');
       COMMIT;`,
    );
    await sql(m.source, 'fwd_analytics', 'CREATE INDEX orders_region ON orders (region)');
    await sql(m.source, 'fwd_analytics', 'CREATE TABLE scratch (id int PRIMARY KEY)');
    await sql(m.source, 'fwd_analytics', 'DROP TABLE scratch');
    await waitFor('ALTER + row', async () => (await sql<{ region: string }>(m.target, 'fwd_analytics', "SELECT region FROM orders WHERE note = 'with region'"))[0]?.region === 'emea');
    await waitFor('index', async () => (await sql(m.target, 'fwd_analytics', "SELECT 1 FROM pg_indexes WHERE indexname = 'orders_region'")).length === 1);
    await waitFor('drop', async () => (await sql(m.target, 'fwd_analytics', "SELECT 1 FROM pg_tables WHERE tablename = 'scratch'")).length === 0);
    // The new table exists at once; its rows arrive once monitor has refreshed the subscription.
    expect((await sql(m.target, 'fwd_analytics', "SELECT 1 FROM pg_tables WHERE tablename = 'events'")).length).toBe(1);
    // A monitor looks at each database's tables about once a minute; let this one look now.
    m.lookAgain();
    const mon = await m.run('monitor', {}, { interval: 10_000 });
    expect(mon.stderr).toMatch(/refreshed pgtwin_migrate_forward_sub_fwd_analytics/);
    await waitFor('events copied', async () => (await targetCount('fwd_analytics', 'events')) === 2);
    await sql(m.source, 'fwd_analytics', "INSERT INTO events VALUES (3, 'shipped')");
    await waitFor('events streamed', async () => (await targetCount('fwd_analytics', 'events')) === 3);
    // Other databases saw none of it.
    expect((await sql(m.target, 'fwd_app', "SELECT 1 FROM pg_tables WHERE tablename = 'events'")).length).toBe(0);
    expect((await m.run('monitor', {}, { interval: 10_000 })).code).toBe(0);
  });

  it('reports a DDL statement that cannot be replayed (degraded, 190) instead of dropping it', async () => {
    await sql(m.source, 'fwd_reporting', `DO $$ BEGIN EXECUTE 'CREATE TABLE made_in_do (id int PRIMARY KEY)'; END $$`);
    const mon = await waitFor('degraded monitor', async () => {
      m.lookAgain();
      const r = await m.run('monitor', {}, { interval: 10_000 });
      return r.code === 190 ? r : undefined;
    });
    expect(mon.exitReason).toMatch(/^"fwd_reporting": 1 DDL statement\(s\) not replayed on the target \(latest CREATE TABLE: run inside a function/);
    expect(mon.stderr).toMatch(/not replayed on the target \(latest CREATE TABLE: run inside a function, procedure or DO block; replay it by hand\)/);
    const status = await m.cli(['status']);
    expect(status.stdout).toMatch(/"fwd_reporting": 1 DDL statement\(s\) not replayed/);
    // The DBA handles it on the (fenced) target, on purpose in replica mode, marks it handled; the monitor is healthy again.
    await sql(m.target, 'fwd_reporting', 'SET session_replication_role = replica; CREATE TABLE made_in_do (id int PRIMARY KEY)');
    await sql(m.target, 'fwd_reporting', 'UPDATE pgtwin_migrate.ddl_log SET handled = true WHERE NOT replayable');
    m.lookAgain();
    expect((await m.run('monitor', {}, { interval: 10_000 })).code).toBe(0);
    // With the table now on the target, that monitor added it to the subscription: it is copied.
    await waitTablesSynchronised(m.target, 'fwd_reporting');
  });

  it('status shows a table per database, and the same facts as JSON', async () => {
    const text = await m.cli(['status']);
    expect(text.code).toBe(0);
    for (const db of DBS) expect(text.stdout).toMatch(new RegExp(`^${db}\\s+streaming\\s+\\d+/\\d+\\s+done`, 'm'));
    const json = JSON.parse((await m.cli(['status', '--json'])).stdout) as { phase: string; databases: Array<{ database: string; state: string; lagBytes: number }> };
    expect(json.phase).toBe('forward');
    expect(json.databases.map((d) => [d.database, d.state])).toEqual(DBS.map((d) => [d, 'streaming']));
    expect(json.databases.every((d) => typeof d.lagBytes === 'number')).toBe(true);
  });

  it('reload-agent applies reloadable parameters without touching replication', async () => {
    const before = await rowIdentity('fwd_app');
    const r = await m.run('reload-agent', { lag_threshold: '4096', cutover_debug: 'true' });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/reload-agent: lag_threshold 1024 -> 4096/);
    expect(await rowIdentity('fwd_app')).toBe(before);
    expect((await m.run('monitor', { lag_threshold: '4096' }, { interval: 10_000 })).code).toBe(0);
  });

  it('validate-all at depth 10 runs the pre-flight checks against both clusters', async () => {
    const r = await m.run('validate-all', {}, { env: { OCF_CHECK_LEVEL: '10' } });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/pre-flight: 3 database\(s\) ready/);
  });

  it('stop leaves no marker and keeps the objects', async () => {
    expect((await m.run('stop')).code).toBe(0);
    expect(existsSync(join(m.rscTmp, 'pgtwin-migrate-migration-fwd.running'))).toBe(false);
    expect((await sql(m.target, 'fwd_app', "SELECT 1 FROM pg_subscription WHERE subname = 'pgtwin_migrate_forward_sub_fwd_app'")).length).toBe(1);
  });
});

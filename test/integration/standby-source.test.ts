/**
 * source_node_role=Unpromoted: publications on the source primary, the
 * target's subscriptions reading from a streaming standby (logical decoding
 * on a standby, PostgreSQL 16+), lag measured there; and a cutover from it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { Migration, waitFor } from '../support/migration';
import { sql, rig, REPO } from '../support/rig';
import { cibQuery, migrationRecord } from '../support/pacemaker';

const rigScript = resolve(REPO, 'scripts/rig.sh');
const DBS = ['sb_app', 'sb_events'];

describe('publishing from the source standby (source_node_role=Unpromoted)', () => {
  let m: Migration;
  beforeAll(async () => {
    m = new Migration({
      instance: 'migration-standby',
      databases: DBS,
      schema: 'CREATE TABLE items (id bigserial PRIMARY KEY, v text)',
      sourceData: "INSERT INTO items (v) SELECT 'seed' FROM generate_series(1, 1000)",
      params: {
        source_node_role: 'Unpromoted',
        source_replication_vip: '127.0.0.2',
        production_vip_resource: 'postgres-vip',
        target_vip_resource: 'postgres-vip-18',
      },
    });
    await m.setUp();
    // The standby is made after the databases exist, as a copy of the primary.
    execFileSync(rigScript, ['standby', 'up'], { stdio: 'ignore' });
  });
  afterAll(async () => {
    await m?.cleanup();
    execFileSync(rigScript, ['standby', 'down'], { stdio: 'ignore' });
  });

  const count = async (db: string) => Number((await sql<{ n: string }>(m.target, db, 'SELECT count(*)::text AS n FROM items'))[0]!.n);

  it('passes the pre-flight checks of the standby mode', async () => {
    const r = await m.run('validate-all', {}, { env: { OCF_CHECK_LEVEL: '10' } });
    expect(r.stderr).not.toContain('ocf-exit-reason');
    expect(r.code).toBe(0);
  });

  it('refuses a replication address that leads to the primary', async () => {
    const r = await m.run('validate-all', { source_replication_vip: '127.0.0.1' }, { env: { OCF_CHECK_LEVEL: '10' } });
    expect(r.code).toBe(6);
    expect(r.exitReason).toMatch(/source standby 127\.0\.0\.1:\d+: source_replication_vip leads to a primary, not a standby/);
  });

  it('creates the slots on the standby and streams writes made on the primary', async () => {
    const r = await m.run('start');
    expect(r.stderr).not.toContain('ocf-exit-reason');
    expect(r.code).toBe(0);
    for (const db of DBS) {
      const onStandby = await sql(m.source, db, 'SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [`pgtwin_migrate_forward_slot_${db}`]);
      expect(onStandby).toEqual([]); // not on the primary…
      const standby = { ...rig().servers.pg17, socket: `${rig().dir}/run/pg17-standby` };
      const slot = await sql<{ active: boolean }>(standby, db, 'SELECT active FROM pg_replication_slots WHERE slot_name = $1', [`pgtwin_migrate_forward_slot_${db}`]);
      expect(slot).toHaveLength(1); // …but on the standby
      // Start asked the primary for running-transactions records until the copy began: nothing
      // waits for the background writer's (every 15 s, and only while something writes).
      await waitFor(`${db} copied`, async () => (await count(db)) === 1000, 10_000);
      await sql(m.source, db, "INSERT INTO items (v) VALUES ('live')");
      await waitFor(`${db} streamed`, async () => (await count(db)) === 1001, 60_000);
    }
    const mon = await m.run('monitor', {}, { interval: 10_000 });
    expect(mon.code).toBe(0);
    expect(mon.stderr).toMatch(/2 database\(s\): 2 streaming/);
  });

  it('cuts over: fence on the primary, sync proven on the standby, reverse into the primary', async () => {
    expect((await m.run('reload-agent', { cutover_ready: 'true' })).code).toBe(0);
    const r = await waitFor('cutover ended', async () => {
      const x = migrationRecord(await cibQuery(), 'migration-standby');
      return x['cutover-state'] === 'complete' || x['cutover-state'] === 'failed' ? x : undefined;
    }, 120_000, 200);
    expect(r['cutover-error'] ?? '').toBe('');
    expect(r['cutover-state']).toBe('complete');
    for (const db of DBS) {
      await sql(m.target, db, "INSERT INTO items (v) VALUES ('reverse')");
      await waitFor(`${db} reverse`, async () => (await sql(m.source, db, "SELECT 1 FROM items WHERE v = 'reverse'")).length === 1, 60_000);
    }
  });
});

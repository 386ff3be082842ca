/**
 * DDL-log ids of both directions (issue 10, item 16): with sequence_sync=false
 * the target's log sequence is not carried over at the cutover, so ids taken
 * on the target must still never collide with the rows that came from the
 * source — else every DDL statement on the target fails on a duplicate key
 * and nothing flows back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Migration, waitFor } from '../support/migration';
import { sql, AGENT } from '../support/rig';
import { configureMigrationPrimitive, deletePrimitive, resourceState, cibQuery, migrationRecord } from '../support/pacemaker';

const exec = promisify(execFile);
const ID = 'migration-sec-ids';
const DB = 'sec_ids';

describe('DDL-log ids never collide between the directions, whatever sequence_sync says', () => {
  const m = new Migration({
    instance: ID,
    databases: [DB],
    schema: 'CREATE TABLE orders (id bigserial PRIMARY KEY, note text)',
    sourceData: "INSERT INTO orders (note) SELECT 'seed' FROM generate_series(1, 50)",
    params: { production_vip_resource: 'postgres-vip', target_vip_resource: 'postgres-vip-18', sequence_sync: 'false' },
  });
  beforeAll(async () => {
    await m.setUp();
    await configureMigrationPrimitive(ID, m.params);
  });
  afterAll(async () => {
    await deletePrimitive(ID);
    await m.cleanup();
  });

  it('with sequence_sync=false, DDL on the target after the cutover reaches the source', async () => {
    await waitFor('started', async () => (await resourceState(ID)).role === 'Started', 120_000, 500);
    await waitFor('copied', async () => (await sql(m.target, DB, 'SELECT 1 FROM orders')).length === 50, 60_000);
    // DDL captured on the source fills the log with the source's ids, which the target receives
    // (more of them than a retried step would ever get past).
    for (let n = 1; n <= 60; n++) await sql(m.source, DB, `COMMENT ON TABLE orders IS 'revision ${n}'`);
    await waitFor('forward DDL replayed', async () => (await sql(m.target, DB, "SELECT 1 FROM pg_description WHERE description = 'revision 60'")).length === 1, 20_000);
    await waitFor('every table synchronised', async () => (await sql(m.target, DB, "SELECT 1 FROM pg_subscription_rel WHERE srsubstate <> 'r'")).length === 0, 60_000);

    const cut = await exec(AGENT, ['cutover', '--resource', ID, '--wait', '--wait-seconds', '240'], { env: { ...process.env, LC_ALL: 'C' } }).catch((e: { stdout?: string; stderr?: string }) => e);
    expect(cut.stdout, cut.stderr).toMatch(/cutover complete/);
    expect(migrationRecord(await cibQuery(), ID)['reverse-replication']).toBe('running');

    await sql(m.target, DB, 'CREATE TABLE after_cutover (id int PRIMARY KEY)');
    await waitFor('reverse DDL on the source', async () => (await sql(m.source, DB, "SELECT 1 FROM pg_class WHERE relname = 'after_cutover'")).length === 1, 30_000);
    const ids = await sql<{ origin: string; id: string }>(m.source, DB, 'SELECT origin, id::text FROM pgtwin_migrate.ddl_log ORDER BY id');
    const byId = new Map<string, string>();
    for (const r of ids) {
      expect(byId.get(r.id), `id ${r.id} used by ${byId.get(r.id)} and ${r.origin}`).toBeUndefined();
      byId.set(r.id, r.origin);
    }
    expect(ids.some((r) => r.origin === 'target')).toBe(true);
  });
});

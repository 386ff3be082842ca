/**
 * Forward replication as a real Pacemaker primitive: restarts never copy
 * again, a parameter change that restarts the resource is adopted, and a
 * source that goes away fails the monitor with a reason naming it; once it
 * is back, replication resumes without a copy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Migration, waitFor } from '../support/migration';
import { sql, rig } from '../support/rig';
import { startTempCluster, type TempCluster } from '../support/temp-cluster';
import { configureMigrationPrimitive, deletePrimitive, resourceState } from '../support/pacemaker';

const exec = promisify(execFile);
const ID = 'migration-pcmk';
const DBS = ['pf_app', 'pf_audit'];

describe('forward replication under Pacemaker', () => {
  let source: TempCluster;
  let m: Migration;

  beforeAll(async () => {
    source = await startTempCluster('pacemaker-forward', { major: 17, port: 54471 });
    m = new Migration({
      instance: ID,
      databases: DBS,
      source: source.server,
      schema: 'CREATE TABLE items (id bigserial PRIMARY KEY, v text)',
      sourceData: "INSERT INTO items (v) SELECT 'seed ' || g FROM generate_series(1, 3000) g",
    });
    await m.setUp();
    await configureMigrationPrimitive(ID, m.params);
  });
  afterAll(async () => {
    await deletePrimitive(ID);
    await m?.cleanup();
    source?.destroy();
  });

  const count = async (db: string) => Number((await sql<{ n: string }>(m.target, db, 'SELECT count(*)::text AS n FROM items'))[0]!.n);
  /** xmin of every row on the target: a second copy would write new row versions. */
  const identity = async (db: string) => (await sql<{ x: string }>(m.target, db, "SELECT string_agg(xmin::text, ',' ORDER BY id) AS x FROM items WHERE v LIKE 'seed%'"))[0]!.x;
  const started = () => waitFor(`${ID} started`, async () => (await resourceState(ID)).role === 'Started', 120_000, 500);

  it('starts under Pacemaker and copies every database', async () => {
    await started();
    for (const db of DBS) await waitFor(`${db} copied`, async () => (await count(db)) === 3000, 60_000);
  });

  it('crm resource restart does not copy again and loses nothing', async () => {
    const before = await Promise.all(DBS.map(identity));
    await exec('crm', ['resource', 'restart', ID]);
    await started();
    for (const db of DBS) await sql(m.source, db, "INSERT INTO items (v) VALUES ('after restart')");
    for (const db of DBS) await waitFor(`${db} streams`, async () => (await count(db)) === 3001);
    expect(await Promise.all(DBS.map(identity))).toEqual(before);
  });

  it('a parameter change Pacemaker applies by restarting is adopted without a copy', async () => {
    const before = await Promise.all(DBS.map(identity));
    // sslmode is not reloadable: Pacemaker stops and starts the resource; start updates the subscriptions' connection.
    await exec('crm_resource', ['--resource', ID, '--set-parameter', 'sslmode', '--parameter-value', 'disable']);
    await waitFor('connection updated', async () => {
      const rows = await sql<{ c: string }>(m.target, DBS[0]!, "SELECT subconninfo AS c FROM pg_subscription WHERE subname = 'pgtwin_migrate_forward_sub_pf_app'");
      return rows[0]?.c.includes('sslmode=disable');
    }, 60_000, 500);
    await started();
    for (const db of DBS) await sql(m.source, db, "INSERT INTO items (v) VALUES ('after parameter change')");
    for (const db of DBS) await waitFor(`${db} streams`, async () => (await count(db)) === 3002);
    expect(await Promise.all(DBS.map(identity))).toEqual(before);
  });

  it('fails the monitor naming the source when it goes away, and resumes without a copy when it is back', async () => {
    const before = await Promise.all(DBS.map(identity));
    // Start from a clean failure history, so the failure seen below is this one.
    await exec('crm_resource', ['--cleanup', '--resource', ID]);
    await started();
    source.stop();
    const expected = new RegExp(`source primary ${rig().node}:${source.server.port} database "pf_\\w+": (connection refused|terminating connection|the database system is shutting down)`);
    const failed = await waitFor('monitor failure naming the source', async () => {
      const s = await resourceState(ID);
      return s.failures.some((f) => expected.test(f)) ? s : undefined;
    }, 60_000, 500).catch(async (err: Error) => {
      throw new Error(`${err.message}; failures seen: ${JSON.stringify((await resourceState(ID)).failures)}`);
    });
    expect(failed.failures.join('\n')).toMatch(expected);
    source.start();
    // Replication itself resumes from its slot as soon as the source is back.
    for (const db of DBS) await sql(m.source, db, "INSERT INTO items (v) VALUES ('source back')");
    for (const db of DBS) await waitFor(`${db} resumes`, async () => (await count(db)) === 3003, 60_000);
    // The DBA clears the failure; the resource starts again and adopts everything.
    await exec('crm_resource', ['--cleanup', '--resource', ID]);
    await started();
    await waitFor('healthy monitors', async () => (await resourceState(ID)).failures.length === 0, 60_000, 1000);
    expect(await Promise.all(DBS.map(identity))).toEqual(before);
  });
});

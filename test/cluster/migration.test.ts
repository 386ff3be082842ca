/**
 * A whole migration as `make demo` runs it, on the cluster rig: real
 * PostgreSQL 17 and 18 clusters under pgsql, real moving addresses (IPaddr2),
 * the writer and pgbench running from the client namespace through the
 * production address. Forward replication, then `pgtwin-migrate cutover
 * --resource … --wait`. The outage is what the clients saw through the
 * production address, per database.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  clusterRig,
  heal,
  roles,
  configureMigration,
  removeMigration,
  migrationParams,
  waitStreaming,
  agentCommand,
  migrationRecord,
  vipIp,
  whoAnswers,
  dropDatabases,
} from '../support/cluster';
import {
  createLoadDatabases,
  allDatabases,
  startLoad,
  systemIdentifier,
  waitAcknowledgedBy,
  expectWritesOn,
  expectPgbenchOn,
  waitSameRows,
  describeLoad,
  twoWritableClusters,
  outages,
  writerSummary,
  pgbenchSummary,
  type Load,
} from '../support/cluster-load';

const ID = 'cl-migration';
const DBS = { writer: ['cl_app', 'cl_billing'], bank: 'cl_bank' };

describe('a whole migration on the cluster rig, through the real addresses, under load', () => {
  let load: Load | undefined;

  beforeAll(async () => {
    await heal();
    await createLoadDatabases(DBS);
    // On a node that holds no primary: the migration's own node is not what this test is about.
    await configureMigration(ID, migrationParams(allDatabases(DBS)), (await roles()).target.standby);
  });
  afterAll(async () => {
    await load?.stop().catch(() => undefined);
    await removeMigration(ID);
    await dropDatabases(allDatabases(DBS));
  });

  it('copies every database and streams, as a Pacemaker primitive on the cluster', async () => {
    const s = await waitStreaming(ID, allDatabases(DBS));
    expect(s.databases.map((d) => d.database)).toEqual(allDatabases(DBS));
  });

  it('cuts over with the writer and pgbench running: nothing lost, never two writable clusters, the production address on the target', async () => {
    const r = clusterRig();
    const source = await systemIdentifier('source');
    const target = await systemIdentifier('target');
    const names = { [source]: 'source (17)', [target]: 'target (18)' };
    load = startLoad('migration', DBS);
    await waitAcknowledgedBy(load, source, 40);

    const cut = await agentCommand(['cutover', '--resource', ID, '--wait', '--wait-seconds', '300'], 400_000);
    expect(cut.code, `${cut.stdout}\n${cut.stderr}`).toBe(0);
    expect(cut.stdout).toMatch(/cutover complete: read-only window \d+ ms/);
    await waitAcknowledgedBy(load, target, 40);
    const { writes, bench } = await load.stop();
    load = undefined;
    console.log(`cluster migration: ${describeLoad(writes, bench, names)}`);

    const record = await migrationRecord(ID);
    expect(record.phase).toBe('complete');
    // The addresses moved: the production address is the target's, and it is the target that answers there.
    expect(await vipIp(r.vips.target.resource)).toBe(r.vips.production.ip);
    expect(await vipIp(r.vips.production.resource)).toBe(r.vips.target.ip);
    expect(await whoAnswers(r.vips.production.ip)).toMatch(/^pg18-/);

    // Both clusters acknowledged writes, one after the other, never at once.
    const s = writerSummary(writes);
    expect(s.byCluster[source] ?? 0).toBeGreaterThan(0);
    expect(s.byCluster[target] ?? 0).toBeGreaterThan(0);
    expect(Object.keys(s.byCluster).sort()).toEqual([source, target].sort());
    expect(twoWritableClusters(writes)).toEqual([]);
    // Every acknowledged write is on the target exactly once; pgbench's balances agree there.
    await expectWritesOn('target', writes, DBS);
    await expectPgbenchOn('target', bench, DBS.bank);
    expect(pgbenchSummary(bench).committed).toBeGreaterThan(0);
    // And on the source, through reverse replication (the way back).
    await waitSameRows('target', 'source', DBS);
    await expectWritesOn('source', writes, DBS);
    await expectPgbenchOn('source', bench, DBS.bank);

    // The outage the clients saw through the production address, per database: bounded.
    for (const o of outages(writes)) expect(o.ms, `${o.db}: ${JSON.stringify(o)}`).toBeLessThan(60_000);
  });
});

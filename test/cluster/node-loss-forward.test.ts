/**
 * The node running the migration resource loses power during forward
 * replication, with the writer and pgbench running. Pacemaker fences it
 * (the rig's fence device), starts the resource on another node, and the
 * migration carries on from where it was: the same subscriptions, no table
 * copied again, every acknowledged write on the target exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  heal,
  roles,
  configureMigration,
  removeMigration,
  migrationParams,
  waitStreaming,
  dropDatabases,
  powerOffNodeRunning,
  waitRunningElsewhere,
  fencedSince,
  sqlOnPrimary,
  crmMon,
  runningOn,
  primaryOf,
  takesWrites,
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
  writerSummary,
  type Load,
} from '../support/cluster-load';

const ID = 'cl-node-loss';
const DBS = { writer: ['cl_nl_app', 'cl_nl_billing'], bank: 'cl_nl_bank' };

/** Per database: each subscription's oid and, per table, its state and the LSN its copy ended at. */
async function subscriptionsNow(): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const db of allDatabases(DBS)) {
    const subs = await sqlOnPrimary<{ s: string }>('target', db, "SELECT oid::text || ' ' || subname AS s FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY subname");
    const rels = await sqlOnPrimary<{ s: string }>('target', db, "SELECT srrelid::regclass::text || ' ' || srsubstate::text || ' ' || coalesce(srsublsn::text, '-') AS s FROM pg_subscription_rel ORDER BY 1");
    out[db] = [...subs.map((r) => `subscription ${r.s}`), ...rels.map((r) => `table ${r.s}`)];
  }
  return out;
}

describe('the node running the migration is powered off during forward replication', () => {
  let load: Load | undefined;

  beforeAll(async () => {
    await heal();
    await createLoadDatabases(DBS);
    // The target's standby node: losing it costs no primary.
    await configureMigration(ID, migrationParams(allDatabases(DBS)), (await roles()).target.standby);
  });
  afterAll(async () => {
    await load?.stop().catch(() => undefined);
    await removeMigration(ID);
    await dropDatabases(allDatabases(DBS));
  });

  it('moves to another node, copies nothing again and loses nothing', async () => {
    await waitStreaming(ID, allDatabases(DBS));
    const before = await subscriptionsNow();
    for (const rows of Object.values(before)) expect(rows.filter((r) => r.startsWith('table ') && !/ r /.test(r))).toEqual([]);
    const source = await systemIdentifier('source');
    load = startLoad('node-loss-forward', DBS);
    await waitAcknowledgedBy(load, source, 40);

    const t0 = Date.now();
    const lost = await powerOffNodeRunning(ID);
    const now = await waitRunningElsewhere(ID, lost, 180_000);
    console.log(`cluster node loss: ${ID} ran on ${lost}, powered off; running on ${now} after ${Date.now() - t0} ms`);
    expect(await fencedSince(lost, t0)).toBe(true);
    await waitStreaming(ID, allDatabases(DBS));
    // Writes kept flowing through the loss, and keep flowing on.
    await waitAcknowledgedBy(load, source, 40);
    const { writes, bench } = await load.stop();
    load = undefined;
    console.log(`cluster node loss: ${describeLoad(writes, bench)}`);

    // Nothing was copied again: the same subscriptions, every table with the copy it had.
    await waitSameRows('source', 'target', DBS);
    expect(await subscriptionsNow()).toEqual(before);
    expect(runningOn(await crmMon(), ID)).toBe(now);
    // Phase forward still: the source takes writes, the target refuses them (only replication writes there).
    for (const db of DBS.writer) {
      expect(await takesWrites(await primaryOf('source'), db), `${db} on the source`).toBe(true);
      expect(await takesWrites(await primaryOf('target'), db), `${db} on the target`).toBe(false);
    }
    // Nothing lost, nothing twice: on the source, and on the target through forward replication.
    expect(Object.keys(writerSummary(writes).byCluster)).toEqual([source]);
    expect(twoWritableClusters(writes)).toEqual([]);
    await expectWritesOn('source', writes, DBS);
    await expectWritesOn('target', writes, DBS);
    await expectPgbenchOn('source', bench, DBS.bank);
    await expectPgbenchOn('target', bench, DBS.bank);
  });
});

/**
 * The source primary fails over to its standby during forward replication
 * (its node loses power; Pacemaker fences it and pgsql promotes the
 * synchronous standby), with the writer and pgbench running.
 *
 * What the agent does today (found on this rig, and what this test holds it
 * to until it does better): the forward slots live only on the old primary
 * (subscriptions are created without `failover = true`, so PostgreSQL 17's
 * slot synchronisation leaves them out, although the rig's standbys run with
 * sync_replication_slots = on). After the failover the monitor reports the
 * databases broken ("replication slot … is missing on the source (slot
 * lost)"), Pacemaker restarts the resource, and start refuses with the
 * reason "…: slot … is gone from source primary …; the subscription cannot
 * resume: run pgtwin-migrate teardown, empty the target tables and start
 * again". Nothing is copied again behind the operator's back. The remedy it
 * names works: teardown, empty the target's tables, clean the resource up;
 * the migration starts over (a full copy) from the new primary, and every
 * write acknowledged by the source cluster, before and after its failover,
 * reaches the target exactly once.
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
  dropDatabases,
  powerOff,
  primaryOf,
  fencedSince,
  failuresOf,
  migrationStatus,
  whoAnswers,
  agentCommand,
  anyNode,
  onNodeOk,
  sqlOnPrimary,
  takesWrites,
} from '../support/cluster';
import { waitFor } from '../support/migration';
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

const ID = 'cl-failover';
const DBS = { writer: ['cl_fo_app'], bank: 'cl_fo_bank' };
const SLOT_GONE = /slot pgtwin_migrate_forward_slot_\S+ is gone from source primary (\S+); the subscription cannot resume/;

describe('the source primary fails over during forward replication', () => {
  let load: Load | undefined;

  beforeAll(async () => {
    await heal();
    await createLoadDatabases(DBS);
    await configureMigration(ID, migrationParams(allDatabases(DBS)), (await roles()).target.standby);
  });
  afterAll(async () => {
    await load?.stop().catch(() => undefined);
    await removeMigration(ID);
    await dropDatabases(allDatabases(DBS));
  });

  it('reports the lost slots and refuses to resume (no silent copy); teardown and a fresh start carry every acknowledged write over', async () => {
    const r = clusterRig();
    await waitStreaming(ID, allDatabases(DBS));
    const cluster = await systemIdentifier('source');
    load = startLoad('source-failover', DBS);
    await waitAcknowledgedBy(load, cluster, 40);
    const before = await roles();
    const failed = before.source.primary!;
    const t0 = Date.now();
    await powerOff(failed);

    // The source cluster fails over by itself: fenced, the standby promoted, its addresses with it.
    await waitFor('the source standby promoted', async () => (await roles()).source.primary === before.source.standby, 180_000, 1000);
    expect(await fencedSince(failed, t0)).toBe(true);
    await waitFor('the production address answered by the new source primary', async () => (await whoAnswers(r.vips.production.ip)) === `pg17-${before.source.standby}`, 60_000, 1000);
    await waitAcknowledgedBy(load, cluster, 40);
    console.log(`cluster source failover: ${failed} lost, ${before.source.standby} primary after ${Date.now() - t0} ms`);

    // The agent: the slots are gone with the old primary; it says so and refuses to resume.
    const reason = await waitFor('the migration resource failed with the lost slot as its reason', async () => (await failuresOf(ID)).find((f) => SLOT_GONE.test(f)), 240_000, 2000);
    expect(SLOT_GONE.exec(reason)![1]).toBe(`${before.source.standby}:${r.port}`);
    const status = await migrationStatus(ID);
    expect(status?.databases.map((d) => [d.database, d.state])).toEqual(allDatabases(DBS).map((d) => [d, 'broken']));
    for (const d of status!.databases) expect(String(d.problem)).toMatch(/is missing on the source \(slot lost\)/);
    // The new source primary takes writes (its standby copy of the fence is lifted, as on the old one); the target stays fenced.
    for (const db of DBS.writer) {
      expect(await takesWrites(await primaryOf('source'), db), `${db} on the new source primary`).toBe(true);
      expect(await takesWrites(await primaryOf('target'), db), `${db} on the target`).toBe(false);
    }
    // Nothing was copied again behind the operator's back: no forward slot on the new primary.
    for (const db of allDatabases(DBS)) {
      expect(await sqlOnPrimary('source', db, "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'pgtwin_migrate%'")).toEqual([]);
    }

    // The remedy the reason names: teardown, empty the target tables, start again (a full copy).
    const node = await anyNode();
    const teardown = await agentCommand(['teardown', '--resource', ID, '--yes'], 300_000, node);
    expect(teardown.code, teardown.stdout + teardown.stderr).toBe(0);
    for (const db of allDatabases(DBS)) {
      const tables = await sqlOnPrimary<{ t: string }>('target', db, "SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables WHERE schemaname = 'public'");
      await sqlOnPrimary('target', db, `TRUNCATE ${tables.map((t) => t.t).join(', ')}`);
    }
    await onNodeOk(node, ['crm_resource', '--cleanup', '--resource', ID]);
    await waitStreaming(ID, allDatabases(DBS), 300_000);
    await waitAcknowledgedBy(load, cluster, 40);
    const { writes, bench } = await load.stop();
    load = undefined;
    console.log(`cluster source failover: ${describeLoad(writes, bench)}`);

    // No acknowledged write was lost by the failover (synchronous standby), and the fresh copy has them all.
    expect(Object.keys(writerSummary(writes).byCluster)).toEqual([cluster]);
    expect(twoWritableClusters(writes)).toEqual([]);
    expect(await primaryOf('source')).toBe(before.source.standby);
    await expectWritesOn('source', writes, DBS);
    await expectPgbenchOn('source', bench, DBS.bank);
    await waitSameRows('source', 'target', DBS);
    await expectWritesOn('target', writes, DBS);
    await expectPgbenchOn('target', bench, DBS.bank);
  });
});

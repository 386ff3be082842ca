/**
 * The node running the migration resource loses power DURING the cutover
 * (issue 11 phase 2), with the writer and pgbench running through the
 * production address. The switch worker is held after a step
 * (PGTWIN_MIGRATE_TEST_PAUSE_AT, honoured on the rig only), then its node is
 * powered off. Pacemaker fences it and starts the resource on another node;
 * the monitor there sees the worker's lease held by a fenced node and takes
 * the switch over by the rule of the recorded step:
 *
 * - held before the swap (after `sync`: the source fenced and drained, the
 *   addresses untouched): it ROLLS BACK — phase forward, state failed, the
 *   source takes the writes again through the production address, the target
 *   fenced again, forward replication running, nothing lost;
 * - held after the swap (after `swap-vip`: the addresses swapped in the CIB,
 *   both clusters fenced): it ROLLS FORWARD — phase reverse, the target takes
 *   the writes, the old source fenced and fed by reverse replication, nothing
 *   lost.
 *
 * Never two writable clusters, in either case: a second writer bypasses the
 * production address, straight to the primary that must refuse writes (the
 * target before the swap, the source after it).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
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
  waitRunningElsewhere,
  fencedSince,
  migrationRecord,
  waitRecord,
  startSwitchPausedAfter,
  cutoverLog,
  primaryOf,
  takesWrites,
  vipIp,
  whoAnswers,
  nodeAddress,
} from '../support/cluster';
import {
  createLoadDatabases,
  allDatabases,
  startLoad,
  startBypassWriter,
  systemIdentifier,
  waitAcknowledgedBy,
  expectWritesOn,
  expectPgbenchOn,
  waitSameRows,
  describeLoad,
  twoWritableClusters,
  writerSummary,
  outages,
  type Load,
} from '../support/cluster-load';
import type { ClientProcess, WriteRecord } from '../support/load/clients.mjs';

const ID = 'cl-node-loss-cut';
const DBS = { writer: ['cl_nc_app'], bank: 'cl_nc_bank' };

describe('the node running the migration is powered off during the cutover', () => {
  let load: Load | undefined;
  let bypass: ClientProcess<WriteRecord> | undefined;

  beforeEach(async () => {
    await heal();
    await createLoadDatabases(DBS);
    // The target's standby node: losing it costs no primary.
    await configureMigration(ID, migrationParams(allDatabases(DBS)), (await roles()).target.standby);
  });
  afterEach(async () => {
    await load?.stop().catch(() => undefined);
    await bypass?.stop().catch(() => undefined);
    load = bypass = undefined;
    await removeMigration(ID);
    await dropDatabases(allDatabases(DBS));
  });

  /** Holds the worker after `step`, powers its node off; returns where the resource runs afterwards and when the power went. */
  async function loseWorkerNodeAfter(step: string): Promise<{ lost: string; now: string; t0: number }> {
    const lost = await startSwitchPausedAfter(ID, step);
    const held = await migrationRecord(ID);
    expect(held['cutover-state']).toBe('running');
    const t0 = Date.now();
    await powerOff(lost);
    const now = await waitRunningElsewhere(ID, lost, 180_000);
    console.log(`cluster node loss in the cutover (held after ${step}): ${ID} ran on ${lost}, powered off; running on ${now} after ${Date.now() - t0} ms`);
    expect(await fencedSince(lost, t0)).toBe(true);
    return { lost, now, t0 };
  }

  it('held before the swap (after sync): the node is fenced, the monitor on another node takes over and rolls back; the source takes the writes again, nothing lost', async () => {
    const r = clusterRig();
    await waitStreaming(ID, allDatabases(DBS));
    const source = await systemIdentifier('source');
    load = startLoad('node-loss-cutover-before', DBS);
    // The target is fenced in phase forward and stays so: it must refuse this writer throughout.
    bypass = startBypassWriter('node-loss-cutover-before', DBS, nodeAddress(await primaryOf('target')));
    await waitAcknowledgedBy(load, source, 40);

    const { now, t0 } = await loseWorkerNodeAfter('sync');
    const rec = await waitRecord(ID, 'the cutover rolled back', (x) => x['cutover-state'] === 'failed', 240_000).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${JSON.stringify(await migrationRecord(ID))}\n${await cutoverLog(now)}`);
    });
    console.log(`cluster node loss in the cutover (before the swap): rolled back ${Date.now() - t0} ms after the power-off: ${rec['cutover-error']}`);
    expect(rec.phase).toBe('forward');
    expect(rec['cutover-step']).toMatch(/^rolled-back-at-/);
    expect(rec['cutover-error']).toMatch(/stopped at step \S+ \(crash, stop or node loss\)/);
    expect(await cutoverLog(now)).toMatch(/taking over an interrupted switch at step \S+: rollback/);
    // The addresses never moved; the source takes the writes again through the production address.
    expect(await vipIp(r.vips.production.resource)).toBe(r.vips.production.ip);
    expect(await vipIp(r.vips.target.resource)).toBe(r.vips.target.ip);
    expect(await whoAnswers(r.vips.production.ip)).toMatch(/^pg17-/);
    await waitAcknowledgedBy(load, source, 40);
    expect(await takesWrites(await primaryOf('source'), DBS.writer[0]!), 'the source after the rollback').toBe(true);
    expect(await takesWrites(await primaryOf('target'), DBS.writer[0]!), 'the target after the rollback').toBe(false);
    const { writes, bench } = await load.stop();
    const bypassed = await bypass.stop();
    load = bypass = undefined;
    console.log(`cluster node loss in the cutover (before the swap): ${describeLoad(writes, bench)}; writer bypassing to the target: ${describeLoad(bypassed, [])}`);

    // Only the source took writes (the bypassing writer none: the target refused them all); every acknowledged one is there, and on the target through forward replication.
    expect(Object.keys(writerSummary(writes).byCluster)).toEqual([source]);
    expect(writerSummary(bypassed).acknowledged).toBe(0);
    expect(bypassed.filter((w) => w.sqlstate === '25006').length).toBeGreaterThan(0);
    expect(twoWritableClusters(writes)).toEqual([]);
    await expectWritesOn('source', [...writes, ...bypassed], DBS);
    await expectPgbenchOn('source', bench, DBS.bank);
    await waitSameRows('source', 'target', DBS);
    await expectWritesOn('target', [...writes, ...bypassed], DBS);
    await expectPgbenchOn('target', bench, DBS.bank);
    for (const o of outages(writes)) expect(o.ms, `${o.db}: ${JSON.stringify(o)}`).toBeLessThan(180_000);
  });

  it('held after the swap (after swap-vip): the node is fenced, the monitor on another node takes over and rolls forward; the target takes the writes, nothing lost', async () => {
    const r = clusterRig();
    await waitStreaming(ID, allDatabases(DBS));
    const source = await systemIdentifier('source');
    const target = await systemIdentifier('target');
    const names = { [source]: 'source (17)', [target]: 'target (18)' };
    const sourceNode = await primaryOf('source');
    load = startLoad('node-loss-cutover-after', DBS);
    // The source takes writes until the fence and never again: this writer goes straight to it.
    bypass = startBypassWriter('node-loss-cutover-after', DBS, nodeAddress(sourceNode));
    await waitAcknowledgedBy(load, source, 40);

    const { now, t0 } = await loseWorkerNodeAfter('swap-vip');
    const rec = await waitRecord(ID, 'the cutover complete', (x) => x['cutover-state'] === 'complete', 240_000).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${JSON.stringify(await migrationRecord(ID))}\n${await cutoverLog(now)}`);
    });
    console.log(`cluster node loss in the cutover (after the swap): rolled forward, complete ${Date.now() - t0} ms after the power-off`);
    expect(rec.phase).toBe('reverse');
    expect(await cutoverLog(now)).toMatch(/taking over an interrupted switch at step swapped: roll-forward/);
    expect(await vipIp(r.vips.target.resource)).toBe(r.vips.production.ip);
    expect(await vipIp(r.vips.production.resource)).toBe(r.vips.target.ip);
    expect(await whoAnswers(r.vips.production.ip)).toMatch(/^pg18-/);
    await waitAcknowledgedBy(load, target, 40);
    expect(await takesWrites(await primaryOf('target'), DBS.writer[0]!), 'the target after the roll-forward').toBe(true);
    expect(await takesWrites(sourceNode, DBS.writer[0]!), 'the old source after the roll-forward').toBe(false);
    const { writes, bench } = await load.stop();
    const bypassed = await bypass.stop();
    load = bypass = undefined;
    const all = [...writes, ...bypassed];
    console.log(`cluster node loss in the cutover (after the swap): ${describeLoad(writes, bench, names)}; writer bypassing to the source: ${describeLoad(bypassed, [], names)}`);

    // The source, then the target, never both: the source took no write once the fence was complete, not even from the bypassing writer.
    const fencedAt = Date.parse(rec['cutover-fence-complete-at'] ?? '');
    expect(Number.isFinite(fencedAt), JSON.stringify(rec)).toBe(true);
    const late = all.filter((w) => w.ok && w.server?.sysid === source && w.sentAt > fencedAt);
    expect(late.map((w) => `${w.db} worker ${w.worker} ${w.op} sent ${new Date(w.sentAt).toISOString()}`).slice(0, 5)).toEqual([]);
    expect(Object.keys(writerSummary(writes).byCluster).sort()).toEqual([source, target].sort());
    expect(twoWritableClusters(all)).toEqual([]);
    // Nothing lost on the target, nor on the source through reverse replication.
    await expectWritesOn('target', all, DBS);
    await expectPgbenchOn('target', bench, DBS.bank);
    await waitSameRows('target', 'source', DBS);
    await expectWritesOn('source', all, DBS);
    await expectPgbenchOn('source', bench, DBS.bank);
    for (const o of outages(writes)) expect(o.ms, `${o.db}: ${JSON.stringify(o)}`).toBeLessThan(180_000);
  });
});

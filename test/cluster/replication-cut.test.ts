/**
 * The replication path between the two clusters is cut while the cutover
 * waits in `sync` (forward replication must confirm the fence position), with
 * the writer and pgbench running. The cut: the target primary drops every
 * packet to the source's replication address (a blackhole route in its
 * network namespace), so the subscriptions' streams stall without an error,
 * as they do when a firewall or a switch between the clusters drops traffic;
 * the nodes' own addresses stay reachable, so corosync keeps one cluster.
 *
 * The path is cut just before the cutover is asked for, and lag_threshold is
 * raised so that the recheck (lag under the threshold) still lets it reach the
 * fence: the stall then holds `sync` until sync_timeout, which must roll back
 * (phase forward, state failed; the source's fence lifted, the target fenced
 * again, VIPs untouched), and nothing may be lost once the path is back.
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
  agentCommand,
  migrationRecord,
  vipIp,
  whoAnswers,
  cutPath,
  restorePath,
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
  outages,
  writerSummary,
  type Load,
} from '../support/cluster-load';

const ID = 'cl-cut';
const DBS = { writer: ['cl_cut_app'], bank: 'cl_cut_bank' };
const SYNC_TIMEOUT_S = 20;

describe('the replication path is cut during the cutover', () => {
  let load: Load | undefined;
  let cut: { node: string; address: string } | undefined;

  beforeAll(async () => {
    await heal();
    await createLoadDatabases(DBS);
    await configureMigration(ID, migrationParams(allDatabases(DBS), { sync_timeout: String(SYNC_TIMEOUT_S), lag_threshold: '100000000' }), (await roles()).target.standby);
  });
  afterAll(async () => {
    await load?.stop().catch(() => undefined);
    if (cut) await restorePath(cut.node, cut.address).catch(() => undefined);
    await removeMigration(ID);
    await dropDatabases(allDatabases(DBS));
  });

  it(`rolls back within sync_timeout (${SYNC_TIMEOUT_S} s), VIPs untouched, and loses nothing once the path is back`, async () => {
    const r = clusterRig();
    await waitStreaming(ID, allDatabases(DBS));
    const source = await systemIdentifier('source');
    load = startLoad('replication-cut', DBS);
    await waitAcknowledgedBy(load, source, 40);

    cut = { node: await primaryOf('target'), address: r.vips.sourceReplication.ip };
    await cutPath(cut.node, cut.address);
    const t0 = Date.now();
    const attempt = await agentCommand(['cutover', '--resource', ID, '--wait', '--wait-seconds', '300'], 400_000);
    const record = await migrationRecord(ID);
    expect(attempt.code, `${attempt.stdout}\n${attempt.stderr}`).not.toBe(0);
    expect(`${attempt.stdout}\n${attempt.stderr}\n${record['cutover-error']}`).toMatch(/sync_timeout/);
    expect(record['cutover-state']).toBe('failed');
    expect(record.phase).toBe('forward');
    expect(record['cutover-step']).toBe('rolled-back-at-sync');
    // The source was fenced (the writer was refused there), and takes writes again (the writer through the production address sees it).
    expect(load.writer.records().some((w) => w.sentAt > t0 && !w.ok && w.sqlstate === '25006')).toBe(true);
    await waitAcknowledgedBy(load, source, 20);
    expect(await takesWrites(await primaryOf('source'), DBS.writer[0]!), 'the source after the rollback').toBe(true);
    expect(await takesWrites(await primaryOf('target'), DBS.writer[0]!), 'the target after the rollback').toBe(false);

    await restorePath(cut.node, cut.address);
    cut = undefined;
    await waitStreaming(ID, allDatabases(DBS));
    const { writes, bench } = await load.stop();
    load = undefined;
    console.log(`cluster replication cut: cutover attempt ended after ${Date.now() - t0} ms; ${describeLoad(writes, bench)}`);

    // Rolled back within sync_timeout of the fence: the writers' longest outage is that, plus the fence and the rollback.
    for (const o of outages(writes)) expect(o.ms, `${o.db}: ${JSON.stringify(o)}`).toBeLessThan((SYNC_TIMEOUT_S + 30) * 1000);
    // The addresses never moved; the source answers on the production address.
    expect(await vipIp(r.vips.production.resource)).toBe(r.vips.production.ip);
    expect(await vipIp(r.vips.target.resource)).toBe(r.vips.target.ip);
    expect(await whoAnswers(r.vips.production.ip)).toMatch(/^pg17-/);
    // Only the source took writes; every acknowledged one is there, and on the target once replication caught up.
    expect(Object.keys(writerSummary(writes).byCluster)).toEqual([source]);
    expect(twoWritableClusters(writes)).toEqual([]);
    await waitSameRows('source', 'target', DBS);
    await expectWritesOn('source', writes, DBS);
    await expectWritesOn('target', writes, DBS);
    await expectPgbenchOn('source', bench, DBS.bank);
    await expectPgbenchOn('target', bench, DBS.bank);
  });
});

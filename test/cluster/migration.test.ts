/**
 * A whole migration as `make demo` runs it, on the cluster rig: real
 * PostgreSQL 17 and 18 clusters under pgsql, real moving addresses (IPaddr2),
 * the writer and pgbench running from the client namespace through the
 * production address, and a second writer that bypasses it (straight to the
 * source primary's own address). Forward replication, then `pgtwin-migrate
 * cutover --resource … --wait`: phase `reverse`, the target takes the writes,
 * the old source stays fenced (the bypassing writer is refused there, SQLSTATE
 * 25006) and gets every write through reverse replication. Then the way back:
 * `pgtwin-migrate failback --wait` under load (phase `forward`, the source
 * takes the writes again, the target fenced, nothing lost), a second cutover,
 * and finish=true (phase `finished`, the resource stopped, no fence left). The outage is what the clients saw through the production
 * address, per database.
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
  primaryOf,
  nodeAddress,
  takesWrites,
  crmMon,
  runningOn,
  waitRecord,
  anyNode,
  onNodeOk,
} from '../support/cluster';
import { waitFor } from '../support/migration';
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
  outages,
  writerSummary,
  pgbenchSummary,
  type Load,
} from '../support/cluster-load';
import type { ClientProcess, WriteRecord, PgbenchLine } from '../support/load/clients.mjs';

const ID = 'cl-migration';
const DBS = { writer: ['cl_app', 'cl_billing'], bank: 'cl_bank' };

describe('a whole migration on the cluster rig, through the real addresses, under load', () => {
  let load: Load | undefined;
  let bypass: ClientProcess<WriteRecord> | undefined;
  /** What the clients of the cutover recorded: the writer's counters and pgbench's history hold their writes too. */
  let earlier: { writes: WriteRecord[]; bench: PgbenchLine[] } = { writes: [], bench: [] };

  beforeAll(async () => {
    await heal();
    await createLoadDatabases(DBS);
    // On a node that holds no primary: the migration's own node is not what this test is about.
    await configureMigration(ID, migrationParams(allDatabases(DBS)), (await roles()).target.standby);
  });
  afterAll(async () => {
    await load?.stop().catch(() => undefined);
    await bypass?.stop().catch(() => undefined);
    await removeMigration(ID);
    await dropDatabases(allDatabases(DBS));
  });

  it('copies every database and streams, as a Pacemaker primitive on the cluster', async () => {
    const s = await waitStreaming(ID, allDatabases(DBS));
    expect(s.databases.map((d) => d.database)).toEqual(allDatabases(DBS));
  });

  it('cuts over with the writer and pgbench running: nothing lost, never two writable clusters, the production address on the target, the old source fenced', async () => {
    const r = clusterRig();
    const source = await systemIdentifier('source');
    const target = await systemIdentifier('target');
    const names = { [source]: 'source (17)', [target]: 'target (18)' };
    const sourceNode = await primaryOf('source');
    load = startLoad('migration', DBS);
    bypass = startBypassWriter('migration', DBS, nodeAddress(sourceNode));
    await waitAcknowledgedBy(load, source, 40);

    const cut = await agentCommand(['cutover', '--resource', ID, '--wait', '--wait-seconds', '300'], 400_000);
    expect(cut.code, `${cut.stdout}\n${cut.stderr}`).toBe(0);
    expect(cut.stdout).toMatch(/cutover complete: read-only window \d+ ms/);
    await waitAcknowledgedBy(load, target, 40);
    const record = await migrationRecord(ID);
    // The writer that bypasses the production address keeps trying the old source: refused there.
    const liftedAt = Date.parse(record['cutover-lifted-at'] ?? '');
    expect(Number.isFinite(liftedAt), JSON.stringify(record)).toBe(true);
    await waitFor('the bypassing writer refused by the old source', async () => bypass!.records().filter((w) => w.sentAt > liftedAt && !w.ok && w.sqlstate === '25006').length >= 10, 60_000, 500);
    const { writes, bench } = await load.stop();
    const bypassed = await bypass.stop();
    load = bypass = undefined;
    earlier = { writes: [...writes, ...bypassed], bench };
    console.log(`cluster migration: ${describeLoad(writes, bench, names)}; bypassing writer: ${describeLoad(bypassed, [], names)}`);

    expect(record.phase).toBe('reverse');
    expect(record['cutover-state']).toBe('complete');
    // The addresses moved: the production address is the target's, and it is the target that answers there.
    expect(await vipIp(r.vips.target.resource)).toBe(r.vips.production.ip);
    expect(await vipIp(r.vips.production.resource)).toBe(r.vips.target.ip);
    expect(await whoAnswers(r.vips.production.ip)).toMatch(/^pg18-/);
    // The resource keeps running in phase reverse.
    expect(runningOn(await crmMon(), ID)).toBeDefined();

    // The old source stays fenced: no write reached it once the fence was complete, and none does now.
    const fencedAt = Date.parse(record['cutover-fence-complete-at'] ?? '');
    expect(Number.isFinite(fencedAt), JSON.stringify(record)).toBe(true);
    const late = [...writes, ...bypassed].filter((w) => w.ok && w.server?.sysid === source && w.sentAt > fencedAt);
    expect(late.map((w) => `${w.db} worker ${w.worker} ${w.op} sent ${new Date(w.sentAt).toISOString()}`).slice(0, 5)).toEqual([]);
    for (const db of DBS.writer) {
      expect(await takesWrites(sourceNode, db), `${db} on the old source ${sourceNode}`).toBe(false);
      expect(await takesWrites(await primaryOf('target'), db), `${db} on the target`).toBe(true);
    }

    // Both clusters acknowledged writes, one after the other, never at once.
    const all = [...writes, ...bypassed];
    const s = writerSummary(writes);
    expect(s.byCluster[source] ?? 0).toBeGreaterThan(0);
    expect(s.byCluster[target] ?? 0).toBeGreaterThan(0);
    expect(Object.keys(writerSummary(all).byCluster).sort()).toEqual([source, target].sort());
    expect(twoWritableClusters(all)).toEqual([]);
    // Every acknowledged write is on the target exactly once; pgbench's balances agree there.
    await expectWritesOn('target', all, DBS);
    await expectPgbenchOn('target', bench, DBS.bank);
    expect(pgbenchSummary(bench).committed).toBeGreaterThan(0);
    // And on the source, through reverse replication (the way back).
    await waitSameRows('target', 'source', DBS);
    await expectWritesOn('source', all, DBS);
    await expectPgbenchOn('source', bench, DBS.bank);

    // The outage the clients saw through the production address, per database: bounded.
    for (const o of outages(writes)) expect(o.ms, `${o.db}: ${JSON.stringify(o)}`).toBeLessThan(60_000);
  });

  it('fails back under load (the source takes the writes again, nothing lost), cuts over again and finishes', async () => {
    const r = clusterRig();
    const source = await systemIdentifier('source');
    const target = await systemIdentifier('target');
    const names = { [source]: 'source (17)', [target]: 'target (18)' };
    load = startLoad('migration-failback', DBS);
    await waitAcknowledgedBy(load, target, 40);

    const back = await agentCommand(['failback', '--resource', ID, '--wait', '--wait-seconds', '300'], 400_000);
    expect(back.code, `${back.stdout}\n${back.stderr}`).toBe(0);
    expect(back.stdout).toMatch(/failback complete: read-only window \d+ ms/);
    await waitAcknowledgedBy(load, source, 40);
    const { writes, bench } = await load.stop();
    load = undefined;
    console.log(`cluster failback: ${describeLoad(writes, bench, names)}`);
    // The rows hold the cutover's writes too: the checks of what is there take both runs.
    const all = { writes: [...earlier.writes, ...writes], bench: [...earlier.bench, ...bench] };

    const record = await migrationRecord(ID);
    expect(record.phase).toBe('forward');
    expect(await vipIp(r.vips.production.resource)).toBe(r.vips.production.ip);
    expect(await vipIp(r.vips.target.resource)).toBe(r.vips.target.ip);
    expect(await whoAnswers(r.vips.production.ip)).toMatch(/^pg17-/);
    // The source takes writes again; the target is fenced, as in the forward phase.
    for (const db of DBS.writer) {
      expect(await takesWrites(await primaryOf('source'), db), `${db} on the source`).toBe(true);
      expect(await takesWrites(await primaryOf('target'), db), `${db} on the target`).toBe(false);
    }
    // The target, then the source; never both; every acknowledged write on both (forward replication made again, no copy).
    expect(Object.keys(writerSummary(writes).byCluster).sort()).toEqual([source, target].sort());
    expect(twoWritableClusters(writes)).toEqual([]);
    await expectWritesOn('source', all.writes, DBS);
    await expectPgbenchOn('source', all.bench, DBS.bank);
    await waitStreaming(ID, allDatabases(DBS));
    await waitSameRows('source', 'target', DBS);
    await expectWritesOn('target', all.writes, DBS);
    await expectPgbenchOn('target', all.bench, DBS.bank);
    for (const o of outages(writes)) expect(o.ms, `${o.db}: ${JSON.stringify(o)}`).toBeLessThan(60_000);

    // Again to the target, then finish: the way back ends, nothing of the migration is left, the resource stops.
    const again = await agentCommand(['cutover', '--resource', ID, '--wait', '--wait-seconds', '300'], 400_000);
    expect(again.code, `${again.stdout}\n${again.stderr}`).toBe(0);
    expect((await migrationRecord(ID)).phase).toBe('reverse');
    // finish=true, applied by Pacemaker (reload-agent) on the resource's node, one operation at a time
    // with its monitor. (The `pgtwin-migrate finish` command races a monitor there: see finish-race.test.ts.)
    await onNodeOk(await anyNode(), ['crm_resource', '--resource', ID, '--set-parameter', 'finish', '--parameter-value', 'true']);
    await waitRecord(ID, 'phase finished', (x) => x.phase === 'finished', 180_000);
    await waitFor(`${ID} stopped`, async () => !runningOn(await crmMon(), ID), 120_000, 1000);
    expect(await whoAnswers(r.vips.production.ip)).toMatch(/^pg18-/);
    for (const db of DBS.writer) {
      expect(await takesWrites(await primaryOf('target'), db), `${db} on the target`).toBe(true);
      // The old source is no longer part of anything: no fence left there either.
      expect(await takesWrites(await primaryOf('source'), db), `${db} on the old source`).toBe(true);
    }
  });
});

/**
 * The production address cannot move during the cutover (issue 11; issue 10
 * item 1 and DESIGN §6 "Never two writable clusters"): the target's VIP
 * resource is unmanaged, or its start fails on the target's nodes. Writers:
 * the writer and pgbench through the production address, and one that
 * bypasses it (straight to the source primary's own address), so that a
 * source taking writes again cannot go unseen.
 *
 * Past the swap the agent needs proof that the production address reaches
 * the target (a connection through it reaching the target's system
 * identifier, or Pacemaker's digests of the VIP resources' starts). Without
 * it, after min(sync_timeout, 60 s), the switch is `blocked`: its reason in
 * the record, both clusters fenced (no write accepted anywhere), the monitor
 * failing (a failed action in Pacemaker) and retrying. Once the fault is
 * undone as an operator would (manage the resource again; or let the node
 * take the address and clean the resource up), the cutover completes by
 * itself and nothing is lost.
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
  agentCommand,
  failuresOf,
  setManaged,
  refuseAddressOn,
  acceptAddressesOn,
  primaryOf,
  nodeAddress,
  takesWrites,
  waitRecord,
  whoAnswers,
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
  describeLoad,
  twoWritableClusters,
  expectWritesOn,
  expectPgbenchOn,
  waitSameRows,
  type Load,
} from '../support/cluster-load';
import type { ClientProcess, WriteRecord } from '../support/load/clients.mjs';

const ID = 'cl-vip-stuck';
const DBS = { writer: ['cl_vs_app'], bank: 'cl_vs_bank' };
/** The switch waits min(sync_timeout, 60 s) for the address before it reports itself blocked. */
const SYNC_TIMEOUT_S = 30;
/** How long the writers are watched while the switch is blocked (past the 30 s after which the old agent made the source writable). */
const WATCH_BLOCKED_MS = 45_000;

describe('the production address cannot move during the cutover', () => {
  let load: Load | undefined;
  let bypass: ClientProcess<WriteRecord> | undefined;
  let undo: (() => Promise<void>) | undefined;

  beforeEach(async () => {
    await heal();
    await createLoadDatabases(DBS);
    await configureMigration(ID, migrationParams(allDatabases(DBS), { sync_timeout: String(SYNC_TIMEOUT_S) }), (await roles()).target.standby);
  });
  afterEach(async () => {
    await load?.stop().catch(() => undefined);
    await bypass?.stop().catch(() => undefined);
    load = bypass = undefined;
    await undo?.().catch(() => undefined);
    undo = undefined;
    await removeMigration(ID);
    await dropDatabases(allDatabases(DBS));
  });

  const target = () => clusterRig().vips.target.resource;
  const faults: Array<[string, RegExp, () => Promise<() => Promise<void>>]> = [
    [
      'the target VIP resource is unmanaged',
      /postgres-vip-18 is unmanaged/,
      async () => {
        await setManaged(target(), false);
        return () => setManaged(target(), true);
      },
    ],
    [
      // On both of the target's nodes: where the start fails on the primary's
      // node only, Pacemaker promotes the standby so that the address can run
      // (the colocation's influence) and the address does move, with the
      // target's primary.
      "the target VIP resource's start fails on the target's nodes",
      /postgres-vip-18 (has failed|runs on 0 node|has not been started)/,
      async () => {
        const nodes = clusterRig().clusters.target.nodes;
        for (const node of nodes) await refuseAddressOn(node, clusterRig().vips.production.ip);
        return async () => {
          for (const node of nodes) await acceptAddressesOn(node);
          // As the blocked reason tells the operator: the failed start is cleaned up, Pacemaker starts it again.
          await onNodeOk(await anyNode(), ['crm_resource', '--cleanup', '--resource', target()]);
        };
      },
    ],
  ];

  for (const [fault, why, inject] of faults) {
    it(`${fault}: blocked, both clusters fenced, a failed action; once fixed the cutover completes by itself, nothing lost`, async () => {
      const r = clusterRig();
      await waitStreaming(ID, allDatabases(DBS));
      const source = await systemIdentifier('source');
      const targetId = await systemIdentifier('target');
      const names = { [source]: 'source (17)', [targetId]: 'target (18)' };
      const sourceNode = await primaryOf('source');
      load = startLoad('vip-cannot-move', DBS);
      bypass = startBypassWriter('vip-cannot-move', DBS, nodeAddress(sourceNode));
      await waitAcknowledgedBy(load, source, 40);
      undo = await inject();

      // The command's exit status while blocked is not what this test is about: a short wait, then the record.
      const cut = await agentCommand(['cutover', '--resource', ID, '--wait', '--wait-seconds', '20'], 120_000);
      const blocked = await waitRecord(ID, 'the cutover blocked', (x) => x['cutover-state'] === 'blocked', (SYNC_TIMEOUT_S + 180) * 1000);
      console.log(`cluster VIP cannot move (${fault}): cutover command exit ${cut.code}; blocked: ${blocked['cutover-error']}`);
      expect(blocked['cutover-error']).toMatch(/production address not proven to lead to the target/);
      expect(blocked['cutover-error']).toMatch(why);
      // From here on no write may be accepted by the source (the fence is complete).
      const fencedAt = Date.parse(blocked['cutover-fence-complete-at'] ?? '');
      expect(Number.isFinite(fencedAt), `the cutover fenced the source: ${JSON.stringify(blocked)}`).toBe(true);
      // Both clusters fenced: the source refuses, and the target too (the address does not lead there).
      // The target's primary may have moved (Pacemaker tried its other node for the address): asked again.
      expect(await takesWrites(sourceNode, DBS.writer[0]!), 'the source takes writes while blocked').toBe(false);
      expect(await takesWrites(await primaryOf('target'), DBS.writer[0]!), 'the target takes writes while blocked').toBe(false);
      // Pacemaker shows the failed monitor with the reason.
      const failure = await waitFor('a failed action of the migration resource', async () => (await failuresOf(ID)).find((f) => /production address not proven/.test(f)), 120_000, 2000);
      expect(failure).toMatch(why);
      // And it stays so: the writers are watched a while longer (the monitor retries meanwhile).
      await new Promise((res) => setTimeout(res, Math.max(0, fencedAt + WATCH_BLOCKED_MS - Date.now())));
      expect(await takesWrites(sourceNode, DBS.writer[0]!), 'the source takes writes while blocked').toBe(false);
      expect(await takesWrites(await primaryOf('target'), DBS.writer[0]!), 'the target takes writes while blocked').toBe(false);

      // The fault undone: the next retry proves the address and the cutover completes by itself.
      const t0 = Date.now();
      await undo();
      undo = undefined;
      const done = await waitRecord(ID, 'the cutover complete by itself', (x) => x['cutover-state'] === 'complete', 180_000);
      console.log(`cluster VIP cannot move (${fault}): completed ${Date.now() - t0} ms after the fix`);
      expect(done.phase).toBe('reverse');
      expect(await whoAnswers(r.vips.production.ip)).toMatch(/^pg18-/);
      await waitAcknowledgedBy(load, targetId, 40);
      const { writes, bench } = await load.stop();
      const bypassed = await bypass.stop();
      load = bypass = undefined;
      const all = [...writes, ...bypassed];
      console.log(`cluster VIP cannot move (${fault}): ${describeLoad(writes, bench, names)}; bypassing writer: ${describeLoad(bypassed, [], names)}`);

      // Never two writable clusters: the source took no write after the fence, not even from the bypassing writer.
      const late = all.filter((w) => w.ok && w.server?.sysid === source && w.sentAt > fencedAt);
      expect(late.map((w) => `${w.db} worker ${w.worker} ${w.op} sent ${new Date(w.sentAt).toISOString()} acknowledged by ${w.server?.name}`).slice(0, 5), 'the source took writes again after the fence').toEqual([]);
      expect(twoWritableClusters(all)).toEqual([]);
      expect(await takesWrites(sourceNode, DBS.writer[0]!), 'the old source takes writes after the cutover').toBe(false);
      // Nothing lost: every acknowledged write on the target, and on the source through reverse replication.
      await expectWritesOn('target', all, DBS);
      await expectPgbenchOn('target', bench, DBS.bank);
      await waitSameRows('target', 'source', DBS);
      await expectWritesOn('source', all, DBS);
      await expectPgbenchOn('source', bench, DBS.bank);
    });
  }
});

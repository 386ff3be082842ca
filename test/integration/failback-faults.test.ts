/**
 * Failback fault injection (issue 12): the failback worker killed (SIGKILL)
 * after each of its steps. Before the VIP swap the next monitor rolls it
 * back (production stays on the target, the way back runs again); from the
 * swap on it rolls forward (production on the source again, forward
 * replication flowing without a copy). Either way exactly one cluster takes
 * writes and nothing is lost.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/migration';
import { sql } from '../support/rig';
import { cibQuery, vipAddresses } from '../support/pacemaker';
import { newMigration, count, record, killWorkerAfter, recoverByMonitor, takesWrites } from '../support/switch';
import type { Migration } from '../support/migration';

const PRE_SWAP = ['recheck', 'fence', 'sync', 'disable-reverse', 'sequences', 'prepare-forward'] as const;
const POST_SWAP = ['swap-vip', 'address', 'final-proof', 'lift', 'enable-forward', 'drop-reverse'] as const;
const DB = 'fb_faults';

/** Arms and runs a switch to its end (cutover_ready false, then true). */
async function switchOver(m: Migration): Promise<Record<string, string>> {
  expect((await m.run('reload-agent', { cutover_ready: 'false' })).code).toBe(0);
  expect((await m.run('reload-agent', { cutover_ready: 'true' })).code).toBe(0);
  return waitFor('switch complete', async () => {
    const r = await record(m.opts.instance);
    return r['cutover-state'] === 'complete' || r['cutover-state'] === 'failed' ? r : undefined;
  }, 180_000, 250);
}

async function expectProductionOn(m: Migration, side: 'source' | 'target', production: string): Promise<void> {
  const r = await record(m.opts.instance);
  expect(r.phase).toBe(side === 'target' ? 'reverse' : 'forward');
  const vips = vipAddresses(await cibQuery());
  expect(side === 'target' ? vips.target : vips.production).toBe(production);
  const [on, off] = side === 'target' ? [m.target, m.source] : [m.source, m.target];
  expect(await takesWrites(on, DB)).toBe(true);
  expect(await takesWrites(off, DB)).toBe(false);
  // Replication from the production side to the other flows, and nothing was lost on the way.
  const note = `after ${Date.now()}`;
  await sql(on, DB, 'INSERT INTO orders (note) VALUES ($1)', [note]);
  await waitFor(`${note} replicated`, async () => (await sql(off, DB, 'SELECT 1 FROM orders WHERE note = $1', [note])).length === 1, 60_000);
  expect(await count(off, DB)).toBe(await count(on, DB));
  const errors = await sql<{ n: string }>(off, DB, "SELECT coalesce(sum(apply_error_count), 0)::text AS n FROM pg_stat_subscription_stats WHERE subname LIKE 'pgtwin_migrate%'");
  expect(Number(errors[0]!.n)).toBe(0);
}

describe('failback faults: the worker killed after each step', () => {
  let m: Migration;
  let production = '';

  beforeAll(async () => {
    m = await newMigration('migration-fb-faults', [DB]);
    production = vipAddresses(await cibQuery()).production!;
    expect((await switchOver(m))['cutover-state']).toBe('complete');
    await expectProductionOn(m, 'target', production);
  });
  afterAll(async () => {
    await m?.cleanup();
  });

  it('rolls back after any step before the swap: production stays on the target', async () => {
    for (const step of PRE_SWAP) {
      expect((await m.run('reload-agent', { cutover_ready: 'false' })).code).toBe(0);
      await killWorkerAfter(m, step);
      const r = await recoverByMonitor(m);
      expect(r['cutover-state'], step).toBe('failed');
      expect(r['cutover-kind'], step).toBe('failback');
      await expectProductionOn(m, 'target', production);
      // No forward objects left behind by the rolled-back failback.
      expect(await sql(m.target, DB, "SELECT 1 FROM pg_subscription WHERE subname LIKE 'pgtwin_migrate_forward_sub%'")).toEqual([]);
    }
  }, 1_800_000);

  for (const step of POST_SWAP) {
    it(`rolls forward after ${step}: production on the source, forward replication without a copy`, async () => {
      expect((await m.run('reload-agent', { cutover_ready: 'false' })).code).toBe(0);
      await killWorkerAfter(m, step);
      const r = await recoverByMonitor(m);
      expect(r['cutover-state'], step).toBe('complete');
      expect(r['cutover-kind'], step).toBe('failback');
      await expectProductionOn(m, 'source', production);
      const rel = await sql<{ n: string; ready: string }>(m.target, DB, "SELECT count(*)::text AS n, count(*) FILTER (WHERE srsubstate = 'r')::text AS ready FROM pg_subscription_rel");
      expect(rel[0]!.ready).toBe(rel[0]!.n);
      // Back to phase reverse for the next step.
      expect((await switchOver(m))['cutover-state']).toBe('complete');
      await expectProductionOn(m, 'target', production);
    }, 900_000);
  }
});

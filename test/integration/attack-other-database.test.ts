/**
 * Issue 10, item 5: the fence is the migrated databases' alone. A client of
 * another database on the source server — not part of the migration —
 * writes every 20 ms through the whole cutover and after it, and never sees
 * a refusal or loses its session.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Migration } from '../support/migration';
import { createDatabases, dropDatabases, sql } from '../support/rig';
import { Writer } from '../support/writer';
import { followAddress } from '../support/routing';
import { cibQuery, vipAddresses } from '../support/pacemaker';
import { SCHEMA, copiedMigration, launchSwitch, untilSwitchEnds, missingTokens, switchLogs, dispose } from '../support/attack';

const MIGRATED = 'att_other_migrated';
const OTHER = 'att_other_unmigrated';

describe('the fence leaves the other databases of the server alone', () => {
  let m: Migration | undefined;
  afterAll(async () => {
    await dispose(m);
    if (m) await dropDatabases(m.source, [OTHER]);
  });

  it('a writer on a database of the source that is not migrated is never refused, through the cutover and after it', async () => {
    m = await copiedMigration('att-other', [MIGRATED]);
    await createDatabases(m.source, [OTHER]);
    await sql(m.source, OTHER, SCHEMA);

    const router = followAddress(vipAddresses(await cibQuery()).production!, m.source, m.target);
    const app = new Writer(router.route, [MIGRATED], 'orders', 25).start();
    const neighbour = new Writer(() => m!.source, [OTHER], 'orders', 50).start();
    try {
      await new Promise((r) => setTimeout(r, 1_500));
      await launchSwitch(m);
      const r = await untilSwitchEnds(m.opts.instance);
      expect(r['cutover-state'], `${r['cutover-error']}\n${switchLogs(m)}`).toBe('complete');
      await new Promise((res) => setTimeout(res, 1_500));
    } finally {
      await neighbour.stop();
      await app.stop();
      await router.stop();
    }
    const r = await untilSwitchEnds(m.opts.instance);
    const fencedAt = Date.parse(r['cutover-fenced-at']!);
    const endedAt = Date.parse(r['cutover-ended-at']!);
    // The neighbour wrote before, during and after the switch, and every write was acknowledged.
    expect(neighbour.records.filter((w) => w.sentAt < fencedAt).length).toBeGreaterThan(10);
    expect(neighbour.records.filter((w) => w.sentAt > fencedAt && w.sentAt < endedAt).length).toBeGreaterThan(10);
    expect(neighbour.records.filter((w) => w.sentAt > endedAt).length).toBeGreaterThan(10);
    expect(neighbour.records.filter((w) => !w.ok)).toEqual([]);
    const rows = await sql<{ n: string }>(m.source, OTHER, 'SELECT count(*)::text AS n FROM orders');
    expect(Number(rows[0]!.n)).toBe(neighbour.records.length);
    // The migrated database meanwhile was fenced (the application saw refusals) and lost nothing.
    expect(app.records.some((w) => w.sqlstate === '25006' || w.sqlstate === 'no-route')).toBe(true);
    expect(await missingTokens(m.target, MIGRATED, app.acknowledged().map((w) => w.token))).toEqual([]);
  });
});

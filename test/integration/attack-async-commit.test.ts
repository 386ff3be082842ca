/**
 * Issue 10, item 12: an application that commits asynchronously
 * (synchronous_commit = off) has acknowledged commits whose WAL is not yet
 * written when the fence position is taken. The cutover must neither roll
 * back because of them nor lose one.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Migration } from '../support/migration';
import { Writer } from '../support/writer';
import { followAddress } from '../support/routing';
import { cibQuery, vipAddresses } from '../support/pacemaker';
import { copiedMigration, launchSwitch, untilSwitchEnds, missingTokens, switchLogs, dispose } from '../support/attack';

const DBS = ['att_async_a', 'att_async_b'];

describe('asynchronous commit through a cutover', () => {
  let m: Migration | undefined;
  afterAll(async () => {
    await dispose(m);
  });

  it('writers with synchronous_commit = off neither make the cutover roll back nor lose an acknowledged row', async () => {
    // lag_threshold well above the ~200 ms the apply workers' confirmations trail at 200 writes/s:
    // this test is about the fence position, not about when the cutover may begin.
    m = await copiedMigration('att-async', DBS, { params: { lag_threshold: '1000000', sync_timeout: '60' } });
    const router = followAddress(vipAddresses(await cibQuery()).production!, m.source, m.target);
    const app = new Writer(router.route, DBS, 'orders', 100, { options: '-c synchronous_commit=off' }).start();
    try {
      await new Promise((r) => setTimeout(r, 1_500));
      await launchSwitch(m);
      const r = await untilSwitchEnds(m.opts.instance);
      expect(r['cutover-state'], `${r['cutover-error']}\n${switchLogs(m)}`).toBe('complete');
      await new Promise((res) => setTimeout(res, 1_000));
    } finally {
      await app.stop();
      await router.stop();
    }
    const r = await untilSwitchEnds(m.opts.instance);
    const fencedAt = Date.parse(r['cutover-fenced-at']!);
    for (const db of DBS) {
      // Asynchronous commits were acknowledged up to the fence, and none of them is missing on the target.
      expect(app.acknowledged(db).filter((w) => w.doneAt <= fencedAt && w.doneAt > fencedAt - 500).length).toBeGreaterThan(0);
      expect(await missingTokens(m.target, db, app.acknowledged(db).map((w) => w.token))).toEqual([]);
    }
    // No write was carried over after the address moved: the drained slots were empty at the first proof.
    expect(switchLogs(m)).not.toMatch(/passed the fence; carrying them over/);
  });
});

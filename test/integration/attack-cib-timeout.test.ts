/**
 * Issue 10, item 2: the VIP swap's CIB update gets no answer in time. The
 * CIB may have applied it anyway (or may not): the switch must learn which
 * by reading the CIB back, never assume. A stand-in cibadmin
 * (test/fixtures/bin/cibadmin), first on the PATH the worker inherits, runs
 * the real update and then hangs past the agent's timeout (it landed: roll
 * forward), or dies before running it (it did not: roll back, addresses
 * untouched). The application writes through the production address.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, symlinkSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Migration, waitFor } from '../support/migration';
import { REPO } from '../support/rig';
import { Writer } from '../support/writer';
import { followAddress } from '../support/routing';
import { cibQuery, vipAddresses } from '../support/pacemaker';
import { copiedMigration, launchSwitch, untilSwitchEnds, monitorsUntil, plainWrite, missingTokens, switchLogs, record, wayBackFlows, dispose } from '../support/attack';

const STAND_IN = resolve(REPO, 'test/fixtures/bin/cibadmin');

/** Where the real cibadmin is, from this process's PATH. */
function realCibadmin(): string {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, 'cibadmin'))) return join(dir, 'cibadmin');
  }
  throw new Error('cibadmin not found on PATH');
}

describe('a VIP swap whose CIB update times out', () => {
  let bin = '';
  const made: Migration[] = [];
  beforeAll(() => {
    bin = mkdtempSync(join(tmpdir(), 'att-cibadmin-'));
    symlinkSync(STAND_IN, join(bin, 'cibadmin'));
  });
  afterAll(async () => {
    for (const m of made) await dispose(m);
    rmSync(bin, { recursive: true, force: true });
  });

  function standIn(mode: 'late' | 'die'): NodeJS.ProcessEnv {
    return { PATH: `${bin}:${process.env.PATH ?? ''}`, PGTWIN_TEST_CIBADMIN: mode, PGTWIN_TEST_CIBADMIN_REAL: realCibadmin() };
  }

  it('an update that landed but was never confirmed rolls the cutover forward, not back', async () => {
    const db = 'att_cib_late';
    const m = await copiedMigration('att-cib-late', [db]);
    made.push(m);
    const vips = vipAddresses(await cibQuery());
    const router = followAddress(vips.production!, m.source, m.target);
    const app = new Writer(router.route, [db], 'orders', 25).start();
    try {
      await new Promise((r) => setTimeout(r, 1_000));
      await launchSwitch(m, standIn('late'));
      await untilSwitchEnds(m.opts.instance).catch(() => undefined);
      // Whatever became of this worker, the switch ends complete (a monitor finishes what it left).
      await monitorsUntil(m, 'complete', 240_000, 2_000, standIn('late'));
      await new Promise((r) => setTimeout(r, 1_000));
    } finally {
      await app.stop();
      await router.stop();
    }
    const logs = switchLogs(m);
    // The stand-in did hold the answer back, and the switch read the CIB to learn the outcome.
    expect(logs).toMatch(/the CIB did not confirm the swap in time; reading it back after a barrier/);
    expect(logs).not.toMatch(/rolling back|rolled back/);
    const r = await record(m.opts.instance);
    expect(r.phase).toBe('reverse');
    expect(r.history).not.toMatch(/rolled back/);
    expect(vipAddresses(await cibQuery())).toEqual({ production: vips.target, target: vips.production });
    expect(await plainWrite(m.source, db)).toBeUndefined();
    await wayBackFlows(m, db);
    expect(await missingTokens(m.target, db, app.acknowledged().map((w) => w.token))).toEqual([]);
  });

  it('an update that never ran rolls the cutover back with the addresses untouched', async () => {
    const db = 'att_cib_die';
    const m = await copiedMigration('att-cib-die', [db]);
    made.push(m);
    const vips = vipAddresses(await cibQuery());
    const router = followAddress(vips.production!, m.source, m.target);
    const app = new Writer(router.route, [db], 'orders', 25).start();
    try {
      await new Promise((r) => setTimeout(r, 1_000));
      await launchSwitch(m, standIn('die'));
      const r = await untilSwitchEnds(m.opts.instance);
      expect(r['cutover-state'], `${r['cutover-error']}\n${switchLogs(m)}`).toBe('failed');
      expect(r['cutover-error']).toMatch(/did not land/);
      await new Promise((res) => setTimeout(res, 1_000));
    } finally {
      await app.stop();
      await router.stop();
    }
    expect(vipAddresses(await cibQuery())).toEqual(vips);
    expect((await record(m.opts.instance)).phase).toBe('forward');
    // Production stays on the source: it takes writes again, the target refuses them; nothing was lost.
    expect(await plainWrite(m.source, db)).toBeDefined();
    expect(await plainWrite(m.target, db)).toBeUndefined();
    expect(app.acknowledged().some((w) => w.port === m.target.port)).toBe(false);
    const acked = app.acknowledged().map((w) => w.token);
    await waitFor('every acknowledged write on the target (forward replication again)', async () => (await missingTokens(m.target, db, acked)).length === 0, 60_000);
  });
});

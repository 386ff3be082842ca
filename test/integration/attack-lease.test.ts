/**
 * Issue 10, item 3: one worker acts at a time, and a stop never leaves one
 * acting. A second worker started by hand while the first holds the lease
 * leaves without acting; a lease whose PID now belongs to another process
 * (same PID, other start time — even one that calls itself cutover-worker)
 * counts as dead and is taken over; a stop during the switch returns, within
 * its timeout, only once the worker is gone — rolled back before the swap,
 * finished (or handed over, recorded) after it. Writes follow the address.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { Migration, waitFor } from '../support/migration';
import { Writer } from '../support/writer';
import { cibQuery, vipAddresses } from '../support/pacemaker';
import {
  copiedUnderLoad,
  launchSwitch,
  untilSwitchEnds,
  untilPausedAfter,
  lease,
  workerPid,
  killWorker,
  alive,
  monitor,
  monitorsUntil,
  plainWrite,
  missingTokens,
  switchLogs,
  record,
  wayBackFlows,
  dispose,
} from '../support/attack';

const exec = promisify(execFile);
const STOP_TIMEOUT_MS = 30_000;

describe('one worker at a time, and a stop never leaves one acting', () => {
  const made: Migration[] = [];
  const decoys: ChildProcess[] = [];
  afterAll(async () => {
    for (const d of decoys) d.kill('SIGKILL');
    for (const m of made) await dispose(m);
  });

  async function underLoad(instance: string, db: string): Promise<Awaited<ReturnType<typeof copiedUnderLoad>>> {
    const loaded = await copiedUnderLoad(instance, db);
    made.push(loaded.m);
    return loaded;
  }

  async function allAcknowledgedOnTarget(m: Migration, db: string, app: Writer): Promise<void> {
    const acked = app.acknowledged().map((w) => w.token);
    await waitFor('every acknowledged write on the target', async () => (await missingTokens(m.target, db, acked)).length === 0, 60_000).catch(async (err: Error) => {
      throw new Error(`${err.message}: missing ${(await missingTokens(m.target, db, acked)).length} of ${acked.length}\n${switchLogs(m)}`);
    });
  }

  it('a second worker started by hand while the first holds the lease leaves without acting', async () => {
    const db = 'att_lease_second';
    const { m, router, app } = await underLoad('att-lease-second', db);
    try {
      // The first worker holds the source fenced for 20 s after the fence.
      await launchSwitch(m, { PGTWIN_MIGRATE_TEST_PAUSE_AT: 'fence:20000' });
      await untilPausedAfter(m, 'fence');
      const held = (await lease(m.opts.instance))!;
      // The command line the launcher gave the first worker (its reservation), run once more by hand.
      const reservation = JSON.stringify({ node: held.node, pid: 0, start: '', nonce: held.nonce, seq: 0 });
      const second = await m.cli(['cutover-worker', '--kind', 'cutover', '--reservation', reservation, '--recover']);
      expect(second.code, second.stderr).toBe(0);
      expect(second.stderr).toMatch(/the lease is no longer the reservation this worker was started for .*; leaving/);
      expect(second.stderr).toMatch(/worker ends: busy/);
      // It changed nothing: the first still holds the lease and the source is still fenced (no rollback).
      const now = (await lease(m.opts.instance))!;
      expect({ pid: now.pid, start: now.start, nonce: now.nonce }).toEqual({ pid: held.pid, start: held.start, nonce: held.nonce });
      expect(alive(held.pid)).toBe(true);
      expect((await record(m.opts.instance))['cutover-state']).toBe('running');
      expect(await plainWrite(m.source, db)).toBeUndefined();
      expect(switchLogs(m)).not.toMatch(/taking over|rolling back/);
      // The first goes on and completes.
      const r = await untilSwitchEnds(m.opts.instance);
      expect(r['cutover-state'], `${r['cutover-error']}\n${switchLogs(m)}`).toBe('complete');
      await new Promise((res) => setTimeout(res, 1_000));
    } finally {
      await app.stop();
      await router.stop();
    }
    await allAcknowledgedOnTarget(m, db, app);
  });

  it('a lease whose PID now runs another process (same PID, other start time) counts as dead and is taken over', async () => {
    const db = 'att_lease_reused';
    const { m, router, app, vips } = await underLoad('att-lease-reused', db);
    try {
      await launchSwitch(m, { PGTWIN_MIGRATE_TEST_PAUSE_AT: 'fence' });
      await untilPausedAfter(m, 'fence');
      const held = (await lease(m.opts.instance))!;
      await killWorker(held.pid);
      // The kernel gave the PID to another process — one that even calls itself a cutover-worker.
      const decoy = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', 'cutover-worker', '--kind', 'cutover'], { stdio: 'ignore' });
      decoys.push(decoy);
      await waitFor('decoy running', async () => decoy.pid !== undefined && alive(decoy.pid), 10_000);
      const forged = JSON.stringify({ ...held, pid: decoy.pid });
      await exec('crm_attribute', ['--type', 'crm_config', '--set-name', `pgtwin-migrate-${m.opts.instance}`, '--name', 'cutover-lease', '--update', forged], { env: { ...process.env, LC_ALL: 'C' } });
      expect((await record(m.opts.instance))['cutover-lease']).toBe(forged);

      const mon = await monitor(m);
      expect(mon.code, mon.stderr).toBe(0);
      expect(mon.stderr).toMatch(/is gone at step fence; taking over/);
      const r = await untilSwitchEnds(m.opts.instance);
      expect(r['cutover-state'], switchLogs(m)).toBe('failed');
      expect(r['cutover-error']).toMatch(/stopped at step fence/);
      await new Promise((res) => setTimeout(res, 1_000));
    } finally {
      await app.stop();
      await router.stop();
    }
    // Rolled back: addresses untouched, the source takes writes, nothing lost.
    expect(vipAddresses(await cibQuery())).toEqual(vips);
    expect(await plainWrite(m.source, db)).toBeDefined();
    expect(await plainWrite(m.target, db)).toBeUndefined();
    await allAcknowledgedOnTarget(m, db, app);
  });

  it('a stop during the switch, before the swap, returns within its timeout only once the worker is gone, with the source unfenced', async () => {
    const db = 'att_lease_stop_pre';
    const { m, router, app, vips } = await underLoad('att-lease-stop-pre', db);
    try {
      // A worker that does not answer SIGTERM (held after the fence): the worst case for a stop.
      await launchSwitch(m, { PGTWIN_MIGRATE_TEST_PAUSE_AT: 'fence' });
      await untilPausedAfter(m, 'fence');
      const pid = await workerPid(m.opts.instance);
      const stop = await m.run('stop', {}, { timeoutMs: STOP_TIMEOUT_MS });
      const goneAtReturn = !alive(pid);
      expect(stop.code, stop.stderr).toBe(0);
      expect(stop.ms).toBeLessThan(STOP_TIMEOUT_MS);
      expect(goneAtReturn, 'the worker is gone when stop returns').toBe(true);
      const holder = await lease(m.opts.instance);
      expect(holder === undefined || !alive(holder.pid), 'no worker holds the lease').toBe(true);
      const r = await record(m.opts.instance);
      expect(r['cutover-state'], `${stop.stderr}\n${switchLogs(m)}`).toBe('failed');
      expect(r['cutover-error']).toMatch(/stop/);
      await new Promise((res) => setTimeout(res, 1_000));
    } finally {
      await app.stop();
      await router.stop();
    }
    expect(vipAddresses(await cibQuery())).toEqual(vips);
    expect(await plainWrite(m.source, db)).toBeDefined();
    expect(await plainWrite(m.target, db)).toBeUndefined();
    await allAcknowledgedOnTarget(m, db, app);
  });

  it('a stop during the roll-forward returns within its timeout with the cutover complete or handed over, and it completes', async () => {
    const db = 'att_lease_stop_post';
    const { m, router, app, vips } = await underLoad('att-lease-stop-post', db);
    try {
      // Held after the target took writes (roll-forward): the worker does not answer SIGTERM.
      await launchSwitch(m, { PGTWIN_MIGRATE_TEST_PAUSE_AT: 'lift' });
      await untilPausedAfter(m, 'lift');
      const pid = await workerPid(m.opts.instance);
      const stop = await m.run('stop', {}, { timeoutMs: STOP_TIMEOUT_MS });
      const goneAtReturn = !alive(pid);
      expect(stop.code, stop.stderr).toBe(0);
      expect(stop.ms).toBeLessThan(STOP_TIMEOUT_MS);
      expect(goneAtReturn, 'the worker is gone when stop returns').toBe(true);
      const holder = await lease(m.opts.instance);
      expect(holder === undefined || holder.pid === 0 || !alive(holder.pid), 'no worker holds the lease').toBe(true);
      const r = await record(m.opts.instance);
      // Past the swap nothing rolls back: complete, or recorded for the next start or monitor to finish.
      expect(['complete', 'running', 'blocked'], `${stop.stderr}\n${switchLogs(m)}`).toContain(r['cutover-state']);
      expect(switchLogs(m)).not.toMatch(/rolling back/);
      if (r['cutover-state'] !== 'complete') {
        // Handed over: the resource starts again (here, or on another node) and its monitors finish the switch.
        const start = await m.run('start');
        expect(start.code, start.stderr).toBe(0);
        await monitorsUntil(m, 'complete');
      }
      await new Promise((res) => setTimeout(res, 1_000));
    } finally {
      await app.stop();
      await router.stop();
    }
    expect((await record(m.opts.instance)).phase).toBe('reverse');
    expect(vipAddresses(await cibQuery())).toEqual({ production: vips.target, target: vips.production });
    expect(await plainWrite(m.source, db)).toBeUndefined();
    await wayBackFlows(m, db);
    await allAcknowledgedOnTarget(m, db, app);
  });
});

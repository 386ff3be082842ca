/**
 * Issue 10, item 1: the production address cannot move — the target's VIP
 * resource is unmanaged, or cannot start. The swap lands in the CIB but the
 * address leads nowhere new: the source must stay fenced and the target
 * fenced too (never two clusters taking writes), the switch blocked with a
 * reason that names the resource (monitor exit 1, again at every monitor);
 * once the resource is fixed, the next monitors finish the cutover and no
 * acknowledged write is lost. Plain clients probe both clusters all along.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as tcpConnect, type Server } from 'node:net';
import { Migration, waitFor } from '../support/migration';
import { Writer } from '../support/writer';
import { followAddress } from '../support/routing';
import { cibQuery, vipAddresses, resourceState } from '../support/pacemaker';
import { copiedMigration, launchSwitch, untilSwitchEnds, monitor, monitorsUntil, plainWrite, missingTokens, switchLogs, SplitProbe, record, dispose } from '../support/attack';

const exec = promisify(execFile);
const env = { ...process.env, LC_ALL: 'C' };
const VIP = 'postgres-vip-18';
/** The VipDummy stand-in fails its start while this file exists. */
const FAIL_FILE = `/run/resource-agents/VipDummy-${VIP}.fail`;

const crmResource = (args: string[]) => exec('crm_resource', args, { env });

/**
 * Makes a connection to `host`:`port` reach `to`, as if the address had moved
 * there: the agent's connection probe through the production address then
 * reaches the target whatever Pacemaker did.
 */
async function forward(host: string, port: number, to: { host: string; port: number }): Promise<Server> {
  const server = createServer((inbound) => {
    const outbound = tcpConnect(to.port, to.host);
    inbound.pipe(outbound).pipe(inbound);
    inbound.on('error', () => outbound.destroy());
    outbound.on('error', () => inbound.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

async function bothVipsStarted(): Promise<void> {
  await waitFor('both VIP resources started', async () => (await resourceState('postgres-vip')).role === 'Started' && (await resourceState(VIP)).role === 'Started', 120_000, 500);
}

describe('a production address that cannot move blocks the cutover', () => {
  const made: Migration[] = [];
  const forwarders: Server[] = [];
  afterEach(async () => {
    rmSync(FAIL_FILE, { force: true });
    for (const f of forwarders.splice(0)) await new Promise((r) => f.close(r));
    await crmResource(['--resource', 'postgres-vip', '--meta', '--delete-parameter', 'is-managed']).catch(() => undefined);
    await crmResource(['--resource', VIP, '--meta', '--delete-parameter', 'is-managed']).catch(() => undefined);
    await crmResource(['--cleanup', '--resource', VIP]).catch(() => undefined);
    await bothVipsStarted();
    for (const m of made.splice(0)) await dispose(m);
  });

  /** The cutover with the address stuck by `breakIt`, repaired by `fixIt`; checks every rule on the way. */
  async function stuckThenFixed(instance: string, db: string, breakIt: (m: Migration, vips: { production?: string }) => Promise<void>, fixIt: () => Promise<void>, why: RegExp, named = VIP): Promise<void> {
    const m = await copiedMigration(instance, [db], { params: { sync_timeout: '10' } });
    made.push(m);
    await bothVipsStarted();
    const vips = vipAddresses(await cibQuery());
    const router = followAddress(vips.production!, m.source, m.target);
    const app = new Writer(router.route, [db], 'orders', 25).start();
    const probe = new SplitProbe(m.source, m.target, db, 150);
    try {
      await new Promise((r) => setTimeout(r, 1_000));
      await breakIt(m, vips);
      await launchSwitch(m);
      const blocked = await untilSwitchEnds(m.opts.instance);
      expect(blocked['cutover-state'], `${blocked['cutover-error']}\n${switchLogs(m)}`).toBe('blocked');
      expect(blocked['cutover-error']).toMatch(why);
      // The swap itself landed (the point of no return is behind); the address did not follow.
      expect(vipAddresses(await cibQuery())).toEqual({ production: vips.target, target: vips.production });

      // Every monitor (here every 3 s) fails with the reason, and tries again; meanwhile neither cluster takes a write.
      for (let i = 0; i < 3; i++) {
        const mon = await monitor(m);
        expect(mon.code, `monitor ${i + 1} while the address is stuck:\n${mon.stderr}`).toBe(1);
        expect(mon.exitReason).toMatch(/^cutover blocked: /);
        expect(mon.exitReason).toContain(named);
        expect(await plainWrite(m.source, db), 'the old source stays fenced').toBeUndefined();
        expect(await plainWrite(m.target, db), 'the target stays fenced until the address is proven').toBeUndefined();
        await new Promise((r) => setTimeout(r, 3_000));
      }
      expect((await untilSwitchEnds(m.opts.instance))['cutover-state']).toBe('blocked');

      await fixIt();
      await monitorsUntil(m, 'complete');
      await new Promise((r) => setTimeout(r, 1_500));
    } finally {
      await probe.stop();
      await app.stop();
      await router.stop();
    }
    const done = await record(m.opts.instance);
    expect(done.phase).toBe('reverse');
    // Never both at once; the source took writes before, the target after.
    expect(probe.both()).toEqual([]);
    expect(probe.rounds.some((x) => typeof x.source === 'string' && x.source !== 'error')).toBe(true);
    expect(probe.rounds.some((x) => typeof x.target === 'string' && x.target !== 'error')).toBe(true);
    expect(await plainWrite(m.target, db)).toBeDefined();
    expect(await plainWrite(m.source, db)).toBeUndefined();
    // Nothing acknowledged to the application or to a probe is missing on the target.
    const acked = [...app.acknowledged().map((w) => w.token), ...probe.acknowledged()];
    expect(await missingTokens(m.target, db, acked)).toEqual([]);
  }

  it('with the target VIP resource unmanaged the cutover blocks with both clusters fenced, and finishes once it is managed again', async () => {
    await stuckThenFixed(
      'att-vip-unmanaged',
      'att_vip_unmanaged',
      async () => {
        await crmResource(['--resource', VIP, '--meta', '--set-parameter', 'is-managed', '--parameter-value', 'false']);
      },
      async () => {
        await crmResource(['--resource', VIP, '--meta', '--delete-parameter', 'is-managed']);
      },
      /postgres-vip-18 is unmanaged/,
    );
  });

  it('an administrator who puts the old addresses back while the switch is blocked gets no proof: the target stays fenced, the switch blocked', async () => {
    const db = 'att_vip_reverted';
    const m = await copiedMigration('att-vip-reverted', [db], { params: { sync_timeout: '10' } });
    made.push(m);
    await bothVipsStarted();
    const vips = vipAddresses(await cibQuery());
    const probe = new SplitProbe(m.source, m.target, db, 150);
    try {
      await crmResource(['--resource', VIP, '--meta', '--set-parameter', 'is-managed', '--parameter-value', 'false']);
      await launchSwitch(m);
      const blocked = await untilSwitchEnds(m.opts.instance);
      expect(blocked['cutover-state'], `${blocked['cutover-error']}\n${switchLogs(m)}`).toBe('blocked');
      // "Fixed" the wrong way: the swap undone by hand, the resource managed again. Both VIP
      // resources then restart with exactly their configured parameters: Pacemaker's digests
      // match, but the production address leads to the (fenced) source, not the target.
      await crmResource(['--resource', 'postgres-vip', '--set-parameter', 'ip', '--parameter-value', vips.production!]);
      await crmResource(['--resource', VIP, '--set-parameter', 'ip', '--parameter-value', vips.target!]);
      await crmResource(['--resource', VIP, '--meta', '--delete-parameter', 'is-managed']);
      await bothVipsStarted();
      // The next retry (each monitor starts one, min(sync_timeout, 60 s) long) says why it still has no proof.
      await waitFor('the blocked reason naming the address put back', async () => {
        await monitor(m);
        return /postgres-vip-18 is not configured with the production address/.test((await record(m.opts.instance))['cutover-error'] ?? '');
      }, 120_000, 2_000).catch(async (err: Error) => {
        throw new Error(`${err.message}; record: ${JSON.stringify(await record(m.opts.instance))}\n${switchLogs(m)}`);
      });
      for (let i = 0; i < 3; i++) {
        const mon = await monitor(m);
        expect(mon.code, `monitor ${i + 1} after the addresses were put back:\n${mon.stderr}`).toBe(1);
        // The exit reason is cut to Pacemaker's length; the record has it whole (checked below).
        expect(mon.exitReason).toMatch(/^cutover blocked: .*postgres-vip-18 is not configured/);
        expect(await plainWrite(m.target, db), 'the target stays fenced: the address does not lead there').toBeUndefined();
        expect(await plainWrite(m.source, db), 'the old source stays fenced').toBeUndefined();
        await new Promise((r) => setTimeout(r, 3_000));
      }
      const still = await record(m.opts.instance);
      expect(still['cutover-state']).toBe('blocked');
      expect(still['cutover-error']).toMatch(/postgres-vip-18 is not configured with the production address .*; give it back that address/);
      expect(still.phase).not.toBe('reverse');
    } finally {
      await probe.stop();
    }
    expect(probe.both()).toEqual([]);
  });

  it('with the source VIP resource unmanaged, a connection through the production address that reaches the target is no proof: blocked until it is managed again', async () => {
    await stuckThenFixed(
      'att-vip-old-unmanaged',
      'att_vip_old_unmanaged',
      async (m, vips) => {
        // The probe would say "moved"; the old VIP resource, left alone by Pacemaker, may still answer too.
        forwarders.push(await forward(vips.production!, m.target.port, m.target));
        await crmResource(['--resource', 'postgres-vip', '--meta', '--set-parameter', 'is-managed', '--parameter-value', 'false']);
      },
      async () => {
        await crmResource(['--resource', 'postgres-vip', '--meta', '--delete-parameter', 'is-managed']);
      },
      /postgres-vip is unmanaged/,
      'postgres-vip is unmanaged',
    );
  });

  it('with the target VIP resource failing to start the cutover blocks with both clusters fenced, and finishes after a cleanup', async () => {
    await stuckThenFixed(
      'att-vip-failing',
      'att_vip_failing',
      async () => {
        writeFileSync(FAIL_FILE, 'fail the start of postgres-vip-18\n');
      },
      async () => {
        rmSync(FAIL_FILE, { force: true });
        await crmResource(['--cleanup', '--resource', VIP]);
      },
      /postgres-vip-18/,
    );
  });
});

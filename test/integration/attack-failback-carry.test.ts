/**
 * Review finding: during a failback, what the final proof carries over from
 * the target to the source (here a superuser's write in replica mode on the
 * fenced target, after the first proof, which the fence lets pass on
 * purpose) is written on the source by the way back's apply worker. The
 * forward slot, made on the source before the swap, decodes it, and the
 * forward subscription (origin = any, so that rows reaching the source
 * through its own logical replication are forwarded) would send it back to
 * the target, where the row already is: a duplicate key that stops forward
 * replication for good.
 *
 * The worker is held 5 s after the address moved (between the first proof
 * and the final one); the write goes in then. Its id comes from the old
 * side's sequence, after the sequences were copied: in either direction the
 * new side's sequence must be copied again, or its next default id collides
 * with the carried-over row.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { waitFor, type Migration } from '../support/migration';
import { sql, type RigServer } from '../support/rig';
import { copiedMigration, launchSwitch, disarm, occurrences, untilPausedAfter, untilSwitchEnds, switchLogs, applyErrors, plainWrite, dispose } from '../support/attack';

const DB = 'att_fb_carry';

async function copies(server: RigServer, token: string): Promise<number> {
  return Number((await sql<{ n: string }>(server, DB, 'SELECT count(*)::text AS n FROM orders WHERE token = $1', [token]))[0]!.n);
}

describe('a switch that carries a write over', () => {
  let m: Migration | undefined;
  afterAll(async () => {
    await dispose(m);
  });

  /** A superuser's write in replica mode; its id from the server's sequence unless given. */
  async function writePastTheFence(server: RigServer, id?: number): Promise<string> {
    const token = randomUUID();
    const [cols, vals] = id === undefined ? ['token, note', `'${token}', 'past the fence'`] : ['id, token, note', `${id}, '${token}', 'past the fence'`];
    await sql(server, DB, `BEGIN; SET LOCAL session_replication_role = replica; INSERT INTO orders (${cols}) VALUES (${vals}); COMMIT`);
    return token;
  }

  it("cutover: carries a superuser's write past the fence to the target once, and the target's next default id does not collide with it", async () => {
    m = await copiedMigration('att-fb-carry', [DB], { params: { sync_timeout: '30' } });
    await launchSwitch(m, { PGTWIN_MIGRATE_TEST_PAUSE_AT: 'address:5000' });
    await untilPausedAfter(m, 'address');
    const token = await writePastTheFence(m.source);
    const cutover = await untilSwitchEnds(m.opts.instance);
    expect(cutover['cutover-state'], `${cutover['cutover-error']}\n${switchLogs(m)}`).toBe('complete');
    expect(cutover.phase).toBe('reverse');
    expect(switchLogs(m)).toMatch(/passed the fence; carrying them over/);
    expect(await copies(m.target, token)).toBe(1);
    // The way back filters by origin (PostgreSQL 16+): nothing to keep from looping, no apply error.
    expect(switchLogs(m)).not.toMatch(/moved to \S+, past/);
    const probe = await plainWrite(m.target, DB, 'default id after the carry-over');
    expect(probe, 'the target takes writes').toBeDefined();
    await waitFor('a row written on the target reaches the source', async () => (await copies(m!.source, probe!)) === 1, 30_000, 100);
  });

  it("failback: carries a superuser's write past the fence to the source once, and forward replication does not send it back", async () => {
    const mig = m!;
    await disarm(mig);
    const before = occurrences(mig, 'paused after step address ');
    await launchSwitch(mig, { PGTWIN_MIGRATE_TEST_PAUSE_AT: 'address:5000' });
    await untilPausedAfter(mig, 'address', before);
    const token = await writePastTheFence(mig.target);
    const failback = await untilSwitchEnds(mig.opts.instance);
    expect(failback['cutover-state'], `${failback['cutover-error']}\n${switchLogs(mig)}`).toBe('complete');
    expect(failback.phase).toBe('forward');
    expect(occurrences(mig, 'passed the fence; carrying them over')).toBe(2);
    expect(switchLogs(mig)).toMatch(/slot pgtwin_migrate_forward_slot_att_fb_carry moved to \S+, past 1 transaction\(s\) carried over from the target, which has them/);

    // On both sides exactly once; forward replication flows, without an apply error on the target.
    expect(await copies(mig.source, token)).toBe(1);
    const probe = await plainWrite(mig.source, DB, 'forward check');
    expect(probe, 'the source takes writes').toBeDefined();
    await waitFor('a row written on the source reaches the target', async () => (await copies(mig.target, probe!)) === 1, 30_000, 100);
    expect(await copies(mig.target, token)).toBe(1);
    expect(await applyErrors(mig.target, DB), switchLogs(mig)).toBe(0);
  });

  it('failback with other writes on the source among the carried-over ones: nothing skipped, the log names the transaction to skip, and skipping it lets forward replication flow', async () => {
    const mig = m!;
    // Back to phase reverse first.
    await disarm(mig);
    await launchSwitch(mig);
    expect((await untilSwitchEnds(mig.opts.instance))['cutover-state']).toBe('complete');
    await disarm(mig);
    const before = occurrences(mig, 'paused after step address ');
    await launchSwitch(mig, { PGTWIN_MIGRATE_TEST_PAUSE_AT: 'address:5000' });
    await untilPausedAfter(mig, 'address', before);
    // A write on the fenced source in replica mode (its own, kept), then one on the target (carried
    // over); ids apart, so that the two rows do not collide with each other on the source.
    const own = await writePastTheFence(mig.source, 900_001);
    const carried = await writePastTheFence(mig.target, 900_002);
    const failback = await untilSwitchEnds(mig.opts.instance);
    const logs = switchLogs(mig);
    const skip = /session_replication_role = replica \(the fence refuses DDL\), with ALTER SUBSCRIPTION pgtwin_migrate_forward_sub_att_fb_carry SKIP \(lsn = …\), their commit positions being ([0-9A-F]+\/[0-9A-F]+)/.exec(logs);
    expect(skip, logs.slice(-4000)).not.toBeNull();
    // The carried-over row meets itself on the target: forward replication stops there until skipped.
    expect(failback['cutover-state']).toBe('blocked');
    await sql(mig.target, DB, `BEGIN; SET LOCAL session_replication_role = replica; ALTER SUBSCRIPTION pgtwin_migrate_forward_sub_att_fb_carry SKIP (lsn = '${skip![1]}'); COMMIT`);
    await waitFor("the source's own write reaches the target", async () => (await copies(mig.target, own)) === 1, 60_000, 200);
    expect(await copies(mig.target, carried)).toBe(1);
    expect(await copies(mig.source, carried)).toBe(1);
  });
});

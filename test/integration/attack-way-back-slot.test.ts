/**
 * The way back's slot is made on the target's primary before the fence. A
 * logical slot does not follow a cluster to another node (unless failover
 * slots are set up), so a failover of the target while the switch is
 * blocked past its swap loses it — seen on the cluster rig, where Pacemaker
 * promoted the target's standby to give the production address a node it
 * could start on, and reverse replication then never flowed. Here the loss is
 * made by dropping the slot, as the failover did.
 *
 * While the target is still fenced nothing has been written there, so the
 * slot is made again before the lift and the way back carries every write.
 * Once the target has taken writes, a new slot would silently miss them: the
 * switch is blocked with the reason instead.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Migration, waitFor } from '../support/migration';
import { sql } from '../support/rig';
import { resourceState } from '../support/pacemaker';
import {
  copiedMigration,
  copiedUnderLoad,
  launchSwitch,
  untilSwitchEnds,
  untilPausedAfter,
  workerPid,
  killWorker,
  monitorsUntil,
  plainWrite,
  missingTokens,
  switchLogs,
  record,
  wayBackFlows,
  dispose,
} from '../support/attack';

const exec = promisify(execFile);
const env = { ...process.env, LC_ALL: 'C' };
const VIP = 'postgres-vip-18';
const crmResource = (args: string[]) => exec('crm_resource', args, { env });
const reverseSlot = (db: string) => `pgtwin_migrate_reverse_slot_${db}`;

async function reverseSlotOnTarget(m: Migration, db: string): Promise<unknown[]> {
  return sql(m.target, db, 'SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [reverseSlot(db)]);
}

async function dropReverseSlot(m: Migration, db: string): Promise<void> {
  const dropped = await sql<{ n: string }>(m.target, db, 'SELECT count(pg_drop_replication_slot(slot_name))::text AS n FROM pg_replication_slots WHERE slot_name = $1', [reverseSlot(db)]);
  expect(dropped[0]!.n, 'the reverse slot existed on the target').toBe('1');
}

describe("the way back's slot lost with a failover of the target", () => {
  const made: Migration[] = [];
  /** A copied migration whose switch worker holds after `step` (PGTWIN_MIGRATE_TEST_PAUSE_AT), until killed. */
  async function pausedAfter(instance: string, db: string, step: string): Promise<Migration> {
    const m = await copiedMigration(instance, [db], { params: { sync_timeout: '10' } });
    made.push(m);
    await launchSwitch(m, { PGTWIN_MIGRATE_TEST_PAUSE_AT: step });
    await untilPausedAfter(m, step);
    return m;
  }
  afterEach(async () => {
    await crmResource(['--resource', VIP, '--meta', '--delete-parameter', 'is-managed']).catch(() => undefined);
    await waitFor('both VIP resources started', async () => (await resourceState('postgres-vip')).role === 'Started' && (await resourceState(VIP)).role === 'Started', 120_000, 500);
    for (const m of made.splice(0)) await dispose(m);
  });

  it('lost while the switch is blocked and the target fenced: made again before the lift, and the way back carries the target’s writes', async () => {
    const db = 'att_backslot_blocked';
    const { m, router, app } = await copiedUnderLoad('att-backslot-blocked', db, { sync_timeout: '10' });
    made.push(m);
    try {
      await crmResource(['--resource', VIP, '--meta', '--set-parameter', 'is-managed', '--parameter-value', 'false']);
      await launchSwitch(m);
      const blocked = await untilSwitchEnds(m.opts.instance);
      expect(blocked['cutover-state'], `${blocked['cutover-error']}\n${switchLogs(m)}`).toBe('blocked');
      // The target fails over (its slots stay behind), then the address is fixed.
      await dropReverseSlot(m, db);
      await crmResource(['--resource', VIP, '--meta', '--delete-parameter', 'is-managed']);
      await monitorsUntil(m, 'complete', 120_000);
      await new Promise((r) => setTimeout(r, 1_500));
    } finally {
      await app.stop();
      await router.stop();
    }
    expect(switchLogs(m)).toMatch(/slot pgtwin_migrate_reverse_slot_att_backslot_blocked of the way back was missing on the target .*made again while the target is still fenced and before the way back ever streamed/);
    expect((await record(m.opts.instance)).phase).toBe('reverse');
    const acked = app.acknowledged().map((w) => w.token);
    expect(await missingTokens(m.target, db, acked)).toEqual([]);
    // The way back carries what the application wrote on the target, and a write made now.
    const onTarget = app.acknowledged().filter((w) => w.port === m.target.port).map((w) => w.token);
    expect(onTarget.length, 'the application wrote on the target after the cutover').toBeGreaterThan(0);
    await waitFor('the target’s writes on the source', async () => (await missingTokens(m.source, db, onTarget)).length === 0, 60_000, 200);
    await wayBackFlows(m, db);
  });

  it('lost after the target took writes: the switch is blocked with the reason, never given a slot that would miss them', async () => {
    const db = 'att_backslot_lifted';
    // The worker holds right after the lift: the target takes writes, the way back is not enabled yet.
    const m = await pausedAfter('att-backslot-lifted', db, 'lift');
    const written = await plainWrite(m.target, db, 'after the lift');
    expect(written, 'the target takes writes after the lift').toBeDefined();
    await dropReverseSlot(m, db);
    await killWorker(await workerPid(m.opts.instance));
    await monitorsUntil(m, 'blocked', 180_000);
    const r = await record(m.opts.instance);
    expect(r['cutover-error']).toMatch(/slot pgtwin_migrate_reverse_slot_att_backslot_lifted of the way back is missing or invalidated on the target, and the target has taken writes since its fence was lifted: a new slot would not carry everything back/);
    expect(r['cutover-error']).toMatch(/there is no way back: stop the resource, keep clients off the source, and end the migration with pgtwin-migrate teardown --yes --force/);
    // No slot was made behind the operator's back, and the target still serves writes.
    expect(await reverseSlotOnTarget(m, db)).toEqual([]);
    expect(await plainWrite(m.target, db, 'still production')).toBeDefined();
  });

  it('lost after the way back streamed, on a target primary that never got the lift: blocked with the reason, and the target unfenced', async () => {
    const db = 'att_backslot_streamed';
    // The worker holds once the way back is enabled and proven (its origin has moved on the source).
    const m = await pausedAfter('att-backslot-streamed', db, 'enable-reverse');
    await killWorker(await workerPid(m.opts.instance));
    // A failover to a target node that had neither the lift nor the slot: the slot dropped (its
    // subscription stopped first, an active slot cannot be dropped) and the fence put back.
    // (The source is fenced: a superuser passes in replica mode.)
    await sql(m.source, db, `BEGIN; SET LOCAL session_replication_role = replica; ALTER SUBSCRIPTION pgtwin_migrate_reverse_sub_${db} DISABLE; COMMIT`);
    await waitFor('the reverse slot inactive', async () => (await sql<{ active: boolean }>(m.target, db, 'SELECT active FROM pg_replication_slots WHERE slot_name = $1', [reverseSlot(db)]))[0]?.active === false, 30_000, 100);
    await dropReverseSlot(m, db);
    await sql(m.target, db, 'BEGIN; SET LOCAL session_replication_role = replica; ALTER EVENT TRIGGER pgtwin_migrate_fence_ddl ENABLE; SELECT pgtwin_migrate.set_table_fences(true); COMMIT');
    expect(await plainWrite(m.target, db), 'the target is fenced again').toBeUndefined();
    await monitorsUntil(m, 'blocked', 180_000);
    const r = await record(m.opts.instance);
    expect(r['cutover-error']).toMatch(/slot pgtwin_migrate_reverse_slot_att_backslot_streamed of the way back is missing or invalidated on the target, and the way back had already streamed from it \(up to [0-9A-F]+\/[0-9A-F]+\)/);
    // No slot that would skip writes, and production is unfenced all the same.
    expect(await reverseSlotOnTarget(m, db)).toEqual([]);
    expect(await plainWrite(m.target, db, 'production')).toBeDefined();
    expect(await plainWrite(m.source, db), 'the old source stays fenced').toBeUndefined();
  });
});

/**
 * Review finding: the target's apply worker commits with
 * synchronous_commit=off and confirms a change to the source's slot once it
 * is on the target primary's own disk, whatever the target's synchronous
 * standby has. A switch that took that confirmation as its proof could hand
 * production to a target whose standby lacks the last replicated writes: a
 * failover there loses them, and the source's slot never sends them again.
 *
 * Here the target (PostgreSQL 18) gets a synchronous standby, and the
 * standby's WAL receiver is held (SIGSTOP) once the switch is past its
 * preparation: replication into the target goes on (the apply worker does
 * not wait), a client's commit there would wait. The switch must not swap:
 * rolled back with the reason, without waiting for the standby (its own
 * writes on the target commit locally and are proven once, before the
 * swap), the source takes writes again, nothing acknowledged is lost. With
 * the standby streaming again the next switch completes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { waitFor, type Migration } from '../support/migration';
import { sql, rig, REPO, type RigServer } from '../support/rig';
import { copiedUnderLoad, launchSwitch, disarm, untilLogged, untilPausedAfter, untilSwitchEnds, missingTokens, plainWrite, switchLogs, dispose } from '../support/attack';
import type { Writer } from '../support/writer';
import type { Router } from '../support/routing';

const rigScript = resolve(REPO, 'scripts/rig.sh');
const DB = 'att_target_standby';
const STANDBY = 'rig_standby18';

const primary = (): RigServer => rig().servers.pg18;
const standby = (): RigServer => ({ ...rig().servers.pg18, socket: `${rig().dir}/run/pg18-standby` });

async function syncState(): Promise<string | undefined> {
  const rows = await sql<{ s: string }>(primary(), 'postgres', 'SELECT sync_state AS s FROM pg_stat_replication WHERE application_name = $1', [STANDBY]);
  return rows[0]?.s;
}

async function setSynchronousStandby(names: string | undefined): Promise<void> {
  await sql(primary(), 'postgres', names === undefined ? 'ALTER SYSTEM RESET synchronous_standby_names' : `ALTER SYSTEM SET synchronous_standby_names = '${names}'`);
  await sql(primary(), 'postgres', 'SELECT pg_reload_conf()');
}

describe("the target's synchronous standby during a cutover", () => {
  let m: Migration | undefined;
  let router: Router | undefined;
  let app: Writer | undefined;
  /** The standby's WAL receiver while the test holds it. */
  let held: number | undefined;

  const release = () => {
    if (held === undefined) return;
    try {
      process.kill(held, 'SIGCONT');
    } catch {
      // gone: the standby was stopped
    }
    held = undefined;
  };

  beforeAll(async () => {
    // The standby is made after the rig is up, as a copy of the target primary; then it is made synchronous.
    execFileSync(rigScript, ['standby', 'up', '18'], { stdio: 'ignore' });
    await setSynchronousStandby(STANDBY);
    await waitFor('the target standby synchronous', async () => (await syncState()) === 'sync', 60_000, 200);
    ({ m, router, app } = await copiedUnderLoad('att-target-standby', DB, { sync_timeout: '10' }));
  });

  afterAll(async () => {
    release();
    await app?.stop();
    await router?.stop();
    // No synchronous standby before the standby goes: else every commit on the target would wait for it.
    await setSynchronousStandby(undefined).catch(() => undefined);
    await dispose(m);
    execFileSync(rigScript, ['standby', 'down', '18'], { stdio: 'ignore' });
  });

  it('a switch does not swap while the synchronous standby lacks the replicated writes: rolled back with the reason, the source takes writes again, nothing lost', async () => {
    await launchSwitch(m!, { PGTWIN_MIGRATE_TEST_PAUSE_AT: 'prepare-reverse:3000' });
    await untilPausedAfter(m!, 'prepare-reverse');
    const receiver = await sql<{ pid: number }>(standby(), 'postgres', 'SELECT pid FROM pg_stat_wal_receiver');
    expect(receiver, 'the standby streams from the target').toHaveLength(1);
    held = receiver[0]!.pid;
    process.kill(held, 'SIGSTOP');
    let r: Record<string, string>;
    try {
      // The switch gives up before the swap (sync_timeout=10) naming the standbys, and its rollback
      // (which writes on the target too) does not wait for the standby either.
      await untilLogged(m!, 'did not confirm the replicated changes', 0, 45_000);
      r = await untilSwitchEnds(m!.opts.instance, 30_000);
    } finally {
      release();
    }
    expect(r['cutover-state'], switchLogs(m!)).toBe('failed');
    expect(r['cutover-step']).toBe('rolled-back-at-swap-vip');
    expect(r['cutover-error']).toMatch(/before the swap: the target's synchronous standbys \(synchronous_standby_names='rig_standby18'\) did not confirm the replicated changes within sync_timeout=10s/);
    expect(await plainWrite(m!.source, DB), 'the source takes writes again').toBeDefined();
    const acknowledged = app!.acknowledged().length;
    await waitFor('writes acknowledged through the production address again', async () => app!.acknowledged().length > acknowledged + 5, 30_000, 100);
    expect(await missingTokens(m!.source, DB, app!.acknowledged().map((w) => w.token))).toEqual([]);
  });

  it('with the standby streaming again, the next switch completes and every acknowledged write is on the target and its standby', async () => {
    await waitFor('the target standby synchronous again', async () => (await syncState()) === 'sync', 60_000, 200);
    await disarm(m!);
    await launchSwitch(m!);
    const r = await untilSwitchEnds(m!.opts.instance, 120_000);
    expect(r['cutover-state'], `${r['cutover-error']}\n${switchLogs(m!)}`).toBe('complete');
    // The switch's proof says how the standby was proven to have it all.
    const last = Object.keys(r).filter((k) => /^proof-\d+$/.test(k)).sort((a, b) => Number(a.slice(6)) - Number(b.slice(6))).at(-1);
    const proof = JSON.parse(gunzipSync(Buffer.from(r[last!]!, 'base64')).toString('utf8')) as { durable?: string };
    expect(proof.durable).toMatch(/^the target's synchronous standbys \(rig_standby18\) confirmed after \d+ ms$/);
    await new Promise((res) => setTimeout(res, 1_000));
    await app!.stop();
    const tokens = app!.acknowledged().map((w) => w.token);
    expect(await missingTokens(m!.target, DB, tokens)).toEqual([]);
    // The standby replays what it has (hot standby): every acknowledged write, once it caught up.
    await waitFor('the standby caught up', async () => (await missingTokens(standby(), DB, tokens)).length === 0, 30_000, 200);
  });
});

/**
 * Cutover fault injection: the worker killed (SIGKILL) after each step in
 * turn, the source restarted during the sync wait, the database list
 * changed, a retry without acknowledging the failure. Before the VIP swap
 * the next monitor rolls back; from the swap on it rolls forward; either
 * way the end is consistent and nothing is lost.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { Migration, waitFor, leftovers } from '../support/migration';
import { execFileSync } from 'node:child_process';
import { sql, rig } from '../support/rig';
import { cibQuery, vipAddresses } from '../support/pacemaker';
import { startTempCluster, type TempCluster } from '../support/temp-cluster';
import { newMigration, count, record, killWorkerAfter, recoverByMonitor, takesWrites, SCHEMA } from '../support/switch';
import { objectNames, DEFAULT_PREFIXES } from '../../src/migration/names';

const PRE_SWAP = ['recheck', 'prepare-reverse', 'fence', 'sync', 'disable-forward', 'sequences', 'reverse-tables'] as const;
const POST_SWAP = ['swap-vip', 'address', 'final-proof', 'lift', 'enable-reverse', 'drop-forward'] as const;

async function expectRolledBack(m: Migration, vipsBefore: ReturnType<typeof vipAddresses>): Promise<void> {
  const r = await record(m.opts.instance);
  expect(r['cutover-state']).toBe('failed');
  expect(r.phase).toBe('forward');
  expect(vipAddresses(await cibQuery())).toEqual(vipsBefore);
  for (const db of m.opts.databases) {
    // The source takes writes again; the target still refuses them (production stays on the source).
    expect(await takesWrites(m.source, db)).toBe(true);
    expect(await takesWrites(m.target, db)).toBe(false);
    // No reverse objects anywhere; only the forward ones remain.
    expect((await leftovers(m.source, db)).filter((x) => /reverse|replicate_ddl_to_source/.test(x))).toEqual([]);
    expect((await leftovers(m.target, db)).filter((x) => /reverse|replicate_ddl_to_source/.test(x))).toEqual([]);
    const state = readFileSync(join(m.stateDir, `.migration_state_${objectNames(db, DEFAULT_PREFIXES).token}`), 'utf8');
    expect(state).toMatch(/^quiesced=false$/m);
    expect(state).toMatch(/^reverse_prepared=false$/m);
    // Forward replication flows again, and nothing was lost.
    await sql(m.source, db, "INSERT INTO orders (note) VALUES ('after rollback')");
    await waitFor(`${db} flows again`, async () => (await count(m.target, db)) === (await count(m.source, db)));
  }
  const mon = await m.run('monitor', { cutover_ready: 'true' }, { interval: 10_000 });
  expect(mon.code).toBe(190);
  expect(mon.exitReason).toMatch(/^the last switch failed and was rolled back: /);
}

async function expectRolledForward(m: Migration, vipsBefore: ReturnType<typeof vipAddresses>): Promise<void> {
  const r = await record(m.opts.instance);
  expect(r['cutover-state']).toBe('complete');
  expect(r.phase).toBe('reverse');
  expect(vipAddresses(await cibQuery())).toEqual({ production: vipsBefore.target, target: vipsBefore.production });
  for (const db of m.opts.databases) {
    // Production is on the target; the old source refuses client writes (the way back applies there).
    expect(await takesWrites(m.target, db)).toBe(true);
    expect(await takesWrites(m.source, db)).toBe(false);
    expect(await count(m.target, db)).toBe(await count(m.source, db));
    expect(await sql(m.target, db, "SELECT 1 FROM pg_subscription WHERE subname LIKE 'pgtwin_migrate_forward_sub%' AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())")).toEqual([]);
    await sql(m.target, db, "INSERT INTO orders (note) VALUES ('on the target after cutover')");
    await waitFor(`${db} reverse flows`, async () => (await sql(m.source, db, "SELECT 1 FROM orders WHERE note = 'on the target after cutover'")).length === 1);
  }
  // The resource keeps running in phase reverse, and its monitor is healthy.
  const mon = await m.run('monitor', { cutover_ready: 'true' }, { interval: 10_000 });
  expect(mon.code, mon.stderr).toBe(0);
}

describe('cutover faults', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  it('rolls back when the worker is killed after any step before the VIP swap', async () => {
    const m = await newMigration('migration-cf-pre', ['cf_pre_a', 'cf-pre b']);
    cleanups.push(() => m.cleanup());
    for (const step of PRE_SWAP) {
      const vips = vipAddresses(await cibQuery());
      await killWorkerAfter(m, step);
      const r = await recoverByMonitor(m);
      expect(r['cutover-error'], step).toMatch(/the cutover worker stopped at step/);
      await expectRolledBack(m, vips);
      // Acknowledge the failure before the next attempt.
      expect((await m.run('reload-agent', { cutover_ready: 'false' })).code).toBe(0);
      expect((await record(m.opts.instance))['cutover-state']).toBe('reset');
    }
  }, 900_000);

  for (const step of POST_SWAP) {
    it(`rolls forward when the worker is killed after ${step}`, async () => {
      const m = await newMigration(`migration-cf-${step}`, [`cf_${step.replace(/-/g, '_')}`]);
      cleanups.push(() => m.cleanup());
      const vips = vipAddresses(await cibQuery());
      await killWorkerAfter(m, step);
      await recoverByMonitor(m);
      await expectRolledForward(m, vips);
    });
  }

  it('rolls back with the source taking writes when the source restarts during the sync wait', async () => {
    // A PostgreSQL 15 source: its reverse slot is made after the sync, so a
    // lock that holds the target's apply worker cannot block it first.
    const temp: TempCluster = await startTempCluster('cf-restart', { major: 15 });
    cleanups.push(async () => temp.destroy());
    const m = await newMigration('migration-cf-restart', ['cf_restart'], { lag_threshold: '1000000', sync_timeout: '120' }, temp.server);
    cleanups.push(() => m.cleanup());
    const vips = vipAddresses(await cibQuery());
    // Hold the apply worker: a lock on the target table keeps the slot behind the fence.
    const lock = new pg.Client({ host: m.target.socket, port: m.target.port, user: 'postgres', database: 'cf_restart' });
    await lock.connect();
    await lock.query('BEGIN');
    await lock.query('LOCK TABLE orders IN ACCESS EXCLUSIVE MODE');
    try {
      await sql(m.source, 'cf_restart', "INSERT INTO orders (note) VALUES ('held back')");
      expect((await m.run('reload-agent', { cutover_ready: 'true' })).code).toBe(0);
      const log = join(m.stateDir, '.pgtwin_migrate_cutover.log');
      await waitFor('sync wait', async () => existsSync(log) && readFileSync(log, 'utf8').includes('Waiting for forward replication sync'), 60_000).catch((err: Error) => {
        throw new Error(`${err.message}; cutover log:\n${existsSync(log) ? readFileSync(log, 'utf8') : '(none)'}`);
      });
      // A crash-like restart: a fast shutdown would wait for the held-back subscriber.
      execFileSync('runuser', ['-u', rig().user, '--', `${temp.server.bindir}/pg_ctl`, '-D', temp.server.data, '-m', 'immediate', '-w', 'stop'], { stdio: 'ignore' });
      temp.start();
      const r = await waitFor('cutover ended', async () => {
        const x = await record(m.opts.instance);
        return x['cutover-state'] !== 'running' ? x : undefined;
      }, 120_000, 200);
      expect(r['cutover-state']).toBe('failed');
      expect(r['cutover-error']).toMatch(/waiting for sync/);
    } finally {
      await lock.query('ROLLBACK').catch(() => undefined);
      await lock.end();
    }
    await expectRolledBack(m, vips);
  });

  it('blocks the cutover when the database list changed, with the seed message, until acknowledged', async () => {
    const m = await newMigration('migration-cf-list', ['cf_list_a', 'cf_list_b']);
    cleanups.push(() => m.cleanup());
    const extra = new Migration({ instance: 'migration-cf-list-extra', databases: ['cf_list_new'], schema: SCHEMA });
    await extra.setUp();
    cleanups.push(() => extra.cleanup());
    const changed = { databases: 'cf_list_a,cf_list_b,cf_list_new' };
    const restart = await m.run('start', changed);
    expect(restart.code).toBe(0);
    expect(restart.stderr).toMatch(/databases changed since the first start \(added: cf_list_new; removed: -\)/);
    expect((await m.run('reload-agent', { ...changed, cutover_ready: 'true' })).code).toBe(0);
    const r = await waitFor('blocked', async () => {
      const x = await record(m.opts.instance);
      return x['cutover-state'] === 'failed' ? x : undefined;
    }, 60_000, 200);
    expect(r['cutover-error']).toBe('Database list changed during migration (added cf_list_new); expected cf_list_a,cf_list_b');
    const log = readFileSync(join(m.stateDir, '.pgtwin_migrate_cutover.log'), 'utf8');
    expect(log).toMatch(/ERROR: Database list changed during migration!\n.*ERROR: Expected: cf_list_a,cf_list_b\n.*ERROR: Current: cf_list_a,cf_list_b,cf_list_new/);

    // Still true: no new attempt, the monitor keeps saying why.
    for (let i = 0; i < 2; i++) {
      const mon = await m.run('monitor', { ...changed, cutover_ready: 'true' }, { interval: 10_000 });
      expect(mon.code).toBe(190);
      expect(mon.exitReason).toMatch(/^the last switch failed and was rolled back: Database list changed during migration/);
      expect((await record(m.opts.instance))['cutover-state']).toBe('failed');
    }
    expect((await m.run('reload-agent', { ...changed, cutover_ready: 'true' })).code).toBe(0);
    expect((await record(m.opts.instance))['cutover-state']).toBe('failed');
    // false acknowledges; true (with the list back as it was) runs it again.
    expect((await m.run('reload-agent', { cutover_ready: 'false' })).code).toBe(0);
    expect((await record(m.opts.instance))['cutover-state']).toBe('reset');
    const vips = vipAddresses(await cibQuery());
    expect((await m.run('reload-agent', { cutover_ready: 'true' })).code).toBe(0);
    await waitFor('complete', async () => (await record(m.opts.instance))['cutover-state'] === 'complete', 120_000, 200);
    await expectRolledForward(m, vips);
  });
});

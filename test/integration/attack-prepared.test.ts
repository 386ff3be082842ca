/**
 * Issue 10, item 4 (prepared transactions): a prepared transaction keeps its
 * locks and its writes across the end of its session and commits whenever
 * someone says COMMIT PREPARED — also on a fenced database, where COMMIT
 * PREPARED is no write a trigger sees. One open in a migrated database makes
 * the cutover refuse; one prepared before the fence and committed during
 * the switch must not bring a row past the fence unseen.
 * The source is a server of its own with max_prepared_transactions > 0.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { Migration, waitFor } from '../support/migration';
import { sql, type RigServer } from '../support/rig';
import { Writer } from '../support/writer';
import { followAddress, type Router } from '../support/routing';
import { cibQuery, vipAddresses } from '../support/pacemaker';
import { startTempCluster, type TempCluster } from '../support/temp-cluster';
import { copiedMigration, launchSwitch, untilSwitchEnds, untilPausedAfter, untilLogged, occurrences, monitor, plainWrite, missingTokens, switchLogs, record, dispose } from '../support/attack';

async function session(server: RigServer, db: string): Promise<pg.Client> {
  const c = new pg.Client({ host: server.socket, port: server.port, user: 'postgres', database: db });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

/** Prepares a transaction that inserted `token` into orders (the session stays open, idle). */
async function prepareOrder(server: RigServer, db: string, gid: string, token: string): Promise<pg.Client> {
  const c = await session(server, db);
  await c.query('BEGIN');
  await c.query("INSERT INTO orders (token, note) VALUES ($1, 'prepared')", [token]);
  await c.query(`PREPARE TRANSACTION '${gid}'`);
  return c;
}

describe('prepared transactions cannot carry writes past the fence', () => {
  let temp: TempCluster | undefined;
  const cleanups: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    temp = await startTempCluster('att-prepared', { major: 17, port: 54431, settings: { max_prepared_transactions: '10' } });
  });
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    temp?.destroy();
  });

  /** A copied migration from the temp source, with the application writing through the production address. */
  async function underLoad(instance: string, db: string): Promise<{ m: Migration; router: Router; writer: Writer }> {
    const m = await copiedMigration(instance, [db], { source: temp!.server, params: { quiesce_timeout: '3' } });
    cleanups.push(async () => {
      for (const { gid } of await sql<{ gid: string }>(m.source, 'postgres', 'SELECT gid FROM pg_prepared_xacts')) {
        await sql(m.source, 'postgres', `ROLLBACK PREPARED '${gid}'`).catch(() => undefined);
      }
      await dispose(m);
    });
    const router = followAddress(vipAddresses(await cibQuery()).production!, m.source, m.target);
    const writer = new Writer(router.route, [db], 'orders', 25).start();
    await new Promise((r) => setTimeout(r, 1_000));
    return { m, router, writer };
  }

  it('an open prepared transaction in a migrated database makes the cutover roll back, naming it', async () => {
    const db = 'att_prep_open';
    const { m, router, writer } = await underLoad('att-prep-open', db);
    const vips = vipAddresses(await cibQuery());
    const token = '00000000-0000-4000-8000-000000000001';
    const held = await prepareOrder(m.source, db, 'att open one', token);
    try {
      await launchSwitch(m);
      const r = await untilSwitchEnds(m.opts.instance);
      expect(r['cutover-state'], switchLogs(m)).toBe('failed');
      expect(r['cutover-error']).toMatch(/prepared transaction "att open one" is open in "att_prep_open" on the source/);
      expect(vipAddresses(await cibQuery())).toEqual(vips);
      // Rolled back: production stays on the source, which takes writes; the target refuses them.
      expect(await plainWrite(m.source, db)).toBeDefined();
      expect(await plainWrite(m.target, db)).toBeUndefined();
      const mon = await monitor(m);
      expect(mon.code, mon.stderr).toBe(190);
      expect(mon.exitReason).toMatch(/^the last switch failed and was rolled back: not ready: prepared transaction "att open one"/);
      // Its row, committed now on production, reaches the target like any other.
      await sql(m.source, db, "COMMIT PREPARED 'att open one'");
      await waitFor('the prepared row on the target', async () => (await missingTokens(m.target, db, [token])).length === 0, 60_000);
    } finally {
      await held.end();
      await writer.stop();
      await router.stop();
    }
    await waitFor('every acknowledged write on the target', async () => (await missingTokens(m.target, db, writer.acknowledged().map((w) => w.token))).length === 0, 60_000);
  });

  it('a transaction that wrote a table, prepared before the fence and committed while it is raised, loses no row', async () => {
    const db = 'att_prep_fence';
    const { m, router, writer } = await underLoad('att-prep-fence', db);
    const token = '00000000-0000-4000-8000-000000000002';
    let committed = false;
    try {
      // Prepared after the recheck looked for prepared transactions, before the fence.
      await launchSwitch(m, { PGTWIN_MIGRATE_TEST_PAUSE_AT: 'prepare-reverse:6000' });
      await untilPausedAfter(m, 'prepare-reverse');
      const held = await prepareOrder(m.source, db, 'att fence two', token);
      await held.end();
      // Committed while the fence is being raised (it waits for the lock the transaction holds).
      await untilLogged(m, 'step 3/15: fence');
      await sql(m.source, db, "COMMIT PREPARED 'att fence two'");
      committed = true;
      const r = await untilSwitchEnds(m.opts.instance);
      if (r['cutover-state'] !== 'complete') {
        // Refusing is allowed, with the reason; the row then stays on production (the source) and replicates.
        expect(r['cutover-state'], switchLogs(m)).toBe('failed');
        expect(r['cutover-error']).toMatch(/prepared transaction/);
      }
    } finally {
      await writer.stop();
      await router.stop();
    }
    expect(committed).toBe(true);
    const acked = [token, ...writer.acknowledged().map((w) => w.token)];
    await waitFor('every acknowledged row on the target', async () => (await missingTokens(m.target, db, acked)).length === 0, 60_000).catch(async (err: Error) => {
      throw new Error(`${err.message}: missing ${JSON.stringify(await missingTokens(m.target, db, acked))}\n${switchLogs(m)}`);
    });
  });

  it('a transaction that created and filled a table, prepared before the fence and committed after the swap, loses no row', async () => {
    const db = 'att_prep_table';
    const { m, router, writer } = await underLoad('att-prep-table', db);
    let outcome: Record<string, string> = {};
    try {
      await launchSwitch(m, { PGTWIN_MIGRATE_TEST_PAUSE_AT: 'prepare-reverse:6000' });
      await untilPausedAfter(m, 'prepare-reverse');
      const c = await session(m.source, db);
      await c.query('BEGIN');
      await c.query('CREATE TABLE late_batch (id int PRIMARY KEY, note text)');
      await c.query("INSERT INTO late_batch SELECT g, 'prepared' FROM generate_series(1, 25) g");
      await c.query("PREPARE TRANSACTION 'att late batch'");
      await c.end();
      // The point of no return is behind; the address is still being proven (or the switch refused).
      await waitFor('the swap, or the end of the switch', async () =>
        occurrences(m, 'addresses swapped in one CIB update') > 0 || (await record(m.opts.instance))['cutover-state'] !== 'running', 120_000, 50);
      await sql(m.source, db, "COMMIT PREPARED 'att late batch'");
      outcome = await untilSwitchEnds(m.opts.instance);
    } finally {
      await writer.stop();
      await router.stop();
    }
    // 25 rows were acknowledged (COMMIT PREPARED returned): they are on the target, or the switch
    // stopped short of completing and says why.
    if (outcome['cutover-state'] === 'complete') {
      const rows = await sql<{ n: string }>(m.target, db, "SELECT CASE WHEN to_regclass('late_batch') IS NULL THEN '-1' ELSE (SELECT count(*)::text FROM late_batch) END AS n");
      // And the old source refuses a client's write into the new table, as into every other one.
      const stray = await sql(m.source, db, "INSERT INTO late_batch VALUES (100, 'stray')").then(() => 'accepted', (err: { code?: string }) => err.code);
      expect({ rowsOnTarget: rows[0]!.n, strayOnOldSource: stray }, switchLogs(m)).toEqual({ rowsOnTarget: '25', strayOnOldSource: '25006' });
    } else {
      // Refused before the swap (rolled back: the rows are on production, the source), or stopped after it: with the reason.
      expect(['failed', 'blocked'], switchLogs(m)).toContain(outcome['cutover-state']);
      expect(outcome['cutover-error']).toMatch(/late_batch|prepared/);
    }
    expect(await missingTokens(m.target, db, writer.acknowledged().map((w) => w.token))).toEqual([]);
    expect((await record(m.opts.instance))['cutover-state']).toBe(outcome['cutover-state']);
  });
});

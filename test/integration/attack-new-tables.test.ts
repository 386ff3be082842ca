/**
 * Issue 10, item 6: tables created and filled by a client while the
 * cutover begins: during the recheck, and after it right up to the fence.
 * The apply worker skips (and confirms) the rows of tables outside its
 * subscription; every such table must arrive on the target with every row
 * the client saw acknowledged. The worker pauses 4 s after prepare-reverse
 * (between the recheck and the fence) to widen the window.
 */
import { afterAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { Migration } from '../support/migration';
import { sql, type RigServer } from '../support/rig';
import { Writer } from '../support/writer';
import { followAddress } from '../support/routing';
import { cibQuery, vipAddresses } from '../support/pacemaker';
import { copiedMigration, launchSwitch, untilSwitchEnds, untilPausedAfter, untilLogged, missingTokens, switchLogs, dispose } from '../support/attack';


/** Creates table after table (through the production address), each filled by single-row INSERTs; records what was acknowledged. */
class TableMaker {
  /** Acknowledged tables and, per table, the ids of its acknowledged rows. */
  readonly made = new Map<string, number[]>();
  refusals = 0;
  private running = true;
  private readonly loop: Promise<void>;

  constructor(route: () => RigServer | undefined, db: string, prefix: string, forMs = Number.POSITIVE_INFINITY) {
    const until = Date.now() + forMs;
    this.loop = (async () => {
      let n = 0;
      let server: RigServer | undefined;
      let c: pg.Client | undefined;
      while (this.running && Date.now() < until) {
        if (route() !== server || !c) {
          await c?.end().catch(() => undefined);
          server = route();
          c = undefined;
          if (server) {
            c = new pg.Client({ host: server.socket, port: server.port, user: 'postgres', database: db });
            c.on('error', () => undefined);
            await c.connect().catch(() => (c = undefined));
          }
        }
        if (c) {
          const name = `${prefix}_${++n}`;
          try {
            await c.query(`CREATE TABLE ${name} (id int PRIMARY KEY, note text)`);
            const ids: number[] = [];
            this.made.set(name, ids);
            for (let id = 1; id <= 10 && this.running; id++) {
              await c.query(`INSERT INTO ${name} VALUES ($1, 'late')`, [id]);
              ids.push(id);
            }
          } catch (err) {
            if ((err as { code?: string }).code === '25006') this.refusals++;
            else {
              await c.end().catch(() => undefined);
              c = undefined;
            }
          }
        }
        await new Promise((r) => setTimeout(r, 150));
      }
      await c?.end().catch(() => undefined);
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

/** What of the acknowledged tables and rows is not on the target, one line per table. */
async function notOnTarget(m: Migration, db: string, maker: TableMaker): Promise<string[]> {
  const wrong: string[] = [];
  for (const [table, ids] of maker.made) {
    const exists = (await sql<{ t: string | null }>(m.target, db, 'SELECT to_regclass($1)::text AS t', [table]))[0]!.t !== null;
    if (!exists) {
      wrong.push(`${table}: acknowledged ${JSON.stringify(ids)}, no such table on the target`);
      continue;
    }
    const got = (await sql<{ id: number }>(m.target, db, `SELECT id FROM ${table} ORDER BY id`)).map((x) => x.id);
    if (JSON.stringify(got) !== JSON.stringify(ids)) wrong.push(`${table}: acknowledged ${JSON.stringify(ids)}, on the target ${JSON.stringify(got)}`);
  }
  return wrong;
}

describe('tables created while the cutover begins', () => {
  const made: Migration[] = [];
  afterAll(async () => {
    for (const m of made) await dispose(m);
  });

  it('tables a client creates and fills from the end of the recheck until the fence arrive on the target with every acknowledged row', async () => {
    const DB = 'att_tables_window';
    const m = await copiedMigration('att-tables-window', [DB], { params: { sync_timeout: '180' } });
    made.push(m);
    const router = followAddress(vipAddresses(await cibQuery()).production!, m.source, m.target);
    const app = new Writer(router.route, [DB], 'orders', 25).start();
    let maker: TableMaker | undefined;
    try {
      await new Promise((r) => setTimeout(r, 1_000));
      await launchSwitch(m, { PGTWIN_MIGRATE_TEST_PAUSE_AT: 'prepare-reverse:4000' });
      // The recheck has had its look: from here on, through the pause, into the fence.
      await untilLogged(m, 'step 2/15: prepare-reverse');
      maker = new TableMaker(router.route, DB, 'window');
      await untilPausedAfter(m, 'prepare-reverse');
      const r = await untilSwitchEnds(m.opts.instance);
      expect(r['cutover-state'], `${r['cutover-error']}\n${switchLogs(m)}`).toBe('complete');
    } finally {
      await maker?.stop();
      await app.stop();
      await router.stop();
    }
    // The client went on until the fence refused it, and made tables inside the window.
    expect(maker.refusals).toBeGreaterThan(0);
    expect(maker.made.size).toBeGreaterThan(5);
    expect(await notOnTarget(m, DB, maker), switchLogs(m)).toEqual([]);
    expect(await missingTokens(m.target, DB, app.acknowledged().map((w) => w.token))).toEqual([]);
  });

  it('tables a client creates and fills while the recheck looks do not make the cutover fail, and arrive with every acknowledged row', async () => {
    const DB = 'att_tables_recheck';
    const m = await copiedMigration('att-tables-recheck', [DB], { params: { sync_timeout: '180' } });
    made.push(m);
    const router = followAddress(vipAddresses(await cibQuery()).production!, m.source, m.target);
    const app = new Writer(router.route, [DB], 'orders', 25).start();
    let maker: TableMaker | undefined;
    try {
      await new Promise((r) => setTimeout(r, 1_000));
      await launchSwitch(m);
      // Tables one after another for 8 s while the recheck runs (it waits for each to be copied); then the client is done.
      await untilLogged(m, 'step 1/15: recheck');
      maker = new TableMaker(router.route, DB, 'recheck', 8_000);
      const r = await untilSwitchEnds(m.opts.instance);
      expect(r['cutover-state'], `${r['cutover-error']}\n${switchLogs(m)}`).toBe('complete');
    } finally {
      await maker?.stop();
      await app.stop();
      await router.stop();
    }
    expect(maker.made.size).toBeGreaterThan(3);
    expect(await notOnTarget(m, DB, maker), switchLogs(m)).toEqual([]);
    expect(await missingTokens(m.target, DB, app.acknowledged().map((w) => w.token))).toEqual([]);
  });
});

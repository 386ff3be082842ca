/**
 * The way back (issue 12), under a real Pacemaker with writes following the
 * production address all along: forward → cutover → phase reverse (DDL and
 * a new table on the target reach the source, the old source refuses a
 * client that bypasses the address) → failback → forward again (no copy) →
 * cutover → finish. Zero acknowledged writes lost or duplicated, none
 * accepted by the side the address had left, nothing left on either cluster.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Migration, waitFor } from '../support/migration';
import { sql, AGENT, type RigServer } from '../support/rig';
import { Writer } from '../support/writer';
import { followAddress, type Router } from '../support/routing';
import { configureMigrationPrimitive, deletePrimitive, resourceState, cibQuery, vipAddresses, migrationRecord } from '../support/pacemaker';

const exec = promisify(execFile);
const ID = 'migration-way-back';
const DBS = ['wb_app', 'wb_ledger'];
const SCHEMA = 'CREATE TABLE orders (id bigserial PRIMARY KEY, token uuid NOT NULL UNIQUE, note text)';

async function record(): Promise<Record<string, string>> {
  return migrationRecord(await cibQuery(), ID);
}

async function agentCommand(args: string[]): Promise<string> {
  const r = await exec(AGENT, [...args, '--resource', ID], { env: { ...process.env, LC_ALL: 'C' } });
  return r.stdout;
}

/** Does a plain client (bypassing the address) get a write in there? */
async function takesWrites(server: RigServer, db: string): Promise<boolean> {
  try {
    await sql(server, db, "INSERT INTO orders (token, note) VALUES (gen_random_uuid(), 'bypass')");
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === '25006') return false;
    throw err;
  }
}

async function applyErrors(server: RigServer, db: string): Promise<number> {
  const rows = await sql<{ n: string }>(server, db, "SELECT coalesce(sum(apply_error_count + sync_error_count), 0)::text AS n FROM pg_stat_subscription_stats WHERE subname LIKE 'pgtwin_migrate%'");
  return Number(rows[0]!.n);
}

describe('the way back: cutover, reverse phase, failback, cutover again, finish', () => {
  const m = new Migration({
    instance: ID,
    databases: DBS,
    schema: SCHEMA,
    sourceData: "INSERT INTO orders (token, note) SELECT gen_random_uuid(), 'seed' FROM generate_series(1, 500)",
    params: { production_vip_resource: 'postgres-vip', target_vip_resource: 'postgres-vip-18' },
  });
  let router: Router | undefined;
  let writer: Writer | undefined;
  let production = '';

  beforeAll(async () => {
    await m.setUp();
    production = vipAddresses(await cibQuery()).production!;
    await configureMigrationPrimitive(ID, m.params);
    await waitFor('started', async () => (await resourceState(ID)).role === 'Started', 120_000, 500);
    for (const db of DBS) await waitFor(`${db} copied`, async () => (await sql(m.target, db, 'SELECT 1 FROM orders')).length >= 500, 60_000);
    router = followAddress(production, m.source, m.target);
    writer = new Writer(router.route, DBS, 'orders', 20).start();
  });
  afterAll(async () => {
    await writer?.stop();
    await router?.stop();
    await deletePrimitive(ID);
    await m.cleanup();
  });

  it('cuts over; the resource stays up in phase reverse and the old source refuses a bypassing client', async () => {
    expect(await agentCommand(['cutover', '--wait', '--wait-seconds', '300'])).toMatch(/cutover complete/);
    const r = await record();
    expect(r.phase).toBe('reverse');
    expect((await resourceState(ID)).role).toBe('Started');
    for (const db of DBS) {
      expect(await takesWrites(m.source, db)).toBe(false);
      expect(await takesWrites(m.target, db)).toBe(true);
    }
  });

  it('in phase reverse, DDL and a new table made on the target reach the source, and the monitor stays healthy', async () => {
    const db = DBS[0]!;
    await sql(m.target, db, 'ALTER TABLE orders ADD COLUMN channel text');
    await sql(m.target, db, 'CREATE TABLE refunds (id int PRIMARY KEY, amount int)');
    await sql(m.target, db, 'INSERT INTO refunds SELECT g, g * 10 FROM generate_series(1, 50) g');
    await sql(m.target, db, "INSERT INTO orders (token, note, channel) VALUES (gen_random_uuid(), 'reverse ddl', 'web')");
    await waitFor('the ALTER and its row on the source', async () => (await sql(m.source, db, "SELECT 1 FROM orders WHERE channel = 'web'")).length === 1, 60_000);
    // The new table is added to the reverse subscription by the monitor (no manual REFRESH PUBLICATION).
    await waitFor('the new table and its rows on the source', async () => {
      const rows = await sql<{ n: string }>(m.source, db, "SELECT CASE WHEN to_regclass('refunds') IS NULL THEN '-1' ELSE (SELECT count(*)::text FROM refunds) END AS n");
      return rows[0]!.n === '50';
    }, 120_000, 1_000);
    await sql(m.target, db, 'INSERT INTO refunds VALUES (51, 510)');
    await waitFor('a later row of the new table', async () => (await sql(m.source, db, 'SELECT 1 FROM refunds WHERE id = 51')).length === 1, 30_000);
    // A monitor has run since, and none failed.
    await new Promise((r) => setTimeout(r, 11_000));
    expect((await resourceState(ID)).failures).toEqual([]);
    const status = JSON.parse(await agentCommand(['status', '--json'])) as { phase: string; reverse: Array<{ state: string }>; history: Array<{ event: string }> };
    expect(status.phase).toBe('reverse');
    expect(status.reverse.every((d) => d.state === 'streaming')).toBe(true);
    expect(status.history.map((e) => e.event)).toEqual(expect.arrayContaining(['forward started', 'cutover complete']));
  });

  it('fails back: production returns to the source, forward replication again without a copy', async () => {
    expect(await agentCommand(['failback', '--wait', '--wait-seconds', '300'])).toMatch(/failback complete/);
    const r = await record();
    expect(r.phase).toBe('forward');
    expect(vipAddresses(await cibQuery()).production).toBe(production);
    for (const db of DBS) {
      expect(await takesWrites(m.source, db)).toBe(true);
      expect(await takesWrites(m.target, db)).toBe(false);
      // The forward subscription was made anew over a slot taken at the fence: every table ready, nothing copied.
      const rel = await sql<{ n: string; ready: string }>(m.target, db, "SELECT count(*)::text AS n, count(*) FILTER (WHERE srsubstate = 'r')::text AS ready FROM pg_subscription_rel");
      expect(rel[0]!.n).toBe(rel[0]!.ready);
    }
    await sql(m.source, DBS[0]!, "INSERT INTO refunds VALUES (52, 520)");
    await waitFor('forward flows again', async () => (await sql(m.target, DBS[0]!, 'SELECT 1 FROM refunds WHERE id = 52')).length === 1, 30_000);
    const proofs = JSON.parse(await agentCommand(['status', '--proof', '--json'])) as Array<{ kind: string; databases: Array<{ pendingAtProof: number }> }>;
    expect(proofs.map((p) => p.kind)).toEqual(['cutover', 'failback']);
    for (const p of proofs) expect(p.databases.every((d) => d.pendingAtProof === 0)).toBe(true);
  });

  it('cuts over again, then finish leaves nothing on either cluster; no write lost, duplicated or split', async () => {
    expect(await agentCommand(['cutover', '--wait', '--wait-seconds', '300'])).toMatch(/cutover complete/);
    await new Promise((r) => setTimeout(r, 1_000));
    await writer!.stop();
    for (const db of DBS) {
      expect(await applyErrors(m.source, db)).toBe(0);
      expect(await applyErrors(m.target, db)).toBe(0);
    }
    // Every acknowledged write is on the final production (the target) exactly once.
    for (const db of DBS) {
      const tokens = writer!.acknowledged(db).map((w) => w.token);
      expect(tokens.length).toBeGreaterThan(20);
      const found = await sql<{ n: string; d: string }>(m.target, db, 'SELECT count(*)::text AS n, count(DISTINCT token)::text AS d FROM orders WHERE token = ANY($1::uuid[])', [tokens]);
      expect(Number(found[0]!.n)).toBe(tokens.length);
      expect(found[0]!.d).toBe(found[0]!.n);
    }
    // Writes went to both clusters over the test, each while the address led there.
    const ports = new Set(writer!.acknowledged().map((w) => w.port));
    expect(ports).toEqual(new Set([m.source.port, m.target.port]));

    const out = await agentCommand(['finish', '--yes']);
    expect(out).toMatch(/migration finished/);
    expect((await record()).phase).toBe('finished');
    await waitFor('resource stopped', async () => (await resourceState(ID)).role === 'Stopped', 60_000, 500);
    for (const s of [m.source, m.target]) {
      for (const db of DBS) {
        const left = await sql<{ n: string }>(
          s,
          db,
          `SELECT 'publication ' || pubname AS n FROM pg_publication
           UNION ALL SELECT 'subscription ' || subname FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           UNION ALL SELECT 'slot ' || slot_name FROM pg_replication_slots WHERE slot_name LIKE 'pgtwin%'
           UNION ALL SELECT 'event trigger ' || evtname FROM pg_event_trigger
           UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE tgname LIKE 'pgtwin%'
           UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname = 'pgtwin_migrate'`,
        );
        expect(left.map((l) => l.n), `${s.port} ${db}`).toEqual([]);
      }
    }
    // A finished migration does not start again until its record is removed.
    const again = await m.run('start');
    expect(again.code).toBe(6);
    expect(again.exitReason).toMatch(/finished .*pgtwin-migrate teardown/);
  });
});

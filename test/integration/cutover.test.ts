/**
 * The atomic cutover under a real Pacemaker, with continuous writes in
 * every database: zero loss, no write after the fence, sequences carried
 * over, VIPs swapped without ever sharing an address, reverse replication,
 * the resource still running in phase reverse with the old source fenced.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, existsSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Migration, waitFor } from '../support/migration';
import { sql, rig, AGENT, type RigServer } from '../support/rig';
import { Writer } from '../support/writer';
import { followAddress } from '../support/routing';
import { configureMigrationPrimitive, deletePrimitive, resourceState, targetRole, cibQuery, vipAddresses, migrationRecord } from '../support/pacemaker';

const exec = promisify(execFile);
const ID = 'migration-cutover';
// crmsh 4.4 cannot store non-ASCII parameter values (README); non-ASCII names are tested without crm.
const DBS = ['co_app', 'co_billing', 'co-tenant.1 x'];
const SCHEMA = `
  CREATE TABLE orders (id bigserial PRIMARY KEY, token uuid NOT NULL UNIQUE, note text);
  CREATE TABLE ledger (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, amount int);
  CREATE SEQUENCE invoice_no START 1000;`;

/** Replays the VIP stand-ins' journal: at no moment may two resources hold one address. */
function vipOverlaps(journal: string): string[] {
  const held = new Map<string, string>();
  const problems: string[] = [];
  for (const line of journal.split('\n').filter(Boolean)) {
    const [, event, resource, ip] = line.split(' ');
    if (event === 'start') {
      for (const [other, otherIp] of held) if (other !== resource && otherIp === ip) problems.push(`${resource} started with ${ip} while ${other} held it: ${line}`);
      held.set(resource!, ip!);
    } else if (event === 'stop') held.delete(resource!);
  }
  return problems;
}

describe('cutover under Pacemaker with continuous writes', () => {
  const m = new Migration({
    instance: ID,
    databases: DBS,
    schema: SCHEMA,
    sourceData: "INSERT INTO orders (token, note) SELECT gen_random_uuid(), 'seed' FROM generate_series(1, 2000); INSERT INTO ledger (amount) SELECT g FROM generate_series(1, 300) g; SELECT nextval('invoice_no') FROM generate_series(1, 7);",
    params: { production_vip_resource: 'postgres-vip', target_vip_resource: 'postgres-vip-18' },
  });
  const journalAt = { length: 0 };
  let writer: Writer | undefined;

  beforeAll(async () => {
    await m.setUp();
    journalAt.length = existsSync(rig().vipJournal) ? readFileSync(rig().vipJournal, 'utf8').length : 0;
    await configureMigrationPrimitive(ID, m.params);
  });
  afterAll(async () => {
    await writer?.stop();
    await deletePrimitive(ID);
    await m.cleanup();
  });

  it('runs as a Pacemaker primitive: starts, copies, monitors healthy', async () => {
    await waitFor('started', async () => (await resourceState(ID)).role === 'Started', 120_000, 500);
    for (const db of DBS) {
      await waitFor(`${db} copied`, async () => Number((await sql<{ n: string }>(m.target, db, 'SELECT count(*)::text AS n FROM orders'))[0]!.n) === 2000, 60_000);
    }
    // A monitor has run since the copy finished, and none failed.
    await new Promise((r) => setTimeout(r, 11_000));
    expect((await resourceState(ID)).failures).toEqual([]);
  });

  it('cuts over all databases atomically: nothing lost, nothing written after the fence', async () => {
    const before = vipAddresses(await cibQuery());
    // The application follows the production address as the network would (test/support/routing.ts).
    const router = followAddress(before.production!, m.source, m.target);
    writer = new Writer(router.route, DBS, 'orders', 25).start();
    await new Promise((r) => setTimeout(r, 2_000));
    // Sample the CIB throughout: the two VIPs must never carry the same address.
    let sampling = true;
    const samples: Array<{ production?: string; target?: string }> = [];
    const sampler = (async () => {
      while (sampling) samples.push(vipAddresses(await cibQuery()));
    })();

    const cut = await exec(AGENT, ['cutover', '--resource', ID, '--wait', '--wait-seconds', '240'], { env: { ...process.env, LC_ALL: 'C' } });
    expect(cut.stdout).toMatch(/cutover complete: read-only window \d+ ms/);
    await new Promise((r) => setTimeout(r, 1_000));
    await writer.stop();
    sampling = false;
    await Promise.all([sampler, router.stop()]);

    const cib = await cibQuery();
    const record = migrationRecord(cib, ID);
    expect(record.phase).toBe('reverse');
    expect(record['cutover-state']).toBe('complete');
    expect(record['reverse-replication']).toBe('running');

    // ≥ 50 writes/s in total were attempted, and every acknowledged one is on the target.
    const acked = writer.acknowledged();
    expect(writer.records.length).toBeGreaterThan(100);
    for (const db of DBS) {
      const tokens = writer.acknowledged(db).map((r) => r.token);
      const found = await sql<{ n: string }>(m.target, db, 'SELECT count(*)::text AS n FROM orders WHERE token = ANY($1::uuid[])', [tokens]);
      expect(Number(found[0]!.n)).toBe(tokens.length);
    }
    // No write was accepted by the source after the fence: every one sent to it after the fence was
    // refused as read-only, or lost its session, which the agent ends at the fence and again before
    // the source takes writes.
    const fenceComplete = Date.parse(record['cutover-fence-complete-at']!);
    const fencedAt = Date.parse(record['cutover-fenced-at']!);
    const toSourceAfterFence = writer.records.filter((r) => r.port === m.source.port && r.sentAt > fenceComplete);
    expect(toSourceAfterFence.length).toBeGreaterThan(0);
    expect(toSourceAfterFence.filter((r) => r.ok)).toEqual([]);
    const refusals = new Set(toSourceAfterFence.map((r) => r.sqlstate));
    expect(refusals.has('25006')).toBe(true);
    expect([...refusals].filter((s) => !['25006', '57P01', 'connection-lost'].includes(s ?? ''))).toEqual([]);
    expect(writer.records.some((r) => !r.ok && r.sentAt >= fencedAt)).toBe(true);
    // And the application wrote to the target once the production address moved there.
    expect(acked.filter((r) => r.port === m.target.port).length).toBeGreaterThan(0);

    // The VIPs were swapped, and never shared an address in the CIB or on the "network".
    const after = vipAddresses(cib);
    expect(after).toEqual({ production: before.target, target: before.production });
    expect(samples.length).toBeGreaterThan(5);
    for (const s of samples) expect(s.production).not.toBe(s.target);
    expect(vipOverlaps(readFileSync(rig().vipJournal, 'utf8').slice(journalAt.length))).toEqual([]);

    // The resource keeps running in phase reverse, watching the way back.
    expect(await targetRole(ID)).toBe('Started');
    expect((await resourceState(ID)).role).toBe('Started');
  });

  it('carried every sequence over: inserts with default ids succeed on the target', async () => {
    for (const db of DBS) {
      const src = await sql<{ o: string; l: string; i: string }>(
        m.source,
        db,
        "SELECT (SELECT max(id) FROM orders)::text AS o, (SELECT max(id) FROM ledger)::text AS l, (SELECT last_value FROM invoice_no)::text AS i",
      );
      const rows = await sql<{ id: string }>(m.target, db, "INSERT INTO orders (token, note) VALUES (gen_random_uuid(), 'after cutover') RETURNING id::text AS id");
      expect(BigInt(rows[0]!.id)).toBeGreaterThan(BigInt(src[0]!.o));
      const ledger = await sql<{ id: number }>(m.target, db, 'INSERT INTO ledger (amount) VALUES (1) RETURNING id');
      expect(ledger[0]!.id).toBeGreaterThan(Number(src[0]!.l));
      const inv = await sql<{ n: string }>(m.target, db, "SELECT nextval('invoice_no')::text AS n");
      expect(Number(inv[0]!.n)).toBe(Number(src[0]!.i) + 1);
    }
  });

  it('replicates writes and DDL on the target back to the source', async () => {
    const db = DBS[2]!;
    await sql(m.target, db, 'ALTER TABLE orders ADD COLUMN channel text');
    await sql(m.target, db, "INSERT INTO orders (token, note, channel) VALUES (gen_random_uuid(), 'reverse', 'web')");
    await waitFor('reverse row on the source', async () => (await sql(m.source, db, "SELECT 1 FROM orders WHERE note = 'reverse' AND channel = 'web'")).length === 1);
    for (const other of DBS.slice(0, 2)) {
      await sql(m.target, other, "INSERT INTO orders (token, note) VALUES (gen_random_uuid(), 'reverse')");
      await waitFor(`reverse in ${other}`, async () => (await sql(m.source, other, "SELECT 1 FROM orders WHERE note = 'reverse'")).length === 1);
    }
    // Forward replication is gone: no forward subscription, and no forward slot retaining WAL on the source.
    for (const d of DBS) {
      expect(await sql(m.target, d, "SELECT 1 FROM pg_subscription WHERE subname LIKE 'pgtwin_migrate_forward_sub%' AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())")).toEqual([]);
      expect(await sql(m.source, d, "SELECT 1 FROM pg_replication_slots WHERE slot_name LIKE 'pgtwin_migrate_forward_slot%' AND database = current_database()")).toEqual([]);
    }
    // The old source refuses client writes in phase reverse (the way back applies there).
    await expect(sql(m.source, DBS[0]!, "INSERT INTO orders (token, note) VALUES (gen_random_uuid(), 'stray')")).rejects.toMatchObject({ code: '25006' });
    // Nothing diverged: reverse replication never hit a conflict in any database.
    for (const d of DBS) {
      const errs = await sql<{ n: string }>(m.source, d, "SELECT coalesce(sum(apply_error_count), 0)::text AS n FROM pg_stat_subscription_stats WHERE subname LIKE 'pgtwin_migrate_reverse_sub%'");
      expect(Number(errs[0]!.n), d).toBe(0);
    }
    // status now reports the way back: reverse replication of every database.
    const status = JSON.parse((await m.cli(['status', '--json'])).stdout) as { phase: string; reverse: Array<{ database: string; state: string }> };
    expect(status.phase).toBe('reverse');
    expect(status.reverse.map((d) => [d.database, d.state])).toEqual(DBS.map((d) => [d, 'streaming']));
    expect((await m.cli(['status'])).stdout).toMatch(/DATABASE\s+REVERSE \(target → source\)/);
  });

  it('a start in phase reverse creates nothing and copies nothing', async () => {
    const r = await m.run('start');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/started in phase reverse/);
    expect(await sql(m.target, DBS[0]!, "SELECT 1 FROM pg_subscription WHERE subname LIKE 'pgtwin_migrate_forward_sub%' AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())")).toEqual([]);
    expect((await m.run('stop')).code).toBe(0);
  });
});

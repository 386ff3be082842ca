/**
 * Bad input and faults, driven through the executable: each ends with the
 * right OCF code and one clear exit reason, and leaves nothing half-created
 * on either cluster (objects, CIB record, state files, marker). Clusters the
 * shared servers must not become (wal_level=replica, few slots, stopped)
 * are temporary ones of this file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Migration, waitFor, leftovers, type MigrationOptions } from '../support/migration';
import { rig, sql, dropDatabases } from '../support/rig';
import { startTempCluster, type TempCluster, type TempClusterOptions } from '../support/temp-cluster';
import type { AgentResult } from '../support/agent';
import { cibRecordExists, errorFindings, exitReasonLines, expectFailure, expectNothingLeft, leftoversOnBothSides, literally, localFiles, sweep } from '../support/checks';

const R = rig();
const NODE = R.node;
const PG17 = R.servers.pg17;
const PG18 = R.servers.pg18;
const SCHEMA = 'CREATE TABLE items (id bigint PRIMARY KEY, v text)';
const ROWS = "INSERT INTO items SELECT g, 'row ' || g FROM generate_series(1, 1000) g";
/** Fixed ports of this file's temporary clusters (startTempCluster counts up from 54400 by default). */
const PORT = { walReplica: 54461, fewSlots: 54462, source: 54463, target18: 54464, origins18: 54465 } as const;

/** validate-all at depth 10 reports what start reported (code, exit reason, findings), and creates nothing either. */
async function expectValidateAllAgrees(m: Migration, start: AgentResult): Promise<void> {
  const v = await m.run('validate-all', {}, { env: { OCF_CHECK_LEVEL: '10' } });
  expect(v.code).toBe(start.code);
  expect(v.exitReason).toBe(start.exitReason);
  expect(errorFindings(v.stderr)).toEqual(errorFindings(start.stderr));
  await expectNothingLeft(m);
}

describe('faults: bad input and failures end cleanly', () => {
  const migrations: Migration[] = [];
  const clusters = new Map<string, TempCluster>();
  let tmp = '';
  const secret = readFileSync(R.passwordFile, 'utf8').trim();

  async function cluster(name: string, opts: TempClusterOptions): Promise<TempCluster> {
    let c = clusters.get(name);
    if (!c) {
      c = await startTempCluster(name, opts);
      clusters.set(name, c);
    }
    if (!isUp(c)) c.start();
    return c;
  }
  const isUp = (c: TempCluster) => existsSync(`${c.server.data}/postmaster.pid`);

  async function migration(opts: MigrationOptions, setUp = true): Promise<Migration> {
    const m = new Migration(opts);
    migrations.push(m);
    if (setUp) await m.setUp();
    return m;
  }

  /** No secret in anything the agent printed. */
  function expectNoSecret(r: { stdout: string; stderr: string }): void {
    expect(r.stdout + r.stderr).not.toContain(secret);
  }

  beforeAll(() => {
    tmp = mkdtempSync('/tmp/flt-');
    chmodSync(tmp, 0o700);
  });

  afterAll(async () => {
    // Servers back up first, so teardown reaches both sides of every migration.
    for (const c of clusters.values()) {
      try {
        if (!isUp(c)) c.start();
      } catch {
        /* destroyed below anyway */
      }
    }
    for (const m of migrations) {
      await m.cleanup();
      await sweep(m);
    }
    for (const c of clusters.values()) c.destroy();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  describe('a: a database missing on the target', () => {
    let m: Migration;
    let start: AgentResult;
    beforeAll(async () => {
      m = await migration({ instance: 'migration-flt-a', databases: ['flt_a_present', 'flt_a_missing'], schema: SCHEMA, sourceData: ROWS });
      await dropDatabases(m.target, ['flt_a_missing']);
    });

    it('start exits 6 naming the database and saying to create it; nothing is created', async () => {
      start = await m.run('start');
      expectFailure(start, 6, `target primary ${NODE}:${PG18.port}: database "flt_a_missing" does not exist; create it on the target first (createdb flt_a_missing)`);
      // The lines of the seed's troubleshooting guide are in the log too.
      expect(start.stderr).toMatch(/ERROR: Failed to create subscription for database: flt_a_missing\n.*ERROR: database "flt_a_missing" does not exist\n/);
      expectNoSecret(start);
      // The database that is present on both sides was not set up either: all or nothing.
      await expectNothingLeft(m);
    });

    it('validate-all at OCF_CHECK_LEVEL=10 reports the same problem and creates nothing', () => expectValidateAllAgrees(m, start));

    it('validate-all without depth does not look at the clusters: 0', async () => {
      const v = await m.run('validate-all');
      expect(v.stderr).not.toContain('ocf-exit-reason');
      expect(v.code).toBe(0);
    });

    it('when the missing database is the first one listed, the reason still names it and says to create it', async () => {
      const r = await m.run('start', { databases: 'flt_a_missing,flt_a_present' });
      expectFailure(r, 6, /^target primary [^ ]+: database "flt_a_missing" does not exist/);
      expect(r.exitReason).toMatch(/create/);
      await expectNothingLeft(m);
    });

    it('… also for a first-listed database with a longer name (32 characters): what and the fix survive the 128-byte cut', async () => {
      const long = 'flt_a_missing_customer_portal_eu';
      const m2 = await migration({ instance: 'migration-flt-a2', databases: [long, 'flt_a2_present'], schema: SCHEMA, sourceData: ROWS });
      await dropDatabases(m2.target, [long]);
      const r = await m2.run('start');
      expectFailure(r, 6, new RegExp(`^target primary ${NODE}:${PG18.port}: database "${long}" `));
      expect(r.exitReason).toMatch(/does not exist/);
      expect(r.exitReason).toMatch(/create/);
      await expectNothingLeft(m2);
    });
  });

  describe('b: password files', () => {
    let m: Migration;
    const file = (name: string, content: string, mode: number) => {
      const path = join(tmp, name);
      writeFileSync(path, content, { mode });
      chmodSync(path, mode);
      return path;
    };
    beforeAll(async () => {
      m = await migration({ instance: 'migration-flt-b', databases: ['flt_b_auth'], schema: SCHEMA, sourceData: ROWS });
    });

    it('a wrong password: 6, the reason names the side, database and the authentication failure; the password is never shown', async () => {
      const wrong = file('wrong.pgpass', '*:*:*:pgmigrate:flt-Wrong-Secret-42\n', 0o600);
      const r = await m.run('start', { source_pgpassfile: wrong });
      expectFailure(r, 6, new RegExp(`^source primary ${NODE}:${PG17.port} database "flt_b_auth": password authentication failed for user "pgmigrate"`));
      expect(r.stderr).toMatch(/ERROR: connection failed: FATAL: password authentication failed for user "pgmigrate"\n/);
      expect(r.stdout + r.stderr).not.toContain('flt-Wrong-Secret-42');
      expectNoSecret(r);
      await expectNothingLeft(m);
    });

    it('no matching entry: 6, the reason names the entry and the file', async () => {
      const none = file('none.pgpass', `otherhost:*:*:pgmigrate:x\n*:*:*:someone_else:${secret}\n`, 0o600);
      const r = await m.run('start', { target_pgpassfile: none });
      expectFailure(r, 6, new RegExp(`^target primary ${NODE}:${PG18.port} database "flt_b_auth": no entry for ${NODE}:${PG18.port}:flt_b_auth:pgmigrate in ${literally(none)}`));
      expect(r.stderr).toMatch(/WARNING: Could not parse replication user from \.pgpass\n/);
      expectNoSecret(r);
      await expectNothingLeft(m);
    });

    it('a password file of mode 0644: 6, saying chmod 600 and naming the file', async () => {
      const open = file('open.pgpass', readFileSync(R.agentPgpass, 'utf8'), 0o644);
      const r = await m.run('start', { target_pgpassfile: open });
      expectFailure(r, 6, new RegExp(`^target primary ${NODE}:${PG18.port}: password file ${literally(open)} is not a plain file of mode 0600; chmod 600 `));
      expect(r.stderr).toContain(`ERROR: target primary ${NODE}:${PG18.port}: password file ${open} is not a plain file of mode 0600; chmod 600 ${open}\n`);
      expectNoSecret(r);
      await expectNothingLeft(m);
    });

    it('a password file that does not exist: 6, naming the file', async () => {
      const gone = join(tmp, 'gone.pgpass');
      const r = await m.run('start', { source_pgpassfile: gone });
      expectFailure(r, 6, new RegExp(`^source primary ${NODE}:${PG17.port}: password file ${literally(gone)} does not exist`));
      await expectNothingLeft(m);
    });
  });

  it('c: a source with wal_level=replica: 6 naming wal_level; nothing created', async () => {
    const c = await cluster('flt-walreplica', { major: 17, port: PORT.walReplica, settings: { wal_level: 'replica' } });
    const m = await migration({ instance: 'migration-flt-c', databases: ['flt_c_wal'], source: c.server, schema: SCHEMA, sourceData: ROWS });
    const r = await m.run('start');
    expectFailure(r, 6, `source primary ${NODE}:${PORT.walReplica}: wal_level is replica, logical replication needs logical; set wal_level = logical and restart PostgreSQL`);
    await expectNothingLeft(m);
  });

  it('d: too few replication slots for 3 databases: 6 naming max_replication_slots and the number needed', async () => {
    const c = await cluster('flt-fewslots', { major: 17, port: PORT.fewSlots, settings: { max_replication_slots: '4' } });
    const m = await migration({ instance: 'migration-flt-d', databases: ['flt_d_one', 'flt_d_two', 'flt_d_three'], source: c.server, schema: SCHEMA, sourceData: ROWS });
    const r = await m.run('start');
    expectFailure(r, 6, `source primary ${NODE}:${PORT.fewSlots}: max_replication_slots is 4, needs at least 12 (4 × 3 databases); set max_replication_slots = 12 and restart PostgreSQL`);
    await expectNothingLeft(m);
  });

  describe('e: a table without primary key on the source', () => {
    let m: Migration;
    let start: AgentResult;
    beforeAll(async () => {
      m = await migration({
        instance: 'migration-flt-e',
        databases: ['flt_e_nopk'],
        schema: `${SCHEMA};
          CREATE TABLE audit_log (at timestamptz, msg text);
          CREATE TABLE full_ident (a int, b text); ALTER TABLE full_ident REPLICA IDENTITY FULL;
          CREATE TABLE by_index (code text NOT NULL, v text); CREATE UNIQUE INDEX by_index_code ON by_index (code);
          ALTER TABLE by_index REPLICA IDENTITY USING INDEX by_index_code`,
        sourceData: `${ROWS}; INSERT INTO audit_log VALUES (now(), 'x')`,
      });
    });

    it('start exits 6 and the reason lists exactly that table (not those with another replica identity)', async () => {
      start = await m.run('start');
      expectFailure(
        start,
        6,
        new RegExp(`^source primary ${NODE}:${PG17.port} database "flt_e_nopk": 1 table\\(s\\) without primary key or replica identity: public\\.audit_log;`),
      );
      expect(start.stderr).toMatch(/ERROR: .*: public\.audit_log; once published, their UPDATE and DELETE would fail; add a primary key, or ALTER TABLE … REPLICA IDENTITY FULL/);
      expect(start.stderr).not.toMatch(/full_ident|by_index/);
      await expectNothingLeft(m);
    });

    it('validate-all at OCF_CHECK_LEVEL=10 reports the same problem and creates nothing', () => expectValidateAllAgrees(m, start));
  });

  it('f: source down at start: 1 (transient), naming the source address and "connection refused"', async () => {
    const c = await cluster('flt-source', { major: 17, port: PORT.source });
    const m = await migration({ instance: 'migration-flt-f', databases: ['flt_f_down'], source: c.server, schema: SCHEMA, sourceData: ROWS });
    c.stop();
    const r = await m.run('start');
    expectFailure(r, 1, new RegExp(`^source primary ${NODE}:${PORT.source} database "flt_f_down": connection refused`));
    const v = await m.run('validate-all', {}, { env: { OCF_CHECK_LEVEL: '10' } });
    expect(v.code).toBe(1);
    expect(v.exitReason).toBe(r.exitReason);
    c.start();
    await expectNothingLeft(m);
  });

  it('g: target down at start: 1 (transient), naming the target address', async () => {
    const c = await cluster('flt-target18', { major: 18, port: PORT.target18 });
    const m = await migration({ instance: 'migration-flt-g', databases: ['flt_g_down'], target: c.server, schema: SCHEMA, sourceData: ROWS });
    c.stop();
    const r = await m.run('start');
    expectFailure(r, 1, new RegExp(`^target primary ${NODE}:${PORT.target18} database "flt_g_down": connection refused`));
    c.start();
    await expectNothingLeft(m);
  });

  it('h: teardown while the source is down reports the forward slot NOT REMOVED (1); run again once it is up: 0, slot gone', async () => {
    const c = await cluster('flt-source', { major: 17, port: PORT.source });
    const db = 'flt_h_td';
    const slot = `pgtwin_migrate_forward_slot_${db}`;
    const m = await migration({ instance: 'migration-flt-h', databases: [db], source: c.server, schema: SCHEMA, sourceData: ROWS });
    const start = await m.run('start');
    expect(start.stderr).not.toContain('ocf-exit-reason');
    expect(start.code).toBe(0);
    await waitFor('rows copied', async () => (await sql<{ n: string }>(m.target, db, 'SELECT count(*)::text AS n FROM items'))[0]!.n === '1000');
    await sql(c.server, db, "INSERT INTO items VALUES (1001, 'streamed')");
    await waitFor('row streamed', async () => (await sql(m.target, db, 'SELECT 1 FROM items WHERE id = 1001')).length === 1);
    expect((await sql(c.server, db, 'SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot])).length).toBe(1);
    expect((await m.run('stop')).code).toBe(0);

    c.stop();
    const first = await m.cli(['teardown', '--yes']);
    expect(first.code, first.stdout + first.stderr).toBe(1);
    expectNoSecret(first);
    const notRemoved = first.stdout.split('\n').filter((l) => l.startsWith('NOT REMOVED '));
    expect(notRemoved.some((l) => l.startsWith(`NOT REMOVED "${db}": slot ${slot} on source primary ${NODE}:${PORT.source}`) && /connection refused/.test(l)), first.stdout).toBe(true);
    expect(first.stdout).toMatch(/run it again/);
    // The target side is clean already: subscription (detached from its slot) and schema gone.
    expect(await leftovers(m.target, db)).toEqual([]);
    expect(cibRecordExists('migration-flt-h')).toBe(true);

    c.start();
    const second = await m.cli(['teardown', '--yes']);
    expect(second.code, second.stdout + second.stderr).toBe(0);
    expect(second.stdout).toMatch(new RegExp(`^removed "${db}": slot ${slot} \\(source\\)$`, 'm'));
    expect(second.stdout).not.toMatch(/NOT REMOVED/);
    expect(await sql(c.server, db, 'SELECT slot_name FROM pg_replication_slots')).toEqual([]);
    await expectNothingLeft(m);
  });

  describe('i: the target cannot reach source_replication_vip (the subscription fails after the pre-flight passed)', () => {
    // The agent reaches the source through the node address; the target's
    // server connects to the replication VIP, here an address nothing listens on.
    let m: Migration;
    let start: AgentResult;
    const db = 'flt_i_vip';
    beforeAll(async () => {
      m = await migration({ instance: 'migration-flt-i', databases: [db], schema: SCHEMA, sourceData: ROWS, params: { source_replication_vip: '127.0.0.2' } });
      start = await m.run('start');
    });

    it('start fails naming the database and the refused connection to the publisher', () => {
      expect(start.code === 0, start.stderr).toBe(false);
      expect(exitReasonLines(start)).toHaveLength(1);
      expect(start.exitReason).toMatch(new RegExp(`^"${db}": the target's server cannot reach the source at 127\\.0\\.0\\.2:${PG17.port}: connection refused; check source_replication_vip`));
    });

    it('the exit reason says where: the refused address fits in the 128 bytes Pacemaker keeps', () => {
      expect(start.exitReason).toContain('127.0.0.2');
    });

    it('every object created in the attempt is removed again on both sides', async () => {
      expect(await leftoversOnBothSides(m)).toEqual([]);
      expect(localFiles(m).filter((f) => f.includes('.migration_state_') || f.endsWith('.running'))).toEqual([]);
    });

    it('exits 1 (transient), like any other "connection refused" (DESIGN §9)', () => {
      expect(start.code, start.stderr).toBe(1);
    });

    it('leaves no migration record (CIB phase/baseline, baseline file) when start set up nothing', async () => {
      expect(cibRecordExists('migration-flt-i')).toBe(false);
      expect(localFiles(m)).toEqual([]);
    });
  });

  it('j: a PostgreSQL 18 target with too few replication origins for 3 databases: 6 naming max_active_replication_origins', async () => {
    // On 18 a subscriber's apply and table-sync workers each hold a replication
    // origin, bounded by max_active_replication_origins (default 10), no longer
    // by max_replication_slots. With 3 origins, 3 apply workers take them all and
    // no table can ever be copied.
    const c = await cluster('flt-origins18', { major: 18, port: PORT.origins18, settings: { max_active_replication_origins: '3' } });
    const m = await migration({ instance: 'migration-flt-j', databases: ['flt_j_one', 'flt_j_two', 'flt_j_three'], target: c.server, schema: SCHEMA, sourceData: ROWS });
    const r = await m.run('start');
    expectFailure(r, 6, new RegExp(`^target primary ${NODE}:${PORT.origins18}: max_active_replication_origins is 3, needs at least \\d+`));
    await expectNothingLeft(m);
  });

  describe('k: the initial copy keeps failing on the target (a CHECK constraint the source rows violate)', () => {
    let m: Migration;
    const db = 'flt_k_check';
    beforeAll(async () => {
      m = await migration({ instance: 'migration-flt-k', databases: [db], schema: SCHEMA, sourceData: ROWS });
      await sql(m.target, db, "ALTER TABLE items ADD CONSTRAINT items_no_five CHECK (v <> 'row 5')");
    });

    it('start succeeds: the pre-flight cannot know', async () => {
      const r = await m.run('start');
      expect(r.stderr).not.toContain('ocf-exit-reason');
      expect(r.code).toBe(0);
    });

    it('monitor does not call the database healthy once table synchronisation fails again and again', async () => {
      await waitFor(
        'two failed table synchronisations',
        async () =>
          Number(
            (
              await sql<{ n: string }>(
                m.target,
                db,
                "SELECT sync_error_count::text AS n FROM pg_stat_subscription_stats WHERE subname = 'pgtwin_migrate_forward_sub_flt_k_check'",
              )
            )[0]?.n ?? 0,
          ) >= 2,
        60_000,
        250,
      );
      const mon = await m.run('monitor', {}, { interval: 10_000 });
      // DESIGN §5: 1 (or the degraded code) with a one-line reason naming the database.
      expect([1, 190], mon.stderr).toContain(mon.code);
      expect(exitReasonLines(mon)).toHaveLength(1);
      expect(mon.exitReason).toMatch(/^"flt_k_check": .*(error|fail)/);
    });
  });

  describe('the database list is checked before any server is touched', () => {
    // Unreachable ports and an unknown clone: had the agent gone further, it would have said so.
    const unreachable = { source_pgport: '1', target_pgport: '1', source_cluster: 'flt-no-such-clone' };
    const cases: Array<[string, string]> = [
      ['flt_v_one,,flt_v_two', 'databases: item 2 of "flt_v_one,,flt_v_two" is empty; remove the extra comma'],
      ['flt_v_one,', 'databases: item 2 of "flt_v_one," is empty; remove the extra comma'],
      ['flt_v_one, flt_v_two ,flt_v_one', 'databases: "flt_v_one" is listed twice (items 1 and 3); list it once'],
    ];
    it.each(cases)('databases=%j: validate-all (any depth) and start exit 6 at once', async (databases, reason) => {
      const m = await migration({ instance: 'migration-flt-v', databases: ['flt_v_one'] }, false);
      for (const [action, env] of [
        ['validate-all', {}],
        ['validate-all', { OCF_CHECK_LEVEL: '10' }],
        ['start', {}],
      ] as const) {
        const r = await m.run(action, { ...unreachable, databases }, { env });
        expectFailure(r, 6, reason);
        expect(r.ms).toBeLessThan(3_000);
      }
      expect(localFiles(m)).toEqual([]);
      expect(cibRecordExists('migration-flt-v')).toBe(false);
    });
  });
});

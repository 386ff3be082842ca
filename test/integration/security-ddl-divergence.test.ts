/**
 * DDL whose replay gives the existing rows different values on each cluster
 * (issue 10, item 10): ADD COLUMN with a volatile default, an added identity
 * column. The statement is still replayed (the column must exist on both
 * sides) but it is reported — monitor degraded, status — until a DBA has
 * carried the values over and marked it handled; DDL that cannot diverge is
 * not reported.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Migration, waitFor } from '../support/migration';
import { sql } from '../support/rig';

const DB = 'sec_diverge';

describe('DDL that diverges data on replay is reported, never silent (PostgreSQL 17 → 18)', () => {
  const m = new Migration({
    instance: 'migration-sec-diverge',
    databases: [DB],
    schema: 'CREATE TABLE items (id int PRIMARY KEY, v text); CREATE TABLE empty_items (id int PRIMARY KEY)',
    sourceData: "INSERT INTO items SELECT g, 'x' FROM generate_series(1, 20) g",
  });
  beforeAll(async () => {
    await m.setUp();
    const start = await m.run('start');
    expect(start.code, start.stderr).toBe(0);
    await m.untilStreaming();
  });
  afterAll(() => m.cleanup());

  /** Runs DDL on the source and waits until the target has replayed it. */
  async function replayed(statement: string): Promise<void> {
    await sql(m.source, DB, statement);
    await waitFor(`${statement} replayed on the target`, async () => {
      const rows = await sql(m.target, DB, 'SELECT 1 FROM pgtwin_migrate.ddl_log WHERE statement = $1 AND applied_at IS NOT NULL', [statement]);
      return rows.length === 1;
    }, 20_000);
  }

  async function monitor() {
    m.lookAgain();
    return m.run('monitor', {}, { interval: 10_000 });
  }

  async function markHandled(): Promise<void> {
    await sql(m.target, DB, 'UPDATE pgtwin_migrate.ddl_log SET handled = true');
  }

  it('ADD COLUMN with a constant default is replayed and not reported', async () => {
    await replayed('ALTER TABLE items ADD COLUMN k int DEFAULT 5');
    const mon = await monitor();
    expect(mon.code, mon.stderr).toBe(0);
  });

  it('ADD COLUMN with a volatile default on a table with rows is reported until marked handled', async () => {
    await replayed('ALTER TABLE items ADD COLUMN created timestamptz DEFAULT clock_timestamp()');
    const mon = await monitor();
    expect(mon.code, mon.stderr).toBe(190);
    expect(mon.exitReason).toMatch(/"sec_diverge": 1 DDL statement/);
    expect(mon.stderr).toMatch(/created.*items|items.*created/);
    const status = JSON.parse((await m.cli(['status', '--json'])).stdout) as { databases: Array<{ ddlNotReplayed: number }> };
    expect(status.databases[0]!.ddlNotReplayed).toBe(1);
    await markHandled();
    expect((await monitor()).code).toBe(0);
  });

  it('now() (evaluated once, at different moments on each cluster), an added identity column and a gen_random_uuid() default are reported', async () => {
    await replayed('ALTER TABLE items ADD COLUMN added_at timestamptz DEFAULT now()');
    const atNow = await monitor();
    expect(atNow.code, atNow.stderr).toBe(190);
    expect(atNow.exitReason).toMatch(/items\(added_at\)/);
    await markHandled();
    await replayed('ALTER TABLE items ADD COLUMN seq_no int GENERATED ALWAYS AS IDENTITY');
    let mon = await monitor();
    expect(mon.code, mon.stderr).toBe(190);
    expect(mon.stderr).toMatch(/seq_no/);
    await markHandled();
    await replayed('ALTER TABLE items ADD COLUMN ref uuid NOT NULL DEFAULT gen_random_uuid()');
    mon = await monitor();
    expect(mon.code, mon.stderr).toBe(190);
    expect(mon.stderr).toMatch(/ref/);
    await markHandled();
  });

  it('DDL that cannot diverge is not reported: a re-run ADD COLUMN IF NOT EXISTS, an empty table, a new default', async () => {
    await replayed('ALTER TABLE items ADD COLUMN IF NOT EXISTS created timestamptz DEFAULT clock_timestamp()');
    await replayed('ALTER TABLE empty_items ADD COLUMN t timestamptz DEFAULT now()');
    await replayed('ALTER TABLE items ALTER COLUMN k SET DEFAULT floor(random() * 10)');
    await replayed('ALTER TABLE items ADD COLUMN doubled int GENERATED ALWAYS AS (id * 2) STORED');
    const mon = await monitor();
    expect(mon.code, mon.stderr).toBe(0);
  });
});

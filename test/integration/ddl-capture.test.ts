/** DDL capture on a real PostgreSQL 17: what is recorded, and what is judged replayable. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { installDdlSchema, ensureCaptureTrigger } from '../../src/pg/ddl-replication';
import { admin, createDatabases, dropDatabases, rig } from '../support/rig';

const DB = 'ddl capture-test';

describe('DDL capture (PostgreSQL 17)', () => {
  let c: pg.Client;
  beforeAll(async () => {
    const r = rig();
    await createDatabases(r.servers.pg17, [DB]);
    const setup = await admin(r.servers.pg17, DB);
    await setup.query('SET session_replication_role = replica');
    await installDdlSchema(setup, 'source');
    await ensureCaptureTrigger(setup, 'replicate_ddl_to_target_trigger_test', true);
    await setup.query('CREATE ROLE ddl_author LOGIN');
    await setup.query(`GRANT CREATE ON DATABASE "${DB}" TO ddl_author; GRANT CREATE ON SCHEMA public TO ddl_author`);
    await setup.end();
    c = await admin(r.servers.pg17, DB);
  });
  afterAll(async () => {
    await c?.end();
    await dropDatabases(rig().servers.pg17, [DB]);
    const a = await admin(rig().servers.pg17);
    await a.query('DROP ROLE IF EXISTS ddl_author');
    await a.end();
  });

  const log = async () =>
    (await c.query<{ command_tag: string; statement: string; replayable: boolean; not_replayable_reason: string | null; role_name: string }>(
      'SELECT command_tag, statement, replayable, not_replayable_reason, role_name FROM pgtwin_migrate.ddl_log ORDER BY id',
    )).rows;

  it('splits query strings at top-level semicolons only', async () => {
    const q = `CREATE TABLE "a;b" (x text DEFAULT 'x;y'); -- c;d
      /* e; /* nested; */ f; */ CREATE FUNCTION g() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$;
      SELECT E'it\\'s;' ; ;`;
    const { rows } = await c.query<{ parts: string[] }>('SELECT pgtwin_migrate.split_statements($1) AS parts', [q]);
    expect(rows[0]!.parts).toHaveLength(3);
    expect(rows[0]!.parts[0]).toBe(`CREATE TABLE "a;b" (x text DEFAULT 'x;y')`);
    expect(rows[0]!.parts[1]).toMatch(/^-- c;d[\s\S]*\$body\$ SELECT 1; \$body\$$/);
    expect(rows[0]!.parts[2]).toBe("SELECT E'it\\'s;'");
  });

  it('records a single DDL statement as replayable, with its author', async () => {
    await c.query('TRUNCATE pgtwin_migrate.ddl_log');
    const author = await admin(rig().servers.pg17, DB);
    await author.query('SET ROLE ddl_author');
    await author.query('CREATE TABLE t1 (id int PRIMARY KEY)');
    await author.end();
    expect(await log()).toEqual([
      { command_tag: 'CREATE TABLE', statement: 'CREATE TABLE t1 (id int PRIMARY KEY)', replayable: true, not_replayable_reason: null, role_name: 'ddl_author' },
    ]);
  });

  it('isolates each DDL statement of a multi-statement query string and skips the DML between them', async () => {
    await c.query('TRUNCATE pgtwin_migrate.ddl_log');
    await c.query(`CREATE TABLE t2 (id int PRIMARY KEY); INSERT INTO t2 VALUES (1); CREATE INDEX t2_i ON t2 (id); ALTER TABLE t2 ADD COLUMN v text`);
    const rows = await log();
    expect(rows.map((r) => [r.command_tag, r.statement, r.replayable])).toEqual([
      ['CREATE TABLE', 'CREATE TABLE t2 (id int PRIMARY KEY)', true],
      ['CREATE INDEX', 'CREATE INDEX t2_i ON t2 (id)', true],
      ['ALTER TABLE', 'ALTER TABLE t2 ADD COLUMN v text', true],
    ]);
  });

  it('marks DDL from inside a DO block and CREATE TABLE AS as not replayable, with the reason', async () => {
    await c.query('TRUNCATE pgtwin_migrate.ddl_log');
    await c.query(`DO $$ BEGIN EXECUTE 'CREATE TABLE t3 (id int PRIMARY KEY)'; END $$`);
    await c.query('CREATE TABLE t4 AS SELECT 1 AS id');
    const rows = await log();
    expect(rows.map((r) => [r.command_tag, r.replayable])).toEqual([
      ['CREATE TABLE', false],
      ['CREATE TABLE AS', false],
    ]);
    expect(rows[0]!.not_replayable_reason).toMatch(/inside a function, procedure or DO block/);
    expect(rows[1]!.not_replayable_reason).toMatch(/copies data/);
  });

  it('ignores temporary objects, the agent sessions and the agent schema', async () => {
    await c.query('TRUNCATE pgtwin_migrate.ddl_log');
    await c.query('CREATE TEMP TABLE scratch (x int)');
    await c.query('SET session_replication_role = replica');
    await c.query('CREATE TABLE invisible (id int PRIMARY KEY)');
    await c.query('RESET session_replication_role');
    expect(await log()).toEqual([]);
  });

  it('records DROP statements', async () => {
    await c.query('TRUNCATE pgtwin_migrate.ddl_log');
    await c.query('DROP TABLE t2');
    expect((await log()).map((r) => [r.command_tag, r.statement])).toEqual([['DROP TABLE', 'DROP TABLE t2']]);
  });
});

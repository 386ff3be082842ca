/**
 * Review finding 1 — schema copy: the dump filter that drops the agent's own
 * triggers (withoutAgentObjects, src/pg/schema.ts) works line by line. A
 * table owner's comment holding a newline and then
 * `CREATE TRIGGER pgtwin_migrate_fence ` makes it drop the line that closes
 * the comment's string literal; the next comment's text then runs as SQL on
 * the target, as the migration superuser.
 *
 * The source is PostgreSQL 15 (the rig's only pg_dump is 15's, which cannot
 * dump 17); the target 18, empty, schema_copy=auto (the default).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Migration } from '../support/migration';
import { rig, sql, ident } from '../support/rig';
import type { AgentResult } from '../support/agent';
import { asRole, createPlainRole, dropRoleEverywhere, isSuperuser, disposeAnyPhase } from '../support/review';

const DB = 'rv_comment';
const OWNER = 'rv_comment_owner';
const BIN15 = '/usr/lib/postgresql/15/bin';
const TABLE_COMMENT = 'x\nCREATE TRIGGER pgtwin_migrate_fence ';
const COLUMN_COMMENT = `; ALTER ROLE ${OWNER} SUPERUSER; --`;

async function comments(server: Migration['source']): Promise<{ table: string | null; column: string | null }> {
  const rows = await sql<{ table: string | null; column: string | null }>(
    server,
    DB,
    "SELECT obj_description('public.t'::regclass, 'pg_class') AS table, col_description('public.t'::regclass, 1) AS column",
  );
  return rows[0]!;
}

describe('review 1: a table comment cannot smuggle SQL into the schema copy', () => {
  const m = new Migration({
    instance: 'rv-schema-comment',
    databases: [DB],
    source: rig().servers.pg15,
    params: { schema_copy: 'auto', target_pg_bindir: BIN15 },
  });
  let start: AgentResult;

  beforeAll(async () => {
    await createPlainRole(OWNER);
    await m.setUp();
    await sql(m.source, DB, `GRANT CREATE ON SCHEMA public TO ${ident(OWNER)}`);
    // The table owner, a plain role, writes its table and two comments before the first start.
    await asRole(m.source, DB, OWNER, async (c) => {
      await c.query('CREATE TABLE t (id int PRIMARY KEY, v text)');
      await c.query("INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 20) g");
      await c.query(`COMMENT ON TABLE t IS ${pgLiteral(TABLE_COMMENT)}`);
      await c.query(`COMMENT ON COLUMN t.id IS ${pgLiteral(COLUMN_COMMENT)}`);
    });
    expect(await comments(m.source)).toEqual({ table: TABLE_COMMENT, column: COLUMN_COMMENT });
    expect(await sql(m.target, DB, "SELECT 1 FROM pg_class WHERE relname = 't'")).toEqual([]);
    start = await m.run('start');
  });
  afterAll(async () => {
    await disposeAnyPhase(m);
    await dropRoleEverywhere(OWNER);
  });

  it('the table owner is not a superuser on the target after start, and the comments arrive intact', async () => {
    expect(await isSuperuser(m.target, OWNER), `the comment's text ran as SQL on the target; start said:\n${start.stderr}`).toBe(false);
    expect(await isSuperuser(m.source, OWNER)).toBe(false);
    expect(start.code, start.stderr).toBe(0);
    expect(await comments(m.target)).toEqual({ table: TABLE_COMMENT, column: COLUMN_COMMENT });
  });
});

/** A SQL string literal (E'' form, so the newline is written as \n). */
function pgLiteral(s: string): string {
  return `E'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n')}'`;
}

/**
 * Review finding 7 — DDL capture matches a firing to the k-th DDL statement
 * of its query string, counting the rows it already recorded. A statement
 * on a temporary table fires the trigger but records nothing, so the next
 * firing of the same query string is matched to the temporary table's
 * statement: the ALTER of a real table is recorded as the ALTER of the temp
 * table (a no-op on the target) and never replicated.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Migration, waitFor } from '../support/migration';
import { sql, ident } from '../support/rig';
import { asRole, createPlainRole, dropRoleEverywhere, disposeAnyPhase } from '../support/review';

const exec = promisify(execFile);
const DB = 'rv_ddl_temp';
const OWNER = 'rv_ddl_temp_owner';

async function columns(server: Migration['source'], table: string): Promise<string[]> {
  const rows = await sql<{ c: string }>(
    server,
    DB,
    "SELECT attname AS c FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
    [table],
  );
  return rows.map((r) => r.c);
}

describe('review 7: a temporary table in the same query string does not hide a real ALTER from replication', () => {
  const m = new Migration({
    instance: 'rv-ddl-temp',
    databases: [DB],
    schema: `CREATE TABLE t (id int PRIMARY KEY, v text)`,
    sourceData: "INSERT INTO t SELECT g, 'x' FROM generate_series(1, 20) g",
  });

  beforeAll(async () => {
    await createPlainRole(OWNER);
    await m.setUp();
    for (const s of [m.source, m.target]) {
      await sql(s, DB, `ALTER TABLE t OWNER TO ${ident(OWNER)}; GRANT CREATE ON SCHEMA public TO ${ident(OWNER)}`);
    }
    const start = await m.run('start');
    expect(start.code, start.stderr).toBe(0);
    await m.untilStreaming(120_000);
  });
  afterAll(async () => {
    await disposeAnyPhase(m);
    await dropRoleEverywhere(OWNER);
  });

  it('psql -c "CREATE TEMP TABLE" -c "ALTER TABLE IF EXISTS pg_temp.… ; ALTER TABLE public.t ADD COLUMN c": column c reaches the target', async () => {
    // The table owner (a plain role), with psql: each -c is one query string.
    await exec(
      'psql',
      [
        '-X', '-v', 'ON_ERROR_STOP=1',
        '-h', m.source.socket, '-p', String(m.source.port), '-U', OWNER, '-d', DB,
        '-c', 'CREATE TEMP TABLE tmp_x (a int)',
        '-c', 'ALTER TABLE IF EXISTS pg_temp.tmp_x ADD COLUMN b int; ALTER TABLE public.t ADD COLUMN c int',
      ],
      { env: { ...process.env, PGAPPNAME: 'review-attacker' } },
    );
    expect(await columns(m.source, 'public.t')).toEqual(['id', 'v', 'c']);
    // A later statement of the same author arrived: replication has passed the ALTER.
    await asRole(m.source, DB, OWNER, (c) => c.query('CREATE TABLE rv_after (id int PRIMARY KEY)'));
    await waitFor('rv_after on the target', async () => (await sql(m.target, DB, "SELECT 1 FROM pg_class WHERE relname = 'rv_after'")).length > 0, 120_000, 250);
    const logged = await sql<{ statement: string; applied: boolean; err: string | null }>(
      m.target,
      DB,
      "SELECT statement, applied_at IS NOT NULL AS applied, coalesce(apply_error, not_replayable_reason) AS err FROM pgtwin_migrate.ddl_log WHERE command_tag = 'ALTER TABLE' ORDER BY id",
    );
    expect(await columns(m.target, 'public.t'), `the target's DDL log: ${JSON.stringify(logged)}`).toEqual(['id', 'v', 'c']);
  });
});

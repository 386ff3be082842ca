/**
 * Review finding 2 — schema squatting: the agent installs its functions with
 * CREATE SCHEMA IF NOT EXISTS pgtwin_migrate and CREATE OR REPLACE FUNCTION.
 * A role with CREATE on the database (here: granted, as a database owner
 * has it) that creates that schema — and a function of the agent's, say
 * is_fenced() — before the first start keeps owning them: CREATE OR REPLACE
 * by a superuser changes a function's body, not its owner. The agent's
 * SECURITY DEFINER event-trigger functions then call code the squatter can
 * rewrite, as the migration superuser.
 *
 * Safe: start refuses in one line naming the schema and its owner (exit 6
 * or 1), or the agent's objects end up owned by the superuser with nothing
 * of the squatter's in the schema; and in no case does the squatter get
 * superuser by rewriting a function and firing the event triggers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Migration } from '../support/migration';
import { sql, ident } from '../support/rig';
import type { AgentResult } from '../support/agent';
import { asRole, createPlainRole, dropRoleEverywhere, failure, isSuperuser, disposeAnyPhase } from '../support/review';

/** What the squatter's is_fenced() does when it runs as a superuser. */
const escalate = (SQUATTER: string) => `CREATE OR REPLACE FUNCTION pgtwin_migrate.is_fenced() RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN
  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
    EXECUTE 'ALTER ROLE ${SQUATTER} SUPERUSER';
  END IF;
  RETURN false;
END $f$`;

const VARIANTS = [
  { name: 'the schema and is_fenced()', db: 'rv_squat_fn', withFunction: true },
  // Owning the schema alone lets a role drop what the agent puts in it and create its own.
  { name: 'the schema alone', db: 'rv_squat_schema', withFunction: false },
] as const;

describe.each(VARIANTS)('review 2: a role with CREATE on the database squats $name of pgtwin_migrate before the first start', ({ db: DB, withFunction }) => {
  const SQUATTER = `${DB}_role`;
  const ESCALATE = escalate(SQUATTER);
  const m = new Migration({
    instance: `rv-${DB.replace(/_/g, '-')}`,
    databases: [DB],
    schema: 'CREATE TABLE items (id int PRIMARY KEY, v text)',
    sourceData: "INSERT INTO items SELECT g, 'x' FROM generate_series(1, 20) g",
  });
  let start: AgentResult;

  beforeAll(async () => {
    await createPlainRole(SQUATTER);
    await m.setUp();
    for (const s of [m.source, m.target]) {
      await sql(s, DB, `GRANT CREATE ON DATABASE ${ident(DB)} TO ${ident(SQUATTER)}`);
      // Before the first start, on both clusters: the schema (and one of the agent's functions).
      await asRole(s, DB, SQUATTER, async (c) => {
        await c.query('CREATE SCHEMA pgtwin_migrate');
        if (withFunction) await c.query("CREATE FUNCTION pgtwin_migrate.is_fenced() RETURNS boolean LANGUAGE sql AS 'SELECT false'");
      });
    }
    start = await m.run('start');
  });
  afterAll(async () => {
    await disposeAnyPhase(m);
    await dropRoleEverywhere(SQUATTER);
  });

  it('start refuses naming the schema and its owner, or leaves nothing of the squatter in the schema', async () => {
    const context = `start exit ${start.code}:\n${start.stderr}`;
    if (start.code !== 0) {
      expect([1, 6], context).toContain(start.code);
      expect(start.exitReason ?? '', context).toMatch(/pgtwin_migrate/);
      expect(start.exitReason ?? '', context).toContain(SQUATTER);
      return;
    }
    for (const s of [m.source, m.target]) {
      const owned = await sql<{ o: string }>(
        s,
        DB,
        `SELECT 'schema ' || n.nspname || ' owned by ' || r.rolname AS o
           FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
          WHERE n.nspname = 'pgtwin_migrate' AND NOT r.rolsuper
         UNION ALL
         SELECT 'function ' || p.oid::regprocedure::text || ' owned by ' || r.rolname
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_roles r ON r.oid = p.proowner
          WHERE n.nspname = 'pgtwin_migrate' AND NOT r.rolsuper
         UNION ALL
         SELECT 'relation ' || c.oid::regclass::text || ' owned by ' || r.rolname
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_roles r ON r.oid = c.relowner
          WHERE n.nspname = 'pgtwin_migrate' AND NOT r.rolsuper
          ORDER BY 1`,
      );
      expect(owned.map((r) => r.o), `port ${s.port}; ${context}`).toEqual([]);
    }
  });

  it('after start, the squatter cannot rewrite a function the event triggers call and become a superuser', async () => {
    const attempts: string[] = [];
    await asRole(m.source, DB, SQUATTER, async (c) => {
      const attempt = async (what: string, text: string): Promise<boolean> => {
        const err = await failure(c.query(text));
        attempts.push(`${what}: ${err ? `${err.code} ${err.message}` : 'done'}`);
        return !err;
      };
      // As the owner of is_fenced() (called by fence_new_tables, SECURITY DEFINER) ...
      if (!(await attempt('replace is_fenced()', ESCALATE))) {
        // ... or as the owner of the schema, who may drop what the agent put in it: a function
        // the DROP itself does not call (capture_ddl, SECURITY DEFINER, calls it for ALTER TABLE).
        if (await attempt('drop diverging_change(text)', 'DROP FUNCTION pgtwin_migrate.diverging_change(text)')) {
          await attempt('create diverging_change(text)', ESCALATE.replace('CREATE OR REPLACE FUNCTION pgtwin_migrate.is_fenced() RETURNS boolean', 'CREATE FUNCTION pgtwin_migrate.diverging_change(stmt text) RETURNS text').replace('RETURN false', 'RETURN NULL'));
        }
      }
      // DDL that fires the agent's ddl_command_end event triggers (fence_new_tables, capture_ddl).
      await attempt('DDL', `CREATE SCHEMA ${DB}_s; CREATE TABLE ${DB}_s.fire (id int PRIMARY KEY); ALTER TABLE ${DB}_s.fire ADD COLUMN v int`);
    });
    const context = `attempts: ${attempts.join('; ')}; start exit ${start.code}`;
    expect(await isSuperuser(m.source, SQUATTER), context).toBe(false);
    expect(await isSuperuser(m.target, SQUATTER), context).toBe(false);
  });
});

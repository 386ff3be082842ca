/**
 * DDL replication as an attack surface (issue 9, items 1 and 2; DESIGN §8):
 * plain database logins on the source try to get statements of their choice
 * run on the target, or run with more privilege than they have. Every test
 * is one attack, through the built executable against PostgreSQL 17 → 18.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { Migration, waitFor } from '../support/migration';
import { sql, type RigServer } from '../support/rig';

const DB = 'sec_ddl';
const APP = 'sec_app';
/** A role the source has and the target does not. */
const GHOST = 'sec_ghost';
/** A plain role on the source that is a superuser on the target. */
const DUAL = 'sec_dual';

/** A session as `role` through the server's socket (trust), as an application would log in. */
async function as<T>(role: string, server: RigServer, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ host: server.socket, port: server.port, user: role, database: DB });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

const failure = (p: Promise<unknown>) => p.then(() => undefined, (err: { code?: string }) => err);

async function isSuperuser(server: RigServer, role: string): Promise<boolean> {
  const rows = await sql<{ s: boolean }>(server, 'postgres', 'SELECT rolsuper AS s FROM pg_roles WHERE rolname = $1', [role]);
  return rows[0]?.s === true;
}

async function tableExists(server: RigServer, name: string): Promise<boolean> {
  return (await sql(server, DB, 'SELECT 1 FROM pg_class WHERE relname = $1', [name])).length > 0;
}

/** The target's log row of a statement, once it arrived there. */
async function arrived(statementLike: string): Promise<{ replayable: boolean; reason: string | null; applied: boolean }> {
  return waitFor(`the statement ${statementLike} on the target`, async () => {
    const rows = await sql<{ replayable: boolean; reason: string | null; applied: boolean }>(
      m.target,
      DB,
      `SELECT replayable, coalesce(apply_error, not_replayable_reason) AS reason, applied_at IS NOT NULL AS applied
         FROM pgtwin_migrate.ddl_log WHERE statement LIKE $1 ORDER BY id DESC LIMIT 1`,
      [statementLike],
    );
    return rows[0];
  }, 20_000, 100);
}

const m = new Migration({
  instance: 'migration-sec-ddl',
  databases: [DB],
  schema: 'CREATE TABLE items (id int PRIMARY KEY, v text)',
  sourceData: "INSERT INTO items SELECT g, 'x' FROM generate_series(1, 20) g",
});

describe('DDL replication security (PostgreSQL 17 → 18)', () => {
  beforeAll(async () => {
    for (const s of [m.source, m.target]) {
      await sql(s, 'postgres', `DROP ROLE IF EXISTS ${APP}; DROP ROLE IF EXISTS ${GHOST}; DROP ROLE IF EXISTS ${DUAL}`);
      await sql(s, 'postgres', `CREATE ROLE ${APP} LOGIN`);
    }
    await sql(m.source, 'postgres', `CREATE ROLE ${GHOST} LOGIN; CREATE ROLE ${DUAL} LOGIN NOSUPERUSER`);
    await sql(m.target, 'postgres', `CREATE ROLE ${DUAL} LOGIN SUPERUSER`);
    await m.setUp();
    for (const s of [m.source, m.target]) {
      await sql(s, DB, `GRANT CREATE ON DATABASE ${DB} TO ${APP}; GRANT CREATE ON SCHEMA public TO ${APP}`);
      await sql(s, DB, `CREATE TABLE app_items (id int PRIMARY KEY); ALTER TABLE app_items OWNER TO ${APP}`);
    }
    await sql(m.source, DB, `GRANT CREATE ON SCHEMA public TO ${GHOST}, ${DUAL}; INSERT INTO app_items SELECT generate_series(1, 5)`);
    const start = await m.run('start');
    expect(start.code, start.stderr).toBe(0);
    await m.untilStreaming();
  });
  afterAll(async () => {
    await m.cleanup();
    for (const s of [m.source, m.target]) {
      for (const r of [APP, GHOST, DUAL]) await sql(s, 'postgres', `DROP ROLE IF EXISTS ${r}`).catch(() => undefined);
    }
  });

  it('a plain role can neither call the capture functions nor write the DDL log, on either cluster', async () => {
    for (const s of [m.source, m.target]) {
      const callable = await sql<{ f: string }>(
        s,
        DB,
        `SELECT p.oid::regprocedure::text AS f FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname = 'pgtwin_migrate' AND has_function_privilege($1, p.oid, 'EXECUTE')`,
        [APP],
      );
      expect(callable.map((r) => r.f), `port ${s.port}`).toEqual([]);
      const table = await sql<{ w: boolean }>(s, DB, "SELECT has_table_privilege($1, 'pgtwin_migrate.ddl_log', 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE') AS w", [APP]);
      expect(table[0]!.w, `port ${s.port}`).toBe(false);
    }
  });

  it('a plain role cannot get a statement of its choosing replayed as a superuser on the target', async () => {
    const err = await as(APP, m.source, (c) =>
      failure(c.query("SELECT pgtwin_migrate.log_ddl('GRANT pg_read_server_files TO sec_app', 'GRANT', 'postgres', 'pg_catalog')")),
    );
    expect(err?.code ?? 'the call succeeded').toMatch(/^(42501|42883)$/);
    const insert = await as(APP, m.source, (c) =>
      failure(
        c.query(
          `INSERT INTO pgtwin_migrate.ddl_log (origin, query_md5, role_name, search_path, command_tag, statement, replayable)
           VALUES ('source', 'x', 'postgres', 'pg_catalog', 'GRANT', 'GRANT pg_read_server_files TO sec_app', true)`,
        ),
      ),
    );
    expect(insert?.code ?? 'the insert succeeded').toBe('42501');
    // Replication has moved past that point: a later statement arrived.
    await sql(m.source, DB, 'CREATE TABLE after_forgery (id int PRIMARY KEY)');
    await waitFor('after_forgery on the target', () => tableExists(m.target, 'after_forgery'));
    const member = await sql(m.target, 'postgres', "SELECT 1 FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles u ON u.oid = a.member WHERE r.rolname = 'pg_read_server_files' AND u.rolname = $1", [APP]);
    expect(member).toEqual([]);
  });

  it('a client cannot hide its DDL from replication with a session setting', async () => {
    const denied = await as(APP, m.source, (c) => failure(c.query('SET session_replication_role = replica')));
    expect(denied?.code ?? 'the setting was accepted').toBe('42501');
    await as(APP, m.source, async (c) => {
      await c.query("SET pgtwin_migrate.capture = 'off'");
      await c.query('CREATE TABLE hidden_from_replication (id int PRIMARY KEY)');
    });
    await waitFor('hidden_from_replication on the target', () => tableExists(m.target, 'hidden_from_replication'), 15_000);
  });

  it("a plain role's functions on its search_path never run as a superuser on the target", async () => {
    await as(APP, m.source, async (c) => {
      await c.query('CREATE SCHEMA sec_app_s');
      await c.query(`CREATE FUNCTION sec_app_s.set_config(text, text, boolean) RETURNS text LANGUAGE plpgsql AS $f$
        BEGIN
          IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
            EXECUTE 'ALTER ROLE ${APP} SUPERUSER';
          END IF;
          RETURN pg_catalog.set_config($1, $2, $3);
        END $f$`);
      await c.query(`CREATE VIEW sec_app_s.pg_roles AS SELECT * FROM pg_catalog.pg_roles`);
      await c.query('SET search_path = sec_app_s, pg_catalog, public');
      await c.query('CREATE TABLE created_with_hostile_path (id int PRIMARY KEY)');
    });
    const row = await arrived('CREATE TABLE created_with_hostile_path%');
    expect(row.applied).toBe(true);
    expect(await tableExists(m.target, 'created_with_hostile_path')).toBe(true);
    expect(await isSuperuser(m.target, APP)).toBe(false);
    expect(await isSuperuser(m.source, APP)).toBe(false);
  });

  it('code run by a replayed statement cannot switch back to the migration superuser', async () => {
    await as(APP, m.source, async (c) => {
      // Harmless where the author runs it; on the target it would reset the role inside the replay.
      await c.query(`CREATE FUNCTION public.sec_evil() RETURNS int LANGUAGE plpgsql AS $f$
        BEGIN
          IF current_setting('session_replication_role') = 'replica' THEN
            PERFORM pg_catalog.set_config('role', 'none', true);
            EXECUTE 'ALTER ROLE ${APP} SUPERUSER';
          END IF;
          RETURN 1;
        END $f$`);
      await c.query('ALTER TABLE app_items ADD COLUMN evil int DEFAULT public.sec_evil()');
    });
    const row = await arrived('ALTER TABLE app_items ADD COLUMN evil%');
    expect(row.applied).toBe(false);
    expect(row.reason).toMatch(/role/);
    expect(await isSuperuser(m.target, APP)).toBe(false);
  });

  it('DDL by a role the target does not have is refused and reported, never run as the migration superuser', async () => {
    await as(GHOST, m.source, (c) => c.query('CREATE TABLE ghost_table (id int PRIMARY KEY)'));
    const row = await arrived('CREATE TABLE ghost_table%');
    expect(row.applied).toBe(false);
    expect(row.reason).toMatch(new RegExp(`${GHOST}.*(no role|does not exist)`));
    expect(await tableExists(m.target, 'ghost_table')).toBe(false);
  });

  it('a role that is a superuser only on the target never gets its plain statement run as a superuser', async () => {
    await as(DUAL, m.source, (c) => c.query('CREATE TABLE dual_table (id int PRIMARY KEY)'));
    const row = await arrived('CREATE TABLE dual_table%');
    expect(row.applied).toBe(false);
    expect(row.reason).toMatch(new RegExp(`${DUAL}.*superuser`));
    expect(await tableExists(m.target, 'dual_table')).toBe(false);
  });

  it('one statement per replayed row: a dollar sign after a non-ASCII letter does not glue statements together', async () => {
    await as(APP, m.source, (c) =>
      c.query('CREATE TABLE é$a$ (id int PRIMARY KEY); CREATE TABLE sec_glued (id int PRIMARY KEY); CREATE TABLE x$a$ (id int PRIMARY KEY)'),
    );
    const rows = await sql<{ statement: string; replayable: boolean }>(
      m.source,
      DB,
      "SELECT statement, replayable FROM pgtwin_migrate.ddl_log WHERE statement LIKE '%$a$%' OR statement LIKE '%sec_glued%' ORDER BY id",
    );
    expect(rows).toEqual([
      { statement: 'CREATE TABLE é$a$ (id int PRIMARY KEY)', replayable: true },
      { statement: 'CREATE TABLE sec_glued (id int PRIMARY KEY)', replayable: true },
      { statement: 'CREATE TABLE x$a$ (id int PRIMARY KEY)', replayable: true },
    ]);
    await waitFor('the three tables on the target', async () => (await tableExists(m.target, 'x$a$')) && (await tableExists(m.target, 'sec_glued')));
  });

  it('monitor reports the refused statements (degraded) until they are marked handled', async () => {
    m.lookAgain();
    const mon = await m.run('monitor', {}, { interval: 10_000 });
    expect(mon.code, mon.stderr).toBe(190);
    expect(mon.exitReason).toMatch(/DDL statement\(s\) not replayed/);
  });
});
